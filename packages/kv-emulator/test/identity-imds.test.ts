/**
 * Managed identity, IMDS style (AZURE_POD_IDENTITY_AUTHORITY_HOST,
 * /metadata/identity/oauth2/token with Metadata: true), system- and
 * user-assigned, through the real ManagedIdentityCredential and
 * DefaultAzureCredential (which reads AZURE_CLIENT_ID for a user-assigned identity).
 */
import { DefaultAzureCredential, ManagedIdentityCredential } from "@azure/identity"
import { changeProcessEnv } from "@kvdeploy/core/test"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, start } from "../src/index.js"
import { clients, makeMaterial, pemBundle, useIdentityEnvironment } from "./support.js"

let emulator: Emulator
let restoreEnvironment = () => {}

beforeAll(async () => {
  emulator = await start({ vaults: ["mi-imds"] })
  restoreEnvironment = useIdentityEnvironment(emulator.env.managedIdentityImds)
})
afterAll(async () => {
  restoreEnvironment()
  await emulator?.stop()
})

describe("IMDS managed identity", () => {
  it("an identity named by resource id (msi_res_id) is not found, never the system-assigned one instead", async () => {
    const reply = await fetch(
      `${emulator.managedIdentity.imdsHost}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net&msi_res_id=/subscriptions/x/resourceGroups/y/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nope`,
      { headers: { Metadata: "true" } },
    )
    expect(reply.status).toBe(400)
    expect(await reply.text()).toContain("Identity not found")
  })

  it("system-assigned: GET /metadata/identity/oauth2/token with Metadata: true, expires_on in the reply", async () => {
    const credential = new ManagedIdentityCredential({ tlsOptions: { ca: emulator.caPem } })
    const { certificates } = clients(emulator, "mi-imds", credential)
    const m = await makeMaterial()
    await certificates.importCertificate("imds-cert", Buffer.from(pemBundle(m)), {
      policy: { contentType: "application/x-pem-file" },
    })
    const call = emulator.requests
      .entries({ vault: "managed-identity", operation: "imdsToken", status: 200 })
      .at(-1)
    expect(call?.query).toContain("api-version=2018-02-01")
    expect(call?.principal).toBe(emulator.managedIdentity.systemAssigned.clientId)
    const reply = (await (
      await fetch(
        `${emulator.managedIdentity.imdsHost}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net`,
        {
          headers: { Metadata: "true" },
        },
      )
    ).json()) as Record<string, string>
    expect(Number(reply.expires_on)).toBeGreaterThan(Date.now() / 1000 + 3000)
    expect(reply.resource).toBe("https://vault.azure.net")
    expect(reply.token_type).toBe("Bearer")
  })

  it("refuses a request without Metadata: true, and an unknown user-assigned identity", async () => {
    const noHeader = await fetch(
      `${emulator.managedIdentity.imdsHost}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net`,
    )
    expect(noHeader.status).toBe(400)
    const unknown = await fetch(
      `${emulator.managedIdentity.imdsHost}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net&client_id=00000000-0000-0000-0000-00000000dead`,
      { headers: { Metadata: "true" } },
    )
    expect(unknown.status).toBe(400)
  })

  it("user-assigned through DefaultAzureCredential with AZURE_CLIENT_ID", async () => {
    const restoreUserAssigned = changeProcessEnv(emulator.env.managedIdentityUserAssigned)
    try {
      const credential = new DefaultAzureCredential({ tlsOptions: { ca: emulator.caPem } })
      const { certificates } = clients(emulator, "mi-imds", credential)
      const c = await certificates.getCertificate("imds-cert")
      expect(c.name).toBe("imds-cert")
      const call = emulator.requests.entries({ vault: "managed-identity", status: 200 }).at(-1)
      expect(call?.query).toContain(`client_id=${emulator.managedIdentity.userAssigned.clientId}`)
      expect(
        emulator.requests.entries({ vault: "mi-imds", operation: "getLatest", status: 200 }).at(-1)
          ?.principal,
      ).toBe(emulator.managedIdentity.userAssigned.clientId)
    } finally {
      restoreUserAssigned()
    }
  })
})
