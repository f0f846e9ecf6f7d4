/**
 * The deploy program: preflight, snapshot, idempotency, ownership, import,
 * verify, rollback (ARCHITECTURE.md, steps 1-7). It talks to the world only
 * through the ports, reports one `DeployOutcome`, records its metrics and
 * writes one audit record.
 *
 * The common path (preflight, snapshot, import, verify with no fault) is one
 * generator that yields the port calls and little else: the services are read
 * once from the context, the clock is read through its service, first
 * attempts are made directly (the retry schedule is set up only after a
 * failure), and decisions are plain code. Rare paths (soft-deleted names,
 * ambiguous imports, retries, rollback) live in their own functions.
 *
 * When preflight settled the 25 KB rule without building the PFX, the PFX is
 * built while the snapshot read is on its way (the read runs in a child fiber
 * started at once; if it has not answered by the time it suspends, the build
 * runs in the meantime), or after the snapshot when it answered at once, and
 * only if the deploy will import: a Skipped deploy whose snapshot answered at
 * once builds nothing.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Result from "effect/Result"
import { auditRecordOf } from "./audit.js"
import {
  contentTypeDecision,
  contentTypeWaiting,
  contentTypeWords,
  type ImportedContentType,
  importContentTypeOf,
  importedContentTypeOf,
  PEM_CONTENT_TYPE,
  type SecretContentType,
} from "./contentType.js"
import { DeployPolicy, type DeployPolicyShape } from "./DeployPolicy.js"
import { holdsNoCertificate, judgeExistingVersion } from "./judgeExisting.js"
import type { InspectedMaterial } from "./material.js"
import {
  type DeployOutcome,
  type DeployProblem,
  type Failed,
  type OutcomeCommon,
  resultLabelOf,
  type VersionRef,
} from "./outcome.js"
import { AuditLog } from "./ports/AuditLog.js"
import { Metrics } from "./ports/Metrics.js"
import { PfxCodec } from "./ports/PfxCodec.js"
import {
  type DeletedCertificate,
  type ImportRequest,
  isRetriableRead,
  Vault,
  type VaultConflictSoftDeleted,
  type VaultError,
  type VaultNotFound,
  type VaultVersion,
} from "./ports/Vault.js"
import {
  checkBuiltPem,
  checkBuiltPfx,
  materialWarnings,
  pfxOptionsOf,
  pfxPassword,
  preflightInspected,
  servedVersionWarning,
} from "./preflight.js"
import type { DeployRequest } from "./request.js"
import { requestShapeProblems } from "./requestShape.js"
import {
  namedVersions,
  type PreviousKeyFit,
  previousKeyFit,
  rollback,
  rollbackContentTypeOf,
} from "./rollback.js"
import { unfitTagValue, withheldCertificateId } from "./TargetConfig.js"
import {
  CERTIFICATE_ID_TAG,
  forwardTags,
  isManagedByKvdeploy,
  MANAGED_BY_TAG,
  ROLLBACK_OF_TAG,
} from "./tags.js"
import { DeployTrail, retryAfter } from "./trail.js"
import {
  callFailureOf,
  confirmSuperseded,
  type Expected,
  judgeLatest,
  type Verdict,
  verifyAfterFirst,
} from "./verify.js"
import { byCreationLatestFirst, createdSince, VAULT_STAMP_MARGIN_MS } from "./versions.js"

/** An outcome before the common fields are filled in. */
type DraftOf<T extends DeployOutcome> = T extends DeployOutcome
  ? Omit<T, keyof OutcomeCommon> & { readonly reason: string }
  : never
type Draft = DraftOf<DeployOutcome>

interface RunState {
  previous: VaultVersion | undefined
  inspected: InspectedMaterial | undefined
  /**
   * notAfter of what the vault serves at the end when it is not the new certificate: the previous
   * certificate a rollback restored, or another writer's version that superseded ours.
   */
  servedNotAfter: Date | undefined
  /** When the vault answered the snapshot's 404, by its own clock, when the adapter says (a first deploy). */
  snapshotNotFoundAtMs?: number | undefined
  /** Whether the snapshot found no certificate (whether or not the answer said when). */
  snapshotNotFound?: boolean
  /**
   * Whether the reconcile's version list was read and listed no version at all (Key Vault's answer
   * for a name that holds no certificate): nothing is served under the name.
   */
  reconcileListedNone?: boolean
  /**
   * Whether the reconcile's version list was read and showed the snapshot's version with no version
   * created since (in its second or later): the import wrote nothing, and the snapshot's version is
   * still the latest, so still served.
   */
  reconcileSnapshotLatest?: boolean
  /**
   * Whether the name was found held by a soft-deleted certificate (an import met it, or the deploy
   * read it) and no recovery has brought a version back since: nothing is served under the name.
   */
  metDeleted?: boolean
  /** The content type of the import's secret, once the import's content is chosen. */
  contentType?: ImportedContentType | undefined
  /**
   * Why it is not known whether a soft-deleted certificate holds the name, when nothing is served,
   * the PFX is over the limit (content_type keep) and the deleted certificate could not be read.
   */
  deletedUnread?: string | undefined
  /**
   * Whether the vault answered, after the name was met soft-deleted, that it holds no deleted
   * certificate of it any more (the deleted certificate's read, or the recovery, answered 404):
   * another writer recovered or purged it meanwhile, and a read of the latest may not show a
   * recovery yet, so whether anything is served is not known.
   */
  deletedGone?: boolean
}

/**
 * What a RolledBack's reason adds about other writers' versions the rollback stands over (imported
 * while its import was in flight, or another deployer's copy of the new certificate): named, with
 * what to do, or that this could not be checked; nothing when the list showed none.
 */
const overwrittenText = (overwritten: ReadonlyArray<VaultVersion> | undefined): string => {
  if (overwritten === undefined)
    return "; the versions could not be listed afterwards, so another writer's import while the rollback's import was in flight is not ruled out (`kvdeploy versions` lists them)"
  if (overwritten.length === 0) return ""
  const one = overwritten.length === 1
  return `, over another writer's ${namedVersions(overwritten)}, imported after the snapshot (Key Vault has no conditional import): ${one ? "that write is" : "those writes are"} no longer served; decide which certificate the vault should serve (\`kvdeploy versions\` lists them) and deploy it`
}

/**
 * What a RolledBack's reason adds about copies of the new certificate (this certificate id) from the
 * snapshot's second that the rollback may stand over: Key Vault cannot order versions created
 * within one second, so each is an earlier deploy's or another deployer's since the snapshot.
 */
const possiblyOverwrittenText = (possibly: ReadonlyArray<VaultVersion>): string =>
  possibly.length === 0
    ? ""
    : `; it may stand over ${namedVersions(possibly)}, ${possibly.length === 1 ? "a copy" : "copies"} of the new certificate with this certificate id from the snapshot's second (Key Vault cannot order versions created within one second: an earlier deploy's, which the snapshot's version replaced, or another deployer's import since the snapshot); if another deployer imported it, that write is no longer served: decide which certificate the vault should serve (\`kvdeploy versions\` lists them)`

/** What a Superseded reason adds when the other writer's newer version is disabled. */
const disabledLatestText =
  "; it is disabled, so a client that reads the certificate's latest version gets none until it is enabled or another version is imported"

const refOf = (v: VaultVersion): VersionRef => ({
  versionId: v.versionId,
  x5t: v.x5t,
  serialHex: v.serialHex,
})

type ImportResult = Result.Result<VaultVersion, VaultConflictSoftDeleted | VaultError>
type ReadResult = Result.Result<VaultVersion, VaultNotFound | VaultError>

const resultHandlers = { onFailure: Result.fail, onSuccess: Result.succeed }
/** `Effect.result` (the same `matchEager`) with its two handlers made once, not on every call. */
const resultOf = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<Result.Result<A, E>, never, R> =>
  Effect.matchEager(self, resultHandlers) as Effect.Effect<Result.Result<A, E>, never, R>

const startImmediately = { startImmediately: true } as const
const noVersions: ReadonlyArray<VaultVersion> = Object.freeze([])

const rejectedBuild = (problem: DeployProblem): Draft => ({
  _tag: "Rejected",
  problems: [problem],
  reason: `preflight refused the material: ${problem.field} ${problem.message}`,
})

const preflightRejected = (trail: DeployTrail, problems: ReadonlyArray<DeployProblem>): Draft => {
  trail.note(`preflight: rejected (${problems.length} problem(s))`)
  return {
    _tag: "Rejected",
    problems,
    reason: `preflight refused the material: ${problems.map((p) => `${p.field} ${p.message}`).join("; ")}`,
  }
}

/**
 * What a Failed outcome carries of its error: the port operation that failed, the refusal a VaultForbidden states, whether the
 * call was never sent (no token could be had for it), and whether the client refused the vault's
 * TLS certificate.
 */
const failureFacts = (failure: {
  readonly _tag: string
  readonly operation: string
  readonly refusal?: Failed["refusal"] | undefined
  readonly unsent?: boolean | undefined
  readonly code?: string | undefined
  readonly tlsRefused?: boolean | undefined
}): Pick<Failed, "operation" | "refusal" | "unsent" | "code" | "tlsRefused"> => ({
  operation: failure.operation,
  ...(failure._tag === "VaultForbidden" && failure.refusal !== undefined ? { refusal: failure.refusal } : {}),
  ...(failure.unsent === true ? { unsent: true } : {}),
  ...(failure._tag === "VaultUnavailable" && failure.tlsRefused === true ? { tlsRefused: true } : {}),
  ...(failure._tag === "VaultRequestRejected" && failure.code !== undefined ? { code: failure.code } : {}),
})

const snapshotFailed = (trail: DeployTrail, failure: VaultError): Draft => {
  trail.note(`snapshot: ${failure._tag}; aborting`)
  return {
    _tag: "Failed",
    step: "snapshot",
    error: failure._tag,
    ...failureFacts(failure),
    reason: `could not read what the vault serves now, so nothing was changed: ${failure.message}`,
  }
}

type CameBack = "recovered" | "already-served"

/**
 * Why this deploy sent no recovery, when the vault served the certificate already as it went to
 * recover it: what that proves is only that it was served then, not who brought it there.
 */
const alreadyServedWords = (trail: DeployTrail): string =>
  `${
    trail.recoveryFoundNone
      ? "this deploy's recovery found no deleted certificate of the name and the vault serves it again (another writer recovered it, its recovery not shown yet when this deploy read the certificate, or the name holds a certificate made since), so this deploy recovered nothing"
      : "the vault served the certificate already when this deploy went to recover it (another writer recovered it, or the name holds a certificate made since), so this deploy sent no recovery"
  }${trail.servedOtherThanDeleted ? "; it serves another version than the deleted one" : ""}`

/**
 * A reason's words for a certificate that is served again before the import (this deploy's
 * recovery), or was served already when the deploy went to recover it (`as`: as which version, and
 * what it serves).
 */
const servedAgainWords = (trail: DeployTrail, back: CameBack, as = ""): string =>
  back === "recovered"
    ? trail.recoveryAnswerLost
      ? `${lostRecoveryWords}, and the soft-deleted certificate is served again${as}`
      : `the soft-deleted certificate was recovered first and is served again${as}`
    : `${alreadyServedWords(trail)}; it is served${as}`

/**
 * Who recovered the certificate, when this deploy's recovery was sent and its answer lost: not
 * known (another writer's recovery may have come first, and this one then found nothing).
 */
const lostRecoveryWords =
  "this deploy's recovery was sent and its answer lost (whether it or another writer's recovery brought the certificate back is not known)"

/**
 * A recovery whose answer was lost, a read after it that showed the certificate served, then an
 * import that met the name deleted: the read may have been a lagging replica's (nothing recovered),
 * so neither a recovery nor a delete after it is claimed.
 */
const lostAnswerThenDeletedWords =
  "this deploy's recovery was sent and its answer lost; a read after it showed the certificate served (brought back by that recovery or another writer's, or a lagging replica's answer), and the import found the name deleted"

/** Whether the certificate is served again during this deploy, by its recovery or found served already. */
const cameBack = (trail: DeployTrail): CameBack | undefined =>
  trail.recovered === "recovered" || trail.recovered === "already-served" ? trail.recovered : undefined

const importRefused = (trail: DeployTrail, failure: VaultConflictSoftDeleted | VaultError): Draft => {
  trail.note(`import: ${failure._tag}`)
  // After a recovery (this deploy's, or one found served already), a refusal that names a delete
  // means someone deleted it again.
  const deletedAgain =
    failure._tag === "VaultConflictSoftDeleted" ||
    (failure._tag === "VaultRequestRejected" && failure.code === "ObjectIsBeingDeleted")
  const back = cameBack(trail)
  return {
    _tag: "Failed",
    step: "import",
    error: failure._tag,
    ...failureFacts(failure),
    reason:
      back === undefined
        ? `the import was refused and nothing changed: ${failure.message}`
        : deletedAgain
          ? `the import was refused and no version was written (${back === "recovered" ? (trail.recoveryAnswerLost ? `${lostAnswerThenDeletedWords}` : "the soft-deleted certificate was recovered first, then deleted again before the import") : `${alreadyServedWords(trail)}; it was then deleted before the import`}): ${failure.message}`
          : `the import was refused and no version was written (${servedAgainWords(trail, back)}): ${failure.message}`,
  }
}

/**
 * How the fix of a refusal to take over a certificate kvdeploy does not manage says to adopt it, for
 * the CLI and the agent alike (the agent says it in its own words, with the reload it takes).
 */
export const adoptAdvice = "deploy with adopt (`--adopt`; `adopt: true` in an agent deployment's target)"

/** The fix of a refusal to overwrite a certificate kvdeploy does not manage (a takeover). */
export const notManagedFix = `find out who wrote the latest version first (\`kvdeploy versions\` shows each version's tags): another tool may renew it and expect it served; to take it over (this certificate is then served in its place, and the outcome and the audit record note the takeover), ${adoptAdvice}; or choose another certificate_name`

/** Steps 3-4, idempotency and ownership, against the snapshot (again after a recovery). */
const judgeExisting = (
  request: DeployRequest,
  trail: DeployTrail,
  previous: VaultVersion,
  newX5t: string,
  tags: Readonly<Record<string, string>>,
): Draft | undefined => {
  const judgement = judgeExistingVersion(previous, newX5t, tags, request.options)
  if (judgement._tag === "InPlace") {
    trail.note("idempotency: already served with kvdeploy's tags; skipping")
    // content_type pem or pkcs12 (or keep with consumers that read PKCS#12 only) asks for another
    // content type than the one served: nothing is imported for it alone, so it takes effect with
    // the next version a deploy writes. Said, not silent, with what writes one now.
    const waiting = contentTypeWaiting(request.target, previous.contentType, {
      recovered: trail.recovered === "recovered",
    })
    if (waiting !== undefined) trail.warnings = [...trail.warnings, waiting]
    return {
      _tag: "Skipped",
      versionId: previous.versionId,
      reason:
        trail.recovered === "recovered"
          ? trail.recoveryAnswerLost
            ? `${lostRecoveryWords}; the certificate the vault serves again is this certificate, no version was written`
            : "the recovered certificate is this certificate: the vault serves it again, no version was written"
          : trail.recovered === "already-served"
            ? `${alreadyServedWords(trail)}; the served certificate is this certificate, no version was written`
            : "the vault already serves this certificate",
    }
  }
  if (judgement._tag === "NotManaged") {
    trail.note("ownership: not managed by kvdeploy; refusing")
    const name = request.target.certificateName
    // The latest "version" holds no certificate: a create was started in the vault (waiting for its CA,
    // or for the merge of a signed CSR), and Key Vault takes no import while it is in progress.
    const problem: DeployProblem = holdsNoCertificate(previous)
      ? {
          field: "certificate_name",
          message: `${name} exists in the vault without ${MANAGED_BY_TAG}=certctl, and its latest version holds no certificate yet: a create was started on it in the vault (a certificate operation waiting for its CA, or for the merge of a signed CSR) and has not completed; kvdeploy does not overwrite certificates it does not manage`,
          fix: "if nobody will finish that create, delete its operation (az keyvault certificate pending delete, or the portal's Certificate Operation) and deploy again (with adopt if the vault still shows the name); or choose another certificate_name",
          reason: "not_managed",
        }
      : {
          field: "certificate_name",
          message: `${name}'s latest version (${previous.versionId}) carries no ${MANAGED_BY_TAG}=certctl: another tool or person wrote it (or kvdeploy never managed this name), and kvdeploy does not overwrite certificates it does not manage`,
          fix: notManagedFix,
          reason: "not_managed",
        }
    return { _tag: "Rejected", problems: [problem], reason: problem.message }
  }
  if (judgement.adopting) {
    trail.adopting = true
    trail.note(`ownership: adopting ${previous.versionId}`)
  }
  return undefined
}

/**
 * Step 4's check of a caller's previous key (key history), judged as the rollback would judge it:
 * a key that is not the served certificate's (or cannot be read with it) is refused, as the caller
 * gave it to make the rollback safe and it is the wrong one. A right key whose chain cannot be
 * restored (the served certificate's issuer is not among the chain given: a renewal whose
 * intermediate changed, with a key-only file) is noted, not refused: the rollback then reads the
 * previous version's backing secret, as without a key.
 */
const previousKeyRefused = (
  trail: DeployTrail,
  served: VaultVersion,
  judged: PreviousKeyFit,
  deleted: boolean,
): Draft | undefined => {
  switch (judged.fit) {
    case "matches":
      return undefined
    case "unknown":
      trail.note("previous key: not checked (the vault did not return the certificate)")
      return undefined
    case "chain-missing":
      trail.note(
        `previous key: matches the served certificate, but a rollback cannot restore its chain with it (${judged.why}); a rollback would read the previous version's backing secret (secrets/get)`,
      )
      return undefined
  }
  trail.note(
    `previous key: refusing (${judged.fit})${deleted ? "; the soft-deleted certificate was left deleted" : ""}`,
  )
  const which = deleted
    ? "the version a recovery of the soft-deleted certificate would bring back"
    : "the version the vault serves now"
  const problem: DeployProblem = {
    field: "previousKey",
    message: `cannot restore ${which} (${served.versionId}, x5t ${served.x5t}) in a rollback: ${judged.why}${deleted ? "; it was left deleted" : ""}`,
    fix: `give the key of ${which}, or leave the previous key out: a rollback then reads the previous version's backing secret (secrets/get)`,
    reason: "previous_key",
  }
  return { _tag: "Rejected", problems: [problem], reason: `previousKey: ${problem.message}` }
}

/**
 * Step 4's checks of the version an import replaces, after idempotency and ownership (and again
 * after a recovery): a caller's previous key its rollback could not use is refused before
 * anything is written. (What the import does to the secret's content type is noted where its
 * content is chosen: `importRequestFor`.)
 */
const judgeReplaced = Effect.fnUntraced(function* (
  request: DeployRequest,
  trail: DeployTrail,
  served: VaultVersion,
  checks: { readonly previousKey: boolean; readonly deleted: boolean },
): Effect.fn.Return<Draft | undefined, never, PfxCodec> {
  const previousKey = request.options?.previousKey
  if (checks.previousKey && previousKey !== undefined) {
    const judged = yield* previousKeyFit(previousKey, request.options?.previousChain ?? [], served)
    const refused = previousKeyRefused(trail, served, judged, checks.deleted)
    if (refused !== undefined) return refused
  }
  return undefined
})

/** The content of an import, once built: the PFX (or why it cannot be), the PEM (or why not). */
interface ImportContent {
  pfx: Uint8Array | DeployProblem | undefined
  pem: Uint8Array | DeployProblem | undefined
}

/**
 * The content of an import in `contentType`, built now if it was not yet (and kept in `content`),
 * or why it cannot be imported (a PFX over Key Vault's limit; a PEM over its 25 KB secret value
 * limit, known only now for `keep`). `pemWhy` says why the import is PEM, for the PEM's refusal.
 */
function* contentOf(
  codec: PfxCodec["Service"],
  policy: DeployPolicyShape,
  request: DeployRequest,
  content: ImportContent,
  contentType: SecretContentType,
  pemWhy: string,
): Effect.fn.Return<Uint8Array | DeployProblem> {
  if (contentType === PEM_CONTENT_TYPE) {
    if (content.pem === undefined)
      content.pem = checkBuiltPem(
        yield* resultOf(codec.encodePem(request.material)),
        policy.maxPemBytes,
        pemWhy,
      )
    return content.pem
  }
  if (content.pfx === undefined)
    content.pfx = checkBuiltPfx(
      yield* resultOf(codec.encode(request.material, pfxOptionsOf(request))),
      policy.maxPfxBytes,
    )
  return content.pfx
}

/**
 * Step 5's content: the import request in the content type the target's content_type and the
 * served version (`served`: the snapshot, or what a recovery brought back) call for, noted in the
 * trail and the outcome; or, when its content cannot be imported (a PEM over Key Vault's 25 KB
 * secret value limit, known only now for `keep`; a PFX over its limit, with `keep` over a secret
 * that is not PEM), a Rejected draft: no version is written (after this deploy's recovery, the
 * reason says the recovered certificate is served again).
 * `content` keeps what was built (preflight's PEM, the PFX built during the snapshot read).
 */
function* importRequestFor(
  codec: PfxCodec["Service"],
  policy: DeployPolicyShape,
  request: DeployRequest,
  trail: DeployTrail,
  state: RunState,
  served: VaultVersion | undefined,
  content: ImportContent,
  inspected: InspectedMaterial,
  tags: Readonly<Record<string, string>>,
): Effect.fn.Return<ImportRequest | Draft> {
  const setting = request.target.contentType
  const contentType = importContentTypeOf(setting, served?.contentType, request.target.consumers)
  const chosen = importedContentTypeOf(contentType, served?.contentType)
  // The outcome states a content type only for content that goes to the vault.
  state.contentType = undefined
  // The common case (PKCS#12 over PKCS#12, or a first PKCS#12) is the outcome's field alone.
  if (contentType === PEM_CONTENT_TYPE || chosen.change === "changed")
    trail.note(contentTypeDecision(setting, chosen, request.target.consumers))
  const common = { name: request.target.certificateName, tags, keyFacts: inspected.key, leaf: inspected.leaf }
  const recovered = cameBack(trail)
  const built = yield* contentOf(
    codec,
    policy,
    request,
    content,
    contentType,
    recovered !== undefined
      ? "content_type: keep, and the recovered certificate serves its secret as PEM"
      : "content_type: keep, and the vault serves the secret as PEM",
  )
  if (!(built instanceof Uint8Array)) {
    const pem = contentType === PEM_CONTENT_TYPE
    trail.note(`content type: the ${pem ? "PEM" : "PFX"} cannot be imported; nothing written`)
    const keepsPkcs12 = !pem && setting === "keep" && built.reason === "pfx_too_large"
    return {
      _tag: "Rejected",
      problems: [built],
      reason:
        recovered !== undefined
          ? // The recovery (this deploy's, or one found served already) changed the vault: the
            // certificate is served again, and stays.
            `${servedAgainWords(trail, recovered, ` as ${served?.versionId ?? "its latest version"}, its secret ${contentTypeWords(contentType)} (${contentType})${keepsPkcs12 ? ", which content_type keep keeps" : ""}`)}; but the import was refused and no version was written: ${built.field} ${built.message}`
          : `the import was refused before anything was written: ${built.field} ${built.message}${
              keepsPkcs12
                ? state.deletedUnread !== undefined
                  ? ` (content_type keep imports PKCS#12: the vault serves nothing under this name, and whether a soft-deleted certificate a recovery would serve as PEM holds it could not be read: ${state.deletedUnread})`
                  : " (content_type keep imports PKCS#12: the vault serves no PEM for this name)"
                : ""
            }`,
    }
  }
  state.contentType = chosen
  return contentType === PEM_CONTENT_TYPE
    ? { ...common, pem: built }
    : { ...common, pfx: built, password: pfxPassword }
}

/** What `onSoftDeleted` is given besides the request: how to build the import, and what is known. */
interface SoftDeletedPath {
  /** The import request for what a recovery brought back (content_type keep follows what it serves). */
  readonly importFor: (served: VaultVersion) => Effect.Effect<ImportRequest | Draft>
  /**
   * Why the content in `contentType` cannot be imported (built now if it was not yet), or nothing:
   * judged on what a recovery would bring back, before recovering.
   */
  readonly contentProblem: (
    contentType: SecretContentType,
    pemWhy: string,
  ) => Effect.Effect<DeployProblem | undefined>
  /** The soft-deleted certificate, when the deploy read it already (a PFX over the limit, nothing served). */
  readonly deleted?: DeletedCertificate | undefined
  /** The port operation whose answer said the name is soft-deleted (the import's 409), when one did. */
  readonly metBy?: string | undefined
}

/** The soft-deleted path's means of building the import (a rare path: made only when it is taken). */
const softDeletedPath = (
  codec: PfxCodec["Service"],
  policy: DeployPolicyShape,
  request: DeployRequest,
  trail: DeployTrail,
  state: RunState,
  content: ImportContent,
  inspected: InspectedMaterial,
  tags: Readonly<Record<string, string>>,
  deleted?: DeletedCertificate,
): SoftDeletedPath => ({
  importFor: (served) =>
    Effect.gen(function* () {
      return yield* importRequestFor(codec, policy, request, trail, state, served, content, inspected, tags)
    }),
  contentProblem: (contentType, pemWhy) =>
    Effect.gen(function* () {
      const built = yield* contentOf(codec, policy, request, content, contentType, pemWhy)
      return built instanceof Uint8Array ? undefined : built
    }),
  ...(deleted === undefined ? {} : { deleted }),
})

/** Step 5 when the name is held by a soft-deleted certificate: fail with the remedy, or recover and import. */
const onSoftDeleted = Effect.fnUntraced(function* (
  request: DeployRequest,
  trail: DeployTrail,
  state: RunState,
  newX5t: string,
  tags: Readonly<Record<string, string>>,
  path: SoftDeletedPath,
): Effect.fn.Return<Draft | { readonly attempt: ImportResult }, never, Vault | PfxCodec> {
  const vault = yield* Vault
  const name = request.target.certificateName
  /** The operation that met the soft-deleted name, for a Failed outcome that names it as its error. */
  const metBy = path.metBy === undefined ? {} : { operation: path.metBy }
  state.metDeleted = true
  // An import refused as soft-deleted (409) wrote nothing: the content type it was built in is no
  // outcome's, unless an import after a recovery is built again (path.importFor sets it then). A
  // recovery that brings back this certificate (Skipped) or a refusal here writes none.
  state.contentType = undefined
  const readDeleted: Effect.Effect<Result.Result<DeletedCertificate, VaultNotFound | VaultError>> =
    path.deleted !== undefined
      ? Effect.succeed(Result.succeed(path.deleted))
      : trail.call("getDeleted", vault.getDeleted(name)).pipe(Effect.result)
  if (request.target.onSoftDeleted === "fail") {
    const read = yield* readDeleted
    if (read._tag === "Failure" && read.failure._tag === "VaultNotFound") state.deletedGone = true
    const deleted = Result.getSuccess(read)
    const when =
      deleted._tag === "Some"
        ? ` (deleted ${deleted.value.deletedAt?.toISOString() ?? "at a time the vault did not give"}${deleted.value.scheduledPurgeAt === undefined ? "" : `, purged after ${deleted.value.scheduledPurgeAt.toISOString()}`})`
        : ""
    trail.note("import: name held by a soft-deleted certificate; on_soft_deleted=fail")
    if (path.deleted === undefined)
      return {
        _tag: "Failed",
        step: "soft-deleted",
        error: "VaultConflictSoftDeleted",
        ...metBy,
        reason: `${name} is soft-deleted${when}; set on_soft_deleted: recover to recover it and deploy, or purge it first`,
      } satisfies Draft
    // The PFX is over the limit (content_type keep) and nothing is served: the deleted certificate was
    // read instead of an import. Purging it makes this a first deploy, which imports PKCS#12, over the
    // limit; a recovery helps only when the recovered certificate is served as PEM.
    const served = path.deleted.latest?.contentType
    if (served === undefined && request.target.contentType === "keep")
      return {
        _tag: "Failed",
        step: "soft-deleted",
        error: "VaultConflictSoftDeleted",
        reason: `${name} is soft-deleted${when}, and its answer does not say the content type a recovery would serve; set on_soft_deleted: recover to recover it and deploy (the deploy judges the content type after the recovery: PEM is imported, PKCS#12 is refused as over the limit); purging it would make this a first deploy, which imports PKCS#12, over the limit`,
      } satisfies Draft
    const contentType = importContentTypeOf(request.target.contentType, served, request.target.consumers)
    const problem = yield* path.contentProblem(
      contentType,
      "content_type: keep, and the soft-deleted certificate a recovery would bring back serves its secret as PEM",
    )
    if (problem !== undefined) {
      trail.note(
        `content type: the soft-deleted certificate serves its secret as ${contentTypeWords(contentType)}; the ${contentType === PEM_CONTENT_TYPE ? "PEM" : "PFX"} cannot be imported, recovered or not; nothing written`,
      )
      return {
        _tag: "Rejected",
        problems: [problem],
        reason: `${name} is soft-deleted${when}, and neither a recovery (its secret ${contentTypeWords(contentType)}, ${contentType}${request.target.contentType === "keep" ? ", which content_type keep keeps" : ""}) nor a purge (a first deploy imports PKCS#12) would let this material be imported; nothing was written: ${problem.field} ${problem.message}`,
      } satisfies Draft
    }
    return {
      _tag: "Failed",
      step: "soft-deleted",
      error: "VaultConflictSoftDeleted",
      reason: `${name} is soft-deleted${when}, and a recovery would serve its secret as ${contentTypeWords(contentType)}, which this material fits; set on_soft_deleted: recover to recover it and deploy (purging it would make this a first deploy, which imports PKCS#12, over the limit)`,
    } satisfies Draft
  }
  // Ownership is judged on what a recovery would bring back, before recovering: a certificate
  // kvdeploy would refuse stays deleted (recovering it only to refuse it would change the vault
  // for nothing, and un-delete another tool's certificate). When the deleted certificate cannot be
  // read (a refused getDeleted, an outage) or its answer does not say which version it holds,
  // whose it is is unknown: without adopt it is not recovered (Failed, saying why and the fix);
  // with adopt ownership does not matter, so it is recovered and judged after the recovery.
  const readResult = yield* readDeleted
  if (readResult._tag === "Failure" && readResult.failure._tag === "VaultNotFound") state.deletedGone = true
  const deleted = Result.getSuccess(readResult)
  const before = deleted._tag === "Some" ? deleted.value.latest : undefined
  if (before === undefined && request.options?.adopt !== true) {
    const unread = readResult._tag === "Failure" ? readResult.failure : undefined
    trail.note(
      `ownership: the soft-deleted certificate's owner could not be read${unread === undefined ? "" : ` (${unread._tag})`}; left deleted`,
    )
    const why =
      unread === undefined
        ? "the vault's answer for the deleted certificate did not say which version it holds"
        : unread._tag === "VaultNotFound"
          ? "the vault then found no deleted certificate of the name (it may be being recovered or purged by someone else)"
          : `the deleted certificate could not be read (${unread.message})`
    const fix =
      unread === undefined || unread._tag === "VaultNotFound"
        ? "deploy again"
        : unread._tag === "VaultForbidden" &&
            (unread.refusal === undefined || unread.refusal === "permission")
          ? "grant the identity the read of deleted certificates (certificates/get granted on the vault: a role scoped to the certificate does not cover its deleted certificate), then deploy again"
          : unread._tag === "VaultForbidden"
            ? "fix the vault access the read was refused for (`kvdeploy doctor` shows which), then deploy again"
            : "deploy again once the vault answers"
    return {
      _tag: "Failed",
      step: "soft-deleted",
      error: unread?._tag ?? "VaultConflictSoftDeleted",
      ...(unread === undefined ? metBy : failureFacts(unread)),
      reason: `${name} is soft-deleted, and whether kvdeploy wrote it is unknown: ${why}; it was left deleted and nothing was written, as recovering a certificate kvdeploy does not manage would change another tool's certificate. To fix: ${fix}; or deploy with adopt to recover it whoever wrote it; or purge it`,
    } satisfies Draft
  }
  const judgedOnBefore =
    before === undefined ? undefined : judgeExistingVersion(before, newX5t, tags, request.options)._tag
  if (judgedOnBefore === "NotManaged") {
    trail.note("ownership: the soft-deleted certificate is not managed by kvdeploy; left deleted")
    const problem: DeployProblem = {
      field: "certificate_name",
      message: `${name} is soft-deleted and was not written by kvdeploy (no ${MANAGED_BY_TAG}=certctl); it was left deleted`,
      fix: `${adoptAdvice} to recover it and take it over, which the outcome and the audit record note; purge it; or choose another certificate_name`,
      reason: "not_managed",
    }
    return { _tag: "Rejected", problems: [problem], reason: problem.message } satisfies Draft
  }
  // The caller's previous key, judged on the same version before recovering, for the same reason.
  // (A deleted version the vault returned without its certificate is judged after the recovery.)
  const judgedBefore = before?.cer !== undefined && judgedOnBefore !== "InPlace"
  if (judgedBefore) {
    const refused = yield* judgeReplaced(request, trail, before, { previousKey: true, deleted: true })
    if (refused !== undefined) return refused
  }
  // The import's content, judged on the content type the recovered certificate will serve (its
  // policy's, which the deleted certificate's answer carries), before recovering, for the same
  // reason: with content_type keep, a PFX over Key Vault's limit is refused over PKCS#12 and a PEM
  // over it over PEM. Not when the recovery alone is the deploy (this certificate already), nor
  // when the vault did not say the content type keep follows (judged after the recovery).
  const setting = request.target.contentType
  if (before !== undefined && judgedOnBefore !== "InPlace") {
    if (setting === "keep" && before.contentType === undefined)
      trail.note(
        "content type: the soft-deleted certificate's answer does not say its content type; judged after the recovery",
      )
    else {
      const contentType = importContentTypeOf(setting, before.contentType, request.target.consumers)
      const problem = yield* path.contentProblem(
        contentType,
        "content_type: keep, and the soft-deleted certificate a recovery would bring back serves its secret as PEM",
      )
      if (problem !== undefined) {
        const words = contentTypeWords(contentType)
        trail.note(
          `content type: the soft-deleted certificate serves its secret as ${words}; the ${contentType === PEM_CONTENT_TYPE ? "PEM" : "PFX"} cannot be imported; left deleted`,
        )
        return {
          _tag: "Rejected",
          problems: [problem],
          reason: `${name} is soft-deleted, and a recovery would serve it again as ${before.versionId}, its secret ${words} (${contentType})${setting === "keep" ? ", which content_type keep keeps" : ""}; the import would be refused, so it was left deleted and nothing was written: ${problem.field} ${problem.message}`,
        } satisfies Draft
      }
    }
  }
  trail.note("import: name held by a soft-deleted certificate; recovering")
  const recovered = yield* trail.call("recoverDeleted", vault.recoverDeleted(name)).pipe(Effect.result)
  let restored: VaultVersion
  // Whether this deploy's recovery was sent: none when the vault served the certificate already
  // (recovered by someone since getDeleted read it, or a certificate made since), as Key Vault's
  // SDK reads it first.
  let sent = true
  if (recovered._tag === "Success") {
    restored = recovered.success.version
    sent = recovered.success.sent
  } else if (recovered.failure._tag === "VaultNotFound") {
    // No deleted certificate of the name any more: someone else recovered it (the SDK's first read
    // came before the recovery showed, so its recover POST found nothing to recover) or purged it.
    // What is served decides, as when the vault served it already.
    trail.note("recover: no deleted certificate of the name found; reading the latest")
    state.deletedGone = true
    const latest = yield* trail.read("getLatest", vault.getLatest(name)).pipe(Effect.result)
    if (latest._tag === "Failure") {
      const served =
        latest.failure._tag === "VaultNotFound"
          ? "it is not served either"
          : `whether it is served could not be read (${latest.failure.message})`
      // A read that failed otherwise (refused, unavailable) is the failure to act on: its own advice.
      const failure = latest.failure._tag === "VaultNotFound" ? recovered.failure : latest.failure
      return {
        _tag: "Failed",
        step: "soft-deleted",
        error: failure._tag,
        ...failureFacts(failure),
        reason: `${name} was soft-deleted, and the vault found no deleted certificate of the name when this deploy went to recover it, so someone else recovered or purged it meanwhile (a recovery may take a few seconds to show); ${served}; nothing was written: deploy again`,
      } satisfies Draft
    }
    restored = latest.success
    sent = false
    trail.recoveryFoundNone = true
  } else if (recovered.failure._tag !== "VaultAmbiguous") {
    return {
      _tag: "Failed",
      step: "soft-deleted",
      error: recovered.failure._tag,
      ...failureFacts(recovered.failure),
      reason: `${name} is soft-deleted and could not be recovered: ${recovered.failure.message}`,
    } satisfies Draft
  } else {
    // The recovery was sent and its answer lost: whether it took effect is read, not assumed.
    trail.note("recover: outcome unknown; reading the latest")
    const latest = yield* trail.read("getLatest", vault.getLatest(name)).pipe(Effect.result)
    if (latest._tag === "Failure") {
      trail.recovered = "unknown"
      const served =
        latest.failure._tag === "VaultNotFound"
          ? "it is still not served: Key Vault may still be recovering it"
          : `the certificate could not be read to find out (${latest.failure.message})`
      return {
        _tag: "Failed",
        step: "soft-deleted",
        error: recovered.failure._tag,
        operation: recovered.failure.operation,
        reason: `${name} was soft-deleted and the outcome of its recovery is unknown (${recovered.failure.detail}); ${served}; no version was written: deploy again once Key Vault serves the certificate`,
      } satisfies Draft
    }
    restored = latest.success
    // The vault answered the POST itself (only the reads after it failed): the recovery was this one.
    trail.recoveryAnswerLost = recovered.failure.accepted !== true
  }
  // Either way the certificate is served again: what follows (ownership, the import, the reads
  // lagging behind a recovery) is the same, judged on what is served; only whether this deploy's
  // recovery was sent differs, and the outcome says so.
  trail.recovered = sent ? "recovered" : "already-served"
  // Another version than the deleted certificate's latest (when its read said which): not what
  // a recovery of it would have brought back.
  trail.servedOtherThanDeleted = !sent && before !== undefined && restored.versionId !== before.versionId
  state.previous = restored
  state.metDeleted = false
  trail.note(
    sent
      ? trail.recoveryAnswerLost
        ? `recover: answer lost; served again as ${restored.versionId} (this recovery or another writer's)`
        : `recovered: ${restored.versionId}`
      : trail.recoveryFoundNone
        ? `recover: found no deleted certificate; served as ${restored.versionId}${trail.servedOtherThanDeleted ? " (not the deleted version)" : ""}; recovered nothing`
        : `recover: served already as ${restored.versionId}${trail.servedOtherThanDeleted ? " (not the deleted version)" : ""}; no recovery sent`,
  )
  const early = judgeExisting(request, trail, restored, newX5t, tags)
  if (early !== undefined) return early
  // Judged again when the recovery brought back another version than the one judged before it
  // (another writer's import as soon as it took effect, say).
  const replaced = yield* judgeReplaced(request, trail, restored, {
    previousKey: !judgedBefore || restored.versionId !== before?.versionId,
    deleted: false,
  })
  if (replaced !== undefined) return replaced
  // The content again for what the recovery brought back (content_type keep follows what it serves).
  const importRequest = yield* path.importFor(restored)
  if ("_tag" in importRequest) return importRequest
  const attempt: ImportResult = yield* trail
    .call("importVersion", vault.importVersion(importRequest))
    .pipe(Effect.result)
  return { attempt }
})

/**
 * How far before the deploy's start (by this machine's clock) the vault's clock may stamp a delete
 * that is still taken for one during the deploy, when the snapshot read gave no time of its own
 * (an adapter that does not say it): Key Vault's tokens already need the two clocks within minutes
 * of each other.
 */
const CLOCK_SKEW_MS = 5 * 60_000

const isoOf = (ms: number): string => new Date(ms).toISOString()

/**
 * Step 5's reconcile when the version list answers 404 after an import whose answer was lost: the
 * name holds no certificate now. Key Vault takes no import into a deleted certificate (or one being
 * deleted), and an import that committed became the certificate's latest version; so a certificate
 * that was deleted during this deploy while its latest version was still the snapshot was deleted
 * before the import could commit, and the import wrote nothing (Failed). That takes the reads after
 * the 404 to show the vault as it is. Not claimed after this deploy's own recovery, or another
 * writer's that its recovery found done (a read that lags behind it would show the delete it
 * undid), nor for a delete the vault stamped before its answer to the snapshot read (its Date
 * header, `answeredAtMs`; the same second counts as after): the snapshot saw the certificate
 * served, so such a delete was undone before it, and a lagging read shows it (without that time,
 * the deploy's start by this machine's clock less CLOCK_SKEW_MS stands in). Not guarded: another
 * writer's delete during the deploy and recovery before the import, the recovery shown late to
 * the reads after the 404, and a delete and a recovery both within the second of the snapshot's
 * answer. A first deploy (the
 * snapshot found nothing) draws the same conclusion from a delete the vault stamped at least
 * VAULT_STAMP_MARGIN_MS before its answer to the snapshot read, both by the vault's clock (when the
 * adapter gives both times), when the deleted certificate's latest version is given and holds
 * another certificate; not guarded there either: another writer's recovery before the import,
 * shown late. Any other answer
 * leaves the import unproven either way (Unverified): deleted after it, deleted with another
 * writer's version latest, a delete or recovery that has not shown yet, or a list that is wrong.
 */
const reconcileDeleted = Effect.fnUntraced(function* (
  request: DeployRequest,
  trail: DeployTrail,
  state: RunState,
  newX5t: string,
  startedAtMs: number,
  /** The operation whose answer was lost (the import's). */
  operation: string,
): Effect.fn.Return<Draft, never, Vault> {
  const vault = yield* Vault
  const name = request.target.certificateName
  const read = yield* trail.read("getDeleted", vault.getDeleted(name)).pipe(Effect.result)
  const deleted = read._tag === "Success" ? read.success : undefined
  const latest = deleted?.latest
  const previous = state.previous
  const snapshotAt = state.snapshotNotFoundAtMs
  const remedy =
    request.target.onSoftDeleted === "recover"
      ? "the next deploy recovers it (on_soft_deleted: recover) and imports (this one does not, as its import was sent once already)"
      : "set on_soft_deleted: recover to recover it and deploy, or purge it first"
  const wroteNothing = (why: string): Draft => {
    // Nothing was written, so nothing was taken over either.
    trail.adopted = false
    return {
      _tag: "Failed",
      step: "reconcile",
      error: "VaultConflictSoftDeleted",
      operation,
      reason: `${why}, and Key Vault takes no import into a deleted certificate: the import, whose answer was lost, wrote nothing; ${remedy}`,
    } satisfies Draft
  }
  const deletedAtMs = deleted?.deletedAt?.getTime()
  if (
    deleted !== undefined &&
    deletedAtMs !== undefined &&
    previous !== undefined &&
    latest?.versionId === previous.versionId &&
    trail.recovered === undefined &&
    deletedAtMs >= (previous.answeredAtMs ?? startedAtMs - CLOCK_SKEW_MS)
  ) {
    trail.note(`reconcile: soft-deleted while it served ${previous.versionId}; the import wrote nothing`)
    return wroteNothing(
      `${name} was deleted (${isoOf(deletedAtMs)}) while its latest version was still ${previous.versionId}, the one this deploy replaces`,
    )
  }
  // A first deploy: the snapshot read found nothing. A delete the vault stamped before its answer to
  // that read (both by the vault's clock, in whole seconds; VAULT_STAMP_MARGIN_MS apart, for the
  // clocks of the vault's own servers) held the name when the import was sent. Drawn only when the
  // vault says which version was latest then and it is another certificate: a delete just after
  // this import landed would show this certificate there.
  if (
    deleted !== undefined &&
    deletedAtMs !== undefined &&
    previous === undefined &&
    snapshotAt !== undefined &&
    trail.recovered === undefined &&
    latest !== undefined &&
    latest.x5t !== newX5t &&
    deletedAtMs <= snapshotAt - VAULT_STAMP_MARGIN_MS
  ) {
    trail.note("reconcile: soft-deleted before the snapshot read found nothing; the import wrote nothing")
    return wroteNothing(
      `${name} was deleted (${isoOf(deletedAtMs)}) before this deploy's first read found no certificate there (the vault answered it at ${isoOf(snapshotAt)}, by its own clock)`,
    )
  }
  trail.note("reconcile: outcome unknown")
  // Why a delete while the snapshot was latest (or before a first deploy's read) proves nothing
  // here, when that is the case.
  const unproven =
    deleted === undefined
      ? ""
      : deletedAtMs === undefined
        ? ""
        : previous === undefined
          ? snapshotAt === undefined
            ? " (the vault's answer to this deploy's first read gave no time to tell whether the delete came before it)"
            : deletedAtMs > snapshotAt - VAULT_STAMP_MARGIN_MS
              ? ` (not clearly before the vault answered this deploy's first read, at ${isoOf(snapshotAt)}: it may have come after the import)`
              : ""
          : latest?.versionId !== previous.versionId
            ? ""
            : trail.recovered === "already-served"
              ? " (the vault served it already when this deploy went to recover it, before the import, and a read lagging behind that recovery would show the same)"
              : trail.recovered !== undefined
                ? trail.recoveryAnswerLost
                  ? " (it was served again before the import, after this deploy's recovery whose answer was lost, and a read lagging behind that recovery would show the same)"
                  : " (this deploy recovered it before the import, and a read lagging behind that recovery would show the same)"
                : previous.answeredAtMs !== undefined
                  ? ` (deleted before the vault answered this deploy's first read, at ${isoOf(previous.answeredAtMs)} by its own clock, which found it served: a read lagging behind a later recovery would show the same)`
                  : " (deleted before this deploy began, and a read lagging behind a later recovery would show the same)"
  let why: string
  if (deleted !== undefined)
    why = `it is soft-deleted (deleted ${deletedAtMs === undefined ? "at a time the vault did not give" : isoOf(deletedAtMs)}${unproven}), ${
      latest === undefined
        ? "and the vault does not say which version was latest then"
        : latest.x5t === newX5t
          ? `and its latest version then was ${latest.versionId}, which holds this certificate (this import, or an earlier one of it)`
          : `and its latest version then was ${latest.versionId}, which holds another certificate`
    }`
  else if (read._tag === "Failure" && read.failure._tag !== "VaultNotFound")
    why = `the soft-deleted certificate could not be read to find out more (${read.failure.message})`
  else
    why =
      "it is being deleted or being recovered (then the import was refused, and the next deploy says so), or it was deleted since the import and the delete has not shown yet"
  return {
    _tag: "Unverified",
    versionId: undefined,
    postVerifyFailure: "unreadable",
    // The soft-deleted certificate's read failed: the call that left it unknown.
    ...(read._tag === "Failure" && read.failure._tag !== "VaultNotFound"
      ? { step: "reconcile", ...callFailureOf(read.failure) }
      : {}),
    reason: `the import may have taken effect, and the vault's version list says the certificate does not exist: ${why}`,
  } satisfies Draft
})

interface Reconciled {
  readonly imported: VaultVersion
  readonly alsoOurs: ReadonlyArray<VaultVersion>
  readonly reconciledUncertain: boolean
}

/** Step 5 after an ambiguous import: look for our version in the list, never re-import. */
const reconcile = Effect.fnUntraced(function* (
  request: DeployRequest,
  trail: DeployTrail,
  state: RunState,
  newX5t: string,
  failure: { readonly message: string; readonly operation: string },
  startedAtMs: number,
): Effect.fn.Return<Draft | Reconciled, never, Vault> {
  const vault = yield* Vault
  const name = request.target.certificateName
  trail.note("import: outcome unknown; reconciling from the version list")
  const listed = yield* trail.read("listVersions", vault.listVersions(name)).pipe(Effect.result)
  if (listed._tag === "Failure") {
    trail.note(`reconcile: ${listed.failure._tag}`)
    // Key Vault lists a name with no certificate as empty (200): a 404 here says the name holds no
    // certificate now, and the soft-deleted certificate of the name, when there is one, tells more.
    if (listed.failure._tag === "VaultNotFound")
      return yield* reconcileDeleted(request, trail, state, newX5t, startedAtMs, failure.operation)
    return {
      _tag: "Unverified",
      versionId: undefined,
      postVerifyFailure: "unreadable",
      step: "reconcile",
      ...callFailureOf(listed.failure),
      reason: `the import may have taken effect and the vault could not be read to find out: ${listed.failure.message}`,
    } satisfies Draft
  }
  // Our version, if the import took effect, was created in the snapshot's second or later. Within a
  // second nothing orders versions (the list is not in creation order), so every version but the
  // snapshot from that second on is a candidate; all that match can be ours.
  // A version a listed rollback names (certctl-rollback-of) was rolled back before this deploy's
  // import: an earlier deploy's failed import of the same certificate, often from the snapshot's own
  // second (the rollback follows it at once), is no candidate.
  const rolledBack = new Set(
    listed.success.flatMap((v) => {
      const of = v.tags[ROLLBACK_OF_TAG]
      return of === undefined ? [] : [of]
    }),
  )
  const candidates = byCreationLatestFirst(
    createdSince(listed.success, state.previous).filter(
      (v) =>
        v.x5t === newX5t &&
        v.tags[CERTIFICATE_ID_TAG] === request.certificateId &&
        isManagedByKvdeploy(v.tags) &&
        !rolledBack.has(v.versionId),
    ),
  )
  const match = candidates[0]
  if (match === undefined) {
    trail.note("reconcile: no new version in the version list")
    state.reconcileListedNone = listed.success.length === 0
    // Nothing created since the snapshot's version, which the list shows: it is still the latest.
    // (Another writer's version from its second or later may be the latest instead: not known.)
    const snapshot = state.previous
    state.reconcileSnapshotLatest =
      snapshot !== undefined &&
      listed.success.some((v) => v.versionId === snapshot.versionId) &&
      createdSince(listed.success, snapshot).length === 0
    // Nothing of this deploy's is there, so nothing was taken over either (as reconcileDeleted says).
    trail.adopted = false
    return {
      _tag: "Failed",
      step: "reconcile",
      error: "VaultAmbiguous",
      operation: failure.operation,
      // True when the list was read; an import the vault was still working on when its answer was lost
      // (a client timeout) could still appear later, and the next deploy finds it (Skipped) or imports.
      reason: `the import had not taken effect when the version list was read: ${failure.message}; if the vault was still working on it when the answer was lost, it may yet appear: a later deploy of the same certificate skips it if it is there, or imports it`,
    } satisfies Draft
  }
  trail.note(
    `reconcile: found ${candidates.map((v) => v.versionId).join(", ")}${candidates.length > 1 ? " (any can be ours)" : ""}`,
  )
  // Provably ours only when it is the one candidate and was created in a later second than the
  // snapshot: one from the snapshot's own second (or any, when there was no snapshot to bound
  // them) can be an identical version that was already there, and the import may have done nothing.
  return {
    imported: match,
    alsoOurs: candidates.slice(1),
    reconciledUncertain:
      candidates.length > 1 ||
      state.previous === undefined ||
      match.createdAt.getTime() <= state.previous.createdAt.getTime(),
  } satisfies Reconciled
})

/**
 * Steps 1-7. A plain generator that `deploy` delegates to (`yield*`): no effect, frame or
 * closure of its own per deploy.
 */
function* run(
  context: Context.Context<Vault | PfxCodec>,
  request: DeployRequest,
  trail: DeployTrail,
  state: RunState,
  now: number,
): Effect.fn.Return<Draft, never, Vault | PfxCodec> {
  const vault = Context.get(context, Vault)
  const codec = Context.get(context, PfxCodec)
  const policy = Context.get(context, DeployPolicy)
  const name = request.target.certificateName

  // 1. Preflight
  const inspectedResult = yield* resultOf(codec.inspect(request.material))
  const preflighted = preflightInspected(codec, policy, request, inspectedResult, now)
  const checked = Effect.isEffect(preflighted) ? yield* preflighted : preflighted
  state.inspected = checked.inspected
  if (checked._tag === "Rejected") return preflightRejected(trail, checked.problems)
  trail.note("preflight: passed")
  const inspected = checked.inspected
  trail.warnings =
    checked.warnings === undefined
      ? materialWarnings(
          inspected,
          now,
          request.target.consumers,
          request.material.chain.length,
          request.material.from,
        )
      : [
          ...materialWarnings(
            inspected,
            now,
            request.target.consumers,
            request.material.chain.length,
            request.material.from,
          ),
          ...checked.warnings,
        ]
  const newFacts = inspected.leaf
  const tags = forwardTags(request.target.tags, request.certificateId)
  /** The PFX once built (by preflight, or below), or why it cannot be imported; the PEM likewise. */
  const content: ImportContent = { pfx: checked.pfx ?? checked.pfxTooLarge, pem: checked.pem }
  let pfx: Uint8Array | DeployProblem | undefined = content.pfx

  // 2. Snapshot. When the PFX is still to be built and the read is still on its way once it
  // suspends, build the PFX meanwhile: its CPU time overlaps the wait instead of adding to it.
  trail.vaultCalls++
  let snapshot: ReadResult
  // (A content_type: pem target's PEM was built by preflight: no PFX is built for it.)
  if (pfx === undefined && content.pem === undefined && policy.buildPfxDuringSnapshot !== false) {
    const reading = yield* Effect.forkChild(resultOf(vault.getLatest(name)), startImmediately)
    let answered = reading.pollUnsafe()
    if (answered === undefined) {
      // The read has suspended at its client's first await, before its request reached the
      // socket (an HTTP client writes from later microtasks and ticks). Give the event loop one
      // turn so the request is on the wire before the synchronous build takes the thread;
      // otherwise the build runs first and the read only starts after it.
      yield* Effect.yieldNow
      answered = reading.pollUnsafe()
    }
    if (answered === undefined) {
      pfx = checkBuiltPfx(
        yield* resultOf(codec.encode(request.material, pfxOptionsOf(request))),
        policy.maxPfxBytes,
      )
      content.pfx = pfx
      trail.note("pfx: built while the snapshot read was on its way")
      if (!(pfx instanceof Uint8Array)) {
        yield* Fiber.interrupt(reading)
        return rejectedBuild(pfx)
      }
      answered = yield* Fiber.await(reading)
    }
    // The read's Result, or (a defect or an interruption) its failure raised here.
    snapshot = answered._tag === "Success" ? answered.value : yield* answered
  } else {
    snapshot = yield* resultOf(vault.getLatest(name))
  }
  if (snapshot._tag === "Failure") trail.unsent(snapshot.failure)
  if (snapshot._tag === "Failure" && isRetriableRead(snapshot.failure)) {
    snapshot = yield* Effect.result(
      retryAfter(snapshot.failure, trail.call("getLatest", vault.getLatest(name)), isRetriableRead),
    )
  }
  if (snapshot._tag === "Failure") {
    if (snapshot.failure._tag !== "VaultNotFound") return snapshotFailed(trail, snapshot.failure)
    state.snapshotNotFoundAtMs = snapshot.failure.answeredAtMs
    state.snapshotNotFound = true
    // Not "first deploy": a soft-deleted certificate may hold the name, which the import meets.
    trail.note("snapshot: not found (no version is served under this name)")
  } else {
    state.previous = snapshot.success
    trail.note(`snapshot: ${snapshot.success.versionId}`)
  }

  // 3-4. Idempotency and ownership.
  if (state.previous !== undefined) {
    const early = judgeExisting(request, trail, state.previous, newFacts.x5t, tags)
    if (early !== undefined) return early
    const replaced = yield* judgeReplaced(request, trail, state.previous, {
      previousKey: true,
      deleted: false,
    })
    if (replaced !== undefined) return replaced
    const served = servedVersionWarning(state.previous, inspected.leaf)
    if (served !== undefined) trail.warnings = [...trail.warnings, served]
  }

  // 5. Import, in the content type the target and the snapshot call for (the PFX or the PEM is
  // built now if it was not yet: an import follows).
  let attempt: ImportResult | undefined
  /**
   * Step 5 over a soft-deleted name; `deleted` when it was read already (a PFX over the limit),
   * `metBy` the operation whose answer said so (the import's 409).
   */
  const softDeleted = (deleted: DeletedCertificate | undefined, metBy?: string) =>
    onSoftDeleted(request, trail, state, newFacts.x5t, tags, {
      ...softDeletedPath(codec, policy, request, trail, state, content, inspected, tags, deleted),
      metBy,
    })
  if (state.previous === undefined && checked.pfxTooLarge !== undefined) {
    // Nothing is served, and the PFX is over Key Vault's limit (content_type keep, whose PEM fits):
    // keep imports PKCS#12, unless a soft-deleted certificate holds the name, which a recovery serves
    // again, maybe as PEM. The PKCS#12 import cannot be sent to meet its 409: the deleted
    // certificate is read instead, and its policy's content type decides, before any recovery.
    const deleted = yield* trail.read("getDeleted", vault.getDeleted(name)).pipe(Effect.result)
    if (deleted._tag === "Success") {
      trail.note(
        "snapshot: the name is held by a soft-deleted certificate (read, as the PFX is over the limit)",
      )
      const handled = yield* softDeleted(deleted.success)
      if (!("attempt" in handled)) return handled
      attempt = handled.attempt
    } else if (deleted.failure._tag === "VaultNotFound") {
      trail.note("snapshot: no soft-deleted certificate holds the name either")
    } else {
      trail.note(`snapshot: the soft-deleted certificate could not be read (${deleted.failure._tag})`)
      state.deletedUnread = deleted.failure.message
    }
  }
  if (attempt === undefined) {
    const importRequest = yield* importRequestFor(
      codec,
      policy,
      request,
      trail,
      state,
      state.previous,
      content,
      inspected,
      tags,
    )
    if ("_tag" in importRequest) return importRequest
    trail.vaultCalls++
    attempt = yield* resultOf(vault.importVersion(importRequest))
    if (attempt._tag === "Failure") trail.unsent(attempt.failure)
    if (attempt._tag === "Failure" && attempt.failure._tag === "VaultConflictSoftDeleted") {
      const handled = yield* softDeleted(undefined, attempt.failure.operation)
      if (!("attempt" in handled)) return handled
      attempt = handled.attempt
    }
  }

  let imported: VaultVersion
  let alsoOurs: ReadonlyArray<VaultVersion> = noVersions
  let reconciledUncertain = false
  // Taken over once an import may have landed; a refusal before it, or a refused import, took nothing.
  if (attempt._tag === "Success" || attempt.failure._tag === "VaultAmbiguous") trail.adopted = trail.adopting
  if (attempt._tag === "Success") {
    imported = attempt.success
  } else if (attempt.failure._tag === "VaultAmbiguous") {
    const found = yield* reconcile(request, trail, state, newFacts.x5t, attempt.failure, now)
    if (!("imported" in found)) return found
    imported = found.imported
    alsoOurs = found.alsoOurs
    reconciledUncertain = found.reconciledUncertain
  } else {
    return importRefused(trail, attempt.failure)
  }
  trail.note(`import: ${imported.versionId}`)

  // 6. Verify: the first read is made here; only a read that does not settle it goes on to the retries.
  const previous = state.previous
  const expected: Expected = {
    version: imported,
    alsoOurs,
    x5t: newFacts.x5t,
    serialHex: newFacts.serialHex,
    tags,
    olderVersionIds: previous === undefined ? [] : [previous.versionId],
    ...(state.contentType === undefined ? {} : { identicalContentType: state.contentType.imported }),
  }
  trail.vaultCalls++
  const firstRead: ReadResult = yield* resultOf(vault.getLatest(name))
  if (firstRead._tag === "Failure") trail.unsent(firstRead.failure)
  const firstVerdict = firstRead._tag === "Success" ? judgeLatest(firstRead.success, expected) : undefined
  let verdict: Verdict =
    firstVerdict !== undefined && firstVerdict._tag !== "StaleAnswer"
      ? firstVerdict
      : yield* verifyAfterFirst(trail, name, expected, firstRead)
  if (verdict._tag === "Superseded" && verdict.latest.createdAt.getTime() === imported.createdAt.getTime())
    verdict = yield* confirmSuperseded(trail, name, expected, verdict)
  if (verdict._tag === "Verified") {
    const served = verdict.latest.versionId
    // After a reconciliation that found several candidates, the one the vault serves is ours.
    if (served === imported.versionId || alsoOurs.some((v) => v.versionId === served)) {
      trail.note("verify: latest is the new version")
      return {
        _tag: "Succeeded",
        versionId: served,
        reason:
          attempt._tag === "Success"
            ? "the vault serves the new version"
            : // Found by its certificate and tags after the import's answer was lost: an identical
              // import by another deployer of this certificate id would be found the same way.
              `the vault serves the new version: ${served}, found in the version list after the import's answer was lost (this deploy's import, or an identical one by another deployer of this certificate)`,
      } satisfies Draft
    }
    trail.note(`verify: latest is ${served}, another writer's import of this certificate with these tags`)
    return {
      _tag: "Succeeded",
      versionId: served,
      reason: `the vault serves this certificate: another writer (another kvdeploy deploying the same certificate) imported it again as ${served} after ${imported.versionId}, with the same tags and content type, so ${served} is served and ${imported.versionId} stays below it (the chain of ${served} is not compared: \`kvdeploy show\` lists it)`,
    } satisfies Draft
  }
  return yield* notVerified(request, trail, state, verdict, imported, alsoOurs, reconciledUncertain)
}

/** Step 6 when the verdict is not Verified, and step 7: what a deploy reports then (rare paths). */
function* notVerified(
  request: DeployRequest,
  trail: DeployTrail,
  state: RunState,
  verdict: Exclude<Verdict, { readonly _tag: "Verified" }>,
  ourImport: VaultVersion,
  alsoOurs: ReadonlyArray<VaultVersion>,
  reconciledUncertain: boolean,
): Effect.fn.Return<Draft, never, Vault | PfxCodec> {
  const previous = state.previous
  // After a reconciliation that found several candidates, the one the vault serves is ours.
  const imported = verdict._tag === "Mismatch" ? verdict.latest : ourImport
  // After a reconciliation that could not tell our version from one already there, which version
  // (if any) this deploy added is not established: an outcome names none, and says so.
  const claimed = reconciledUncertain ? undefined : imported.versionId
  const importedWas = reconciledUncertain
    ? `the import may have taken effect (the version list shows ${[imported, ...alsoOurs].map((v) => v.versionId).join(", ")}, which may also predate this deploy)`
    : `imported ${imported.versionId}`
  switch (verdict._tag) {
    case "Unreadable":
      trail.postVerifyFailure = "unreadable"
      trail.note("verify: unreadable")
      return {
        _tag: "Unverified",
        versionId: claimed,
        postVerifyFailure: "unreadable",
        // The read that failed, when one did (not reads that disagreed, or a 404).
        ...(verdict.failure === undefined ? {} : { step: "verify", ...verdict.failure }),
        reason: `${importedWas} but the vault could not be read back: ${verdict.detail}`,
      }
    case "Stale":
      trail.postVerifyFailure = "unreadable"
      trail.note(`verify: the vault still serves ${verdict.latest.versionId}`)
      return {
        _tag: "Unverified",
        versionId: claimed,
        postVerifyFailure: "unreadable",
        reason: `${importedWas} but the vault still serves the older ${verdict.latest.versionId}`,
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
          reason: `${importedWas}, and another writer's ${verdict.latest.versionId} is now latest; not rolled over`,
        }
      }
      trail.postVerifyFailure = "superseded"
      state.servedNotAfter = verdict.latest.expiresAt
      trail.note(`verify: superseded by ${verdict.latest.versionId}`)
      return {
        _tag: "Superseded",
        versionId: imported.versionId,
        supersededBy: refOf(verdict.latest),
        reason: `another writer's version ${verdict.latest.versionId} is newer than ours; not rolled over${verdict.latest.enabled ? "" : disabledLatestText}`,
      }
    case "Mismatch":
      trail.postVerifyFailure = "mismatch"
      trail.note(`verify: mismatch (${verdict.differences.join("; ")})`)
  }

  // 7. Rollback
  // Every candidate of the reconciliation is this deploy's, not another writer's: the one served
  // (`imported`) and the others, `ourImport` included when it is not the one served.
  const alsoFailed = [ourImport, ...alsoOurs].filter((v) => v.versionId !== imported.versionId)
  const restored = yield* rollback(trail, request, previous, imported, alsoFailed)
  // The content type of the secret the rollback wrote, when it wrote one (what it restored; another
  // writer's version may be served after it, as in Superseded).
  const rollbackWritten =
    restored._tag === "Restored" ||
    (restored._tag === "Superseded"
      ? restored.version !== undefined
      : restored.rollbackVersionId !== undefined)
  if (rollbackWritten && previous !== undefined && state.contentType !== undefined)
    state.contentType = { ...state.contentType, restored: rollbackContentTypeOf(previous) }
  const wrong = `${imported.versionId} was wrong (${verdict.differences.join("; ")})`
  switch (restored._tag) {
    case "Restored":
      trail.rollbackOutcome = "restored"
      state.servedNotAfter = restored.previousNotAfter
      return {
        _tag: "RolledBack",
        failedVersionId: imported.versionId,
        rollbackVersionId: restored.version.versionId,
        rollbackSource: restored.source,
        ...(restored.overwritten === undefined
          ? { overwrittenUnchecked: true }
          : restored.overwritten.length > 0
            ? { overwritten: restored.overwritten.map(refOf) }
            : {}),
        ...(restored.possiblyOverwritten.length > 0
          ? { possiblyOverwritten: restored.possiblyOverwritten.map(refOf) }
          : {}),
        reason: `${wrong}; the previous certificate is served again as ${restored.version.versionId}${overwrittenText(restored.overwritten)}${possiblyOverwrittenText(restored.possiblyOverwritten)}`,
      }
    case "Superseded":
      state.servedNotAfter = restored.latest.expiresAt
      // Another writer's version was latest just before the rollback's import: nothing was written
      // over it (Key Vault has no conditional import; that last read narrows the window only).
      // Neither restored nor failed, so no rollback outcome is counted (the forward version's
      // mismatch is, above).
      if (restored.version === undefined)
        return {
          _tag: "Superseded",
          versionId: imported.versionId,
          supersededBy: refOf(restored.latest),
          reason: `${wrong}; another writer's ${restored.latest.versionId} became latest before the rollback was written, so the previous certificate was not restored over it`,
        }
      // The rollback was written, then overtaken by another writer before it could be verified:
      // no rollback outcome counted either (neither restored nor failed; the mismatch is).
      return {
        _tag: "Superseded",
        versionId: imported.versionId,
        rollbackVersionId: restored.version.versionId,
        supersededBy: refOf(restored.latest),
        reason: `${wrong}; rolled back as ${restored.version.versionId}, then another writer's ${restored.latest.versionId} became latest`,
      }
    case "AlsoFailed":
      trail.rollbackOutcome = "also_failed"
      return {
        _tag: "RollbackFailed",
        failedVersionId: imported.versionId,
        rollbackVersionId: restored.rollbackVersionId,
        ...(restored.previousUnavailable === undefined
          ? {}
          : { previousUnavailable: restored.previousUnavailable }),
        ...(restored.failure === undefined ? {} : { step: "rollback", ...restored.failure }),
        reason: `${wrong}; rollback failed: ${restored.reason}`,
      }
  }
}

/** The outcome's target: the request's, or, of a request without a TargetConfig, what of it is text. */
const shownTarget = (target: unknown): OutcomeCommon["target"] => {
  const t = (typeof target === "object" && target !== null ? target : {}) as Record<string, unknown>
  return {
    vaultUrl: typeof t.vaultUrl === "string" ? t.vaultUrl : "(not given)",
    certificateName: typeof t.certificateName === "string" ? t.certificateName : "(not given)",
  }
}

/**
 * Deploy one certificate to one vault target. Never fails: every way it can
 * end is a `DeployOutcome`, recorded in metrics and in one audit record.
 * It opens no tracing span of its own (a span costs as much as the rest of the
 * program's logic); wrap it to trace it: `deploy(request).pipe(Effect.withSpan("deploy"))`.
 */
export const deploy: (
  request: DeployRequest,
) => Effect.Effect<DeployOutcome, never, Vault | PfxCodec | Metrics | AuditLog> = Effect.fnUntraced(
  function* (request: DeployRequest) {
    const context = yield* Effect.context<Vault | PfxCodec | Metrics | AuditLog>()
    const clock = Context.get(context, Clock.Clock)
    const startedAtMs = clock.currentTimeMillisUnsafe()
    // The duration is measured on the monotonic clock: a wall clock set back or forward during the
    // deploy (NTP, an operator) moves the times, not the duration.
    const startedAtNanos = clock.monotonicTimeNanosUnsafe()
    const trail = new DeployTrail()
    const state: RunState = { previous: undefined, inspected: undefined, servedNotAfter: undefined }
    // A request whose fields are not of their types (a JavaScript caller's): Rejected, naming them.
    const malformed = requestShapeProblems(request)
    const draft =
      malformed === undefined
        ? yield* run(context, request, trail, state, startedAtMs)
        : preflightRejected(trail, malformed)
    const finishedAtMs = clock.currentTimeMillisUnsafe()
    const tookNanos = clock.monotonicTimeNanosUnsafe() - startedAtNanos
    // The common fields, then the draft's (its reason again, in place): each draft is its outcome
    // without the common fields, so this is the outcome (TS cannot check a spread over a union).
    const outcome = {
      target:
        malformed === undefined
          ? { vaultUrl: request.target.vaultUrl, certificateName: request.target.certificateName }
          : shownTarget(request?.target),
      // A pasted key as the id is refused by preflight and not repeated here (outcomes are logged),
      // nor is an id that is not a string.
      certificateId:
        typeof request?.certificateId !== "string" || unfitTagValue(request.certificateId)
          ? withheldCertificateId
          : request.certificateId,
      previous: state.previous === undefined ? undefined : refOf(state.previous),
      newX5t: state.inspected?.leaf.x5t,
      adopted: trail.adopted,
      // A recovery whose answer was lost recovered the certificate only if no other writer's came first.
      ...(trail.recovered === undefined
        ? {}
        : {
            recovered:
              trail.recovered === "recovered" && trail.recoveryAnswerLost ? "unknown" : trail.recovered,
          }),
      // Failed: no version was written by this deploy, so no content type went to the vault.
      ...(state.contentType === undefined || draft._tag === "Failed"
        ? {}
        : { contentType: state.contentType }),
      reason: draft.reason,
      vaultCalls: trail.vaultCalls,
      decisions: trail.decisions,
      ...(trail.warnings.length === 0 ? {} : { warnings: trail.warnings }),
      timings: { startedAtMs, finishedAtMs, durationMs: Number(tookNanos / 1_000_000n) },
      ...(draft as object),
    } satisfies OutcomeCommon as OutcomeCommon as DeployOutcome

    // Metrics (each call is yielded in this generator: a no-op adapter's answer costs nothing more).
    const metrics = Context.get(context, Metrics)
    yield* metrics.deployAttempt(resultLabelOf(outcome._tag))
    if (outcome._tag === "Rejected") {
      for (const reason of new Set(outcome.problems.map((p) => p.reason)))
        yield* metrics.validateFailure(reason)
    }
    if (outcome._tag === "Skipped") yield* metrics.idempotentSkip()
    if (outcome._tag === "Unverified") yield* metrics.postVerifyFailure("unreadable")
    else if (trail.postVerifyFailure !== undefined) yield* metrics.postVerifyFailure(trail.postVerifyFailure)
    if (trail.rollbackOutcome !== undefined) yield* metrics.rollback(trail.rollbackOutcome)
    yield* metrics.deployDuration(Number(tookNanos) / 1e9)
    // What the vault serves at the end, when the run knows it. A Failed deploy wrote nothing: after
    // a refused import, or a lost import whose version list shows the snapshot's version and none
    // created since, the vault serves what the snapshot read (or a recovery brought back), and
    // nothing when the snapshot read none or the certificate is deleted (a soft-deleted name met,
    // whatever then failed; an import refused as deleted; a lost import found to have met a deleted
    // certificate), or when a lost import's version list listed no version at all (a first deploy
    // whose import did not take effect, as a refused one). A Rejected deploy wrote nothing either:
    // after the vault was read, it serves what the snapshot read (or a recovery brought back), and
    // nothing when the snapshot read none or a soft-deleted certificate holding the name was left
    // deleted; refused before any read (preflight), the run does not know. The series an earlier
    // run left no longer tells the truth then. Not when the vault then said the deleted certificate
    // was gone (another writer recovered or purged it; a recovery may not show to a read yet): that
    // is not known; nor when a lost import's list shows a version created since the snapshot's
    // (another writer's may be the latest).
    const failed = outcome._tag === "Failed" && trail.recovered !== "unknown" ? outcome : undefined
    const rejected = outcome._tag === "Rejected" && trail.recovered !== "unknown" ? outcome : undefined
    const servesNothing =
      (failed !== undefined &&
        ((failed.step === "soft-deleted" && state.deletedGone !== true) ||
          (failed.step === "reconcile" &&
            (failed.error === "VaultConflictSoftDeleted" || state.reconcileListedNone === true)) ||
          (failed.step === "import" &&
            (failed.error === "VaultConflictSoftDeleted" ||
              failed.code === "ObjectIsBeingDeleted" ||
              (state.previous === undefined && state.snapshotNotFound === true))))) ||
      (rejected !== undefined &&
        state.deletedGone !== true &&
        (state.metDeleted === true || (state.previous === undefined && state.snapshotNotFound === true)))
    const stillServed =
      !servesNothing &&
      (failed?.step === "import" ||
        (failed?.step === "reconcile" && state.reconcileSnapshotLatest === true) ||
        (rejected !== undefined && state.metDeleted !== true))
    const notAfter =
      outcome._tag === "Succeeded" || outcome._tag === "Skipped"
        ? state.inspected?.leaf.notAfter
        : outcome._tag === "RolledBack" || outcome._tag === "Superseded"
          ? state.servedNotAfter
          : stillServed
            ? state.previous?.expiresAt
            : undefined
    if (servesNothing) yield* metrics.certificateNotServed(outcome.target)
    else if (notAfter !== undefined) yield* metrics.certificateExpiry(outcome.target, notAfter)

    yield* Context.get(context, AuditLog).record(auditRecordOf(outcome))
    return outcome
  },
)
