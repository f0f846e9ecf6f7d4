/**
 * EnvironmentCredential (DefaultAzureCredential's first source) rewraps every failure as an
 * AuthenticationError of status 400: the identity provider's outage must still read as one, and a
 * refusal as a refusal, as for ClientSecretCredential. Both real credentials, against a local
 * authority that answers the token request with the case's status and body.
 */
import { createServer, type Server } from "node:https"
import type { AddressInfo } from "node:net"
import { getCACertificates, setDefaultCACertificates } from "node:tls"
import { ClientSecretCredential, EnvironmentCredential } from "@azure/identity"
import { createTlsIdentity } from "@kvdeploy/kv-emulator"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { identityProviderOutage } from "../src/tokenErrors.js"

interface Answer {
  readonly status: number
  readonly json?: Record<string, string>
  readonly page?: string
}
let answer: Answer = { status: 503 }
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

/** Whether each credential's failure on `case_` reads as the identity provider's outage. */
const outageFor = async (case_: Answer) => {
  answer = case_
  const saved = { ...process.env }
  Object.assign(process.env, { AZURE_TENANT_ID: tenant, AZURE_CLIENT_ID: clientId, AZURE_CLIENT_SECRET: "s" })
  const failure = async (credential: { getToken: (scope: string) => Promise<unknown> }) => {
    try {
      await credential.getToken("https://vault.azure.net/.default")
    } catch (e) {
      return e
    }
    throw new Error("a token was given")
  }
  try {
    // No retries: the classification of the failure is what is tested, not how long it took.
    const options = { authorityHost, disableInstanceDiscovery: true, retryOptions: { maxRetries: 0 } }
    const secret = await failure(new ClientSecretCredential(tenant, clientId, "s", options))
    const environment = await failure(new EnvironmentCredential(options))
    expect((environment as Error).message).toMatch(/^EnvironmentCredential authentication failed/)
    return { clientSecret: identityProviderOutage(secret), environment: identityProviderOutage(environment) }
  } finally {
    for (const k of ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"]) {
      if (saved[k] === undefined) delete process.env[k]
      else process.env[k] = saved[k]
    }
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
        },
      },
      {
        status: 500,
        json: {
          error: "server_error",
          error_description: "AADSTS50000: There was an error issuing a token.",
        },
      },
      { status: 503, page: "<html>Service Unavailable</html>" },
      { status: 502, page: "Bad Gateway" },
      { status: 429, page: "Too Many Requests" },
    ]
    for (const case_ of outages)
      expect(await outageFor(case_), JSON.stringify(case_)).toEqual({ clientSecret: true, environment: true })
  })

  it("a refusal reads as one, whatever its description's words", async () => {
    const refusals: ReadonlyArray<Answer> = [
      {
        status: 401,
        json: {
          error: "invalid_client",
          error_description: "AADSTS7000215: Invalid client secret provided.",
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
    ]
    for (const case_ of refusals)
      expect(await outageFor(case_), JSON.stringify(case_)).toEqual({
        clientSecret: false,
        environment: false,
      })
  })
})
