/**
 * `force`: import even when the vault serves this certificate already (its leaf, enabled, with
 * kvdeploy's tags), which idempotency would skip: the served version may hold the leaf with another
 * chain. Ownership is judged as always. Against the in-memory vault, with the synthetic codec.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { exitCodeOf, judgeExistingVersion } from "../src/index.js"
import { InMemoryVaultHandle, issue, makeAuthority } from "../src/testing/index.js"
import {
  expectTag,
  fresh,
  judgedTags,
  judgedVersion,
  managedTags,
  NAME,
  request,
  runDeploy,
  seedManaged,
} from "./fixtures.js"

const ca = makeAuthority("force")
const cert = issue({ seed: "force", issuer: ca })
/** The same leaf and key, without the chain (a deploy that was given no --chain). */
const leafAlone = { ...cert.material, chain: [] }

const tags = judgedTags
const version = judgedVersion

describe("judgeExistingVersion with force", () => {
  it("a version served in place is replaced; without force (or with adopt alone) it is in place", () => {
    const inPlace = version({})
    assert.deepStrictEqual(judgeExistingVersion(inPlace, "same", tags, { force: true }), {
      _tag: "Replace",
      adopting: false,
    })
    for (const options of [{}, { force: false }, { adopt: true }, undefined, false, true])
      assert.strictEqual(judgeExistingVersion(inPlace, "same", tags, options)._tag, "InPlace")
  })

  it("ownership is judged as always: another writer's certificate is refused unless adopted", () => {
    const foreign = version({ tags: { owner: "someone" } })
    assert.strictEqual(judgeExistingVersion(foreign, "same", tags, { force: true })._tag, "NotManaged")
    assert.deepStrictEqual(judgeExistingVersion(foreign, "same", tags, { force: true, adopt: true }), {
      _tag: "Replace",
      adopting: true,
    })
  })
})

describe("deploy with force", () => {
  it.effect(
    "the vault serves the leaf without its chain: Skipped without force; with it, a new version holding the chain, verified",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const served = yield* seedManaged(leafAlone)
          const skipped = expectTag(yield* runDeploy(request(cert.material)), "Skipped")
          assert.strictEqual(skipped.versionId, served.versionId)
          assert.strictEqual(vault.versions(NAME).length, 1)

          const o = expectTag(yield* runDeploy(request(cert.material, { force: true })), "Succeeded")
          assert.notStrictEqual(o.versionId, served.versionId)
          assert.strictEqual(o.previous?.versionId, served.versionId)
          assert.strictEqual(o.newX5t, cert.x5t)
          assert.strictEqual(exitCodeOf(o), 0)
          const latest = vault.latest(NAME)
          assert.strictEqual(latest?.versionId, o.versionId)
          assert.deepStrictEqual(latest?.tags, managedTags)
          // The new version's backing secret holds the chain the served one lacked.
          assert.strictEqual(latest?.material.chain.length, 1)
          assert.deepStrictEqual(latest?.material.chain[0], cert.material.chain[0])
          assert.strictEqual(vault.versions(NAME).length, 2)
        }),
      ),
  )

  it.effect(
    "force does not take over another writer's certificate: Rejected (not_managed), nothing written",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* vault.seed(NAME, leafAlone, { tags: { owner: "someone" } })
          const o = expectTag(yield* runDeploy(request(cert.material, { force: true })), "Rejected")
          assert.deepStrictEqual(
            o.problems.map((p) => p.reason),
            ["not_managed"],
          )
          assert.strictEqual(vault.versions(NAME).length, 1)
        }),
      ),
  )
})
