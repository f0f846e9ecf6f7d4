/**
 * The serial number of an X.509 certificate, read by node:crypto (OpenSSL's
 * X.509 parser), in the canonical form @kvdeploy/pkcs12 gives the new
 * certificate's facts: lowercase hex of the DER INTEGER's content bytes
 * without leading zero bytes ("00" for zero). OpenSSL answers the serial as a
 * signed number; a negative one (RFC 5280 forbids them, some issuers wrote
 * them) is turned back into its minimal two's-complement bytes, which is
 * what its DER content is, so both sides agree on every certificate.
 */
import { X509Certificate } from "node:crypto"

export const twosComplementHex = (magnitudeHex: string): string => {
  const value = -BigInt(`0x${magnitudeHex}`)
  let bytes = 1
  while (value < -(1n << BigInt(8 * bytes - 1))) bytes++
  return ((1n << BigInt(8 * bytes)) + value).toString(16).padStart(2 * bytes, "0")
}

/** Canonical lowercase hex of the certificate's serial; undefined if the DER is not a certificate. */
export const serialHexOf = (der: Uint8Array): string | undefined => {
  let serial: string
  try {
    serial = new X509Certificate(der).serialNumber.toLowerCase()
  } catch {
    return undefined
  }
  if (serial.startsWith("-")) return twosComplementHex(serial.slice(1))
  const stripped = serial.replace(/^(00)+/, "")
  if (stripped === "") return "00"
  return stripped.length % 2 === 1 ? `0${stripped}` : stripped
}
