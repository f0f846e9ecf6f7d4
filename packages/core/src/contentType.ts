/**
 * The content type of a certificate's backing secret: what Key Vault serves when a consumer reads
 * the secret (an AKS Secrets Store CSI mount, nginx, an App Service). An import's policy sets it
 * for that version and every later one, so a deploy chooses it: the target's `content_type`
 * (`keep`, the default, imports in the content type the vault serves now).
 */
import * as Schema from "effect/Schema"
import { type Consumer, pkcs12OnlyConsumers, removeConsumersAdvice } from "./consumers.js"
import type { DeployWarning } from "./outcome.js"

export const PKCS12_CONTENT_TYPE = "application/x-pkcs12"
export const PEM_CONTENT_TYPE = "application/x-pem-file"

/** A backing secret's content type as Key Vault names it. */
export type SecretContentType = typeof PKCS12_CONTENT_TYPE | typeof PEM_CONTENT_TYPE

/** The target's `content_type`: `keep` what the vault serves (default), or always `pkcs12` or `pem`. */
export const ContentTypeSetting = Schema.Literals(["keep", "pkcs12", "pem"])
export type ContentTypeSetting = typeof ContentTypeSetting.Type

/** The setting's words for a content type. */
export const contentTypeWords = (contentType: SecretContentType): "PKCS#12" | "PEM" =>
  contentType === PEM_CONTENT_TYPE ? "PEM" : "PKCS#12"

/**
 * The content type a deploy imports in: the one `setting` names, or for `keep` the one the vault
 * serves now (`served`, the snapshot's policy), PKCS#12 when nothing is served or the vault did not
 * say, and PKCS#12 whatever is served when the target names a consumer (`consumers`: they read
 * PKCS#12 only; TargetConfig refuses `pem` with them).
 */
export const importContentTypeOf = (
  setting: ContentTypeSetting,
  served: string | undefined,
  consumers?: ReadonlyArray<Consumer> | undefined,
): SecretContentType =>
  setting === "pem"
    ? PEM_CONTENT_TYPE
    : setting === "pkcs12"
      ? PKCS12_CONTENT_TYPE
      : served === PEM_CONTENT_TYPE && pkcs12OnlyConsumers(consumers).length === 0
        ? PEM_CONTENT_TYPE
        : PKCS12_CONTENT_TYPE

/**
 * What an import does to the served content type: `kept` (the same one), `changed` (another one:
 * consumers read another format from now on), or `new` (the vault served none, or did not say).
 */
export type ContentTypeChange = "kept" | "changed" | "new"

/** Which content type a deploy imported, what it replaced, and whether it changed what consumers read. */
export interface ImportedContentType {
  readonly imported: SecretContentType
  /** What the vault served before (the snapshot's policy); undefined when nothing, or the vault did not say. */
  readonly served: string | undefined
  readonly change: ContentTypeChange
  /**
   * The content type a rollback wrote after the import, when one was written: the one the vault
   * served before, whatever was imported (what consumers read again, unless another writer's
   * version is served after the rollback's).
   */
  readonly restored?: SecretContentType | undefined
}

export const importedContentTypeOf = (
  imported: SecretContentType,
  served: string | undefined,
): ImportedContentType => ({
  imported,
  served,
  change: served === undefined ? "new" : served === imported ? "kept" : "changed",
})

/** The decision a deploy over a certificate whose secret is PEM notes when it imports PKCS#12 (`content_type: pkcs12`). */
export const pemToPkcs12Note =
  "content type: the vault serves this certificate's secret as PEM (application/x-pem-file); the import writes PKCS#12 (application/x-pkcs12), for this and every later version: a consumer that reads the secret as PEM must read PKCS#12 from now on (content_type: keep, the default, keeps PEM)"

/** The decision a deploy over a certificate whose secret is PKCS#12 notes when it imports PEM (`content_type: pem`). */
export const pkcs12ToPemNote =
  "content type: the vault serves this certificate's secret as PKCS#12 (application/x-pkcs12); the import writes PEM (application/x-pem-file), for this and every later version: a consumer that reads the secret as PKCS#12 must read PEM from now on (content_type: keep, the default, keeps PKCS#12)"

/**
 * The decision a deploy over a certificate whose secret is PEM notes when it imports PKCS#12 with
 * `content_type: keep` because the target names consumers that read PKCS#12 only.
 */
export const pemToPkcs12ForConsumersNote = (consumers: ReadonlyArray<Consumer>): string =>
  `content type: the vault serves this certificate's secret as PEM (application/x-pem-file); the import writes PKCS#12 (application/x-pkcs12), for this and every later version, as consumers ${consumers.join(", ")} read PKCS#12 only (content_type: keep keeps PEM only for a target that names no consumer): a consumer that reads the secret as PEM must read PKCS#12 from now on`

/**
 * The decision line of an import's content type: a change note, or the content type kept or chosen.
 * `consumers`: the target's (a PEM secret becomes PKCS#12 for them with `keep`).
 */
export const contentTypeDecision = (
  setting: ContentTypeSetting,
  imported: ImportedContentType,
  consumers?: ReadonlyArray<Consumer> | undefined,
): string =>
  imported.change === "changed"
    ? imported.imported === PKCS12_CONTENT_TYPE
      ? setting === "keep" && pkcs12OnlyConsumers(consumers).length > 0
        ? pemToPkcs12ForConsumersNote(pkcs12OnlyConsumers(consumers))
        : pemToPkcs12Note
      : pkcs12ToPemNote
    : imported.change === "kept"
      ? `content type: keeping ${contentTypeWords(imported.imported)} (${imported.imported}), as the vault serves it`
      : `content type: ${contentTypeWords(imported.imported)} (${imported.imported})${setting === "keep" ? ", as nothing says otherwise (content_type: keep)" : ""}`

/**
 * How a fix says to write the content type asked for now, with the certificate already served: a
 * deploy imports over a served version that lacks one of the target's tags (servesInPlace), so
 * one more tag makes it write this certificate again as a new version, in the content type asked
 * for. The CLI's `--force` (DeployOptions.force) imports it without one; the agent has none.
 */
const writeNowAdvice = (asked: string): string =>
  `add a tag to the target, or change a tag's value (\`--tag KEY=VALUE\`, or \`tags\` in the target file or the agent's deployment) and deploy again: a served version without one of the target's tags is imported over, so this certificate is written again as a new version, as ${asked} (the tag may be left out again afterwards); or, with \`kvdeploy deploy\`, deploy again with \`--force\`, which imports the certificate served already; or deploy a certificate renewed by its CA`

/**
 * When a certificate already served is not imported again (Skipped), and the target asks for
 * another content type than the one served (`content_type` pkcs12 or pem, or keep with consumers
 * that read PKCS#12 only over a PEM secret): nothing is imported for the content type alone, so it
 * takes effect with the next new version. Said, not silent, with what writes it now; undefined
 * when nothing differs. `recovered`: the served certificate is the one this deploy's recovery of a
 * soft-deleted certificate brought back (on_soft_deleted: recover), or, for plan, would.
 */
export const contentTypeWaiting = (
  target: {
    readonly contentType: ContentTypeSetting
    readonly consumers?: ReadonlyArray<Consumer> | undefined
  },
  served: string | undefined,
  options?: { readonly recovered?: boolean | undefined },
): DeployWarning | undefined => {
  const setting = target.contentType
  const consumers = pkcs12OnlyConsumers(target.consumers)
  if (setting === "keep" && consumers.length === 0) return undefined
  const asked = importContentTypeOf(setting, served, consumers)
  if (served === undefined || served === asked) return undefined
  const servedHow =
    options?.recovered === true
      ? `the soft-deleted certificate a recovery brings back serves this certificate's secret as ${served}: it is this certificate, so it is recovered and no version is imported`
      : `the vault serves this certificate's secret as ${served}: the certificate is already served, so no version is imported`
  return setting === "keep"
    ? {
        field: "consumers",
        message: `names ${consumers.join(", ")}, which read PKCS#12 only, and ${servedHow}; the secret becomes ${asked} with the next version a deploy writes (until then they cannot read it)`,
        fix: `to write ${asked} now, ${writeNowAdvice(asked)}; or ${removeConsumersAdvice(consumers)} if ${consumers.length === 1 ? "it does" : "they do"} not read this certificate`,
      }
    : {
        field: "content_type",
        message: `is ${setting}, and ${servedHow}; the secret becomes ${asked} with the next version a deploy writes`,
        fix: `nothing, if that can wait; else, to write ${asked} now, ${writeNowAdvice(asked)}; or set content_type: keep (\`--content-type keep\`) to keep ${served}`,
      }
}
