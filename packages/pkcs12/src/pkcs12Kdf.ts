/**
 * The PKCS#12 key derivation function (RFC 7292 Appendix B.2) and the password
 * encodings PKCS#12 asks for. This is arithmetic on hash outputs, not ASN.1;
 * the hashes are node:crypto's and @noble/hashes'.
 */
import { hash } from "node:crypto"
import { sha1 } from "@noble/hashes/legacy.js"
import { sha224, sha256, sha384, sha512 } from "@noble/hashes/sha2.js"
import type { Hash } from "@noble/hashes/utils.js"
import { type HashName, hashSizes } from "./algorithms.js"

/**
 * Chains at least this long run on @noble/hashes; shorter ones (the transport
 * PFX's single round) on node:crypto's one-shot `hash()`.
 */
export const nobleChainFrom = 64

const nobleHashes = { sha1, sha224, sha256, sha384, sha512 } as const

/**
 * The members of a @noble/hashes Merkle-Damgard instance (its HashMD
 * subclasses: SHA-1, SHA-2) that the chain below drives one block at a
 * time. `process`, `get`, `set` and `roundClean` are `protected` in noble's
 * types; they are the methods its own `update`, `digestInto` and `_cloneInto`
 * call, on the pinned version (2.4.0). `blockKit` checks them before use.
 */
interface BlockHash {
  readonly blockLen: number
  readonly outputLen: number
  update(data: Uint8Array): unknown
  digestInto(out: Uint8Array): void
  process(view: DataView, offset: number): void
  get(): ReadonlyArray<number>
  set(...state: ReadonlyArray<number>): void
  roundClean(): void
  destroy(): void
}

/** A hash's block-level chain: a fresh instance, and its initial state (the IV), as `get()` gives it. */
interface BlockKit {
  readonly create: () => BlockHash
  readonly iv: ReadonlyArray<number>
}

/** Per hash: its block kit, or null when the instance does not have the members or fails the self-test (the chain then uses noble's public API). */
const blockKits = new Map<HashName, BlockKit | null>()

const hasBlockMembers = (h: unknown): h is BlockHash => {
  if (typeof h !== "object" || h === null) return false
  const o = h as Record<string, unknown>
  return (
    typeof o.blockLen === "number" &&
    typeof o.outputLen === "number" &&
    ["update", "digestInto", "process", "get", "set", "roundClean", "destroy"].every(
      (m) => typeof o[m] === "function",
    )
  )
}

const blockKit = (hashName: HashName): BlockKit | undefined => {
  const known = blockKits.get(hashName)
  if (known !== undefined) return known ?? undefined
  let kit: BlockKit | null = null
  const create = nobleHashes[hashName].create as () => unknown
  const probe = create()
  if (
    hasBlockMembers(probe) &&
    probe.outputLen === hashSizes[hashName].u &&
    probe.outputLen % 4 === 0 &&
    // The previous digest, the 0x80 byte and the bit length fit in one block (RFC 6234 padding).
    probe.outputLen + 1 + probe.blockLen / 8 <= probe.blockLen
  ) {
    const candidate: BlockKit = { create: create as () => BlockHash, iv: [...probe.get()] }
    // Self-test against node:crypto before the first use: a few rounds from a fixed, public
    // input, on the probe (nothing to wipe).
    const input = Uint8Array.from({ length: 80 }, (_, i) => (i * 29 + 3) & 0xff)
    const block = new Uint8Array(probe.blockLen)
    const ours = chainRounds(candidate, probe, block, input, 4)
    const theirs = iteratedNodeHash(hashName, input, 4)
    if (ours.length === theirs.length && ours.every((b, i) => b === theirs[i])) kit = candidate
  }
  blockKits.set(hashName, kit)
  return kit ?? undefined
}

/**
 * Rounds 2..times of the chain as single compressions. Every round after the
 * first hashes the previous digest alone (u bytes), which with its padding is
 * exactly one block: the digest, 0x80, zeros, and the bit length u*8 in the
 * block's last bytes. That block is kept in one array and one DataView: each
 * round resets the instance's state to the IV, compresses the block with
 * noble's own `process`, and writes the new state back over the block's first
 * u bytes (big-endian, as `digestInto` writes it), which is the next round's
 * input. No per-round buffer, view or padding pass.
 */
const chainRounds = (
  kit: BlockKit,
  work: BlockHash,
  block: Uint8Array,
  input: Uint8Array,
  times: number,
): Uint8Array => {
  const u = work.outputLen
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength)
  const words = u / 4
  const iv = kit.iv
  work.update(input)
  // The first round's digest lands in the block's first u bytes.
  work.digestInto(block)
  block[u] = 0x80
  view.setUint32(work.blockLen - 4, u * 8)
  for (let round = 1; round < times; round++) {
    work.set(...iv)
    work.process(view, 0)
    const state = work.get()
    for (let w = 0; w < words; w++) view.setUint32(4 * w, state[w] ?? 0)
  }
  return block.slice(0, u)
}

/** `chainRounds` on a fresh instance and block, both wiped when the chain ends. */
const blockChain = (kit: BlockKit, input: Uint8Array, times: number): Uint8Array => {
  const work = kit.create()
  const block = new Uint8Array(work.blockLen)
  try {
    return chainRounds(kit, work, block, input, times)
  } finally {
    // The block holds the result and the instance the last state, and noble's shared message
    // schedule the last round's words: all wiped now.
    block.fill(0)
    work.roundClean()
    work.destroy()
  }
}

/**
 * H applied `times` times (times >= 1) to `input`: the KDF's inner loop, 2048
 * rounds per derivation as OpenSSL writes. Each round hashes one short block,
 * so one node:crypto call per round costs mostly the crossing into C++ and a
 * new Buffer. A long chain therefore runs on @noble/hashes, one instance per
 * chain: the first round through its public `update`/`digestInto`, every later
 * round as one compression of a block prepared in place (`blockChain`).
 * `bench/pkcs12-encode.bench.mjs` measures the paths (warm, after full
 * collections, and the first derivation of a fresh process, where noble is
 * slower while V8 compiles it). Synchronous; the instance is wiped after the
 * chain and never leaves this function.
 */
export const iteratedHash = (hashName: HashName, input: Uint8Array, times: number): Uint8Array => {
  if (times < nobleChainFrom) return iteratedNodeHash(hashName, input, times)
  const kit = blockKit(hashName)
  return kit !== undefined ? blockChain(kit, input, times) : iteratedNobleHash(hashName, input, times)
}

/** A noble hash instance whose clones are of its own kind. */
type ChainHash = Hash<ChainHash>
/** A fresh state per hash, never updated: copied into the chain's instance before every round. */
const initialStates = new Map<HashName, ChainHash>()
const initialOf = (hashName: HashName): ChainHash => {
  let initial = initialStates.get(hashName)
  if (initial === undefined) {
    initial = (nobleHashes[hashName].create as () => ChainHash)()
    // The chain's digest array is sized by noble's output, which must be the KDF's u.
    if (initial.outputLen !== hashSizes[hashName].u)
      throw new Error(
        `@noble/hashes ${hashName} outputs ${initial.outputLen} bytes; the PKCS#12 KDF expects ${hashSizes[hashName].u}`,
      )
    initialStates.set(hashName, initial)
  }
  return initial
}

/**
 * `iteratedHash` on noble's public API only: one instance reset before every
 * round by `_cloneInto` from a fresh state (the reuse its Hash interface
 * documents), digesting into one array. The chain's path when the block-level
 * members are missing or fail their self-test, and the bench's comparison.
 */
export const iteratedNobleHash = (hashName: HashName, input: Uint8Array, times: number): Uint8Array => {
  const initial = initialOf(hashName)
  const work = initial.clone()
  const digest = new Uint8Array(work.outputLen)
  try {
    work.update(input)
    work.digestInto(digest)
    for (let round = 1; round < times; round++) {
      initial._cloneInto(work)
      work.update(digest)
      work.digestInto(digest)
    }
    return digest
  } finally {
    // The instance holds the last round's input (one hash short of the result) and the
    // result itself until it is collected: wiped now.
    work.destroy()
  }
}

/** `iteratedHash` on node:crypto's one-shot `hash()`, one call a round: the short chains' path, and the bench's comparison. */
export const iteratedNodeHash = (hashName: HashName, input: Uint8Array, times: number): Uint8Array => {
  let digest: Uint8Array = hash(hashName, input, "buffer")
  for (let round = 1; round < times; round++) digest = hash(hashName, digest, "buffer")
  return digest
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
    if (block < blocks - 1) {
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
      b.fill(0)
    }
    a.fill(0)
  }
  // The intermediate password-derived blocks, and the output past `length`, are not left for the
  // collector to find (the caller owns the result and its own password bytes).
  const result = out.slice(0, length)
  out.fill(0)
  p.fill(0)
  i.fill(0)
  di.fill(0)
  return result
}
