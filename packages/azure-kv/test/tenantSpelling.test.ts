/**
 * The tenant as an operator may write it. Key Vault's challenge names the vault's tenant by its id
 * in lower case, and keyvault-common asks the credential for a token of that tenant;
 * @azure/identity's credentials refuse a tenant other than the one they were given, comparing the
 * text exactly. A tenant given as its domain name, or as its id in upper case, is the same tenant:
 * deploys with it work, through the challenge, over HTTPS with the real SDKs. The last test shows
 * the SDK's refusal these deploys would meet without @kvdeploy/credentials' handling.
 *
 * And the resource the challenge names: a custom cloud's vault is not checked against it (the SDK
 * is told not to: its host is not one the SDK knows), so the credential gives tokens for the target
 * cloud's keyvault_resource only. A vault whose challenge names another resource (a hostile or
 * misconfigured endpoint asking for a token for another API) gets no token, and the deploy says why.
 */
import { ClientSecretCredential } from "@azure/identity"
import { CertificateClient } from "@azure/keyvault-certificates"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import type { DeployOutcome } from "@kvdeploy/core"
import { withIdentityEnvironment } from "@kvdeploy/core/test"
import { credentialSettingsFromTarget, makeCredential } from "@kvdeploy/credentials"
import type { AuthMode, Emulator } from "@kvdeploy/kv-emulator"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import {
  credentialFor,
  deployOnce,
  fastReads,
  startEmulator,
  targetFor,
  worldLayer,
} from "./support/emulator.js"
import { type Issuer, makeCa, makeMaterial } from "./support/pki.js"

const VAULT = "tenants"
/** A vault of another tenant, which the application may reach (AZURE_ADDITIONALLY_ALLOWED_TENANTS). */
const OTHER = "tenants-other"
const OTHER_TENANT = "11111111-2222-3333-4444-555555555555"
let emulator: Emulator
let ca: Issuer

beforeAll(async () => {
  emulator = await startEmulator({ vaults: [VAULT, { name: OTHER, tenantId: OTHER_TENANT }] })
  ca = await makeCa()
})
afterAll(() => emulator?.stop())

const cases: ReadonlyArray<{
  readonly name: string
  readonly mode: AuthMode
  readonly credentialMode?: string
  readonly tenant: () => string
}> = [
  {
    name: "client_secret, the tenant's domain name",
    mode: "clientSecret",
    tenant: () => emulator.tenantDomain,
  },
  {
    name: "client_secret, the tenant's id in upper case",
    mode: "clientSecret",
    tenant: () => emulator.tenantId.toUpperCase(),
  },
  {
    name: "workload_identity, the tenant's domain name",
    mode: "workloadIdentity",
    tenant: () => emulator.tenantDomain.toUpperCase(),
  },
  {
    name: "default (its environment source), the tenant's domain name",
    mode: "clientSecret",
    credentialMode: "default",
    tenant: () => emulator.tenantDomain,
  },
]

describe("a tenant written as its domain name or its id in upper case", () => {
  for (const c of cases)
    it.live(`${c.name}: the deploy gets its token through the vault's challenge and succeeds`, () =>
      Effect.gen(function* () {
        const name = `tenant-${cases.indexOf(c)}`
        const target = targetFor(
          emulator,
          VAULT,
          name,
          c.credentialMode === undefined ? {} : { credential_mode: c.credentialMode },
          c.mode,
        )
        const tenant = c.tenant()
        const variables: Record<string, string> = { ...emulator.env[c.mode], AZURE_TENANT_ID: tenant }
        // DefaultAzureCredential's sources read process.env themselves, when it is built.
        const make = makeCredential(
          credentialSettingsFromTarget(target, { trustedCaPem: emulator.caPem }),
        ).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(variables))))
        const resolved = yield* c.credentialMode === "default"
          ? withIdentityEnvironment(variables, make)
          : make
        expect(resolved.identity.tenantId).toBe(tenant)
        const material = yield* Effect.promise(() => makeMaterial(ca))
        const since = emulator.requests.mark()
        const outcome: DeployOutcome = yield* deployOnce(target, material, name).pipe(
          fastReads,
          Effect.provide(worldLayer(emulator, target, resolved.credential)),
        )
        expect(outcome._tag, outcome.reason).toBe("Succeeded")
        // The challenge was answered: the vault named its tenant, and the token was for it.
        const entries = emulator.requests.entries({ vault: VAULT, since })
        expect(entries.filter((e) => e.challenge).length).toBeGreaterThan(0)
        expect(entries.filter((e) => !e.challenge).map((e) => `${e.operation} ${e.status}`)).toEqual([
          "getLatest 404",
          "import 200",
          "getLatest 200",
        ])
      }),
    )

  it.live(
    "default with the domain name and AZURE_ADDITIONALLY_ALLOWED_TENANTS: a vault of another tenant gets that tenant's token",
    () =>
      Effect.gen(function* () {
        // A multi-tenant application with a service principal in the vault's tenant (Entra ID gives
        // it no token of a tenant it is not provisioned in).
        emulator.tenancy.provision(emulator.clientSecret.clientId, OTHER_TENANT)
        const target = targetFor(emulator, OTHER, "cross-tenant", { credential_mode: "default" })
        const variables: Record<string, string> = {
          ...emulator.env.clientSecret,
          AZURE_TENANT_ID: emulator.tenantDomain,
          AZURE_ADDITIONALLY_ALLOWED_TENANTS: "*",
        }
        const resolved = yield* withIdentityEnvironment(
          variables,
          makeCredential(credentialSettingsFromTarget(target, { trustedCaPem: emulator.caPem })).pipe(
            Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(variables))),
          ),
        )
        const material = yield* Effect.promise(() => makeMaterial(ca))
        const outcome: DeployOutcome = yield* deployOnce(target, material, "cross-tenant").pipe(
          fastReads,
          Effect.provide(worldLayer(emulator, target, resolved.credential)),
        )
        expect(outcome._tag, outcome.reason).toBe("Succeeded")
      }).pipe(
        Effect.ensuring(
          Effect.sync(() => emulator.tenancy.withdraw(emulator.clientSecret.clientId, OTHER_TENANT)),
        ),
      ),
  )

  it.live(
    "the SDK's own credential with the domain name refuses the challenge's tenant (what kvdeploy handles)",
    () =>
      Effect.gen(function* () {
        const credential = new ClientSecretCredential(
          emulator.tenantDomain,
          emulator.clientSecret.clientId,
          emulator.clientSecret.clientSecret,
          { authorityHost: emulator.authorityHost },
        )
        const sdk = new CertificateClient(emulator.vault(VAULT).url, credential, {
          tlsOptions: { ca: emulator.caPem },
          disableChallengeResourceVerification: true,
        })
        const error = yield* Effect.flip(Effect.tryPromise(() => sdk.getCertificate("tenant-0")))
        expect(String(error.cause)).toContain(
          `not configured to acquire tokens for tenant ${emulator.tenantId}`,
        )
      }),
  )
})

describe("tokens for the target cloud's Key Vault resource only", () => {
  it.live("a challenge naming another resource gets no token: Failed, nothing sent but the challenge", () =>
    Effect.gen(function* () {
      const served = targetFor(emulator, VAULT, "scoped")
      const target = {
        ...served,
        cloud: { ...served.cloud, keyVaultResource: "https://vault.elsewhere.example" },
      }
      const credential = yield* credentialFor(emulator, target)
      const material = yield* Effect.promise(() => makeMaterial(ca))
      const since = emulator.requests.mark()
      const outcome: DeployOutcome = yield* deployOnce(target, material, "scoped").pipe(
        fastReads,
        Effect.provide(worldLayer(emulator, target, credential)),
      )
      expect(outcome._tag, outcome.reason).toBe("Failed")
      expect(outcome.reason).toContain(
        "kvdeploy asks for tokens for https://vault.elsewhere.example/.default only (the target cloud's keyvault_resource), and the vault asked for",
      )
      // Not "credential": the configuration or the vault URL is to fix, not the credential.
      expect(outcome._tag === "Failed" ? outcome.refusal : undefined).toBe("resource")
      const entries = emulator.requests.entries({ vault: VAULT, since })
      expect(entries.filter((e) => !e.challenge)).toEqual([])
      // The same vault, its own resource: deployed.
      const ok: DeployOutcome = yield* deployOnce(served, material, "scoped").pipe(
        fastReads,
        Effect.provide(worldLayer(emulator, served, yield* credentialFor(emulator, served))),
      )
      expect(ok._tag, ok.reason).toBe("Succeeded")
    }),
  )
})
