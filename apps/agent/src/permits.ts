/**
 * Permits handed out first come, first served, for the reconciler's lanes
 * (deployments of one vault in progress at once) and its global bound.
 *
 * Why not Effect's `Semaphore`: its release scans a copy of every waiter (to
 * let a small request overtake a large one), and a pass over a fleet parks
 * every deployment of a vault on its lane: 1,000 waiters per vault with
 * 10,000 deployments, so each release cost a copy and a scan of 1,000
 * entries, and a pass cost O(deployments²) per vault. Here every request is
 * for one permit, so the first waiter always fits: a release wakes it in
 * O(1), and a waiter interrupted while it waits is only marked (skipped when
 * its turn comes), also O(1).
 *
 * A woken waiter resumes on its fiber's scheduler, not inline in the
 * releasing fiber: resumed inline, the next deployment sent its request
 * before the finished one's connection was back in the HTTP agent's free
 * pool (that happens on a later tick), so nearly every request of a pass
 * opened a new TLS connection (profiled: a no-change pass twice as slow).
 * A permit is the waiter's from the moment it is handed over: interrupted
 * before its turn to run, the waiter gives it back.
 */
import * as Effect from "effect/Effect"
import type { SchedulerDispatcher } from "effect/Scheduler"

export interface Permits {
  /** Run `effect` holding one permit (waits for it in arrival order; given back however it ends). */
  readonly withPermit: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Permits free now. */
  readonly free: () => number
  /** Fibers waiting for a permit now (interrupted ones not counted). */
  readonly waiting: () => number
}

interface Waiter {
  readonly resume: (effect: Effect.Effect<void>) => void
  /** The waiting fiber's dispatcher: the wake-up runs as its own task. */
  readonly dispatcher: SchedulerDispatcher
  /** Interrupted while waiting: skipped when its turn comes. */
  cancelled: boolean
  /** A permit was handed to it. */
  granted: boolean
}

export const makePermits = (permits: number): Permits => {
  if (!(Number.isInteger(permits) && permits > 0))
    throw new Error(`permits must be a positive integer (got ${permits})`)
  let free = permits
  let queue: Array<Waiter | undefined> = []
  let head = 0
  let cancelled = 0
  let waking = false

  const wake = () => {
    if (waking) return
    waking = true
    try {
      while (free > 0 && head < queue.length) {
        const waiter = queue[head] as Waiter
        queue[head] = undefined
        head++
        if (waiter.cancelled) {
          cancelled--
          continue
        }
        free--
        waiter.granted = true
        waiter.dispatcher.scheduleTask(() => waiter.resume(Effect.void), 0)
      }
      if (head === queue.length) {
        queue = []
        head = 0
      } else if (head > 1024 && head * 2 > queue.length) {
        queue = queue.slice(head)
        head = 0
      }
    } finally {
      waking = false
    }
  }

  const release = () => {
    free++
    wake()
  }

  // A permit free and nobody waiting: taken at once, without a callback (the usual case of the global bound).
  const acquireFree: Effect.Effect<boolean> = Effect.sync(() => {
    if (free > 0 && head === queue.length) {
      free--
      return true
    }
    return false
  })
  const acquireWaiting: Effect.Effect<void> = Effect.withFiber((fiber) =>
    Effect.callback<void>((resume) => {
      if (free > 0 && head === queue.length) {
        free--
        resume(Effect.void)
        return
      }
      const waiter: Waiter = { resume, dispatcher: fiber.currentDispatcher, cancelled: false, granted: false }
      queue.push(waiter)
      // Interrupted while waiting: give up the place (or the permit, had it been handed over already).
      return Effect.sync(() => {
        if (waiter.granted) release()
        else if (!waiter.cancelled) {
          waiter.cancelled = true
          cancelled++
        }
      })
    }),
  )

  const releaseEffect = Effect.sync(release)

  // The free permit is taken in the uninterruptible region: no moment between taking it and
  // `ensuring` where an interruption could leave it taken.
  const withPermit = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(acquireFree, (taken) =>
        Effect.andThen(
          taken ? Effect.void : restore(acquireWaiting),
          Effect.ensuring(restore(effect), releaseEffect),
        ),
      ),
    )

  return {
    withPermit,
    free: () => free,
    waiting: () => queue.length - head - cancelled,
  }
}
