/**
 * A 404 to a read of a certificate's latest version (every first deploy reads
 * the snapshot, and the vault has none yet), answered without the SDK's error.
 *
 * The SDK's deserialiser answers a non-200 with `createRestError`: a RestError
 * whose constructor captures a stack trace, defines three properties and sets
 * its prototype again. Profiled, it was the single costliest frame of a first
 * deploy's reads (~42 us of main-thread CPU each in a cold pass; ~18 us still
 * with the stack capture off). Nothing keeps it: `toVaultError` keeps the
 * status, codes and request id.
 *
 * This per-call policy sees the response before the deserialiser and throws a
 * `LatestNotFound` with those facts (the Key Vault error's message, code and
 * inner code, the request id and any retry-after), built without a stack.
 * `describeFailure` reads it as it reads the SDK's RestError, so the read maps
 * to the same `VaultNotFound`. The request was sent once, as before; only a
 * 404 with a Key Vault error body takes this path (any other answer goes to the
 * SDK unchanged). The SDK's own callers of that read (the recover poller) look
 * at `statusCode` only, which this error has.
 */
import type { HttpHeaders, PipelinePolicy, PipelineRequest } from "@azure/core-rest-pipeline"

/** A 404 to the latest read, with the facts of its Key Vault error (no request, no body). */
export class LatestNotFound extends Error {
  readonly statusCode = 404
  readonly code: string
  readonly innerCode: string | undefined
  readonly headers: HttpHeaders
  constructor(fields: {
    readonly message: string
    readonly code: string
    readonly innerCode: string | undefined
    readonly headers: HttpHeaders
  }) {
    super(fields.message)
    this.name = "LatestNotFound"
    this.code = fields.code
    this.innerCode = fields.innerCode
    this.headers = fields.headers
  }
}

export const latestNotFoundName = "kvdeployLatestNotFound"

/** GET `…/certificates/{name}/` (the latest version: an empty version segment), from the URL text. */
const latestPath = /\/certificates\/[^/?#]+\/(?:[?#]|$)/

const isLatestRead = (request: PipelineRequest): boolean =>
  request.method === "GET" && latestPath.test(request.url)

/**
 * The Key Vault error object of a 404 body, when the SDK would read its
 * message and code from it: a JSON object (no text/plain content type) whose
 * `error` is an object with a string `message` and a string `code`. Anything
 * else is left to the SDK.
 */
const keyVaultErrorOf = (contentType: string | undefined, body: string | undefined) => {
  if (body === undefined || body === "" || (contentType ?? "").split(";")[0] === "text/plain")
    return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    return undefined
  }
  const error = (parsed as { error?: unknown } | null)?.error as
    | {
        readonly code?: unknown
        readonly message?: unknown
        readonly innererror?: { readonly code?: unknown }
      }
    | null
    | undefined
  if (error === null || typeof error !== "object") return undefined
  if (typeof error.message !== "string" || typeof error.code !== "string") return undefined
  // The inner code as the SDK reads it (its deserialiser's `details.error.innerError.code`).
  const inner = error.innererror ? error.innererror.code : undefined
  return {
    message: error.message,
    code: error.code,
    innerCode: typeof inner === "string" ? inner : undefined,
  }
}

export const latestNotFound: PipelinePolicy = {
  name: latestNotFoundName,
  async sendRequest(request, next) {
    const response = await next(request)
    if (response.status !== 404 || !isLatestRead(request)) return response
    const error = keyVaultErrorOf(response.headers.get("content-type"), response.bodyAsText ?? undefined)
    if (error === undefined) return response
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      throw new LatestNotFound({ ...error, headers: response.headers })
    } finally {
      Error.stackTraceLimit = limit
    }
  },
}
