/**
 * Memory given back after a reconcile pass. Parsing a source and deploying it
 * create OpenSSL objects (keys, certificates, TLS state) owned by small
 * JavaScript wrappers: V8 sees only the wrappers, so it sees no reason to
 * collect them, and after a pass over 10,000 deployments hundreds of MB of
 * native memory (and a young generation grown to 128 MB) wait for a
 * collection that an idle process may not run for a long time.
 *
 * When the process was started with `--expose-gc` (the single executable
 * always is: scripts/sea.mjs), the agent runs one full collection once the
 * reconciler has been quiet for a few seconds after attempts ran, and logs
 * the resident memory before and after. Without the flag it does nothing and
 * V8 collects on its own schedule.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

export interface IdleRelease {
  /** An attempt starts (the pass is not over). */
  readonly begin: () => void
  /** An attempt ended; once nothing ran for `quietMs`, memory is released. */
  readonly end: () => void
  /** Whether a collection can be asked for at all (`--expose-gc`). */
  readonly available: boolean
}

/**
 * A full, memory-reducing collection when the process was started with
 * --expose-gc: V8's "last resort" flavour (what it runs on a low-memory
 * notification) also shrinks the heap's committed pages and runs the
 * callbacks that free the native objects. A plain `gc()` left an idle agent
 * with 10,000 deployments at 730 MB resident; this one brings it under 200.
 */
export const exposedGc = (): (() => void) | undefined => {
  const gc = (globalThis as { gc?: unknown }).gc
  if (typeof gc !== "function") return undefined
  return () => {
    ;(gc as (options: object) => void)({ type: "major", execution: "sync", flavor: "last-resort" })
  }
}

export const makeIdleRelease = (
  quietMs: number,
  run: (effect: Effect.Effect<void>) => void,
  gc: (() => void) | undefined,
  /** Work that would leave garbage right after the collection (the pass's state file write). */
  before: Effect.Effect<void> = Effect.void,
): IdleRelease => {
  let running = 0
  let since = 0
  let pending = false
  const mb = (bytes: number) => Math.round(bytes / 1048576)
  const collect = Effect.suspend(() => {
    // Attempts started again while `before` ran: the pass is not over.
    if (gc === undefined || running > 0) return Effect.void
    const rssBefore = process.memoryUsage.rss()
    const started = performance.now()
    gc()
    const rssAfter = process.memoryUsage.rss()
    return Effect.logInfo("idle: memory released after the pass").pipe(
      Effect.annotateLogs({
        rssBeforeMb: mb(rssBefore),
        rssAfterMb: mb(rssAfter),
        gcMs: Math.round(performance.now() - started),
      }),
    )
  })
  const check: Effect.Effect<void> = Effect.suspend(() => {
    pending = false
    if (gc === undefined || running > 0 || since === 0) return Effect.void
    const attempts = since
    since = 0
    return Effect.andThen(before, collect).pipe(Effect.annotateLogs({ attempts }))
  })
  return {
    available: gc !== undefined,
    begin: () => {
      running++
    },
    end: () => {
      running--
      since++
      if (gc === undefined || running > 0 || pending) return
      pending = true
      run(Effect.andThen(Effect.sleep(Duration.millis(quietMs)), check))
    },
  }
}
