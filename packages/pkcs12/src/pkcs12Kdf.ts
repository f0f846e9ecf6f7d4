/**
 * The PKCS#12 key derivation function (RFC 7292 Appendix B.2) and the password
 * encodings PKCS#12 asks for. This is arithmetic on hash outputs, not ASN.1;
 * the hashes are @noble/hashes' (SHA-1, SHA-256) and node:crypto's (the rest).
 */
import { hash } from "node:crypto"
import { performance } from "node:perf_hooks"
import { sha1 } from "@noble/hashes/legacy.js"
import { sha256 } from "@noble/hashes/sha2.js"
import type { Hash } from "@noble/hashes/utils.js"
import { type HashName, hashSizes } from "./algorithms.js"

/** `times` rounds of node:crypto's one-shot hash, from `digest`. */
const nodeIterated = (hashName: HashName, digest: Uint8Array, times: number): Uint8Array => {
  let out = digest
  for (let round = 0; round < times; round++) out = hash(hashName, out, "buffer")
  return out
}

/** Rounds noble runs before the timing check, and the time they may take (1 us a round). */
const probeRounds = 64
const probeBudgetMs = probeRounds / 1000

/**
 * The iterated hash for SHA-1 and SHA-256 (what OpenSSL, Java and Windows use
 * for the KDF): one @noble/hashes instance reset from a pristine one with
 * `_cloneInto` (as noble's own HMAC does) and digests written into two
 * buffers, so a round allocates nothing and never leaves JavaScript. Once V8
 * has compiled it, that is about twice as fast as a node:crypto `hash()` call
 * per round (0.7 us of JS/C++ crossing and a new Buffer each). Compiled code
 * does not last: in a fresh process, and after a full garbage collection
 * (which drops it), noble runs 10-20 times slower for a derivation or two. So
 * the first `probeRounds` rounds are timed, and when they were slower than
 * 1 us a round the rest runs on node:crypto: the result is the same (H is
 * H), and a cold derivation costs at most about one probe more than
 * node:crypto alone, while later ones warm noble up again.
 */
const nobleIterated =
  <T extends Hash<T>>(hasher: { readonly create: () => T }, hashName: HashName) =>
  (input: Uint8Array, times: number, size: number): Uint8Array => {
    const pristine = hasher.create()
    const h = hasher.create()
    let digest = new Uint8Array(size)
    let spare = new Uint8Array(size)
    const started = performance.now()
    h.update(input)
    h.digestInto(digest)
    for (let round = 1; round < times; round++) {
      if (round === probeRounds && performance.now() - started > probeBudgetMs)
        return nodeIterated(hashName, digest, times - round)
      pristine._cloneInto(h)
      h.update(digest)
      h.digestInto(spare)
      const done = spare
      spare = digest
      digest = done
    }
    return digest
  }

const nobleSha1 = nobleIterated(sha1, "sha1")
const nobleSha256 = nobleIterated(sha256, "sha256")

/** H applied `times` times (times >= 1) to `input`: the KDF's inner loop, 2048 rounds per derivation as OpenSSL writes. */
const iteratedHash = (hashName: HashName, input: Uint8Array, times: number): Uint8Array => {
  if (hashName === "sha1") return nobleSha1(input, times, hashSizes.sha1.u)
  if (hashName === "sha256") return nobleSha256(input, times, hashSizes.sha256.u)
  return nodeIterated(hashName, hash(hashName, input, "buffer"), times - 1)
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
