/**
 * One token request for many callers. A fleet's first requests to a vault
 * all meet Key Vault's 401 challenge at once, and each asks the credential
 * for a token: the credential library fetches one per caller until its cache
 * is filled (64 concurrent deployments: 64 token requests to Entra ID, and
 * as many keep-alive connections that stay open). Callers asking for the
 * same token while a request for it is in flight share that request.
 *
 * Shared: same scopes, claims, tenant and CAE setting; never a proof-of-
 * possession token (bound to one request). A caller's abort signal ends its
 * own wait only (the request goes on for the others), and forgets the
 * request, so that a hung token request is not joined by later callers.
 */
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth"

const abortError = (): Error => {
  const e = new Error("The token request was aborted.")
  e.name = "AbortError"
  return e
}

export const shareTokenRequests = (credential: TokenCredential): TokenCredential => {
  const inFlight = new Map<string, Promise<AccessToken | null>>()
  return {
    getToken: (scopes, options?: GetTokenOptions) => {
      if (options?.proofOfPossessionOptions !== undefined) return credential.getToken(scopes, options)
      const key = JSON.stringify([
        typeof scopes === "string" ? [scopes] : scopes,
        options?.claims ?? null,
        options?.tenantId ?? null,
        options?.enableCae ?? null,
      ])
      let shared = inFlight.get(key)
      if (shared === undefined) {
        const { abortSignal: _own, ...rest } = options ?? {}
        const request = credential.getToken(scopes, rest).finally(() => {
          if (inFlight.get(key) === request) inFlight.delete(key)
        })
        inFlight.set(key, request)
        shared = request
      }
      const signal = options?.abortSignal
      if (signal === undefined) return shared
      if (signal.aborted) return Promise.reject(abortError())
      const request = shared
      return new Promise<AccessToken | null>((resolve, reject) => {
        const onAbort = () => {
          if (inFlight.get(key) === request) inFlight.delete(key)
          reject(abortError())
        }
        signal.addEventListener("abort", onAbort)
        request.then(
          (token) => {
            signal.removeEventListener("abort", onAbort)
            resolve(token)
          },
          (e: unknown) => {
            signal.removeEventListener("abort", onAbort)
            reject(e)
          },
        )
      })
    },
  }
}
