/**
 * One certificate: parsing, its facts, and issuer/signature checks.
 *
 * The hot path (parse, public key, "did A issue B") uses node:crypto's
 * X509Certificate: native, and unlike WebCrypto it verifies secp256k1 and
 * RSA-PSS signatures. Names, extensions and the serial's exact bytes come
 * from @peculiar/x509, parsed once and only when facts are asked for (pkijs
 * is not needed for a certificate: one JavaScript parse instead of two).
 */
import "reflect-metadata"
import { createHash, hash, type KeyObject, X509Certificate } from "node:crypto"
import type { CertificateFacts, MaterialProblem } from "@kvdeploy/core"
import { MaterialInvalid } from "@kvdeploy/core"
import * as x509 from "@peculiar/x509"
import * as Effect from "effect/Effect"
import type * as pkijs from "pkijs"
import { bytesEqual, describeKey, keyFacts } from "./privateKey.js"

/** A certificate parsed once, with what the chain and key checks need. */
export interface ParsedCertificate {
  readonly der: Uint8Array
  /** node:crypto's view: public key, issuer check, signature verification. */
  readonly node: X509Certificate
  readonly publicKey: KeyObject
  /** @peculiar/x509's view (names, extensions, serial bytes), parsed on first use; undefined when it cannot parse. */
  readonly x509: () => x509.X509Certificate | undefined
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

/**
 * Parse a DER certificate; the problem names `field` (leaf, chain[1], certificate).
 * `der` is kept as given: callers pass a private copy when the result must
 * not change under them (analyseMaterial and decodePfx do).
 */
export const parseCertificate = (
  der: Uint8Array,
  field: string,
): Effect.Effect<ParsedCertificate, MaterialProblem> =>
  Effect.gen(function* () {
    const node = yield* Effect.try({
      try: () => new X509Certificate(der),
      catch: (): MaterialProblem => ({
        field,
        message: "is not a readable X.509 certificate",
        fix: "supply the certificate as PEM (-----BEGIN CERTIFICATE-----) or DER; check it with openssl x509 -noout -text",
      }),
    })
    const publicKey = yield* Effect.try({
      try: () => node.publicKey,
      catch: (): MaterialProblem => ({
        field,
        message: "has a public key of an algorithm or curve this system cannot read",
        fix: "use a certificate with an RSA or EC (P-256, P-384, P-521, secp256k1) key",
      }),
    })
    let self: boolean | undefined
    const parsed: ParsedCertificate = {
      der,
      node,
      publicKey,
      x509: lazy(() => new x509.X509Certificate(der)),
      selfSigned: () => {
        self ??= selfSignature(node, publicKey)
        return self
      },
    }
    return parsed
  })

/**
 * The certificates parsed most recently, by SHA-256 of their DER: a fleet's
 * deploys share their CA certificates, so each CA is parsed, its facts read
 * and its self-signature verified once instead of once per deploy. Small on
 * purpose (leaves are new on every deploy); a hit also compares the bytes.
 */
const recent = new Map<string, ParsedCertificate>()
const recentLimit = 32

/**
 * `parseCertificate` on a private copy of `der`, or the parsed certificate of
 * the same bytes from a recent call. The result's `der` is never the caller's array.
 */
export const parseCertificateShared = (
  der: Uint8Array,
  field: string,
): Effect.Effect<ParsedCertificate, MaterialProblem> =>
  Effect.suspend(() => {
    const id = hash("sha256", der, "base64")
    const known = recent.get(id)
    if (known !== undefined && bytesEqual(known.der, der)) {
      recent.delete(id)
      recent.set(id, known)
      return Effect.succeed(known)
    }
    return Effect.tap(parseCertificate(der.slice(), field), (parsed) =>
      Effect.sync(() => {
        recent.delete(id)
        recent.set(id, parsed)
        if (recent.size > recentLimit) {
          const oldest = recent.keys().next().value
          if (oldest !== undefined) recent.delete(oldest)
        }
      }),
    )
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

/** The subject or issuer as text (RFC 4514 style), for messages. */
export const nameOf = (c: ParsedCertificate | undefined, which: "subject" | "issuer"): string =>
  c?.x509()?.[which] ?? c?.node[which].replaceAll("\n", ", ") ?? "?"

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

/** x5t as Key Vault reports it: base64url SHA-1 of the DER. */
export const x5tOf = (der: Uint8Array): string => createHash("sha1").update(der).digest("base64url")

export const factsOf = (
  c: ParsedCertificate,
  field: string,
): Effect.Effect<CertificateFacts, MaterialProblem> =>
  Effect.gen(function* () {
    const key = keyFacts(c.publicKey)
    if (key === undefined)
      return yield* Effect.fail<MaterialProblem>({
        field,
        message: `has an ${describeKey(c.publicKey)} key; only RSA and EC certificates are supported`,
        fix: "use a certificate with an RSA or EC key",
      })
    const view = c.x509()
    const describe = () => {
      try {
        return view === undefined
          ? undefined
          : {
              // x509's serialNumber is the INTEGER's bytes in hex, less at most one sign byte.
              serialHex: serialHex(Buffer.from(view.serialNumber, "hex")),
              subject: view.subject,
              issuer: view.issuer,
              sans: sansOf(view),
              notBefore: view.notBefore,
              notAfter: view.notAfter,
            }
      } catch {
        return undefined
      }
    }
    const described = describe()
    if (described === undefined)
      return yield* Effect.fail<MaterialProblem>({
        field,
        message: "has names or extensions that cannot be read",
        fix: "re-issue the certificate; check it with openssl x509 -noout -text",
      })
    return {
      x5t: x5tOf(c.der),
      sha256Thumbprint: createHash("sha256").update(c.der).digest("hex"),
      ...described,
      keyType: key.keyType,
      ...(key.keySize === undefined ? {} : { keySize: key.keySize }),
      ...(key.curve === undefined ? {} : { curve: key.curve }),
      selfSigned: isSelfSigned(c),
      // A copy: the parsed certificate's bytes stay private to the analysis that checked them.
      der: c.der.slice(),
    }
  })

/** Facts of one DER certificate. */
export const certificateFacts = (der: Uint8Array): Effect.Effect<CertificateFacts, MaterialInvalid> =>
  Effect.mapError(
    Effect.flatMap(parseCertificateShared(der, "certificate"), (c) => factsOf(c, "certificate")),
    (problem) => new MaterialInvalid({ problems: [problem] }),
  ).pipe(Effect.withSpan("pkcs12.certificateFacts"))
