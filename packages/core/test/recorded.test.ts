/**
 * What a deploy records besides its outcome: the metric events per outcome (the series
 * dashboards read) and the audit record's fields. Against the in-memory vault, under the TestClock.
 */
import { generateKeyPairSync } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"
import { type DeployOutcome, exitCodeOf, Vault, withheldCertificateId } from "../src/index.js"
import {
  AuditRecords,
  type FailKind,
  Fault,
  InMemoryVaultHandle,
  issue,
  MetricsRecorder,
  makeAuthority,
  withWrongKey,
} from "../src/testing/index.js"
import { expectTag, fresh, NAME, request, runDeploy, seedManaged, target } from "./fixtures.js"

/** The in-memory vault a scenario scripts. */
type VaultHandle = (typeof InMemoryVaultHandle)["Service"]

/** The run recorded the certificate as not served, once, and no expiry. */
const assertOnlyNotServed = (metrics: (typeof MetricsRecorder)["Service"], label: string) => {
  assert.strictEqual(metrics.count("certificateExpiry"), 0, label)
  assert.deepStrictEqual(
    metrics.events().filter((e) => e.series === "certificateNotServed"),
    [{ series: "certificateNotServed", label: `${target().vaultUrl}/${NAME}` }],
    label,
  )
}

const ca = makeAuthority("recorded")
const oldCert = issue({ seed: "rec-old", issuer: ca, notAfter: new Date(Date.UTC(2090, 0, 1)) })
/** Another writer's certificate, with an expiry of its own. */
const foreignCert = issue({ seed: "rec-foreign", issuer: ca, notAfter: new Date(Date.UTC(2080, 0, 1)) })
const newCert = issue({ seed: "rec-new", issuer: ca })

describe("metrics per outcome", () => {
  it.effect(
    "a Rejected deploy counts each validate failure reason once, however many problems share it",
    () =>
      fresh(
        Effect.gen(function* () {
          const metrics = yield* MetricsRecorder
          const tags: Record<string, string> = { long: "v".repeat(257) }
          for (let i = 0; i < 13; i++) tags[`t${i}`] = "v"
          const config = { ...target(), certificateName: "bad name!", tags }
          const o = expectTag(yield* runDeploy(request(withWrongKey(newCert), {}, config)), "Rejected")
          // Two tag problems (count, value length), one name problem, one key mismatch.
          assert.strictEqual(o.problems.filter((p) => p.reason === "tags").length, 2)
          assert.deepStrictEqual(
            metrics
              .events()
              .filter((e) => e.series === "validateFailure")
              .map((e) => e.label)
              .sort(),
            ["certificate_name", "key_mismatch", "tags"],
          )
        }),
      ),
  )

  it.effect(
    "an Unverified deploy whose version list cannot be read counts one unreadable post-verify failure",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const metrics = yield* MetricsRecorder
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.afterWrite)
          vault.script("listVersions", ...Array.from({ length: 5 }, () => Fault.fail("Unavailable")))
          expectTag(yield* runDeploy(request(newCert.material)), "Unverified")
          assert.deepStrictEqual(
            metrics
              .events()
              .filter((e) => e.series === "postVerifyFailure")
              .map((e) => e.label),
            ["unreadable"],
          )
          assert.strictEqual(metrics.count("deployAttempt", "unverified"), 1)
        }),
      ),
  )

  it.effect("the duration is recorded in seconds", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const metrics = yield* MetricsRecorder
        // Throttled reads back off (TestClock time): the deploy lasts seconds, not milliseconds.
        vault.script("getLatest", ...Array.from({ length: 5 }, () => Fault.fail("Throttled")))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Failed")
        assert.isAbove(o.timings.durationMs, 1000)
        const durations = metrics.events().flatMap((e) => (e.series === "deployDuration" ? [e.value] : []))
        assert.deepStrictEqual(durations, [o.timings.durationMs / 1000])
      }),
    ),
  )

  it.effect(
    "the duration is measured on the monotonic clock: a wall clock set back meanwhile does not shorten it",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* Vault
          // The snapshot read takes 3 s, then the wall clock is set back an hour (NTP, an operator).
          const setBack = Effect.gen(function* () {
            yield* Effect.sleep("3 seconds")
            yield* TestClock.setTime((yield* Clock.currentTimeMillis) - 3_600_000)
          })
          const metrics = yield* MetricsRecorder
          const o = expectTag(
            yield* runDeploy(request(newCert.material)).pipe(
              Effect.provideService(Vault, {
                ...vault,
                getLatest: (name) => Effect.andThen(setBack, vault.getLatest(name)),
              }),
            ),
            "Succeeded",
          )
          assert.isBelow(o.timings.finishedAtMs, o.timings.startedAtMs, "the wall clock was set back")
          assert.isAtLeast(o.timings.durationMs, 3000)
          assert.isBelow(o.timings.durationMs, 3_600_000)
          const durations = metrics.events().flatMap((e) => (e.series === "deployDuration" ? [e.value] : []))
          assert.deepStrictEqual(durations, [o.timings.durationMs / 1000])
        }),
      ),
  )

  it.effect("the expiry gauge is set when the vault serves a known certificate: Skipped sets it too", () =>
    fresh(
      Effect.gen(function* () {
        const metrics = yield* MetricsRecorder
        yield* seedManaged(newCert.material)
        expectTag(yield* runDeploy(request(newCert.material)), "Skipped")
        assert.deepStrictEqual(
          metrics.events().filter((e) => e.series === "certificateExpiry"),
          [
            {
              series: "certificateExpiry",
              label: `${target().vaultUrl}/${NAME}`,
              value: newCert.notAfter.getTime() / 1000,
            },
          ],
        )
      }),
    ),
  )

  it.effect(
    "the expiry gauge is not set from the new certificate when the vault may not serve it (Rejected, Failed, Unverified, Superseded, RollbackFailed); after Superseded it is the other writer's, after a refused import the one the snapshot read",
    () =>
      Effect.gen(function* () {
        const scenarios: ReadonlyArray<
          readonly [DeployOutcome["_tag"], (vault: VaultHandle) => void, ReturnType<typeof request>]
        > = [
          ["Rejected", () => {}, request(withWrongKey(newCert))],
          ["Failed", (v) => v.script("importVersion", Fault.fail("Forbidden")), request(newCert.material)],
          [
            "Unverified",
            (v) =>
              v.script(
                "getLatest",
                Fault.pass,
                ...Array.from({ length: 5 }, () => Fault.fail("Unavailable")),
              ),
            request(newCert.material),
          ],
          [
            "Superseded",
            (v) => v.script("getLatest", Fault.pass, Fault.foreignImport(foreignCert.material)),
            request(newCert.material),
          ],
          [
            "RollbackFailed",
            (v) => {
              v.setSecretsGet(false)
              v.script("importVersion", Fault.alter("drop-tags"))
            },
            request(newCert.material),
          ],
        ]
        for (const [tag, setup, req] of scenarios) {
          yield* fresh(
            Effect.gen(function* () {
              const vault = yield* InMemoryVaultHandle
              const metrics = yield* MetricsRecorder
              yield* seedManaged(oldCert.material)
              setup(vault)
              expectTag(yield* runDeploy(req), tag)
              const set = metrics.events().filter((e) => e.series === "certificateExpiry")
              assert.strictEqual(metrics.count("certificateNotServed"), 0, tag)
              // What the vault serves: the other writer's version; after a refused import (nothing
              // written), the version the snapshot read.
              if (tag === "Superseded" || tag === "Failed")
                assert.deepStrictEqual(
                  set.map((e) => e.value),
                  [(tag === "Superseded" ? foreignCert : oldCert).notAfter.getTime() / 1000],
                  tag,
                )
              else assert.strictEqual(set.length, 0, tag)
            }),
          )
        }
      }),
  )
})

describe("a vault that serves nothing", () => {
  it.effect(
    "a deploy that finds no certificate served and writes none removes the expiry series: a soft-deleted name (on_soft_deleted: fail, a refused recovery), an import refused as deleted",
    () =>
      Effect.gen(function* () {
        const scenarios: ReadonlyArray<
          readonly [string, (vault: VaultHandle) => Effect.Effect<void>, Record<string, unknown>]
        > = [
          ["on_soft_deleted: fail", (v) => v.softDelete(NAME), {}],
          [
            "recovery refused",
            (v) =>
              Effect.andThen(
                v.softDelete(NAME),
                Effect.sync(() => v.script("recoverDeleted", Fault.fail("Forbidden"))),
              ),
            { on_soft_deleted: "recover" },
          ],
          // Deleted by someone else between the snapshot and the import: the import meets the deleted name.
          [
            "deleted after the snapshot",
            (v) => Effect.sync(() => v.script("importVersion", Fault.foreignDelete("before"))),
            {},
          ],
          // The same, and the recovery refused: the snapshot's version is not served.
          [
            "deleted after the snapshot, recovery refused",
            (v) =>
              Effect.sync(() => {
                v.script("importVersion", Fault.foreignDelete("before"))
                v.script("recoverDeleted", Fault.fail("Forbidden"))
              }),
            { on_soft_deleted: "recover" },
          ],
          // An import whose answer was lost, the certificate deleted meanwhile: the import wrote nothing.
          [
            "a lost import into a certificate deleted meanwhile",
            (v) =>
              Effect.sync(() => {
                v.script("importVersion", Fault.fail("Ambiguous"))
                v.script("getLatest", Fault.pass, Fault.foreignDelete("before"))
                v.script("listVersions", Fault.foreignDelete("before"))
              }),
            {},
          ],
        ]
        for (const [label, setup, targetFields] of scenarios) {
          yield* fresh(
            Effect.gen(function* () {
              const vault = yield* InMemoryVaultHandle
              const metrics = yield* MetricsRecorder
              yield* seedManaged(oldCert.material)
              yield* setup(vault)
              const o = expectTag(
                yield* runDeploy(request(newCert.material, {}, target(targetFields))),
                "Failed",
              )
              assert.include(["soft-deleted", "import", "reconcile"], o.step, label)
              assert.isUndefined(vault.latest(NAME), label)
              assertOnlyNotServed(metrics, label)
            }),
          )
        }
      }),
  )

  it.effect(
    "a soft-deleted name that another writer recovers during the deploy, the vault then saying its deleted certificate is gone: Failed, and nothing removed (it may be, and here is, served)",
    () =>
      Effect.gen(function* () {
        const scenarios: ReadonlyArray<
          readonly [string, (vault: VaultHandle) => void, Record<string, unknown>]
        > = [
          // The deleted certificate's read finds none: whose it was is not known, it is left.
          [
            "deleted certificate's read 404",
            (v) => v.script("getDeleted", Fault.foreignRecover),
            { on_soft_deleted: "recover" },
          ],
          ["on_soft_deleted: fail, its read 404", (v) => v.script("getDeleted", Fault.foreignRecover), {}],
          // The recover POST finds none, and the read after it is refused.
          [
            "recovery 404, the read after it refused",
            (v) => {
              v.script("recoverDeleted", Fault.foreignRecoverUnshown)
              v.script("getLatest", Fault.pass, Fault.fail("Forbidden"))
            },
            { on_soft_deleted: "recover" },
          ],
          // The recover POST finds none, and the read after it lags behind the other's recovery.
          [
            "recovery 404, the read after it lagging",
            (v) => {
              v.script("recoverDeleted", Fault.foreignRecoverUnshown)
              v.script("getLatest", Fault.pass, Fault.staleRead)
            },
            { on_soft_deleted: "recover" },
          ],
        ]
        for (const [label, setup, targetFields] of scenarios) {
          yield* fresh(
            Effect.gen(function* () {
              const vault = yield* InMemoryVaultHandle
              const metrics = yield* MetricsRecorder
              yield* seedManaged(oldCert.material)
              yield* vault.softDelete(NAME)
              setup(vault)
              const o = expectTag(
                yield* runDeploy(request(newCert.material, {}, target(targetFields))),
                "Failed",
              )
              assert.strictEqual(o.step, "soft-deleted", label)
              assert.isDefined(vault.latest(NAME), label)
              assert.strictEqual(metrics.count("certificateNotServed"), 0, label)
            }),
          )
        }
      }),
  )

  it.effect(
    "a read that fails, or a refused import over a served version, removes nothing (the vault may serve, or serves, a version)",
    () =>
      Effect.gen(function* () {
        for (const setup of [
          (v: VaultHandle) => v.script("getLatest", ...Fault.repeat(5, Fault.fail("Unavailable"))),
          (v: VaultHandle) => v.script("importVersion", Fault.fail("Forbidden")),
        ]) {
          yield* fresh(
            Effect.gen(function* () {
              const vault = yield* InMemoryVaultHandle
              const metrics = yield* MetricsRecorder
              yield* seedManaged(oldCert.material)
              setup(vault)
              expectTag(yield* runDeploy(request(newCert.material)), "Failed")
              assert.strictEqual(metrics.count("certificateNotServed"), 0)
            }),
          )
        }
      }),
  )
})

describe("a first deploy that writes nothing", () => {
  it.effect(
    "an import refused, or lost and then not in the version list Key Vault answers empty: both end Failed, and both remove the expiry series (nothing is served)",
    () =>
      Effect.gen(function* () {
        const scenarios: ReadonlyArray<readonly [string, "import" | "reconcile", FailKind]> = [
          ["import refused", "import", "Forbidden"],
          ["import's answer lost, the list empty", "reconcile", "Ambiguous"],
        ]
        for (const [label, step, kind] of scenarios) {
          yield* fresh(
            Effect.gen(function* () {
              const vault = yield* InMemoryVaultHandle
              const metrics = yield* MetricsRecorder
              vault.script("importVersion", Fault.fail(kind))
              const o = expectTag(yield* runDeploy(request(newCert.material)), "Failed")
              assert.strictEqual(o.step, step, label)
              assert.strictEqual(exitCodeOf(o), 1, label)
              // True of the vault: nothing under the name, and the list was read (empty) for a lost answer.
              assert.deepStrictEqual(vault.versions(NAME), [], label)
              assert.strictEqual(
                vault.calls().byOperation.listVersions,
                step === "reconcile" ? 1 : undefined,
                label,
              )
              assertOnlyNotServed(metrics, label)
            }),
          )
        }
      }),
  )

  it.effect(
    "a lost import whose version list shows a version (another writer's, or the one served before) removes nothing: the vault serves it; its expiry is set only when the run knows which version that is (the one the snapshot read, nothing created since)",
    () =>
      Effect.gen(function* () {
        const scenarios: ReadonlyArray<
          readonly [
            string,
            (vault: VaultHandle) => Effect.Effect<unknown, never, InMemoryVaultHandle>,
            ReadonlyArray<number>,
          ]
        > = [
          // A first deploy: the snapshot read nothing, so the run did not read the version served.
          [
            "another writer's import before the list",
            (v) => Effect.sync(() => v.script("listVersions", Fault.foreignImport(foreignCert.material))),
            [],
          ],
          // The list shows the snapshot's version and none created since: it is still served.
          [
            "a version served before the deploy",
            () => seedManaged(oldCert.material),
            [seconds(oldCert.notAfter)],
          ],
          // Another writer's version created since the snapshot's: which one is served is not known.
          [
            "a version served before the deploy, another writer's import before the list",
            (v) =>
              Effect.andThen(
                seedManaged(oldCert.material),
                Effect.sync(() => v.script("listVersions", Fault.foreignImport(foreignCert.material))),
              ),
            [],
          ],
        ]
        for (const [label, setup, expiry] of scenarios) {
          yield* fresh(
            Effect.gen(function* () {
              const vault = yield* InMemoryVaultHandle
              const metrics = yield* MetricsRecorder
              yield* setup(vault)
              vault.script("importVersion", Fault.fail("Ambiguous"))
              const o = expectTag(yield* runDeploy(request(newCert.material)), "Failed")
              assert.strictEqual(o.step, "reconcile", label)
              assert.strictEqual(o.error, "VaultAmbiguous", label)
              assert.isDefined(vault.latest(NAME), label)
              assert.strictEqual(metrics.count("certificateNotServed"), 0, label)
              assert.deepStrictEqual(
                metrics.events().flatMap((e) => (e.series === "certificateExpiry" ? [e.value] : [])),
                expiry,
                label,
              )
              // True of the vault: what the series names is what it serves.
              if (expiry.length > 0) assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t, label)
            }),
          )
        }
      }),
  )
})

describe("a deploy refused after the snapshot (Rejected: nothing written)", () => {
  it.effect(
    "the version the snapshot read is still served: its expiry, whoever wrote it (not managed by kvdeploy, a previous key that is not its own)",
    () =>
      Effect.gen(function* () {
        const scenarios: ReadonlyArray<
          readonly [
            string,
            Effect.Effect<unknown, never, InMemoryVaultHandle>,
            ReturnType<typeof request>,
            typeof oldCert,
            string,
          ]
        > = [
          [
            "another writer's certificate (not managed)",
            Effect.flatMap(Effect.service(InMemoryVaultHandle), (v) =>
              v.seed(NAME, foreignCert.material, { tags: { owner: "someone-else" } }),
            ),
            request(newCert.material),
            foreignCert,
            "not_managed",
          ],
          [
            "a previous key that is not the served certificate's",
            seedOld,
            request(newCert.material, { previousKey: withWrongKey(oldCert).key }),
            oldCert,
            "previous_key",
          ],
        ]
        for (const [label, setup, req, served, reason] of scenarios) {
          yield* fresh(
            Effect.gen(function* () {
              const vault = yield* InMemoryVaultHandle
              const metrics = yield* MetricsRecorder
              yield* setup
              const o = expectTag(yield* runDeploy(req), "Rejected")
              assert.deepStrictEqual(
                o.problems.map((p) => p.reason),
                [reason],
                label,
              )
              assert.strictEqual(vault.latest(NAME)?.x5t, served.x5t, label)
              assert.deepStrictEqual(
                metrics.events().filter((e) => e.series === "certificateExpiry"),
                [{ series: "certificateExpiry", label: series, value: seconds(served.notAfter) }],
                label,
              )
              assert.strictEqual(metrics.count("certificateNotServed"), 0, label)
            }),
          )
        }
      }),
  )

  it.effect(
    "a soft-deleted certificate of another writer's, left deleted: nothing is served, the series removed",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const metrics = yield* MetricsRecorder
          yield* vault.seed(NAME, foreignCert.material, { tags: { owner: "someone-else" } })
          yield* vault.softDelete(NAME)
          const o = expectTag(
            yield* runDeploy(request(newCert.material, {}, target({ on_soft_deleted: "recover" }))),
            "Rejected",
          )
          assert.deepStrictEqual(
            o.problems.map((p) => p.reason),
            ["not_managed"],
          )
          assert.isTrue(vault.isSoftDeleted(NAME))
          assert.isUndefined(vault.latest(NAME))
          assertOnlyNotServed(metrics, "left deleted")
        }),
      ),
  )
})

describe("the audit record", () => {
  it.effect("a RolledBack deploy: both versions it wrote, the snapshot it replaced, the exit code", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const previous = yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "RolledBack")
        const [record] = (yield* AuditRecords).all()
        assert.notStrictEqual(o.failedVersionId, o.rollbackVersionId)
        assert.strictEqual(record?.outcome, "RolledBack")
        assert.strictEqual(record?.exitCode, 3)
        assert.strictEqual(record?.versionId, o.failedVersionId)
        assert.strictEqual(record?.rollbackVersionId, o.rollbackVersionId)
        assert.strictEqual(record?.previousVersionId, previous.versionId)
        assert.strictEqual(record?.previousX5t, oldCert.x5t)
        assert.strictEqual(record?.newX5t, newCert.x5t)
        assert.notStrictEqual(oldCert.x5t, newCert.x5t)
      }),
    ),
  )

  it.effect(
    "a Failed deploy: the step, the vault error's tag and the port operation that failed, as the outcome says them; the other outcomes none",
    () =>
      Effect.gen(function* () {
        const scenarios: ReadonlyArray<
          readonly [
            string,
            (vault: VaultHandle) => Effect.Effect<void>,
            Record<string, unknown>,
            {
              readonly step: string | undefined
              readonly error: string | undefined
              readonly operation: string | undefined
            },
          ]
        > = [
          [
            "the snapshot refused",
            (v) => Effect.sync(() => v.script("getLatest", Fault.fail("Forbidden"))),
            {},
            { step: "snapshot", error: "VaultForbidden", operation: "getLatest" },
          ],
          [
            "the import refused",
            (v) => Effect.sync(() => v.script("importVersion", Fault.fail("Forbidden"))),
            {},
            { step: "import", error: "VaultForbidden", operation: "importVersion" },
          ],
          [
            "the import throttled",
            (v) => Effect.sync(() => v.script("importVersion", Fault.fail("Throttled"))),
            {},
            { step: "import", error: "VaultThrottled", operation: "importVersion" },
          ],
          [
            "the import's answer lost, the list without it",
            (v) => Effect.sync(() => v.script("importVersion", Fault.fail("Ambiguous"))),
            {},
            { step: "reconcile", error: "VaultAmbiguous", operation: "importVersion" },
          ],
          [
            "a soft-deleted name (on_soft_deleted: fail)",
            (v) => v.softDelete(NAME),
            {},
            { step: "soft-deleted", error: "VaultConflictSoftDeleted", operation: "importVersion" },
          ],
          [
            "its recovery refused",
            (v) =>
              Effect.andThen(
                v.softDelete(NAME),
                Effect.sync(() => v.script("recoverDeleted", Fault.fail("Forbidden"))),
              ),
            { on_soft_deleted: "recover" },
            { step: "soft-deleted", error: "VaultForbidden", operation: "recoverDeleted" },
          ],
        ]
        for (const [label, setup, targetFields, expected] of scenarios) {
          yield* fresh(
            Effect.gen(function* () {
              const vault = yield* InMemoryVaultHandle
              yield* seedOld
              yield* setup(vault)
              const o = expectTag(
                yield* runDeploy(request(newCert.material, {}, target(targetFields))),
                "Failed",
              )
              assert.deepStrictEqual(
                { step: o.step, error: o.error, operation: o.operation },
                expected,
                label,
              )
              const [record] = (yield* AuditRecords).all()
              assert.deepStrictEqual(
                { step: record?.step, error: record?.error, operation: record?.operation },
                expected,
                label,
              )
            }),
          )
        }
        yield* fresh(
          Effect.gen(function* () {
            expectTag(yield* Effect.andThen(seedOld, deployNew), "Succeeded")
            const [record] = (yield* AuditRecords).all()
            assert.isDefined(record)
            for (const key of ["step", "error", "operation"]) assert.notProperty(record, key)
          }),
        )
      }),
  )

  it.effect(
    "an Unverified or RollbackFailed deploy that a vault call ended: its step, the error's tag and the port operation, as a Failed one says them; one no call ended, and the Superseded and RolledBack ones, none",
    () =>
      Effect.gen(function* () {
        const none = { step: undefined, error: undefined, operation: undefined }
        const scenarios: ReadonlyArray<
          readonly [
            string,
            DeployOutcome["_tag"],
            (vault: VaultHandle) => void,
            {
              readonly step: string | undefined
              readonly error: string | undefined
              readonly operation: string | undefined
            },
          ]
        > = [
          [
            "the verify's read refused",
            "Unverified",
            (v) => v.script("getLatest", Fault.pass, Fault.fail("Forbidden")),
            { step: "verify", error: "VaultForbidden", operation: "getLatest" },
          ],
          [
            "the verify's reads throttled throughout",
            "Unverified",
            (v) => v.script("getLatest", Fault.pass, ...Fault.repeat(5, Fault.fail("Throttled"))),
            { step: "verify", error: "VaultThrottled", operation: "getLatest" },
          ],
          [
            "the import's answer lost, and the version list refused",
            "Unverified",
            (v) => {
              v.script("importVersion", Fault.afterWrite)
              v.script("listVersions", Fault.fail("Forbidden"))
            },
            { step: "reconcile", error: "VaultForbidden", operation: "listVersions" },
          ],
          [
            "the vault keeps answering the previous version (no call failed)",
            "Unverified",
            (v) => v.script("getLatest", Fault.pass, ...Fault.repeat(5, Fault.staleRead)),
            none,
          ],
          [
            "the rollback's backing secret refused (secrets/get)",
            "RollbackFailed",
            (v) => {
              v.setSecretsGet(false)
              v.script("importVersion", Fault.alter("drop-tags"))
            },
            { step: "rollback", error: "VaultForbidden", operation: "getVersionSecret" },
          ],
          [
            "the rollback's version list refused",
            "RollbackFailed",
            (v) => {
              v.script("importVersion", Fault.alter("drop-tags"))
              v.script("listVersions", Fault.fail("Forbidden"))
            },
            { step: "rollback", error: "VaultForbidden", operation: "listVersions" },
          ],
          [
            "the rollback's import refused",
            "RollbackFailed",
            (v) => v.script("importVersion", Fault.alter("drop-tags"), Fault.fail("Forbidden")),
            { step: "rollback", error: "VaultForbidden", operation: "importVersion" },
          ],
          [
            "the rollback's import answer lost, and not in the list",
            "RollbackFailed",
            (v) => v.script("importVersion", Fault.alter("drop-tags"), Fault.fail("Ambiguous")),
            { step: "rollback", error: "VaultAmbiguous", operation: "importVersion" },
          ],
          [
            "the rollback's verify read refused",
            "RollbackFailed",
            (v) => {
              v.script("importVersion", Fault.alter("drop-tags"))
              // The snapshot, the forward verify (a mismatch), the read before the rollback's import.
              v.script("getLatest", Fault.pass, Fault.pass, Fault.pass, Fault.fail("Forbidden"))
            },
            { step: "rollback", error: "VaultForbidden", operation: "getLatest" },
          ],
          [
            "the rollback's version also wrong (no call failed)",
            "RollbackFailed",
            (v) => v.script("importVersion", Fault.alter("drop-tags"), Fault.alter("drop-tags")),
            none,
          ],
          ["rolled back", "RolledBack", (v) => v.script("importVersion", Fault.alter("drop-tags")), none],
          [
            "rolled back, the versions not listed after it",
            "RolledBack",
            (v) => {
              v.script("importVersion", Fault.alter("drop-tags"))
              v.script("listVersions", Fault.pass, Fault.fail("Forbidden"))
            },
            none,
          ],
          [
            "superseded",
            "Superseded",
            (v) => v.script("getLatest", Fault.pass, Fault.foreignImport(foreignCert.material)),
            none,
          ],
        ]
        for (const [label, tag, setup, expected] of scenarios) {
          yield* fresh(
            Effect.gen(function* () {
              const vault = yield* InMemoryVaultHandle
              yield* seedOld
              setup(vault)
              const o = yield* runDeploy(request(newCert.material))
              assert.strictEqual(o._tag, tag, `${label}: ${o.reason}`)
              const fields = o as {
                readonly step?: string
                readonly error?: string
                readonly operation?: string
              }
              assert.deepStrictEqual(
                { step: fields.step, error: fields.error, operation: fields.operation },
                expected,
                label,
              )
              const [record] = (yield* AuditRecords).all()
              assert.isDefined(record)
              assert.deepStrictEqual(
                { step: record?.step, error: record?.error, operation: record?.operation },
                expected,
                label,
              )
              if (expected.error === undefined)
                for (const key of ["step", "error", "operation"]) assert.notProperty(record, key, label)
            }),
          )
        }
      }),
  )

  it.effect("a Rejected deploy: every problem with its field, message and fix", () =>
    fresh(
      Effect.gen(function* () {
        const config = { ...target(), certificateName: "bad name!" }
        const o = expectTag(yield* runDeploy(request(withWrongKey(newCert), {}, config)), "Rejected")
        const [record] = (yield* AuditRecords).all()
        assert.strictEqual(record?.exitCode, exitCodeOf(o))
        assert.strictEqual(record?.exitCode, 2)
        assert.deepStrictEqual(
          record?.problems.map((p) => p.field),
          ["certificate_name", "key"],
        )
        assert.deepStrictEqual(
          record?.problems,
          o.problems.map((p) => ({ field: p.field, message: p.message, fix: p.fix })),
        )
      }),
    ),
  )
})

describe("a certificate id that is no id", () => {
  it.effect(
    "a pasted key, PEM text or a line break as the id: Rejected, nothing sent, the value in no outcome or audit record",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const audit = yield* AuditRecords
          // A real key's DER (this test world's material is synthetic, not DER).
          const keyBase64 = generateKeyPairSync("ec", { namedCurve: "P-256" })
            .privateKey.export({ format: "der", type: "pkcs8" })
            .toString("base64")
          for (const id of [keyBase64, "-----BEGIN PRIVATE KEY-----", "web\napi"]) {
            const o = expectTag(
              yield* runDeploy({ ...request(newCert.material), certificateId: id }),
              "Rejected",
            )
            assert.deepStrictEqual(
              o.problems.map((p) => [p.field, p.reason]),
              [["certificateId", "tags"]],
            )
            assert.match(o.problems[0]?.message ?? "", /certctl-certificate-id tag value/)
            assert.strictEqual(o.certificateId, withheldCertificateId)
            assert.strictEqual(audit.all().at(-1)?.certificateId, withheldCertificateId)
            assert.strictEqual(o.vaultCalls, 0)
            const shown = JSON.stringify([o, audit.all().at(-1)])
            assert.notInclude(shown, id.slice(0, 40))
          }
          assert.isUndefined(vault.latest(NAME))
          // An ordinary id goes through.
          expectTag(
            yield* runDeploy({ ...request(newCert.material), certificateId: "web-api/2026" }),
            "Succeeded",
          )
        }),
      ),
  )
})

const series = `${target().vaultUrl}/${NAME}`
const seconds = (d: Date): number => d.getTime() / 1000

const seedOld = seedManaged(oldCert.material)
const deployNew = runDeploy(request(newCert.material))
const withVault = <A>(f: (vault: VaultHandle) => A) => Effect.map(Effect.service(InMemoryVaultHandle), f)

interface Case {
  readonly name: string
  readonly tag: DeployOutcome["_tag"]
  /** Sets the vault up and deploys. */
  readonly run: Effect.Effect<DeployOutcome, never, Effect.Services<typeof deployNew> | InMemoryVaultHandle>
  /** The deploy's metric events but the duration and the vault requests, in order. */
  readonly events: ReadonlyArray<readonly [string, string | number]>
}

const cases: ReadonlyArray<Case> = [
  {
    name: "Succeeded: the new certificate's expiry",
    tag: "Succeeded",
    run: Effect.andThen(seedOld, deployNew),
    events: [
      ["deployAttempt", "succeeded"],
      ["certificateExpiry", seconds(newCert.notAfter)],
    ],
  },
  {
    name: "Skipped: one idempotent skip, the served certificate's expiry",
    tag: "Skipped",
    run: Effect.andThen(seedManaged(newCert.material), deployNew),
    events: [
      ["deployAttempt", "skipped"],
      ["idempotentSkip", ""],
      ["certificateExpiry", seconds(newCert.notAfter)],
    ],
  },
  {
    name: "Rejected: the reason, nothing about what is served",
    tag: "Rejected",
    run: Effect.andThen(seedOld, runDeploy(request(withWrongKey(newCert)))),
    events: [
      ["deployAttempt", "rejected"],
      ["validateFailure", "key_mismatch"],
    ],
  },
  {
    name: "Failed at the import: the snapshot's expiry (it is still served)",
    tag: "Failed",
    run: Effect.andThen(
      seedOld,
      Effect.andThen(
        withVault((v) => v.script("importVersion", Fault.fail("Rejected"))),
        deployNew,
      ),
    ),
    events: [
      ["deployAttempt", "failed"],
      ["certificateExpiry", seconds(oldCert.notAfter)],
    ],
  },
  {
    name: "Unverified: one unreadable verify, no expiry (what is served is not known)",
    tag: "Unverified",
    run: Effect.andThen(
      seedOld,
      Effect.andThen(
        withVault((v) => v.script("getLatest", Fault.pass, ...Fault.repeat(5, Fault.fail("Unavailable")))),
        deployNew,
      ),
    ),
    events: [
      ["deployAttempt", "unverified"],
      ["postVerifyFailure", "unreadable"],
    ],
  },
  {
    name: "RolledBack: the mismatch, the restored rollback, the previous certificate's expiry",
    tag: "RolledBack",
    run: Effect.andThen(
      seedOld,
      Effect.andThen(
        withVault((v) => v.script("importVersion", Fault.alter("drop-tags"))),
        deployNew,
      ),
    ),
    events: [
      ["deployAttempt", "rolled_back"],
      ["postVerifyFailure", "mismatch"],
      ["rollback", "restored"],
      ["certificateExpiry", seconds(oldCert.notAfter)],
    ],
  },
  {
    name: "RollbackFailed: the mismatch and the failed rollback, no expiry",
    tag: "RollbackFailed",
    run: Effect.andThen(
      seedOld,
      Effect.andThen(
        withVault((v) => {
          v.setSecretsGet(false)
          v.script("importVersion", Fault.alter("drop-tags"))
        }),
        deployNew,
      ),
    ),
    events: [
      ["deployAttempt", "rollback_failed"],
      ["postVerifyFailure", "mismatch"],
      ["rollback", "also_failed"],
    ],
  },
  {
    name: "Superseded: the verify's failure as superseded, the other writer's certificate's expiry, no rollback",
    tag: "Superseded",
    run: Effect.andThen(
      seedOld,
      Effect.andThen(
        withVault((v) => v.script("getLatest", Fault.pass, Fault.foreignImport(foreignCert.material))),
        deployNew,
      ),
    ),
    events: [
      ["deployAttempt", "superseded"],
      ["postVerifyFailure", "superseded"],
      ["certificateExpiry", seconds(foreignCert.notAfter)],
    ],
  },
]

/**
 * Every metric a deploy records, for each outcome: the whole list, so a series counted for an
 * outcome it does not belong to fails here (a mutation run showed that an idempotent skip, or a
 * rollback, counted after every deploy went unnoticed by the cases above). The vault request
 * series are the adapter's, not the deploy program's, and are left out; the duration is checked apart.
 */
describe("the whole list of metrics a deploy records, by outcome", () => {
  for (const c of cases)
    it.effect(c.name, () =>
      fresh(
        Effect.gen(function* () {
          const metrics = yield* MetricsRecorder
          const o = expectTag(yield* c.run, c.tag)
          const events = metrics
            .events()
            .filter((e) => e.series !== "vaultRequest" && e.series !== "vaultThrottled")
          assert.deepStrictEqual(
            events
              .filter((e) => e.series !== "deployDuration")
              .map((e) => [e.series, e.series === "certificateExpiry" ? e.value : e.label] as const),
            c.events,
          )
          for (const e of events) if (e.series === "certificateExpiry") assert.strictEqual(e.label, series)
          // One duration, in seconds: the outcome's own timing.
          assert.deepStrictEqual(
            events.flatMap((e) => (e.series === "deployDuration" ? [e.value] : [])),
            [o.timings.durationMs / 1000],
          )
        }),
      ),
    )
})
