/**
 * Steps 3-4 of the deploy state machine (idempotency, ownership) as one
 * decision about the version a vault serves now. The deploy program acts on
 * it; `kvdeploy plan` and the agent's comparison read the same decision, so
 * they cannot drift from what a deploy would do.
 */
import type { VaultVersion } from "./ports/Vault.js"
import type { DeployOptions } from "./request.js"
import { hasTags, isManagedByKvdeploy } from "./tags.js"

export type ExistingVersionJudgement =
  /** The vault serves this certificate, enabled, with kvdeploy's tags: a deploy is Skipped. */
  | { readonly _tag: "InPlace" }
  /** Another writer's certificate and no adopt: a deploy is Rejected (not_managed). */
  | { readonly _tag: "NotManaged" }
  /** A deploy imports a new version (adopting the certificate when it is not kvdeploy's). */
  | { readonly _tag: "Replace"; readonly adopting: boolean }

// One object per answer: the deploy program judges on every deploy.
const inPlace: ExistingVersionJudgement = Object.freeze({ _tag: "InPlace" })
const notManaged: ExistingVersionJudgement = Object.freeze({ _tag: "NotManaged" })
const replace: ExistingVersionJudgement = Object.freeze({ _tag: "Replace", adopting: false })
const adoptAndReplace: ExistingVersionJudgement = Object.freeze({ _tag: "Replace", adopting: true })

/**
 * Whether `version` is the certificate `x5t`, enabled, carrying every tag of
 * `tags` (forwardTags). A version read whole or a certificate's list entry
 * (ListedCertificate: its latest version's x5t, enabled and tags) alike.
 */
export const servesInPlace = (
  version: Pick<VaultVersion, "x5t" | "enabled" | "tags">,
  x5t: string,
  tags: Readonly<Record<string, string>>,
): boolean => version.x5t === x5t && version.enabled && hasTags(version.tags, tags)

/**
 * Whether the version the vault answered holds no certificate: a certificate whose create was
 * started in the vault and has not completed (a certificate operation waiting for its CA, or for the
 * merge of a signed CSR). Key Vault shows it disabled, without `cer` or `x5t`, and takes no import
 * while the operation is in progress.
 */
export const holdsNoCertificate = (version: Pick<VaultVersion, "x5t" | "cer">): boolean =>
  version.x5t === "" && version.cer === undefined

/**
 * What a deploy of the certificate `newX5t` with `tags` does about `current`, the version served now.
 * `options` are the request's (`adopt`, `force`), or whether to adopt alone. With `force` a version
 * served in place is replaced all the same (it may hold the leaf with another chain or content
 * type); ownership is judged as always.
 */
export const judgeExistingVersion = (
  current: VaultVersion,
  newX5t: string,
  tags: Readonly<Record<string, string>>,
  options: boolean | Pick<DeployOptions, "adopt" | "force"> | undefined,
): ExistingVersionJudgement => {
  const { adopt, force } = typeof options === "boolean" ? { adopt: options, force: false } : (options ?? {})
  if (force !== true && servesInPlace(current, newX5t, tags)) return inPlace
  if (isManagedByKvdeploy(current.tags)) return replace
  return adopt === true ? adoptAndReplace : notManaged
}
