import type { VaultVersion } from "./ports/Vault.js"

/**
 * How far apart two of the vault's whole-second stamps (a version's creation, its answer's Date
 * header) must be to be taken as one before the other: they come from the vault's own servers, so
 * a second apart may be the same moment.
 */
export const VAULT_STAMP_MARGIN_MS = 2_000

/**
 * Versions that may have been created after `since`: every version but
 * `since` itself whose creation time is not earlier than its own. Key Vault
 * keeps creation times in whole seconds and lists versions in no documented
 * order (by version id, in practice), so a version created in the same second
 * may be older or newer, and nothing a client sees orders them: the list's
 * order is never used. Without `since` (a first deploy), every version.
 */
export const createdSince = (
  versions: ReadonlyArray<VaultVersion>,
  since: VaultVersion | undefined,
): ReadonlyArray<VaultVersion> =>
  since === undefined
    ? versions
    : versions.filter(
        (v) => v.versionId !== since.versionId && v.createdAt.getTime() >= since.createdAt.getTime(),
      )

/** By creation time, latest first; equal times by version id (an arbitrary but stable choice). */
export const byCreationLatestFirst = (versions: ReadonlyArray<VaultVersion>): Array<VaultVersion> =>
  [...versions].sort(
    (a, b) =>
      b.createdAt.getTime() - a.createdAt.getTime() ||
      (a.versionId < b.versionId ? -1 : a.versionId > b.versionId ? 1 : 0),
  )
