import "reflect-metadata"
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
} from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { type CertificateMaterial, PfxCodec } from "@kvdeploy/core"
import * as x509 from "@peculiar/x509"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as pkijs from "pkijs"
import { beforeAll } from "vitest"
import { certificateFacts, decodePfx, encodePfx, inspectMaterial, layer, x5tOf } from "../src/index.js"
import {
  algorithm,
  authenticatedSafe,
  certificateBag,
  dataContent,
  encryptedContent,
  pfx as pfxOf,
  pkcs12PbeParameters,
  safeContents,
  shroudedKeyBag,
} from "../src/pfxStructure.js"
import { bmpPassword, KdfPurpose, pkcs12Kdf } from "../src/pkcs12Kdf.js"
import { publicKeysEqual } from "../src/privateKey.js"
import { algorithmOf } from "../src/testing/index.js"
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

/** PBE-SHA1-3DES (PKCS#12's, one iteration) of `data` under the password's bytes as given: algorithm and ciphertext. */
const pbeSha1TripleDes = (data: Uint8Array, password: Uint8Array, salt: Uint8Array = randomBytes(8)) => {
  const key = pkcs12Kdf("sha1", password, salt, 1, KdfPurpose.key, 24)
  const iv = pkcs12Kdf("sha1", password, salt, 1, KdfPurpose.iv, 8)
  const cipher = createCipheriv("des-ede3-cbc", key, iv)
  return {
    algorithm: algorithm("1.2.840.113549.1.12.1.3", pkcs12PbeParameters(salt, 1)),
    ciphertext: new Uint8Array(Buffer.concat([cipher.update(data), cipher.final()])),
  }
}

/**
 * A legacy PFX of `material`'s certificates (PBE-SHA1-3DES) and `keyBag` (a shrouded key bag's
 * algorithm and ciphertext), with a SHA-1 MAC, all under the password's bytes as given.
 */
const legacyPfxOf = (
  material: CertificateMaterial,
  keyBag: { readonly algorithm: ReturnType<typeof algorithm>; readonly ciphertext: Uint8Array },
  password: Uint8Array,
): Uint8Array => {
  const certificates = pbeSha1TripleDes(
    safeContents([material.leaf, ...material.chain].map((der) => certificateBag(der))),
    password,
  )
  const authSafe = authenticatedSafe([
    encryptedContent(certificates.algorithm, certificates.ciphertext),
    dataContent(safeContents([shroudedKeyBag(keyBag.algorithm, keyBag.ciphertext, [])])),
  ])
  const macSalt = randomBytes(8)
  const macKey = pkcs12Kdf("sha1", password, macSalt, 1, KdfPurpose.mac, 20)
  return pfxOf(authSafe, "1.3.14.3.2.26", createHmac("sha1", macKey).update(authSafe).digest(), macSalt, 1)
}

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
      expect(error.finding).toMatch(/does not match the leaf/)
    }),
  )

  it.effect("a certificate that does not link to the leaf is written after the chain, not dropped", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(ec, 3, authorities))
      const unrelated = yield* Effect.promise(() =>
        issue({ subject: "CN=Somebody Else", key: other, ca: true }),
      )
      for (const encoding of ["modern", "legacy"] as const) {
        const pfx = yield* encodePfx(
          { ...material, chain: [unrelated, ...material.chain] },
          { encoding, password },
        )
        const back = yield* decodePfx(pfx, password)
        expect(hex(back.leaf)).toBe(hex(material.leaf))
        expect(back.chain.map(hex)).toEqual([...material.chain, unrelated].map(hex))
      }
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

  it.effect("x5t is the unpadded base64url SHA-1 of the DER, exactly as Key Vault reports it", () =>
    Effect.gen(function* () {
      for (const der of [
        ...authorities.certificates,
        (yield* Effect.promise(() => makeMaterial(ec, 2, authorities))).leaf,
      ]) {
        const expected = createHash("sha1").update(der).digest("base64url")
        expect(expected).toMatch(/^[A-Za-z0-9_-]{27}$/)
        expect((yield* certificateFacts(der)).x5t).toBe(expected)
        expect(x5tOf(der)).toBe(expected)
      }
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
      expect(fields).toEqual(["key", "chain[1]", "chain[2]"])
      // The missing int1 is named: the root may be above the gap (nothing in the file tells it from an
      // unrelated CA, so each CA left over says it; interop-37 dropped it with the false gap).
      const root = inspected.problems[1]
      expect(root?.message).toContain(
        `the path stops at "CN=kvdeploy Test Intermediate 2, O=kvdeploy tests", whose issuer "CN=kvdeploy Test Intermediate 1, O=kvdeploy tests" is not given`,
      )
      expect(root?.fix).toContain(
        `add the certificate of "CN=kvdeploy Test Intermediate 1, O=kvdeploy tests"`,
      )
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

  it.effect(
    "reports an EC key on a curve Key Vault refuses (P-192, P-224), with its matching certificate",
    () =>
      Effect.gen(function* () {
        const root = authorities.issuers[0]
        if (root === undefined) throw new Error("fixtures")
        for (const [curve, named] of [
          ["prime192v1", "EC prime192v1"],
          ["secp224r1", "EC secp224r1"],
        ] as const) {
          // WebCrypto has no P-192 or P-224 key: node:crypto makes it, the root signs its SPKI.
          const pair = generateKeyPairSync("ec", { namedCurve: curve })
          const leaf = yield* Effect.promise(async () => {
            const cert = await x509.X509CertificateGenerator.create({
              serialNumber: "01",
              subject: `CN=${curve}.example.test`,
              issuer: root.name,
              notBefore: new Date(Date.now() - 3600_000),
              notAfter: new Date(Date.now() + 86400_000),
              signingAlgorithm: algorithmOf(root.key.spec),
              publicKey: new Uint8Array(pair.publicKey.export({ type: "spki", format: "der" })),
              signingKey: root.key.pair.privateKey,
            })
            return new Uint8Array(cert.rawData)
          })
          const inspected = yield* inspectMaterial({
            leaf,
            chain: [authorities.certificates[0] ?? new Uint8Array()],
            key: Redacted.make(new Uint8Array(pair.privateKey.export({ type: "pkcs8", format: "der" }))),
          })
          expect(inspected.keyMatchesLeaf).toBe(true)
          expect(inspected.key).toEqual({ keyType: "EC" })
          expect(inspected.problems).toEqual([
            {
              field: "key",
              message: `is an ${named} key, which Key Vault does not accept`,
              fix: "use an RSA (2048, 3072, 4096) or EC (P-256, P-384, P-521, P-256K) key",
            },
          ])
        }
      }),
  )

  it.effect(
    "a chain that stops below its root (the root left out, as most full chains do) has no problem",
    () =>
      Effect.gen(function* () {
        const material = yield* Effect.promise(() => makeMaterial(ec, 4, authorities))
        // leaf <- int2 <- int1 (<- root, not supplied); also a leaf alone, issued by a CA not supplied.
        for (const chain of [material.chain.slice(0, 2), material.chain.slice(0, 1), []]) {
          const inspected = yield* inspectMaterial({ ...material, chain })
          expect(inspected.problems).toEqual([])
          expect(inspected.chain.map((c) => hex(c.der))).toEqual(chain.map(hex))
        }
      }),
  )

  it.effect(
    "a certificate named as its own issuer but signed by another key is not self-signed, and its issuer links",
    () =>
      Effect.gen(function* () {
        // An internal CA that gave a server certificate its own name: subject = issuer, another key.
        const caKey = yield* Effect.promise(() => generateKey("P-256"))
        const ca = { name: "CN=same.example.test", key: caKey }
        const caDer = yield* Effect.promise(() => issue({ subject: ca.name, key: caKey, ca: true }))
        const leaf = yield* Effect.promise(() => issue({ subject: ca.name, key: ec, issuer: ca, ca: false }))
        expect((yield* certificateFacts(leaf)).selfSigned).toBe(false)
        expect((yield* certificateFacts(caDer)).selfSigned).toBe(true)
        const inspected = yield* inspectMaterial({ leaf, chain: [caDer], key: Redacted.make(ec.pkcs8) })
        expect(inspected.leaf.selfSigned).toBe(false)
        expect(inspected.chain.map((c) => hex(c.der))).toEqual([hex(caDer)])
        expect(inspected.problems).toEqual([])
      }),
  )

  it.effect("duplicates of chain certificates and of the leaf are dropped without a problem", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(ec, 4, authorities))
      const [int2, int1, root] = material.chain
      if (int2 === undefined || int1 === undefined || root === undefined) throw new Error("fixtures")
      // A full chain and its intermediates concatenated, with the leaf again: each certificate once.
      const chain = [int2, int1, root, material.leaf.slice(), int1.slice(), int2.slice()]
      const inspected = yield* inspectMaterial({ ...material, chain })
      expect(inspected.problems).toEqual([])
      expect(inspected.chain.map((c) => hex(c.der))).toEqual(material.chain.map(hex))
      const back = yield* decodePfx(
        yield* encodePfx({ ...material, chain }, { encoding: "modern", password }),
        password,
      )
      expect(back.chain.map(hex)).toEqual(material.chain.map(hex))
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

  it.effect(
    "says the material came from a PFX only for the operator's file: not through the layer (a backing secret's restore or rollback)",
    () =>
      Effect.gen(function* () {
        const codec = yield* PfxCodec
        const material = yield* Effect.promise(() => makeMaterial(ec, 1, authorities))
        const pfx = yield* codec.encode(material, { encoding: "modern", password })
        expect((yield* codec.decode(pfx, password)).from).toBeUndefined()
        expect((yield* decodePfx(pfx, password)).from).toBeUndefined()
        expect((yield* decodePfx(pfx, password, { operatorFile: true })).from).toBe("pfx")
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
      expect(error.finding).toMatch(mismatch)
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
        expect((yield* Effect.flip(encodePfx(own, { encoding: "legacy", password }))).finding).toMatch(
          mismatch,
        )
      } else {
        const swapped = { ...own, leaf: otherLeaf }
        expect((yield* Effect.flip(encodePfx(swapped, { encoding: "legacy", password }))).finding).toMatch(
          mismatch,
        )
      }
    }),
  )

  it.effect("a certificate added to the chain array in place after inspect is inspected and written", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(ec, 3, authorities))
      const [int1, root] = material.chain
      if (int1 === undefined || root === undefined) throw new Error("fixtures")
      const chain = [int1]
      const own = { ...material, chain }
      expect((yield* inspectMaterial(own)).chain).toHaveLength(1)
      chain.push(root)
      expect((yield* inspectMaterial(own)).chain.map((c) => hex(c.der))).toEqual([int1, root].map(hex))
      const back = yield* decodePfx(yield* encodePfx(own, { encoding: "modern", password }), password)
      expect(back.chain.map(hex)).toEqual([int1, root].map(hex))
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
      expect((yield* Effect.flip(encodePfx(decoded, { encoding: "modern", password }))).finding).toMatch(
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

  it.effect(
    "a MacData without an iteration count is one iteration (RFC 7292's DEFAULT 1; OpenSSL leaves 1 out, and so does kvdeploy), and one with 1 written out is read too",
    () =>
      Effect.gen(function* () {
        const material = yield* Effect.promise(() => makeMaterial(ec, 2, authorities))
        for (const encoding of ["modern", "legacy"] as const) {
          const withoutCount = Uint8Array.from(
            yield* encodePfx(material, { encoding, password, iterations: 1 }),
          )
          const pfx = pkijs.PFX.fromBER(withoutCount)
          const macData = pfx.macData
          if (macData === undefined) throw new Error("no MAC")
          // DER leaves the default out, as `openssl pkcs12 -nomaciter` writes it.
          expect(macData.iterations).toBeUndefined()
          // The same MAC (computed with one iteration), its count written out as BER writers may.
          pfx.macData = new pkijs.MacData({ mac: macData.mac, macSalt: macData.macSalt, iterations: 1 })
          const withCount = new Uint8Array(pfx.toSchema().toBER(false))
          expect(pkijs.PFX.fromBER(withCount).macData?.iterations).toBe(1)
          for (const bytes of [withoutCount, withCount]) {
            const back = yield* decodePfx(bytes, password)
            expect(hex(back.leaf)).toBe(hex(material.leaf))
            expect(back.chain.map(hex)).toEqual(material.chain.map(hex))
            // Still checked: one iteration under another password is not accepted.
            expect((yield* Effect.flip(decodePfx(bytes, Redacted.make("wrong")))).reason).toBe(
              "wrong-password",
            )
          }
        }
      }),
  )

  it.effect(
    "a MAC keyed with the empty password as no bytes at all (not 00 00) is read with the empty password",
    () =>
      Effect.gen(function* () {
        const material = yield* Effect.promise(() => makeMaterial(ec, 2, authorities))
        const empty = Redacted.make("")
        const pfx = pkijs.PFX.fromBER(
          Uint8Array.from(yield* encodePfx(material, { encoding: "modern", password: empty, iterations: 1 })),
        )
        const macData = pfx.macData
        if (macData === undefined) throw new Error("no MAC")
        const authSafe = new Uint8Array((pfx.authSafe.content as asn1js.OctetString).getValue())
        const macKey = pkcs12Kdf(
          "sha256",
          new Uint8Array(0),
          macData.macSalt.valueBlock.valueHexView,
          1,
          KdfPurpose.mac,
          32,
        )
        pfx.macData = new pkijs.MacData({
          mac: new pkijs.DigestInfo({
            digestAlgorithm: macData.mac.digestAlgorithm,
            digest: new asn1js.OctetString({
              valueHex: createHmac("sha256", macKey).update(authSafe).digest(),
            }),
          }),
          macSalt: macData.macSalt,
          iterations: 1,
        })
        const rewritten = new Uint8Array(pfx.toSchema().toBER(false))
        const back = yield* decodePfx(rewritten, empty)
        expect(hex(back.leaf)).toBe(hex(material.leaf))
        expect(back.chain.map(hex)).toEqual(material.chain.map(hex))
        expect((yield* Effect.flip(decodePfx(rewritten, Redacted.make(" ")))).reason).toBe("wrong-password")
      }),
  )

  it.effect(
    "a legacy PFX whose PBE and MAC keys come from the empty password as no bytes at all is read",
    () =>
      Effect.gen(function* () {
        const material = yield* Effect.promise(() => makeMaterial(ec, 2, authorities))
        const none = new Uint8Array(0)
        // PBE-SHA1-3DES with the password as zero bytes (not the BMPString 00 00 kvdeploy writes).
        const tripleDes = (data: Uint8Array) => pbeSha1TripleDes(data, none)
        const file = legacyPfxOf(material, tripleDes(Redacted.value(material.key)), none)
        const back = yield* decodePfx(file, Redacted.make(""))
        expect(hex(back.leaf)).toBe(hex(material.leaf))
        expect(back.chain.map(hex)).toEqual(material.chain.map(hex))
        expect(hex(Redacted.value(back.key))).toBe(hex(canonicalPkcs8(ec.pkcs8)))
      }),
  )

  it.effect(
    "an empty-password PFX written with the zero-byte convention is read even when the other convention's key passes the padding check",
    () =>
      Effect.gen(function* () {
        const material = yield* Effect.promise(() => makeMaterial(ec, 2, authorities))
        const none = new Uint8Array(0)
        const pkcs8 = Redacted.value(material.key)
        // A salt for which the BMPString-password's key and IV (tried first) also decrypt the key bag
        // with valid padding, to garbage: about 1 salt in 256.
        const paddingPassesFor = (salt: Uint8Array, ciphertext: Uint8Array) => {
          const key = pkcs12Kdf("sha1", bmpPassword(""), salt, 1, KdfPurpose.key, 24)
          const iv = pkcs12Kdf("sha1", bmpPassword(""), salt, 1, KdfPurpose.iv, 8)
          try {
            const d = createDecipheriv("des-ede3-cbc", key, iv)
            Buffer.concat([d.update(ciphertext), d.final()])
            return true
          } catch {
            return false
          }
        }
        let keyBag: ReturnType<typeof pbeSha1TripleDes> | undefined
        for (let i = 0; i < 20_000 && keyBag === undefined; i++) {
          const salt = randomBytes(8)
          const candidate = pbeSha1TripleDes(pkcs8, none, salt)
          if (paddingPassesFor(salt, candidate.ciphertext)) keyBag = candidate
        }
        if (keyBag === undefined)
          throw new Error("no salt found whose other-convention key passes the padding")
        const file = legacyPfxOf(material, keyBag, none)
        const back = yield* decodePfx(file, Redacted.make(""))
        expect(hex(Redacted.value(back.key))).toBe(hex(canonicalPkcs8(ec.pkcs8)))
      }),
  )

  it.effect(
    "a key bag that is unreadable although the MAC confirmed the password is a damaged file, not a wrong password",
    () =>
      Effect.gen(function* () {
        const material = yield* Effect.promise(() => makeMaterial(ec, 2, authorities))
        const password = bmpPassword("secret")
        const tripleDes = pbeSha1TripleDes
        /** A PFX with a valid MAC (password "secret") whose key bag holds `keyBytes` encrypted with `keyPassword`. */
        const fileWith = (keyBytes: Uint8Array, keyPassword: Uint8Array) =>
          legacyPfxOf(material, tripleDes(keyBytes, keyPassword), password)
        const pkcs8 = Redacted.value(material.key)
        // The key cut short: it decrypts (the padding is the cipher's), but is no key.
        const cut = yield* Effect.flip(
          decodePfx(fileWith(pkcs8.subarray(0, pkcs8.length - 20), password), Redacted.make("secret")),
        )
        expect(cut.reason).toBe("malformed")
        expect(cut.detail).toContain("the key bag is damaged")
        expect(cut.detail).not.toContain("password is wrong")
        // The key encrypted with another password than the MAC's.
        const other = yield* Effect.flip(
          decodePfx(fileWith(pkcs8, bmpPassword("other")), Redacted.make("secret")),
        )
        expect(other.reason).toBe("malformed")
        expect(other.detail).toMatch(/the key bag is damaged|another password/)
        // The intact file decodes, and a wrong password is still called one (by the MAC).
        expect(hex((yield* decodePfx(fileWith(pkcs8, password), Redacted.make("secret"))).leaf)).toBe(
          hex(material.leaf),
        )
        expect(
          (yield* Effect.flip(decodePfx(fileWith(pkcs8, password), Redacted.make("wrong")))).reason,
        ).toBe("wrong-password")
      }),
  )
})
