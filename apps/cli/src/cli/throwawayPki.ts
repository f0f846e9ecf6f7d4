/**
 * A throwaway PKI in memory, for `kvdeploy demo` and the tests: a root CA, an
 * intermediate and leaf certificates with fresh keys. Nothing is written to
 * disk; keys leave this module only as PEM strings for the caller to pipe.
 */
import "reflect-metadata"
import { createPrivateKey, webcrypto } from "node:crypto"
import * as x509 from "@peculiar/x509"

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

const day = 86_400_000

export type KeySpec =
  | { readonly kind: "EC"; readonly curve: "P-256" | "P-384" }
  | { readonly kind: "RSA"; readonly bits: 2048 | 3072 | 1024 }

export interface Issued {
  readonly certificate: x509.X509Certificate
  readonly keys: webcrypto.CryptoKeyPair
  readonly spec: KeySpec
  readonly certPem: string
  /** Unencrypted PKCS#8 PEM. */
  readonly keyPem: string
}

const algorithmOf = (spec: KeySpec) =>
  spec.kind === "EC"
    ? { name: "ECDSA", namedCurve: spec.curve, hash: spec.curve === "P-256" ? "SHA-256" : "SHA-384" }
    : {
        name: "RSASSA-PKCS1-v1_5",
        modulusLength: spec.bits,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: "SHA-256",
      }

const serial = (): string => {
  const bytes = webcrypto.getRandomValues(new Uint8Array(12))
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x10
  return Buffer.from(bytes).toString("hex")
}

const pemOf = (label: string, der: ArrayBuffer | Uint8Array): string => {
  const b64 = Buffer.from(der as Uint8Array).toString("base64")
  return `-----BEGIN ${label}-----\n${(b64.match(/.{1,64}/g) ?? []).join("\n")}\n-----END ${label}-----\n`
}

export interface IssueOptions {
  readonly subject: string
  readonly issuer?: Issued
  readonly ca?: boolean
  readonly key?: KeySpec
  /** Validity relative to now, in days (defaults: -1 .. +90, CAs +3650). */
  readonly notBeforeDays?: number
  readonly notAfterDays?: number
  readonly dnsNames?: ReadonlyArray<string>
}

export const issue = async (options: IssueOptions): Promise<Issued> => {
  const spec = options.key ?? { kind: "EC", curve: "P-256" }
  const alg = algorithmOf(spec)
  const keys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair
  const signer = options.issuer
  const signingAlg = signer === undefined ? alg : algorithmOf(signer.spec)
  const now = Date.now()
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: options.subject,
    issuer: signer?.certificate.subject ?? options.subject,
    notBefore: new Date(now + (options.notBeforeDays ?? -1) * day),
    notAfter: new Date(now + (options.notAfterDays ?? (options.ca === true ? 3650 : 90)) * day),
    signingAlgorithm: signingAlg,
    publicKey: keys.publicKey,
    signingKey: (signer?.keys ?? keys).privateKey,
    extensions:
      options.ca === true
        ? [
            new x509.BasicConstraintsExtension(true, undefined, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          ]
        : [
            new x509.BasicConstraintsExtension(false, undefined, true),
            new x509.SubjectAlternativeNameExtension(
              (options.dnsNames ?? ["api.example.test"]).map((value) => ({ type: "dns" as const, value })),
            ),
            new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          ],
  })
  const pkcs8 = await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)
  return {
    certificate,
    keys,
    spec,
    certPem: `${certificate.toString("pem")}\n`,
    keyPem: pemOf("PRIVATE KEY", pkcs8),
  }
}

/** The same key as PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`). */
export const traditionalKeyPem = (keyPem: string): string => {
  const key = createPrivateKey(keyPem)
  return key.export({ type: key.asymmetricKeyType === "rsa" ? "pkcs1" : "sec1", format: "pem" }).toString()
}

/** The same key as an encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`). */
export const encryptedKeyPem = (keyPem: string, passphrase: string): string =>
  createPrivateKey(keyPem)
    .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase })
    .toString()

export interface DemoPki {
  readonly root: Issued
  readonly intermediate: Issued
  /** A leaf for `subject`, issued by the intermediate. */
  readonly leaf: (subject: string, options?: Omit<IssueOptions, "subject" | "issuer">) => Promise<Issued>
}

export const makePki = async (name = "kvdeploy throwaway"): Promise<DemoPki> => {
  const root = await issue({ subject: `CN=${name} root CA`, ca: true })
  const intermediate = await issue({ subject: `CN=${name} intermediate CA`, ca: true, issuer: root })
  return {
    root,
    intermediate,
    leaf: (subject, options = {}) => issue({ ...options, subject, issuer: intermediate }),
  }
}
