/**
 * The running record of one deploy: vault calls made (each counted and
 * recorded in metrics), decisions taken, and the metric events owed at the end.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { DeployPolicy } from "./DeployPolicy.js"
import type { PostVerifyFailureReason, RollbackOutcome } from "./ports/Metrics.js"
import { type Metrics, vaultRequestStatusOf } from "./ports/Metrics.js"
import { isRetriableRead, type VaultOperation } from "./ports/Vault.js"

type MetricsShape = (typeof Metrics)["Service"]

export class DeployTrail {
  vaultCalls = 0
  readonly decisions: Array<string> = []
  postVerifyFailure: PostVerifyFailureReason | undefined = undefined
  rollbackOutcome: RollbackOutcome | undefined = undefined
  adopted = false

  constructor(readonly metrics: MetricsShape) {}

  note(decision: string): void {
    this.decisions.push(decision)
  }

  /** One vault call: counted, and recorded as `kvdeploy_vault_requests_total{operation,status}`. */
  call<A, E extends { readonly _tag: string }>(
    operation: VaultOperation,
    effect: Effect.Effect<A, E>,
  ): Effect.Effect<A, E> {
    const metrics = this.metrics
    return Effect.suspend(() => {
      this.vaultCalls++
      return Effect.matchEffect(effect, {
        onSuccess: (a) => Effect.as(metrics.vaultRequest(operation, "ok"), a),
        onFailure: (e) =>
          Effect.andThen(
            e._tag === "VaultThrottled"
              ? Effect.andThen(metrics.vaultRequest(operation, "throttled"), metrics.vaultThrottled())
              : metrics.vaultRequest(operation, vaultRequestStatusOf(e._tag)),
            Effect.fail(e),
          ),
      })
    })
  }

  /**
   * A read, retried while the error is transient (throttled, unavailable, ambiguous): after
   * `readRetryBase`, then with `Schedule.exponential` backoff, `readRetries` retries in all.
   * The retry machinery is only set up once a first attempt has failed (the common path is one call).
   */
  read<A, E extends { readonly _tag: string }>(
    operation: VaultOperation,
    effect: Effect.Effect<A, E>,
  ): Effect.Effect<A, E> {
    const attempt = this.call(operation, effect)
    return Effect.catchIf(attempt, isRetriableRead, (first) =>
      Effect.flatMap(Effect.service(DeployPolicy), (policy) =>
        policy.readRetries < 1
          ? Effect.fail(first)
          : Effect.retry(Effect.delay(attempt, policy.readRetryBase), {
              schedule: Schedule.exponential(
                Duration.times(Duration.fromInputUnsafe(policy.readRetryBase), policy.readRetryFactor),
                policy.readRetryFactor,
              ),
              times: policy.readRetries - 1,
              while: isRetriableRead,
            }),
      ),
    )
  }
}
