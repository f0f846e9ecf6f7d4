/**
 * An outcome's words must be true of what the deploy did: "nothing changed" only when nothing did
 * (not after a recovery), "recovered" only after one, "adopted" only for a certificate kvdeploy did
 * not manage. A mutation run showed the suite did not notice when these were swapped.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Fault, InMemoryVaultHandle, issue, makeAuthority } from "../src/testing/index.js"
import { expectTag, fresh, NAME, request, runDeploy, seedManaged, target } from "./fixtures.js"

const ca = makeAuthority("outcome-wording")
const oldCert = issue({ seed: "old", issuer: ca })
const newCert = issue({ seed: "new", issuer: ca })
const recover = target({ on_soft_deleted: "recover" })

describe("an import the vault refuses", () => {
  it.effect("with no recovery before it: nothing changed", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.fail("Rejected"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Failed")
        assert.match(o.reason, /^the import was refused and nothing changed: /)
        assert.isUndefined(o.recovered)
        assert.strictEqual(vault.versions(NAME).length, 1)
      }),
    ),
  )

  it.effect("after this deploy recovered the certificate: no version written, and it is served again", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        yield* vault.softDelete(NAME)
        // The first import meets the soft-deleted name (409); the one after the recovery is refused.
        vault.script("importVersion", Fault.pass, Fault.fail("Rejected"))
        const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Failed")
        assert.strictEqual(o.recovered, "recovered")
        assert.match(
          o.reason,
          /^the import was refused and no version was written \(the soft-deleted certificate was recovered first and is served again\): /,
        )
        assert.notInclude(o.reason, "nothing changed")
        assert.isFalse(vault.isSoftDeleted(NAME))
        assert.strictEqual(vault.versions(NAME).length, 1)
      }),
    ),
  )
})

describe("a deploy of the certificate the vault serves", () => {
  it.effect("served all along: the vault already serves it", () =>
    fresh(
      Effect.gen(function* () {
        yield* seedManaged(newCert.material)
        const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Skipped")
        assert.strictEqual(o.reason, "the vault already serves this certificate")
        assert.isUndefined(o.recovered)
      }),
    ),
  )

  it.effect("soft-deleted, then recovered by this deploy: the recovered certificate is this one", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(newCert.material)
        yield* vault.softDelete(NAME)
        const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Skipped")
        assert.strictEqual(o.recovered, "recovered")
        assert.strictEqual(
          o.reason,
          "the recovered certificate is this certificate: the vault serves it again, no version was written",
        )
        assert.isFalse(vault.isSoftDeleted(NAME))
      }),
    ),
  )
})

describe("adopted", () => {
  for (const adopt of [false, true])
    it.effect(`not claimed over a version kvdeploy manages (adopt ${adopt})`, () =>
      fresh(
        Effect.gen(function* () {
          yield* seedManaged(oldCert.material)
          const o = expectTag(yield* runDeploy(request(newCert.material, { adopt })), "Succeeded")
          assert.notStrictEqual(o.adopted, true)
          assert.isFalse(o.decisions.some((d) => d.startsWith("ownership: adopting")))
        }),
      ),
    )
})
