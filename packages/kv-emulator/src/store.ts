/**
 * One vault's state: certificates (each a list of versions, a policy, maybe a
 * soft-deleted mark or a pending operation) and plain secrets. Renders Key
 * Vault's bundles with ids built from the request's origin.
 */
import { randomBytes } from "node:crypto"
import { KvError } from "./errors.js"
import {
  certificateFactsOf,
  type KeyFacts,
  PEM_CONTENT_TYPE,
  PFX_CONTENT_TYPE,
  publicJwkOf,
  type SecretContentType,
} from "./material.js"
import { mergePolicy, type PolicyWire } from "./policy.js"

export type Tags = Readonly<Record<string, string>>

export interface CertVersion {
  readonly version: string
  readonly leaf: Uint8Array
  /** Every certificate of the version in the order the secret serves them (leaf first unless preserveCertOrder kept another order). */
  readonly certs: ReadonlyArray<Uint8Array>
  readonly key: Uint8Array | undefined
  readonly keyFacts: KeyFacts
  readonly exportable: boolean
  readonly contentType: SecretContentType
  readonly preserveCertOrder: boolean
  readonly x5t: string
  readonly nbf: number
  readonly exp: number
  readonly created: number
  enabled: boolean
  updated: number
  tags: Tags | undefined
  /** Written by the fault injector ("a foreign import slipped in"), for test assertions. */
  readonly foreign: boolean
}

export interface PendingOperation {
  readonly requestId: string
  /** The version id the pending certificate will get (Key Vault shows it before the merge). */
  readonly pendingVersion: string
  readonly created: number
  readonly csr: Uint8Array
  status: "inProgress" | "completed" | "failed"
  version?: string
  cancellationRequested: boolean
  error?: { code: string; message: string }
}

export interface CertEntry {
  readonly name: string
  readonly versions: CertVersion[]
  policy: PolicyWire
  policyCreated: number
  policyUpdated: number
  deleted?: { readonly deletedDate: number; readonly scheduledPurgeDate: number } | undefined
  pending?: PendingOperation | undefined
  /**
   * What a first create whose operation was deleted before it completed leaves (Key Vault keeps its
   * version: the latest version, disabled and without a certificate, listed as such; `GET
   * .../pending` answers 404). An import replaces it (the emulator then forgets it).
   */
  shell?: PendingOperation | undefined
  /**
   * A delete or a recovery that has not shown yet (the emulator's `propagationMs`): until `untilMs`
   * a deleting certificate is neither served nor among the deleted ones, and a recovering one is not
   * served yet, as Key Vault's answers for about 10 s in the SDK's recordings.
   */
  settling?: { readonly kind: "deleting" | "recovering"; readonly untilMs: number } | undefined
}

export interface SecretVersion {
  readonly version: string
  readonly value: string
  readonly contentType: string | undefined
  readonly created: number
  enabled: boolean
  updated: number
  tags: Tags | undefined
}

export interface SecretEntry {
  readonly name: string
  readonly versions: SecretVersion[]
}

export const RECOVERY_LEVEL = "Recoverable+Purgeable"

/**
 * The recovery level Key Vault reports for a retention of `days`: "Recoverable+Purgeable" at the
 * default 90 days, "CustomizedRecoverable+Purgeable" for a retention set shorter (7-89 days), as its
 * recorded delete answers show.
 */
export const recoveryLevelFor = (days: number): string =>
  days < 90 ? "CustomizedRecoverable+Purgeable" : RECOVERY_LEVEL

export const nowSeconds = (): number => Math.floor(Date.now() / 1000)
export const newVersionId = (): string => randomBytes(16).toString("hex")

const NAME = /^[0-9a-zA-Z-]{1,127}$/
export const checkName = (name: string): void => {
  if (!NAME.test(name))
    throw KvError.badParameter(
      `The request URI contains an invalid name: ${name}. Object names must be 1-127 characters and contain only 0-9, a-z, A-Z, and -.`,
    )
}

export const checkTags = (tags: unknown): Tags | undefined => {
  if (tags === undefined || tags === null) return undefined
  if (typeof tags !== "object" || Array.isArray(tags))
    throw KvError.badParameter("Property tags has invalid value")
  const entries = Object.entries(tags)
  if (entries.length > 15) throw KvError.badParameter("Too many tags. The maximum number of tags is 15.")
  const out: Record<string, string> = {}
  for (const [k, v] of entries) {
    if (typeof v !== "string") throw KvError.badParameter("Property tags has invalid value")
    if (k.length > 256 || v.length > 256)
      throw KvError.badParameter("Tag names and values must be at most 256 characters.")
    out[k] = v
  }
  return out
}

export interface ImportInput {
  readonly leaf: Uint8Array
  readonly certs: ReadonlyArray<Uint8Array>
  readonly key: Uint8Array
  readonly keyFacts: KeyFacts
  readonly contentType: SecretContentType
  readonly policy: PolicyWire | undefined
  readonly enabled: boolean | undefined
  readonly tags: Tags | undefined
  readonly preserveCertOrder: boolean
  readonly issuerName: string
  readonly foreign?: boolean
}

export class VaultStore {
  readonly certificates = new Map<string, CertEntry>()
  readonly secrets = new Map<string, SecretEntry>()
  constructor(
    readonly name: string,
    readonly recoverableDays: number,
    private readonly onChange: () => void = () => {},
    /** How long a delete or a recovery takes to show (0: at once). */
    readonly propagationMs = 0,
  ) {}

  /**
   * Whether `e` is still deleting or recovering (`kind`); a settling that is over is cleared here
   * (a change: answers cached while it lasted are stale).
   */
  settling(e: CertEntry, kind: "deleting" | "recovering"): boolean {
    if (e.settling === undefined) return false
    if (Date.now() >= e.settling.untilMs) {
      e.settling = undefined
      this.changed()
      return false
    }
    return e.settling.kind === kind
  }

  /** Whether any certificate's delete or recovery has not shown yet (its answers are not cached then). */
  anySettling(): boolean {
    if (this.propagationMs === 0) return false
    let any = false
    for (const e of this.certificates.values())
      if (this.settling(e, "deleting") || this.settling(e, "recovering")) any = true
    return any
  }

  /** Bumped on every change: rendered answers cached under an older revision are stale. */
  revision = 0

  changed(): void {
    this.revision++
    this.onChange()
  }

  private purgeExpired(entry: CertEntry | undefined): CertEntry | undefined {
    if (entry?.deleted && entry.deleted.scheduledPurgeDate <= nowSeconds()) {
      this.certificates.delete(entry.name.toLowerCase())
      return undefined
    }
    return entry
  }

  /** Whether `name` holds a certificate now, a soft-deleted one, or none (it never did, or it was purged). */
  holder(name: string): "active" | "deleted" | "none" {
    const e = this.purgeExpired(this.certificates.get(name.toLowerCase()))
    return e === undefined || (!e.deleted && e.versions.length === 0)
      ? "none"
      : e.deleted
        ? "deleted"
        : "active"
  }

  /** The certificate if it exists and is not deleted. */
  active(name: string): CertEntry | undefined {
    const e = this.purgeExpired(this.certificates.get(name.toLowerCase()))
    return e && !e.deleted && e.versions.length > 0 && !this.settling(e, "recovering") ? e : undefined
  }
  /** The certificate `name` holds, active, deleted or settling; undefined once purged or never written. */
  held(name: string): CertEntry | undefined {
    return this.purgeExpired(this.certificates.get(name.toLowerCase()))
  }
  mustActive(name: string): CertEntry {
    const e = this.active(name)
    if (!e) throw KvError.certificateNotFound(name)
    return e
  }
  /** An active certificate, or one that only has a pending create operation. */
  mustActiveOrPending(name: string): CertEntry {
    const e = this.purgeExpired(this.certificates.get(name.toLowerCase()))
    if (!e || e.deleted) throw KvError.certificateNotFound(name)
    return e
  }

  /** The entry for a create that waits for a merge (no version yet). */
  pendingOnly(name: string, policy: PolicyWire): CertEntry {
    const key = name.toLowerCase()
    const now = nowSeconds()
    const e = this.certificates.get(key) ?? {
      name,
      versions: [],
      policy,
      policyCreated: now,
      policyUpdated: now,
    }
    e.policy = policy
    this.certificates.set(key, e)
    this.changed()
    return e
  }

  dropIfEmpty(name: string): void {
    const e = this.certificates.get(name.toLowerCase())
    if (e && e.versions.length === 0 && firstCreateOf(e) === undefined)
      this.certificates.delete(name.toLowerCase())
    this.changed()
  }

  deletedEntry(name: string): CertEntry | undefined {
    const e = this.purgeExpired(this.certificates.get(name.toLowerCase()))
    return e?.deleted && !this.settling(e, "deleting") ? e : undefined
  }

  latest(e: CertEntry): CertVersion {
    const v = e.versions[e.versions.length - 1]
    if (!v) throw KvError.certificateNotFound(e.name)
    return v
  }

  version(e: CertEntry, version: string): CertVersion {
    if (version === "") return this.latest(e)
    const v = e.versions.find((x) => x.version === version.toLowerCase())
    if (!v) throw KvError.certificateNotFound(`${e.name}/${version}`)
    return v
  }

  /** Refuses a name that is deleted-but-recoverable or used by a plain secret. */
  checkWritable(name: string): void {
    const e = this.certificates.get(name.toLowerCase())
    if (e?.deleted && this.settling(e, "deleting")) throw KvError.beingDeleted()
    if (this.deletedEntry(name)) throw KvError.deletedButRecoverable(name)
    if (this.secrets.has(name.toLowerCase()))
      throw KvError.conflict(
        `There is already a secret with the name ${name} that is not managed by a certificate. Choose a different name.`,
      )
  }

  /** Refuses an import or create while the certificate's pending operation is in progress. */
  checkNoOperationInProgress(name: string): void {
    const e = this.certificates.get(name.toLowerCase())
    if (e !== undefined && e.deleted === undefined && e.pending?.status === "inProgress")
      throw KvError.operationInProgress()
  }

  importVersion(name: string, input: ImportInput): CertVersion {
    this.checkWritable(name)
    const now = nowSeconds()
    const existing = this.certificates.get(name.toLowerCase())
    const facts = certificateFactsOf(input.leaf)
    const { nbf, exp } = facts
    // The key's own properties (kty, key_size, crv) come from the imported key alone: an RSA import
    // over an EC certificate must not keep the EC curve (a policy an RSA key cannot have).
    const previous = existing?.policy ?? defaultPolicy()
    const { kty: _kty, key_size: _size, crv: _crv, ...keptKeyProps } = previous.key_props ?? {}
    const basePolicy: PolicyWire = { ...previous, key_props: keptKeyProps }
    const fromCert = policyFromCertificate(input.leaf, input.keyFacts, input.contentType, input.issuerName)
    let policy = mergePolicy(mergePolicy(basePolicy, fromCert), input.policy ?? {})
    if (input.policy?.secret_props?.contentType === undefined)
      policy = mergePolicy(policy, { secret_props: { contentType: input.contentType } })
    const exportable = policy.key_props?.exportable ?? true
    const version: CertVersion = {
      version: newVersionId(),
      leaf: input.leaf,
      certs: input.certs,
      key: input.key,
      keyFacts: input.keyFacts,
      exportable,
      contentType: input.contentType,
      preserveCertOrder: input.preserveCertOrder,
      x5t: facts.x5t,
      nbf,
      exp,
      created: now,
      updated: now,
      enabled: input.enabled ?? policy.attributes?.enabled ?? true,
      tags: input.tags,
      foreign: input.foreign ?? false,
    }
    if (existing) {
      existing.versions.push(version)
      existing.policy = policy
      existing.policyUpdated = now
      // A pending operation that is not in progress (completed, failed) is overwritten: its
      // `GET .../pending` answers 404 from now on.
      existing.pending = undefined
      existing.shell = undefined
      // A write during a recovery's window ends it, so that its answer (and every later read) shows
      // the certificate: what Key Vault answers then is not known here.
      existing.settling = undefined
    } else {
      this.certificates.set(name.toLowerCase(), {
        name,
        versions: [version],
        policy,
        policyCreated: now,
        policyUpdated: now,
      })
    }
    this.changed()
    return version
  }

  delete(name: string): CertEntry {
    const e = this.mustActive(name)
    const now = nowSeconds()
    e.deleted = { deletedDate: now, scheduledPurgeDate: now + this.recoverableDays * 86_400 }
    e.pending = undefined
    e.settling =
      this.propagationMs > 0 ? { kind: "deleting", untilMs: Date.now() + this.propagationMs } : undefined
    this.changed()
    return e
  }

  recover(name: string): CertEntry {
    const e = this.deletedEntry(name)
    // Key Vault answers a recovery of a name it holds no deleted certificate of with its plain
    // not-found text (the SDK's recorded "recover a deleted certificate, non-existing"), unlike a
    // get or purge of the deleted certificate.
    if (!e) throw KvError.certificateNotFound(name)
    e.deleted = undefined
    e.settling =
      this.propagationMs > 0 ? { kind: "recovering", untilMs: Date.now() + this.propagationMs } : undefined
    this.changed()
    return e
  }

  purge(name: string): void {
    const e = this.deletedEntry(name)
    if (!e) throw KvError.deletedCertificateNotFound(name)
    this.certificates.delete(name.toLowerCase())
    this.changed()
  }
}

export const defaultPolicy = (): PolicyWire => ({
  key_props: { exportable: true, kty: "RSA", key_size: 2048, reuse_key: false },
  secret_props: { contentType: PFX_CONTENT_TYPE },
  lifetime_actions: [{ trigger: { lifetime_percentage: 80 }, action: { action_type: "EmailContacts" } }],
  issuer: { name: "Unknown" },
  attributes: { enabled: true },
})

const KEY_USAGE_NAMES: ReadonlyArray<[number, string]> = [
  [0, "digitalSignature"],
  [1, "nonRepudiation"],
  [2, "keyEncipherment"],
  [3, "dataEncipherment"],
  [4, "keyAgreement"],
  [5, "keyCertSign"],
  [6, "cRLSign"],
]

/** The x509_props and key_props Key Vault derives from an imported certificate. */
export const policyFromCertificate = (
  leaf: Uint8Array,
  keyFacts: KeyFacts,
  contentType: SecretContentType,
  issuerName: string,
): PolicyWire => {
  const { nbf, exp, dnsNames, subject, ekus: readEkus, keyUsage: ku } = certificateFactsOf(leaf)
  const ekus = [...readEkus]
  const months = Math.max(1, Math.round((exp - nbf) / (30.4375 * 86_400)))
  const usages =
    ku !== undefined ? KEY_USAGE_NAMES.filter(([bit]) => (ku & (1 << bit)) !== 0).map(([, n]) => n) : []
  return {
    key_props: {
      kty: keyFacts.kty,
      ...(keyFacts.kty === "RSA" && keyFacts.keySize !== undefined ? { key_size: keyFacts.keySize } : {}),
      ...(keyFacts.crv !== undefined ? { crv: keyFacts.crv, key_size: keyFacts.keySize ?? 256 } : {}),
    },
    secret_props: { contentType },
    x509_props: {
      subject,
      ...(dnsNames.length > 0 ? { sans: { dns_names: [...dnsNames] } } : {}),
      ekus,
      key_usage: usages,
      validity_months: months,
    },
    issuer: { name: issuerName },
  }
}

export const contentTypeOf = (v: string | undefined): SecretContentType =>
  v === PEM_CONTENT_TYPE ? PEM_CONTENT_TYPE : PFX_CONTENT_TYPE

// ---------- rendering ----------

export const certAttributes = (v: CertVersion, recoverableDays: number) => ({
  enabled: v.enabled,
  nbf: v.nbf,
  exp: v.exp,
  created: v.created,
  updated: v.updated,
  recoveryLevel: recoveryLevelFor(recoverableDays),
  recoverableDays,
})

/**
 * The create a certificate without any version shows as its latest version: its pending operation,
 * or what a deleted one left (`shell`); undefined for a certificate with a version.
 */
export const firstCreateOf = (e: CertEntry): PendingOperation | undefined =>
  e.versions.length === 0 ? (e.pending ?? e.shell) : undefined

/**
 * A certificate that only has a pending create, or what one left (no certificate yet): as Key Vault
 * answers it (the SDK's recorded "read, cancel and delete a certificate's operation"): id, disabled
 * attributes, policy and `pending`; no kid, sid, x5t or cer.
 */
export const renderPendingBundle = (
  origin: string,
  e: CertEntry,
  p: PendingOperation,
  recoverableDays: number,
) => ({
  id: `${origin}/certificates/${e.name}/${p.pendingVersion}`,
  attributes: {
    enabled: false,
    created: p.created,
    updated: p.created,
    recoveryLevel: recoveryLevelFor(recoverableDays),
    recoverableDays,
  },
  policy: renderPolicy(origin, e),
  pending: { id: `${origin}/certificates/${e.name}/pending` },
})

/** The list item of a certificate that holds no certificate yet: disabled, no x5t. */
export const renderPendingItem = (origin: string, e: CertEntry, p: PendingOperation) => ({
  id: `${origin}/certificates/${e.name}`,
  attributes: { enabled: false, created: p.created, updated: p.created },
})

export const renderPolicy = (origin: string, e: CertEntry) => ({
  id: `${origin}/certificates/${e.name}/policy`,
  ...e.policy,
  attributes: {
    enabled: e.policy.attributes?.enabled ?? true,
    created: e.policyCreated,
    updated: e.policyUpdated,
  },
})

/**
 * A certificate version as Key Vault answers it. `withPolicy` false: a read or update of a version
 * named by its id, which Key Vault answers without the certificate's policy (the SDK's recorded
 * "retrieve all versions" and "disable a certificate version"); the latest version, an import, a
 * recovery and a deleted certificate carry it.
 */
export const renderBundle = (
  origin: string,
  e: CertEntry,
  v: CertVersion,
  recoverableDays: number,
  withPolicy = true,
) => ({
  id: `${origin}/certificates/${e.name}/${v.version}`,
  kid: `${origin}/keys/${e.name}/${v.version}`,
  sid: `${origin}/secrets/${e.name}/${v.version}`,
  x5t: v.x5t,
  cer: Buffer.from(v.leaf).toString("base64"),
  attributes: certAttributes(v, recoverableDays),
  ...(withPolicy ? { policy: renderPolicy(origin, e) } : {}),
  ...(v.tags !== undefined ? { tags: v.tags } : {}),
  preserveCertOrder: v.preserveCertOrder,
})

export const renderDeletedBundle = (
  origin: string,
  e: CertEntry,
  v: CertVersion,
  recoverableDays: number,
) => ({
  recoveryId: `${origin}/deletedcertificates/${e.name}`,
  deletedDate: e.deleted?.deletedDate,
  scheduledPurgeDate: e.deleted?.scheduledPurgeDate,
  ...renderBundle(origin, e, v, recoverableDays),
})

export const renderItem = (
  origin: string,
  e: CertEntry,
  v: CertVersion,
  recoverableDays: number,
  withVersion: boolean,
) => ({
  id: withVersion ? `${origin}/certificates/${e.name}/${v.version}` : `${origin}/certificates/${e.name}`,
  x5t: v.x5t,
  attributes: certAttributes(v, recoverableDays),
  ...(v.tags !== undefined ? { tags: v.tags } : {}),
})

export const renderKey = (origin: string, e: CertEntry, v: CertVersion, recoverableDays: number) => {
  const jwk = publicJwkOf(v.leaf)
  const key_ops =
    v.keyFacts.kty === "RSA"
      ? ["sign", "verify", "encrypt", "decrypt", "wrapKey", "unwrapKey"]
      : ["sign", "verify"]
  return {
    key: { kid: `${origin}/keys/${e.name}/${v.version}`, kty: v.keyFacts.kty, key_ops, ...withoutKty(jwk) },
    attributes: { ...certAttributes(v, recoverableDays), exportable: v.exportable },
    ...(v.tags !== undefined ? { tags: v.tags } : {}),
    managed: true,
  }
}

const withoutKty = (jwk: Record<string, string>): Record<string, string> => {
  const { kty: _kty, ...rest } = jwk
  return rest
}
