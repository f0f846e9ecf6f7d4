/**
 * `kvdeploy plan`: the read-only preview. Key Vault has no validate-only
 * import (core's `validateOnly` answers ValidateOnlyNotSupported), so plan runs
 * core's preflight, reads the current version (and the deleted state), and
 * says exactly what deploy would do, except for a key or a secret holding the name of a certificate
 * that does not exist yet (it reads neither; doctor's probe finds them). It never writes.
 */
import {
  type Consumer,
  checkBuiltPem,
  contentTypeWaiting,
  contentTypeWords,
  DeployPolicy,
  type DeployWarning,
  forwardTags,
  holdsNoCertificate,
  type ImportedContentType,
  importContentTypeOf,
  importedContentTypeOf,
  judgeExistingVersion,
  MANAGED_BY_TAG,
  materialWarnings,
  PEM_CONTENT_TYPE,
  PfxCodec,
  PKCS12_CONTENT_TYPE,
  preflight,
  previousKeyFit,
  type SecretContentType,
  servedVersionWarning,
  type TargetConfig,
  Vault,
  type VaultVersion,
} from "@kvdeploy/core"
import * as Clock from "effect/Clock"
import * as Command from "effect/cli/Command"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { deployedExpiryText, deployedSummary, warningLines } from "../cli/outcome.js"
import { previousKeyOptions } from "../cli/previousKey.js"
import { ExitCode, ExitWith, type Problem } from "../cli/problems.js"
import { printJson, printLines, progress, styleOut } from "../cli/terminal.js"
import { credentialInUse, vaultProblem, withDeployServices } from "../cli/vault.js"
import { expiryText, type VersionRecord, versionRecord, x5tText } from "../cli/versions.js"
import { deployFlags, deployInputs } from "./deploy.js"

export type PlanAction =
  | "import"
  | "skip"
  | "refuse"
  | "recover-and-import"
  | "recover"
  | "fail-soft-deleted"
  | "fail-operation-in-progress"

export interface PlanRecord {
  readonly target: {
    readonly vaultUrl: string
    readonly certificateName: string
    /** The services the target names as reading the certificate (absent when none). */
    readonly consumers?: ReadonlyArray<Consumer>
  }
  readonly preflight: { readonly passed: boolean; readonly problems: ReadonlyArray<Problem> }
  readonly current: VersionRecord | undefined
  readonly softDeleted:
    | { readonly deletedAt: string | undefined; readonly scheduledPurgeAt: string | undefined }
    | undefined
  /**
   * Why plan could not tell whether a soft-deleted certificate holds the name (reading it failed:
   * refused, throttled, unreachable), when no certificate is served: a deploy would then meet
   * Key Vault's 409 if one does.
   */
  readonly softDeletedUnknown?: string
  /**
   * The certificate's pending operation, when it has one (a create waiting for its CA, or for the
   * merge of a signed CSR): Key Vault refuses imports while its status is `inProgress`.
   */
  readonly operation?: { readonly status: string; readonly issuerName: string | undefined }
  /** Why plan could not tell whether an operation is in progress (reading it failed), when it would import. */
  readonly operationUnknown?: string
  readonly newX5t: string | undefined
  readonly action: PlanAction
  readonly reason: string
  readonly tags: Readonly<Record<string, string>> | undefined
  /** Writes the deploy would send: an import, a recovery (reads are not counted). */
  readonly writes: number
  /**
   * With `--previous-key`: whether a rollback could restore the certificate the vault serves now
   * (with `on_soft_deleted: recover`, the one a recovery would bring back) with it, judged as
   * deploy judges it (`chain-missing`: the key matches, but no chain given with
   * it issues the certificate; `unreadable`: the key cannot be used with it; `none-served` when
   * nothing is served, `unknown` when the vault did not return the certificate, or did not say
   * what a recovery would bring back). Deploy refuses a
   * key that does not match or is unreadable before it writes; with `chain-missing` it goes on, and
   * a rollback would read the backing secret.
   */
  readonly previousKey?:
    | "matches"
    | "does-not-match"
    | "chain-missing"
    | "unreadable"
    | "none-served"
    | "unknown"
  /** Why `previousKey` is not `matches`, when there is more to say. */
  readonly previousKeyReason?: string
  /**
   * The content type of the secret the import would write (content_type), what the vault serves
   * now, and whether the import keeps it, changes it or it is new; absent when nothing is imported.
   */
  readonly contentType?: ImportedContentType
  /**
   * When the deploy would change what the certificate's secret holds, for every later version: the
   * vault serves it as PEM (`application/x-pem-file`) and the import writes PKCS#12
   * (`content_type: pkcs12`), or the other way round (`content_type: pem`).
   */
  readonly contentTypeChange?: { readonly from: string; readonly to: SecretContentType }
  /** What preflight found that may break a client without stopping the deploy (as the deploy's outcome has them). */
  readonly warnings?: ReadonlyArray<DeployWarning>
}

const decide = (
  config: TargetConfig,
  current: VaultVersion | undefined,
  newX5t: string,
  tags: Record<string, string>,
  options: { readonly adopt: boolean; readonly force: boolean },
): { action: PlanAction; reason: string; writes: number } => {
  if (current === undefined) {
    // Key Vault refuses the import (409) when a key or a secret holds the name. Plan reads neither:
    // reading a secret would fetch its value, and doctor's probe sends an import, which plan never does.
    return {
      action: "import",
      reason: `first deploy: no certificate is served under this name (a key or a secret named ${config.certificateName} would make the import fail: plan reads neither; \`kvdeploy doctor\` checks)`,
      writes: 1,
    }
  }
  // The deploy program's own decision (steps 3-4), so plan says what deploy would do.
  const judgement = judgeExistingVersion(current, newX5t, tags, options)
  if (judgement._tag === "InPlace") {
    return {
      action: "skip",
      reason: `the vault already serves this certificate (${current.versionId}) with kvdeploy's tags; its chain and content type are not compared: --force would import it anyway`,
      writes: 0,
    }
  }
  if (judgement._tag === "NotManaged") {
    return {
      action: "refuse",
      reason: holdsNoCertificate(current)
        ? `${config.certificateName} exists without ${MANAGED_BY_TAG}=certctl, and its latest version holds no certificate yet (a create was started on it in the vault and has not completed: \`az keyvault certificate pending show\`); deploy would refuse it`
        : `${config.certificateName}'s latest version (${current.versionId}) carries no ${MANAGED_BY_TAG}=certctl (another tool or person wrote it); deploy would refuse it (--adopt takes it over: find out who wrote it first)`,
      writes: 0,
    }
  }
  if (current.x5t === newX5t) {
    // The same certificate, not served as the request wants it: say why a version is written at all.
    const tagKeys = Object.keys(tags).filter((k) => current.tags[k] !== tags[k])
    const why = [
      ...(current.enabled ? [] : ["disabled"]),
      ...(tagKeys.length > 0
        ? [`without the requested value of tag${tagKeys.length === 1 ? "" : "s"} ${tagKeys.join(", ")}`]
        : []),
    ].join(", and ")
    // Served in place: imported only because --force asks it.
    if (why === "")
      return {
        action: "import",
        reason: `the vault serves this certificate (${current.versionId}) with kvdeploy's tags, and --force imports it all the same: deploy would import the same certificate again as a new version, with the chain given (and the content type and tags the target asks), then verify`,
        writes: 1,
      }
    return {
      action: "import",
      reason: `the vault serves this certificate (${current.versionId}), but ${why}: deploy would ${judgement.adopting ? "adopt it and " : ""}import the same certificate again as a new version${tagKeys.length > 0 ? " that carries them" : ""}${current.enabled ? "" : ", enabled"}, then verify`,
      writes: 1,
    }
  }
  return {
    action: "import",
    reason: `${judgement.adopting ? "adopt and " : ""}import a new version over ${current.versionId}, then verify (rollback only if verify fails)`,
    writes: 1,
  }
}

/**
 * What `--previous-key` is worth to a rollback, in the plan's words: about the served certificate,
 * or the soft-deleted one a recovery brings back (nothing is served then; "the version the vault
 * serves now" was said of it).
 */
const previousKeyText = (fit: NonNullable<PlanRecord["previousKey"]>, softDeleted: boolean): string => {
  const it = softDeleted ? "the soft-deleted certificate" : "the served certificate"
  switch (fit) {
    case "matches":
      return `matches ${it}: a rollback can restore it without secrets/get`
    case "does-not-match":
      return `does NOT match ${it}: give the key of ${softDeleted ? "the soft-deleted version a recovery brings back" : "the version the vault serves now"} (an import refuses this one)`
    case "chain-missing":
      return `matches ${it}, but no certificate given with it issues that certificate: a rollback would read the backing secret instead (secrets/get); put ${softDeleted ? "its" : "the served certificate's"} chain in the --previous-key file`
    case "unreadable":
      return `cannot be used with ${it} (an import refuses it)`
    case "none-served":
      return "not needed: the vault serves no version of this certificate"
    case "unknown":
      return `not checked: the vault did not return ${it}`
  }
}

export const plan = Command.make("plan", deployFlags, (input) =>
  Effect.gen(function* () {
    const { config, material, previous } = yield* deployInputs(input)
    const certificateId = Option.getOrElse(input.certificateId, () => config.certificateName)
    const credential = yield* credentialInUse(config)
    yield* progress("preflight…")
    const record: PlanRecord = yield* withDeployServices(
      config,
      Effect.gen(function* () {
        const checked = yield* preflight({
          target: config,
          material,
          certificateId,
          options: { adopt: input.adopt },
        })
        const target = {
          vaultUrl: config.vaultUrl,
          certificateName: config.certificateName,
          ...(config.consumers === undefined ? {} : { consumers: config.consumers }),
        }
        if (checked._tag === "Rejected") {
          return {
            target,
            preflight: {
              passed: false,
              problems: checked.problems.map((p) => ({ field: p.field, message: p.message, fix: p.fix })),
            },
            current: undefined,
            softDeleted: undefined,
            newX5t: checked.inspected?.leaf.x5t,
            action: "refuse",
            reason: "preflight refuses the material; deploy would write nothing",
            tags: undefined,
            writes: 0,
          } satisfies PlanRecord
        }
        const vault = yield* Vault
        yield* progress(`reading ${config.certificateName}…`)
        const latest = yield* vault.getLatest(config.certificateName).pipe(
          Effect.map((v): VaultVersion | undefined => v),
          Effect.catchTag("VaultNotFound", () => Effect.succeed(undefined)),
          Effect.mapError((e) => vaultProblem("getLatest", e, credential)),
        )
        const tags = forwardTags(config.tags, certificateId)
        let softDeleted: PlanRecord["softDeleted"]
        let softDeletedUnknown: string | undefined
        let decision = decide(config, latest, checked.inspected.leaf.x5t, tags, {
          adopt: input.adopt,
          force: input.force,
        })
        /** The version an import would replace: the served one, or the one a recovery would bring back. */
        let replaced = latest
        if (latest === undefined) {
          const deleted = yield* vault.getDeleted(config.certificateName).pipe(
            Effect.map((d) => d as typeof d | undefined),
            Effect.catchTag("VaultNotFound", () => Effect.succeed(undefined)),
            // Reading deleted certificates may be forbidden: plan says so instead of failing.
            Effect.catch((e) =>
              Effect.sync(() => {
                softDeletedUnknown = e.message
                return undefined
              }),
            ),
          )
          if (softDeletedUnknown !== undefined)
            decision = {
              ...decision,
              reason: `${decision.reason}; whether a soft-deleted certificate holds the name could not be read (${softDeletedUnknown}): if one does, deploy would ${config.onSoftDeleted !== "recover" ? "fail without writing" : input.adopt ? "recover it first" : "read it again, and leave it deleted and fail without writing if it still cannot tell whose it is"}`,
            }
          if (deleted !== undefined) {
            softDeleted = {
              deletedAt: deleted.deletedAt?.toISOString(),
              scheduledPurgeAt: deleted.scheduledPurgeAt?.toISOString(),
            }
            // As the deploy does: a soft-deleted certificate kvdeploy did not write is left deleted,
            // and one that is this certificate already is recovered and not imported over.
            const judged =
              deleted.latest === undefined
                ? undefined
                : judgeExistingVersion(deleted.latest, checked.inspected.leaf.x5t, tags, {
                    adopt: input.adopt,
                    force: input.force,
                  })._tag
            if (config.onSoftDeleted === "recover") replaced = deleted.latest
            decision =
              config.onSoftDeleted === "recover" && judged === "NotManaged"
                ? {
                    action: "refuse",
                    reason: `${config.certificateName} is soft-deleted and was not written by kvdeploy; deploy would leave it deleted (use --adopt to recover it and take it over)`,
                    writes: 0,
                  }
                : config.onSoftDeleted === "recover" && deleted.latest === undefined && input.adopt !== true
                  ? {
                      // As the deploy does: whose it is cannot be told, so it is not recovered.
                      action: "fail-soft-deleted",
                      reason: `${config.certificateName} is soft-deleted, and the vault's answer for it does not say which version it holds, so whether kvdeploy wrote it is unknown: deploy would leave it deleted and fail without writing (deploy again; use --adopt to recover it whoever wrote it, or purge it)`,
                      writes: 0,
                    }
                  : config.onSoftDeleted === "recover" && judged === "InPlace"
                    ? {
                        action: "recover",
                        reason: `${config.certificateName} is soft-deleted, and is this certificate with kvdeploy's tags: deploy would recover it and write no version`,
                        writes: 1,
                      }
                    : config.onSoftDeleted === "recover"
                      ? {
                          action: "recover-and-import",
                          reason: `${config.certificateName} is soft-deleted; deploy would recover it, then import a new version over ${deleted.latest?.versionId ?? "it"} and verify`,
                          writes: 2,
                        }
                      : checked.pfxTooLarge === undefined
                        ? {
                            action: "fail-soft-deleted",
                            reason: `${config.certificateName} is soft-deleted; deploy would fail without writing (use --on-soft-deleted recover, or purge it)`,
                            writes: 0,
                          }
                        : // The PFX is over the limit (content_type keep): a purge makes a first deploy, which
                          // imports PKCS#12; only a recovery of a certificate served as PEM helps, as deploy says.
                          deleted.latest?.contentType === PEM_CONTENT_TYPE
                          ? {
                              action: "fail-soft-deleted",
                              reason: `${config.certificateName} is soft-deleted, and a recovery would serve its secret as PEM, which this material fits; deploy would fail without writing (use --on-soft-deleted recover; purging it would make a first deploy, which imports PKCS#12, over the limit)`,
                              writes: 0,
                            }
                          : deleted.latest?.contentType === undefined
                            ? {
                                action: "fail-soft-deleted",
                                reason: `${config.certificateName} is soft-deleted, and its answer does not say the content type a recovery would serve; deploy would fail without writing (use --on-soft-deleted recover: deploy judges the content type after the recovery; purging it would make a first deploy, which imports PKCS#12, over the limit)`,
                                writes: 0,
                              }
                            : {
                                action: "refuse",
                                reason: `${config.certificateName} is soft-deleted, and neither a recovery (its secret PKCS#12, which content_type keep keeps) nor a purge (a first deploy imports PKCS#12) would let this material be imported: ${checked.pfxTooLarge.message}; deploy would write nothing`,
                                writes: 0,
                              }
          }
        }
        // An operation in progress on the certificate (a create waiting for its CA, or for a merge):
        // Key Vault refuses the import, so deploy would fail at it, writing nothing.
        let operation: PlanRecord["operation"]
        let operationUnknown: string | undefined
        if (latest !== undefined && decision.action === "import" && vault.getOperation !== undefined) {
          operation = yield* vault.getOperation(config.certificateName).pipe(
            Effect.catch((e) =>
              Effect.sync(() => {
                operationUnknown = e.message
                return undefined
              }),
            ),
          )
          if (operation?.status === "inProgress")
            decision = {
              action: "fail-operation-in-progress",
              reason: `a certificate operation is in progress on ${config.certificateName} (issuer ${operation.issuerName ?? "unknown"}): Key Vault refuses imports until it completes or is deleted (\`az keyvault certificate pending show\` / \`delete\`; a cancel leaves it in progress until its issuer stops); deploy would fail at the import and write nothing`,
              writes: 0,
            }
          else if (operationUnknown !== undefined)
            decision = {
              ...decision,
              reason: `${decision.reason}; whether a certificate operation is in progress could not be read (${operationUnknown}): if one is, deploy would fail at the import and write nothing`,
            }
        }
        // The previous key judged as deploy judges it, after idempotency and ownership: one its
        // rollback could not use makes the deploy refuse before it writes (and leave a soft-deleted
        // certificate deleted).
        const fit =
          previous === undefined || replaced === undefined
            ? undefined
            : yield* previousKeyFit(
                previous.previousKey,
                previousKeyOptions(previous, material.chain).previousChain,
                replaced,
              )
        if (
          fit !== undefined &&
          (fit.fit === "does-not-match" || fit.fit === "unreadable") &&
          (decision.action === "import" || decision.action === "recover-and-import")
        )
          decision = {
            action: "refuse",
            reason:
              decision.action === "import"
                ? `--previous-key cannot restore ${replaced?.versionId ?? "the served version"} in a rollback (${fit.why}); deploy would refuse it and write nothing`
                : `--previous-key cannot restore ${replaced?.versionId ?? "the soft-deleted version"}, which a recovery would bring back, in a rollback (${fit.why}); deploy would refuse it and leave the certificate deleted`,
            writes: 0,
          }
        const imports = decision.action === "import" || decision.action === "recover-and-import"
        // The import replaces the soft-deleted certificate a recovery brings back (nothing is served).
        const overDeleted =
          latest === undefined && softDeleted !== undefined && config.onSoftDeleted === "recover"
        // content_type keep over a soft-deleted certificate whose answer does not say its content type:
        // deploy recovers it, then keeps what the recovered certificate serves (not known here).
        const contentUnknown =
          imports && overDeleted && config.contentType === "keep" && replaced?.contentType === undefined
        if (contentUnknown)
          decision = {
            ...decision,
            reason: `${decision.reason}; the soft-deleted certificate's answer does not say its content type, which content_type keep follows: deploy would judge it after the recovery${checked.pfxTooLarge === undefined ? "" : " (the PFX is over Key Vault's limit: a PEM import goes ahead, a PKCS#12 one is refused after the recovery, writing no version)"}`,
          }
        // The content type the import would write, as deploy chooses it (content_type, and what the
        // replaced version serves); a PEM kept (content_type keep) is measured as deploy measures it.
        const contentType =
          imports && !contentUnknown
            ? importedContentTypeOf(
                importContentTypeOf(config.contentType, replaced?.contentType, config.consumers),
                replaced?.contentType,
              )
            : undefined
        /** What deploy would do when the import's content cannot be imported. */
        const refusedThen = overDeleted
          ? "deploy would refuse it before recovering, leave the certificate deleted and write nothing"
          : "deploy would refuse it after reading the vault and write nothing"
        if (contentType?.imported === PEM_CONTENT_TYPE && config.contentType !== "pem") {
          const codec = yield* PfxCodec
          const built = checkBuiltPem(
            yield* Effect.result(codec.encodePem(material)),
            (yield* DeployPolicy).maxPemBytes,
            overDeleted
              ? "content_type: keep, and the soft-deleted certificate a recovery would bring back serves its secret as PEM"
              : "content_type: keep, and the vault serves the secret as PEM",
          )
          if (!(built instanceof Uint8Array))
            decision = {
              action: "refuse",
              reason: `${built.field} ${built.message}; ${refusedThen} (fix: ${built.fix})`,
              writes: 0,
            }
        }
        if (
          decision.action !== "refuse" &&
          contentType !== undefined &&
          contentType.imported !== PEM_CONTENT_TYPE &&
          checked.pfxTooLarge !== undefined
        ) {
          // content_type keep, a PFX over the limit, and neither the served certificate nor the
          // soft-deleted one a recovery would bring back serves PEM: deploy's import is PKCS#12 and
          // is refused before it is sent (and before any recovery).
          const tooLarge = checked.pfxTooLarge
          const why = overDeleted
            ? `the soft-deleted certificate a recovery would bring back serves its secret as PKCS#12, which content_type keep keeps: ${refusedThen}`
            : `the vault does not serve this secret as PEM, so content_type keep imports PKCS#12: ${refusedThen}${softDeletedUnknown === undefined ? "" : ` (whether a soft-deleted certificate a recovery would serve as PEM holds the name could not be read: ${softDeletedUnknown})`}`
          decision = {
            action: "refuse",
            reason: `${tooLarge.field} ${tooLarge.message}; ${why} (fix: ${tooLarge.fix})`,
            writes: 0,
          }
        }
        // The material's, then the consumers' (as the deploy's outcome has them).
        const warnings = [
          ...materialWarnings(
            checked.inspected,
            yield* Clock.currentTimeMillis,
            config.consumers,
            material.chain.length,
            material.from,
          ),
          ...(checked.warnings ?? []),
        ]
        // Already served, or brought back by a recovery as this certificate: the content type asked
        // for waits for the next version a deploy writes, as deploy warns (the same warning).
        const waiting =
          decision.action === "skip"
            ? contentTypeWaiting(config, latest?.contentType)
            : decision.action === "recover"
              ? contentTypeWaiting(config, replaced?.contentType, { recovered: true })
              : undefined
        // An import over a served certificate that expires later, or over this one disabled: said, as
        // deploy says it.
        const older =
          latest !== undefined && decision.writes > 0 && decision.action !== "refuse"
            ? servedVersionWarning(latest, checked.inspected.leaf)
            : undefined
        if (older !== undefined) warnings.push(older)
        if (waiting !== undefined) warnings.push(waiting)
        else if (
          decision.action === "recover" &&
          replaced?.contentType === undefined &&
          (config.contentType !== "keep" || (config.consumers ?? []).length > 0)
        ) {
          // The deleted certificate's answer does not say its secret's content type: whether the
          // recovery brings back the one the target asks for is known once it is recovered, when
          // deploy judges it (and warns, as the warning above would have).
          const asked = importContentTypeOf(config.contentType, undefined, config.consumers)
          const asker =
            config.contentType === "keep"
              ? `${(config.consumers ?? []).join(", ")} ${(config.consumers ?? []).length === 1 ? "reads" : "read"}`
              : `content_type ${config.contentType} asks for`
          decision = {
            ...decision,
            reason: `${decision.reason}; the soft-deleted certificate's answer does not say its secret's content type: whether it is the ${asked} ${asker} is known only after the recovery, and deploy would warn if it is not (no version is imported for the content type alone)`,
          }
        }
        return {
          target,
          preflight: { passed: true, problems: [] },
          current: latest === undefined ? undefined : versionRecord(latest, true),
          softDeleted,
          ...(softDeletedUnknown === undefined ? {} : { softDeletedUnknown }),
          ...(operation === undefined ? {} : { operation }),
          ...(operationUnknown === undefined ? {} : { operationUnknown }),
          newX5t: checked.inspected.leaf.x5t,
          action: decision.action,
          reason: decision.reason,
          tags: decision.writes > 0 ? tags : undefined,
          writes: decision.writes,
          ...(contentType === undefined || decision.action === "refuse" ? {} : { contentType }),
          ...(contentType?.change === "changed" &&
          contentType.served !== undefined &&
          decision.action !== "refuse"
            ? { contentTypeChange: { from: contentType.served, to: contentType.imported } }
            : {}),
          ...(warnings.length === 0 ? {} : { warnings }),
          ...(previous === undefined
            ? {}
            : {
                previousKey:
                  fit !== undefined
                    ? fit.fit
                    : softDeleted !== undefined && config.onSoftDeleted === "recover"
                      ? "unknown"
                      : "none-served",
                ...(fit !== undefined && "why" in fit ? { previousKeyReason: fit.why } : {}),
              }),
        } satisfies PlanRecord
      }),
    )
    if (input.json) {
      const leaf = yield* deployedSummary(material)
      yield* printJson({ ...record, ...(leaf === undefined ? {} : { newCertificate: leaf }) })
    } else {
      const s = styleOut()
      const now = Date.now()
      const leaf = yield* deployedSummary(material)
      const actionText =
        record.action === "import" || record.action === "recover-and-import" || record.action === "recover"
          ? s.green(record.action)
          : record.action === "skip"
            ? s.green("skip")
            : s.red(record.action)
      yield* printLines([
        `${s.bold("plan")}  ${config.certificateName} in ${config.vaultUrl}  ${s.dim("(read-only: nothing was written)")}`,
        `  preflight   ${record.preflight.passed ? s.green("passed") : s.red(`${record.preflight.problems.length} problem(s)`)}`,
        ...record.preflight.problems.flatMap((p) => [
          `    ${s.bold(p.field)}: ${p.message}`,
          `      fix: ${p.fix}`,
        ]),
        `  current     ${!record.preflight.passed ? "(not read: the preflight refused the material)" : record.current === undefined ? (record.softDeleted !== undefined ? `(soft-deleted ${record.softDeleted.deletedAt ?? "at a time the vault does not give"})` : record.softDeletedUnknown !== undefined ? "(none; whether a soft-deleted one holds the name could not be read)" : "(none)") : `${record.current.versionId}  x5t ${x5tText(record.current.x5t)}  ${record.current.managedByKvdeploy ? "kvdeploy" : "not kvdeploy"}  ${expiryText(record.current.expiresAt, now)}${record.current.enabled ? "" : "  disabled (its consumers cannot read it: Key Vault refuses a disabled version's secret)"}`}`,
        `  new         x5t ${record.newX5t ?? "?"}${leaf === undefined ? "" : `  ${leaf.subject}  ${deployedExpiryText(leaf, now)}`}`,
        `  action      ${actionText}: ${record.reason}`,
        ...(record.target.consumers === undefined
          ? []
          : [
              `  consumers   ${record.target.consumers.join(", ")}: ${record.preflight.passed ? "preflight found nothing they would refuse" : "see the problems above"}; each picks up a new version only through the versionless secret id`,
            ]),
        ...(record.previousKey === undefined
          ? []
          : [
              `  previous key ${previousKeyText(record.previousKey, record.current === undefined && record.softDeleted !== undefined)}`,
            ]),
        ...(record.contentTypeChange !== undefined
          ? [
              `  ${s.yellow("content")}     the secret is ${contentTypeWords(record.contentTypeChange.from === PEM_CONTENT_TYPE ? PEM_CONTENT_TYPE : PKCS12_CONTENT_TYPE)} (${record.contentTypeChange.from}) now; the import writes ${contentTypeWords(record.contentTypeChange.to)} (${record.contentTypeChange.to}) for this and every later version: a consumer that reads it as ${contentTypeWords(record.contentTypeChange.from === PEM_CONTENT_TYPE ? PEM_CONTENT_TYPE : PKCS12_CONTENT_TYPE)} must read ${contentTypeWords(record.contentTypeChange.to)} (${config.consumers !== undefined && config.contentType === "keep" ? `content_type keep imports PKCS#12 for consumers ${config.consumers.join(", ")}, which read PKCS#12 only` : "content_type: keep keeps what is served"})`,
            ]
          : record.contentType !== undefined
            ? [
                `  content     ${contentTypeWords(record.contentType.imported)} (${record.contentType.imported})${record.contentType.change === "kept" ? ", as the vault serves it" : record.contentType.change === "new" ? ", a new secret" : ""}`,
              ]
            : []),
        ...warningLines(record.warnings, s),
        ...(record.tags === undefined
          ? []
          : [
              `  tags        ${Object.entries(record.tags)
                .map(([k, v]) => `${k}=${v}`)
                .join(", ")}`,
            ]),
      ])
    }
    if (record.action === "refuse") return yield* new ExitWith({ exitCode: ExitCode.usage })
    if (record.action === "fail-soft-deleted" || record.action === "fail-operation-in-progress")
      return yield* new ExitWith({ exitCode: ExitCode.failed })
  }),
).pipe(
  Command.withDescription(
    `Preview a deploy without writing anything. Key Vault has no validate-only import, so plan runs the deploy's preflight, reads the current version (and the soft-deleted state) and reports exactly what deploy would do: import, skip (already served), refuse (and why), stop on a soft-deleted name, or recover it (and import over it, unless it is this certificate already), or fail on a certificate operation in progress (a create waiting for its CA or a merge). A first deploy's import fails when a key or a secret (not a certificate) holds the name; plan reads neither (a secret's read would fetch its value), and \`kvdeploy doctor\` checks it. Takes the same flags as deploy. Needs certificates/get.

Exit codes: 0 deploy would import, skip or recover, 1 the vault could not be read, the name is soft-deleted or an operation is in progress (deploy would fail), 2 usage error or deploy would refuse.`,
  ),
  Command.withShortDescription("Read-only preview of what deploy would do"),
  Command.withExamples([
    {
      command: "kvdeploy plan --config target.json --cert leaf.pem --chain chain.pem --key leaf.key",
      description: "What deploy would do",
    },
    {
      command: "kvdeploy plan --config target.json --pfx api.pfx --pfx-password-env PFX_PASSWORD --json",
      description: "As JSON",
    },
  ]),
)
