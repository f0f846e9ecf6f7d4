/**
 * explainTokenFailure's words for failures whose text misled a rule: an identity endpoint's HTTP
 * answer without an error of its own (MSAL appends the answer's headers), a system-assigned
 * identity the endpoint does not know, a service principal's certificate refused, and failures no
 * rule names (their own words shown, without secrets). The messages are the libraries' own, as
 * @azure/identity gave them against the emulator.
 */

import type { TokenCredential } from "@azure/core-auth"
import { describe, expect, it } from "@effect/vitest"
import { changeProcessEnv } from "@kvdeploy/core/test"
import { forConfiguredTenant, namingVaultTenant } from "../src/credential.js"
import { chainSourceFix } from "../src/diagnose.js"
import { explainTokenFailure, identityNotFoundFix } from "../src/tokenFailure.js"

const failure = (name: string, message: string) => Object.assign(new Error(message), { name })
const managedIdentity = (rest: string) =>
  failure("CredentialUnavailableError", `ManagedIdentityCredential: Authentication failed. ${rest}`)

describe("a managed identity endpoint's refusal", () => {
  const emptyAnswer = (status: number) =>
    managedIdentity(
      `Message client_error: Error(s): Not Available - Timestamp: Not Available - Description: A client error occured.\nHttp status code: ${status}\nHttp status message: Unknown\nHeaders: {"content-type":"text/plain","content-length":"0","server":"egress-proxy"} - Correlation ID: Not Available - Trace ID: Not Available`,
    )

  it("an HTTP error without an error of its own (a proxy's 404) is no identity header problem, and says its status", () => {
    for (const mode of ["managed_identity", "default", undefined] as const) {
      const explained = explainTokenFailure(emptyAnswer(404), mode)
      expect(explained.fix).not.toMatch(/IDENTITY_HEADER must be/)
      expect(explained.fix).toMatch(/NO_PROXY/)
      expect(explained.reason).toMatch(/answered HTTP 404 without an error of its own/)
    }
  })

  it("App Service's refusal of its identity header keeps the IDENTITY_HEADER fix", () => {
    const header = managedIdentity(
      "Message : Error(s): Not Available - Timestamp: Not Available - Description: Unauthorized request: X-IDENTITY-HEADER is missing or wrong. - Correlation ID: Not Available - Trace ID: Not Available",
    )
    expect(explainTokenFailure(header, "managed_identity").fix).toMatch(/IDENTITY_HEADER must be the value/)
  })

  const notFound = managedIdentity(
    "Message invalid_request: Error(s): Not Available - Timestamp: Not Available - Description: Identity not found - Correlation ID: Not Available - Trace ID: Not Available",
  )

  it("Identity not found for the system-assigned identity says so, not a client id nobody gave", () => {
    const explained = explainTokenFailure(notFound, "managed_identity", {})
    expect(explained.reason).toBe(
      "the managed identity endpoint refused the token request: Identity not found",
    )
    expect(explained.fix).not.toMatch(/of that client id|configured client id/)
    expect(explained.fix).toMatch(/^The endpoint knows no system-assigned identity on this host/)
    expect(explained.fix).not.toMatch(/credential_mode: managed_identity and/)
  })

  it("Identity not found for a configured user-assigned identity names managed_identity_client_id", () => {
    expect(
      explainTokenFailure(notFound, "managed_identity", {
        managedIdentityClientIdFrom: "managed_identity_client_id",
      }).fix,
    ).toMatch(
      /^The endpoint knows no identity of the configured client id on this host: set managed_identity_client_id/,
    )
  })

  it("the token check and the chain's source line say the same fix (one rule)", () => {
    for (const from of [undefined, "AZURE_CLIENT_ID", "managed_identity_client_id"] as const) {
      const identity = from === undefined ? {} : { managedIdentityClientIdFrom: from }
      const source = { credential: "ManagedIdentityCredential", reason: notFound.message }
      expect(chainSourceFix(source, identity)).toBe(identityNotFoundFix(from, "default"))
      expect(explainTokenFailure(notFound, "default", identity).fix).toBe(
        identityNotFoundFix(from, "default"),
      )
    }
  })
})

describe("a service principal's certificate refused", () => {
  const certificate = failure(
    "AuthenticationError",
    "EnvironmentCredential authentication failed. To troubleshoot, visit https://aka.ms/azsdk/js/identity/environmentcredential/troubleshoot. Status code: 400\nMore details:\ninvalid_client: Error(s): 700027 - Timestamp: 2026-12-05 20:06:22.795Z - Description: AADSTS700027: Client assertion failed signature validation. - Correlation ID: fc53f822-9f9d-49e2-b66f-88b4ff8d3758 - Trace ID: e447cfd5-f391-4773-8547-00ba4089ca18,",
  )

  it("EnvironmentCredential's AADSTS700027 under default is the certificate's refusal, not a federated token's", () => {
    const explained = explainTokenFailure(certificate, "default")
    expect(explained.reason).not.toMatch(/federated token/)
    expect(explained.reason).toMatch(/^Entra ID refused the service principal's client certificate/)
    expect(explained.reason).toMatch(/AADSTS700027/)
    expect(explained.fix).toMatch(/AZURE_CLIENT_CERTIFICATE_PATH/)
  })

  it("a workload identity's AADSTS700027 stays the federated token's", () => {
    const federated = failure(
      "AuthenticationError",
      "WorkloadIdentityCredential: Authentication failed. invalid_client: AADSTS700027: Client assertion failed signature validation.",
    )
    expect(explainTokenFailure(federated, "workload_identity").reason).toMatch(
      /^Entra ID refused the federated token/,
    )
  })
})

describe("a failure no rule names", () => {
  const environment = (details: string) =>
    failure(
      "AuthenticationError",
      `EnvironmentCredential authentication failed. To troubleshoot, visit https://aka.ms/azsdk/js/identity/environmentcredential/troubleshoot. Status code: 400\nMore details:\n${details},`,
    )

  it("keeps the library's words (a missing certificate file, a key-only PEM, a gateway's page) and does not send doctor's reader to doctor", () => {
    const cases = [
      [
        environment("ENOENT: no such file or directory, open '/etc/kvdeploy/sp.pem'"),
        /ENOENT: no such file or directory, open '\/etc\/kvdeploy\/sp\.pem'/,
      ],
      [
        environment("The file at the specified path does not contain a PEM-encoded certificate."),
        /does not contain a PEM-encoded certificate/,
      ],
      [
        failure(
          "AuthenticationRequiredError",
          'client_error: Error(s): Not Available - Timestamp: Not Available - Description: A client error occured.\nHttp status code: 400\nHttp status message: <html><body>Bad Request</body></html>\nHeaders: {"content-type":"text/html","content-length":"37"} - Correlation ID: Not Available - Trace ID: Not Available',
        ),
        /Http status code: 400 Http status message: <html><body>Bad Request<\/body><\/html>/,
      ],
    ] as const
    for (const [error, words] of cases) {
      const explained = explainTokenFailure(error, "default")
      expect(explained.reason).toMatch(/^the token request failed: /)
      expect(explained.reason).toMatch(words)
      expect(explained.fix).not.toMatch(/kvdeploy doctor/)
      // MSAL's boilerplate is left out: the link, the answer's headers, what was not available.
      expect(explained.reason).not.toMatch(/aka\.ms|Headers:|Not Available/)
    }
  })

  it("shows no client secret the library's words echo, in any of its encodings", () => {
    const secret = "Zx8Q~p@ss w0rd+/end-0123456789"
    const restore = changeProcessEnv({ AZURE_CLIENT_SECRET: secret })
    try {
      const explained = explainTokenFailure(
        environment(`gateway echoed client_secret=${encodeURIComponent(secret)} and ${secret}`),
        "default",
      )
      expect(explained.reason).toMatch(/^the token request failed: /)
      expect(explained.reason).not.toContain(secret)
      expect(explained.reason).not.toContain(encodeURIComponent(secret))
      expect(explained.reason).not.toContain("p@ss")
    } finally {
      restore()
    }
  })

  it("shows no client secret the library's words break across a line (a page that wraps), with or without indentation", () => {
    const secret = "Zx8Q~abcdefghijklmnop0123456789"
    const restore = changeProcessEnv({ AZURE_CLIENT_SECRET: secret })
    try {
      for (const broken of [
        `${secret.slice(0, 15)}\n${secret.slice(15)}`,
        `${secret.slice(0, 9)}\r\n    ${secret.slice(9)}`,
      ]) {
        const explained = explainTokenFailure(environment(`gateway echoed ${broken}`), "default")
        expect(explained.reason).toMatch(/^the token request failed: /)
        expect(explained.reason).toContain("[the value of AZURE_CLIENT_SECRET, not shown]")
        expect(explained.reason.replace(/\s/g, "")).not.toContain(secret.slice(0, 9))
      }
    } finally {
      restore()
    }
  })

  it("shows no token or key text the library's words carry", () => {
    const jwt = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from('{"aud":"x"}').toString("base64url")}.c2lnbmF0dXJlLXNpZ25hdHVyZQ`
    const pem =
      "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----"
    const explained = explainTokenFailure(environment(`gateway said: ${jwt} for ${pem}`), "default")
    expect(explained.reason).toMatch(/^the token request failed: /)
    expect(explained.reason).not.toContain("c2lnbmF0dXJl")
    expect(explained.reason).not.toContain("MIGHAgEA")
  })
})

describe("Entra ID's AADSTS700016 (the application was not found in the directory asked)", () => {
  const OWN = "72f988bf-86f1-41af-91ab-2d7cd011db47"
  const VAULTS = "11111111-2222-3333-4444-555555555555"
  /**
   * AADSTS700016 in the vault's tenant: both causes (no service principal there, a client id that
   * is no application's) and their fixes, without allowing the tenant the request reached already.
   */
  const expectNotFoundInVaultTenant = (explained: { reason: string; fix: string }, own: string) => {
    expect(explained.reason).toContain(
      `Entra ID found no application of this client id in tenant ${VAULTS}, the vault's, which the credential asked a token of`,
    )
    expect(explained.reason).toContain(`the credential's own tenant is ${own} (AZURE_TENANT_ID)`)
    expect(explained.reason).toContain(
      "either the application has no service principal in the vault's tenant",
    )
    expect(explained.reason).toContain("or AZURE_CLIENT_ID is not the application's id")
    expect(explained.fix).toMatch(/^check AZURE_CLIENT_ID \(/)
    expect(explained.fix).toContain(`provision the application in tenant ${VAULTS}`)
    expect(explained.fix).toContain(`AZURE_TENANT_ID=${VAULTS}`)
    expect(explained.fix).not.toContain("AZURE_ADDITIONALLY_ALLOWED_TENANTS")
  }
  const notFoundIn = (directory: string) =>
    failure(
      "AuthenticationError",
      `ClientSecretCredential authentication failed: unauthorized_client: AADSTS700016: Application with identifier 'c0ffee00-0000-0000-0000-000000000001' was not found in the directory '${directory}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant. Trace ID: 1 Correlation ID: 2 Timestamp: 2026-12-06 06:00:00Z`,
    )

  it("naming another tenant than the credential's: the application is not provisioned in that tenant (the vault's), not a wrong client id", () => {
    const explained = explainTokenFailure(notFoundIn(VAULTS), "client_secret", { tenantId: OWN })
    expectNotFoundInVaultTenant(explained, OWN)
    // Its tenant in another letter case is the same tenant.
    expect(explainTokenFailure(notFoundIn(OWN.toUpperCase()), "client_secret", { tenantId: OWN }).fix).toBe(
      "Check AZURE_CLIENT_ID and AZURE_TENANT_ID",
    )
  })

  it("the tenant the request asked, noted by kvdeploy's credential, tells it whatever names the directory: a display name, an id beside a domain name", async () => {
    for (const [directory, configured] of [
      ["Default Directory", OWN],
      [VAULTS, "contoso.onmicrosoft.com"],
      ["Contoso", OWN.toUpperCase()],
    ] as const) {
      const refusal = notFoundIn(directory)
      // The application is known in the credential's own tenant (asked without the vault's, as
      // forConfiguredTenant asks a domain name's once more): a token; the vault's tenant refuses.
      const sdk: TokenCredential = {
        getToken: async (_scopes, options) => {
          if (options?.tenantId === undefined)
            return { token: "t", expiresOnTimestamp: Date.now() + 3_600_000 }
          throw refusal
        },
      }
      const error = await namingVaultTenant(configured, forConfiguredTenant(configured, sdk))
        .getToken("https://vault.azure.net/.default", { tenantId: VAULTS })
        .then(
          () => undefined,
          (e: unknown) => e,
        )
      expect(error, directory).toBe(refusal)
      expectNotFoundInVaultTenant(
        explainTokenFailure(error, "client_secret", { tenantId: configured }),
        configured,
      )
    }
  })

  it("a request kvdeploy's credential sent to its own tenant: check the client id and tenant, whatever directory Entra ID names", async () => {
    const asked = async (configured: string, tenantId: string | undefined, refuseOthers: boolean) => {
      const refusal = notFoundIn(VAULTS)
      const sdk: TokenCredential = {
        getToken: async (_scopes, options) => {
          if (refuseOthers && options?.tenantId !== undefined && options.tenantId !== configured)
            throw new Error(
              `The current credential is not configured to acquire tokens for tenant ${options.tenantId}.`,
            )
          throw refusal
        },
      }
      const error = await namingVaultTenant(configured, forConfiguredTenant(configured, sdk))
        .getToken("s", tenantId === undefined ? undefined : { tenantId })
        .then(
          () => undefined,
          (e: unknown) => e,
        )
      return explainTokenFailure(error, "client_secret", { tenantId: configured }).fix
    }
    // No tenant asked; the vault's own tenant in upper case; a domain name asked again without the
    // vault's tenant, which the SDK refused: each request went to the credential's own tenant.
    expect(await asked(OWN, undefined, false)).toBe("Check AZURE_CLIENT_ID and AZURE_TENANT_ID")
    expect(await asked(OWN.toUpperCase(), OWN, false)).toBe("Check AZURE_CLIENT_ID and AZURE_TENANT_ID")
    expect(await asked("contoso.onmicrosoft.com", OWN, true)).toBe(
      "Check AZURE_CLIENT_ID and AZURE_TENANT_ID",
    )
    // A domain name the vault's tenant id may be: its own tenant, asked once more, does not know the
    // client id either (a mistyped AZURE_CLIENT_ID), so nothing says the tenants differ.
    expect(await asked("contoso.onmicrosoft.com", VAULTS, false)).toBe(
      "Check AZURE_CLIENT_ID and AZURE_TENANT_ID",
    )
    // With AZURE_IDENTITY_DISABLE_MULTITENANTAUTH, @azure/identity asks its own tenant whatever is given.
    const restore = changeProcessEnv({ AZURE_IDENTITY_DISABLE_MULTITENANTAUTH: "1" })
    try {
      expect(await asked(OWN, VAULTS, false)).toBe("Check AZURE_CLIENT_ID and AZURE_TENANT_ID")
    } finally {
      restore()
    }
  })

  it("naming the credential's own tenant, a display name, or with no tenant known: check the client id and tenant, as before", () => {
    for (const [directory, tenantId] of [
      [OWN, OWN],
      ["Contoso", OWN],
      ["contoso.onmicrosoft.com", OWN],
      [VAULTS, undefined],
    ] as const) {
      const explained = explainTokenFailure(
        notFoundIn(directory),
        "client_secret",
        tenantId === undefined ? undefined : { tenantId },
      )
      expect(explained.fix, directory).toBe("Check AZURE_CLIENT_ID and AZURE_TENANT_ID")
      expect(explained.reason, directory).toContain("Entra ID does not know this client id in this tenant")
    }
  })
})
