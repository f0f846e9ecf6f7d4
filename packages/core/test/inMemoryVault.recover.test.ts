/**
 * The in-memory vault's `recoverDeleted` answers as the azure-kv adapter over Key Vault's SDK:
 * the SDK reads the certificate before it recovers one, so a certificate the vault serves already
 * (another writer recovered it, or a certificate made since) is answered with no recovery sent.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Vault } from "../src/index.js"
import { Fault, InMemoryVaultHandle, issue, makeAuthority } from "../src/testing/index.js"
import { fresh } from "./fixtures.js"

const ca = makeAuthority("recover")
const cert = issue({ seed: "recover-1", issuer: ca })

describe("InMemoryVault recoverDeleted", () => {
  it.effect("a soft-deleted certificate is recovered: its latest version, the recovery sent", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const port = yield* Vault
        const seeded = yield* vault.seed("app", cert.material)
        yield* vault.softDelete("app")
        const recovered = yield* port.recoverDeleted("app")
        assert.strictEqual(recovered.version.versionId, seeded.versionId)
        assert.isTrue(recovered.sent)
        assert.isFalse(vault.isSoftDeleted("app"))
      }),
    ),
  )

  it.effect(
    "recovered by another writer just before (ForeignRecover): what is served, no recovery sent",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const port = yield* Vault
          const seeded = yield* vault.seed("app", cert.material)
          yield* vault.softDelete("app")
          vault.script("recoverDeleted", Fault.foreignRecover)
          const recovered = yield* port.recoverDeleted("app")
          assert.strictEqual(recovered.version.versionId, seeded.versionId)
          assert.isFalse(recovered.sent)
          assert.isFalse(vault.isSoftDeleted("app"))
          // A name served all along answers the same way; one neither served nor deleted is not found.
          assert.isFalse((yield* port.recoverDeleted("app")).sent)
          const missing = yield* Effect.flip(port.recoverDeleted("never-held"))
          assert.strictEqual(missing._tag, "VaultNotFound")
          assert.deepStrictEqual(
            vault.callLog().map((c) => c.outcome),
            ["ok", "ok", "VaultNotFound"],
          )
        }),
      ),
  )

  it.effect(
    "recovered by another writer, the recover POST sent before that showed (foreignRecoverUnshown): 404, and the recovery counted as the other writer's",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const port = yield* Vault
          const seeded = yield* vault.seed("app", cert.material)
          yield* vault.softDelete("app")
          vault.script("recoverDeleted", Fault.foreignRecoverUnshown)
          const answer = yield* Effect.flip(port.recoverDeleted("app"))
          assert.strictEqual(answer._tag, "VaultNotFound")
          assert.strictEqual(vault.latest("app")?.versionId, seeded.versionId)
          assert.deepStrictEqual(vault.recoveries(), { byPort: 0, foreign: 1 })
          // Logged apart from a scripted (false) 404.
          assert.deepStrictEqual(
            vault.callLog().map((c) => c.outcome),
            ["NotFoundAfterForeignRecover"],
          )
          // The port's own recovery is counted as the port's; one of a name served recovers nothing.
          yield* vault.softDelete("app")
          assert.isTrue((yield* port.recoverDeleted("app")).sent)
          assert.isFalse((yield* port.recoverDeleted("app")).sent)
          assert.deepStrictEqual(vault.recoveries(), { byPort: 1, foreign: 1 })
        }),
      ),
  )
})
