/** Rendering of vault versions for `show`, `versions` and `plan`: provenance marks, expiry, enabled. */
import {
  CERTIFICATE_ID_TAG,
  holdsNoCertificate,
  isManagedByKvdeploy,
  ROLLBACK_OF_TAG,
  spanText,
  unfitTagValue,
  type VaultVersion,
} from "@kvdeploy/core"
import type { Style } from "./terminal.js"

/** A version as printed and as put in JSON output. */
export interface VersionRecord {
  readonly versionId: string
  readonly latest: boolean
  readonly createdAt: string
  readonly expiresAt: string | undefined
  readonly enabled: boolean
  readonly x5t: string
  /** The serial, when the vault's answer carried the certificate (a version list does not: absent then). */
  readonly serialHex?: string
  /** Written by kvdeploy (or certctl): `certctl-managed-by=certctl`. */
  readonly managedByKvdeploy: boolean
  readonly certificateId: string | undefined
  /** The failed version this one rolled back, when it is a rollback. */
  readonly rollbackOf: string | undefined
  readonly tags: Readonly<Record<string, string>>
  /** True when it holds no certificate yet: a create started in the vault that has not completed. */
  readonly noCertificate?: true
}

/**
 * A tag key or value as output shows it: not when it holds what no tag may (control characters, PEM
 * text, a key's base64), which another writer may have put there: described by its length.
 */
const shownTag = (text: string, what: "key" | "value"): string =>
  unfitTagValue(text)
    ? `(a tag ${what} of ${text.length} characters holding key text or control characters, not shown)`
    : text

/** The tags as output shows them (see shownTag). */
const shownTags = (tags: Readonly<Record<string, string>>): Readonly<Record<string, string>> =>
  Object.values(tags).some(unfitTagValue) || Object.keys(tags).some(unfitTagValue)
    ? Object.fromEntries(Object.entries(tags).map(([k, v]) => [shownTag(k, "key"), shownTag(v, "value")]))
    : tags

export const versionRecord = (v: VaultVersion, latest: boolean): VersionRecord => {
  const certificateId = v.tags[CERTIFICATE_ID_TAG]
  return {
    versionId: v.versionId,
    latest,
    createdAt: v.createdAt.toISOString(),
    expiresAt: v.expiresAt?.toISOString(),
    enabled: v.enabled,
    x5t: v.x5t,
    ...(v.serialHex === "" ? {} : { serialHex: v.serialHex }),
    managedByKvdeploy: isManagedByKvdeploy(v.tags),
    certificateId: certificateId === undefined ? undefined : shownTag(certificateId, "value"),
    rollbackOf: v.tags[ROLLBACK_OF_TAG],
    tags: shownTags(v.tags),
    ...(holdsNoCertificate(v) ? { noCertificate: true as const } : {}),
  }
}

/** The UTC date of an instant, said to be UTC's ("2027-03-01 UTC"); the text itself when it is no time. */
export const utcDateText = (at: string): string => {
  const ms = Date.parse(at)
  return Number.isNaN(ms) ? at : `${new Date(ms).toISOString().slice(0, 10)} UTC`
}

/** "expires 2027-03-01 UTC (in 89 d)", "expired 2026-11-28 UTC (3 d ago)". */
export const expiryText = (expiresAt: string | undefined, now: number): string => {
  if (expiresAt === undefined) return "expiry unknown"
  const ms = Date.parse(expiresAt) - now
  const date = utcDateText(expiresAt)
  return ms < 0 ? `expired ${date} (${spanText(-ms)} ago)` : `expires ${date} (in ${spanText(ms)})`
}

/** `expiryText` as a labelled row: its first word padded to `width` columns, as the rows around it. */
export const expiryRow = (expiresAt: string | undefined, now: number, width: number): string =>
  expiryText(expiresAt, now).replace(/^(\S+) /, (_, word: string) => word.padEnd(width))

const short = (id: string): string => (id.length > 12 ? id.slice(0, 12) : id)

/** A version's x5t as a line shows it: a version that holds no certificate yet (a create still in progress) has none. */
export const x5tText = (x5t: string): string => (x5t === "" ? "(none: no certificate yet)" : x5t)

/** One line per version, newest first, with marks. */
export const versionLines = (records: ReadonlyArray<VersionRecord>, s: Style, now: number): Array<string> =>
  records.map((r) => {
    const marks: Array<string> = []
    if (r.latest) marks.push(s.bold("latest"))
    if (r.managedByKvdeploy) marks.push(s.cyan("kvdeploy"))
    else marks.push(s.yellow("not kvdeploy"))
    if (r.rollbackOf !== undefined) marks.push(s.yellow(`rollback of ${short(r.rollbackOf)}`))
    if (!r.enabled) marks.push(s.red("disabled"))
    const exp = expiryText(r.expiresAt, now)
    const expiry = r.expiresAt !== undefined && Date.parse(r.expiresAt) < now ? s.red(exp) : exp
    return `${r.latest ? "*" : " "} ${r.versionId}  ${r.createdAt.replace("T", " ").slice(0, 19)} UTC  ${expiry}  x5t ${x5tText(r.x5t)}  ${marks.join(", ")}`
  })

/** The detailed block for one version (`show`). */
export const versionDetail = (name: string, r: VersionRecord, s: Style, now: number): Array<string> => [
  `${s.bold(name)}  version ${r.versionId}${r.latest ? " (latest)" : ""}`,
  `  created      ${r.createdAt}`,
  `  ${r.expiresAt !== undefined && Date.parse(r.expiresAt) < now ? s.red(expiryRow(r.expiresAt, now, 13)) : expiryRow(r.expiresAt, now, 13)}`,
  `  enabled      ${r.enabled ? "yes" : s.red("no")}`,
  r.noCertificate === true
    ? `  certificate  ${s.yellow("none yet: a create was started in the vault and has not completed (`az keyvault certificate pending show` shows its operation)")}`
    : `  x5t          ${r.x5t}`,
  `  serial       ${r.serialHex ?? "(not in the vault's answer)"}`,
  `  written by   ${r.managedByKvdeploy ? s.cyan("kvdeploy (certctl-managed-by=certctl)") : s.yellow("not kvdeploy (no certctl-managed-by tag): deploy refuses it unless --adopt")}`,
  ...(r.certificateId === undefined ? [] : [`  cert id      ${r.certificateId}`]),
  ...(r.rollbackOf === undefined ? [] : [`  ${s.yellow(`rollback of  ${r.rollbackOf}`)}`]),
  `  tags         ${
    Object.entries(r.tags).length === 0
      ? "(none)"
      : Object.entries(r.tags)
          .map(([k, v]) => `${k}=${v}`)
          .join(", ")
  }`,
]

/**
 * Versions newest first. Key Vault's creation times have one-second
 * resolution, so ties are broken by what is known: the order the caller
 * created them in (`createdOrder`, oldest first: the demo's own deploys), the
 * version the vault serves (`latestId`) is newest, and a rollback is newer than
 * the version it rolled back. `orderUnknown` says that some versions of one
 * second are left in the vault's order (by version id), which says nothing of
 * which came first; `firstUnknown` is the first place taken that way (the
 * length when there is none), so the newest `n` shown are in a known order,
 * and are known to be the newest `n`, exactly when `n <= firstUnknown`.
 */
export const newestFirst = (
  versions: ReadonlyArray<VaultVersion>,
  latestId?: string,
  createdOrder: ReadonlyArray<string> = [],
): Array<VaultVersion> & { readonly orderUnknown: boolean; readonly firstUnknown: number } => {
  // A version some rollback R replaced is newer than the version R restored (same x5t as R).
  const restoredBy = new Map<string, string>()
  for (const r of versions) {
    const failed = r.tags[ROLLBACK_OF_TAG]
    if (failed !== undefined) restoredBy.set(failed, r.x5t)
  }
  const replacedBefore = (a: VaultVersion, b: VaultVersion) => {
    const x5t = restoredBy.get(a.versionId)
    return x5t !== undefined && b.x5t === x5t && b.tags[ROLLBACK_OF_TAG] !== a.versionId
  }
  const created = new Map(createdOrder.map((id, i) => [id, i]))
  /** Whether something known says `a` is newer than `b` (two versions of one second). */
  const knownNewer = (a: VaultVersion, b: VaultVersion): boolean => {
    const ia = created.get(a.versionId)
    const ib = created.get(b.versionId)
    if (ia !== undefined && ib !== undefined) return ia > ib
    return a.versionId === latestId || a.tags[ROLLBACK_OF_TAG] === b.versionId || replacedBefore(a, b)
  }
  const second = (v: VaultVersion) => Math.floor(v.createdAt.getTime() / 1000)
  const bySecond = new Map<number, Array<VaultVersion>>()
  for (const v of versions) {
    const group = bySecond.get(second(v))
    if (group === undefined) bySecond.set(second(v), [v])
    else group.push(v)
  }
  const sorted: Array<VaultVersion> = []
  let firstUnknown: number | undefined
  for (const [, group] of [...bySecond].sort(([a], [b]) => b - a)) {
    // Newest first within the second: each time, a version no other left one is known to be newer
    // than (in the vault's order when there are several, and the order is then unknown).
    const left = [...group]
    while (left.length > 0) {
      const newest = left.filter((v) => !left.some((w) => w !== v && knownNewer(w, v)))
      // A contradiction in what is known (none qualifies) falls back to the vault's order.
      const next = newest[0] ?? (left[0] as VaultVersion)
      // Each place taken by the only candidate is known: that version is newer than every one left.
      if (newest.length !== 1) firstUnknown ??= sorted.length
      sorted.push(next)
      left.splice(left.indexOf(next), 1)
    }
  }
  return Object.assign(sorted, {
    orderUnknown: firstUnknown !== undefined,
    firstUnknown: firstUnknown ?? sorted.length,
  })
}
