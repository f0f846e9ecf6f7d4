/**
 * Certificates and keys for the tests, generated in memory with
 * @peculiar/x509 and WebCrypto. Nothing here touches the disk.
 */
import "reflect-metadata"
import { webcrypto } from "node:crypto"
import type { CertificateMaterial } from "@kvdeploy/core"
import * as x509 from "@peculiar/x509"
import * as Redacted from "effect/Redacted"

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

export type KeySpec = "RSA-2048" | "P-256" | "P-384"

const algorithmOf = (spec: KeySpec) =>
  spec === "RSA-2048"
    ? {
        name: "RSASSA-PKCS1-v1_5",
        hash: "SHA-256",
        publicExponent: new Uint8Array([1, 0, 1]),
        modulusLength: 2048,
      }
    : { name: "ECDSA", namedCurve: spec, hash: spec === "P-256" ? "SHA-256" : "SHA-384" }

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
  readonly der: Uint8Array
}

let serialCounter = 0x1000
const nextSerial = () =>
  `7${(serialCounter++).toString(16).padStart(7, "0")}${Math.floor(Math.random() * 0xffff)
    .toString(16)
    .padStart(4, "0")}`

export const issue = async (options: {
  readonly subject: string
  readonly key: TestKey
  readonly issuer?: Issuer
  readonly ca: boolean
  readonly sans?: ReadonlyArray<x509.JsonGeneralName>
  readonly notAfter?: Date
}): Promise<Uint8Array> => {
  const signer = options.issuer ?? { name: options.subject, key: options.key }
  const extensions: Array<x509.Extension> = [new x509.BasicConstraintsExtension(options.ca, undefined, true)]
  if (options.sans !== undefined) extensions.push(new x509.SubjectAlternativeNameExtension([...options.sans]))
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: nextSerial(),
    subject: options.subject,
    issuer: signer.name,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: options.notAfter ?? new Date(Date.now() + 90 * 86400_000),
    signingAlgorithm: algorithmOf(signer.key.spec),
    publicKey: options.key.pair.publicKey,
    signingKey: signer.key.pair.privateKey,
    extensions,
  })
  return new Uint8Array(cert.rawData)
}

export const makeCa = async (name = "CN=kvdeploy azure-kv Test CA"): Promise<Issuer> => {
  const key = await generateKey("P-256")
  return { name, key, der: await issue({ subject: name, key, ca: true }) }
}

/** A leaf issued by `ca`, chain = [ca]. */
export const makeMaterial = async (
  ca: Issuer,
  spec: KeySpec = "P-256",
  subject = "CN=app.example.test",
): Promise<CertificateMaterial & { readonly testKey: TestKey }> => {
  const key = await generateKey(spec)
  const leaf = await issue({
    subject,
    key,
    issuer: ca,
    ca: false,
    sans: [{ type: "dns", value: "app.example.test" }],
  })
  return { leaf, chain: [ca.der], key: Redacted.make(key.pkcs8), testKey: key }
}

export const toPem = (label: string, der: Uint8Array): string => {
  const b64 = Buffer.from(der).toString("base64")
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END ${label}-----\n`
}

/** A TLS server certificate for 127.0.0.1 and its key, and the CA to trust, as PEM (for a local HTTPS listener). */
export const loopbackTls = async (): Promise<{
  readonly cert: string
  readonly key: string
  readonly ca: string
}> => {
  const ca = await makeCa("CN=kvdeploy azure-kv listener CA")
  const key = await generateKey("P-256")
  const der = await issue({
    subject: "CN=127.0.0.1",
    key,
    issuer: ca,
    ca: false,
    sans: [
      { type: "ip", value: "127.0.0.1" },
      { type: "dns", value: "localhost" },
    ],
  })
  return {
    cert: toPem("CERTIFICATE", der),
    key: toPem("PRIVATE KEY", key.pkcs8),
    ca: toPem("CERTIFICATE", ca.der),
  }
}

/** x5t of a DER certificate: base64url SHA-1. */
export const x5tOf = async (der: Uint8Array): Promise<string> =>
  Buffer.from(await webcrypto.subtle.digest("SHA-1", der)).toString("base64url")
