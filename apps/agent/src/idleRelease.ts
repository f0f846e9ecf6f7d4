/**
 * Memory given back after a reconcile pass. Parsing a source and deploying it
 * create OpenSSL objects (keys, certificates, TLS state) owned by small
 * JavaScript wrappers: V8 sees only the wrappers, so it sees no reason to
 * collect them, and after a pass over 10,000 deployments hundreds of MB of
 * native memory (and a young generation grown to 128 MB) wait for a
 * collection that an idle process may not run for a long time.
 *
 * Once the reconciler has been quiet for a few seconds after attempts ran,
 * the agent runs the release work (`before`: the pass's state write and the
 * closing of the vault clients' idle connections) and then, when the process
 * was started with `--expose-gc` (the single executable always is:
 * scripts/sea.mjs), one full collection, logging the resident memory before
 * and after. Without the flag V8 collects on its own schedule.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

export interface IdleRelease {
  /** An attempt starts (the pass is not over). */
  readonly begin: () => void
  /**
   * An attempt ended; once nothing ran for `quietMs`, memory is released.
   * `light`: it parsed nothing and deployed nothing (a comparison that found
   * the source in place), so it left no native garbage worth a collection
   * during the pass; only other attempts count towards `growthBytes` checks.
   */
  readonly end: (light?: boolean) => void
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

/**
 * One full collection (`--expose-gc`), without the last-resort flavour's
 * repeated rounds and heap shrinking: frees the native objects whose wrappers
 * died, at a fraction of the cost. What a collection during a pass uses; the
 * one after the pass is `exposedGc`'s.
 */
export const exposedMajorGc = (): (() => void) | undefined => {
  const gc = (globalThis as { gc?: unknown }).gc
  if (typeof gc !== "function") return undefined
  return () => {
    ;(gc as (options: object) => void)({ type: "major", execution: "sync" })
  }
}

export interface IdleReleaseOptions {
  /** Quiet time after the last attempt before memory is released. */
  readonly quietMs: number
  /** Run an effect (forked: the reconciler's runtime). */
  readonly run: (effect: Effect.Effect<void>) => void
  /** The collection (`exposedGc()`); undefined: do nothing. */
  readonly gc: (() => void) | undefined
  /** The collection during a pass (`exposedMajorGc()`); default `gc`. */
  readonly gcDuringPass?: (() => void) | undefined
  /**
   * Work to do once a pass is over, before the collection (its garbage goes with the rest): the
   * pass's state file write, closing idle connections. Runs with or without a collection.
   */
  readonly before?: Effect.Effect<void>
  /**
   * Also collect during a pass once the resident memory grew this much since
   * the last collection, so a long pass's peak stays bounded (a cold pass over
   * 10,000 deployments otherwise peaked at 800 MB: more than the 512 MiB limit
   * of the Kubernetes manifest, and fragmentation that outlived the pass).
   */
  readonly growthBytes?: number
  /**
   * Also collect during a pass after this many attempts that parsed or deployed
   * (since the last collection), whatever `growthBytes` says: the resident memory
   * does not grow while malloc reuses what earlier collections freed, yet each
   * attempt's native garbage still raises the heap's high-water mark until one runs.
   */
  readonly collectEvery?: number
  /** The resident memory (process.memoryUsage.rss). */
  readonly rss?: () => number
}

export const makeIdleRelease = (options: IdleReleaseOptions): IdleRelease => {
  const { quietMs, run, gc } = options
  const before = options.before ?? Effect.void
  const growthBytes = options.growthBytes ?? Number.POSITIVE_INFINITY
  const rss = options.rss ?? (() => process.memoryUsage.rss())
  let running = 0
  let since = 0
  let pending = false
  let collecting = false
  let ends = 0
  let heavySince = 0
  const collectEvery = options.collectEvery ?? Number.POSITIVE_INFINITY
  let baseline = rss()
  const mb = (bytes: number) => Math.round(bytes / 1048576)
  const collect = (message: string, duringPass: boolean) =>
    Effect.suspend(() => {
      // Attempts started again while `before` ran: the pass is not over.
      if (gc === undefined || (!duringPass && running > 0)) return Effect.void
      const rssBefore = rss()
      const started = performance.now()
      if (duringPass) (options.gcDuringPass ?? gc)()
      else gc()
      const rssAfter = rss()
      baseline = rssAfter
      heavySince = 0
      return Effect.logInfo(message).pipe(
        Effect.annotateLogs({
          rssBeforeMb: mb(rssBefore),
          rssAfterMb: mb(rssAfter),
          gcMs: Math.round(performance.now() - started),
        }),
      )
    })
  const check: Effect.Effect<void> = Effect.suspend(() => {
    pending = false
    if (running > 0 || since === 0) return Effect.void
    const attempts = since
    since = 0
    return Effect.andThen(before, collect("idle: memory released after the pass", false)).pipe(
      Effect.annotateLogs({ attempts }),
    )
  })
  return {
    available: gc !== undefined,
    begin: () => {
      running++
    },
    end: (light = false) => {
      running--
      since++
      if (!light) heavySince++
      // After `collectEvery` attempts that parsed or deployed, and every 64 of them: has the pass
      // grown the process past the bound?
      if (
        gc !== undefined &&
        !light &&
        running > 0 &&
        !collecting &&
        (heavySince >= collectEvery || (++ends % 64 === 0 && rss() - baseline > growthBytes))
      ) {
        collecting = true
        run(
          collect("memory released during the pass", true).pipe(
            Effect.ensuring(
              Effect.sync(() => {
                collecting = false
              }),
            ),
          ),
        )
      }
      if (running > 0 || pending) return
      pending = true
      run(Effect.andThen(Effect.sleep(Duration.millis(quietMs)), check))
    },
  }
}
