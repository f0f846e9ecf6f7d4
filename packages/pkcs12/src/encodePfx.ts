/**
 * Build a PKCS#12 file in memory. Structures are pkijs/asn1js objects; the
 * crypto is node:crypto. Two profiles:
 *
 * - modern: PBES2 (PBKDF2-HMAC-SHA-256, AES-256-CBC) for the key and the
 *   certificates, HMAC-SHA-256 MAC (OpenSSL 3's and Java 17's default);
 * - legacy: PBE-SHA1-3DES for the key, PBE-SHA1-3DES (default) or
 *   PBE-SHA1-RC2-40 for the certificates, HMAC-SHA-1 MAC (what Windows
 *   Server 2016 and older, and `openssl pkcs12 -legacy`, expect).
 *
 * The key bag and the leaf's certificate bag share one localKeyID (SHA-1 of
 * the leaf). A PFX is never built when the key does not match the leaf.
 */
import { createHash, createHmac, randomBytes } from "node:crypto"
import type { CertificateMaterial, PfxEncodeOptions } from "@kvdeploy/core"
import { PfxEncodeError } from "@kvdeploy/core"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as pkijs from "pkijs"
import { oid } from "./algorithms.js"
import { nameOf } from "./certificateFacts.js"
import { analyseMaterial } from "./inspect.js"
import { secretKey } from "./nodeCrypto.js"
import { type Encrypted, encryptPbes1, encryptPbes2, type Pbes1Scheme } from "./passwordEncryption.js"
import { bmpPassword, KdfPurpose, pkcs12Kdf } from "./pkcs12Kdf.js"
import { noStackTrace } from "./spans.js"

export interface Pkcs12EncodeOptions extends PfxEncodeOptions {
  /** Legacy profile only: the certificates' cipher. `3des` (default) or `rc2-40` (what `openssl -legacy` writes). */
  readonly legacyCertificateCipher?: Pbes1Scheme
}

export const defaultIterations = 2048

const octets = (bytes: Uint8Array): asn1js.OctetString => new asn1js.OctetString({ valueHex: bytes })

const encryptedContentInfo = (encrypted: Encrypted): pkijs.ContentInfo =>
  new pkijs.ContentInfo({
    contentType: oid.encryptedData,
    content: new pkijs.EncryptedData({
      version: 0,
      encryptedContentInfo: new pkijs.EncryptedContentInfo({
        contentType: oid.data,
        contentEncryptionAlgorithm: encrypted.algorithm,
        encryptedContent: octets(encrypted.ciphertext),
        disableSplit: true,
      }),
    }).toSchema(),
  })

/**
 * Each OBJECT IDENTIFIER as a primitive block holding the content asn1js
 * encoded for it the first time it was written. Re-encoding an OID from its
 * arcs (pvutils' base-128 conversion and a buffer per arc) was a third of
 * `build()`; a PFX holds a dozen OIDs, all from `oid` (the map stays that small).
 */
const encodedOids = new Map<string, asn1js.Primitive>()

const encodedOid = (o: asn1js.ObjectIdentifier): asn1js.Primitive => {
  const value = o.valueBlock.toString()
  const known = encodedOids.get(value)
  if (known !== undefined) return known
  const block = new asn1js.Primitive({
    idBlock: { tagClass: o.idBlock.tagClass, tagNumber: o.idBlock.tagNumber },
    valueHex: new Uint8Array(o.valueBlock.toBER(false)),
  })
  encodedOids.set(value, block)
  return block
}

/** `block` with every OBJECT IDENTIFIER under it replaced by its `encodedOid` (same bytes when encoded). */
export const withEncodedOids = (block: asn1js.BaseBlock): asn1js.BaseBlock => {
  if (block instanceof asn1js.ObjectIdentifier) return encodedOid(block)
  const children: unknown = block.idBlock.isConstructed
    ? (block.valueBlock as { readonly value?: unknown }).value
    : undefined
  if (Array.isArray(children))
    for (let i = 0; i < children.length; i++) children[i] = withEncodedOids(children[i] as asn1js.BaseBlock)
  return block
}

const ber = (o: { toSchema(): asn1js.BaseBlock }): Uint8Array =>
  new Uint8Array(withEncodedOids(o.toSchema()).toBER(false))

interface BuildInput {
  readonly certificates: ReadonlyArray<Uint8Array>
  readonly pkcs8: Uint8Array
  readonly password: string
  readonly encoding: "modern" | "legacy"
  readonly friendlyName: string | undefined
  readonly certificateCipher: Pbes1Scheme
  readonly iterations: number
}

const build = (input: BuildInput): Uint8Array => {
  const { password, iterations } = input
  const leafDer = input.certificates[0] ?? new Uint8Array(0)
  const localKeyId = createHash("sha1").update(leafDer).digest()
  const attributes = [
    ...(input.friendlyName === undefined
      ? []
      : [
          new pkijs.Attribute({
            type: oid.friendlyName,
            values: [new asn1js.BmpString({ value: input.friendlyName })],
          }),
        ]),
    new pkijs.Attribute({ type: oid.localKeyId, values: [octets(localKeyId)] }),
  ]
  const certBags = input.certificates.map(
    (der, i) =>
      new pkijs.SafeBag({
        bagId: oid.certBag,
        bagValue: new pkijs.CertBag({ certId: oid.x509Certificate, certValue: octets(der) }),
        ...(i === 0 ? { bagAttributes: attributes } : {}),
      }),
  )
  const certContents = ber(new pkijs.SafeContents({ safeBags: certBags }))
  const encryptedCerts =
    input.encoding === "modern"
      ? encryptPbes2(certContents, password, iterations)
      : encryptPbes1(certContents, password, iterations, input.certificateCipher)
  const encryptedKey =
    input.encoding === "modern"
      ? encryptPbes2(input.pkcs8, password, iterations)
      : encryptPbes1(input.pkcs8, password, iterations, "3des")
  const keyBag = new pkijs.SafeBag({
    bagId: oid.pkcs8ShroudedKeyBag,
    bagValue: new pkijs.PKCS8ShroudedKeyBag({
      encryptionAlgorithm: encryptedKey.algorithm,
      encryptedData: octets(encryptedKey.ciphertext),
    }),
    bagAttributes: attributes,
  })
  const keyContents = ber(new pkijs.SafeContents({ safeBags: [keyBag] }))
  const authenticatedSafe = ber(
    new pkijs.AuthenticatedSafe({
      safeContents: [
        encryptedContentInfo(encryptedCerts),
        new pkijs.ContentInfo({ contentType: oid.data, content: octets(keyContents) }),
      ],
    }),
  )
  const macHash = input.encoding === "modern" ? "sha256" : "sha1"
  const macSalt = randomBytes(input.encoding === "modern" ? 16 : 8)
  const macKey = pkcs12Kdf(
    macHash,
    bmpPassword(password),
    macSalt,
    iterations,
    KdfPurpose.mac,
    macHash === "sha256" ? 32 : 20,
  )
  const mac = createHmac(macHash, secretKey(macKey)).update(authenticatedSafe).digest()
  const pfx = new pkijs.PFX({
    version: 3,
    authSafe: new pkijs.ContentInfo({ contentType: oid.data, content: octets(authenticatedSafe) }),
    macData: new pkijs.MacData({
      mac: new pkijs.DigestInfo({
        digestAlgorithm: new pkijs.AlgorithmIdentifier({
          algorithmId: macHash === "sha256" ? oid.sha256 : oid.sha1,
          algorithmParams: new asn1js.Null(),
        }),
        digest: octets(mac),
      }),
      macSalt: octets(macSalt),
      iterations,
    }),
  })
  return ber(pfx)
}

/**
 * Build a PFX in memory from the material. The chain is written leaf-first in
 * issuer order, followed by any certificates that do not link to the leaf.
 * Refuses (PfxEncodeError) when the key does not match the leaf.
 */
export const encodePfx = (
  material: CertificateMaterial,
  options: Pkcs12EncodeOptions,
): Effect.Effect<Uint8Array, PfxEncodeError> =>
  Effect.gen(function* () {
    const iterations = options.iterations ?? defaultIterations
    if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > 10_000_000)
      return yield* Effect.fail(
        new PfxEncodeError({ reason: `iterations must be an integer from 1 to 10000000, got ${iterations}` }),
      )
    const analysed = yield* Effect.mapError(
      analyseMaterial(material),
      (invalid) =>
        new PfxEncodeError({
          reason: `cannot build a PFX from unreadable material: ${invalid.message}`,
          cause: invalid,
        }),
    )
    if (!analysed.keyMatchesLeaf)
      return yield* Effect.fail(
        new PfxEncodeError({
          reason: `refusing to build a PFX: the private key does not match the leaf certificate "${nameOf(analysed.leaf, "subject")}" (their public keys differ); supply the key the certificate was issued for`,
        }),
      )
    const chain = [...analysed.order.ordered, ...analysed.order.unrelated].flatMap((i) => {
      const c = analysed.chain[i]
      return c === undefined ? [] : [c.der]
    })
    return yield* Effect.try({
      try: () =>
        build({
          certificates: [analysed.leaf.der, ...chain],
          // The analysed copy: the bytes whose match with the leaf was just checked.
          pkcs8: analysed.pkcs8,
          password: Redacted.value(options.password),
          encoding: options.encoding,
          friendlyName: options.friendlyName,
          certificateCipher: options.legacyCertificateCipher ?? "3des",
          iterations,
        }),
      catch: (cause) =>
        new PfxEncodeError({
          reason: `building the ${options.encoding} PFX failed: ${cause instanceof Error ? cause.message : "unknown error"}`,
          cause,
        }),
    })
  }).pipe(Effect.withSpan("pkcs12.encodePfx", { attributes: { encoding: options.encoding } }, noStackTrace))
