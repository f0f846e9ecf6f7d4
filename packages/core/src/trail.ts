/**
 * The running record of one deploy: vault calls made, decisions taken, and
 * the metric events owed at the end.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { DeployPolicy } from "./DeployPolicy.js"
import type { DeployWarning, Recovered } from "./outcome.js"
import type { PostVerifyFailureReason, RollbackOutcome } from "./ports/Metrics.js"
import { isRetriableRead, type VaultOperation, wasUnsent } from "./ports/Vault.js"

export class DeployTrail {
  vaultCalls = 0
  readonly decisions: Array<string> = []
  postVerifyFailure: PostVerifyFailureReason | undefined = undefined
  rollbackOutcome: RollbackOutcome | undefined = undefined
  /** What preflight found that may break a client without stopping the deploy. */
  warnings: ReadonlyArray<DeployWarning> = []
  /** Whether ownership judged the served certificate one to take over (`adopt`): it is taken over once an import may have landed. */
  adopting = false
  /** Whether the deploy took over a certificate kvdeploy did not manage: an import that may have landed, while adopting. */
  adopted = false
  /**
   * Whether the deploy recovered the soft-deleted certificate of its name (`on_soft_deleted:
   * recover`), or found the certificate served already when it went to recover it (no recovery sent).
   */
  recovered: Recovered | undefined = undefined
  /**
   * With `recovered` "already-served": whether the vault served another version than the deleted
   * certificate's latest (false when the deleted certificate's read did not say which it held).
   */
  servedOtherThanDeleted = false
  /**
   * With `recovered` "already-served": whether this deploy's recovery was sent and found no deleted
   * certificate (404: another writer's recovery not shown yet when the SDK read the certificate, or
   * a purge), rather than not sent at all (the certificate served when the SDK read it).
   */
  recoveryFoundNone = false
  /**
   * With `recovered` "recovered": whether this deploy's recovery was sent and its answer lost (not
   * the POST's 2xx followed by a failed read: `VaultAmbiguous.accepted`), and the vault then served
   * the certificate again. This recovery or another writer's brought it back
   * (a recovery that found none is answered 404, and that answer was lost too), so the outcome says
   * "unknown" and the words do not claim the recovery; what follows goes on as after a recovery.
   */
  recoveryAnswerLost = false

  note(decision: string): void {
    this.decisions.push(decision)
  }

  /**
   * One vault call, counted for the outcome's `vaultCalls` (unless it sent nothing). The request metrics
   * (`kvdeploy_vault_requests_total`, `kvdeploy_vault_throttled_total`) belong to
   * the Vault adapter, which also sees the requests its SDK retries.
   */
  call<A, E>(_operation: VaultOperation, effect: Effect.Effect<A, E>): Effect.Effect<A, E> {
    return Effect.suspend(() => {
      this.vaultCalls++
      return Effect.tapError(effect, (error) => Effect.sync(() => this.unsent(error)))
    })
  }

  /**
   * Takes back the count of a call whose request was never sent (no token could be had for it).
   * Called with every failed call's error.
   */
  unsent(error: unknown): void {
    if (wasUnsent(error)) this.vaultCalls--
  }

  /**
   * A read, retried while the error is transient (throttled, unavailable, ambiguous).
   */
  read<A, E extends { readonly _tag: string }>(
    operation: VaultOperation,
    effect: Effect.Effect<A, E>,
  ): Effect.Effect<A, E> {
    return retryWhile(this.call(operation, effect), isRetriableRead)
  }
}

/**
 * Retry `attempt` while `retriable(error)`: after `readRetryBase`, then with
 * `Schedule.exponential` backoff, `readRetries` retries in all (DeployPolicy).
 * The retry machinery is only set up once a first attempt has failed, so the
 * common path costs one attempt and nothing else.
 */
export const retryWhile = <A, E>(
  attempt: Effect.Effect<A, E>,
  retriable: (error: E) => boolean,
): Effect.Effect<A, E> => Effect.catchIf(attempt, retriable, (first) => retryAfter(first, attempt, retriable))

/**
 * What `retryWhile` does once a first attempt failed with `first` (retriable):
 * the deploy program makes its first attempts itself and calls this only on
 * the rare path, so a read that succeeds sets up nothing at all.
 */
export const retryAfter = <A, E>(
  first: E,
  attempt: Effect.Effect<A, E>,
  retriable: (error: E) => boolean,
): Effect.Effect<A, E> =>
  Effect.flatMap(Effect.service(DeployPolicy), (policy) =>
    policy.readRetries < 1
      ? Effect.fail(first)
      : Effect.retry(Effect.delay(attempt, policy.readRetryBase), {
          schedule: Schedule.exponential(
            Duration.times(Duration.fromInputUnsafe(policy.readRetryBase), policy.readRetryFactor),
            policy.readRetryFactor,
          ),
          times: policy.readRetries - 1,
          while: retriable,
        }),
  )
