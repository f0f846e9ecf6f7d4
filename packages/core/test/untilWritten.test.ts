/**
 * interruptibleUntilWritten: an interruption stops a deploy before its import, with nothing written;
 * one that comes once the import was sent waits for the deploy's end (verify, rollback), so no
 * version is left in the vault unproven.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { deploy, interruptibleUntilWritten, Vault, type VaultWrite } from "../src/index.js"
import { InMemoryVaultHandle, issue, makeAuthority } from "../src/testing/index.js"
import { fresh, NAME, request } from "./fixtures.js"

const ca = makeAuthority("until-written")
const cert = issue({ seed: "until-written", issuer: ca })

/** The vault, with one operation held at `gate` until the test opens it (`reached` says it was called). */
const held = (vault: Vault["Service"], operation: "getLatest" | "importVersion") =>
  Effect.gen(function* () {
    const reached = yield* Deferred.make<void>()
    const gate = yield* Deferred.make<void>()
    let first = true
    const hold = <A, E>(call: Effect.Effect<A, E>) =>
      Effect.suspend(() => {
        if (!first) return call
        first = false
        return Deferred.succeed(reached, undefined).pipe(
          Effect.andThen(Deferred.await(gate)),
          Effect.andThen(call),
        )
      })
    const service = Vault.of({
      ...vault,
      ...(operation === "getLatest"
        ? { getLatest: (name) => hold(vault.getLatest(name)) }
        : { importVersion: (r) => hold(vault.importVersion(r)) }),
    })
    return { service, reached, gate }
  })

describe("interruptibleUntilWritten", () => {
  it.effect("an interruption during the snapshot read stops the deploy: nothing is written", () =>
    fresh(
      Effect.gen(function* () {
        const memory = yield* InMemoryVaultHandle
        const { service, reached } = yield* held(yield* Effect.service(Vault), "getLatest")
        const writes: Array<VaultWrite> = []
        const fiber = yield* interruptibleUntilWritten(
          (vault) => deploy(request(cert.material)).pipe(Effect.provideService(Vault, vault)),
          service,
          { onWrite: (w) => void writes.push(w) },
        ).pipe(Effect.forkChild)
        yield* Deferred.await(reached)
        // The gate never opens: only an interruption ends the read.
        const exit = yield* Fiber.interrupt(fiber).pipe(Effect.andThen(Fiber.await(fiber)))
        assert.isTrue(Exit.hasInterrupts(exit))
        assert.deepStrictEqual(writes, [])
        assert.strictEqual(memory.latest(NAME), undefined)
        assert.strictEqual(memory.calls().byOperation.importVersion, undefined)
      }),
    ),
  )

  it.effect("an interruption once the import was sent waits for the verify: the deploy ends Succeeded", () =>
    fresh(
      Effect.gen(function* () {
        const memory = yield* InMemoryVaultHandle
        const { service, reached, gate } = yield* held(yield* Effect.service(Vault), "importVersion")
        const writes: Array<VaultWrite> = []
        const reported: Array<string> = []
        let told = 0
        const fiber = yield* interruptibleUntilWritten(
          (vault) =>
            deploy(request(cert.material)).pipe(
              Effect.provideService(Vault, vault),
              Effect.tap((o) => Effect.sync(() => reported.push(o._tag))),
            ),
          service,
          {
            onWrite: (w) => void writes.push(w),
            onInterruptedAfterWrite: Effect.sync(() => {
              told++
            }),
          },
        ).pipe(Effect.forkChild)
        yield* Deferred.await(reached)
        // Interrupted while the import is on its way, then the import's answer comes.
        const interrupting = yield* Fiber.interrupt(fiber).pipe(Effect.forkChild)
        yield* Effect.yieldNow
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.await(interrupting)
        const exit = yield* Fiber.await(fiber)
        assert.deepStrictEqual(writes, ["importVersion"])
        // The deploy ran to its end: imported, then verified (the second read of the latest).
        assert.deepStrictEqual(memory.calls().byOperation, { getLatest: 2, importVersion: 1 })
        assert.strictEqual(memory.latest(NAME)?.x5t, cert.x5t)
        // The program reported its outcome; the effect still ends interrupted.
        assert.deepStrictEqual(reported, ["Succeeded"])
        assert.strictEqual(told, 1)
        assert.isTrue(Exit.hasInterrupts(exit))
      }),
    ),
  )
})
