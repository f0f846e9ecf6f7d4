/**
 * DefaultAzureCredential from the environment the emulator prints: client
 * secret (EnvironmentCredential) and workload identity (AZURE_FEDERATED_TOKEN_FILE).
 */
import { DefaultAzureCredential } from "@azure/identity"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, start } from "../src/index.js"
import { clients, makeMaterial, pemBundle, useIdentityEnvironment } from "./support.js"

let emulator: Emulator
/** Puts back the identity environment the test made (useIdentityEnvironment). */
let restoreEnvironment = () => {}

beforeAll(async () => {
  emulator = await start({ vaults: ["dac"] })
})
afterEach(() => restoreEnvironment())
afterAll(async () => {
  await emulator?.stop()
})

const options = () => ({ tlsOptions: { ca: emulator.caPem }, disableInstanceDiscovery: true })

describe("DefaultAzureCredential", () => {
  it("client secret from AZURE_* (EnvironmentCredential, AZURE_AUTHORITY_HOST)", async () => {
    restoreEnvironment = useIdentityEnvironment(emulator.env.clientSecret)
    const { certificates } = clients(emulator, "dac", new DefaultAzureCredential(options()))
    const m = await makeMaterial()
    await certificates.importCertificate("dac-cert", Buffer.from(pemBundle(m)), {
      policy: { contentType: "application/x-pem-file" },
    })
    expect(
      emulator.requests.entries({ vault: "dac", operation: "import", status: 200 }).at(-1)?.principal,
    ).toBe(emulator.clientSecret.clientId)
  })

  it("workload identity from AZURE_FEDERATED_TOKEN_FILE", async () => {
    restoreEnvironment = useIdentityEnvironment(emulator.env.workloadIdentity)
    const { certificates } = clients(emulator, "dac", new DefaultAzureCredential(options()))
    const c = await certificates.getCertificate("dac-cert")
    expect(c.name).toBe("dac-cert")
    expect(
      emulator.requests.entries({ vault: "dac", operation: "getLatest", status: 200 }).at(-1)?.principal,
    ).toBe(emulator.workloadIdentity.clientId)
  })
})
