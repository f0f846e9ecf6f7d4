/**
 * One certificate: parsing, its facts, and issuer/signature checks.
 *
 * Everything comes from node:crypto's X509Certificate (OpenSSL's parser,
 * about 20 us a certificate) where it can: the public key, "did A issue B"
 * (unlike WebCrypto it verifies secp256k1 and RSA-PSS signatures), the
 * serial, the validity, and the subject, issuer and SANs as OpenSSL prints
 * them, rewritten to the RFC 4514 form kvdeploy has always reported when that
 * rewriting is exact (plain ASCII values of the common attribute types, DNS,
 * email, URI and IPv4 names). Anything else (escaped or non-ASCII values,
 * multi-valued RDNs, other attribute types, IPv6 or other name forms, a
 * negative or zero serial) is read from @peculiar/x509, parsed only then: a
 * JavaScript parse of the whole certificate that cost ~0.3 ms, most of an
 * inspect.
 */
import "reflect-metadata"
import { hash, type KeyObject, X509Certificate } from "node:crypto"
import type { CertificateFacts, KeyType, MaterialProblem } from "@kvdeploy/core"
import { MaterialInvalid } from "@kvdeploy/core"
import * as x509 from "@peculiar/x509"
import * as Effect from "effect/Effect"
import type * as pkijs from "pkijs"
import { bytesEqual, describeKey, keyFacts } from "./privateKey.js"
import { noStackTrace } from "./spans.js"

/** A certificate parsed once, with what the chain and key checks need. */
export interface ParsedCertificate {
  readonly der: Uint8Array
  /** node:crypto's view: public key, issuer check, signature verification. */
  readonly node: X509Certificate
  readonly publicKey: KeyObject
  /** @peculiar/x509's view (names, extensions, serial bytes), parsed on first use; undefined when it cannot parse. */
  readonly x509: () => x509.X509Certificate | undefined
  /** Serial, names, SANs and validity, read on first use (natively where exact); undefined when unreadable. */
  readonly description: () => Description | undefined
  /** x5t and SHA-256 thumbprint of `der`, computed on first use. */
  readonly thumbprints: () => { readonly x5t: string; readonly sha256Thumbprint: string }
  /** SHA-1 of `der` (x5t's bytes; a PFX's localKeyID), computed once on first use. Never to be modified. */
  readonly sha1: () => Uint8Array
  /** Memoised: subject = issuer and the certificate's own key verifies its signature. */
  readonly selfSigned: () => boolean
}

const lazy = <A>(f: () => A): (() => A | undefined) => {
  let done = false
  let value: A | undefined
  return () => {
    if (!done) {
      done = true
      try {
        value = f()
      } catch {
        value = undefined
      }
    }
    return value
  }
}

const once = <A>(f: () => A): (() => A) => {
  let value: { readonly v: A } | undefined
  return () => {
    value ??= { v: f() }
    return value.v
  }
}

/** A parsed certificate, or the problem that stopped the parse. */
export type ParseOutcome =
  | { readonly _tag: "Parsed"; readonly parsed: ParsedCertificate }
  | { readonly _tag: "Problem"; readonly problem: MaterialProblem }

/**
 * Parse a DER certificate; the problem names `field` (leaf, chain[1], certificate).
 * `der` is kept as given: callers pass a private copy when the result must
 * not change under them (analyseMaterialNow and decodePfx do). Synchronous (no
 * Effect steps): inspect and decode run it for every certificate.
 */
export const parseCertificateNow = (
  der: Uint8Array,
  field: string,
  parsedBefore?: X509Certificate,
  sha256Before?: Buffer,
): ParseOutcome => {
  let node: X509Certificate
  try {
    // A parse of these very bytes made earlier in the same deploy (parsePem's) is used as it is.
    node =
      parsedBefore !== undefined && bytesEqual(parsedBefore.raw, der)
        ? parsedBefore
        : new X509Certificate(der)
  } catch {
    return {
      _tag: "Problem",
      problem: {
        field,
        message: "is not a readable X.509 certificate",
        fix: "supply the certificate as PEM (-----BEGIN CERTIFICATE-----) or DER; check it with openssl x509 -noout -text",
      },
    }
  }
  let publicKey: KeyObject
  try {
    publicKey = node.publicKey
  } catch {
    return {
      _tag: "Problem",
      problem: {
        field,
        // A damaged key (a point off its curve, a changed byte) is refused alike: both are said.
        message:
          "has a public key this system cannot read: of an algorithm or curve it does not know, or damaged",
        fix: "use a certificate with an RSA or EC (P-256, P-384, P-521, secp256k1) key; if it has one, the certificate is damaged: check it with openssl x509 -noout -text and supply an intact copy",
      },
    }
  }
  let self: boolean | undefined
  const peculiar = lazy(() => new x509.X509Certificate(der))
  const sha1 = once(() => hash("sha1", der, "buffer"))
  const parsed: ParsedCertificate = {
    der,
    node,
    publicKey,
    x509: peculiar,
    description: lazy(() => describe(node, peculiar)),
    // The SHA-256 the recent parses are keyed by is the thumbprint's digest (one hash of the DER, not two).
    thumbprints: once(() => ({
      x5t: sha1().toString("base64url"),
      sha256Thumbprint: (sha256Before ?? hash("sha256", der, "buffer")).toString("hex"),
    })),
    sha1,
    selfSigned: () => {
      self ??= selfSignature(node, publicKey)
      return self
    },
  }
  return { _tag: "Parsed", parsed }
}

/**
 * The certificates parsed most recently, by SHA-256 of their DER: a fleet's
 * deploys share their CA certificates, so each CA is parsed, its facts read
 * and its self-signature verified once instead of once per deploy. Small on
 * purpose (leaves are new on every deploy); a hit also compares the bytes.
 */
const recent = new Map<string, ParsedCertificate>()
const recentLimit = 32

/**
 * node:crypto's parse of each DER array parsePem returned, so the inspect of
 * the same material (the agent parses a source, then inspects it) does not
 * parse the same certificate again. Keyed by the caller's array, so it lives
 * as long as that material; used only while the array still holds the bytes
 * parsed (`parseCertificateNow` compares them with the parse's `raw`).
 */
const parsedArrays = new WeakMap<Uint8Array, X509Certificate>()

/** Remember node:crypto's parse of `der` (an array handed to a caller) for a later `parseCertificateSharedNow` of it. */
export const rememberParse = (der: Uint8Array, node: X509Certificate): void => {
  parsedArrays.set(der, node)
}

/**
 * The recently parsed certificate whose DER is exactly `der` (a shared CA), if
 * there is one. OpenSSL's parser accepts bytes after a certificate, so an
 * entry may hold a certificate followed by something else: it answers only
 * when the certificate OpenSSL read is all of `der`.
 */
export const recentlyParsed = (der: Uint8Array): ParsedCertificate | undefined => {
  const known = recent.get(hash("sha256", der, "base64"))
  return known !== undefined && bytesEqual(known.der, der) && bytesEqual(known.node.raw, der)
    ? known
    : undefined
}

/**
 * node:crypto's parse of `der`, as `new X509Certificate(der)` gives it (which,
 * like OpenSSL, reads a certificate followed by other bytes): the one a recent
 * parse made, when its certificate is exactly these bytes (decodePfx,
 * inspectMaterial and encodePfx parse every certificate they handle; a Key
 * Vault emulator reading an import then needs no parse of its own), else a new
 * one, not remembered. Throws as `new X509Certificate(der)` does on bytes that
 * do not start with a certificate. Treat the result as read-only: it may be
 * shared, and its `raw` is one Buffer for every holder.
 */
export const nodeCertificate = (der: Uint8Array): X509Certificate =>
  recentlyParsed(der)?.node ?? new X509Certificate(der)

/**
 * `parseCertificateNow` on a private copy of `der`, or the parsed certificate
 * of the same bytes from a recent call. The result's `der` is never the caller's array.
 */
export const parseCertificateSharedNow = (der: Uint8Array, field: string): ParseOutcome => {
  const digest = hash("sha256", der, "buffer")
  const id = digest.toString("base64")
  const known = recent.get(id)
  if (known !== undefined && bytesEqual(known.der, der)) {
    recent.delete(id)
    recent.set(id, known)
    return { _tag: "Parsed", parsed: known }
  }
  // `digest` is of the caller's bytes, which the private copy equals: the copy is taken right after.
  const outcome = parseCertificateNow(der.slice(), field, parsedArrays.get(der), digest)
  if (outcome._tag === "Parsed") {
    recent.delete(id)
    recent.set(id, outcome.parsed)
    if (recent.size > recentLimit) {
      const oldest = recent.keys().next().value
      if (oldest !== undefined) recent.delete(oldest)
    }
  }
  return outcome
}

/** `parseCertificateSharedNow` as an Effect failing with the problem. */
export const parseCertificateShared = (
  der: Uint8Array,
  field: string,
): Effect.Effect<ParsedCertificate, MaterialProblem> =>
  Effect.suspend(() => {
    const outcome = parseCertificateSharedNow(der, field)
    return outcome._tag === "Parsed" ? Effect.succeed(outcome.parsed) : Effect.fail(outcome.problem)
  })

/**
 * Subject equals issuer and the certificate's own key verifies it. Not
 * `checkIssued`: that also asks for keyCertSign, which self-signed server
 * certificates (keyUsage digitalSignature only) lack.
 */
const selfSignature = (node: X509Certificate, publicKey: KeyObject): boolean => {
  try {
    return node.subject === node.issuer && node.verify(publicKey)
  } catch {
    return false
  }
}

const issuedMemo = new WeakMap<ParsedCertificate, Map<ParsedCertificate, boolean>>()

/**
 * Whether `parent` is named as `child`'s issuer (names, key identifiers) and
 * its key verifies `child`'s signature. Memoised per pair of parsed
 * certificates (their bytes are private copies that never change), so
 * ordering the same parsed chain again verifies nothing twice.
 */
export const issued = (parent: ParsedCertificate, child: ParsedCertificate): boolean => {
  let byParent = issuedMemo.get(child)
  const known = byParent?.get(parent)
  if (known !== undefined) return known
  let result: boolean
  try {
    result = child.node.checkIssued(parent.node) && child.node.verify(parent.publicKey)
  } catch {
    result = false
  }
  if (byParent === undefined) {
    byParent = new Map()
    issuedMemo.set(child, byParent)
  }
  byParent.set(parent, result)
  return result
}

/** Whether `child` names `parent`'s subject as its issuer (whatever the signature says). */
export const namedIssuer = (parent: ParsedCertificate, child: ParsedCertificate): boolean =>
  child.node.issuer === parent.node.subject

export const isSelfSigned = (c: ParsedCertificate): boolean => c.selfSigned()

/**
 * The key type a signature algorithm belongs to, by its object identifier: ECDSA (1.2.840.10045.4.*)
 * is EC's, RSA PKCS#1 v1.5 and RSASSA-PSS (1.2.840.113549.1.1.*) are RSA's; undefined for others.
 */
const signatureKeyTypeOfOid = (oid: string): KeyType | undefined =>
  oid.startsWith("1.2.840.10045.4.") ? "EC" : oid.startsWith("1.2.840.113549.1.1.") ? "RSA" : undefined

/** @peculiar/x509's name of a signature algorithm, as a key type (its WebCrypto names). */
const signatureKeyTypeOfName = (name: string | undefined): KeyType | undefined =>
  name === "ECDSA" ? "EC" : name === "RSASSA-PKCS1-v1_5" || name === "RSA-PSS" ? "RSA" : undefined

/**
 * The key type of the algorithm `c` is signed with (its issuer's key type): node:crypto's
 * `signatureAlgorithmOid` where the running Node.js has it (24 does; older releases lack it), else
 * @peculiar/x509's reading of the same field.
 */
export const signatureKeyTypeOf = (c: ParsedCertificate): KeyType | undefined => {
  const oid = (c.node as { readonly signatureAlgorithmOid?: unknown }).signatureAlgorithmOid
  if (typeof oid === "string") return signatureKeyTypeOfOid(oid)
  try {
    // Its type names the WebCrypto `Algorithm` of the DOM's library, which this build does not load.
    const algorithm = c.x509()?.signatureAlgorithm as { readonly name?: unknown } | undefined
    return signatureKeyTypeOfName(typeof algorithm?.name === "string" ? algorithm.name : undefined)
  } catch {
    return undefined
  }
}

const signatureKeyTypeField = (c: ParsedCertificate): { readonly signatureKeyType?: KeyType } => {
  const signatureKeyType = signatureKeyTypeOf(c)
  return signatureKeyType === undefined ? {} : { signatureKeyType }
}

/** The subject or issuer as text (RFC 4514 style), for messages. */
export const nameOf = (c: ParsedCertificate | undefined, which: "subject" | "issuer"): string =>
  c?.description()?.[which] ?? c?.node[which]?.replaceAll("\n", ", ") ?? "?"

/** Lowercase hex of an INTEGER's content bytes without leading zero bytes ("00" for zero). */
const serialHex = (bytes: Uint8Array): string => {
  let start = 0
  while (start < bytes.length - 1 && bytes[start] === 0) start++
  const out = Buffer.from(bytes.buffer, bytes.byteOffset + start, bytes.byteLength - start).toString("hex")
  return out === "" ? "00" : out
}

/** Canonical serial: lowercase hex of the INTEGER's bytes without leading zero bytes ("00" for zero). */
export const canonicalSerial = (cert: pkijs.Certificate): string =>
  serialHex(cert.serialNumber.valueBlock.valueHexView)

const sanPrefix: Readonly<Record<string, string>> = { dns: "DNS", ip: "IP", email: "email", url: "URI" }

const sansOf = (c: x509.X509Certificate): ReadonlyArray<string> => {
  const ext = c.getExtension(x509.SubjectAlternativeNameExtension)
  if (ext === null) return []
  return ext.names.items.map((n) => `${sanPrefix[n.type] ?? n.type}:${n.value}`)
}

/** What factsOf reports about a certificate beyond its bytes and key. */
export interface Description {
  readonly serialHex: string
  readonly subject: string
  readonly issuer: string
  readonly sans: ReadonlyArray<string>
  readonly notBefore: Date
  readonly notAfter: Date
}

/**
 * OpenSSL's short names of the attribute types @peculiar/x509 also names, in
 * @peculiar/x509's spelling. Other types it writes as a dotted OID.
 */
const rfc4514Type: Readonly<Record<string, string>> = {
  CN: "CN",
  L: "L",
  ST: "ST",
  O: "O",
  OU: "OU",
  C: "C",
  DC: "DC",
  emailAddress: "E",
  GN: "G",
  initials: "I",
  SN: "SN",
  title: "T",
}

/** Printable ASCII with nothing either printer escapes (OpenSSL escapes RFC 4514's specials with a backslash). */
const plainValue = /^[\x20-\x5b\x5d-\x7e]*$/

/**
 * OpenSSL's one-attribute-a-line name (node:crypto's `subject`, `issuer`) as
 * @peculiar/x509 prints it ("CN=a, O=b", in encoded order), or undefined when
 * the rewriting might not be exact: an empty name, a type without a shared
 * short name, a multi-valued RDN (" + "), an escaped or non-ASCII value.
 */
export const rfc4514Name = (openssl: string | undefined): string | undefined => {
  if (openssl === undefined || openssl === "") return undefined
  const out: Array<string> = []
  for (const line of openssl.split("\n")) {
    const eq = line.indexOf("=")
    const name = eq > 0 ? line.slice(0, eq) : ""
    const type = Object.hasOwn(rfc4514Type, name) ? rfc4514Type[name] : undefined
    const value = line.slice(eq + 1)
    if (type === undefined || value.includes("+") || !plainValue.test(value)) return undefined
    out.push(`${type}=${value}`)
  }
  return out.join(", ")
}

const ipv4 = /^\d{1,3}(?:\.\d{1,3}){3}$/

/**
 * node:crypto's `subjectAltName` ("DNS:a, IP Address:192.0.2.7") as
 * `DNS:a`, `IP:192.0.2.7`, `email:x`, `URI:x`; undefined when any entry is of
 * another form, quoted (node quotes values holding separators), or an IPv6
 * address (OpenSSL writes it uncompressed, @peculiar/x509 compressed).
 */
export const sanList = (openssl: string | undefined): ReadonlyArray<string> | undefined => {
  if (openssl === undefined) return []
  if (openssl === "" || openssl.includes('"')) return undefined
  const out: Array<string> = []
  for (const entry of openssl.split(", ")) {
    if (entry.startsWith("DNS:") || entry.startsWith("email:") || entry.startsWith("URI:")) out.push(entry)
    else if (entry.startsWith("IP Address:") && ipv4.test(entry.slice(11))) out.push(`IP:${entry.slice(11)}`)
    else return undefined
  }
  return out.every((e) => plainValue.test(e)) ? out : undefined
}

/** OpenSSL's serial (uppercase hex of the positive INTEGER, whole bytes) in canonical form; undefined for zero and negatives. */
const serialOf = (openssl: string): string | undefined =>
  /^(?:[0-9A-F]{2})+$/.test(openssl) ? serialHex(Buffer.from(openssl, "hex")) : undefined

const describe = (
  node: X509Certificate,
  peculiar: () => x509.X509Certificate | undefined,
): Description | undefined => {
  const serial = serialOf(node.serialNumber)
  const subject = rfc4514Name(node.subject)
  const issuer = rfc4514Name(node.issuer)
  const sans = sanList(node.subjectAltName)
  const notBefore = node.validFromDate
  const notAfter = node.validToDate
  if (serial !== undefined && subject !== undefined && issuer !== undefined && sans !== undefined)
    return { serialHex: serial, subject, issuer, sans, notBefore, notAfter }
  const view = peculiar()
  if (view === undefined) return undefined
  try {
    return {
      // x509's serialNumber is the INTEGER's bytes in hex, less at most one sign byte.
      serialHex: serial ?? serialHex(Buffer.from(view.serialNumber, "hex")),
      subject: subject ?? view.subject,
      issuer: issuer ?? view.issuer,
      sans: sans ?? sansOf(view),
      notBefore,
      notAfter,
    }
  } catch {
    return undefined
  }
}

/** x5t as Key Vault reports it: base64url SHA-1 of the DER. */
export const x5tOf = (der: Uint8Array): string => hash("sha1", der, "base64url")

/** A certificate's facts, or the problem that keeps them from being read. */
export type FactsOutcome =
  | { readonly _tag: "Facts"; readonly facts: CertificateFacts }
  | { readonly _tag: "Problem"; readonly problem: MaterialProblem }

/** The modulus size to suggest for a plain RSA key in place of an RSA-PSS one: its own when Key Vault takes it. */
const rsaPssBits = (key: KeyObject): number => {
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
  return [2048, 3072, 4096].includes(bits) ? bits : 2048
}

/** `factsOf`, synchronous (inspect reads the facts of every certificate). */
export const factsNow = (c: ParsedCertificate, field: string): FactsOutcome => {
  const key = keyFacts(c.publicKey)
  if (key === undefined)
    return {
      _tag: "Problem",
      // An RSA-PSS key (`openssl genpkey -algorithm RSA-PSS`) reads as RSA to its owner: its fix
      // names the plain RSA key to generate (the certificate may still be signed with PSS).
      problem:
        c.publicKey.asymmetricKeyType === "rsa-pss"
          ? {
              field,
              message: `has an ${describeKey(c.publicKey)} key; only RSA and EC certificates are supported`,
              fix: `use a certificate issued for a plain RSA key, not an RSA-PSS one (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:${rsaPssBits(c.publicKey)}); its issuer may still sign it with RSA-PSS`,
            }
          : field === "leaf"
            ? // Ed25519, Ed448, X25519, X448, DSA: the leaf's key is the one imported, and a
              // certificate cannot change its key: a new key, and the certificate issued again.
              {
                field,
                message: `has an ${describeKey(c.publicKey)} key, which Key Vault does not accept: its certificates take RSA and EC keys only`,
                fix: "generate a new RSA or EC key and have the certificate issued again for it (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256, then a new CSR; certbot: --key-type ecdsa)",
              }
            : {
                field,
                message: `has an ${describeKey(c.publicKey)} key; only RSA and EC certificates are supported`,
                fix: "use a certificate with an RSA or EC key",
              },
    }
  const described = c.description()
  if (described === undefined)
    return {
      _tag: "Problem",
      problem: {
        field,
        message: "has names or extensions that cannot be read",
        fix: "re-issue the certificate; check it with openssl x509 -noout -text",
      },
    }
  return {
    _tag: "Facts",
    facts: {
      ...c.thumbprints(),
      // Copies: the description is kept with the parsed certificate (a shared CA's serves many calls).
      ...described,
      sans: [...described.sans],
      notBefore: new Date(described.notBefore.getTime()),
      notAfter: new Date(described.notAfter.getTime()),
      keyType: key.keyType,
      ...(key.keySize === undefined ? {} : { keySize: key.keySize }),
      ...(key.curve === undefined ? {} : { curve: key.curve }),
      selfSigned: isSelfSigned(c),
      ...signatureKeyTypeField(c),
      // A copy: the parsed certificate's bytes stay private to the analysis that checked them.
      der: c.der.slice(),
    },
  }
}

export const factsOf = (
  c: ParsedCertificate,
  field: string,
): Effect.Effect<CertificateFacts, MaterialProblem> =>
  Effect.suspend(() => {
    const outcome = factsNow(c, field)
    return outcome._tag === "Facts" ? Effect.succeed(outcome.facts) : Effect.fail(outcome.problem)
  })

/** Facts of one DER certificate. */
export const certificateFacts = (der: Uint8Array): Effect.Effect<CertificateFacts, MaterialInvalid> =>
  Effect.mapError(
    Effect.flatMap(parseCertificateShared(der, "certificate"), (c) => factsOf(c, "certificate")),
    (problem) => new MaterialInvalid({ problems: [problem] }),
  ).pipe(Effect.withSpan("pkcs12.certificateFacts", undefined, noStackTrace))
