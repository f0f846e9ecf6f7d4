/**
 * decodePfx reads safe bags with pkijs's schemas but without pkijs's CertBag
 * class (which parsed every certificate into a pkijs Certificate). These
 * files are built bag by bag with pkijs, unencrypted and without a MAC (both
 * of which decodePfx reads), to reach each kind of bag the reader handles.
 */

import { webcrypto } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import type { CertificateMaterial } from "@kvdeploy/core"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as pkijs from "pkijs"
import { beforeAll } from "vitest"
import { oid } from "../src/algorithms.js"
import { decodePfx } from "../src/index.js"
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

let material: CertificateMaterial
let leafKey: TestKey
let authorities: TestAuthorities
beforeAll(async () => {
  leafKey = await generateKey("P-256")
  authorities = await makeAuthorities()
  material = await makeMaterial(leafKey, 2, authorities)
})

const octets = (bytes: Uint8Array | ArrayBuffer) => new asn1js.OctetString({ valueHex: bytes })
const certBag = (der: Uint8Array, certId: string = oid.x509Certificate) =>
  new pkijs.SafeBag({ bagId: oid.certBag, bagValue: new pkijs.CertBag({ certId, certValue: octets(der) }) })
const keyBag = (pkcs8: Uint8Array) =>
  new pkijs.SafeBag({ bagId: oid.keyBag, bagValue: pkijs.PrivateKeyInfo.fromBER(pkcs8) })
const secretBag = () =>
  new pkijs.SafeBag({
    bagId: "1.2.840.113549.1.12.10.1.5",
    bagValue: new pkijs.SecretBag({
      secretTypeId: "1.2.3.4",
      // Any ASN.1 value: pkijs wants one with toSchema().
      secretValue: new pkijs.AlgorithmIdentifier({ algorithmId: "1.2.3.4.5" }),
    }),
  })
/** The same bags with a localKeyID attribute. */
const withLocalKeyId = (bag: pkijs.SafeBag, id: Uint8Array) =>
  new pkijs.SafeBag({
    bagId: bag.bagId,
    bagValue: bag.bagValue,
    bagAttributes: [new pkijs.Attribute({ type: oid.localKeyId, values: [octets(id)] })],
  })
const nested = (bags: Array<pkijs.SafeBag>) =>
  new pkijs.SafeBag({ bagId: oid.safeContentsBag, bagValue: new pkijs.SafeContents({ safeBags: bags }) })
const dataBlock = (bags: Array<pkijs.SafeBag>) =>
  new pkijs.ContentInfo({
    contentType: oid.data,
    content: octets(new pkijs.SafeContents({ safeBags: bags }).toSchema().toBER(false)),
  })
const pfxOf = (...blocks: Array<Array<pkijs.SafeBag>>): Uint8Array => {
  const authenticatedSafe = new pkijs.AuthenticatedSafe({ safeContents: blocks.map(dataBlock) })
  const pfx = new pkijs.PFX({
    version: 3,
    authSafe: new pkijs.ContentInfo({
      contentType: oid.data,
      content: octets(authenticatedSafe.toSchema().toBER(false)),
    }),
  })
  return new Uint8Array(pfx.toSchema().toBER(false))
}
const decode = (pfx: Uint8Array) => decodePfx(pfx, Redacted.make(""))
const certificates = () => [material.leaf, ...material.chain].map((der) => certBag(der))
const key = () => keyBag(Redacted.value(material.key))

describe("safe bags", () => {
  it.effect("certificates, an unencrypted key, a nested safe contents and a skipped secret bag", () =>
    Effect.gen(function* () {
      const [leaf, ...chain] = certificates()
      const back = yield* decode(
        pfxOf([secretBag(), ...(leaf === undefined ? [] : [leaf])], [nested([...chain, key()])]),
      )
      expect(hex(back.leaf)).toBe(hex(material.leaf))
      expect(back.chain.map(hex)).toEqual(material.chain.map(hex))
      expect(hex(Redacted.value(back.key))).toBe(hex(canonicalPkcs8(Redacted.value(material.key))))
    }),
  )

  it.effect("a certificate bag of an unknown certificate type fails the block as malformed", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        decode(pfxOf([...certificates(), certBag(material.leaf, "1.2.840.113549.1.9.22.2"), key()])),
      )
      expect(error.reason).toBe("malformed")
      expect(error.detail).toMatch(/a safe contents block of the PFX is unreadable/)
    }),
  )

  it.effect("an X.509 certificate bag holding no certificate is malformed and named", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        decode(pfxOf([...certificates(), certBag(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])), key()])),
      )
      expect(error.reason).toBe("malformed")
      expect(error.detail).toMatch(/^certificate 3 of the PFX is not a readable X\.509 certificate/)
    }),
  )

  it.effect("an X.509 certificate bag whose value is not an OCTET STRING fails the block as malformed", () =>
    Effect.gen(function* () {
      const notOctets = new pkijs.SafeBag({
        bagId: oid.certBag,
        bagValue: new pkijs.CertBag({
          certId: oid.x509Certificate,
          // pkijs types certValue as an OCTET STRING; a malformed file holds something else.
          certValue: new asn1js.Utf8String({ value: "not a certificate" }) as unknown as asn1js.OctetString,
        }),
      })
      const error = yield* Effect.flip(decode(pfxOf([...certificates(), notOctets, key()])))
      expect(error.reason).toBe("malformed")
      expect(error.detail).toMatch(/a safe contents block of the PFX is unreadable/)
    }),
  )

  it.effect("a bag of an unknown type fails the block as malformed", () =>
    Effect.gen(function* () {
      const unknown = new pkijs.SafeBag({ bagId: "1.2.3.4", bagValue: secretBag().bagValue })
      const error = yield* Effect.flip(decode(pfxOf([...certificates(), unknown, key()])))
      expect(error.reason).toBe("malformed")
      expect(error.detail).toMatch(/a safe contents block of the PFX is unreadable/)
    }),
  )

  it.effect("safe contents nested five deep are refused", () =>
    Effect.gen(function* () {
      let bags: Array<pkijs.SafeBag> = [...certificates(), key()]
      for (let depth = 0; depth < 5; depth++) bags = [nested(bags)]
      const error = yield* Effect.flip(decode(pfxOf(bags)))
      expect(error.reason).toBe("malformed")
      expect(error.detail).toMatch(/nests safe contents too deeply/)
    }),
  )

  it.effect(
    "a key that matches none of the certificates is no-certificate, whatever their localKeyIDs say",
    () =>
      Effect.gen(function* () {
        const id = new Uint8Array([1, 2, 3, 4])
        // The root's bag carries the key's localKeyID, but the key is the leaf's: nothing to pair it with.
        const error = yield* Effect.flip(
          decode(
            pfxOf([
              withLocalKeyId(certBag(material.chain[0] ?? new Uint8Array()), id),
              withLocalKeyId(key(), id),
            ]),
          ),
        )
        expect(error.reason).toBe("no-certificate")
      }),
  )

  it.effect("of two certificates for the same key, the one carrying the key's localKeyID is the leaf", () =>
    Effect.gen(function* () {
      // A renewal for the same key, written after the certificate it replaces (which has no localKeyID).
      const renewed = yield* Effect.promise(() =>
        issue({ subject: "CN=app.example.test, O=kvdeploy tests", key: leafKey, ca: false }),
      )
      const id = new Uint8Array([9, 8, 7, 6])
      for (const bags of [
        [certBag(material.leaf), withLocalKeyId(certBag(renewed), id), withLocalKeyId(key(), id)],
        [withLocalKeyId(key(), id), certBag(material.leaf), withLocalKeyId(certBag(renewed), id)],
      ]) {
        const back = yield* decode(pfxOf(bags))
        expect(hex(back.leaf)).toBe(hex(renewed))
        expect(back.chain.map(hex)).toEqual([hex(material.leaf)])
      }
    }),
  )
})

describe("a PFX with two private keys", () => {
  it.effect(
    "the leaf's key and its issuer's, in either order: refused naming both certificates, never taking the CA for the leaf",
    () =>
      Effect.gen(function* () {
        const issuerAt = authorities.certificates.findIndex(
          (c) => hex(c) === hex(material.chain[0] ?? new Uint8Array()),
        )
        const issuer = authorities.issuers[issuerAt]
        if (issuer === undefined) throw new Error("fixtures")
        const caKey = keyBag(
          new Uint8Array(
            yield* Effect.promise(() => webcrypto.subtle.exportKey("pkcs8", issuer.key.pair.privateKey)),
          ),
        )
        for (const keys of [
          [caKey, key()],
          [key(), caKey],
        ]) {
          const error = yield* Effect.flip(decode(pfxOf([...certificates(), ...keys])))
          expect(error.reason).toBe("unsupported")
          expect(error.detail).toMatch(/^the PFX holds 2 private keys \(/)
          expect(error.detail).toContain(/CN=([^,]+)/.exec(issuer.name)?.[1] ?? "?")
          expect(error.detail).not.toContain("one of no certificate")
          expect(error.detail).toContain("does not guess which")
          expect(error.fix).toContain("openssl pkcs12 -export -inkey")
          // A Java keystore of several entries (keytool writes one key per entry): its one-entry export.
          expect(error.fix).toContain("keytool -importkeystore -srcalias ALIAS")
        }
        // The same key twice is one key: read as before.
        const back = yield* decode(pfxOf([...certificates(), key(), key()]))
        expect(hex(back.leaf)).toBe(hex(material.leaf))
      }),
  )
})

describe("a Java keystore's trusted-certificate entry (keytool -importcert beside the key entry)", () => {
  // keytool writes a trusted entry as a certificate bag with its alias (friendlyName) and Oracle's
  // trusted-key-usage attribute (2.16.840.1.113894.746875.1.1, anyExtendedKeyUsage for -importcert).
  const named = (bag: pkijs.SafeBag, alias: string, attributes: Array<pkijs.Attribute> = []) =>
    new pkijs.SafeBag({
      bagId: bag.bagId,
      bagValue: bag.bagValue,
      bagAttributes: [
        new pkijs.Attribute({ type: oid.friendlyName, values: [new asn1js.BmpString({ value: alias })] }),
        ...attributes,
      ],
    })
  const trusted = (der: Uint8Array, alias: string) =>
    named(certBag(der), alias, [
      new pkijs.Attribute({
        type: "2.16.840.1.113894.746875.1.1",
        values: [new asn1js.ObjectIdentifier({ value: "2.5.29.37.0" })],
      }),
    ])
  const keyEntry = () => [named(certBag(material.leaf), "web"), named(key(), "web")]

  it.effect(
    "of a CA off the key entry's chain (an mTLS client CA): refused naming its alias and entry type, with keytool's delete and the key entry's export",
    () =>
      Effect.gen(function* () {
        const clientCa = yield* Effect.promise(async () =>
          issue({ subject: "CN=Client CA", key: await generateKey("P-256"), ca: true }),
        )
        const chain = material.chain.map((der) => certBag(der))
        for (const bags of [
          [...keyEntry(), ...chain, trusted(clientCa, "clientca")],
          [trusted(clientCa, "clientca"), ...chain, ...keyEntry()],
        ]) {
          const error = yield* Effect.flip(decode(pfxOf(bags)))
          expect(error.reason).toBe("unsupported")
          expect(error.finding).toBe(
            'the PFX holds the trusted-certificate entry "clientca" ("CN=Client CA"), a certificate that is not in the chain of the key entry "web"; kvdeploy neither deploys it in the chain nor drops it unsaid',
          )
          expect(error.fix).toBe(
            "delete the entry from a copy of the keystore (keytool -delete -alias clientca -keystore FILE), or export the key entry alone (keytool -importkeystore -srcalias web -srckeystore FILE -destkeystore leaf.p12 -deststoretype PKCS12)",
          )
          expect(`${error.detail} ${error.fix}`).not.toMatch(/chain\[\d\]/)
        }
      }),
  )

  it.effect("of the chain's root (beside the key entry's chain, or in place of it): read as the chain", () =>
    Effect.gen(function* () {
      const root = material.chain[0] ?? new Uint8Array()
      for (const bags of [
        [...keyEntry(), certBag(root), trusted(root, "rootca")],
        [...keyEntry(), trusted(root, "rootca")],
      ]) {
        const back = yield* decode(pfxOf(bags))
        expect(hex(back.leaf)).toBe(hex(material.leaf))
        expect(back.chain.map(hex)).toEqual([hex(root)])
      }
    }),
  )
})
