/**
 * Whether a mode's credential reads the federated token file, by @azure/identity's own rule (its
 * DefaultAzureCredential's factories, ManagedIdentityCredential's tokenExchangeMsi), without a
 * request: doctor's `federated token` check is made where it does (federatedTokenDoctor.test.ts
 * checks it against the real SDK's token requests).
 */
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import {
  type CredentialIdentity,
  type CredentialSettings,
  type FederatedTokenUse,
  federatedTokenUse,
  federatedTokenUseCheck,
} from "../src/index.js"

const tenant = "11111111-2222-3333-4444-555555555555"
const client = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
const configured = "99999999-8888-7777-6666-555555555555"
const file = "/var/run/secrets/azure/tokens/azure-identity-token"
const pod = { AZURE_TENANT_ID: tenant, AZURE_CLIENT_ID: client, AZURE_FEDERATED_TOKEN_FILE: file }
const authorityHost = "https://login.microsoftonline.com"

const useOf = (
  mode: CredentialSettings["mode"],
  vars: Record<string, string>,
  options: { readonly clientId?: string; readonly identity?: Partial<CredentialIdentity> } = {},
) =>
  Effect.runSync(
    federatedTokenUse(
      {
        mode,
        authorityHost,
        ...(options.clientId === undefined ? {} : { managedIdentityClientId: options.clientId }),
      },
      { mode, source: "test", ...options.identity },
    ).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(vars)))),
  )

describe("federatedTokenUse: whether the SDK reads the federated token file", () => {
  it("default: in a workload identity pod, its workload identity and its managed identity's exchange read it", () => {
    expect(useOf("default", pod)).toEqual({
      _tag: "Read",
      tokenFile: file,
      reader:
        "the chain's WorkloadIdentityCredential, and its ManagedIdentityCredential's AKS token exchange",
    })
    // AZURE_TOKEN_CREDENTIALS as the SDK reads it (trimmed, any case): one source, or none that reads it.
    expect(
      useOf("default", { ...pod, AZURE_TOKEN_CREDENTIALS: " ManagedIdentityCredential " }),
    ).toMatchObject({
      _tag: "Read",
      reader: "the chain's ManagedIdentityCredential (its AKS token exchange)",
    })
    expect(useOf("default", { ...pod, AZURE_TOKEN_CREDENTIALS: "workloadidentitycredential" })).toMatchObject(
      {
        _tag: "Read",
        reader: "the chain's WorkloadIdentityCredential",
      },
    )
    for (const selection of ["dev", "AzureCliCredential", "EnvironmentCredential"])
      expect(useOf("default", { ...pod, AZURE_TOKEN_CREDENTIALS: selection })).toMatchObject({
        _tag: "NotRead",
      })
    // The user-assigned identity configured is the SDK's client id: AZURE_CLIENT_ID is not needed.
    const { AZURE_CLIENT_ID: _client, ...noClient } = pod
    expect(useOf("default", noClient, { clientId: configured })).toMatchObject({ _tag: "Read" })
    expect(useOf("default", noClient)).toEqual({
      _tag: "NotRead",
      tokenFile: file,
      why: "the chain's WorkloadIdentityCredential, and its ManagedIdentityCredential's AKS token exchange read it only with AZURE_TENANT_ID and a client id, and AZURE_CLIENT_ID is not set",
    })
    const { AZURE_TENANT_ID: _tenant, ...noTenant } = pod
    expect(useOf("default", noTenant)).toMatchObject({
      _tag: "NotRead",
      why: expect.stringContaining("AZURE_TENANT_ID is not set"),
    })
    // Without the file's variable there is nothing to judge.
    const { AZURE_FEDERATED_TOKEN_FILE: _file, ...noFile } = pod
    expect(useOf("default", noFile)).toBeUndefined()
    expect(useOf("client_secret", { ...pod, AZURE_CLIENT_SECRET: "x" })).toBeUndefined()
  })

  it("default: an EnvironmentCredential with what it needs comes first, and answers or ends the chain", () => {
    for (const [vars, named] of [
      [{ AZURE_CLIENT_SECRET: "s" }, "AZURE_CLIENT_SECRET"],
      [{ AZURE_CLIENT_CERTIFICATE_PATH: "/etc/cert.pem" }, "AZURE_CLIENT_CERTIFICATE_PATH"],
      [{ AZURE_USERNAME: "u", AZURE_PASSWORD: "p" }, "AZURE_USERNAME and AZURE_PASSWORD"],
    ] as const) {
      const use = useOf("default", { ...pod, ...vars })
      expect(use).toMatchObject({
        _tag: "NotRead",
        why: expect.stringContaining(`EnvironmentCredential comes first`),
      })
      expect(use).toMatchObject({ why: expect.stringContaining(named) })
    }
    // A user name without a password configures nothing; a chain without the environment source reads it.
    expect(useOf("default", { ...pod, AZURE_USERNAME: "u" })).toMatchObject({ _tag: "Read" })
    expect(
      useOf("default", {
        ...pod,
        AZURE_CLIENT_SECRET: "s",
        AZURE_TOKEN_CREDENTIALS: "WorkloadIdentityCredential",
      }),
    ).toMatchObject({ _tag: "Read" })
  })

  it("a variable of spaces, which the SDK takes as set and kvdeploy as unset, leaves the rule undecided: a warning", () => {
    const use = useOf("default", { ...pod, AZURE_CLIENT_ID: "   " })
    expect(use).toMatchObject({
      _tag: "Undecided",
      why: expect.stringContaining("AZURE_CLIENT_ID holds only spaces or line breaks"),
      fix: "Set AZURE_CLIENT_ID to its value, or unset it",
    })
    // managed_identity: kvdeploy made no exchange (it takes the tenant as unset), the SDK's would.
    expect(useOf("managed_identity", { ...pod, AZURE_TENANT_ID: " \n" })).toMatchObject({
      _tag: "Undecided",
      why: expect.stringContaining("AZURE_TENANT_ID holds only spaces"),
    })
    // An AZURE_TOKEN_CREDENTIALS this rule does not know (a later SDK's): undecided, not guessed.
    expect(useOf("default", { ...pod, AZURE_TOKEN_CREDENTIALS: "BrokerCredential" })).toMatchObject({
      _tag: "Undecided",
    })
    const check = federatedTokenUseCheck(use as FederatedTokenUse, false, Date.now())
    expect(check.status).toBe("warning")
    expect(check.fix).toContain("Set AZURE_CLIENT_ID to its value, or unset it")
  })

  it("managed_identity: kvdeploy's exchange reads the file it names; without a tenant or client id, it is not read", () => {
    expect(
      useOf("managed_identity", pod, { identity: { tokenFile: file, endpoint: "Entra ID token exchange" } }),
    ).toEqual({ _tag: "Read", tokenFile: file })
    const { AZURE_TENANT_ID: _tenant, ...noTenant } = pod
    const use = useOf("managed_identity", noTenant, { identity: { endpoint: "IMDS http://169.254.169.254" } })
    expect(use).toEqual({
      _tag: "NotRead",
      tokenFile: file,
      why: "the managed identity's AKS token exchange needs AZURE_TENANT_ID and a client id (managed_identity_client_id or AZURE_CLIENT_ID), and AZURE_TENANT_ID is not set, so IMDS http://169.254.169.254 is asked instead",
    })
    expect(federatedTokenUseCheck(use as FederatedTokenUse, true, Date.now())).toEqual({
      name: "federated token",
      status: "skipped",
      detail: `not read: ${file} (AZURE_FEDERATED_TOKEN_FILE) is set, but ${(use as { why: string }).why}`,
    })
    const { AZURE_CLIENT_ID: _client, ...noClient } = pod
    expect(useOf("managed_identity", noClient)).toMatchObject({
      _tag: "NotRead",
      why: expect.stringContaining("a client id (managed_identity_client_id or AZURE_CLIENT_ID) is not set"),
    })
  })
})
