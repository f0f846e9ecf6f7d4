/**
 * EnvironmentCredential (DefaultAzureCredential's first source) rewraps every failure as an
 * AuthenticationError of status 400: the identity provider's outage must still read as one, and a
 * refusal as a refusal, as for ClientSecretCredential. Both real credentials, against a local
 * authority that answers the token request with the case's status and body. Each credential asks
 * twice: after a 429 or 5xx, MSAL answers the next request itself (its throttling cache, for
 * Retry-After or 60 s) with that answer's text laid out anew, which must read the same.
 */
import { createServer, type Server } from "node:https"
import type { AddressInfo } from "node:net"
import { getCACertificates, setDefaultCACertificates } from "node:tls"
import { ClientSecretCredential, EnvironmentCredential } from "@azure/identity"
import { changeProcessEnv } from "@kvdeploy/core/test"
import { createTlsIdentity } from "@kvdeploy/kv-emulator"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { identityProviderOutage } from "../src/tokenErrors.js"
import { explainTokenFailure } from "../src/tokenFailure.js"

interface Answer {
  readonly status: number
  readonly json?: Record<string, string | ReadonlyArray<number>>
  readonly page?: string
}
let answer: Answer = { status: 503 }
/** Token requests the authority answered. */
let tokenRequests = 0
let server: Server
let authorityHost = ""
const tenant = "tenant-1"
const clientId = "00000000-0000-0000-0000-000000000002"

beforeAll(async () => {
  const tls = await createTlsIdentity([])
  setDefaultCACertificates([...getCACertificates("default"), tls.caPem])
  server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    req.resume()
    req.on("end", () => {
      if (req.url?.includes("openid-configuration")) {
        res.writeHead(200, { "content-type": "application/json" })
        res.end(
          JSON.stringify({
            token_endpoint: `${authorityHost}/${tenant}/oauth2/v2.0/token`,
            issuer: `${authorityHost}/${tenant}/v2.0`,
            authorization_endpoint: `${authorityHost}/${tenant}/oauth2/v2.0/authorize`,
            jwks_uri: `${authorityHost}/keys`,
            end_session_endpoint: `${authorityHost}/logout`,
          }),
        )
        return
      }
      tokenRequests++
      res.writeHead(answer.status, {
        "content-type": answer.json !== undefined ? "application/json" : "text/html",
        ...(answer.status === 429 ? { "retry-after": "5" } : {}),
      })
      res.end(answer.json !== undefined ? JSON.stringify(answer.json) : (answer.page ?? ""))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  authorityHost = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => new Promise<void>((resolve) => server?.close(() => resolve())))

/**
 * Whether each credential's failure on `case_` reads as the identity provider's outage, for its
 * first request and a second one right after; and how many token requests reached the authority.
 */
const outageFor = async (case_: Answer) => {
  answer = case_
  tokenRequests = 0
  const restoreEnv = changeProcessEnv({
    AZURE_TENANT_ID: tenant,
    AZURE_CLIENT_ID: clientId,
    AZURE_CLIENT_SECRET: "s",
  })
  const failure = async (credential: { getToken: (scope: string) => Promise<unknown> }) => {
    try {
      await credential.getToken("https://vault.azure.net/.default")
    } catch (e) {
      return e
    }
    throw new Error("a token was given")
  }
  const twice = async (credential: { getToken: (scope: string) => Promise<unknown> }) => [
    identityProviderOutage(await failure(credential)),
    identityProviderOutage(await failure(credential)),
  ]
  try {
    // No retries: the classification of the failure is what is tested, not how long it took.
    const options = { authorityHost, disableInstanceDiscovery: true, retryOptions: { maxRetries: 0 } }
    const clientSecret = await twice(new ClientSecretCredential(tenant, clientId, "s", options))
    const environmentCredential = new EnvironmentCredential(options)
    expect(((await failure(environmentCredential)) as Error).message).toMatch(
      /^EnvironmentCredential authentication failed/,
    )
    const environment = await twice(new EnvironmentCredential(options))
    return { clientSecret, environment, tokenRequests }
  } finally {
    restoreEnv()
  }
}

describe("EnvironmentCredential's wrapped failures", () => {
  it("an outage or throttling reads as one, as for ClientSecretCredential", async () => {
    const outages: ReadonlyArray<Answer> = [
      {
        status: 503,
        json: {
          error: "temporarily_unavailable",
          error_description: "AADSTS90033: A transient error has occurred.",
          error_codes: [90033],
        },
      },
      {
        status: 500,
        json: {
          error: "server_error",
          error_description: "AADSTS50000: There was an error issuing a token.",
          error_codes: [50000],
        },
      },
      // An answer naming no code: MSAL's replay then leads with none.
      {
        status: 503,
        json: { error: "temporarily_unavailable", error_description: "Try again later." },
      },
      // Neither codes nor a description: MSAL's replay is empty.
      { status: 503, json: { error: "server_error" } },
      { status: 503, page: "<html>Service Unavailable</html>" },
      { status: 502, page: "Bad Gateway" },
      { status: 429, page: "Too Many Requests" },
    ]
    // Each credential's second failure is MSAL's replay: 3 requests reached the authority, not 5.
    for (const case_ of outages)
      expect(await outageFor(case_), JSON.stringify(case_)).toEqual({
        clientSecret: [true, true],
        environment: [true, true],
        tokenRequests: 3,
      })
  })

  it("a refusal reads as one, whatever its description's words", async () => {
    const refusals: ReadonlyArray<Answer> = [
      {
        status: 401,
        json: {
          error: "invalid_client",
          error_description: "AADSTS7000215: Invalid client secret provided.",
          error_codes: [7000215],
        },
      },
      {
        status: 400,
        json: {
          error: "unauthorized_client",
          error_description:
            "AADSTS700016: Application 'x' was not found in the directory 'Status code: 503'.",
        },
      },
      {
        status: 400,
        json: {
          error: "invalid_request",
          error_description: "server_error AADSTS90055 temporarily_unavailable",
        },
      },
      { status: 400, page: "Http status code: 503" },
      // No error code: MSAL's message then leads with ": Error(s):", not to be taken for a replay.
      {
        status: 400,
        json: { error_description: "AADSTS7000215: Invalid client secret provided.", error_codes: [7000215] },
      },
    ]
    // A refusal is not replayed: each request reaches the authority and is refused again.
    for (const case_ of refusals)
      expect(await outageFor(case_), JSON.stringify(case_)).toEqual({
        clientSecret: [false, false],
        environment: [false, false],
        tokenRequests: 5,
      })
  })

  it("an unknown tenant at the token endpoint (a cloud MSAL knows the endpoints of): a refusal naming the tenant", async () => {
    answer = {
      status: 400,
      json: {
        error: "invalid_tenant",
        error_description:
          "AADSTS90002: Tenant 'tenant-1' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
        error_codes: [90002],
      },
    }
    const options = { authorityHost, disableInstanceDiscovery: true, retryOptions: { maxRetries: 0 } }
    const failure = await new ClientSecretCredential(tenant, clientId, "s", options)
      .getToken("https://vault.azure.net/.default")
      .then(
        () => {
          throw new Error("a token was given")
        },
        (e: unknown) => e,
      )
    expect(identityProviderOutage(failure)).toBe(false)
    expect(explainTokenFailure(failure, "client_secret")).toEqual({
      reason: "Entra ID does not know this tenant (Entra ID: AADSTS90002: Tenant 'tenant-1' not found.)",
      fix: expect.stringMatching(/AZURE_TENANT_ID/),
    })
  })
})
