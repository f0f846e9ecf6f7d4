/**
 * A 404 to a read of a certificate's latest version (every first deploy reads
 * the snapshot, and the vault has none yet) as a RestError without a stack.
 *
 * The SDK's deserialiser answers a non-200 with `createRestError`, whose
 * `Error` constructor captures a stack trace: profiled, the RestError built for
 * that 404 was the single costliest frame of a first deploy's reads (~40 us of
 * main-thread CPU each). The stack would show the SDK's deserialiser, and
 * nothing keeps it (`toVaultError` keeps the status, codes and request id).
 *
 * This per-call policy sees the response before the deserialiser and throws the
 * same RestError the deserialiser would (same class, message, code, status,
 * request, response headers and `details`), built with `Error.stackTraceLimit`
 * 0. The request was sent once, as before; only the 404 of a Key Vault error
 * body takes this path (any other answer goes to the SDK unchanged).
 */
import { type PipelinePolicy, type PipelineRequest, RestError } from "@azure/core-rest-pipeline"

export const latestNotFoundName = "kvdeployLatestNotFound"

/** GET `…/certificates/{name}/` (the latest version: an empty version segment), from the URL text. */
const latestPath = /\/certificates\/[^/?#]+\/(?:[?#]|$)/

const isLatestRead = (request: PipelineRequest): boolean =>
  request.method === "GET" && latestPath.test(request.url)

interface KeyVaultErrorBody {
  readonly code?: unknown
  readonly message?: unknown
  readonly innererror?: unknown
}

/** `details` as the SDK sets it (its keyVaultErrorDeserializer: `innererror` read as `innerError`). */
interface ErrorDetails {
  readonly code: unknown
  readonly message: unknown
  readonly innerError: ErrorDetails | undefined | null | unknown
}

const detailsOf = (error: KeyVaultErrorBody): ErrorDetails => ({
  code: error.code,
  message: error.message,
  innerError: !error.innererror ? error.innererror : detailsOf(error.innererror as KeyVaultErrorBody),
})

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
  const error = (parsed as { error?: unknown } | null)?.error as KeyVaultErrorBody | undefined
  if (error === null || typeof error !== "object") return undefined
  if (typeof error.message !== "string" || typeof error.code !== "string") return undefined
  return { message: error.message, code: error.code, details: { error: detailsOf(error) } }
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
    let restError: RestError
    try {
      restError = new RestError(error.message, {
        statusCode: 404,
        code: error.code,
        request: response.request,
        // The deserialiser's error response: headers, request and status (its body was parsed, so no bodyAsText).
        response: { headers: response.headers, request: response.request, status: 404 },
      })
    } finally {
      Error.stackTraceLimit = limit
    }
    restError.details = error.details
    throw restError
  },
}
