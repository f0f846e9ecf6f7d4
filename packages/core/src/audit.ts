/**
 * The audit record: one per deploy, built from the outcome. It holds version
 * ids, thumbprints, tags, reasons and the decision trail; never key material.
 */
import type { ImportedContentType } from "./contentType.js"
import { isoTimeOf } from "./isoTime.js"
import {
  type DeployOutcome,
  exitCodeOf,
  type Failed,
  type Recovered,
  type RollbackFailed,
  type Unverified,
} from "./outcome.js"

export interface AuditRecord {
  readonly schema: "kvdeploy.audit/v1"
  /** ISO time the deploy finished. */
  readonly at: string
  readonly vaultUrl: string
  readonly certificateName: string
  readonly certificateId: string
  readonly outcome: DeployOutcome["_tag"]
  readonly exitCode: number
  readonly reason: string
  /**
   * As a Failed outcome's: the step that failed; as an Unverified or RollbackFailed outcome's, the
   * step whose call ended it, when one did. Absent for the other outcomes.
   */
  readonly step?: Failed["step"] | NonNullable<Unverified["step"] | RollbackFailed["step"]>
  /** As the outcome's: the error's tag, when one caused it (Failed, Unverified, RollbackFailed). */
  readonly error?: string
  /** As the outcome's: the port operation that failed (`importVersion`, `getLatest`, …), when one did. */
  readonly operation?: string
  readonly previousVersionId: string | undefined
  readonly previousX5t: string | undefined
  readonly newX5t: string | undefined
  /**
   * The version this deploy is about: the one it created (Succeeded, Superseded; for Unverified,
   * the one it imported when that is proven, else undefined), for Skipped the one already in place,
   * and for RolledBack and RollbackFailed the version it imported that failed verification (the
   * outcome's `failedVersionId`; `rollbackVersionId` is the rollback's). Undefined for Rejected and
   * Failed (no version was added).
   */
  readonly versionId: string | undefined
  readonly rollbackVersionId: string | undefined
  readonly adopted: boolean
  /**
   * As the outcome's: set when the deploy recovered the soft-deleted certificate of its name
   * ("recovered", "unknown"), or found the certificate served already when it went to recover it,
   * so it sent no recovery ("already-served").
   */
  readonly recovered?: Recovered
  /** As the outcome's: the content type the import wrote, what was served before, kept or changed. */
  readonly contentType?: ImportedContentType
  readonly vaultCalls: number
  readonly durationMs: number
  readonly decisions: ReadonlyArray<string>
  readonly problems: ReadonlyArray<{ readonly field: string; readonly message: string; readonly fix: string }>
  /** As the outcome's: what may break a client without stopping the deploy; absent when nothing. */
  readonly warnings?: ReadonlyArray<{
    readonly field: string
    readonly message: string
    readonly fix: string
  }>
}

/** An Unverified or RollbackFailed outcome's ending call, when one ended it (nothing otherwise). */
const endedBy = (
  outcome: Unverified | RollbackFailed,
): Pick<AuditRecord, "step" | "error" | "operation"> => ({
  ...(outcome.step === undefined ? {} : { step: outcome.step }),
  ...(outcome.error === undefined ? {} : { error: outcome.error }),
  ...(outcome.operation === undefined ? {} : { operation: outcome.operation }),
})

export const auditRecordOf = (outcome: DeployOutcome): AuditRecord => ({
  schema: "kvdeploy.audit/v1",
  at: isoTimeOf(outcome.timings.finishedAtMs),
  vaultUrl: outcome.target.vaultUrl,
  certificateName: outcome.target.certificateName,
  certificateId: outcome.certificateId,
  outcome: outcome._tag,
  exitCode: exitCodeOf(outcome),
  reason: outcome.reason,
  ...(outcome._tag === "Failed"
    ? {
        step: outcome.step,
        ...(outcome.error === undefined ? {} : { error: outcome.error }),
        ...(outcome.operation === undefined ? {} : { operation: outcome.operation }),
      }
    : outcome._tag === "Unverified" || outcome._tag === "RollbackFailed"
      ? endedBy(outcome)
      : {}),
  previousVersionId: outcome.previous?.versionId,
  previousX5t: outcome.previous?.x5t,
  newX5t: outcome.newX5t,
  versionId:
    outcome._tag === "Succeeded" ||
    outcome._tag === "Skipped" ||
    outcome._tag === "Unverified" ||
    outcome._tag === "Superseded"
      ? outcome.versionId
      : outcome._tag === "RolledBack" || outcome._tag === "RollbackFailed"
        ? outcome.failedVersionId
        : undefined,
  rollbackVersionId:
    outcome._tag === "RolledBack" || outcome._tag === "RollbackFailed" || outcome._tag === "Superseded"
      ? outcome.rollbackVersionId
      : undefined,
  adopted: outcome.adopted,
  ...(outcome.recovered === undefined ? {} : { recovered: outcome.recovered }),
  ...(outcome.contentType === undefined ? {} : { contentType: outcome.contentType }),
  vaultCalls: outcome.vaultCalls,
  durationMs: outcome.timings.durationMs,
  decisions: outcome.decisions,
  problems:
    outcome._tag === "Rejected"
      ? outcome.problems.map((p) => ({ field: p.field, message: p.message, fix: p.fix }))
      : [],
  ...(outcome.warnings === undefined ? {} : { warnings: outcome.warnings }),
})
