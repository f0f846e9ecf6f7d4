/** Memory released once the reconciler is quiet after attempts ran (after the state write), never while an attempt runs. */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/testing/TestClock"
import { makeIdleRelease } from "../src/idleRelease.js"

const harness = (collectEvery?: number) => {
  const scheduled: Array<Effect.Effect<void>> = []
  const order: Array<string> = []
  let collections = 0
  let resident = 100
  const release = makeIdleRelease({
    quietMs: 3000,
    run: (effect) => scheduled.push(effect),
    gc: () => {
      collections++
      order.push("collect")
      resident = 100
    },
    before: Effect.sync(() => order.push("before")),
    growthBytes: 50,
    ...(collectEvery === undefined ? {} : { collectEvery }),
    rss: () => resident,
  })
  /** Start what the release scheduled, as the reconciler's runtime would. */
  const startScheduled = Effect.suspend(() =>
    Effect.forEach(scheduled.splice(0), (e) => Effect.forkChild(e), { discard: true }),
  )
  return {
    release,
    startScheduled,
    collections: () => collections,
    order,
    grow: (by: number) => {
      resident += by
    },
  }
}

describe("idle release", () => {
  it.effect("collects once after a quiet period that follows attempts", () =>
    Effect.gen(function* () {
      const h = harness()
      expect(h.release.available).toBe(true)
      h.release.begin()
      h.release.begin()
      h.release.end()
      yield* h.startScheduled
      // One attempt still runs: nothing is scheduled yet.
      yield* TestClock.adjust(10_000)
      expect(h.collections()).toBe(0)
      h.release.end()
      yield* h.startScheduled
      yield* TestClock.adjust(2999)
      expect(h.collections()).toBe(0)
      yield* TestClock.adjust(1)
      expect(h.collections()).toBe(1)
      // The state write runs first, so its garbage is collected too.
      expect(h.order).toEqual(["before", "collect"])
      // Quiet with no attempt since: no second collection.
      yield* TestClock.adjust(60_000)
      expect(h.collections()).toBe(1)
    }),
  )

  it.effect("does not collect when attempts started again before the quiet period ended", () =>
    Effect.gen(function* () {
      const h = harness()
      h.release.begin()
      h.release.end()
      yield* h.startScheduled
      yield* TestClock.adjust(1000)
      h.release.begin()
      yield* TestClock.adjust(5000)
      expect(h.collections()).toBe(0)
      h.release.end()
      yield* h.startScheduled
      yield* TestClock.adjust(3000)
      expect(h.collections()).toBe(1)
    }),
  )

  it.effect("collects during a long pass once the resident memory grew past the bound", () =>
    Effect.gen(function* () {
      const h = harness()
      h.release.begin()
      // 200 attempts end while one keeps running, the process growing by 1 each: checked every 64 attempts.
      for (let i = 0; i < 200; i++) {
        h.release.begin()
        h.grow(i < 64 ? 1 : 0.25)
        h.release.end()
        yield* h.startScheduled
        yield* TestClock.adjust(0)
      }
      // Grown by 64 at the first check (over the bound of 50): collected; then by 16 and 32: not.
      expect(h.collections()).toBe(1)
      for (let i = 0; i < 64; i++) {
        h.release.begin()
        h.grow(1)
        h.release.end()
        yield* h.startScheduled
        yield* TestClock.adjust(0)
      }
      // 34 + 64 since the collection at the next check: collected again. The pass never went quiet.
      expect(h.collections()).toBe(2)
      expect(h.order).toEqual(["collect", "collect"])
    }),
  )

  it.effect("light attempts (nothing parsed or deployed) never collect during the pass", () =>
    Effect.gen(function* () {
      const h = harness()
      h.release.begin()
      for (let i = 0; i < 200; i++) {
        h.release.begin()
        h.grow(1)
        h.release.end(true)
        yield* h.startScheduled
        yield* TestClock.adjust(0)
      }
      // Grown by 200, over the bound of 50, but by attempts that only compared: no collection yet.
      expect(h.collections()).toBe(0)
      for (let i = 0; i < 64; i++) {
        h.release.begin()
        h.release.end()
        yield* h.startScheduled
        yield* TestClock.adjust(0)
      }
      expect(h.collections()).toBe(1)
    }),
  )

  it.effect(
    "collects after every `collectEvery` attempts that parsed or deployed, with no growth at all",
    () =>
      Effect.gen(function* () {
        const h = harness(10)
        const attempt = (light: boolean) =>
          Effect.gen(function* () {
            h.release.begin()
            h.release.end(light)
            yield* h.startScheduled
            yield* TestClock.adjust(0)
          })
        // One attempt stays in flight: the pass is not over.
        h.release.begin()
        for (let i = 0; i < 9; i++) yield* attempt(false)
        // Light attempts do not count.
        for (let i = 0; i < 50; i++) yield* attempt(true)
        expect(h.collections()).toBe(0)
        yield* attempt(false)
        expect(h.collections()).toBe(1)
        for (let i = 0; i < 9; i++) yield* attempt(false)
        expect(h.collections()).toBe(1)
        yield* attempt(false)
        expect(h.collections()).toBe(2)
        // The pass ends: collected after the quiet period, which starts the count again.
        for (let i = 0; i < 5; i++) yield* attempt(false)
        h.release.end()
        yield* h.startScheduled
        yield* TestClock.adjust(3000)
        expect(h.collections()).toBe(3)
        h.release.begin()
        for (let i = 0; i < 9; i++) yield* attempt(false)
        expect(h.collections()).toBe(3)
        yield* attempt(false)
        expect(h.collections()).toBe(4)
      }),
  )

  it.effect("a collection during the pass uses gcDuringPass; the one after the pass uses gc", () =>
    Effect.gen(function* () {
      const used: Array<string> = []
      const scheduled: Array<Effect.Effect<void>> = []
      const release = makeIdleRelease({
        quietMs: 3000,
        run: (effect) => scheduled.push(effect),
        gc: () => used.push("after"),
        gcDuringPass: () => used.push("during"),
        collectEvery: 3,
        rss: () => 100,
      })
      const startScheduled = Effect.suspend(() =>
        Effect.forEach(scheduled.splice(0), (e) => Effect.forkChild(e), { discard: true }),
      )
      release.begin()
      for (let i = 0; i < 3; i++) {
        release.begin()
        release.end()
        yield* startScheduled
        yield* TestClock.adjust(0)
      }
      expect(used).toEqual(["during"])
      release.end()
      yield* startScheduled
      yield* TestClock.adjust(3000)
      expect(used).toEqual(["during", "after"])
    }),
  )

  it.effect(
    "without an exposed collector: the release work still runs after the quiet period, no collection",
    () =>
      Effect.gen(function* () {
        const scheduled: Array<Effect.Effect<void>> = []
        let released = 0
        const release = makeIdleRelease({
          quietMs: 3000,
          run: (e) => scheduled.push(e),
          gc: undefined,
          before: Effect.sync(() => {
            released++
          }),
        })
        expect(release.available).toBe(false)
        release.begin()
        release.end()
        yield* Effect.forEach(scheduled.splice(0), (e) => Effect.forkChild(e), { discard: true })
        yield* TestClock.adjust(2999)
        expect(released).toBe(0)
        // The state write and the closing of idle connections need no collector.
        yield* TestClock.adjust(1)
        expect(released).toBe(1)
        yield* TestClock.adjust(60_000)
        expect(released).toBe(1)
      }),
  )
})
