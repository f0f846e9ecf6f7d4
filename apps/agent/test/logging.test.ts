/**
 * The agent's log writer: JSON lines batched per turn of the event loop (one write of several
 * lines), in order, and none lost when the process exits in the same turn.
 */
import { spawnSync } from "node:child_process"
import { generateKeyPairSync } from "node:crypto"
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import { describe, expect, it } from "vitest"
import { jsonLineLogger, minimumLevelOf, tickBatchedSink } from "../src/logging.js"

const tick = () => new Promise<void>((resolve) => setImmediate(resolve))

describe("jsonLineLogger", () => {
  it("writes a cause without key text it may quote (a library's message holding a file's bytes)", () => {
    const lines: Array<string> = []
    const der = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ format: "der", type: "pkcs8" })
      .toString("base64")
    const pem = `-----BEGIN PRIVATE KEY-----\n${der.match(/.{1,64}/g)?.join("\n")}\n-----END PRIVATE KEY-----`
    Effect.runSync(
      Effect.logError("a failure", Cause.fail(new Error(`could not read ${der} nor ${pem}`))).pipe(
        Effect.provide(Logger.layer([jsonLineLogger((t) => lines.push(t))])),
      ),
    )
    const entry = JSON.parse(lines.join("")) as { msg: string; cause: string }
    expect(entry.cause).toContain("could not read [base64 text of")
    expect(entry.cause).toContain("[PEM text, not shown]")
    for (let i = 0; i + 24 <= der.length; i += 12) expect(entry.cause).not.toContain(der.slice(i, i + 24))
  })

  it("writes a cause without the client secret a token request's error may quote", () => {
    const lines: Array<string> = []
    const secret = "Zq8~agent.log-secret_value"
    const saved = process.env.AZURE_CLIENT_SECRET
    process.env.AZURE_CLIENT_SECRET = secret
    try {
      Effect.runSync(
        Effect.logError(
          "a failure",
          Cause.fail(new Error(`gateway refused: secret ${secret} in the form`)),
        ).pipe(Effect.provide(Logger.layer([jsonLineLogger((t) => lines.push(t))]))),
      )
    } finally {
      if (saved === undefined) delete process.env.AZURE_CLIENT_SECRET
      else process.env.AZURE_CLIENT_SECRET = saved
    }
    const entry = JSON.parse(lines.join("")) as { cause: string }
    expect(entry.cause).toContain(
      "gateway refused: secret [the value of AZURE_CLIENT_SECRET, not shown] in the form",
    )
    expect(entry.cause).not.toContain(secret)
  })
})

describe("tickBatchedSink", () => {
  it("writes the lines of a turn of the event loop at once, in order; a later turn's after them", async () => {
    const writes: Array<string> = []
    let exitFlush: (() => void) | undefined
    const sink = tickBatchedSink({ write: (t) => writes.push(t) }, (f) => (exitFlush = f))
    const logger = Logger.layer([jsonLineLogger(sink.write, sink.flush)])
    const burst = (from: number, n: number) =>
      Effect.runSync(
        Effect.forEach(
          Array.from({ length: n }, (_, i) => from + i),
          (i) => Effect.logInfo(`line ${i}`).pipe(Effect.annotateLogs({ i })),
        ).pipe(Effect.provide(logger)),
      )
    burst(0, 500)
    expect(writes).toEqual([])
    await tick()
    burst(500, 3)
    await tick()
    expect(writes).toHaveLength(2)
    const lines = writes.join("").split("\n")
    expect(lines.pop()).toBe("")
    expect(lines.map((l) => JSON.parse(l).i)).toEqual(Array.from({ length: 503 }, (_, i) => i))
    // The exit hook writes what is held, synchronously.
    burst(503, 2)
    exitFlush?.()
    expect(writes).toHaveLength(3)
    expect(
      writes[2]
        ?.split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l).i),
    ).toEqual([503, 504])
    await tick()
    expect(writes).toHaveLength(3)
  })

  it("writes a fatal line and those before it at once", () => {
    const writes: Array<string> = []
    const sink = tickBatchedSink({ write: (t) => writes.push(t) }, () => {})
    Effect.runSync(
      Effect.logInfo("before").pipe(
        Effect.andThen(Effect.logFatal("fatal")),
        Effect.provide(Logger.layer([jsonLineLogger(sink.write, sink.flush)])),
      ),
    )
    expect(writes).toHaveLength(1)
    expect(writes[0]?.split("\n").map((l) => (l === "" ? "" : JSON.parse(l).msg))).toEqual([
      "before",
      "fatal",
      "",
    ])
  })
})

describe("the agent's logger at exit", () => {
  const logging = fileURLToPath(new URL("../src/logging.ts", import.meta.url))
  /** A process that logs `n` lines through the agent's logger layer and ends in the same tick. */
  const script = (n: number, end: string) => `
    import * as Effect from "effect/Effect"
    import { layer } from ${JSON.stringify(logging)}
    Effect.runSync(Effect.forEach(Array.from({ length: ${n} }, (_, i) => i), (i) =>
      Effect.logInfo("deploy: Succeeded").pipe(Effect.annotateLogs({ deployment: "app-" + i, i }))).pipe(Effect.provide(layer)))
    ${end}
  `
  const run = (n: number, end: string, stdout: "pipe" | number) =>
    spawnSync(process.execPath, ["--input-type=module", "-e", script(n, end)], {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      stdio: ["ignore", stdout, "pipe"],
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    })
  const indexes = (text: string) =>
    text
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l).i)
  const all = (n: number) => Array.from({ length: n }, (_, i) => i)

  const toFile = (n: number, end: string) => {
    const dir = mkdtempSync(join(tmpdir(), "kvdeploy-agent-log-"))
    try {
      const out = join(dir, "out.log")
      const fd = openSync(out, "w")
      try {
        return { r: run(n, end, fd), text: readFileSync(out, "utf8") }
      } finally {
        closeSync(fd)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }

  // A pipe holds 64 KiB: more than that still unread at an exit is lost, with or without batching
  // (Node queues what the pipe does not take). 300 lines fit.
  it("loses no line to process.exit in the same turn (stdout a pipe)", () => {
    const r = run(300, "process.exit(3)", "pipe")
    expect(r.stderr).toBe("")
    expect(r.status).toBe(3)
    expect(indexes(r.stdout)).toEqual(all(300))
  })

  it("loses no line to process.exit in the same turn (stdout a file)", () => {
    const { r, text } = toFile(20_000, "process.exit(3)")
    expect(r.stderr).toBe("")
    expect(r.status).toBe(3)
    expect(indexes(text)).toEqual(all(20_000))
  })

  it("loses no line to an uncaught exception in the same turn (stdout a file)", () => {
    const { r, text } = toFile(5_000, 'throw new Error("boom")')
    expect(r.status).toBe(1)
    expect(r.stderr).toContain("boom")
    expect(indexes(text)).toEqual(all(5_000))
  })
})

describe("KVDEPLOY_AGENT_LOG_LEVEL", () => {
  it("sets the least level written (info without it); another value is named and ignored", () => {
    expect(minimumLevelOf(undefined)).toEqual({ level: "Info" })
    expect(minimumLevelOf("")).toEqual({ level: "Info" })
    expect(minimumLevelOf("debug")).toEqual({ level: "Debug" })
    expect(minimumLevelOf(" DEBUG ")).toEqual({ level: "Debug" })
    expect(minimumLevelOf("warning")).toEqual({ level: "Warn" })
    expect(minimumLevelOf("error")).toEqual({ level: "Error" })
    expect(minimumLevelOf("verbose")).toEqual({ level: "Info", unknown: "verbose" })
    // A name of Object.prototype is no level either (it was taken as one: a function).
    expect(minimumLevelOf("constructor")).toEqual({ level: "Info", unknown: "constructor" })
    expect(minimumLevelOf("toString")).toEqual({ level: "Info", unknown: "toString" })
  })
})
