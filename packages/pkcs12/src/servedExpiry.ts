/**
 * When what is served with a leaf stops working by expiry: the earliest notAfter of the leaf and of
 * the certificate of its chain that issued it. One rule for the agent's
 * `kvdeploy_agent_certificate_expiry_timestamp_seconds` and the CLI's `expires` row.
 */
import { issued, type ParsedCertificate, parseCertificateSharedNow } from "./certificateFacts.js"

export interface ServedExpiry {
  /** The earliest notAfter of the leaf and its issuer's certificate in the chain. */
  readonly notAfter: Date
  /** The leaf's issuer, when its certificate in the chain expires before the leaf. */
  readonly issuerFirst?: { readonly subject: string; readonly notAfter: Date }
}

const parsed = (der: Uint8Array): ParsedCertificate | undefined => {
  const outcome = parseCertificateSharedNow(der, "certificate")
  return outcome._tag === "Parsed" ? outcome.parsed : undefined
}

/**
 * The expiry of `leaf` served with `chain` (DER, any order): the leaf's notAfter, or an earlier one
 * of the chain certificate that issued the leaf (named as its issuer, signature verified; of
 * several, the one that lasts longest, as a client's path takes it) and is not a self-signed root (a client checks the leaf against the root it trusts, not a copy served). A
 * client that builds its path from the served chain refuses the leaf once that issuer expired.
 * Higher certificates are not counted: a cross-signed root that ends before the leaf (or has
 * ended) is kept in chains on purpose for old clients, and newer clients build a path without it,
 * as the deploy's preflight judges (it warns about the leaf's issuer alone). Undefined when the
 * leaf cannot be read.
 */
export const servedExpiry = (
  leaf: Uint8Array,
  chain: ReadonlyArray<Uint8Array>,
): ServedExpiry | undefined => {
  const child = parsed(leaf)
  if (child === undefined) return undefined
  const leafNotAfter = new Date(child.node.validTo)
  // Of several certificates that issued the leaf (an intermediate's old copy and its renewal, same
  // key), a client builds its path with the one that lasts: the latest of them is the issuer's end.
  let issuer: { readonly subject: string; readonly notAfter: Date } | undefined
  for (const der of chain) {
    const parent = parsed(der)
    if (parent === undefined || parent.selfSigned() || !issued(parent, child)) continue
    const notAfter = new Date(parent.node.validTo)
    if (issuer === undefined || notAfter.getTime() > issuer.notAfter.getTime())
      issuer = { subject: parent.node.subject.replace(/\n/g, ", "), notAfter }
  }
  return issuer === undefined || issuer.notAfter.getTime() >= leafNotAfter.getTime()
    ? { notAfter: leafNotAfter }
    : { notAfter: issuer.notAfter, issuerFirst: issuer }
}
