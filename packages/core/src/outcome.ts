/**
 * What a deploy reports: a tagged union of outcomes, each true of the vault
 * afterwards (invariant I3), and the CLI exit code for each.
 */
import type { ImportedContentType } from "./contentType.js"
import type { PostVerifyFailureReason, ValidateFailureReason } from "./ports/Metrics.js"

/** A version as the deploy saw it. */
export interface VersionRef {
  readonly versionId: string
  readonly x5t: string
  readonly serialHex: string
}

/** One reason a deploy was refused; `field` names the input, `fix` says what to do. */
export interface DeployProblem {
  readonly field: string
  readonly message: string
  readonly fix: string
  readonly reason: ValidateFailureReason
}

/**
 * Something about the material that does not stop a deploy but may break a client: an expired
 * certificate in the chain, a CA-issued leaf deployed without its chain. `field` names the input,
 * `fix` says what to do.
 */
export interface DeployWarning {
  readonly field: string
  readonly message: string
  readonly fix: string
}

export interface DeployTimings {
  /** Wall-clock times (Unix ms), for records and logs. */
  readonly startedAtMs: number
  readonly finishedAtMs: number
  /** Measured on the monotonic clock (whole ms): not the difference of the two times when the wall clock moved. */
  readonly durationMs: number
}

/**
 * What became of the soft-deleted certificate of the deploy's name (`on_soft_deleted: recover`):
 * - "recovered": the deploy's recovery was sent and it is served again, whatever the outcome;
 * - "already-served": the vault served the certificate already when the deploy went to recover it
 *   (another writer recovered it, or the name holds a certificate made since), so the deploy sent no
 *   recovery (Key Vault's SDK reads the certificate before it recovers one; a recovery that found
 *   no deleted certificate is read the same way); the deploy went on over what the vault serves;
 * - "unknown": the recovery was sent and its answer lost, so whether it recovered the certificate
 *   is not known: either the certificate was not served yet (a Failed outcome at the
 *   `soft-deleted` step), or the vault served it again, by this recovery or by another writer's
 *   that came first (this one then found nothing), and the deploy went on over what it serves.
 */
export type Recovered = "recovered" | "already-served" | "unknown"

/** Fields every outcome carries. */
export interface OutcomeCommon {
  readonly target: { readonly vaultUrl: string; readonly certificateName: string }
  readonly certificateId: string
  /** What the vault served before the deploy (the snapshot); undefined on a first deploy or when unknown. */
  readonly previous: VersionRef | undefined
  /** x5t of the certificate being deployed (undefined when the material could not be read). */
  readonly newX5t: string | undefined
  /** True when the deploy took over a certificate kvdeploy did not manage (`adopt`). */
  readonly adopted: boolean
  /**
   * Set when the deploy met the soft-deleted certificate of its name and went to recover it
   * (`on_soft_deleted: recover`): see `Recovered`. Absent otherwise.
   */
  readonly recovered?: Recovered
  /**
   * The content type of the secret this deploy's import wrote (content_type), what the vault served
   * before, and whether the import `kept` it, `changed` it (consumers read another format from now
   * on) or it is `new`. Absent when the deploy sent no import (Rejected before, Skipped, a snapshot
   * that failed). A rollback restores the content type served before.
   */
  readonly contentType?: ImportedContentType
  /** Human-readable reason for the outcome. */
  readonly reason: string
  /**
   * Vault calls this deploy made, each counted once whatever the SDK retried underneath; a call
   * for which no token could be had is not counted (nothing was sent: see the errors' `unsent`).
   */
  readonly vaultCalls: number
  /** The trail of decisions, one short line per step. */
  readonly decisions: ReadonlyArray<string>
  /** What preflight found that may break a client without stopping the deploy; absent when nothing. */
  readonly warnings?: ReadonlyArray<DeployWarning>
  readonly timings: DeployTimings
}

/** The new version is what the vault serves, verified. */
export interface Succeeded extends OutcomeCommon {
  readonly _tag: "Succeeded"
  readonly versionId: string
}
/** The vault already serves this certificate with kvdeploy's tags; nothing written. */
export interface Skipped extends OutcomeCommon {
  readonly _tag: "Skipped"
  readonly versionId: string
}
/** Refused before anything was written; every problem listed. */
export interface Rejected extends OutcomeCommon {
  readonly _tag: "Rejected"
  readonly problems: ReadonlyArray<DeployProblem>
}
/** A step failed and the vault is unchanged by this deploy. */
export interface Failed extends OutcomeCommon {
  readonly _tag: "Failed"
  readonly step: "snapshot" | "import" | "reconcile" | "soft-deleted"
  /** Tag of the vault error, when one caused it. */
  readonly error: string | undefined
  /**
   * The port operation whose answer failed it (`getLatest`, `importVersion`, `listVersions`,
   * `getDeleted`, `recoverDeleted`): for a lost import (`VaultAmbiguous`) and an import that met a
   * soft-deleted name, `importVersion`. Absent when no call failed (a soft-deleted name the deploy
   * read instead of importing).
   */
  readonly operation?: string
  /**
   * What the vault (or the identity provider) refused, when the error is a VaultForbidden that says:
   * a permission to grant, the token, the network, the credential, a disabled version, or the
   * resource the vault asked a token for, or the tenant (the vault's is not the credential's). Each
   * has another remedy, and only a missing permission is fixed by a grant.
   */
  readonly refusal?: "permission" | "token" | "network" | "credential" | "disabled" | "resource" | "tenant"
  /** True when the failing call was never sent: no token could be had for it (the error's `unsent`). */
  readonly unsent?: true
  /**
   * True when the connection failed because the client did not accept the vault's TLS certificate
   * (a VaultUnavailable's `tlsRefused`): its CA trust or the vault URL is to fix, not a retry.
   */
  readonly tlsRefused?: true
  /**
   * Key Vault's error code when it refused the request itself (a VaultRequestRejected): `Conflict`
   * for an import whose name a key or secret holds, `BadParameter`, and so on;
   * `RequestDisallowedByPolicy` (`azurePolicyRefusalCode`) when the vault's Azure Policy refused
   * the certificate.
   */
  readonly code?: string
}
/**
 * The call that ended an outcome other than Failed, when one did, named as a Failed outcome names
 * its own (`step`, `error`, `operation`), so one filter (`select(.error == "VaultForbidden")`)
 * finds every outcome a refused call ended. All three are absent when no call failed: reads that
 * kept answering an older version, a rollback's version that was also wrong, a first deploy with
 * nothing to restore.
 */
export interface EndedByError<Step extends string> {
  /** The step whose call failed. */
  readonly step?: Step
  /** Tag of the error (`VaultForbidden`, `VaultThrottled`, `VaultAmbiguous`, `PfxEncodeError`, …). */
  readonly error?: string
  /** The port operation that failed (`getLatest`, `listVersions`, `getVersionSecret`, `importVersion`, `encode`, …). */
  readonly operation?: string
}

/**
 * Imported (or possibly imported), but the vault could not be read back: needs a person. When a
 * call's error ended it, `step` is `reconcile` (the version list after an import whose answer was
 * lost, or the soft-deleted certificate read then) or `verify` (the read of the latest).
 */
export interface Unverified extends OutcomeCommon, EndedByError<"reconcile" | "verify"> {
  readonly _tag: "Unverified"
  /** The imported version, when known. */
  readonly versionId: string | undefined
  readonly postVerifyFailure: PostVerifyFailureReason
}
/** Another writer's newer version is latest; not clobbered. */
export interface Superseded extends OutcomeCommon {
  readonly _tag: "Superseded"
  /** Our forward import. */
  readonly versionId: string
  /** The rollback's import, when the forward version failed verify and the rollback was overtaken. */
  readonly rollbackVersionId?: string
  readonly supersededBy: VersionRef
}
/** The new version was wrong; the previous material is served again, verified. */
export interface RolledBack extends OutcomeCommon {
  readonly _tag: "RolledBack"
  readonly failedVersionId: string
  readonly rollbackVersionId: string
  readonly rollbackSource: RollbackSource
  /**
   * Other writers' versions the rollback now stands over, listed after it: imported while its import
   * was in flight (Key Vault has no conditional import), or another deployer's copy of the new
   * certificate imported since the snapshot. The reason names them and says what to do. Absent when
   * there were none (or they could not be listed: the reason says that too).
   */
  readonly overwritten?: ReadonlyArray<VersionRef>
  /**
   * Copies of the new certificate with this certificate id from the snapshot's second, which the
   * rollback may stand over: Key Vault cannot order versions created within one second, so each is
   * an earlier deploy's (which the snapshot's version replaced) or another deployer's import since
   * the snapshot. The reason names them. Absent when there were none.
   */
  readonly possiblyOverwritten?: ReadonlyArray<VersionRef>
  /**
   * True when the versions could not be listed after the rollback's import: whether it stands over
   * another writer's version is not known (the reason says so). Absent when they were listed.
   */
  readonly overwrittenUnchecked?: true
}
/**
 * Why the previous version's backing secret gave no material for a rollback: secrets/get refused
 * (`permission`), the vault's access refused otherwise (`access`), the version disabled, its key not
 * exportable, the secret unreadable, or read with nothing restorable in it (`unusable`).
 */
export type PreviousMaterialShortfall =
  | "permission"
  | "access"
  | "disabled"
  | "not-exportable"
  | "unreadable"
  | "unusable"

/**
 * The new version was wrong and the previous material could not be restored (or not verified).
 * When a call's error ended the rollback (the backing secret's read or its decoding, the list or
 * read before its import, the import, the read that verifies it, the encoding of the previous
 * material), `step` is `rollback` and `error`, `operation` name it.
 */
export interface RollbackFailed extends OutcomeCommon, EndedByError<"rollback"> {
  readonly _tag: "RollbackFailed"
  readonly failedVersionId: string
  readonly rollbackVersionId: string | undefined
  /**
   * Why no previous material was found, when that is what failed the rollback: what a person does
   * next depends on it (`kvdeploy restore` reads the same backing secret). Absent otherwise.
   */
  readonly previousUnavailable?: PreviousMaterialShortfall
}

/** Where the previous material used for a rollback came from. */
export type RollbackSource = "backing-secret" | "caller-key" | "reused-key"

export type DeployOutcome =
  | Succeeded
  | Skipped
  | Rejected
  | Failed
  | Unverified
  | Superseded
  | RolledBack
  | RollbackFailed

export type DeployOutcomeTag = DeployOutcome["_tag"]

/** Exit codes for the CLI. */
export const exitCodes: { readonly [K in DeployOutcomeTag]: number } = {
  Succeeded: 0,
  Skipped: 0,
  Failed: 1,
  Rejected: 2,
  RolledBack: 3,
  RollbackFailed: 4,
  Unverified: 4,
  Superseded: 5,
}

/** 0 Succeeded/Skipped, 1 Failed, 2 Rejected, 3 RolledBack, 4 RollbackFailed/Unverified, 5 Superseded. */
export const exitCodeOf = (outcome: { readonly _tag: DeployOutcomeTag }): number => exitCodes[outcome._tag]

/** The `result` label value of an outcome. */
export const resultLabelOf = (tag: DeployOutcomeTag) => {
  switch (tag) {
    case "Succeeded":
      return "succeeded" as const
    case "Skipped":
      return "skipped" as const
    case "Rejected":
      return "rejected" as const
    case "Failed":
      return "failed" as const
    case "Unverified":
      return "unverified" as const
    case "Superseded":
      return "superseded" as const
    case "RolledBack":
      return "rolled_back" as const
    case "RollbackFailed":
      return "rollback_failed" as const
  }
}
