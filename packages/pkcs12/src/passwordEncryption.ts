/**
 * Password-based encryption of PKCS#12 contents: PBES2 (PBKDF2 + AES or 3DES,
 * RFC 8018) and the PKCS#12 PBES1 schemes (RFC 7292 Appendix C). Parameters
 * are read against pkijs's schemas (decodeStructure.ts) and written with pkijs's
 * classes (pfxStructure.ts); the ciphers are node:crypto,
 * except RC2, which is node-forge's (Node's OpenSSL 3 keeps RC2 in the legacy
 * provider, which Node does not load).
 */
import { createCipheriv, createDecipheriv, type KeyObject, pbkdf2Sync } from "node:crypto"
import * as asn1js from "asn1js"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as forgeModule from "node-forge"
import {
  maxIterations,
  maxScryptCost,
  maxTotalIterations,
  OPENSSL_CANNOT_READ_EITHER,
  oid,
  opensslScryptMemoryLimit,
  pbes1ByOid,
  pbes2CipherByOid,
  prfByOid,
  unreadKeyEncryptions,
} from "./algorithms.js"
import {
  type AlgorithmReference,
  builtOnce,
  integerValue,
  type Pbes2Parts,
  type Pbkdf2Parts,
  partsOf,
  readPbes2Params,
  readPbkdf2Params,
} from "./decodeStructure.js"
import { loadPrivateKey, publicRandom, secretKey } from "./nodeCrypto.js"
import {
  type Algorithm,
  algorithm,
  nullParametersAlgorithm,
  octets,
  pbes2Parameters,
  pkcs12PbeParameters,
} from "./pfxStructure.js"
import { bmpPassword, KdfPurpose, pkcs12Kdf, utf8Password } from "./pkcs12Kdf.js"

/**
 * Why a password-encrypted blob could not be decrypted: what was found, and, when this step knows
 * a better one than its caller's, what to do with the file. Internal: callers map it to their own
 * tagged error.
 */
export class PbeFailure extends Data.TaggedError("PbeFailure")<{
  readonly kind: "unsupported" | "wrong-password" | "malformed"
  readonly finding: string
  readonly fix?: string
}> {}

export interface Encrypted {
  /** The AlgorithmIdentifier of the scheme with its parameters (pkijs's). */
  readonly algorithm: Algorithm
  readonly ciphertext: Uint8Array
}

const cipherRun = (
  mode: "encrypt" | "decrypt",
  cipher: string,
  key: Uint8Array,
  iv: Uint8Array,
  data: Uint8Array,
): Uint8Array => {
  const k = secretKey(key)
  const c = mode === "encrypt" ? createCipheriv(cipher, k, iv) : createDecipheriv(cipher, k, iv)
  const head = c.update(data)
  const tail = c.final()
  const out = new Uint8Array(head.length + tail.length)
  out.set(head, 0)
  out.set(tail, head.length)
  return out
}

// node-forge is CommonJS whose members Node cannot detect as named exports: under
// Node's ESM loader (and esbuild's node mode) they are on the namespace's default.
const forge: typeof forgeModule =
  (forgeModule as { readonly default?: typeof forgeModule }).default ?? forgeModule

const binary = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1")

/**
 * node-forge's RC2-CBC. Its key expansion masks the last key byte wrongly when
 * the effective key length is not a whole number of bytes, so only those are
 * accepted; PKCS#12 uses 40 and 128 bits.
 */
const rc2Cbc = (encrypt: boolean, key: Uint8Array, effectiveBits: number, iv: Uint8Array) => {
  if (
    !Number.isInteger(effectiveBits) ||
    effectiveBits % 8 !== 0 ||
    effectiveBits < 8 ||
    effectiveBits > 1024
  )
    throw new RangeError(
      `RC2 effective key length ${effectiveBits} is not a whole number of bytes (8 to 1024 bits)`,
    )
  if (iv.length !== 8) throw new RangeError("the RC2-CBC IV must be 8 bytes")
  const cipher = encrypt
    ? forge.rc2.createEncryptionCipher(binary(key), effectiveBits)
    : forge.rc2.createDecryptionCipher(binary(key), effectiveBits)
  cipher.start(binary(iv))
  return cipher
}

/** RC2-CBC with PKCS#7 padding, for the RC2-40 certificate encryption of the legacy profile. */
export const rc2CbcEncrypt = (
  key: Uint8Array,
  effectiveBits: number,
  iv: Uint8Array,
  data: Uint8Array,
): Uint8Array => {
  const cipher = rc2Cbc(true, key, effectiveBits, iv)
  cipher.update(forge.util.createBuffer(binary(data)))
  cipher.finish()
  return new Uint8Array(Buffer.from(cipher.output.getBytes(), "latin1"))
}

/** RC2-CBC decryption; `undefined` when the length or the padding is wrong (a wrong key, almost always). */
export const rc2CbcDecrypt = (
  key: Uint8Array,
  effectiveBits: number,
  iv: Uint8Array,
  data: Uint8Array,
): Uint8Array | undefined => {
  if (data.length === 0 || data.length % 8 !== 0) return undefined
  const cipher = rc2Cbc(false, key, effectiveBits, iv)
  cipher.update(forge.util.createBuffer(binary(data)))
  // Keep the padding: forge's own unpadding only compares the count with the
  // length, and the strict PKCS#7 check below is what tells a wrong key.
  if (!cipher.finish(() => true)) return undefined
  const out = new Uint8Array(Buffer.from(cipher.output.getBytes(), "latin1"))
  const pad = out[out.length - 1] ?? 0
  if (pad < 1 || pad > 8 || pad > out.length) return undefined
  for (let i = out.length - pad; i < out.length; i++) if (out[i] !== pad) return undefined
  return out.subarray(0, out.length - pad)
}

/** PBES2 with PBKDF2-HMAC-SHA-256 and AES-256-CBC, the password as UTF-8 (what OpenSSL 3 and Java 17 write). */
export const encryptPbes2 = (data: Uint8Array, password: string, iterations: number): Encrypted => {
  const random = publicRandom(32)
  const salt = random.subarray(0, 16)
  const iv = random.subarray(16)
  const key = pbkdf2Sync(utf8Password(password), salt, iterations, 32, "sha256")
  const ciphertext = cipherRun("encrypt", "aes-256-cbc", key, iv, data)
  return {
    algorithm: algorithm(
      oid.pbes2,
      pbes2Parameters(
        salt,
        iterations,
        nullParametersAlgorithm(oid.hmacWithSha256),
        algorithm(oid.aes256Cbc, octets(iv)),
      ),
    ),
    ciphertext,
  }
}

export type Pbes1Scheme = "3des" | "rc2-40"

/** PKCS#12 PBES1: pbeWithSHAAnd3-KeyTripleDES-CBC or pbeWithSHAAnd40BitRC2-CBC, the password as BMPString. */
export const encryptPbes1 = (
  data: Uint8Array,
  password: string,
  iterations: number,
  scheme: Pbes1Scheme,
): Encrypted => {
  const salt = publicRandom(8)
  const pw = bmpPassword(password)
  const algorithmId = scheme === "3des" ? oid.pbeSha1TripleDes : oid.pbeSha1Rc2_40
  const keyLength = scheme === "3des" ? 24 : 5
  const key = pkcs12Kdf("sha1", pw, salt, iterations, KdfPurpose.key, keyLength)
  const iv = pkcs12Kdf("sha1", pw, salt, iterations, KdfPurpose.iv, 8)
  const ciphertext =
    scheme === "3des" ? cipherRun("encrypt", "des-ede3-cbc", key, iv, data) : rc2CbcEncrypt(key, 40, iv, data)
  return { algorithm: algorithm(algorithmId, pkcs12PbeParameters(salt, iterations)), ciphertext }
}

const malformed = (finding: string) => new PbeFailure({ kind: "malformed", finding })
const unsupported = (finding: string, fix?: string) =>
  new PbeFailure(fix === undefined ? { kind: "unsupported", finding } : { kind: "unsupported", finding, fix })
const wrongPassword = () =>
  new PbeFailure({ kind: "wrong-password", finding: "decryption failed: the password is wrong" })
/** An iteration count over the limit is fixed by fewer iterations, not by another cipher. */
const FEWER_ITERATIONS = "re-export the PFX with fewer iterations"

/** KDF iterations one decode may still spend (see `maxTotalIterations`). */
export interface KdfBudget {
  remaining: number
}

export const newKdfBudget = (): KdfBudget => ({ remaining: maxTotalIterations })

/**
 * Check an iteration count and charge `derivations` runs of it to the budget:
 * the count, or why it is refused (nothing is charged then).
 */
export const spendIterationsNow = (
  n: unknown,
  derivations: number,
  budget: KdfBudget,
): number | PbeFailure => {
  if (typeof n === "number" && n > maxIterations)
    return unsupported(
      `the iteration count ${Number.isFinite(n) ? n : "(more than 2^53)"} exceeds the limit of ${maxIterations}`,
      FEWER_ITERATIONS,
    )
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 1)
    return malformed("the iteration count is not a positive integer")
  if (n > maxIterations)
    return unsupported(`the iteration count ${n} exceeds the limit of ${maxIterations}`, FEWER_ITERATIONS)
  if (n * derivations > budget.remaining)
    return unsupported(
      `the PFX asks for more than ${maxTotalIterations} key-derivation iterations in all`,
      "re-export it with fewer items or iterations",
    )
  budget.remaining -= n * derivations
  return n
}

/** `spendIterationsNow` as an Effect. */
export const spendIterations = (
  n: unknown,
  derivations: number,
  budget: KdfBudget,
): Effect.Effect<number, PbeFailure> => asEffect(() => spendIterationsNow(n, derivations, budget))

/**
 * A synchronous step's answer as an Effect: its failure in the error channel.
 * Run when the Effect runs (so a step that throws is a defect, as in Effect.gen).
 */
const asEffect = <A>(step: () => A | PbeFailure): Effect.Effect<A, PbeFailure> =>
  Effect.suspend(() => {
    const answer = step()
    return answer instanceof PbeFailure ? Effect.fail(answer) : Effect.succeed(answer)
  })

const pbes1ParamsSchema = new asn1js.Sequence({
  value: [new asn1js.OctetString({ name: "salt" }), new asn1js.Integer({ name: "iterations" })],
})

/**
 * A PKCS#8 EncryptedPrivateKeyInfo decrypted by OpenSSL (node:crypto), once
 * its parameters have passed the checks and its iterations the budget.
 * OpenSSL runs the PKCS#12 KDF of PBE-SHA1-3DES (and PBKDF2) natively, several
 * times faster than the same KDF over `hash()` calls. Any failure (a wrong
 * password, a password encoding OpenSSL does not try, a scheme it lacks such
 * as RC2) returns `undefined` and the caller decrypts in JavaScript, which
 * gives the precise error.
 */
const nativeKey = (
  encryptedPrivateKeyInfo: Uint8Array | undefined,
  password: string,
): KeyObject | undefined => {
  if (encryptedPrivateKeyInfo === undefined) return undefined
  try {
    return loadPrivateKey({
      key: Buffer.from(
        encryptedPrivateKeyInfo.buffer,
        encryptedPrivateKeyInfo.byteOffset,
        encryptedPrivateKeyInfo.byteLength,
      ),
      format: "der",
      type: "pkcs8",
      passphrase: password,
    })
  } catch {
    return undefined
  }
}

/** What a decryption gave: the plaintext, or (for a key OpenSSL decrypted) the key itself. */
export type Decrypted =
  | { readonly _tag: "Plain"; readonly plain: Uint8Array }
  | { readonly _tag: "Key"; readonly key: KeyObject }

const plainOf = (plain: Uint8Array): Decrypted => ({ _tag: "Plain", plain })

// The decryptions below are synchronous (decodePfx runs them once per bag, and an
// Effect.gen per step was a measurable part of a small PFX's decode): each answers its
// result or the PbeFailure that stops it, in the order the checks run.

const decryptPbes1 = (
  algorithm: AlgorithmReference,
  scheme: { readonly cipher: "des-ede3-cbc" | "des-ede-cbc" | "rc2"; readonly keyLength: number },
  ciphertext: Uint8Array,
  password: string,
  budget: KdfBudget,
  encryptedPrivateKeyInfo?: Uint8Array,
): Decrypted | PbeFailure => {
  const params = algorithm.algorithmParams as asn1js.AsnType
  const checked = asn1js.compareSchema(params, params, pbes1ParamsSchema)
  if (!checked.verified) return malformed("the PBES1 parameters are malformed")
  const saltBlock: unknown = checked.result.salt
  const iterationBlock: unknown = checked.result.iterations
  if (!(saltBlock instanceof asn1js.OctetString) || !(iterationBlock instanceof asn1js.Integer))
    return malformed("the PBES1 parameters are malformed")
  const salt = saltBlock.valueBlock.valueHexView
  // The empty password is 00 00 as a BMPString; some writers used zero bytes instead.
  const candidates = password === "" ? [bmpPassword(""), new Uint8Array(0)] : [bmpPassword(password)]
  // Key and IV: one SHA-1 block per 20 bytes each, per candidate password.
  const derivations = candidates.length * (Math.ceil(scheme.keyLength / 20) + 1)
  const iterations = spendIterationsNow(integerValue(iterationBlock), derivations, budget)
  if (iterations instanceof PbeFailure) return iterations
  const native = nativeKey(encryptedPrivateKeyInfo, password)
  if (native !== undefined) return { _tag: "Key", key: native }
  // OpenSSL's failed attempt already spent the derivations once: the JavaScript path's are
  // work on top, and are charged too, so a key bag that fails both ways costs its budget twice.
  if (encryptedPrivateKeyInfo !== undefined) {
    const again = spendIterationsNow(integerValue(iterationBlock), derivations, budget)
    if (again instanceof PbeFailure) return again
  }
  // With two candidates, the wrong one passes the padding check about 1 time in 256: its plaintext
  // is taken only when it reads as one whole DER element (a key or safe contents), else the next
  // candidate is tried; the first that decrypted is the answer when none reads so.
  let first: Uint8Array | undefined
  for (const pw of candidates) {
    const key = pkcs12Kdf("sha1", pw, salt, iterations, KdfPurpose.key, scheme.keyLength)
    const iv = pkcs12Kdf("sha1", pw, salt, iterations, KdfPurpose.iv, 8)
    let plain: Uint8Array | undefined
    if (scheme.cipher === "rc2") plain = rc2CbcDecrypt(key, scheme.keyLength * 8, iv, ciphertext)
    else {
      try {
        plain = cipherRun("decrypt", scheme.cipher, key, iv, ciphertext)
      } catch {
        // A wrong key (bad padding): the next candidate, or the wrong-password failure below.
      }
    }
    if (plain === undefined) continue
    if (candidates.length === 1 || isWholeDer(plain)) return plainOf(plain)
    first ??= plain
  }
  return first === undefined ? wrongPassword() : plainOf(first)
}

/** Whether `bytes` are one complete BER element and nothing after it. */
const isWholeDer = (bytes: Uint8Array): boolean => {
  const parsed = asn1js.fromBER(bytes)
  return parsed.offset === bytes.length
}

const decryptPbes2 = (
  algorithm: AlgorithmReference,
  ciphertext: Uint8Array,
  password: string,
  budget: KdfBudget,
  encryptedPrivateKeyInfo?: Uint8Array,
): Decrypted | PbeFailure => {
  let params: Pbes2Parts
  try {
    params = readPbes2Params(algorithm.algorithmParams)
  } catch {
    return malformed("the PBES2 parameters are malformed")
  }
  if (params.keyDerivationFunc.algorithmId !== oid.pbkdf2)
    return unsupported(
      `key derivation ${params.keyDerivationFunc.algorithmId} is not supported (only PBKDF2)`,
    )
  let kdf: Pbkdf2Parts
  try {
    kdf = readPbkdf2Params(params.keyDerivationFunc.algorithmParams)
  } catch {
    return malformed("the PBKDF2 parameters are malformed")
  }
  const cipher = pbes2CipherByOid[params.encryptionScheme.algorithmId]
  if (cipher === undefined)
    return unsupported(
      `encryption scheme ${params.encryptionScheme.algorithmId} is not supported (AES-128/192/256-CBC, 3DES-CBC are)`,
    )
  const prf = kdf.prf === undefined ? "sha1" : prfByOid[kdf.prf.algorithmId]
  if (prf === undefined) return unsupported(`PBKDF2 PRF ${kdf.prf?.algorithmId ?? "?"} is not supported`)
  if (!(kdf.salt instanceof asn1js.OctetString))
    return unsupported("PBKDF2 with a non-octet-string salt is not supported")
  const salt = kdf.salt.valueBlock.valueHexView
  const iterations = spendIterationsNow(kdf.iterationCount, 1, budget)
  if (iterations instanceof PbeFailure) return iterations
  const ivParam = params.encryptionScheme.algorithmParams
  if (!(ivParam instanceof asn1js.OctetString)) return malformed("the PBES2 cipher has no IV")
  const iv = ivParam.valueBlock.valueHexView
  const expectedIv = cipher.cipher.startsWith("aes") ? 16 : 8
  if (iv.length !== expectedIv) return malformed("the PBES2 IV has the wrong length")
  const native = nativeKey(encryptedPrivateKeyInfo, password)
  if (native !== undefined) return { _tag: "Key", key: native }
  // As in PBES1: the JavaScript attempt after OpenSSL's failed one is charged as well.
  if (encryptedPrivateKeyInfo !== undefined) {
    const again = spendIterationsNow(kdf.iterationCount, 1, budget)
    if (again instanceof PbeFailure) return again
  }
  const key = pbkdf2Sync(utf8Password(password), salt, iterations, cipher.keyLength, prf)
  try {
    return plainOf(cipherRun("decrypt", cipher.cipher, key, iv, ciphertext))
  } catch {
    return wrongPassword()
  }
}

const decrypt = (
  algorithm: AlgorithmReference,
  ciphertext: Uint8Array,
  password: string,
  budget: KdfBudget,
  encryptedPrivateKeyInfo?: Uint8Array,
): Decrypted | PbeFailure => {
  if (algorithm.algorithmId === oid.pbes2)
    return decryptPbes2(algorithm, ciphertext, password, budget, encryptedPrivateKeyInfo)
  const pbes1 = pbes1ByOid[algorithm.algorithmId]
  if (pbes1 !== undefined)
    return decryptPbes1(algorithm, pbes1, ciphertext, password, budget, encryptedPrivateKeyInfo)
  return unsupported(
    `encryption algorithm ${algorithm.algorithmId} is not supported (PBES2, PBE-SHA1-3DES, PBE-SHA1-RC2 are)`,
  )
}

/**
 * Decrypt `ciphertext` under the scheme `algorithm` names, with the password as
 * PKCS#12 requires for that scheme: the plaintext, or why it could not be decrypted.
 */
export const decryptWithPasswordNow = (
  algorithm: AlgorithmReference,
  ciphertext: Uint8Array,
  password: string,
  budget: KdfBudget,
): Uint8Array | PbeFailure => {
  const decrypted = decrypt(algorithm, ciphertext, password, budget)
  if (decrypted instanceof PbeFailure) return decrypted
  // Without an EncryptedPrivateKeyInfo there is no native attempt, so no key.
  return decrypted._tag === "Plain"
    ? decrypted.plain
    : new Uint8Array(decrypted.key.export({ type: "pkcs8", format: "der" }))
}

/** `decryptWithPasswordNow` as an Effect. */
export const decryptWithPassword = (
  algorithm: AlgorithmReference,
  ciphertext: Uint8Array,
  password: string,
  budget: KdfBudget,
): Effect.Effect<Uint8Array, PbeFailure> =>
  asEffect(() => decryptWithPasswordNow(algorithm, ciphertext, password, budget))

/**
 * Decrypt a shrouded key bag (`encryptedPrivateKeyInfo` is its DER): the
 * same parameter checks and KDF budget as `decryptWithPassword`, then
 * OpenSSL's own PKCS#8 decryption, falling back to the JavaScript path.
 */
export const decryptPrivateKeyInfoNow = (
  algorithm: AlgorithmReference,
  ciphertext: Uint8Array,
  encryptedPrivateKeyInfo: Uint8Array,
  password: string,
  budget: KdfBudget,
): Decrypted | PbeFailure => decrypt(algorithm, ciphertext, password, budget, encryptedPrivateKeyInfo)

/** `decryptPrivateKeyInfoNow` as an Effect. */
export const decryptPrivateKeyInfo = (
  algorithm: AlgorithmReference,
  ciphertext: Uint8Array,
  encryptedPrivateKeyInfo: Uint8Array,
  password: string,
  budget: KdfBudget,
): Effect.Effect<Decrypted, PbeFailure> =>
  asEffect(() => decryptPrivateKeyInfoNow(algorithm, ciphertext, encryptedPrivateKeyInfo, password, budget))

// scrypt-params ::= SEQUENCE { salt OCTET STRING, costParameter INTEGER, blockSize INTEGER,
// parallelizationParameter INTEGER, keyLength INTEGER OPTIONAL } (RFC 7914 7.1).
const scryptParamsSchema = builtOnce(
  () =>
    new asn1js.Sequence({
      value: [
        new asn1js.OctetString({ name: "salt" }),
        new asn1js.Integer({ name: "n" }),
        new asn1js.Integer({ name: "r" }),
        new asn1js.Integer({ name: "p" }),
        new asn1js.Integer({ name: "keyLength", optional: true }),
      ],
    }),
)

/** What the parameters of an encrypted PKCS#8 key (EncryptedPrivateKeyInfo) say before OpenSSL decrypts it. */
export interface KeyEncryptionCheck {
  /** Why it must not be decrypted: a KDF cost over kvdeploy's limits, or unreadable cost parameters. */
  readonly refused?: PbeFailure
  /** The encryption's name when it is one Node's OpenSSL does not decrypt (`unreadKeyEncryptions`). */
  readonly unread?: string
}

/**
 * The checks run on an encrypted key file's algorithm before it is handed to OpenSSL, which bounds
 * neither PBKDF2's iterations nor scrypt's time, and runs synchronously (a signal cannot stop it):
 * PBKDF2 and the PBES1 schemes by the PFX's rule (`spendIterationsNow`: at most `maxIterations`),
 * scrypt at most `maxScryptCost` for N*r*p. Algorithms it does not know are left to OpenSSL.
 */
export const checkKeyEncryption = (algorithm: AlgorithmReference): KeyEncryptionCheck => {
  const unread = unreadKeyEncryptions[algorithm.algorithmId]
  const named = unread === undefined ? {} : { unread }
  if (algorithm.algorithmId === oid.pbes2) {
    let params: Pbes2Parts
    try {
      params = readPbes2Params(algorithm.algorithmParams)
    } catch {
      return { refused: malformed("the PBES2 parameters are malformed") }
    }
    const scheme = unreadKeyEncryptions[params.encryptionScheme.algorithmId]
    const schemeNamed = scheme === undefined ? {} : { unread: scheme }
    const kdf = params.keyDerivationFunc
    if (kdf.algorithmId === oid.pbkdf2) {
      let iterations: number
      try {
        iterations = readPbkdf2Params(kdf.algorithmParams).iterationCount
      } catch {
        return { refused: malformed("the PBKDF2 parameters are malformed") }
      }
      const spent = spendIterationsNow(iterations, 1, newKdfBudget())
      return spent instanceof PbeFailure ? { refused: spent } : schemeNamed
    }
    if (kdf.algorithmId === oid.scrypt) {
      let parts: Record<string, unknown>
      try {
        parts = partsOf(kdf.algorithmParams, scryptParamsSchema(), "scrypt-params")
      } catch {
        return { refused: malformed("the scrypt parameters are malformed") }
      }
      const [n, r, p] = [parts.n, parts.r, parts.p].map((b) =>
        b instanceof asn1js.Integer ? b.toBigInt() : -1n,
      ) as [bigint, bigint, bigint]
      if (n < 2n || r < 1n || p < 1n)
        return { refused: malformed("the scrypt parameters are not positive integers") }
      if (n * r * p > BigInt(maxScryptCost)) {
        const memory = 128n * n * r
        return {
          refused: unsupported(
            `the scrypt cost N*r*p (N ${n}, r ${r}, p ${p}) exceeds the limit of ${maxScryptCost}`,
            // Re-encrypting with openssl reads the key first, and OpenSSL refuses that memory too.
            memory > BigInt(opensslScryptMemoryLimit)
              ? `${OPENSSL_CANNOT_READ_EITHER} (scrypt needs 128*N*r bytes, ${memory / 1_048_576n} MiB here, over OpenSSL's ${opensslScryptMemoryLimit / 1_048_576} MiB): decrypt it with the tool that encrypted it, or export the certificate and key from that tool as a PFX; then supply the key unencrypted, or re-encrypted with PBES2/AES (openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 600000 -in key-plain.pem -out key-aes.pem)`
              : undefined,
          ),
        }
      }
      return schemeNamed
    }
    return schemeNamed
  }
  if (pbes1ByOid[algorithm.algorithmId] !== undefined || unread !== undefined) {
    const params = algorithm.algorithmParams as asn1js.AsnType
    const checked =
      params instanceof asn1js.BaseBlock ? asn1js.compareSchema(params, params, pbes1ParamsSchema) : undefined
    const count: unknown = checked?.verified === true ? checked.result.iterations : undefined
    if (!(count instanceof asn1js.Integer))
      return { refused: malformed("the PBES1 parameters are malformed"), ...named }
    const spent = spendIterationsNow(integerValue(count), 1, newKdfBudget())
    return spent instanceof PbeFailure ? { refused: spent, ...named } : named
  }
  return named
}
