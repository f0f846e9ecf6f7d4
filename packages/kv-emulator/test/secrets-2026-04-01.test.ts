/**
 * @azure/keyvault-secrets 4.12 (a regenerated client) sends api-version 2026-04-01 and may ask
 * for a certificate's PKCS#12 secret as PEM (`outContentType`, a query parameter). Driven over
 * HTTPS with the real client; the request log shows what went on the wire.
 */
import type { CertificateClient } from "@azure/keyvault-certificates"
import { KnownContentType, type SecretClient } from "@azure/keyvault-secrets"
import { encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, start } from "../src/index.js"
import { clients, errorOf, makeMaterial, pemBundle, raw, restError, type TestMaterial } from "./support.js"

const VAULT = "secrets-2026"
const PEM = "application/x-pem-file"
const PFX = "application/x-pkcs12"

let emulator: Emulator
let certificates: CertificateClient
let secrets: SecretClient
let material: TestMaterial

const pfxOf = (m: TestMaterial) =>
  Effect.runPromise(
    encodePfx(
      { leaf: m.leafDer, chain: m.chainDer, key: Redacted.make(m.keyPkcs8) },
      { encoding: "modern", password: Redacted.make("pw") },
    ),
  )

/** The PEM blocks of a value, whitespace dropped (the emulator wraps at 64 columns). */
const blocksOf = (value: string | undefined): ReadonlyArray<string> =>
  ((value ?? "").match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? []).map((b) =>
    b.replace(/\s/g, ""),
  )
const squeeze = (pem: string): ReadonlyArray<string> => blocksOf(pem)

beforeAll(async () => {
  emulator = await start({ vaults: [VAULT] })
  ;({ certificates, secrets } = clients(emulator, VAULT))
  material = await makeMaterial({ cn: "secrets412.example.test" })
})
afterAll(() => emulator?.stop())

describe("@azure/keyvault-secrets 4.12 (api-version 2026-04-01)", () => {
  it("reads a plain secret and a certificate's backing secret, and the certificate's versions, at 2026-04-01", async () => {
    const mark = emulator.requests.mark()
    // 4.12 puts setSecret's contentType on the wire (4.10 dropped it).
    await secrets.setSecret("plain", "not-a-certificate", { contentType: "text/plain" })
    const plain = await secrets.getSecret("plain")
    expect(plain.value).toBe("not-a-certificate")
    expect(plain.properties.contentType).toBe("text/plain")

    const first = await certificates.importCertificate("backed", await pfxOf(material), { password: "pw" })
    const second = await certificates.importCertificate("backed", await pfxOf(material), { password: "pw" })
    const latest = await secrets.getSecret("backed")
    expect(latest.properties.contentType).toBe(PFX)
    expect(latest.properties.managed).toBe(true)
    expect(latest.properties.version).toBe(second.properties.version)
    const older = await secrets.getSecret("backed", { version: first.properties.version ?? "" })
    expect(older.properties.version).toBe(first.properties.version)
    expect(older.properties.certificateKeyId).toBe(
      `${emulator.vault(VAULT).url}/keys/backed/${first.properties.version}`,
    )

    const versions: Array<string | undefined> = []
    for await (const v of certificates.listPropertiesOfCertificateVersions("backed")) versions.push(v.version)
    expect(versions.sort()).toEqual([first.properties.version, second.properties.version].sort())
    // The certificates client (4.10.3) speaks 2025-07-01; the vault takes 2026-04-01 for them too.
    const token = emulator.issueToken(emulator.clientSecret.clientId)
    const listed = await raw(emulator, VAULT, "GET", "/certificates/backed/versions?api-version=2026-04-01", {
      token,
    })
    expect(listed.status).toBe(200)
    expect((listed.json as { value: unknown[] }).value).toHaveLength(2)
    expect((listed.json as { nextLink: unknown }).nextLink).toBeNull()

    const log = emulator.requests.entries({ since: mark, vault: VAULT }).filter((e) => !e.challenge)
    const secretCalls = log.filter((e) => e.operation === "getSecret" || e.operation === "setSecret")
    expect(secretCalls.map((e) => [e.operation, e.method, e.path, e.status])).toEqual([
      ["setSecret", "PUT", "/secrets/plain", 200],
      ["getSecret", "GET", "/secrets/plain/", 200],
      ["getSecret", "GET", "/secrets/backed/", 200],
      ["getSecret", "GET", `/secrets/backed/${first.properties.version}`, 200],
    ])
    for (const e of secretCalls) expect(new URLSearchParams(e.query).get("api-version")).toBe("2026-04-01")
    expect(secretCalls[0]?.request?.keys).toContain("contentType")
    const versionCalls = log.filter((e) => e.operation === "versions")
    expect(versionCalls.map((e) => [new URLSearchParams(e.query).get("api-version"), e.status])).toEqual([
      ["2025-07-01", 200],
      ["2026-04-01", 200],
    ])
  })

  it("outContentType=application/x-pem-file converts a certificate's PKCS#12 secret to PEM: key, leaf, chain", async () => {
    const imported = await certificates.importCertificate("to-pem", await pfxOf(material), { password: "pw" })
    const version = imported.properties.version ?? ""
    const mark = emulator.requests.mark()
    for (const s of [
      await secrets.getSecret("to-pem", { outContentType: KnownContentType.PEM }),
      await secrets.getSecret("to-pem", { version, outContentType: KnownContentType.PEM }),
    ]) {
      expect(s.properties.contentType).toBe(PEM)
      expect(s.properties.version).toBe(version)
      expect(s.properties.managed).toBe(true)
      expect(blocksOf(s.value)).toEqual([
        ...squeeze(material.keyPem),
        ...squeeze(material.leafPem),
        ...squeeze(material.chainPem),
      ])
    }
    // Without the parameter the secret is read as it is held.
    expect((await secrets.getSecret("to-pem")).properties.contentType).toBe(PFX)
    const calls = emulator.requests
      .entries({ since: mark, operation: "getSecret" })
      .filter((e) => !e.challenge)
    expect(calls.map((e) => [new URLSearchParams(e.query).get("outContentType"), e.status])).toEqual([
      [PEM, 200],
      [PEM, 200],
      [null, 200],
    ])
  })

  it("refuses with 400 the outContentType requests Key Vault's documentation leaves open, naming the parameter", async () => {
    await secrets.setSecret("plain-pem", "value")
    await certificates.importCertificate("held-as-pem", Buffer.from(pemBundle(material)), {
      policy: { contentType: PEM },
    })
    await certificates.importCertificate("held-as-pfx", await pfxOf(material), { password: "pw" })
    // The format a certificate's secret is held in is answered as held (KnownContentType's values).
    const asHeld = [
      await secrets.getSecret("held-as-pfx", { outContentType: KnownContentType.PFX }),
      await secrets.getSecret("held-as-pem", { outContentType: KnownContentType.PEM }),
    ]
    expect(asHeld.map((s) => s.properties.contentType)).toEqual([PFX, PEM])
    expect(asHeld[0]?.value).toBe((await secrets.getSecret("held-as-pfx")).value)
    expect(asHeld[1]?.value).toBe((await secrets.getSecret("held-as-pem")).value)
    const refusals = [
      await restError(secrets.getSecret("plain-pem", { outContentType: KnownContentType.PEM })),
      // PEM to PKCS#12 is not a conversion Key Vault documents ("only PFX to PEM").
      await restError(secrets.getSecret("held-as-pem", { outContentType: KnownContentType.PFX })),
    ]
    for (const r of refusals) {
      expect(r.statusCode).toBe(400)
      expect(r.code).toBe("BadParameter")
      expect(r.message).toContain("The Key Vault emulator does not serve outContentType=")
      expect(r.message).toContain("Leave outContentType out")
    }
    expect(refusals[0]?.message).toContain("on a secret set directly")
    expect(refusals[1]?.message).toContain(`on a certificate whose secret is ${PEM}`)

    // A format Key Vault does not convert to is rejected, as documented.
    const token = emulator.issueToken(emulator.clientSecret.clientId)
    const other = await raw(
      emulator,
      VAULT,
      "GET",
      "/secrets/held-as-pfx/?api-version=2026-04-01&outContentType=text%2Fplain",
      { token },
    )
    expect(other.status).toBe(400)
    expect(errorOf(other.json)).toEqual({
      code: "BadParameter",
      message: expect.stringContaining("The value of outContentType (text/plain) is not supported"),
    })
    // Before 2025-07-01 the parameter does not exist: refused, not ignored.
    const old = await raw(
      emulator,
      VAULT,
      "GET",
      `/secrets/held-as-pfx/?api-version=7.6&outContentType=${encodeURIComponent(PEM)}`,
      { token },
    )
    expect(old.status).toBe(400)
    expect(errorOf(old.json).message).toContain("does not serve outContentType with api-version 7.6")
  })
})
