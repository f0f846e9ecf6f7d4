/**
 * `propagationMs`: a delete or a recovery that takes a while to show, as Key Vault's do (about 10 s
 * in the SDK's recordings), driven through the real SDK and its pollers.
 */
import type { CertificateClient } from "@azure/keyvault-certificates"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, start } from "../src/index.js"
import { clients, makeMaterial, pemBundle, raw, restError, type TestMaterial } from "./support.js"

const PEM = { policy: { contentType: "application/x-pem-file" } } as const
// Long enough for the checks right after each step to run within it, also on a loaded machine.
const SETTLE_MS = 2000

let emulator: Emulator
let certificates: CertificateClient
let material: TestMaterial

beforeAll(async () => {
  emulator = await start({ vaults: ["settling"], propagationMs: SETTLE_MS, warn: () => {} })
  ;({ certificates } = clients(emulator, "settling"))
  material = await makeMaterial({ cn: "settling.example.test" })
})
afterAll(() => emulator?.stop())

describe("a delete and a recovery that take a while to show", () => {
  it("a deleted certificate is neither served nor deleted for a while (imports: 409 ObjectIsBeingDeleted); a recovered one is served only after a while; the SDK's pollers wait through both", async () => {
    await certificates.importCertificate("slow", Buffer.from(pemBundle(material)), PEM)
    const startedDelete = Date.now()
    const deleting = await certificates.beginDeleteCertificate("slow", { intervalInMs: 50 })
    // Right after the delete: not served, not among the deleted, and an import is refused.
    expect((await restError(certificates.getCertificate("slow"))).statusCode).toBe(404)
    expect((await restError(certificates.getDeletedCertificate("slow"))).statusCode).toBe(404)
    const refused = await restError(
      certificates.importCertificate("slow", Buffer.from(pemBundle(material)), PEM),
    )
    expect(refused.statusCode).toBe(409)
    expect(refused.code).toBe("Conflict")
    expect(refused.message).toBe("Certificate is currently being deleted.")
    // Key Vault's inner code for it (recorded for keys), on the wire.
    const body = await raw(emulator, "settling", "POST", "/certificates/slow/import?api-version=2025-07-01", {
      token: emulator.issueToken(emulator.clientSecret.clientId),
      body: {
        value: pemBundle(material),
        policy: { secret_props: { contentType: "application/x-pem-file" } },
      },
    })
    expect(body.status).toBe(409)
    expect((body.json as { error?: { innererror?: { code?: string } } }).error?.innererror?.code).toBe(
      "ObjectIsBeingDeleted",
    )
    // The SDK's delete poller waits until the certificate is among the deleted ones.
    const deleted = await deleting.pollUntilDone()
    expect(deleted.name).toBe("slow")
    expect(Date.now() - startedDelete).toBeGreaterThanOrEqual(SETTLE_MS - 50)
    // Now soft-deleted: the usual 409 for an import.
    const conflict = await restError(
      certificates.importCertificate("slow", Buffer.from(pemBundle(material)), PEM),
    )
    expect(conflict.statusCode).toBe(409)
    expect(conflict.message).toContain("deleted but recoverable")

    const startedRecover = Date.now()
    const recovering = await certificates.beginRecoverDeletedCertificate("slow", { intervalInMs: 50 })
    // Right after the recovery: not served yet, and not among the deleted any more.
    expect((await restError(certificates.getCertificate("slow"))).statusCode).toBe(404)
    expect((await restError(certificates.getDeletedCertificate("slow"))).statusCode).toBe(404)
    const listed = async () => {
      const names: Array<string> = []
      for await (const p of certificates.listPropertiesOfCertificates()) names.push(p.name ?? "")
      return names
    }
    expect(await listed()).not.toContain("slow")
    // The SDK's recover poller waits until it is served.
    const recovered = await recovering.pollUntilDone()
    expect(recovered.name).toBe("slow")
    expect(Date.now() - startedRecover).toBeGreaterThanOrEqual(SETTLE_MS - 50)
    expect((await certificates.getCertificate("slow")).properties.x509Thumbprint).toBeDefined()
    expect(await listed()).toContain("slow")
  })

  it("an import during a recovery's window is answered (not 404) and ends the window", async () => {
    await certificates.importCertificate("rewritten", Buffer.from(pemBundle(material)), PEM)
    await (await certificates.beginDeleteCertificate("rewritten", { intervalInMs: 50 })).pollUntilDone()
    const recovering = await certificates.beginRecoverDeletedCertificate("rewritten", { intervalInMs: 50 })
    expect((await restError(certificates.getCertificate("rewritten"))).statusCode).toBe(404)
    const imported = await certificates.importCertificate("rewritten", Buffer.from(pemBundle(material)), PEM)
    expect(imported.properties.version).toBeDefined()
    expect((await certificates.getCertificate("rewritten")).properties.version).toBe(
      imported.properties.version,
    )
    await recovering.pollUntilDone()
    expect(emulator.state.versions("settling", "rewritten")).toHaveLength(2)
  })

  it("refuses a propagation time that is not a number of milliseconds", async () => {
    await expect(start({ vaults: ["x"], propagationMs: -1, warn: () => {} })).rejects.toThrow(
      /propagationMs must be a number of milliseconds/,
    )
  })
})
