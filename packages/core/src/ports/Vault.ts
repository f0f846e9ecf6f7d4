/**
 * The Key Vault port: what the deploy program needs from one vault, in domain
 * terms. The azure-kv adapter implements it over the Azure SDKs; the in-memory
 * vault in `@kvdeploy/core/test` implements it for tests.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type { Curve, KeyType } from "../material.js"

/** One version of a certificate as the vault reports it. */
export interface VaultVersion {
  readonly versionId: string
  /** base64url SHA-1 of the leaf DER. */
  readonly x5t: string
  /** Canonical lowercase hex serial (no leading zero bytes). */
  readonly serialHex: string
  readonly enabled: boolean
  readonly createdAt: Date
  readonly tags: Readonly<Record<string, string>>
  /** The leaf certificate DER (`cer`), when the vault returned it. */
  readonly cer?: Uint8Array
  /** The leaf's notAfter, when the vault returned it. */
  readonly expiresAt?: Date
  /** The leaf's notBefore, when the vault returned it. */
  readonly notBefore?: Date
  /**
   * The content type of the certificate's backing secret, as the certificate's policy says
   * (`application/x-pkcs12` or `application/x-pem-file`), when the vault returned the policy (a
   * read of the latest version does). An import sets the policy of every later version.
   */
  readonly contentType?: string
  /**
   * When the vault answered the read that gave this version, by its own clock (its Date header,
   * whole seconds), when the adapter knows it: a read of the latest version says it. A deploy
   * compares the vault's other stamps (a delete's) with it, not with this machine's clock.
   */
  readonly answeredAtMs?: number
}

/**
 * One certificate as the vault's list reports it: what its latest version
 * serves (x5t, enabled, tags), without a version id, serial or certificate
 * (Key Vault's list items carry none of them).
 */
export interface ListedCertificate {
  readonly name: string
  /** base64url SHA-1 of the latest version's leaf DER. */
  readonly x5t: string
  readonly enabled: boolean
  readonly tags: Readonly<Record<string, string>>
  /** The latest version's expiry (its leaf's notAfter), when the vault says. */
  readonly expiresAt?: Date
  /** When the certificate was last changed (a version written, an attribute updated), when the vault says. */
  readonly updatedAt?: Date
}

/** One page of the vault's certificate list. */
export interface ListedPage {
  readonly certificates: ReadonlyArray<ListedCertificate>
  /** Where the next page starts (opaque); `undefined` on the last page. */
  readonly continuation: string | undefined
  /**
   * Entries of the page that lack what Key Vault always sends (`attributes.enabled`, an enabled
   * certificate's `x5t`), by name, with what they lack: left out of `certificates` rather than
   * reported with made-up facts; a reader reads such a certificate on its own. Absent: none.
   */
  readonly unusable?: ReadonlyArray<UnusableListEntry> | undefined
}

/** A certificate list entry that could not be used, and why. */
export interface UnusableListEntry {
  readonly name: string
  readonly detail: string
}

/** A certificate in the soft-deleted state. */
export interface DeletedCertificate {
  readonly name: string
  readonly recoveryId: string
  /** When it was deleted, by the vault's clock (whole seconds), when the vault says (Key Vault does). */
  readonly deletedAt?: Date
  readonly scheduledPurgeAt?: Date
  /**
   * The version it served when it was deleted (x5t, tags), when the vault says: what a
   * recovery would bring back, so ownership is judged before recovering, not after.
   */
  readonly latest?: VaultVersion
}

/**
 * What a recovery answered: the certificate's latest version once it is served, and whether this
 * call sent the recovery. Key Vault's SDK reads the certificate before it recovers one, and sends
 * no recovery when the vault serves it already (another writer recovered it since it was read as
 * soft-deleted, or the name holds a certificate made since; who brought it there is not known): the
 * version is then what the vault serves, and `sent` is false.
 */
export interface RecoveredCertificate {
  readonly version: VaultVersion
  /** True when this call sent the recovery and the vault accepted it; false when it sent none. */
  readonly sent: boolean
}

/** The previous material of a version, read from its backing secret. */
export interface VersionSecret {
  /** PFX bytes as the vault keeps them. */
  readonly pfx: Uint8Array
  /** Key Vault re-protects an imported PFX with the blank password. */
  readonly password: Redacted.Redacted<string>
}

/** Facts of the private key in a PFX (never its bytes): what Key Vault's import policy states. */
export interface ImportKeyFacts {
  readonly keyType: KeyType
  readonly keySize?: number | undefined
  readonly curve?: Curve | undefined
}

/** What every import states besides its content. */
interface ImportCommon {
  readonly name: string
  readonly tags: Readonly<Record<string, string>>
  /** Whether the key may be exported through the backing secret (default true). */
  readonly exportable?: boolean
  /**
   * The key's type, size and curve, when the caller knows them (the deploy
   * program does, from preflight or the previous material's inspection). An
   * adapter that needs them for the import policy reads them from here and
   * decodes the content only when they are absent. They must be the content's own.
   */
  readonly keyFacts?: ImportKeyFacts | undefined
  /**
   * The content's leaf certificate as the caller read it: its DER and canonical
   * serial (the deploy program states them from preflight). An adapter that
   * reads serials from the certificates the vault returns may take the serial
   * of one that is byte for byte this DER from here instead of parsing it
   * again. They must be the content's own leaf's.
   */
  readonly leaf?: ImportLeaf | undefined
}

/**
 * A PKCS#12 import: the backing secret is served as `application/x-pkcs12` (Key Vault
 * re-protects the PFX with the blank password).
 */
export interface Pkcs12Import extends ImportCommon {
  readonly pfx: Uint8Array
  readonly password: Redacted.Redacted<string>
  readonly pem?: never
}

/**
 * A PEM import: the backing secret is served as `application/x-pem-file`. `pem` is the UTF-8 text
 * of the leaf, its chain (leaf first) and the unencrypted PKCS#8 `PRIVATE KEY`, `\n` line endings
 * (what Key Vault's PEM import takes); the adapter sends it as is, with the policy's content type
 * PEM.
 */
export interface PemImport extends ImportCommon {
  readonly pem: Uint8Array
  readonly pfx?: never
  readonly password?: never
}

/** A new version's content and what the import states: PKCS#12 (`pfx`) or PEM (`pem`). */
export type ImportRequest = Pkcs12Import | PemImport

/** The backing secret's content type an import request writes. */
export const importContentTypeOfRequest = (
  request: ImportRequest,
): "application/x-pkcs12" | "application/x-pem-file" =>
  request.pem !== undefined ? "application/x-pem-file" : "application/x-pkcs12"

/** A certificate's pending operation, as Key Vault reports it. */
export interface CertificateOperation {
  /** `inProgress`, `completed`, `cancelled` or `failed` (Key Vault's words). */
  readonly status: string
  /** The issuer the create named (`Unknown` for a CSR to merge), when given. */
  readonly issuerName: string | undefined
}

/** The leaf certificate of an import, as its caller read it (core's `CertificateFacts` satisfy it). */
export interface ImportLeaf {
  readonly der: Uint8Array
  readonly serialHex: string
}

/** The names used for per-operation metrics and call counts. */
export type VaultOperation =
  | "getLatest"
  | "getVersion"
  | "listVersions"
  | "importVersion"
  | "getVersionSecret"
  | "getDeleted"
  | "recoverDeleted"
  | "listCertificates"
  | "getOperation"

/**
 * What each vault operation does, in an operator's words. Error messages and outcome reasons say
 * these; the port's names stay in metric labels and call counts.
 */
export const vaultOperationWords: Readonly<Record<VaultOperation, string>> = {
  getLatest: "reading the certificate",
  getVersion: "reading a version of the certificate",
  listVersions: "listing the certificate's versions",
  listCertificates: "listing the vault's certificates",
  importVersion: "importing a version",
  getVersionSecret: "reading a version's secret",
  getDeleted: "reading the soft-deleted certificate",
  recoverDeleted: "recovering the soft-deleted certificate",
  getOperation: "reading the certificate's pending operation",
}

/** An operation's words, or its name when it is none of the port's (an adapter's own). */
const operationInWords = (operation: string): string =>
  Object.hasOwn(vaultOperationWords, operation) ? vaultOperationWords[operation as VaultOperation] : operation

const errorFields = {
  operation: Schema.String,
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect()),
  /**
   * True when the adapter already retried the request with backoff (an SDK's retry policy
   * honouring Retry-After): the deploy program then does not retry it again, so there is one
   * retry loop, not one on top of another.
   */
  retried: Schema.optional(Schema.Boolean),
  /**
   * True when the request was never sent: no token could be had for it (the identity provider
   * refused the credential, failed or could not be reached). The call is then not counted in an
   * outcome's `vaultCalls`. (Only the SDK's body-less challenge request, which asks the vault for
   * its tenant before any token, may have reached it.)
   */
  unsent: Schema.optional(Schema.Boolean),
  /**
   * The client's per-request timeout (ms) when the request was abandoned for want of an answer
   * within it: a caller can name the setting that bounds it.
   */
  timedOutAfterMs: Schema.optional(Schema.Number),
}

/** 404: the certificate (or version, or deleted certificate) does not exist. */
export class VaultNotFound extends Schema.TaggedError<VaultNotFound>()("VaultNotFound", {
  ...errorFields,
  /**
   * When the vault answered, by the vault's own clock (its `Date` header: whole seconds, epoch
   * milliseconds), when the adapter knows it. A first deploy compares a soft-deleted
   * certificate's delete time with it (both stamped by the vault).
   */
  answeredAtMs: Schema.optional(Schema.Number),
}) {
  override get message(): string {
    return `${operationInWords(this.operation)}: not found: ${this.detail}`
  }
}

/**
 * 401/403: the identity lacks a permission (RBAC or access policy), its token was refused, or the
 * firewall refused; or no token could be had for the request (the credential was refused).
 */
export class VaultForbidden extends Schema.TaggedError<VaultForbidden>()("VaultForbidden", {
  ...errorFields,
  /** The permission that is missing, when known (for example `secrets/get`). */
  permission: Schema.optional(Schema.String),
  /**
   * What was refused, when known: a `permission` the identity lacks (a grant fixes it), the
   * `token` itself (401: another tenant, another cloud's resource; no grant helps), the
   * client's `network` address (the vault's firewall), or the `credential` (no token could be
   * had: the identity provider refused the secret or federated token, or the credential's
   * source is not available here; nothing reached the vault), or the object itself because it is
   * `disabled` (Key Vault refuses to read a disabled secret or certificate version with 403 even
   * to an identity allowed to read it; enabling it fixes it, no grant does), or the `resource`
   * the vault's challenge asked a token for, which is not the target cloud's keyvault_resource (no
   * token was asked for, nothing reached the vault: the configuration or the vault URL is to fix),
   * or the `tenant`: the vault is in another tenant than the credential's (its challenge names it),
   * and the credential refused to get a token for it (`unsent`) or the vault refused a token of the
   * credential's own tenant (401); an identity of the vault's tenant, or that tenant allowed for a
   * multi-tenant application, is to fix, not a grant or the secret.
   */
  refusal: Schema.optional(
    Schema.Literals(["permission", "token", "network", "credential", "disabled", "resource", "tenant"]),
  ),
}) {
  override get message(): string {
    return `${operationInWords(this.operation)}: forbidden${this.permission === undefined ? "" : ` (needs ${this.permission})`}: ${this.detail}`
  }
}

/** 429: throttled. The request did not take effect. */
export class VaultThrottled extends Schema.TaggedError<VaultThrottled>()("VaultThrottled", {
  ...errorFields,
  retryAfterMs: Schema.optional(Schema.Number),
}) {
  override get message(): string {
    return `${operationInWords(this.operation)}: throttled: ${this.detail}`
  }
}

/** 409: the name belongs to a soft-deleted certificate; it can only be recovered or purged. */
export class VaultConflictSoftDeleted extends Schema.TaggedError<VaultConflictSoftDeleted>()(
  "VaultConflictSoftDeleted",
  errorFields,
) {
  override get message(): string {
    return `${operationInWords(this.operation)}: the name is held by a soft-deleted certificate: ${this.detail}`
  }
}

/** The request may have taken effect (timeout, connection reset, 5xx after the body was sent). */
export class VaultAmbiguous extends Schema.TaggedError<VaultAmbiguous>()("VaultAmbiguous", {
  ...errorFields,
  /**
   * True when the vault answered the write itself 2xx (it took effect or is under way) and only
   * what followed is unknown (a recovery's reads of the recovered certificate, say). Absent when
   * the write's own answer was lost: it may not have taken effect, or another's may have come first.
   */
  accepted: Schema.optional(Schema.Boolean),
}) {
  override get message(): string {
    return `${operationInWords(this.operation)}: outcome unknown: ${this.detail}`
  }
}

/**
 * What to check when the vault's host name does not resolve (a VaultUnavailable's `hostNotFound`):
 * the vault URL names no vault this machine can find (a mistyped vault name, another cloud's vault
 * suffix), or its DNS does not know it. Said alike by the adapter's message and the CLI's fix.
 */
export const hostNotFoundFix =
  "check the vault's name in vault_url for a typo, that it ends with the vault's cloud's vault suffix (.vault.azure.net in Azure's public cloud; a custom cloud's cloud.vault_dns_suffix), and this machine's DNS (a vault behind a private endpoint needs its privatelink zone); `kvdeploy doctor` checks the vault's reachability"

/** The vault could not be reached or answered 5xx before the request was processed. Nothing changed. */
export class VaultUnavailable extends Schema.TaggedError<VaultUnavailable>()("VaultUnavailable", {
  ...errorFields,
  /**
   * True when the connection failed because this client did not accept the vault's TLS
   * certificate (an issuer it does not trust, as a TLS-inspecting proxy's; a name that does not
   * match; an expired certificate): nothing was sent, and retrying as is fails the same way.
   */
  tlsRefused: Schema.optional(Schema.Boolean),
  /**
   * True when the vault's host name did not resolve (ENOTFOUND): nothing was sent, and the vault URL
   * is the likely fix (a mistyped vault name, another cloud's vault suffix), or this machine's DNS.
   */
  hostNotFound: Schema.optional(Schema.Boolean),
}) {
  override get message(): string {
    return `${operationInWords(this.operation)}: unavailable: ${this.detail}`
  }
}

/**
 * The `code` of a VaultRequestRejected when the vault's Azure Policy refused the certificate (a
 * built-in certificate policy assigned with effect Deny: maximum validity, key types or curves,
 * minimum RSA key size, lifetime action triggers). Key Vault answers it 403 `Forbidden` with the
 * inner code `ForbiddenByPolicy` that an access policy's refusal of a missing permission carries
 * too, so its own codes do not tell the two apart; this is the name Azure gives Azure Policy's
 * refusals elsewhere (Resource Manager's `RequestDisallowedByPolicy`). No grant helps: a
 * certificate the assignment allows, or a policy exemption, does.
 */
export const azurePolicyRefusalCode = "RequestDisallowedByPolicy"

/**
 * 400 and other definite refusals (expired certificate, bad PFX, bad parameter; a 409 that refuses
 * every import of the name; the vault's Azure Policy refusing the certificate, 403 with code
 * `azurePolicyRefusalCode`). Nothing changed.
 */
export class VaultRequestRejected extends Schema.TaggedError<VaultRequestRejected>()("VaultRequestRejected", {
  ...errorFields,
  code: Schema.String,
  /**
   * The HTTP status the vault refused the request with (400, 403, 409, …), when it answered one: a
   * 409 (the name is held by a key or secret, an operation is pending, a delete is under way)
   * refuses every import of the name, where a 400 refused this request's content, and a 403 (code
   * `azurePolicyRefusalCode`) this certificate by the vault's Azure Policy.
   */
  status: Schema.optional(Schema.Number),
}) {
  override get message(): string {
    return `${operationInWords(this.operation)}: rejected (${this.code}): ${this.detail}`
  }
}

/**
 * The vault answered, but its answer lacks facts the port reports or contradicts itself (a version
 * without its id, creation time or enabled flag; a certificate whose `x5t` is there without its
 * `cer`; a list whose next page repeats; a secret without its value). Key Vault sends all of them,
 * so a proxy or another service in between is the likely source. A read changed nothing; the
 * answer is not retried (it would come the same way), and nothing is concluded from it.
 */
export class VaultMalformedAnswer extends Schema.TaggedError<VaultMalformedAnswer>()("VaultMalformedAnswer", {
  ...errorFields,
  /**
   * True when a backing secret's value was read, but what it holds cannot be restored from (no
   * PFX, one that does not open with the blank password, a key of none of its certificates, a
   * PEM that cannot be made into a PFX): the rollback then says the secret held no usable
   * previous material. Unset when no value of the secret was read (an answer the SDK failed on,
   * one without a value or whose value is no text, as no answer of Key Vault's is): the rollback
   * says it could not be read.
   */
  unrestorable: Schema.optional(Schema.Boolean),
}) {
  override get message(): string {
    return `${operationInWords(this.operation)}: the vault's answer cannot be used: ${this.detail}`
  }
}

/** The backing secret holds no private key (the key is not exportable). */
export class VaultNoPrivateKey extends Schema.TaggedError<VaultNoPrivateKey>()(
  "VaultNoPrivateKey",
  errorFields,
) {
  override get message(): string {
    return `${operationInWords(this.operation)}: the backing secret holds no private key: ${this.detail}`
  }
}

/** Errors any vault call can fail with besides the ones particular to it. */
export type VaultError =
  | VaultForbidden
  | VaultThrottled
  | VaultAmbiguous
  | VaultUnavailable
  | VaultRequestRejected
  | VaultMalformedAnswer

export class Vault extends Context.Service<
  Vault,
  {
    /** The latest version (what the vault serves). */
    readonly getLatest: (name: string) => Effect.Effect<VaultVersion, VaultNotFound | VaultError>
    readonly getVersion: (
      name: string,
      versionId: string,
    ) => Effect.Effect<VaultVersion, VaultNotFound | VaultError>
    /**
     * Every version, in no order the caller may rely on: Key Vault lists
     * versions by version id and keeps `createdAt` in whole seconds, so
     * versions created within one second cannot be ordered at all. Compare
     * `createdAt` (never list positions) to tell older from newer.
     */
    readonly listVersions: (
      name: string,
    ) => Effect.Effect<ReadonlyArray<VaultVersion>, VaultNotFound | VaultError>
    /**
     * Import a PFX or PEM as a new version, with the policy's content type the request's (see
     * `ImportRequest`); answers the version created.
     */
    readonly importVersion: (
      request: ImportRequest,
    ) => Effect.Effect<VaultVersion, VaultConflictSoftDeleted | VaultError>
    /** The PFX of a version from its backing secret (blank password). */
    readonly getVersionSecret: (
      name: string,
      versionId: string,
    ) => Effect.Effect<VersionSecret, VaultNotFound | VaultNoPrivateKey | VaultError>
    readonly getDeleted: (name: string) => Effect.Effect<DeletedCertificate, VaultNotFound | VaultError>
    /**
     * Recover a soft-deleted certificate; answers its latest version once it is served, and whether
     * this call sent the recovery (none when the vault served the certificate already: another
     * writer recovered it first).
     */
    readonly recoverDeleted: (name: string) => Effect.Effect<RecoveredCertificate, VaultNotFound | VaultError>
    /**
     * One page of the vault's (not soft-deleted) certificates: the first page
     * for `undefined`, else the page `continuation` points at. Optional: the
     * deploy program never lists; a fleet reconciler compares many
     * certificates of one vault with a few pages instead of a read each.
     */
    readonly listCertificates?: (continuation: string | undefined) => Effect.Effect<ListedPage, VaultError>
    /**
     * The certificate's pending operation (a create waiting for its CA, or for the merge of a
     * signed CSR; Key Vault refuses imports while its status is `inProgress`), `undefined` when it
     * has none. Optional: the deploy program never asks; `kvdeploy plan` does, to say that a deploy
     * would be refused.
     */
    readonly getOperation?: (name: string) => Effect.Effect<CertificateOperation | undefined, VaultError>
  }
>()("@kvdeploy/core/Vault") {}

/** Whether a vault call's failure says its request was never sent (no token could be had for it). */
export const wasUnsent = (error: unknown): boolean =>
  typeof error === "object" && error !== null && (error as { readonly unsent?: unknown }).unsent === true

/**
 * Errors after which a read may be retried: transient ones the adapter has not retried already (a
 * TLS certificate the client refused is not transient).
 */
export const isRetriableRead = (error: {
  readonly _tag: string
  readonly retried?: boolean | undefined
  readonly tlsRefused?: boolean | undefined
}): boolean =>
  (error._tag === "VaultThrottled" || error._tag === "VaultUnavailable" || error._tag === "VaultAmbiguous") &&
  error.retried !== true &&
  error.tlsRefused !== true
