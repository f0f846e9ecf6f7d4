/**
 * keyUsageBits: the key usage extension as Key Vault's x509_props.key_usage
 * reads it, for certificates without it, with it critical or not, and with
 * the bits of the BIT STRING's second byte (decipherOnly).
 */
import { webcrypto } from "node:crypto"
import "reflect-metadata"
import * as x509 from "@peculiar/x509"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { keyUsageBits } from "../src/material.js"
import { signedWithEcdsa } from "../src/pki.js"

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

const F = x509.KeyUsageFlags
const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const

const selfSigned = async (
  extensions: x509.Extension[],
  given?: webcrypto.CryptoKeyPair,
): Promise<Uint8Array> => {
  const keys =
    given ?? ((await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair)
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: "CN=key usage test",
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: alg,
    keys,
    extensions,
  })
  return new Uint8Array(cert.rawData)
}

describe("keyUsageBits", () => {
  const certs: Record<string, Uint8Array> = {}
  beforeAll(async () => {
    certs.none = await selfSigned([new x509.BasicConstraintsExtension(false)])
    certs.leaf = await selfSigned([new x509.KeyUsagesExtension(F.digitalSignature | F.keyEncipherment)])
    certs.ca = await selfSigned([
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(F.keyCertSign | F.cRLSign, true),
    ])
    certs.twoBytes = await selfSigned([new x509.KeyUsagesExtension(F.keyAgreement | F.decipherOnly, true)])
  })

  it("is undefined without the extension", () => {
    expect(keyUsageBits(certs.none as Uint8Array)).toBeUndefined()
  })
  it("reads the usages, critical or not, bit n of the BIT STRING as 1 << n", () => {
    expect(keyUsageBits(certs.leaf as Uint8Array)).toBe(0b101)
    expect(keyUsageBits(certs.ca as Uint8Array)).toBe(0b110_0000)
    expect(keyUsageBits(certs.twoBytes as Uint8Array)).toBe(0b1_0001_0000)
  })
  it("answers the same again for the same buffer (memoised) and for a copy", () => {
    const der = certs.ca as Uint8Array
    expect(keyUsageBits(der)).toBe(keyUsageBits(der))
    expect(keyUsageBits(der.slice())).toBe(F.keyCertSign | F.cRLSign)
    expect(keyUsageBits(certs.none as Uint8Array)).toBeUndefined()
  })
  it("agrees with @peculiar/x509's full extension parse for every usage mask, critical or not, among other extensions", async () => {
    const keys = (await webcrypto.subtle.generateKey(alg, true, [
      "sign",
      "verify",
    ])) as webcrypto.CryptoKeyPair
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 0x1ff }), fc.boolean(), async (mask, critical) => {
        const der = await selfSigned(
          [
            new x509.BasicConstraintsExtension(false),
            new x509.SubjectAlternativeNameExtension([{ type: "dns", value: "ku.example.test" }]),
            new x509.KeyUsagesExtension(mask, critical),
            new x509.ExtendedKeyUsageExtension(["1.3.6.1.5.5.7.3.1"]),
          ],
          keys,
        )
        const independent = new x509.X509Certificate(der).getExtension(x509.KeyUsagesExtension)?.usages
        expect(keyUsageBits(der)).toBe(mask)
        expect(keyUsageBits(der)).toBe(independent)
      }),
      { numRuns: 60 },
    )
  })
})

describe("signedWithEcdsa", () => {
  it("tells an ECDSA signature from an RSA one, by node:crypto's OID and by @peculiar/x509 where node:crypto does not tell", async () => {
    const ecdsaSigned = await selfSigned([])
    const rsa = {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    }
    const rsaKeys = (await webcrypto.subtle.generateKey(rsa, true, [
      "sign",
      "verify",
    ])) as webcrypto.CryptoKeyPair
    const rsaSigned = new Uint8Array(
      (
        await x509.X509CertificateGenerator.createSelfSigned({
          serialNumber: "02",
          name: "CN=rsa signed",
          notBefore: new Date(Date.now() - 60_000),
          notAfter: new Date(Date.now() + 86_400_000),
          signingAlgorithm: rsa,
          keys: rsaKeys,
        })
      ).rawData,
    )
    // Node 22 has no signatureAlgorithmOid: the @peculiar/x509 reading (no parsed certificate given).
    expect([signedWithEcdsa(ecdsaSigned), signedWithEcdsa(rsaSigned)]).toEqual([true, false])
    expect([
      signedWithEcdsa(ecdsaSigned, { signatureAlgorithmOid: "1.2.840.10045.4.3.2" }),
      signedWithEcdsa(rsaSigned, { signatureAlgorithmOid: "1.2.840.113549.1.1.11" }),
    ]).toEqual([true, false])
  })
})
