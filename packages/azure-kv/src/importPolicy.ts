/**
 * The certificate policy kvdeploy puts on every import, and the pipeline
 * policies that put it on the wire.
 *
 * `@azure/keyvault-certificates` 4.9.0–4.10.3 never sends `policy` or
 * `enabled` for `importCertificate`: `index.js` spreads the options into the
 * operation parameters, but `certificateImportParametersSerializer` reads
 * `certificatePolicy` / `certificateAttributes`, which the options never
 * carry. So the adapter hands the policy to the pipeline in a private header,
 * and `importPolicyInjection` (a per-call policy, which runs before the Key
 * Vault challenge policy) merges it into the JSON body and drops the header.
 * The challenge policy withholds the body on a client's first request and puts
 * the same body back for the authorised one, so the merged policy survives.
 *
 * Wire field names are the serializer's (`certificatePolicySerializer` and
 * friends in `dist/esm/models/models.js`): `key_props {exportable, kty,
 * key_size, crv, reuse_key}`, `secret_props {contentType}`, `lifetime_actions
 * [{trigger {lifetime_percentage | days_before_expiry}, action {action_type}}]`,
 * `issuer {name}`, `attributes {enabled}`.
 */
import type { PipelinePolicy, PipelineRequest } from "@azure/core-rest-pipeline"
import type { Curve, ImportKeyFacts, KeyType } from "@kvdeploy/core"

/** Key facts of the certificate being imported (core's `ImportRequest.keyFacts`); the policy's key properties must match them. */
export type { ImportKeyFacts }

/** The policy as Key Vault reads it from the import body (snake_case wire names). */
export interface ImportPolicyWire {
  readonly key_props: {
    readonly exportable: boolean
    readonly kty: KeyType
    readonly key_size?: number
    readonly crv?: Curve
    readonly reuse_key: false
  }
  /** The backing secret's content type: PKCS#12, or PEM for a PEM import (the SDK then sends the text as is). */
  readonly secret_props: { readonly contentType: ImportContentType }
  /** Notify before expiry; never `AutoRenew` (an imported certificate has no issuer to renew from). */
  readonly lifetime_actions: ReadonlyArray<{
    readonly trigger: { readonly lifetime_percentage: number }
    readonly action: { readonly action_type: "EmailContacts" }
  }>
  readonly issuer: { readonly name: "Unknown" }
  readonly attributes: { readonly enabled: true }
}

/** The content types of the secrets kvdeploy imports. */
export type ImportContentType = "application/x-pkcs12" | "application/x-pem-file"

/** The policy kvdeploy imports every version with (the backing secret PKCS#12 unless `contentType` says PEM). */
export const importPolicyFor = (
  key: ImportKeyFacts,
  exportable: boolean,
  contentType: ImportContentType = "application/x-pkcs12",
): ImportPolicyWire => ({
  key_props: {
    exportable,
    kty: key.keyType,
    ...(key.keyType === "RSA" && key.keySize !== undefined ? { key_size: key.keySize } : {}),
    ...(key.keyType === "EC" && key.curve !== undefined ? { crv: key.curve } : {}),
    reuse_key: false,
  },
  secret_props: { contentType },
  lifetime_actions: [{ trigger: { lifetime_percentage: 80 }, action: { action_type: "EmailContacts" } }],
  issuer: { name: "Unknown" },
  attributes: { enabled: true },
})

/** Private header that carries the policy from the adapter to the pipeline; never sent. */
export const importPolicyHeader = "x-kvdeploy-import-policy"

export const importPolicyInjectionName = "kvdeployImportPolicyInjection"
export const nonIdempotentImportName = "kvdeployNonIdempotentImport"
export const throttleObserverName = "kvdeployThrottleObserver"

const importPath = /\/certificates\/[^/?#]+\/import(?:[?#]|$)/

/** A certificate import: POST to `…/certificates/{name}/import` (read from the URL text, not a parsed URL). */
const isImport = (request: PipelineRequest): boolean =>
  request.method === "POST" && importPath.test(request.url)

const recoverPath = /\/deletedcertificates\/[^/?#]+\/recover(?:[?#]|$)/

/** A recovery of a deleted certificate: POST to `…/deletedcertificates/{name}/recover`. */
export const isRecoverRequest = (request: PipelineRequest): boolean =>
  request.method === "POST" && recoverPath.test(request.url)

/**
 * A write whose second sending does not repeat the first's answer: an import (each accepted
 * one adds a version) or a recovery (once it took effect, the name is no longer deleted and a
 * second recover answers 404, which would read as "could not be recovered").
 */
const isNonIdempotentWrite = (request: PipelineRequest): "import" | "recover" | undefined =>
  request.method !== "POST"
    ? undefined
    : importPath.test(request.url)
      ? "import"
      : recoverPath.test(request.url)
        ? "recover"
        : undefined

/** `"policy":…,"attributes":…` for a policy header value (a handful of distinct values per process). */
const bodyFragments = new Map<string, string>()
const bodyFragmentOf = (encoded: string): string => {
  let fragment = bodyFragments.get(encoded)
  if (fragment === undefined) {
    const policy = JSON.parse(Buffer.from(encoded, "base64url").toString("utf8")) as ImportPolicyWire
    fragment = `"policy":${JSON.stringify(policy)},"attributes":${JSON.stringify(policy.attributes)}`
    if (bodyFragments.size >= 64) bodyFragments.clear()
    bodyFragments.set(encoded, fragment)
  }
  return fragment
}

/**
 * The import body with `policy` and `attributes` set. The SDK's body is a
 * JSON object that carries neither (its import bug): the two members are
 * written in front of the others, without parsing and re-serialising the body
 * (it holds the whole PFX in base64). Should the body hold `"policy"` or
 * `"attributes"` anywhere (a fixed SDK sending them, a tag of that name or
 * value; inside a longer JSON string the quotes would be escaped), it is
 * parsed instead and the two members replaced, so no key is ever sent twice.
 */
export const withImportPolicy = (body: string, encodedPolicy: string): string => {
  const fragment = bodyFragmentOf(encodedPolicy)
  if (body.startsWith("{") && !body.includes('"policy"') && !body.includes('"attributes"')) {
    const rest = body.slice(1).trimStart()
    return rest.startsWith("}") ? `{${fragment}${rest}` : `{${fragment},${rest}`
  }
  const parsed = JSON.parse(body) as Record<string, unknown>
  const policy = JSON.parse(`{${fragment}}`) as { policy: ImportPolicyWire; attributes: unknown }
  parsed.policy = policy.policy
  parsed.attributes = policy.attributes
  return JSON.stringify(parsed)
}

/**
 * Per-call policy: moves the policy from the private header into the import
 * body (`policy`, `attributes`). Runs once per operation, before the Key Vault
 * challenge policy and the retry policy.
 */
export const importPolicyInjection: PipelinePolicy = {
  name: importPolicyInjectionName,
  sendRequest(request, next) {
    const encoded = request.headers.get(importPolicyHeader)
    if (encoded !== undefined) {
      request.headers.delete(importPolicyHeader)
      if (isImport(request) && typeof request.body === "string")
        request.body = withImportPolicy(request.body, encoded)
    }
    return next(request)
  },
}

/** Error code of an import whose outcome is unknown; the retry policy never retries it. */
export const outcomeUnknownCode = "KVDEPLOY_IMPORT_OUTCOME_UNKNOWN"

/**
 * TLS errors of a server certificate this client did not accept (Node's codes: its own for a name
 * that does not match, OpenSSL's verify results for the rest): an issuer it does not trust, a
 * signature or a chain that fails, outside its validity. The connection closed before the request
 * was sent, and sending it again fails the same way.
 */
export const tlsRefusedCodes: ReadonlySet<string> = new Set([
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "HOSTNAME_MISMATCH",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERROR_IN_CERT_NOT_BEFORE_FIELD",
  "ERROR_IN_CERT_NOT_AFTER_FIELD",
  "CERT_CHAIN_TOO_LONG",
  "CERT_REVOKED",
  "INVALID_CA",
  "PATH_LENGTH_EXCEEDED",
  "INVALID_PURPOSE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
])

/** Network error codes meaning the request never reached the server: nothing changed. */
export const neverSentCodes: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  ...tlsRefusedCodes,
])

/**
 * Thrown for an import whose outcome is unknown. It is not a RestError, so the
 * SDK's retry policy (which retries 5xx responses and ECONNRESET/ETIMEDOUT)
 * rethrows it at once instead of sending the import again.
 */
export class ImportOutcomeUnknown extends Error {
  readonly code = outcomeUnknownCode
  readonly statusCode: number | undefined
  readonly networkCode: string | undefined
  constructor(message: string, statusCode: number | undefined, networkCode: string | undefined) {
    super(message)
    this.name = "ImportOutcomeUnknown"
    this.statusCode = statusCode
    this.networkCode = networkCode
  }
}

/**
 * Per-retry policy (innermost, after signing, once per attempt): an import is
 * not idempotent — every accepted import adds a version — and a recovery's
 * second sending answers 404 once the first took effect, so an attempt that
 * may have reached the vault (connection reset or timed out after sending,
 * 408 or 5xx answer) must not be sent again. Only 429 (Key Vault does not
 * process a throttled request) and errors from before the request was sent go
 * back to the SDK's retry strategies. The deploy program reconciles an unknown
 * outcome (the version list after an import, the certificate after a
 * recovery) instead of sending it again.
 */
export const nonIdempotentImport: PipelinePolicy = {
  name: nonIdempotentImportName,
  async sendRequest(request, next) {
    const write = isNonIdempotentWrite(request)
    // The challenge's first attempt (no Authorization header; an import's body withheld) is
    // refused with 401 whatever it carries: nothing it could do needs guarding.
    if (
      write === undefined ||
      !request.headers.has("authorization") ||
      (write === "import" && (request.body === null || request.body === undefined))
    )
      return next(request)
    try {
      const response = await next(request)
      if (response.status >= 500 || response.status === 408) {
        let code = ""
        try {
          const parsed = JSON.parse(response.bodyAsText ?? "") as {
            error?: { code?: unknown; message?: unknown }
          }
          code = typeof parsed.error?.code === "string" ? ` ${parsed.error.code}` : ""
        } catch {
          // not JSON: keep the status alone
        }
        throw new ImportOutcomeUnknown(
          `the vault answered ${response.status}${code} after the ${write} was sent`,
          response.status,
          undefined,
        )
      }
      return response
    } catch (error) {
      if (error instanceof Error && error.name === "RestError") {
        const code = (error as Error & { code?: string }).code
        const statusCode = (error as Error & { statusCode?: number }).statusCode
        if (statusCode === undefined && code !== undefined && neverSentCodes.has(code)) throw error
        if (statusCode === undefined) {
          throw new ImportOutcomeUnknown(
            `the connection failed after the ${write} was sent (${code ?? "no code"}: ${error.message})`,
            undefined,
            code,
          )
        }
      }
      if (error instanceof Error && error.name === "AbortError") {
        throw new ImportOutcomeUnknown(
          `the ${write} was aborted after it was sent (${error.message})`,
          undefined,
          "ABORTED",
        )
      }
      throw error
    }
  },
}

/** Per-retry policy that reports every 429 the vault sends, including those the SDK retries. */
export const throttleObserver = (onThrottled: () => void): PipelinePolicy => ({
  name: throttleObserverName,
  async sendRequest(request, next) {
    const response = await next(request)
    if (response.status === 429) onThrottled()
    return response
  },
})
