/**
 * encodePfx writes OBJECT IDENTIFIERs, NULL-parameter algorithm identifiers
 * and INTEGERs from asn1js encodings of them made once (pfxStructure.ts): the
 * bytes must be exactly what asn1js writes for the same structure, and a
 * PFX of each profile exactly what pkijs writes when it re-encodes it.
 */
import { createDecipheriv, pbkdf2Sync } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as pkijs from "pkijs"
import { encodePfx } from "../src/index.js"
import { encodedOnce, integer, nullParametersAlgorithm, oidBlock } from "../src/pfxStructure.js"
import { generateKey, issue } from "./fixtures.js"

const hexOf = (b: ArrayBuffer | Uint8Array) =>
  Buffer.from(b instanceof Uint8Array ? b : new Uint8Array(b)).toString("hex")

describe("blocks from encodings made once", () => {
  it("encode to the same bytes as asn1js's own blocks, alone and inside structures", () => {
    for (const value of [
      "1.2.840.113549.1.12.10.1.3",
      "2.16.840.1.101.3.4.1.42",
      "1.3.14.3.2.26",
      "2.5.29.15",
    ]) {
      const plain = new asn1js.Sequence({
        value: [new asn1js.ObjectIdentifier({ value }), new asn1js.Null()],
      })
      const cached = new asn1js.Sequence({ value: [oidBlock(value), new asn1js.Null()] })
      expect(hexOf(cached.toBER(false))).toBe(hexOf(plain.toBER(false)))
      // A second use of the same cached block encodes the same again, alone and as part of another.
      expect(hexOf(oidBlock(value).toBER(false))).toBe(
        hexOf(new asn1js.ObjectIdentifier({ value }).toBER(false)),
      )
      expect(hexOf(nullParametersAlgorithm(value).toBER(false))).toBe(hexOf(plain.toBER(false)))
      expect(
        hexOf(new asn1js.Sequence({ value: [nullParametersAlgorithm(value), oidBlock(value)] }).toBER(false)),
      ).toBe(
        hexOf(
          new asn1js.Sequence({
            value: [
              new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value }), new asn1js.Null()] }),
              new asn1js.ObjectIdentifier({ value }),
            ],
          }).toBER(false),
        ),
      )
    }
    for (const value of [0, 1, 3, 127, 128, 255, 256, 2048, 10_000_000]) {
      expect(hexOf(integer(value).toBER(false))).toBe(hexOf(new asn1js.Integer({ value }).toBER(false)))
      expect(hexOf(integer(value).toBER(false))).toBe(hexOf(new asn1js.Integer({ value }).toBER(false)))
    }
    // A constructed block with a long content (long-form length) keeps its tag and bytes.
    const long = new asn1js.Sequence({
      value: [
        new asn1js.OctetString({ valueHex: new Uint8Array(300).fill(7) }),
        new asn1js.Integer({ value: 5 }),
      ],
    })
    expect(hexOf(encodedOnce(long).toBER(false))).toBe(hexOf(long.toBER(false)))
  })

  it.effect("a PFX of each profile is byte for byte what asn1js writes for the same PFX structure", () =>
    Effect.gen(function* () {
      const key = yield* Effect.promise(() => generateKey("P-256"))
      const leaf = yield* Effect.promise(() => issue({ subject: "CN=oids.example.test", key, ca: false }))
      for (const encoding of ["modern", "legacy"] as const) {
        const pfx = yield* encodePfx(
          { leaf, chain: [], key: Redacted.make(key.pkcs8) },
          { encoding, password: Redacted.make("pw"), friendlyName: "oids", iterations: 1 },
        )
        const reencoded = pkijs.PFX.fromBER(pfx).toSchema().toBER(false)
        expect(hexOf(reencoded)).toBe(hexOf(pfx))
      }
    }),
  )

  // The PFX-level comparison above carries the authenticated safe as the bytes of an OCTET STRING:
  // the levels inside are compared here, each parsed by its pkijs class from its own bytes and
  // re-encoded (SafeContents with every bag and attribute, EncryptedData with its algorithm, the
  // PBES2 and PBKDF2 parameters, the decrypted certificate SafeContents).
  it.effect("every level inside a modern PFX is byte for byte what pkijs writes for it", () =>
    Effect.gen(function* () {
      const key = yield* Effect.promise(() => generateKey("P-256"))
      const leaf = yield* Effect.promise(() => issue({ subject: "CN=levels.example.test", key, ca: false }))
      const ca = yield* Effect.promise(() => issue({ subject: "CN=levels-ca.example.test", key, ca: true }))
      for (const iterations of [1, 2048]) {
        const pfx = yield* encodePfx(
          { leaf, chain: [ca], key: Redacted.make(key.pkcs8) },
          { encoding: "modern", password: Redacted.make("pw"), friendlyName: "levels", iterations },
        )
        const same = <T extends { toSchema(): asn1js.BaseBlock }>(
          bytes: Uint8Array,
          parse: (b: ArrayBuffer) => T,
        ): T => {
          const parsed = parse(Uint8Array.from(bytes).buffer)
          expect(hexOf(parsed.toSchema().toBER(false))).toBe(hexOf(bytes))
          return parsed
        }
        const outer = asn1js.fromBER(Uint8Array.from(pfx).buffer, { parseEmbedded: false })
        const top = new pkijs.PFX({ schema: outer.result })
        const authSafeBytes = new Uint8Array((top.authSafe.content as asn1js.OctetString).getValue())
        const authSafe = same(authSafeBytes, (b) => pkijs.AuthenticatedSafe.fromBER(b))
        let encryptedLevels = 0
        let plainLevels = 0
        for (const info of authSafe.safeContents) {
          if (info.contentType === "1.2.840.113549.1.7.1") {
            plainLevels++
            same(new Uint8Array((info.content as asn1js.OctetString).getValue()), (b) =>
              pkijs.SafeContents.fromBER(b),
            )
            continue
          }
          encryptedLevels++
          const encrypted = same(new Uint8Array(info.content.toBER(false)), (b) =>
            pkijs.EncryptedData.fromBER(b),
          )
          const algorithm = encrypted.encryptedContentInfo.contentEncryptionAlgorithm
          const pbes2 = same(new Uint8Array(algorithm.algorithmParams.toBER(false)), (b) =>
            pkijs.PBES2Params.fromBER(b),
          )
          const kdf = same(new Uint8Array(pbes2.keyDerivationFunc.algorithmParams.toBER(false)), (b) =>
            pkijs.PBKDF2Params.fromBER(b),
          )
          expect(kdf.iterationCount).toBe(iterations)
          const salt = new Uint8Array((kdf.salt as asn1js.OctetString).getValue())
          const iv = new Uint8Array((pbes2.encryptionScheme.algorithmParams as asn1js.OctetString).getValue())
          const aesKey = pbkdf2Sync("pw", salt, iterations, 32, "sha256")
          const decipher = createDecipheriv("aes-256-cbc", aesKey, iv)
          const ciphertext = Uint8Array.from(
            (encrypted.encryptedContentInfo.encryptedContent as asn1js.OctetString).valueBlock.valueHexView,
          )
          const plain = Buffer.concat([decipher.update(ciphertext), decipher.final()])
          const certificates = same(new Uint8Array(plain), (b) => pkijs.SafeContents.fromBER(b))
          expect(certificates.safeBags.length).toBe(2)
        }
        expect({ plainLevels, encryptedLevels }).toEqual({ plainLevels: 1, encryptedLevels: 1 })
      }
    }),
  )
})
