/** A throwaway PKI in memory for the tests: a CA and EC P-256 leaves. Keys leave only as PEM strings. */
import "reflect-metadata"
import { webcrypto } from "node:crypto"
import * as x509 from "@peculiar/x509"

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

const day = 86_400_000
const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" }

export interface Issued {
  readonly certPem: string
  readonly keyPem: string
  /** base64url SHA-1 of the DER, as Key Vault's x5t. */
  readonly x5t: string
  readonly notAfter: Date
}

export interface Pki {
  readonly caPem: string
  readonly leaf: (cn: string) => Promise<Issued>
}

const pem = (label: string, der: ArrayBuffer): string => {
  const b64 = Buffer.from(der).toString("base64")
  return `-----BEGIN ${label}-----\n${(b64.match(/.{1,64}/g) ?? []).join("\n")}\n-----END ${label}-----\n`
}

const serial = () => {
  const b = webcrypto.getRandomValues(new Uint8Array(12))
  b[0] = ((b[0] ?? 0) & 0x7f) | 0x10
  return Buffer.from(b).toString("hex")
}

export const makePki = async (): Promise<Pki> => {
  const caKeys = (await webcrypto.subtle.generateKey(alg, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair
  const now = Date.now()
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: "CN=kvdeploy agent test CA",
    notBefore: new Date(now - day),
    notAfter: new Date(now + 3650 * day),
    signingAlgorithm: alg,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  })
  return {
    caPem: `${ca.toString("pem")}\n`,
    leaf: async (cn) => {
      const keys = (await webcrypto.subtle.generateKey(alg, true, [
        "sign",
        "verify",
      ])) as webcrypto.CryptoKeyPair
      const notAfter = new Date(Math.floor((Date.now() + 90 * day) / 1000) * 1000)
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: `CN=${cn}`,
        issuer: ca.subject,
        notBefore: new Date(Date.now() - day),
        notAfter,
        signingAlgorithm: alg,
        publicKey: keys.publicKey,
        signingKey: caKeys.privateKey,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.SubjectAlternativeNameExtension([{ type: "dns", value: cn }]),
        ],
      })
      const x5t = Buffer.from(await cert.getThumbprint("SHA-1")).toString("base64url")
      return {
        certPem: `${cert.toString("pem")}\n`,
        keyPem: pem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)),
        x5t,
        notAfter,
      }
    },
  }
}
