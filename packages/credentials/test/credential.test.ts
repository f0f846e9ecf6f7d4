import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { TokenCredential } from "@azure/core-auth"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { forConfiguredTenant, forKeyVaultScope, namingVaultTenant } from "../src/credential.js"
import {
  type CredentialSettings,
  explainTokenFailure,
  makeCredential,
  tenantNotAllowed,
  VAULT_TENANT_NOT_ALLOWED,
} from "../src/index.js"
import { appNotInTenant, noteOwnTenantRequested } from "../src/tokenErrors.js"

const publicCloud = { authorityHost: "https://login.microsoftonline.com" }

const withEnv = (env: Record<string, string | undefined>) =>
  Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env)))

const failureOf = (settings: CredentialSettings, env: Record<string, string | undefined>) =>
  makeCredential(settings).pipe(withEnv(env), Effect.flip)

describe("makeCredential", () => {
  it.effect("client_secret names every missing variable and never asks for a secret in configuration", () =>
    Effect.gen(function* () {
      const error = yield* failureOf({ mode: "client_secret", ...publicCloud }, { AZURE_CLIENT_ID: "app" })
      // A configuration problem of the process, apart from a credential that cannot work
      // (the CLI maps this tag to a usage error, exit 2).
      expect(error._tag).toBe("CredentialVariableMissing")
      if (error._tag !== "CredentialVariableMissing") return
      expect(error.variables).toEqual(["AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"])
      expect(error.variable).toBe("AZURE_TENANT_ID")
      expect(error.missing).toEqual(["AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"])
      expect(error.reason).toBe("missing environment variables AZURE_TENANT_ID, AZURE_CLIENT_SECRET")
      expect(error.message).toContain("AZURE_TENANT_ID, AZURE_CLIENT_SECRET")
      expect(error.message).toContain("never in the target configuration")
      expect(error.fix).toMatch(/^Set the missing variables in the environment/)
      // One missing: named in the fix.
      const one = yield* failureOf(
        { mode: "client_secret", ...publicCloud },
        { AZURE_CLIENT_ID: "app", AZURE_TENANT_ID: "00000000-0000-0000-0000-0000000000a2" },
      )
      expect(one.fix).toMatch(/^Set AZURE_CLIENT_SECRET in the environment kvdeploy runs in/)
    }),
  )

  it.effect(
    "a malformed tenant id is a CredentialVariableMalformed; a value @azure/identity refuses is a CredentialUnavailable, not a crash",
    () =>
      Effect.gen(function* () {
        const error = yield* failureOf(
          { mode: "client_secret", ...publicCloud },
          {
            AZURE_TENANT_ID: "contoso tenant",
            AZURE_CLIENT_ID: "00000000-0000-0000-0000-0000000000a1",
            AZURE_CLIENT_SECRET: "s3cret-value",
          },
        )
        // Found before any credential is made, like a missing variable (the CLI's exit 2).
        expect(error._tag).toBe("CredentialVariableMalformed")
        if (error._tag !== "CredentialVariableMalformed") return
        expect(error.variable).toBe("AZURE_TENANT_ID")
        expect(error.missing).toEqual([])
        expect(error.message).not.toContain("contoso tenant")
        expect(error.fix).toContain("AZURE_TENANT_ID")
        expect(error.reason).toMatch(/tenant/i)
        expect(error.message).not.toContain("s3cret-value")
        // The default chain reads AZURE_TOKEN_CREDENTIALS through Effect's ConfigProvider, as doctor's
        // checks do (kvdeploy builds the chain), and refuses a value DefaultAzureCredential refuses.
        const chain = yield* failureOf(
          { mode: "default", ...publicCloud },
          { AZURE_TOKEN_CREDENTIALS: "bogus-credential" },
        )
        expect(chain._tag).toBe("CredentialUnavailable")
        expect(chain.reason).toContain("Invalid value for AZURE_TOKEN_CREDENTIALS")
        expect(chain.fix).toContain("AZURE_TOKEN_CREDENTIALS")
      }),
  )

  it.effect(
    "a proxy variable that is no URL is named (not blamed on the tenant id), its value not shown",
    () =>
      Effect.gen(function* () {
        const ids = {
          AZURE_TENANT_ID: "00000000-0000-0000-0000-0000000000a0",
          AZURE_CLIENT_ID: "00000000-0000-0000-0000-0000000000a1",
          AZURE_CLIENT_SECRET: "s",
        }
        const error = yield* failureOf(
          { mode: "client_secret", ...publicCloud },
          { ...ids, HTTPS_PROXY: "http://user:hunter2@::::" },
        )
        expect(error._tag).toBe("CredentialVariableMalformed")
        expect(error.message).toContain("HTTPS_PROXY is not a proxy URL")
        expect(error.message).not.toContain("hunter2")
        expect(error.message).not.toContain("AZURE_TENANT_ID")
        // host:port without a scheme is no URL to the SDK either.
        const bare = yield* failureOf(
          { mode: "client_secret", ...publicCloud },
          { ...ids, HTTPS_PROXY: "10.0.0.1:3128" },
        )
        expect(bare.message).toContain("HTTPS_PROXY is not a proxy URL")
        // The SDK reads HTTPS_PROXY first: a malformed HTTP_PROXY it never reads is no problem.
        const used = yield* makeCredential({ mode: "client_secret", ...publicCloud }).pipe(
          withEnv({ ...ids, HTTPS_PROXY: "http://proxy.corp:3128", HTTP_PROXY: "proxy corp:3128" }),
        )
        expect(used.identity.source).toBe("ClientSecretCredential")
      }),
  )

  it.effect("client_secret treats blank variables as missing", () =>
    Effect.gen(function* () {
      const error = yield* failureOf(
        { mode: "client_secret", ...publicCloud },
        { AZURE_TENANT_ID: "t", AZURE_CLIENT_ID: "  ", AZURE_CLIENT_SECRET: "s" },
      )
      expect(error.missing).toEqual(["AZURE_CLIENT_ID"])
    }),
  )

  it.effect("client_secret builds a ClientSecretCredential whose identity carries no secret", () =>
    Effect.gen(function* () {
      const secret = "very-secret-value-123"
      const resolved = yield* makeCredential({ mode: "client_secret", ...publicCloud }).pipe(
        withEnv({
          AZURE_TENANT_ID: "tenant-1",
          AZURE_CLIENT_ID: "00000000-0000-0000-0000-0000000000c1",
          AZURE_CLIENT_SECRET: secret,
        }),
      )
      expect(resolved.identity).toMatchObject({
        mode: "client_secret",
        source: "ClientSecretCredential",
        tenantId: "tenant-1",
        clientId: "00000000-0000-0000-0000-0000000000c1",
      })
      expect(JSON.stringify(resolved.identity)).not.toContain(secret)
      // The endpoint it asks is the target cloud's authority, which doctor's credential line shows.
      expect(resolved.identity.endpoint).toBe("https://login.microsoftonline.com")
      for (const authorityHost of ["https://login.microsoftonline.us", "https://login.chinacloudapi.cn"]) {
        const other = yield* makeCredential({ mode: "client_secret", authorityHost }).pipe(
          withEnv({
            AZURE_TENANT_ID: "tenant-1",
            AZURE_CLIENT_ID: "00000000-0000-0000-0000-0000000000c1",
            AZURE_CLIENT_SECRET: secret,
          }),
        )
        expect(other.identity.endpoint).toBe(authorityHost)
      }
    }),
  )

  it.effect("workload_identity requires the federated token file to be readable", () =>
    Effect.gen(function* () {
      const error = yield* failureOf(
        { mode: "workload_identity", ...publicCloud },
        {
          AZURE_TENANT_ID: "t",
          AZURE_CLIENT_ID: "00000000-0000-0000-0000-00000000000c",
          AZURE_FEDERATED_TOKEN_FILE: "/nonexistent/token",
        },
      )
      expect(error._tag).toBe("CredentialUnavailable")
      expect(error.message).toContain("/nonexistent/token")
      expect(error.message).toContain("cannot be read")
    }),
  )

  it.effect("workload_identity names the missing webhook variables", () =>
    Effect.gen(function* () {
      const error = yield* failureOf({ mode: "workload_identity", ...publicCloud }, {})
      expect(error._tag).toBe("CredentialVariableMissing")
      expect(error.missing).toEqual(["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"])
      expect(error.fix).toContain("azure.workload.identity")
    }),
  )

  it.effect(
    "managed_identity selects a user-assigned identity from configuration and reports the endpoint",
    () =>
      Effect.gen(function* () {
        const user = yield* makeCredential({
          mode: "managed_identity",
          managedIdentityClientId: "uami-1",
          ...publicCloud,
        }).pipe(withEnv({ IDENTITY_ENDPOINT: "http://127.0.0.1:4141/msi/token", IDENTITY_HEADER: "h" }))
        expect(user.identity.clientId).toBe("uami-1")
        expect(user.identity.source).toContain("user-assigned")
        expect(user.identity.endpoint).toBe("App Service endpoint http://127.0.0.1:4141/msi/token")
        const system = yield* makeCredential({ mode: "managed_identity", ...publicCloud }).pipe(withEnv({}))
        expect(system.identity.source).toContain("system-assigned")
        expect(system.identity.endpoint).toBe("IMDS http://169.254.169.254")
        // The source MSAL picks, each needing all its variables: IDENTITY_ENDPOINT alone is IMDS.
        const endpointWith = (env: Record<string, string>) =>
          makeCredential({ mode: "managed_identity", ...publicCloud }).pipe(
            withEnv(env),
            Effect.map((r) => r.identity.endpoint),
          )
        const e = "http://127.0.0.1:4141/x"
        expect(yield* endpointWith({ IDENTITY_ENDPOINT: e })).toBe("IMDS http://169.254.169.254")
        expect(yield* endpointWith({ IDENTITY_ENDPOINT: e, IMDS_ENDPOINT: "http://i" })).toBe(
          `Azure Arc endpoint ${e}`,
        )
        expect(
          yield* endpointWith({
            IDENTITY_ENDPOINT: e,
            IDENTITY_HEADER: "h",
            IDENTITY_SERVER_THUMBPRINT: "t",
          }),
        ).toBe(`Service Fabric endpoint ${e}`)
        expect(yield* endpointWith({ MSI_ENDPOINT: e })).toBe(`Cloud Shell endpoint ${e}`)
        expect(yield* endpointWith({ MSI_ENDPOINT: e, MSI_SECRET: "s" })).toBe(
          `Azure Machine Learning endpoint ${e}`,
        )
        // An AKS workload identity pod: the federated token is exchanged (as @azure/identity would).
        const dir = mkdtempSync(join(tmpdir(), "kvdeploy-mi-"))
        const tokenFile = join(dir, "token")
        writeFileSync(tokenFile, "eyJ.fake.token")
        const pod = { AZURE_TENANT_ID: "t", AZURE_CLIENT_ID: "00000000-0000-0000-0000-00000000000c" }
        try {
          expect(yield* endpointWith({ ...pod, AZURE_FEDERATED_TOKEN_FILE: tokenFile })).toBe(
            `Entra ID token exchange at ${publicCloud.authorityHost} (workload identity's federated token)`,
          )
          // Judged before any request, as workload_identity judges them: a token file that cannot be
          // read, a client id that is no GUID (not shown: it may be a pasted secret).
          const unreadable = yield* Effect.flip(
            endpointWith({ ...pod, AZURE_FEDERATED_TOKEN_FILE: join(dir, "none") }),
          )
          expect(unreadable._tag).toBe("CredentialUnavailable")
          expect(unreadable.message).toContain("cannot be read")
          const pasted = "Zx8Q~not-a-guid-but-a-secret-value"
          const malformed = yield* Effect.flip(
            endpointWith({ ...pod, AZURE_CLIENT_ID: pasted, AZURE_FEDERATED_TOKEN_FILE: tokenFile }),
          )
          expect(malformed._tag).toBe("CredentialVariableMalformed")
          expect(malformed.message).toContain("AZURE_CLIENT_ID")
          expect(JSON.stringify(malformed) + malformed.message).not.toContain(pasted)
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
        // The token exchange needs the tenant and client too (@azure/identity's tokenExchangeMsi):
        // a token file alone leaves MSAL's source, here IMDS.
        expect(yield* endpointWith({ AZURE_FEDERATED_TOKEN_FILE: "/var/run/t" })).toBe(
          "IMDS http://169.254.169.254",
        )
        expect(yield* endpointWith({ AZURE_FEDERATED_TOKEN_FILE: "/var/run/t", AZURE_TENANT_ID: "t" })).toBe(
          "IMDS http://169.254.169.254",
        )
      }),
  )

  it.effect("workload_identity records the tenant, client and token file doctor shows", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(join(tmpdir(), "kvdeploy-wi-"))
      const tokenFile = join(dir, "token")
      writeFileSync(tokenFile, "eyJ.fake.token")
      try {
        const resolved = yield* makeCredential({ mode: "workload_identity", ...publicCloud }).pipe(
          withEnv({
            AZURE_TENANT_ID: "contoso.onmicrosoft.com",
            AZURE_CLIENT_ID: "00000000-0000-0000-0000-00000000000c",
            AZURE_FEDERATED_TOKEN_FILE: tokenFile,
          }),
        )
        expect(resolved.identity).toEqual({
          mode: "workload_identity",
          source: "WorkloadIdentityCredential",
          tenantId: "contoso.onmicrosoft.com",
          clientId: "00000000-0000-0000-0000-00000000000c",
          tokenFile,
          endpoint: publicCloud.authorityHost,
        })
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }),
  )

  it.effect("default builds from a sound environment and records the tenant it will use", () =>
    Effect.gen(function* () {
      const exit = yield* makeCredential({ mode: "default", ...publicCloud }).pipe(
        withEnv({ AZURE_TENANT_ID: "tenant-9" }),
        Effect.exit,
      )
      expect(Exit.isSuccess(exit)).toBe(true)
      if (Exit.isSuccess(exit)) expect(exit.value.identity.tenantId).toBe("tenant-9")
    }),
  )
})

describe("forConfiguredTenant: the tenant a Key Vault challenge names, against the one configured", () => {
  const id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
  /**
   * A credential that records the options of each token request and, as @azure/identity's do,
   * refuses a tenant it was not given (unless `allowsOthers`, as with additionally allowed tenants).
   */
  const recording = (configured: string, allowsOthers = false) => {
    const asked: Array<Record<string, unknown> | undefined> = []
    const credential: TokenCredential = {
      getToken: async (_scopes, options) => {
        asked.push(options === undefined ? undefined : { ...options })
        if (options?.tenantId !== undefined && options.tenantId !== configured && !allowsOthers)
          throw new Error(
            `The current credential is not configured to acquire tokens for tenant ${options.tenantId}.`,
          )
        return { token: "t", expiresOnTimestamp: Date.now() + 60_000 }
      },
    }
    return { asked, credential }
  }
  const challenge = { tenantId: id, enableCae: true, claims: "c" }

  it("a tenant id in lower case keeps the SDK's own check: the credential is used as it is", () => {
    const { credential } = recording(id)
    expect(forConfiguredTenant(id, credential)).toBe(credential)
    expect(forConfiguredTenant(undefined, credential)).toBe(credential)
  })

  it("the same id in upper case: the challenge's tenant is left out, the rest kept", async () => {
    const { asked, credential } = recording(id.toUpperCase())
    await forConfiguredTenant(id.toUpperCase(), credential).getToken("s", challenge)
    expect(asked).toEqual([{ enableCae: true, claims: "c" }])
  })

  it("a domain name: asked as the challenge asks; only the SDK's refusal of its tenant asks again without it", async () => {
    const refused = recording("contoso.onmicrosoft.com")
    await forConfiguredTenant("contoso.onmicrosoft.com", refused.credential).getToken("s", challenge)
    expect(refused.asked).toEqual([challenge, { enableCae: true, claims: "c" }])
    // Another tenant's vault the credential may reach (additionally allowed tenants): its token, once.
    const allowed = recording("contoso.onmicrosoft.com", true)
    await forConfiguredTenant("contoso.onmicrosoft.com", allowed.credential).getToken("s", challenge)
    expect(allowed.asked).toEqual([challenge])
    // Any other failure is the caller's to see, not asked again.
    const failing: TokenCredential = {
      getToken: async () => {
        throw new Error("AADSTS7000215: Invalid client secret provided.")
      },
    }
    await expect(
      forConfiguredTenant("contoso.onmicrosoft.com", failing).getToken("s", challenge),
    ).rejects.toThrow(/AADSTS7000215/)
  })

  it("a domain name and AADSTS700016 in the challenge's tenant: the vault's tenant's unless the home tenant answers AADSTS700016 too; a chain's noted answer is not asked again", async () => {
    const domain = "contoso.onmicrosoft.com"
    const vaultTenant = "11111111-2222-3333-4444-555555555555"
    const notFound = (directory: string) =>
      new Error(
        `AADSTS700016: Application with identifier '00000000-0000-0000-0000-0000000000c1' was not found in the directory '${directory}'.`,
      )
    /** The challenge's tenant answers AADSTS700016; the home tenant (asked without it) answers `home`. */
    const answering = (
      home: () => Promise<never> | Promise<{ token: string; expiresOnTimestamp: number }>,
    ) => {
      const asked: Array<string | undefined> = []
      const credential: TokenCredential = {
        getToken: async (_scopes, options) => {
          asked.push(options?.tenantId)
          if (options?.tenantId !== undefined) throw notFound(vaultTenant)
          return home()
        },
      }
      return { asked, credential }
    }
    const judged = async (home: Parameters<typeof answering>[0]) => {
      const { asked, credential } = answering(home)
      const error = await forConfiguredTenant(domain, credential)
        .getToken("s", { tenantId: vaultTenant })
        .then(
          () => undefined,
          (e: unknown) => e,
        )
      expect(String(error)).toContain("AADSTS700016")
      return { asked, mismatch: appNotInTenant(error, domain) }
    }
    const vaults = { vaultTenant, credentialTenant: domain }
    // Home gives a token: the client id is known there, the vault's tenant has no application of it.
    expect(await judged(async () => ({ token: "t", expiresOnTimestamp: Date.now() + 60_000 }))).toEqual({
      asked: [vaultTenant, undefined],
      mismatch: vaults,
    })
    // Home refuses the secret, or fails: Entra ID found the application first, so it stays the vault's tenant's.
    for (const home of [
      "AADSTS7000215: Invalid client secret provided.",
      "AADSTS50196: The server terminated an operation because it encountered a client request loop.",
      "connect ECONNREFUSED 127.0.0.1:443",
    ])
      expect((await judged(async () => Promise.reject(new Error(home)))).mismatch, home).toEqual(vaults)
    // Home answers AADSTS700016 too: no tenant knows the client id, a client id or tenant to check.
    expect((await judged(async () => Promise.reject(notFound(domain)))).mismatch).toBeUndefined()

    // A chain whose AADSTS700016 came from a source that noted its own tenant (a managed identity):
    // nothing is left to tell, so the home tenant is not asked again.
    const asked: Array<string | undefined> = []
    const chain: TokenCredential = {
      getToken: async (_scopes, options) => {
        asked.push(options?.tenantId)
        const inner = notFound(domain)
        noteOwnTenantRequested(inner)
        throw Object.assign(new Error("ChainedTokenCredential authentication failed."), {
          name: "AggregateAuthenticationError",
          errors: [inner],
        })
      },
    }
    const error = await forConfiguredTenant(domain, chain)
      .getToken("s", { tenantId: vaultTenant })
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    expect(asked).toEqual([vaultTenant])
    expect(appNotInTenant(error, domain)).toBeUndefined()

    // A real chain: a managed identity's AADSTS700016 (noted, its own tenant's) before a source that
    // asks the challenge's tenant and meets AADSTS700016 there, and a refused secret at home. The
    // managed identity's answer again on the second run is not the other source's: still the vault's.
    const { ChainedTokenCredential, CredentialUnavailableError } = await import("@azure/identity")
    const managed: TokenCredential = {
      getToken: async () => {
        const e = new CredentialUnavailableError(`ManagedIdentityCredential: ${notFound(domain).message}`)
        noteOwnTenantRequested(e)
        throw e
      },
    }
    const developer: TokenCredential = {
      getToken: async (_scopes, options) => {
        throw new CredentialUnavailableError(
          options?.tenantId === undefined
            ? "AADSTS7000215: Invalid client secret provided."
            : notFound(vaultTenant).message,
        )
      },
    }
    const mixed = await forConfiguredTenant(domain, new ChainedTokenCredential(managed, developer))
      .getToken("s", { tenantId: vaultTenant })
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    expect(appNotInTenant(mixed, domain)).toEqual(vaults)
  })

  it("an id in upper case and a challenge naming another tenant: passed on, for the SDK to refuse", async () => {
    const other = "00000000-0000-0000-0000-0000000000aa"
    const { asked, credential } = recording(id.toUpperCase())
    await expect(
      forConfiguredTenant(id.toUpperCase(), credential).getToken("s", { tenantId: other }),
    ).rejects.toThrow(/not configured to acquire tokens for tenant/)
    expect(asked).toEqual([{ tenantId: other }])
  })
})

describe("namingVaultTenant: a vault of another tenant, named as such", () => {
  const home = "72f988bf-86f1-41af-91ab-2d7cd011db47"
  const vaultTenant = "11111111-2222-3333-4444-555555555555"

  it("the SDK's refusal of the challenge's tenant (a real ClientSecretCredential, before any request) names both tenants and the fix", async () => {
    // Refused by @azure/identity before it sends anything: no authority is reached.
    const { ClientSecretCredential } = await import("@azure/identity")
    const sdk = new ClientSecretCredential(home, "00000000-0000-0000-0000-0000000000c1", "not-a-secret", {
      authorityHost: "https://127.0.0.1:9",
    })
    const error = await namingVaultTenant(home, sdk)
      .getToken("https://vault.azure.net/.default", { tenantId: vaultTenant })
      .then(
        () => undefined,
        (e: unknown) => e as Error & { code?: unknown; cause?: unknown },
      )
    expect(error?.name).toBe("CredentialUnavailableError")
    expect(error?.code).toBe(VAULT_TENANT_NOT_ALLOWED)
    expect(tenantNotAllowed(error)).toEqual({ vaultTenant, credentialTenant: home })
    expect(error?.message).toContain(
      `the vault is in tenant ${vaultTenant} (its challenge names it), not the credential's tenant ${home} (AZURE_TENANT_ID)`,
    )
    expect(error?.message).toContain(`AZURE_ADDITIONALLY_ALLOWED_TENANTS=${vaultTenant}`)
    // The SDK's own error stays its cause.
    expect(String((error?.cause as Error | undefined)?.message)).toContain(
      "not configured to acquire tokens for tenant",
    )
  })

  it("any other failure, and a success, pass through as they are; without a tenant the credential is kept", async () => {
    const refusedSecret = new Error("AADSTS7000215: Invalid client secret provided.")
    const failing: TokenCredential = {
      getToken: async () => {
        throw refusedSecret
      },
    }
    await expect(namingVaultTenant(home, failing).getToken("s", { tenantId: vaultTenant })).rejects.toBe(
      refusedSecret,
    )
    const token = { token: "t", expiresOnTimestamp: 1 }
    const working: TokenCredential = { getToken: async () => token }
    expect(await namingVaultTenant(home, working).getToken("s")).toBe(token)
    expect(namingVaultTenant(undefined, working)).toBe(working)
  })
})

describe("tenantNotAllowed: @azure/identity's refusal of another tenant, wherever it is", () => {
  const sdkText = (tenant: string) =>
    `The current credential is not configured to acquire tokens for tenant ${tenant}. To enable acquiring tokens for this tenant add it to the AdditionallyAllowedTenants on the credential options, or add "*" to AdditionallyAllowedTenants to allow acquiring tokens for any tenant.`
  const tenant = "11111111-2222-3333-4444-555555555555"

  it("alone, inside EnvironmentCredential's wrapper (default), and among a chain's errors; nothing else", () => {
    const alone = Object.assign(new Error(sdkText(tenant)), { name: "CredentialUnavailableError" })
    expect(tenantNotAllowed(alone)).toEqual({ vaultTenant: tenant, credentialTenant: undefined })
    const wrapped = Object.assign(
      new Error(
        `EnvironmentCredential authentication failed. To troubleshoot, visit https://aka.ms/azsdk/js/identity/environmentcredential/troubleshoot. Status code: 400\nMore details:\n${sdkText(tenant)},`,
      ),
      { name: "AuthenticationError" },
    )
    expect(tenantNotAllowed(wrapped)?.vaultTenant).toBe(tenant)
    const chain = Object.assign(new Error("ChainedTokenCredential authentication failed."), {
      name: "AggregateAuthenticationError",
      errors: [new Error("EnvironmentCredential is unavailable."), alone],
    })
    expect(tenantNotAllowed(chain)?.vaultTenant).toBe(tenant)
    expect(tenantNotAllowed(new Error("AADSTS90002: Tenant 'x' not found."))).toBeUndefined()
    expect(tenantNotAllowed(null)).toBeUndefined()
    expect(tenantNotAllowed("text")).toBeUndefined()
  })

  it("doctor's explanation of it says the tenants differ and what to do, not that no credential source is available", () => {
    const explained = explainTokenFailure(
      Object.assign(new Error(sdkText(tenant)), { name: "CredentialUnavailableError" }),
      "client_secret",
    )
    expect(explained.reason).toContain(`the vault is in tenant ${tenant} (its challenge names it)`)
    expect(explained.fix).toContain(`AZURE_TENANT_ID=${tenant}`)
    expect(explained.fix).toContain(`AZURE_ADDITIONALLY_ALLOWED_TENANTS=${tenant}`)
  })
})

describe("forKeyVaultScope: tokens for the vault's resource only", () => {
  const asked: Array<string | ReadonlyArray<string>> = []
  const inner: TokenCredential = {
    getToken: async (scopes) => {
      asked.push(scopes)
      return { token: "t", expiresOnTimestamp: Date.now() + 3_600_000 }
    },
  }
  it("passes the vault's scope however its resource is spelled, and refuses any other before asking", async () => {
    const credential = forKeyVaultScope("https://vault.azure.net/", inner)
    await credential.getToken("https://vault.azure.net/.default")
    await credential.getToken(["https://VAULT.azure.net//.default"])
    expect(asked).toEqual(["https://vault.azure.net/.default", ["https://VAULT.azure.net//.default"]])
    for (const scopes of [
      "https://management.azure.com/.default",
      ["https://vault.azure.net/.default", "https://graph.microsoft.com/.default"],
      "https://vault.azure.net.evil.example/.default",
    ])
      await expect(credential.getToken(scopes)).rejects.toMatchObject({
        name: "CredentialUnavailableError",
        message: expect.stringContaining(
          "kvdeploy asks for tokens for https://vault.azure.net/.default only",
        ),
      })
    expect(asked).toHaveLength(2)
  })
})
