/**
 * Invariants I1-I5 of the deploy program over random vault histories and
 * random fault schedules (fast-check, 1,000 schedules by default; set
 * KVDEPLOY_PROPERTY_RUNS for more). After every run the reported outcome must
 * be true of the in-memory vault (I3). Without faults, the outcome must also be
 * the one the contract's steps give for the scenario (a deploy that gives up
 * truthfully where it must not, such as a recovery never tried, fails there).
 * Another writer's recovery of a soft-deleted certificate is among the faults,
 * and what a deploy's `recovered` claims is checked against the recoveries the
 * vault made (this deploy's or another writer's) and the answer its recover
 * call got.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import {
  CERTIFICATE_ID_TAG,
  type DeployOutcome,
  DeployPolicy,
  deploy,
  exitCodeOf,
  hasTags,
  isManagedByKvdeploy,
  MANAGED_BY_TAG,
  PfxCodec,
  ROLLBACK_OF_TAG,
  resultLabelOf,
  Vault,
  withoutReserved,
} from "../src/index.js"
import type { VaultOperation } from "../src/ports/Vault.js"
import { arbFault, arbIssuedMaterial } from "../src/testing/arbitraries.js"
import {
  type AlterChange,
  AuditRecords,
  Fault,
  InMemoryAuditLog,
  InMemoryVault,
  InMemoryVaultHandle,
  issue,
  MetricsRecorder,
  makeAuthority,
  RecordingMetrics,
  runAdvancingClock,
  SyntheticCodec,
  withWrongKey,
} from "../src/testing/index.js"
import { CERT_ID, managedTags, NAME, request, target, toJson } from "./fixtures.js"

const RUNS = Number(process.env.KVDEPLOY_PROPERTY_RUNS ?? 1000)
/**
 * The seed every property in this file runs with: random unless KVDEPLOY_PROPERTY_SEED is set, and
 * named in every coverage assertion's message (fast-check names it only when a property fails), so
 * a run that misses an outcome can be replayed.
 */
const SEED = ((): number => {
  const text = process.env.KVDEPLOY_PROPERTY_SEED
  if (text === undefined || text === "") return (Date.now() ^ (Math.random() * 0x100000000)) | 0
  const seed = Number(text)
  if (!Number.isSafeInteger(seed))
    throw new Error(
      `KVDEPLOY_PROPERTY_SEED must be an integer (the seed a failing run printed), not ${JSON.stringify(text)}`,
    )
  return seed | 0
})()
const replay = `seed ${SEED}: rerun with KVDEPLOY_PROPERTY_SEED=${SEED} KVDEPLOY_PROPERTY_RUNS=${RUNS}`

const ca = makeAuthority("prop")
const pool = Array.from({ length: 5 }, (_, i) => issue({ seed: `pool-${i}`, issuer: ca }))
const foreignPool = Array.from({ length: 2 }, (_, i) => issue({ seed: `foreign-${i}`, issuer: ca }))
const allSecrets = [...pool, ...foreignPool].map((m) => m.key.body.secret)

/** I4 guard: a codec that records every attempt to encode a key with a certificate it does not match. */
const mismatchedEncodes: Array<string> = []
const guardedCodec: (typeof PfxCodec)["Service"] = {
  inspect: SyntheticCodec.inspect,
  decode: SyntheticCodec.decode,
  encode: (material, options) =>
    Effect.flatMap(Effect.orDie(SyntheticCodec.inspect(material)), (inspected) => {
      if (!inspected.keyMatchesLeaf) mismatchedEncodes.push(inspected.leaf.x5t)
      return SyntheticCodec.encode(material, options)
    }),
  encodePem: (material) =>
    Effect.flatMap(Effect.orDie(SyntheticCodec.inspect(material)), (inspected) => {
      if (!inspected.keyMatchesLeaf) mismatchedEncodes.push(inspected.leaf.x5t)
      return SyntheticCodec.encodePem(material)
    }),
}
const GuardedCodec = Layer.succeed(PfxCodec, guardedCodec)
/** The same codec stating its size bound: preflight does not build the PFX, the deploy builds it later. */
const guardedCodecWithBound: (typeof PfxCodec)["Service"] = {
  ...guardedCodec,
  maxEncodedBytes: SyntheticCodec.maxEncodedBytes,
}
const World = Layer.mergeAll(
  InMemoryVault.layer.pipe(Layer.provideMerge(GuardedCodec)),
  RecordingMetrics.layer,
  InMemoryAuditLog.layer,
)

const arbFaultFor = (operation: VaultOperation, write: boolean): fc.Arbitrary<Fault> =>
  fc.oneof(
    { weight: 6, arbitrary: arbFault({ write }) },
    {
      // A foreign writer's import, sometimes by another kvdeploy (managed tags, another certificate id).
      weight: 1,
      arbitrary: fc.tuple(fc.constantFrom(...foreignPool), fc.boolean()).map(
        ([m, managed]): Fault => ({
          _tag: "ForeignImport",
          material: m.material,
          tags: managed ? { ...managedTags, "certctl-certificate-id": "other" } : { owner: "other" },
        }),
      ),
    },
    {
      // Another writer deletes the certificate, before the call or after it.
      weight: 1,
      arbitrary: fc
        .constantFrom("before" as const, "after" as const)
        .map((when) => Fault.foreignDelete(when)),
    },
    {
      // Another writer recovers the soft-deleted certificate just before the call; a recovery of
      // this deploy's may then be answered 404, as a recover POST sent before that recovery showed.
      weight: 1,
      arbitrary:
        operation === "recoverDeleted"
          ? fc.constantFrom(Fault.foreignRecover, Fault.foreignRecoverUnshown)
          : fc.constant(Fault.foreignRecover),
    },
  )

const operations: ReadonlyArray<[VaultOperation, boolean]> = [
  ["getLatest", false],
  ["listVersions", false],
  ["importVersion", true],
  ["getVersionSecret", false],
  ["getDeleted", false],
  ["recoverDeleted", true],
]

/**
 * Where another writer's recovery of the soft-deleted certificate comes, in a scenario made for it
 * (`arbForeignRecovery`; "none" in the others, whose random faults may still bring one):
 * - "snapshot": before the snapshot read (the deploy finds the certificate served);
 * - "import": before the first import (the snapshot read 404: the import lands over what the other
 *   writer recovered, unjudged, as Key Vault takes imports unconditionally);
 * - "getDeleted": before the deleted certificate's read (404: whose it was is not known);
 * - "recover": before this deploy's recovery, whose SDK finds the certificate served and sends none;
 * - "recover-unshown": the same, the recover POST sent before that recovery showed: 404;
 * - "after-404": this deploy's recover POST answered 404 with nothing recovered yet, the other
 *   writer's recovery shown to the read after it;
 * - "404-none": the recover POST answered 404 and nothing is served after it (no recovery at all);
 * - "recover-replaced-managed", "recover-replaced-other": before this deploy's recovery, the other
 *   writer recovers it and imports a version of its own (another kvdeploy deployment's, or another
 *   tool's): the vault serves another version than the deleted one.
 */
const foreignRecoveryPoints = [
  "snapshot",
  "import",
  "getDeleted",
  "recover",
  "recover-unshown",
  "after-404",
  "404-none",
  "recover-replaced-managed",
  "recover-replaced-other",
] as const
type ForeignRecovery = "none" | (typeof foreignRecoveryPoints)[number]

/** Time before a write: mostly within the same second (Key Vault keeps whole seconds), sometimes a later one. */
const arbGapMs = fc.constantFrom(0, 0, 150, 700, 1000)

const arbScenario = fc.record({
  /** Where in its second the run starts. */
  startMs: fc.integer({ min: 0, max: 999 }),
  history: fc.array(
    fc.record({
      cert: fc.integer({ min: 0, max: pool.length - 1 }),
      managed: fc.boolean(),
      exportable: fc.boolean(),
      /** The content type its secret is served as (the vault's policy after its import). */
      pem: fc.boolean(),
      /** Mostly enabled; a disabled latest version is never left in place. */
      enabled: fc.oneof(
        { weight: 4, arbitrary: fc.constant(true) },
        { weight: 1, arbitrary: fc.constant(false) },
      ),
      gapMs: arbGapMs,
    }),
    { maxLength: 3 },
  ),
  /** Time before the deploy; sometimes long enough after a soft delete for a first deploy to prove it came first. */
  deployGapMs: fc.constantFrom(0, 0, 150, 700, 1000, 2500),
  softDeleted: fc.boolean(),
  onSoftDeleted: fc.constantFrom("fail", "recover"),
  contentType: fc.constantFrom("keep", "pkcs12", "pem"),
  newCert: fc.oneof(
    { weight: 4, arbitrary: fc.constant("fresh") },
    { weight: 1, arbitrary: fc.constant("same-as-latest") },
    // A certificate the vault holds in an older version (an earlier deploy of it, then another).
    { weight: 1, arbitrary: fc.constant("same-as-earlier") },
    { weight: 2, arbitrary: fc.constant("reused-key") },
    { weight: 1, arbitrary: fc.constant("wrong-key") },
  ),
  adopt: fc.boolean(),
  /** Whether the codec states a size bound (the PFX is then built after preflight, maybe during the snapshot). */
  codecBound: fc.boolean(),
  /** Time each getLatest answer takes to arrive (TestClock): with it, the PFX is built while the snapshot is on its way. */
  readLatencyMs: fc.constantFrom(0, 0, 40),
  buildPfxDuringSnapshot: fc.boolean(),
  callerKey: fc.constantFrom("none", "right", "wrong"),
  secretsGet: fc.boolean(),
  /**
   * A race the random faults seldom make: the import's answer lost (the import without effect, or
   * written) while another writer deletes the certificate, after the snapshot or before the
   * reconcile's list. (Written after a delete after the snapshot, the import is refused, and its
   * answer says so: a definite 409.)
   */
  deleteRace: fc.oneof(
    { weight: 10, arbitrary: fc.constant("none" as const) },
    { weight: 1, arbitrary: fc.constant("after-snapshot" as const) },
    { weight: 1, arbitrary: fc.constant("before-reconcile" as const) },
  ),
  importLost: fc.constantFrom("without-effect", "after-write"),
  /**
   * Without a delete race: the import's answer lost (as `importLost` says), then the reconcile's
   * version list and deleted-certificate read answered by a replica lagging behind the
   * certificate's last delete or recovery. After this deploy's own recovery, those reads show the
   * delete it undid, with the snapshot still latest: the case the deleted-certificate conclusion
   * must not be drawn in.
   */
  lagAtReconcile: fc.oneof(
    { weight: 12, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  ),
  /**
   * The forward import stored altered (the "ours but wrong" case), more often than the random faults
   * make it: a rollback, and each of its outcomes, is then reached in every run of the property.
   */
  alterImport: fc.oneof(
    { weight: 4, arbitrary: fc.constant(undefined) },
    {
      weight: 1,
      arbitrary: fc.constantFrom<AlterChange>("disable", "drop-tags", "other-x5t", "other-serial"),
    },
  ),
  foreignRecovery: fc.constant<ForeignRecovery>("none"),
  faults: fc.record(
    Object.fromEntries(
      operations.map(([op, write]) => [op, fc.array(arbFaultFor(op, write), { maxLength: 6 })]),
    ) as Record<VaultOperation, fc.Arbitrary<Array<Fault>>>,
  ),
})
type Scenario = typeof arbScenario extends fc.Arbitrary<infer T> ? T : never

const hexOf = (der: Uint8Array): string => Buffer.from(der).toString("hex")

const runScenario = (s: Scenario) =>
  Effect.gen(function* () {
    const vault = yield* InMemoryVaultHandle
    const audit = yield* AuditRecords
    const metrics = yield* MetricsRecorder
    yield* TestClock.adjust(s.startMs)
    for (const h of s.history) {
      yield* TestClock.adjust(h.gapMs)
      yield* vault.seed(NAME, pool[h.cert]!.material, {
        tags: h.managed ? managedTags : { owner: "someone" },
        exportable: h.exportable,
        enabled: h.enabled,
        contentType: h.pem ? "application/x-pem-file" : "application/x-pkcs12",
      })
    }
    const latestBefore = vault.latest(NAME)
    const latestCert = latestBefore === undefined ? undefined : pool.find((p) => p.x5t === latestBefore.x5t)
    if (s.softDeleted && s.history.length > 0) yield* vault.softDelete(NAME)
    const fresh = issue({ seed: "fresh-new", issuer: ca })
    const earlier = s.history.length > 1 ? pool[s.history[0]?.cert ?? 0] : undefined
    const material =
      s.newCert === "same-as-latest" && latestCert !== undefined
        ? latestCert.material
        : s.newCert === "same-as-earlier" && earlier !== undefined
          ? earlier.material
          : s.newCert === "reused-key" && latestCert !== undefined
            ? issue({ seed: "reissued", issuer: ca, key: latestCert.key }).material
            : s.newCert === "wrong-key"
              ? withWrongKey(fresh)
              : fresh.material
    const previousKey =
      s.callerKey === "right" && latestCert !== undefined
        ? { previousKey: latestCert.material.key, previousChain: latestCert.material.chain }
        : s.callerKey === "wrong"
          ? { previousKey: Redacted.make(fresh.key.bytes) }
          : {}
    vault.setSecretsGet(s.secretsGet)
    if (s.deleteRace !== "none") {
      vault.script(
        "importVersion",
        s.importLost === "after-write" ? Fault.afterWrite : Fault.fail("Ambiguous"),
      )
      if (s.deleteRace === "after-snapshot") vault.script("getLatest", Fault.foreignDelete("after"))
      else vault.script("listVersions", Fault.foreignDelete("before"))
    } else if (s.lagAtReconcile) {
      // A soft-deleted name to be recovered: the first import is refused (409), the deleted
      // certificate read, then recovered; the lost import and the lagging reads come after.
      const recovering = s.softDeleted && s.history.length > 0 && s.onSoftDeleted === "recover"
      const first = recovering ? [Fault.pass] : []
      vault.script(
        "importVersion",
        ...first,
        s.importLost === "after-write" ? Fault.afterWrite : Fault.fail("Ambiguous"),
      )
      vault.script("listVersions", Fault.staleRead)
      vault.script("getDeleted", ...first, Fault.staleRead)
    } else if (s.alterImport !== undefined) vault.script("importVersion", Fault.alter(s.alterImport))
    switch (s.foreignRecovery) {
      case "none":
        break
      case "snapshot":
        vault.script("getLatest", Fault.foreignRecover)
        break
      case "import":
        vault.script("importVersion", Fault.foreignRecover)
        break
      case "getDeleted":
        vault.script("getDeleted", Fault.foreignRecover)
        break
      case "recover":
        vault.script("recoverDeleted", Fault.foreignRecover)
        break
      case "recover-unshown":
        vault.script("recoverDeleted", Fault.foreignRecoverUnshown)
        break
      case "after-404":
        vault.script("recoverDeleted", Fault.fail("NotFound"))
        vault.script("getLatest", Fault.pass, Fault.foreignRecover)
        break
      case "404-none":
        vault.script("recoverDeleted", Fault.fail("NotFound"))
        break
    }
    for (const [op] of operations) vault.script(op, ...s.faults[op])
    const before = new Map(
      vault.versions(NAME).map((v) => [v.versionId, { enabled: v.enabled, tags: toJson(v.tags) }]),
    )
    mismatchedEncodes.length = 0
    yield* TestClock.adjust(s.deployGapMs)

    // The serial the vault must serve for the new certificate (verify checks it beside the x5t).
    const newSerial = (yield* Effect.orDie((yield* PfxCodec).inspect(material))).leaf.serialHex
    const port = yield* Vault
    // Another writer's recovery and import of its own, just before this deploy's (first) recovery.
    let replacing =
      s.foreignRecovery === "recover-replaced-managed" || s.foreignRecovery === "recover-replaced-other"
    const replacedBeforeRecovery: (typeof Vault)["Service"] = !replacing
      ? port
      : {
          ...port,
          recoverDeleted: (name) =>
            Effect.suspend(() => {
              if (!replacing) return port.recoverDeleted(name)
              replacing = false
              vault.recover(name)
              return vault
                .seed(name, foreignPool[1]!.material, {
                  writer: "foreign",
                  tags:
                    s.foreignRecovery === "recover-replaced-managed"
                      ? { ...managedTags, [CERTIFICATE_ID_TAG]: "other" }
                      : { owner: "other" },
                })
                .pipe(Effect.andThen(port.recoverDeleted(name)))
            }),
        }
    const slowReads: (typeof Vault)["Service"] =
      s.readLatencyMs === 0
        ? replacedBeforeRecovery
        : {
            ...replacedBeforeRecovery,
            getLatest: (name) =>
              Effect.exit(replacedBeforeRecovery.getLatest(name)).pipe(
                Effect.tap(() => Effect.sleep(s.readLatencyMs)),
                Effect.flatten,
              ),
          }
    const policy = yield* DeployPolicy
    const outcome: DeployOutcome = yield* runAdvancingClock(
      deploy(
        request(
          material,
          { adopt: s.adopt, ...previousKey },
          target({ on_soft_deleted: s.onSoftDeleted, content_type: s.contentType }),
        ),
      ).pipe(
        Effect.provideService(PfxCodec, s.codecBound ? guardedCodecWithBound : guardedCodec),
        Effect.provideService(Vault, slowReads),
        Effect.provideService(DeployPolicy, { ...policy, buildPfxDuringSnapshot: s.buildPfxDuringSnapshot }),
      ),
    )

    const after = vault.versions(NAME)
    const ours = after.filter((v) => v.writer === "deploy")
    // Another writer's delete may come after the deploy's last read: the outcome is then judged on
    // the version that was latest when the certificate was deleted (the last created).
    const deletedByOther = vault.foreignDeletes() > 0
    const latest = deletedByOther && vault.isSoftDeleted(NAME) ? after.at(-1) : vault.latest(NAME)
    const context = `${outcome._tag}: ${outcome.reason}\n${outcome.decisions.join("\n")}`

    // I1: nothing deleted, disabled or retagged.
    for (const [id, was] of before) {
      const now = after.find((v) => v.versionId === id)
      expect(now, context).toBeDefined()
      expect({ enabled: now?.enabled, tags: toJson(now?.tags) }, context).toEqual(was)
    }
    // I2: at most one forward import and one rollback import took effect.
    expect(
      ours.filter((v) => v.tags[ROLLBACK_OF_TAG] === undefined && v.x5t !== outcome.previous?.x5t).length,
      context,
    ).toBeLessThanOrEqual(1)
    expect(ours.filter((v) => v.tags[ROLLBACK_OF_TAG] !== undefined).length, context).toBeLessThanOrEqual(1)
    expect(vault.calls().byOperation.importVersion ?? 0, context).toBeLessThanOrEqual(3)
    // I3: the outcome is true of the vault.
    switch (outcome._tag) {
      case "Succeeded":
        expect(latest?.versionId, context).toBe(outcome.versionId)
        expect(latest?.x5t, context).toBe(outcome.newX5t)
        expect(latest?.serialHex, context).toBe(newSerial)
        expect(latest?.enabled, context).toBe(true)
        expect(hasTags(latest?.tags ?? {}, managedTags), context).toBe(true)
        break
      case "Skipped":
        expect(ours.length, context).toBe(0)
        expect(latest?.x5t, context).toBe(outcome.newX5t)
        // In place: served (enabled) and kvdeploy's, with this deployment's id.
        expect(latest?.enabled, context).toBe(true)
        expect(hasTags(latest?.tags ?? {}, managedTags), context).toBe(true)
        if (!deletedByOther) expect(vault.isSoftDeleted(NAME), context).toBe(false)
        break
      case "Rejected":
      case "Failed":
        expect(ours.length, context).toBe(0)
        break
      case "RolledBack": {
        expect(latest?.versionId, context).toBe(outcome.rollbackVersionId)
        expect(latest?.x5t, context).toBe(outcome.previous?.x5t)
        // The previous certificate itself, with its chain (not the new one's, not none).
        const snapshot = after.find((v) => v.versionId === outcome.previous?.versionId)
        expect(latest?.serialHex, context).toBe(snapshot?.serialHex)
        expect(latest?.material.chain.map(hexOf), context).toEqual(snapshot?.material.chain.map(hexOf))
        expect(latest?.tags[ROLLBACK_OF_TAG], context).toBe(outcome.failedVersionId)
        // Served as it was before the deploy: a PEM secret stays PEM, whatever content_type said.
        expect(latest?.contentType, context).toBe(snapshot?.contentType)
        // The snapshot's operator tags (not the failed request's), plus the reserved tags.
        const snapshotTags = after.find((v) => v.versionId === outcome.previous?.versionId)?.tags ?? {}
        expect(withoutReserved(latest?.tags ?? {}), context).toEqual(withoutReserved(snapshotTags))
        expect(
          hasTags(latest?.tags ?? {}, { [MANAGED_BY_TAG]: "certctl", [CERTIFICATE_ID_TAG]: CERT_ID }),
          context,
        ).toBe(true)
        expect(latest?.enabled, context).toBe(true)
        // Another writer's versions imported after the failed one and before the rollback (while its
        // import was in flight) are named, unless the reason says they could not be listed.
        const failedSequence = after.find((v) => v.versionId === outcome.failedVersionId)?.sequence ?? 0
        const under = after
          .filter(
            (v) =>
              v.writer === "foreign" && v.sequence > failedSequence && v.sequence < (latest?.sequence ?? 0),
          )
          .map((v) => v.versionId)
        if (!outcome.reason.includes("not ruled out"))
          expect((outcome.overwritten ?? []).map((v) => v.versionId).sort(), context).toEqual(under.sort())
        // Said as possibly under the rollback: only copies of the new certificate with this id from
        // the snapshot's second (which Key Vault cannot order).
        const snapshotCreated = snapshot?.createdAt.getTime()
        for (const ref of outcome.possiblyOverwritten ?? []) {
          const v = after.find((a) => a.versionId === ref.versionId)
          expect(v?.x5t, context).toBe(outcome.newX5t)
          expect(v?.createdAt.getTime(), context).toBe(snapshotCreated)
          expect(hasTags(v?.tags ?? {}, managedTags), context).toBe(true)
        }
        break
      }
      case "Superseded": {
        const mine = after.find((v) => v.versionId === outcome.versionId)
        expect(mine?.writer, context).toBe("deploy")
        expect(latest?.writer, context).toBe("foreign")
        expect((latest?.sequence ?? 0) > (mine?.sequence ?? Infinity), context).toBe(true)
        break
      }
      case "Unverified":
        expect(outcome.postVerifyFailure, context).toBe("unreadable")
        // A version it names as imported is one this deploy added.
        if (outcome.versionId !== undefined)
          expect(
            ours.some((v) => v.versionId === outcome.versionId && !before.has(v.versionId)),
            context,
          ).toBe(true)
        break
      case "RollbackFailed":
        expect(
          after.some((v) => v.versionId === outcome.failedVersionId),
          context,
        ).toBe(true)
        break
    }
    // Ownership: a certificate kvdeploy did not write is written over only with adopt. Judged on the
    // version the snapshot read (a foreign write may come just before it; a read the vault answers
    // with a 404 is a first deploy).
    const seen = after.find((v) => v.versionId === outcome.previous?.versionId)
    if (ours.length > 0 && !s.adopt && seen !== undefined)
      expect(isManagedByKvdeploy(seen.tags), context).toBe(true)
    // A soft-deleted certificate kvdeploy did not write is recovered only with adopt, whether the
    // deleted certificate could be read to tell whose it is or not.
    const lastSeeded = s.history.at(-1)
    if (s.softDeleted && lastSeeded !== undefined && !lastSeeded.managed && !s.adopt)
      expect(outcome.recovered, context).toBeUndefined()
    // A soft-deleted name is recovered only with on_soft_deleted: recover, and a deploy that wrote
    // a version to it recovered it.
    // (Unless another writer recovered it: an import that meets it served then lands, unjudged.)
    const recoveries = vault.recoveries()
    if (s.softDeleted && s.history.length > 0) {
      if (s.onSoftDeleted === "fail" && recoveries.foreign === 0) {
        expect(ours.length, context).toBe(0)
        expect(vault.isSoftDeleted(NAME), context).toBe(true)
      }
      if (ours.length > 0 && !deletedByOther) expect(vault.isSoftDeleted(NAME), context).toBe(false)
    }
    // Recovery (deploy.ts, onSoftDeleted). A recovery is sent at most once (never retried), only with
    // on_soft_deleted: recover; `recovered` says what its answer proved:
    const log = vault.callLog()
    const recoverAt = log.findIndex((r) => r.operation === "recoverDeleted")
    const recoverCalls = log.filter((r) => r.operation === "recoverDeleted")
    const recoverAnswer = recoverCalls[0]?.outcome
    const answered404 = recoverAnswer === "NotFound" || recoverAnswer === "NotFoundAfterForeignRecover"
    const said = `${outcome.reason}\n${outcome.decisions.join("\n")}`
    const recoveryContext = `${context}\nrecover answered ${recoverAnswer ?? "(not called)"}; recoveries ${JSON.stringify(recoveries)}`
    expect(recoverCalls.length, recoveryContext).toBeLessThanOrEqual(1)
    if (s.onSoftDeleted === "fail") expect(recoverCalls.length, recoveryContext).toBe(0)
    // ... a recover POST answered 404 (no deleted certificate left) is followed by a read of what is
    // served, which decides (served: gone on over it; not: Failed), before anything else is judged;
    if (answered404) {
      expect(log[recoverAt + 1]?.operation, recoveryContext).toBe("getLatest")
      if (outcome.recovered === undefined) {
        expect(outcome._tag, recoveryContext).toBe("Failed")
        if (outcome._tag === "Failed") expect(outcome.step, recoveryContext).toBe("soft-deleted")
      }
    }
    switch (outcome.recovered) {
      case undefined:
        // ... a deploy that reports no recovery recovered nothing;
        expect(recoveries.byPort, recoveryContext).toBe(0)
        expect(
          outcome.decisions.some((d) => d.startsWith("recovered: ")),
          recoveryContext,
        ).toBe(false)
        break
      case "recovered":
        // ... "recovered": this deploy's one recovery was sent and answered: the vault recovered the
        // certificate on it;
        expect(recoverCalls.length, recoveryContext).toBe(1)
        expect(recoverAnswer, recoveryContext).toBe("ok")
        expect(recoveries.byPort, recoveryContext).toBe(1)
        expect(
          outcome.decisions.some((d) => d.startsWith("recovered: ")),
          recoveryContext,
        ).toBe(true)
        expect(said, recoveryContext).not.toMatch(/no recovery sent|sent no recovery|recovered nothing/)
        break
      case "already-served":
        // ... "already-served": this deploy recovered nothing (here only another writer's recovery
        // serves a deleted name again, unless the 404 was a false one and the read after it a
        // lagging one); its recovery answered the certificate served (not sent: the SDK read it
        // first) or 404, and the outcome says which;
        expect(recoverCalls.length, recoveryContext).toBe(1)
        expect(recoveries.byPort, recoveryContext).toBe(0)
        if (recoverAnswer !== "NotFound") expect(recoveries.foreign, recoveryContext).toBeGreaterThan(0)
        expect(recoverAnswer === "ok" || answered404, recoveryContext).toBe(true)
        expect(
          outcome.decisions.some((d) => d.startsWith("recovered: ")),
          recoveryContext,
        ).toBe(false)
        if (answered404) {
          expect(said, recoveryContext).not.toMatch(/no recovery sent|sent no recovery/)
          expect(said, recoveryContext).toMatch(/recovered nothing/)
        } else {
          expect(said, recoveryContext).not.toMatch(/recovered nothing|found no deleted certificate/)
          expect(said, recoveryContext).toMatch(/no recovery sent/)
        }
        break
      case "unknown":
        // ... "unknown": the recovery's answer was lost. Either the certificate was not served after
        // it (Failed at the soft-deleted step, nothing written), or it was served again by that
        // recovery or by another writer's (which the deploy cannot tell apart: it neither claims
        // the recovery nor says it recovered nothing).
        expect(recoverCalls.length, recoveryContext).toBe(1)
        expect(["Ambiguous", "AmbiguousAfterWrite"], recoveryContext).toContain(recoverAnswer)
        expect(
          outcome.decisions.some((d) => d.startsWith("recovered: ")),
          recoveryContext,
        ).toBe(false)
        expect(said, recoveryContext).not.toMatch(/no recovery sent|sent no recovery|recovered nothing/)
        // Or the read after it was a lagging replica's, still showing the certificate served:
        // nothing recovered, the name still deleted, and nothing written (the import meets it).
        if (outcome._tag === "Failed" && outcome.step === "soft-deleted")
          expect(ours.length, recoveryContext).toBe(0)
        else {
          const readAfter = log.slice(recoverAt + 1).find((r) => r.operation === "getLatest")
          if (readAfter?.stale === true && recoveries.byPort + recoveries.foreign === 0) {
            expect(ours.length, recoveryContext).toBe(0)
            expect(vault.isSoftDeleted(NAME), recoveryContext).toBe(true)
          } else expect(recoveries.byPort + recoveries.foreign, recoveryContext).toBeGreaterThan(0)
          expect(said, recoveryContext).toMatch(
            /recovery was sent and its answer lost|answer lost; served again/,
          )
        }
        break
    }
    // I4: no PFX was ever requested for a key that does not match its certificate.
    expect(mismatchedEncodes, context).toEqual([])
    // I5: key material appears in no outcome, audit record or metric.
    const text = toJson({ outcome, audit: audit.all(), metrics: metrics.events() })
    for (const secret of [...allSecrets, fresh.key.body.secret])
      expect(text.includes(secret), context).toBe(false)
    // One audit record, one attempt counted with the outcome's label, calls counted honestly.
    expect(
      audit.all().map((r) => [r.outcome, r.exitCode]),
      context,
    ).toEqual([[outcome._tag, exitCodeOf(outcome)]])
    expect(metrics.count("deployAttempt"), context).toBe(1)
    // The expiry series is removed only when the vault serves nothing under the name, unless the
    // vault said so falsely (a scripted 404, "NotFound" in the call log, for a name that holds one).
    const notServed = metrics.count("certificateNotServed")
    const false404 = vault.callLog().some((r) => r.outcome === "NotFound")
    // Nor when another writer recovered the certificate after the deploy's last answer that told of
    // it: its recovery refused or unavailable, the deploy knows only the delete its import met.
    const recoveredUnseen =
      recoveries.foreign > 0 &&
      recoverAnswer !== undefined &&
      !["ok", "NotFound", "NotFoundAfterForeignRecover", "Ambiguous", "AmbiguousAfterWrite"].includes(
        recoverAnswer,
      )
    if (notServed > 0 && !false404 && !recoveredUnseen) expect(vault.latest(NAME), context).toBeUndefined()
    expect(metrics.count("deployAttempt", resultLabelOf(outcome._tag)), context).toBe(1)
    expect(outcome.vaultCalls, context).toBe(vault.calls().total)
    return {
      outcome,
      notServed,
      // The soft-deleted certificate was read (its answer says which version it holds).
      deletedRead: log.some((r) => r.operation === "getDeleted" && r.outcome === "ok"),
      overlapped: outcome.decisions.includes("pfx: built while the snapshot read was on its way"),
      // A lost import into a certificate another writer deleted, proven to have written nothing.
      deletedRefused: outcome.decisions.some((d) => d.startsWith("reconcile: soft-deleted while it served")),
      // The same for a first deploy, from a delete stamped before the vault's 404 to its first read.
      deletedBeforeFirstRead: outcome.decisions.includes(
        "reconcile: soft-deleted before the snapshot read found nothing; the import wrote nothing",
      ),
      // A delete undone by this deploy's recovery, shown by lagging reads: left unproven.
      lagAfterRecovery: outcome.reason.includes("a read lagging behind that recovery would show the same"),
    }
  }).pipe(Effect.provide(World), Effect.provide(TestClock.layer()))

/**
 * What a deploy must end in when the vault answers every request (no faults scheduled): the
 * contract's steps judged on the scenario alone, so a deploy that gives up where it must not
 * (a recovery never tried, a managed version refused, an in-place certificate re-imported) fails
 * here even though its outcome would be true of the vault.
 */
const expectedWithoutFaults = (
  s: Scenario,
): { readonly tag: DeployOutcome["_tag"]; readonly recovered?: "recovered" } => {
  if (s.newCert === "wrong-key") return { tag: "Rejected" }
  const last = s.history.at(-1)
  if (last === undefined) return { tag: "Succeeded" }
  const sameAsLatest =
    s.newCert === "same-as-latest" ||
    (s.newCert === "same-as-earlier" && s.history.length > 1 && s.history[0]?.cert === last.cert)
  const inPlace = sameAsLatest && last.managed && last.enabled
  const judged = inPlace ? "Skipped" : last.managed || s.adopt ? "Succeeded" : "Rejected"
  // A caller key that is not the served version's is refused before an import.
  if (!s.softDeleted) return { tag: judged === "Succeeded" && s.callerKey === "wrong" ? "Rejected" : judged }
  if (s.onSoftDeleted === "fail") return { tag: "Failed" }
  // A certificate kvdeploy would refuse, or whose rollback the caller's key could not serve, is
  // left deleted; any other is recovered, then judged again.
  if (judged === "Succeeded" && s.callerKey === "wrong") return { tag: "Rejected" }
  return judged === "Rejected" ? { tag: "Rejected" } : { tag: judged, recovered: "recovered" }
}

const noFaults = Object.fromEntries(operations.map(([op]) => [op, []])) as unknown as Scenario["faults"]

/**
 * Scenarios without faults or scripted races, a third of them a deploy of the certificate the vault
 * serves (its versions still random: foreign, disabled, soft-deleted or not). Random scenarios alone
 * reach "Skipped" in about 1 run in 55 and "Skipped (recovered)" in about 1 in 107 (measured over
 * 2,000 seeds of 500 runs), so a 500-run property missed the recovered one in about 1 run in 105
 * (0.9%; 6% at 300 runs). With the third, they come about 1 run in 13 and 1 in 25: a miss is
 * about 2e-9 at 500 runs, 6e-6 at 300.
 */
const arbWithoutFaults: fc.Arbitrary<Scenario> = fc
  .oneof(
    { weight: 2, arbitrary: arbScenario },
    {
      weight: 1,
      arbitrary: arbScenario
        .filter((s) => s.history.length > 0)
        .map((s) => ({ ...s, newCert: "same-as-latest" as const })),
    },
  )
  .map((s) => ({
    ...s,
    deleteRace: "none" as const,
    lagAtReconcile: false,
    alterImport: undefined,
    faults: noFaults,
  }))

/**
 * A targeted scenario's faults: the random ones, at most one per operation, so the race or
 * alteration it was made for is seldom drowned by others.
 */
const fewerFaults = (faults: Scenario["faults"]): Scenario["faults"] =>
  Object.fromEntries(operations.map(([op]) => [op, faults[op].slice(0, 1)])) as unknown as Scenario["faults"]

/**
 * A random scenario turned into a deploy that imports over a version kvdeploy serves: the latest
 * version managed, a certificate other than it, a caller key that is not refused, a soft-deleted
 * name recovered. Everything else (history, timing, content type, codec, secrets permission) stays
 * random.
 */
const importingOver = (s: Scenario): Scenario => {
  const last = s.history.at(-1)
  return {
    ...s,
    history: last === undefined ? s.history : [...s.history.slice(0, -1), { ...last, managed: true }],
    onSoftDeleted: "recover",
    newCert: s.newCert === "reused-key" ? "reused-key" : "fresh",
    callerKey: s.callerKey === "wrong" ? "none" : s.callerKey,
    faults: fewerFaults(s.faults),
  }
}
const arbWithHistory = arbScenario.filter((s) => s.history.length > 0)

/** The forward import stored altered over a served version: a rollback, and its outcomes. */
const arbRollback: fc.Arbitrary<Scenario> = fc
  .tuple(arbWithHistory, fc.constantFrom<AlterChange>("disable", "drop-tags", "other-x5t", "other-serial"))
  .map(([s, change]) => ({
    ...importingOver(s),
    // Not soft-deleted (the refused import before a recovery would take the alteration), and the
    // served version's secret readable, so a rollback can be built from it.
    softDeleted: false,
    secretsGet: true,
    deleteRace: "none" as const,
    lagAtReconcile: false,
    alterImport: change,
  }))

/** The forward import's answer lost while another writer deletes the certificate it replaces. */
const arbDeleteRace: fc.Arbitrary<Scenario> = fc
  .tuple(arbWithHistory, fc.constantFrom("after-snapshot" as const, "before-reconcile" as const))
  .map(([s, race]) => ({ ...importingOver(s), softDeleted: false, deleteRace: race }))

/** A deploy of the certificate a kvdeploy version serves, enabled: left in place ("Skipped"). */
const arbInPlace: fc.Arbitrary<Scenario> = arbWithHistory.map((s) => {
  const last = s.history.at(-1)
  return {
    ...importingOver(s),
    history:
      last === undefined ? s.history : [...s.history.slice(0, -1), { ...last, managed: true, enabled: true }],
    newCert: "same-as-latest" as const,
  }
})

/**
 * Another writer's recovery before the snapshot read, with the reconcile's reads lagging behind it
 * (the version list not found, the deleted certificate the one it undid): the case deploy.ts's
 * reconcile names as not guarded ("recovery before the import, the recovery shown late to the
 * reads after the 404"), where a lost import that landed is taken for one that wrote nothing.
 * No property generates it (the first deploy's snapshot read has no earlier read to lag behind).
 */
const unguardedLateRecovery = (s: Scenario): boolean =>
  // Only a name soft-deleted before the deploy can be recovered before its snapshot read (nothing
  // deletes it earlier in a run).
  s.softDeleted &&
  (s.foreignRecovery === "snapshot" || s.faults.getLatest.some((f) => f._tag === "ForeignRecover")) &&
  (s.lagAtReconcile ||
    s.faults.listVersions.some((f) => f._tag === "StaleRead") ||
    s.faults.getDeleted.some((f) => f._tag === "StaleRead"))

/**
 * The first property's scenarios: random ones, and one in 19 each a rollback, a delete race and a
 * deploy left in place, over a version kvdeploy serves (random in all else). Random scenarios alone
 * reach "RolledBack" about 7.3 times in 1,000 runs and a lost import proven refused by a delete
 * about 8.2 (measured over 250 seeds of 1,000 runs; fewest 1 and 1), so a 1,000-run property failed
 * its coverage check in about 1 run in 1,100. With the targeted ones (1,386 seeds of 1,000 runs, no
 * seed missing any outcome or branch): RolledBack about 21.3 (fewest 8), refused by a delete 23.2
 * (fewest 8), Skipped 51.7 (fewest 30) and Superseded 18.4 (fewest 7, now the rarest), each count
 * spread as a Poisson one (variance about the mean): a miss is about 1e-8 per run.
 */
const arbFirstProperty: fc.Arbitrary<Scenario> = fc
  .oneof(
    { weight: 16, arbitrary: arbScenario },
    { weight: 1, arbitrary: arbRollback },
    { weight: 1, arbitrary: arbDeleteRace },
    { weight: 1, arbitrary: arbInPlace },
  )
  .filter((s) => !unguardedLateRecovery(s))

/**
 * A soft-deleted name whose certificate another writer recovers at one point of the deploy
 * (`foreignRecovery`), over a version kvdeploy wrote (as `importingOver`; adopt random), with
 * on_soft_deleted mostly recover, a third of the runs a deploy of the certificate it serves; two
 * in three runs without any other fault (`quiet`: the outcome is then the one
 * `expectedWithForeignRecovery` gives), the others with at most one random fault per operation.
 */
const arbForeignRecovery: fc.Arbitrary<Scenario & { readonly quiet: boolean }> = fc
  .record({
    s: arbWithHistory,
    point: fc.constantFrom(...foreignRecoveryPoints),
    onSoftDeleted: fc.constantFrom("recover", "recover", "recover", "fail"),
    sameCert: fc.oneof(
      { weight: 2, arbitrary: fc.constant(false) },
      { weight: 1, arbitrary: fc.constant(true) },
    ),
    quiet: fc.oneof(
      { weight: 2, arbitrary: fc.constant(true) },
      { weight: 1, arbitrary: fc.constant(false) },
    ),
  })
  .map(({ s, point, onSoftDeleted, sameCert, quiet }) => {
    const over = importingOver(s)
    return {
      ...over,
      softDeleted: true,
      onSoftDeleted,
      newCert: sameCert ? ("same-as-latest" as const) : over.newCert,
      deleteRace: "none" as const,
      lagAtReconcile: false,
      alterImport: undefined,
      foreignRecovery: point,
      faults: quiet ? noFaults : over.faults,
      quiet,
    }
  })
  .filter((s) => !unguardedLateRecovery(s))

/**
 * What a deploy of `arbForeignRecovery` without other faults must end in: the contract's steps
 * (`expectedWithoutFaults`) with the other writer's recovery in place of this deploy's. Served
 * again before the snapshot, it is a deploy over a served version; before the first import, the
 * import lands (the snapshot read 404: a first deploy). Met by this deploy's recovery (served
 * already, or its recover POST answered 404 and the read after it finds it served), it goes on
 * over what is served: the outcome this deploy's recovery would have had, `already-served`. A
 * 404 with nothing served after it: Failed. The deleted certificate's read answered 404: whose
 * it was is not known, so without adopt it is left (Failed); with adopt it goes on over what is
 * served, judged after (the caller's key included).
 */
const expectedWithForeignRecovery = (
  s: Scenario,
): { readonly tag: DeployOutcome["_tag"]; readonly recovered?: "recovered" | "already-served" } => {
  if (s.newCert === "wrong-key") return { tag: "Rejected" }
  if (s.foreignRecovery === "snapshot") return expectedWithoutFaults({ ...s, softDeleted: false })
  if (s.foreignRecovery === "import") return { tag: "Succeeded" }
  const base = expectedWithoutFaults(s)
  if (s.onSoftDeleted === "fail") return base
  switch (s.foreignRecovery) {
    case "getDeleted": {
      if (!s.adopt) return { tag: "Failed" }
      const adopted = expectedWithoutFaults({ ...s, softDeleted: false, adopt: true })
      return { tag: adopted.tag, recovered: "already-served" }
    }
    case "404-none":
      return base.recovered === undefined ? base : { tag: "Failed" }
    case "recover-replaced-managed":
    case "recover-replaced-other":
      // Judged on the other writer's version it serves: another tool's refused without adopt, and
      // a caller's previous key (the deleted version's) does not fit it.
      if (base.recovered === undefined) return base
      return {
        tag:
          (s.foreignRecovery === "recover-replaced-other" && !s.adopt) || s.callerKey !== "none"
            ? "Rejected"
            : "Succeeded",
        recovered: "already-served",
      }
    default:
      return base.recovered === undefined ? base : { tag: base.tag, recovered: "already-served" }
  }
}

describe("deploy invariants (property)", () => {
  it(
    `I1-I5 hold and the outcome is true of the vault, over ${RUNS} random histories and fault schedules`,
    async () => {
      const seen = new Map<string, number>()
      let overlaps = 0
      let refusedAfterDelete = 0
      let refusedFirstDeploy = 0
      await fc.assert(
        fc.asyncProperty(arbFirstProperty, async (s) => {
          const { outcome, overlapped, deletedRefused, deletedBeforeFirstRead } = await Effect.runPromise(
            runScenario(s),
          )
          const tag = outcome._tag
          seen.set(tag, (seen.get(tag) ?? 0) + 1)
          if (overlapped) overlaps++
          if (deletedRefused) refusedAfterDelete++
          if (deletedBeforeFirstRead) refusedFirstDeploy++
        }),
        { numRuns: RUNS, seed: SEED },
      )
      // The generator reaches every outcome (so the invariants were checked on each).
      expect(
        [...seen.keys()].sort(),
        `${replay}; by outcome ${JSON.stringify(Object.fromEntries(seen))}`,
      ).toEqual(
        [
          "Failed",
          "Rejected",
          "RollbackFailed",
          "RolledBack",
          "Skipped",
          "Succeeded",
          "Superseded",
          "Unverified",
        ].sort(),
      )
      // ... and the PFX was built while the snapshot read was on its way in some runs (the invariants held there too).
      expect(overlaps, replay).toBeGreaterThan(0)
      // ... and a lost import was proven refused by another writer's delete in some (the Failed check held there).
      expect(refusedAfterDelete, replay).toBeGreaterThan(0)
      console.log(
        `property runs by outcome: ${JSON.stringify(Object.fromEntries(seen))}; PFX built during the snapshot read in ${overlaps}; a lost import proven refused by a delete in ${refusedAfterDelete}, by a delete before a first deploy's read in ${refusedFirstDeploy}`,
      )
    },
    60_000 + RUNS * 30,
  )

  it("a lost import after this deploy's recovery, with reads lagging behind that recovery, is never taken for a refused one", async () => {
    let lagged = 0
    const seen = new Map<string, number>()
    await fc.assert(
      fc.asyncProperty(
        arbScenario
          .filter((s) => s.history.length > 0)
          .map((s) => ({
            ...s,
            softDeleted: true,
            onSoftDeleted: "recover" as const,
            deleteRace: "none" as const,
            lagAtReconcile: true,
            alterImport: undefined,
          }))
          .filter((s) => !unguardedLateRecovery(s)),
        async (s) => {
          // The invariants are checked in runScenario: a Failed deploy wrote nothing.
          const { outcome, lagAfterRecovery } = await Effect.runPromise(runScenario(s))
          seen.set(outcome._tag, (seen.get(outcome._tag) ?? 0) + 1)
          if (lagAfterRecovery) lagged++
        },
      ),
      { numRuns: Math.max(200, Math.floor(RUNS / 4)), seed: SEED },
    )
    // The lagging reads showed the delete the recovery undid, with the snapshot still latest, in
    // some runs: the case the conclusion must not be drawn in was reached.
    expect(lagged, `${replay}; outcomes ${JSON.stringify(Object.fromEntries(seen))}`).toBeGreaterThan(0)
    console.log(
      `lagging reads after a recovery: ${lagged} reached the deleted-certificate read with the snapshot latest; outcomes ${JSON.stringify(Object.fromEntries(seen))}`,
    )
  })

  it("a first deploy whose import's answer is lost: Failed at the reconcile step when it wrote nothing (step 5's not found), never Unverified", async () => {
    const seen = new Map<string, number>()
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(arbScenario, fc.boolean()).map(([s, foreign]): Scenario & { readonly foreign: boolean } => ({
          ...s,
          // A name that never held a certificate: the snapshot reads not found, the version list
          // answers as Key Vault does (empty, 200), or lists another writer's import made meanwhile.
          history: [],
          softDeleted: false,
          newCert: "fresh",
          callerKey: "none",
          deleteRace: "none",
          lagAtReconcile: false,
          alterImport: undefined,
          foreign,
          faults: {
            ...noFaults,
            importVersion: [s.importLost === "after-write" ? Fault.afterWrite : Fault.fail("Ambiguous")],
            listVersions: foreign ? [Fault.foreignImport(foreignPool[0]!.material, { owner: "other" })] : [],
          },
        })),
        async (s) => {
          // The invariants are checked in runScenario.
          const { outcome, notServed } = await Effect.runPromise(runScenario(s))
          const context = `${outcome._tag}: ${outcome.reason}\n${outcome.decisions.join("\n")}`
          expect(outcome.previous, context).toBeUndefined()
          // Nothing served when nothing was written and no one else wrote: the expiry series removed.
          expect(notServed, context).toBe(s.importLost === "without-effect" && !s.foreign ? 1 : 0)
          if (s.importLost === "without-effect") {
            // The list was read and holds nothing of this deploy's: the vault is unchanged by it (exit 1).
            expect(outcome._tag, context).toBe("Failed")
            if (outcome._tag === "Failed") {
              expect(outcome.step, context).toBe("reconcile")
              expect(outcome.error, context).toBe("VaultAmbiguous")
            }
            expect(outcome.decisions, context).toContain("reconcile: no new version in the version list")
            expect(exitCodeOf(outcome), context).toBe(1)
          } else if (!s.foreign) {
            // Found in the list and verified.
            expect(outcome._tag, context).toBe("Succeeded")
          } else {
            // Another writer's later import is latest: not written over (with no snapshot to bound
            // the list, the version found may not be provably this deploy's: Unverified, not Superseded).
            expect(["Superseded", "Unverified"], context).toContain(outcome._tag)
          }
          const key = `${s.importLost}${s.foreign ? " + foreign" : ""}: ${s.importLost === "after-write" && s.foreign ? "not rolled over" : outcome._tag}`
          seen.set(key, (seen.get(key) ?? 0) + 1)
        },
      ),
      { numRuns: Math.max(100, Math.floor(RUNS / 10)), seed: SEED },
    )
    expect([...seen.keys()].sort(), `${replay}; by case ${JSON.stringify(Object.fromEntries(seen))}`).toEqual(
      [
        "after-write + foreign: not rolled over",
        "after-write: Succeeded",
        "without-effect + foreign: Failed",
        "without-effect: Failed",
      ].sort(),
    )
  })

  it("another writer's recovery of the soft-deleted certificate, at each point of the deploy: the invariants hold, and without other faults the outcome is the contract's", async () => {
    const seen = new Map<string, number>()
    await fc.assert(
      fc.asyncProperty(arbForeignRecovery, async (s) => {
        // The invariants, the recovery ones included, are checked in runScenario.
        const { outcome, deletedRead } = await Effect.runPromise(runScenario(s))
        const context = `${outcome._tag}: ${outcome.reason}\n${outcome.decisions.join("\n")}`
        if (s.quiet) {
          const expected = expectedWithForeignRecovery(s)
          expect({ tag: outcome._tag, recovered: outcome.recovered }, context).toEqual({
            tag: expected.tag,
            recovered: expected.recovered,
          })
        }
        // The outcome says when the vault serves another version than the deleted one (when the
        // deleted certificate's read said which that was), and only then.
        if (outcome.recovered === "already-served") {
          const said = `${outcome.reason}\n${outcome.decisions.join("\n")}`
          const other = /not the deleted version|another version than the deleted one/
          if (!s.foreignRecovery.startsWith("recover-replaced")) expect(said, context).not.toMatch(other)
          else if (deletedRead) expect(said, context).toMatch(other)
        }
        const key = `${s.foreignRecovery}/${s.onSoftDeleted}: ${outcome._tag}${outcome.recovered === undefined ? "" : ` (${outcome.recovered})`}`
        seen.set(key, (seen.get(key) ?? 0) + 1)
      }),
      { numRuns: Math.max(400, Math.floor(RUNS / 2)), seed: SEED },
    )
    // Each point of the race was reached with the outcome it is there to test.
    expect(
      [
        "snapshot/recover: Succeeded",
        "import/recover: Succeeded",
        "import/fail: Succeeded",
        "getDeleted/recover: Failed",
        "getDeleted/recover: Succeeded (already-served)",
        "getDeleted/fail: Failed",
        "recover/recover: Succeeded (already-served)",
        "recover/recover: Skipped (already-served)",
        "recover-unshown/recover: Succeeded (already-served)",
        "after-404/recover: Succeeded (already-served)",
        "404-none/recover: Failed",
        "recover-replaced-managed/recover: Succeeded (already-served)",
        "recover-replaced-other/recover: Rejected (already-served)",
      ].filter((k) => !seen.has(k)),
      `${replay}; by case ${JSON.stringify(Object.fromEntries(seen))}`,
    ).toEqual([])
    console.log(`another writer's recovery, by case: ${JSON.stringify(Object.fromEntries(seen))}`)
  })

  it("without faults, every deploy ends as the contract's steps say (recovered, skipped, refused or imported)", async () => {
    const seen = new Map<string, number>()
    await fc.assert(
      fc.asyncProperty(arbWithoutFaults, async (s) => {
        const { outcome } = await Effect.runPromise(runScenario(s))
        const expected = expectedWithoutFaults(s)
        const context = `${outcome._tag}: ${outcome.reason}\n${outcome.decisions.join("\n")}`
        expect({ tag: outcome._tag, recovered: outcome.recovered }, context).toEqual({
          tag: expected.tag,
          recovered: expected.recovered,
        })
        const key = `${expected.tag}${expected.recovered === undefined ? "" : " (recovered)"}`
        seen.set(key, (seen.get(key) ?? 0) + 1)
      }),
      { numRuns: Math.max(300, Math.floor(RUNS / 2)), seed: SEED },
    )
    // Every branch of the oracle was taken, the recovered ones included.
    expect(
      [...seen.keys()].sort(),
      `${replay}; by branch ${JSON.stringify(Object.fromEntries(seen))}`,
    ).toEqual(
      ["Failed", "Rejected", "Skipped", "Skipped (recovered)", "Succeeded", "Succeeded (recovered)"].sort(),
    )
  })

  it("round trips without faults: 3 for a deploy over a version, 3 for a first deploy, 1 when unchanged", async () => {
    const calls = await Effect.runPromise(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const a = issue({ seed: "rt-a", issuer: ca })
        const b = issue({ seed: "rt-b", issuer: ca })
        const first = yield* runAdvancingClock(deploy(request(a.material)))
        const over = yield* runAdvancingClock(deploy(request(b.material)))
        const same = yield* runAdvancingClock(deploy(request(b.material)))
        vault.script("importVersion", { _tag: "Alter", change: "drop-tags" })
        const rolled = yield* runAdvancingClock(deploy(request(a.material)))
        return [first, over, same, rolled].map((o) => [o._tag, o.vaultCalls])
      }).pipe(Effect.provide(World), Effect.provide(TestClock.layer())),
    )
    expect(calls).toEqual([
      ["Succeeded", 3],
      ["Succeeded", 3],
      ["Skipped", 1],
      // 3 + getVersionSecret + the latest read again and the version list before the rollback
      // import + rollback import + the version list after it + rollback verify
      ["RolledBack", 9],
    ])
  })
})

describe("preflight over random material (property)", () => {
  it("Rejected exactly when the material breaks a rule, and then with nothing written", async () => {
    const rsaOk = new Set([2048, 3072, 4096])
    await fc.assert(
      fc.asyncProperty(arbIssuedMaterial(ca), async (issued) => {
        const { outcome, calls } = await Effect.runPromise(
          Effect.gen(function* () {
            const vault = yield* InMemoryVaultHandle
            yield* TestClock.setTime(0)
            const outcome = yield* runAdvancingClock(deploy(request(issued.material)))
            return { outcome, calls: vault.calls().total }
          }).pipe(Effect.provide(World), Effect.provide(TestClock.layer())),
        )
        const inspected = await Effect.runPromise(SyntheticCodec.inspect(issued.material))
        const leaf = inspected.leaf
        const broken =
          leaf.notBefore.getTime() > 0 ||
          leaf.notAfter.getTime() <= 0 ||
          (leaf.keyType === "RSA" && !rsaOk.has(leaf.keySize ?? 0))
        expect(outcome._tag).toBe(broken ? "Rejected" : "Succeeded")
        if (broken) expect(calls).toBe(0)
      }),
      { numRuns: 300, seed: SEED },
    )
  })
})
