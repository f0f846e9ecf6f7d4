/**
 * Builders of synthetic certificate material (see SyntheticCodec): a CA, leaf
 * certificates issued by it, keys, and broken variants for negative tests.
 * Deterministic: the same seed gives the same bytes.
 */
import { createHash } from "node:crypto"
import * as Redacted from "effect/Redacted"
import type { CertificateMaterial, Curve, KeyType } from "../material.js"
import { encodeCertificate, encodeKey, type SyntheticKeyBody, x5tOf } from "./SyntheticCodec.js"

export interface SyntheticKey {
  readonly body: SyntheticKeyBody
  readonly bytes: Uint8Array
}

export interface KeySpec {
  readonly keyType?: KeyType
  readonly keySize?: number
  readonly curve?: Curve
}

const hex = (s: string) => createHash("sha256").update(s).digest("hex")

/** A key pair derived from a seed. */
export const makeKey = (seed: string, spec: KeySpec = {}): SyntheticKey => {
  const keyType = spec.keyType ?? "RSA"
  const body: SyntheticKeyBody = {
    publicKeyId: `pk-${hex(`public:${seed}`).slice(0, 24)}`,
    keyType,
    ...(keyType === "RSA" ? { keySize: spec.keySize ?? 2048 } : { curve: spec.curve ?? "P-256" }),
    secret: hex(`private:${seed}`),
  }
  return { body, bytes: encodeKey(body) }
}

export interface SyntheticAuthority {
  readonly name: string
  readonly key: SyntheticKey
  readonly certificate: Uint8Array
}

const DAY = 86_400_000

/** A self-signed CA. */
export const makeAuthority = (
  seed: string,
  name = `CN=Synthetic CA ${seed}`,
  spec: KeySpec = {},
): SyntheticAuthority => {
  const key = makeKey(`ca:${seed}`, spec)
  const certificate = encodeCertificate({
    serialHex: hex(`ca-serial:${seed}`).slice(0, 16).replace(/^0+/, "") || "1",
    subject: name,
    issuer: name,
    notBefore: new Date(0).toISOString(),
    notAfter: new Date(4_102_444_800_000).toISOString(),
    publicKeyId: key.body.publicKeyId,
    issuerKeyId: key.body.publicKeyId,
    keyType: key.body.keyType,
    ...(key.body.keySize === undefined ? {} : { keySize: key.body.keySize }),
    ...(key.body.curve === undefined ? {} : { curve: key.body.curve }),
    signatureKeyType: key.body.keyType,
    sans: [],
  })
  return { name, key, certificate }
}

export interface LeafSpec extends KeySpec {
  /** Seed of everything not given explicitly. */
  readonly seed: string
  readonly issuer?: SyntheticAuthority
  /** Reuse this key instead of deriving one from the seed. */
  readonly key?: SyntheticKey
  readonly serialHex?: string
  readonly subject?: string
  readonly notBefore?: Date
  readonly notAfter?: Date
  /** Include the issuer's certificate in the chain (default true). */
  readonly withChain?: boolean
}

export interface IssuedMaterial {
  readonly material: CertificateMaterial
  readonly key: SyntheticKey
  readonly x5t: string
  readonly serialHex: string
  readonly notAfter: Date
}

/** A leaf certificate (valid from 1970 to 2100 unless told) with its key and chain. */
export const issue = (spec: LeafSpec): IssuedMaterial => {
  const issuer = spec.issuer ?? makeAuthority("default")
  const key = spec.key ?? makeKey(`leaf:${spec.seed}`, spec)
  const serialHex = spec.serialHex ?? (hex(`serial:${spec.seed}`).slice(0, 20).replace(/^0+/, "") || "1")
  const notAfter = spec.notAfter ?? new Date(4_102_444_800_000 - DAY)
  const leaf = encodeCertificate({
    serialHex,
    subject: spec.subject ?? `CN=${spec.seed}.example.test`,
    issuer: issuer.name,
    notBefore: (spec.notBefore ?? new Date(0)).toISOString(),
    notAfter: notAfter.toISOString(),
    publicKeyId: key.body.publicKeyId,
    issuerKeyId: issuer.key.body.publicKeyId,
    keyType: key.body.keyType,
    ...(key.body.keySize === undefined ? {} : { keySize: key.body.keySize }),
    ...(key.body.curve === undefined ? {} : { curve: key.body.curve }),
    signatureKeyType: issuer.key.body.keyType,
    sans: [`DNS:${spec.seed}.example.test`],
  })
  return {
    material: {
      leaf,
      chain: spec.withChain === false ? [] : [issuer.certificate],
      key: Redacted.make(key.bytes),
    },
    key,
    x5t: x5tOf(leaf),
    serialHex,
    notAfter,
  }
}

/** The same certificate with another (non-matching) key. */
export const withWrongKey = (issued: IssuedMaterial, seed = "wrong"): CertificateMaterial => ({
  ...issued.material,
  key: Redacted.make(makeKey(`wrong:${seed}`).bytes),
})
