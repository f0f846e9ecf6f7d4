/**
 * Everything a deploy needs, in memory: the synthetic codec, the in-memory
 * vault, recording metrics and an in-memory audit log. Fresh state per build.
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { TestClock } from "effect/testing"
import { InMemoryAuditLog } from "./InMemoryAuditLog.js"
import { InMemoryVault } from "./InMemoryVault.js"
import { RecordingMetrics } from "./RecordingMetrics.js"
import { SyntheticCodec } from "./SyntheticCodec.js"

export const TestWorld = {
  layer: Layer.mergeAll(
    InMemoryVault.layer.pipe(Layer.provideMerge(SyntheticCodec.layer)),
    RecordingMetrics.layer,
    InMemoryAuditLog.layer,
  ),
} as const

/**
 * Run an effect under the TestClock, advancing the clock until it completes,
 * so that retry backoff takes no real time. Requires TestClock (as in `it.effect`).
 */
export const runAdvancingClock = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  step: Duration.Input = "1 second",
  maxSteps = 10_000,
) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(effect)
    for (let i = 0; i < maxSteps && fiber.pollUnsafe() === undefined; i++) {
      yield* Effect.yieldNow
      if (fiber.pollUnsafe() !== undefined) break
      yield* TestClock.adjust(step)
    }
    return yield* Fiber.join(fiber)
  })
