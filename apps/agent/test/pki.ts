/**
 * The agent tests' throwaway PKI: a CA and EC P-256 leaves, made in memory by
 * the shared @kvdeploy/pkcs12/testing (keys leave only as PEM strings).
 */
import "reflect-metadata"
import { createHash } from "node:crypto"
import { generateKey, issue, toPem } from "@kvdeploy/pkcs12/testing"
import { KeyUsageFlags } from "@peculiar/x509"

const day = 86_400_000

export interface Issued {
  readonly certPem: string
  readonly keyPem: string
  /** base64url SHA-1 of the DER, as Key Vault's x5t. */
  readonly x5t: string
  readonly notAfter: Date
}

export interface Pki {
  readonly caPem: string
  /** A leaf for `cn`, valid from a day ago for 90 days, or from `notBefore`. */
  readonly leaf: (cn: string, options?: { readonly notBefore?: Date }) => Promise<Issued>
}

export const makePki = async (): Promise<Pki> => {
  const caKey = await generateKey("P-256")
  const now = Date.now()
  const caName = "CN=kvdeploy agent test CA"
  const caDer = await issue({
    subject: caName,
    key: caKey,
    ca: true,
    keyUsage: KeyUsageFlags.keyCertSign,
    notBefore: new Date(now - day),
    notAfter: new Date(now + 3650 * day),
  })
  return {
    caPem: toPem("CERTIFICATE", caDer),
    leaf: async (cn, options = {}) => {
      const key = await generateKey("P-256")
      // Whole seconds: X.509 times carry no fractions, so the expiry gauge compares exactly.
      const notAfter = new Date(Math.floor((Date.now() + 90 * day) / 1000) * 1000)
      const der = await issue({
        subject: `CN=${cn}`,
        key,
        issuer: { name: caName, key: caKey },
        ca: false,
        sans: [{ type: "dns", value: cn }],
        notBefore: options.notBefore ?? new Date(Date.now() - day),
        notAfter,
      })
      return {
        certPem: toPem("CERTIFICATE", der),
        keyPem: toPem("PRIVATE KEY", key.pkcs8),
        x5t: createHash("sha1").update(der).digest("base64url"),
        notAfter,
      }
    },
  }
}
