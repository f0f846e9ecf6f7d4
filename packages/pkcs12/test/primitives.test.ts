import { hash } from "node:crypto"
import * as Effect from "effect/Effect"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { maxIterations, maxTotalIterations } from "../src/algorithms.js"
import { iteratedHash } from "../src/iteratedHash.js"
import { newKdfBudget, spendIterations } from "../src/passwordEncryption.js"
import { bmpPassword, KdfPurpose, pkcs12Kdf } from "../src/pkcs12Kdf.js"
import { rc2CbcDecrypt, rc2CbcEncrypt, rc2EncryptBlock } from "../src/rc2.js"

const h = (s: string) => new Uint8Array(Buffer.from(s, "hex"))
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")

describe("RC2 (RFC 2268 section 5 test vectors)", () => {
  const vectors: ReadonlyArray<[string, number, string, string]> = [
    ["0000000000000000", 63, "0000000000000000", "ebb773f993278eff"],
    ["ffffffffffffffff", 64, "ffffffffffffffff", "278b27e42e2f0d49"],
    ["3000000000000000", 64, "1000000000000001", "30649edf9be7d2c2"],
    ["88", 64, "0000000000000000", "61a8a244adacccf0"],
    ["88bca90e90875a", 64, "0000000000000000", "6ccf4308974c267f"],
    ["88bca90e90875a7f0f79c384627bafb2", 64, "0000000000000000", "1a807d272bbe5db1"],
    ["88bca90e90875a7f0f79c384627bafb2", 128, "0000000000000000", "2269552ab0f85ca6"],
  ]
  for (const [key, bits, plain, cipher] of vectors) {
    it(`key ${key} / ${bits} bits`, () => {
      expect(hex(rc2EncryptBlock(h(key), bits, h(plain)))).toBe(cipher)
    })
  }
  it("CBC round-trips and rejects a wrong key by its padding", () => {
    const data = new TextEncoder().encode("a certificate bag, more than one block long")
    const iv = h("0102030405060708")
    const c = rc2CbcEncrypt(h("0011223344"), 40, iv, data)
    expect(rc2CbcDecrypt(h("0011223344"), 40, iv, c)).toEqual(data)
    // A wrong key gives bad padding except by rare chance; this key is known to.
    expect(rc2CbcDecrypt(h("0011223345"), 40, iv, c)).not.toEqual(data)
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

describe("iterated SHA-1 / SHA-256 (the KDF's inner loop) equal node:crypto", () => {
  it("for random inputs and round counts", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("sha1" as const, "sha256" as const, "sha384" as const),
        fc.uint8Array({ maxLength: 200 }),
        fc.integer({ min: 1, max: 300 }),
        (name, input, times) => {
          let expected: Uint8Array = hash(name, input, "buffer")
          for (let i = 1; i < times; i++) expected = hash(name, expected, "buffer")
          expect(hex(iteratedHash(name, input, times))).toBe(hex(expected))
        },
      ),
      { numRuns: 60 },
    )
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
    expect(over._tag === "Failure" ? over.failure.detail : "spent").toMatch(
      /key-derivation iterations in all/,
    )
  })
})
