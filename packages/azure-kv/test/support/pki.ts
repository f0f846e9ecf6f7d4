/**
 * Certificates and keys for the tests, generated in memory with
 * @peculiar/x509 and WebCrypto. Nothing here touches the disk.
 */
import { webcrypto } from "node:crypto"
import type { CertificateMaterial } from "@kvdeploy/core"
import {
  generateKey,
  issue,
  type KeySpec,
  type Issuer as SigningIssuer,
  type TestKey,
  toPem,
} from "@kvdeploy/pkcs12/testing"
import * as Redacted from "effect/Redacted"

export { generateKey, issue, type KeySpec, type TestKey, toPem }

export interface Issuer extends SigningIssuer {
  readonly der: Uint8Array
}

/**
 * A CA with a P-256 key unless told. An RSA leaf needs an RSA CA: Key Vault refuses an RSA key under
 * an ECDSA signature (400 KeySizeNotSupported), and so do kvdeploy's preflight and the emulator.
 */
export const makeCa = async (
  name = "CN=kvdeploy azure-kv Test CA",
  spec: KeySpec = "P-256",
): Promise<Issuer> => {
  const key = await generateKey(spec)
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
