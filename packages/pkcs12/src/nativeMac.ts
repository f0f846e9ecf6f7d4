/**
 * The PFX's integrity MAC checked by OpenSSL instead of the JS key derivation.
 *
 * The PKCS#12 MAC key derivation (pkcs12Kdf.ts) is `iterations` sequential
 * hashes: at OpenSSL 3's default of 2048 it was ~2.5-3.5 ms of a ~7-10 ms
 * decode in JS. Node exposes no PKCS#12 KDF, but `tls.createSecureContext({
 * pfx, passphrase })` runs OpenSSL's PKCS12_parse, which verifies the MAC with
 * the password (for an empty password both the NULL and the "" forms, as
 * decodePfx's two candidates), then decrypts the bags and pairs key and
 * certificate: it succeeds only when the MAC verified. The whole of it costs
 * ~1.0-1.6 ms of CPU for an RSA-2048 PFX at 2048 iterations (Node 24, OpenSSL
 * 3.5), ~0.5-0.7 ms at 1 iteration, so it is used only from
 * `nativeMacMinIterations` on.
 *
 * OpenSSL applies no iteration limit of its own: decodePfx calls this only
 * after its own decoder has decrypted and read every bag under its limits
 * (see decodePfx.ts). A failure here is never an answer: decodePfx then runs
 * its JS MAC verification, whose outcome stands.
 */
import { createSecureContext } from "node:tls"

/** True when OpenSSL accepted the PFX with this password (the MAC among the checks). Must not throw. */
export type NativeMacCheck = (pfx: Uint8Array, password: string) => boolean

/**
 * OpenSSL's check. It gets a Buffer copy of the PFX; the context built (which
 * holds the key inside OpenSSL) is dropped at once, and OpenSSL's error, which
 * names no key material, is not kept either: any failure is `false`.
 */
export const opensslAcceptsPfx: NativeMacCheck = (pfx, password) => {
  try {
    createSecureContext({ pfx: Buffer.from(pfx), passphrase: password })
    return true
  } catch {
    return false
  }
}

/**
 * From this MAC iteration count on, OpenSSL's check replaces the JS one. Below
 * it the JS derivation is cheaper than OpenSSL's fixed cost (context, key
 * load, the bags' decryption again): decodePfx of fresh RSA-2048 PFXs,
 * in-process A/B (CPU, on/off) was 0.80-0.83 at 2048 iterations, 0.81 at 1536,
 * 0.95 at 1024 and 1.08 at 512 (see the README).
 */
export const nativeMacMinIterations = 1024

let current: NativeMacCheck | undefined = opensslAcceptsPfx

/** The check decodePfx uses; `undefined` when switched off. */
export const nativeMacCheck = (): NativeMacCheck | undefined => current

/**
 * For tests and in-process A/B benchmarks only: replace the check (a counting
 * wrapper, or `undefined` to switch it off); returns the one it replaced.
 */
export const setNativeMacCheck = (check: NativeMacCheck | undefined): NativeMacCheck | undefined => {
  const previous = current
  current = check
  return previous
}

/**
 * Whether OpenSSL sees the same password bytes as the JS MAC: Node hands the
 * passphrase to OpenSSL as a NUL-terminated UTF-8 string, so a lone surrogate
 * (which UTF-8 turns into U+FFFD) or a NUL (which ends it early) would make
 * OpenSSL check another password than the one given.
 */
export const passwordReachesOpensslIntact = (password: string): boolean =>
  !loneSurrogate.test(password) && !password.includes("\u0000")

// String.prototype.isWellFormed's test (not in this package's TypeScript lib):
// in a `u` regex a surrogate pair is one code point, so only a lone half matches.
const loneSurrogate = /\p{Surrogate}/u
