/**
 * Reading what an import sends: PEM text (detected by content) or base64
 * PKCS#12, checked the way Key Vault checks it (key matches a certificate,
 * not expired, supported key, no PKCS#1 / encrypted PEM keys).
 */
import { createHash, createPrivateKey, type KeyObject, type X509Certificate } from "node:crypto"
import { nodeCertificate, keyUsageBits as readKeyUsageBits } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import { isDecodeFailure, loadPfxCodec, type Material } from "./codec.js"
import { KvError } from "./errors.js"

export const PEM_CONTENT_TYPE = "application/x-pem-file"
export const PFX_CONTENT_TYPE = "application/x-pkcs12"
export type SecretContentType = typeof PEM_CONTENT_TYPE | typeof PFX_CONTENT_TYPE
/** How an import's format is decided: by its content (`detect`), or only by the stated content type (`required`, Key Vault's). */
export type ImportContentTypeMode = "detect" | "required"

export interface ImportedMaterial extends Material {
  readonly detectedContentType: SecretContentType
  /** Every certificate in the order the import sent them (for preserveCertOrder). */
  readonly sentOrder: ReadonlyArray<Uint8Array>
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g

export const badPem = () =>
  KvError.badParameter(
    "The specified PEM X.509 certificate content is in an unexpected format. Please check if certificate is in valid PEM format.",
  )
const invalidProps = () =>
  KvError.badParameter(
    "The specified X.509 certificate content is invalid. Error: One or more X.509 properties are invalid.",
  )
const noKeyCert = () =>
  KvError.badParameter(
    "No certificate with private key found in the specified X.509 certificate content. Please specify X.509 certificate content with only one certificate containing private key.",
  )

export const x5tOf = (der: Uint8Array): string => createHash("sha1").update(der).digest("base64url")

const parsedCerts = new WeakMap<Uint8Array, X509Certificate>()
/**
 * Parsed certificate, memoised per DER buffer (an import looks at the same certificate several
 * times); a certificate @kvdeploy/pkcs12 has just parsed (a PFX's leaf and chain, read by
 * decodePfx) is not parsed again.
 */
export const certOf = (der: Uint8Array): X509Certificate => {
  const hit = parsedCerts.get(der)
  if (hit) return hit
  const cert = nodeCertificate(der)
  parsedCerts.set(der, cert)
  return cert
}

const keyUsages = new WeakMap<Uint8Array, number | undefined>()
/**
 * Key usage bits of a certificate (extension 2.5.29.15) as @peculiar/x509's
 * KeyUsageFlags (bit n of the BIT STRING is 1 << n: digitalSignature 1,
 * keyEncipherment 4, ..., decipherOnly 256); undefined when absent; throws
 * when the certificate or the extension is unreadable. Read by
 * @kvdeploy/pkcs12's `keyUsageBits` (node:crypto does not expose the
 * extension), which parses the certificate once with asn1js, cheaper than a
 * whole @peculiar/x509 certificate. Memoised per DER buffer, like `certOf`.
 */
export const keyUsageBits = (der: Uint8Array): number | undefined => {
  if (keyUsages.has(der)) return keyUsages.get(der)
  const usages = Effect.runSync(readKeyUsageBits(der))
  keyUsages.set(der, usages)
  return usages
}

export const validity = (cert: X509Certificate): { nbf: number; exp: number } => ({
  nbf: Math.floor(Date.parse(cert.validFrom) / 1000),
  exp: Math.floor(Date.parse(cert.validTo) / 1000),
})

/**
 * What a version and its policy take from a certificate: x5t, validity (Unix
 * seconds), the subject in Key Vault's order, DNS names, extended key usages
 * and key usage bits (`keyUsageBits`). Plain data, so a PFX worker computes it
 * with the material and the event loop does not parse the certificate again.
 */
export interface CertificateFacts {
  readonly x5t: string
  readonly nbf: number
  readonly exp: number
  readonly subject: string
  readonly dnsNames: ReadonlyArray<string>
  readonly ekus: ReadonlyArray<string>
  readonly keyUsage: number | undefined
}

const certificateFacts = new WeakMap<Uint8Array, CertificateFacts>()
/** The facts of a DER certificate, memoised per buffer (throws when it cannot be parsed). */
export const certificateFactsOf = (der: Uint8Array): CertificateFacts => {
  const hit = certificateFacts.get(der)
  if (hit) return hit
  const cert = certOf(der)
  const { nbf, exp } = validity(cert)
  const facts: CertificateFacts = {
    x5t: x5tOf(der),
    nbf,
    exp,
    subject: cert.subject
      .split("\n")
      .filter((s) => s.length > 0)
      .reverse()
      .join(", "),
    dnsNames: (cert.subjectAltName ?? "")
      .split(", ")
      .filter((s) => s.startsWith("DNS:"))
      .map((s) => s.slice(4)),
    ekus: cert.keyUsage ?? [],
    keyUsage: keyUsageBits(der),
  }
  certificateFacts.set(der, facts)
  return facts
}

/** Records facts computed elsewhere (a worker) for this DER buffer, so `certificateFactsOf` need not parse it. */
export const rememberCertificateFacts = (der: Uint8Array, facts: CertificateFacts): void => {
  certificateFacts.set(der, facts)
  keyUsages.set(der, facts.keyUsage)
}

/** The material of PEM text, and its certificates in the order they were sent. */
const parsePemText = (text: string): Material & { readonly sentOrder: ReadonlyArray<Uint8Array> } => {
  const certs: Uint8Array[] = []
  let key: Uint8Array | undefined
  for (const m of text.matchAll(PEM_BLOCK)) {
    const label = m[1] ?? ""
    const body = Buffer.from((m[2] ?? "").replace(/\s+/g, ""), "base64")
    if (label === "CERTIFICATE") certs.push(new Uint8Array(body))
    else if (label === "PRIVATE KEY") {
      if (key) throw invalidProps()
      key = new Uint8Array(body)
    } else if (
      label === "RSA PRIVATE KEY" ||
      label === "EC PRIVATE KEY" ||
      label === "ENCRYPTED PRIVATE KEY"
    ) {
      // Key Vault takes an unencrypted PKCS#8 key only (azure-cli #19017).
      throw invalidProps()
    }
  }
  if (certs.length === 0) throw badPem()
  if (!key)
    throw KvError.badParameter(
      "Private key is not specified in the specified X.509 PEM certificate content. Please specify private key in the X.509 PEM certificate content.",
    )
  return { ...orderByKey(certs, key), sentOrder: certs }
}

const parsedKeys = new WeakMap<Uint8Array, KeyObject>()
const privateKeyOf = (pkcs8: Uint8Array): KeyObject => {
  const hit = parsedKeys.get(pkcs8)
  if (hit) return hit
  let key: KeyObject
  try {
    key = createPrivateKey({ key: Buffer.from(pkcs8), format: "der", type: "pkcs8" })
  } catch {
    throw invalidProps()
  }
  parsedKeys.set(pkcs8, key)
  return key
}

/** Finds the certificate the key belongs to; that one is the leaf. */
const orderByKey = (certs: ReadonlyArray<Uint8Array>, key: Uint8Array): Material => {
  const keyObject = privateKeyOf(key)
  let leafIndex = -1
  for (let i = 0; i < certs.length; i++) {
    let parsed: X509Certificate
    try {
      parsed = certOf(certs[i] as Uint8Array)
    } catch {
      throw invalidProps()
    }
    if (leafIndex < 0 && parsed.checkPrivateKey(keyObject)) leafIndex = i
  }
  if (leafIndex < 0) throw noKeyCert()
  return { leaf: certs[leafIndex] as Uint8Array, chain: certs.filter((_, i) => i !== leafIndex), key }
}

/** The chain ordered leaf-first by issuer links; unrelated certificates keep their place at the end. */
export const orderChain = (leaf: Uint8Array, chain: ReadonlyArray<Uint8Array>): Uint8Array[] => {
  if (chain.length === 0) return []
  const rest = chain.map((der) => ({ der, cert: certOf(der) }))
  const out: Uint8Array[] = []
  let current = certOf(leaf)
  for (;;) {
    const idx = rest.findIndex(
      (c) => current.checkIssued(c.cert) && c.cert.fingerprint256 !== current.fingerprint256,
    )
    if (idx < 0) break
    const [next] = rest.splice(idx, 1)
    if (!next) break
    out.push(next.der)
    current = next.cert
  }
  return [...out, ...rest.map((r) => r.der)]
}

const SUPPORTED_RSA = [2048, 3072, 4096]
const SUPPORTED_EC: Record<string, string> = {
  prime256v1: "P-256",
  secp384r1: "P-384",
  secp521r1: "P-521",
  secp256k1: "P-256K",
}

export interface KeyFacts {
  readonly kty: "RSA" | "EC"
  readonly keySize?: number
  readonly crv?: string
}

const keyFactsRead = new WeakMap<Uint8Array, KeyFacts>()

/**
 * The key's type and size, refused (KvError) when Key Vault would refuse it.
 * Facts read where the material was read (a worker) and recorded
 * by `readImportValue` are answered without parsing the key again here.
 */
export const keyFactsOf = (pkcs8: Uint8Array): KeyFacts => {
  const known = keyFactsRead.get(pkcs8)
  if (known !== undefined) return known
  return factsOfKey(privateKeyOf(pkcs8))
}

/** Type and size of a key object (private, or the public half of a matching certificate); KvError when Key Vault refuses them. */
const factsOfKey = (k: KeyObject): KeyFacts => {
  if (k.asymmetricKeyType === "rsa") {
    const bits = k.asymmetricKeyDetails?.modulusLength ?? 0
    if (!SUPPORTED_RSA.includes(bits))
      throw KvError.badParameter(`Unsupported key size (${bits}). Supported sizes are [2048, 3072, 4096]`, {
        code: "KeySizeNotSupported",
      })
    return { kty: "RSA", keySize: bits }
  }
  if (k.asymmetricKeyType === "ec") {
    const named = k.asymmetricKeyDetails?.namedCurve ?? ""
    const crv = SUPPORTED_EC[named]
    if (!crv) throw KvError.badParameter(`Unsupported curve (${named}).`, { code: "CurveNotSupported" })
    return { kty: "EC", crv, keySize: crv === "P-384" ? 384 : crv === "P-521" ? 521 : 256 }
  }
  throw KvError.badParameter(`Unsupported key type (${k.asymmetricKeyType ?? "unknown"}).`, {
    code: "KeyTypeNotSupported",
  })
}

/** Public key of a certificate as a Key Vault JWK. */
export const publicJwkOf = (leafDer: Uint8Array): Record<string, string> => {
  const jwk = certOf(leafDer).publicKey.export({ format: "jwk" })
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(jwk)) if (typeof v === "string") out[k] = v
  if (out.crv === "secp256k1") out.crv = "P-256K"
  return out
}

/** What reading an import value yields: the material, checked, and the leaf's key usage bits. */
export interface ReadMaterial extends ImportedMaterial {
  /** `keyUsageBits(leaf)`, computed where the material was read (a worker, or this thread). */
  readonly leafKeyUsage: number | undefined
  /** `certificateFactsOf(leaf)`, computed there too. */
  readonly leafFacts: CertificateFacts
  /** `keyFactsOf(key)` computed there too; undefined when it refuses the key (the import then asks again, for the error). */
  readonly keyFacts: KeyFacts | undefined
}

export const unreadablePfx = () =>
  KvError.badParameter(
    "The specified PKCS#12 X.509 certificate content can not be read. Please check if certificate is in valid PKCS#12 format.",
  )

/** True when `value` is PEM text (detected by content, as Key Vault does). */
export const isPemValue = (value: string): boolean => value.includes("-----BEGIN")

/**
 * Reads an import value: PEM text, or base64 PKCS#12 decoded with `password`
 * (MAC and password checked by @kvdeploy/pkcs12), then the key matched to a
 * certificate here again, and the leaf's key usage read. Every costly step of an
 * import, with no state: it runs in a worker of the PFX pool or in this thread.
 * Throws KvError.
 */
export const readMaterial = async (value: string, password: string | undefined): Promise<ReadMaterial> => {
  let material: ImportedMaterial
  if (isPemValue(value)) {
    material = { ...parsePemText(value), detectedContentType: PEM_CONTENT_TYPE }
  } else {
    if (!/^[A-Za-z0-9+/=_\-\s]+$/.test(value)) throw unreadablePfx()
    const bytes = new Uint8Array(Buffer.from(value, "base64"))
    const codec = await loadPfxCodec()
    if (!codec)
      throw KvError.internal("PKCS#12 support (@kvdeploy/pkcs12) is not available in this emulator build.")
    const result = await codec.decode(bytes, password ?? "")
    if (isDecodeFailure(result)) {
      if (result.reason === "wrong-password")
        throw KvError.badParameter(
          "The specified PKCS#12 X.509 certificate content can not be read. Please check if certificate is in valid PKCS#12 format and the password is correct.",
        )
      if (result.reason === "no-key") throw noKeyCert()
      throw unreadablePfx()
    }
    // The codec's leaf is the certificate whose public key equals the key's
    // (@kvdeploy/pkcs12 decodePfx matches them, and fails "no-certificate"
    // otherwise): no second parse of the key and the certificates to match them again.
    let leafFacts: CertificateFacts
    try {
      // certOf takes the decoder's node:crypto parse of the leaf (nodeCertificate); the key usage
      // is read by one asn1js parse.
      leafFacts = certificateFactsOf(result.leaf)
    } catch {
      throw invalidProps()
    }
    // A copy goes on: the parses memoised for the decoder's array (certOf, keyUsageBits) are not
    // kept alive with the version.
    const leaf = result.leaf.slice()
    return {
      leaf,
      chain: result.chain,
      key: result.key,
      detectedContentType: PFX_CONTENT_TYPE,
      sentOrder: [leaf, ...result.chain],
      leafKeyUsage: leafFacts.keyUsage,
      leafFacts,
      // The leaf's public key is the key's public half (decodePfx matched them):
      // its type and size are the key's, without parsing the private key again.
      keyFacts: keyFactsOrUndefined(() => factsOfKey(certOf(result.leaf).publicKey)),
    }
  }
  let leafFacts: CertificateFacts
  try {
    leafFacts = certificateFactsOf(material.leaf)
  } catch {
    throw invalidProps()
  }
  return {
    ...material,
    leafKeyUsage: leafFacts.keyUsage,
    leafFacts,
    keyFacts: keyFactsOrUndefined(() => keyFactsOf(material.key)),
  }
}

/** `keyFactsOf`, or undefined when it refuses the key (the import then asks again, for the error). */
const keyFactsOrUndefined = (read: () => KeyFacts): KeyFacts | undefined => {
  try {
    return read()
  } catch {
    return undefined
  }
}

/** Reads import values off this thread: the PFX worker pool (see pfxPool.ts). */
export interface MaterialReader {
  readonly read: (value: string, password: string | undefined) => Promise<ReadMaterial>
}

/**
 * Decoded PFX imports by SHA-256 of (value, password): a retry or a rollback that
 * re-sends the same bytes skips the PKCS#12 key derivations. In memory only,
 * bounded. Off (`pfxDecodeCache: false`) it is never consulted.
 */
const decoded = new Map<string, ImportedMaterial>()

export const readImportValue = async (
  value: string,
  password: string | undefined,
  options: { cache?: boolean; reader?: MaterialReader | undefined } = {},
): Promise<ImportedMaterial> => {
  const useCache = (options.cache ?? true) && !isPemValue(value)
  const cacheKey = useCache
    ? createHash("sha256")
        .update(value)
        .update("\0")
        .update(password ?? "")
        .digest("base64")
    : ""
  const hit = useCache ? decoded.get(cacheKey) : undefined
  if (hit) return hit
  const read = options.reader
    ? await options.reader.read(value, password)
    : await readMaterial(value, password)
  rememberCertificateFacts(read.leaf, read.leafFacts)
  if (read.keyFacts !== undefined) keyFactsRead.set(read.key, read.keyFacts)
  const material: ImportedMaterial = {
    leaf: read.leaf,
    chain: read.chain,
    key: read.key,
    detectedContentType: read.detectedContentType,
    sentOrder: read.sentOrder,
  }
  if (useCache) {
    if (decoded.size >= 256) decoded.delete(decoded.keys().next().value ?? "")
    decoded.set(cacheKey, material)
  }
  return material
}

/** PEM text of a version's secret: key (PKCS#8) first, then the certificates in stored order. */
export const pemSecret = (certs: ReadonlyArray<Uint8Array>, key: Uint8Array | undefined): string => {
  const block = (label: string, der: Uint8Array) =>
    `-----BEGIN ${label}-----\n${(
      Buffer.from(der)
        .toString("base64")
        .match(/.{1,64}/g) ?? []
    ).join("\n")}\n-----END ${label}-----\n`
  return (key ? block("PRIVATE KEY", key) : "") + certs.map((c) => block("CERTIFICATE", c)).join("")
}
