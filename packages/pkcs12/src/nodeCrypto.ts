/**
 * node:crypto calls made the way they cost least.
 *
 * Node 24 tells a KeyObject or CryptoKey from raw bytes by reading a private
 * field and catching the TypeError that reading it from anything else throws
 * (`isKeyObject`, `isCryptoKey` in lib/internal/crypto/keys.js). Every
 * `createHmac`, `createCipheriv` or `createDecipheriv` given a Uint8Array key
 * throws and catches two of those, and `createPrivateKey({ key, format, type })`
 * four (the options object and its `key`, each tested as both): with V8
 * capturing a stack trace for each, that measured ~20 us per HMAC or cipher
 * (against ~3 us with a KeyObject) and ~25 us of a ~80 us PKCS#8 load.
 */
import {
  createPrivateKey,
  createSecretKey,
  type KeyObject,
  type PrivateKeyInput,
  randomBytes,
} from "node:crypto"

/** Raw key bytes as a secret KeyObject (about 2 us), for createHmac and the cipher constructors. */
export const secretKey = (bytes: Uint8Array): KeyObject => createSecretKey(bytes)

/**
 * `createPrivateKey` with V8's stack traces off for the call: the TypeErrors
 * node:crypto throws and catches inside it then cost no stack capture. Its own
 * errors still propagate (without a stack; callers map them to their own
 * messages and never show one). The previous limit is restored before returning.
 */
export const loadPrivateKey = (input: PrivateKeyInput): KeyObject => {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return createPrivateKey(input)
  } finally {
    Error.stackTraceLimit = limit
  }
}

/**
 * Random bytes for the public values of a PFX (salts and IVs, written into
 * the file in the clear), drawn from a pool refilled 4 KiB at a time, as
 * node:crypto's randomUUID draws from one: a `randomBytes` call costs
 * ~25 us beyond its bytes (a crypto job object each), and an encode needs
 * five small draws. Each byte is handed out once; a refill replaces the pool
 * (earlier draws keep their bytes). Never for key material.
 */
const poolSize = 4096
let pool: Uint8Array = new Uint8Array(0)
let drawn = 0

export const publicRandom = (length: number): Uint8Array => {
  if (length > poolSize) return randomBytes(length)
  if (drawn + length > pool.length) {
    pool = randomBytes(poolSize)
    drawn = 0
  }
  const out = pool.subarray(drawn, drawn + length)
  drawn += length
  return out
}
