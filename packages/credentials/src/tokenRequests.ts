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
 *
 * A shared request has a time limit (`timeoutMs`: the agent's request
 * timeout; the CLI's 30 s, 90 s where a managed identity endpoint may answer):
 * the credential library sets none of its own on token requests, and honours
 * an identity endpoint's Retry-After however long it is. Without one, a token
 * endpoint that accepts the connection and never answers would hold every
 * waiting deployment of that identity (and their permits), or a CLI command,
 * for good. The limit covers the whole request, the library's own retries
 * included (IMDS's 410s while a managed identity is set up: about 70 s). When
 * it runs out, the waiters fail with an error that says so, the request is
 * forgotten (the next caller starts a new one) and told to abort; the library
 * does not pass that on to a managed identity's requests, which then go on in
 * the background until its own retries end.
 */
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth"
import type { ResolvedCredential } from "./credential.js"
import { TokenRequestTimedOut } from "./tokenErrors.js"

const abortError = (): Error => {
  const e = new Error("The token request was aborted.")
  e.name = "AbortError"
  return e
}

export interface ShareTokenRequestsOptions {
  /** How long a shared token request may take before its waiters fail (ms). */
  readonly timeoutMs: number
  /** The setting that changes `timeoutMs`, named in the error (e.g. `agent.request_timeout_seconds`). */
  readonly setting?: string | undefined
}

/** The CLI's limit on a token request, as on each vault request (@kvdeploy/azure-kv's default). */
export const defaultTokenRequestTimeoutMs = 30_000

/**
 * The CLI's limit where a managed identity endpoint may answer (`managed_identity`, `default`):
 * @azure/identity retries IMDS's 410 (a managed identity being set up) for about 70 s.
 */
export const managedIdentityTokenRequestTimeoutMs = 90_000

const timedOut = (options: ShareTokenRequestsOptions): Error =>
  new TokenRequestTimedOut(options.timeoutMs, options.setting)

export const shareTokenRequests = (
  credential: TokenCredential,
  options: ShareTokenRequestsOptions,
): TokenCredential => {
  const inFlight = new Map<string, Promise<AccessToken | null>>()
  return {
    getToken: (scopes, getTokenOptions?: GetTokenOptions) => {
      if (getTokenOptions?.proofOfPossessionOptions !== undefined)
        return credential.getToken(scopes, getTokenOptions)
      const key = JSON.stringify([
        typeof scopes === "string" ? [scopes] : scopes,
        getTokenOptions?.claims ?? null,
        getTokenOptions?.tenantId ?? null,
        getTokenOptions?.enableCae ?? null,
      ])
      const signal = getTokenOptions?.abortSignal
      // Aborted already: no request is started (one nobody waits for would fail unheard).
      if (signal?.aborted === true) return Promise.reject(abortError())
      let shared = inFlight.get(key)
      if (shared === undefined) {
        const { abortSignal: _own, ...rest } = getTokenOptions ?? {}
        const controller = new AbortController()
        // A credential that throws at once (not through its promise) fails this call alone, before
        // any timer is set.
        const call = credential.getToken(scopes, { ...rest, abortSignal: controller.signal })
        let timer: NodeJS.Timeout | undefined
        const limit = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            if (inFlight.get(key) === request) inFlight.delete(key)
            controller.abort()
            reject(timedOut(options))
          }, options.timeoutMs)
          timer.unref()
        })
        const request: Promise<AccessToken | null> = Promise.race([call, limit]).finally(() => {
          clearTimeout(timer)
          if (inFlight.get(key) === request) inFlight.delete(key)
        })
        // Its failure reaches every waiter through their own handlers; once they have all stopped
        // waiting (aborted), nobody is left to hear it, and an unheard rejection ends the process.
        request.catch(() => undefined)
        inFlight.set(key, request)
        shared = request
      }
      if (signal === undefined) return shared
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

/**
 * A resolved credential whose token requests share and have the CLI's limit: 30 s
 * (`defaultTokenRequestTimeoutMs`, as each vault request's), or 90 s where a managed identity
 * endpoint may answer (`managedIdentityTokenRequestTimeoutMs`); a command never waits for a token
 * for good.
 */
export const withTokenTimeLimit = <R extends ResolvedCredential>(resolved: R): R => ({
  ...resolved,
  credential: shareTokenRequests(resolved.credential, {
    timeoutMs:
      resolved.identity.mode === "managed_identity" || resolved.identity.mode === "default"
        ? managedIdentityTokenRequestTimeoutMs
        : defaultTokenRequestTimeoutMs,
  }),
})
