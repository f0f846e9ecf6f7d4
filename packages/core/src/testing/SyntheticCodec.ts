/**
 * A real, complete PfxCodec over a synthetic certificate format, for fast
 * tests of the deploy program (thousands of property runs). It is NOT X.509
 * or PKCS#12: real formats are proven by @kvdeploy/pkcs12 and end to end with
 * the emulator. What it keeps from the real thing:
 *
 * - a certificate is bytes (canonical JSON); its x5t is base64url SHA-1 of them;
 * - a key names the public key it belongs to; `encode` refuses a key that
 *   does not match the leaf (I4);
 * - chain links carry a signature that only verifies against the issuer's key id;
 * - the "PFX" is an AES-256-GCM container keyed from the password, so a wrong
 *   password fails and the key never appears in clear in the container.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type {
  CertificateFacts,
  CertificateMaterial,
  Curve,
  InspectedMaterial,
  KeyType,
  MaterialProblem,
} from "../material.js"
import {
  MaterialInvalid,
  PfxCodec,
  PfxDecodeError,
  PfxEncodeError,
  type PfxEncodeOptions,
} from "../ports/PfxCodec.js"

const CERT_MAGIC = "SYNCERT1\n"
const KEY_MAGIC = "SYNKEY1\n"
const PFX_MAGIC = "SYNPFX1\n"

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

/** The signed body of a synthetic certificate. */
export interface SyntheticTbs {
  readonly serialHex: string
  readonly subject: string
  readonly issuer: string
  readonly notBefore: string
  readonly notAfter: string
  readonly publicKeyId: string
  readonly issuerKeyId: string
  readonly keyType: KeyType
  readonly keySize?: number
  readonly curve?: Curve
  /** The key type the certificate is signed with (its issuer's); absent: not stated. */
  readonly signatureKeyType?: KeyType
  readonly sans: ReadonlyArray<string>
}

interface SyntheticCert extends SyntheticTbs {
  readonly signature: string
}

/** The private half: names its public key, and holds a secret. */
export interface SyntheticKeyBody {
  readonly publicKeyId: string
  readonly keyType: KeyType
  readonly keySize?: number
  readonly curve?: Curve
  readonly secret: string
}

/** Deterministic JSON (sorted keys) so equal certificates have equal bytes. */
export const canonicalJson = (value: unknown): string => {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`
  }
  return JSON.stringify(value)
}

const sha256Hex = (s: string | Uint8Array): string => createHash("sha256").update(s).digest("hex")

/** base64url SHA-1 of the bytes, as Key Vault's x5t. */
export const x5tOf = (der: Uint8Array): string => createHash("sha1").update(der).digest("base64url")

export const signTbs = (tbs: SyntheticTbs): string => sha256Hex(`${canonicalJson(tbs)}|${tbs.issuerKeyId}`)

export const encodeCertificate = (tbs: SyntheticTbs): Uint8Array =>
  utf8.encode(CERT_MAGIC + canonicalJson({ ...tbs, signature: signTbs(tbs) }))

export const encodeKey = (key: SyntheticKeyBody): Uint8Array => utf8.encode(KEY_MAGIC + canonicalJson(key))

const parseWithMagic = (bytes: Uint8Array, magic: string): Record<string, unknown> | undefined => {
  const text = fromUtf8.decode(bytes)
  if (!text.startsWith(magic)) return undefined
  try {
    const parsed: unknown = JSON.parse(text.slice(magic.length))
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}

const isKeyType = (u: unknown): u is KeyType => u === "RSA" || u === "EC"

export const parseCertificate = (der: Uint8Array): SyntheticCert | undefined => {
  const o = parseWithMagic(der, CERT_MAGIC)
  if (o === undefined) return undefined
  const s = (k: string) => (typeof o[k] === "string" ? (o[k] as string) : undefined)
  const serialHex = s("serialHex")
  const subject = s("subject")
  const issuer = s("issuer")
  const notBefore = s("notBefore")
  const notAfter = s("notAfter")
  const publicKeyId = s("publicKeyId")
  const issuerKeyId = s("issuerKeyId")
  const signature = s("signature")
  const keyType = o.keyType
  if (
    serialHex === undefined ||
    subject === undefined ||
    issuer === undefined ||
    notBefore === undefined ||
    notAfter === undefined ||
    publicKeyId === undefined ||
    issuerKeyId === undefined ||
    signature === undefined ||
    !isKeyType(keyType) ||
    !Array.isArray(o.sans)
  ) {
    return undefined
  }
  return {
    serialHex,
    subject,
    issuer,
    notBefore,
    notAfter,
    publicKeyId,
    issuerKeyId,
    keyType,
    ...(typeof o.keySize === "number" ? { keySize: o.keySize } : {}),
    ...(typeof o.curve === "string" ? { curve: o.curve as Curve } : {}),
    ...(isKeyType(o.signatureKeyType) ? { signatureKeyType: o.signatureKeyType } : {}),
    sans: o.sans.filter((x): x is string => typeof x === "string"),
    signature,
  }
}

export const parseKey = (bytes: Uint8Array): SyntheticKeyBody | undefined => {
  const o = parseWithMagic(bytes, KEY_MAGIC)
  if (
    o === undefined ||
    typeof o.publicKeyId !== "string" ||
    typeof o.secret !== "string" ||
    !isKeyType(o.keyType)
  ) {
    return undefined
  }
  return {
    publicKeyId: o.publicKeyId,
    keyType: o.keyType,
    secret: o.secret,
    ...(typeof o.keySize === "number" ? { keySize: o.keySize } : {}),
    ...(typeof o.curve === "string" ? { curve: o.curve as Curve } : {}),
  }
}

const tbsOf = (c: SyntheticCert): SyntheticTbs => {
  const { signature: _signature, ...tbs } = c
  return tbs
}

const factsOf = (der: Uint8Array, c: SyntheticCert): CertificateFacts => ({
  serialHex: c.serialHex,
  x5t: x5tOf(der),
  sha256Thumbprint: sha256Hex(der),
  subject: c.subject,
  issuer: c.issuer,
  sans: c.sans,
  notBefore: new Date(c.notBefore),
  notAfter: new Date(c.notAfter),
  keyType: c.keyType,
  ...(c.keySize === undefined ? {} : { keySize: c.keySize }),
  ...(c.curve === undefined ? {} : { curve: c.curve }),
  selfSigned: c.subject === c.issuer && c.issuerKeyId === c.publicKeyId && signTbs(tbsOf(c)) === c.signature,
  ...(c.signatureKeyType === undefined ? {} : { signatureKeyType: c.signatureKeyType }),
  der,
})

const verifiesUnder = (child: SyntheticCert, issuer: SyntheticCert): boolean =>
  child.issuer === issuer.subject &&
  child.issuerKeyId === issuer.publicKeyId &&
  signTbs(tbsOf(child)) === child.signature

const inspect = (material: CertificateMaterial): Effect.Effect<InspectedMaterial, MaterialInvalid> =>
  Effect.suspend(() => {
    const leaf = parseCertificate(material.leaf)
    const key = parseKey(Redacted.value(material.key))
    const fatal: Array<MaterialProblem> = []
    if (leaf === undefined) {
      fatal.push({ field: "leaf", message: "is not a certificate", fix: "supply the leaf certificate" })
    }
    if (key === undefined) {
      fatal.push({ field: "key", message: "is not a private key", fix: "supply an unencrypted PKCS#8 key" })
    }
    if (leaf === undefined || key === undefined) return Effect.fail(new MaterialInvalid({ problems: fatal }))
    const problems: Array<MaterialProblem> = []
    const parsed: Array<{ der: Uint8Array; cert: SyntheticCert; index: number }> = []
    material.chain.forEach((der, index) => {
      const cert = parseCertificate(der)
      if (cert === undefined) {
        problems.push({
          field: `chain[${index}]`,
          message: "is not a certificate",
          fix: "remove it or supply the right file",
        })
      } else parsed.push({ der, cert, index })
    })
    // Order leaf-first: follow issuer links.
    const ordered: Array<{ der: Uint8Array; cert: SyntheticCert }> = []
    const used = new Set<number>()
    let current = leaf
    for (;;) {
      if (current.issuerKeyId === current.publicKeyId && current.issuer === current.subject) break
      const next = parsed.find(
        (p) =>
          !used.has(p.index) &&
          p.cert.subject === current.issuer &&
          p.cert.publicKeyId === current.issuerKeyId,
      )
      if (next === undefined) break
      used.add(next.index)
      if (!verifiesUnder(current, next.cert)) {
        problems.push({
          field: `chain[${next.index}]`,
          message: "the signature of the certificate below it does not verify",
          fix: "supply the chain the certificate was issued with",
        })
      }
      ordered.push({ der: next.der, cert: next.cert })
      current = next.cert
    }
    for (const p of parsed) {
      if (!used.has(p.index)) {
        problems.push({
          field: `chain[${p.index}]`,
          message: "is not part of the leaf's chain; removed",
          fix: "remove unrelated certificates",
        })
      }
    }
    const keyMatchesLeaf = key.publicKeyId === leaf.publicKeyId
    if (!keyMatchesLeaf) {
      problems.push({
        field: "key",
        message: "does not match the leaf certificate's public key",
        fix: "supply the key the certificate was issued for",
      })
    }
    return Effect.succeed({
      leaf: factsOf(material.leaf, leaf),
      chain: ordered.map((o) => factsOf(o.der, o.cert)),
      key: {
        keyType: key.keyType,
        ...(key.keySize === undefined ? {} : { keySize: key.keySize }),
        ...(key.curve === undefined ? {} : { curve: key.curve }),
      },
      keyMatchesLeaf,
      problems,
    })
  })

const deriveKey = (salt: Uint8Array, password: string): Buffer =>
  createHash("sha256").update(salt).update(utf8.encode(password)).digest()

const b64 = (u: Uint8Array) => Buffer.from(u).toString("base64")
const unb64 = (s: unknown): Uint8Array | undefined =>
  typeof s === "string" ? new Uint8Array(Buffer.from(s, "base64")) : undefined

/** Why `what` ("the PFX", "the PEM") cannot be built from `material` (I4: a key that is not the leaf's), or undefined. */
const encodeRefusal = (material: CertificateMaterial, what: string): PfxEncodeError | undefined => {
  const leaf = parseCertificate(material.leaf)
  const key = parseKey(Redacted.value(material.key))
  if (leaf === undefined) return new PfxEncodeError({ finding: "the leaf is not a certificate" })
  if (key === undefined) return new PfxEncodeError({ finding: "the key is not a private key" })
  return key.publicKeyId !== leaf.publicKeyId
    ? new PfxEncodeError({
        finding: `refusing to build ${what}: the key does not match the certificate`,
        fix: "supply the key the certificate was issued for",
      })
    : undefined
}

const encode: (typeof PfxCodec)["Service"]["encode"] = (material, options) =>
  Effect.suspend(() => {
    const refused = encodeRefusal(material, "the PFX")
    if (refused !== undefined) return Effect.fail(refused)
    const payload = utf8.encode(
      JSON.stringify({
        leaf: b64(material.leaf),
        chain: material.chain.map(b64),
        key: b64(Redacted.value(material.key)),
      }),
    )
    const salt = randomBytes(16)
    const iv = randomBytes(12)
    const cipher = createCipheriv("aes-256-gcm", deriveKey(salt, Redacted.value(options.password)), iv)
    const ciphertext = Buffer.concat([cipher.update(payload), cipher.final()])
    const container = {
      encoding: options.encoding,
      friendlyName: options.friendlyName ?? null,
      salt: b64(salt),
      iv: b64(iv),
      tag: b64(cipher.getAuthTag()),
      data: b64(ciphertext),
    }
    return Effect.succeed(utf8.encode(PFX_MAGIC + JSON.stringify(container)))
  })

/** Length of the base64 text of `n` bytes. */
const b64Length = (n: number) => 4 * Math.ceil(n / 3)

/**
 * The exact length of what `encode` answers, from the sizes alone (nothing is
 * parsed or encrypted): the JSON payload's length is fixed by the base64
 * lengths, AES-GCM keeps it, and the container's fields have fixed lengths.
 */
const maxEncodedBytes = (material: CertificateMaterial, options: PfxEncodeOptions): number => {
  const chain = material.chain.reduce((n, der) => n + b64Length(der.byteLength) + 2, 0)
  const commas = Math.max(0, material.chain.length - 1)
  // {"leaf":"…","chain":[…],"key":"…"}
  const payload =
    31 +
    b64Length(material.leaf.byteLength) +
    chain +
    commas +
    b64Length(Redacted.value(material.key).byteLength)
  const encoding = Buffer.byteLength(JSON.stringify(options.encoding), "utf8")
  const friendlyName = Buffer.byteLength(JSON.stringify(options.friendlyName ?? null), "utf8")
  // {"encoding":…,"friendlyName":…,"salt":"<24>","iv":"<16>","tag":"<24>","data":"…"}
  const container = 66 + encoding + friendlyName + 24 + 16 + 24 + b64Length(payload)
  return PFX_MAGIC.length + container
}

const decode: (typeof PfxCodec)["Service"]["decode"] = (bytes, password) =>
  Effect.suspend(() => {
    const o = parseWithMagic(bytes, PFX_MAGIC)
    const salt = unb64(o?.salt)
    const iv = unb64(o?.iv)
    const tag = unb64(o?.tag)
    const data = unb64(o?.data)
    if (salt === undefined || iv === undefined || tag === undefined || data === undefined) {
      return Effect.fail(
        new PfxDecodeError({ reason: "malformed", finding: "not a synthetic PFX container" }),
      )
    }
    let plain: Buffer
    try {
      const decipher = createDecipheriv("aes-256-gcm", deriveKey(salt, Redacted.value(password)), iv)
      decipher.setAuthTag(tag)
      plain = Buffer.concat([decipher.update(data), decipher.final()])
    } catch {
      return Effect.fail(
        new PfxDecodeError({ reason: "wrong-password", finding: "the password does not open the PFX" }),
      )
    }
    const inner: unknown = JSON.parse(plain.toString("utf8"))
    const rec = typeof inner === "object" && inner !== null ? (inner as Record<string, unknown>) : {}
    const leaf = unb64(rec.leaf)
    const key = unb64(rec.key)
    const chain = Array.isArray(rec.chain)
      ? rec.chain.map(unb64).filter((c): c is Uint8Array => c !== undefined)
      : []
    if (leaf === undefined)
      return Effect.fail(
        new PfxDecodeError({
          reason: "no-certificate",
          finding: "the PFX holds no certificate",
          fix: "export it with the certificate and its chain",
        }),
      )
    if (key === undefined)
      return Effect.fail(
        new PfxDecodeError({
          reason: "no-key",
          finding: "the PFX holds no private key",
          fix: "export it together with the key",
        }),
      )
    return Effect.succeed({ leaf, chain, key: Redacted.make(key) })
  })

/** Build a synthetic PFX holding only certificates (what a non-exportable key's backing secret holds). */
export const encodeWithoutKey = (
  material: Pick<CertificateMaterial, "leaf" | "chain">,
  password: string,
): Uint8Array => {
  const payload = utf8.encode(JSON.stringify({ leaf: b64(material.leaf), chain: material.chain.map(b64) }))
  const salt = randomBytes(16)
  const iv = randomBytes(12)
  const cipher = createCipheriv("aes-256-gcm", deriveKey(salt, password), iv)
  const ciphertext = Buffer.concat([cipher.update(payload), cipher.final()])
  return utf8.encode(
    PFX_MAGIC +
      JSON.stringify({
        encoding: "modern",
        salt: b64(salt),
        iv: b64(iv),
        tag: b64(cipher.getAuthTag()),
        data: b64(ciphertext),
      }),
  )
}

/** PEM armour of synthetic bytes (64-character lines, `\n` endings), as a real codec writes DER. */
const pemBlock = (label: string, bytes: Uint8Array): string =>
  `-----BEGIN ${label}-----\n${(b64(bytes).match(/.{1,64}/g) ?? []).join("\n")}\n-----END ${label}-----\n`

/**
 * The PEM of an import: the leaf, the chain (as given), the key as `PRIVATE KEY`; refuses a key
 * that does not match the leaf, as `encode` does.
 */
const encodePem: (typeof PfxCodec)["Service"]["encodePem"] = (material) =>
  Effect.suspend(() => {
    const refused = encodeRefusal(material, "the PEM")
    if (refused !== undefined) return Effect.fail(refused)
    const text =
      pemBlock("CERTIFICATE", material.leaf) +
      material.chain.map((c) => pemBlock("CERTIFICATE", c)).join("") +
      pemBlock("PRIVATE KEY", Redacted.value(material.key))
    return Effect.succeed(utf8.encode(text))
  })

export const SyntheticCodec = {
  inspect,
  encode,
  encodePem,
  decode,
  maxEncodedBytes,
  layer: Layer.succeed(PfxCodec, { inspect, encode, encodePem, decode, maxEncodedBytes }),
} as const
