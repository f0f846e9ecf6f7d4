/**
 * Object identifiers and the node:crypto names they map to, for everything a
 * PKCS#12 file written by OpenSSL, Java, Windows or kvdeploy uses.
 */

export const oid = {
  data: "1.2.840.113549.1.7.1",
  signedData: "1.2.840.113549.1.7.2",
  envelopedData: "1.2.840.113549.1.7.3",
  encryptedData: "1.2.840.113549.1.7.6",

  keyBag: "1.2.840.113549.1.12.10.1.1",
  pkcs8ShroudedKeyBag: "1.2.840.113549.1.12.10.1.2",
  certBag: "1.2.840.113549.1.12.10.1.3",
  safeContentsBag: "1.2.840.113549.1.12.10.1.6",
  x509Certificate: "1.2.840.113549.1.9.22.1",

  friendlyName: "1.2.840.113549.1.9.20",
  localKeyId: "1.2.840.113549.1.9.21",
  /** Oracle's trusted key usage: Java's keytool writes it on a trusted-certificate entry's bag. */
  javaTrustedKeyUsage: "2.16.840.1.113894.746875.1.1",

  pbes2: "1.2.840.113549.1.5.13",
  pbkdf2: "1.2.840.113549.1.5.12",
  scrypt: "1.3.6.1.4.1.11591.4.11",
  pbeSha1Rc2_128: "1.2.840.113549.1.12.1.5",
  pbeSha1Rc2_40: "1.2.840.113549.1.12.1.6",
  pbeSha1TripleDes: "1.2.840.113549.1.12.1.3",
  pbeSha1TwoKeyTripleDes: "1.2.840.113549.1.12.1.4",

  aes128Cbc: "2.16.840.1.101.3.4.1.2",
  aes192Cbc: "2.16.840.1.101.3.4.1.22",
  aes256Cbc: "2.16.840.1.101.3.4.1.42",
  desEde3Cbc: "1.2.840.113549.3.7",

  hmacWithSha1: "1.2.840.113549.2.7",
  hmacWithSha224: "1.2.840.113549.2.8",
  hmacWithSha256: "1.2.840.113549.2.9",
  hmacWithSha384: "1.2.840.113549.2.10",
  hmacWithSha512: "1.2.840.113549.2.11",

  sha1: "1.3.14.3.2.26",
  sha224: "2.16.840.1.101.3.4.2.4",
  sha256: "2.16.840.1.101.3.4.2.1",
  sha384: "2.16.840.1.101.3.4.2.2",
  sha512: "2.16.840.1.101.3.4.2.3",

  rsaEncryption: "1.2.840.113549.1.1.1",
  rsassaPss: "1.2.840.113549.1.1.10",
  ecPublicKey: "1.2.840.10045.2.1",
} as const

export type HashName = "sha1" | "sha224" | "sha256" | "sha384" | "sha512"

/** Digest algorithm OIDs (as used in MacData) to node:crypto hash names. */
export const digestByOid: Readonly<Record<string, HashName>> = {
  [oid.sha1]: "sha1",
  [oid.sha224]: "sha224",
  [oid.sha256]: "sha256",
  [oid.sha384]: "sha384",
  [oid.sha512]: "sha512",
}

/** PBKDF2 PRF OIDs to node:crypto hash names. */
export const prfByOid: Readonly<Record<string, HashName>> = {
  [oid.hmacWithSha1]: "sha1",
  [oid.hmacWithSha224]: "sha224",
  [oid.hmacWithSha256]: "sha256",
  [oid.hmacWithSha384]: "sha384",
  [oid.hmacWithSha512]: "sha512",
}

/** PBES2 encryption schemes kvdeploy reads: node:crypto cipher name and key length. */
export const pbes2CipherByOid: Readonly<
  Record<string, { readonly cipher: string; readonly keyLength: number }>
> = {
  [oid.aes128Cbc]: { cipher: "aes-128-cbc", keyLength: 16 },
  [oid.aes192Cbc]: { cipher: "aes-192-cbc", keyLength: 24 },
  [oid.aes256Cbc]: { cipher: "aes-256-cbc", keyLength: 32 },
  [oid.desEde3Cbc]: { cipher: "des-ede3-cbc", keyLength: 24 },
}

/** PKCS#12 PBES1 schemes (RFC 7292 Appendix C): cipher and key length; all use SHA-1 in the PKCS#12 KDF. */
export const pbes1ByOid: Readonly<
  Record<string, { readonly cipher: "des-ede3-cbc" | "des-ede-cbc" | "rc2"; readonly keyLength: number }>
> = {
  [oid.pbeSha1TripleDes]: { cipher: "des-ede3-cbc", keyLength: 24 },
  [oid.pbeSha1TwoKeyTripleDes]: { cipher: "des-ede-cbc", keyLength: 16 },
  [oid.pbeSha1Rc2_128]: { cipher: "rc2", keyLength: 16 },
  [oid.pbeSha1Rc2_40]: { cipher: "rc2", keyLength: 5 },
}

/** Hash output and block sizes, for the PKCS#12 KDF. */
export const hashSizes: Readonly<Record<HashName, { readonly u: number; readonly v: number }>> = {
  sha1: { u: 20, v: 64 },
  sha224: { u: 28, v: 64 },
  sha256: { u: 32, v: 64 },
  sha384: { u: 48, v: 128 },
  sha512: { u: 64, v: 128 },
}

/**
 * The highest iteration count kvdeploy runs a KDF with when reading a file.
 * OpenSSL writes 2048, Java 10000, Windows 2000; a hostile file asking for
 * billions would otherwise hang the reader.
 */
export const maxIterations = 1_000_000

/**
 * The KDF work one decode may spend, in iterations summed over every
 * derivation (MAC, each decrypted bag). A normal file spends a few ten
 * thousand; a hostile one with thousands of bags at the per-KDF limit is
 * stopped here instead of running for minutes.
 */
export const maxTotalIterations = 4_000_000

/** The largest PFX kvdeploy reads (Key Vault's own limit is 25 KB). */
export const maxPfxBytes = 1024 * 1024

/**
 * The highest scrypt cost N*r*p kvdeploy lets OpenSSL run when reading an encrypted key file:
 * 1,048,576, eight times what `openssl pkcs8 -topk8 -scrypt` writes (N 16384, r 8, p 1). Work grows
 * with N*r*p; OpenSSL bounds the memory (128*N*r bytes, 32 MiB) but not the time (p).
 */
export const maxScryptCost = 1_048_576

/**
 * The scrypt memory OpenSSL allows by default (32 MiB; scrypt takes 128*N*r bytes): a key needing
 * more is refused by OpenSSL too, so the fix of such a key cannot be an openssl command that reads it.
 */
export const opensslScryptMemoryLimit = 32 * 1024 * 1024

/** How the fix of a key OpenSSL cannot decrypt either begins (callers with their own advice know it by that). */
export const OPENSSL_CANNOT_READ_EITHER = "OpenSSL cannot decrypt it either"

/**
 * Password-based encryptions of a PKCS#8 key that Node's OpenSSL 3 does not decrypt (they live in its
 * legacy provider, which Node does not load), by OID: named in the refusal of a key file using one.
 * The PKCS#12 PBE-SHA1-3DES schemes and PBES2 with AES or 3DES are read and are not listed.
 */
export const unreadKeyEncryptions: Readonly<Record<string, string>> = {
  "1.2.840.113549.1.12.1.1": "PBE-SHA1-RC4-128",
  "1.2.840.113549.1.12.1.2": "PBE-SHA1-RC4-40",
  [oid.pbeSha1Rc2_128]: "PBE-SHA1-RC2-128",
  [oid.pbeSha1Rc2_40]: "PBE-SHA1-RC2-40",
  "1.2.840.113549.1.5.1": "PBE-MD2-DES",
  "1.2.840.113549.1.5.3": "PBE-MD5-DES",
  "1.2.840.113549.1.5.4": "PBE-MD2-RC2-64",
  "1.2.840.113549.1.5.6": "PBE-MD5-RC2-64",
  "1.2.840.113549.1.5.10": "PBE-SHA1-DES",
  "1.2.840.113549.1.5.11": "PBE-SHA1-RC2-64",
  // PBES2's encryption schemes.
  "1.3.14.3.2.7": "PBES2 with DES-CBC",
  "1.2.840.113549.3.2": "PBES2 with RC2-CBC",
  "1.2.840.113549.3.9": "PBES2 with RC5-CBC",
}
