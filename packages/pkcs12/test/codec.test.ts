import { createHmac, createPrivateKey, createPublicKey } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { PfxCodec } from "@kvdeploy/core"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as pkijs from "pkijs"
import { beforeAll } from "vitest"
import { certificateFacts, decodePfx, encodePfx, inspectMaterial, layer } from "../src/index.js"
import { bmpPassword, KdfPurpose, pkcs12Kdf } from "../src/pkcs12Kdf.js"
import { publicKeysEqual } from "../src/privateKey.js"
import {
  canonicalPkcs8,
  generateKey,
  hex,
  issue,
  makeAuthorities,
  makeMaterial,
  type TestAuthorities,
  type TestKey,
} from "./fixtures.js"

let authorities: TestAuthorities
let rsa: TestKey
let ec: TestKey
let other: TestKey

beforeAll(async () => {
  authorities = await makeAuthorities()
  rsa = await generateKey("RSA-2048")
  ec = await generateKey("P-256")
  other = await generateKey("P-256")
})

const password = Redacted.make("correct horse")

describe("encodePfx / decodePfx", () => {
  for (const encoding of ["modern", "legacy"] as const) {
    it.effect(`round-trips key, leaf and a 4-certificate chain (${encoding})`, () =>
      Effect.gen(function* () {
        const material = yield* Effect.promise(() => makeMaterial(rsa, 4, authorities))
        // Give the chain out of order: the codec orders it leaf-first.
        const shuffled = { ...material, chain: [...material.chain].reverse() }
        const pfx = yield* encodePfx(shuffled, { encoding, password, friendlyName: "app" })
        const back = yield* decodePfx(pfx, password)
        expect(hex(back.leaf)).toBe(hex(material.leaf))
        expect(back.chain.map(hex)).toEqual(material.chain.map(hex))
        expect(hex(Redacted.value(back.key))).toBe(hex(canonicalPkcs8(rsa.pkcs8)))
      }),
    )
  }

  it.effect("round-trips with the empty password and a non-ASCII one", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(ec, 2, authorities))
      for (const pw of ["", "pässwörd-😀-密码"]) {
        for (const encoding of ["modern", "legacy"] as const) {
          const pfx = yield* encodePfx(material, { encoding, password: Redacted.make(pw) })
          const back = yield* decodePfx(pfx, Redacted.make(pw))
          expect(hex(back.leaf)).toBe(hex(material.leaf))
        }
      }
    }),
  )

  it.effect("legacy with RC2-40 certificates round-trips", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(ec, 3, authorities))
      const pfx = yield* encodePfx(material, {
        encoding: "legacy",
        password,
        legacyCertificateCipher: "rc2-40",
      })
      const back = yield* decodePfx(pfx, password)
      expect(back.chain.map(hex)).toEqual(material.chain.map(hex))
    }),
  )

  it.effect("refuses to encode a key that does not match the leaf", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(ec, 2, authorities))
      const error = yield* Effect.flip(
        encodePfx({ ...material, key: Redacted.make(other.pkcs8) }, { encoding: "modern", password }),
      )
      expect(error._tag).toBe("PfxEncodeError")
      expect(error.reason).toMatch(/does not match the leaf/)
    }),
  )

  it.effect("a wrong password is a tagged wrong-password error", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(ec, 1, authorities))
      for (const encoding of ["modern", "legacy"] as const) {
        const pfx = yield* encodePfx(material, { encoding, password })
        const error = yield* Effect.flip(decodePfx(pfx, Redacted.make("wrong")))
        expect(error.reason).toBe("wrong-password")
      }
    }),
  )
})

describe("certificateFacts", () => {
  it.effect("reports serial, thumbprints, names, SANs, key and self-signature", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(rsa, 2, authorities))
      const facts = yield* certificateFacts(material.leaf)
      const { X509Certificate } = yield* Effect.promise(() => import("node:crypto"))
      const reference = new X509Certificate(Buffer.from(material.leaf))
      expect(facts.serialHex).toBe(reference.serialNumber.toLowerCase().replace(/^(00)+/, ""))
      expect(facts.serialHex.startsWith("00")).toBe(false)
      expect(facts.sha256Thumbprint).toBe(reference.fingerprint256.replaceAll(":", "").toLowerCase())
      expect(Buffer.from(facts.x5t, "base64url").toString("hex")).toBe(
        reference.fingerprint.replaceAll(":", "").toLowerCase(),
      )
      expect(facts.subject).toContain("CN=app.example.test")
      expect(facts.issuer).toContain("CN=kvdeploy Test Root")
      expect(facts.sans).toEqual(["DNS:app.example.test", "IP:192.0.2.7"])
      expect(facts.keyType).toBe("RSA")
      expect(facts.keySize).toBe(2048)
      expect(facts.selfSigned).toBe(false)
      expect(facts.notAfter.getTime()).toBe(new Date(reference.validTo).getTime())
      const root = yield* certificateFacts(authorities.certificates[0] ?? new Uint8Array())
      expect(root.selfSigned).toBe(true)
      expect(root.curve).toBe("P-384")
    }),
  )

  it.effect(
    "a self-signed server certificate without keyCertSign is still self-signed, and alone makes a clean chain",
    () =>
      Effect.gen(function* () {
        const der = yield* Effect.promise(() =>
          issue({
            subject: "CN=self.example.test",
            key: ec,
            ca: false,
            keyUsage: 0x80 | 0x08 /* digitalSignature, keyAgreement */,
          }),
        )
        const facts = yield* certificateFacts(der)
        expect(facts.selfSigned).toBe(true)
        const inspected = yield* inspectMaterial({ leaf: der, chain: [], key: Redacted.make(ec.pkcs8) })
        expect(inspected.problems).toEqual([])
        const notSelf = yield* certificateFacts(
          (yield* Effect.promise(() => makeMaterial(ec, 2, authorities))).leaf,
        )
        expect(notSelf.selfSigned).toBe(false)
      }),
  )

  it.effect("fails with MaterialInvalid on garbage", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(certificateFacts(new Uint8Array([1, 2, 3])))
      expect(error._tag).toBe("MaterialInvalid")
    }),
  )
})

describe("inspectMaterial", () => {
  it.effect("orders the chain and finds no problem in good material", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(ec, 4, authorities))
      const inspected = yield* inspectMaterial({ ...material, chain: [...material.chain].reverse() })
      expect(inspected.problems).toEqual([])
      expect(inspected.keyMatchesLeaf).toBe(true)
      expect(inspected.chain.map((c) => hex(c.der))).toEqual(material.chain.map(hex))
      expect(inspected.key).toEqual({ keyType: "EC", curve: "P-256" })
    }),
  )

  it.effect("reports a mismatched key, a missing link and an unrelated certificate", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(ec, 4, authorities))
      // leaf <- int2 <- int1 <- root; drop int1 (chain[1]) so root no longer links.
      const unrelated = yield* Effect.promise(() =>
        issue({ subject: "CN=Somebody Else", key: other, ca: true }),
      )
      const inspected = yield* inspectMaterial({
        leaf: material.leaf,
        chain: [material.chain[0] ?? new Uint8Array(), material.chain[2] ?? new Uint8Array(), unrelated],
        key: Redacted.make(other.pkcs8),
      })
      expect(inspected.keyMatchesLeaf).toBe(false)
      expect(inspected.chain).toHaveLength(1)
      const fields = inspected.problems.map((p) => p.field)
      expect(fields).toContain("key")
      expect(fields).toContain("chain")
      expect(fields).toContain("chain[1]")
      expect(fields).toContain("chain[2]")
      for (const p of inspected.problems) expect(p.fix.length).toBeGreaterThan(0)
    }),
  )

  it.effect("reports a key type Key Vault refuses (RSA 1024), and still encodes it", () =>
    Effect.gen(function* () {
      const weak = yield* Effect.promise(() => generateKey("RSA-1024"))
      const material = yield* Effect.promise(() => makeMaterial(weak, 2, authorities))
      const inspected = yield* inspectMaterial(material)
      expect(inspected.key).toEqual({ keyType: "RSA", keySize: 1024 })
      expect(inspected.problems).toEqual([
        {
          field: "key",
          message: "is an RSA 1024 key, which Key Vault does not accept",
          fix: "use an RSA (2048, 3072, 4096) or EC (P-256, P-384, P-521, P-256K) key",
        },
      ])
      const pfx = yield* encodePfx(material, { encoding: "modern", password })
      expect((yield* decodePfx(pfx, password)).chain).toHaveLength(1)
    }),
  )

  it.effect("works through the PfxCodec layer", () =>
    Effect.gen(function* () {
      const codec = yield* PfxCodec
      const material = yield* Effect.promise(() => makeMaterial(ec, 2, authorities))
      const pfx = yield* codec.encode(material, { encoding: "modern", password })
      const back = yield* codec.decode(pfx, password)
      const inspected = yield* codec.inspect(back)
      expect(inspected.problems).toEqual([])
    }).pipe(Effect.provide(layer)),
  )
})

describe("one analysis per material object (inspect then encode, decode then inspect)", () => {
  const mismatch = /does not match the leaf/

  it.effect("encode after inspect writes the same PFX content and still refuses a key changed in place", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(ec, 3, authorities))
      const key = Redacted.value(material.key).slice()
      const own = {
        leaf: material.leaf.slice(),
        chain: material.chain.map((c) => c.slice()),
        key: Redacted.make(key),
      }
      const inspected = yield* inspectMaterial(own)
      expect(inspected.keyMatchesLeaf).toBe(true)
      const back = yield* decodePfx(yield* encodePfx(own, { encoding: "modern", password }), password)
      expect(hex(back.leaf)).toBe(hex(material.leaf))
      expect(back.chain.map(hex)).toEqual(material.chain.map(hex))
      // Overwrite the key bytes of the already-inspected object with another P-256 key (same length).
      const replacement = canonicalPkcs8(other.pkcs8)
      expect(replacement.length).toBe(key.length)
      key.set(replacement)
      const error = yield* Effect.flip(encodePfx(own, { encoding: "modern", password }))
      expect(error.reason).toMatch(mismatch)
      const again = yield* inspectMaterial(own)
      expect(again.keyMatchesLeaf).toBe(false)
    }),
  )

  it.effect("a leaf replaced in place after inspect is analysed afresh", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(ec, 2, authorities))
      const otherLeaf = yield* Effect.promise(() =>
        issue({ subject: "CN=app.example.test, O=kvdeploy tests", key: other, ca: false }),
      )
      const own = { ...material, leaf: material.leaf.slice() }
      expect((yield* inspectMaterial(own)).keyMatchesLeaf).toBe(true)
      // Same subject and length, different key: only the bytes tell them apart.
      if (otherLeaf.length === own.leaf.length) {
        own.leaf.set(otherLeaf)
        expect((yield* Effect.flip(encodePfx(own, { encoding: "legacy", password }))).reason).toMatch(
          mismatch,
        )
      } else {
        const swapped = { ...own, leaf: otherLeaf }
        expect((yield* Effect.flip(encodePfx(swapped, { encoding: "legacy", password }))).reason).toMatch(
          mismatch,
        )
      }
    }),
  )

  it.effect("facts handed out are copies: changing them changes nothing inside", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(ec, 2, authorities))
      const inspected = yield* inspectMaterial(material)
      inspected.leaf.der.fill(0)
      const again = yield* inspectMaterial(material)
      expect(hex(again.leaf.der)).toBe(hex(material.leaf))
      const back = yield* decodePfx(yield* encodePfx(material, { encoding: "modern", password }), password)
      expect(hex(back.leaf)).toBe(hex(material.leaf))
    }),
  )

  it.effect("decoded material inspects and re-encodes like any other, and its arrays are the caller's", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(ec, 4, authorities))
      const decoded = yield* decodePfx(
        yield* encodePfx(
          { ...material, chain: [...material.chain].reverse() },
          { encoding: "modern", password },
        ),
        password,
      )
      const inspected = yield* inspectMaterial(decoded)
      const fresh = yield* inspectMaterial({
        leaf: decoded.leaf.slice(),
        chain: decoded.chain.map((c) => c.slice()),
        key: decoded.key,
      })
      expect(inspected).toEqual(fresh)
      expect(inspected.problems).toEqual([])
      // The caller owns the returned key bytes: replacing them makes encode check again and refuse.
      Redacted.value(decoded.key).set(canonicalPkcs8(other.pkcs8))
      expect((yield* Effect.flip(encodePfx(decoded, { encoding: "modern", password }))).reason).toMatch(
        mismatch,
      )
    }),
  )
})

describe("key comparison", () => {
  it("an RSA and an EC key are unequal, and the comparison leaves no OpenSSL error for the next key load", () => {
    const rsaPublic = createPublicKey(
      createPrivateKey({ key: Buffer.from(rsa.pkcs8), format: "der", type: "pkcs8" }),
    )
    const ecPublic = createPublicKey(
      createPrivateKey({ key: Buffer.from(ec.pkcs8), format: "der", type: "pkcs8" }),
    )
    expect(publicKeysEqual(rsaPublic, ecPublic)).toBe(false)
    expect(publicKeysEqual(ecPublic, ecPublic)).toBe(true)
    expect(() =>
      createPrivateKey({ key: Buffer.from(rsa.pkcs8), format: "der", type: "pkcs8" }),
    ).not.toThrow()
  })
})

describe("BER input (as Windows and some Java versions write)", () => {
  it.effect("reads constructed OCTET STRINGs and indefinite lengths in the authenticated safe", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(rsa, 4, authorities))
      const pfxBytes = yield* encodePfx(material, { encoding: "modern", password })
      const pfx = pkijs.PFX.fromBER(Uint8Array.from(pfxBytes))
      const content = pfx.authSafe.content as asn1js.OctetString
      const safe = pkijs.AuthenticatedSafe.fromBER(content.getValue())
      const [certs, key] = safe.safeContents
      if (certs === undefined || key === undefined) throw new Error("unexpected PFX layout")
      const encrypted = new pkijs.EncryptedData({ schema: certs.content })
      const eci = encrypted.encryptedContentInfo
      // pkijs splits the ciphertext into 1 KB pieces of a constructed, indefinite-length OCTET STRING.
      const split = new pkijs.EncryptedContentInfo({
        contentType: eci.contentType,
        contentEncryptionAlgorithm: eci.contentEncryptionAlgorithm,
        encryptedContent: new asn1js.OctetString({ valueHex: eci.getEncryptedContent() }),
      })
      expect(split.encryptedContent?.idBlock.isConstructed).toBe(true)
      const rebuilt = new Uint8Array(
        new pkijs.AuthenticatedSafe({
          safeContents: [
            new pkijs.ContentInfo({
              contentType: certs.contentType,
              content: new pkijs.EncryptedData({ version: 0, encryptedContentInfo: split }).toSchema(),
            }),
            key,
          ],
        })
          .toSchema()
          .toBER(false),
      )
      const half = Math.floor(rebuilt.length / 2)
      const macData = pfx.macData
      if (macData === undefined) throw new Error("no MAC")
      const salt = macData.macSalt.valueBlock.valueHexView
      const iterations = macData.iterations ?? 1
      const macKey = pkcs12Kdf(
        "sha256",
        bmpPassword(Redacted.value(password)),
        salt,
        iterations,
        KdfPurpose.mac,
        32,
      )
      const ber = new pkijs.PFX({
        version: 3,
        authSafe: new pkijs.ContentInfo({
          contentType: pfx.authSafe.contentType,
          content: new asn1js.OctetString({
            isConstructed: true,
            idBlock: { isConstructed: true },
            lenBlock: { isIndefiniteForm: true },
            value: [
              new asn1js.OctetString({ valueHex: rebuilt.subarray(0, half) }),
              new asn1js.OctetString({ valueHex: rebuilt.subarray(half) }),
            ],
          }),
        }),
        macData: new pkijs.MacData({
          mac: new pkijs.DigestInfo({
            digestAlgorithm: macData.mac.digestAlgorithm,
            digest: new asn1js.OctetString({
              valueHex: createHmac("sha256", macKey).update(rebuilt).digest(),
            }),
          }),
          macSalt: macData.macSalt,
          iterations,
        }),
      })
      const berBytes = new Uint8Array(ber.toSchema().toBER(false))
      expect(hex(berBytes)).not.toBe(hex(pfxBytes))
      const back = yield* decodePfx(berBytes, password)
      expect(hex(back.leaf)).toBe(hex(material.leaf))
      expect(back.chain.map(hex)).toEqual(material.chain.map(hex))
    }),
  )
})
