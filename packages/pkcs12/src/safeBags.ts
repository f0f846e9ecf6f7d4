/**
 * The bags of a PKCS#12 SafeContents, read with pkijs's schemas but without
 * pkijs's CertBag class: that class parses every certificate into a pkijs
 * Certificate (a full JavaScript parse of each one, most of a decode's
 * non-KDF time), and decodePfx only needs the certificates' bytes, which
 * node:crypto's X509Certificate parses natively afterwards. A shrouded key
 * bag and the attributes are read against pkijs's schemas
 * (decodeStructure.ts), the other bag values with pkijs's classes, and the
 * structure is read completely before any key is decrypted, so a malformed
 * block fails as it did.
 *
 * asn1js parses with `parseEmbedded: false` here (`parseBer`): by default it
 * also tries to parse the content of every primitive OCTET STRING and BIT
 * STRING as BER (certificates inside their bags, ciphertexts, salts, keys),
 * most of the parse's time, and nothing here reads those speculative
 * parses. Inner DER that is needed is parsed explicitly where it is used.
 */
import * as asn1js from "asn1js"
import * as pkijs from "pkijs"
import { oid } from "./algorithms.js"
import {
  type AttributeParts,
  builtOnce,
  readAttribute,
  readShroudedKeyBag,
  type ShroudedKeyParts,
} from "./decodeStructure.js"

/** A certificate bag of the X.509 type: its DER (the caller's copy), localKeyID and alias. */
export interface CertificateBag {
  readonly _tag: "Certificate"
  readonly der: Uint8Array
  readonly localKeyId: Uint8Array | undefined
  /** The bag's friendlyName (a Java keystore's alias), when it has a readable one. */
  readonly friendlyName: string | undefined
  /** Whether it is a Java keystore's trusted-certificate entry (Oracle's trusted key usage attribute). */
  readonly trusted: boolean
}
export interface ShroudedKeyBag {
  readonly _tag: "ShroudedKey"
  readonly value: ShroudedKeyParts
  /** The bag value's bytes as read (an EncryptedPrivateKeyInfo), for OpenSSL's decryption. */
  readonly encoded: Uint8Array
  readonly localKeyId: Uint8Array | undefined
  /** The bag's friendlyName (a Java keystore's alias), when it has a readable one. */
  readonly friendlyName: string | undefined
}
export interface KeyBag {
  readonly _tag: "Key"
  readonly value: pkijs.PrivateKeyInfo
  readonly localKeyId: Uint8Array | undefined
  /** The bag's friendlyName (a Java keystore's alias), when it has a readable one. */
  readonly friendlyName: string | undefined
}
export interface NestedBag {
  readonly _tag: "Nested"
  readonly bags: ReadonlyArray<SafeBag>
}
/** CRL, secret, attribute-certificate bags: not certificate material, skipped by decodePfx. */
export interface OtherBag {
  readonly _tag: "Other"
}
export type SafeBag = CertificateBag | ShroudedKeyBag | KeyBag | NestedBag | OtherBag

const attributeCertificate = "1.2.840.113549.1.9.22.3"
const crlBag = "1.2.840.113549.1.12.10.1.4"
const secretBag = "1.2.840.113549.1.12.10.1.5"

const copyOf = (view: ArrayBuffer | Uint8Array): Uint8Array => Uint8Array.from(new Uint8Array(view))

// pkijs's schemas, each built once and reused: asn1js's compareSchema records what it
// matches (the named parts, the repeated bags) on the parsed block it is given (its writes
// to a schema put back the same values after the first use, see decodeStructure.ts), and
// building a schema is a few dozen asn1js objects each time.
// SafeContents ::= SEQUENCE OF SafeBag. pkijs's SafeContents schema compares every bag
// with SafeBag's schema, and readBag then compared each one again to name its parts:
// here the SEQUENCE OF is taken as it is and each bag is compared once, by readBag.
// Every bag is read before the caller uses any, so a block with one bag that is not a
// SafeBag is refused whole, as before.
const safeContentsSchema = builtOnce(
  () => new asn1js.Sequence({ value: [new asn1js.Repeated({ name: "safeBags", value: new asn1js.Any() })] }),
)
const safeBagSchema = builtOnce(() =>
  pkijs.SafeBag.schema({ names: { bagId: "bagId", bagValue: "bagValue", bagAttributes: "bagAttributes" } }),
)
const certBagSchema = builtOnce(() => pkijs.CertBag.schema({ names: { id: "certId", value: "certValue" } }))

const verified = (
  block: asn1js.AsnType,
  schema: asn1js.AsnType,
  what: string,
): Record<string, asn1js.AsnType | ReadonlyArray<asn1js.AsnType>> => {
  const checked = asn1js.compareSchema(block, block, schema)
  if (!checked.verified) throw new Error(`not a ${what}`)
  return checked.result as Record<string, asn1js.AsnType | ReadonlyArray<asn1js.AsnType>>
}

/**
 * One BER value parsed by asn1js without speculative parses of the contents
 * of OCTET and BIT STRINGs (asn1js's default resource limits apply: depth
 * 100, 10,000 nodes, 16 MiB). asn1js parses a copy of its input. Throws when
 * the bytes do not start with a BER value; trailing bytes are ignored, as
 * pkijs's own `fromBER` ignores them.
 */
export const parseBer = (bytes: Uint8Array): asn1js.AsnType => {
  const parsed = asn1js.fromBER(bytes, { parseEmbedded: false })
  if (parsed.offset === -1) throw new Error(parsed.result.error)
  return parsed.result
}

const single = (value: asn1js.AsnType | ReadonlyArray<asn1js.AsnType> | undefined): asn1js.AsnType => {
  if (value === undefined || Array.isArray(value)) throw new Error("unexpected structure")
  return value as asn1js.AsnType
}

const localKeyIdOf = (attributes: ReadonlyArray<AttributeParts>): Uint8Array | undefined => {
  const found = attributes.find((a) => a.type === oid.localKeyId)
  if (found === undefined) return undefined
  // An empty SET of values: pkijs's Attribute left its values undefined and reading the
  // first one threw, which made the block unreadable; it still does.
  if (found.values === undefined) throw new Error("a localKeyID attribute without a value")
  const value = found.values[0]
  return value instanceof asn1js.OctetString ? copyOf(value.valueBlock.valueHexView) : undefined
}

/**
 * The friendlyName attribute's text (PKCS#9: a BMPString; a Java keystore writes the entry's alias
 * there), or undefined: absent, empty or of another type. Only for naming an entry in a message, so
 * an unusual one is left unread rather than refused; at most 64 characters of it.
 */
const friendlyNameOf = (attributes: ReadonlyArray<AttributeParts>): string | undefined => {
  const value = attributes.find((a) => a.type === oid.friendlyName)?.values?.[0]
  if (!(value instanceof asn1js.BmpString)) return undefined
  const text = value.valueBlock.value.slice(0, 64)
  return text === "" ? undefined : text
}

const readBag = (element: asn1js.AsnType): SafeBag => {
  const parts = verified(element, safeBagSchema(), "SafeBag")
  const idBlock = single(parts.bagId)
  if (!(idBlock instanceof asn1js.ObjectIdentifier)) throw new Error("bag id is not an OID")
  const bagId = idBlock.valueBlock.toString()
  const value = single(parts.bagValue)
  const attributeBlocks = parts.bagAttributes
  const attributes = Array.isArray(attributeBlocks)
    ? attributeBlocks.map((a: asn1js.AsnType) => readAttribute(a))
    : []
  switch (bagId) {
    case oid.certBag: {
      const cert = verified(value, certBagSchema(), "CertBag")
      const certIdBlock = single(cert.certId)
      if (!(certIdBlock instanceof asn1js.ObjectIdentifier)) throw new Error("cert id is not an OID")
      const certId = certIdBlock.valueBlock.toString()
      const certValue = single(cert.certValue)
      if (certId === oid.x509Certificate) {
        // An X.509 certificate bag holds an OCTET STRING (RFC 7292 4.2.3); anything else is a
        // malformed file, refused as pkijs's CertBag refused it, not skipped.
        if (!(certValue instanceof asn1js.OctetString))
          throw new Error("an x509Certificate bag holds no OCTET STRING")
        return {
          _tag: "Certificate",
          der: copyOf(certValue.getValue()),
          localKeyId: localKeyIdOf(attributes),
          friendlyName: friendlyNameOf(attributes),
          trusted: attributes.some((a) => a.type === oid.javaTrustedKeyUsage),
        }
      }
      if (certId === attributeCertificate && certValue instanceof asn1js.OctetString) {
        // Read as pkijs did (an unreadable one fails the block), then skipped.
        pkijs.AttributeCertificateV2.fromBER(certValue.getValue())
        return { _tag: "Other" }
      }
      throw new Error(`certificate bag of unknown type ${certId}`)
    }
    case oid.pkcs8ShroudedKeyBag:
      return {
        _tag: "ShroudedKey",
        value: readShroudedKeyBag(value),
        encoded: copyOf(value.valueBeforeDecodeView),
        localKeyId: localKeyIdOf(attributes),
        friendlyName: friendlyNameOf(attributes),
      }
    case oid.keyBag:
      return {
        _tag: "Key",
        value: new pkijs.PrivateKeyInfo({ schema: value }),
        localKeyId: localKeyIdOf(attributes),
        friendlyName: friendlyNameOf(attributes),
      }
    case oid.safeContentsBag:
      return { _tag: "Nested", bags: readBags(value) }
    case crlBag:
      new pkijs.CRLBag({ schema: value })
      return { _tag: "Other" }
    case secretBag:
      new pkijs.SecretBag({ schema: value })
      return { _tag: "Other" }
    default:
      throw new Error(`unknown bag type ${bagId}`)
  }
}

/** The bags of a parsed SafeContents; throws when it is not one (the caller reports the block as unreadable). */
export const readBags = (safeContents: asn1js.AsnType): ReadonlyArray<SafeBag> => {
  const bags = verified(safeContents, safeContentsSchema(), "SafeContents").safeBags
  return (Array.isArray(bags) ? bags : []).map(readBag)
}

/** The bags of a DER SafeContents; throws when it is not one. */
export const readBagsFromBer = (bytes: Uint8Array): ReadonlyArray<SafeBag> => readBags(parseBer(bytes))
