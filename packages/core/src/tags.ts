/** The tags kvdeploy sets on every version it imports (the certctl provenance contract). */

export const MANAGED_BY_TAG = "certctl-managed-by"
export const MANAGED_BY_VALUE = "certctl"
export const CERTIFICATE_ID_TAG = "certctl-certificate-id"
export const ROLLBACK_OF_TAG = "certctl-rollback-of"

export const RESERVED_TAG_KEYS: ReadonlyArray<string> = [MANAGED_BY_TAG, CERTIFICATE_ID_TAG, ROLLBACK_OF_TAG]

/** Key Vault allows 15 tags; kvdeploy adds up to 3 reserved ones (a rollback adds all three). */
export const MAX_TAGS = 15
export const MAX_OPERATOR_TAGS = MAX_TAGS - RESERVED_TAG_KEYS.length

export const isReservedTagKey = (key: string): boolean => RESERVED_TAG_KEYS.includes(key.toLowerCase())

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

export const withoutReserved = (tags: Readonly<Record<string, string>>): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(tags)) if (!isReservedTagKey(k)) out[k] = v
  return out
}

/** True when every tag of `expected` is present with the same value in `actual`. */
export const hasTags = (
  actual: Readonly<Record<string, string>>,
  expected: Readonly<Record<string, string>>,
): boolean => Object.entries(expected).every(([k, v]) => actual[k] === v)

export const isManagedByKvdeploy = (tags: Readonly<Record<string, string>>): boolean =>
  tags[MANAGED_BY_TAG] === MANAGED_BY_VALUE
