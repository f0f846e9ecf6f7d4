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
 * timeout, the CLI's 30 s): the credential library sets none of its own on
 * token requests, and honours an identity endpoint's Retry-After however long
 * it is. Without one, a token endpoint that accepts the connection and never
 * answers would hold every waiting deployment of that identity (and their
 * permits), or a CLI command, for good. The limit covers the whole request,
 * the library's own retries included. When it runs out, the request is
 * aborted and forgotten and its waiters fail with an error that says so; the
 * next caller starts a new request.
 */
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth"
import type { ResolvedCredential } from "./credential.js"

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
 * Named as @azure/identity names a credential that cannot get a token, and carrying ETIMEDOUT, so
 * the Vault adapter reads it as what it is: no token, nothing sent to the vault, the identity
 * endpoint not answering (unavailable for now), not an import that may have taken effect.
 */
export class TokenRequestTimedOut extends Error {
  readonly code = "ETIMEDOUT"
  constructor(
    readonly timeoutMs: number,
    setting: string | undefined,
  ) {
    super(
      `the token request got no answer within ${timeoutMs} ms (ETIMEDOUT${setting === undefined ? "" : `; ${setting}`}), the identity library's own retries included; check that the identity endpoint (Entra ID, IMDS or the App Service identity endpoint) is reachable and answering`,
    )
    this.name = "CredentialUnavailableError"
  }
}

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
        let timer: NodeJS.Timeout | undefined
        const limit = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            if (inFlight.get(key) === request) inFlight.delete(key)
            controller.abort()
            reject(timedOut(options))
          }, options.timeoutMs)
          timer.unref()
        })
        const request: Promise<AccessToken | null> = Promise.race([
          credential.getToken(scopes, { ...rest, abortSignal: controller.signal }),
          limit,
        ]).finally(() => {
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
 * A resolved credential whose token requests share and have the CLI's limit
 * (`defaultTokenRequestTimeoutMs`, as each vault request's): a command never
 * waits for a token for good.
 */
export const withTokenTimeLimit = <R extends ResolvedCredential>(resolved: R): R => ({
  ...resolved,
  credential: shareTokenRequests(resolved.credential, { timeoutMs: defaultTokenRequestTimeoutMs }),
})
