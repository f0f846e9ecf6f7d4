/** Tunables of the deploy program, with defaults; override with `Effect.provideService(DeployPolicy, ...)`. */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Schedule from "effect/Schedule"

export interface DeployPolicyShape {
  /** Backoff between retries of a read (snapshot, verify, reconcile, previous secret). */
  readonly readRetrySchedule: Schedule.Schedule<Duration.Duration>
  /** Retries of a read after the first attempt. */
  readonly readRetries: number
  /** Largest PFX Key Vault accepts (secret values are limited to 25 KB). */
  readonly maxPfxBytes: number
}

export const DeployPolicy = Context.Reference<DeployPolicyShape>("@kvdeploy/core/DeployPolicy", {
  defaultValue: () => ({
    readRetrySchedule: Schedule.exponential("250 millis", 2),
    readRetries: 4,
    maxPfxBytes: 25 * 1024,
  }),
})
