/**
 * The retry of a deployment that did not reach its goal: jittered exponential
 * backoff from `baseMs` doubling up to `maxMs`, floored at the vault's
 * Retry-After (the jitter applies after the floor; the vault's gate keeps the
 * requests themselves from going sooner).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"

/** What the backoff reads from a failure: the vault's Retry-After, when it sent one. */
export interface RetryHint {
  readonly retryAfterMs: number | undefined
}

export const backoffSchedule = (baseMs: number, maxMs: number) =>
  Schedule.exponential(Duration.millis(baseMs), 2).pipe(
    Schedule.modifyDelay(({ duration, input }) =>
      Effect.succeed(
        Duration.millis(
          Math.max(
            Math.min(Duration.toMillis(duration), maxMs),
            (input as RetryHint | undefined)?.retryAfterMs ?? 0,
          ),
        ),
      ),
    ),
    Schedule.jittered,
  )

/**
 * Retry `once`, which already failed with `first`: the schedule sees `first`
 * as its first input, as `Effect.retry(once, policy)` would have, but its
 * steps are built only for attempts that fail (a pass that changes nothing
 * built them for every deployment: ~10 us each).
 */
export const retryAfterFirstFailure = <A, E extends RetryHint, R>(
  first: E,
  once: Effect.Effect<A, E, R>,
  policy: {
    readonly schedule: ReturnType<typeof backoffSchedule>
    readonly while: () => boolean
  },
): Effect.Effect<A, E, R> => {
  let replayed = false
  return Effect.retry(
    Effect.suspend(() => {
      if (replayed) return once
      replayed = true
      return Effect.fail(first)
    }),
    policy,
  )
}
