import { generateKeyPairSync } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { Agent } from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createHttpHeaders, createPipelineRequest, type PipelineRequest } from "@azure/core-rest-pipeline"
import { describe, expect, it } from "@effect/vitest"
import { knownClouds, validateTargetConfigSync } from "@kvdeploy/core"
import { closedPort } from "@kvdeploy/core/test"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { agentOutOfLogs } from "../src/agentOutOfLogs.js"
import {
  authorityHosts,
  credentialSettingsFromTarget,
  diagnoseCredential,
  expectedTenant,
  expiryInWords,
  explainTokenFailure,
  formatDiagnosis,
  identityProviderOutage,
  keyVaultScope,
  probeToken,
  tokenProblems,
} from "../src/index.js"

const withEnv = (env: Record<string, string | undefined>) =>
  Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env)))

const target = (input: Record<string, unknown>) => {
  const result = validateTargetConfigSync(input)
  if (Result.isFailure(result)) throw new Error(result.failure.message)
  return result.success
}

describe("credentialSettingsFromTarget", () => {
  it("takes the authority host and Key Vault resource from the vault's cloud", () => {
    const gov = credentialSettingsFromTarget(
      target({
        vault_url: "https://my-vault.vault.usgovcloudapi.net",
        certificate_name: "api",
        credential_mode: "client_secret",
      }),
    )
    expect(gov).toEqual({
      mode: "client_secret",
      authorityHost: "https://login.microsoftonline.us",
      keyVaultResource: "https://vault.usgovcloudapi.net",
    })
    const china = credentialSettingsFromTarget(
      target({ vault_url: "https://my-vault.vault.azure.cn/", certificate_name: "api" }),
    )
    expect(china.mode).toBe("default")
    expect(china.authorityHost).toBe("https://login.chinacloudapi.cn")
    expect(china.disableInstanceDiscovery).toBeUndefined()
  })

  it("keeps instance discovery on for a cloud block whose endpoints are a known cloud's (an alias host too)", () => {
    for (const authority_host of ["https://login.microsoftonline.com", "https://login.windows.net/"]) {
      const settings = credentialSettingsFromTarget(
        target({
          vault_url: "https://my-vault.vault.azure.net",
          certificate_name: "api",
          credential_mode: "client_secret",
          cloud: {
            name: "corp",
            vault_dns_suffix: "vault.azure.net",
            authority_host,
            keyvault_resource: "https://vault.azure.net/",
          },
        }),
      )
      // The settings a target without the block gets: the public cloud's, discovery on.
      expect(settings, authority_host).toEqual({
        mode: "client_secret",
        authorityHost: "https://login.microsoftonline.com",
        keyVaultResource: "https://vault.azure.net",
      })
    }
  })

  it("turns instance discovery off for a custom cloud only, and keeps the user-assigned identity", () => {
    const settings = credentialSettingsFromTarget(
      target({
        vault_url: "https://127.0.0.1:8443",
        certificate_name: "api",
        credential_mode: "managed_identity",
        managed_identity_client_id: "11111111-2222-3333-4444-555555555555",
        cloud: {
          vault_dns_suffix: "127.0.0.1",
          authority_host: "https://127.0.0.1:9443",
          keyvault_resource: "https://vault.azure.net",
        },
      }),
      { trustedCaPem: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n" },
    )
    expect(settings).toMatchObject({
      mode: "managed_identity",
      managedIdentityClientId: "11111111-2222-3333-4444-555555555555",
      authorityHost: "https://127.0.0.1:9443",
      disableInstanceDiscovery: true,
    })
    expect(settings.trustedCaPem).toContain("BEGIN CERTIFICATE")
  })
})

describe("the clouds' authority hosts and Key Vault scope", () => {
  it("authorityHosts names the authority core's cloud table gives each public cloud", () => {
    const authorityOf = (name: string) => knownClouds.find((c) => c.name === name)?.authorityHost
    expect(authorityHosts).toEqual({
      public: authorityOf("AzurePublic"),
      usgovernment: authorityOf("AzureUSGovernment"),
      china: authorityOf("AzureChina"),
    })
    expect(authorityHosts.usgovernment).toBe("https://login.microsoftonline.us")
  })

  it("keyVaultScope takes the resource with or without a trailing slash", () => {
    expect(keyVaultScope("https://vault.azure.net")).toBe("https://vault.azure.net/.default")
    expect(keyVaultScope("https://vault.usgovcloudapi.net/")).toBe("https://vault.usgovcloudapi.net/.default")
  })
})

describe("diagnoseCredential", () => {
  it.effect(
    "client_secret with variables missing: says which, and never asks for the secret in configuration",
    () =>
      Effect.gen(function* () {
        const d = yield* diagnoseCredential({
          mode: "client_secret",
          authorityHost: "https://login.microsoftonline.com",
        }).pipe(withEnv({ AZURE_TENANT_ID: "t" }))
        expect(d.ok).toBe(false)
        const lines = formatDiagnosis(d).join("\n")
        expect(lines).toContain(
          "[MISSING] credential: missing environment variables AZURE_CLIENT_ID, AZURE_CLIENT_SECRET",
        )
        expect(lines).toContain("never in the target configuration")
      }),
  )

  it.effect("workload_identity with no token file: names the file", () =>
    Effect.gen(function* () {
      const d = yield* diagnoseCredential({
        mode: "workload_identity",
        authorityHost: "https://login.microsoftonline.com",
      }).pipe(
        withEnv({
          AZURE_TENANT_ID: "t",
          AZURE_CLIENT_ID: "00000000-0000-0000-0000-00000000000c",
          AZURE_FEDERATED_TOKEN_FILE: "/nonexistent/kvdeploy-token",
        }),
      )
      expect(d.ok).toBe(false)
      expect(formatDiagnosis(d).join("\n")).toContain(
        "/nonexistent/kvdeploy-token (AZURE_FEDERATED_TOKEN_FILE) cannot be read",
      )
    }),
  )

  it.live(
    "client_secret against an unreachable authority: the endpoint could not be reached, and the secret is not printed",
    () =>
      Effect.gen(function* () {
        const secret = "kvdeploy-test-secret-value-0123456789"
        const port = yield* Effect.promise(closedPort)
        const d = yield* diagnoseCredential({
          mode: "client_secret",
          authorityHost: `https://127.0.0.1:${port}`,
          disableInstanceDiscovery: true,
        }).pipe(
          withEnv({
            AZURE_TENANT_ID: "tenant-x",
            AZURE_CLIENT_ID: "00000000-0000-0000-0000-0000000000c9",
            AZURE_CLIENT_SECRET: secret,
          }),
        )
        expect(d.ok).toBe(false)
        const text = formatDiagnosis(d).join("\n")
        expect(text).toContain(
          "[ok] credential: ClientSecretCredential, tenant tenant-x, client 00000000-0000-0000-0000-0000000000c9",
        )
        expect(text).toContain("[FAILED] token: the authority host could not be reached")
        expect(text).not.toContain(secret)
      }),
  )

  it.effect(
    "default mode lists DefaultAzureCredential's sources in order and which one this environment configures",
    () =>
      Effect.gen(function* () {
        const d = yield* diagnoseCredential({
          mode: "default",
          authorityHost: "https://login.microsoftonline.com",
        }).pipe(
          withEnv({
            AZURE_TENANT_ID: "t",
            AZURE_CLIENT_ID: "00000000-0000-0000-0000-00000000000c",
            AZURE_FEDERATED_TOKEN_FILE: "/nonexistent/f",
          }),
          // Only the checks that need no network: stop before the token request.
          Effect.map((x) => x.checks.filter((c) => c.name.startsWith("default:"))),
        )
        expect(d.map((c) => [c.name, c.status])).toEqual([
          ["default: 1 environment", "skipped"],
          ["default: 2 workload identity", "failed"],
          ["default: 3 managed identity", "ok"],
          ["default: 4 developer tools", "skipped"],
        ])
      }),
    { timeout: 60_000 },
  )
})

describe("diagnoseCredential: the default chain's checks", () => {
  const defaultChecks = (env: Record<string, string>) =>
    diagnoseCredential({ mode: "default", authorityHost: "https://login.microsoftonline.com" }).pipe(
      withEnv(env),
      Effect.map((d) => ({ d, checks: d.checks.filter((c) => c.name.startsWith("default:")) })),
    )

  it.effect(
    "a client certificate configures the environment source as well as a secret",
    () =>
      Effect.gen(function* () {
        const { checks } = yield* defaultChecks({
          AZURE_TENANT_ID: "11111111-2222-3333-4444-555555555555",
          AZURE_CLIENT_ID: "00000000-0000-0000-0000-00000000000c",
          AZURE_CLIENT_CERTIFICATE_PATH: "/etc/kvdeploy/sp.pem",
        })
        expect(checks[0]).toMatchObject({ name: "default: 1 environment", status: "ok" })
        expect(checks[0]?.detail).toContain("client certificate")
      }),
    { timeout: 60_000 },
  )

  it.effect(
    "a key in AZURE_CLIENT_ID is not shown by the workload identity check",
    () =>
      Effect.gen(function* () {
        const dir = mkdtempSync(join(tmpdir(), "kvdeploy-wi-"))
        const tokenFile = join(dir, "token")
        writeFileSync(tokenFile, "eyJ.fake.token")
        const key = generateKeyPairSync("ec", { namedCurve: "P-256" })
          .privateKey.export({ format: "der", type: "pkcs8" })
          .toString("base64")
        try {
          const { d, checks } = yield* defaultChecks({
            AZURE_TENANT_ID: "11111111-2222-3333-4444-555555555555",
            AZURE_CLIENT_ID: key,
            AZURE_FEDERATED_TOKEN_FILE: tokenFile,
          })
          expect(checks[1]).toMatchObject({ name: "default: 2 workload identity", status: "ok" })
          expect(checks[1]?.detail).toContain("(not a client id:")
          expect(`${formatDiagnosis(d).join("\n")}${JSON.stringify(d)}`).not.toContain(key.slice(40, 80))
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
      }),
    { timeout: 60_000 },
  )
})

describe("probeToken", () => {
  const jwt = (claims: Record<string, unknown>) =>
    `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.c2ln`

  it.effect("reads the app from a v2 token's azp claim, and keeps no token", () =>
    Effect.gen(function* () {
      const token = jwt({
        tid: "11111111-2222-3333-4444-555555555555",
        azp: "00000000-0000-0000-0000-0000000000a2",
        oid: "00000000-0000-0000-0000-0000000000b3",
        aud: "https://vault.azure.net",
      })
      const probe = yield* probeToken(
        {
          credential: { getToken: async () => ({ token, expiresOnTimestamp: Date.UTC(2030, 0, 1) }) },
          identity: { mode: "client_secret", source: "ClientSecretCredential" },
        },
        "https://vault.azure.net/.default",
      )
      expect(probe).toEqual({
        expiresOn: new Date(Date.UTC(2030, 0, 1)),
        tenantId: "11111111-2222-3333-4444-555555555555",
        appId: "00000000-0000-0000-0000-0000000000a2",
        objectId: "00000000-0000-0000-0000-0000000000b3",
        audience: "https://vault.azure.net",
        jwt: true,
      })
    }),
  )

  it.effect("tokenProblems: audience, tenant and times from the claims, within 5 minutes of clock skew", () =>
    Effect.gen(function* () {
      const now = Date.UTC(2026, 11, 2, 12, 0, 0)
      const probeOf = (token: string) =>
        probeToken(
          {
            credential: { getToken: async () => ({ token, expiresOnTimestamp: now + 3_600_000 }) },
            identity: { mode: "client_secret", source: "ClientSecretCredential" },
          },
          "https://vault.azure.net/.default",
        )
      // Letters in it, so the upper-case spelling configured differs from the token's (a tenant of
      // digits only made the case-insensitive comparison untested).
      const tenant = "abcdef01-2222-3333-4444-55555555cafe"
      const expected = { resource: "https://vault.azure.net/", tenantId: tenant.toUpperCase(), nowMs: now }
      expect(expected.tenantId).not.toBe(tenant)
      const seconds = (ms: number) => Math.floor(ms / 1000)
      // Issued as Entra ID issues it, with this host 4 minutes off either way: no problem.
      const good = yield* probeOf(
        jwt({
          aud: "https://vault.azure.net",
          tid: tenant,
          nbf: seconds(now + 240_000),
          exp: seconds(now - 240_000),
        }),
      )
      expect(tokenProblems(good, expected)).toEqual([])
      const bad = yield* probeOf(
        jwt({
          aud: "https://vault.usgovcloudapi.net",
          tid: "99999999-2222-3333-4444-555555555555",
          exp: seconds(now - 360_000),
        }),
      )
      expect(tokenProblems(bad, expected).map((p) => [p.check, p.status, p.detail])).toEqual([
        [
          "token audience",
          "fail",
          "the token is for https://vault.usgovcloudapi.net, not the vault's resource https://vault.azure.net: Key Vault refuses it",
        ],
        [
          "token times",
          "fail",
          "the token expired at 2026-12-02T11:54:00.000Z, before this host's time 2026-12-02T12:00:00.000Z",
        ],
        [
          "token tenant",
          "fail",
          `the token is of tenant 99999999-2222-3333-4444-555555555555, not AZURE_TENANT_ID's ${tenant.toUpperCase()}`,
        ],
      ])
      const early = yield* probeOf(jwt({ aud: "https://vault.azure.net", nbf: seconds(now + 600_000) }))
      expect(tokenProblems(early, expected).map((p) => p.detail)).toEqual([
        "the token is not valid before 2026-12-02T12:10:00.000Z, after this host's time 2026-12-02T12:00:00.000Z: this host's clock is behind",
      ])
      // A tenant configured by its domain name is not compared with the token's tenant id.
      expect(
        tokenProblems(bad, { ...expected, tenantId: "contoso.onmicrosoft.com" }).map((p) => p.check),
      ).toEqual(["token audience", "token times"])
      // An application id audience (a v2 token's), and a resource that differs in case only, pass.
      const appIdAudience = yield* probeOf(jwt({ aud: "cfa8b339-82a2-471a-a3c9-0fc0be7a4093", tid: tenant }))
      expect(tokenProblems(appIdAudience, expected)).toEqual([])
      const upper = yield* probeOf(jwt({ aud: "https://Vault.Azure.NET", tid: tenant }))
      expect(tokenProblems(upper, expected)).toEqual([])
      // Not a JWT: nothing can be read, a warning.
      for (const opaque of ["not-a-jwt", "a.b", `a.${Buffer.from("[1]").toString("base64url")}.c`]) {
        const probe = yield* probeOf(opaque)
        expect(probe.jwt, opaque).toBe(false)
        expect(tokenProblems(probe, expected).map((p) => [p.check, p.status])).toEqual([
          ["token claims", "warn"],
        ])
      }
    }),
  )

  it("expectedTenant: AZURE_TENANT_ID counts only for the sources that use it", () => {
    const tenantId = "11111111-2222-3333-4444-555555555555"
    expect(expectedTenant({ mode: "client_secret", tenantId }, {})).toBe(tenantId)
    expect(expectedTenant({ mode: "workload_identity", tenantId }, {})).toBe(tenantId)
    // A managed identity's token is of the host's tenant, whatever AZURE_TENANT_ID says.
    expect(expectedTenant({ mode: "managed_identity", tenantId }, {})).toBeUndefined()
    expect(
      expectedTenant({ mode: "default", tenantId }, { answeredBy: "ManagedIdentityCredential" }),
    ).toBeUndefined()
    expect(expectedTenant({ mode: "default", tenantId }, { answeredBy: "EnvironmentCredential" })).toBe(
      tenantId,
    )
    expect(expectedTenant({ mode: "default", tenantId }, {})).toBeUndefined()
  })

  it.effect("an expiry no Date holds is no expiry, in words (doctor crashed on it: exit 70)", () =>
    Effect.gen(function* () {
      // expires_in: 99999999999999 from a token endpoint (or a proxy in front of it).
      const probe = yield* probeToken(
        {
          credential: {
            getToken: async () => ({ token: jwt({}), expiresOnTimestamp: 99_999_999_999_999_000 }),
          },
          identity: { mode: "managed_identity", source: "ManagedIdentityCredential" },
        },
        "https://vault.azure.net/.default",
      )
      expect(probe.expiresOn).toBeUndefined()
      expect(expiryInWords(probe)).toBe(
        "an expiry that is no time (the identity endpoint's expires_in or expires_on is out of range)",
      )
      expect(expiryInWords({ expiresOn: new Date(Date.UTC(2030, 0, 1)) })).toBe(
        "expires 2030-01-01T00:00:00.000Z",
      )
    }),
  )
})

describe("agentOutOfLogs", () => {
  it("keeps a request's agent out of its JSON (the SDK's request log), and usable", async () => {
    const agent = new Agent({ keepAlive: true })
    const request = createPipelineRequest({
      url: "https://login.microsoftonline.com/t/oauth2/v2.0/token",
      headers: createHttpHeaders(),
    })
    request.agent = agent
    let sent: PipelineRequest | undefined
    await agentOutOfLogs.sendRequest(request, async (r) => {
      sent = r
      return { request: r, status: 200, headers: createHttpHeaders() }
    })
    expect(sent?.agent).toBe(agent)
    expect(Object.keys(sent ?? {})).not.toContain("agent")
    expect(JSON.stringify(sent)).not.toContain("keepAlive")
    agent.destroy()
  })
})

describe("explainTokenFailure", () => {
  it("says what to do for the credential mode when no credential source is available", () => {
    const unavailable = Object.assign(new Error("ManagedIdentityCredential: endpoint not available"), {
      name: "CredentialUnavailableError",
    })
    const managed = explainTokenFailure(unavailable, "managed_identity")
    expect(managed.reason).toBe("no credential source is available in this environment")
    expect(managed.fix).toMatch(/host with a managed identity/)
    expect(managed.fix).not.toMatch(/az login/)
    expect(explainTokenFailure(unavailable, "workload_identity").fix).toMatch(/service account/)
    expect(explainTokenFailure(unavailable, "client_secret").fix).toMatch(/AZURE_CLIENT_SECRET/)
    // The default chain (and a caller that does not say) lists every source it tries.
    expect(explainTokenFailure(unavailable, "default").fix).toMatch(/az login/)
    expect(explainTokenFailure(unavailable).fix).toMatch(/az login/)
  })

  it("a managed identity endpoint that answered and refused is named with its own words, not as no source", () => {
    const refused = (description: string) =>
      Object.assign(
        new Error(
          `ManagedIdentityCredential: Authentication failed. Message invalid_request: Error(s): Not Available - Timestamp: Not Available - Description: ${description} - Correlation ID: Not Available - Trace ID: Not Available`,
        ),
        { name: "CredentialUnavailableError" },
      )
    const unknown = explainTokenFailure(refused("Identity not found"), "managed_identity", {
      managedIdentityClientIdFrom: "managed_identity_client_id",
    })
    expect(unknown.reason).toBe("the managed identity endpoint refused the token request: Identity not found")
    expect(unknown.fix).toMatch(
      /^The endpoint knows no identity of the configured client id on this host: set managed_identity_client_id/,
    )
    const header = explainTokenFailure(refused("X-IDENTITY-HEADER is missing or wrong"), "default")
    expect(header.reason).toBe(
      "the managed identity endpoint refused the token request: X-IDENTITY-HEADER is missing or wrong",
    )
    expect(header.fix).toMatch(/IDENTITY_HEADER must be the value the platform set/)
    // Whatever the endpoint quotes back, key text in it is not shown.
    const pem =
      "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----"
    expect(explainTokenFailure(refused(pem), "managed_identity").reason).not.toContain("MIGHAgEA")
  })
})

describe("explainTokenFailure: what Entra ID refused", () => {
  const entra = (message: string) => Object.assign(new Error(message), { name: "AuthenticationError" })
  it("a refused federated token is not called a refused client secret, whatever the OAuth code", () => {
    const wrongSubject = entra("invalid_client: AADSTS700213: No matching federated identity record found")
    // With Entra ID's own first sentence: its code tells the issuer from the subject.
    expect(explainTokenFailure(wrongSubject, "workload_identity").reason).toBe(
      "Entra ID refused the federated token (Entra ID: AADSTS700213: No matching federated identity record found)",
    )
    // The bare OAuth code, under each mode.
    const bare = entra("invalid_client: the client could not be authenticated")
    expect(explainTokenFailure(bare, "workload_identity").reason).toBe("Entra ID refused the federated token")
    expect(explainTokenFailure(bare, "client_secret").reason).toBe("Entra ID refused the client secret")
    expect(explainTokenFailure(bare, "default").reason).toBe("Entra ID refused the credential")
    expect(
      explainTokenFailure(entra("invalid_client: AADSTS7000215: Invalid client secret provided")).reason,
    ).toBe("Entra ID refused the client secret (Entra ID: AADSTS7000215: Invalid client secret provided)")
    // Only its first sentence, not the trace and correlation ids or the links after it.
    expect(
      explainTokenFailure(
        entra(
          "invalid_client: AADSTS700211: No matching federated identity record found for presented assertion issuer 'https://oidc.example.test/'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. Trace ID: 1 Correlation ID: 2",
        ),
        "workload_identity",
      ).reason,
    ).toBe(
      "Entra ID refused the federated token (Entra ID: AADSTS700211: No matching federated identity record found for presented assertion issuer 'https://oidc.example.test/'.)",
    )
  })

  it("an outage or throttling of the identity provider passes; it is not a missing credential source", () => {
    const withCause = (name: string, message: string, cause: Record<string, unknown>) =>
      Object.assign(new Error(message), { name, cause })
    for (const error of [
      entra("temporarily_unavailable: AADSTS90033: A transient error has occurred"),
      // MSAL replaying a recent failure without a request: no status, its code first.
      entra("90033: AADSTS90033: A transient error has occurred. Please try again."),
      entra("invalid_request: AADSTS90055: There are too many incoming requests."),
      // An App Service identity endpoint's 500, the status on MSAL's error (the cause).
      withCause("CredentialUnavailableError", "ManagedIdentityCredential: authentication failed", {
        status: 500,
      }),
      withCause("AuthenticationRequiredError", "the token request failed", { errorCode: "server_error" }),
      // MSAL answering by itself with a recent 429's text (ThrottlingUtils): a ServerError, no status.
      withCause("AuthenticationRequiredError", ": Too many requests.", {
        name: "ServerError",
        errorCode: "",
      }),
    ]) {
      const explained = explainTokenFailure(error, "managed_identity")
      expect(explained.reason, error.message).toMatch(/unavailable or throttling for now/)
    }
  })

  it("identityProviderOutage: a 429 status or MSAL's transient error codes are an outage; a refusal's code is not", () => {
    const withCause = (message: string, cause: Record<string, unknown>) =>
      Object.assign(new Error(message), { name: "AuthenticationRequiredError", cause })
    expect(identityProviderOutage(withCause("Too many requests", { status: 429 }))).toBe(true)
    expect(
      identityProviderOutage(Object.assign(new Error("throttled"), { name: "RestError", statusCode: 429 })),
    ).toBe(true)
    expect(
      identityProviderOutage(withCause("the token request failed", { errorCode: "temporarily_unavailable" })),
    ).toBe(true)
    expect(
      identityProviderOutage(withCause("the token request failed", { errorCode: "invalid_client" })),
    ).toBe(false)
    // A chain's text holds every source's: one transient code in it is no outage of the chain.
    const chain = Object.assign(
      new Error(
        "ChainedTokenCredential authentication failed.\nEnvironmentCredential: AADSTS90033: A transient error has occurred.\nManagedIdentityCredential: no endpoint",
      ),
      { name: "AggregateAuthenticationError" },
    )
    expect(identityProviderOutage(chain)).toBe(false)
  })

  it("a refusal that names a tenant or app like 'Throttle Labs', or a chain's aggregate, is no outage", () => {
    const refused = Object.assign(
      new Error(
        "unauthorized_client: AADSTS700016: Application x was not found in the directory 'Throttle Labs'",
      ),
      { name: "AuthenticationRequiredError", cause: { status: 400 } },
    )
    expect(explainTokenFailure(refused, "client_secret").reason).not.toMatch(/for now/)
    const tenant = Object.assign(
      new Error("invalid_request: AADSTS90002: Tenant 'throttle-labs' not found"),
      {
        name: "AuthenticationRequiredError",
        cause: { status: 400 },
      },
    )
    expect(explainTokenFailure(tenant, "client_secret").reason).not.toMatch(/for now/)
    // A ServerError made from an answer has its status: a refused secret is no outage.
    const secret = Object.assign(
      new Error("invalid_client: AADSTS7000215: Invalid client secret provided."),
      {
        name: "AuthenticationRequiredError",
        cause: { name: "ServerError", status: 401, errorCode: "invalid_client" },
      },
    )
    expect(explainTokenFailure(secret, "client_secret").reason).toBe(
      "Entra ID refused the client secret (Entra ID: AADSTS7000215: Invalid client secret provided.)",
    )
    const chain = Object.assign(
      new Error(
        "ChainedTokenCredential failed: ManagedIdentityCredential: server_error: Http status code: 503",
      ),
      { name: "AggregateAuthenticationError" },
    )
    expect(explainTokenFailure(chain, "default").reason).not.toMatch(/for now/)
    // Nor as a network failure of one of its sources: the chain failed, each source for its reason.
    const unreachable = Object.assign(
      new Error(
        "ChainedTokenCredential authentication failed.\nManagedIdentityCredential: Network unreachable",
      ),
      { name: "AggregateAuthenticationError" },
    )
    expect(explainTokenFailure(unreachable, "default").reason).toBe(
      "none of the default chain's sources gave a token (each one's reason is listed)",
    )
  })
})

describe("values pasted into the identity variables are never shown", () => {
  const der = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
    format: "der",
    type: "pkcs8",
  })
  const pem = `-----BEGIN PRIVATE KEY-----\n${der.toString("base64")}\n-----END PRIVATE KEY-----\n`
  const secretPart = der.toString("base64").slice(60, 100)

  it.effect(
    "a key in AZURE_CLIENT_ID: refused before any credential is built, naming the variable, not the value",
    () =>
      Effect.gen(function* () {
        for (const mode of ["client_secret", "default"] as const) {
          for (const value of [pem, der.toString("base64")]) {
            const diagnosis = yield* diagnoseCredential({
              mode,
              authorityHost: "https://login.microsoftonline.com",
            }).pipe(
              withEnv({
                AZURE_TENANT_ID: "11111111-2222-3333-4444-555555555555",
                AZURE_CLIENT_ID: value,
                AZURE_CLIENT_SECRET: "not-a-real-secret",
              }),
            )
            expect(diagnosis.ok).toBe(false)
            const text = `${formatDiagnosis(diagnosis).join("\n")}${JSON.stringify(diagnosis)}`
            expect(text, mode).toContain("AZURE_CLIENT_ID is not a client id (a GUID)")
            expect(text, mode).not.toContain(secretPart)
          }
        }
      }),
  )

  it.effect("a key in AZURE_TENANT_ID is not shown by the default chain's checks", () =>
    Effect.gen(function* () {
      const diagnosis = yield* diagnoseCredential({
        mode: "default",
        authorityHost: "https://login.microsoftonline.com",
      }).pipe(
        withEnv({
          AZURE_TENANT_ID: der.toString("base64"),
          AZURE_CLIENT_ID: "11111111-2222-3333-4444-555555555555",
          AZURE_CLIENT_SECRET: "not-a-real-secret",
        }),
      )
      const text = `${formatDiagnosis(diagnosis).join("\n")}${JSON.stringify(diagnosis)}`
      expect(text).toContain("(not a tenant id:")
      expect(text).toContain("AZURE_TENANT_ID is not a tenant id (a GUID or a domain name)")
      expect(text).not.toContain(secretPart)
    }),
  )
})
