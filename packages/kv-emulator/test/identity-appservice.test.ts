/**
 * Managed identity, App Service style (IDENTITY_ENDPOINT + IDENTITY_HEADER,
 * api-version 2019-08-01), through the real ManagedIdentityCredential, and
 * DefaultAzureCredential picking it up from the environment. MSAL keeps the
 * managed identity source in a module-level static, so each style has its own
 * test file (vitest isolates files).
 */
import { DefaultAzureCredential, ManagedIdentityCredential } from "@azure/identity"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, start } from "../src/index.js"
import { clients, makeMaterial, pemBundle, useIdentityEnvironment } from "./support.js"

let emulator: Emulator
let restoreEnvironment = () => {}

beforeAll(async () => {
  emulator = await start({ vaults: ["mi-app"] })
  restoreEnvironment = useIdentityEnvironment(emulator.env.managedIdentityAppService)
})
afterAll(async () => {
  restoreEnvironment()
  await emulator?.stop()
})

describe("App Service managed identity", () => {
  it("system-assigned: token from IDENTITY_ENDPOINT with the header, then the vault", async () => {
    const credential = new ManagedIdentityCredential({ tlsOptions: { ca: emulator.caPem } })
    const { certificates } = clients(emulator, "mi-app", credential)
    const m = await makeMaterial()
    await certificates.importCertificate("mi-cert", Buffer.from(pemBundle(m)), {
      policy: { contentType: "application/x-pem-file" },
    })
    const calls = emulator.requests.entries({ vault: "managed-identity" })
    expect(calls.at(-1)?.operation).toBe("appServiceToken")
    expect(calls.at(-1)?.status).toBe(200)
    expect(calls.at(-1)?.query).toContain("api-version=2019-08-01")
    expect(calls.at(-1)?.principal).toBe(emulator.managedIdentity.systemAssigned.clientId)
    const write = emulator.requests.entries({ vault: "mi-app", operation: "import", status: 200 }).at(-1)
    expect(write?.principal).toBe(emulator.managedIdentity.systemAssigned.clientId)
  })

  it("user-assigned by client_id", async () => {
    const ua = emulator.managedIdentity.userAssigned.clientId
    const credential = new ManagedIdentityCredential({ clientId: ua, tlsOptions: { ca: emulator.caPem } })
    const t = await credential.getToken("https://vault.azure.net/.default")
    expect(t.expiresOnTimestamp).toBeGreaterThan(Date.now() + 3_000_000)
    const last = emulator.requests.entries({ vault: "managed-identity" }).at(-1)
    expect(last?.query).toContain(`client_id=${ua}`)
    expect(last?.principal).toBe(ua)
  })

  it("refuses a wrong IDENTITY_HEADER", async () => {
    const r = await fetch(
      `${emulator.managedIdentity.appServiceEndpoint}?api-version=2019-08-01&resource=https://vault.azure.net`,
      {
        headers: { "X-IDENTITY-HEADER": "wrong" },
      },
    )
    expect(r.status).toBe(401)
  })

  it("DefaultAzureCredential finds the managed identity in the environment", async () => {
    const credential = new DefaultAzureCredential({ tlsOptions: { ca: emulator.caPem } })
    const { secrets } = clients(emulator, "mi-app", credential)
    const s = await secrets.getSecret("mi-cert")
    expect(s.properties.contentType).toBe("application/x-pem-file")
  })
})
