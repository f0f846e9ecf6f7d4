/**
 * The serial number of an X.509 certificate, read by node:crypto (OpenSSL's
 * X.509 parser), in the canonical form @kvdeploy/pkcs12 gives the new
 * certificate's facts: lowercase hex of the DER INTEGER's content bytes
 * without leading zero bytes ("00" for zero). OpenSSL answers the serial as a
 * signed number; a negative one (RFC 5280 forbids them, some issuers wrote
 * them) is turned back into its minimal two's-complement bytes, which is
 * what its DER content is, so both sides agree on every certificate.
 */
import { hash, X509Certificate } from "node:crypto"

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

/** `serialHexOf` with a memory of recent certificates (see `serialHexReader`). */
export interface SerialHexReader {
  (der: Uint8Array): string | undefined
  /**
   * Remember `serialHex` as the serial of `der`, as a caller that parsed the
   * certificate states it (core's deploy program states the leaf it imports):
   * a later read of the same bytes answers it without parsing them again.
   */
  readonly remember: (der: Uint8Array, serialHex: string) => void
  /**
   * The serial of `der` if it is in the memory (read or remembered before),
   * else `undefined`; never parses. A certificate that is not one is
   * remembered as having no serial, and answers `undefined` here too.
   */
  readonly known: (der: Uint8Array) => string | undefined
}

/**
 * `serialHexOf` with a memory of the last `size` certificates read or
 * remembered (the full DER is compared, so a hit is the same certificate). A
 * deploy reads the certificate it imports more than once: the import's answer
 * and the verify read carry it, and the next deploy's snapshot carries it
 * again; each OpenSSL parse costs some 60-150 us of the client's thread, on
 * the deploy's path when the verify read answers. Remembering the imported
 * leaf's serial as the deploy program read it (the same bytes, so the same
 * serial) leaves no parse on that path.
 *
 * The memory is a Map in least-recently-used order, keyed by the DER's SHA-1
 * (one native call) and checked against a private copy of the bytes. It holds
 * as many entries as deploys may be in flight (34 per vault with the agent's
 * defaults): a scan of every entry with byte comparisons, and array shifts, on
 * each read took ~90 us of the agent's thread per deploy in a full-scale cold
 * pass.
 */
export const serialHexReader = (size = 8): SerialHexReader => {
  interface Entry {
    readonly der: Buffer
    readonly serialHex: string | undefined
  }
  const recent = new Map<string, Entry>()
  const keyOf = (der: Uint8Array): string => hash("sha1", der, "base64")
  /** The entry of `der` (now the most recent), or undefined when it is not in the memory. */
  const hit = (der: Uint8Array, key: string): Entry | undefined => {
    const entry = recent.get(key)
    if (entry === undefined || entry.der.byteLength !== der.byteLength || !entry.der.equals(der))
      return undefined
    recent.delete(key)
    recent.set(key, entry)
    return entry
  }
  const keep = (der: Uint8Array, key: string, serialHex: string | undefined) => {
    recent.delete(key)
    recent.set(key, { der: Buffer.from(der), serialHex })
    if (recent.size > size) recent.delete(recent.keys().next().value as string)
  }
  const read = (der: Uint8Array): string | undefined => {
    const key = keyOf(der)
    const entry = hit(der, key)
    if (entry !== undefined) return entry.serialHex
    const serialHex = serialHexOf(der)
    keep(der, key, serialHex)
    return serialHex
  }
  const known = (der: Uint8Array): string | undefined => hit(der, keyOf(der))?.serialHex
  const remember = (der: Uint8Array, serialHex: string): void => keep(der, keyOf(der), serialHex)
  return Object.assign(read, { remember, known })
}

/**
 * `version` with its `serialHex` read from `cer` on first access (then kept):
 * an own, enumerable property, so spreads, `Object.keys` and equality checks
 * see it as a plain field. `""` when `cer` is not a readable certificate.
 */
export const withSerialReadOnDemand = <V extends { serialHex: string }>(
  version: V,
  cer: Uint8Array,
  read: (der: Uint8Array) => string | undefined,
): V => {
  Object.defineProperty(version, "serialHex", {
    enumerable: true,
    configurable: true,
    get() {
      const serialHex = read(cer) ?? ""
      Object.defineProperty(version, "serialHex", { value: serialHex, enumerable: true, writable: false })
      return serialHex
    },
  })
  return version
}
