/**
 * A time limit on each HTTP request to an identity endpoint (Entra ID, IMDS, App Service).
 *
 * @azure/identity sets none on its token requests, and does not pass a caller's abort signal on to
 * a managed identity's requests (nor MSAL's network calls for a client secret): a token endpoint
 * that accepts the connection and never answers keeps that request, and its connection, open for
 * good. `shareTokenRequests` stops waiting at its limit, but the request it gave up on went on, and
 * each later attempt left one more behind (a review measured an agent's open connections growing
 * from 5 to 16 in 160 s with IMDS holding every request). With this each such request ends at the
 * limit (one that set its own, as the library's IMDS probe does, keeps it), and what it ended is a
 * network failure the library reports as such.
 *
 * It is the credential's HTTP client, the SDK's default one with the limit set on each request,
 * not a pipeline policy: `ManagedIdentityCredential` replaces the `additionalPolicies` it is given
 * with its own (its IMDS retry policy), but passes the HTTP client on.
 */
import { createDefaultHttpClient, type HttpClient } from "@azure/core-rest-pipeline"

/**
 * How much longer than the time limit on a whole token request (`tokenRequestTimeLimitFor`, or the
 * agent's) each of its HTTP requests may take, unless the settings say: the token request's limit
 * ends a held request first and says so ("gave no token within 30 s"), and the request it gave up on
 * ends this much later.
 */
export const identityRequestMarginMs = 5_000

/**
 * One client for every credential of the process, as the SDK's own cached default is: its
 * keep-alive connections to an identity endpoint are shared, not one set per credential, left open
 * when a reload lets that credential go.
 */
let sharedClient: HttpClient | undefined
const processClient = (): HttpClient => {
  sharedClient ??= createDefaultHttpClient()
  return sharedClient
}

export const withRequestTimeout = (timeoutMs: number, client: HttpClient = processClient()): HttpClient => ({
  sendRequest: (request) => {
    if (!(request.timeout > 0)) request.timeout = timeoutMs
    return client.sendRequest(request)
  },
})
