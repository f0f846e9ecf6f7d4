/**
 * Rollback keeps the previous certificate's chain, and a retry after a rollback does not take the
 * rolled-back version for its own (found by review; each test failed on the code before).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"
import { Fault, InMemoryVaultHandle, issue, makeAuthority } from "../src/testing/index.js"
import { fresh, managedTags, NAME, request, runDeploy } from "./fixtures.js"

const ca = makeAuthority("rollback-chain")
const oldCert = issue({ seed: "old", issuer: ca })
const newCert = issue({ seed: "new", issuer: ca })

/** The vault serves oldCert (kvdeploy's), refuses secrets/get, and serves the next import wrong (its tags dropped). */
const servedWrongWithoutSecrets = Effect.gen(function* () {
  const vault = yield* InMemoryVaultHandle
  yield* vault.seed(NAME, oldCert.material, { tags: managedTags })
  vault.setSecretsGet(false)
  vault.script("importVersion", Fault.alter("drop-tags"))
  return vault
})

describe("rollback keeps the previous chain", () => {
  it.effect("a caller key without previousChain: the backing secret (with the chain) restores it", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* vault.seed(NAME, oldCert.material, { tags: managedTags })
        vault.script("importVersion", Fault.alter("drop-tags"))
        const outcome = yield* runDeploy(request(newCert.material, { previousKey: oldCert.material.key }))
        assert.strictEqual(outcome._tag, "RolledBack")
        if (outcome._tag !== "RolledBack") return
        assert.strictEqual(outcome.rollbackSource, "backing-secret")
        assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
        assert.deepStrictEqual(vault.latest(NAME)?.material.chain, oldCert.material.chain)
        // Said before the import: the key alone could not restore the chain.
        assert.isTrue(
          outcome.decisions.some((d) => /^previous key: matches the served certificate, but/.test(d)),
        )
      }),
    ),
  )

  it.effect(
    "a caller key with the previous chain restores it, chain included, without the backing secret",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* servedWrongWithoutSecrets
          const outcome = yield* runDeploy(
            request(newCert.material, {
              previousKey: oldCert.material.key,
              previousChain: oldCert.material.chain,
            }),
          )
          assert.strictEqual(outcome._tag, "RolledBack")
          if (outcome._tag !== "RolledBack") return
          assert.strictEqual(outcome.rollbackSource, "caller-key")
          assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
          assert.deepStrictEqual(vault.latest(NAME)?.material.chain, oldCert.material.chain)
        }),
      ),
  )

  it.effect(
    "a reused key whose renewal came without a chain, and no secrets/get: RollbackFailed, not a chainless restore",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* servedWrongWithoutSecrets
          const renewed = issue({ seed: "renewed", issuer: ca, key: oldCert.key, withChain: false })
          const outcome = yield* runDeploy(request(renewed.material))
          assert.strictEqual(outcome._tag, "RollbackFailed")
          assert.match(outcome.reason, /no chain came with the key/)
          // The vault still serves the failed forward version; no chainless copy of the old one was written.
          assert.strictEqual(vault.versions(NAME).filter((v) => v.x5t === oldCert.x5t).length, 1)
        }),
      ),
  )
})

describe("reconcile after a rollback", () => {
  it.effect(
    "a retry whose ambiguous import did nothing is Failed: the rolled-back version is not taken for ours",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* vault.seed(NAME, oldCert.material, { tags: managedTags })
          vault.script("importVersion", Fault.alter("disable"))
          assert.strictEqual((yield* runDeploy(request(newCert.material)))._tag, "RolledBack")
          yield* TestClock.adjust("30 seconds")
          const before = vault.versions(NAME).length
          vault.script("importVersion", Fault.fail("Ambiguous"))
          const outcome = yield* runDeploy(request(newCert.material))
          assert.strictEqual(vault.versions(NAME).length, before)
          assert.strictEqual(outcome._tag, "Failed", `${outcome._tag}: ${outcome.reason}`)
        }),
      ),
  )
})

describe("rollback verify", () => {
  it.effect("a rollback the vault never serves (every read stale) is RollbackFailed, not RolledBack", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* vault.seed(NAME, oldCert.material, { tags: managedTags })
        vault.script("importVersion", Fault.alter("disable"))
        // The snapshot and the forward verify read the vault; every read of the rollback's verify
        // answers what the one before it answered (the failed version).
        vault.script("getLatest", Fault.pass, Fault.pass, ...Fault.repeat(12, Fault.staleRead))
        const outcome = yield* runDeploy(request(newCert.material))
        assert.strictEqual(outcome._tag, "RollbackFailed", outcome.reason)
        assert.match(outcome.reason, /the vault still serves/)
      }),
    ),
  )
})
