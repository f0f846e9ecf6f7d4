/** The reconciler's first-come-first-served permits: bound, order, release on every ending, interrupted waiters. */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { makePermits } from "../src/permits.js"

describe("makePermits", () => {
  it("refuses a count that is not a positive integer, naming it", () => {
    expect(() => makePermits(0)).toThrow(/permits must be a positive integer \(got 0\)/)
    expect(() => makePermits(1.5)).toThrow(/got 1\.5/)
  })

  it.effect("holds at most its count at once and hands permits out in arrival order", () =>
    Effect.gen(function* () {
      const permits = makePermits(2)
      const gates = Array.from({ length: 6 }, () => Deferred.makeUnsafe<void>())
      const started: Array<number> = []
      let inside = 0
      let most = 0
      const fibers = yield* Effect.forEach(gates, (gate, i) =>
        Effect.forkChild(
          permits.withPermit(
            Effect.gen(function* () {
              started.push(i)
              inside++
              most = Math.max(most, inside)
              yield* Deferred.await(gate)
              inside--
            }),
          ),
        ),
      )
      yield* Effect.yieldNow
      expect(started).toEqual([0, 1])
      expect(permits.free()).toBe(0)
      expect(permits.waiting()).toBe(4)
      // Finish them out of order: the next waiter in line gets each freed permit.
      yield* Deferred.succeed(gates[1] as Deferred.Deferred<void>, undefined)
      yield* Effect.yieldNow
      expect(started).toEqual([0, 1, 2])
      for (const gate of gates) yield* Deferred.succeed(gate, undefined)
      yield* Fiber.joinAll(fibers)
      expect(started).toEqual([0, 1, 2, 3, 4, 5])
      expect(most).toBe(2)
      expect(permits.free()).toBe(2)
      expect(permits.waiting()).toBe(0)
    }),
  )

  it.effect("gives the permit back when the work fails, dies or is interrupted", () =>
    Effect.gen(function* () {
      const permits = makePermits(1)
      const failed = yield* Effect.exit(permits.withPermit(Effect.fail("no")))
      expect(failed._tag).toBe("Failure")
      expect(permits.free()).toBe(1)
      const died = yield* Effect.exit(permits.withPermit(Effect.die(new Error("boom"))))
      expect(died._tag).toBe("Failure")
      expect(permits.free()).toBe(1)
      const holder = yield* Effect.forkChild(permits.withPermit(Effect.never))
      yield* Effect.yieldNow
      expect(permits.free()).toBe(0)
      yield* Fiber.interrupt(holder)
      expect(permits.free()).toBe(1)
      expect(yield* permits.withPermit(Effect.succeed("after"))).toBe("after")
    }),
  )

  it.effect("skips a waiter interrupted while it waits, and the next one gets the permit", () =>
    Effect.gen(function* () {
      const permits = makePermits(1)
      const gate = Deferred.makeUnsafe<void>()
      const ran: Array<string> = []
      const holder = yield* Effect.forkChild(permits.withPermit(Deferred.await(gate)))
      const quitter = yield* Effect.forkChild(permits.withPermit(Effect.sync(() => ran.push("quitter"))))
      const next = yield* Effect.forkChild(permits.withPermit(Effect.sync(() => ran.push("next"))))
      yield* Effect.yieldNow
      expect(permits.waiting()).toBe(2)
      yield* Fiber.interrupt(quitter)
      expect(permits.waiting()).toBe(1)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.join(next)
      expect(ran).toEqual(["next"])
      expect(permits.free()).toBe(1)
      expect(permits.waiting()).toBe(0)
    }),
  )

  it.effect("wakes every waiter a release frees room for, even when woken work releases at once", () =>
    Effect.gen(function* () {
      const permits = makePermits(1)
      const gate = Deferred.makeUnsafe<void>()
      const ran: Array<number> = []
      const holder = yield* Effect.forkChild(permits.withPermit(Deferred.await(gate)))
      // Each waiter finishes synchronously once woken, releasing inside the release that woke it.
      const waiters = yield* Effect.forEach([1, 2, 3, 4, 5], (i) =>
        Effect.forkChild(permits.withPermit(Effect.sync(() => ran.push(i)))),
      )
      yield* Effect.yieldNow
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.joinAll(waiters)
      expect(ran).toEqual([1, 2, 3, 4, 5])
      expect(permits.free()).toBe(1)
    }),
  )
})
