/**
 * Every credential mode obtains a real token from @kvdeploy/kv-emulator's
 * Entra ID and managed-identity endpoints (HTTPS with the emulator's CA for
 * Entra, plain HTTP for managed identity, as on Azure), and the token opens
 * the vault. @azure/identity reads some variables from process.env when a
 * credential is built (managed identity endpoints, AZURE_* for
 * DefaultAzureCredential), so each test sets process.env around construction
 * and the token request, and restores it; vitest runs files in separate
 * workers, so no other file sees it.
 */
import { CertificateClient } from "@azure/keyvault-certificates"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { validateTargetConfigSync } from "@kvdeploy/core"
import { type AuthMode, type Emulator, start } from "@kvdeploy/kv-emulator"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import {
  type CredentialSettings,
  credentialSettingsFromTarget,
  diagnoseCredential,
  formatDiagnosis,
  keyVaultScope,
  makeCredential,
  probeToken,
  type ResolvedCredential,
} from "../src/index.js"
import { withEnvironment } from "./identityEnvironment.js"

let emulator: Emulator
beforeAll(async () => {
  emulator = await start({ vaults: ["creds"], warn: () => {} })
})
afterAll(() => emulator?.stop())

const settingsFor = (
  mode: AuthMode,
  overrides: Partial<Record<string, unknown>> = {},
): CredentialSettings => {
  const result = validateTargetConfigSync({ ...emulator.targetConfig("creds", "web", mode), ...overrides })
  if (Result.isFailure(result)) throw new Error(result.failure.message)
  return credentialSettingsFromTarget(result.success, { trustedCaPem: emulator.caPem })
}

/** The token opens the vault: a read answers 404 (not 401/403). */
const opensTheVault = (resolved: ResolvedCredential) =>
  Effect.promise(async () => {
    const client = new CertificateClient(emulator.vault("creds").url, resolved.credential, {
      tlsOptions: { ca: emulator.caPem },
      disableChallengeResourceVerification: true,
    })
    try {
      await client.getCertificate("does-not-exist")
      return 200
    } catch (e) {
      return (e as { statusCode?: number }).statusCode ?? 0
    }
  })

const obtain = (mode: AuthMode, settings: CredentialSettings) =>
  withEnvironment(
    emulator.env[mode],
    Effect.gen(function* () {
      const resolved = yield* makeCredential(settings)
      const token = yield* probeToken(resolved, keyVaultScope(emulator.keyvaultResource))
      const status = yield* opensTheVault(resolved)
      return { resolved, token, status }
    }),
  )

describe("each credential mode gets a token from the emulator", () => {
  it.live("client_secret from AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET", () =>
    Effect.gen(function* () {
      const { resolved, token, status } = yield* obtain("clientSecret", settingsFor("clientSecret"))
      expect(resolved.identity.source).toBe("ClientSecretCredential")
      expect(token.tenantId).toBe(emulator.tenantId)
      expect(token.appId).toBe(emulator.clientSecret.clientId)
      expect(token.audience?.replace(/\/$/, "")).toBe(emulator.keyvaultResource)
      expect(status).toBe(404)
    }),
  )

  it.live("workload_identity from a federated token file", () =>
    Effect.gen(function* () {
      const { resolved, token, status } = yield* obtain("workloadIdentity", settingsFor("workloadIdentity"))
      expect(resolved.identity.tokenFile).toBe(emulator.workloadIdentity.tokenFile)
      expect(token.appId).toBe(emulator.workloadIdentity.clientId)
      expect(status).toBe(404)
    }),
  )

  it.live("managed_identity through the App Service endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER)", () =>
    Effect.gen(function* () {
      const { resolved, token, status } = yield* obtain(
        "managedIdentityAppService",
        settingsFor("managedIdentityAppService"),
      )
      expect(resolved.identity.endpoint).toBe(
        `App Service endpoint ${emulator.managedIdentity.appServiceEndpoint}`,
      )
      expect(token.appId).toBe(emulator.managedIdentity.systemAssigned.clientId)
      expect(status).toBe(404)
    }),
  )

  it.live("managed_identity through IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST)", () =>
    Effect.gen(function* () {
      const { resolved, token, status } = yield* obtain(
        "managedIdentityImds",
        settingsFor("managedIdentityImds"),
      )
      expect(resolved.identity.endpoint).toBe(`IMDS ${emulator.managedIdentity.imdsHost}`)
      expect(token.appId).toBe(emulator.managedIdentity.systemAssigned.clientId)
      expect(status).toBe(404)
    }),
  )

  it.live("managed_identity selects the user-assigned identity by client id from the target", () =>
    Effect.gen(function* () {
      const settings = settingsFor("managedIdentityUserAssigned")
      expect(settings.managedIdentityClientId).toBe(emulator.managedIdentity.userAssigned.clientId)
      const { resolved, token, status } = yield* obtain("managedIdentityUserAssigned", settings)
      expect(resolved.identity.source).toContain("user-assigned")
      expect(token.appId).toBe(emulator.managedIdentity.userAssigned.clientId)
      expect(token.appId).not.toBe(emulator.managedIdentity.systemAssigned.clientId)
      expect(status).toBe(404)
    }),
  )
})

describe("managed_identity in an AKS workload identity pod (the token exchange)", () => {
  // A pod's workload identity variables without AZURE_AUTHORITY_HOST (a pod set up by hand; the
  // webhook sets it): the cloud comes from the target. ManagedIdentityCredential's own exchange would
  // ask the public cloud's authority, with Node's CAs only, and get no token from the emulator.
  const podVariables = (withClientId: boolean): Record<string, string> => {
    const { AZURE_AUTHORITY_HOST: _, AZURE_CLIENT_ID: clientId, ...rest } = emulator.env.workloadIdentity
    return withClientId && clientId !== undefined ? { ...rest, AZURE_CLIENT_ID: clientId } : rest
  }
  const exchange = (variables: Record<string, string>, settings: CredentialSettings) =>
    withEnvironment(
      variables,
      Effect.gen(function* () {
        const resolved = yield* makeCredential(settings)
        const token = yield* probeToken(resolved, keyVaultScope(emulator.keyvaultResource))
        return { resolved, token, status: yield* opensTheVault(resolved) }
      }),
    )

  it.live("a client id in the settings alone selects the exchange, at the target's cloud", () =>
    Effect.gen(function* () {
      const settings = {
        ...settingsFor("workloadIdentity"),
        mode: "managed_identity" as const,
        managedIdentityClientId: emulator.workloadIdentity.clientId,
      }
      const { resolved, token, status } = yield* exchange(podVariables(false), settings)
      expect(resolved.identity).toMatchObject({
        mode: "managed_identity",
        tenantId: emulator.tenantId,
        clientId: emulator.workloadIdentity.clientId,
        tokenFile: emulator.workloadIdentity.tokenFile,
        endpoint: `Entra ID token exchange at ${emulator.authorityHost} (workload identity's federated token)`,
      })
      expect(resolved.identity.source).toContain("user-assigned, the managed identity's AKS token exchange")
      expect(token.appId).toBe(emulator.workloadIdentity.clientId)
      expect(status).toBe(404)
      // A challenge naming the tenant otherwise (a domain name, another tenant's id) changes nothing:
      // the exchange asks AZURE_TENANT_ID's tenant, as ManagedIdentityCredential's own exchange does.
      const asked = yield* Effect.promise(() =>
        resolved.credential.getToken(keyVaultScope(emulator.keyvaultResource), {
          tenantId: "contoso.onmicrosoft.com",
        }),
      )
      expect(asked?.token.length).toBeGreaterThan(0)
    }),
  )

  it.live("without a client id in the settings, AZURE_CLIENT_ID names the identity", () =>
    Effect.gen(function* () {
      const settings = { ...settingsFor("workloadIdentity"), mode: "managed_identity" as const }
      const { resolved, token } = yield* exchange(podVariables(true), settings)
      expect(resolved.identity.source).toBe(
        "WorkloadIdentityCredential (the managed identity's AKS token exchange)",
      )
      expect(token.appId).toBe(emulator.workloadIdentity.clientId)
    }),
  )
})

describe("DefaultAzureCredential picks the source the environment configures", () => {
  const viaDefault = (mode: AuthMode) => obtain(mode, { ...settingsFor(mode), mode: "default" })

  it.live("environment (client secret)", () =>
    Effect.gen(function* () {
      const { token, status } = yield* viaDefault("clientSecret")
      expect(token.answeredBy).toBe("EnvironmentCredential")
      expect(token.appId).toBe(emulator.clientSecret.clientId)
      expect(status).toBe(404)
    }),
  )

  it.live("workload identity", () =>
    Effect.gen(function* () {
      const { token } = yield* viaDefault("workloadIdentity")
      expect(token.answeredBy).toBe("WorkloadIdentityCredential")
      expect(token.appId).toBe(emulator.workloadIdentity.clientId)
    }),
  )

  it.live("managed identity (IMDS)", () =>
    Effect.gen(function* () {
      const { token } = yield* viaDefault("managedIdentityImds")
      expect(token.answeredBy).toBe("ManagedIdentityCredential")
      expect(token.appId).toBe(emulator.managedIdentity.systemAssigned.clientId)
    }),
  )

  it.live("managed identity (IMDS), the user-assigned identity the settings name", () =>
    Effect.gen(function* () {
      // No AZURE_CLIENT_ID in this environment: only the settings name the user-assigned identity.
      const settings = {
        ...settingsFor("managedIdentityImds"),
        mode: "default" as const,
        managedIdentityClientId: emulator.managedIdentity.userAssigned.clientId,
      }
      const { resolved, token } = yield* obtain("managedIdentityImds", settings)
      expect(resolved.identity.clientId).toBe(emulator.managedIdentity.userAssigned.clientId)
      expect(token.answeredBy).toBe("ManagedIdentityCredential")
      expect(token.appId).toBe(emulator.managedIdentity.userAssigned.clientId)
    }),
  )
})

describe("doctor", () => {
  // When no source answers: defaultChainFailure.test.ts (its own process: MSAL keeps the managed
  // identity source it found, and this file's tests found one).
  it.live("default chain: names the source that answered", () =>
    Effect.gen(function* () {
      const settings = { ...settingsFor("managedIdentityAppService"), mode: "default" as const }
      const answered = yield* withEnvironment(
        emulator.env.managedIdentityAppService,
        diagnoseCredential(settings),
      )
      expect(answered.ok).toBe(true)
      expect(answered.token?.answeredBy).toBe("ManagedIdentityCredential")
      expect(formatDiagnosis(answered).join("\n")).toContain(
        "from ManagedIdentityCredential (the default chain's source that answered)",
      )
    }),
  )

  it.live(
    "reports which credential, tenant and client worked, and never prints the token or the secret",
    () =>
      Effect.gen(function* () {
        const settings = settingsFor("clientSecret")
        const { diagnosis, token } = yield* withEnvironment(
          emulator.env.clientSecret,
          Effect.gen(function* () {
            const diagnosis = yield* diagnoseCredential(settings)
            const resolved = yield* makeCredential(settings)
            const token = yield* Effect.promise(() =>
              resolved.credential.getToken(keyVaultScope(emulator.keyvaultResource)),
            )
            return { diagnosis, token }
          }),
        )
        expect(diagnosis.ok).toBe(true)
        const text = formatDiagnosis(diagnosis).join("\n")
        expect(text).toContain(`tenant ${emulator.tenantId}`)
        expect(text).toContain(`client ${emulator.clientSecret.clientId}`)
        expect(text).toContain("[ok] token: obtained for")
        expect(token?.token.length ?? 0).toBeGreaterThan(20)
        expect(text).not.toContain(token?.token.slice(-24) ?? "unreachable")
        expect(text).not.toContain(emulator.clientSecret.clientSecret)
        expect(JSON.stringify(diagnosis)).not.toContain(emulator.clientSecret.clientSecret)
      }),
  )

  it.live("Entra ID throttling (429): the identity provider is throttling for now, not a refusal", () =>
    Effect.acquireUseRelease(
      Effect.sync(() =>
        emulator.faults.add({
          operation: "token",
          times: 10,
          action: { kind: "throttle", retryAfterSeconds: 0 },
        }),
      ),
      () =>
        Effect.gen(function* () {
          const diagnosis = yield* withEnvironment(
            emulator.env.clientSecret,
            diagnoseCredential(settingsFor("clientSecret")),
          )
          expect(diagnosis.ok).toBe(false)
          const token = diagnosis.checks.find((c) => c.name === "token")
          expect(token?.status).toBe("failed")
          expect(token?.detail).toMatch(
            /^the identity provider \(Entra ID or the managed identity endpoint\) is unavailable or throttling for now/,
          )
          expect(token?.fix).toBe("Retry in a few minutes; nothing is wrong with the credential itself")
        }),
      (id) => Effect.sync(() => emulator.faults.remove(id)),
    ),
  )

  it.live("a wrong client secret: Entra ID refused it, with the fix", () =>
    Effect.gen(function* () {
      const wrong = "not-the-right-secret-0000000000"
      const diagnosis = yield* withEnvironment(
        { ...emulator.env.clientSecret, AZURE_CLIENT_SECRET: wrong },
        diagnoseCredential(settingsFor("clientSecret")),
      )
      expect(diagnosis.ok).toBe(false)
      const text = formatDiagnosis(diagnosis).join("\n")
      expect(text).toContain("[FAILED] token: Entra ID refused the client secret")
      // With the identity library's own line: Entra ID's code, which says why (AADSTS7000215).
      const token = diagnosis.checks.find((c) => c.name === "token")
      expect(token?.detail).toMatch(/\(.*AADSTS7000215/)
      expect(text).not.toContain(wrong)
    }),
  )

  it.live("an unknown tenant: the authority's answer names the tenant to check, not only the network", () =>
    Effect.gen(function* () {
      // A custom cloud's authority (the emulator's): MSAL reads the tenant's OpenID configuration
      // first, which Entra answers 400 invalid_tenant (AADSTS90002) for a tenant it does not know.
      const diagnosis = yield* withEnvironment(
        { ...emulator.env.clientSecret, AZURE_TENANT_ID: "00000000-0000-0000-0000-00000000dead" },
        diagnoseCredential(settingsFor("clientSecret")),
      )
      expect(diagnosis.ok).toBe(false)
      const token = diagnosis.checks.find((c) => c.name === "token")
      expect(token?.status).toBe("failed")
      expect(token?.detail).toMatch(/did not serve the tenant's OpenID configuration/)
      expect(token?.fix).toMatch(/AZURE_TENANT_ID/)
      expect(token?.fix).toContain("cloud.authority_host in the target configuration")
    }),
  )
})
