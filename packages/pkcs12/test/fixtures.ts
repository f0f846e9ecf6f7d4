/**
 * Test certificate authorities and leaves, generated in memory with
 * @peculiar/x509 and WebCrypto. Nothing here touches the disk.
 */
import { createPrivateKey } from "node:crypto"
import type { CertificateMaterial } from "@kvdeploy/core"
import type * as x509 from "@peculiar/x509"
import * as Redacted from "effect/Redacted"
import {
  generateKey,
  type Issuer,
  issue as issueCertificate,
  type KeySpec,
  type TestKey,
  toPem,
} from "../src/testing/index.js"

export { generateKey, type Issuer, type KeySpec, type TestKey, toPem }

export const keySpecs: ReadonlyArray<KeySpec> = [
  "RSA-2048",
  "RSA-3072",
  "RSA-4096",
  "P-256",
  "P-384",
  "P-521",
]

let serial = 0x10
const nextSerial = (): string => {
  serial++
  // A serial with a leading zero byte exercises canonicalisation.
  return `00${serial.toString(16).padStart(6, "0")}a1`
}

export const issue = (options: {
  readonly subject: string
  readonly key: TestKey
  readonly issuer?: Issuer
  readonly ca: boolean
  readonly sans?: ReadonlyArray<x509.JsonGeneralName>
  readonly notBefore?: Date
  readonly notAfter?: Date
  readonly keyUsage?: number
}): Promise<Uint8Array> => issueCertificate({ ...options, serialNumber: nextSerial() })

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

export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex")
