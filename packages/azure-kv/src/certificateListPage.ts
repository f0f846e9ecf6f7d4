/**
 * One page of the vault's certificate list per call, with its continuation.
 *
 * `CertificateClient.listPropertiesOfCertificates().byPage()` fetches one page
 * per `next()` (the SDK's page iterator is a generator), and takes a page's
 * `nextLink` (absolute) as `continuationToken`. But in
 * `@azure/keyvault-certificates` 4.10.3 the pages it yields carry no
 * `continuationToken`: `mapPagedAsyncIterable` maps each page with
 * `page.map(...)`, which drops the property the generic pager set on the raw
 * array. (A page fetched from a continuation also goes out with no options at
 * all; the call's context gives it the call's abort signal and timeout, see
 * vaultCall.ts.)
 *
 * So a list call runs in a port call's context (vaultCall.ts), and a per-call
 * pipeline policy reads `nextLink` from the vault's certificate list page
 * (`GET /certificates`) the SDK returns, for that call. The policy runs before
 * the SDK's retries, so it sees the answer that counts.
 */
import type { PipelinePolicy, PipelineRequest } from "@azure/core-rest-pipeline"
import { currentVaultCall } from "./vaultCall.js"

export const certificateListPolicyName = "kvdeployCertificateListPage"

/** The vault's certificate list: GET `/certificates` (the SDK takes a vault URL without a path). */
const isCertificateList = (request: PipelineRequest): boolean => {
  if (request.method !== "GET") return false
  const path = new URL(request.url).pathname
  return path === "/certificates" || path === "/certificates/"
}

const nextLinkOf = (bodyText: string | undefined | null): string | undefined => {
  if (bodyText === undefined || bodyText === null) return undefined
  const body = JSON.parse(bodyText) as { readonly nextLink?: unknown }
  return typeof body.nextLink === "string" && body.nextLink !== "" ? body.nextLink : undefined
}

/** The per-call policy: a certificate list page's nextLink, for the call it belongs to. */
export const certificateListPolicy: PipelinePolicy = {
  name: certificateListPolicyName,
  async sendRequest(request, next) {
    const call = currentVaultCall()
    if (call === undefined || !isCertificateList(request)) return next(request)
    const response = await next(request)
    if (response.status === 200) call.page = { nextLink: nextLinkOf(response.bodyAsText) }
    return response
  },
}

/**
 * Whether `continuation` is a page link of this vault's certificate list (an
 * absolute URL on the vault's origin, path `/certificates`). Anything else is
 * refused before a request: the SDK would send the vault's token wherever it points.
 */
export const isContinuationOf = (vaultOrigin: string, continuation: string): boolean => {
  let url: URL
  try {
    url = new URL(continuation)
  } catch {
    return false
  }
  return (
    url.origin === vaultOrigin &&
    (url.pathname === "/certificates" || url.pathname === "/certificates/") &&
    url.username === "" &&
    url.password === ""
  )
}
