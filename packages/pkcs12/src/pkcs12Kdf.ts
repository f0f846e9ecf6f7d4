/**
 * The PKCS#12 key derivation function (RFC 7292 Appendix B.2) and the password
 * encodings PKCS#12 asks for. This is arithmetic on hash outputs, not ASN.1;
 * the hashes are node:crypto's and @noble/hashes'.
 */
import { hash } from "node:crypto"
import type { Hash } from "@noble/hashes/utils.js"
import { sha1 } from "@noble/hashes/legacy.js"
import { sha224, sha256, sha384, sha512 } from "@noble/hashes/sha2.js"
import { type HashName, hashSizes } from "./algorithms.js"

/**
 * Chains at least this long run on @noble/hashes; shorter ones (the transport
 * PFX's single round) on node:crypto's one-shot `hash()`.
 */
export const nobleChainFrom = 64

interface Chainer {
  /** A fresh hash state, never updated: copied into `work` before every round. */
  readonly initial: Hash<unknown>
  readonly work: Hash<unknown>
}
const chainers = new Map<HashName, Chainer>()
const nobleHashes = { sha1, sha224, sha256, sha384, sha512 } as const
const chainerOf = (hashName: HashName): Chainer => {
  let c = chainers.get(hashName)
  if (c === undefined) {
    const create = nobleHashes[hashName].create as () => Hash<unknown>
    c = { initial: create(), work: create() }
    chainers.set(hashName, c)
  }
  return c
}

/**
 * H applied `times` times (times >= 1) to `input`: the KDF's inner loop, 2048
 * rounds per derivation as OpenSSL writes. Each round hashes one short block,
 * so a call into node:crypto (about 1.5 us on this machine, most of it the
 * crossing into C++ and a new Buffer) costs five times the hash itself. A long
 * chain therefore runs on @noble/hashes with one instance reset by
 * `_cloneInto` from a fresh state (the reuse its Hash interface documents)
 * and digesting into one array: a 2048-round SHA-256 chain takes about 0.9 ms
 * there against 3.2 ms on node:crypto once V8 has compiled it; the first chain
 * of a process is slower on noble (V8 compiles it during that chain), which
 * bench/pkcs12-encode.bench.mjs measures in fresh processes.
 * Synchronous and single-threaded: the shared instances are reset before each
 * round, wiped after the chain, and never leave this function.
 */
const iteratedHash = (hashName: HashName, input: Uint8Array, times: number): Uint8Array => {
  if (times < nobleChainFrom) {
    let digest: Uint8Array = hash(hashName, input, "buffer")
    for (let round = 1; round < times; round++) digest = hash(hashName, digest, "buffer")
    return digest
  }
  const { initial, work } = chainerOf(hashName)
  const digest = new Uint8Array(hashSizes[hashName].u)
  try {
    initial._cloneInto(work)
    work.update(input)
    work.digestInto(digest)
    for (let round = 1; round < times; round++) {
      initial._cloneInto(work)
      work.update(digest)
      work.digestInto(digest)
    }
    return digest
  } finally {
    // The shared instance would keep the last round's input (one hash short of the derived key)
    // and its state (the key itself) until the next derivation: wiped now; the next chain's
    // `_cloneInto` from the fresh state makes it usable again.
    work.destroy()
  }
}

/** Purpose byte of RFC 7292 B.3. */
export const KdfPurpose = { key: 1, iv: 2, mac: 3 } as const

/**
 * The password as a BMPString with a two-byte terminator (RFC 7292 B.1): what
 * the MAC key and the PBES1 key are derived from. Non-BMP characters become
 * UTF-16 surrogate pairs, as OpenSSL does. The empty password is `00 00`.
 */
export const bmpPassword = (password: string): Uint8Array => {
  const out = new Uint8Array(password.length * 2 + 2)
  for (let i = 0; i < password.length; i++) {
    const unit = password.charCodeAt(i)
    out[i * 2] = unit >> 8
    out[i * 2 + 1] = unit & 0xff
  }
  return out
}

/** The password as UTF-8 bytes: what PBKDF2 in PBES2 is given (OpenSSL, Java and Windows agree). */
export const utf8Password = (password: string): Uint8Array => new TextEncoder().encode(password)

const repeatToBlocks = (input: Uint8Array, v: number): Uint8Array => {
  if (input.length === 0) return new Uint8Array(0)
  const out = new Uint8Array(v * Math.ceil(input.length / v))
  for (let i = 0; i < out.length; i++) out[i] = input[i % input.length] ?? 0
  return out
}

/**
 * Derive `length` bytes for `purpose` from an encoded password and a salt.
 * `iterations` must already be bounded by the caller.
 */
export const pkcs12Kdf = (
  hashName: HashName,
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
  purpose: number,
  length: number,
): Uint8Array => {
  const { u, v } = hashSizes[hashName]
  const d = new Uint8Array(v).fill(purpose)
  const s = repeatToBlocks(salt, v)
  const p = repeatToBlocks(password, v)
  const i = new Uint8Array(s.length + p.length)
  i.set(s, 0)
  i.set(p, s.length)
  const blocks = Math.ceil(length / u)
  const out = new Uint8Array(blocks * u)
  const di = new Uint8Array(v + i.length)
  for (let block = 0; block < blocks; block++) {
    di.set(d, 0)
    di.set(i, v)
    const a = iteratedHash(hashName, di, iterations)
    out.set(a, block * u)
    if (block === blocks - 1) break
    // B = A repeated to v bytes; every v-byte block Ij of I becomes (Ij + B + 1) mod 2^(8v).
    const b = new Uint8Array(v)
    for (let k = 0; k < v; k++) b[k] = a[k % u] ?? 0
    for (let j = 0; j < i.length; j += v) {
      let carry = 1
      for (let k = v - 1; k >= 0; k--) {
        const sum = (i[j + k] ?? 0) + (b[k] ?? 0) + carry
        i[j + k] = sum & 0xff
        carry = sum >> 8
      }
    }
  }
  return out.subarray(0, length)
}
