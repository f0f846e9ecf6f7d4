/**
 * The PKCS#12 structures encodePfx writes (RFC 7292, with the PKCS#7
 * ContentInfo and EncryptedData and the PKCS#5 algorithm identifiers it
 * uses), as pkijs's classes: each function fills the class's fields and asks
 * it for its `toSchema()`, which asn1js encodes. What the structures look
 * like is pkijs's knowledge, not this package's; the one structure pkijs has
 * no class for, the PKCS#12 PBE parameters (`pkcs-12PbeParams`, legacy
 * profile only), is written as its two fields in a SEQUENCE.
 * test/encodedOids.test.ts checks a PFX of each profile byte for byte against
 * pkijs's own re-encoding of it.
 */
import * as asn1js from "asn1js"
import * as pkijs from "pkijs"
import { oid } from "./algorithms.js"

type Block = asn1js.BaseBlock
export type Algorithm = pkijs.AlgorithmIdentifier

/** An OCTET STRING holding `bytes`. */
export const octets = (bytes: Uint8Array): asn1js.OctetString => new asn1js.OctetString({ valueHex: bytes })

/** AlgorithmIdentifier; `parameters` absent writes none, as pkijs does. */
export const algorithm = (id: string, parameters?: Block): Algorithm =>
  new pkijs.AlgorithmIdentifier(
    parameters === undefined ? { algorithmId: id } : { algorithmId: id, algorithmParams: parameters },
  )

/** AlgorithmIdentifier with NULL parameters (HMAC PRFs, MAC digests). */
export const nullParametersAlgorithm = (id: string): Algorithm => algorithm(id, new asn1js.Null())

/** PBES2-params (RFC 8018): PBKDF2 with its salt, iteration count and PRF, and the encryption scheme. */
export const pbes2Parameters = (
  salt: Uint8Array,
  iterations: number,
  prf: Algorithm,
  encryptionScheme: Algorithm,
): Block =>
  new pkijs.PBES2Params({
    keyDerivationFunc: algorithm(
      oid.pbkdf2,
      new pkijs.PBKDF2Params({ salt: octets(salt), iterationCount: iterations, prf }).toSchema(),
    ),
    encryptionScheme,
  }).toSchema()

/**
 * pkcs-12PbeParams (RFC 7292 Appendix C): `SEQUENCE { salt OCTET STRING, iterations INTEGER }`.
 * pkijs reads and writes no PKCS#12 PBE scheme, so it has no class for these.
 */
export const pkcs12PbeParameters = (salt: Uint8Array, iterations: number): Block =>
  new asn1js.Sequence({ value: [octets(salt), new asn1js.Integer({ value: iterations })] })

/** Attribute with one value. */
export const attribute = (type: string, value: Block): pkijs.Attribute =>
  new pkijs.Attribute({ type, values: [value] })

/** SafeBag holding a CertBag: an X.509 certificate as its DER in an OCTET STRING. */
export const certificateBag = (certificate: Uint8Array, attributes?: Array<pkijs.Attribute>): pkijs.SafeBag =>
  new pkijs.SafeBag({
    bagId: oid.certBag,
    bagValue: new pkijs.CertBag({ certId: oid.x509Certificate, certValue: octets(certificate) }),
    ...(attributes === undefined ? {} : { bagAttributes: attributes }),
  })

/** SafeBag holding a PKCS8ShroudedKeyBag (EncryptedPrivateKeyInfo): algorithm and ciphertext. */
export const shroudedKeyBag = (
  encryption: Algorithm,
  ciphertext: Uint8Array,
  attributes: Array<pkijs.Attribute>,
): pkijs.SafeBag =>
  new pkijs.SafeBag({
    bagId: oid.pkcs8ShroudedKeyBag,
    bagValue: new pkijs.PKCS8ShroudedKeyBag({
      encryptionAlgorithm: encryption,
      encryptedData: octets(ciphertext),
    }),
    bagAttributes: attributes,
  })

/** SafeContents: the SEQUENCE OF SafeBag, as DER (the content a ContentInfo carries, encrypted or not). */
export const safeContents = (bags: Array<pkijs.SafeBag>): Uint8Array =>
  der(new pkijs.SafeContents({ safeBags: bags }).toSchema())

/** ContentInfo of type `data`: the content as an OCTET STRING. */
export const dataContent = (content: Uint8Array): pkijs.ContentInfo =>
  new pkijs.ContentInfo({ contentType: oid.data, content: octets(content) })

/**
 * ContentInfo of type `encryptedData`: EncryptedData version 0 (no unprotected attributes) with
 * its EncryptedContentInfo, the `data` ciphertext `[0] IMPLICIT` in one piece (not split).
 */
export const encryptedContent = (encryption: Algorithm, ciphertext: Uint8Array): pkijs.ContentInfo =>
  new pkijs.ContentInfo({
    contentType: oid.encryptedData,
    content: new pkijs.EncryptedData({
      version: 0,
      encryptedContentInfo: new pkijs.EncryptedContentInfo({
        contentType: oid.data,
        contentEncryptionAlgorithm: encryption,
        encryptedContent: octets(ciphertext),
        disableSplit: true,
      }),
    }).toSchema(),
  })

/** AuthenticatedSafe: the SEQUENCE OF ContentInfo the MAC covers, as DER. */
export const authenticatedSafe = (contents: Array<pkijs.ContentInfo>): Uint8Array =>
  der(new pkijs.AuthenticatedSafe({ safeContents: contents }).toSchema())

/** PFX version 3: the authenticated safe as `data`, and its MacData (digest, salt, iterations unless 1). */
export const pfx = (
  authSafe: Uint8Array,
  digestOid: string,
  mac: Uint8Array,
  macSalt: Uint8Array,
  iterations: number,
): Uint8Array =>
  der(
    new pkijs.PFX({
      version: 3,
      authSafe: dataContent(authSafe),
      macData: new pkijs.MacData({
        mac: new pkijs.DigestInfo({
          digestAlgorithm: nullParametersAlgorithm(digestOid),
          digest: octets(mac),
        }),
        macSalt: octets(macSalt),
        // `iterations INTEGER DEFAULT 1`: DER leaves a default out (as OpenSSL's -nomaciter does);
        // written out, Python cryptography reads the file only through a BER fallback, with a warning.
        ...(iterations === 1 ? {} : { iterations }),
      }),
    }).toSchema(),
  )

/** The DER asn1js writes for `block`. */
const der = (block: Block): Uint8Array => new Uint8Array(block.toBER(false))
