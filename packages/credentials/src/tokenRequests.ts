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
 * it runs out, the waiters fail with an error that says so, and the request
 * is told to abort; the library does not pass that on to a managed identity's
 * requests (nor MSAL's for a client secret), which go on in the background
 * until each HTTP request's own limit (identityRequestTimeout.ts) or the
 * library's retries end. Until then a caller fails at once with the same
 * error instead of starting another request beside it: a hung endpoint holds
 * one request per token, not one more per attempt.
 *
 * A token it gave that is still valid for more than 5 minutes is answered
 * again when a request for the same token fails (`heldTokenRetryMs` later
 * than now as its `refreshAfterTimestamp`, so the caller's cache asks again
 * then, not at once). The Key Vault clients ask for a new token from half a
 * managed identity token's life (about 12 hours before it expires), every 3 s
 * while that fails; with an identity endpoint down for those hours, that was a
 * silent request every 3 s while the vault was served with the token held.
 * A token the library answers as already due for refresh is answered as due
 * 30 s later too. msal-node's managed identity runs its refresh within the
 * request and answers the token it held, whether the refresh succeeded (the
 * new token is in its cache for the next request) or failed with an HTTP
 * error (a network error throws). So a due token that is news (first seen due,
 * or after a failed request) is asked for once more at once: the new token
 * from the library's cache when the refresh succeeded (no request to the
 * identity endpoint, but for DefaultAzureCredential's probe of IMDS, which it
 * sends before each token request on a host with IMDS); a follow-up that
 * fails leaves the due token the answer. `onRequestEnded` hears how each
 * request it made to the credential ended (not the callers answered by a
 * shared, reused or abandoned request), for a health signal: the agent's
 * token series and its identity's log lines.
 * The same due token answered for more than 5 minutes since this wrapper
 * first saw it due counts as a failure; when the refresh then succeeds, the
 * new token shows at the next request (one that is not news is not asked for
 * again, which would double the requests to a failing endpoint).
 */
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth"
import type { ResolvedCredential } from "./credential.js"
import type { CredentialMode } from "./settings.js"
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
  /**
   * How long a failed request stays the answer for the same token (ms, default 0: the next caller
   * starts a new one). The agent's deployments each retry with their own backoff: without it, an
   * identity endpoint that fails fast met one request per deployment's attempt, a load that grew
   * with the fleet (IMDS allows about 5 requests a second per host).
   */
  readonly reuseFailureMs?: number | undefined
  /**
   * How each token request ended (once per request to the credential, not per caller): for a
   * health signal. Not called for a caller answered without a request (a shared, reused or
   * abandoned one).
   */
  readonly onRequestEnded?: ((ended: TokenRequestEnded) => void) | undefined
}

/**
 * How a token request to the credential ended:
 * - `Obtained`: a token not yet due for refresh (`expiresOnMs`: when it expires);
 * - `Due`: a token already due for refresh: its library's refresh got an HTTP error (msal-node
 *   answers the token it held then), or its success shows at the next request (a due token
 *   already seen is not asked for again): neither success nor failure;
 * - `Failed`: the request failed or ran out its time limit, or gave no token, or the library has
 *   answered the same due token for more than 5 minutes since it was first answered due;
 *   `heldUntilMs` is the expiry of the token answered instead (one obtained earlier, still
 *   valid), absent when the failure was the answer.
 */
export type TokenRequestEnded =
  | { readonly _tag: "Obtained"; readonly expiresOnMs: number }
  | { readonly _tag: "Due"; readonly expiresOnMs: number }
  | { readonly _tag: "Failed"; readonly error: unknown; readonly heldUntilMs: number | undefined }

/** How long after a failed request a held token is answered before a new request is made. */
export const heldTokenRetryMs = 30_000

/** How long past its refresh time a token is due for its library (msal rounds the time to whole seconds). */
const dueSlackMs = 1_000

/** How long the library may answer the same token due for refresh, from the first such answer, before that is a failure. */
const staleRefreshMs = 5 * 60_000

/**
 * A held token is answered while it has more than this left. A Key Vault client that cached it
 * uses it until 1 s before it expires whatever its refreshes answer; one that holds none gets
 * none from this much before.
 */
const heldTokenMarginMs = 5 * 60_000

/** The CLI's limit on a token request, as on each vault request (@kvdeploy/azure-kv's default). */
export const defaultTokenRequestTimeoutMs = 30_000

/**
 * The CLI's limit where a managed identity endpoint may answer (`managed_identity`, `default`):
 * @azure/identity retries IMDS's 410 (a managed identity being set up) for about 70 s.
 */
export const managedIdentityTokenRequestTimeoutMs = 90_000

/** The least time limit on a token request of this mode: 90 s where a managed identity endpoint may answer, else 30 s. */
export const tokenRequestTimeLimitFor = (mode: CredentialMode): number =>
  mode === "managed_identity" || mode === "default"
    ? managedIdentityTokenRequestTimeoutMs
    : defaultTokenRequestTimeoutMs

const timedOut = (options: ShareTokenRequestsOptions): Error =>
  new TokenRequestTimedOut(options.timeoutMs, options.setting)

export const shareTokenRequests = (
  credential: TokenCredential,
  options: ShareTokenRequestsOptions,
): TokenCredential => {
  const inFlight = new Map<string, Promise<AccessToken | null>>()
  /** Requests given up at the limit that still run, and the error their waiters got. */
  const abandoned = new Map<string, Error>()
  /** The last token obtained for each key. */
  const held = new Map<string, AccessToken>()
  /** For each key answered a token due for refresh: that token's times, and when it was first answered due. */
  const dueSince = new Map<string, { refreshAfterMs: number; expiresOnMs: number; firstMs: number }>()
  /** When `key` was first answered `token` due, if the due token it was answered last is that one. */
  const dueFirstSeen = (key: string, token: AccessToken): number | undefined => {
    const seen = dueSince.get(key)
    return seen !== undefined &&
      seen.refreshAfterMs === token.refreshAfterTimestamp &&
      seen.expiresOnMs === token.expiresOnTimestamp
      ? seen.firstMs
      : undefined
  }
  /** The keys whose last request failed (threw, ran out its limit, or gave no token). */
  const lastFailed = new Set<string>()
  /**
   * Whether `token` is due for refresh, as its library sees it: msal compares whole seconds
   * (rounded), so it refreshes from up to 1 s past `refreshAfterTimestamp`; before that, the
   * token is answered as it is (not yet news, the caller asks again at its next request).
   */
  const isDue = (token: AccessToken): boolean =>
    token.refreshAfterTimestamp !== undefined && token.refreshAfterTimestamp + dueSlackMs <= Date.now()
  /**
   * Whether a due `token` is news: first answered due, or answered after a failure. msal-node runs
   * its refresh within the request and answers the old token; when the refresh succeeded, the next
   * request is answered the new one from its cache. A due token already seen, with no failure
   * since, is not news: asking again would double the requests to a failing endpoint.
   */
  const dueNews = (key: string, token: AccessToken): boolean =>
    lastFailed.has(key) || dueFirstSeen(key, token) === undefined
  /** `onRequestEnded`, whose own failure is no failure of the token request. */
  const ended = (event: TokenRequestEnded) => {
    try {
      options.onRequestEnded?.(event)
    } catch {
      // The request's answer stands.
    }
  }
  /** The held token, if still valid long enough, in place of `error`; else `error`. */
  const heldOr = (key: string, error: unknown): AccessToken => {
    const token = held.get(key)
    const now = Date.now()
    if (token === undefined || token.expiresOnTimestamp - now <= heldTokenMarginMs) throw error
    return { ...token, refreshAfterTimestamp: Math.min(now + heldTokenRetryMs, token.expiresOnTimestamp) }
  }
  /**
   * A token obtained. One already due for refresh is what the library answers when its refresh
   * failed with an HTTP error (msal-node's managed identity): answered as due again in 30 s, not
   * at once; a failed request once the library has answered that same due token for 5 minutes.
   */
  const answered = (key: string, token: AccessToken | null): AccessToken | null => {
    if (token === null) {
      lastFailed.add(key)
      ended({ _tag: "Failed", error: new Error("the credential gave no token"), heldUntilMs: undefined })
      return token
    }
    lastFailed.delete(key)
    held.set(key, token)
    const due = token.refreshAfterTimestamp
    const now = Date.now()
    if (due === undefined || !isDue(token)) {
      dueSince.delete(key)
      ended({ _tag: "Obtained", expiresOnMs: token.expiresOnTimestamp })
      return token
    }
    const firstMs = dueFirstSeen(key, token) ?? now
    if (firstMs === now)
      dueSince.set(key, { refreshAfterMs: due, expiresOnMs: token.expiresOnTimestamp, firstMs })
    if (now - firstMs > staleRefreshMs) {
      const stale = new Error(
        `the identity library has answered a token due for refresh for ${Math.floor((now - firstMs) / 60_000)} minutes: none of its refreshes in that time gave a new token`,
      )
      ended({ _tag: "Failed", error: stale, heldUntilMs: token.expiresOnTimestamp })
    } else ended({ _tag: "Due", expiresOnMs: token.expiresOnTimestamp })
    return { ...token, refreshAfterTimestamp: Math.min(now + heldTokenRetryMs, token.expiresOnTimestamp) }
  }
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
      const stillRunning = shared === undefined ? abandoned.get(key) : undefined
      // A request given up at the limit still runs: no second one beside it.
      if (stillRunning !== undefined) {
        try {
          return Promise.resolve(heldOr(key, stillRunning))
        } catch (e) {
          return Promise.reject(e)
        }
      }
      if (shared === undefined) {
        const { abortSignal: _own, ...rest } = getTokenOptions ?? {}
        const controller = new AbortController()
        // A credential that throws at once (not through its promise) fails this call alone, before
        // any timer is set.
        const ask = () => credential.getToken(scopes, { ...rest, abortSignal: controller.signal })
        /** The request's call to the credential now running (the first, or its follow-up). */
        let call = ask()
        let timer: NodeJS.Timeout | undefined
        const limit = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            if (inFlight.get(key) === request) inFlight.delete(key)
            controller.abort()
            const error = timedOut(options)
            // Remembered until the request ends, however it ends.
            abandoned.set(key, error)
            const forget = () => {
              if (abandoned.get(key) === error) abandoned.delete(key)
            }
            call.then(forget, forget)
            reject(error)
          }, options.timeoutMs)
          timer.unref()
        })
        const request: Promise<AccessToken | null> = Promise.race([call, limit])
          .then((token) => {
            // A due token that is news: asked for once more, at once (the new token from the
            // library's cache when its refresh succeeded; the due one again when it did not), within
            // the same limit. A call that fails, gives none or runs out the limit leaves this one the
            // answer, due (no failure of the request: its first call gave a token); while one that
            // ran out still runs, callers are answered this one, held, without a request.
            if (token === null || !isDue(token) || !dueNews(key, token)) return token
            try {
              call = ask()
            } catch {
              return token
            }
            return Promise.race([call, limit]).then(
              (again) => again ?? token,
              () => token,
            )
          })
          .then(
            (token) => answered(key, token),
            (error: unknown) => {
              lastFailed.add(key)
              let answer: AccessToken
              try {
                answer = heldOr(key, error)
              } catch (failure) {
                ended({ _tag: "Failed", error, heldUntilMs: undefined })
                throw failure
              }
              ended({ _tag: "Failed", error, heldUntilMs: answer.expiresOnTimestamp })
              return answer
            },
          )
          .finally(() => clearTimeout(timer))
        const forget = () => {
          if (inFlight.get(key) === request) inFlight.delete(key)
        }
        // A failure is the answer for `reuseFailureMs` more (its failure reaches every waiter through
        // their own handlers; once they have all stopped waiting, aborted, nobody is left to hear it,
        // and an unheard rejection would end the process).
        request.then(forget, () => {
          const reuseMs = options.reuseFailureMs ?? 0
          if (!(reuseMs > 0)) return forget()
          setTimeout(forget, reuseMs).unref()
        })
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
    timeoutMs: tokenRequestTimeLimitFor(resolved.identity.mode),
  }),
})
