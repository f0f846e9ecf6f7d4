/**
 * What one port call hands to the adapter's pipeline policies, and what they tell it back.
 *
 * Some of a call's requests go out without the options the adapter gave the SDK: in
 * `@azure/keyvault-certificates` 4.10.3 a list's later pages (of the vault's certificates and of
 * a certificate's versions alike) are fetched with `client.pathUnchecked(nextLink).get()` and no
 * options at all, so with no abort signal and no timeout: a page the vault (or a proxy) never
 * answers would hold the call for good. And some facts of a call's answers the SDK does not hand
 * back: a certificate list page's `nextLink` (see certificateListPage.ts), and whether the
 * recovery's POST was answered before the SDK's recover poller failed reading the certificate.
 *
 * So such a call runs in an async context (`AsyncLocalStorage`) that the per-call policy
 * `vaultCallPolicy` reads: it puts the call's abort signal and timeout on every request of the
 * call that has none, and notes a recovery the vault accepted. A per-call policy runs before the
 * SDK's retries and the Key Vault challenge, so it sees the answer that counts.
 */
import { AsyncLocalStorage } from "node:async_hooks"
import type { PipelinePolicy } from "@azure/core-rest-pipeline"
import { isRecoverRequest } from "./importPolicy.js"

/** One port call as its pipeline policies see it. */
export interface VaultCall {
  readonly abortSignal: AbortSignal
  /** The per-request timeout (ms) for requests the SDK sends without one. */
  readonly timeout: number
  /** False once the call is over: a context that outlives it (a continuation run inside it) is ignored. */
  open: boolean
  /** A certificate list call: set when a page came back, its `nextLink` (`undefined` on the last page). */
  page: { readonly nextLink: string | undefined } | undefined
  /**
   * The status (2xx) the vault answered the call's recover POST with: from then on the recovery
   * has taken effect (or is under way), whatever fails after it.
   */
  recoveryAccepted: number | undefined
}

const vaultCalls = new AsyncLocalStorage<VaultCall>()

/** A new call's context: `abortSignal` and `timeout` for its requests that carry none. */
export const vaultCall = (abortSignal: AbortSignal, timeout: number): VaultCall => ({
  abortSignal,
  timeout,
  open: true,
  page: undefined,
  recoveryAccepted: undefined,
})

/** Run `send` (the call's SDK calls) with `call` as its context; the context is closed when it ends. */
export const inVaultCall = async <A>(call: VaultCall, send: () => Promise<A>): Promise<A> => {
  try {
    return await vaultCalls.run(call, send)
  } finally {
    call.open = false
  }
}

/** The open call the current request belongs to, if any. */
export const currentVaultCall = (): VaultCall | undefined => {
  const call = vaultCalls.getStore()
  return call?.open === true ? call : undefined
}

export const vaultCallPolicyName = "kvdeployVaultCall"

/** The per-call policy: the call's signal and timeout on a request without them; a recovery's acceptance noted. */
export const vaultCallPolicy: PipelinePolicy = {
  name: vaultCallPolicyName,
  async sendRequest(request, next) {
    const call = currentVaultCall()
    if (call === undefined) return next(request)
    if (request.abortSignal === undefined) request.abortSignal = call.abortSignal
    if (request.timeout === 0) request.timeout = call.timeout
    const response = await next(request)
    if (response.status >= 200 && response.status < 300 && isRecoverRequest(request))
      call.recoveryAccepted = response.status
    return response
  },
}
