/**
 * Which certificate of a bundle is the leaf, wherever it sits: `parsePem` keeps the file's order,
 * and a bundle may put its CA first (`cat ca.pem leaf.pem key.pem`). One rule for every reader
 * (a library caller, the CLI's `verify`): with a private key, the certificate the key belongs to;
 * without one, the certificate that issued none of the others (the end of the chain).
 */
import type { CertificateMaterial, MaterialProblem } from "@kvdeploy/core"
import { MaterialInvalid } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import {
  issued,
  nameOf,
  type ParsedCertificate,
  parseCertificateSharedNow,
  x5tOf,
} from "./certificateFacts.js"
import type { ParsedPem } from "./pem.js"
import { bytesEqual, loadPkcs8SharedNow, publicKeysEqual, publicOfNow } from "./privateKey.js"

/** A bundle's certificates split into its leaf and the rest (the rest in the bundle's order). */
export interface LeafAndChain {
  readonly leaf: Uint8Array
  readonly chain: Array<Uint8Array>
}

const invalid = (field: string, message: string, fix: string) =>
  Effect.fail(new MaterialInvalid({ problems: [{ field, message, fix } satisfies MaterialProblem] }))

const described = (c: ParsedCertificate): string =>
  `${JSON.stringify(nameOf(c, "subject"))} (x5t ${x5tOf(c.der)})`

/**
 * The most (parent, child) pairs of a bundle whose names link (the child names the parent's subject
 * as its issuer) that `chainEnds` looks at, and the most of those whose key identifiers agree too
 * (OpenSSL's `checkIssued`), each then a signature check. A bundle has a few; 600 certificates of one
 * name issued by that name gave 360,000 signature checks (25 s), and the 1 MiB input limit allows
 * minutes: beyond these the bundle is refused.
 */
export const MAX_LINKED_PAIRS = 20_000
export const MAX_SIGNATURE_CHECKS = 2_000

/**
 * The certificates of `distinct` that issued none of the others: the candidates for the leaf; or,
 * when more pairs would need checking than the bounds above, how many certificates share a name.
 * Pairs whose names do not link are never compared further; pairs whose key identifiers (AKI/SKI)
 * differ are left out by OpenSSL's `checkIssued` before any signature check.
 */
const chainEnds = (
  distinct: ReadonlyArray<ParsedCertificate>,
): Array<ParsedCertificate> | { readonly tooMany: number } => {
  const bySubject = new Map<string, Array<number>>()
  const subjects = distinct.map((c) => c.node.subject)
  for (const [i, subject] of subjects.entries()) {
    const same = bySubject.get(subject)
    if (same === undefined) bySubject.set(subject, [i])
    else same.push(i)
  }
  const issuedSomething = new Set<number>()
  let linked = 0
  let checks = 0
  for (const [j, child] of distinct.entries()) {
    for (const i of bySubject.get(child.node.issuer) ?? []) {
      if (i === j || issuedSomething.has(i)) continue
      const parent = distinct[i]
      if (parent === undefined) continue
      if (++linked > MAX_LINKED_PAIRS) return { tooMany: distinct.length }
      // OpenSSL's name and key-identifier check first: no signature check for a pair it rules out.
      let named = false
      try {
        named = child.node.checkIssued(parent.node)
      } catch {
        named = false
      }
      if (!named) continue
      if (++checks > MAX_SIGNATURE_CHECKS) return { tooMany: distinct.length }
      if (issued(parent, child)) issuedSomething.add(i)
    }
  }
  return distinct.filter((_, i) => !issuedSomething.has(i))
}

/** The certificate whose public key is the key's, when one is (public halves compared). */
const ownerOf = (
  distinct: ReadonlyArray<ParsedCertificate>,
  key: Redacted.Redacted<Uint8Array>,
): ParsedCertificate | undefined => {
  const pkcs8 = Redacted.value(key)
  const loaded = loadPkcs8SharedNow(pkcs8, pkcs8.slice())
  const publicKey = loaded === undefined ? undefined : publicOfNow(loaded)
  if (publicKey === undefined) return undefined
  return distinct.find((c) => publicKeysEqual(publicKey, c.publicKey))
}

const isRedacted = (value: unknown): value is Redacted.Redacted<unknown> => Redacted.isRedacted(value)

/** The readable certificates of `certificates` with the caller's arrays (an unreadable one is left out). */
const readable = (
  certificates: ReadonlyArray<Uint8Array>,
): Array<{ readonly der: Uint8Array; readonly parsed: ParsedCertificate }> =>
  certificates.flatMap((der) => {
    const outcome = parseCertificateSharedNow(der, "certificate")
    return outcome._tag === "Parsed" ? [{ der, parsed: outcome.parsed }] : []
  })

/**
 * The certificate of `certificates` (DER) the PKCS#8 `key` belongs to, their public halves compared
 * as preflight compares them (an EC point however either writes it): the caller's array, or
 * undefined when the key belongs to none of them or cannot be read. `chooseLeaf`'s first rule, for
 * callers that name the files themselves (the CLI's --cert/--chain/--key, the agent's sources).
 */
export const keyOwner = (
  certificates: ReadonlyArray<Uint8Array>,
  key: Redacted.Redacted<Uint8Array>,
): Uint8Array | undefined => {
  const all = readable(certificates)
  const owner = ownerOf(
    all.map((c) => c.parsed),
    key,
  )
  return owner === undefined ? undefined : all.find((c) => c.parsed === owner)?.der
}

/**
 * A certificate of `certificates` that `parent` issued (named as its issuer, signature verified by
 * `parent`'s key), copies of `parent` aside: the caller's array, or undefined when `parent` issued
 * none of them or cannot be read. A key that belongs to such a `parent` is an issuer's key.
 */
export const issuedOneOf = (
  parent: Uint8Array,
  certificates: ReadonlyArray<Uint8Array>,
): Uint8Array | undefined => {
  const [issuer] = readable([parent])
  if (issuer === undefined) return undefined
  return readable(certificates).find((c) => !bytesEqual(c.der, parent) && issued(issuer.parsed, c.parsed))
    ?.der
}

/**
 * The leaf of `certificates` (DER, any order) and the rest:
 * - with `key`: the certificate the key belongs to, wherever it sits. The key of a certificate that
 *   issued another of the bundle (a CA's key beside its chain) is refused: it is an issuer's key.
 *   A key that belongs to none of them leaves the leaf to the rule below (or the first certificate
 *   when that rule does not settle it): the deploy's preflight then refuses the key as not the
 *   leaf's, naming the leaf.
 * - without: the certificate that issued none of the others (copies of one certificate count once);
 *   two or more such certificates (a leaf with a CA that did not issue it, two leaves), or none,
 *   are refused, naming them.
 * Fails with `MaterialInvalid` (field `certificates`, `certificates[i]` or `key`), never throws.
 * The key's bytes never appear in a problem.
 */
export const chooseLeaf = (
  certificates: ReadonlyArray<Uint8Array>,
  key?: Redacted.Redacted<Uint8Array>,
): Effect.Effect<LeafAndChain, MaterialInvalid> =>
  Effect.suspend(() => {
    if (!Array.isArray(certificates))
      return invalid(
        "certificates",
        `is ${typeof certificates}, not an array of DER certificates`,
        "pass the certificates parsePem answers (its `certificates`)",
      )
    if (key !== undefined && !(isRedacted(key) && Redacted.value(key) instanceof Uint8Array))
      return invalid(
        "key",
        "is not a Redacted PKCS#8 key",
        "pass the key parsePem answers (its `key`), or wrap the key's PKCS#8 bytes with Redacted.make",
      )
    if (certificates.length === 0)
      return invalid("certificates", "holds no certificate", "give the leaf certificate as PEM")
    const parsed: Array<ParsedCertificate> = []
    const problems: Array<MaterialProblem> = []
    for (const [i, der] of certificates.entries()) {
      if (!(der instanceof Uint8Array)) {
        problems.push({
          field: `certificates[${i}]`,
          message: `is ${der === null ? "null" : typeof der}, not DER bytes`,
          fix: "pass each certificate as a Uint8Array of DER (parsePem's `certificates`)",
        })
        continue
      }
      const outcome = parseCertificateSharedNow(der, `certificates[${i}]`)
      if (outcome._tag === "Problem") problems.push(outcome.problem)
      else parsed.push(outcome.parsed)
    }
    if (problems.length > 0) return Effect.fail(new MaterialInvalid({ problems }))
    // Copies of one certificate count once (the first copy stands for them).
    const distinct = parsed.filter((c, i) => parsed.findIndex((d) => bytesEqual(d.der, c.der)) === i)
    const split = (chosen: ParsedCertificate): LeafAndChain => {
      // The caller's array of the chosen certificate: the first whose bytes are the leaf's.
      const leaf = certificates.find((der) => bytesEqual(der, chosen.der)) ?? chosen.der
      // Copies of the leaf are no chain certificates (they count once, as the leaf).
      return { leaf, chain: certificates.filter((der) => !bytesEqual(der, leaf)) }
    }
    if (key !== undefined) {
      const owner = ownerOf(distinct, key)
      if (owner !== undefined) {
        const child = distinct.find((other) => other !== owner && issued(owner, other))
        if (child !== undefined)
          return invalid(
            "key",
            `is the private key of ${described(owner)}, which issued ${described(child)} in the same bundle: an issuer's key, not the leaf's`,
            "give the leaf's own private key (the key its certificate was issued for)",
          )
        return Effect.succeed(split(owner))
      }
    }
    const ends = chainEnds(distinct)
    if (!Array.isArray(ends))
      return invalid(
        "certificates",
        `holds ${ends.tooMany} certificates whose names link too many pairs to check (more than ${MAX_LINKED_PAIRS} by name, or ${MAX_SIGNATURE_CHECKS} signature checks): many certificates of one name issued by that name`,
        "give the leaf with its own chain only (a bundle holds a leaf and the few CAs above it), or with its private key, which names the leaf",
      )
    const [only] = ends
    if (ends.length === 1 && only !== undefined) return Effect.succeed(split(only))
    // A key that belongs to none of them: the first certificate, which preflight will name.
    const [first] = distinct
    if (key !== undefined && first !== undefined) return Effect.succeed(split(first))
    const named = (ends.length > 0 ? ends : distinct).map(described).join(", ")
    return invalid(
      "certificates",
      ends.length > 0
        ? `holds ${ends.length} certificates that could each be the leaf (none of them issued another certificate of the bundle): ${named}`
        : `holds certificates that each issued another of the bundle, so none is the leaf: ${named}`,
      "give the leaf alone or with the CAs that issued it, or with its private key (which names it)",
    )
  })

/**
 * Deploy's material from a parsed PEM bundle in any order (`parsePem`'s answer): its leaf (the
 * certificate its private key belongs to, see `chooseLeaf`), the rest as the chain (the codec orders
 * it), and the key. Fails with `MaterialInvalid` when the bundle holds no certificate or no private
 * key, or holds an issuer's key.
 */
export const materialFromPem = (pem: ParsedPem): Effect.Effect<CertificateMaterial, MaterialInvalid> =>
  Effect.suspend(() => {
    if (typeof pem !== "object" || pem === null)
      return invalid(
        "pem",
        `is ${pem === null ? "null" : typeof pem}, not a parsed PEM bundle`,
        "pass what parsePem answers",
      )
    const { certificates, key } = pem
    if (Array.isArray(certificates) && certificates.length === 0)
      return invalid(
        "pem",
        key === undefined
          ? "holds no certificate and no private key"
          : "holds no certificate, only a private key",
        "give the leaf certificate (a CERTIFICATE block), its chain and its private key",
      )
    if (key === undefined)
      return invalid(
        "key",
        "is missing: the PEM holds no private key",
        "add the leaf's private key (a PRIVATE KEY block) to the PEM",
      )
    return Effect.map(chooseLeaf(certificates, key), ({ leaf, chain }) => ({ leaf, chain, key }))
  })
