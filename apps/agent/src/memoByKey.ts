/** One build per key, shared by every fiber that asks while it runs. */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

/**
 * Build a value once per key, however many fibers ask at once; a failure is
 * not kept (the next request tries again), nor is a build its caller's
 * interruption stopped (the callers waiting for it build again).
 * `retain(keep)` forgets the keys `keep` refuses (a fiber waiting for one of
 * their builds still gets it; the next request of such a key builds anew) and
 * answers how many it forgot.
 */
export const memoByKey = <A, E>() => {
  const cache = new Map<string, Deferred.Deferred<A, E>>()
  const get = (key: string, build: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.suspend(() => {
      const existing = cache.get(key)
      if (existing !== undefined)
        return Effect.flatMap(Effect.exit(Deferred.await(existing)), (exit) =>
          // A build stopped by its own caller's interruption (a reload, shutdown): this caller builds
          // again, unless it is being stopped too (shutdown interrupts every fiber at once): the yield
          // lets an interruption of its own take effect before a build starts.
          Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)
            ? Effect.andThen(Effect.yieldNow, get(key, build))
            : exit,
        )
      const deferred = Deferred.makeUnsafe<A, E>()
      cache.set(key, deferred)
      // The build can be interrupted; its end, whatever it is, is given to every waiter and a failed
      // (or interrupted) build is forgotten, so that no waiter waits for good.
      return Effect.uninterruptibleMask((restore) =>
        Effect.exit(restore(build)).pipe(
          Effect.tap((exit) =>
            Effect.andThen(
              Effect.sync(() => {
                // Only its own entry: `retain` may have forgotten it and a new build taken the key.
                if (Exit.isFailure(exit) && cache.get(key) === deferred) cache.delete(key)
              }),
              Deferred.done(deferred, exit),
            ),
          ),
          Effect.flatten,
        ),
      )
    })
  const retain = (keep: (key: string) => boolean): number => {
    let forgotten = 0
    for (const key of [...cache.keys()])
      if (!keep(key)) {
        cache.delete(key)
        forgotten++
      }
    return forgotten
  }
  return Object.assign(get, { retain })
}
