/** What a deploy is asked to do. */
import type * as Redacted from "effect/Redacted"
import type { CertificateMaterial } from "./material.js"
import type { TargetConfig } from "./TargetConfig.js"

export interface DeployOptions {
  /** Take over a certificate that exists without `certctl-managed-by=certctl` (the adoption is recorded). */
  readonly adopt?: boolean
  /**
   * Import even when the vault serves this certificate already (its leaf, enabled, with kvdeploy's
   * tags and every tag the request gives): the served version may hold it with another chain,
   * content type or tags, which idempotency does not compare. Ownership, verify and rollback as
   * always: a certificate kvdeploy does not manage is still refused without `adopt`.
   */
  readonly force?: boolean
  /**
   * The private key of the certificate the vault serves now, kept by the caller
   * (key history). Used for a rollback only when it provably matches the
   * previous certificate; lets a rollback work without `secrets/get`.
   */
  readonly previousKey?: Redacted.Redacted<Uint8Array>
  /** The previous certificate's chain (DER), used with `previousKey`. */
  readonly previousChain?: ReadonlyArray<Uint8Array>
}

export interface DeployRequest {
  readonly target: TargetConfig
  readonly material: CertificateMaterial
  /** The caller's id for this certificate (the `certctl-certificate-id` tag). */
  readonly certificateId: string
  readonly options?: DeployOptions
}
