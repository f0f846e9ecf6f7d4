/**
 * The PFX worker pool (`pfxWorkers`): imports read in worker threads answer
 * exactly what imports read in the emulator's own thread do (MAC and password
 * checked, key/certificate match, expiry, 25 KB limit, key usage, key type and
 * size in the policy), and the workers end with the pool (`stop()`).
 *
 * The workers run the built dist/pfxWorker.js (the test command builds first).
 */
import { Worker } from "node:worker_threads"
import type { CertificateClient } from "@azure/keyvault-certificates"
import { encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { KvError } from "../src/errors.js"
import { type Emulator, start } from "../src/index.js"
import { PfxPool, pfxWorkerScript } from "../src/pfxPool.js"
import { clients, errorOf, makeMaterial, pemBundle, raw, restError, type TestMaterial } from "./support.js"

const pfxOf = (m: TestMaterial, password: string) =>
  Effect.runPromise(
    encodePfx(
      { leaf: m.leafDer, chain: m.chainDer, key: Redacted.make(m.keyPkcs8) },
      { encoding: "modern", password: Redacted.make(password) },
    ),
  )

const PEM = { policy: { contentType: "application/x-pem-file" } } as const

let material: TestMaterial
let other: TestMaterial
let expired: TestMaterial
let ec: TestMaterial
let small: TestMaterial
beforeAll(async () => {
  ;[material, other, expired, ec, small] = await Promise.all([
    makeMaterial({ cn: "pool.example.test" }),
    makeMaterial({ cn: "pool-other.example.test" }),
    makeMaterial({
      cn: "pool-expired.example.test",
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    }),
    makeMaterial({ cn: "pool-ec.example.test", keyAlg: "EC" }),
    makeMaterial({ cn: "pool-small.example.test", keyAlg: "RSA-1024" }),
  ])
})

describe.each([0, 2])("imports with pfxWorkers: %i", (pfxWorkers) => {
  let emulator: Emulator
  let certificates: CertificateClient
  const warnings: string[] = []
  beforeAll(async () => {
    emulator = await start({ vaults: ["pool"], pfxWorkers, warn: (l) => warnings.push(l) })
    ;({ certificates } = clients(emulator, "pool"))
  })
  afterAll(() => emulator.stop())

  it("reads a PFX with its chain: leaf first, chain ordered, key usage in the policy", async () => {
    expect(warnings).toEqual([])
    const imported = await certificates.importCertificate("ok", await pfxOf(material, "pw"), {
      password: "pw",
    })
    expect(Buffer.from(imported.cer ?? []).equals(Buffer.from(material.leafDer))).toBe(true)
    expect(imported.policy?.subject).toBe("CN=pool.example.test")
    expect(imported.policy?.keyUsage).toEqual(["digitalSignature", "keyEncipherment"])
    const stored = emulator.state.versions("pool", "ok")?.[0]?.certificates ?? []
    expect(stored.map((d) => Buffer.from(d).toString("base64"))).toEqual(
      [material.leafDer, ...material.chainDer].map((d) => Buffer.from(d).toString("base64")),
    )
    const pem = await certificates.importCertificate("ok-pem", Buffer.from(pemBundle(other)), PEM)
    expect(Buffer.from(pem.cer ?? []).equals(Buffer.from(other.leafDer))).toBe(true)
  })

  it("refuses a wrong password and a PFX whose MAC no longer matches its content", async () => {
    const pfx = await pfxOf(material, "right")
    const wrong = await restError(certificates.importCertificate("wrongpw", pfx, { password: "wrong" }))
    expect(wrong.statusCode).toBe(400)
    expect(wrong.message).toMatch(/the password is correct\.$/)
    const altered = Uint8Array.from(pfx)
    const middle = Math.floor(altered.length / 2)
    altered[middle] = (altered[middle] ?? 0) ^ 0x01
    const bad = await restError(certificates.importCertificate("altered", altered, { password: "right" }))
    expect(bad.statusCode).toBe(400)
    expect(bad.code).toBe("BadParameter")
  })

  it("refuses a key matching no certificate, an expired certificate and a value over 25 KB", async () => {
    const mismatch = await restError(
      certificates.importCertificate(
        "mismatch",
        Buffer.from(other.keyPem + material.leafPem + material.chainPem),
        PEM,
      ),
    )
    expect(mismatch.message).toMatch(/^No certificate with private key found/)
    const old = await restError(
      certificates.importCertificate("expired", await pfxOf(expired, "pw"), { password: "pw" }),
    )
    expect(old.message).toBe("X509 Certificate is already expired")
    const big = material.keyPem + material.leafPem + material.chainPem.repeat(12)
    const large = await restError(certificates.importCertificate("big", Buffer.from(big), PEM))
    expect(large.statusCode).toBe(400)
    expect(large.message).toMatch(/exceeds the maximum allowed size of 25600 characters/)
    for (const n of ["wrongpw", "altered", "mismatch", "expired", "big"])
      expect(emulator.state.versions("pool", n)).toBeUndefined()
  })

  it("reads the key's type and size from a PFX: EC P-256 kept, RSA 1024 refused as Key Vault does", async () => {
    const imported = await certificates.importCertificate("ec", await pfxOf(ec, "pw"), { password: "pw" })
    expect(imported.policy?.keyType).toBe("EC")
    expect(imported.policy?.keyCurveName).toBe("P-256")
    const token = emulator.issueToken(emulator.clientSecret.clientId)
    const value = Buffer.from(await pfxOf(small, "pw")).toString("base64")
    const res = await raw(emulator, "pool", "POST", "/certificates/small/import?api-version=2025-07-01", {
      token,
      body: { value, pwd: "pw" },
    })
    expect(res.status).toBe(400)
    expect(errorOf(res.json)).toEqual({
      code: "BadParameter",
      message: "Unsupported key size (1024). Supported sizes are [2048, 3072, 4096]",
      innererror: { code: "KeySizeNotSupported" },
    })
    expect(emulator.state.versions("pool", "small")).toBeUndefined()
  })
})

describe("PfxPool", () => {
  it("starts workers on demand, spreads reads over them and ends them at close()", async () => {
    const script = pfxWorkerScript()
    if (script === undefined) throw new Error("dist/pfxWorker.js is missing: build the package first")
    const pool = new PfxPool(2, script)
    expect(pool.started).toBe(0)
    const value = Buffer.from(await pfxOf(material, "pw")).toString("base64")
    const reads = await Promise.all(Array.from({ length: 6 }, () => pool.read(value, "pw")))
    expect(pool.started).toBe(2)
    for (const r of reads) {
      expect(Buffer.from(r.leaf).equals(Buffer.from(material.leafDer))).toBe(true)
      expect(Buffer.from(r.key).equals(Buffer.from(material.keyPkcs8))).toBe(true)
      expect(r.leafKeyUsage).toBe(0b101)
    }
    const refused = await pool.read(value, "nope").catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(KvError)
    expect((refused as KvError).status).toBe(400)
    const terminate = vi.spyOn(Worker.prototype, "terminate")
    try {
      await pool.close()
      expect(terminate).toHaveBeenCalledTimes(2)
      for (const call of terminate.mock.results) expect(await call.value).toBe(1)
    } finally {
      terminate.mockRestore()
    }
    expect(pool.started).toBe(0)
    const late = await pool.read(value, "pw").catch((e: unknown) => e)
    expect((late as KvError).status).toBe(500)
  })

  it("reads when the process runs with node flags a worker refuses (--expose-gc, --max-old-space-size)", async () => {
    const script = pfxWorkerScript()
    if (script === undefined) throw new Error("dist/pfxWorker.js is missing: build the package first")
    const pool = new PfxPool(1, script, ["--expose-gc", "--max-old-space-size=512"])
    try {
      const value = Buffer.from(await pfxOf(material, "pw")).toString("base64")
      const read = await pool.read(value, "pw")
      expect(Buffer.from(read.leaf).equals(Buffer.from(material.leafDer))).toBe(true)
      expect(pool.started).toBe(1)
    } finally {
      await pool.close()
    }
  })

  it("the emulator's stop() ends its workers", async () => {
    const emulator = await start({ vaults: ["pool-stop"], pfxWorkers: 2 })
    const { certificates } = clients(emulator, "pool-stop")
    const pfx = await pfxOf(material, "pw")
    await Promise.all([
      certificates.importCertificate("a", pfx, { password: "pw" }),
      certificates.importCertificate("b", pfx, { password: "pw" }),
    ])
    const terminate = vi.spyOn(Worker.prototype, "terminate")
    try {
      await emulator.stop()
      expect(terminate.mock.calls.length).toBeGreaterThanOrEqual(1)
      for (const call of terminate.mock.results) expect(await call.value).toBe(1)
    } finally {
      terminate.mockRestore()
    }
  })
})
