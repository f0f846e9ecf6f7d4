/**
 * The metric catalogue: names, help texts and labels. The certctl names are
 * kept so existing dashboards work; `target_type` is always "azure_kv".
 */

export const TARGET_TYPE = "azure_kv"

export interface SeriesSpec {
  readonly name: string
  readonly type: "counter" | "gauge" | "histogram"
  readonly help: string
  readonly labels: ReadonlyArray<string>
}

export const deployAttempts = {
  name: "certctl_deploy_attempts_total",
  type: "counter",
  help: "Deploy attempts, by outcome (succeeded, skipped, rejected, failed, unverified, superseded, rolled_back, rollback_failed).",
  labels: ["target_type", "result"],
} as const satisfies SeriesSpec

export const validateFailures = {
  name: "certctl_deploy_validate_failures_total",
  type: "counter",
  help: "Deploys refused before any write (preflight or ownership), by reason.",
  labels: ["target_type", "reason"],
} as const satisfies SeriesSpec

export const postVerifyFailures = {
  name: "certctl_deploy_post_verify_failures_total",
  type: "counter",
  help: "Deploys whose post-import verification did not prove the new version (unreadable, superseded, mismatch).",
  labels: ["target_type", "reason"],
} as const satisfies SeriesSpec

export const rollbacks = {
  name: "certctl_deploy_rollback_total",
  type: "counter",
  help: "Rollbacks after a failed verification, by outcome (restored or also_failed).",
  labels: ["target_type", "outcome"],
} as const satisfies SeriesSpec

export const idempotentSkips = {
  name: "certctl_deploy_idempotent_skip_total",
  type: "counter",
  help: "Deploys skipped because the vault already served the certificate with kvdeploy's tags.",
  labels: ["target_type"],
} as const satisfies SeriesSpec

export const deployDuration = {
  name: "kvdeploy_deploy_duration_seconds",
  type: "histogram",
  help: "Wall time of a deploy from preflight to outcome, in seconds.",
  labels: [],
} as const satisfies SeriesSpec

/** Buckets of `kvdeploy_deploy_duration_seconds` (a deploy is 3 round trips; retries back off up to seconds). */
export const deployDurationBuckets: ReadonlyArray<number> = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

export const vaultRequests = {
  name: "kvdeploy_vault_requests_total",
  type: "counter",
  help: "Key Vault port calls, one per call whatever the SDK retried, by port operation and status (ok or the error kind).",
  labels: ["operation", "status"],
} as const satisfies SeriesSpec

/**
 * Every HTTP request the Vault adapter's SDK clients send to Key Vault, one per attempt: what the
 * vault counts against its per-vault limits (10 s windows). `kvdeploy_vault_requests_total` keeps
 * counting port calls, one per call whatever the SDK retried, so dashboards built on it are
 * unchanged.
 */
export const vaultHttpRequests = {
  name: "kvdeploy_vault_http_requests_total",
  type: "counter",
  help: "HTTP requests sent to Key Vault, one per attempt (SDK retries, the challenge's first 401, later list pages, poller reads), by operation (read from method and path) and status (HTTP code, its class, or no_response).",
  labels: ["operation", "status"],
} as const satisfies SeriesSpec

export const vaultThrottled = {
  name: "kvdeploy_vault_throttled_total",
  type: "counter",
  help: "Key Vault requests answered with 429 (throttled).",
  labels: [],
} as const satisfies SeriesSpec

export const certificateExpiry = {
  name: "kvdeploy_certificate_expiry_timestamp_seconds",
  type: "gauge",
  help: "notAfter of the certificate the vault serves for a target, as Unix seconds.",
  labels: ["vault_url", "certificate_name"],
} as const satisfies SeriesSpec

export const catalogue: ReadonlyArray<SeriesSpec> = [
  deployAttempts,
  validateFailures,
  postVerifyFailures,
  rollbacks,
  idempotentSkips,
  deployDuration,
  vaultRequests,
  vaultHttpRequests,
  vaultThrottled,
  certificateExpiry,
]
