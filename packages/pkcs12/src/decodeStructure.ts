/**
 * The layers of a PKCS#12 file that decodePfx reads around the safe bags (the
 * PFX with its MacData, the AuthenticatedSafe and its ContentInfos, an
 * EncryptedData, the PBES2 and PBKDF2 parameters, an Attribute, a
 * PKCS8ShroudedKeyBag), read against pkijs's own schemas, each built once.
 *
 * pkijs's classes read the same structures, but each constructor builds its
 * schema anew (dozens of asn1js objects) and hands every nested part to
 * another class that builds its own schema and compares the same subtree
 * again: a PFX is compared five times (PFX, ContentInfo, MacData, DigestInfo,
 * AlgorithmIdentifier). Here one schema of the same shape names every part
 * read, so one comparison gives them all, and what is read from them is what
 * those classes read (see each function). A structure a class would refuse
 * is refused (the functions throw, and the caller reports the block as
 * unreadable), and a part a class would leave at its default is read as that
 * default.
 *
 * asn1js's `compareSchema` records what it matches on the parsed tree it is
 * given (the `root`). It also writes to the schema at every comparison (it
 * trims the names and re-encodes and re-decodes each node's own identifier
 * block), but after the first one it writes the same values again (a review
 * compared schemas before and after ~3,750 fuzzed comparisons), so a schema
 * serves every decode.
 * Every name in one schema is distinct, and each parsed block is the root of
 * one comparison only.
 */
import * as asn1js from "asn1js"
import * as pkijs from "pkijs"

/** A schema, built on first use and reused. */
export const builtOnce = (build: () => asn1js.AsnType): (() => asn1js.AsnType) => {
  let built: asn1js.AsnType | undefined
  return () => {
    built ??= build()
    return built
  }
}

type Parts = Record<string, unknown>

/** The parts `schema` names in `block`; throws when the block does not have the structure. */
export const partsOf = (block: unknown, schema: asn1js.AsnType, what: string): Parts => {
  if (!(block instanceof asn1js.BaseBlock)) throw new Error(`not a ${what}`)
  const checked = asn1js.compareSchema(block, block, schema)
  if (!checked.verified) throw new Error(`not a ${what}`)
  return checked.result as Parts
}

const oidOf = (block: unknown, what: string): string => {
  if (!(block instanceof asn1js.ObjectIdentifier)) throw new Error(`${what} is not an OBJECT IDENTIFIER`)
  return block.valueBlock.toString()
}

/**
 * An INTEGER's value as a number: asn1js's `valueDec` reads 0 for values of four bytes and more, so a
 * count of 50,000,000 looked like 0 ("not a positive integer"); read through BigInt, and beyond what
 * a number holds exactly as plus or minus infinity (refused by the callers as over their limits).
 */
export const integerValue = (block: asn1js.Integer): number => {
  const value = block.toBigInt()
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) return Number.POSITIVE_INFINITY
  if (value < BigInt(Number.MIN_SAFE_INTEGER)) return Number.NEGATIVE_INFINITY
  return Number(value)
}

const integerOf = (block: unknown, what: string): number => {
  if (!(block instanceof asn1js.Integer)) throw new Error(`${what} is not an INTEGER`)
  return integerValue(block)
}

const octetsOf = (block: unknown, what: string): asn1js.OctetString => {
  if (!(block instanceof asn1js.OctetString)) throw new Error(`${what} is not an OCTET STRING`)
  return block
}

/**
 * An AlgorithmIdentifier as the decoder uses it: its OID as text and its
 * parameters, absent when the file has none (what pkijs's AlgorithmIdentifier
 * holds; one of those fits this type too).
 */
export interface AlgorithmReference {
  readonly algorithmId: string
  readonly algorithmParams?: unknown
}

/** AlgorithmIdentifier's schema with its two parts named `<prefix>Id` and `<prefix>Params`. */
const algorithmNames = (prefix: string, blockName: string, optional?: boolean) => ({
  names: {
    blockName,
    algorithmIdentifier: `${prefix}Id`,
    algorithmParams: `${prefix}Params`,
    ...(optional === undefined ? {} : { optional }),
  },
})

const algorithmIn = (parts: Parts, prefix: string): AlgorithmReference => {
  const algorithmId = oidOf(parts[`${prefix}Id`], "an algorithm identifier")
  return `${prefix}Params` in parts
    ? { algorithmId, algorithmParams: parts[`${prefix}Params`] }
    : { algorithmId }
}

// PFX ::= SEQUENCE { version, authSafe ContentInfo, macData MacData OPTIONAL }, with
// MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER OPTIONAL }.
const pfxSchema = builtOnce(() =>
  pkijs.PFX.schema({
    names: {
      version: "version",
      authSafe: { names: { blockName: "authSafe", contentType: "authSafeType", content: "authSafeContent" } },
      macData: {
        names: {
          blockName: "macData",
          optional: true,
          mac: {
            names: {
              blockName: "mac",
              digestAlgorithm: algorithmNames("macDigest", "macAlgorithm"),
              digest: "macDigest",
            },
          },
          macSalt: "macSalt",
          iterations: "macIterations",
        },
      },
    },
  }),
)

export interface PfxMac {
  /** The MAC's digest algorithm (DigestInfo's digestAlgorithm). */
  readonly digestAlgorithm: AlgorithmReference
  readonly digest: asn1js.OctetString
  readonly salt: asn1js.OctetString
  /** Absent when the file leaves it out (PKCS#12's default is 1). */
  readonly iterations: number | undefined
}

export interface PfxOuter {
  readonly version: number
  /** The authenticated safe's ContentInfo: its content type and its content (the `[0]`'s inner block). */
  readonly contentType: string
  readonly content: unknown
  readonly mac: PfxMac | undefined
}

/** The PFX of a parsed file, read as pkijs's PFX, ContentInfo, MacData, DigestInfo and AlgorithmIdentifier read it. */
export const readPfx = (block: asn1js.AsnType): PfxOuter => {
  const parts = partsOf(block, pfxSchema(), "PFX")
  const mac: PfxMac | undefined =
    "macData" in parts
      ? {
          digestAlgorithm: algorithmIn(parts, "macDigest"),
          digest: octetsOf(parts.macDigest, "the MAC digest"),
          salt: octetsOf(parts.macSalt, "the MAC salt"),
          iterations:
            "macIterations" in parts ? integerOf(parts.macIterations, "the MAC iterations") : undefined,
        }
      : undefined
  return {
    version: integerOf(parts.version, "the PFX version"),
    contentType: oidOf(parts.authSafeType, "the authenticated safe's content type"),
    content: parts.authSafeContent,
    mac,
  }
}

// AuthenticatedSafe ::= SEQUENCE OF ContentInfo. pkijs's AuthenticatedSafe schema compares
// every ContentInfo with ContentInfo's schema, and each would then be compared again to
// name its parts: here the SEQUENCE OF is taken as it is and each ContentInfo compared
// once, all of them before any is used.
const authenticatedSafeSchema = builtOnce(
  () =>
    new asn1js.Sequence({ value: [new asn1js.Repeated({ name: "contentInfos", value: new asn1js.Any() })] }),
)
const contentInfoSchema = builtOnce(() =>
  pkijs.ContentInfo.schema({ names: { contentType: "contentType", content: "content" } }),
)

export interface ContentInfoParts {
  readonly contentType: string
  readonly content: unknown
}

/**
 * The ContentInfos of a parsed AuthenticatedSafe, read as pkijs's
 * AuthenticatedSafe reads them: all of them are checked before any is used,
 * and a SEQUENCE without any is refused (pkijs fails on it).
 */
export const readAuthenticatedSafe = (block: asn1js.AsnType): ReadonlyArray<ContentInfoParts> => {
  const infos = partsOf(block, authenticatedSafeSchema(), "AuthenticatedSafe").contentInfos
  if (!Array.isArray(infos)) throw new Error("an AuthenticatedSafe without content")
  return infos.map((info: unknown) => {
    const parts = partsOf(info, contentInfoSchema(), "ContentInfo")
    return { contentType: oidOf(parts.contentType, "a content type"), content: parts.content }
  })
}

// EncryptedData ::= SEQUENCE { version, encryptedContentInfo, unprotectedAttrs [1] OPTIONAL }, with
// EncryptedContentInfo ::= SEQUENCE { contentType, contentEncryptionAlgorithm, encryptedContent [0] }.
const encryptedDataSchema = builtOnce(() =>
  pkijs.EncryptedData.schema({
    names: {
      version: "version",
      encryptedContentInfo: {
        names: {
          blockName: "encryptedContentInfo",
          contentType: "encryptedContentType",
          contentEncryptionAlgorithm: algorithmNames("encryption", "encryptionAlgorithm"),
          encryptedContent: "encryptedContent",
        },
      },
      unprotectedAttrs: "unprotectedAttrs",
    },
  }),
)

export interface EncryptedDataParts {
  readonly algorithm: AlgorithmReference
  /** The encrypted content's bytes, a new array. */
  readonly ciphertext: Uint8Array
}

/**
 * A parsed EncryptedData: its content encryption algorithm and its encrypted
 * content, read as pkijs's EncryptedData and EncryptedContentInfo read them
 * (`getEncryptedContent`: asn1js's OCTET STRING value of the `[0]`, primitive,
 * or constructed of OCTET STRINGs). The unprotected attributes, which the
 * schema checks and pkijs reads without using them, are not read.
 */
export const readEncryptedData = (block: unknown): EncryptedDataParts => {
  const parts = partsOf(block, encryptedDataSchema(), "EncryptedData")
  integerOf(parts.version, "the EncryptedData version")
  oidOf(parts.encryptedContentType, "the encrypted content type")
  const content = parts.encryptedContent
  if (!(content instanceof asn1js.BaseBlock)) throw new Error("an EncryptedData without content")
  return {
    algorithm: algorithmIn(parts, "encryption"),
    ciphertext: new Uint8Array(asn1js.OctetString.prototype.getValue.call(content)),
  }
}

// Attribute ::= SEQUENCE { type OBJECT IDENTIFIER, values SET OF ANY }.
const attributeSchema = builtOnce(() => pkijs.Attribute.schema({ names: { type: "type", values: "values" } }))

export interface AttributeParts {
  readonly type: string
  /** Absent for an empty SET, as in pkijs's Attribute. */
  readonly values: ReadonlyArray<unknown> | undefined
}

/** A parsed Attribute, read as pkijs's Attribute reads it. */
export const readAttribute = (block: unknown): AttributeParts => {
  const parts = partsOf(block, attributeSchema(), "Attribute")
  const values = parts.values
  return { type: oidOf(parts.type, "an attribute type"), values: Array.isArray(values) ? values : undefined }
}

// EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm, encryptedData OCTET STRING }.
const shroudedKeyBagSchema = builtOnce(() =>
  pkijs.PKCS8ShroudedKeyBag.schema({
    names: {
      encryptionAlgorithm: algorithmNames("encryption", "encryptionAlgorithm"),
      encryptedData: "encryptedData",
    },
  }),
)

export interface ShroudedKeyParts {
  readonly encryptionAlgorithm: AlgorithmReference
  readonly encryptedData: asn1js.OctetString
}

/** A parsed PKCS8ShroudedKeyBag (EncryptedPrivateKeyInfo), read as pkijs's PKCS8ShroudedKeyBag reads it. */
export const readShroudedKeyBag = (block: unknown): ShroudedKeyParts => {
  const parts = partsOf(block, shroudedKeyBagSchema(), "PKCS8ShroudedKeyBag")
  return {
    encryptionAlgorithm: algorithmIn(parts, "encryption"),
    encryptedData: octetsOf(parts.encryptedData, "the encrypted key"),
  }
}

// PBES2-params ::= SEQUENCE { keyDerivationFunc AlgorithmIdentifier, encryptionScheme AlgorithmIdentifier }.
const pbes2Schema = builtOnce(() =>
  pkijs.PBES2Params.schema({
    names: {
      keyDerivationFunc: algorithmNames("kdf", "keyDerivationFunc"),
      encryptionScheme: algorithmNames("scheme", "encryptionScheme"),
    },
  }),
)

export interface Pbes2Parts {
  readonly keyDerivationFunc: AlgorithmReference
  readonly encryptionScheme: AlgorithmReference
}

/**
 * PBES2 parameters, read as pkijs's PBES2Params reads them. Absent
 * parameters give what that class holds without a schema: two algorithm
 * identifiers with an empty OID.
 */
export const readPbes2Params = (params: unknown): Pbes2Parts => {
  if (params === undefined)
    return { keyDerivationFunc: { algorithmId: "" }, encryptionScheme: { algorithmId: "" } }
  const parts = partsOf(params, pbes2Schema(), "PBES2-params")
  return { keyDerivationFunc: algorithmIn(parts, "kdf"), encryptionScheme: algorithmIn(parts, "scheme") }
}

// PBKDF2-params ::= SEQUENCE { salt CHOICE { OCTET STRING, AlgorithmIdentifier }, iterationCount,
// keyLength INTEGER OPTIONAL, prf AlgorithmIdentifier DEFAULT hmacWithSHA1 }.
const pbkdf2Schema = builtOnce(() =>
  pkijs.PBKDF2Params.schema({
    names: {
      saltPrimitive: "salt",
      saltConstructed: { names: { blockName: "salt" } },
      iterationCount: "iterationCount",
      keyLength: "keyLength",
      prf: algorithmNames("prf", "prf", true),
    },
  }),
)

export interface Pbkdf2Parts {
  /** An OCTET STRING block, or whatever else the file holds there. */
  readonly salt: unknown
  readonly iterationCount: number
  readonly prf: AlgorithmReference | undefined
}

/**
 * PBKDF2 parameters, read as pkijs's PBKDF2Params reads them. Absent
 * parameters give what that class holds without a schema: no salt block, an
 * iteration count of -1, no PRF.
 */
export const readPbkdf2Params = (params: unknown): Pbkdf2Parts => {
  if (params === undefined) return { salt: undefined, iterationCount: -1, prf: undefined }
  const parts = partsOf(params, pbkdf2Schema(), "PBKDF2-params")
  if ("keyLength" in parts) integerOf(parts.keyLength, "the PBKDF2 key length")
  return {
    salt: parts.salt,
    iterationCount: integerOf(parts.iterationCount, "the PBKDF2 iteration count"),
    prf: "prf" in parts ? algorithmIn(parts, "prf") : undefined,
  }
}
