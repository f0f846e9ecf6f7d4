/**
 * VaultConnections against @kvdeploy/kv-emulator: the adapter's two SDK
 * clients share one keep-alive agent, `releaseIdle` closes its idle sockets,
 * a later request opens a new one, and a request in flight keeps its socket;
 * the SDKs' request log leaves the agent (its sockets and queue) out.
 */
import { rootCertificates } from "node:tls"
import type { TokenCredential } from "@azure/core-auth"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { PfxCodec, type TargetConfig, Vault } from "@kvdeploy/core"
import type { Emulator } from "@kvdeploy/kv-emulator"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import { makeWithConnections, VaultConnections } from "../src/index.js"
import { credentialFor, startEmulator, targetFor, worldLayer } from "./support/emulator.js"
import { type Issuer, makeCa, makeMaterial } from "./support/pki.js"
import { withSdkLog } from "./support/sdkLog.js"

const VAULT = "sockets"
let emulator: Emulator
let ca: Issuer
let credential: TokenCredential
let target: TargetConfig

beforeAll(async () => {
  emulator = await startEmulator({ vaults: [VAULT] })
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

const importOne = (name: string) =>
  Effect.gen(function* () {
    const codec = yield* PfxCodec
    const vault = yield* Vault
    const material = yield* Effect.promise(() => makeMaterial(ca))
    const pfx = yield* codec.encode(material, { encoding: "modern", password: Redacted.make("") })
    return yield* vault.importVersion({ name, pfx, password: Redacted.make(""), tags: {} })
  })

/** Wait until no socket carries a request (a finished response hands its socket back to the pool). */
const settled = Effect.flatMap(Effect.service(VaultConnections), (c) =>
  c.count.pipe(Effect.repeat({ schedule: Schedule.spaced("5 millis"), until: (n) => n.active === 0 })),
)

describe("VaultConnections over the emulator", () => {
  it.live(
    "both clients share one keep-alive pool; releaseIdle closes its idle sockets and the next request opens one",
    () =>
      Effect.gen(function* () {
        const vault = yield* Vault
        const connections = yield* VaultConnections
        const imported = yield* importOne("pool-app")
        yield* vault.getLatest("pool-app")
        // The secret client's request goes over the same agent as the certificate client's.
        yield* vault.getVersionSecret("pool-app", imported.versionId)
        const before = yield* settled
        expect(before.idle).toBeGreaterThan(0)
        expect(before.idle).toBeLessThanOrEqual(3)

        expect(yield* connections.releaseIdle).toBe(before.idle)
        expect(yield* connections.count).toEqual({ active: 0, idle: 0 })
        // Nothing left to close.
        expect(yield* connections.releaseIdle).toBe(0)

        // Each client's next request opens a socket in the same pool.
        const secret = yield* vault.getVersionSecret("pool-app", imported.versionId)
        expect(secret.pfx.length).toBeGreaterThan(0)
        expect((yield* settled).idle).toBe(1)
        expect(yield* connections.releaseIdle).toBe(1)
        const latest = yield* vault.getLatest("pool-app")
        expect(latest.versionId).toBe(imported.versionId)
        expect((yield* settled).idle).toBe(1)
        expect(yield* connections.releaseIdle).toBe(1)
      }).pipe(Effect.provide(worldLayer(emulator, target, credential))),
  )

  it.live("the layer's scope closing closes its idle sockets and keeps none alive after", () =>
    Effect.gen(function* () {
      const used = yield* Effect.gen(function* () {
        const vault = yield* Vault
        const connections = yield* VaultConnections
        yield* vault.getLatest("layer-scope").pipe(Effect.ignore)
        // One idle keep-alive socket while the layer is in use.
        expect((yield* settled).idle).toBe(1)
        return connections
      }).pipe(Effect.provide(worldLayer(emulator, target, credential)))
      expect(yield* used.count).toEqual({ active: 0, idle: 0 })
    }),
  )

  it.live("a request in flight keeps its socket and completes; only the idle ones are closed", () =>
    Effect.gen(function* () {
      const vault = yield* Vault
      const connections = yield* VaultConnections
      const imported = yield* importOne("busy-app")
      yield* settled
      emulator.faults.add({
        operation: "getLatest",
        vault: VAULT,
        name: "busy-app",
        action: { kind: "delay", ms: 1500 },
      })
      const slow = yield* Effect.forkChild(vault.getLatest("busy-app"))
      // The slow request holds a socket; a second request meanwhile needs another one,
      // which goes back to the idle pool when it is answered.
      yield* connections.count.pipe(
        Effect.repeat({ schedule: Schedule.spaced("5 millis"), until: (n) => n.active === 1 }),
      )
      yield* vault.getVersion("busy-app", imported.versionId)
      const during = yield* connections.count
      expect(during.idle).toBeGreaterThan(0)

      const released = yield* connections.releaseIdle
      expect(released).toBe(during.idle)
      const latest = yield* Fiber.join(slow)
      expect(latest.versionId).toBe(imported.versionId)
      // The socket that carried the slow request went back to the pool, open.
      const after = yield* settled
      expect(after.idle).toBe(1)
    }).pipe(Effect.provide(worldLayer(emulator, target, credential))),
  )

  it.live("maxConnections bounds the sockets: requests beyond it wait for one and all complete", () =>
    Effect.gen(function* () {
      const vault = yield* Vault
      const connections = yield* VaultConnections
      const imported = yield* importOne("bounded-app")
      yield* settled
      yield* connections.releaseIdle
      // Every read of this certificate is held 150 ms, so six at once would need six sockets.
      const fault = emulator.faults.add({
        operation: "getLatest",
        vault: VAULT,
        name: "bounded-app",
        times: "always",
        action: { kind: "delay", ms: 150 },
      })
      let most = 0
      const watch = yield* Effect.forkChild(
        connections.count.pipe(
          Effect.tap((n) =>
            Effect.sync(() => {
              most = Math.max(most, n.active + n.idle)
            }),
          ),
          Effect.repeat(Schedule.spaced("2 millis")),
        ),
      )
      const reads = yield* Effect.forEach(Array.from({ length: 6 }), () => vault.getLatest("bounded-app"), {
        concurrency: "unbounded",
      })
      yield* Fiber.interrupt(watch)
      emulator.faults.remove(fault)
      expect(reads.map((r) => r.versionId)).toEqual(Array.from({ length: 6 }, () => imported.versionId))
      expect(most).toBeGreaterThan(0)
      expect(most).toBeLessThanOrEqual(2)
      const after = yield* settled
      expect(after.active + after.idle).toBeLessThanOrEqual(2)
    }).pipe(Effect.provide(worldLayer(emulator, target, credential, { maxConnections: 2 }))),
  )

  it.live.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])(
    "maxConnections %s is refused with an error naming the option when the adapter is made",
    (bad) =>
      Effect.gen(function* () {
        const exit = yield* Effect.exit(
          makeWithConnections({ vaultUrl: target.vaultUrl, credential, maxConnections: bad }),
        )
        expect(exit._tag).toBe("Failure")
        expect(String(Cause.squash((exit as Exit.Failure<unknown, unknown>).cause))).toMatch(
          /maxConnections must be a whole number of at least 1/,
        )
      }).pipe(Effect.provide(worldLayer(emulator, target, credential))),
  )

  /**
   * Making the adapter with `trustedCaPem` fails with an error that matches `why`, says what to give,
   * and does not repeat the value given.
   */
  const refusedTrustedCa = (trustedCaPem: ReadonlyArray<string>, why: RegExp) =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        makeWithConnections({ vaultUrl: target.vaultUrl, credential, trustedCaPem }),
      )
      expect(exit._tag).toBe("Failure")
      const message = String(Cause.squash((exit as Exit.Failure<unknown, unknown>).cause))
      expect(message).toMatch(why)
      expect(message).toContain("give the CA certificates to trust as PEM text")
      expect(message).not.toContain("AAAA")
    })

  it.live.each([
    ["nope", /trustedCaPem holds no PEM certificate/],
    [
      ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"],
      /trustedCaPem\[0\] holds a certificate block \(number 1\) that does not read/,
    ],
    [[42], /trustedCaPem\[0\] is not a string of PEM text/],
  ] as const)(
    "trustedCaPem %j is refused with an error naming the option when the adapter is made",
    ([bad, why]) =>
      refusedTrustedCa(bad as unknown as ReadonlyArray<string>, why).pipe(
        Effect.provide(worldLayer(emulator, target, credential)),
      ),
  )

  it.live(
    "trustedCaPem whose first entry is a good CA and a later one is not: refused naming the later entry",
    () =>
      Effect.gen(function* () {
        // A good first entry (one of Node's own roots) does not vouch for the next.
        for (const [second, why] of [
          ["nope", /trustedCaPem\[1\] holds no PEM certificate/],
          [
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
            /trustedCaPem\[1\] holds a certificate block \(number 1\) that does not read/,
          ],
        ] as const) {
          yield* refusedTrustedCa([rootCertificates[0] ?? "", second], why)
        }
      }).pipe(Effect.provide(worldLayer(emulator, target, credential))),
  )

  it.live(
    "trustedCaPem as an array (the emulator's CA, twice): the adapter is made and reads through it",
    () =>
      Effect.gen(function* () {
        const handle = yield* makeWithConnections({
          vaultUrl: target.vaultUrl,
          credential,
          customCloud: true,
          trustedCaPem: [emulator.caPem, emulator.caPem],
        })
        const read = yield* Effect.result(handle.vault.getLatest("no-such-name"))
        expect(read._tag === "Failure" && read.failure._tag).toBe("VaultNotFound")
      }).pipe(Effect.provide(worldLayer(emulator, target, credential))),
  )

  it.live(
    "the SDKs' request log shows no bearer token and no PFX of a request in flight or waiting for a socket",
    () =>
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

        const [, lines] = yield* withSdkLog((logged) =>
          Effect.gen(function* () {
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
            yield* Effect.sync(() => logged.filter((l) => l.includes("Request: ")).length).pipe(
              Effect.repeat({ schedule: Schedule.spaced("5 millis"), until: (n) => n >= 3 }),
            )
            emulator.faults.release(hold)
            yield* Fiber.join(held)
            yield* Fiber.join(queued)
            yield* Fiber.join(read).pipe(Effect.ignore)
          }),
        )
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

  it.live(
    "a request the vault leaves unanswered ends at the per-request timeout, which its failure names",
    () =>
      Effect.gen(function* () {
        const vault = yield* Vault
        yield* vault.getLatest("warm").pipe(Effect.ignore)
        const hold = emulator.faults.add({
          operation: "getLatest",
          vault: VAULT,
          name: "unanswered",
          action: { kind: "hold", timeoutMs: 20_000 },
        })
        const error = yield* Effect.flip(vault.getLatest("unanswered")).pipe(
          Effect.ensuring(Effect.sync(() => emulator.faults.release(hold))),
        )
        expect(error._tag).toBe("VaultUnavailable")
        expect(error.message).toContain(
          "the request was aborted or timed out (no answer within 0.4 s, the per-request timeout)",
        )
        expect(error._tag === "VaultUnavailable" ? error.timedOutAfterMs : undefined).toBe(400)
      }).pipe(
        Effect.provide(
          worldLayer(emulator, target, credential, { requestTimeoutMs: 400, retry: { maxRetries: 0 } }),
        ),
      ),
  )
})
