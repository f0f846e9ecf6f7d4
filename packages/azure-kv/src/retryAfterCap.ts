/**
 * A bound on how long the SDK's retry policy waits on a Retry-After.
 *
 * The throttling retry strategy of @azure/core-rest-pipeline waits whatever a 429 or 503 answer's
 * Retry-After (or retry-after-ms, x-ms-retry-after-ms) says, with no upper limit, up to its
 * retries' count, and that wait is outside each request's timeout: a proxy or an appliance that
 * answered `503 Retry-After: 3600` would hold one deploy for hours. Key Vault's own throttling
 * asks for seconds. This per-retry policy, the outermost (the retry policy sees what it returns,
 * the observers inside it the vault's own answer), takes a wait beyond `maxMs` off the answer the
 * retry policy reads and keeps it under `overCapHeader`, so the failure still says what the vault
 * asked for: a 429 then fails at once (the SDK retries a 429 only on a Retry-After), and a 503 is
 * retried on the SDK's own exponential backoff (bounded by its `maxRetryDelayInMs`).
 */
import type { PipelinePolicy } from "@azure/core-rest-pipeline"

export const retryAfterCapName = "kvdeployRetryAfterCap"

/** The header that keeps a wait taken off an answer, in milliseconds (read by vaultFailure.ts). */
export const overCapHeader = "x-kvdeploy-retry-after-over-cap-ms"

/** The default bound: a minute, well above the seconds Key Vault's throttling asks for. */
export const defaultMaxRetryAfterMs = 60_000

const retryAfterHeaders = [
  ["retry-after-ms", 1],
  ["x-ms-retry-after-ms", 1],
  ["retry-after", 1000],
] as const

/**
 * The wait an answer asks for, in milliseconds, read as the SDK's throttling strategy reads it
 * (an empty header is none; only Retry-After may be a date). A wait this policy took off the
 * answer (`overCapHeader`) is the one it asked for.
 */
export const retryAfterMsOf = (
  headers: { get(name: string): string | undefined } | undefined,
): number | undefined => {
  if (headers === undefined) return undefined
  const overCap = Number(headers.get(overCapHeader) ?? Number.NaN)
  if (Number.isFinite(overCap)) return overCap
  for (const [name, factor] of retryAfterHeaders) {
    const raw = headers.get(name)
    if (raw === undefined || raw.trim() === "") continue
    const n = Number(raw)
    if (Number.isFinite(n)) return n * factor
    if (name !== "retry-after") continue
    const date = Date.parse(raw)
    if (Number.isFinite(date)) return Math.max(0, date - Date.now())
  }
  return undefined
}

export const retryAfterCap = (maxMs: number): PipelinePolicy => ({
  name: retryAfterCapName,
  async sendRequest(request, next) {
    const response = await next(request)
    if (response.status !== 429 && response.status !== 503) return response
    const asked = retryAfterMsOf(response.headers)
    if (asked === undefined || asked <= maxMs) return response
    for (const [name] of retryAfterHeaders) response.headers.delete(name)
    response.headers.set(overCapHeader, String(Math.ceil(asked)))
    return response
  },
})
