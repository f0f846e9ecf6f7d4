/**
 * The rollback's last read before its import, and the confirmation of another writer's version
 * (forward verify and rollback verify), in what an operator reads: the outcome, what was written,
 * the decisions and the vault calls. Each case here was left unchecked by the suite: a mutation run
 * (Stryker) changed the code it covers and the suite still passed.
 */
import { assert, describe, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"
import {
  PKCS12_CONTENT_TYPE,
  ROLLBACK_OF_TAG,
  Vault,
  VaultForbidden,
  type VaultVersion,
} from "../src/index.js"
import {
  Fault,
  InMemoryVaultHandle,
  issue,
  MetricsRecorder,
  makeAuthority,
  type StoredVersion,
} from "../src/testing/index.js"
import {
  expectTag,
  fresh,
  lostImportAndItsDuplicate,
  managedTags,
  NAME,
  request,
  runDeploy,
  seedManaged,
} from "./fixtures.js"

const ca = makeAuthority("rollback-last-read")
const oldCert = issue({ seed: "old", issuer: ca })
const newCert = issue({ seed: "new", issuer: ca })
const foreign = issue({ seed: "foreign", issuer: ca })

/** A copy of a stored version, as the port answers it. */
const asAnswer = (v: VaultVersion): VaultVersion => ({ ...v, tags: { ...v.tags } })

/**
 * The Vault port with its n-th `getLatest` (counted from 1) answered by `lag(n, versions)` when that
 * gives a version (a replica that lags), else by the vault.
 */
const lagging = (
  lag: (n: number, versions: ReadonlyArray<StoredVersion>) => VaultVersion | undefined,
): Effect.Effect<(typeof Vault)["Service"], never, Vault | InMemoryVaultHandle> =>
  Effect.gen(function* () {
    const vault = yield* InMemoryVaultHandle
    const port = yield* Vault
    let reads = 0
    return {
      ...port,
      getLatest: (name: string) =>
        Effect.suspend(() => {
          const answer = lag(++reads, vault.versions(NAME))
          return answer === undefined ? port.getLatest(name) : Effect.succeed(asAnswer(answer))
        }),
    }
  })

/** `port` with the rollback's read of the previous version's secret two seconds after the failed import. */
const secretReadLater = (port: (typeof Vault)["Service"]): (typeof Vault)["Service"] => ({
  ...port,
  getVersionSecret: (...args) =>
    Effect.andThen(TestClock.adjust("2 seconds"), port.getVersionSecret(...args)),
})

/** The deploy's import of the new certificate (the failed version, in these tests). */
const failedOf = (versions: ReadonlyArray<StoredVersion>) =>
  versions.find((v) => v.writer === "deploy" && v.x5t === newCert.x5t)

describe("the rollback's last read before its import", () => {
  it.effect("it cannot be made: RollbackFailed, nothing written, and the decisions say why", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.alter("drop-tags"))
        vault.script("getLatest", Fault.pass, Fault.pass, Fault.fail("Forbidden"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
        assert.isUndefined(o.rollbackVersionId)
        assert.strictEqual(vault.calls().byOperation.importVersion, 1)
        assert.include(
          o.decisions,
          "rollback: the latest could not be read again before the import (VaultForbidden); not written",
        )
        // Nothing of the rollback's content type was written.
        assert.strictEqual(o.contentType?.imported, PKCS12_CONTENT_TYPE)
        assert.isUndefined(o.contentType?.restored)
      }),
    ),
  )

  it.effect(
    "it lags on the snapshot (older than the failed version, not another writer's): the rollback is written, RolledBack",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const snapshot = yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          // Snapshot (1), verify (2); the read before the rollback's import (3) and the next (4) come
          // from a replica that has neither the failed version nor the rollback.
          const port = yield* lagging((n) => (n === 3 || n === 4 ? snapshot : undefined))
          const o = expectTag(
            yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, port)),
            "RolledBack",
          )
          const served = vault.latest(NAME)
          assert.strictEqual(served?.x5t, oldCert.x5t)
          assert.strictEqual(served?.tags[ROLLBACK_OF_TAG], o.failedVersionId)
          assert.strictEqual(o.rollbackVersionId, served?.versionId)
          assert.strictEqual(vault.calls().byOperation.importVersion, 2)
        }),
      ),
  )

  it.effect(
    "another writer's version of the failed version's second, confirmed: the decisions say so, and not that reads serve ours",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          // The other writer lands while the rollback reads the previous version's backing secret.
          vault.script("getVersionSecret", Fault.foreignImport(foreign.material))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "Superseded")
          const other = vault.latest(NAME)
          assert.strictEqual(other?.writer, "foreign")
          assert.include(o.decisions, `rollback: another writer's ${other?.versionId} is latest; not written`)
          assert.notInclude(o.decisions, "rollback: two more reads serve ours, not the other writer's")
        }),
      ),
  )

  it.effect(
    "another writer's version of the failed version's second, then reads that keep disagreeing: RollbackFailed, nothing written",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const metrics = yield* MetricsRecorder
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          vault.script("getVersionSecret", Fault.foreignImport(foreign.material))
          // The read before the rollback's import (3) shows the other writer's version; the reads
          // confirming it alternate with a replica still serving the failed version (4, 6).
          const port = yield* lagging((n, versions) => (n === 4 || n === 6 ? failedOf(versions) : undefined))
          const o = expectTag(
            yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, port)),
            "RollbackFailed",
          )
          assert.match(o.reason, /could not be established just before the rollback's import/)
          assert.match(o.reason, /keep disagreeing/)
          assert.isUndefined(o.rollbackVersionId)
          // Not written over the other writer's version, which the vault serves.
          assert.strictEqual(vault.latest(NAME)?.writer, "foreign")
          assert.strictEqual(vault.calls().byOperation.importVersion, 1)
          assert.isUndefined(vault.versions(NAME).find((v) => v.tags[ROLLBACK_OF_TAG] !== undefined))
          assert.include(
            o.decisions,
            "rollback: the latest could not be established before the import; not written",
          )
          assert.strictEqual(metrics.count("rollback", "also_failed"), 1)
        }),
      ),
  )

  it.effect(
    "another writer's version of the failed version's second, and the read to confirm it fails: RollbackFailed, not Superseded, nothing written",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          vault.script("getVersionSecret", Fault.foreignImport(foreign.material))
          // Snapshot (1), verify (2), the read before the rollback's import (3, the other writer's
          // version), and the read confirming it (4) fails: one read of a same-second version proves
          // nothing (a lagging replica shows the same), so our wrong version may be what is served.
          vault.script("getLatest", Fault.pass, Fault.pass, Fault.pass, Fault.fail("Unavailable"))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
          assert.match(o.reason, /could not be established just before the rollback's import/)
          assert.match(o.reason, /the read to confirm it failed/)
          assert.isUndefined(o.rollbackVersionId)
          assert.strictEqual(vault.calls().byOperation.importVersion, 1)
          assert.strictEqual(vault.calls().byOperation.getLatest, 4)
        }),
      ),
  )

  it.effect(
    "another writer's version of a later second needs no confirming: Superseded on one read, whatever a replica shows next",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          vault.script("getVersionSecret", Fault.foreignImport(foreign.material))
          const flapping = yield* lagging((n, versions) =>
            n === 4 || n === 6 ? failedOf(versions) : undefined,
          )
          // The other writer's version lands two seconds after the failed import.
          const port = secretReadLater(flapping)
          const o = expectTag(
            yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, port)),
            "Superseded",
          )
          const other = vault.latest(NAME)
          assert.strictEqual(other?.writer, "foreign")
          assert.strictEqual(o.supersededBy.versionId, other?.versionId)
          assert.isUndefined(o.rollbackVersionId)
          assert.strictEqual(vault.calls().byOperation.importVersion, 1)
          // Snapshot, verify, the read before the rollback's import: no more.
          assert.strictEqual(vault.calls().byOperation.getLatest, 3)
        }),
      ),
  )
})

describe("another writer's version from between the snapshot and the failed import", () => {
  /** The Vault port whose first import runs `meanwhile` first (other writers between the snapshot and it). */
  const beforeOurImport = (
    meanwhile: (vault: (typeof InMemoryVaultHandle)["Service"]) => Effect.Effect<unknown>,
  ) =>
    Effect.gen(function* () {
      const vault = yield* InMemoryVaultHandle
      const port = yield* Vault
      let imports = 0
      return {
        ...port,
        importVersion: (req: Parameters<(typeof Vault)["Service"]["importVersion"]>[0]) =>
          ++imports > 1 ? port.importVersion(req) : Effect.andThen(meanwhile(vault), port.importVersion(req)),
      } satisfies (typeof Vault)["Service"]
    })

  /**
   * Another writer's import of `foreign` before the deploy's: `after` the snapshot (in its second
   * with "0 seconds"), the deploy's import a second later.
   */
  const foreignBeforeOurImport = (after: Duration.Input = "2 seconds") =>
    beforeOurImport((vault) =>
      Effect.gen(function* () {
        yield* TestClock.adjust(after)
        yield* vault.seed(NAME, foreign.material, { writer: "foreign", tags: { owner: "ops" } })
        yield* TestClock.adjust("1 second")
      }),
    )

  it.effect("the verify finds ours wrong: no rollback over it, RollbackFailed naming it", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const metrics = yield* MetricsRecorder
        const snapshot = yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const port = yield* foreignBeforeOurImport()
        const o = expectTag(
          yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, port)),
          "RollbackFailed",
        )
        const other = vault.versions(NAME).find((v) => v.writer === "foreign")
        assert.isDefined(other)
        // The snapshot's certificate was not put back over the other writer's: the vault serves ours
        // (the failed version, newer than it), and no rollback version exists.
        assert.strictEqual(vault.latest(NAME)?.versionId, o.failedVersionId)
        assert.strictEqual(vault.calls().byOperation.importVersion, 1)
        assert.isUndefined(vault.versions(NAME).find((v) => v.tags[ROLLBACK_OF_TAG] !== undefined))
        assert.isUndefined(o.rollbackVersionId)
        assert.include(
          o.reason,
          `another writer imported a version after the snapshot (${snapshot.versionId}) was read: ${other?.versionId}`,
        )
        assert.include(o.reason, "so no rollback was written")
        assert.include(
          o.decisions,
          `rollback: another writer imported ${other?.versionId} since the snapshot; not written`,
        )
        assert.strictEqual(metrics.count("rollback", "also_failed"), 1)
      }),
    ),
  )

  it.effect(
    "the versions cannot be listed before the rollback's import: RollbackFailed, nothing written",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          vault.script("listVersions", ...Fault.repeat(10, Fault.fail("Forbidden")))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
          assert.match(
            o.reason,
            /versions could not be listed just before the rollback's import, so no rollback was written/,
          )
          assert.strictEqual(vault.calls().byOperation.importVersion, 1)
          assert.isUndefined(vault.versions(NAME).find((v) => v.tags[ROLLBACK_OF_TAG] !== undefined))
          assert.include(
            o.decisions,
            "rollback: the versions could not be listed before the import (VaultForbidden); not written",
          )
        }),
      ),
  )

  it.effect(
    "another writer's version from the snapshot's own second could be newer: RollbackFailed, nothing written",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          const port = yield* foreignBeforeOurImport("0 seconds")
          const o = expectTag(
            yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, port)),
            "RollbackFailed",
          )
          const other = vault.versions(NAME).find((v) => v.writer === "foreign")
          assert.strictEqual(other?.createdAt.getTime(), vault.versions(NAME)[0]?.createdAt.getTime())
          assert.include(o.reason, `was read: ${other?.versionId}`)
          assert.strictEqual(vault.calls().byOperation.importVersion, 1)
        }),
      ),
  )

  it.effect(
    "another deployer of this certificate imported it and rolled it back meanwhile (kvdeploy's tags, the same two certificates): not counted, RolledBack",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          const racing = yield* beforeOurImport((v) =>
            Effect.gen(function* () {
              yield* TestClock.adjust("2 seconds")
              const theirs = yield* v.seed(NAME, newCert.material, { tags: managedTags })
              yield* TestClock.adjust("1 second")
              yield* v.seed(NAME, oldCert.material, {
                tags: { ...managedTags, [ROLLBACK_OF_TAG]: theirs.versionId },
              })
              yield* TestClock.adjust("1 second")
            }),
          )
          vault.script("importVersion", Fault.alter("drop-tags"))
          const o = expectTag(
            yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, racing)),
            "RolledBack",
          )
          assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
          assert.strictEqual(vault.latest(NAME)?.tags[ROLLBACK_OF_TAG], o.failedVersionId)
        }),
      ),
  )

  it.effect(
    "the list shows another writer's version newer than ours while the latest read lags on ours: Superseded, nothing written",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          // The other writer lands two seconds after the failed import, during the secret's read.
          vault.script("getVersionSecret", Fault.foreignImport(foreign.material))
          const port = secretReadLater(
            yield* lagging((n, versions) => (n === 3 ? failedOf(versions) : undefined)),
          )
          const o = expectTag(
            yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, port)),
            "Superseded",
          )
          const other = vault.latest(NAME)
          assert.strictEqual(other?.writer, "foreign")
          assert.strictEqual(o.supersededBy.versionId, other?.versionId)
          assert.isUndefined(o.rollbackVersionId)
          assert.strictEqual(vault.calls().byOperation.importVersion, 1)
          assert.include(
            o.decisions,
            `rollback: the versions list another writer's ${other?.versionId}, newer than ours; not written`,
          )
        }),
      ),
  )

  it.effect(
    "another writer lands after the list is read: the latest read after it, the last before the import, sees it: Superseded",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const port = yield* Vault
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          const racing: (typeof Vault)["Service"] = {
            ...port,
            listVersions: (name) =>
              Effect.gen(function* () {
                const listed = yield* port.listVersions(name)
                yield* TestClock.adjust("2 seconds")
                yield* vault.seed(NAME, foreign.material, { writer: "foreign", tags: { owner: "ops" } })
                return listed
              }),
          }
          const o = expectTag(
            yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, racing)),
            "Superseded",
          )
          assert.strictEqual(vault.latest(NAME)?.writer, "foreign")
          assert.strictEqual(o.supersededBy.versionId, vault.latest(NAME)?.versionId)
          assert.strictEqual(vault.calls().byOperation.importVersion, 1)
        }),
      ),
  )

  for (const [what, seedEarlier] of [
    [
      "this certificate's earlier deploy (kvdeploy's tags, this certificate id)",
      (vault: (typeof InMemoryVaultHandle)["Service"]) =>
        Effect.gen(function* () {
          yield* vault.seed(NAME, foreign.material, { tags: managedTags })
          return yield* vault.seed(NAME, oldCert.material, { tags: managedTags })
        }),
    ],
    [
      "the version the snapshot rolled back (another writer's)",
      (vault: (typeof InMemoryVaultHandle)["Service"]) =>
        Effect.gen(function* () {
          const undone = yield* vault.seed(NAME, foreign.material, {
            writer: "foreign",
            tags: { owner: "ops" },
          })
          return yield* vault.seed(NAME, oldCert.material, {
            tags: { ...managedTags, [ROLLBACK_OF_TAG]: undone.versionId },
          })
        }),
    ],
  ] as const)
    it.effect(`a version of the snapshot's own second that is ${what} is taken for older: RolledBack`, () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const snapshot = yield* seedEarlier(vault)
          assert.strictEqual(vault.versions(NAME)[0]?.createdAt.getTime(), snapshot.createdAt.getTime())
          yield* TestClock.adjust("3 seconds")
          vault.script("importVersion", Fault.alter("drop-tags"))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RolledBack")
          assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
          assert.strictEqual(vault.latest(NAME)?.tags[ROLLBACK_OF_TAG], o.failedVersionId)
        }),
      ),
    )
})

describe("the rollback's verify", () => {
  it.effect(
    "another writer's version of a later second than the rollback: Superseded on one read, whatever a replica shows next",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          // Snapshot, verify, the read before the rollback's import; the other writer lands just
          // before the rollback's verify reads, two seconds after the rollback.
          vault.script("getLatest", Fault.pass, Fault.pass, Fault.pass, Fault.foreignImport(foreign.material))
          const rollbackOf = (versions: ReadonlyArray<StoredVersion>) =>
            versions.find((v) => v.tags[ROLLBACK_OF_TAG] !== undefined)
          const flapping = yield* lagging((n, versions) =>
            n === 5 || n === 7 ? rollbackOf(versions) : undefined,
          )
          let imports = 0
          const port: (typeof Vault)["Service"] = {
            ...flapping,
            importVersion: (r) =>
              Effect.tap(flapping.importVersion(r), () =>
                ++imports === 2 ? TestClock.adjust("2 seconds") : Effect.void,
              ),
          }
          const o = expectTag(
            yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, port)),
            "Superseded",
          )
          const rolledBack = rollbackOf(vault.versions(NAME))
          assert.isDefined(rolledBack)
          assert.strictEqual(o.rollbackVersionId, rolledBack?.versionId)
          assert.strictEqual(o.supersededBy.versionId, vault.latest(NAME)?.versionId)
          assert.strictEqual(vault.latest(NAME)?.writer, "foreign")
          assert.strictEqual(vault.calls().byOperation.getLatest, 4)
          // The rollback was written: the outcome says the content type it restored.
          assert.strictEqual(o.contentType?.restored, PKCS12_CONTENT_TYPE)
        }),
      ),
  )

  it.effect(
    "a reconciliation's other candidate for the failed import, served by a lagging replica: older than the rollback, RolledBack",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          yield* lostImportAndItsDuplicate(newCert.material)
          // After the rollback's import, two reads come from a replica serving our first candidate.
          let afterRollback = 0
          const port = yield* lagging((_n, versions) => {
            if (!versions.some((v) => v.tags[ROLLBACK_OF_TAG] !== undefined)) return undefined
            return ++afterRollback <= 2 ? failedOf(versions) : undefined
          })
          const o = yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, port))
          assert.strictEqual(afterRollback, 3)
          assert.strictEqual(o._tag, "RolledBack", o.reason)
          const served = vault.latest(NAME)
          assert.strictEqual(served?.x5t, oldCert.x5t)
          assert.strictEqual(expectTag(o, "RolledBack").rollbackVersionId, served?.versionId)
        }),
      ),
  )
})

describe("the forward verify", () => {
  it.effect(
    "another writer's version of a later second than ours: Superseded on one read, whatever a replica shows next",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          // The other writer lands just before the verify reads, two seconds after our import.
          vault.script("getLatest", Fault.pass, Fault.foreignImport(foreign.material))
          const flapping = yield* lagging((n, versions) =>
            n === 3 || n === 5 ? failedOf(versions) : undefined,
          )
          const port: (typeof Vault)["Service"] = {
            ...flapping,
            importVersion: (r) => Effect.tap(flapping.importVersion(r), () => TestClock.adjust("2 seconds")),
          }
          const o = expectTag(
            yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, port)),
            "Superseded",
          )
          assert.strictEqual(o.versionId, failedOf(vault.versions(NAME))?.versionId)
          assert.strictEqual(o.supersededBy.versionId, vault.latest(NAME)?.versionId)
          assert.strictEqual(vault.calls().byOperation.getLatest, 2)
        }),
      ),
  )

  it.effect(
    "a confirming read that was never sent (no token): Unverified, and not counted among the vault calls",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          // Another writer's version of our second is latest at the verify; the read confirming it
          // gets no token.
          vault.script("getLatest", Fault.pass, Fault.foreignImport(foreign.material))
          const base = yield* lagging(() => undefined)
          let reads = 0
          const port: (typeof Vault)["Service"] = {
            ...base,
            getLatest: (name) =>
              ++reads === 3
                ? Effect.fail(
                    new VaultForbidden({
                      operation: "getLatest",
                      detail: "no token",
                      unsent: true,
                      refusal: "token",
                    }),
                  )
                : base.getLatest(name),
          }
          const o = expectTag(
            yield* runDeploy(request(newCert.material)).pipe(Effect.provideService(Vault, port)),
            "Unverified",
          )
          // One read of another writer's version from our second, unconfirmed: not Superseded.
          assert.match(o.reason, /the read to confirm it failed/)
          assert.strictEqual(reads, 3)
          // Snapshot, import, verify: the vault received three calls, and the outcome says three.
          assert.strictEqual(vault.calls().total, 3)
          assert.strictEqual(o.vaultCalls, 3)
        }),
      ),
  )
})

describe("the content type an outcome says a rollback restored", () => {
  it.effect(
    "the rollback was written and is wrong too: RollbackFailed names it and the content type it restored",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"), Fault.alter("drop-tags"))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
          assert.match(o.reason, /rollback version is also wrong/)
          assert.strictEqual(o.rollbackVersionId, vault.latest(NAME)?.versionId)
          assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
          assert.strictEqual(o.contentType?.restored, PKCS12_CONTENT_TYPE)
        }),
      ),
  )
})

describe("a read of the latest answered 404 names no error, wherever the deploy reads it", () => {
  /** The outcome's ended-by error, as the CLI's --json and the audit record carry it. */
  const endedBy = (o: { readonly step?: string; readonly error?: string; readonly operation?: string }) => ({
    step: o.step,
    error: o.error,
    operation: o.operation,
  })
  const none = { step: undefined, error: undefined, operation: undefined }

  it.effect("the verify's reads: every one 404 after the snapshot", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("getLatest", Fault.pass, ...Fault.repeat(6, Fault.fail("NotFound")))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Unverified")
        assert.deepStrictEqual(endedBy(o), none)
      }),
    ),
  )

  it.effect("the verify's read confirming another writer's version from our second", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("getLatest", Fault.pass, Fault.foreignImport(foreign.material), Fault.fail("NotFound"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "Unverified")
        assert.match(o.reason, /the read to confirm it failed \(.*not found/)
        assert.deepStrictEqual(endedBy(o), none)
      }),
    ),
  )

  it.effect("the rollback's last read before its import", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.alter("drop-tags"))
        vault.script("getLatest", Fault.pass, Fault.pass, Fault.fail("NotFound"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
        assert.isUndefined(o.rollbackVersionId)
        assert.include(
          o.decisions,
          "rollback: the latest could not be read again before the import (VaultNotFound); not written",
        )
        assert.match(o.reason, /could not be read again just before the rollback's import.*not found/)
        assert.deepStrictEqual(endedBy(o), none)
      }),
    ),
  )

  it.effect("the rollback's verify: every read 404 after the rollback's import", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.alter("drop-tags"))
        vault.script(
          "getLatest",
          Fault.pass,
          Fault.pass,
          Fault.pass,
          ...Fault.repeat(6, Fault.fail("NotFound")),
        )
        const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
        assert.isDefined(o.rollbackVersionId)
        assert.deepStrictEqual(endedBy(o), none)
      }),
    ),
  )
})
