/**
 * Certificate material as the domain sees it: DER certificates and a PKCS#8
 * private key. The key is always wrapped in `Redacted`, so printing, logging
 * or serialising a value that holds it shows `<redacted>` instead of bytes.
 */
import type * as Redacted from "effect/Redacted"

export interface CertificateMaterial {
  /** The leaf certificate, DER. */
  readonly leaf: Uint8Array
  /** The rest of the chain, DER, in any order (the codec orders it leaf-first). */
  readonly chain: ReadonlyArray<Uint8Array>
  /** The leaf's private key as unencrypted PKCS#8 DER. */
  readonly key: Redacted.Redacted<Uint8Array>
  /**
   * Where it was read from, for advice on giving it again: "pfx" when the operator's PKCS#12 file
   * was decoded (--pfx, the agent's pfx source: its fix is to export it again, not to take another
   * PEM file). Absent: PEM or DER files, and a vault's backing secret (restore, rollback), which the
   * operator never held as a PFX.
   */
  readonly from?: "pfx"
}

/** The fix of a leaf given without the certificate that issued it, for material read `from` there. */
export const missingChainFix = (from: CertificateMaterial["from"]): string =>
  from === "pfx"
    ? "export the PFX again with the issuer's chain in it (openssl pkcs12 -export -inkey key.pem -in cert.pem -certfile chain.pem, or the exporting tool's option to include the chain)"
    : "give the issuer's chain with the leaf (an ACME client's fullchain.pem, not cert.pem)"

export type KeyType = "RSA" | "EC"
export type Curve = "P-256" | "P-384" | "P-521" | "P-256K"

/** Facts of one certificate, computed from its DER. */
export interface CertificateFacts {
  /** Canonical lowercase hex, no leading zero bytes: compares equal iff the serials are equal. */
  readonly serialHex: string
  /** base64url SHA-1 of the DER, as Key Vault reports `x5t`. */
  readonly x5t: string
  /** Lowercase hex SHA-256 of the DER. */
  readonly sha256Thumbprint: string
  readonly subject: string
  readonly issuer: string
  /** Subject alternative names, as `DNS:host`, `IP:addr`, `email:x`, `URI:x`. */
  readonly sans: ReadonlyArray<string>
  readonly notBefore: Date
  readonly notAfter: Date
  readonly keyType: KeyType
  /** RSA modulus size in bits (RSA only). */
  readonly keySize?: number
  /** Named curve (EC only). */
  readonly curve?: Curve
  /** True when subject == issuer and the signature verifies with the certificate's own key. */
  readonly selfSigned: boolean
  /**
   * The key type of the algorithm the certificate is signed with (its issuer's key type: ECDSA is
   * EC's, RSA PKCS#1 v1.5 and PSS are RSA's); absent for any other algorithm.
   */
  readonly signatureKeyType?: KeyType
  /**
   * True when it is a CA certificate made to issue others: basicConstraints cA TRUE and keyCertSign
   * in its key usage. Read for an inspected leaf only (absent on the chain's facts).
   */
  readonly issuesCertificates?: boolean
  readonly der: Uint8Array
}

/** One thing wrong with the material; `field` names the input (leaf, chain[2], key). */
export interface MaterialProblem {
  readonly field: string
  readonly message: string
  readonly fix: string
}

/** The material after the codec looked at it: facts, order and checks. */
export interface InspectedMaterial {
  readonly leaf: CertificateFacts
  /** The chain ordered leaf-first (issuer of the leaf first), unrelated certificates removed. */
  readonly chain: ReadonlyArray<CertificateFacts>
  /** Facts of the private key (never its bytes). */
  readonly key: { readonly keyType: KeyType; readonly keySize?: number; readonly curve?: Curve }
  /** Whether the private key's public half equals the leaf's public key. */
  readonly keyMatchesLeaf: boolean
  /** Every problem found (mismatched key, broken or unrelated chain links, unsupported key); empty when none. */
  readonly problems: ReadonlyArray<MaterialProblem>
}
