/**
 * A soft-deleted certificate whose owner cannot be read, deployed without adopt (on_soft_deleted:
 * recover): left deleted, Failed at step `soft-deleted`, with the why and the fix an operator acts
 * on and the error's facts. Each case here was left unchecked by the suite: a mutation run (Stryker)
 * changed the code it covers and the suite still passed.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import {
  type DeletedCertificate,
  type DeployOutcome,
  type DeployRequest,
  Vault,
  type VaultError,
  VaultForbidden,
  type VaultNotFound,
} from "../src/index.js"
import { Fault, InMemoryVaultHandle, issue, makeAuthority } from "../src/testing/index.js"
import { CERT_ID, expectTag, fresh, NAME, runDeploy, target } from "./fixtures.js"

const ca = makeAuthority("soft-deleted-unknown-owner")
const oldCert = issue({ seed: "old", issuer: ca })
const newCert = issue({ seed: "new", issuer: ca })

/** A deploy request without options (as a caller may make it), on_soft_deleted: recover. */
const plainRequest: DeployRequest = {
  target: target({ on_soft_deleted: "recover" }),
  material: newCert.material,
  certificateId: CERT_ID,
}

/**
 * Another tool's certificate, soft-deleted, and a deploy of the new certificate whose `getDeleted`
 * is answered by `answer` (the vault's own answer, passed in).
 */
const deployOverDeleted = (
  answer: (
    real: Effect.Effect<DeletedCertificate, VaultNotFound | VaultError>,
  ) => Effect.Effect<DeletedCertificate, VaultNotFound | VaultError>,
) =>
  Effect.gen(function* () {
    const vault = yield* InMemoryVaultHandle
    const port = yield* Vault
    yield* vault.seed(NAME, oldCert.material, { tags: { owner: "someone-else" } })
    yield* vault.softDelete(NAME)
    const o = expectTag(
      yield* runDeploy(plainRequest).pipe(
        Effect.provideService(Vault, { ...port, getDeleted: (name) => answer(port.getDeleted(name)) }),
      ),
      "Failed",
    )
    // Left deleted: nothing recovered, nothing written.
    assert.strictEqual(o.step, "soft-deleted")
    assert.isTrue(vault.isSoftDeleted(NAME))
    assert.isUndefined(o.recovered)
    assert.isFalse(o.adopted)
    assert.strictEqual(vault.calls().byOperation.recoverDeleted, undefined)
    assert.strictEqual(vault.versions(NAME).length, 1)
    return o
  })

const fixOf = (o: DeployOutcome) => /To fix: (.*?); or deploy with adopt/.exec(o.reason)?.[1]

describe("a soft-deleted certificate whose owner cannot be read, without adopt", () => {
  it.effect(
    "the vault's answer does not say which version it holds: the why, deploy again, no error facts",
    () =>
      fresh(
        Effect.gen(function* () {
          const o = yield* deployOverDeleted((real) => Effect.map(real, ({ latest: _, ...rest }) => rest))
          assert.strictEqual(o.error, "VaultConflictSoftDeleted")
          assert.include(o.reason, "did not say which version it holds")
          assert.strictEqual(fixOf(o), "deploy again")
          assert.isUndefined(o.refusal)
          assert.isUndefined(o.unsent)
          assert.include(
            o.decisions,
            "ownership: the soft-deleted certificate's owner could not be read; left deleted",
          )
        }),
      ),
  )

  it.effect(
    "the vault then finds no deleted certificate (404): someone else may be recovering or purging it",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          vault.script("getDeleted", Fault.fail("NotFound"))
          const o = yield* deployOverDeleted((real) => real)
          assert.strictEqual(o.error, "VaultNotFound")
          assert.include(o.reason, "found no deleted certificate of the name")
          assert.strictEqual(fixOf(o), "deploy again")
          assert.include(
            o.decisions,
            "ownership: the soft-deleted certificate's owner could not be read (VaultNotFound); left deleted",
          )
        }),
      ),
  )

  for (const refusal of [undefined, "permission"] as const)
    it.effect(
      `the read refused for want of a grant (refusal ${refusal}): grant the read of deleted certificates`,
      () =>
        fresh(
          Effect.gen(function* () {
            const o = yield* deployOverDeleted(() =>
              Effect.fail(
                new VaultForbidden({
                  operation: "getDeleted",
                  detail: "the caller is not authorized",
                  ...(refusal === undefined ? {} : { refusal }),
                }),
              ),
            )
            assert.strictEqual(o.error, "VaultForbidden")
            assert.strictEqual(o.refusal, refusal)
            assert.include(o.reason, "the deleted certificate could not be read (")
            assert.include(o.reason, "the caller is not authorized")
            assert.match(fixOf(o) ?? "", /^grant the identity the read of deleted certificates/)
          }),
        ),
    )

  it.effect(
    "the read refused for another reason (a firewall, no token): the access to fix, not a grant; the refusal and unsent kept",
    () =>
      fresh(
        Effect.gen(function* () {
          const o = yield* deployOverDeleted(() =>
            Effect.fail(
              new VaultForbidden({
                operation: "getDeleted",
                detail: "no token could be had",
                refusal: "token",
                unsent: true,
              }),
            ),
          )
          assert.strictEqual(o.error, "VaultForbidden")
          assert.strictEqual(o.refusal, "token")
          assert.isTrue(o.unsent)
          assert.include(o.reason, "the deleted certificate could not be read (")
          assert.match(fixOf(o) ?? "", /^fix the vault access the read was refused for/)
        }),
      ),
  )
})
