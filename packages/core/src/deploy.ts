/**
 * The deploy program: preflight, snapshot, idempotency, ownership, import,
 * verify, rollback (ARCHITECTURE.md, steps 1-7). It talks to the world only
 * through the ports, reports one `DeployOutcome`, records its metrics and
 * writes one audit record.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { auditRecordOf } from "./audit.js"
import type { InspectedMaterial } from "./material.js"
import {
  type DeployOutcome,
  type DeployProblem,
  type OutcomeCommon,
  resultLabelOf,
  type VersionRef,
} from "./outcome.js"
import { AuditLog } from "./ports/AuditLog.js"
import { Metrics } from "./ports/Metrics.js"
import type { PfxCodec } from "./ports/PfxCodec.js"
import { Vault, type VaultVersion } from "./ports/Vault.js"
import { preflight } from "./preflight.js"
import type { DeployRequest } from "./request.js"
import { rollback } from "./rollback.js"
import { CERTIFICATE_ID_TAG, forwardTags, hasTags, isManagedByKvdeploy, MANAGED_BY_TAG } from "./tags.js"
import { DeployTrail } from "./trail.js"
import { verifyLatest } from "./verify.js"
import { byCreationLatestFirst, createdSince } from "./versions.js"

/** An outcome before the common fields are filled in. */
type DraftOf<T extends DeployOutcome> = T extends DeployOutcome
  ? Omit<T, keyof OutcomeCommon> & { readonly reason: string }
  : never
type Draft = DraftOf<DeployOutcome>

interface RunState {
  previous: VaultVersion | undefined
  inspected: InspectedMaterial | undefined
  /** notAfter of the previous certificate once a rollback restored it. */
  restoredNotAfter: Date | undefined
}

const refOf = (v: VaultVersion): VersionRef => ({
  versionId: v.versionId,
  x5t: v.x5t,
  serialHex: v.serialHex,
})

const run = (
  request: DeployRequest,
  trail: DeployTrail,
  state: RunState,
): Effect.Effect<Draft, never, Vault | PfxCodec> =>
  Effect.gen(function* () {
    const vault = yield* Vault
    const name = request.target.certificateName

    // 1. Preflight
    const checked = yield* preflight(request)
    state.inspected = checked.inspected
    if (checked._tag === "Rejected") {
      trail.note(`preflight: rejected (${checked.problems.length} problem(s))`)
      return {
        _tag: "Rejected",
        problems: checked.problems,
        reason: `preflight refused the material: ${checked.problems.map((p) => `${p.field} ${p.message}`).join("; ")}`,
      }
    }
    trail.note("preflight: passed")
    const newFacts = checked.inspected.leaf
    const tags = forwardTags(request.target.tags, request.certificateId)

    // 2. Snapshot
    const snapshot = yield* trail.read("getLatest", vault.getLatest(name)).pipe(Effect.result)
    if (snapshot._tag === "Failure") {
      if (snapshot.failure._tag !== "VaultNotFound") {
        trail.note(`snapshot: ${snapshot.failure._tag}; aborting`)
        return {
          _tag: "Failed",
          step: "snapshot",
          error: snapshot.failure._tag,
          reason: `could not read what the vault serves now, so nothing was changed: ${snapshot.failure.message}`,
        }
      }
      trail.note("snapshot: not found (first deploy)")
    } else {
      state.previous = snapshot.success
      trail.note(`snapshot: ${snapshot.success.versionId}`)
    }

    // 3-4. Idempotency and ownership, against the snapshot (again after a recovery).
    const judgeExisting = (previous: VaultVersion): Draft | undefined => {
      if (previous.x5t === newFacts.x5t && previous.enabled && hasTags(previous.tags, tags)) {
        trail.note("idempotency: already served with kvdeploy's tags; skipping")
        return {
          _tag: "Skipped",
          versionId: previous.versionId,
          reason: "the vault already serves this certificate",
        }
      }
      if (!isManagedByKvdeploy(previous.tags)) {
        if (request.options?.adopt !== true) {
          trail.note("ownership: not managed by kvdeploy; refusing")
          const problem: DeployProblem = {
            field: "certificate_name",
            message: `${name} exists in the vault without ${MANAGED_BY_TAG}=certctl; kvdeploy does not overwrite certificates it does not manage`,
            fix: "deploy with adopt to take it over (recorded in the audit log), or choose another certificate_name",
            reason: "not_managed",
          }
          return { _tag: "Rejected", problems: [problem], reason: problem.message }
        }
        trail.adopted = true
        trail.note(`ownership: adopting ${previous.versionId}`)
      }
      return undefined
    }
    if (state.previous !== undefined) {
      const early = judgeExisting(state.previous)
      if (early !== undefined) return early
    }

    // 5. Import
    const importOnce = () =>
      trail.call(
        "importVersion",
        vault.importVersion({
          name,
          pfx: checked.pfx,
          password: checked.password,
          tags,
          keyFacts: checked.inspected.key,
        }),
      )
    let attempt = yield* importOnce().pipe(Effect.result)
    if (attempt._tag === "Failure" && attempt.failure._tag === "VaultConflictSoftDeleted") {
      if (request.target.onSoftDeleted === "fail") {
        const deleted = yield* trail.call("getDeleted", vault.getDeleted(name)).pipe(Effect.option)
        const when =
          deleted._tag === "Some"
            ? ` (deleted ${deleted.value.deletedAt.toISOString()}${deleted.value.scheduledPurgeAt === undefined ? "" : `, purged after ${deleted.value.scheduledPurgeAt.toISOString()}`})`
            : ""
        trail.note("import: name held by a soft-deleted certificate; on_soft_deleted=fail")
        return {
          _tag: "Failed",
          step: "soft-deleted",
          error: "VaultConflictSoftDeleted",
          reason: `${name} is soft-deleted${when}; set on_soft_deleted: recover to recover it and deploy, or purge it first`,
        }
      }
      trail.note("import: name held by a soft-deleted certificate; recovering")
      const recovered = yield* trail.call("recoverDeleted", vault.recoverDeleted(name)).pipe(Effect.result)
      if (recovered._tag === "Failure") {
        return {
          _tag: "Failed",
          step: "soft-deleted",
          error: recovered.failure._tag,
          reason: `${name} is soft-deleted and could not be recovered: ${recovered.failure.message}`,
        }
      }
      state.previous = recovered.success
      trail.note(`recovered: ${recovered.success.versionId}`)
      const early = judgeExisting(recovered.success)
      if (early !== undefined) return early
      attempt = yield* importOnce().pipe(Effect.result)
    }

    let imported: VaultVersion
    let alsoOurs: ReadonlyArray<VaultVersion> = []
    let reconciledUncertain = false
    if (attempt._tag === "Success") {
      imported = attempt.success
    } else if (attempt.failure._tag === "VaultAmbiguous") {
      trail.note("import: outcome unknown; reconciling from the version list")
      const listed = yield* trail.read("listVersions", vault.listVersions(name)).pipe(Effect.result)
      if (listed._tag === "Failure") {
        // A 404 here contradicts a write that may have committed (a lagging replica says as much as an
        // error does): "Failed" would claim the vault is unchanged without evidence.
        trail.note(`reconcile: ${listed.failure._tag}; outcome unknown`)
        return {
          _tag: "Unverified",
          versionId: undefined,
          postVerifyFailure: "unreadable",
          reason: `the import may have taken effect and the vault could not be read to find out: ${listed.failure.message}`,
        }
      }
      // Our version, if the import took effect, was created in the snapshot's second or later. Within a
      // second nothing orders versions (the list is not in creation order), so every version but the
      // snapshot from that second on is a candidate; all that match can be ours.
      const candidates = byCreationLatestFirst(
        createdSince(listed.success, state.previous).filter(
          (v) =>
            v.x5t === newFacts.x5t &&
            v.tags[CERTIFICATE_ID_TAG] === request.certificateId &&
            isManagedByKvdeploy(v.tags),
        ),
      )
      const match = candidates[0]
      if (match === undefined) {
        trail.note("reconcile: the import did not take effect")
        return {
          _tag: "Failed",
          step: "reconcile",
          error: "VaultAmbiguous",
          reason: `the import did not take effect (checked the version list): ${attempt.failure.message}`,
        }
      }
      trail.note(
        `reconcile: found ${candidates.map((v) => v.versionId).join(", ")}${candidates.length > 1 ? " (any can be ours)" : ""}`,
      )
      imported = match
      alsoOurs = candidates.slice(1)
      // Provably ours only when it is the one candidate and was created in a later second than the
      // snapshot: one from the snapshot's own second (or any, when there was no snapshot to bound
      // them) can be an identical version that was already there, and the import may have done nothing.
      reconciledUncertain =
        candidates.length > 1 ||
        state.previous === undefined ||
        match.createdAt.getTime() <= state.previous.createdAt.getTime()
    } else {
      trail.note(`import: ${attempt.failure._tag}`)
      return {
        _tag: "Failed",
        step: "import",
        error: attempt.failure._tag,
        reason: `the import was refused and nothing changed: ${attempt.failure.message}`,
      }
    }
    trail.note(`import: ${imported.versionId}`)

    // 6. Verify
    const previous = state.previous
    const verdict = yield* verifyLatest(trail, name, {
      version: imported,
      alsoOurs,
      x5t: newFacts.x5t,
      serialHex: newFacts.serialHex,
      tags,
      olderVersionIds: previous === undefined ? [] : [previous.versionId],
    })
    // After a reconciliation that found several candidates, the one the vault serves is ours.
    if (verdict._tag === "Verified" || verdict._tag === "Mismatch") imported = verdict.latest
    switch (verdict._tag) {
      case "Verified":
        trail.note("verify: latest is the new version")
        return {
          _tag: "Succeeded",
          versionId: imported.versionId,
          reason: "the vault serves the new version",
        }
      case "Unreadable":
        trail.postVerifyFailure = "unreadable"
        trail.note("verify: unreadable")
        return {
          _tag: "Unverified",
          versionId: imported.versionId,
          postVerifyFailure: "unreadable",
          reason: `imported ${imported.versionId} but the vault could not be read back: ${verdict.detail}`,
        }
      case "Stale":
        trail.postVerifyFailure = "unreadable"
        trail.note(`verify: the vault still serves ${verdict.latest.versionId}`)
        return {
          _tag: "Unverified",
          versionId: imported.versionId,
          postVerifyFailure: "unreadable",
          reason: `imported ${imported.versionId} but the vault still serves the older ${verdict.latest.versionId}`,
        }
      case "Superseded":
        if (reconciledUncertain) {
          // Another writer's version is latest, but which version (if any) this deploy added is not
          // established: claiming "ours was superseded" would name a version that may not be ours.
          trail.postVerifyFailure = "unreadable"
          trail.note(`verify: another writer's ${verdict.latest.versionId} is latest; our import is unproven`)
          return {
            _tag: "Unverified",
            versionId: undefined,
            postVerifyFailure: "unreadable",
            reason: `the import may have taken effect (the version list shows ${[imported, ...alsoOurs].map((v) => v.versionId).join(", ")}, which may also predate this deploy), and another writer's ${verdict.latest.versionId} is now latest; not rolled over`,
          }
        }
        trail.postVerifyFailure = "superseded"
        trail.note(`verify: superseded by ${verdict.latest.versionId}`)
        return {
          _tag: "Superseded",
          versionId: imported.versionId,
          supersededBy: refOf(verdict.latest),
          reason: `another writer's version ${verdict.latest.versionId} is newer than ours; not rolled over`,
        }
      case "Mismatch":
        trail.postVerifyFailure = "mismatch"
        trail.note(`verify: mismatch (${verdict.differences.join("; ")})`)
    }

    // 7. Rollback
    const restored = yield* rollback(trail, request, previous, imported)
    const wrong = `${imported.versionId} was wrong (${verdict.differences.join("; ")})`
    switch (restored._tag) {
      case "Restored":
        trail.rollbackOutcome = "restored"
        state.restoredNotAfter = restored.previousNotAfter
        return {
          _tag: "RolledBack",
          failedVersionId: imported.versionId,
          rollbackVersionId: restored.version.versionId,
          rollbackSource: restored.source,
          reason: `${wrong}; the previous certificate is served again as ${restored.version.versionId}`,
        }
      case "Superseded":
        trail.rollbackOutcome = "also_failed"
        return {
          _tag: "Superseded",
          versionId: restored.version.versionId,
          supersededBy: refOf(restored.latest),
          reason: `${wrong}; rolled back as ${restored.version.versionId}, then another writer's ${restored.latest.versionId} became latest`,
        }
      case "AlsoFailed":
        trail.rollbackOutcome = "also_failed"
        return {
          _tag: "RollbackFailed",
          failedVersionId: imported.versionId,
          rollbackVersionId: restored.rollbackVersionId,
          reason: `${wrong}; rollback failed: ${restored.reason}`,
        }
    }
  })

const recordMetrics = (
  metrics: (typeof Metrics)["Service"],
  outcome: DeployOutcome,
  trail: DeployTrail,
  notAfter: Date | undefined,
): Effect.Effect<void> =>
  Effect.gen(function* () {
    yield* metrics.deployAttempt(resultLabelOf(outcome._tag))
    if (outcome._tag === "Rejected") {
      for (const reason of new Set(outcome.problems.map((p) => p.reason)))
        yield* metrics.validateFailure(reason)
    }
    if (outcome._tag === "Skipped") yield* metrics.idempotentSkip()
    if (outcome._tag === "Unverified") yield* metrics.postVerifyFailure("unreadable")
    else if (trail.postVerifyFailure !== undefined) yield* metrics.postVerifyFailure(trail.postVerifyFailure)
    if (trail.rollbackOutcome !== undefined) yield* metrics.rollback(trail.rollbackOutcome)
    yield* metrics.deployDuration(outcome.timings.durationMs / 1000)
    if (notAfter !== undefined) {
      yield* metrics.certificateExpiry(
        { vaultUrl: outcome.target.vaultUrl, certificateName: outcome.target.certificateName },
        notAfter,
      )
    }
  })

/**
 * Deploy one certificate to one vault target. Never fails: every way it can
 * end is a `DeployOutcome`, recorded in metrics and in one audit record.
 */
export const deploy = Effect.fn("deploy")(function* (request: DeployRequest) {
  const metrics = yield* Metrics
  const audit = yield* AuditLog
  const startedAtMs = yield* Clock.currentTimeMillis
  const trail = new DeployTrail()
  const state: RunState = { previous: undefined, inspected: undefined, restoredNotAfter: undefined }
  const draft = yield* run(request, trail, state)
  const finishedAtMs = yield* Clock.currentTimeMillis
  const common: OutcomeCommon = {
    target: { vaultUrl: request.target.vaultUrl, certificateName: request.target.certificateName },
    certificateId: request.certificateId,
    previous: state.previous === undefined ? undefined : refOf(state.previous),
    newX5t: state.inspected?.leaf.x5t,
    adopted: trail.adopted,
    reason: draft.reason,
    vaultCalls: trail.vaultCalls,
    decisions: trail.decisions,
    timings: { startedAtMs, finishedAtMs, durationMs: finishedAtMs - startedAtMs },
  }
  // Each draft is its outcome without the common fields, so this is the outcome (TS cannot check a spread over a union).
  const outcome = { ...common, ...draft } as DeployOutcome
  const notAfter =
    outcome._tag === "Succeeded" || outcome._tag === "Skipped"
      ? state.inspected?.leaf.notAfter
      : outcome._tag === "RolledBack"
        ? state.restoredNotAfter
        : undefined
  yield* recordMetrics(metrics, outcome, trail, notAfter)
  yield* audit.record(auditRecordOf(outcome))
  return outcome
})
