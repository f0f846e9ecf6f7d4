/**
 * The deployment's retry: the schedule built only after a first failure
 * (`retryAfterFirstFailure`) retries at the very times `Effect.retry` would
 * have, under the TestClock with a seeded Random; the first retry honours the
 * Retry-After floor (jitter applied after it), later ones double.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import * as TestClock from "effect/testing/TestClock"
import { backoffSchedule, type RetryHint, retryAfterFirstFailure } from "../src/backoff.js"

// Retry-After of each failure in turn (undefined: the vault sent none); then the attempt succeeds.
const hints: ReadonlyArray<number | undefined> = [5000, undefined, undefined, 200, undefined]

const policy = () => ({ schedule: backoffSchedule(100, 60_000), while: () => true })

/** The gaps between attempts when `run` retries an attempt that fails with `hints`, then succeeds. */
const gapsOf = (run: (once: Effect.Effect<string, RetryHint>) => Effect.Effect<string, RetryHint>) =>
  Effect.gen(function* () {
    const times: Array<number> = []
    let failures = 0
    const once = Effect.gen(function* () {
      times.push(yield* Clock.currentTimeMillis)
      if (failures < hints.length) return yield* Effect.fail({ retryAfterMs: hints[failures++] })
      return "done"
    })
    const fiber = yield* Effect.forkChild(run(once).pipe(Random.withSeed("kvdeploy backoff")))
    for (let step = 0; step < 2000; step++) yield* TestClock.adjust(10)
    const result = yield* Fiber.join(fiber)
    // Microseconds: the two runs start at different clock times, which moves the float's last digits.
    return { result, gaps: times.slice(1).map((t, i) => Math.round((t - (times[i] ?? 0)) * 1000) / 1000) }
  })

describe("deployment retry", () => {
  it.effect(
    "retrying after the first failure keeps Effect.retry's times; Retry-After floors, jitter after",
    () =>
      Effect.gen(function* () {
        const plain = yield* gapsOf((once) => Effect.retry(once, policy()))
        const deferred = yield* gapsOf((once) =>
          Effect.catch(once, (first) => retryAfterFirstFailure(first, once, policy())),
        )
        expect(deferred).toEqual(plain)
        expect(plain.result).toBe("done")
        expect(plain.gaps).toHaveLength(hints.length)
        const [first, second, third, fourth, fifth] = plain.gaps as [number, number, number, number, number]
        // Jittered: not the bare delays.
        expect(plain.gaps).not.toEqual([5000, 200, 400, 800, 1600])
        // The first retry: Retry-After 5,000 ms, jittered 0.8-1.2.
        expect(first).toBeGreaterThanOrEqual(4000)
        expect(first).toBeLessThanOrEqual(6000)
        // Then 200, 400, 800 (a Retry-After of 200 below the backoff does not shorten it), 1,600 ms, each jittered.
        for (const [gap, base] of [
          [second, 200],
          [third, 400],
          [fourth, 800],
          [fifth, 1600],
        ] as const) {
          expect(gap).toBeGreaterThanOrEqual(base * 0.8)
          expect(gap).toBeLessThanOrEqual(base * 1.2)
        }
      }),
  )

  it.effect("the delay doubles from backoff_base_seconds only up to backoff_max_seconds (±20% jitter)", () =>
    Effect.gen(function* () {
      // Base 100 ms, max 300 ms: 100, 200, then 300 ms for every later retry (400, 800, 1,600... without the cap).
      const times: Array<number> = []
      let failures = 0
      const once = Effect.gen(function* () {
        times.push(yield* Clock.currentTimeMillis)
        if (failures < 7) {
          failures++
          return yield* Effect.fail<RetryHint>({ retryAfterMs: undefined })
        }
        return "done"
      })
      const fiber = yield* Effect.forkChild(
        Effect.retry(once, { schedule: backoffSchedule(100, 300), while: () => true }).pipe(
          Random.withSeed("kvdeploy backoff cap"),
        ),
      )
      // 30 s of clock: enough for the seven retries with or without the cap (12.7 s uncapped).
      for (let step = 0; step < 3000; step++) yield* TestClock.adjust(10)
      expect(yield* Fiber.join(fiber)).toBe("done")
      const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0))
      expect(gaps).toHaveLength(7)
      const [first, second, ...capped] = gaps as [number, number, ...Array<number>]
      expect(first).toBeGreaterThanOrEqual(80)
      expect(first).toBeLessThanOrEqual(120)
      expect(second).toBeGreaterThanOrEqual(160)
      expect(second).toBeLessThanOrEqual(240)
      // From the third retry on: the max, jittered (the clock moves in 10 ms steps: up to 10 ms late).
      for (const gap of capped) {
        expect(gap).toBeGreaterThanOrEqual(240)
        expect(gap).toBeLessThanOrEqual(360 + 10)
      }
    }),
  )
})
