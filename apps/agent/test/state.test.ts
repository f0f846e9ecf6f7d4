/** The state file: outcomes written by the periodic write, a pass's new times only by the full flush. */
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import { afterEach, describe, expect, it } from "vitest"
import { type DeploymentRecord, openStateStore, TIME_ONLY_MAX_AGE_MS } from "../src/state.js"

let dir: string | undefined
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  dir = undefined
})

const record = (at: string, outcome = "Skipped"): DeploymentRecord => ({
  outcome,
  at,
  reason: "the vault serves the source certificate",
  configFingerprint: "c".repeat(64),
  sourceFingerprint: "s".repeat(64),
  x5t: "x5t",
  versionId: "v1",
  notAfter: "2030-01-01T00:00:00.000Z",
  lastSuccessAt: at,
  held: false,
})

describe("state store", () => {
  it("keeps an unreadable state file aside instead of overwriting it, and says where", async () => {
    dir = mkdtempSync(join(tmpdir(), "kvdeploy-state-"))
    const path = join(dir, "state.json")
    writeFileSync(path, '{"schema": "kvdeploy.agent-state/v1", "deployments": {"api": ')
    const warnings: Array<string> = []
    const state = openStateStore(dir, (line) => warnings.push(line), { now: () => Date.UTC(2026, 11, 1) })
    expect(state.names()).toEqual([])
    const aside = readdirSync(dir).filter((f) => f.startsWith("state.json.unreadable-"))
    expect(aside).toHaveLength(1)
    expect(readFileSync(join(dir, aside[0] ?? ""), "utf8")).toContain('"deployments": {"api": ')
    expect(warnings[0]).toContain(`kept as ${join(dir, aside[0] ?? "")}`)
    state.set("api", record("2026-12-01T00:00:00.000Z"))
    await Effect.runPromise(state.flush)
    expect(state.writeFailing()).toBe(false)
    expect(readdirSync(dir).filter((f) => f.startsWith("state.json.unreadable-"))).toHaveLength(1)
  })

  it("keeps the state file another agent version wrote as state.json.before-<version>, once, and writes its own version", async () => {
    dir = mkdtempSync(join(tmpdir(), "kvdeploy-state-"))
    const path = join(dir, "state.json")
    // An earlier agent's file: no version recorded.
    const earlier = `${JSON.stringify({ schema: "kvdeploy.agent-state/v1", deployments: { api: record("2026-11-01T00:00:00.000Z", "RolledBack") } })}\n`
    writeFileSync(path, earlier)
    const lines: Array<string> = []
    const open = (agentVersion: string) =>
      openStateStore(dir ?? "", (line) => lines.push(`warn ${line}`), {
        agentVersion,
        info: (line) => lines.push(`info ${line}`),
      })
    const upgraded = open("1.2.0")
    const copy = join(dir, "state.json.before-1.2.0")
    expect(readFileSync(copy, "utf8")).toBe(earlier)
    expect(statSync(copy).mode & 0o777).toBe(0o600)
    expect(lines).toEqual([
      `info state file ${path} was written by an agent that did not record its version (an earlier one); kept as ${copy}: to go back to that version, stop the agent and copy it back to state.json (an older agent may not take this version's records as its deployments', and would try again what is held)`,
    ])
    upgraded.set("api", record("2026-12-01T00:00:00.000Z"))
    await Effect.runPromise(upgraded.flush)
    expect(JSON.parse(readFileSync(path, "utf8")).agentVersion).toBe("1.2.0")
    // The same version started again: nothing copied, the first copy kept as it was.
    lines.length = 0
    open("1.2.0")
    expect(lines).toEqual([])
    expect(readFileSync(copy, "utf8")).toBe(earlier)
    // A later version: its own copy, of the file 1.2.0 wrote.
    open("1.3.0")
    expect(JSON.parse(readFileSync(join(dir, "state.json.before-1.3.0"), "utf8")).agentVersion).toBe("1.2.0")
    expect(lines[0]).toContain("was written by agent 1.2.0")
  })

  it("never reads state.json through a symbolic link, nor writes through a planted temporary file", async () => {
    dir = mkdtempSync(join(tmpdir(), "kvdeploy-state-"))
    const stateDir = join(dir, "state")
    mkdirSync(stateDir, { mode: 0o700 })
    // Someone else's file, which a link named state.json (or the temporary file's name) points at.
    const elsewhere = join(dir, "elsewhere.json")
    const theirs = JSON.stringify({
      schema: "kvdeploy.agent-state/v1",
      deployments: { api: record("2026-01-01T00:00:00.000Z", "RolledBack") },
    })
    writeFileSync(elsewhere, theirs)
    symlinkSync(elsewhere, join(stateDir, "state.json"))
    symlinkSync(elsewhere, join(stateDir, `state.json.tmp-${process.pid}`))
    const warnings: Array<string> = []
    const store = openStateStore(stateDir, (line) => warnings.push(line), {
      now: () => Date.UTC(2026, 11, 1),
    })
    expect(store.names()).toEqual([])
    expect(warnings).toEqual([
      expect.stringMatching(
        /^state file .*state\.json cannot be read \(it is a symbolic link \(ELOOP\), which the agent does not follow\); kept as .*state\.json\.unreadable-.*; starting without state: every deployment is compared with its vault again, and one whose last outcome was held \(it needed a person\) is deployed again$/,
      ),
    ])
    store.set("api", record("2026-12-01T00:00:00.000Z"))
    await Effect.runPromise(store.flush)
    expect(store.writeFailing()).toBe(false)
    expect(readFileSync(elsewhere, "utf8")).toBe(theirs)
    expect(lstatSync(store.path).isFile()).toBe(true)
    expect(JSON.parse(readFileSync(store.path, "utf8")).deployments.api.outcome).toBe("Skipped")
  })

  it("says where a state file is not valid JSON, never its text", async () => {
    dir = mkdtempSync(join(tmpdir(), "kvdeploy-state-"))
    writeFileSync(
      join(dir, "state.json"),
      '{"schema": "kvdeploy.agent-state/v1",\n "deployments": {}, "password": \'Sup3rSecretValue\'}',
    )
    const warnings: Array<string> = []
    openStateStore(dir, (line) => warnings.push(line))
    expect(warnings[0]).toMatch(/cannot be read \(not valid JSON at line 2, column 33\); kept as /)
    expect(warnings.join("\n")).not.toMatch(/Sup3r|assword/)
  })

  it("checks every record before using any: one not in the agent's form is left out and named, the others kept, the file kept aside", async () => {
    dir = mkdtempSync(join(tmpdir(), "kvdeploy-state-"))
    const held = { ...record("2026-11-30T00:00:00.000Z", "RolledBack"), held: true }
    writeFileSync(
      join(dir, "state.json"),
      JSON.stringify({
        schema: "kvdeploy.agent-state/v1",
        deployments: {
          api: held,
          nulled: null,
          // The last-success time became `NaN` on /metrics, where the staleness alert never fires.
          garbled: { ...record("2026-11-30T00:00:00.000Z"), lastSuccessAt: "garbage" },
          yes: { ...held, held: "yes" },
          web: record("2026-11-29T00:00:00.000Z"),
        },
      }),
    )
    const warnings: Array<string> = []
    const store = openStateStore(dir, (line) => warnings.push(line), { now: () => Date.UTC(2026, 11, 1) })
    // Before: "api" kept, the loop stopped at "nulled" (the records after it lost), and the warning
    // said the agent started without state.
    expect([...store.names()].sort()).toEqual(["api", "web"])
    expect(store.get("api")).toEqual(held)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(
      /has 3 records not in the agent's form \("nulled": .*; "garbled": .*lastSuccessAt.*; "yes": .*held.*\); kept as .*state\.json\.unreadable-/,
    )
    expect(warnings[0]).toContain("the other 2 keep theirs")
    expect(readdirSync(dir).filter((f) => f.startsWith("state.json.unreadable-"))).toHaveLength(1)
    // The records kept are on disk again at the next flush (the periodic one too), though none
    // changed: a stop before any did left no state file, and the next start lost the hold.
    await Effect.runPromise(store.flushChanges)
    const reopened = openStateStore(dir, (line) => warnings.push(line))
    expect(reopened.get("api")).toEqual(held)
    expect([...reopened.names()].sort()).toEqual(["api", "web"])
    expect(warnings).toHaveLength(1)
  })

  it("a record whose outcome is none the agent records is left out and named, its value not quoted", () => {
    dir = mkdtempSync(join(tmpdir(), "kvdeploy-state-"))
    const held = { ...record("2026-11-30T00:00:00.000Z", "RollbackFailed"), held: true }
    writeFileSync(
      join(dir, "state.json"),
      JSON.stringify({
        schema: "kvdeploy.agent-state/v1",
        deployments: {
          api: held,
          // A hand edit: shown before as the deployment's outcome on /metrics and on its held line.
          typo: { ...held, outcome: "RollbackFaild" },
          pasted: { ...held, outcome: "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC" },
        },
      }),
    )
    const warnings: Array<string> = []
    const store = openStateStore(dir, (line) => warnings.push(line))
    expect(store.names()).toEqual(["api"])
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(
      /has 2 records not in the agent's form \("typo": .*outcome.*; "pasted": .*outcome/,
    )
    expect(warnings[0]).not.toContain("RollbackFaild")
    expect(warnings[0]).not.toContain("BEGIN")
  })

  it("a write that fails leaves no temporary file, and those of agents stopped mid-write are removed at open", async () => {
    dir = mkdtempSync(join(tmpdir(), "kvdeploy-state-"))
    // An agent killed while it wrote (its process id is not this one's).
    writeFileSync(join(dir, "state.json.tmp-4242"), '{"schema": "kvdeploy.agent-state/v1", "deploym')
    const warnings: Array<string> = []
    const store = openStateStore(dir, (line) => warnings.push(line))
    expect(readdirSync(dir)).toEqual([])
    // The rename fails (state.json became a directory that is not empty), as a write can fail half-way (ENOSPC).
    mkdirSync(join(dir, "state.json"))
    writeFileSync(join(dir, "state.json", "kept"), "")
    store.set("api", record("2026-12-01T00:00:00.000Z"))
    await Effect.runPromise(store.flush)
    expect(store.writeFailing()).toBe(true)
    expect(warnings[0]).toMatch(/^state file .* cannot be written: /)
    // Before: state.json.tmp-PID stayed (a process after has another id), with what it held of the space.
    expect(readdirSync(dir)).toEqual(["state.json"])
    rmSync(join(dir, "state.json"), { recursive: true })
    await Effect.runPromise(store.flush)
    expect(store.writeFailing()).toBe(false)
    expect(readdirSync(dir)).toEqual(["state.json"])
  })

  it("a state.json that is a directory is named as such (it said ENOTREG, which no manual explains)", () => {
    dir = mkdtempSync(join(tmpdir(), "kvdeploy-state-"))
    mkdirSync(join(dir, "state.json"))
    const warnings: Array<string> = []
    const store = openStateStore(dir, (line) => warnings.push(line))
    expect(store.names()).toEqual([])
    expect(warnings[0]).toMatch(
      /cannot be read \(it is not a regular file \(a directory, a FIFO or a device\)\); kept as /,
    )
  })

  it("a file of another schema or form is named as such, and what starting without it costs is said", () => {
    for (const [body, said] of [
      [
        { schema: "kvdeploy.agent-state/v2", deployments: {} },
        /has the schema "kvdeploy\.agent-state\/v2", not kvdeploy\.agent-state\/v1 \(a newer agent's\?\)/,
      ],
      // An array of records was read as records named "0", "1"…, then dropped as not configured.
      [
        { schema: "kvdeploy.agent-state/v1", deployments: [record("2026-11-30T00:00:00.000Z")] },
        /is not an agent's state file/,
      ],
      [[1, 2], /is not an agent's state file/],
    ] as const) {
      dir = mkdtempSync(join(tmpdir(), "kvdeploy-state-"))
      writeFileSync(join(dir, "state.json"), JSON.stringify(body))
      const warnings: Array<string> = []
      const store = openStateStore(dir, (line) => warnings.push(line))
      expect(store.names()).toEqual([])
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toMatch(said)
      expect(warnings[0]).toContain("one whose last outcome was held (it needed a person) is deployed again")
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("writes a changed outcome on the periodic write, a record's new times only on the full flush", async () => {
    dir = mkdtempSync(join(tmpdir(), "kvdeploy-state-"))
    const store = openStateStore(dir, () => {})
    const onDisk = () => JSON.parse(readFileSync(store.path, "utf8")).deployments.api as DeploymentRecord
    store.set("api", record("2026-01-01T00:00:00.000Z", "Succeeded"))
    await Effect.runPromise(store.flushChanges)
    expect(onDisk().outcome).toBe("Succeeded")
    // In place on the next pass: a new outcome, written by the periodic write.
    store.set("api", record("2026-01-01T00:05:00.000Z"))
    await Effect.runPromise(store.flushChanges)
    expect(onDisk()).toMatchObject({ outcome: "Skipped", at: "2026-01-01T00:05:00.000Z" })
    // In place again: only the times changed; the periodic write leaves them for the flush after the pass.
    store.set("api", record("2026-01-01T00:10:00.000Z"))
    await Effect.runPromise(store.flushChanges)
    expect(onDisk().at).toBe("2026-01-01T00:05:00.000Z")
    await Effect.runPromise(store.flush)
    expect(onDisk()).toMatchObject({
      at: "2026-01-01T00:10:00.000Z",
      lastSuccessAt: "2026-01-01T00:10:00.000Z",
    })
    // A restart reads what was flushed.
    expect(openStateStore(dir, () => {}).get("api")?.at).toBe("2026-01-01T00:10:00.000Z")
  })

  it("writes changes of times alone on the periodic write once they are 60 s old (an agent never quiet)", async () => {
    dir = mkdtempSync(join(tmpdir(), "kvdeploy-state-"))
    let now = Date.parse("2026-01-01T00:00:00.000Z")
    const store = openStateStore(dir, () => {}, { now: () => now })
    const onDisk = () => JSON.parse(readFileSync(store.path, "utf8")).deployments.api as DeploymentRecord
    store.set("api", record("2026-01-01T00:00:00.000Z"))
    await Effect.runPromise(store.flushChanges)
    // Passes follow each other with no quiet moment (no full flush): only the times change.
    for (let s = 10; s <= TIME_ONLY_MAX_AGE_MS / 1000; s += 10) {
      now += 10_000
      store.set("api", record(new Date(now).toISOString()))
      await Effect.runPromise(store.flushChanges)
      expect(onDisk().at).toBe("2026-01-01T00:00:00.000Z")
    }
    // The oldest change not written (made at 00:00:10) is 60 s old now: written by the periodic write.
    now += 10_000
    store.set("api", record(new Date(now).toISOString()))
    await Effect.runPromise(store.flushChanges)
    expect(onDisk()).toMatchObject({
      at: "2026-01-01T00:01:10.000Z",
      lastSuccessAt: "2026-01-01T00:01:10.000Z",
    })
    // And the age counts again from that write.
    now += 10_000
    store.set("api", record(new Date(now).toISOString()))
    await Effect.runPromise(store.flushChanges)
    expect(onDisk().at).toBe("2026-01-01T00:01:10.000Z")
  })

  it("creates the state directory 0700 and writes state.json 0600, whatever the umask lets through", async () => {
    dir = mkdtempSync(join(tmpdir(), "kvdeploy-state-"))
    const stateDir = join(dir, "var", "state")
    // A umask that lets group and others read (the usual 022): the modes must come from the agent.
    const umask = process.umask(0o022)
    try {
      const store = openStateStore(stateDir, () => {})
      expect(statSync(stateDir).mode & 0o777).toBe(0o700)
      store.set("api", record("2026-01-01T00:00:00.000Z", "Succeeded"))
      await Effect.runPromise(store.flush)
      expect(statSync(store.path).mode & 0o777).toBe(0o600)
      // Written again (a temporary file renamed over it): still 0600.
      store.set("api", record("2026-01-01T00:05:00.000Z"))
      await Effect.runPromise(store.flush)
      expect(JSON.parse(readFileSync(store.path, "utf8")).deployments.api.outcome).toBe("Skipped")
      expect(statSync(store.path).mode & 0o777).toBe(0o600)
    } finally {
      process.umask(umask)
    }
  })
})
