/**
 * The codec's refusals keep what it found (`finding`) apart from what to do with a file of one's
 * own (`fix`): a reader for whom the advice does not apply (the vault adapter, reading a backing
 * secret the vault holds) shows the finding alone, and parses no text to get it. Each refusal
 * below is made for real (a file built for it, or material the encoders refuse); its finding and
 * fix are asserted as the codec words them, and its `message` is the two joined by "; ".
 */
import type { CertificateMaterial, PfxDecodeError, PfxEncodeError } from "@kvdeploy/core"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as pkijs from "pkijs"
import { beforeAll, describe, expect, it } from "vitest"
import { maxPfxBytes, oid } from "../src/algorithms.js"
import { decodePfx, encodePem, encodePfx } from "../src/index.js"
import { algorithm, pbes2Parameters } from "../src/pfxStructure.js"
import { generateKey, makeAuthorities, makeMaterial } from "./fixtures.js"

const PASSWORD = "words-Pw"
const SUBJECT = "CN=app.example.test, O=kvdeploy tests"
const MALFORMED_FIX = "check that the file is a complete PKCS#12 (openssl pkcs12 -info -noout -in file.pfx)"

let material: CertificateMaterial
let other: CertificateMaterial
let modern: Uint8Array

beforeAll(async () => {
  const authorities = await makeAuthorities()
  material = await makeMaterial(await generateKey("P-256"), 2, authorities)
  other = await makeMaterial(await generateKey("P-256"), 2, authorities)
  modern = await Effect.runPromise(
    encodePfx(material, { encoding: "modern", password: Redacted.make(PASSWORD) }),
  )
})

const octets = (bytes: Uint8Array | ArrayBuffer) => new asn1js.OctetString({ valueHex: bytes })
const certBag = (der: Uint8Array) =>
  new pkijs.SafeBag({
    bagId: oid.certBag,
    bagValue: new pkijs.CertBag({ certId: oid.x509Certificate, certValue: octets(der) }),
  })
const keyBag = (pkcs8: Uint8Array) =>
  new pkijs.SafeBag({ bagId: oid.keyBag, bagValue: pkijs.PrivateKeyInfo.fromBER(pkcs8) })
const dataBlock = (bags: Array<pkijs.SafeBag>) =>
  new pkijs.ContentInfo({
    contentType: oid.data,
    content: octets(new pkijs.SafeContents({ safeBags: bags }).toSchema().toBER(false)),
  })
/** An unencrypted PFX without a MAC around `contents`. */
const pfxOf = (contents: Array<pkijs.ContentInfo>): Uint8Array =>
  new Uint8Array(
    new pkijs.PFX({
      version: 3,
      authSafe: new pkijs.ContentInfo({
        contentType: oid.data,
        content: octets(new pkijs.AuthenticatedSafe({ safeContents: contents }).toSchema().toBER(false)),
      }),
    })
      .toSchema()
      .toBER(false),
  )

/** The modern PFX with its MAC's digest algorithm set to MD5 (the MAC is judged by algorithm first). */
const withMd5Mac = (): Uint8Array => {
  const pfx = pkijs.PFX.fromBER(Uint8Array.from(modern))
  if (pfx.macData === undefined) throw new Error("no MAC")
  pfx.macData.mac.digestAlgorithm = new pkijs.AlgorithmIdentifier({
    algorithmId: "1.2.840.113549.2.5",
    algorithmParams: new asn1js.Null(),
  })
  return new Uint8Array(pfx.toSchema().toBER(false))
}

/** A key bag encrypted (PBES2, AES-256-CBC) with more PBKDF2 iterations than the codec runs. */
const keyOfTooManyIterations = (): Uint8Array => {
  const shrouded = new pkijs.PKCS8ShroudedKeyBag({
    encryptionAlgorithm: algorithm(
      oid.pbes2,
      pbes2Parameters(
        new Uint8Array(16),
        5_000_000,
        algorithm(oid.hmacWithSha256, new asn1js.Null()),
        algorithm(oid.aes256Cbc, octets(new Uint8Array(16))),
      ),
    ),
    encryptedData: octets(new Uint8Array(48)),
  })
  return pfxOf([
    dataBlock([
      certBag(material.leaf),
      new pkijs.SafeBag({ bagId: oid.pkcs8ShroudedKeyBag, bagValue: shrouded }),
    ]),
  ])
}

/** The leaf with its public key's algorithm replaced by one no reader knows. */
const leafOfUnknownKeyType = (): Uint8Array => {
  const certificate = pkijs.Certificate.fromBER(Uint8Array.from(material.leaf))
  certificate.subjectPublicKeyInfo.algorithm = new pkijs.AlgorithmIdentifier({
    algorithmId: "1.3.6.1.4.1.99999.1",
  })
  return new Uint8Array(certificate.toSchema(true).toBER(false))
}

const decodeRefusal = (bytes: Uint8Array, password = PASSWORD): Promise<PfxDecodeError> =>
  Effect.runPromise(Effect.flip(decodePfx(bytes, Redacted.make(password))))

interface Case {
  readonly name: string
  readonly refusal: () => Promise<PfxDecodeError | PfxEncodeError>
  readonly reason?: PfxDecodeError["reason"]
  readonly finding: string | RegExp
  /** The codec's advice; `undefined`: it has none for this refusal. */
  readonly fix: string | undefined
}

const cases: ReadonlyArray<Case> = [
  {
    name: "wrong password (the integrity MAC)",
    refusal: () => decodeRefusal(modern, "wrong"),
    reason: "wrong-password",
    finding: "the PFX's integrity check failed: the password is wrong, or the file was altered",
    fix: "check the password (openssl pkcs12 -info -noout -in file.pfx)",
  },
  {
    name: "no PKCS#12 at all",
    refusal: () => decodeRefusal(new TextEncoder().encode("no PKCS#12 here")),
    reason: "malformed",
    finding: "the input is not a PKCS#12/PFX file",
    fix: MALFORMED_FIX,
  },
  {
    name: "an MD5 integrity MAC",
    refusal: () => decodeRefusal(withMd5Mac()),
    reason: "unsupported",
    finding:
      "the PFX's integrity MAC uses algorithm 1.2.840.113549.2.5, which is not supported (SHA-1, SHA-2 MACs are)",
    fix: "re-export it with -macalg sha256",
  },
  {
    // The finding holds a "; " of its own: a reader that cut the text at the first one lost the limit.
    name: "over the size the codec reads",
    refusal: () => decodeRefusal(new Uint8Array(maxPfxBytes + 1)),
    reason: "too-large",
    finding: `the PFX is ${maxPfxBytes + 1} bytes; kvdeploy reads at most ${maxPfxBytes} (Key Vault accepts 25 KB)`,
    fix: "check that this is the right file",
  },
  {
    // The fix is the iteration count's own (it was said after the cipher's, which does not apply).
    name: "a key bag of more iterations than the codec runs",
    refusal: () => decodeRefusal(keyOfTooManyIterations()),
    reason: "unsupported",
    finding:
      "the private key could not be decrypted: the iteration count 5000000 exceeds the limit of 1000000",
    fix: "re-export the PFX with fewer iterations",
  },
  {
    name: "a certificate whose key is of a type this system cannot read (not RSA or EC)",
    refusal: () =>
      decodeRefusal(
        pfxOf([dataBlock([certBag(leafOfUnknownKeyType()), keyBag(Redacted.value(material.key))])]),
      ),
    reason: "malformed",
    finding:
      "certificate 1 of the PFX has a public key this system cannot read: of an algorithm or curve it does not know, or damaged",
    fix: "use a certificate with an RSA or EC (P-256, P-384, P-521, secp256k1) key; if it has one, the certificate is damaged: check it with openssl x509 -noout -text and supply an intact copy",
  },
  {
    name: "no private key",
    refusal: () => decodeRefusal(pfxOf([dataBlock([certBag(material.leaf)])])),
    reason: "no-key",
    finding: "the PFX holds no private key",
    fix: "export it together with the key (openssl pkcs12 -export -inkey key.pem -in cert.pem)",
  },
  {
    name: "no certificate",
    refusal: () => decodeRefusal(pfxOf([dataBlock([keyBag(Redacted.value(material.key))])])),
    reason: "no-certificate",
    finding: "the PFX holds no certificate",
    fix: "export it with the certificate and its chain",
  },
  {
    name: "no certificate of the key",
    refusal: () =>
      decodeRefusal(pfxOf([dataBlock([certBag(other.leaf), keyBag(Redacted.value(material.key))])])),
    reason: "no-certificate",
    finding: "no certificate in the PFX matches its private key",
    fix: "export the PFX with the certificate that was issued for the key",
  },
  {
    name: "a PFX version other than 3 (no advice)",
    refusal: () => {
      const pfx = pkijs.PFX.fromBER(Uint8Array.from(modern))
      pfx.version = 4
      return decodeRefusal(new Uint8Array(pfx.toSchema().toBER(false)))
    },
    reason: "unsupported",
    finding: "PFX version 4 is not supported (only 3)",
    fix: undefined,
  },
  {
    name: "encode: a key that is not the leaf's",
    refusal: () =>
      Effect.runPromise(
        Effect.flip(
          encodePfx({ ...material, key: other.key }, { encoding: "modern", password: Redacted.make("") }),
        ),
      ),
    finding: `refusing to build a PFX: the private key does not match the leaf certificate "${SUBJECT}" (their public keys differ)`,
    fix: "supply the key the certificate was issued for",
  },
  {
    name: "encodePem: a key that is not the leaf's",
    refusal: () => Effect.runPromise(Effect.flip(encodePem({ ...material, key: other.key }))),
    finding: `refusing to build the PEM: the private key does not match the leaf certificate "${SUBJECT}" (their public keys differ)`,
    fix: "supply the key the certificate was issued for",
  },
  {
    name: "encode: unreadable material (each problem's finding, then each field's fix)",
    refusal: () =>
      Effect.runPromise(
        Effect.flip(
          encodePfx(
            { leaf: new TextEncoder().encode("no certificate"), chain: [], key: material.key },
            { encoding: "legacy", password: Redacted.make("") },
          ),
        ),
      ),
    finding: "cannot build a PFX from unreadable material: leaf: is not a readable X.509 certificate",
    fix: "leaf: supply the certificate as PEM (-----BEGIN CERTIFICATE-----) or DER; check it with openssl x509 -noout -text",
  },
  {
    name: "encode: an iteration count out of range (no advice)",
    refusal: () =>
      Effect.runPromise(
        Effect.flip(encodePfx(material, { encoding: "modern", password: Redacted.make(""), iterations: 0 })),
      ),
    finding: "iterations must be an integer from 1 to 10000000, got 0",
    fix: undefined,
  },
]

/** Advice a finding must not hold: a clause that tells the reader what to do. */
const advice = /(^|[;:,] )(check|re-export|export|supply|use|give|put|run) /

describe("a codec refusal's finding and fix, apart", () => {
  it.each(cases)("$name", async ({ refusal, reason, finding, fix }) => {
    const refused = await refusal()
    if (reason !== undefined)
      expect(refused._tag === "PfxDecodeError" ? refused.reason : refused._tag).toBe(reason)
    expect(refused.finding).toEqual(finding)
    expect(refused.finding).not.toMatch(advice)
    expect(refused.fix).toBe(fix)
    // What an operator sees for a file of their own: the finding, then the fix.
    expect(refused.message).toBe(fix === undefined ? refused.finding : `${refused.finding}; ${fix}`)
    if (refused._tag === "PfxDecodeError") expect(refused.detail).toBe(refused.message)
  })
})
