/**
 * encodePfx writes its structures with pkijs's classes (pfxStructure.ts). A
 * PFX of each profile must be exactly what pkijs writes when it re-encodes
 * what it reads, at every level down to the decrypted SafeContents and the PBE
 * parameters (so every tag, length and form is the canonical one a reader
 * parses back to the same bytes), with every OBJECT IDENTIFIER the one written
 * out below and the levels holding what was put in (certificates, key,
 * friendly name, iterations, salt lengths).
 */
import { createDecipheriv, createHash, pbkdf2Sync } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as pkijs from "pkijs"
import { encodePfx } from "../src/index.js"
import { decryptWithPassword, newKdfBudget } from "../src/passwordEncryption.js"
import { generateKey, issue, makeAuthorities, makeMaterial } from "./fixtures.js"

const hexOf = (b: ArrayBuffer | Uint8Array) =>
  Buffer.from(b instanceof Uint8Array ? b : new Uint8Array(b)).toString("hex")

// Written out here rather than taken from src/algorithms.ts, so a wrong entry there does not pass.
const oids = {
  data: "1.2.840.113549.1.7.1",
  encryptedData: "1.2.840.113549.1.7.6",
  pkcs8ShroudedKeyBag: "1.2.840.113549.1.12.10.1.2",
  certBag: "1.2.840.113549.1.12.10.1.3",
  x509Certificate: "1.2.840.113549.1.9.22.1",
  friendlyName: "1.2.840.113549.1.9.20",
  localKeyId: "1.2.840.113549.1.9.21",
  pbes2: "1.2.840.113549.1.5.13",
  pbkdf2: "1.2.840.113549.1.5.12",
  hmacWithSha256: "1.2.840.113549.2.9",
  aes256Cbc: "2.16.840.1.101.3.4.1.42",
  pbeSha1TripleDes: "1.2.840.113549.1.12.1.3",
  pbeSha1Rc2_40: "1.2.840.113549.1.12.1.6",
  sha1: "1.3.14.3.2.26",
  sha256: "2.16.840.1.101.3.4.2.1",
} as const

/**
 * The bytes a parsed block was read from. Each level is checked on the file's
 * own bytes: asn1js's re-encoding of a parsed block keeps some forms it read
 * (a long-form length of a short content, an INTEGER's leading zero), so it
 * would hide them.
 */
const bytesOf = (block: asn1js.BaseBlock): Uint8Array => {
  expect(block.valueBeforeDecodeView.byteLength).toBeGreaterThan(0)
  return Uint8Array.from(block.valueBeforeDecodeView)
}

/** The elements of the constructed block (SEQUENCE, SET, `[0] EXPLICIT`) `bytes` hold, as asn1js reads them. */
const elementsOf = (bytes: Uint8Array): Array<asn1js.BaseBlock> => {
  const parsed = asn1js.fromBER(Uint8Array.from(bytes).buffer)
  expect(parsed.offset).toBe(bytes.length)
  expect(parsed.result).toBeInstanceOf(asn1js.Constructed)
  return (parsed.result as asn1js.Constructed).valueBlock.value
}

const at = (blocks: ReadonlyArray<asn1js.BaseBlock>, i: number): asn1js.BaseBlock => {
  const block = blocks[i]
  if (block === undefined) throw new Error(`element ${i} is missing`)
  return block
}

/**
 * Every element of `bytes` (one level; the contents of its OCTET STRINGs are levels of their own) in
 * DER's forms: definite lengths, the short form below 128 and the fewest length bytes above it,
 * primitive strings, minimal INTEGERs. pkijs keeps a block it parsed and asn1js writes it back in
 * the form it read, so a re-encoding alone would not see a long-form length in a salt or a ciphertext.
 */
const derForms = (level: string, bytes: Uint8Array): void => {
  const parsed = asn1js.fromBER(Uint8Array.from(bytes).buffer, { parseEmbedded: false })
  expect(parsed.offset, level).toBe(bytes.length)
  const walk = (block: asn1js.BaseBlock, path: string): void => {
    const where = `${level} ${path}`
    const len = block.lenBlock
    expect(len.isIndefiniteForm, `${where}: indefinite length`).toBe(false)
    if (len.length < 128) expect(len.longFormUsed, `${where}: long-form length below 128`).toBe(false)
    else expect(len.blockLength - 1, `${where}: length bytes`).toBe(Math.ceil(Math.log2(len.length + 1) / 8))
    const id = block.idBlock
    // Universal BIT STRING (3) and OCTET STRING (4) are primitive in DER.
    if (id.tagClass === 1 && (id.tagNumber === 3 || id.tagNumber === 4))
      expect(id.isConstructed, `${where}: constructed string`).toBe(false)
    if (block instanceof asn1js.Integer) {
      const v = block.valueBlock.valueHexView
      const redundant =
        v.length > 1 && ((v[0] === 0 && (v[1] ?? 0) < 0x80) || (v[0] === 0xff && (v[1] ?? 0) >= 0x80))
      expect(redundant, `${where}: non-minimal INTEGER`).toBe(false)
    }
    if (block instanceof asn1js.Constructed)
      for (const [i, child] of block.valueBlock.value.entries()) walk(child, `${path}/${i}`)
  }
  walk(parsed.result, "")
}

/** `bytes` parsed by a pkijs class re-encode (pkijs's toSchema, asn1js's DER) to the same bytes, in DER's forms. */
const same = <T extends { toSchema(): asn1js.BaseBlock }>(
  level: string,
  bytes: Uint8Array,
  parse: (b: ArrayBuffer) => T,
): T => {
  const parsed = parse(Uint8Array.from(bytes).buffer)
  expect(hexOf(parsed.toSchema().toBER(false)), level).toBe(hexOf(bytes))
  derForms(level, bytes)
  return parsed
}

/** What a fresh asn1js block encodes to: the DER of a value read from a level, to compare the level's bytes with. */
const derOf = (block: asn1js.BaseBlock) => hexOf(block.toBER(false))

/** Check a password-based encryption's parameters (each level of them) and decrypt with them. */
type Open = (
  level: string,
  algorithm: pkijs.AlgorithmIdentifier,
  ciphertext: Uint8Array,
  iterations: number,
) => Effect.Effect<Uint8Array, unknown>

/** Modern: PBES2 with PBKDF2-HMAC-SHA-256 and AES-256-CBC, decrypted with node:crypto. */
const openPbes2: Open = (level, algorithm, ciphertext, iterations) =>
  Effect.sync(() => {
    const params = bytesOf(algorithm.algorithmParams)
    const pbes2 = same(`${level} PBES2-params`, params, (b) => pkijs.PBES2Params.fromBER(b))
    expect(pbes2.keyDerivationFunc.algorithmId).toBe(oids.pbkdf2)
    expect(pbes2.encryptionScheme.algorithmId).toBe(oids.aes256Cbc)
    const kdf = same(`${level} PBKDF2-params`, bytesOf(pbes2.keyDerivationFunc.algorithmParams), (b) =>
      pkijs.PBKDF2Params.fromBER(b),
    )
    expect(kdf.iterationCount).toBe(iterations)
    expect(kdf.prf?.algorithmId).toBe(oids.hmacWithSha256)
    const salt = new Uint8Array((kdf.salt as asn1js.OctetString).getValue())
    const iv = new Uint8Array((pbes2.encryptionScheme.algorithmParams as asn1js.OctetString).getValue())
    expect(iv.length).toBe(16)
    const decipher = createDecipheriv("aes-256-cbc", pbkdf2Sync("pw", salt, iterations, 32, "sha256"), iv)
    return new Uint8Array(Buffer.concat([decipher.update(ciphertext), decipher.final()]))
  })

/**
 * Legacy: PKCS#12 PBES1 (pbeWithSHAAnd3-KeyTripleDES-CBC, pbeWithSHAAnd40BitRC2-CBC),
 * decrypted with the package's own decryption (node:crypto cannot run RC2).
 * pkijs has no class for pkcs-12PbeParams: the parameters are read with
 * asn1js against their schema, and their bytes compared with what asn1js
 * writes for a fresh SEQUENCE of the salt and iteration count read.
 */
const openPbes1: Open = (level, algorithm, ciphertext, iterations) =>
  Effect.gen(function* () {
    const params = bytesOf(algorithm.algorithmParams)
    const parsed = asn1js.fromBER(Uint8Array.from(params).buffer)
    expect(parsed.offset).toBe(params.length)
    const read = asn1js.compareSchema(
      parsed.result,
      parsed.result,
      new asn1js.Sequence({
        value: [new asn1js.OctetString({ name: "salt" }), new asn1js.Integer({ name: "iterations" })],
      }),
    )
    if (!read.verified) throw new Error(`${level} pkcs-12PbeParams do not match their schema`)
    const saltBlock: unknown = read.result.salt
    const countBlock: unknown = read.result.iterations
    if (!(saltBlock instanceof asn1js.OctetString) || !(countBlock instanceof asn1js.Integer))
      throw new Error(`${level} pkcs-12PbeParams: salt or iterations of the wrong type`)
    const salt = saltBlock.valueBlock.valueHexView
    const count = countBlock.valueBlock.valueDec
    expect(salt.length).toBe(8)
    expect(count).toBe(iterations)
    expect(hexOf(parsed.result.toBER(false)), `${level} pkcs-12PbeParams`).toBe(hexOf(params))
    expect(
      derOf(
        new asn1js.Sequence({
          value: [new asn1js.OctetString({ valueHex: salt }), new asn1js.Integer({ value: count })],
        }),
      ),
      `${level} pkcs-12PbeParams`,
    ).toBe(hexOf(params))
    return yield* decryptWithPassword(algorithm, ciphertext, "pw", newKdfBudget())
  })

interface Levels {
  readonly pfx: Uint8Array
  /** Leaf first, in the order the PFX holds them. */
  readonly certificates: ReadonlyArray<Uint8Array>
  readonly pkcs8: Uint8Array
  readonly friendlyName: string
  readonly iterations: number
  readonly macDigest: string
  readonly macSaltLength: number
  readonly certificateAlgorithm: string
  readonly keyAlgorithm: string
  readonly open: Open
}

/** An encryption's AlgorithmIdentifier (the block read) by pkijs, then its parameters and plaintext by `open`. */
const encryptionLevel = (
  level: string,
  algorithmBlock: asn1js.BaseBlock,
  ciphertext: Uint8Array,
  expectedId: string,
  expected: Levels,
) => {
  const algorithm = same(`${level} AlgorithmIdentifier`, bytesOf(algorithmBlock), (b) =>
    pkijs.AlgorithmIdentifier.fromBER(b),
  )
  expect(algorithm.algorithmId, level).toBe(expectedId)
  return expected.open(level, algorithm, ciphertext, expected.iterations)
}

/** A SafeContents and each of its SafeBags and their attributes, each by its pkijs class. */
const bagsOf = (level: string, bytes: Uint8Array) => {
  same(level, bytes, (b) => pkijs.SafeContents.fromBER(b))
  return elementsOf(bytes).map((block, i) => {
    const bagBytes = bytesOf(block)
    const bag = same(`${level} SafeBag ${i}`, bagBytes, (b) => pkijs.SafeBag.fromBER(b))
    const [, explicitValue, attributeSet] = elementsOf(bagBytes)
    if (explicitValue === undefined) throw new Error(`${level} SafeBag ${i} has no value`)
    const attributes =
      attributeSet === undefined
        ? []
        : elementsOf(bytesOf(attributeSet)).map((attribute, j) =>
            same(`${level} SafeBag ${i} attribute ${j}`, bytesOf(attribute), (b) =>
              pkijs.Attribute.fromBER(b),
            ),
          )
    return { bagId: bag.bagId, value: bytesOf(at(elementsOf(bytesOf(explicitValue)), 0)), attributes }
  })
}

/** friendlyName (BMPString) and localKeyID (SHA-1 of the leaf), each value as asn1js writes it afresh. */
const expectAttributes = (level: string, attributes: ReadonlyArray<pkijs.Attribute>, expected: Levels) => {
  expect(attributes.map((a) => [a.type, a.values.length])).toEqual([
    [oids.friendlyName, 1],
    [oids.localKeyId, 1],
  ])
  const [friendlyName, localKeyId] = attributes.map((a) => hexOf(bytesOf(at(a.values, 0))))
  expect(friendlyName, `${level} friendlyName`).toBe(
    derOf(new asn1js.BmpString({ value: expected.friendlyName })),
  )
  const leaf = expected.certificates[0] ?? new Uint8Array(0)
  expect(localKeyId, `${level} localKeyID`).toBe(
    derOf(new asn1js.OctetString({ valueHex: createHash("sha1").update(leaf).digest() })),
  )
}

/**
 * Every level of a PFX, each parsed by its pkijs class from the bytes the
 * file holds for it and re-encoded: PFX, MacData with its DigestInfo and
 * digest algorithm, AuthenticatedSafe, each ContentInfo, the certificates'
 * EncryptedData, EncryptedContentInfo and AlgorithmIdentifier (its
 * parameters by `open`), the decrypted certificate SafeContents with each
 * SafeBag, CertBag and attribute, the key's SafeContents, SafeBag,
 * attributes and PKCS8ShroudedKeyBag (EncryptedPrivateKeyInfo) with its
 * AlgorithmIdentifier, and the decrypted key.
 */
const everyLevel = (expected: Levels) =>
  Effect.gen(function* () {
    const { pfx, iterations } = expected
    const top = same("PFX", pfx, (b) => pkijs.PFX.fromBER(b))
    const [, authSafeInfo, macDataBlock] = elementsOf(pfx)
    if (authSafeInfo === undefined || macDataBlock === undefined) throw new Error("PFX without MacData")
    const macData = same("MacData", bytesOf(macDataBlock), (b) => pkijs.MacData.fromBER(b))
    // iterations INTEGER DEFAULT 1: absent means 1.
    expect(macData.iterations ?? 1).toBe(iterations)
    expect(new Uint8Array(macData.macSalt.getValue()).length).toBe(expected.macSaltLength)
    const digestInfoBlock = at(elementsOf(bytesOf(macDataBlock)), 0)
    same("MacData DigestInfo", bytesOf(digestInfoBlock), (b) => pkijs.DigestInfo.fromBER(b))
    const digestAlgorithm = bytesOf(at(elementsOf(bytesOf(digestInfoBlock)), 0))
    same("MAC digest AlgorithmIdentifier", digestAlgorithm, (b) => pkijs.AlgorithmIdentifier.fromBER(b))
    expect(hexOf(digestAlgorithm), "MAC digest AlgorithmIdentifier").toBe(
      derOf(
        new asn1js.Sequence({
          value: [new asn1js.ObjectIdentifier({ value: expected.macDigest }), new asn1js.Null()],
        }),
      ),
    )

    expect(top.authSafe.contentType).toBe(oids.data)
    same("PFX ContentInfo", bytesOf(authSafeInfo), (b) => pkijs.ContentInfo.fromBER(b))
    const authSafeBytes = new Uint8Array((top.authSafe.content as asn1js.OctetString).getValue())
    const authSafe = same("AuthenticatedSafe", authSafeBytes, (b) => pkijs.AuthenticatedSafe.fromBER(b))
    expect(authSafe.safeContents.map((info) => info.contentType)).toEqual([oids.encryptedData, oids.data])
    const [certificatesInfo, keyInfo] = elementsOf(authSafeBytes).map((block, i) => {
      const bytes = bytesOf(block)
      same(`AuthenticatedSafe ContentInfo ${i}`, bytes, (b) => pkijs.ContentInfo.fromBER(b))
      // ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content }
      return at(elementsOf(bytesOf(at(elementsOf(bytes), 1))), 0)
    })
    if (certificatesInfo === undefined || keyInfo === undefined) throw new Error("two ContentInfos expected")

    // The certificates: EncryptedData, decrypted to a SafeContents of certificate bags.
    const encryptedDataBytes = bytesOf(certificatesInfo)
    const encrypted = same("EncryptedData", encryptedDataBytes, (b) => pkijs.EncryptedData.fromBER(b))
    expect(encrypted.version).toBe(0)
    const contentInfoBlock = at(elementsOf(encryptedDataBytes), 1)
    const encryptedContent = same("EncryptedContentInfo", bytesOf(contentInfoBlock), (b) =>
      pkijs.EncryptedContentInfo.fromBER(b),
    )
    expect(encryptedContent.contentType).toBe(oids.data)
    const certificateContents = yield* encryptionLevel(
      "certificates",
      at(elementsOf(bytesOf(contentInfoBlock)), 1),
      Uint8Array.from((encryptedContent.encryptedContent as asn1js.OctetString).valueBlock.valueHexView),
      expected.certificateAlgorithm,
      expected,
    )
    const certificateBags = bagsOf("certificate SafeContents", certificateContents)
    expect(certificateBags.map((bag) => bag.bagId)).toEqual(expected.certificates.map(() => oids.certBag))
    certificateBags.forEach((bag, i) => {
      const certBag = same(`CertBag ${i}`, bag.value, (b) => pkijs.CertBag.fromBER(b))
      expect(certBag.certId).toBe(oids.x509Certificate)
      expect(hexOf((certBag.certValue as asn1js.OctetString).getValue()), `certificate ${i}`).toBe(
        hexOf(expected.certificates[i] ?? new Uint8Array(0)),
      )
      if (i === 0) expectAttributes("leaf certificate bag", bag.attributes, expected)
      else expect(bag.attributes).toEqual([])
    })

    // The key: a plain SafeContents holding one shrouded key bag.
    const keyBags = bagsOf("key SafeContents", new Uint8Array((keyInfo as asn1js.OctetString).getValue()))
    expect(keyBags.map((bag) => bag.bagId)).toEqual([oids.pkcs8ShroudedKeyBag])
    const keyBag = keyBags[0]
    if (keyBag === undefined) throw new Error("no key bag")
    expectAttributes("key bag", keyBag.attributes, expected)
    const shrouded = same("EncryptedPrivateKeyInfo", keyBag.value, (b) =>
      pkijs.PKCS8ShroudedKeyBag.fromBER(b),
    )
    const pkcs8 = yield* encryptionLevel(
      "key",
      at(elementsOf(keyBag.value), 0),
      Uint8Array.from(shrouded.encryptedData.valueBlock.valueHexView),
      expected.keyAlgorithm,
      expected,
    )
    expect(hexOf(pkcs8), "decrypted key").toBe(hexOf(expected.pkcs8))
  })

describe("a PFX as pkijs writes it", () => {
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
  // the levels inside are compared here (see `everyLevel`), for each profile.
  it.effect("every level inside a modern PFX is byte for byte what pkijs writes for it", () =>
    Effect.gen(function* () {
      const key = yield* Effect.promise(() => generateKey("P-256"))
      const material = yield* Effect.promise(async () => makeMaterial(key, 3, await makeAuthorities()))
      for (const iterations of [1, 2048]) {
        const pfx = yield* encodePfx(
          { ...material, key: Redacted.make(key.pkcs8) },
          { encoding: "modern", password: Redacted.make("pw"), friendlyName: "levels", iterations },
        )
        yield* everyLevel({
          pfx,
          certificates: [material.leaf, ...material.chain],
          pkcs8: key.pkcs8,
          friendlyName: "levels",
          iterations,
          macDigest: oids.sha256,
          macSaltLength: 16,
          certificateAlgorithm: oids.pbes2,
          keyAlgorithm: oids.pbes2,
          open: openPbes2,
        })
      }
    }),
  )

  // A fleet's deploys share their CAs: each PFX built one after another holds exactly its own chain,
  // every level as pkijs writes it.
  it.effect(
    "PFX files sharing CA certificates, built one after another, each hold exactly their own chain",
    () =>
      Effect.gen(function* () {
        const authorities = yield* Effect.promise(() => makeAuthorities())
        for (const [subject, spec, length] of [
          ["CN=first.example.test", "P-256", 4],
          ["CN=second.example.test", "RSA-2048", 3],
          ["CN=third.example.test", "P-256", 4],
          ["CN=fourth.example.test", "P-384", 2],
        ] as const) {
          const key = yield* Effect.promise(() => generateKey(spec))
          const material = yield* Effect.promise(() => makeMaterial(key, length, authorities, subject))
          const pfx = yield* encodePfx(
            // The caller's own copies of the CA certificates, as each new deploy's material holds them.
            {
              leaf: material.leaf,
              chain: material.chain.map((c) => c.slice()),
              key: Redacted.make(key.pkcs8),
            },
            { encoding: "modern", password: Redacted.make("pw"), friendlyName: "shared", iterations: 1 },
          )
          yield* everyLevel({
            pfx,
            certificates: [material.leaf, ...material.chain],
            pkcs8: key.pkcs8,
            friendlyName: "shared",
            iterations: 1,
            macDigest: oids.sha256,
            macSaltLength: 16,
            certificateAlgorithm: oids.pbes2,
            keyAlgorithm: oids.pbes2,
            open: openPbes2,
          })
        }
      }),
  )

  it.effect(
    "every level inside a legacy PFX (3DES or RC2-40 certificates) is byte for byte what pkijs writes for it",
    () =>
      Effect.gen(function* () {
        const key = yield* Effect.promise(() => generateKey("P-256"))
        const material = yield* Effect.promise(async () => makeMaterial(key, 3, await makeAuthorities()))
        for (const cipher of ["3des", "rc2-40"] as const)
          for (const iterations of [1, 2048]) {
            const pfx = yield* encodePfx(
              { ...material, key: Redacted.make(key.pkcs8) },
              {
                encoding: "legacy",
                legacyCertificateCipher: cipher,
                password: Redacted.make("pw"),
                friendlyName: "levels",
                iterations,
              },
            )
            yield* everyLevel({
              pfx,
              certificates: [material.leaf, ...material.chain],
              pkcs8: key.pkcs8,
              friendlyName: "levels",
              iterations,
              macDigest: oids.sha1,
              macSaltLength: 8,
              certificateAlgorithm: cipher === "3des" ? oids.pbeSha1TripleDes : oids.pbeSha1Rc2_40,
              keyAlgorithm: oids.pbeSha1TripleDes,
              open: openPbes1,
            })
          }
      }),
  )
})
