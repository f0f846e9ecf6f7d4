import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type { CertificateMaterial, InspectedMaterial } from "../material.js"

/** PKCS#12 encryption profile. */
export type PfxEncoding = "modern" | "legacy"

export interface PfxEncodeOptions {
  readonly encoding: PfxEncoding
  /** PKCS#12 password; Key Vault accepts the empty password. */
  readonly password: Redacted.Redacted<string>
  /** Friendly name put on the leaf and key bags. */
  readonly friendlyName?: string
  /**
   * Iteration count of every key derivation in the file (the key and certificate
   * encryption and the MAC); the codec's default when omitted (2048 in @kvdeploy/pkcs12,
   * as OpenSSL writes).
   */
  readonly iterations?: number
}

/** The material could not be read or checked. `problems` lists every issue, never key bytes. */
export class MaterialInvalid extends Schema.TaggedError<MaterialInvalid>()("MaterialInvalid", {
  problems: Schema.Array(Schema.Struct({ field: Schema.String, message: Schema.String, fix: Schema.String })),
}) {
  override get message(): string {
    return this.problems.map((p) => `${p.field}: ${p.message} (${p.fix})`).join("; ")
  }
}

/**
 * A codec refusal's words, kept apart: `finding` is what the codec found (never advice), `fix` what
 * to do about it with a file of one's own (re-export it, check it with openssl), when the codec has
 * advice. The text shown for an operator's own file (`message`) is the finding, then "; " and the
 * fix; a reader for whom the fix does not apply (a backing secret the vault holds is not the
 * operator's file) takes `finding` alone.
 */
const refusalWords = {
  finding: Schema.String,
  fix: Schema.optional(Schema.String),
}

const said = (refusal: { readonly finding: string; readonly fix?: string | undefined }): string =>
  refusal.fix === undefined ? refusal.finding : `${refusal.finding}; ${refusal.fix}`

/** A PFX (or the PEM of an import) could not be built. `message`: the finding, then the fix. */
export class PfxEncodeError extends Schema.TaggedError<PfxEncodeError>()("PfxEncodeError", {
  ...refusalWords,
  cause: Schema.optional(Schema.Defect()),
}) {
  override get message(): string {
    return said(this)
  }
}

/**
 * A PFX could not be read: wrong password, altered MAC, malformed, unsupported algorithm. `reason`
 * is the kind; `message` (and `detail`, the same text) the finding, then the fix.
 */
export class PfxDecodeError extends Schema.TaggedError<PfxDecodeError>()("PfxDecodeError", {
  reason: Schema.Literals([
    "wrong-password",
    "malformed",
    "unsupported",
    "no-key",
    "no-certificate",
    "too-large",
  ]),
  ...refusalWords,
  cause: Schema.optional(Schema.Defect()),
}) {
  override get message(): string {
    return said(this)
  }
  /** The whole text for an operator's own file, as `message`: the finding, then the fix. */
  get detail(): string {
    return said(this)
  }
}

/** The codec the deploy program uses for everything it needs to know about certificate material. */
export class PfxCodec extends Context.Service<
  PfxCodec,
  {
    /** Facts, chain order and checks of the material; fails only when it cannot be parsed at all. */
    readonly inspect: (material: CertificateMaterial) => Effect.Effect<InspectedMaterial, MaterialInvalid>
    /**
     * Optional: an upper bound of the byte length `encode` would answer for this
     * material and options (exact is best; never less than the real length),
     * computed from sizes alone, without encrypting anything. With it, preflight
     * decides Key Vault's 25 KB rule without building the PFX, and the deploy
     * builds the PFX only once it knows it will import (while the snapshot read
     * is on its way). `undefined` (or no method): preflight builds the PFX to
     * measure it, as it always may.
     */
    readonly maxEncodedBytes?: (
      material: CertificateMaterial,
      options: PfxEncodeOptions,
    ) => number | undefined
    /** Build a PFX in memory. Refuses (PfxEncodeError) to pair a key with a certificate it does not match. */
    readonly encode: (
      material: CertificateMaterial,
      options: PfxEncodeOptions,
    ) => Effect.Effect<Uint8Array, PfxEncodeError>
    /**
     * Build the PEM text Key Vault's PEM import takes, in memory, as UTF-8 bytes: the leaf, then
     * the chain in issuer order (leaf first), then the key as an unencrypted PKCS#8 `PRIVATE KEY`,
     * `\n` line endings. Refuses (PfxEncodeError) to pair a key with a certificate it does not
     * match, as `encode` does.
     */
    readonly encodePem: (material: CertificateMaterial) => Effect.Effect<Uint8Array, PfxEncodeError>
    /** Read a PFX: leaf (the certificate whose key is in the file), chain, key as PKCS#8. */
    readonly decode: (
      bytes: Uint8Array,
      password: Redacted.Redacted<string>,
    ) => Effect.Effect<CertificateMaterial, PfxDecodeError>
  }
>()("@kvdeploy/core/PfxCodec") {}
