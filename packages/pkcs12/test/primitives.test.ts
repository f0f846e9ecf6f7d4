import {
  createCipheriv,
  createDecipheriv,
  createHash,
  generateKeyPairSync,
  pbkdf2Sync,
  randomBytes,
} from "node:crypto"
import { createRequire } from "node:module"
import { sha256 } from "@noble/hashes/sha2.js"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as fc from "fast-check"
import type * as Forge from "node-forge"
import * as pkijs from "pkijs"
import { describe, expect, it, vi } from "vitest"
import { maxIterations, maxTotalIterations } from "../src/algorithms.js"
import {
  decryptPrivateKeyInfo,
  decryptWithPassword,
  newKdfBudget,
  rc2CbcDecrypt,
  rc2CbcEncrypt,
  spendIterations,
} from "../src/passwordEncryption.js"
import {
  bmpPassword,
  iteratedHash,
  iteratedNobleHash,
  iteratedNodeHash,
  KdfPurpose,
  nobleChainFrom,
  pkcs12Kdf,
} from "../src/pkcs12Kdf.js"

// node-forge is CommonJS without named exports Node can detect.
const forge = createRequire(import.meta.url)("node-forge") as typeof Forge

const h = (s: string) => new Uint8Array(Buffer.from(s, "hex"))
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")

describe("RC2 (RFC 2268 section 5 test vectors, node-forge through rc2CbcEncrypt)", () => {
  const zeroIv = new Uint8Array(8)
  // One raw block: CBC under a zero IV encrypts the first block as ECB does.
  const encryptBlock = (key: Uint8Array, bits: number, block: Uint8Array) =>
    rc2CbcEncrypt(key, bits, zeroIv, block).subarray(0, 8)
  const vectors: ReadonlyArray<[string, number, string, string]> = [
    ["ffffffffffffffff", 64, "ffffffffffffffff", "278b27e42e2f0d49"],
    ["3000000000000000", 64, "1000000000000001", "30649edf9be7d2c2"],
    ["88", 64, "0000000000000000", "61a8a244adacccf0"],
    ["88bca90e90875a", 64, "0000000000000000", "6ccf4308974c267f"],
    ["88bca90e90875a7f0f79c384627bafb2", 64, "0000000000000000", "1a807d272bbe5db1"],
    ["88bca90e90875a7f0f79c384627bafb2", 128, "0000000000000000", "2269552ab0f85ca6"],
  ]
  for (const [key, bits, plain, cipher] of vectors) {
    it(`key ${key} / ${bits} bits`, () => {
      expect(hex(encryptBlock(h(key), bits, h(plain)))).toBe(cipher)
      // ...and back: the first block under a zero IV, whatever the padding block holds.
      const twoBlocks = rc2CbcEncrypt(h(key), bits, zeroIv, h(plain))
      expect(rc2CbcDecrypt(h(key), bits, zeroIv, twoBlocks)).toEqual(h(plain))
    })
  }
  it("refuses an effective key length that is not whole bytes (RFC vector key 0000000000000000 / 63 bits)", () => {
    // node-forge's key expansion masks such keys wrongly (it gives 2366aad00deca466, not
    // ebb773f993278eff); PKCS#12 only uses 40 and 128 bits, so these are refused, never mis-encrypted.
    expect(() => encryptBlock(h("0000000000000000"), 63, h("0000000000000000"))).toThrow(RangeError)
    expect(() => rc2CbcDecrypt(h("0000000000000000"), 63, zeroIv, new Uint8Array(8))).toThrow(RangeError)
  })
  it("CBC round-trips and rejects a wrong key by its padding", () => {
    const data = new TextEncoder().encode("a certificate bag, more than one block long")
    const iv = h("0102030405060708")
    const c = rc2CbcEncrypt(h("0011223344"), 40, iv, data)
    expect(rc2CbcDecrypt(h("0011223344"), 40, iv, c)).toEqual(data)
    // A wrong key gives bad padding except by rare chance; this key is known to.
    expect(rc2CbcDecrypt(h("0011223345"), 40, iv, c)).not.toEqual(data)
    expect(rc2CbcDecrypt(h("0011223344"), 40, iv, c.subarray(0, c.length - 1))).toBeUndefined()
    expect(rc2CbcDecrypt(h("0011223344"), 40, iv, new Uint8Array(0))).toBeUndefined()
  })
  it("refuses a last block whose padding bytes are not all the padding count (PKCS#7, the wrong-key check)", () => {
    const iv = h("0102030405060708")
    const key = h("0011223344")
    for (const tail of ["0000000000000702", "0000000000000303"]) {
      // CBC: the first two ciphertext blocks decrypt to these 16 bytes alone, ending in `tail`.
      const plain = h(`6365727469666963${tail}`)
      const twoBlocks = rc2CbcEncrypt(key, 40, iv, plain).subarray(0, 16)
      expect(rc2CbcDecrypt(key, 40, iv, twoBlocks)).toBeUndefined()
    }
    // The same bytes with valid padding are read.
    const valid = rc2CbcEncrypt(key, 40, iv, h("63657274696669630000000000"))
    expect(rc2CbcDecrypt(key, 40, iv, valid.subarray(0, 16))).toEqual(h("63657274696669630000000000"))
  })
  it("RC2-40-CBC and RC2-128-CBC agree with OpenSSL both ways", () => {
    // printf '%s' "$data" | openssl enc -rc2-40-cbc|-rc2-cbc -K <key> -iv 0102030405060708 -provider legacy -provider default
    const data = new TextEncoder().encode("a certificate bag, more than one block long")
    const iv = h("0102030405060708")
    const cases: ReadonlyArray<[string, number, string]> = [
      [
        "0011223344",
        40,
        "c5094ff5687b9ed856b884373baa10d0fc305e666909bacc21e290860b312c542fb9636ab3d5335700e8c14386161829",
      ],
      [
        "88bca90e90875a7f0f79c384627bafb2",
        128,
        "187e4e88ebac2bd683907e083da93870b1f3ff1490b5fc2a92ac1055eb5acaa6c3d5c8fb68aa4499589ebbac813dd45a",
      ],
    ]
    for (const [key, bits, cipher] of cases) {
      expect(hex(rc2CbcEncrypt(h(key), bits, iv, data))).toBe(cipher)
      expect(rc2CbcDecrypt(h(key), bits, iv, h(cipher))).toEqual(data)
    }
  })
})

describe("PKCS#12 KDF (RFC 7292 Appendix B)", () => {
  // Vectors as computed by OpenSSL's PKCS12_key_gen_uni (cross-checked by the interop tests too).
  it("password encoding is BMPString with a terminator", () => {
    expect(hex(bmpPassword(""))).toBe("0000")
    expect(hex(bmpPassword("ab"))).toBe("006100620000")
    expect(hex(bmpPassword("é😀"))).toBe("00e9d83dde000000")
  })
  it("derives the well-known 'smeg' test vector", () => {
    // From the PKCS#12 test vectors published with Bouncy Castle (PKCS12Test / PKCS12KeyGen):
    // password "smeg", salt 0A58CF64530D823F, 1 iteration, SHA-1.
    const pw = bmpPassword("smeg")
    const salt = h("0a58cf64530d823f")
    expect(hex(pkcs12Kdf("sha1", pw, salt, 1, KdfPurpose.key, 24))).toBe(
      "8aaae6297b6cb04642ab5b077851284eb7128f1a2a7fbca3",
    )
    expect(hex(pkcs12Kdf("sha1", pw, salt, 1, KdfPurpose.iv, 8))).toBe("79993dfe048d3b76")
  })
})

describe("PKCS#12 KDF equals node-forge's independent implementation (pbe.generatePkcs12Key)", () => {
  it("for random passwords, salts, purposes, lengths and iteration counts, SHA-1, SHA-256, SHA-384 and SHA-512", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("sha1" as const, "sha256" as const, "sha384" as const, "sha512" as const),
        fc.string({ maxLength: 24 }),
        fc.uint8Array({ minLength: 1, maxLength: 40 }),
        fc.constantFrom(KdfPurpose.key, KdfPurpose.iv, KdfPurpose.mac),
        fc.integer({ min: 1, max: 70 }),
        fc.integer({ min: 1, max: 2100 }),
        (name, password, salt, purpose, length, iterations) => {
          const expected = forge.pkcs12.generateKey(
            password,
            forge.util.createBuffer(Buffer.from(salt).toString("binary")),
            purpose,
            iterations,
            length,
            forge.md[name].create(),
          )
          const ours = pkcs12Kdf(name, bmpPassword(password), salt, iterations, purpose, length)
          expect(hex(ours)).toBe(Buffer.from(expected.getBytes(), "binary").toString("hex"))
        },
      ),
      { numRuns: 40 },
    )
  })
})

describe("the KDF's hash chain: @noble/hashes block by block for long chains, node:crypto for short ones, noble's public API as the fallback", () => {
  // A chain written here with node:crypto's Hash objects, the reference both paths must give.
  const reference = (name: string, input: Uint8Array, times: number): string => {
    let digest = createHash(name).update(input).digest()
    for (let round = 1; round < times; round++) digest = createHash(name).update(digest).digest()
    return digest.toString("hex")
  }
  it("gives the reference chain for every digest, on both sides of the boundary and at 2048 rounds", () => {
    const names = ["sha1", "sha224", "sha256", "sha384", "sha512"] as const
    const input = Uint8Array.from({ length: 200 }, (_, i) => (i * 37 + 11) & 0xff)
    for (const times of [1, nobleChainFrom - 1, nobleChainFrom, nobleChainFrom + 1, 2048])
      for (const name of names)
        for (const length of [0, 1, 64, 200]) {
          const x = input.subarray(0, length)
          const expected = reference(name, x, times)
          expect(hex(iteratedHash(name, x, times)), `${name} x${times}, ${length} bytes`).toBe(expected)
          expect(hex(iteratedNodeHash(name, x, times)), `node ${name} x${times}`).toBe(expected)
          expect(hex(iteratedNobleHash(name, x, times)), `noble API ${name} x${times}`).toBe(expected)
        }
    expect(nobleChainFrom).toBeLessThan(2048)
  })
  it("wipes each long chain's noble instance when the chain ends", () => {
    const destroy = vi.spyOn(Object.getPrototypeOf(sha256.create()), "destroy")
    try {
      iteratedHash("sha256", new Uint8Array(8), nobleChainFrom)
      iteratedHash("sha256", new Uint8Array(8), 2048)
      iteratedHash("sha256", new Uint8Array(8), nobleChainFrom - 1)
      expect(destroy).toHaveBeenCalledTimes(2)
    } finally {
      destroy.mockRestore()
    }
  })
  it("returns exactly the requested bytes, in an array of their own", () => {
    const key = pkcs12Kdf("sha1", bmpPassword("pw"), new Uint8Array(8), 2048, KdfPurpose.key, 24)
    expect(key.length).toBe(24)
    expect(key.buffer.byteLength).toBe(24)
  })
})

describe("KDF work budget", () => {
  it("charges iterations × derivations and refuses what exceeds the per-KDF limit or the total", () => {
    const budget = newKdfBudget()
    const spend = (n: number, derivations: number) =>
      Effect.runSync(Effect.result(spendIterations(n, derivations, budget)))
    expect(spend(2048, 3)._tag).toBe("Success")
    expect(budget.remaining).toBe(maxTotalIterations - 6144)
    const tooMany = spend(maxIterations + 1, 1)
    expect(tooMany._tag === "Failure" ? tooMany.failure.kind : "spent").toBe("unsupported")
    expect(spend(0, 1)._tag === "Failure").toBe(true)
    // Spend the rest at the per-KDF limit, then one more is refused.
    while (budget.remaining >= maxIterations) expect(spend(maxIterations, 1)._tag).toBe("Success")
    const over = spend(maxIterations, 1)
    expect(over._tag === "Failure" ? over.failure.finding : "spent").toMatch(
      /key-derivation iterations in all/,
    )
  })
})

describe("KDF work budget with OpenSSL's key decryption", () => {
  // A PBES2 EncryptedPrivateKeyInfo as OpenSSL writes it (PBKDF2, 2048 iterations, AES-256-CBC).
  const encrypted = () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" })
    const der = new Uint8Array(
      privateKey.export({ type: "pkcs8", format: "der", cipher: "aes-256-cbc", passphrase: "right" }),
    )
    const info = pkijs.PKCS8ShroudedKeyBag.fromBER(der)
    return {
      der,
      info,
      iterations: new pkijs.PBKDF2Params({
        schema: new pkijs.PBES2Params({ schema: info.encryptionAlgorithm.algorithmParams }).keyDerivationFunc
          .algorithmParams,
      }).iterationCount,
    }
  }
  /**
   * Whether `password` gives the ciphertext valid CBC padding (Node's own PBKDF2 and AES, not the
   * code under test): about 1 wrong password in 256 does, and then decrypts to garbage.
   */
  const paddingValid = (made: ReturnType<typeof encrypted>, password: string): boolean => {
    const pbes2 = new pkijs.PBES2Params({ schema: made.info.encryptionAlgorithm.algorithmParams })
    const kdf = new pkijs.PBKDF2Params({ schema: pbes2.keyDerivationFunc.algorithmParams })
    const prf = kdf.prf?.algorithmId === "1.2.840.113549.2.9" ? "sha256" : "sha1"
    const salt = (kdf.salt as asn1js.OctetString).valueBlock.valueHexView
    const key = pbkdf2Sync(password, salt, made.iterations, 32, prf)
    const iv = (pbes2.encryptionScheme.algorithmParams as asn1js.OctetString).valueBlock.valueHexView
    const decipher = createDecipheriv("aes-256-cbc", key, iv)
    try {
      decipher.update(made.info.encryptedData.valueBlock.valueHexView)
      decipher.final()
      return true
    } catch {
      return false
    }
  }
  const run = (password: string) => {
    // For a wrong password, material it gives bad padding: the rare valid padding is another case.
    let made = encrypted()
    // The check itself reads the padding right: the right password always gives valid padding.
    expect(paddingValid(made, "right")).toBe(true)
    while (password !== "right" && paddingValid(made, password)) made = encrypted()
    const { der, info, iterations } = made
    const budget = newKdfBudget()
    const result = Effect.runSync(
      Effect.result(
        decryptPrivateKeyInfo(
          info.encryptionAlgorithm,
          info.encryptedData.valueBlock.valueHexView,
          der,
          password,
          budget,
        ),
      ),
    )
    return { result, spent: maxTotalIterations - budget.remaining, iterations }
  }

  it("charges one derivation when OpenSSL opens the key", () => {
    const { result, spent, iterations } = run("right")
    expect(result._tag).toBe("Success")
    expect(spent).toBe(iterations)
  })

  it("charges OpenSSL's failed attempt and the JavaScript one after it: a wrong password costs twice", () => {
    const { result, spent, iterations } = run("wrong")
    expect(result._tag === "Failure" ? result.failure.kind : "opened").toBe("wrong-password")
    expect(spent).toBe(2 * iterations)
  })
})

describe("publicRandom (salts and IVs)", () => {
  it("hands out every pooled byte once: draws of mixed sizes over several refills never repeat", async () => {
    const { publicRandom } = await import("../src/nodeCrypto.js")
    const sizes = [8, 16, 20, 32, 64, 13, 4000]
    const seen = new Set<string>()
    // Per backing buffer, the byte ranges handed out: they must never overlap.
    const ranges = new Map<ArrayBufferLike, Array<[number, number]>>()
    let total = 0
    // Over 12 pools' worth of bytes, so draws cross refills at many offsets.
    for (let i = 0; total < 12 * 4096; i++) {
      const size = sizes[i % sizes.length] ?? 8
      const bytes = publicRandom(size)
      expect(bytes.length).toBe(size)
      const taken = ranges.get(bytes.buffer) ?? []
      for (const [start, end] of taken)
        expect(bytes.byteOffset >= end || bytes.byteOffset + size <= start).toBe(true)
      taken.push([bytes.byteOffset, bytes.byteOffset + size])
      ranges.set(bytes.buffer, taken)
      const text = Buffer.from(bytes).toString("hex")
      // Two 8-byte (or longer) draws of fresh random bytes are equal with probability 2^-64.
      expect(seen.has(text)).toBe(false)
      seen.add(text)
      total += size
    }
    // Refills bring new buffers (a reused pool would hand its bytes out again).
    expect(ranges.size).toBeGreaterThanOrEqual(12)
    // A draw larger than the pool comes straight from randomBytes.
    expect(publicRandom(5000).length).toBe(5000)
    // Earlier draws keep their bytes after later ones and refills.
    const kept = publicRandom(32)
    const copy = Uint8Array.from(kept)
    for (let i = 0; i < 300; i++) publicRandom(32)
    expect(Buffer.from(kept).equals(Buffer.from(copy))).toBe(true)
  })
})

describe("PBES2 parameters as other writers leave them", () => {
  it("a PBKDF2 without a PRF is HMAC-SHA-1 (RFC 8018's default; OpenSSL leaves hmacWithSHA1 out)", () => {
    const salt = randomBytes(16)
    const iv = randomBytes(16)
    const plain = randomBytes(100)
    const key = pbkdf2Sync(Buffer.from("pässword", "utf8"), salt, 2048, 32, "sha1")
    const cipher = createCipheriv("aes-256-cbc", key, iv)
    const ciphertext = new Uint8Array(Buffer.concat([cipher.update(plain), cipher.final()]))
    const algorithmDer = new pkijs.AlgorithmIdentifier({
      algorithmId: "1.2.840.113549.1.5.13",
      algorithmParams: new pkijs.PBES2Params({
        keyDerivationFunc: new pkijs.AlgorithmIdentifier({
          algorithmId: "1.2.840.113549.1.5.12",
          algorithmParams: new pkijs.PBKDF2Params({
            salt: new asn1js.OctetString({ valueHex: salt }),
            iterationCount: 2048,
          }).toSchema(),
        }),
        encryptionScheme: new pkijs.AlgorithmIdentifier({
          algorithmId: "2.16.840.1.101.3.4.1.42",
          algorithmParams: new asn1js.OctetString({ valueHex: iv }),
        }),
      }).toSchema(),
    })
      .toSchema()
      .toBER(false)
    // Read back as a file holds it: PBKDF2-params with salt and count only.
    const algorithm = pkijs.AlgorithmIdentifier.fromBER(algorithmDer)
    const pbes2 = new pkijs.PBES2Params({ schema: algorithm.algorithmParams })
    expect(new pkijs.PBKDF2Params({ schema: pbes2.keyDerivationFunc.algorithmParams }).prf).toBeUndefined()
    const opened = Effect.runSync(
      Effect.result(decryptWithPassword(algorithm, ciphertext, "pässword", newKdfBudget())),
    )
    expect(
      opened._tag === "Success" ? Buffer.from(opened.success).toString("hex") : opened.failure.kind,
    ).toBe(plain.toString("hex"))
  })
})
