/**
 * The key usage bits of a certificate (extension 2.5.29.15), as
 * @peculiar/x509's `KeyUsageFlags` number. node:crypto's X509Certificate does
 * not expose the extension; a whole @peculiar/x509 certificate parse costs
 * ~0.5 ms. Here asn1js parses the certificate, pkijs's
 * Certificate and Extension schemas (built once) find the extension, and @peculiar/x509's
 * own KeyUsagesExtension reads it, so the bits are exactly what
 * `new x509.X509Certificate(der).getExtension(x509.KeyUsagesExtension)?.usages` gives.
 *
 * The certificate is parsed when its usage is asked for, not ahead: decodePfx
 * reads certificates with node:crypto only, so a parse made while decoding
 * (kept for a later call, as before) was work of its own, ~10% of a small
 * PFX's decode, spent by every caller (the agent never asks for the usage)
 * and saved to none (the emulator asks once per leaf, right after decoding).
 */
import "reflect-metadata"
import { MaterialInvalid } from "@kvdeploy/core"
import * as x509 from "@peculiar/x509"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as pkijs from "pkijs"
import { noStackTrace } from "./spans.js"

const keyUsageOid = "2.5.29.15"

// Built once and reused (asn1js's compareSchema records what it matches on the
// parsed tree it is given; its writes to the schema, names trimmed and identifier blocks
// re-read, put back the same values after the first use, see decodeStructure.ts; building pkijs's Certificate
// schema, hundreds of asn1js objects, cost as much as comparing with it).
let certificateSchemaBuilt: asn1js.AsnType | undefined
const certificateSchema = (): asn1js.AsnType =>
  (certificateSchemaBuilt ??= pkijs.Certificate.schema({
    names: { tbsCertificate: { names: { extensions: { names: { extensions: "extensions" } } } } },
  }))
// An Extension's structure, naming only its OID: pkijs's Extension class would build
// this schema anew for every extension of the certificate.
let extensionSchemaBuilt: asn1js.AsnType | undefined
const extensionSchema = (): asn1js.AsnType =>
  (extensionSchemaBuilt ??= pkijs.Extension.schema({ names: { extnID: "extnID" } }))

/** The OID of one Extension block; throws when the block is not an Extension. */
const extensionId = (block: asn1js.AsnType): string => {
  const checked = asn1js.compareSchema(block, block, extensionSchema())
  const id: unknown = checked.verified ? checked.result.extnID : undefined
  if (!(id instanceof asn1js.ObjectIdentifier)) throw new Error("not an X.509 extension")
  return id.valueBlock.toString()
}

// Only what `read` uses is parsed: the certificate's structure, not the
// contents of its OCTET and BIT STRINGs (the extension's value is read by
// @peculiar/x509 from its bytes).
const parseCertificate = (der: Uint8Array): asn1js.AsnType => {
  const parsed = asn1js.fromBER(der, { parseEmbedded: false })
  if (parsed.offset !== der.length) throw new Error("not one DER value")
  return parsed.result
}

const read = (der: Uint8Array): number | undefined => {
  const tree = parseCertificate(der)
  const checked = asn1js.compareSchema(tree, tree, certificateSchema())
  if (!checked.verified) throw new Error("not an X.509 certificate")
  const extensions: unknown = checked.result.extensions
  if (!Array.isArray(extensions)) return undefined
  for (const block of extensions as ReadonlyArray<asn1js.AsnType>) {
    if (extensionId(block) === keyUsageOid)
      return new x509.KeyUsagesExtension(block.valueBeforeDecodeView).usages
  }
  return undefined
}

/** keyCertSign in `KeyUsageFlags`. */
const KEY_CERT_SIGN = 32

/**
 * Whether a certificate node:crypto says is a CA (basicConstraints cA TRUE) has keyCertSign in its
 * key usage: made to issue certificates. A CA without a key usage extension (what `openssl req
 * -x509` makes by default for a self-signed server certificate) is not judged one; nor is a
 * certificate whose extension cannot be read. The key usage is parsed only for a CA.
 */
export const issuesCertificatesNow = (der: Uint8Array, ca: boolean): boolean => {
  if (!ca) return false
  try {
    const bits = read(der)
    return bits !== undefined && (bits & KEY_CERT_SIGN) !== 0
  } catch {
    return false
  }
}

/**
 * Key usage bits of a DER certificate as @peculiar/x509's `KeyUsageFlags`
 * (bit n of the BIT STRING is `1 << n`: digitalSignature 1, nonRepudiation 2,
 * keyEncipherment 4, dataEncipherment 8, keyAgreement 16, keyCertSign 32,
 * cRLSign 64, encipherOnly 128, decipherOnly 256); `undefined` when the
 * certificate has no key usage extension. Fails with `MaterialInvalid` when
 * `der` is not a readable certificate or its key usage extension is not
 * readable.
 */
export const keyUsageBits = (der: Uint8Array): Effect.Effect<number | undefined, MaterialInvalid> =>
  Effect.try({
    try: () => read(der),
    catch: () =>
      new MaterialInvalid({
        problems: [
          {
            field: "certificate",
            message: "is not a readable X.509 certificate (its key usage could not be read)",
            fix: "supply the certificate as DER; check it with openssl x509 -inform DER -noout -text",
          },
        ],
      }),
  }).pipe(Effect.withSpan("pkcs12.keyUsageBits", undefined, noStackTrace))
