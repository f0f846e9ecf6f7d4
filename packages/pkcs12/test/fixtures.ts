/**
 * Test certificate authorities and leaves, generated in memory with
 * @peculiar/x509 and WebCrypto. Nothing here touches the disk.
 */
import "reflect-metadata"
import { createPrivateKey, webcrypto } from "node:crypto"
import type { CertificateMaterial } from "@kvdeploy/core"
import * as x509 from "@peculiar/x509"
import * as Redacted from "effect/Redacted"

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

export type KeySpec = "RSA-1024" | "RSA-2048" | "RSA-3072" | "RSA-4096" | "P-256" | "P-384" | "P-521"
export const keySpecs: ReadonlyArray<KeySpec> = [
  "RSA-2048",
  "RSA-3072",
  "RSA-4096",
  "P-256",
  "P-384",
  "P-521",
]

const algorithmOf = (
  spec: KeySpec,
): webcrypto.RsaHashedKeyGenParams | (webcrypto.EcKeyGenParams & { hash: string }) => {
  switch (spec) {
    case "RSA-1024":
    case "RSA-2048":
    case "RSA-3072":
    case "RSA-4096":
      return {
        name: "RSASSA-PKCS1-v1_5",
        hash: "SHA-256",
        publicExponent: new Uint8Array([1, 0, 1]),
        modulusLength: Number(spec.slice(4)),
      }
    case "P-256":
      return { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" }
    case "P-384":
      return { name: "ECDSA", namedCurve: "P-384", hash: "SHA-384" }
    case "P-521":
      return { name: "ECDSA", namedCurve: "P-521", hash: "SHA-512" }
  }
}

export interface TestKey {
  readonly spec: KeySpec
  readonly pair: webcrypto.CryptoKeyPair
  readonly pkcs8: Uint8Array
}

export const generateKey = async (spec: KeySpec): Promise<TestKey> => {
  const pair = (await webcrypto.subtle.generateKey(algorithmOf(spec), true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair
  const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey("pkcs8", pair.privateKey))
  return { spec, pair, pkcs8 }
}

export interface Issuer {
  readonly name: string
  readonly key: TestKey
}

let serial = 0x10
const nextSerial = (): string => {
  serial++
  // A serial with a leading zero byte exercises canonicalisation.
  return `00${serial.toString(16).padStart(6, "0")}a1`
}

export const issue = async (options: {
  readonly subject: string
  readonly key: TestKey
  readonly issuer?: Issuer
  readonly ca: boolean
  readonly sans?: ReadonlyArray<x509.JsonGeneralName>
  readonly notBefore?: Date
  readonly notAfter?: Date
  readonly keyUsage?: number
}): Promise<Uint8Array> => {
  const signer = options.issuer ?? { name: options.subject, key: options.key }
  const extensions: Array<x509.Extension> = [new x509.BasicConstraintsExtension(options.ca, undefined, true)]
  if (options.sans !== undefined) extensions.push(new x509.SubjectAlternativeNameExtension([...options.sans]))
  if (options.keyUsage !== undefined) extensions.push(new x509.KeyUsagesExtension(options.keyUsage, true))
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: nextSerial(),
    subject: options.subject,
    issuer: signer.name,
    notBefore: options.notBefore ?? new Date(Date.now() - 3600_000),
    notAfter: options.notAfter ?? new Date(Date.now() + 90 * 86400_000),
    signingAlgorithm: algorithmOf(signer.key.spec),
    publicKey: options.key.pair.publicKey,
    signingKey: signer.key.pair.privateKey,
    extensions,
  })
  return new Uint8Array(cert.rawData)
}

export interface TestAuthorities {
  /** Top-down: root, intermediate 1, intermediate 2. */
  readonly issuers: ReadonlyArray<Issuer>
  /** Their certificates, same order. */
  readonly certificates: ReadonlyArray<Uint8Array>
}

/** A root (P-384), an intermediate (RSA-2048) and a second intermediate (P-256). */
export const makeAuthorities = async (): Promise<TestAuthorities> => {
  const rootKey = await generateKey("P-384")
  const int1Key = await generateKey("RSA-2048")
  const int2Key = await generateKey("P-256")
  const root: Issuer = { name: "CN=kvdeploy Test Root, O=kvdeploy tests", key: rootKey }
  const int1: Issuer = { name: "CN=kvdeploy Test Intermediate 1, O=kvdeploy tests", key: int1Key }
  const int2: Issuer = { name: "CN=kvdeploy Test Intermediate 2, O=kvdeploy tests", key: int2Key }
  const rootCert = await issue({ subject: root.name, key: rootKey, ca: true })
  const int1Cert = await issue({ subject: int1.name, key: int1Key, issuer: root, ca: true })
  const int2Cert = await issue({ subject: int2.name, key: int2Key, issuer: int1, ca: true })
  return { issuers: [root, int1, int2], certificates: [rootCert, int1Cert, int2Cert] }
}

/**
 * Material whose chain has `length` certificates in all (leaf included):
 * 1 = a self-signed leaf; 2 = root + leaf; 3 = root, intermediate 1, leaf;
 * 4 = root, two intermediates, leaf. `chain` is leaf-first.
 */
export const makeMaterial = async (
  key: TestKey,
  length: 1 | 2 | 3 | 4,
  authorities: TestAuthorities,
  subject = "CN=app.example.test, O=kvdeploy tests",
): Promise<CertificateMaterial> => {
  const issuerIndex = length - 2
  const issuer = issuerIndex >= 0 ? authorities.issuers[issuerIndex] : undefined
  const leaf = await issue({
    subject,
    key,
    ...(issuer === undefined ? {} : { issuer }),
    ca: false,
    sans: [
      { type: "dns", value: "app.example.test" },
      { type: "ip", value: "192.0.2.7" },
    ],
  })
  const chain = authorities.certificates.slice(0, length - 1).reverse()
  return { leaf, chain, key: Redacted.make(key.pkcs8) }
}

/** A PKCS#8 key as node:crypto re-encodes it, so keys from different writers compare byte for byte. */
export const canonicalPkcs8 = (pkcs8: Uint8Array): Uint8Array =>
  new Uint8Array(
    createPrivateKey({ key: Buffer.from(pkcs8), format: "der", type: "pkcs8" }).export({
      type: "pkcs8",
      format: "der",
    }),
  )

export const toPem = (label: string, der: Uint8Array): string => {
  const b64 = Buffer.from(der).toString("base64")
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END ${label}-----\n`
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex")
