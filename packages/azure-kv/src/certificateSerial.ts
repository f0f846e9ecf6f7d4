/**
 * The serial number of an X.509 certificate read from its DER, without a
 * parser dependency: Certificate ::= SEQUENCE { tbsCertificate SEQUENCE {
 * [0] version OPTIONAL, serialNumber INTEGER, ... } ... }.
 */

interface Tlv {
  readonly tag: number
  readonly start: number
  readonly end: number
}

const readTlv = (der: Uint8Array, offset: number): Tlv | undefined => {
  const tag = der[offset]
  let lengthByte = der[offset + 1]
  if (tag === undefined || lengthByte === undefined) return undefined
  let cursor = offset + 2
  let length = lengthByte
  if (lengthByte & 0x80) {
    const count = lengthByte & 0x7f
    if (count === 0 || count > 4) return undefined
    length = 0
    for (let i = 0; i < count; i++) {
      lengthByte = der[cursor++]
      if (lengthByte === undefined) return undefined
      length = length * 256 + lengthByte
    }
  }
  const end = cursor + length
  if (end > der.length) return undefined
  return { tag, start: cursor, end }
}

/** Canonical lowercase hex (no leading zero bytes) of the certificate's serial; undefined if the DER is not a certificate. */
export const serialHexOf = (der: Uint8Array): string | undefined => {
  const certificate = readTlv(der, 0)
  if (certificate?.tag !== 0x30) return undefined
  const tbs = readTlv(der, certificate.start)
  if (tbs?.tag !== 0x30) return undefined
  let field = readTlv(der, tbs.start)
  if (field?.tag === 0xa0) field = readTlv(der, field.end)
  if (field?.tag !== 0x02) return undefined
  let start = field.start
  while (start < field.end - 1 && der[start] === 0) start++
  if (start === field.end) return undefined
  return Buffer.from(der.subarray(start, field.end)).toString("hex")
}
