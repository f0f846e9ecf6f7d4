/**
 * File watching: the directories holding source files are watched (not the
 * files: an atomic rename replaces the inode, and a watch on the old inode
 * would go silent). An event for a file name triggers the deployments that
 * read it after a quiet period (debounce), so a writer that writes
 * certificate and key one after the other causes one reconcile.
 */
import { type FSWatcher, watch } from "node:fs"
import { basename, dirname } from "node:path"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberMap from "effect/FiberMap"
import type * as Scope from "effect/Scope"
import type { Deployment } from "./config.js"
import { sourcePaths } from "./source.js"

export interface Watcher {
  /** Watch the directories of these deployments (replaces the previous set). */
  readonly watch: (deployments: ReadonlyArray<Deployment>) => Effect.Effect<void>
}

export const makeWatcher = (
  debounceMs: number,
  onChange: (name: string) => Effect.Effect<void>,
): Effect.Effect<Watcher, never, Scope.Scope> =>
  Effect.gen(function* () {
    const debounced = yield* FiberMap.make<string>()
    const context = yield* Effect.context<never>()
    /** directory -> file name -> deployment names */
    let index = new Map<string, Map<string, Set<string>>>()
    const watchers = new Map<string, FSWatcher>()
    const fire = (name: string) => {
      Effect.runForkWith(context)(
        FiberMap.run(
          debounced,
          name,
          Effect.andThen(Effect.sleep(Duration.millis(debounceMs)), onChange(name)),
        ),
      )
    }
    const onEvent = (dir: string, file: string | null) => {
      const files = index.get(dir)
      if (files === undefined) return
      if (file === null) {
        for (const names of files.values()) for (const n of names) fire(n)
        return
      }
      // Editors and atomic writers touch temporary names too; only the configured names count.
      const names = files.get(file)
      if (names !== undefined) for (const n of names) fire(n)
    }
    const close = () => {
      for (const w of watchers.values()) w.close()
      watchers.clear()
    }
    yield* Effect.addFinalizer(() => Effect.sync(close))
    return {
      watch: (deployments) =>
        Effect.gen(function* () {
          const next = new Map<string, Map<string, Set<string>>>()
          for (const d of deployments) {
            for (const path of sourcePaths(d.source)) {
              const dir = dirname(path)
              let files = next.get(dir)
              if (files === undefined) {
                files = new Map<string, Set<string>>()
                next.set(dir, files)
              }
              const file = basename(path)
              const names = files.get(file)
              if (names === undefined) files.set(file, new Set([d.name]))
              else names.add(d.name)
            }
          }
          index = next
          for (const [dir, w] of watchers) {
            if (!next.has(dir)) {
              w.close()
              watchers.delete(dir)
            }
          }
          for (const dir of next.keys()) {
            if (watchers.has(dir)) continue
            try {
              const w = watch(dir, { persistent: false }, (_event, file) => onEvent(dir, file))
              w.on("error", () => {
                w.close()
                watchers.delete(dir)
              })
              watchers.set(dir, w)
            } catch (e) {
              yield* Effect.logWarning(
                "cannot watch a source directory; the interval still reconciles it",
              ).pipe(
                Effect.annotateLogs({
                  directory: dir,
                  error: (e as NodeJS.ErrnoException).code ?? String(e),
                }),
              )
            }
          }
        }),
    }
  })
