import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, start } from "../src/index.js"
import { clients, makeMaterial, pemBundle } from "./support.js"

let emulator: Emulator
beforeAll(async () => {
  emulator = await start({ vaults: ["alpha"] })
})
afterAll(() => emulator?.stop())

describe("smoke", () => {
  it("imports PEM and reads it back", async () => {
    const m = await makeMaterial()
    const { certificates, secrets } = clients(emulator, "alpha")
    const imported = await certificates.importCertificate("web", Buffer.from(pemBundle(m)), {
      policy: { contentType: "application/x-pem-file" },
    })
    expect(imported.properties.version).toMatch(/^[0-9a-f]{32}$/)
    const latest = await certificates.getCertificate("web")
    expect(latest.properties.version).toBe(imported.properties.version)
    const secret = await secrets.getSecret("web")
    expect(secret.value).toContain("BEGIN PRIVATE KEY")
    console.log(emulator.requests.entries().map((e) => `${e.vault} ${e.operation} ${e.status}${e.challenge ? " challenge" : ""}`))
  })
})
