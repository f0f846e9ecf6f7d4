/**
 * decodePfx reads the PFX, AuthenticatedSafe, EncryptedData, shrouded key
 * bag, Attribute, PBES2 and PBKDF2 layers against pkijs's schemas built once
 * (src/decodeStructure.ts) instead of through pkijs's classes. Each reader is
 * compared here with the pkijs class it replaces, on the layer as kvdeploy
 * writes it and on random mutations of its bytes: both refuse the same
 * blocks and read the same values from the others. Then the pkijs quirks the
 * readers keep, through decodePfx: an empty AuthenticatedSafe, absent PBES2
 * parameters, a localKeyID attribute with an empty SET.
 */
import { describe, expect, it } from "@effect/vitest"
import type { CertificateMaterial } from "@kvdeploy/core"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as fc from "fast-check"
import * as pkijs from "pkijs"
import { beforeAll } from "vitest"
import { oid } from "../src/algorithms.js"
import {
  readAttribute,
  readAuthenticatedSafe,
  readEncryptedData,
  readPbes2Params,
  readPbkdf2Params,
  readPfx,
  readShroudedKeyBag,
} from "../src/decodeStructure.js"
import { decodePfx, encodePfx } from "../src/index.js"
import { parseBer } from "../src/safeBags.js"
import { generateKey, hex, makeAuthorities, makeMaterial } from "./fixtures.js"

const PASSWORD = "structure-Pw"

/** A parsed block as text: its class and its bytes; anything else as its type. */
const shown = (value: unknown): string =>
  value instanceof asn1js.BaseBlock
    ? `${value.constructor.name}:${hex(value.valueBeforeDecodeView)}`
    : `not a block: ${typeof value}`

const bytesOf = (block: unknown): Uint8Array => {
  if (!(block instanceof asn1js.BaseBlock)) throw new Error("no block")
  return block.valueBeforeDecodeView.slice()
}

type Outcome = { readonly read: unknown } | "refused"
const outcome = (read: () => unknown): Outcome => {
  try {
    return { read: read() }
  } catch {
    return "refused"
  }
}

/**
 * An INTEGER field as the readers are held to read it: pkijs's number where asn1js decodes one (fewer
 * than four content bytes); for four bytes and more asn1js leaves its valueDec at 0 (pkijs read a
 * count of 50,000,000 as 0), and the readers read the INTEGER's value (integerValue: plus or minus
 * infinity beyond a safe integer, refused by the callers as over their limits). A mutation that
 * widens an INTEGER's length byte over the fields after it (a PBKDF2 iteration count over its PRF,
 * about one run of 75) reaches that difference, which is kvdeploy's on purpose.
 */
const pkijsInteger = (decoded: number, block: unknown): number => {
  if (!(block instanceof asn1js.Integer) || !block.valueBlock.isHexOnly) return decoded
  const value = block.toBigInt()
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) return Number.POSITIVE_INFINITY
  if (value < BigInt(Number.MIN_SAFE_INTEGER)) return Number.NEGATIVE_INFINITY
  return Number(value)
}

/** The `at`th element of a constructed block pkijs has read (undefined when there is none). */
const elementOf = (block: unknown, ...at: ReadonlyArray<number>): unknown =>
  at.reduce<unknown>(
    (b, i) => (b instanceof asn1js.Constructed ? (b.valueBlock.value[i] as unknown) : undefined),
    block,
  )

/** Each layer's reader and the pkijs class it replaces, on a fresh parse of the same bytes each. */
const layers = {
  pfx: {
    ours: (block: asn1js.AsnType) => {
      const p = readPfx(block)
      return {
        version: p.version,
        contentType: p.contentType,
        content: shown(p.content),
        mac:
          p.mac === undefined
            ? undefined
            : {
                algorithm: p.mac.digestAlgorithm.algorithmId,
                parameters: shown(p.mac.digestAlgorithm.algorithmParams),
                digest: hex(p.mac.digest.valueBlock.valueHexView),
                salt: hex(p.mac.salt.valueBlock.valueHexView),
                iterations: p.mac.iterations,
              },
      }
    },
    pkijs: (block: asn1js.AsnType) => {
      const p = new pkijs.PFX({ schema: block })
      return {
        // PFX ::= SEQUENCE { version INTEGER, authSafe ContentInfo, macData MacData OPTIONAL }.
        version: pkijsInteger(p.version, elementOf(block, 0)),
        contentType: p.authSafe.contentType,
        content: shown(p.authSafe.content),
        mac:
          p.macData === undefined
            ? undefined
            : {
                algorithm: p.macData.mac.digestAlgorithm.algorithmId,
                parameters: shown(p.macData.mac.digestAlgorithm.algorithmParams),
                digest: hex(p.macData.mac.digest.valueBlock.valueHexView),
                salt: hex(p.macData.macSalt.valueBlock.valueHexView),
                // MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }.
                iterations:
                  p.macData.iterations === undefined
                    ? undefined
                    : pkijsInteger(p.macData.iterations, elementOf(block, 2, 2)),
              },
      }
    },
  },
  authenticatedSafe: {
    ours: (block: asn1js.AsnType) =>
      readAuthenticatedSafe(block).map((i) => ({ contentType: i.contentType, content: shown(i.content) })),
    pkijs: (block: asn1js.AsnType) =>
      new pkijs.AuthenticatedSafe({ schema: block }).safeContents.map((i) => ({
        contentType: i.contentType,
        content: shown(i.content),
      })),
  },
  encryptedData: {
    ours: (block: asn1js.AsnType) => {
      const d = readEncryptedData(block)
      return {
        algorithm: d.algorithm.algorithmId,
        parameters: shown(d.algorithm.algorithmParams),
        ciphertext: hex(d.ciphertext),
      }
    },
    pkijs: (block: asn1js.AsnType) => {
      const info = new pkijs.EncryptedData({ schema: block }).encryptedContentInfo
      return {
        algorithm: info.contentEncryptionAlgorithm.algorithmId,
        parameters: shown(info.contentEncryptionAlgorithm.algorithmParams),
        ciphertext: hex(new Uint8Array(info.getEncryptedContent())),
      }
    },
  },
  shroudedKeyBag: {
    ours: (block: asn1js.AsnType) => {
      const k = readShroudedKeyBag(block)
      return {
        algorithm: k.encryptionAlgorithm.algorithmId,
        parameters: shown(k.encryptionAlgorithm.algorithmParams),
        encrypted: shown(k.encryptedData),
      }
    },
    pkijs: (block: asn1js.AsnType) => {
      const k = new pkijs.PKCS8ShroudedKeyBag({ schema: block })
      return {
        algorithm: k.encryptionAlgorithm.algorithmId,
        parameters: shown(k.encryptionAlgorithm.algorithmParams),
        encrypted: shown(k.encryptedData),
      }
    },
  },
  attribute: {
    ours: (block: asn1js.AsnType) => {
      const a = readAttribute(block)
      return { type: a.type, values: a.values?.map(shown) }
    },
    pkijs: (block: asn1js.AsnType) => {
      const a = new pkijs.Attribute({ schema: block })
      const values: unknown = a.values
      return { type: a.type, values: Array.isArray(values) ? values.map(shown) : undefined }
    },
  },
  pbes2: {
    ours: (block: asn1js.AsnType) => {
      const p = readPbes2Params(block)
      return {
        kdf: p.keyDerivationFunc.algorithmId,
        kdfParameters: shown(p.keyDerivationFunc.algorithmParams),
        scheme: p.encryptionScheme.algorithmId,
        schemeParameters: shown(p.encryptionScheme.algorithmParams),
      }
    },
    pkijs: (block: asn1js.AsnType) => {
      const p = new pkijs.PBES2Params({ schema: block })
      return {
        kdf: p.keyDerivationFunc.algorithmId,
        kdfParameters: shown(p.keyDerivationFunc.algorithmParams),
        scheme: p.encryptionScheme.algorithmId,
        schemeParameters: shown(p.encryptionScheme.algorithmParams),
      }
    },
  },
  pbkdf2: {
    ours: (block: asn1js.AsnType) => {
      const p = readPbkdf2Params(block)
      return { salt: shown(p.salt), iterations: p.iterationCount, prf: p.prf?.algorithmId }
    },
    pkijs: (block: asn1js.AsnType) => {
      const p = new pkijs.PBKDF2Params({ schema: block })
      // PBKDF2-params ::= SEQUENCE { salt, iterationCount INTEGER, keyLength INTEGER OPTIONAL, prf … }.
      const iterations = pkijsInteger(p.iterationCount, elementOf(block, 1))
      return { salt: shown(p.salt), iterations, prf: p.prf?.algorithmId }
    },
  },
} as const
type Layer = keyof typeof layers

/** Both readers on `bytes` (each on its own parse): the same refusal or the same values. */
const expectSameReading = (layer: Layer, bytes: Uint8Array): Outcome => {
  let ourTree: asn1js.AsnType
  let theirTree: asn1js.AsnType
  try {
    ourTree = parseBer(bytes)
    theirTree = parseBer(bytes)
  } catch {
    return "refused"
  }
  const ours = outcome(() => layers[layer].ours(ourTree))
  const theirs = outcome(() => layers[layer].pkijs(theirTree))
  expect(ours, `${layer} ${hex(bytes)}`).toEqual(theirs)
  return ours
}

let material: CertificateMaterial
/** Each layer's bytes as encodePfx writes them (modern and legacy profiles). */
const samples: Record<Layer, Array<Uint8Array>> = {
  pfx: [],
  authenticatedSafe: [],
  encryptedData: [],
  shroudedKeyBag: [],
  attribute: [],
  pbes2: [],
  pbkdf2: [],
}

beforeAll(async () => {
  material = await makeMaterial(await generateKey("P-256"), 2, await makeAuthorities())
  for (const encoding of ["modern", "legacy"] as const) {
    const pfx = await Effect.runPromise(encodePfx(material, { encoding, password: Redacted.make(PASSWORD) }))
    samples.pfx.push(pfx)
    const outer = new pkijs.PFX({ schema: parseBer(pfx) })
    const authSafe = new Uint8Array((outer.authSafe.content as asn1js.OctetString).getValue())
    samples.authenticatedSafe.push(authSafe)
    for (const info of new pkijs.AuthenticatedSafe({ schema: parseBer(authSafe) }).safeContents) {
      if (info.contentType === oid.encryptedData) {
        samples.encryptedData.push(bytesOf(info.content))
        const algorithm = new pkijs.EncryptedData({ schema: info.content }).encryptedContentInfo
          .contentEncryptionAlgorithm
        if (algorithm.algorithmId === oid.pbes2) samples.pbes2.push(bytesOf(algorithm.algorithmParams))
      }
      if (info.contentType !== oid.data) continue
      const contents = new pkijs.SafeContents({
        schema: parseBer(new Uint8Array((info.content as asn1js.OctetString).getValue())),
      })
      for (const bag of contents.safeBags) {
        for (const attribute of bag.bagAttributes ?? [])
          samples.attribute.push(new Uint8Array(attribute.toSchema().toBER(false)))
        if (bag.bagId !== oid.pkcs8ShroudedKeyBag) continue
        const shrouded = bag.bagValue as pkijs.PKCS8ShroudedKeyBag
        samples.shroudedKeyBag.push(new Uint8Array(shrouded.toSchema().toBER(false)))
        if (shrouded.encryptionAlgorithm.algorithmId !== oid.pbes2) continue
        const pbes2 = bytesOf(shrouded.encryptionAlgorithm.algorithmParams)
        samples.pbes2.push(pbes2)
        const kdf = new pkijs.PBES2Params({ schema: parseBer(pbes2) }).keyDerivationFunc.algorithmParams
        samples.pbkdf2.push(bytesOf(kdf))
      }
    }
  }
})

const mutation = fc.record({
  sample: fc.nat(),
  edits: fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), {
    minLength: 1,
    maxLength: 3,
  }),
  cut: fc.option(fc.nat(), { nil: undefined }),
})

describe("the layer readers read what pkijs's classes read", () => {
  for (const layer of Object.keys(layers) as Array<Layer>) {
    it(`${layer}: the same values from the layers kvdeploy writes, and on random mutations the same refusals and values`, () => {
      expect(samples[layer].length).toBeGreaterThan(0)
      for (const bytes of samples[layer]) expect(expectSameReading(layer, bytes)).not.toBe("refused")
      let read = 0
      fc.assert(
        fc.property(mutation, ({ sample, edits, cut }) => {
          const original = samples[layer][sample % samples[layer].length] ?? new Uint8Array(0)
          const bytes = original.slice(0, cut === undefined ? original.length : 1 + (cut % original.length))
          for (const { at, byte } of edits) if (bytes.length > 0) bytes[at % bytes.length] = byte
          if (expectSameReading(layer, bytes) !== "refused") read++
        }),
        { numRuns: 400 },
      )
      // Mutations of a tag or a length byte change the structure; most others leave it readable.
      expect(read).toBeGreaterThan(0)
    })
  }

  it("an iteration count of four bytes and more: pkijs reads 0, the readers its value (a random mutation found it)", () => {
    const original = samples.pbkdf2[0] ?? new Uint8Array(0)
    // SEQUENCE { OCTET STRING salt, INTEGER iterations, prf }: the INTEGER's length byte widened
    // over the PRF after it, to the end of the SEQUENCE (as one mutation of the property above did).
    const at = 2 + 2 + (original[3] ?? 0)
    expect(original[at]).toBe(0x02)
    const widened = original.slice()
    widened[at + 1] = original.length - (at + 2)
    const theirs = new pkijs.PBKDF2Params({ schema: parseBer(widened) })
    expect(theirs.iterationCount).toBe(0)
    expect(theirs.prf).toBeUndefined()
    const read = expectSameReading("pbkdf2", widened)
    expect(read).toEqual({
      read: expect.objectContaining({ iterations: Number.POSITIVE_INFINITY, prf: undefined }),
    })
    // Four bytes that fit a number: read as that number (pkijs: 0).
    const four = Uint8Array.from([...original.subarray(0, at), 0x02, 0x04, 0x03, 0x00, 0x00, 0x00])
    four[1] = four.length - 2
    expect(new pkijs.PBKDF2Params({ schema: parseBer(four) }).iterationCount).toBe(0)
    expect(readPbkdf2Params(parseBer(four)).iterationCount).toBe(50_331_648)
    expect(expectSameReading("pbkdf2", four)).toEqual({
      read: expect.objectContaining({ iterations: 50_331_648 }),
    })
  })

  it("absent PBES2 and PBKDF2 parameters read as the pkijs classes' defaults", () => {
    const pbes2 = readPbes2Params(undefined)
    const theirPbes2 = new pkijs.PBES2Params({})
    expect(pbes2.keyDerivationFunc.algorithmId).toBe(theirPbes2.keyDerivationFunc.algorithmId)
    expect(pbes2.encryptionScheme.algorithmId).toBe(theirPbes2.encryptionScheme.algorithmId)
    const pbkdf2 = readPbkdf2Params(undefined)
    const theirPbkdf2 = new pkijs.PBKDF2Params({})
    expect(pbkdf2.iterationCount).toBe(theirPbkdf2.iterationCount)
    expect(pbkdf2.prf).toBe(theirPbkdf2.prf)
    expect(pbkdf2.salt instanceof asn1js.OctetString).toBe(theirPbkdf2.salt instanceof asn1js.OctetString)
  })
})

describe("pkijs's quirks, kept through decodePfx", () => {
  const octets = (bytes: Uint8Array | ArrayBuffer) => new asn1js.OctetString({ valueHex: bytes })
  /** An unencrypted PFX without a MAC around the authenticated safe `authSafe`. */
  const pfxAround = (authSafe: asn1js.BaseBlock): Uint8Array =>
    new Uint8Array(
      new pkijs.PFX({
        version: 3,
        authSafe: new pkijs.ContentInfo({ contentType: oid.data, content: octets(authSafe.toBER(false)) }),
      })
        .toSchema()
        .toBER(false),
    )
  const dataBlock = (bags: Array<pkijs.SafeBag>) =>
    new pkijs.ContentInfo({
      contentType: oid.data,
      content: octets(new pkijs.SafeContents({ safeBags: bags }).toSchema().toBER(false)),
    })
  const certBag = (der: Uint8Array, attributes?: Array<pkijs.Attribute>) =>
    new pkijs.SafeBag({
      bagId: oid.certBag,
      bagValue: new pkijs.CertBag({ certId: oid.x509Certificate, certValue: octets(der) }),
      ...(attributes === undefined ? {} : { bagAttributes: attributes }),
    })
  const keyBag = () =>
    new pkijs.SafeBag({
      bagId: oid.keyBag,
      bagValue: pkijs.PrivateKeyInfo.fromBER(Redacted.value(material.key)),
    })
  const decode = (pfx: Uint8Array) => Effect.runPromise(Effect.flip(decodePfx(pfx, Redacted.make(""))))

  it("an AuthenticatedSafe without any ContentInfo is unreadable (pkijs's class fails on it)", async () => {
    expect(() => new pkijs.AuthenticatedSafe({ schema: new asn1js.Sequence() })).toThrow()
    const error = await decode(pfxAround(new asn1js.Sequence()))
    expect(error.reason).toBe("malformed")
    expect(error.detail).toMatch(/^the PFX's authenticated safe is unreadable/)
  })

  it("a localKeyID attribute with an empty SET makes its block unreadable; another attribute without values does not", async () => {
    const empty = (type: string) => new pkijs.Attribute({ type, values: [] })
    const withOther = pfxAround(
      new pkijs.AuthenticatedSafe({
        safeContents: [dataBlock([certBag(material.leaf, [empty("1.2.840.113549.1.9.20")]), keyBag()])],
      }).toSchema(),
    )
    const back = await Effect.runPromise(decodePfx(withOther, Redacted.make("")))
    expect(hex(back.leaf)).toBe(hex(material.leaf))
    const withLocalKeyId = pfxAround(
      new pkijs.AuthenticatedSafe({
        safeContents: [dataBlock([certBag(material.leaf, [empty(oid.localKeyId)]), keyBag()])],
      }).toSchema(),
    )
    const error = await decode(withLocalKeyId)
    expect(error.reason).toBe("malformed")
    expect(error.detail).toMatch(/^a safe contents block of the PFX is unreadable/)
  })

  it("a PBES2 key bag without parameters names an empty key derivation as unsupported", async () => {
    const shrouded = new pkijs.PKCS8ShroudedKeyBag({
      encryptionAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: oid.pbes2 }),
      encryptedData: octets(new Uint8Array(32)),
    })
    const pfx = pfxAround(
      new pkijs.AuthenticatedSafe({
        safeContents: [
          dataBlock([
            certBag(material.leaf),
            new pkijs.SafeBag({ bagId: oid.pkcs8ShroudedKeyBag, bagValue: shrouded }),
          ]),
        ],
      }).toSchema(),
    )
    const error = await decode(pfx)
    expect(error.reason).toBe("unsupported")
    expect(error.detail).toMatch(
      /^the private key could not be decrypted: key derivation {2}is not supported/,
    )
  })
})
