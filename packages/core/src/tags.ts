/** The tags kvdeploy sets on every version it imports (the certctl provenance contract). */

export const MANAGED_BY_TAG = "certctl-managed-by"
export const MANAGED_BY_VALUE = "certctl"
export const CERTIFICATE_ID_TAG = "certctl-certificate-id"
export const ROLLBACK_OF_TAG = "certctl-rollback-of"

export const RESERVED_TAG_KEYS: ReadonlyArray<string> = [MANAGED_BY_TAG, CERTIFICATE_ID_TAG, ROLLBACK_OF_TAG]

/** Key Vault allows 15 tags; kvdeploy adds up to 3 reserved ones (a rollback adds all three). */
export const MAX_TAGS = 15
export const MAX_OPERATOR_TAGS = MAX_TAGS - RESERVED_TAG_KEYS.length

const reservedKeyLengths = new Set(RESERVED_TAG_KEYS.map((k) => k.length))

/**
 * Case-insensitive. A key of another length than the reserved ones is not lowercased to be
 * compared: the one character whose lowercase is longer (U+0130) lowercases to a non-ASCII
 * pair, so no key of another length can lowercase to a reserved (ASCII) key.
 */
export const isReservedTagKey = (key: string): boolean =>
  reservedKeyLengths.has(key.length) && RESERVED_TAG_KEYS.includes(key.toLowerCase())

/** Operator tags plus the reserved tags of a forward import. */
export const forwardTags = (
  operatorTags: Readonly<Record<string, string>>,
  certificateId: string,
): Record<string, string> => {
  // One object: the operator tags (reserved keys removed, so nothing below is overridden), then the reserved ones.
  const tags = withoutReserved(operatorTags)
  tags[MANAGED_BY_TAG] = MANAGED_BY_VALUE
  tags[CERTIFICATE_ID_TAG] = certificateId
  return tags
}

/** Operator tags (the previous version's, for a rollback) plus the reserved tags of a rollback import. */
export const rollbackTags = (
  operatorTags: Readonly<Record<string, string>>,
  certificateId: string,
  failedVersionId: string,
): Record<string, string> => ({
  ...forwardTags(operatorTags, certificateId),
  [ROLLBACK_OF_TAG]: failedVersionId,
})

// The two functions below run on every deploy: they walk the own keys with `for...in` (the keys
// `Object.entries` lists, in its order) instead of building an array of entries each time.

export const withoutReserved = (tags: Readonly<Record<string, string>>): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const k in tags) if (Object.hasOwn(tags, k) && !isReservedTagKey(k)) out[k] = tags[k] as string
  return out
}

/** True when every tag of `expected` is present with the same value in `actual`. */
export const hasTags = (
  actual: Readonly<Record<string, string>>,
  expected: Readonly<Record<string, string>>,
): boolean => {
  for (const k in expected) if (Object.hasOwn(expected, k) && actual[k] !== expected[k]) return false
  return true
}

export const isManagedByKvdeploy = (tags: Readonly<Record<string, string>>): boolean =>
  tags[MANAGED_BY_TAG] === MANAGED_BY_VALUE
