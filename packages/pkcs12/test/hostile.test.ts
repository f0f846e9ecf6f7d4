/**
 * Property tests: encode/decode round trips, and hostile input (truncated,
 * random, mutated, wrong password, altered MAC, a 10 MB blob, deeply nested
 * ASN.1, absurd iteration counts) always ends in a tagged error, never a
 * defect, a hang or wrong material.
 */
import type { CertificateMaterial } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as fc from "fast-check"
import * as pkijs from "pkijs"
import { beforeAll, describe, expect, it } from "vitest"
import { certificateFacts, decodePfx, encodePfx, inspectMaterial, parsePem } from "../src/index.js"
import { canonicalPkcs8, generateKey, hex, makeAuthorities, makeMaterial } from "./fixtures.js"

const PASSWORD = "hostile-Pw"
let material: CertificateMaterial
const valid: Record<"modern" | "legacy", Uint8Array> = { modern: new Uint8Array(), legacy: new Uint8Array() }

beforeAll(async () => {
  const authorities = await makeAuthorities()
  material = await makeMaterial(await generateKey("P-256"), 4, authorities)
  for (const encoding of ["modern", "legacy"] as const)
    valid[encoding] = await Effect.runPromise(
      encodePfx(material, { encoding, password: Redacted.make(PASSWORD) }),
    )
})

/** Decode and return Success or the tagged failure; a defect rejects (and fails the property). */
const decodeResult = (bytes: Uint8Array, password = PASSWORD) =>
  Effect.runPromise(Effect.result(decodePfx(bytes, Redacted.make(password))))

const reasons = ["wrong-password", "malformed", "unsupported", "no-key", "no-certificate", "too-large"]

const expectTaggedFailureOrSameMaterial = async (bytes: Uint8Array) => {
  const r = await decodeResult(bytes)
  if (r._tag === "Success") {
    // A mutation that leaves the meaning intact (a NULL turned into an empty OCTET STRING, say) may still decode:
    // then it must be exactly the original material.
    expect(hex(r.success.leaf)).toBe(hex(material.leaf))
    expect(r.success.chain.map(hex)).toEqual(material.chain.map(hex))
    expect(hex(Redacted.value(r.success.key))).toBe(hex(canonicalPkcs8(Redacted.value(material.key))))
  } else {
    expect(r.failure._tag).toBe("PfxDecodeError")
    expect(reasons).toContain(r.failure.reason)
    expect(r.failure.detail.length).toBeGreaterThan(10)
  }
}

const encodings = fc.constantFrom("modern" as const, "legacy" as const)

describe("round trips (property)", () => {
  it("decode(encode(m, password)) gives back m for any password, profile, friendly name and chain order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: "grapheme", maxLength: 12 }),
        encodings,
        fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
        fc.shuffledSubarray([0, 1, 2], { minLength: 3, maxLength: 3 }),
        async (password, encoding, friendlyName, order) => {
          const shuffled = { ...material, chain: order.map((i) => material.chain[i] ?? new Uint8Array()) }
          const pfx = await Effect.runPromise(
            encodePfx(shuffled, {
              encoding,
              password: Redacted.make(password),
              ...(friendlyName === undefined ? {} : { friendlyName }),
            }),
          )
          const back = await Effect.runPromise(decodePfx(pfx, Redacted.make(password)))
          expect(hex(back.leaf)).toBe(hex(material.leaf))
          expect(back.chain.map(hex)).toEqual(material.chain.map(hex))
          expect(hex(Redacted.value(back.key))).toBe(hex(canonicalPkcs8(Redacted.value(material.key))))
        },
      ),
      { numRuns: 25 },
    )
  })
})

describe("hostile input ends in a tagged error", () => {
  it("truncated files", async () => {
    for (const encoding of ["modern", "legacy"] as const) {
      const pfx = valid[encoding]
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: pfx.length - 1 }), async (n) => {
          const r = await decodeResult(pfx.subarray(0, n))
          expect(r._tag).toBe("Failure")
          if (r._tag === "Failure") expect(r.failure.reason).toBe("malformed")
        }),
        { numRuns: 100 },
      )
    }
  })

  it("random bytes, alone or after a valid prefix", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), fc.nat(), async (bytes, cut) => {
        const prefix = valid.modern.subarray(0, cut % valid.modern.length)
        for (const candidate of [bytes, Uint8Array.from([...prefix, ...bytes])]) {
          const r = await decodeResult(candidate)
          expect(r._tag).toBe("Failure")
        }
      }),
      { numRuns: 150 },
    )
  })

  it("any single changed byte: a tagged error or exactly the same material", async () => {
    await fc.assert(
      fc.asyncProperty(encodings, fc.nat(), fc.integer({ min: 1, max: 255 }), async (encoding, at, delta) => {
        const bytes = Uint8Array.from(valid[encoding])
        const i = at % bytes.length
        bytes[i] = ((bytes[i] ?? 0) + delta) & 0xff
        await expectTaggedFailureOrSameMaterial(bytes)
      }),
      { numRuns: 150 },
    )
  })

  it("a wrong password is wrong-password", async () => {
    await fc.assert(
      fc.asyncProperty(
        encodings,
        fc.string({ unit: "grapheme", maxLength: 12 }).filter((p) => p !== PASSWORD),
        async (encoding, password) => {
          const r = await decodeResult(valid[encoding], password)
          expect(r._tag === "Failure" ? r.failure.reason : "decoded").toBe("wrong-password")
        },
      ),
      { numRuns: 20 },
    )
  })

  it("an altered MAC is wrong-password (integrity failure)", async () => {
    for (const encoding of ["modern", "legacy"] as const) {
      for (const position of [0, 7, 19]) {
        const pfx = pkijs.PFX.fromBER(Uint8Array.from(valid[encoding]))
        const digest = pfx.macData?.mac.digest.valueBlock.valueHexView
        if (digest === undefined) throw new Error("no MAC")
        const altered = Uint8Array.from(digest)
        altered[position] = (altered[position] ?? 0) ^ 0x01
        pfx.macData = new pkijs.MacData({
          mac: new pkijs.DigestInfo({
            digestAlgorithm: pfx.macData?.mac.digestAlgorithm ?? new pkijs.AlgorithmIdentifier(),
            digest: new (await import("asn1js")).OctetString({ valueHex: altered }),
          }),
          macSalt: pfx.macData?.macSalt ?? new (await import("asn1js")).OctetString(),
          iterations: pfx.macData?.iterations ?? 1,
        })
        const r = await decodeResult(new Uint8Array(pfx.toSchema().toBER(false)))
        expect(r._tag === "Failure" ? r.failure.reason : "decoded").toBe("wrong-password")
      }
    }
  })

  it("a PFX of another version than 3 is unsupported, naming the version, though it holds the same bags", async () => {
    // The single-byte property below cannot tell: a decoder that ignored the version would give
    // back the same material, which it accepts.
    for (const version of [1, 2, 4]) {
      const pfx = pkijs.PFX.fromBER(Uint8Array.from(valid.modern))
      pfx.version = version
      const r = await decodeResult(new Uint8Array(pfx.toSchema().toBER(false)))
      expect(r._tag === "Failure" ? r.failure.reason : "decoded").toBe("unsupported")
      if (r._tag === "Failure")
        expect(r.failure.detail).toBe(`PFX version ${version} is not supported (only 3)`)
    }
    // The same rewrite with version 3 decodes: only the version was refused.
    const three = pkijs.PFX.fromBER(Uint8Array.from(valid.modern))
    three.version = 3
    const same = await decodeResult(new Uint8Array(three.toSchema().toBER(false)))
    expect(same._tag === "Success" ? hex(same.success.leaf) : same.failure.detail).toBe(hex(material.leaf))
  })

  it("an absurd MAC iteration count is refused without running it", async () => {
    const withIterations = (n: number) => {
      const pfx = pkijs.PFX.fromBER(Uint8Array.from(valid.modern))
      if (pfx.macData === undefined) throw new Error("no MAC")
      pfx.macData.iterations = n
      return new Uint8Array(pfx.toSchema().toBER(false))
    }
    const r = await decodeResult(withIterations(5_000_000))
    expect(r._tag === "Failure" ? r.failure.reason : "decoded").toBe("unsupported")
    if (r._tag === "Failure") expect(r.failure.detail).toMatch(/iteration count 5000000 exceeds/)
    // Counts of four bytes and more (asn1js's valueDec reads them as 0) are over the limit too, and
    // said so: they were "not a positive integer".
    for (const n of [50_000_000, 2 ** 31 - 1]) {
      const big = await decodeResult(withIterations(n))
      expect(big._tag === "Failure" ? big.failure.reason : "decoded").toBe("unsupported")
      if (big._tag === "Failure")
        expect(big.failure.detail).toMatch(new RegExp(`iteration count ${n} exceeds`))
    }
  })

  it("a 10 MB blob is too-large for decodePfx and MaterialInvalid for parsePem/certificateFacts", async () => {
    const blob = new Uint8Array(10 * 1024 * 1024)
    for (let i = 0; i < blob.length; i += 4096) blob[i] = i & 0xff
    blob[0] = 0x30
    const r = await decodeResult(blob)
    expect(r._tag === "Failure" ? r.failure.reason : "decoded").toBe("too-large")
    const pem = await Effect.runPromise(Effect.result(parsePem(blob)))
    expect(pem._tag === "Failure" ? pem.failure._tag : "parsed").toBe("MaterialInvalid")
    const facts = await Effect.runPromise(Effect.result(certificateFacts(blob)))
    expect(facts._tag === "Failure" ? facts.failure._tag : "parsed").toBe("MaterialInvalid")
  })

  it("deeply nested ASN.1 (indefinite and definite lengths) is malformed, not a stack overflow crash", async () => {
    const depth = 150_000
    const indefinite = new Uint8Array(depth * 4)
    for (let i = 0; i < depth; i++) {
      indefinite[2 * i] = 0x30
      indefinite[2 * i + 1] = 0x80
    }
    // Definite lengths, built from the inside out.
    const headers: Array<Array<number>> = []
    let inner = 2 // a NULL at the bottom
    for (let i = 0; i < 60_000; i++) {
      const len =
        inner < 0x80
          ? [inner]
          : inner < 0x100
            ? [0x81, inner]
            : inner < 0x10000
              ? [0x82, inner >> 8, inner & 0xff]
              : [0x83, inner >> 16, (inner >> 8) & 0xff, inner & 0xff]
      headers.push([0x30, ...len])
      inner += 1 + len.length
    }
    const definite = Uint8Array.from([...headers.reverse().flat(), 0x05, 0x00])
    for (const bytes of [indefinite, definite]) {
      const r = await decodeResult(bytes)
      expect(r._tag === "Failure" ? r.failure.reason : "decoded").toBe("malformed")
      const pem = await Effect.runPromise(Effect.result(parsePem(bytes)))
      expect(pem._tag).toBe("Failure")
      const facts = await Effect.runPromise(Effect.result(certificateFacts(bytes)))
      expect(facts._tag).toBe("Failure")
    }
  })

  it("random text to parsePem and random bytes to inspectMaterial end in MaterialInvalid or a result", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ maxLength: 2000 }),
          fc
            .tuple(fc.string({ maxLength: 200 }), fc.base64String({ maxLength: 800 }))
            .map(
              ([junk, b64]) =>
                `${junk}\n-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n${junk}`,
            ),
        ),
        fc.uint8Array({ maxLength: 1024 }),
        async (text, bytes) => {
          const pem = await Effect.runPromise(Effect.result(parsePem(text)))
          if (pem._tag === "Failure") expect(pem.failure._tag).toBe("MaterialInvalid")
          const inspected = await Effect.runPromise(
            Effect.result(inspectMaterial({ leaf: bytes, chain: [bytes], key: Redacted.make(bytes) })),
          )
          expect(inspected._tag === "Failure" ? inspected.failure._tag : "inspected").toBe("MaterialInvalid")
        },
      ),
      { numRuns: 150 },
    )
  })
})
