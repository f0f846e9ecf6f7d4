/**
 * A throwaway PKI in memory, for `kvdeploy demo` and the tests: a root CA, an
 * intermediate and leaf certificates with fresh keys. Nothing is written to
 * disk; keys leave this module only as PEM strings for the caller to pipe.
 */
// @peculiar/x509 needs the Reflect metadata API before its module runs (its decorators).
import "reflect-metadata"
import { createPrivateKey, type webcrypto } from "node:crypto"
import {
  generateKey,
  issue as issueCertificate,
  type KeySpec as TestKeySpec,
  toPem,
} from "@kvdeploy/pkcs12/testing"
import * as x509 from "@peculiar/x509"

const day = 86_400_000

export type KeySpec =
  | { readonly kind: "EC"; readonly curve: "P-256" | "P-384" }
  | { readonly kind: "RSA"; readonly bits: 2048 | 3072 | 1024 }

export interface Issued {
  readonly certificate: x509.X509Certificate
  readonly keys: webcrypto.CryptoKeyPair
  readonly spec: KeySpec
  readonly certPem: string
  /** Unencrypted PKCS#8 DER (throwaway material; the demo never writes it anywhere). */
  readonly pkcs8: Uint8Array
  /** Unencrypted PKCS#8 PEM. */
  readonly keyPem: string
}

const testKeySpecOf = (spec: KeySpec): TestKeySpec => (spec.kind === "EC" ? spec.curve : `RSA-${spec.bits}`)

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
  const key = await generateKey(testKeySpecOf(spec))
  const signer = options.issuer
  const now = Date.now()
  const der = await issueCertificate({
    subject: options.subject,
    key,
    ...(signer === undefined
      ? {}
      : {
          issuer: {
            name: signer.certificate.subject,
            key: { spec: testKeySpecOf(signer.spec), pair: signer.keys },
          },
        }),
    notBefore: new Date(now + (options.notBeforeDays ?? -1) * day),
    notAfter: new Date(now + (options.notAfterDays ?? (options.ca === true ? 3650 : 90)) * day),
    ca: options.ca === true,
    ...(options.ca === true
      ? { keyUsage: x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign }
      : {
          sans: (options.dnsNames ?? ["api.example.test"]).map((value) => ({ type: "dns" as const, value })),
          extendedKeyUsage: [x509.ExtendedKeyUsage.serverAuth],
        }),
  })
  return {
    certificate: new x509.X509Certificate(der),
    keys: key.pair,
    spec,
    certPem: toPem("CERTIFICATE", der),
    pkcs8: key.pkcs8,
    keyPem: toPem("PRIVATE KEY", key.pkcs8),
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

/**
 * A root and an intermediate CA, with EC P-256 keys unless `key` says otherwise. An RSA leaf needs
 * CAs with RSA keys: Key Vault refuses an RSA certificate signed with ECDSA, and so does kvdeploy.
 */
export const makePki = async (name = "kvdeploy throwaway", key?: KeySpec): Promise<DemoPki> => {
  const root = await issue({ subject: `CN=${name} root CA`, ca: true, ...(key === undefined ? {} : { key }) })
  const intermediate = await issue({
    subject: `CN=${name} intermediate CA`,
    ca: true,
    issuer: root,
    ...(key === undefined ? {} : { key }),
  })
  return {
    root,
    intermediate,
    leaf: (subject, options = {}) => issue({ ...options, subject, issuer: intermediate }),
  }
}
