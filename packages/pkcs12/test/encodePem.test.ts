/**
 * The PEM of a Key Vault PEM import, read back by OpenSSL 3: the leaf first, then its chain in
 * issuer order, then one unencrypted PKCS#8 `PRIVATE KEY` whose public half is the leaf's, `\n`
 * line endings only; never built for a key that does not match the leaf.
 */
import { createHash } from "node:crypto"
import type { CertificateMaterial } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { beforeAll, describe, expect, it } from "vitest"
import { encodePem } from "../src/index.js"
import { generateKey, type KeySpec, makeAuthorities, makeMaterial, type TestAuthorities } from "./fixtures.js"
import { mustSucceed, run, shouldRun } from "./tools.js"

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\n[A-Za-z0-9+/=\n]+?\n-----END \1-----/g

const sha1Hex = (der: Uint8Array) => createHash("sha1").update(der).digest("hex").toUpperCase()
const fingerprintOf = async (pem: string) => {
  const out = mustSucceed(
    "openssl x509",
    await run("openssl", ["x509", "-noout", "-fingerprint", "-sha1"], { input: pem }),
  ).stdout.toString("utf8")
  return (out.split("=")[1] ?? "").trim().replace(/:/g, "")
}

let authorities: TestAuthorities
beforeAll(async () => {
  authorities = await makeAuthorities()
}, 120_000)

const cases: ReadonlyArray<{ spec: KeySpec; length: 1 | 3 }> = [
  { spec: "RSA-2048", length: 3 },
  { spec: "P-256", length: 3 },
  { spec: "P-384", length: 1 },
]

describe.runIf(shouldRun("openssl"))("encodePem, read by OpenSSL", () => {
  for (const { spec, length } of cases) {
    it(`${spec}, ${length} certificate(s): leaf, chain leaf-first, PKCS#8 key matching the leaf`, async () => {
      const given = await makeMaterial(await generateKey(spec), length, authorities)
      // The chain given root first: the PEM orders it from the leaf up.
      const material: CertificateMaterial = { ...given, chain: [...given.chain].reverse() }
      const text = new TextDecoder().decode(await Effect.runPromise(encodePem(material)))
      expect(text).not.toContain("\r")
      expect(text.endsWith("-----END PRIVATE KEY-----\n")).toBe(true)
      const blocks = [...text.matchAll(BLOCK)].map((m) => ({ label: m[1], pem: `${m[0]}\n` }))
      expect(blocks.map((b) => b.label)).toEqual([...Array(length).fill("CERTIFICATE"), "PRIVATE KEY"])
      // Nothing between or around the blocks but the line ends.
      expect(text.replace(BLOCK, "").replace(/\n/g, "")).toBe("")
      const expected = [given.leaf, ...given.chain].map(sha1Hex)
      const certs = blocks.filter((b) => b.label === "CERTIFICATE")
      expect(await Promise.all(certs.map((b) => fingerprintOf(b.pem)))).toEqual(expected)
      // The key: unencrypted PKCS#8, read by `openssl pkey`, whose public key is the leaf's.
      const keyPem = blocks.at(-1)?.pem ?? ""
      const keyPublic = mustSucceed(
        "openssl pkey",
        await run("openssl", ["pkey", "-pubout"], { input: keyPem }),
      ).stdout.toString("utf8")
      const leafPublic = mustSucceed(
        "openssl x509 -pubkey",
        await run("openssl", ["x509", "-noout", "-pubkey"], { input: certs[0]?.pem ?? "" }),
      ).stdout.toString("utf8")
      expect(keyPublic).toBe(leafPublic)
      // The whole text as an operator reads it: the first certificate is the leaf, the key is found.
      expect(await fingerprintOf(text)).toBe(expected[0])
      mustSucceed("openssl pkey (whole text)", await run("openssl", ["pkey", "-noout"], { input: text }))
    })
  }

  it("refuses a key that does not match the leaf, and says so without key bytes", async () => {
    const material = await makeMaterial(await generateKey("P-256"), 3, authorities)
    const other = await generateKey("P-256")
    const mismatched: CertificateMaterial = { ...material, key: Redacted.make(other.pkcs8) }
    const failed = await Effect.runPromise(Effect.flip(encodePem(mismatched)))
    expect(failed._tag).toBe("PfxEncodeError")
    expect(failed.finding).toMatch(/refusing to build the PEM: the private key does not match the leaf/)
    expect(failed.message).not.toContain(Buffer.from(other.pkcs8).toString("base64").slice(0, 24))
  })
})
