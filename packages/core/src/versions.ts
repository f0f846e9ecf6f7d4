import type { VaultVersion } from "./ports/Vault.js"

/**
 * Versions created after `previous`, from a newest-first list: those listed
 * before it. Creation times have a resolution of one second in Key Vault, so
 * they only decide when `previous` is not in the list.
 */
export const newerThan = (
  newestFirst: ReadonlyArray<VaultVersion>,
  previous: VaultVersion | undefined,
): ReadonlyArray<VaultVersion> => {
  if (previous === undefined) return newestFirst
  const index = newestFirst.findIndex((v) => v.versionId === previous.versionId)
  return index >= 0
    ? newestFirst.slice(0, index)
    : newestFirst.filter((v) => v.createdAt.getTime() > previous.createdAt.getTime())
}
