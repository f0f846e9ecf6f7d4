/**
 * H^n(x) for the PKCS#12 KDF: hashing a 20- or 32-byte digest again and again.
 * One node:crypto call costs microseconds of overhead, which at 2048 rounds
 * dominates PFX encoding; these single-block SHA-1 and SHA-256 compressions
 * run the same rounds in plain JavaScript, several times faster. The first
 * round, over arbitrary input, still goes through node:crypto. Checked
 * against node:crypto in test/primitives.test.ts.
 */
import { hash } from "node:crypto"
import type { HashName } from "./algorithms.js"

// biome-ignore format: constant table
const K256 = Uint32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
])
const IV256 = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
const IV1 = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0]

const readWords = (bytes: Uint8Array, count: number): Uint32Array => {
  const w = new Uint32Array(count)
  for (let i = 0; i < count; i++)
    w[i] =
      (((bytes[4 * i] ?? 0) << 24) |
        ((bytes[4 * i + 1] ?? 0) << 16) |
        ((bytes[4 * i + 2] ?? 0) << 8) |
        (bytes[4 * i + 3] ?? 0)) >>>
      0
  return w
}
const writeWords = (words: Uint32Array): Uint8Array => {
  const out = new Uint8Array(words.length * 4)
  for (let i = 0; i < words.length; i++) {
    const v = words[i] ?? 0
    out[4 * i] = v >>> 24
    out[4 * i + 1] = (v >>> 16) & 0xff
    out[4 * i + 2] = (v >>> 8) & 0xff
    out[4 * i + 3] = v & 0xff
  }
  return out
}

/** SHA-256 applied `rounds` more times to a 32-byte digest. */
const iterateSha256 = (digest: Uint8Array, rounds: number): Uint8Array => {
  const d = readWords(digest, 8)
  const w = new Uint32Array(64)
  const k = K256
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < 8; i++) w[i] = d[i] as number
    w[8] = 0x80000000
    for (let i = 9; i < 15; i++) w[i] = 0
    w[15] = 256
    for (let i = 16; i < 64; i++) {
      const x = w[i - 15] as number
      const y = w[i - 2] as number
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10)
      w[i] = ((w[i - 16] as number) + s0 + (w[i - 7] as number) + s1) | 0
    }
    let a = IV256[0] as number
    let b = IV256[1] as number
    let c = IV256[2] as number
    let e4 = IV256[3] as number
    let e = IV256[4] as number
    let f = IV256[5] as number
    let g = IV256[6] as number
    let h = IV256[7] as number
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))
      const ch = (e & f) ^ (~e & g)
      const t1 = (h + S1 + ch + (k[i] as number) + (w[i] as number)) | 0
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))
      const maj = (a & b) ^ (a & c) ^ (b & c)
      const t2 = (S0 + maj) | 0
      h = g
      g = f
      f = e
      e = (e4 + t1) | 0
      e4 = c
      c = b
      b = a
      a = (t1 + t2) | 0
    }
    d[0] = (IV256[0] as number) + a
    d[1] = (IV256[1] as number) + b
    d[2] = (IV256[2] as number) + c
    d[3] = (IV256[3] as number) + e4
    d[4] = (IV256[4] as number) + e
    d[5] = (IV256[5] as number) + f
    d[6] = (IV256[6] as number) + g
    d[7] = (IV256[7] as number) + h
  }
  return writeWords(d)
}

/** SHA-1 applied `rounds` more times to a 20-byte digest. */
const iterateSha1 = (digest: Uint8Array, rounds: number): Uint8Array => {
  const d = readWords(digest, 5)
  const w = new Uint32Array(80)
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < 5; i++) w[i] = d[i] as number
    w[5] = 0x80000000
    for (let i = 6; i < 15; i++) w[i] = 0
    w[15] = 160
    for (let i = 16; i < 80; i++) {
      const x = (w[i - 3] as number) ^ (w[i - 8] as number) ^ (w[i - 14] as number) ^ (w[i - 16] as number)
      w[i] = (x << 1) | (x >>> 31)
    }
    let a = IV1[0] as number
    let b = IV1[1] as number
    let c = IV1[2] as number
    let dd = IV1[3] as number
    let e = IV1[4] as number
    for (let i = 0; i < 80; i++) {
      let f: number
      let k: number
      if (i < 20) {
        f = (b & c) | (~b & dd)
        k = 0x5a827999
      } else if (i < 40) {
        f = b ^ c ^ dd
        k = 0x6ed9eba1
      } else if (i < 60) {
        f = (b & c) | (b & dd) | (c & dd)
        k = 0x8f1bbcdc
      } else {
        f = b ^ c ^ dd
        k = 0xca62c1d6
      }
      const t = (((a << 5) | (a >>> 27)) + f + e + k + (w[i] as number)) | 0
      e = dd
      dd = c
      c = (b << 30) | (b >>> 2)
      b = a
      a = t
    }
    d[0] = (IV1[0] as number) + a
    d[1] = (IV1[1] as number) + b
    d[2] = (IV1[2] as number) + c
    d[3] = (IV1[3] as number) + dd
    d[4] = (IV1[4] as number) + e
  }
  return writeWords(d)
}

/** H applied `times` times (times >= 1) to `input`. */
export const iteratedHash = (hashName: HashName, input: Uint8Array, times: number): Uint8Array => {
  const first: Uint8Array = hash(hashName, input, "buffer")
  if (times <= 1) return first
  if (hashName === "sha256") return iterateSha256(first, times - 1)
  if (hashName === "sha1") return iterateSha1(first, times - 1)
  let a = first
  for (let round = 1; round < times; round++) a = hash(hashName, a, "buffer")
  return a
}
