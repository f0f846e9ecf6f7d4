/**
 * Throwaway X.509 PKI for tests and demos: fresh keys and certificates made in
 * memory with @peculiar/x509 and WebCrypto. Nothing here touches the disk.
 *
 * The pieces are deliberately small (a key, a certificate, PEM) so each
 * caller keeps composing the chain shape it needs.
 */
import "reflect-metadata"
import { spawnSync } from "node:child_process"
import { webcrypto } from "node:crypto"
import * as x509 from "@peculiar/x509"

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

export type KeySpec = "RSA-1024" | "RSA-2048" | "RSA-3072" | "RSA-4096" | "P-256" | "P-384" | "P-521"

/** Key generation and signing parameters: RSA PKCS#1 v1.5 with SHA-256; ECDSA with the curve's hash. */
export const algorithmOf = (
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
  /** The private key, unencrypted PKCS#8 DER. */
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

/** Who signs: the issuer's subject name and key. */
export interface Issuer {
  readonly name: string
  readonly key: Pick<TestKey, "spec" | "pair">
}

/** A random positive serial, 12 bytes, no leading zero byte. */
export const randomSerial = (): string => {
  const bytes = webcrypto.getRandomValues(new Uint8Array(12))
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x10
  return Buffer.from(bytes).toString("hex")
}

export interface IssueOptions {
  readonly subject: string
  /** The certified key. */
  readonly key: Pick<TestKey, "spec" | "pair">
  /** Omitted: self-signed by `key`. */
  readonly issuer?: Issuer
  /** Basic constraints (critical) with this cA flag; omitted: no basic constraints extension. */
  readonly ca?: boolean
  /** pathLenConstraint of the basic constraints (with `ca: true`). */
  readonly pathLength?: number
  readonly sans?: ReadonlyArray<x509.JsonGeneralName>
  /** Key usage flags (critical). */
  readonly keyUsage?: number
  /** Extended key usage OIDs (not critical). */
  readonly extendedKeyUsage?: ReadonlyArray<string>
  /** Hex; default `randomSerial()`. */
  readonly serialNumber?: string
  /** Default: an hour ago. */
  readonly notBefore?: Date
  /** Default: 90 days from now. */
  readonly notAfter?: Date
}

/** A certificate, DER. Extensions in order: basic constraints, SAN, key usage, extended key usage. */
export const issue = async (options: IssueOptions): Promise<Uint8Array> => {
  const signer = options.issuer ?? { name: options.subject, key: options.key }
  const extensions: Array<x509.Extension> = []
  if (options.ca !== undefined)
    extensions.push(new x509.BasicConstraintsExtension(options.ca, options.pathLength, true))
  if (options.sans !== undefined) extensions.push(new x509.SubjectAlternativeNameExtension([...options.sans]))
  if (options.keyUsage !== undefined) extensions.push(new x509.KeyUsagesExtension(options.keyUsage, true))
  if (options.extendedKeyUsage !== undefined)
    extensions.push(new x509.ExtendedKeyUsageExtension([...options.extendedKeyUsage]))
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: options.serialNumber ?? randomSerial(),
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

/** PEM with 64-character lines and a trailing newline. */
export const toPem = (label: string, der: Uint8Array): string => {
  const b64 = Buffer.from(der).toString("base64")
  return `-----BEGIN ${label}-----\n${(b64.match(/.{1,64}/g) ?? []).join("\n")}\n-----END ${label}-----\n`
}

/**
 * Write at `path` a PKCS#12 keystore that Java's keytool makes with two private-key entries
 * (aliases a and b, EC P-256, store password `password`): the PFX of two keys kvdeploy refuses.
 * Their subjects are CN=a.example.test and CN=b.example.test, or both `options.subject` (a store
 * holding an old and a renewed entry of one name). Needs keytool on the PATH; throws with its error
 * otherwise.
 */
export const keytoolStoreOfTwoKeys = (
  path: string,
  password: string,
  options: { readonly subject?: string } = {},
): void => {
  for (const alias of ["a", "b"]) {
    const made = spawnSync("keytool", [
      "-genkeypair",
      "-keystore",
      path,
      "-storetype",
      "PKCS12",
      "-storepass",
      password,
      "-alias",
      alias,
      "-keyalg",
      "EC",
      "-groupname",
      "secp256r1",
      "-dname",
      options.subject ?? `CN=${alias}.example.test`,
      "-validity",
      "30",
    ])
    if (made.status !== 0) throw new Error(`keytool -genkeypair: ${made.error?.message ?? made.stderr}`)
  }
}

/**
 * `pem`, an `ENCRYPTED PRIVATE KEY` that `openssl pkcs8 -topk8 -scrypt -scrypt_N 16384 -scrypt_r 8
 * -scrypt_p 16` wrote, with r 32 in place of 8: one byte of its DER, since the INTEGER keeps its
 * length. Its scrypt then needs 128*N*r = 64 MiB, more than OpenSSL allows (32 MiB), which no
 * openssl command writes or reads. Throws when `pem` does not hold those parameters.
 */
export const scryptKeyOverOpensslMemory = (pem: string): string => {
  const der = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64")
  // N 16384, r 8, p 16, as DER INTEGERs one after another.
  const at = der.indexOf(Buffer.from([0x02, 0x02, 0x40, 0x00, 0x02, 0x01, 0x08, 0x02, 0x01, 0x10]))
  if (at < 0) throw new Error("the key's scrypt parameters are not N 16384, r 8, p 16")
  der[at + 6] = 0x20
  // The label apart: the marker line is made here, no key is written in this file.
  const label = "ENCRYPTED PRIVATE KEY"
  return `-----BEGIN ${label}-----\n${der.toString("base64")}\n-----END ${label}-----\n`
}
