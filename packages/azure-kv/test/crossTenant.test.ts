/**
 * A vault in another Entra tenant than the credential's, over HTTPS with the real SDKs. Key
 * Vault's challenge names the vault's tenant; keyvault-common asks the credential for a token of
 * it, and @azure/identity's credentials refuse another tenant than their own unless it is
 * additionally allowed, before sending anything (a managed identity's token is of its own tenant
 * whatever is asked, and Key Vault refuses it: AKV10032). Either way the deploy fails with
 * `refusal: "tenant"`, and its reason says that the tenants differ, names both, and what to do:
 * an identity of the vault's tenant, or that tenant in AZURE_ADDITIONALLY_ALLOWED_TENANTS, which
 * kvdeploy gives every credential that asks Entra ID.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type DeployOutcome, Vault } from "@kvdeploy/core"
import { withIdentityEnvironment } from "@kvdeploy/core/test"
import { credentialSettingsFromTarget, makeCredential } from "@kvdeploy/credentials"
import type { AuthMode, Emulator } from "@kvdeploy/kv-emulator"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import { deployOnce, fastReads, startEmulator, targetFor, worldLayer } from "./support/emulator.js"
import { type Issuer, makeCa, makeMaterial } from "./support/pki.js"

const VAULT = "cross-tenant"
const VAULT_TENANT = "11111111-2222-3333-4444-555555555555"
/** A vault in the emulator's own tenant, the credential's. */
const SAME_TENANT_VAULT = "same-tenant"
let emulator: Emulator
let ca: Issuer

beforeAll(async () => {
  emulator = await startEmulator({ vaults: [{ name: VAULT, tenantId: VAULT_TENANT }, SAME_TENANT_VAULT] })
  ca = await makeCa()
})
afterAll(() => emulator?.stop())

/** Deploy `name` to the other tenant's vault with the credential of `mode` built from `variables`. */
const deployWith = (
  name: string,
  mode: AuthMode,
  extra: Readonly<Record<string, string>> = {},
  credentialMode?: string,
  vault: string = VAULT,
) =>
  Effect.gen(function* () {
    const target = targetFor(
      emulator,
      vault,
      name,
      credentialMode === undefined ? {} : { credential_mode: credentialMode },
      mode,
    )
    const variables = { ...emulator.env[mode], ...extra }
    // DefaultAzureCredential's and ManagedIdentityCredential's sources read process.env themselves.
    const resolved = yield* withIdentityEnvironment(
      variables,
      makeCredential(credentialSettingsFromTarget(target, { trustedCaPem: emulator.caPem })).pipe(
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(variables))),
      ),
    )
    const material = yield* Effect.promise(() => makeMaterial(ca))
    const since = emulator.requests.mark()
    const outcome: DeployOutcome = yield* withIdentityEnvironment(
      variables,
      deployOnce(target, material, name).pipe(
        fastReads,
        Effect.provide(worldLayer(emulator, target, resolved.credential)),
      ),
    )
    const sent = emulator.requests
      .entries({ vault, since })
      .filter((e) => !e.challenge)
      .map((e) => `${e.operation} ${e.status}`)
    return { outcome, sent, target, credential: resolved.credential, variables }
  })

/** What every tenant refusal's reason says: both tenants where known, and the two ways out. */
const expectTenantAdvice = (reason: string) => {
  expect(reason).toContain(`the vault is in tenant ${VAULT_TENANT} (its challenge names it)`)
  expect(reason).toContain(`AZURE_TENANT_ID=${VAULT_TENANT}`)
  expect(reason).toContain(`AZURE_ADDITIONALLY_ALLOWED_TENANTS=${VAULT_TENANT}`)
  expect(reason).not.toContain("grant")
  expect(reason).not.toContain("AdditionallyAllowedTenants on the credential options")
}

describe("a vault in another tenant than the credential's", () => {
  const refusedBeforeSending: ReadonlyArray<{
    readonly name: string
    readonly mode: AuthMode
    readonly credentialMode?: string
  }> = [
    { name: "client_secret", mode: "clientSecret" },
    { name: "workload_identity", mode: "workloadIdentity" },
    { name: "default (its environment source)", mode: "clientSecret", credentialMode: "default" },
  ]
  for (const c of refusedBeforeSending)
    it.live(`${c.name}: Failed, refusal "tenant", nothing sent but the challenge, both tenants named`, () =>
      Effect.gen(function* () {
        const { outcome, sent } = yield* deployWith(
          `refused-${refusedBeforeSending.indexOf(c)}`,
          c.mode,
          {},
          c.credentialMode,
        )
        expect(outcome._tag, outcome.reason).toBe("Failed")
        if (outcome._tag !== "Failed") return
        expect(outcome.refusal).toBe("tenant")
        expect(outcome.unsent).toBe(true)
        expectTenantAdvice(outcome.reason)
        expect(outcome.reason).toContain(`not the credential's tenant ${emulator.tenantId} (AZURE_TENANT_ID)`)
        expect(sent).toEqual([])
      }),
    )

  it.live(
    `managed_identity: its token (of its own tenant) is refused by the vault (401): refusal "tenant" with both tenants; a list's 401 names the vault's tenant`,
    () =>
      Effect.gen(function* () {
        const { outcome, sent, target, credential, variables } = yield* deployWith(
          "managed",
          "managedIdentityAppService",
        )
        expect(outcome._tag, outcome.reason).toBe("Failed")
        if (outcome._tag !== "Failed") return
        expect(outcome.refusal).toBe("tenant")
        expect(outcome.unsent).toBeUndefined()
        expectTenantAdvice(outcome.reason)
        expect(outcome.reason).toContain(`the token is of tenant ${emulator.tenantId}`)
        expect(sent).toEqual(["getLatest 401"])
        // A version list's 401 comes without Key Vault's words (the SDK's "Pagination failed with
        // unexpected statusCode 401", no body): the token's tenant is not known, the vault's is.
        const listed = yield* withIdentityEnvironment(
          variables,
          Effect.gen(function* () {
            const vault = yield* Vault
            return yield* vault.listVersions("managed")
          }).pipe(Effect.flip, Effect.provide(worldLayer(emulator, target, credential))),
        )
        expect(listed._tag).toBe("VaultForbidden")
        expect(listed._tag === "VaultForbidden" ? listed.refusal : undefined).toBe("token")
        expect(listed.message).toContain(
          `against the vault's tenant ${VAULT_TENANT} that its challenge names`,
        )
      }),
  )

  it.live(
    `client_secret with the tenant's domain name: asked again without the challenge's tenant, the token is refused (401): refusal "tenant"`,
    () =>
      Effect.gen(function* () {
        const { outcome, sent } = yield* deployWith("by-domain", "clientSecret", {
          AZURE_TENANT_ID: emulator.tenantDomain,
        })
        expect(outcome._tag, outcome.reason).toBe("Failed")
        if (outcome._tag !== "Failed") return
        expect(outcome.refusal).toBe("tenant")
        expectTenantAdvice(outcome.reason)
        expect(outcome.reason).toContain(`the token is of tenant ${emulator.tenantId}`)
        expect(sent).toEqual(["getLatest 401"])
      }),
  )

  const allowed: ReadonlyArray<{ readonly name: string; readonly mode: AuthMode }> = [
    { name: "client_secret", mode: "clientSecret" },
    { name: "workload_identity", mode: "workloadIdentity" },
  ]
  /** The client id of the application `mode` uses. */
  const appOf = (mode: AuthMode): string =>
    mode === "clientSecret" ? emulator.clientSecret.clientId : emulator.workloadIdentity.clientId
  for (const c of allowed)
    it.live(
      `${c.name} with AZURE_ADDITIONALLY_ALLOWED_TENANTS naming the vault's tenant, the application provisioned there: deployed`,
      () =>
        Effect.gen(function* () {
          // A multi-tenant application with a service principal in the vault's tenant.
          emulator.tenancy.provision(appOf(c.mode), VAULT_TENANT)
          const { outcome, sent } = yield* deployWith(`allowed-${allowed.indexOf(c)}`, c.mode, {
            // As an operator may write it: another tenant first, spaces around the separator.
            AZURE_ADDITIONALLY_ALLOWED_TENANTS: `99999999-0000-0000-0000-000000000000 ; ${VAULT_TENANT}`,
          }).pipe(Effect.ensuring(Effect.sync(() => emulator.tenancy.withdraw(appOf(c.mode), VAULT_TENANT))))
          expect(outcome._tag, outcome.reason).toBe("Succeeded")
          expect(sent).toEqual(["getLatest 404", "import 200", "getLatest 200"])
        }),
    )

  for (const c of allowed)
    it.live(
      `${c.name} with the vault's tenant allowed, the application not provisioned there (AADSTS700016): refusal "tenant", nothing sent, provision it or use an identity of that tenant`,
      () =>
        Effect.gen(function* () {
          const { outcome, sent } = yield* deployWith(`unprovisioned-${allowed.indexOf(c)}`, c.mode, {
            AZURE_ADDITIONALLY_ALLOWED_TENANTS: VAULT_TENANT,
          })
          expect(outcome._tag, outcome.reason).toBe("Failed")
          if (outcome._tag !== "Failed") return
          expect(outcome.refusal).toBe("tenant")
          expect(outcome.unsent).toBe(true)
          expectNotFoundInVaultTenant(outcome.reason, emulator.tenantId)
          expect(sent).toEqual([])
        }),
    )

  it.live(
    `AZURE_TENANT_ID the credential's domain name, the vault's tenant allowed, the application not provisioned there: refusal "tenant" (Entra ID names the vault's tenant by its id, which no text compares with a domain)`,
    () =>
      Effect.gen(function* () {
        const { outcome, sent } = yield* deployWith("unprovisioned-domain", "clientSecret", {
          AZURE_TENANT_ID: emulator.tenantDomain,
          AZURE_ADDITIONALLY_ALLOWED_TENANTS: VAULT_TENANT,
        })
        expect(outcome._tag, outcome.reason).toBe("Failed")
        if (outcome._tag !== "Failed") return
        expect(outcome.refusal).toBe("tenant")
        expect(outcome.unsent).toBe(true)
        expectNotFoundInVaultTenant(outcome.reason, emulator.tenantDomain)
        expect(sent).toEqual([])
      }),
  )

  for (const allowedTenants of [VAULT_TENANT, "*"])
    it.live(
      `a mistyped AZURE_CLIENT_ID with ${allowedTenants} allowed: Entra ID answers AADSTS700016 in the vault's tenant, and the reason says the client id may be wrong as well as the application unprovisioned`,
      () =>
        Effect.gen(function* () {
          const { outcome, sent } = yield* deployWith(
            `mistyped-${allowedTenants === "*" ? "any" : "vault"}`,
            "clientSecret",
            {
              AZURE_CLIENT_ID: "deadbeef-0000-0000-0000-000000000000",
              AZURE_ADDITIONALLY_ALLOWED_TENANTS: allowedTenants,
            },
          )
          expect(outcome._tag, outcome.reason).toBe("Failed")
          if (outcome._tag !== "Failed") return
          expect(outcome.refusal).toBe("tenant")
          expectNotFoundInVaultTenant(outcome.reason, emulator.tenantId)
          expect(sent).toEqual([])
        }),
    )

  it.live(
    `default chain's managed identity (the AKS token exchange) with a mistyped AZURE_CLIENT_ID: the exchange asks its own tenant whatever the challenge names, so AADSTS700016 is a refused credential, not the vault's tenant`,
    () =>
      Effect.gen(function* () {
        const { outcome, sent } = yield* deployWith(
          "exchange-mistyped",
          "workloadIdentity",
          {
            AZURE_TOKEN_CREDENTIALS: "ManagedIdentityCredential",
            AZURE_CLIENT_ID: "deadbeef-0000-0000-0000-000000000000",
          },
          "default",
        )
        expect(outcome._tag, outcome.reason).toBe("Failed")
        if (outcome._tag !== "Failed") return
        expect(outcome.refusal).toBe("credential")
        expect(outcome.reason).not.toContain(`no application of this client id in tenant ${VAULT_TENANT}`)
        expect(outcome.reason).not.toContain(`provision the application in tenant ${VAULT_TENANT}`)
        expect(outcome.reason).toContain("AADSTS700016")
        expect(sent).toEqual([])
      }),
  )

  it.live(
    `default chain's managed identity at its endpoint (App Service), which knows no tenant, answering AADSTS700016: a refused credential, not the vault's tenant`,
    () =>
      Effect.gen(function* () {
        // The endpoint passes on Entra ID's refusal of an identity its tenant does not know. A
        // user-assigned identity by a client id no other case asks for: MSAL's managed identity
        // token cache is shared by every credential in the process.
        const fault = emulator.faults.add({
          operation: "appServiceToken",
          action: {
            kind: "rawAnswer",
            status: 400,
            contentType: "application/json",
            body: JSON.stringify({
              statusCode: 400,
              message: `AADSTS700016: Application with identifier 'deadbeef-0000-0000-0000-000000000000' was not found in the directory '${emulator.tenantId}'.`,
            }),
          },
        })
        const { outcome, sent } = yield* deployWith(
          "endpoint-unknown",
          "managedIdentityAppService",
          {
            AZURE_TOKEN_CREDENTIALS: "ManagedIdentityCredential",
            AZURE_TENANT_ID: emulator.tenantId,
            AZURE_CLIENT_ID: "deadbeef-0000-0000-0000-000000000000",
            AZURE_ADDITIONALLY_ALLOWED_TENANTS: "*",
          },
          "default",
        ).pipe(Effect.ensuring(Effect.sync(() => emulator.faults.remove(fault))))
        expect(outcome._tag, outcome.reason).toBe("Failed")
        if (outcome._tag !== "Failed") return
        expect(outcome.reason).toContain("AADSTS700016")
        expect(outcome.reason).not.toContain(`no application of this client id in tenant ${VAULT_TENANT}`)
        expect(outcome.refusal).toBe("credential")
        expect(sent).toEqual([])
      }),
  )

  it.live(
    `AZURE_TENANT_ID the credential's domain name, the vault in that same tenant, any tenant allowed, a mistyped AZURE_CLIENT_ID: a refused credential, not "the tenants differ" (the vault's id asked is the domain's own tenant)`,
    () =>
      Effect.gen(function* () {
        const { outcome, sent } = yield* deployWith(
          "same-tenant-mistyped",
          "clientSecret",
          {
            AZURE_TENANT_ID: emulator.tenantDomain,
            AZURE_ADDITIONALLY_ALLOWED_TENANTS: "*",
            AZURE_CLIENT_ID: "deadbeef-0000-0000-0000-000000000000",
          },
          undefined,
          SAME_TENANT_VAULT,
        )
        expect(outcome._tag, outcome.reason).toBe("Failed")
        if (outcome._tag !== "Failed") return
        expect(outcome.refusal).toBe("credential")
        expect(outcome.reason).not.toContain("the vault's, which the credential asked a token of")
        // As before the tenant asked was noted: the credential's own tenant does not know the client id.
        expect(outcome.reason).toContain("Entra ID does not know this client id in this tenant")
        expect(sent).toEqual([])
      }),
  )
})

/**
 * AADSTS700016 in the vault's tenant, which the credential asked (it was allowed): the reason names
 * both tenants and both causes (no service principal there, or a client id that is no
 * application's), and the fixes for each, without allowing the tenant again.
 */
const expectNotFoundInVaultTenant = (reason: string, own: string) => {
  expect(reason).toContain(`in tenant ${VAULT_TENANT}, the vault's, which the credential asked a token of`)
  expect(reason).toContain(`the credential's own tenant is ${own} (AZURE_TENANT_ID)`)
  expect(reason).toContain("the application has no service principal in the vault's tenant")
  expect(reason).toContain("or AZURE_CLIENT_ID is not the application's id")
  expect(reason).toContain("check AZURE_CLIENT_ID")
  expect(reason).toContain(`provision the application in tenant ${VAULT_TENANT}`)
  expect(reason).toContain(`AZURE_TENANT_ID=${VAULT_TENANT}`)
  // The request reached the vault's tenant: it is allowed already.
  expect(reason).not.toContain("AZURE_ADDITIONALLY_ALLOWED_TENANTS")
  expect(reason).not.toContain("Check AZURE_CLIENT_ID and AZURE_TENANT_ID")
}
