/**
 * RC2 in CBC mode (RFC 2268), for the RC2-40 certificate encryption that
 * `openssl pkcs12 -export -legacy` and older Windows write by default. Node's
 * OpenSSL 3 build leaves RC2 in the legacy provider, which Node does not load,
 * so the block cipher is implemented here. It is only used to read and (on
 * request) write that legacy profile; it protects nothing on its own.
 */

// biome-ignore format: the table reads best as 16 columns
const PITABLE = Uint8Array.from([
  0xd9, 0x78, 0xf9, 0xc4, 0x19, 0xdd, 0xb5, 0xed, 0x28, 0xe9, 0xfd, 0x79, 0x4a, 0xa0, 0xd8, 0x9d,
  0xc6, 0x7e, 0x37, 0x83, 0x2b, 0x76, 0x53, 0x8e, 0x62, 0x4c, 0x64, 0x88, 0x44, 0x8b, 0xfb, 0xa2,
  0x17, 0x9a, 0x59, 0xf5, 0x87, 0xb3, 0x4f, 0x13, 0x61, 0x45, 0x6d, 0x8d, 0x09, 0x81, 0x7d, 0x32,
  0xbd, 0x8f, 0x40, 0xeb, 0x86, 0xb7, 0x7b, 0x0b, 0xf0, 0x95, 0x21, 0x22, 0x5c, 0x6b, 0x4e, 0x82,
  0x54, 0xd6, 0x65, 0x93, 0xce, 0x60, 0xb2, 0x1c, 0x73, 0x56, 0xc0, 0x14, 0xa7, 0x8c, 0xf1, 0xdc,
  0x12, 0x75, 0xca, 0x1f, 0x3b, 0xbe, 0xe4, 0xd1, 0x42, 0x3d, 0xd4, 0x30, 0xa3, 0x3c, 0xb6, 0x26,
  0x6f, 0xbf, 0x0e, 0xda, 0x46, 0x69, 0x07, 0x57, 0x27, 0xf2, 0x1d, 0x9b, 0xbc, 0x94, 0x43, 0x03,
  0xf8, 0x11, 0xc7, 0xf6, 0x90, 0xef, 0x3e, 0xe7, 0x06, 0xc3, 0xd5, 0x2f, 0xc8, 0x66, 0x1e, 0xd7,
  0x08, 0xe8, 0xea, 0xde, 0x80, 0x52, 0xee, 0xf7, 0x84, 0xaa, 0x72, 0xac, 0x35, 0x4d, 0x6a, 0x2a,
  0x96, 0x1a, 0xd2, 0x71, 0x5a, 0x15, 0x49, 0x74, 0x4b, 0x9f, 0xd0, 0x5e, 0x04, 0x18, 0xa4, 0xec,
  0xc2, 0xe0, 0x41, 0x6e, 0x0f, 0x51, 0xcb, 0xcc, 0x24, 0x91, 0xaf, 0x50, 0xa1, 0xf4, 0x70, 0x39,
  0x99, 0x7c, 0x3a, 0x85, 0x23, 0xb8, 0xb4, 0x7a, 0xfc, 0x02, 0x36, 0x5b, 0x25, 0x55, 0x97, 0x31,
  0x2d, 0x5d, 0xfa, 0x98, 0xe3, 0x8a, 0x92, 0xae, 0x05, 0xdf, 0x29, 0x10, 0x67, 0x6c, 0xba, 0xc9,
  0xd3, 0x00, 0xe6, 0xcf, 0xe1, 0x9e, 0xa8, 0x2c, 0x63, 0x16, 0x01, 0x3f, 0x58, 0xe2, 0x89, 0xa9,
  0x0d, 0x38, 0x34, 0x1b, 0xab, 0x33, 0xff, 0xb0, 0xbb, 0x48, 0x0c, 0x5f, 0xb9, 0xb1, 0xcd, 0x2e,
  0xc5, 0xf3, 0xdb, 0x47, 0xe5, 0xa5, 0x9c, 0x77, 0x0a, 0xa6, 0x20, 0x68, 0xfe, 0x7f, 0xc1, 0xad,
])

const SHIFTS = [1, 2, 3, 5] as const

/** RFC 2268 section 2: 64 16-bit subkeys from a key and an effective key length in bits. */
export const rc2ExpandKey = (key: Uint8Array, effectiveBits: number): Uint16Array => {
  const t = key.length
  const l = new Uint8Array(128)
  l.set(key.subarray(0, 128))
  const pi = (n: number): number => PITABLE[n & 0xff] ?? 0
  for (let i = t; i < 128; i++) l[i] = pi((l[i - 1] ?? 0) + (l[i - t] ?? 0))
  const t8 = Math.ceil(effectiveBits / 8)
  const tm = 0xff >> (8 * t8 - effectiveBits)
  l[128 - t8] = pi((l[128 - t8] ?? 0) & tm)
  for (let i = 127 - t8; i >= 0; i--) l[i] = pi((l[i + 1] ?? 0) ^ (l[i + t8] ?? 0))
  const k = new Uint16Array(64)
  for (let i = 0; i < 64; i++) k[i] = (l[2 * i] ?? 0) | ((l[2 * i + 1] ?? 0) << 8)
  return k
}

const rol = (w: number, b: number): number => ((w << b) | (w >> (16 - b))) & 0xffff
const ror = (w: number, b: number): number => ((w >> b) | (w << (16 - b))) & 0xffff

const encryptBlock = (k: Uint16Array, r: Uint16Array): void => {
  let j = 0
  const mix = () => {
    for (let i = 0; i < 4; i++) {
      const r1 = r[(i + 3) & 3] ?? 0
      const r2 = r[(i + 2) & 3] ?? 0
      const r3 = r[(i + 1) & 3] ?? 0
      const sum = ((r[i] ?? 0) + (k[j++] ?? 0) + (r1 & r2) + (~r1 & r3)) & 0xffff
      r[i] = rol(sum, SHIFTS[i] ?? 1)
    }
  }
  const mash = () => {
    for (let i = 0; i < 4; i++) r[i] = ((r[i] ?? 0) + (k[(r[(i + 3) & 3] ?? 0) & 63] ?? 0)) & 0xffff
  }
  for (let n = 0; n < 5; n++) mix()
  mash()
  for (let n = 0; n < 6; n++) mix()
  mash()
  for (let n = 0; n < 5; n++) mix()
}

const decryptBlock = (k: Uint16Array, r: Uint16Array): void => {
  let j = 63
  const rmix = () => {
    for (let i = 3; i >= 0; i--) {
      const w = ror(r[i] ?? 0, SHIFTS[i] ?? 1)
      const r1 = r[(i + 3) & 3] ?? 0
      const r2 = r[(i + 2) & 3] ?? 0
      const r3 = r[(i + 1) & 3] ?? 0
      r[i] = (w - (k[j--] ?? 0) - (r1 & r2) - (~r1 & r3)) & 0xffff
    }
  }
  const rmash = () => {
    for (let i = 3; i >= 0; i--) r[i] = ((r[i] ?? 0) - (k[(r[(i + 3) & 3] ?? 0) & 63] ?? 0)) & 0xffff
  }
  for (let n = 0; n < 5; n++) rmix()
  rmash()
  for (let n = 0; n < 6; n++) rmix()
  rmash()
  for (let n = 0; n < 5; n++) rmix()
}

const load = (src: Uint8Array, offset: number, r: Uint16Array): void => {
  for (let i = 0; i < 4; i++) r[i] = (src[offset + 2 * i] ?? 0) | ((src[offset + 2 * i + 1] ?? 0) << 8)
}
const store = (r: Uint16Array, dst: Uint8Array, offset: number): void => {
  for (let i = 0; i < 4; i++) {
    dst[offset + 2 * i] = (r[i] ?? 0) & 0xff
    dst[offset + 2 * i + 1] = (r[i] ?? 0) >> 8
  }
}

/** One raw 8-byte block, for the RFC 2268 test vectors. */
export const rc2EncryptBlock = (key: Uint8Array, effectiveBits: number, block: Uint8Array): Uint8Array => {
  const r = new Uint16Array(4)
  load(block, 0, r)
  encryptBlock(rc2ExpandKey(key, effectiveBits), r)
  const out = new Uint8Array(8)
  store(r, out, 0)
  return out
}

/** RC2-CBC with PKCS#7 padding. */
export const rc2CbcEncrypt = (
  key: Uint8Array,
  effectiveBits: number,
  iv: Uint8Array,
  data: Uint8Array,
): Uint8Array => {
  const k = rc2ExpandKey(key, effectiveBits)
  const pad = 8 - (data.length % 8)
  const out = new Uint8Array(data.length + pad)
  out.set(data)
  out.fill(pad, data.length)
  const r = new Uint16Array(4)
  const prev = Uint8Array.from(iv.subarray(0, 8))
  for (let off = 0; off < out.length; off += 8) {
    for (let i = 0; i < 8; i++) out[off + i] = (out[off + i] ?? 0) ^ (prev[i] ?? 0)
    load(out, off, r)
    encryptBlock(k, r)
    store(r, out, off)
    prev.set(out.subarray(off, off + 8))
  }
  return out
}

/** RC2-CBC decryption; `undefined` when the length or the padding is wrong (a wrong key, almost always). */
export const rc2CbcDecrypt = (
  key: Uint8Array,
  effectiveBits: number,
  iv: Uint8Array,
  data: Uint8Array,
): Uint8Array | undefined => {
  if (data.length === 0 || data.length % 8 !== 0) return undefined
  const k = rc2ExpandKey(key, effectiveBits)
  const out = new Uint8Array(data.length)
  const r = new Uint16Array(4)
  for (let off = 0; off < data.length; off += 8) {
    load(data, off, r)
    decryptBlock(k, r)
    store(r, out, off)
    for (let i = 0; i < 8; i++)
      out[off + i] = (out[off + i] ?? 0) ^ (off === 0 ? (iv[i] ?? 0) : (data[off - 8 + i] ?? 0))
  }
  const pad = out[out.length - 1] ?? 0
  if (pad < 1 || pad > 8) return undefined
  for (let i = out.length - pad; i < out.length; i++) if (out[i] !== pad) return undefined
  return out.subarray(0, out.length - pad)
}
