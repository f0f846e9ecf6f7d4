/**
 * One page of the vault's certificate list per call, with its continuation.
 *
 * `CertificateClient.listPropertiesOfCertificates().byPage()` fetches one page
 * per `next()` (the SDK's page iterator is a generator), and takes a page's
 * `nextLink` (absolute) as `continuationToken`. But in
 * `@azure/keyvault-certificates` 4.10.3 the pages it yields carry no
 * `continuationToken`: `mapPagedAsyncIterable` maps each page with
 * `page.map(...)`, which drops the property the generic pager set on the raw
 * array. And a page fetched from a continuation goes out with no options at
 * all (`client.pathUnchecked(nextLink).get()`): no abort signal, no timeout.
 *
 * So a list call runs in an async context (`AsyncLocalStorage`) that a
 * per-call pipeline policy reads: for the vault's certificate list
 * (`GET /certificates`) it sets the call's abort signal and timeout when the
 * request has none, and reads `nextLink` from the page the SDK returns. The
 * policy runs before the SDK's retries, so it sees the answer that counts.
 */
import { AsyncLocalStorage } from "node:async_hooks"
import type { PipelinePolicy, PipelineRequest } from "@azure/core-rest-pipeline"

/** What one listCertificates call hands to the pipeline, and what it reads back. */
export interface CertificateListCall {
  readonly abortSignal: AbortSignal
  readonly timeout: number
  /** Set by the policy when a page came back: its `nextLink`, `undefined` on the last page. */
  page: { readonly nextLink: string | undefined } | undefined
  /** False once the call is over: a context that outlives it (a continuation run inside it) is ignored. */
  open: boolean
}

const listCalls = new AsyncLocalStorage<CertificateListCall>()

/** Run `fetchPage` with `call` as its list context. */
export const inListCall = <A>(call: CertificateListCall, fetchPage: () => Promise<A>): Promise<A> =>
  listCalls.run(call, fetchPage)

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

/** The per-call policy: the list call's signal and timeout on its request, and the page's nextLink for it. */
export const certificateListPolicy: PipelinePolicy = {
  name: certificateListPolicyName,
  async sendRequest(request, next) {
    const call = listCalls.getStore()
    if (call === undefined || !call.open || !isCertificateList(request)) return next(request)
    if (request.abortSignal === undefined) request.abortSignal = call.abortSignal
    if (request.timeout === 0) request.timeout = call.timeout
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
