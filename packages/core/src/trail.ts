/**
 * The running record of one deploy: vault calls made (each counted and
 * recorded in metrics), decisions taken, and the metric events owed at the end.
 */
import * as Effect from "effect/Effect"
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

  /** A read, retried with exponential backoff (DeployPolicy) while the error is transient. */
  read<A, E extends { readonly _tag: string }>(
    operation: VaultOperation,
    effect: Effect.Effect<A, E>,
  ): Effect.Effect<A, E> {
    return Effect.flatMap(Effect.service(DeployPolicy), (policy) =>
      Effect.retry(this.call(operation, effect), {
        schedule: policy.readRetrySchedule,
        times: policy.readRetries,
        while: isRetriableRead,
      }),
    )
  }
}
