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

/** `gc` when the process was started with --expose-gc. */
export const exposedGc = (): (() => void) | undefined => {
  const gc = (globalThis as { gc?: unknown }).gc
  return typeof gc === "function" ? (gc as () => void) : undefined
}

export const makeIdleRelease = (
  quietMs: number,
  run: (effect: Effect.Effect<void>) => void,
  gc: (() => void) | undefined,
): IdleRelease => {
  let running = 0
  let since = 0
  let pending = false
  const mb = (bytes: number) => Math.round(bytes / 1048576)
  const check: Effect.Effect<void> = Effect.suspend(() => {
    pending = false
    if (gc === undefined || running > 0 || since === 0) return Effect.void
    const attempts = since
    since = 0
    const before = process.memoryUsage.rss()
    const started = performance.now()
    gc()
    const after = process.memoryUsage.rss()
    return Effect.logInfo("idle: memory released after the pass").pipe(
      Effect.annotateLogs({
        attempts,
        rssBeforeMb: mb(before),
        rssAfterMb: mb(after),
        gcMs: Math.round(performance.now() - started),
      }),
    )
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
