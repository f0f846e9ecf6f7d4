/**
 * What the deploy preflight needs to know about certificate material: the
 * facts of every certificate, whether the key matches the leaf, the chain in
 * leaf-first order with every link's signature checked, and every problem.
 */
import type { KeyObject } from "node:crypto"
import type {
  CertificateFacts,
  CertificateMaterial,
  InspectedMaterial,
  MaterialProblem,
} from "@kvdeploy/core"
import { MaterialInvalid, PfxEncodeError } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import {
  factsNow,
  isSelfSigned,
  issued,
  namedIssuer,
  nameOf,
  type ParsedCertificate,
  parseCertificateSharedNow,
} from "./certificateFacts.js"
import { issuesCertificatesNow } from "./keyUsage.js"
import { MAX_SIGNATURE_CHECKS } from "./leaf.js"
import {
  bytesEqual,
  checkKeyPair,
  describeKey,
  ecFormToWrite,
  hasExplicitCurveParameters,
  type KeyPairCheck,
  keyFacts,
  keyProblems,
  keyVaultAccepts,
  loadPkcs8SharedNow,
  publicKeysEqual,
  publicOfNow,
  rsaInconsistencyWords,
  rsaKeyInconsistency,
} from "./privateKey.js"
import { capProblems } from "./problemList.js"

/** A certificate's subject, serial and validity (UTC), to name it in a refusal among others of its subject. */
export const datesOf = (
  c: ParsedCertificate,
): {
  readonly subject: string
  readonly serial: string
  readonly notBefore: Date
  readonly notAfter: Date
} => {
  const description = c.description()
  return {
    subject: nameOf(c, "subject"),
    serial: description?.serialHex ?? c.node.serialNumber.toLowerCase(),
    notBefore: description?.notBefore ?? new Date(c.node.validFrom),
    notAfter: description?.notAfter ?? new Date(c.node.validTo),
  }
}

export interface OrderedChain {
  /** Indices into the input, leaf's issuer first. */
  readonly ordered: ReadonlyArray<number>
  /** Indices of certificates that do not link to the leaf. */
  readonly unrelated: ReadonlyArray<number>
  readonly problems: ReadonlyArray<MaterialProblem>
}

/**
 * Order `others` from the leaf upwards: each next certificate is the one whose
 * subject is the current certificate's issuer and whose key verifies its
 * signature. Copies of the leaf and duplicates are dropped without a problem. At most
 * `MAX_SIGNATURE_CHECKS` signatures are checked (pairs whose names or key identifiers do not link are
 * never checked): hundreds of certificates of one name, each named as every other's issuer, would
 * take minutes; past the budget the chain is refused with one problem (field `chain`).
 */
export const orderChain = (
  leaf: ParsedCertificate,
  others: ReadonlyArray<ParsedCertificate>,
  fieldOf: (index: number) => string = (i) => `chain[${i}]`,
): OrderedChain => {
  const remaining = new Set<number>()
  const seen: Array<Uint8Array> = [leaf.der]
  others.forEach((c, i) => {
    if (seen.some((d) => bytesEqual(d, c.der))) return
    seen.push(c.der)
    remaining.add(i)
  })
  const ordered: Array<number> = []
  const problems: Array<MaterialProblem> = []
  const reported = new Set<number>()
  let current = leaf
  // OpenSSL's name and key-identifier check first; each signature check after it is counted, and the
  // chain refused once they are spent (`spent`): a chain of a few CAs checks a handful.
  let checks = 0
  let spent = false
  const checkedIssued = (parent: ParsedCertificate, child: ParsedCertificate): boolean => {
    if (spent) return false
    try {
      if (!child.node.checkIssued(parent.node)) return false
    } catch {
      return false
    }
    if (++checks > MAX_SIGNATURE_CHECKS) {
      spent = true
      return false
    }
    return issued(parent, child)
  }
  const goesOn = (candidate: ParsedCertificate, index: number): boolean => {
    for (const j of remaining) {
      const above = others[j]
      if (j !== index && above !== undefined && checkedIssued(above, candidate)) return true
    }
    return false
  }
  // With no certificate left to link, the outcome is the same whether or not `current` is
  // self-signed: its signature is not verified for nothing (a PFX of a leaf alone).
  while (remaining.size > 0 && !isSelfSigned(current)) {
    // Of the certificates that issued `current` (two when the file holds an intermediate and a
    // cross-signed copy of it: the same name and key, other issuers), the first that can go on: a
    // root, or one whose own issuer is in the file. Else the first, and the gap above it is reported.
    let next: number | undefined
    for (const i of remaining) {
      const candidate = others[i]
      if (candidate === undefined || !checkedIssued(candidate, current)) continue
      next ??= i
      if (isSelfSigned(candidate) || goesOn(candidate, i)) {
        next = i
        break
      }
    }
    if (spent) break
    if (next === undefined) {
      for (const i of remaining) {
        const candidate = others[i]
        if (candidate !== undefined && namedIssuer(candidate, current)) {
          reported.add(i)
          problems.push({
            field: fieldOf(i),
            message: `is named as the issuer of "${nameOf(current, "subject")}" but its key does not verify that certificate's signature`,
            fix: "supply the issuer certificate that actually signed it (the CA may have re-keyed)",
          })
        }
      }
      break
    }
    const found = others[next]
    if (found === undefined) break
    ordered.push(next)
    remaining.delete(next)
    current = found
  }
  if (spent)
    return {
      ordered,
      unrelated: [...remaining],
      problems: [
        {
          field: "chain",
          message: `holds ${others.length} certificates, too many of them named as each other's issuers to order (more than ${MAX_SIGNATURE_CHECKS} signature checks)`,
          fix: "give the leaf's issuer path only: a chain holds the few CAs above the leaf, not every certificate of a name",
        },
      ],
    }
  // The path ending below a root is the usual case (roots are not sent): its issuer's absence is a
  // gap only when a certificate left over links above it, i.e. chains up from a certificate named as
  // that issuer whose key does not verify (reported above). A leftover that links nowhere (another
  // CA, another leaf) is said on its own; a gap with it was a missing certificate that was not.
  const above = new Set<number>()
  for (let grew = true; grew; ) {
    grew = false
    for (const j of remaining) {
      const c = others[j]
      if (c === undefined || reported.has(j) || above.has(j)) continue
      const linksAbove = [...reported, ...above].some((k) => {
        const below = others[k]
        return below !== undefined && checkedIssued(c, below)
      })
      if (linksAbove) {
        above.add(j)
        grew = true
      }
    }
  }
  if (above.size > 0 && !isSelfSigned(current)) {
    problems.push({
      field: "chain",
      message: `is broken after "${nameOf(current, "subject")}": the certificate of its issuer "${nameOf(current, "issuer")}" is missing`,
      fix: `add the certificate of "${nameOf(current, "issuer")}" to the chain, or remove the certificates above the gap`,
    })
  }
  // The path stops below a certificate not given, and no certificate left over is named as its issuer:
  // whether a CA left over is above it (an intermediate missing below it, review 37bc) or unrelated
  // (interop-37) the file does not tell, as the missing certificate alone names its own issuer. Each
  // CA left over that could be above says the issuer missing, in its own problem; one below the path
  // (issued by the leaf or a certificate of the path, by name) or not a CA cannot be above it.
  const gapOpen = above.size === 0 && !isSelfSigned(current)
  const belowPath = new Set<number>()
  if (gapOpen) {
    const names = new Set([leaf.node.subject, ...ordered.map((j) => others[j]?.node.subject)])
    for (let grew = true; grew; ) {
      grew = false
      for (const j of remaining) {
        const c = others[j]
        if (c === undefined || belowPath.has(j) || !names.has(c.node.issuer)) continue
        belowPath.add(j)
        names.add(c.node.subject)
        grew = true
      }
    }
  }
  const missingIssuer = nameOf(current, "issuer")
  const couldBeAbove = (i: number, c: ParsedCertificate | undefined): c is ParsedCertificate =>
    gapOpen && c?.node.ca === true && !belowPath.has(i)
  // Other certificates of the leaf's own key (a renewal that kept its key, old and new concatenated):
  // which one to deploy is the operator's choice, not the first one's by its place in the file.
  const sameKey = [...remaining].filter((i) => {
    const c = others[i]
    return !reported.has(i) && c !== undefined && publicKeysEqual(c.publicKey, leaf.publicKey)
  })
  if (sameKey.length > 0) {
    // Each by its serial and validity, not by a place in a list: a renewal keeps the subject.
    const all = [datesOf(leaf), ...sameKey.map((i) => datesOf(others[i] ?? leaf))]
    const newest = all.reduce((a, b) =>
      b.notBefore.getTime() > a.notBefore.getTime() ||
      (b.notBefore.getTime() === a.notBefore.getTime() && b.notAfter.getTime() > a.notAfter.getTime())
        ? b
        : a,
    )
    const count = all.length === 2 ? "two" : String(all.length)
    problems.push({
      field: "leaf",
      message: `is one of ${count} certificates given for this key: ${all.map((c) => `"${c.subject}" serial ${c.serial}, notAfter ${c.notAfter.toISOString()}`).join("; ")}; kvdeploy deploys one and does not guess which`,
      fix: `give only the one to deploy (the newest is serial ${newest.serial}, notAfter ${newest.notAfter.toISOString()}): remove the others from the file`,
    })
  }
  for (const i of remaining) {
    if (reported.has(i) || sameKey.includes(i)) continue
    const c = others[i]
    // A copy of a certificate of the path (its name and key) by another issuer: cross-signed, or the
    // self-signed form of a root the path reaches cross-signed.
    const twin =
      c === undefined
        ? undefined
        : ordered
            .map((j) => others[j])
            .find(
              (o) =>
                o !== undefined &&
                o.node.subject === c.node.subject &&
                publicKeysEqual(o.publicKey, c.publicKey),
            )
    if (twin !== undefined) {
      problems.push({
        field: fieldOf(i),
        message: `is another certificate of "${nameOf(c, "subject")}" (the same name and key), ${c !== undefined && isSelfSigned(c) ? "self-signed" : `issued by "${nameOf(c, "issuer")}"`}: a copy the chain does not use (it goes on through the one issued by "${nameOf(twin, "issuer")}")`,
        fix: "remove it from the chain file; the chain is the path through the other copy",
      })
      continue
    }
    if (couldBeAbove(i, c)) {
      const subject = nameOf(c, "subject")
      problems.push({
        field: fieldOf(i),
        message: `("${subject}") is not part of the leaf's chain: the path stops at "${nameOf(current, "subject")}", whose issuer "${missingIssuer}" is not given; if "${subject}" is above it, add "${missingIssuer}"`,
        fix: `remove it; or, if it is above "${missingIssuer}", add the certificate of "${missingIssuer}" (and any between them) to the chain`,
      })
      continue
    }
    problems.push({
      field: fieldOf(i),
      message: `("${nameOf(c, "subject")}") is not part of the leaf's chain`,
      fix: "remove it, or add the certificates that link it to the leaf",
    })
  }
  return { ordered, unrelated: [...remaining], problems }
}

/**
 * Parsed material with the checks done; shared by inspect and encode. Its
 * bytes (`leaf.der`, every `chain[i].der`, `pkcs8`) are private copies taken
 * before parsing: every check was made on exactly them, and encode writes
 * exactly them, so nothing a caller does to its own arrays afterwards can
 * put bytes into a PFX that were not checked (I4).
 */
export interface AnalysedMaterial {
  readonly leaf: ParsedCertificate
  readonly chain: ReadonlyArray<ParsedCertificate>
  readonly order: OrderedChain
  readonly key: KeyObject
  /** The PKCS#8 an encoder writes: the caller's, or the same key in the usual form (`ecFormToWrite`). */
  readonly pkcs8: Uint8Array
  /** The caller's PKCS#8 when it is not `pkcs8` (an EC key in another form), to tell it unchanged. */
  readonly given?: Uint8Array
  /**
   * The key to the leaf: its pair, another key, or a damaged pair (`checkKeyPair`, run on the first
   * call and remembered: a PFX decoded by a reader that never asks, as the emulator's, signs nothing).
   */
  readonly keyPair: () => KeyPairCheck
}

/** The analysis's key-pair check, run once when first asked. */
export const keyPairOf = (
  key: KeyObject,
  publicKey: KeyObject,
  leafPublicKey: KeyObject,
): (() => KeyPairCheck) => {
  let checked: KeyPairCheck | undefined
  return () => {
    checked ??= checkKeyPair(key, publicKey, leafPublicKey)
    return checked
  }
}

/** The problem of a key that is not the leaf's pair, in the operator's words (`key`: the private key, to name a wrong RSA number). */
export const keyPairProblem = (
  keyPair: KeyPairCheck,
  leafSubject: string,
  key?: KeyObject,
): MaterialProblem => {
  if (keyPair !== "damaged")
    return {
      field: "key",
      message: `does not match the leaf certificate "${leafSubject}" (their public keys differ)`,
      fix: "supply the private key the leaf certificate was issued for",
    }
  const wrong = key === undefined ? "" : rsaInconsistencyWords(key)
  // A key of more than two primes is whole (openssl pkey -check takes it): a kind kvdeploy does not take.
  if (key !== undefined && rsaKeyInconsistency(key) === "multi-prime")
    return {
      field: "key",
      message: `is ${wrong.replace(/^it is /, "")}: its public half is the leaf certificate's ("${leafSubject}"), but other readers of the PFX (Python's cryptography) refuse such a key`,
      fix: "use a two-prime RSA key (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048) and a certificate issued for it",
    }
  return wrong === ""
    ? {
        field: "key",
        message: `is damaged: its public half is the leaf certificate's ("${leafSubject}"), but a signature made with its private half does not verify with it, so a TLS handshake with this key would fail`,
        fix: "supply an intact copy of the private key the leaf certificate was issued for (`openssl pkey -check -noout -in KEY` checks a key file)",
      }
    : {
        field: "key",
        message: `is damaged: its public half is the leaf certificate's ("${leafSubject}"), but ${wrong}, so \`openssl pkey -check\` calls it invalid and other readers of the PFX (Python's cryptography) refuse it`,
        fix: "the key file is damaged: re-export it from where it was made, or supply the key the certificate was issued for (`openssl pkey -check -noout -in KEY` checks a key file)",
      }
}

/**
 * An encoder's refusal to build `what` ("a PFX", "the PEM") from material it could not read: each
 * problem's field and finding in the finding, each field's fix in the fix (the problems are the
 * cause).
 */
export const unreadableRefusal = (invalid: MaterialInvalid, what: string): PfxEncodeError =>
  new PfxEncodeError({
    finding: `cannot build ${what} from unreadable material: ${invalid.problems.map((p) => `${p.field}: ${p.message}`).join("; ")}`,
    fix: invalid.problems.map((p) => `${p.field}: ${p.fix}`).join("; "),
    cause: invalid,
  })

/**
 * An encoder's refusal to build `what` ("a PFX", "the PEM") from material whose key is not the
 * leaf's intact pair (I4), or undefined when it is.
 */
export const keyPairRefusal = (analysed: AnalysedMaterial, what: string): PfxEncodeError | undefined => {
  const keyPair = analysed.keyPair()
  if (keyPair === "match") return undefined
  const subject = nameOf(analysed.leaf, "subject")
  const wrong = rsaInconsistencyWords(analysed.key)
  if (keyPair === "damaged" && rsaKeyInconsistency(analysed.key) === "multi-prime")
    return new PfxEncodeError({
      finding: `refusing to build ${what}: the private key is ${wrong.replace(/^it is /, "")}`,
      fix: "use a two-prime RSA key and a certificate issued for it",
    })
  return keyPair === "damaged"
    ? new PfxEncodeError({
        finding:
          wrong === ""
            ? `refusing to build ${what}: the private key is damaged (its public half is the leaf certificate "${subject}"'s, but a signature made with its private half does not verify with it)`
            : `refusing to build ${what}: the private key is damaged (its public half is the leaf certificate "${subject}"'s, but ${wrong})`,
        fix: "supply an intact copy of the key the certificate was issued for",
      })
    : new PfxEncodeError({
        finding: `refusing to build ${what}: the private key does not match the leaf certificate "${subject}" (their public keys differ)`,
        fix: "supply the key the certificate was issued for",
      })
}

/**
 * The last analysis of each material object. Core's deploy program inspects
 * the material and then encodes the same object; the second call reuses the
 * first's parses and signature checks instead of repeating them. An entry is
 * used only while the material's bytes still equal the analysed copies.
 */
const analyses = new WeakMap<CertificateMaterial, AnalysedMaterial>()

const stillDescribes = (analysed: AnalysedMaterial, material: CertificateMaterial): boolean =>
  analysed.chain.length === material.chain.length &&
  bytesEqual(analysed.leaf.der, material.leaf) &&
  analysed.chain.every((c, i) => {
    const der = material.chain[i]
    return der !== undefined && bytesEqual(c.der, der)
  }) &&
  bytesEqual(analysed.given ?? analysed.pkcs8, Redacted.value(material.key))

/** Remember an analysis made elsewhere (decodePfx's) for the material object it returns. */
export const rememberAnalysis = (material: CertificateMaterial, analysed: AnalysedMaterial): void => {
  if (stillDescribes(analysed, material)) analyses.set(material, analysed)
}

/**
 * The analysis itself, synchronous: the same steps and problems as before,
 * without an Effect step per certificate and key (those were a fifth of an inspect).
 */
const analyseNow = (material: CertificateMaterial): AnalysedMaterial | MaterialInvalid => {
  const problems: Array<MaterialProblem> = []
  const leaf = parseCertificateSharedNow(material.leaf, "leaf")
  if (leaf._tag === "Problem") problems.push(leaf.problem)
  const chain: Array<ParsedCertificate> = []
  for (const [i, der] of material.chain.entries()) {
    const c = parseCertificateSharedNow(der, `chain[${i}]`)
    if (c._tag === "Problem") problems.push(c.problem)
    else chain.push(c.parsed)
  }
  const original = Redacted.value(material.key)
  const given = original.slice()
  const loaded = loadPkcs8SharedNow(original, given)
  if (loaded === undefined) problems.push({ field: "key", ...keyProblems.unreadablePkcs8 })
  if (leaf._tag === "Problem" || loaded === undefined || problems.length > 0)
    return new MaterialInvalid({ problems })
  // The checks below run on the key an encoder writes: the usual form when the caller's is another.
  const usual = ecFormToWrite(original, given, loaded)
  const key = usual?.key ?? loaded
  const publicKey = publicOfNow(key)
  if (publicKey === undefined)
    return new MaterialInvalid({ problems: [{ field: "key", ...keyProblems.noPublicKey }] })
  return {
    leaf: leaf.parsed,
    chain,
    order: orderChain(leaf.parsed, chain),
    key,
    ...(usual === undefined ? { pkcs8: given } : { pkcs8: usual.pkcs8, given }),
    keyPair: keyPairOf(key, publicKey, leaf.parsed.publicKey),
  }
}

/**
 * Parse and check the material, or reuse the analysis of the same object while
 * its bytes are unchanged. Synchronous, for callers that are one Effect step
 * themselves (inspect and encode run on the deploy's critical path).
 */
export const analyseMaterialNow = (material: CertificateMaterial): AnalysedMaterial | MaterialInvalid => {
  const known = analyses.get(material)
  if (known !== undefined && stillDescribes(known, material)) return known
  const analysed = analyseNow(material)
  if (!(analysed instanceof MaterialInvalid)) analyses.set(material, analysed)
  return analysed
}

/** Facts, chain order and checks of the material; fails only when it cannot be parsed at all. */
export const inspectMaterial = (
  material: CertificateMaterial,
): Effect.Effect<InspectedMaterial, MaterialInvalid> =>
  // One step inside the span: the analysis and the facts run synchronously (no continuation between
  // them). useSpan, not withSpan: the same span (name, parent, timing, outcome), without providing it
  // as the parent of effects inside, which are none (withSpan's two context changes cost ~10 us).
  Effect.useSpan("pkcs12.inspectMaterial", (): Effect.Effect<InspectedMaterial, MaterialInvalid> => {
    const analysed = analyseMaterialNow(material)
    if (analysed instanceof MaterialInvalid) return Effect.fail(analysed)
    const problems: Array<MaterialProblem> = []
    const toInvalid = (p: MaterialProblem) => Effect.fail(new MaterialInvalid({ problems: [p] }))
    const leaf = factsNow(analysed.leaf, "leaf")
    if (leaf._tag === "Problem") return toInvalid(leaf.problem)
    const chain: Array<CertificateFacts> = []
    for (const i of analysed.order.ordered) {
      const c = analysed.chain[i]
      if (c === undefined) continue
      const facts = factsNow(c, `chain[${i}]`)
      if (facts._tag === "Problem") return toInvalid(facts.problem)
      chain.push(facts.facts)
    }
    // A key that matches the leaf has the leaf's facts, already read (and memoised) for the leaf's
    // public key: OpenSSL answers asymmetricKeyDetails for an EC private key ~10 us slower.
    const keyPair = analysed.keyPair()
    const key = keyFacts(keyPair === "match" ? analysed.leaf.publicKey : analysed.key)
    if (key === undefined)
      return toInvalid({
        field: "key",
        message: `is an ${describeKey(analysed.key)} key, which Key Vault does not accept`,
        fix: "use an RSA (2048, 3072, 4096) or EC (P-256, P-384, P-521, P-256K) key",
      })
    if (keyPair !== "match") problems.push(keyPairProblem(keyPair, leaf.facts.subject, analysed.key))
    if (hasExplicitCurveParameters(analysed.leaf.publicKey))
      problems.push({
        field: "leaf",
        message: `its EC key (${key.curve ?? "an unnamed curve"}) is written with explicit curve parameters, not the curve's name: RFC 5480 forbids them in certificates, and TLS clients such as Go's and rustls refuse such a certificate`,
        fix: "have the certificate issued again from a key that names its curve (openssl ec -in key.pem -param_enc named_curve -out named.pem, then a new CSR from named.pem)",
      })
    if (!keyVaultAccepts(key))
      problems.push({
        field: "key",
        message: `is an ${describeKey(analysed.key)} key, which Key Vault does not accept`,
        fix: "use an RSA (2048, 3072, 4096) or EC (P-256, P-384, P-521, P-256K) key",
      })
    problems.push(...analysed.order.problems)
    // Hundreds of certificates that do not link gave a problem each (600: 120 KB of a plan's output).
    capProblems(problems, (omitted) =>
      omitted.every((p) => p.field.startsWith("chain")) ? "chain" : "material",
    )
    return Effect.succeed<InspectedMaterial>({
      // A CA's certificate given as the leaf (its key with it) is a warning of the preflight's; the
      // key usage is read only when node:crypto says the leaf is a CA.
      leaf: issuesCertificatesNow(analysed.leaf.der, analysed.leaf.node.ca)
        ? { ...leaf.facts, issuesCertificates: true }
        : leaf.facts,
      chain,
      key,
      keyMatchesLeaf: keyPair === "match",
      problems,
    })
  })
