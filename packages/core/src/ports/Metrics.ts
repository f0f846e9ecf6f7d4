/**
 * The Metrics port: one method per series of the catalogue (see
 * `@kvdeploy/metrics` for names, help texts and labels). The deploy program
 * records the deploy series at every outcome; Vault adapters record the
 * request, HTTP request and throttle series. Metrics adapters decide how to keep the numbers.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { VaultOperation } from "./Vault.js"

/** `result` label of `certctl_deploy_attempts_total`: the outcome in snake case. */
export type DeployResult =
  | "succeeded"
  | "skipped"
  | "rejected"
  | "failed"
  | "unverified"
  | "superseded"
  | "rolled_back"
  | "rollback_failed"

/** `reason` label of `certctl_deploy_validate_failures_total`. */
export type ValidateFailureReason =
  | "material_invalid"
  | "key_mismatch"
  | "chain_invalid"
  | "not_yet_valid"
  | "expired"
  | "unsupported_key"
  | "certificate_name"
  | "tags"
  | "pfx_too_large"
  | "pem_too_large"
  | "not_managed"
  | "previous_key"

/** `reason` label of `certctl_deploy_post_verify_failures_total`. */
export type PostVerifyFailureReason = "unreadable" | "superseded" | "mismatch"

/** `outcome` label of `certctl_deploy_rollback_total`. */
export type RollbackOutcome = "restored" | "also_failed"

/** `status` label of `kvdeploy_vault_requests_total`: `ok` or the error in snake case. */
export type VaultRequestStatus =
  | "ok"
  | "not_found"
  | "forbidden"
  | "no_token"
  | "identity_unavailable"
  | "throttled"
  | "conflict_soft_deleted"
  | "ambiguous"
  | "unavailable"
  | "rejected"
  | "no_private_key"
  | "malformed"

/**
 * `operation` label of `kvdeploy_vault_http_requests_total`: what an HTTP request to Key Vault is,
 * read from its method and path (`GET /certificates/{n}/` is `getLatest`, `GET
 * /certificates/{n}/pending` is `getOperation`, a version list's later page is `listVersions`),
 * named as the port operation that sends it; `other` for any request that is none of them. Never a
 * certificate name or a URL.
 */
export type VaultHttpOperation = VaultOperation | "other"

/**
 * `status` label of `kvdeploy_vault_http_requests_total`: the HTTP status code for the codes Key
 * Vault answers (`VAULT_HTTP_STATUS_CODES`), the class (`2xx` ... `5xx`) of any other code,
 * `no_response` when no answer came (a refused or reset connection, a timeout, an abort), and
 * `other` for a status outside 100-599.
 */
export type VaultHttpStatus =
  | "200"
  | "201"
  | "202"
  | "204"
  | "400"
  | "401"
  | "403"
  | "404"
  | "408"
  | "409"
  | "429"
  | "500"
  | "502"
  | "503"
  | "504"
  | "1xx"
  | "2xx"
  | "3xx"
  | "4xx"
  | "5xx"
  | "no_response"
  | "other"

/** The status codes `kvdeploy_vault_http_requests_total` names one by one (any other is counted by its class). */
export const VAULT_HTTP_STATUS_CODES: ReadonlyArray<number> = [
  200, 201, 202, 204, 400, 401, 403, 404, 408, 409, 429, 500, 502, 503, 504,
]

const namedStatusCodes: ReadonlySet<number> = new Set(VAULT_HTTP_STATUS_CODES)

/** The `status` label of one HTTP attempt: its status code (`undefined`: no answer came). */
export const vaultHttpStatusOf = (status: number | undefined): VaultHttpStatus => {
  if (status === undefined) return "no_response"
  if (namedStatusCodes.has(status)) return String(status) as VaultHttpStatus
  if (Number.isInteger(status) && status >= 100 && status <= 599)
    return `${Math.floor(status / 100)}xx` as VaultHttpStatus
  return "other"
}

export interface CertificateRef {
  readonly vaultUrl: string
  readonly certificateName: string
}

export class Metrics extends Context.Service<
  Metrics,
  {
    readonly deployAttempt: (result: DeployResult) => Effect.Effect<void>
    readonly validateFailure: (reason: ValidateFailureReason) => Effect.Effect<void>
    readonly postVerifyFailure: (reason: PostVerifyFailureReason) => Effect.Effect<void>
    readonly rollback: (outcome: RollbackOutcome) => Effect.Effect<void>
    readonly idempotentSkip: () => Effect.Effect<void>
    readonly deployDuration: (seconds: number) => Effect.Effect<void>
    /** Recorded by Vault adapters (they also see the requests their SDK retries), not by the deploy program. */
    readonly vaultRequest: (operation: VaultOperation, status: VaultRequestStatus) => Effect.Effect<void>
    /** Recorded by Vault adapters for every 429. */
    readonly vaultThrottled: () => Effect.Effect<void>
    /**
     * Recorded by Vault adapters for every HTTP request they send to the vault: each of the SDK's
     * retries, the challenge's first (401) request, a list's later pages and a poller's reads, so
     * the count is what the vault counts against its limits.
     */
    readonly vaultHttpRequest: (operation: VaultHttpOperation, status: VaultHttpStatus) => Effect.Effect<void>
    /** The notAfter of the certificate the vault serves for this target. */
    readonly certificateExpiry: (certificate: CertificateRef, notAfter: Date) => Effect.Effect<void>
    /**
     * The vault serves no certificate for this target (a deploy read none and wrote none): its
     * expiry series, which told what was served before, is removed.
     */
    readonly certificateNotServed: (certificate: CertificateRef) => Effect.Effect<void>
  }
>()("@kvdeploy/core/Metrics") {
  /** Records nothing (for callers that do not want metrics). */
  static readonly layerNoop: Layer.Layer<Metrics> = Layer.succeed(Metrics, {
    deployAttempt: () => Effect.void,
    validateFailure: () => Effect.void,
    postVerifyFailure: () => Effect.void,
    rollback: () => Effect.void,
    idempotentSkip: () => Effect.void,
    deployDuration: () => Effect.void,
    vaultRequest: () => Effect.void,
    vaultThrottled: () => Effect.void,
    vaultHttpRequest: () => Effect.void,
    certificateExpiry: () => Effect.void,
    certificateNotServed: () => Effect.void,
  })
}

/**
 * The `status` label for a vault error: its tag, and where no token could be had (so no request
 * reached the vault) the identity's part: `no_token` for a refused credential rather than
 * `forbidden`, `identity_unavailable` for an identity provider that failed, timed out or could not be
 * reached rather than `unavailable` (which stays the vault's own).
 */
export const vaultRequestStatusOf = (error: {
  readonly _tag: string
  readonly refusal?: string | undefined
  readonly unsent?: boolean | undefined
}): VaultRequestStatus => {
  switch (error._tag) {
    case "VaultNotFound":
      return "not_found"
    case "VaultForbidden":
      return error.refusal === "credential" ||
        error.refusal === "resource" ||
        (error.refusal === "tenant" && error.unsent === true)
        ? "no_token"
        : "forbidden"
    case "VaultThrottled":
      return "throttled"
    case "VaultConflictSoftDeleted":
      return "conflict_soft_deleted"
    case "VaultAmbiguous":
      return "ambiguous"
    case "VaultNoPrivateKey":
      return "no_private_key"
    case "VaultRequestRejected":
      return "rejected"
    case "VaultMalformedAnswer":
      return "malformed"
    default:
      return error.unsent === true ? "identity_unavailable" : "unavailable"
  }
}
