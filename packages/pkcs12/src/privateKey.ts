/**
 * Private keys: normalisation to PKCS#8, the facts Key Vault cares about, and
 * the public half used to match a key to its certificate. node:crypto's
 * KeyObject does the parsing, so every curve OpenSSL knows (secp256k1
 * included, which WebCrypto lacks) works.
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from "node:crypto"
import type { Curve, KeyType } from "@kvdeploy/core"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as pkijs from "pkijs"
import { OPENSSL_CANNOT_READ_EITHER } from "./algorithms.js"
import { readShroudedKeyBag } from "./decodeStructure.js"
import { loadPrivateKey } from "./nodeCrypto.js"
import { checkKeyEncryption, type KeyEncryptionCheck } from "./passwordEncryption.js"
import { pemBlocks } from "./pemBlocks.js"
import { parseBer } from "./safeBags.js"

export interface KeyFacts {
  readonly keyType: KeyType
  readonly keySize?: number
  readonly curve?: Curve
}

/** What a key is, in words an operator understands ("RSA 1024", "EC secp224r1", "Ed25519"). */
export const describeKey = (key: KeyObject): string => {
  const details = key.asymmetricKeyDetails ?? {}
  switch (key.asymmetricKeyType) {
    case "rsa":
      return `RSA ${details.modulusLength ?? "?"}`
    case "rsa-pss":
      return `RSA-PSS ${details.modulusLength ?? "?"}`
    case "ec":
      return `EC ${curveName(details.namedCurve) ?? details.namedCurve ?? "?"}`
    case "ed25519":
      return "Ed25519"
    case "ed448":
      return "Ed448"
    case "x25519":
      return "X25519"
    case "x448":
      return "X448"
    default:
      return key.asymmetricKeyType ?? "unknown"
  }
}

const curveName = (nodeName: string | undefined): Curve | undefined => {
  switch (nodeName) {
    case "prime256v1":
    case "P-256":
      return "P-256"
    case "secp384r1":
    case "P-384":
      return "P-384"
    case "secp521r1":
    case "P-521":
      return "P-521"
    case "secp256k1":
      return "P-256K"
    default:
      return undefined
  }
}

const factsByKey = new WeakMap<KeyObject, KeyFacts | null>()

/**
 * Facts of an RSA or EC key; `undefined` for other key types (Ed25519, DSA,
 * RSA-PSS-only keys). Memoised per KeyObject: `asymmetricKeyDetails` asks
 * OpenSSL afresh on every read, and an inspect reads each key's facts several times.
 */
export const keyFacts = (key: KeyObject): KeyFacts | undefined => {
  const known = factsByKey.get(key)
  if (known !== undefined) return known ?? undefined
  const facts = readKeyFacts(key)
  factsByKey.set(key, facts ?? null)
  return facts
}

const readKeyFacts = (key: KeyObject): KeyFacts | undefined => {
  const details = key.asymmetricKeyDetails ?? {}
  if (key.asymmetricKeyType === "rsa") {
    return details.modulusLength === undefined
      ? { keyType: "RSA" }
      : { keyType: "RSA", keySize: details.modulusLength }
  }
  if (key.asymmetricKeyType === "ec") {
    const curve = curveName(details.namedCurve)
    return curve === undefined ? { keyType: "EC" } : { keyType: "EC", curve }
  }
  return undefined
}

/** Whether Key Vault accepts the key for a certificate: RSA 2048/3072/4096, EC P-256/P-384/P-521/P-256K. */
export const keyVaultAccepts = (facts: KeyFacts | undefined): boolean =>
  facts !== undefined &&
  (facts.keyType === "RSA" ? [2048, 3072, 4096].includes(facts.keySize ?? 0) : facts.curve !== undefined)

/**
 * Whether two public keys are the same key: their SubjectPublicKeyInfo DER compared byte for byte.
 * Not node:crypto's `equals`: on keys of different types it answers false but leaves "different
 * key types" on OpenSSL's error queue, and on an RSA key with a broken modulus (which OpenSSL
 * loads) it throws and leaves "invalid keypair" there; the next unrelated createPrivateKey call
 * finds either and fails.
 */
export const publicKeysEqual = (a: KeyObject, b: KeyObject): boolean => {
  if (a.asymmetricKeyType !== b.asymmetricKeyType) return false
  try {
    return bytesEqual(spkiOf(a), spkiOf(b)) || (a.asymmetricKeyType === "ec" && sameEcPoint(a, b))
  } catch {
    return false
  }
}

/**
 * Whether two EC public keys are the same point on the same named curve, however their bytes write
 * it: a compressed point (`openssl ec -conv_form compressed`) or explicit curve parameters
 * (`-param_enc explicit`) in one and the usual form in the other. OpenSSL's own pair check
 * (`EVP_PKEY_eq`, as a TLS server or `openssl pkcs12 -export` runs it) compares the group and the
 * point, not the bytes. node:crypto's JWK export names the curve and gives the point's coordinates;
 * it throws for a curve that has no JWK name (then they are not judged equal).
 */
const sameEcPoint = (a: KeyObject, b: KeyObject): boolean => {
  try {
    const ja = a.export({ format: "jwk" })
    const jb = b.export({ format: "jwk" })
    return ja.crv !== undefined && ja.crv === jb.crv && ja.x === jb.x && ja.y === jb.y
  } catch {
    return false
  }
}

const explicitByKey = new WeakMap<KeyObject, boolean>()
const NAMED_CURVE_SPKI_MAX_BYTES = 158

/**
 * Whether an EC public key's SubjectPublicKeyInfo gives its curve as explicit parameters
 * (`-param_enc explicit`) instead of a named curve's identifier (RFC 5480 2.1.1: `specifiedCurve`
 * MUST NOT be used). pkijs's PublicKeyInfo reads the algorithm's parameters; remembered per key.
 */
export const hasExplicitCurveParameters = (publicKey: KeyObject): boolean => {
  if (publicKey.asymmetricKeyType !== "ec") return false
  const known = explicitByKey.get(publicKey)
  if (known !== undefined) return known
  let explicit = false
  try {
    const spki = spkiOf(publicKey)
    // Without a parse (~40 us warm, a sixth of an EC inspect) for the usual case: a named-curve SPKI
    // of the curves Key Vault takes is at most 158 bytes (P-521, uncompressed point), and explicit
    // parameters make the shortest of them (secp256k1, compressed) 246. Smaller curves are refused
    // for their curve anyway.
    if (spki.length <= NAMED_CURVE_SPKI_MAX_BYTES) {
      explicitByKey.set(publicKey, false)
      return false
    }
    const params = pkijs.PublicKeyInfo.fromBER(Uint8Array.from(spki)).algorithm.algorithmParams
    explicit = params !== undefined && !(params instanceof asn1js.ObjectIdentifier)
  } catch {
    explicit = false
  }
  explicitByKey.set(publicKey, explicit)
  return explicit
}

/** A public key's SubjectPublicKeyInfo DER, remembered per key object (a leaf's is compared again). */
const spkis = new WeakMap<KeyObject, Uint8Array>()
const spkiOf = (key: KeyObject): Uint8Array => {
  const known = spkis.get(key)
  if (known !== undefined) return known
  const der = new Uint8Array(key.export({ type: "spki", format: "der" }))
  spkis.set(key, der)
  return der
}

/**
 * What a private key is to a certificate: its key pair (`match`), another key (`mismatch`), or a key
 * whose public half is the certificate's but whose private half does not belong to it (`damaged`: a
 * corrupted private scalar or exponent, which a TLS handshake would fail with).
 */
export type KeyPairCheck = "match" | "mismatch" | "damaged"

/** Signed and verified to prove the private key belongs to the certificate's public key. */
const possessionChallenge = Buffer.from("kvdeploy: does this private key sign for its certificate?")

/**
 * Whether `privateKey` (whose public half is `privatePublic`) is the key pair of `leafPublic`. The
 * public halves are compared first (a key file states its public half, or it is derived from
 * the modulus); when they agree, a signature made with the private key must verify with the
 * certificate's public key, so a key whose private half was damaged is not taken for the pair.
 * Both are needed: a key file whose stated public half is another key's still signs as its private
 * half says, but OpenSSL (a TLS server loading the pair) compares the stated half with the
 * certificate's and refuses it.
 */
export const checkKeyPair = (
  privateKey: KeyObject,
  privatePublic: KeyObject,
  leafPublic: KeyObject,
): KeyPairCheck => {
  if (!publicKeysEqual(privatePublic, leafPublic)) return "mismatch"
  // The key types Key Vault accepts; any other (RSA-PSS, whose parameters may restrict the digest;
  // EdDSA; X25519) is refused for its type, and judged on its public half here.
  const type = privateKey.asymmetricKeyType
  if (type !== "rsa" && type !== "ec") return "match"
  // OpenSSL signs with the CRT numbers and, when that signature does not verify, again with the
  // private exponent; it never uses the exponent when the CRT numbers are right. A key with one
  // wrong number can therefore sign well and still be refused by `openssl pkey -check` and by
  // other readers of the PFX (Python's cryptography): its numbers are checked against each other.
  if (type === "rsa" && rsaKeyInconsistency(privateKey) !== undefined) return "damaged"
  try {
    return verify("sha256", possessionChallenge, leafPublic, sign("sha256", possessionChallenge, privateKey))
      ? "match"
      : "damaged"
  } catch {
    return "damaged"
  }
}

/**
 * Which number of an RSA private key does not agree with the others, in the words of its JWK field
 * (RFC 7518 6.3.2: `d` the private exponent, `dp`/`dq` the CRT exponents, `qi` the CRT coefficient,
 * `p`/`q` the primes), or `undefined` when they agree: p*q = n; e*d = 1 mod (p-1) and mod (q-1);
 * dp = d mod (p-1); dq = d mod (q-1); q*qi = 1 mod p. The numbers come from node:crypto's JWK export
 * (BigInt arithmetic on them, tens of microseconds for RSA-2048) and are never shown. A key of more
 * than two primes (`openssl genpkey -pkeyopt rsa_keygen_primes:3`), whose JWK export holds only the
 * first two, is `multi-prime`. Remembered per key object.
 */
export type RsaInconsistency = "p, q" | "d" | "dp" | "dq" | "qi" | "multi-prime"

const rsaChecked = new WeakMap<KeyObject, RsaInconsistency | null>()

export const rsaKeyInconsistency = (privateKey: KeyObject): RsaInconsistency | undefined => {
  if (privateKey.asymmetricKeyType !== "rsa" || privateKey.type !== "private") return undefined
  const known = rsaChecked.get(privateKey)
  if (known !== undefined) return known ?? undefined
  const found = readRsaInconsistency(privateKey)
  rsaChecked.set(privateKey, found ?? null)
  return found
}

const bigOf = (b64url: string | undefined): bigint | undefined =>
  b64url === undefined || b64url === ""
    ? undefined
    : BigInt(`0x${Buffer.from(b64url, "base64url").toString("hex")}`)

const readRsaInconsistency = (privateKey: KeyObject): RsaInconsistency | undefined => {
  let jwk: Record<string, unknown>
  try {
    jwk = privateKey.export({ format: "jwk" }) as Record<string, unknown>
  } catch {
    // No JWK of this key: the signature check judges it alone.
    return undefined
  }
  const field = (name: string) => bigOf(typeof jwk[name] === "string" ? (jwk[name] as string) : undefined)
  const [n, e, d, p, q, dp, dq, qi] = ["n", "e", "d", "p", "q", "dp", "dq", "qi"].map(field)
  if (n === undefined || e === undefined || d === undefined) return "d"
  if (p === undefined || q === undefined || p < 2n || q < 2n) return "p, q"
  if (p * q !== n) return n % p === 0n && n % q === 0n && n % (p * q) === 0n ? "multi-prime" : "p, q"
  const p1 = p - 1n
  const q1 = q - 1n
  if ((e * d) % p1 !== 1n % p1 || (e * d) % q1 !== 1n % q1) return "d"
  if (dp === undefined || dp !== d % p1) return "dp"
  if (dq === undefined || dq !== d % q1) return "dq"
  if (qi === undefined || (q * qi) % p !== 1n) return "qi"
  return undefined
}

/** What a damaged RSA key's wrong number is, for a problem's message; `""` when none was found. */
export const rsaInconsistencyWords = (privateKey: KeyObject): string => {
  switch (rsaKeyInconsistency(privateKey)) {
    case undefined:
      return ""
    case "multi-prime":
      return "it is an RSA key of more than two primes (multi-prime), which kvdeploy does not take"
    case "p, q":
      return "its primes (p, q) do not multiply to its modulus"
    case "d":
      return "its private exponent (d) does not invert its public exponent"
    case "dp":
      return "its CRT exponent dp is not d mod (p-1)"
    case "dq":
      return "its CRT exponent dq is not d mod (q-1)"
    case "qi":
      return "its CRT coefficient qi is not the inverse of q mod p"
  }
}

/** Same length and bytes (node:buffer's native compare: a byte loop in JavaScript cost ~10 us per material check). */
export const bytesEqual = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && Buffer.compare(a, b) === 0

/** A parse failure of a key, phrased for the operator, never holding key bytes. */
export interface KeyProblem {
  readonly message: string
  readonly fix: string
}

const nodeErrorCode = (error: unknown): string =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : ""

const unreadablePkcs8: KeyProblem = {
  message: "the private key is not a readable unencrypted PKCS#8 key",
  fix: "supply the key as PKCS#8 DER (openssl pkcs8 -topk8 -nocrypt -outform DER)",
}

/** Load an unencrypted PKCS#8 DER key; `undefined` when it is not one (the problem is `loadPkcs8`'s). */
export const loadPkcs8Now = (der: Uint8Array): KeyObject | undefined => {
  try {
    return loadPrivateKey({
      key: Buffer.from(der.buffer, der.byteOffset, der.byteLength),
      format: "der",
      type: "pkcs8",
    })
  } catch {
    return undefined
  }
}

/**
 * The key each PKCS#8 array handed out by parsePem was exported from, with a
 * private copy of the bytes: the inspect of the same material (the agent
 * parses a source, then inspects it) then loads no key OpenSSL already
 * loaded. Keyed by the caller's array, so an entry lives as long as that
 * material; used only while the array still holds the copied bytes.
 */
const loadedKeys = new WeakMap<Uint8Array, { readonly key: KeyObject; readonly pkcs8: Uint8Array }>()

const handedOut = (loaded: KeyObject): Uint8Array => {
  const { key, pkcs8 } = writtenForm(loaded)
  loadedKeys.set(pkcs8, { key, pkcs8: pkcs8.slice() })
  return pkcs8
}

/**
 * The usual form's PKCS#8 for an EC key of each curve Key Vault takes, as OpenSSL writes it: the
 * curve named, the private scalar padded to the order's length, and last the public point
 * uncompressed (`04`, then both coordinates): its length in all, and the point's length.
 */
const USUAL_EC_PKCS8: Readonly<Record<string, { readonly bytes: number; readonly point: number }>> = {
  prime256v1: { bytes: 138, point: 65 },
  secp384r1: { bytes: 185, point: 97 },
  secp521r1: { bytes: 241, point: 133 },
  secp256k1: { bytes: 135, point: 65 },
}

/**
 * An EC key of a curve Key Vault takes, written in another form (`openssl ec -conv_form compressed`
 * or `hybrid`, `-param_enc explicit`, no public key), re-expressed in the usual one through
 * node:crypto's JWK (the curve's name and the point's coordinates); `undefined` when it already is
 * in it or cannot be. `pkcs8` is node:crypto's export of `key` (no attributes): in the usual form it
 * has the usual length and its last bytes are the point, uncompressed (`04`); the others are
 * shorter, or longer (explicit parameters), or have the usual length with another first byte of the
 * point (hybrid, `06`/`07`).
 * Those forms are the same key, but RFC 5480 asks readers to take the uncompressed point only, and
 * explicit parameters not at all, so the PFX an import sends holds the usual form.
 */
const usualEcForm = (key: KeyObject, pkcs8: Uint8Array): KeyObject | undefined => {
  if (key.asymmetricKeyType !== "ec") return undefined
  const usual = USUAL_EC_PKCS8[key.asymmetricKeyDetails?.namedCurve ?? ""]
  if (usual === undefined || (pkcs8.length === usual.bytes && pkcs8[usual.bytes - usual.point] === 0x04))
    return undefined
  try {
    return createPrivateKey({ key: key.export({ format: "jwk" }), format: "jwk" })
  } catch {
    return undefined
  }
}

/**
 * `key` (loaded from `pkcs8`) re-expressed in the usual form with its PKCS#8, when it is an EC key
 * written in another form (see `usualEcForm`); `undefined` when it already is in it, or is no EC key.
 * Every path that hands a key to an encoder goes through this (parsePem, a DER key, a decoded PFX,
 * the PKCS#8 a library caller gives), so the PFX or PEM kvdeploy writes holds the usual form.
 */
const inUsualForm = (
  key: KeyObject,
  pkcs8: Uint8Array,
): { readonly key: KeyObject; readonly pkcs8: Uint8Array } | undefined => {
  const usual = usualEcForm(key, pkcs8)
  return usual === undefined
    ? undefined
    : { key: usual, pkcs8: new Uint8Array(usual.export({ type: "pkcs8", format: "der" })) }
}

/**
 * The key and the PKCS#8 kvdeploy hands on for `loaded` (parsePem, a decoded PFX, a caller's key):
 * node:crypto's export of it, an EC key in another form re-expressed in the usual one first.
 */
export const writtenForm = (loaded: KeyObject): { readonly key: KeyObject; readonly pkcs8: Uint8Array } => {
  const exported = new Uint8Array(loaded.export({ type: "pkcs8", format: "der" }))
  return inUsualForm(loaded, exported) ?? { key: loaded, pkcs8: exported }
}

/**
 * What an encoder writes for an EC key `loaded` from a caller's PKCS#8 (`original`, copied as
 * `given`), when not `given` itself: the usual form, judged on node:crypto's own export of the key,
 * not on the caller's bytes (those may carry attributes, or leave the public point out, and still
 * have the usual form's length and an `04` where its point starts). `undefined` for a key that is no
 * EC key, for bytes parsePem handed out (the usual form already), and when `given` is what it writes.
 */
export const ecFormToWrite = (
  original: Uint8Array,
  given: Uint8Array,
  loaded: KeyObject,
): { readonly key: KeyObject; readonly pkcs8: Uint8Array } | undefined => {
  if (loaded.asymmetricKeyType !== "ec" || loadedKeys.get(original)?.key === loaded) return undefined
  const written = writtenForm(loaded)
  return bytesEqual(written.pkcs8, given) ? undefined : written
}

/**
 * `loadPkcs8Now` of `copy`, a private copy of the caller's `original`: the key
 * already loaded for `original` by parsePem when the bytes are still the ones
 * it exported, else a fresh load.
 */
export const loadPkcs8SharedNow = (original: Uint8Array, copy: Uint8Array): KeyObject | undefined => {
  const known = loadedKeys.get(original)
  return known !== undefined && bytesEqual(known.pkcs8, copy) ? known.key : loadPkcs8Now(copy)
}

/** Load an unencrypted PKCS#8 DER key. */
export const loadPkcs8 = (der: Uint8Array): Effect.Effect<KeyObject, KeyProblem> =>
  Effect.suspend(() => {
    const key = loadPkcs8Now(der)
    return key === undefined ? Effect.fail({ ...unreadablePkcs8 }) : Effect.succeed(key)
  })

/**
 * Load a PEM private key block of any kind OpenSSL writes (PKCS#8, encrypted
 * PKCS#8, PKCS#1 RSA, SEC1 EC, legacy encrypted PEM) and return it as PKCS#8 DER.
 */
export const pemKeyToPkcs8 = (
  pem: string,
  passphrase: string | undefined,
): Effect.Effect<{ readonly pkcs8: Uint8Array; readonly key: KeyObject }, KeyProblem> =>
  Effect.suspend(() => {
    const encryption = encryptedKeyParameters(pem)
    return encryption.refused !== undefined
      ? Effect.fail(encryption.refused)
      : loadPemKey(pem, passphrase, encryption.unread)
  })

/** Re-encrypting a key file kvdeploy refuses for its encryption. */
const REENCRYPT =
  "openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 600000 -in key.pem -out key-aes.pem (add -provider legacy -provider default to read a legacy cipher)"

/**
 * An `ENCRYPTED PRIVATE KEY` block's encryption, read (asn1js/pkijs, as a PFX's key bag is) and
 * checked before OpenSSL decrypts it: a KDF cost over the limits is refused here, since OpenSSL
 * bounds neither and its synchronous run cannot be stopped by a signal. Other blocks are left to
 * OpenSSL; a body asn1js does not read as an EncryptedPrivateKeyInfo is refused, not handed on.
 */
const encryptedKeyParameters = (pem: string): { readonly refused?: KeyProblem; readonly unread?: string } => {
  let body: string | undefined
  for (const block of pemBlocks(pem))
    if (block.label === "ENCRYPTED PRIVATE KEY") {
      body = block.body
      break
    }
  if (body === undefined) return {}
  let checked: KeyEncryptionCheck
  try {
    const der = new Uint8Array(Buffer.from(body.replace(/\s+/g, ""), "base64"))
    checked = checkKeyEncryption(readShroudedKeyBag(parseBer(der)).encryptionAlgorithm)
  } catch {
    // Not an EncryptedPrivateKeyInfo to asn1js: not handed to OpenSSL either, whose reading of it
    // would be unchecked.
    return {
      refused: {
        message: "the encrypted private key block is not a readable EncryptedPrivateKeyInfo",
        fix: "check that the key PEM is complete and not altered (openssl pkey -in key.pem -noout)",
      },
    }
  }
  const refused = checked.refused
  if (refused === undefined) return checked.unread === undefined ? {} : { unread: checked.unread }
  return {
    refused: {
      message: `the private key's encryption is refused before decrypting it: ${refused.finding}`,
      fix:
        refused.kind === "malformed"
          ? "check that the key PEM is complete and not altered (openssl pkey -in key.pem -noout)"
          : // The PFX reader's fix of an iteration count (re-export the PFX) is not a key file's.
            refused.fix?.startsWith(OPENSSL_CANNOT_READ_EITHER) === true
            ? refused.fix
            : `re-encrypt the key with a cost OpenSSL's defaults use: ${REENCRYPT}; or supply it unencrypted`,
    },
  }
}

const loadPemKey = (
  pem: string,
  passphrase: string | undefined,
  unread: string | undefined,
): Effect.Effect<{ readonly pkcs8: Uint8Array; readonly key: KeyObject }, KeyProblem> =>
  Effect.try({
    try: () => {
      const loaded = loadPrivateKey(
        passphrase === undefined ? { key: pem, format: "pem" } : { key: pem, format: "pem", passphrase },
      )
      const pkcs8 = handedOut(loaded)
      return { key: loadedKeys.get(pkcs8)?.key ?? loaded, pkcs8 }
    },
    catch: (error): KeyProblem => {
      const code = nodeErrorCode(error)
      const text = error instanceof Error ? error.message : ""
      if (
        code === "ERR_MISSING_PASSPHRASE" ||
        (passphrase === undefined &&
          (code === "ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED" || /ENCRYPTED/.test(pem)))
      )
        return {
          message: "the private key is encrypted and no passphrase was given",
          fix: "pass the key's passphrase, or decrypt it first (openssl pkey -in key.pem)",
        }
      // OpenSSL takes a passphrase of at most 1,024 bytes (PEM_BUFSIZE) and answers a longer one
      // with "interrupted or cancelled", as if the key were unreadable.
      if (passphrase !== undefined && /ENCRYPTED/.test(pem) && Buffer.byteLength(passphrase, "utf8") > 1024)
        return {
          message: `the passphrase is ${Buffer.byteLength(passphrase, "utf8")} bytes; OpenSSL reads a key's passphrase of at most 1,024 bytes`,
          fix: "re-encrypt the key with a shorter passphrase (openssl pkcs8 -topk8 -v2 aes-256-cbc), or supply it unencrypted through a file only kvdeploy reads",
        }
      // An encryption Node's OpenSSL lacks fails the same way whatever the passphrase: named.
      if (unread !== undefined && /unsupported|decrypt/i.test(text))
        return {
          message: `the private key is encrypted with ${unread}, a legacy encryption kvdeploy does not read`,
          fix: `re-encrypt it with PBES2/AES: ${REENCRYPT}; or supply it unencrypted`,
        }
      if (/bad decrypt|maybe wrong password|decrypt/i.test(text))
        return {
          message: "the private key could not be decrypted: the passphrase is wrong",
          // No front end's flag: a library caller gave the passphrase itself; the CLI, which knows
          // the variable (or the prompt) it came from, says so after "check the passphrase".
          fix: "check the passphrase: it must be the one the key was encrypted with",
        }
      // OpenSSL's decoders answer "unsupported" both for an encryption they lack and for a key block
      // they cannot decode at all (cut short, altered): only an encrypted key is about its encryption.
      // A wrong passphrase also ends here about 1 time in 256: its garbage passes the cipher's
      // padding check, and the decoder then cannot read it. Both causes are named.
      if (/unsupported/i.test(text) && /ENCRYPTED/.test(pem))
        return {
          message:
            "the private key could not be decrypted and read: the passphrase is wrong, or the key uses an encryption this system does not support",
          fix: `check the passphrase; if it is right, re-encrypt the key with PBES2/AES (${REENCRYPT}) or supply it unencrypted`,
        }
      if (/unsupported/i.test(text))
        return {
          message:
            "the private key could not be read: the block is cut short or altered, or holds a key type this system does not support",
          fix: "check it with `openssl pkey -in key.pem -noout`; kvdeploy takes RSA and EC keys (PKCS#8, PKCS#1 or SEC1)",
        }
      return {
        message: "the private key block could not be parsed",
        fix: "check that the key PEM is complete and not altered (openssl pkey -in key.pem -noout)",
      }
    },
  })

const noPublicKey: KeyProblem = {
  message: "the public key could not be derived from the private key",
  fix: "check that the private key is complete (openssl pkey -in key.pem -noout -check)",
}

/** The public half of a private key; `undefined` when OpenSSL cannot derive it (the problem is `publicOf`'s). */
export const publicOfNow = (privateKey: KeyObject): KeyObject | undefined => {
  try {
    return createPublicKey(privateKey)
  } catch {
    return undefined
  }
}

/** The public half of a private key. */
export const publicOf = (privateKey: KeyObject): Effect.Effect<KeyObject, KeyProblem> =>
  Effect.suspend(() => {
    const publicKey = publicOfNow(privateKey)
    return publicKey === undefined ? Effect.fail({ ...noPublicKey }) : Effect.succeed(publicKey)
  })

/** The problems `loadPkcs8` and `publicOf` fail with, for callers of their synchronous forms. */
export const keyProblems = { unreadablePkcs8, noPublicKey } as const

const derToPkcs8 = (der: Uint8Array): Uint8Array | undefined => {
  const buffer = Buffer.from(der.buffer, der.byteOffset, der.byteLength)
  for (const type of ["pkcs8", "pkcs1", "sec1"] as const) {
    try {
      return handedOut(loadPrivateKey({ key: buffer, format: "der", type }))
    } catch {
      // try the next form
    }
  }
  return undefined
}

/** A DER private key in PKCS#8, PKCS#1 (RSA) or SEC1 (EC) form, as PKCS#8 DER. */
export const derKeyToPkcs8 = (der: Uint8Array): Effect.Effect<Uint8Array, KeyProblem> =>
  Effect.flatMap(
    Effect.sync(() => derToPkcs8(der)),
    (pkcs8) =>
      pkcs8 === undefined
        ? Effect.fail<KeyProblem>({
            message: "is not a readable DER private key (PKCS#8, PKCS#1 or SEC1)",
            fix: "supply the key as PEM, or check it with openssl pkey -inform DER -noout",
          })
        : Effect.succeed(pkcs8),
  )
