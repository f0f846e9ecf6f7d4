/**
 * The Azure SDKs' own request log (AZURE_LOG_LEVEL, DEBUG=azure*) with the adapter's keep-alive
 * agent: the log line of a request sent while another is on its way, and while a third waits for
 * a socket, leaves out the agent, its sockets and queued requests (their bearer tokens and an
 * import's PFX, whose password is blank).
 */
import type { TokenCredential } from "@azure/core-auth"
import { AzureLogger, getLogLevel, setLogLevel } from "@azure/logger"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { PfxCodec, type TargetConfig, Vault } from "@kvdeploy/core"
import { type Emulator, start } from "@kvdeploy/kv-emulator"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import { credentialFor, targetFor, worldLayer } from "./support/emulator.js"
import { type Issuer, makeCa, makeMaterial } from "./support/pki.js"

const VAULT = "sdklog"
let emulator: Emulator
let ca: Issuer
let credential: TokenCredential
let target: TargetConfig

beforeAll(async () => {
  emulator = await start({ vaults: [VAULT], warn: () => {} })
  ca = await makeCa()
  target = targetFor(emulator, VAULT, "any")
  credential = await Effect.runPromise(credentialFor(emulator, target))
})
afterAll(() => emulator?.stop())

/** Every 40-character piece of `text`, a step of 20 apart. */
const pieces = (text: string): ReadonlyArray<string> =>
  Array.from({ length: Math.max(1, Math.floor((text.length - 40) / 20) + 1) }, (_, i) =>
    text.slice(i * 20, i * 20 + 40),
  )

describe("the SDKs' request log", () => {
  it.live("shows no bearer token and no PFX of a request in flight or waiting for a socket", () =>
    Effect.gen(function* () {
      const vault = yield* Vault
      const codec = yield* PfxCodec
      const blank = Redacted.make("")
      const pfxOf = () =>
        Effect.flatMap(
          Effect.promise(() => makeMaterial(ca)),
          (m) => codec.encode(m, { encoding: "modern", password: blank }),
        )
      const heldPfx = yield* pfxOf()
      const queuedPfx = yield* pfxOf()
      yield* vault.getLatest("warm").pipe(Effect.ignore)

      const lines: Array<string> = []
      const saved = { log: AzureLogger.log, level: getLogLevel() }
      AzureLogger.log = (...args: Array<unknown>) => {
        lines.push(args.map(String).join(" "))
      }
      setLogLevel("info")
      try {
        // One socket (maxConnections 1): the held import keeps it, the second import waits for it
        // (its request written into the agent's queue), and a read is logged meanwhile.
        const hold = emulator.faults.add({
          operation: "import",
          vault: VAULT,
          name: "held",
          action: { kind: "hold", timeoutMs: 20_000 },
        })
        const held = yield* Effect.forkChild(
          vault.importVersion({ name: "held", pfx: heldPfx, password: blank, tags: {} }),
        )
        yield* Effect.sync(() => emulator.faults.list().find((f) => f.id === hold)?.hits ?? 0).pipe(
          Effect.repeat({ schedule: Schedule.spaced("5 millis"), until: (hits) => hits > 0 }),
        )
        const queued = yield* Effect.forkChild(
          vault.importVersion({ name: "queued", pfx: queuedPfx, password: blank, tags: {} }),
        )
        const read = yield* Effect.forkChild(vault.getLatest("held"))
        // Both later requests have been logged (the log policy writes a request before it is sent).
        yield* Effect.sync(() => lines.filter((l) => l.includes("Request: ")).length).pipe(
          Effect.repeat({ schedule: Schedule.spaced("5 millis"), until: (n) => n >= 3 }),
        )
        emulator.faults.release(hold)
        yield* Fiber.join(held)
        yield* Fiber.join(queued)
        yield* Fiber.join(read).pipe(Effect.ignore)
      } finally {
        setLogLevel(saved.level)
        AzureLogger.log = saved.log
      }

      const text = lines.join("\n")
      // The log did record the requests, without the agent they went through.
      expect(text).toContain("/certificates/held/import")
      expect(text).toContain("/certificates/queued/import")
      expect(text).not.toContain('"agent"')
      expect(text).not.toMatch(/Bearer\s+[A-Za-z0-9._-]{20}/)
      for (const pfx of [heldPfx, queuedPfx]) {
        const base64 = Buffer.from(pfx).toString("base64")
        for (const piece of pieces(base64))
          expect(text.includes(piece), "a piece of an imported PFX (blank password) is in the log").toBe(
            false,
          )
      }
    }).pipe(Effect.provide(worldLayer(emulator, target, credential, { maxConnections: 1 }))),
  )
})
