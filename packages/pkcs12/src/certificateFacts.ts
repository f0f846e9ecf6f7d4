/**
 * One certificate: parsing (pkijs for the structure, @peculiar/x509 for names
 * and extensions), its facts, and signature checks with node:crypto (which,
 * unlike WebCrypto, verifies secp256k1 and RSA-PSS signatures too).
 */
import "reflect-metadata"
import { createHash, type KeyObject, verify } from "node:crypto"
import type { CertificateFacts, MaterialProblem } from "@kvdeploy/core"
import { MaterialInvalid } from "@kvdeploy/core"
import * as x509 from "@peculiar/x509"
import * as Effect from "effect/Effect"
import * as pkijs from "pkijs"
import { digestByOid, type HashName, oid } from "./algorithms.js"
import { describeKey, keyFacts, loadSpki } from "./privateKey.js"

/** A certificate parsed once, with what the chain and key checks need. */
export interface ParsedCertificate {
  readonly der: Uint8Array
  readonly cert: pkijs.Certificate
  /** @peculiar/x509's view (names, extensions), parsed on first use; undefined when it cannot parse. */
  readonly x509: () => x509.X509Certificate | undefined
  /** Memoised result of the self-signature check. */
  readonly selfSigned: () => boolean
  readonly publicKey: KeyObject
  /** Canonical SPKI DER of the public key (as node:crypto exports it). */
  readonly spki: Uint8Array
}

const hex = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")

/** Parse a DER certificate; the problem names `field` (leaf, chain[1], certificate). */
export const parseCertificate = (
  der: Uint8Array,
  field: string,
): Effect.Effect<ParsedCertificate, MaterialProblem> =>
  Effect.gen(function* () {
    const parsed = yield* Effect.try({
      try: () => {
        const copy = Uint8Array.from(der)
        return { cert: pkijs.Certificate.fromBER(copy), copy }
      },
      catch: (): MaterialProblem => ({
        field,
        message: "is not a readable X.509 certificate",
        fix: "supply the certificate as PEM (-----BEGIN CERTIFICATE-----) or DER; check it with openssl x509 -noout -text",
      }),
    })
    const spkiDer = yield* Effect.try({
      try: () => new Uint8Array(parsed.cert.subjectPublicKeyInfo.toSchema().toBER(false)),
      catch: (): MaterialProblem => ({
        field,
        message: "has an unreadable public key",
        fix: "re-issue the certificate",
      }),
    })
    const publicKey = yield* Effect.mapError(loadSpki(spkiDer), (p): MaterialProblem => ({ field, ...p }))
    const spki = new Uint8Array(publicKey.export({ type: "spki", format: "der" }))
    let view: x509.X509Certificate | undefined | null = null
    let self: boolean | undefined
    const result: ParsedCertificate = {
      der,
      cert: parsed.cert,
      publicKey,
      spki,
      x509: () => {
        if (view === null) {
          try {
            view = new x509.X509Certificate(parsed.copy)
          } catch {
            view = undefined
          }
        }
        return view
      },
      selfSigned: () => {
        self ??= issued(result, result)
        return self
      },
    }
    return result
  })

const rsaPkcs1: Readonly<Record<string, HashName>> = {
  "1.2.840.113549.1.1.5": "sha1",
  "1.2.840.113549.1.1.14": "sha224",
  "1.2.840.113549.1.1.11": "sha256",
  "1.2.840.113549.1.1.12": "sha384",
  "1.2.840.113549.1.1.13": "sha512",
}
const ecdsa: Readonly<Record<string, HashName>> = {
  "1.2.840.10045.4.1": "sha1",
  "1.2.840.10045.4.3.1": "sha224",
  "1.2.840.10045.4.3.2": "sha256",
  "1.2.840.10045.4.3.3": "sha384",
  "1.2.840.10045.4.3.4": "sha512",
}

/** Whether `issuerKey` verifies `subject`'s signature. Any parse or crypto failure counts as "does not verify". */
export const signatureVerifies = (subject: pkijs.Certificate, issuerKey: KeyObject): boolean => {
  const algorithm = subject.signatureAlgorithm.algorithmId
  const data = subject.tbsView
  const signature = subject.signatureValue.valueBlock.valueHexView
  const attempt = (): boolean => {
    const pkcs1 = rsaPkcs1[algorithm]
    if (pkcs1 !== undefined) return verify(pkcs1, data, issuerKey, signature)
    const ec = ecdsa[algorithm]
    if (ec !== undefined) return verify(ec, data, issuerKey, signature)
    if (algorithm === oid.rsassaPss) {
      const params = new pkijs.RSASSAPSSParams({ schema: subject.signatureAlgorithm.algorithmParams })
      const hashName = digestByOid[params.hashAlgorithm.algorithmId]
      if (hashName === undefined) return false
      return verify(
        hashName,
        data,
        { key: issuerKey, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: params.saltLength },
        signature,
      )
    }
    if (algorithm === "1.3.101.112" || algorithm === "1.3.101.113")
      return verify(null, data, issuerKey, signature)
    return false
  }
  try {
    return attempt()
  } catch {
    return false
  }
}

/** Whether `parent`'s subject is `child`'s issuer (RFC 5280 name matching) and its key verifies `child`. */
export const issued = (parent: ParsedCertificate, child: ParsedCertificate): boolean =>
  namesMatch(child.cert.issuer, parent.cert.subject) && signatureVerifies(child.cert, parent.publicKey)

export const namesMatch = (
  a: pkijs.RelativeDistinguishedNames,
  b: pkijs.RelativeDistinguishedNames,
): boolean => {
  try {
    return a.isEqual(b)
  } catch {
    return false
  }
}

export const isSelfSigned = (c: ParsedCertificate): boolean => c.selfSigned()

/** The subject or issuer as text (RFC 4514 style), for messages. */
export const nameOf = (c: ParsedCertificate | undefined, which: "subject" | "issuer"): string =>
  c?.x509()?.[which] ?? "?"

/** Canonical serial: lowercase hex of the INTEGER's bytes without leading zero bytes ("00" for zero). */
export const canonicalSerial = (cert: pkijs.Certificate): string => {
  const bytes = cert.serialNumber.valueBlock.valueHexView
  let start = 0
  while (start < bytes.length - 1 && bytes[start] === 0) start++
  const out = hex(bytes.subarray(start))
  return out === "" ? "00" : out
}

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
        message: `has a ${describeKey(c.publicKey)} key; only RSA and EC certificates are supported`,
        fix: "use a certificate with an RSA or EC key",
      })
    const described = yield* Effect.try({
      try: () => {
        const view = c.x509()
        if (view === undefined) return undefined
        return {
          subject: view.subject,
          issuer: view.issuer,
          sans: sansOf(view),
          notBefore: view.notBefore,
          notAfter: view.notAfter,
        }
      },
      catch: (): MaterialProblem => ({
        field,
        message: "has a malformed name or subject alternative name extension",
        fix: "re-issue the certificate; check it with openssl x509 -noout -text",
      }),
    })
    if (described === undefined)
      return yield* Effect.fail<MaterialProblem>({
        field,
        message: "has names or extensions that cannot be read",
        fix: "re-issue the certificate; check it with openssl x509 -noout -text",
      })
    return {
      serialHex: canonicalSerial(c.cert),
      x5t: x5tOf(c.der),
      sha256Thumbprint: createHash("sha256").update(c.der).digest("hex"),
      ...described,
      keyType: key.keyType,
      ...(key.keySize === undefined ? {} : { keySize: key.keySize }),
      ...(key.curve === undefined ? {} : { curve: key.curve }),
      selfSigned: isSelfSigned(c),
      der: c.der,
    }
  })

/** Facts of one DER certificate. */
export const certificateFacts = (der: Uint8Array): Effect.Effect<CertificateFacts, MaterialInvalid> =>
  Effect.mapError(
    Effect.flatMap(parseCertificate(der, "certificate"), (c) => factsOf(c, "certificate")),
    (problem) => new MaterialInvalid({ problems: [problem] }),
  ).pipe(Effect.withSpan("pkcs12.certificateFacts"))
