/**
 * The deploy contract, read as a specification: one test per outcome and per
 * step's failure mode, against the in-memory vault (a behaving fake) with the
 * synthetic codec. Time is the TestClock: retries take no real time.
 */
import { assert, describe, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import { TestClock } from "effect/testing"
import {
  CERTIFICATE_ID_TAG,
  type CertificateMaterial,
  DeployPolicy,
  exitCodeOf,
  type ImportRequest,
  MANAGED_BY_TAG,
  ROLLBACK_OF_TAG,
  Vault,
  VaultForbidden,
  VaultNotFound,
  VaultUnavailable,
  validateOnly,
} from "../src/index.js"
import {
  AuditRecords,
  Fault,
  InMemoryVaultHandle,
  issue,
  MetricsRecorder,
  makeAuthority,
  makeKey,
  withWrongKey,
} from "../src/testing/index.js"
import {
  CERT_ID,
  expectTag,
  fresh,
  lostImportAndItsDuplicate,
  managedTags,
  NAME,
  request,
  runDeploy,
  seedManaged,
  target,
  toJson,
} from "./fixtures.js"

const ca = makeAuthority("test")
const oldCert = issue({ seed: "old", issuer: ca })
const newCert = issue({ seed: "new", issuer: ca })
/** A renewal that reuses the old certificate's key. */
const renewedSameKey = issue({ seed: "renewed", issuer: ca, key: oldCert.key })

describe("Succeeded", () => {
  it.effect("first deploy: one version imported and proved, in 3 vault calls", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Succeeded")
        const latest = vault.latest(NAME)
        assert.strictEqual(latest?.versionId, o.versionId)
        assert.strictEqual(latest?.x5t, newCert.x5t)
        assert.deepStrictEqual(latest?.tags, managedTags)
        assert.strictEqual(o.previous, undefined)
        assert.deepStrictEqual(vault.calls(), { total: 3, byOperation: { getLatest: 2, importVersion: 1 } })
        assert.strictEqual(o.vaultCalls, 3)
        assert.strictEqual(exitCodeOf(o), 0)
      }),
    ),
  )

  it.effect("over an existing version: snapshot, import, verify = 3 vault calls; the old version stays", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const old = yield* seedManaged(oldCert.material)
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Succeeded")
        assert.strictEqual(vault.calls().total, 3)
        assert.deepStrictEqual(o.previous, {
          versionId: old.versionId,
          x5t: old.x5t,
          serialHex: old.serialHex,
        })
        assert.strictEqual(o.newX5t, newCert.x5t)
        assert.deepStrictEqual(
          vault.versions(NAME).map((v) => [v.x5t, v.enabled]),
          [
            [oldCert.x5t, true],
            [newCert.x5t, true],
          ],
        )
      }),
    ),
  )

  it.effect("adopt: takes over an unmanaged certificate and records the adoption", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const audit = yield* AuditRecords
        yield* vault.seed(NAME, oldCert.material, { tags: { owner: "someone-else" } })
        const o = expectTag(yield* runDeploy(request(newCert.material, { adopt: true })), "Succeeded")
        assert.isTrue(o.adopted)
        assert.isTrue(audit.all()[0]?.adopted)
        assert.strictEqual(vault.latest(NAME)?.tags[MANAGED_BY_TAG], "certctl")
      }),
    ),
  )

  it.effect(
    "adopt, refused before the import or by the vault: nothing was taken over, and the outcome says so",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* vault.seed(NAME, oldCert.material, { tags: { owner: "someone-else" } })
          const refused = expectTag(
            yield* runDeploy(
              request(newCert.material, {
                adopt: true,
                previousKey: Redacted.make(makeKey("unrelated").bytes),
              }),
            ),
            "Rejected",
          )
          assert.isFalse(refused.adopted)
          assert.include(refused.decisions, `ownership: adopting ${vault.latest(NAME)?.versionId}`)
          vault.script("importVersion", Fault.fail("Rejected"))
          assert.isFalse(
            expectTag(yield* runDeploy(request(newCert.material, { adopt: true })), "Failed").adopted,
          )
          // An import whose answer was lost may have landed: adopted.
          vault.script("importVersion", Fault.afterWrite)
          assert.isTrue(
            yield* runDeploy(request(newCert.material, { adopt: true })).pipe(Effect.map((o) => o.adopted)),
          )
          assert.strictEqual(vault.latest(NAME)?.tags[MANAGED_BY_TAG], "certctl")
        }),
      ),
  )

  it.effect("a read that fails fewer times than the retry budget is retried with backoff", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("getLatest", Fault.pass, Fault.fail("Throttled"), Fault.fail("Unavailable"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Succeeded")
        assert.strictEqual(vault.calls().byOperation.getLatest, 4)
        assert.isAtLeast(o.timings.durationMs, 250 + 500) // exponential backoff on the TestClock
      }),
    ),
  )

  it.effect(
    "a lagging replica that catches up: the stale answer is read again, not taken for a foreign write",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("getLatest", Fault.pass, Fault.staleRead, Fault.staleRead)
          expectTag(yield* runDeploy(request(newCert.material)), "Succeeded")
          assert.strictEqual(vault.calls().byOperation.getLatest, 4)
        }),
      ),
  )

  it.effect("ambiguous import that took effect: reconciled from the version list, never re-imported", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.afterWrite)
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Succeeded")
        assert.deepStrictEqual(vault.calls().byOperation, { getLatest: 2, importVersion: 1, listVersions: 1 })
        assert.strictEqual(vault.versions(NAME).length, 2)
        assert.strictEqual(vault.latest(NAME)?.versionId, o.versionId)
        // Found by its certificate and tags: the record does not claim more than that shows.
        assert.include(
          o.reason,
          `${o.versionId}, found in the version list after the import's answer was lost (this deploy's import, or an identical one by another deployer of this certificate)`,
        )
      }),
    ),
  )

  it.effect(
    "ambiguous import in the snapshot's second, listed before it: found by creation second, not list order",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(issue({ seed: "older", issuer: ca }).material)
          const snapshot = yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.afterWrite)
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Succeeded")
          const ours = vault.latest(NAME)
          assert.strictEqual(ours?.versionId, o.versionId)
          assert.strictEqual(ours?.x5t, newCert.x5t)
          assert.strictEqual(vault.versions(NAME).length, 3)
          // The case this is about: same second, and the vault lists the snapshot before our version.
          assert.strictEqual(ours?.createdAt.getTime(), snapshot.createdAt.getTime())
          const listed = (yield* Effect.flatMap(Effect.service(Vault), (v) => v.listVersions(NAME))).map(
            (v) => v.versionId,
          )
          assert.isBelow(listed.indexOf(snapshot.versionId), listed.indexOf(o.versionId))
        }),
      ),
  )

  it.effect("soft-deleted name with on_soft_deleted=recover: recovered, then deployed over", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const old = yield* seedManaged(oldCert.material)
        yield* vault.softDelete(NAME)
        const o = expectTag(
          yield* runDeploy(request(newCert.material, {}, target({ on_soft_deleted: "recover" }))),
          "Succeeded",
        )
        assert.isFalse(vault.isSoftDeleted(NAME))
        assert.strictEqual(o.previous?.versionId, old.versionId)
        assert.strictEqual(vault.latest(NAME)?.x5t, newCert.x5t)
      }),
    ),
  )
})

describe("Skipped", () => {
  it.effect(
    "the vault already serves this certificate with kvdeploy's tags: 1 vault call, nothing written",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const metrics = yield* MetricsRecorder
          const old = yield* seedManaged(newCert.material)
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Skipped")
          assert.strictEqual(o.versionId, old.versionId)
          assert.deepStrictEqual(vault.calls(), { total: 1, byOperation: { getLatest: 1 } })
          assert.strictEqual(vault.versions(NAME).length, 1)
          assert.strictEqual(metrics.count("idempotentSkip"), 1)
          assert.strictEqual(exitCodeOf(o), 0)
        }),
      ),
  )

  it.effect("same certificate but kvdeploy's tags missing: re-imported with the tags (not skipped)", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* vault.seed(NAME, newCert.material, { tags: { [MANAGED_BY_TAG]: "certctl" } })
        expectTag(yield* runDeploy(request(newCert.material)), "Succeeded")
        assert.strictEqual(vault.latest(NAME)?.tags[CERTIFICATE_ID_TAG], CERT_ID)
      }),
    ),
  )
})

describe("Skipped only when the served version is enabled", () => {
  it.effect(
    "same certificate with kvdeploy's tags, but its version disabled: re-imported (not skipped)",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const old = yield* vault.seed(NAME, newCert.material, { tags: managedTags, enabled: false })
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Succeeded")
          assert.notStrictEqual(o.versionId, old.versionId)
          assert.strictEqual(vault.latest(NAME)?.versionId, o.versionId)
          assert.strictEqual(vault.latest(NAME)?.enabled, true)
          assert.strictEqual(vault.versions(NAME).length, 2)
          // Said, since a version is often disabled on purpose (a compromised key).
          assert.deepStrictEqual(
            o.warnings?.map((w) => [w.field, w.message]),
            [
              [
                "leaf",
                `is the certificate of the vault's latest version (${old.versionId}), which is disabled: a deploy imports it again as a new, enabled version, which the vault serves`,
              ],
            ],
          )
          assert.include(o.warnings?.[0]?.fix ?? "", "stop deploying this certificate")
        }),
      ),
  )
})

describe("Rejected (preflight: no vault I/O, every problem listed)", () => {
  it.effect("a key that does not match the leaf", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const o = expectTag(yield* runDeploy(request(withWrongKey(newCert))), "Rejected")
        assert.deepStrictEqual(
          o.problems.map((p) => p.reason),
          ["key_mismatch"],
        )
        assert.strictEqual(vault.calls().total, 0)
        assert.strictEqual(exitCodeOf(o), 2)
      }),
    ),
  )

  it.effect(
    "expired, not yet valid, unsupported key, too many tags and a bad name are all reported at once",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const expired = issue({ seed: "expired", issuer: ca, notAfter: new Date(-1), keySize: 1024 })
          const tags: Record<string, string> = {}
          for (let i = 0; i < 13; i++) tags[`t${i}`] = "v"
          const config = { ...target(), certificateName: "bad name!", tags }
          const o = expectTag(yield* runDeploy(request(expired.material, {}, config)), "Rejected")
          assert.deepStrictEqual(
            new Set(o.problems.map((p) => p.reason)),
            new Set(["certificate_name", "tags", "expired", "unsupported_key"]),
          )
          for (const p of o.problems) assert.isAbove(p.fix.length, 0)
          const future = issue({ seed: "future", issuer: ca, notBefore: new Date(86_400_000) })
          const o2 = expectTag(yield* runDeploy(request(future.material)), "Rejected")
          assert.deepStrictEqual(
            o2.problems.map((p) => p.reason),
            ["not_yet_valid"],
          )
          assert.strictEqual(vault.calls().total, 0)
        }),
      ),
  )

  it.effect(
    "an RSA leaf signed by an EC issuer (Key Vault's KeySizeNotSupported), an EC leaf or an RSA issuer passing",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const ecCa = makeAuthority("ec-ca", "CN=EC CA", { keyType: "EC" })
          const rsaUnderEc = issue({ seed: "rsa-under-ec", issuer: ecCa, keyType: "RSA", keySize: 3072 })
          const o = expectTag(yield* runDeploy(request(rsaUnderEc.material)), "Rejected")
          assert.deepStrictEqual(
            o.problems.map((p) => [p.field, p.reason]),
            [["leaf", "unsupported_key"]],
          )
          const problem = o.problems[0]
          assert.include(problem?.message, "signed with ECDSA")
          assert.include(problem?.message, "CN=EC CA")
          assert.include(problem?.message, "Unsupported key size (3072)")
          assert.include(problem?.fix, "EC key")
          assert.strictEqual(vault.calls().total, 0)
          // The same EC issuer's EC leaf, and an RSA issuer's RSA leaf, deploy.
          const ecUnderEc = issue({ seed: "ec-under-ec", issuer: ecCa, keyType: "EC" })
          expectTag(yield* runDeploy(request(ecUnderEc.material)), "Succeeded")
          expectTag(yield* runDeploy(request(newCert.material)), "Succeeded")
        }),
      ),
  )

  it.effect("a chain with an unrelated certificate", () =>
    fresh(
      Effect.gen(function* () {
        const other = makeAuthority("other")
        const material = { ...newCert.material, chain: [ca.certificate, other.certificate] }
        const o = expectTag(yield* runDeploy(request(material)), "Rejected")
        assert.deepStrictEqual(
          o.problems.map((p) => [p.field, p.reason]),
          [["chain[1]", "chain_invalid"]],
        )
      }),
    ),
  )

  it.effect("material that cannot be read at all", () =>
    fresh(
      Effect.gen(function* () {
        const material = { leaf: new Uint8Array([1, 2, 3]), chain: [], key: newCert.material.key }
        const o = expectTag(yield* runDeploy(request(material)), "Rejected")
        assert.deepStrictEqual(
          o.problems.map((p) => [p.field, p.reason]),
          [["leaf", "material_invalid"]],
        )
        assert.strictEqual(o.newX5t, undefined)
      }),
    ),
  )

  it.effect("a PFX over Key Vault's size limit", () =>
    fresh(
      Effect.gen(function* () {
        const o = expectTag(
          yield* runDeploy(request(newCert.material)).pipe(
            Effect.provideService(DeployPolicy, {
              readRetryBase: "250 millis",
              readRetryFactor: 2,
              readRetries: 4,
              maxPfxBytes: 100,
            }),
          ),
          "Rejected",
        )
        assert.deepStrictEqual(
          o.problems.map((p) => p.reason),
          ["pfx_too_large"],
        )
      }),
    ),
  )

  it.effect(
    "ownership: an existing certificate kvdeploy does not manage is not overwritten (1 vault call)",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const theirs = yield* vault.seed(NAME, oldCert.material, { tags: { owner: "someone-else" } })
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Rejected")
          assert.deepStrictEqual(
            o.problems.map((p) => p.reason),
            ["not_managed"],
          )
          // The version is named, and a takeover is not offered before finding out whose it is.
          assert.include(o.problems[0]?.message ?? "", `latest version (${theirs.versionId}) carries no`)
          assert.match(
            o.problems[0]?.fix ?? "",
            /^find out who wrote the latest version first .*to take it over .*adopt/,
          )
          assert.strictEqual(vault.versions(NAME).length, 1)
          assert.strictEqual(vault.calls().total, 1)
        }),
      ),
  )
})

describe("Failed (the vault is unchanged)", () => {
  it.effect("snapshot: a 403 is not 'first deploy'; the deploy aborts", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        vault.script("getLatest", Fault.fail("Forbidden"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Failed")
        assert.strictEqual(o.step, "snapshot")
        assert.strictEqual(o.error, "VaultForbidden")
        assert.strictEqual(vault.versions(NAME).length, 0)
        assert.strictEqual(vault.calls().total, 1)
        assert.strictEqual(exitCodeOf(o), 1)
      }),
    ),
  )

  it.effect("a call whose request never reached the vault (no token) is not counted as a vault call", () =>
    fresh(
      Effect.gen(function* () {
        const port = yield* Vault
        const vault = yield* InMemoryVaultHandle
        const failing = (error: VaultForbidden | VaultUnavailable) =>
          runDeploy(request(newCert.material)).pipe(
            Effect.provideService(Vault, { ...port, getLatest: () => Effect.fail(error) }),
          )
        const credential = expectTag(
          yield* failing(
            new VaultForbidden({
              operation: "getLatest",
              detail: "no token",
              refusal: "credential",
              unsent: true,
            }),
          ),
          "Failed",
        )
        assert.strictEqual(credential.vaultCalls, 0)
        // An identity provider that is down is retried as any unavailable read: none of the
        // attempts reached the vault. The same failure from the vault itself counts every attempt.
        const outage = expectTag(
          yield* failing(new VaultUnavailable({ operation: "getLatest", detail: "no token", unsent: true })),
          "Failed",
        )
        assert.strictEqual(outage.vaultCalls, 0)
        const down = expectTag(
          yield* failing(new VaultUnavailable({ operation: "getLatest", detail: "503" })),
          "Failed",
        )
        assert.strictEqual(down.vaultCalls, 5) // 1 + 4 retries
        // The outcome says so, for the remedy: no token (later, or the credential), not the vault.
        assert.deepStrictEqual([credential.unsent, outage.unsent, "unsent" in down], [true, true, false])
        // An import for which no token could be had, after a snapshot that was sent: one call.
        const importing = expectTag(
          yield* runDeploy(request(newCert.material)).pipe(
            Effect.provideService(Vault, {
              ...port,
              importVersion: () =>
                Effect.fail(
                  new VaultUnavailable({ operation: "importVersion", detail: "no token", unsent: true }),
                ),
            }),
          ),
          "Failed",
        )
        assert.deepStrictEqual([importing.step, importing.vaultCalls, importing.unsent], ["import", 1, true])
        assert.strictEqual(vault.versions(NAME).length, 0)
      }),
    ),
  )

  it.effect("snapshot: throttling that outlasts the retries aborts (never 'no previous')", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("getLatest", ...Fault.repeat(5, Fault.fail("Throttled")))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Failed")
        assert.strictEqual(o.error, "VaultThrottled")
        assert.strictEqual(vault.calls().byOperation.getLatest, 5) // 1 + 4 retries
        assert.strictEqual(vault.versions(NAME).length, 1)
      }),
    ),
  )

  it.effect("import: a definite refusal", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.fail("Rejected"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Failed")
        assert.strictEqual(o.step, "import")
        // Key Vault's own error code, so a caller can tell what to do about it.
        assert.strictEqual(o.error, "VaultRequestRejected")
        assert.strictEqual(o.code, "BadParameter")
        assert.strictEqual(vault.versions(NAME).length, 1)
        assert.strictEqual(vault.calls().byOperation.importVersion, 1)
      }),
    ),
  )

  it.effect("import: ambiguous, and the version list shows it did not take effect", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.fail("Ambiguous"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Failed")
        assert.strictEqual(o.step, "reconcile")
        assert.strictEqual(vault.calls().byOperation.importVersion, 1)
        assert.strictEqual(vault.versions(NAME).length, 1)
      }),
    ),
  )

  it.effect(
    "import with adopt: ambiguous, and the version list shows it did not take effect: nothing adopted",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* vault.seed(NAME, oldCert.material, { tags: { owner: "someone-else" } })
          vault.script("importVersion", Fault.fail("Ambiguous"))
          const o = expectTag(yield* runDeploy(request(newCert.material, { adopt: true })), "Failed")
          assert.strictEqual(o.step, "reconcile")
          // The certificate is still the other tool's, untouched: the outcome and its audit record say
          // nothing was taken over.
          assert.strictEqual(vault.latest(NAME)?.tags[MANAGED_BY_TAG], undefined)
          assert.strictEqual(vault.versions(NAME).length, 1)
          assert.isFalse(o.adopted, o.reason)
          assert.isFalse((yield* AuditRecords).all().at(-1)?.adopted)
        }),
      ),
  )

  it.effect("soft-deleted name with on_soft_deleted=fail: says how to fix it", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        yield* vault.softDelete(NAME)
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Failed")
        assert.strictEqual(o.step, "soft-deleted")
        assert.match(o.reason, /on_soft_deleted: recover/)
        assert.isTrue(vault.isSoftDeleted(NAME))
        assert.deepStrictEqual(vault.calls().byOperation, { getLatest: 1, importVersion: 1, getDeleted: 1 })
      }),
    ),
  )
})

describe("soft-deleted names: ownership before recovery, and what a recovery changed", () => {
  const recover = target({ on_soft_deleted: "recover" })

  for (const refused of ["Forbidden", "Unavailable"] as const)
    it.effect(
      `the soft-deleted certificate's owner cannot be read (getDeleted ${refused}): left deleted, Failed saying why and the fix`,
      () =>
        fresh(
          Effect.gen(function* () {
            const vault = yield* InMemoryVaultHandle
            yield* vault.seed(NAME, oldCert.material, { tags: { owner: "someone-else" } })
            yield* vault.softDelete(NAME)
            vault.script("getDeleted", Fault.fail(refused))
            const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Failed")
            assert.strictEqual(o.step, "soft-deleted")
            assert.strictEqual(o.error, refused === "Forbidden" ? "VaultForbidden" : "VaultUnavailable")
            // Another tool's certificate is not un-deleted on a guess.
            assert.isTrue(vault.isSoftDeleted(NAME))
            assert.strictEqual(o.recovered, undefined)
            assert.deepStrictEqual(vault.calls().byOperation, {
              getLatest: 1,
              importVersion: 1,
              getDeleted: 1,
            })
            assert.include(o.reason, "whether kvdeploy wrote it is unknown")
            assert.include(o.reason, "it was left deleted and nothing was written")
            assert.include(
              o.reason,
              refused === "Forbidden"
                ? "grant the identity the read of deleted certificates"
                : "deploy again once the vault answers",
            )
            assert.include(o.reason, "or deploy with adopt to recover it whoever wrote it")
            // With adopt, whose it is does not matter: recovered, judged after the recovery, taken over.
            vault.script("getDeleted", Fault.fail(refused))
            const adopted = expectTag(
              yield* runDeploy(request(newCert.material, { adopt: true }, recover)),
              "Succeeded",
            )
            assert.strictEqual(adopted.recovered, "recovered")
            assert.isTrue(adopted.adopted)
          }),
        ),
    )

  it.effect("a soft-deleted certificate kvdeploy did not write is left deleted: Rejected, no recovery", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* vault.seed(NAME, oldCert.material, { tags: { owner: "someone-else" } })
        yield* vault.softDelete(NAME)
        const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Rejected")
        assert.match(o.reason, /soft-deleted and was not written by kvdeploy; |left deleted/)
        assert.strictEqual(o.problems[0]?.reason, "not_managed")
        assert.isTrue(vault.isSoftDeleted(NAME))
        assert.deepStrictEqual(vault.calls().byOperation, { getLatest: 1, importVersion: 1, getDeleted: 1 })
        assert.strictEqual(o.recovered, undefined)
        // With adopt it is recovered and taken over.
        const adopted = expectTag(
          yield* runDeploy(request(newCert.material, { adopt: true }, recover)),
          "Succeeded",
        )
        assert.strictEqual(adopted.recovered, "recovered")
        assert.isTrue(adopted.adopted)
        assert.strictEqual(vault.latest(NAME)?.x5t, newCert.x5t)
      }),
    ),
  )

  it.effect("recovered, then deleted again before the import: Failed, not saying the vault serves it", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        yield* vault.softDelete(NAME)
        // The first import is refused (soft-deleted); the second, after the recovery, meets another delete.
        vault.script("importVersion", Fault.pass, Fault.foreignDelete("before"))
        const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Failed")
        assert.strictEqual(o.recovered, "recovered")
        assert.strictEqual(o.error, "VaultConflictSoftDeleted")
        assert.include(o.reason, "recovered first, then deleted again before the import")
        assert.notInclude(o.reason, "served again")
        assert.isTrue(vault.isSoftDeleted(NAME))
      }),
    ),
  )

  it.effect(
    "a recovery whose answer was lost is read back: served again, deployed over, its recovery not claimed",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const old = yield* seedManaged(oldCert.material)
          yield* vault.softDelete(NAME)
          vault.script("recoverDeleted", Fault.afterWrite)
          const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Succeeded")
          // Another writer's recovery coming first would look the same (this one then found nothing).
          assert.strictEqual(o.recovered, "unknown")
          assert.isTrue(
            o.decisions.includes(
              `recover: answer lost; served again as ${old.versionId} (this recovery or another writer's)`,
            ),
          )
          assert.isFalse(o.decisions.some((d) => d.startsWith("recovered: ")))
          assert.strictEqual(o.previous?.versionId, old.versionId)
          assert.strictEqual(vault.latest(NAME)?.x5t, newCert.x5t)
          assert.strictEqual(vault.calls().byOperation.recoverDeleted, 1)
        }),
      ),
  )

  it.effect(
    "deleted after the snapshot, its recovery's answer lost, a lagging read showing it served: Failed at the import, claiming no recovery nor a delete after one",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const old = yield* seedManaged(oldCert.material)
          // Another writer deletes it after the snapshot: the import meets the delete (409).
          vault.script("importVersion", Fault.foreignDelete("before"))
          vault.script("recoverDeleted", Fault.fail("Ambiguous"))
          // The snapshot's read, then a replica still showing what it answered.
          vault.script("getLatest", Fault.pass, Fault.staleRead)
          const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Failed")
          assert.strictEqual(o.step, "import")
          assert.strictEqual(o.recovered, "unknown")
          assert.isTrue(vault.isSoftDeleted(NAME))
          assert.strictEqual(vault.recoveries().byPort + vault.recoveries().foreign, 0)
          assert.isTrue(
            o.decisions.includes(
              `recover: answer lost; served again as ${old.versionId} (this recovery or another writer's)`,
            ),
          )
          assert.include(
            o.reason,
            "this deploy's recovery was sent and its answer lost; a read after it showed the certificate served (brought back by that recovery or another writer's, or a lagging replica's answer), and the import found the name deleted",
          )
          assert.notInclude(o.reason, "served again, then deleted")
        }),
      ),
  )

  it.effect(
    "a recovery whose answer was lost and that is not served: Failed, says it may still complete",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          yield* vault.softDelete(NAME)
          vault.script("recoverDeleted", Fault.fail("Ambiguous"))
          const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Failed")
          assert.strictEqual(o.recovered, "unknown")
          assert.match(o.reason, /may still be recovering/)
          // Why its outcome is unknown (the adapter's words: an answer lost, or not served in time).
          assert.match(o.reason, /the outcome of its recovery is unknown \(.+\); it is still not served/)
          assert.strictEqual(vault.calls().byOperation.importVersion, 1) // the first, refused with 409
          // The audit record says so too (the agent logs it).
          assert.strictEqual((yield* AuditRecords).all().at(-1)?.recovered, "unknown")
        }),
      ),
  )

  it.effect(
    "a recovery whose answer was lost, then a vault that cannot be read: says it could not find out",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          yield* vault.softDelete(NAME)
          vault.script("recoverDeleted", Fault.afterWrite)
          vault.script("getLatest", Fault.pass, Fault.fail("UnavailableRetried"))
          const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Failed")
          assert.strictEqual(o.recovered, "unknown")
          assert.match(o.reason, /could not be read to find out/)
          assert.notMatch(o.reason, /not served/)
          assert.isFalse(vault.isSoftDeleted(NAME)) // it was recovered
        }),
      ),
  )

  it.effect("an import refused after a recovery does not say nothing changed", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        yield* vault.softDelete(NAME)
        vault.script("importVersion", Fault.pass, Fault.fail("Rejected"))
        const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Failed")
        assert.strictEqual(o.recovered, "recovered")
        assert.notMatch(o.reason, /nothing changed/)
        assert.match(o.reason, /recovered first and is served again/)
        assert.isFalse(vault.isSoftDeleted(NAME))
      }),
    ),
  )

  it.effect(
    "a caller's previous key that cannot restore what a recovery would bring back: Rejected, left deleted",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const old = yield* seedManaged(oldCert.material)
          yield* vault.softDelete(NAME)
          const o = expectTag(
            yield* runDeploy(
              request(newCert.material, { previousKey: Redacted.make(makeKey("unrelated").bytes) }, recover),
            ),
            "Rejected",
          )
          assert.deepStrictEqual(
            o.problems.map((p) => [p.field, p.reason]),
            [["previousKey", "previous_key"]],
          )
          assert.match(
            o.reason,
            /cannot restore the version a recovery of the soft-deleted certificate would bring back/,
          )
          assert.include(o.reason, old.versionId)
          assert.match(o.reason, /it was left deleted/)
          assert.isTrue(vault.isSoftDeleted(NAME))
          assert.strictEqual(vault.calls().byOperation.recoverDeleted ?? 0, 0)
          assert.strictEqual(o.recovered, undefined)
          // The right key recovers and deploys.
          const right = expectTag(
            yield* runDeploy(request(newCert.material, { previousKey: oldCert.material.key }, recover)),
            "Succeeded",
          )
          assert.strictEqual(right.recovered, "recovered")
          assert.strictEqual(vault.latest(NAME)?.x5t, newCert.x5t)
        }),
      ),
  )

  // When the vault does not say what a recovery brings back (then only with adopt is it recovered),
  // or says it without the certificate, the caller's previous key is judged after the recovery (as
  // ownership is), on the version recovered.
  const unjudgedBefore: ReadonlyArray<{
    readonly name: string
    readonly adopt?: boolean
    readonly arrange: (
      vault: (typeof InMemoryVaultHandle)["Service"],
      port: (typeof Vault)["Service"],
    ) => (typeof Vault)["Service"]
  }> = [
    {
      // Without adopt it is not recovered at all (whose it is is unknown: tested above).
      name: "with adopt, a vault that does not say what a recovery brings back",
      adopt: true,
      arrange: (vault, port) => {
        vault.script("getDeleted", Fault.fail("Unavailable"))
        return port
      },
    },
    {
      name: "a deleted version returned without its certificate (its x5t and tags only)",
      arrange: (_vault, port) => ({
        ...port,
        getDeleted: (name) =>
          Effect.map(port.getDeleted(name), (d) => {
            if (d.latest === undefined) return d
            const { cer: _cer, ...latest } = d.latest
            return { ...d, latest }
          }),
      }),
    },
  ]
  for (const c of unjudgedBefore)
    it.effect(`${c.name}: the previous key is judged after the recovery`, () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          yield* vault.softDelete(NAME)
          const port = c.arrange(vault, yield* Vault)
          const o = expectTag(
            yield* runDeploy(
              request(
                newCert.material,
                {
                  previousKey: Redacted.make(makeKey("unrelated").bytes),
                  ...(c.adopt ? { adopt: true } : {}),
                },
                recover,
              ),
            ).pipe(Effect.provideService(Vault, port)),
            "Rejected",
          )
          assert.strictEqual(o.problems[0]?.field, "previousKey")
          assert.match(o.reason, /cannot restore the version the vault serves now/)
          // Recovered, and nothing imported over it.
          assert.strictEqual(o.recovered, "recovered")
          assert.isFalse(vault.isSoftDeleted(NAME))
          assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
          assert.strictEqual(vault.calls().byOperation.importVersion, 1) // the first, refused with 409
        }),
      ),
    )
})

describe("a recovery that brings back another version than the one judged before it", () => {
  const other = issue({ seed: "recovered-other", issuer: ca })
  const recover = target({ on_soft_deleted: "recover" })
  it.effect("the caller's previous key is judged again, on the version recovered: Rejected", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        yield* vault.softDelete(NAME)
        // Another writer (kvdeploy's tags) imports as soon as the recovery took effect: the recovery's
        // read serves its version, not the one the deleted certificate's answer named.
        const port = yield* Vault
        const racing: (typeof Vault)["Service"] = {
          ...port,
          recoverDeleted: (name) =>
            port.recoverDeleted(name).pipe(
              Effect.tap(() => vault.seed(NAME, other.material, { tags: managedTags })),
              Effect.flatMap((recovered) =>
                Effect.map(port.getLatest(name), (version) => ({ ...recovered, version })),
              ),
            ),
        }
        const o = expectTag(
          yield* runDeploy(request(newCert.material, { previousKey: oldCert.material.key }, recover)).pipe(
            Effect.provideService(Vault, racing),
          ),
          "Rejected",
        )
        assert.strictEqual(o.problems[0]?.field, "previousKey")
        assert.match(o.reason, /cannot restore the version the vault serves now/)
        assert.strictEqual(o.recovered, "recovered")
        assert.strictEqual(vault.latest(NAME)?.x5t, other.x5t)
        assert.strictEqual(vault.calls().byOperation.importVersion, 1) // the first, refused with 409
      }),
    ),
  )
})

describe("the vault serves the certificate already when this deploy goes to recover it (another writer recovers it first)", () => {
  // Key Vault's SDK reads the certificate before it recovers one: served already, it sends no
  // recovery. The deploy goes on over what is served, and does not say it recovered it, nor who did.
  const recover = target({ on_soft_deleted: "recover" })
  const alreadyServed =
    "the vault served the certificate already when this deploy went to recover it (another writer recovered it, or the name holds a certificate made since), so this deploy sent no recovery"
  /**
   * The port, with another writer's recovery of the name (then `after`, that writer's next step)
   * just before each of this deploy's recoveries.
   */
  const othersRecoveryFirst = (
    port: (typeof Vault)["Service"],
    vault: (typeof InMemoryVaultHandle)["Service"],
    after: (name: string) => Effect.Effect<unknown> = () => Effect.void,
  ): (typeof Vault)["Service"] => ({
    ...port,
    recoverDeleted: (name) =>
      Effect.sync(() => vault.recover(name)).pipe(
        Effect.andThen(after(name)),
        Effect.andThen(port.recoverDeleted(name)),
      ),
  })
  /**
   * `served` deployed by kvdeploy and soft-deleted, then newCert deployed with recover, as over Key
   * Vault when another writer's recovery had not shown to the SDK's first read: the SDK sent the
   * recover POST, which found nothing deleted (404); the other recovery shows next.
   */
  const afterRecovery404 = (served: CertificateMaterial) =>
    Effect.gen(function* () {
      const vault = yield* InMemoryVaultHandle
      const old = yield* seedManaged(served)
      yield* vault.softDelete(NAME)
      const port = yield* Vault
      vault.script("recoverDeleted", Fault.fail("NotFound"))
      const outcome = yield* runDeploy(request(newCert.material, {}, recover)).pipe(
        Effect.provideService(Vault, othersRecoveryFirst(port, vault)),
      )
      return { old, outcome }
    })
  /** `material` deployed by kvdeploy, soft-deleted, and recovered by another writer just before this deploy's recovery. */
  const recoveredByAnother = (material: CertificateMaterial) =>
    Effect.gen(function* () {
      const vault = yield* InMemoryVaultHandle
      const served = yield* seedManaged(material)
      yield* vault.softDelete(NAME)
      vault.script("recoverDeleted", Fault.foreignRecover)
      return served
    })

  it.effect(
    "deployed over what is served; the outcome says it was served already, not that this deploy recovered it",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const old = yield* recoveredByAnother(oldCert.material)
          const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Succeeded")
          assert.strictEqual(o.recovered, "already-served")
          assert.strictEqual(o.previous?.versionId, old.versionId)
          assert.strictEqual(vault.latest(NAME)?.x5t, newCert.x5t)
          assert.include(o.decisions, `recover: served already as ${old.versionId}; no recovery sent`)
          assert.notInclude(o.decisions, `recovered: ${old.versionId}`)
          // The audit record (which the agent logs) says the same.
          assert.strictEqual((yield* AuditRecords).all().at(-1)?.recovered, "already-served")
        }),
      ),
  )

  it.effect("the certificate served already is this certificate: Skipped, saying no recovery was sent", () =>
    fresh(
      Effect.gen(function* () {
        const same = yield* recoveredByAnother(newCert.material)
        const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Skipped")
        assert.strictEqual(o.recovered, "already-served")
        assert.strictEqual(o.versionId, same.versionId)
        assert.strictEqual(
          o.reason,
          `${alreadyServed}; the served certificate is this certificate, no version was written`,
        )
      }),
    ),
  )

  it.effect(
    "an import refused after the certificate was found served already: Failed, not saying this deploy recovered it",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* recoveredByAnother(oldCert.material)
          vault.script("importVersion", Fault.pass, Fault.fail("Rejected"))
          const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Failed")
          assert.strictEqual(o.recovered, "already-served")
          assert.include(o.reason, `${alreadyServed}; it is served)`)
          assert.notInclude(o.reason, "was recovered first")
          assert.notMatch(o.reason, /nothing changed/)
          assert.isFalse(vault.isSoftDeleted(NAME))
        }),
      ),
  )

  it.effect("served already, then deleted before the import: Failed, saying so", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* recoveredByAnother(oldCert.material)
        vault.script("importVersion", Fault.pass, Fault.foreignDelete("before"))
        const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Failed")
        assert.strictEqual(o.recovered, "already-served")
        assert.strictEqual(o.error, "VaultConflictSoftDeleted")
        assert.include(o.reason, `${alreadyServed}; it was then deleted before the import`)
        assert.notInclude(o.reason, "was recovered first")
        assert.isTrue(vault.isSoftDeleted(NAME))
      }),
    ),
  )

  it.effect(
    "what the other writer serves after its recovery is judged: another tool's certificate is refused",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          yield* vault.softDelete(NAME)
          const foreign = issue({ seed: "recovered-then-foreign", issuer: ca })
          const port = yield* Vault
          // The other writer recovers it and imports a certificate of its own, before this deploy's
          // recovery is sent.
          const racing = othersRecoveryFirst(port, vault, (name) =>
            vault.seed(name, foreign.material, { tags: { owner: "someone-else" } }),
          )
          const o = expectTag(
            yield* runDeploy(request(newCert.material, {}, recover)).pipe(
              Effect.provideService(Vault, racing),
            ),
            "Rejected",
          )
          assert.strictEqual(o.recovered, "already-served")
          assert.strictEqual(o.problems[0]?.reason, "not_managed")
          assert.include(
            o.decisions,
            `recover: served already as ${vault.latest(NAME)?.versionId} (not the deleted version); no recovery sent`,
          )
          assert.strictEqual(vault.latest(NAME)?.x5t, foreign.x5t)
          assert.strictEqual(vault.calls().byOperation.importVersion, 1) // the first, refused with 409
        }),
      ),
  )

  it.effect(
    "an import that landed after another writer's recovery, then reads lagging behind that recovery: Unverified, not Failed",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const old = yield* recoveredByAnother(oldCert.material)
          // The second import lands and its answer is lost; the version list and the deleted
          // certificate still show the delete the other writer's recovery undid.
          vault.script("importVersion", Fault.pass, Fault.afterWrite)
          vault.script("getDeleted", Fault.pass, Fault.staleRead)
          vault.script("listVersions", Fault.staleRead)
          const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Unverified")
          assert.strictEqual(o.recovered, "already-served")
          assert.include(o.reason, `its latest version then was ${old.versionId}`)
          assert.include(
            o.reason,
            "the vault served it already when this deploy went to recover it, before the import",
          )
          assert.notInclude(o.reason, "wrote nothing")
          assert.deepStrictEqual(
            vault
              .versions(NAME)
              .filter((v) => v.writer === "deploy")
              .map((v) => v.x5t),
            [newCert.x5t],
          )
        }),
      ),
  )

  it.effect(
    "the name serves another version than the deleted one (a certificate made since): the reason says so",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const deleted = yield* seedManaged(oldCert.material)
          yield* vault.softDelete(NAME)
          const port = yield* Vault
          // Someone recovers it and deploys this certificate as a new version, before this deploy's
          // recovery is sent: the vault serves this certificate, not the deleted version.
          const racing = othersRecoveryFirst(port, vault, (name) =>
            vault.seed(name, newCert.material, { tags: managedTags }),
          )
          const o = expectTag(
            yield* runDeploy(request(newCert.material, {}, recover)).pipe(
              Effect.provideService(Vault, racing),
            ),
            "Skipped",
          )
          assert.strictEqual(o.recovered, "already-served")
          assert.notStrictEqual(o.versionId, deleted.versionId)
          assert.strictEqual(
            o.reason,
            `${alreadyServed}; it serves another version than the deleted one; the served certificate is this certificate, no version was written`,
          )
        }),
      ),
  )

  it.effect(
    "the recovery finds no deleted certificate (another writer's recovery not shown to its first read), and the vault then serves it: deployed over it, no recovery claimed",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const { old, outcome } = yield* afterRecovery404(oldCert.material)
          const o = expectTag(outcome, "Succeeded")
          assert.strictEqual(o.recovered, "already-served")
          assert.strictEqual(o.previous?.versionId, old.versionId)
          assert.strictEqual(vault.latest(NAME)?.x5t, newCert.x5t)
          assert.includeMembers(
            [...o.decisions],
            [
              "recover: no deleted certificate of the name found; reading the latest",
              `recover: found no deleted certificate; served as ${old.versionId}; recovered nothing`,
            ],
          )
          // Its recovery was sent (and found nothing): never "no recovery sent".
          assert.isFalse(o.decisions.some((d) => d.includes("no recovery sent")))
          assert.strictEqual((yield* AuditRecords).all().at(-1)?.recovered, "already-served")
        }),
      ),
  )

  it.effect(
    "the recovery finds no deleted certificate and the vault then serves this very certificate: Skipped, saying its recovery found none, not that it sent none",
    () =>
      fresh(
        Effect.gen(function* () {
          const o = expectTag((yield* afterRecovery404(newCert.material)).outcome, "Skipped")
          assert.strictEqual(o.recovered, "already-served")
          assert.include(
            o.reason,
            "this deploy's recovery found no deleted certificate of the name and the vault serves it again",
          )
          assert.include(o.reason, "so this deploy recovered nothing")
          assert.notInclude(o.reason, "sent no recovery")
        }),
      ),
  )

  it.effect(
    "the recovery finds no deleted certificate and the read after it is refused: Failed with the read's error, whose advice applies",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          yield* vault.softDelete(NAME)
          vault.script("recoverDeleted", Fault.fail("NotFound"))
          // The snapshot read answers as usual (not found: soft-deleted); the one after the recovery is refused.
          vault.script("getLatest", Fault.pass, Fault.fail("Forbidden"))
          const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Failed")
          assert.strictEqual(o.step, "soft-deleted")
          assert.strictEqual(o.error, "VaultForbidden")
          assert.include(o.reason, "whether it is served could not be read")
        }),
      ),
  )

  it.effect(
    "the recovery finds no deleted certificate and the vault serves none (recovered or purged by someone else meanwhile): Failed saying so, not 'could not be recovered'",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          yield* vault.softDelete(NAME)
          vault.script("recoverDeleted", Fault.fail("NotFound"))
          const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Failed")
          assert.strictEqual(o.step, "soft-deleted")
          assert.strictEqual(o.error, "VaultNotFound")
          assert.strictEqual(exitCodeOf(o), 1)
          assert.isUndefined(o.recovered)
          assert.strictEqual(
            o.reason,
            `${NAME} was soft-deleted, and the vault found no deleted certificate of the name when this deploy went to recover it, so someone else recovered or purged it meanwhile (a recovery may take a few seconds to show); it is not served either; nothing was written: deploy again`,
          )
          assert.notInclude(o.reason, "could not be recovered")
          // Nothing written: the first import (refused as soft-deleted) is the only one.
          assert.strictEqual(vault.calls().byOperation.importVersion, 1)
          assert.isTrue(vault.isSoftDeleted(NAME))
        }),
      ),
  )
})

describe("one retry loop: reads the adapter already retried are not retried again", () => {
  it.effect("the snapshot read unavailable after the adapter's retries: Failed at once, 1 read", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("getLatest", ...Fault.repeat(5, Fault.fail("UnavailableRetried")))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Failed")
        assert.strictEqual(o.step, "snapshot")
        assert.deepStrictEqual(vault.calls().byOperation, { getLatest: 1 })
      }),
    ),
  )

  it.effect("the verify read unavailable after the adapter's retries: Unverified after 1 verify read", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("getLatest", Fault.pass, ...Fault.repeat(5, Fault.fail("UnavailableRetried")))
        expectTag(yield* runDeploy(request(newCert.material)), "Unverified")
        assert.deepStrictEqual(vault.calls().byOperation, { getLatest: 2, importVersion: 1 })
      }),
    ),
  )

  it.effect("without the mark, the deploy program retries the read itself", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("getLatest", Fault.fail("Unavailable"), Fault.pass)
        expectTag(yield* runDeploy(request(newCert.material)), "Succeeded")
        assert.deepStrictEqual(vault.calls().byOperation, { getLatest: 3, importVersion: 1 })
      }),
    ),
  )
})

describe("Failed: soft-deleted name that cannot be recovered", () => {
  it.effect(
    "carries what a VaultForbidden says was refused: a token or a permission, each its own remedy",
    () =>
      fresh(
        Effect.gen(function* () {
          const port = yield* Vault
          const refusing = (
            operation: "getLatest" | "importVersion",
            refusal: "token" | "permission" | undefined,
          ): (typeof Vault)["Service"] => {
            const error = new VaultForbidden({
              operation,
              detail: "refused",
              ...(refusal === undefined ? {} : { refusal }),
            })
            return operation === "getLatest"
              ? { ...port, getLatest: () => Effect.fail(error) }
              : { ...port, importVersion: () => Effect.fail(error) }
          }
          const run = (service: (typeof Vault)["Service"]) =>
            runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, service))
          const token = expectTag(yield* run(refusing("getLatest", "token")), "Failed")
          assert.deepStrictEqual(
            [token.step, token.error, token.refusal],
            ["snapshot", "VaultForbidden", "token"],
          )
          const grant = expectTag(yield* run(refusing("importVersion", "permission")), "Failed")
          assert.deepStrictEqual([grant.step, grant.refusal], ["import", "permission"])
          // The reason says what failed in words; the port's names are for metrics and scripts.
          assert.include(token.reason, "reading the certificate: forbidden: refused")
          assert.include(grant.reason, "importing a version: forbidden: refused")
          assert.notMatch(`${token.reason} ${grant.reason}`, /getLatest|importVersion/)
          const unsaid = expectTag(yield* run(refusing("importVersion", undefined)), "Failed")
          assert.isFalse("refusal" in unsaid)
        }),
      ),
  )
  it.effect("on_soft_deleted=recover, and the recovery is refused", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        yield* vault.softDelete(NAME)
        vault.script("recoverDeleted", Fault.fail("Forbidden"))
        const o = expectTag(
          yield* runDeploy(request(newCert.material, {}, target({ on_soft_deleted: "recover" }))),
          "Failed",
        )
        assert.strictEqual(o.step, "soft-deleted")
        assert.strictEqual(o.error, "VaultForbidden")
        assert.isTrue(vault.isSoftDeleted(NAME))
      }),
    ),
  )
})

describe("Unverified (imported, cannot be read back: no rollback)", () => {
  it.effect("the vault cannot be read after the import", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("getLatest", Fault.pass, ...Array.from({ length: 5 }, () => Fault.fail("Unavailable")))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Unverified")
        assert.strictEqual(o.versionId, vault.latest(NAME)?.versionId)
        assert.strictEqual(vault.versions(NAME).length, 2)
        assert.strictEqual(exitCodeOf(o), 4)
      }),
    ),
  )

  it.effect("the vault keeps answering the previous version (a lagging replica): no rollback, no claim", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const old = yield* seedManaged(oldCert.material)
        vault.script("getLatest", Fault.pass, ...Array.from({ length: 5 }, () => Fault.staleRead))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Unverified")
        assert.match(o.reason, new RegExp(`still serves the older ${old.versionId}`))
        assert.strictEqual(vault.versions(NAME).length, 2)
        assert.deepStrictEqual(vault.calls().byOperation, { getLatest: 6, importVersion: 1 })
      }),
    ),
  )

  // A 404 to the verify's read is read again as a stale answer is (a replica that has not seen the
  // import yet), on the first read and on a later one alike; a 404 to the end says why.
  for (const [when, faults, reads] of [
    ["on its first read", [Fault.fail("NotFound")], 3],
    ["after a stale read", [Fault.staleRead, Fault.fail("NotFound")], 4],
  ] as const)
    it.effect(`a verify read answered 404 ${when} is read again: Succeeded once the import shows`, () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("getLatest", Fault.pass, ...faults)
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Succeeded")
          assert.strictEqual(o.versionId, vault.latest(NAME)?.versionId)
          assert.deepStrictEqual(vault.calls().byOperation, { getLatest: reads, importVersion: 1 })
        }),
      ),
    )

  it.effect(
    "every verify read answered 404: Unverified, saying the certificate may have been deleted since",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("getLatest", Fault.pass, ...Array.from({ length: 5 }, () => Fault.fail("NotFound")))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Unverified")
          assert.include(
            o.reason,
            "the vault says the certificate does not exist: it may have been deleted since the import",
          )
          assert.strictEqual(vault.versions(NAME).length, 2)
          assert.deepStrictEqual(vault.calls().byOperation, { getLatest: 6, importVersion: 1 })
        }),
      ),
  )

  it.effect("an ambiguous import whose outcome cannot be established", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.afterWrite)
        vault.script("listVersions", ...Array.from({ length: 5 }, () => Fault.fail("Unavailable")))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Unverified")
        assert.strictEqual(o.versionId, undefined)
        assert.strictEqual(o.postVerifyFailure, "unreadable")
        assert.match(o.reason, /may have taken effect/)
        assert.match(o.reason, /could not be read to find out/)
      }),
    ),
  )

  it.effect("an ambiguous import, and a version list that says the certificate does not exist", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.fail("Ambiguous"))
        vault.script("listVersions", Fault.fail("NotFound"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Unverified")
        assert.strictEqual(o.versionId, undefined)
        // The list was read: not "could not be read"; what a 404 there can mean, and what to do.
        assert.notMatch(o.reason, /could not be read/)
        assert.include(o.reason, "the vault's version list says the certificate does not exist")
        // No soft-deleted certificate either (getDeleted 404): a delete or a recovery under way.
        assert.include(o.reason, "being deleted or being recovered")
        assert.strictEqual(vault.versions(NAME).filter((v) => v.writer === "deploy").length, 0)
        assert.deepStrictEqual(vault.calls().byOperation, {
          getLatest: 1,
          importVersion: 1,
          listVersions: 1,
          getDeleted: 1,
        })
      }),
    ),
  )
})

describe("an ambiguous import into a certificate another writer deletes: the soft-deleted certificate read", () => {
  const recover = target({ on_soft_deleted: "recover" })

  it.effect(
    "deleted after the snapshot, while it still served the snapshot: the import wrote nothing (Failed), the remedy named",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const old = yield* seedManaged(oldCert.material)
          // The snapshot is read, then the certificate is deleted; the import is refused, its answer lost.
          vault.script("getLatest", Fault.foreignDelete("after"))
          vault.script("importVersion", Fault.fail("Ambiguous"))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Failed")
          assert.strictEqual(o.step, "reconcile")
          assert.strictEqual(o.error, "VaultConflictSoftDeleted")
          assert.strictEqual(exitCodeOf(o), 1)
          assert.include(o.reason, `while its latest version was still ${old.versionId}`)
          assert.include(o.reason, "wrote nothing")
          assert.include(o.reason, "set on_soft_deleted: recover to recover it and deploy, or purge it first")
          assert.isTrue(vault.isSoftDeleted(NAME))
          assert.strictEqual(vault.versions(NAME).filter((v) => v.writer === "deploy").length, 0)
          assert.deepStrictEqual(vault.calls().byOperation, {
            getLatest: 1,
            importVersion: 1,
            listVersions: 1,
            getDeleted: 1,
          })
        }),
      ),
  )

  it.effect(
    "the same with on_soft_deleted: recover: not recovered by this deploy (its import was sent), by the next one",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("getLatest", Fault.foreignDelete("after"))
          vault.script("importVersion", Fault.fail("Ambiguous"))
          const o = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Failed")
          assert.strictEqual(o.error, "VaultConflictSoftDeleted")
          assert.include(o.reason, "the next deploy recovers it (on_soft_deleted: recover) and imports")
          assert.strictEqual(o.recovered, undefined)
          assert.isTrue(vault.isSoftDeleted(NAME))
          assert.strictEqual(vault.calls().byOperation.recoverDeleted, undefined)
          const next = expectTag(yield* runDeploy(request(newCert.material, {}, recover)), "Succeeded")
          assert.strictEqual(next.recovered, "recovered")
          assert.strictEqual(vault.latest(NAME)?.x5t, newCert.x5t)
          assert.strictEqual(vault.versions(NAME).filter((v) => v.writer === "deploy").length, 1)
        }),
      ),
  )

  it.effect(
    "deleted after the import committed: Unverified, naming the deleted certificate's latest as this one",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.afterWrite)
          vault.script("listVersions", Fault.foreignDelete("before"))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Unverified")
          const ours = vault.versions(NAME).filter((v) => v.writer === "deploy")
          assert.strictEqual(ours.length, 1)
          assert.strictEqual(o.versionId, undefined)
          assert.include(
            o.reason,
            `its latest version then was ${ours[0]?.versionId}, which holds this certificate`,
          )
          assert.strictEqual(exitCodeOf(o), 4)
        }),
      ),
  )

  /**
   * A first deploy (the snapshot finds nothing) into a name soft-deleted `gap` before it, with
   * `latest` as the deleted certificate's latest version; the import's answer is lost (the vault
   * refused it: the name is deleted).
   */
  const firstDeployIntoDeleted = (
    gap: Duration.Input,
    options: {
      readonly latest?: "other" | "this"
      readonly withoutAnswerTime?: boolean
      /** What the deleted-certificate read leaves out, as a vault that does not say would. */
      readonly deletedWithout?: "deletedAt" | "latest"
      readonly onSoftDeleted?: "fail" | "recover"
    } = {},
  ) =>
    Effect.gen(function* () {
      const vault = yield* InMemoryVaultHandle
      const held =
        options.latest === "this"
          ? yield* vault.seed(NAME, newCert.material, { tags: managedTags })
          : yield* seedManaged(oldCert.material)
      yield* vault.softDelete(NAME)
      yield* TestClock.adjust(gap)
      vault.script("importVersion", Fault.fail("Ambiguous"))
      const port = yield* Vault
      // An adapter that does not say when the vault answered (no Date header).
      const left = options.deletedWithout
      const adapted: typeof port = {
        ...port,
        getLatest: (name) =>
          options.withoutAnswerTime === true
            ? Effect.mapError(port.getLatest(name), (e) =>
                e._tag === "VaultNotFound"
                  ? new VaultNotFound({ operation: e.operation, detail: e.detail })
                  : e,
              )
            : port.getLatest(name),
        getDeleted: (name) =>
          Effect.map(port.getDeleted(name), (d) =>
            left === undefined
              ? d
              : (Object.fromEntries(Object.entries(d).filter(([k]) => k !== left)) as typeof d),
          ),
      }
      const outcome = yield* runDeploy(
        request(newCert.material, {}, target({ on_soft_deleted: options.onSoftDeleted ?? "fail" })),
      ).pipe(Effect.provideService(Vault, adapted))
      return { held, outcome, ours: vault.versions(NAME).filter((v) => v.writer === "deploy") }
    })

  it.effect(
    "a first deploy into a name deleted in an earlier second than the vault's 404 to its first read: Failed, nothing written",
    () =>
      fresh(
        Effect.gen(function* () {
          const { outcome, ours } = yield* firstDeployIntoDeleted("2 seconds")
          const o = expectTag(outcome, "Failed")
          assert.strictEqual(o.previous, undefined)
          assert.strictEqual(o.step, "reconcile")
          assert.strictEqual(o.error, "VaultConflictSoftDeleted")
          assert.include(o.reason, "before this deploy's first read found no certificate there")
          assert.include(o.reason, "wrote nothing")
          assert.include(o.reason, "set on_soft_deleted: recover")
          assert.isFalse(o.adopted)
          assert.strictEqual(ours.length, 0)
          assert.include(
            o.decisions,
            "reconcile: soft-deleted before the snapshot read found nothing; the import wrote nothing",
          )
        }),
      ),
  )

  it.effect("the same with on_soft_deleted: recover: the next deploy recovers it", () =>
    fresh(
      Effect.gen(function* () {
        const { outcome } = yield* firstDeployIntoDeleted("2 seconds", { onSoftDeleted: "recover" })
        const o = expectTag(outcome, "Failed")
        assert.include(o.reason, "the next deploy recovers it (on_soft_deleted: recover) and imports")
      }),
    ),
  )

  it.effect(
    "a first deploy into a name deleted in the same second as the vault's 404: Unverified (the delete may have come after the import)",
    () =>
      fresh(
        Effect.gen(function* () {
          const { held, outcome } = yield* firstDeployIntoDeleted("0 millis")
          const o = expectTag(outcome, "Unverified")
          assert.strictEqual(o.previous, undefined)
          assert.include(o.reason, "not clearly before the vault answered this deploy's first read")
          assert.include(
            o.reason,
            `its latest version then was ${held.versionId}, which holds another certificate`,
          )
          assert.notInclude(o.reason, "wrote nothing")
        }),
      ),
  )

  it.effect(
    "a first deploy into a name deleted earlier with this certificate latest: Unverified (a delete just after the import would show the same)",
    () =>
      fresh(
        Effect.gen(function* () {
          const { held, outcome } = yield* firstDeployIntoDeleted("2 seconds", { latest: "this" })
          const o = expectTag(outcome, "Unverified")
          assert.include(
            o.reason,
            `its latest version then was ${held.versionId}, which holds this certificate`,
          )
          assert.notInclude(o.reason, "wrote nothing")
        }),
      ),
  )

  it.effect(
    "a first deploy into a name deleted one second before the vault's 404: Unverified (a second apart may be the same moment)",
    () =>
      fresh(
        Effect.gen(function* () {
          const { outcome } = yield* firstDeployIntoDeleted("1 second")
          const o = expectTag(outcome, "Unverified")
          assert.include(o.reason, "not clearly before the vault answered this deploy's first read")
        }),
      ),
  )

  it.effect(
    "a first deploy into a deleted name whose delete time or latest version the vault does not give: Unverified",
    () =>
      fresh(
        Effect.gen(function* () {
          const noTime = expectTag(
            (yield* firstDeployIntoDeleted("1 hour", { deletedWithout: "deletedAt" })).outcome,
            "Unverified",
          )
          assert.include(noTime.reason, "deleted at a time the vault did not give")
          assert.notInclude(noTime.reason, "wrote nothing")
        }),
      ).pipe(
        Effect.andThen(
          fresh(
            Effect.gen(function* () {
              const noLatest = expectTag(
                (yield* firstDeployIntoDeleted("1 hour", { deletedWithout: "latest" })).outcome,
                "Unverified",
              )
              assert.include(noLatest.reason, "the vault does not say which version was latest then")
            }),
          ),
        ),
      ),
  )

  it.effect(
    "a first deploy into a deleted name, the adapter not saying when the vault answered: Unverified, and the reason says why",
    () =>
      fresh(
        Effect.gen(function* () {
          const { outcome } = yield* firstDeployIntoDeleted("2 seconds", { withoutAnswerTime: true })
          const o = expectTag(outcome, "Unverified")
          assert.include(o.reason, "gave no time to tell whether the delete came before it")
          assert.notInclude(o.reason, "wrote nothing")
        }),
      ),
  )

  it.effect(
    "after this deploy's own recovery, a delete shown again is no proof (a read lagging behind the recovery shows the same): Unverified",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const old = yield* seedManaged(oldCert.material)
          yield* vault.softDelete(NAME)
          vault.script("importVersion", Fault.pass, Fault.fail("Ambiguous"))
          vault.script("listVersions", Fault.foreignDelete("before"))
          const o = expectTag(
            yield* runDeploy(
              request(newCert.material, { adopt: true }, target({ on_soft_deleted: "recover" })),
            ),
            "Unverified",
          )
          assert.strictEqual(o.recovered, "recovered")
          assert.strictEqual(o.previous?.versionId, old.versionId)
          assert.include(
            o.reason,
            `its latest version then was ${old.versionId}, which holds another certificate`,
          )
          assert.include(o.reason, "this deploy recovered it before the import")
          assert.notInclude(o.reason, "wrote nothing")
        }),
      ),
  )

  it.effect(
    "after this deploy's own recovery, an import that landed, then reads lagging behind the recovery: Unverified, not Failed",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const old = yield* seedManaged(oldCert.material)
          yield* vault.softDelete(NAME)
          // The first import is refused (409), the recovery runs, the second import lands and its
          // answer is lost; the version list and the deleted certificate still show the delete.
          vault.script("importVersion", Fault.pass, Fault.afterWrite)
          vault.script("getDeleted", Fault.pass, Fault.staleRead)
          vault.script("listVersions", Fault.staleRead)
          const o = expectTag(
            yield* runDeploy(request(newCert.material, {}, target({ on_soft_deleted: "recover" }))),
            "Unverified",
          )
          assert.strictEqual(o.recovered, "recovered")
          assert.include(o.reason, `its latest version then was ${old.versionId}`)
          assert.include(o.reason, "this deploy recovered it before the import")
          // The import did land: a Failed here would have been false.
          assert.deepStrictEqual(
            vault
              .versions(NAME)
              .filter((v) => v.writer === "deploy")
              .map((v) => v.x5t),
            [newCert.x5t],
          )
        }),
      ),
  )

  /**
   * A read of the served version, then the delete, then `gap` of time; the snapshot's replica still
   * answers what that read did, and the import's answer is lost.
   */
  const deletedBeforeTheDeploy = (gap: Duration.Input, answerTime: "given" | "not given" = "given") =>
    Effect.gen(function* () {
      const vault = yield* InMemoryVaultHandle
      const port = yield* Vault
      const old = yield* seedManaged(oldCert.material)
      yield* Effect.orDie(port.getLatest(NAME))
      yield* vault.softDelete(NAME)
      yield* TestClock.adjust(gap)
      vault.script("getLatest", Fault.staleRead)
      vault.script("importVersion", Fault.fail("Ambiguous"))
      // An adapter that does not say when the vault answered (no Date header read).
      const withoutAnswerTime: (typeof Vault)["Service"] = {
        ...port,
        getLatest: (name) =>
          Effect.map(port.getLatest(name), ({ answeredAtMs: _answeredAtMs, ...version }) => version),
      }
      const outcome = yield* runDeploy(request(newCert.material)).pipe(
        Effect.provideService(Vault, answerTime === "given" ? port : withoutAnswerTime),
      )
      return { old, outcome }
    })

  it.effect(
    "a delete the vault stamped before its answer to the snapshot read, which found the certificate served, is no proof (an older delete, undone, that a lagging read shows): Unverified",
    () =>
      Effect.forEach(
        ["1 minute", "10 minutes"] as const,
        (gap) =>
          fresh(
            Effect.gen(function* () {
              const { old, outcome } = yield* deletedBeforeTheDeploy(gap)
              const o = expectTag(outcome, "Unverified")
              assert.strictEqual(o.previous?.versionId, old.versionId)
              assert.include(o.reason, `its latest version then was ${old.versionId}`)
              assert.include(o.reason, "deleted before the vault answered this deploy's first read")
              assert.notInclude(o.reason, "wrote nothing")
            }),
          ),
        { discard: true },
      ),
  )

  it.effect(
    "without the snapshot's answer time: a delete stamped minutes before the deploy began is no proof, one a minute before (this machine's clock behind the vault's) still is",
    () =>
      Effect.andThen(
        fresh(
          Effect.gen(function* () {
            const { outcome } = yield* deletedBeforeTheDeploy("10 minutes", "not given")
            const o = expectTag(outcome, "Unverified")
            assert.include(o.reason, "deleted before this deploy began")
            assert.notInclude(o.reason, "wrote nothing")
          }),
        ),
        fresh(
          Effect.gen(function* () {
            const { old, outcome } = yield* deletedBeforeTheDeploy("1 minute", "not given")
            const failed = expectTag(outcome, "Failed")
            assert.strictEqual(failed.step, "reconcile")
            assert.include(failed.reason, `while its latest version was still ${old.versionId}`)
          }),
        ),
      ),
  )

  it.effect(
    "a delete minutes before the deploy, undone by another writer before the snapshot; the import lands, its answer lost, and the reads after it lag: Unverified, not 'wrote nothing'",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* TestClock.adjust("1 hour")
          yield* seedManaged(oldCert.material)
          yield* vault.softDelete(NAME)
          yield* TestClock.adjust("4 minutes")
          vault.recover(NAME)
          yield* TestClock.adjust("10 seconds")
          vault.script("importVersion", Fault.afterWrite)
          vault.script("listVersions", Fault.staleRead)
          vault.script("getDeleted", Fault.staleRead)
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Unverified")
          assert.notInclude(o.reason, "wrote nothing")
          // What the vault serves: the import landed.
          assert.strictEqual(vault.latest(NAME)?.x5t, newCert.x5t)
          assert.isFalse(vault.isSoftDeleted(NAME))
        }),
      ),
  )

  it.effect("with adopt: a lost import proven to have written nothing took nothing over", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* vault.seed(NAME, oldCert.material, { tags: { owner: "someone-else" } })
        vault.script("getLatest", Fault.foreignDelete("after"))
        vault.script("importVersion", Fault.fail("Ambiguous"))
        const o = expectTag(yield* runDeploy(request(newCert.material, { adopt: true })), "Failed")
        assert.strictEqual(o.step, "reconcile")
        assert.isFalse(o.adopted)
      }),
    ),
  )

  it.effect("the soft-deleted certificate cannot be read: Unverified, saying so", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("getLatest", Fault.foreignDelete("after"))
        vault.script("importVersion", Fault.fail("Ambiguous"))
        vault.script("getDeleted", Fault.fail("Forbidden"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Unverified")
        assert.include(o.reason, "the soft-deleted certificate could not be read to find out more")
        assert.strictEqual(o.versionId, undefined)
        assert.deepStrictEqual(
          { step: o.step, error: o.error, operation: o.operation },
          { step: "reconcile", error: "VaultForbidden", operation: "getDeleted" },
        )
      }),
    ),
  )
})

describe("Unverified: an ambiguous import that cannot be told from a version already there", () => {
  it.effect(
    "a version identical to ours predates the deploy (snapshot said 404), then another writer's is latest",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const existing = yield* seedManaged(newCert.material)
          const foreign = issue({ seed: "foreign", issuer: ca })
          vault.script("getLatest", Fault.fail("NotFound"), Fault.foreignImport(foreign.material))
          vault.script("importVersion", Fault.fail("Ambiguous"))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Unverified")
          // Not "Superseded" naming the version that was already there as ours.
          assert.strictEqual(o.versionId, undefined)
          assert.include(o.reason, existing.versionId)
          assert.strictEqual(vault.latest(NAME)?.x5t, foreign.x5t)
          assert.strictEqual(vault.versions(NAME).filter((v) => v.writer === "deploy").length, 0)
        }),
      ),
  )

  it.effect(
    "a version identical to ours from the snapshot's second, the import lost before it was written, and the vault still serves the snapshot",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          // An earlier deploy of the same certificate, then another version in the same second (the
          // snapshot): the version list cannot say which came first.
          const earlier = yield* seedManaged(newCert.material)
          const snapshot = yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.fail("Ambiguous"))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Unverified")
          // Not "imported <the earlier version>": this deploy may have imported nothing.
          assert.strictEqual(o.versionId, undefined)
          assert.notMatch(o.reason, /^imported /)
          assert.include(o.reason, "may have taken effect")
          assert.include(o.reason, earlier.versionId)
          assert.include(o.reason, `still serves the older ${snapshot.versionId}`)
          assert.strictEqual(vault.latest(NAME)?.versionId, snapshot.versionId)
          assert.strictEqual(vault.versions(NAME).filter((v) => v.writer === "deploy").length, 0)
        }),
      ),
  )
})

/** `port` with another writer's import (`seed`) made just before the deploy's second read of the latest (its verify's). */
const seededBeforeVerify = (
  port: (typeof Vault)["Service"],
  seed: () => Effect.Effect<unknown>,
): (typeof Vault)["Service"] => {
  let reads = 0
  return {
    ...port,
    getLatest: (name) =>
      ++reads === 2 ? Effect.andThen(seed(), port.getLatest(name)) : port.getLatest(name),
  }
}

describe("Superseded (a newer foreign write is not clobbered)", () => {
  it.effect("another writer imports between our import and our verify", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        const foreign = issue({ seed: "foreign", issuer: ca })
        vault.script("getLatest", Fault.pass, Fault.foreignImport(foreign.material))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Superseded")
        assert.strictEqual(o.supersededBy.x5t, foreign.x5t)
        assert.strictEqual(vault.latest(NAME)?.x5t, foreign.x5t)
        assert.strictEqual(vault.versions(NAME).length, 3)
        assert.strictEqual(exitCodeOf(o), 5)
        // From our own second: confirmed by a read that agrees before it is reported.
        assert.deepStrictEqual(vault.calls().byOperation, { getLatest: 3, importVersion: 1 })
      }),
    ),
  )

  it.effect(
    "another writer imports this same certificate with the same tags after ours (a second deployer of the same files): Succeeded, naming the served version",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("getLatest", Fault.pass, Fault.foreignImport(newCert.material, managedTags))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Succeeded")
          const served = vault.latest(NAME)
          const mine = vault.versions(NAME).find((v) => v.writer === "deploy")
          assert.strictEqual(served?.writer, "foreign")
          assert.strictEqual(o.versionId, served?.versionId)
          assert.include(o.reason, `imported it again as ${served?.versionId} after ${mine?.versionId}`)
          assert.strictEqual(exitCodeOf(o), 0)
          // Nothing rolled back, nothing more written.
          assert.strictEqual(vault.versions(NAME).length, 3)
        }),
      ),
  )

  it.effect(
    "another writer's newer version is disabled: Superseded, and the reason says a client gets none",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const port = yield* Vault
          yield* seedManaged(oldCert.material)
          const foreign = issue({ seed: "foreign", issuer: ca })
          // Just before the verify's read, another writer imports a version, disabled.
          const disabling = seededBeforeVerify(port, () =>
            vault.seed(NAME, foreign.material, { writer: "foreign", enabled: false, tags: { owner: "x" } }),
          )
          const o = expectTag(
            yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, disabling)),
            "Superseded",
          )
          assert.strictEqual(o.supersededBy.x5t, foreign.x5t)
          assert.include(
            o.reason,
            "it is disabled, so a client that reads the certificate's latest version gets none",
          )
          assert.strictEqual(exitCodeOf(o), 5)
        }),
      ),
  )

  for (const [label, tags, contentType] of [
    ["one operator tag more", { ...managedTags, owner: "team-b" }, undefined],
    ["served as PEM while this deploy writes PKCS#12", managedTags, "application/x-pem-file"],
  ] as const)
    it.effect(`the same certificate from another writer, ${label}: Superseded, not taken as ours`, () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const port = yield* Vault
          yield* seedManaged(oldCert.material)
          const racing = seededBeforeVerify(port, () =>
            vault.seed(NAME, newCert.material, {
              writer: "foreign",
              tags,
              ...(contentType === undefined ? {} : { contentType }),
            }),
          )
          const o = expectTag(
            yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, racing)),
            "Superseded",
          )
          assert.strictEqual(o.supersededBy.x5t, newCert.x5t)
        }),
      ),
    )

  it.effect("the same certificate from another writer with other tags is still Superseded", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script(
          "getLatest",
          Fault.pass,
          Fault.foreignImport(newCert.material, { ...managedTags, [CERTIFICATE_ID_TAG]: "another-id" }),
        )
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Superseded")
        assert.strictEqual(o.supersededBy.x5t, newCert.x5t)
        assert.strictEqual(exitCodeOf(o), 5)
      }),
    ),
  )

  /**
   * Another writer imports just before ours, in the same second (ours is latest), and the reads of
   * the latest for which `foreignOn(n)` holds (n counts from 1) answer the other writer's version,
   * as a lagging replica would. Answers the outcome and how many reads were made.
   */
  const deployWithForeignReads = (foreignOn: (read: number) => boolean) =>
    Effect.gen(function* () {
      const vault = yield* InMemoryVaultHandle
      const port = yield* Vault
      yield* seedManaged(oldCert.material)
      const foreign = issue({ seed: "foreign", issuer: ca })
      vault.script("importVersion", Fault.foreignImport(foreign.material, { owner: "x" }))
      let reads = 0
      const lagging: (typeof Vault)["Service"] = {
        ...port,
        getLatest: (name) =>
          foreignOn(++reads)
            ? Effect.map(port.getLatest(name), () => {
                const other = vault.versions(NAME).find((v) => v.writer === "foreign")
                if (other === undefined) throw new Error("no foreign version")
                return other
              })
            : port.getLatest(name),
      }
      const outcome = yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, lagging))
      return { outcome, reads, vault }
    })

  it.effect(
    "a lagging read shows another writer's version of our second without ours: read again, ours is served",
    () =>
      fresh(
        Effect.gen(function* () {
          // The verify's first read comes from a replica that has the other writer's import and not ours.
          const { outcome, reads, vault } = yield* deployWithForeignReads((n) => n === 2)
          assert.strictEqual(vault.latest(NAME)?.writer, "deploy")
          assert.strictEqual(outcome._tag, "Succeeded", outcome.reason)
          // The lagging read, then two that agree on ours.
          assert.strictEqual(reads, 4)
        }),
      ),
  )

  it.effect(
    "reads that keep disagreeing between ours and another writer's of our second: Unverified, no rollback",
    () =>
      fresh(
        Effect.gen(function* () {
          // From the verify on, every other read answers the other writer's version.
          const { outcome, reads, vault } = yield* deployWithForeignReads((n) => n >= 2 && n % 2 === 0)
          assert.strictEqual(outcome._tag, "Unverified", outcome.reason)
          assert.match(outcome.reason, /keep disagreeing/)
          assert.strictEqual(reads, 5)
          assert.strictEqual(vault.calls().byOperation.importVersion, 1)
        }),
      ),
  )
})

describe("Superseded only when confirmed: reads that settle on an older version", () => {
  it.effect(
    "a read shows another writer's version of our second, then two agree on the snapshot: Unverified, not Superseded",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const port = yield* Vault
          const snapshot = yield* seedManaged(oldCert.material)
          const foreign = issue({ seed: "foreign", issuer: ca })
          vault.script("importVersion", Fault.foreignImport(foreign.material, { owner: "x" }))
          let reads = 0
          // The verify's first read shows the other writer's version; the next two come from a replica
          // that has neither it nor ours.
          const lagging: (typeof Vault)["Service"] = {
            ...port,
            getLatest: (name) => {
              const n = ++reads
              const other = vault.versions(NAME).find((v) => v.writer === "foreign")
              return n === 2 && other !== undefined
                ? Effect.succeed({ ...other, tags: { ...other.tags } })
                : n === 3 || n === 4
                  ? Effect.succeed({ ...snapshot, tags: { ...snapshot.tags } })
                  : port.getLatest(name)
            },
          }
          const o = yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, lagging))
          // The vault serves ours: "another writer's version is newer than ours" would be false.
          assert.strictEqual(vault.latest(NAME)?.writer, "deploy")
          assert.strictEqual(o._tag, "Unverified", o.reason)
          assert.include(o.reason, "twice")
          assert.strictEqual(reads, 4)
          assert.strictEqual(vault.calls().byOperation.importVersion, 1)
        }),
      ),
  )
})

describe("RolledBack (ours but wrong: previous material restored)", () => {
  it.effect(
    "from the previous version's backing secret; tagged certctl-rollback-of; +4 calls (the latest read again, the version list, the secret, the import), the version list again and a verify",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const metrics = yield* MetricsRecorder
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RolledBack")
          assert.strictEqual(o.rollbackSource, "backing-secret")
          const latest = vault.latest(NAME)
          assert.strictEqual(latest?.versionId, o.rollbackVersionId)
          assert.strictEqual(latest?.x5t, oldCert.x5t)
          assert.strictEqual(latest?.tags[ROLLBACK_OF_TAG], o.failedVersionId)
          // The restored version keeps the chain.
          assert.strictEqual(latest?.material.chain.length, 1)
          // The snapshot, the verify, the read just before the rollback's import, the rollback's
          // verify; the version list before the rollback's import (another writer's version since the
          // snapshot would not be written over) and after it, before its verify (one imported while
          // it was in flight would be named).
          assert.deepStrictEqual(vault.calls().byOperation, {
            getLatest: 4,
            listVersions: 2,
            importVersion: 2,
            getVersionSecret: 1,
          })
          assert.strictEqual(exitCodeOf(o), 3)
          assert.strictEqual(metrics.count("rollback", "restored"), 1)
          assert.strictEqual(metrics.count("postVerifyFailure", "mismatch"), 1)
        }),
      ),
  )

  it.effect(
    "another writer's import while the rollback's import is in flight: RolledBack names the version now under the previous certificate",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          // The forward import is served without kvdeploy's tags (wrong: rolled back); just before the
          // rollback's import lands (after its last list and read), another writer imports.
          const foreign = issue({ seed: "foreign", issuer: ca })
          vault.script(
            "importVersion",
            Fault.alter("drop-tags"),
            Fault.foreignImport(foreign.material, { owner: "x" }),
          )
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RolledBack")
          const buried = vault.versions(NAME).find((v) => v.writer === "foreign")
          assert.isDefined(buried)
          assert.strictEqual(vault.latest(NAME)?.versionId, o.rollbackVersionId)
          assert.deepStrictEqual(
            o.overwritten?.map((v) => v.versionId),
            [buried?.versionId],
          )
          assert.include(o.reason, `over another writer's ${buried?.versionId}`)
          assert.include(o.reason, "no longer served; decide which certificate the vault should serve")
          assert.strictEqual(exitCodeOf(o), 3)
        }),
      ),
  )

  it.effect(
    "a second deployer's import of the same certificate lands while the rollback's import is in flight: named as overwritten",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script(
            "importVersion",
            Fault.alter("drop-tags"),
            Fault.foreignImport(newCert.material, managedTags),
          )
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RolledBack")
          const buried = vault.versions(NAME).find((v) => v.writer === "foreign")
          assert.strictEqual(buried?.x5t, newCert.x5t)
          assert.deepStrictEqual(
            o.overwritten?.map((v) => v.versionId),
            [buried?.versionId],
          )
        }),
      ),
  )

  for (const [label, tags] of [
    ["another kvdeploy with this certificate id", managedTags],
    ["another tool, without kvdeploy's tags", { owner: "someone-else" }],
  ] as const)
    it.effect(
      `another writer's import of the new certificate just before the rollback's last read (${label}): Superseded, nothing written over it`,
      () =>
        fresh(
          Effect.gen(function* () {
            const vault = yield* InMemoryVaultHandle
            yield* seedManaged(oldCert.material)
            vault.script("importVersion", Fault.alter("drop-tags"))
            // After the rollback's version list, just before its last read of the latest.
            vault.script("getLatest", Fault.pass, Fault.pass, Fault.foreignImport(newCert.material, tags))
            const o = expectTag(yield* runDeploy(request(newCert.material)), "Superseded")
            assert.strictEqual(vault.latest(NAME)?.writer, "foreign")
            assert.strictEqual(
              vault.versions(NAME).filter((v) => v.tags[ROLLBACK_OF_TAG] !== undefined).length,
              0,
            )
            assert.isUndefined(o.rollbackVersionId)
          }),
        ),
    )

  it.effect(
    "the version list after the rollback cannot be read: RolledBack, and the reason says what was not checked",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          vault.script("listVersions", Fault.pass, Fault.fail("Forbidden"))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RolledBack")
          assert.strictEqual(vault.latest(NAME)?.versionId, o.rollbackVersionId)
          assert.isUndefined(o.overwritten)
          assert.strictEqual(o.overwrittenUnchecked, true)
          assert.include(o.reason, "not ruled out")
        }),
      ),
  )

  it.effect(
    "an earlier deploy's copy of the new certificate from the snapshot's second, which another writer's version then replaced before the snapshot: not named as overwritten, said as possibly under the rollback",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          // An earlier deploy of newCert, then (in the same second) another writer's version, which
          // the snapshot reads and this deploy adopts; Key Vault cannot order versions within a second.
          yield* seedManaged(newCert.material)
          const earlier = vault.latest(NAME)
          const foreign = issue({ seed: "foreign", issuer: ca })
          vault.script("getLatest", Fault.foreignImport(foreign.material, { owner: "x" }))
          vault.script("importVersion", Fault.alter("disable"))
          const o = expectTag(yield* runDeploy(request(newCert.material, { adopt: true })), "RolledBack")
          assert.strictEqual(vault.latest(NAME)?.versionId, o.rollbackVersionId)
          // It was there before the snapshot: the rollback did not undo it.
          assert.isUndefined(o.overwritten)
          assert.notInclude(o.reason, "over another writer's")
          assert.deepStrictEqual(
            o.possiblyOverwritten?.map((v) => v.versionId),
            [earlier?.versionId],
          )
          assert.include(o.reason, `may stand over ${earlier?.versionId}`)
        }),
      ),
  )

  it.effect(
    "a copy of the new certificate from the snapshot's second, with the snapshot read answered seconds later: earlier history, neither overwritten nor possibly",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const port = yield* Vault
          // The same two versions in one second, then the deploy a day later: its snapshot read was
          // answered well after that second, and found the other writer's version latest, so the
          // copy was created before it (a newer one would have been latest).
          yield* seedManaged(newCert.material)
          const foreign = issue({ seed: "foreign", issuer: ca })
          vault.script("getLatest", Fault.foreignImport(foreign.material, { owner: "x" }))
          yield* Effect.orDie(port.getLatest(NAME))
          yield* TestClock.adjust("1 day")
          vault.script("importVersion", Fault.alter("disable"))
          const o = expectTag(yield* runDeploy(request(newCert.material, { adopt: true })), "RolledBack")
          assert.isUndefined(o.overwritten)
          assert.isUndefined(o.possiblyOverwritten)
          assert.notInclude(o.reason, "may stand over")
        }),
      ),
  )

  it.effect("no other writer during the rollback: no overwritten versions, the reason as before", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "RolledBack")
        assert.isUndefined(o.overwritten)
        assert.isUndefined(o.overwrittenUnchecked)
        assert.match(o.reason, /the previous certificate is served again as [0-9a-f]{32}$/)
      }),
    ),
  )

  for (const [change, what] of [
    ["other-x5t", "another thumbprint"],
    ["other-serial", "another serial number"],
  ] as const)
    it.effect(`the new version is tagged ours but served with ${what}: a mismatch, rolled back`, () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const metrics = yield* MetricsRecorder
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter(change))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RolledBack")
          assert.strictEqual(metrics.count("postVerifyFailure", "mismatch"), 1)
          assert.strictEqual(vault.latest(NAME)?.versionId, o.rollbackVersionId)
          assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
        }),
      ),
    )

  it.effect("without secrets/get, from a key the caller kept for the previous certificate", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.setSecretsGet(false)
        vault.script("importVersion", Fault.alter("disable"))
        const o = expectTag(
          yield* runDeploy(
            request(newCert.material, { previousKey: oldCert.material.key, previousChain: [ca.certificate] }),
          ),
          "RolledBack",
        )
        assert.strictEqual(o.rollbackSource, "caller-key")
        assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
        assert.strictEqual(vault.calls().byOperation.getVersionSecret, undefined)
      }),
    ),
  )

  it.effect("without secrets/get, from the new key when the renewal reused the key", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.setSecretsGet(false)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const o = expectTag(yield* runDeploy(request(renewedSameKey.material)), "RolledBack")
        assert.strictEqual(o.rollbackSource, "reused-key")
        assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
        // Restored with the chain that issues it (the same CA's).
        assert.deepStrictEqual(vault.latest(NAME)?.material.chain, renewedSameKey.material.chain)
      }),
    ),
  )

  it.effect(
    "the reused key renewed by another CA: the new chain does not issue the previous certificate, so no rollback",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.setSecretsGet(false)
          vault.script("importVersion", Fault.alter("drop-tags"))
          const otherCa = makeAuthority("other")
          const byOtherCa = issue({ seed: "renewed-other-ca", issuer: otherCa, key: oldCert.key })
          const o = expectTag(yield* runDeploy(request(byOtherCa.material)), "RollbackFailed")
          assert.match(
            o.reason,
            /reused-key: the chain given with the key does not issue the previous certificate/,
          )
          // Nothing was imported for a rollback: the failed version is still the latest.
          assert.strictEqual(vault.latest(NAME)?.x5t, byOtherCa.x5t)
        }),
      ),
  )

  it.effect("the reused key of a self-signed previous certificate: restored alone (it needs no chain)", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const self = makeAuthority("self-leaf", "CN=self.example.test")
        const selfSigned = { leaf: self.certificate, chain: [], key: Redacted.make(self.key.bytes) }
        const seeded = yield* vault.seed(NAME, selfSigned, { tags: managedTags })
        vault.setSecretsGet(false)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const renewal = issue({ seed: "renewed-self", issuer: ca, key: self.key })
        const o = expectTag(yield* runDeploy(request(renewal.material)), "RolledBack")
        assert.strictEqual(o.rollbackSource, "reused-key")
        assert.strictEqual(vault.latest(NAME)?.x5t, seeded.x5t)
        assert.deepStrictEqual(vault.latest(NAME)?.material.chain, [])
      }),
    ),
  )

  it.effect(
    "from the backing secret, the previous material as read, whatever its chain (an adopted certificate)",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const otherCa = makeAuthority("unrelated")
          // Written by another tool, with a chain that does not issue the leaf.
          const adopted = { ...oldCert.material, chain: [otherCa.certificate] }
          yield* vault.seed(NAME, adopted, { tags: { owner: "other-tool" } })
          vault.script("importVersion", Fault.alter("drop-tags"))
          const o = expectTag(yield* runDeploy(request(newCert.material, { adopt: true })), "RolledBack")
          assert.strictEqual(o.rollbackSource, "backing-secret")
          assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
          assert.deepStrictEqual(vault.latest(NAME)?.material.chain, [otherCa.certificate])
        }),
      ),
  )
})

describe("RolledBack: tags of the restored version", () => {
  it.effect("the previous version's operator tags, not the failed request's, plus the reserved tags", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* vault.seed(NAME, oldCert.material, {
          tags: { ...managedTags, env: "blue", owner: "team-a" },
        })
        vault.script("importVersion", Fault.alter("drop-tags"))
        const o = expectTag(
          yield* runDeploy(request(newCert.material, {}, target({ tags: { env: "green", release: "42" } }))),
          "RolledBack",
        )
        assert.deepStrictEqual(vault.latest(NAME)?.tags, {
          env: "blue",
          owner: "team-a",
          [MANAGED_BY_TAG]: "certctl",
          [CERTIFICATE_ID_TAG]: CERT_ID,
          [ROLLBACK_OF_TAG]: o.failedVersionId,
        })
      }),
    ),
  )
  it.effect("an adopted version with 15 tags: the first 12 in key order fit beside the reserved ones", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const tags = Object.fromEntries(
          Array.from({ length: 15 }, (_, i) => [`t${String(i).padStart(2, "0")}`, `v${i}`]),
        )
        yield* vault.seed(NAME, oldCert.material, { tags })
        vault.script("importVersion", Fault.alter("drop-tags"))
        const o = expectTag(yield* runDeploy(request(newCert.material, { adopt: true })), "RolledBack")
        const restored = vault.latest(NAME)?.tags ?? {}
        assert.strictEqual(Object.keys(restored).length, 15)
        assert.deepStrictEqual(
          Object.keys(restored)
            .filter((k) => k.startsWith("t"))
            .sort(),
          Object.keys(tags).slice(0, 12),
        )
        assert.strictEqual(restored[ROLLBACK_OF_TAG], o.failedVersionId)
        assert.isTrue(o.decisions.some((d) => d.includes("t12, t13, t14")))
      }),
    ),
  )
})

describe("Superseded during the rollback", () => {
  it.effect("another writer imports after our rollback import: reported Superseded, not RolledBack", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const metrics = yield* MetricsRecorder
        yield* seedManaged(oldCert.material)
        const foreign = issue({ seed: "foreign-rb", issuer: ca })
        vault.script("importVersion", Fault.alter("drop-tags"))
        // Snapshot, verify, the read just before the rollback's import, then the rollback's verify.
        vault.script("getLatest", Fault.pass, Fault.pass, Fault.pass, Fault.foreignImport(foreign.material))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Superseded")
        assert.strictEqual(vault.latest(NAME)?.x5t, foreign.x5t)
        // versionId is the forward import (the new certificate's x5t); the rollback is named apart.
        const forward = vault.versions(NAME).find((v) => v.versionId === o.versionId)
        assert.strictEqual(forward?.x5t, newCert.x5t)
        const rollback = vault.versions(NAME).find((v) => v.versionId === o.rollbackVersionId)
        assert.strictEqual(rollback?.tags[ROLLBACK_OF_TAG], o.versionId)
        assert.strictEqual(rollback?.x5t, oldCert.x5t)
        // The rollback was written and overtaken: neither restored nor failed, so not counted as either.
        assert.strictEqual(metrics.count("rollback", "also_failed"), 0)
        assert.strictEqual(metrics.count("rollback", "restored"), 0)
        assert.strictEqual(metrics.count("postVerifyFailure", "mismatch"), 1)
        // The audit record names both versions this deploy wrote.
        const record = (yield* AuditRecords).all().at(-1)
        assert.strictEqual(record?.versionId, o.versionId)
        assert.strictEqual(record?.rollbackVersionId, o.rollbackVersionId)
      }),
    ),
  )

  it.effect(
    "another writer imports after the verify read, before the rollback's import: Superseded, nothing written over it",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const metrics = yield* MetricsRecorder
          yield* seedManaged(oldCert.material)
          const foreign = issue({ seed: "foreign", issuer: ca })
          vault.script("importVersion", Fault.alter("drop-tags"))
          // The other writer lands while the rollback reads the previous version's backing secret.
          vault.script("getVersionSecret", Fault.foreignImport(foreign.material))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Superseded")
          // Not clobbered: the other writer's version is still latest, and no rollback was imported.
          assert.strictEqual(vault.latest(NAME)?.writer, "foreign")
          assert.strictEqual(o.supersededBy.versionId, vault.latest(NAME)?.versionId)
          assert.isUndefined(o.rollbackVersionId)
          assert.strictEqual(vault.calls().byOperation.importVersion, 1)
          assert.isUndefined(vault.versions(NAME).find((v) => v.tags[ROLLBACK_OF_TAG] !== undefined))
          assert.match(o.reason, /became latest before the rollback was written/)
          // From the failed version's own second: confirmed by a second read that agrees (snapshot,
          // verify, the read before the import, one more).
          assert.strictEqual(vault.calls().byOperation.getLatest, 4)
          assert.strictEqual(metrics.count("rollback", "also_failed"), 0)
          assert.strictEqual(metrics.count("rollback", "restored"), 0)
          // Nothing of the rollback's content type was written.
          assert.isUndefined(o.contentType?.restored)
          const record = (yield* AuditRecords).all().at(-1)
          assert.isUndefined(record?.rollbackVersionId)
        }),
      ),
  )

  it.effect(
    "the latest cannot be read just before the rollback's import: RollbackFailed, nothing written",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          vault.script("getLatest", Fault.pass, Fault.pass, Fault.fail("Forbidden"))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
          assert.match(o.reason, /could not be read again just before the rollback's import/)
          assert.isUndefined(o.rollbackVersionId)
          assert.strictEqual(vault.calls().byOperation.importVersion, 1)
        }),
      ),
  )

  it.effect(
    "the rollback's verify: a lagging read shows another writer's version of its second without it: read again, RolledBack",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const port = yield* Vault
          yield* seedManaged(oldCert.material)
          const foreign = issue({ seed: "foreign", issuer: ca })
          // The other writer imports just before our rollback's import, in the same second (ours is latest).
          vault.script("importVersion", Fault.alter("drop-tags"), Fault.foreignImport(foreign.material))
          let lagged = false
          // Once, a replica that has the other writer's version and not our rollback answers.
          const lagging: (typeof Vault)["Service"] = {
            ...port,
            getLatest: (name) =>
              Effect.suspend(() => {
                const versions = vault.versions(NAME)
                const other = versions.find((v) => v.writer === "foreign")
                const rollbackWritten = versions.some((v) => v.tags[ROLLBACK_OF_TAG] !== undefined)
                if (lagged || other === undefined || !rollbackWritten) return port.getLatest(name)
                lagged = true
                return Effect.succeed({ ...other, tags: { ...other.tags } })
              }),
          }
          const o = yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, lagging))
          assert.isTrue(lagged)
          const served = vault.latest(NAME)
          assert.strictEqual(served?.writer, "deploy")
          assert.strictEqual(served?.x5t, oldCert.x5t)
          assert.strictEqual(o._tag, "RolledBack", o.reason)
          assert.strictEqual(expectTag(o, "RolledBack").rollbackVersionId, served?.versionId)
          assert.include(o.decisions, "rollback: two more reads serve ours, not the other writer's")
        }),
      ),
  )
})

/** Run `eff` with the Vault's import requests recorded in `into` (before the vault sees them). */
const recordingImports = <A, E, R>(into: Array<ImportRequest>, eff: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.service(Vault), (vault) =>
    Effect.provideService(eff, Vault, {
      ...vault,
      importVersion: (r) => {
        into.push(r)
        return vault.importVersion(r)
      },
    }),
  )

describe("key facts on import", () => {
  it.effect("the forward import states the new key's facts, the rollback import the previous key's", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const previous = issue({ seed: "ec-previous", issuer: ca, keyType: "EC", curve: "P-384" })
        const next = issue({ seed: "rsa-next", issuer: ca, keyType: "RSA", keySize: 3072 })
        yield* seedManaged(previous.material)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const imports: Array<ImportRequest> = []
        expectTag(yield* recordingImports(imports, runDeploy(request(next.material))), "RolledBack")
        assert.deepStrictEqual(
          imports.map((r) => r.keyFacts),
          [
            { keyType: "RSA", keySize: 3072 },
            { keyType: "EC", curve: "P-384" },
          ],
        )
      }),
    ),
  )
})

describe("RollbackFailed (needs a person)", () => {
  it.effect("previous key unavailable: no secrets/get, no key history, new key differs", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.setSecretsGet(false)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
        assert.match(o.reason, /previous key unavailable: grant secrets\/get or keep key history/)
        assert.strictEqual(vault.versions(NAME).length, 2) // nothing was paired with a wrong key
        assert.strictEqual(exitCodeOf(o), 4)
      }),
    ),
  )

  it.effect(
    "previous key unavailable because the backing secret gave no usable answer: no grant is advised",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          vault.script("getVersionSecret", Fault.fail("UnavailableRetried"))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
          assert.match(
            o.reason,
            /previous key unavailable: the previous version's backing secret could not be read, and not for a refused permission \(why, in brackets\)/,
          )
          assert.notMatch(o.reason, /grant secrets\/get/)
          assert.strictEqual(vault.versions(NAME).length, 2)
          assert.strictEqual(exitCodeOf(o), 4)
        }),
      ),
  )

  it.effect("a caller key that does not match the served certificate: Rejected before the import", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const metrics = yield* MetricsRecorder
        const served = yield* seedManaged(oldCert.material, { exportable: false })
        const o = expectTag(
          yield* runDeploy(
            request(newCert.material, { previousKey: Redacted.make(makeKey("unrelated").bytes) }),
          ),
          "Rejected",
        )
        assert.deepStrictEqual(
          o.problems.map((p) => [p.field, p.reason]),
          [["previousKey", "previous_key"]],
        )
        assert.match(o.reason, /cannot restore the version the vault serves now/)
        assert.include(o.reason, served.versionId)
        assert.match(o.reason, /the key does not match the previous certificate/)
        // Core speaks to every caller: no CLI flag in its fix.
        assert.match(o.problems[0]?.fix ?? "", /give the key of the version the vault serves now/)
        assert.notMatch(o.problems[0]?.fix ?? "", /--/)
        assert.strictEqual(vault.calls().byOperation.importVersion ?? 0, 0)
        assert.deepStrictEqual(
          vault.versions(NAME).map((v) => v.versionId),
          [served.versionId],
        )
        assert.strictEqual(exitCodeOf(o), 2)
        assert.strictEqual(metrics.count("validateFailure", "previous_key"), 1)
      }),
    ),
  )

  it.effect(
    "a right caller key whose chain cannot be restored: the deploy goes on, noting that a rollback would read the backing secret",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          // The served certificate is CA-issued; its key comes with another CA's chain (a renewal
          // whose intermediate changed, with a key-only file).
          yield* seedManaged(oldCert.material)
          const otherCa = makeAuthority("other-ca")
          const o = expectTag(
            yield* runDeploy(
              request(newCert.material, {
                previousKey: oldCert.material.key,
                previousChain: [otherCa.certificate],
              }),
            ),
            "Succeeded",
          )
          const note = o.decisions.find((d) => d.startsWith("previous key:"))
          assert.match(note ?? "", /matches the served certificate, but a rollback cannot restore its chain/)
          assert.match(note ?? "", /does not issue the previous certificate/)
          assert.strictEqual(vault.calls().byOperation.importVersion, 1)
        }),
      ),
  )

  it.effect("a wrong caller key does not stop a deploy that skips (the certificate is served already)", () =>
    fresh(
      Effect.gen(function* () {
        yield* seedManaged(newCert.material)
        expectTag(
          yield* runDeploy(
            request(newCert.material, { previousKey: Redacted.make(makeKey("unrelated").bytes) }),
          ),
          "Skipped",
        )
      }),
    ),
  )

  it.effect("first deploy: nothing to roll back to", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        vault.script("importVersion", Fault.alter("disable"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
        assert.match(o.reason, /no previous version/)
        assert.strictEqual(vault.versions(NAME).length, 1)
      }),
    ),
  )

  it.effect("the rollback cannot be verified", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.alter("drop-tags"))
        // Snapshot, verify and the read before the rollback's import answer; the rollback's verify does not.
        vault.script(
          "getLatest",
          Fault.pass,
          Fault.pass,
          Fault.pass,
          ...Fault.repeat(5, Fault.fail("Unavailable")),
        )
        const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
        assert.match(o.reason, /rollback could not be verified/)
        assert.strictEqual(o.rollbackVersionId, vault.latest(NAME)?.versionId)
        assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t) // restored, but not proven by a read
      }),
    ),
  )

  it.effect("the rollback import itself is refused", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const metrics = yield* MetricsRecorder
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.alter("drop-tags"), Fault.fail("Unavailable"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
        assert.match(o.reason, /rollback import failed/)
        assert.strictEqual(metrics.count("rollback", "also_failed"), 1)
      }),
    ),
  )
})

describe("audit, metrics and redaction", () => {
  it.effect("one audit record per deploy, and key material appears in no outcome, record or metric", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const audit = yield* AuditRecords
        const metrics = yield* MetricsRecorder
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const outcomes = [
          yield* runDeploy(request(newCert.material)),
          yield* runDeploy(request(withWrongKey(newCert))),
          yield* runDeploy(request(newCert.material, { previousKey: oldCert.material.key })),
        ]
        assert.strictEqual(audit.all().length, outcomes.length)
        const secrets = [
          oldCert.key.body.secret,
          newCert.key.body.secret,
          makeKey("wrong:wrong").body.secret,
        ].flatMap((s) => [s, Buffer.from(s).toString("base64")])
        const keyBytes = [oldCert.key.bytes, newCert.key.bytes].map((b) => Buffer.from(b).toString("base64"))
        const text = toJson({ outcomes, audit: audit.all(), metrics: metrics.events() }) + String(outcomes)
        for (const s of [...secrets, ...keyBytes]) assert.notInclude(text, s)
        assert.include(toJson(outcomes[2]), oldCert.x5t) // the serialisation is not empty
      }),
    ),
  )

  it.effect("ValidateOnly answers a tagged ValidateOnlyNotSupported", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(validateOnly(request(newCert.material)))
      assert.isTrue(Exit.isFailure(exit))
      const error = yield* Effect.flip(validateOnly(request(newCert.material)))
      assert.strictEqual(error._tag, "ValidateOnlyNotSupported")
      assert.match(error.message, /kvdeploy plan/)
    }),
  )

  it("exit codes", () => {
    const codes = Object.fromEntries(
      (
        [
          "Succeeded",
          "Skipped",
          "Failed",
          "Rejected",
          "RolledBack",
          "RollbackFailed",
          "Unverified",
          "Superseded",
        ] as const
      ).map((t) => [t, exitCodeOf({ _tag: t })]),
    )
    assert.deepStrictEqual(codes, {
      Succeeded: 0,
      Skipped: 0,
      Failed: 1,
      Rejected: 2,
      RolledBack: 3,
      RollbackFailed: 4,
      Unverified: 4,
      Superseded: 5,
    })
  })
})

describe("reconcile among decoys: a version is ours only by its x5t, certificate id, kvdeploy's tag and its time", () => {
  it.effect(
    "the snapshot itself, the same certificate disabled (so not skipped), is no import of ours: Failed, nothing claimed",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          // Served disabled, with the new certificate and kvdeploy's tags: re-imported, not skipped.
          yield* vault.seed(NAME, newCert.material, { tags: managedTags, enabled: false })
          vault.script("importVersion", Fault.fail("Ambiguous"))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Failed")
          assert.strictEqual(o.step, "reconcile")
          assert.strictEqual(vault.versions(NAME).length, 1)
        }),
      ),
  )

  it.effect(
    "a version of the same certificate by another deployment (another certctl-certificate-id) is not ours: Failed",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.fail("Ambiguous"))
          // Another deployment imports the same certificate while our import's answer is lost.
          vault.script(
            "listVersions",
            Fault.foreignImport(newCert.material, {
              [MANAGED_BY_TAG]: "certctl",
              [CERTIFICATE_ID_TAG]: "other-id",
            }),
          )
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Failed")
          assert.strictEqual(o.step, "reconcile")
          assert.strictEqual(vault.versions(NAME).length, 2)
        }),
      ),
  )

  it.effect(
    "a version of the same certificate with our certificate id but without kvdeploy's managed-by tag is not ours: Failed",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.fail("Ambiguous"))
          // Another writer copies the certificate id, not the managed-by tag, while our import's answer is lost.
          vault.script(
            "listVersions",
            Fault.foreignImport(newCert.material, { [CERTIFICATE_ID_TAG]: CERT_ID }),
          )
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Failed")
          assert.strictEqual(o.step, "reconcile")
          const foreign = vault.versions(NAME).find((v) => v.writer === "foreign")
          assert.strictEqual(foreign?.x5t, newCert.x5t)
          assert.strictEqual(vault.latest(NAME)?.versionId, foreign?.versionId)
          assert.strictEqual(vault.versions(NAME).length, 2)
        }),
      ),
  )

  it.effect(
    "a rollback whose answer was lost: the old certificate re-imported by another deploy (no certctl-rollback-of) is not our rollback",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          // The new version is served without its tags (a mismatch), and the rollback's import is lost.
          vault.script("importVersion", Fault.alter("drop-tags"), Fault.fail("Ambiguous"))
          // (The list before the rollback's import passes; the other deploy lands before the reconciliation's.)
          vault.script("listVersions", Fault.pass, Fault.foreignImport(oldCert.material, managedTags))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
          assert.match(o.reason, /the rollback import did not take effect/)
          assert.isUndefined(o.rollbackVersionId)
        }),
      ),
  )

  // The rollback's own reconciliation: a version tagged as the rollback of the failed version is
  // ours only with the previous certificate's x5t and kvdeploy's managed-by tag.
  for (const [decoy, material, withManagedBy] of [
    ["another certificate tagged as the rollback of the failed version", () => newCert.material, true],
    [
      "the previous certificate tagged as the rollback, without kvdeploy's managed-by tag",
      () => oldCert.material,
      false,
    ],
  ] as const)
    it.effect(`a rollback whose answer was lost: ${decoy} is not our rollback`, () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          // The new version is served without its tags (a mismatch), and the rollback's import is lost.
          vault.script("importVersion", Fault.alter("drop-tags"), Fault.fail("Ambiguous"))
          // The list before the rollback's import passes; the decoy lands before the reconciliation's.
          vault.script(
            "listVersions",
            Fault.pass,
            Fault.foreignImport(material(), (versions) => ({
              ...(withManagedBy ? { [MANAGED_BY_TAG]: "certctl" } : {}),
              [CERTIFICATE_ID_TAG]: CERT_ID,
              [ROLLBACK_OF_TAG]: versions.find(
                (v) => v.writer === "deploy" && v.tags[MANAGED_BY_TAG] === undefined,
              )?.versionId as string,
            })),
          )
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
          // The decoy is in the vault, served, and named as the rollback of the failed version.
          const failed = vault
            .versions(NAME)
            .find((v) => v.writer === "deploy" && v.tags[MANAGED_BY_TAG] === undefined)
          const foreign = vault.versions(NAME).find((v) => v.writer === "foreign")
          assert.isDefined(failed)
          assert.strictEqual(foreign?.tags[ROLLBACK_OF_TAG], failed?.versionId)
          assert.strictEqual(vault.latest(NAME)?.versionId, foreign?.versionId)
          assert.match(o.reason, /the rollback import did not take effect/)
          assert.isUndefined(o.rollbackVersionId)
        }),
      ),
    )

  it.effect(
    "two versions read as ours, and the one served is wrong: the failed version named is the one served",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          yield* lostImportAndItsDuplicate(newCert.material)
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RolledBack")
          const served = vault.versions(NAME).find((v) => v.writer === "foreign")
          assert.strictEqual(o.failedVersionId, served?.versionId)
          assert.strictEqual(vault.latest(NAME)?.tags[ROLLBACK_OF_TAG], served?.versionId)
        }),
      ),
  )

  it.effect(
    "two versions read as ours, the one served wrong, and the rollback's last read lagging on the other: still ours, RolledBack",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const port = yield* Vault
          yield* seedManaged(oldCert.material)
          yield* lostImportAndItsDuplicate(newCert.material)
          // Once the rollback has read the previous version's secret, reads lag and show our own
          // first candidate until the rollback's import.
          let secretRead = false
          let lagged = 0
          const lagging: (typeof Vault)["Service"] = {
            ...port,
            getVersionSecret: (...args) =>
              Effect.tap(port.getVersionSecret(...args), () =>
                Effect.sync(() => {
                  secretRead = true
                }),
              ),
            importVersion: (r) =>
              Effect.suspend(() => {
                secretRead = false
                return port.importVersion(r)
              }),
            getLatest: (name) =>
              Effect.suspend(() => {
                const first = vault.versions(NAME).find((v) => v.writer === "deploy" && v.x5t === newCert.x5t)
                if (!secretRead || first === undefined) return port.getLatest(name)
                lagged++
                return Effect.succeed({ ...first, tags: { ...first.tags } })
              }),
          }
          const o = yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, lagging))
          assert.isAbove(lagged, 0)
          assert.strictEqual(o._tag, "RolledBack", o.reason)
          assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
          assert.strictEqual(
            vault.latest(NAME)?.tags[ROLLBACK_OF_TAG],
            expectTag(o, "RolledBack").failedVersionId,
          )
        }),
      ),
  )

  it.effect(
    "two versions read as our rollback, and the one served is wrong: the rollback version named is the one served",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          // The new version is served without its tags (a mismatch); the rollback lands with its
          // answer lost; a duplicate of the rollback (same certificate, certctl-rollback-of the failed
          // version, without the operator tag) lands after it: both are candidates, and the vault
          // serves the duplicate, which is wrong.
          vault.script("importVersion", Fault.alter("drop-tags"), Fault.afterWrite)
          vault.script(
            "listVersions",
            // The list read before the rollback's import passes; the reconciliation's list lands the duplicate.
            Fault.pass,
            Fault.foreignImport(oldCert.material, (versions) => ({
              [MANAGED_BY_TAG]: "certctl",
              [CERTIFICATE_ID_TAG]: CERT_ID,
              // The failed version: the one kvdeploy wrote without tags (the drop-tags import).
              [ROLLBACK_OF_TAG]: versions.find(
                (v) => v.writer === "deploy" && v.tags[MANAGED_BY_TAG] === undefined,
              )?.versionId as string,
            })),
          )
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
          const versions = vault.versions(NAME)
          const failed = versions.find((v) => v.writer === "deploy" && v.tags[MANAGED_BY_TAG] === undefined)
          const duplicate = versions.find((v) => v.writer === "foreign")
          assert.isDefined(failed)
          assert.strictEqual(duplicate?.tags[ROLLBACK_OF_TAG], failed?.versionId)
          assert.match(o.reason, /the rollback version is also wrong/)
          assert.strictEqual(o.failedVersionId, failed?.versionId)
          assert.strictEqual(o.rollbackVersionId, duplicate?.versionId)
        }),
      ),
  )
})
