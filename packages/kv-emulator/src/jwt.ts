/**
 * RS256 JSON Web Tokens with node:crypto: the emulator signs the access tokens
 * it issues and the federated (workload identity) tokens of its own "issuer",
 * and verifies both. Keys are generated at start and stay in memory.
 */
import {
  createHash,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
  sign,
  verify,
} from "node:crypto"

export type JwtClaims = Readonly<Record<string, unknown>>

export interface SigningKey {
  readonly kid: string
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
  /** The public key as a JWK (kty, n, e, kid, use, alg, x5t-less). */
  readonly jwk: Readonly<Record<string, string>>
}

export const createSigningKey = (): SigningKey => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
  const exported = publicKey.export({ format: "jwk" })
  const kid = createHash("sha256")
    .update(String(exported.n ?? ""))
    .digest("base64url")
    .slice(0, 27)
  return {
    kid,
    privateKey,
    publicKey,
    jwk: { kty: "RSA", use: "sig", alg: "RS256", kid, n: String(exported.n), e: String(exported.e) },
  }
}

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url")

export const signJwt = (key: SigningKey, claims: JwtClaims): string => {
  const header = b64url({ typ: "JWT", alg: "RS256", kid: key.kid, x5t: key.kid })
  const payload = b64url(claims)
  const signature = sign("sha256", Buffer.from(`${header}.${payload}`), key.privateKey).toString("base64url")
  return `${header}.${payload}.${signature}`
}

export type JwtVerification =
  | { readonly ok: true; readonly claims: JwtClaims; readonly kid: string }
  | { readonly ok: false; readonly reason: "malformed" | "unknown-key" | "bad-signature" }

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v)

/** Decodes without verifying (for reading `iss` before choosing the key). */
export const decodeJwt = (token: string): { header: JwtClaims; claims: JwtClaims } | undefined => {
  const parts = token.split(".")
  if (parts.length !== 3) return undefined
  try {
    const header: unknown = JSON.parse(Buffer.from(parts[0] ?? "", "base64url").toString("utf8"))
    const claims: unknown = JSON.parse(Buffer.from(parts[1] ?? "", "base64url").toString("utf8"))
    if (!isRecord(header) || !isRecord(claims)) return undefined
    return { header, claims }
  } catch {
    return undefined
  }
}

export const verifyJwt = (token: string, keys: ReadonlyArray<SigningKey>): JwtVerification => {
  const decoded = decodeJwt(token)
  if (decoded?.header.alg !== "RS256") return { ok: false, reason: "malformed" }
  const key = keys.find((k) => k.kid === decoded.header.kid)
  if (!key) return { ok: false, reason: "unknown-key" }
  const [h, p, s] = token.split(".") as [string, string, string]
  const good = verify("sha256", Buffer.from(`${h}.${p}`), key.publicKey, Buffer.from(s, "base64url"))
  return good ? { ok: true, claims: decoded.claims, kid: key.kid } : { ok: false, reason: "bad-signature" }
}

/** A JWK (public) imported back as a key object, for tests that check signatures independently. */
export const publicKeyFromJwk = (jwk: Readonly<Record<string, string>>): KeyObject =>
  createPublicKey({ key: { kty: "RSA", n: jwk.n ?? "", e: jwk.e ?? "" }, format: "jwk" })

export const newGuid = (): string => randomUUID()
