/**
 * Every HTTP request the adapter's SDK clients send to Key Vault, counted for
 * `kvdeploy_vault_http_requests_total{operation,status}`.
 *
 * A port call is one Key Vault request when all goes well, but the vault sees more: the SDK's
 * retries (429/503 with Retry-After, 408, 5xx, a reset connection; up to 4 attempts with the
 * default 3 retries), the challenge's first request (sent without a token, answered 401, on a
 * client's first call), a version list's later pages, and the reads of the SDK's pollers (the
 * recover poller reads the certificate until it is served; `getCertificateOperation` reads the
 * latest certificate besides the pending operation). A per-retry pipeline policy runs once per
 * attempt, after the retry policy and the challenge policy, so it sees each of them.
 *
 * Labels stay bounded: the operation is read from the request's method and path (a port
 * operation's name, or `other`), never a certificate name or URL; the status is core's
 * `vaultHttpStatusOf` (a named code, a class, `no_response`).
 */
import { isRestError, type PipelinePolicy, type PipelineRequest } from "@azure/core-rest-pipeline"
import { type VaultHttpOperation, type VaultHttpStatus, vaultHttpStatusOf } from "@kvdeploy/core"

export const httpRequestObserverName = "kvdeployHttpRequestObserver"

/**
 * The port operation a Key Vault request belongs to, from its method and path (the SDK takes a
 * vault URL without a path, so the path starts at the collection):
 *
 * | request | operation |
 * | --- | --- |
 * | `GET /certificates` | `listCertificates` |
 * | `GET /certificates/{n}` or `/certificates/{n}/` | `getLatest` |
 * | `GET /certificates/{n}/versions` (every page) | `listVersions` |
 * | `GET /certificates/{n}/pending` | `getOperation` |
 * | `GET /certificates/{n}/{v}` | `getVersion` |
 * | `POST /certificates/{n}/import` | `importVersion` |
 * | `GET /secrets/{n}/{v}` | `getVersionSecret` |
 * | `GET /deletedcertificates/{n}` | `getDeleted` |
 * | `POST /deletedcertificates/{n}/recover` | `recoverDeleted` |
 *
 * Anything else (a policy read, a request this adapter never sends) is `other`.
 */
export const vaultHttpOperationOf = (method: string, url: string): VaultHttpOperation => {
  let path: string
  try {
    path = new URL(url).pathname
  } catch {
    return "other"
  }
  const segments = path.split("/").slice(1)
  // A trailing slash ("latest": `/certificates/{n}/`) leaves an empty last segment.
  if (segments.length > 1 && segments[segments.length - 1] === "") segments.pop()
  const [collection = "", name, sub, rest] = segments.map((s) => s.toLowerCase())
  const verb = method.toUpperCase()
  if (rest !== undefined || (name !== undefined && name === "")) return "other"
  switch (collection) {
    case "certificates":
      if (name === undefined) return verb === "GET" ? "listCertificates" : "other"
      if (sub === undefined) return verb === "GET" ? "getLatest" : "other"
      if (sub === "import") return verb === "POST" ? "importVersion" : "other"
      if (verb !== "GET") return "other"
      if (sub === "versions") return "listVersions"
      if (sub === "pending") return "getOperation"
      return sub === "policy" ? "other" : "getVersion"
    case "secrets":
      return verb === "GET" && name !== undefined ? "getVersionSecret" : "other"
    case "deletedcertificates":
      if (name === undefined) return "other"
      if (sub === undefined) return verb === "GET" ? "getDeleted" : "other"
      return sub === "recover" && verb === "POST" ? "recoverDeleted" : "other"
    default:
      return "other"
  }
}

/** A request's operation label (see `vaultHttpOperationOf`). */
const operationOf = (request: PipelineRequest): VaultHttpOperation =>
  vaultHttpOperationOf(request.method, request.url)

/**
 * Per-retry policy (the innermost: added after the adapter's other per-retry policies, so it sees
 * the vault's answer before any of them turns it into an error) that reports every attempt with
 * its operation and status. An attempt that gets no answer (a refused or reset connection, a
 * timeout, an abort) is `no_response`.
 */
export const httpRequestObserver = (
  onRequest: (operation: VaultHttpOperation, status: VaultHttpStatus) => void,
): PipelinePolicy => ({
  name: httpRequestObserverName,
  async sendRequest(request, next) {
    const operation = operationOf(request)
    let status: number | undefined
    try {
      const response = await next(request)
      status = response.status
      return response
    } catch (error) {
      status = isRestError(error) ? error.response?.status : undefined
      throw error
    } finally {
      onRequest(operation, vaultHttpStatusOf(status))
    }
  },
})
