/**
 * When what is served with a leaf stops working by expiry: the earliest notAfter of the leaf and of
 * the certificates of its chain on the leaf's issuer path, up to a root. One rule for the agent's
 * `kvdeploy_agent_certificate_expiry_timestamp_seconds` and the CLI's `expires` row.
 */
import { createHash, type KeyObject, X509Certificate } from "node:crypto"
import { rootCertificates } from "node:tls"
import { issued, type ParsedCertificate, parseCertificateSharedNow } from "./certificateFacts.js"
import { MAX_SIGNATURE_CHECKS } from "./leaf.js"

export interface ServedExpiry {
  /** The earliest notAfter of the leaf and the chain's certificates on its issuer path (roots not counted). */
  readonly notAfter: Date
  /**
   * The certificate of the path that expires first, when it expires before the leaf; `depth` 1 is
   * the leaf's issuer, 2 the issuer's issuer, and so on.
   */
  readonly issuerFirst?: { readonly subject: string; readonly notAfter: Date; readonly depth: number }
}

export interface ServedExpiryOptions {
  /**
   * The roots clients trust (DER): a certificate of the chain with the name and key of one of them
   * is that root cross-signed for older clients, and ends the path uncounted. Node's bundled Mozilla
   * store (`tls.rootCertificates`) when not given.
   */
  readonly roots?: ReadonlyArray<Uint8Array>
}

const parsed = (der: Uint8Array): ParsedCertificate | undefined => {
  const outcome = parseCertificateSharedNow(der, "certificate")
  return outcome._tag === "Parsed" ? outcome.parsed : undefined
}

const spkiOf = (publicKey: KeyObject): Buffer => publicKey.export({ type: "spki", format: "der" })

/** A root's identity as a client's path builder matches a trust anchor: its name and its key. */
const anchorOf = (node: X509Certificate, publicKey: KeyObject): string =>
  `${node.subject}\n${createHash("sha256").update(spkiOf(publicKey)).digest("base64")}`

const anchorOrUndefined = (node: () => X509Certificate): string | undefined => {
  try {
    const cert = node()
    return anchorOf(cert, cert.publicKey)
  } catch {
    return undefined
  }
}

let bundled: ReadonlyArray<Buffer> | undefined
/**
 * Whether Node's bundled Mozilla store holds a root of this name and key. The store's DER is
 * decoded once and searched for the key's bytes (a fraction of a millisecond); only a root that
 * holds them is parsed, instead of the whole store (about 30 ms) on the first chain a run reads.
 */
const inBundledRoots = (anchor: string, spki: Buffer): boolean => {
  bundled ??= rootCertificates.map((pem) =>
    Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, ""), "base64"),
  )
  return bundled.some(
    (der) => der.indexOf(spki) >= 0 && anchorOrUndefined(() => new X509Certificate(der)) === anchor,
  )
}

/** Whether `der` has the name and key of a root of Node's bundled Mozilla store (for tests). */
export const isBundledRootCopy = (der: Uint8Array): boolean => {
  const c = parsed(der)
  return c !== undefined && inBundledRoots(anchorOf(c.node, c.publicKey), spkiOf(c.publicKey))
}

/** OpenSSL's check that `parent`'s name (and key identifier, when both carry one) matches `child`'s issuer. */
const checkIssuedOrFalse = (child: ParsedCertificate, parent: ParsedCertificate): boolean => {
  try {
    return child.node.checkIssued(parent.node)
  } catch {
    return false
  }
}

const subjectText = (c: ParsedCertificate): string => c.node.subject.replace(/\n/g, ", ")

/**
 * The expiry of `leaf` served with `chain` (DER, any order, unrelated certificates ignored): the
 * earliest notAfter of the leaf and of each certificate on its issuer path through the chain. From
 * the leaf, each step takes the chain's certificate that issued the one before (named as its issuer,
 * signature verified; of several copies, the one that lasts longest, as a client's path takes it),
 * and the path ends, that certificate not counted, at a root: a self-signed certificate (a client
 * checks against the root it trusts, not a copy served) or a cross-signed copy of a root (the name
 * and key of a self-signed certificate of the chain or of `options.roots`: kept in chains for old
 * clients, it may end before the leaf, or have ended, while newer clients stop at their own root).
 * It ends too when no certificate of the chain issued the last one, or at a certificate already on
 * the path by name and key, whichever copy (two CAs cross-signing each other, an older copy of one
 * left in the file). A client that builds its path from the served chain refuses the leaf once any
 * certificate of that path expired. Undefined when the leaf cannot be read.
 *
 * Its cost is bounded: candidates are matched by name (and key identifiers) first, and at most `MAX_SIGNATURE_CHECKS`
 * signatures are checked in all (a chain checks a handful; hundreds of certificates of one name, each
 * named as every other's issuer, would check hundreds per step: minutes). Once they are spent the path
 * ends where it got to: the answer is the earliest notAfter of the leaf and of the path found so far,
 * the certificates above it not counted (the deploy's preflight refuses such a chain anyway).
 */
export const servedExpiry = (
  leaf: Uint8Array,
  chain: ReadonlyArray<Uint8Array>,
  options: ServedExpiryOptions = {},
): ServedExpiry | undefined => {
  const child = parsed(leaf)
  if (child === undefined) return undefined
  const leafNotAfter = new Date(child.node.validTo)
  const certificates = chain.flatMap((der) => parsed(der) ?? [])
  const chainRoots = new Set(
    certificates.filter((c) => c.selfSigned()).map((c) => anchorOf(c.node, c.publicKey)),
  )
  const optionRoots =
    options.roots === undefined
      ? undefined
      : new Set(options.roots.flatMap((der) => anchorOrUndefined(() => new X509Certificate(der)) ?? []))
  const isRoot = (c: ParsedCertificate): boolean => {
    if (c.selfSigned()) return true
    const anchor = anchorOf(c.node, c.publicKey)
    return (
      chainRoots.has(anchor) ||
      (optionRoots === undefined ? inBundledRoots(anchor, spkiOf(c.publicKey)) : optionRoots.has(anchor))
    )
  }
  // A certificate's identity as a path builder sees it (its name and key): a second copy of one on
  // the path (an older one left in the file) is that certificate again, not a step further up.
  const anchors = new Map<ParsedCertificate, string>()
  const anchorOfParsed = (c: ParsedCertificate): string => {
    let anchor = anchors.get(c)
    if (anchor === undefined) {
      anchor = anchorOf(c.node, c.publicKey)
      anchors.set(c, anchor)
    }
    return anchor
  }
  const onPath = new Set<string>([anchorOfParsed(child)])
  let checks = 0
  let first: { readonly subject: string; readonly notAfter: Date; readonly depth: number } | undefined
  let current = child
  walk: for (let depth = 1; ; depth++) {
    const issuers: Array<ParsedCertificate> = []
    for (const c of certificates) {
      // OpenSSL's name and key-identifier check first, and only then a signature check, counted.
      if (!checkIssuedOrFalse(current, c) || onPath.has(anchorOfParsed(c))) continue
      if (++checks > MAX_SIGNATURE_CHECKS) break walk
      if (issued(c, current)) issuers.push(c)
    }
    // Of several copies of the issuer (an old one and its renewal, same key), a client builds its
    // path with the one that lasts; one of them a root ends the path there.
    if (issuers.length === 0 || issuers.some(isRoot)) break
    let next = issuers[0] as ParsedCertificate
    for (const c of issuers)
      if (new Date(c.node.validTo).getTime() > new Date(next.node.validTo).getTime()) next = c
    const notAfter = new Date(next.node.validTo)
    if (notAfter.getTime() < (first?.notAfter ?? leafNotAfter).getTime())
      first = { subject: subjectText(next), notAfter, depth }
    onPath.add(anchorOfParsed(next))
    current = next
  }
  return first === undefined ? { notAfter: leafNotAfter } : { notAfter: first.notAfter, issuerFirst: first }
}
