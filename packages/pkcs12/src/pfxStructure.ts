/**
 * The PKCS#12 structures encodePfx writes (RFC 7292, with the PKCS#7
 * ContentInfo and EncryptedData and the PKCS#5 algorithm identifiers it
 * uses), built as asn1js blocks and encoded by asn1js.
 *
 * Each function builds the same blocks pkijs's `toSchema()` of the
 * corresponding class builds (ContentInfo, EncryptedData,
 * EncryptedContentInfo without splitting, SafeBag, CertBag, Attribute,
 * PKCS8ShroudedKeyBag, AlgorithmIdentifier, PBES2Params, PBKDF2Params,
 * MacData, DigestInfo, PFX), without first building the pkijs object and then
 * a second tree from it: that, and asn1js writing every OBJECT IDENTIFIER
 * and INTEGER again from its value, was ~40% of an encode. The constant
 * blocks (OBJECT IDENTIFIERs, algorithm identifiers without parameters, small
 * INTEGERs) are encoded by asn1js once and reused as one block holding those
 * bytes: asn1js allocates several buffers for every block it writes, so a
 * block less is work less. test/encodedOids.test.ts checks a PFX of each
 * profile byte for byte against pkijs's own re-encoding of it.
 */
import * as asn1js from "asn1js"
import { oid } from "./algorithms.js"

export type Block = asn1js.BaseBlock

/**
 * `block` as asn1js encodes it, kept as one block under the same tag holding
 * the content asn1js wrote (for a constructed block, its children's encodings):
 * it encodes to the same bytes without asn1js visiting the children again.
 */
export const encodedOnce = (block: Block): Block => {
  const once = new asn1js.Primitive({
    idBlock: { tagClass: block.idBlock.tagClass, tagNumber: block.idBlock.tagNumber },
    valueHex: new Uint8Array(block.valueBlock.toBER(false)),
  })
  // Primitive's constructor clears the flag; the bytes held are the constructed block's content.
  once.idBlock.isConstructed = block.idBlock.isConstructed
  return once
}

const memo = <K>(make: (key: K) => Block, limit: number) => {
  const known = new Map<K, Block>()
  return (key: K): Block => {
    const found = known.get(key)
    if (found !== undefined) return found
    const block = encodedOnce(make(key))
    if (known.size < limit) known.set(key, block)
    return block
  }
}

/** An OBJECT IDENTIFIER. All come from `oid` (a few dozen), so the memo stays that small. */
export const oidBlock: (value: string) => Block = memo(
  (value: string) => new asn1js.ObjectIdentifier({ value }),
  64,
)

/** AlgorithmIdentifier with NULL parameters (HMAC PRFs, MAC digests). */
export const nullParametersAlgorithm: (id: string) => Block = memo(
  (id: string) => new asn1js.Sequence({ value: [oidBlock(id), new asn1js.Null()] }),
  16,
)

/** An INTEGER: versions and iteration counts (a few values in a process; others are not kept). */
export const integer: (value: number) => Block = memo((value: number) => new asn1js.Integer({ value }), 16)

/**
 * An OCTET STRING, as asn1js's generic primitive block under the OCTET STRING
 * tag: asn1js writes the same tag, length and content, and hands the content
 * on as it is where OctetString's value block copies it first (one buffer less
 * per string; asn1js allocates a buffer per tag, length and level, and that
 * allocation is most of what writing a block costs). The writer of the
 * enclosing block copies the content into its own buffer.
 */
export const octets = (bytes: Uint8Array): Block =>
  new asn1js.Primitive({ idBlock: { tagClass: 1, tagNumber: 4 }, valueHex: bytes })

export const sequence = (value: Array<Block>): Block => new asn1js.Sequence({ value })

/** `[0] EXPLICIT`, as pkijs writes ContentInfo's content and the bag values. */
const explicit0 = (inner: Block): Block =>
  new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [inner] })

/** AlgorithmIdentifier with parameters. */
export const algorithm = (id: string, parameters: Block): Block => sequence([oidBlock(id), parameters])

/** ContentInfo: content type and `[0] EXPLICIT` content. */
export const contentInfo = (contentType: string, content: Block): Block =>
  sequence([oidBlock(contentType), explicit0(content)])

/**
 * EncryptedData version 0 (no unprotected attributes) with its
 * EncryptedContentInfo: the encrypted content `[0] IMPLICIT`, primitive (not split).
 */
export const encryptedData = (contentType: string, algorithmBlock: Block, ciphertext: Uint8Array): Block =>
  sequence([
    integer(0),
    new asn1js.Sequence({
      lenBlock: { isIndefiniteForm: false },
      value: [
        oidBlock(contentType),
        algorithmBlock,
        new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 0 }, valueHex: ciphertext }),
      ],
    }),
  ])

/** Attribute with one value. */
export const attribute = (type: string, value: Block): Block =>
  sequence([oidBlock(type), new asn1js.Set({ value: [value] })])

/** The SET of a bag's attributes (`safeBag`'s last element). */
export const attributeSet = (attributes: Array<Block>): Block => new asn1js.Set({ value: attributes })

/** SafeBag: bag id, `[0] EXPLICIT` value, optional SET of attributes (an `attributeSet`). */
export const safeBag = (bagId: string, value: Block, attributes?: Block): Block =>
  sequence([oidBlock(bagId), explicit0(value), ...(attributes === undefined ? [] : [attributes])])

/** CertBag: certificate type and `[0] EXPLICIT` OCTET STRING of the certificate. */
export const certBag = (certId: string, certificate: Uint8Array): Block =>
  sequence([oidBlock(certId), explicit0(octets(certificate))])

/** PKCS8ShroudedKeyBag (EncryptedPrivateKeyInfo): algorithm and ciphertext. */
export const shroudedKeyBag = (algorithmBlock: Block, ciphertext: Uint8Array): Block =>
  sequence([algorithmBlock, octets(ciphertext)])

/** PFX version 3 with its MacData (DigestInfo with a NULL-parameter digest algorithm, salt, iterations). */
export const pfx = (
  authSafe: Uint8Array,
  digestOid: string,
  mac: Uint8Array,
  macSalt: Uint8Array,
  iterations: number,
): Block =>
  sequence([
    integer(3),
    // The authenticated safe is `data` content: an OCTET STRING of its DER.
    contentInfo(oid.data, octets(authSafe)),
    sequence([
      sequence([nullParametersAlgorithm(digestOid), octets(mac)]),
      octets(macSalt),
      integer(iterations),
    ]),
  ])

/** The DER asn1js writes for `block`. */
export const der = (block: Block): Uint8Array => new Uint8Array(block.toBER(false))
