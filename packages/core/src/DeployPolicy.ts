/** Tunables of the deploy program, with defaults; override with `Effect.provideService(DeployPolicy, ...)`. */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"

export interface DeployPolicyShape {
  /** Delay before the first retry of a read (snapshot, verify, reconcile, previous secret). */
  readonly readRetryBase: Duration.Input
  /** Each further retry waits this many times longer (exponential backoff, `Schedule.exponential`). */
  readonly readRetryFactor: number
  /** Retries of a read after the first attempt. */
  readonly readRetries: number
  /**
   * Largest PFX Key Vault accepts, in bytes of PFX. Key Vault keeps a certificate's PFX in its
   * backing secret as base64 text, and a secret value is at most 25 KB (25,600 characters): a PFX
   * of 19,200 bytes is 25,600 characters of base64, and a larger one is refused with 400.
   */
  readonly maxPfxBytes: number
  /**
   * Largest PEM value Key Vault accepts, in bytes of PEM text: the backing secret holds the PEM
   * text as is, and a secret value is at most 25 KB (25,600 characters). Default 25,600.
   */
  readonly maxPemBytes?: number
  /**
   * When preflight decided the size rule without building the PFX (the codec
   * states a size bound): build it while the snapshot read is on its way
   * (default `true`: the build's CPU time overlaps the vault's answer, and is
   * spent for nothing when that answer says Skipped), or `false`: only once the
   * snapshot says an import follows (a Skipped deploy never builds a PFX).
   * A snapshot answered at once (a vault with nothing in flight) never builds
   * for a Skipped deploy either way.
   */
  readonly buildPfxDuringSnapshot?: boolean
}

/** Key Vault's secret value limit in characters (25 KB), which a PEM import's text must fit. */
export const MAX_PEM_BYTES = 25 * 1024

export const DeployPolicy = Context.Reference<DeployPolicyShape>("@kvdeploy/core/DeployPolicy", {
  defaultValue: () => ({
    readRetryBase: "250 millis",
    readRetryFactor: 2,
    readRetries: 4,
    maxPfxBytes: ((25 * 1024) / 4) * 3,
    maxPemBytes: 25 * 1024,
  }),
})
