/**
 * The emulator's own PKI: a CA generated at start (its private key never leaves
 * memory), the TLS server certificate it signs for loopback, and self-signed
 * certificates for `create` (issuer "Self") and injected foreign imports.
 */
import { createPrivateKey, KeyObject, webcrypto } from "node:crypto"

type CryptoKey = webcrypto.CryptoKey
type CryptoKeyPair = webcrypto.CryptoKeyPair

import "reflect-metadata"
import * as x509 from "@peculiar/x509"

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

const subtle = webcrypto.subtle

export interface TlsIdentity {
  /** The CA certificate, PEM (public). */
  readonly caPem: string
  /** The server certificate, PEM, followed by nothing else (the CA is the trust anchor). */
  readonly certPem: string
  /** The server key, PEM, in memory only. */
  readonly keyPem: string
}

const ecdsa = { name: "ECDSA", namedCurve: "P-256" } as const
const ecdsaSign = { name: "ECDSA", hash: "SHA-256" } as const

const pkcs8Pem = async (key: CryptoKey): Promise<string> => {
  const der = Buffer.from(await subtle.exportKey("pkcs8", key))
  return createPrivateKey({ key: der, format: "der", type: "pkcs8" }).export({
    type: "pkcs8",
    format: "pem",
  }) as string
}

const randomSerial = (): string => {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16))
  bytes[0] = (bytes[0] ?? 0) & 0x7f
  return Buffer.from(bytes).toString("hex")
}

/** A CA plus a server certificate for the given host names / IP addresses. */
export const createTlsIdentity = async (hosts: ReadonlyArray<string>): Promise<TlsIdentity> => {
  const caKeys = (await subtle.generateKey(ecdsa, true, ["sign", "verify"])) as CryptoKeyPair
  const now = Date.now()
  const notBefore = new Date(now - 60_000)
  const notAfter = new Date(now + 30 * 86_400_000)
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=kvdeploy kv-emulator CA ${new Date(now).toISOString()}`,
    notBefore,
    notAfter,
    signingAlgorithm: ecdsaSign,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  })
  const serverKeys = (await subtle.generateKey(ecdsa, true, ["sign", "verify"])) as CryptoKeyPair
  const names: Array<{ type: "dns" | "ip"; value: string }> = []
  for (const h of new Set(["127.0.0.1", "::1", "localhost", ...hosts])) {
    names.push({ type: /^[0-9.]+$/.test(h) || h.includes(":") ? "ip" : "dns", value: h })
  }
  const server = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: "CN=localhost",
    issuer: ca.subject,
    notBefore,
    notAfter,
    signingAlgorithm: ecdsaSign,
    publicKey: serverKeys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  })
  return {
    caPem: ca.toString("pem"),
    certPem: server.toString("pem"),
    keyPem: await pkcs8Pem(serverKeys.privateKey),
  }
}

export interface SelfSignedRequest {
  readonly subject: string
  readonly dnsNames?: ReadonlyArray<string>
  readonly keyType: "RSA" | "EC"
  readonly keySize?: number
  readonly curve?: string
  readonly validityMonths: number
  readonly ekus?: ReadonlyArray<string>
}

export interface GeneratedCertificate {
  readonly der: Uint8Array
  /** PKCS#8 DER of the private key. */
  readonly keyPkcs8: Uint8Array
  /** A PKCS#10 request for the same key (base64 DER), as the pending operation's `csr`. */
  readonly csr: Uint8Array
}

const curveName = (crv: string | undefined): "P-256" | "P-384" | "P-521" => {
  if (crv === "P-384" || crv === "P-521") return crv
  return "P-256"
}

/** A self-signed certificate as Key Vault's "Self" issuer makes it. */
export const createSelfSigned = async (req: SelfSignedRequest): Promise<GeneratedCertificate> => {
  const alg =
    req.keyType === "EC"
      ? { name: "ECDSA", namedCurve: curveName(req.curve) }
      : {
          name: "RSASSA-PKCS1-v1_5",
          modulusLength: req.keySize ?? 2048,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: "SHA-256",
        }
  const keys = (await subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair
  const now = Date.now()
  const notAfter = new Date(now)
  notAfter.setUTCMonth(notAfter.getUTCMonth() + Math.max(1, req.validityMonths))
  const subject = req.subject.length > 0 ? req.subject : "CN=default"
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, false),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.digitalSignature | (req.keyType === "RSA" ? x509.KeyUsageFlags.keyEncipherment : 0),
      true,
    ),
    new x509.ExtendedKeyUsageExtension(
      req.ekus && req.ekus.length > 0
        ? [...req.ekus]
        : [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ]
  if (req.dnsNames && req.dnsNames.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension(req.dnsNames.map((value) => ({ type: "dns", value }))),
    )
  }
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: subject,
    notBefore: new Date(now - 5 * 60_000),
    notAfter,
    keys,
    extensions,
    ...(req.keyType === "EC" ? { signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } } : {}),
  })
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: subject,
    keys,
    ...(req.keyType === "EC"
      ? { signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } }
      : { signingAlgorithm: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } }),
  })
  return {
    der: new Uint8Array(cert.rawData),
    keyPkcs8: new Uint8Array(await subtle.exportKey("pkcs8", keys.privateKey)),
    csr: new Uint8Array(csr.rawData),
  }
}

export const isKeyObject = (k: unknown): k is KeyObject => k instanceof KeyObject

/** ecdsa-with-SHA1, -SHA224, -SHA256, -SHA384, -SHA512 (RFC 5758, RFC 3279): 1.2.840.10045.4.* */
const ECDSA_SIGNATURE_OID = /^1\.2\.840\.10045\.4(\.|$)/

/**
 * Whether a certificate (DER) is signed with ECDSA: read by node:crypto where it tells
 * (`signatureAlgorithmOid`, Node 24.9 and later), else by @peculiar/x509. Throws when the
 * certificate cannot be parsed.
 */
export const signedWithEcdsa = (der: Uint8Array, parsed?: { readonly signatureAlgorithmOid?: unknown }) => {
  const oid = parsed?.signatureAlgorithmOid
  if (typeof oid === "string") return ECDSA_SIGNATURE_OID.test(oid)
  return (new x509.X509Certificate(der).signatureAlgorithm as { readonly name?: string }).name === "ECDSA"
}
