/**
 * File watching: the directories holding source files are watched (not the
 * files: an atomic rename replaces the inode, and a watch on the old inode
 * would go silent). An event for a file name triggers the deployments that
 * read it after a quiet period (debounce), so a writer that writes
 * certificate and key one after the other causes one reconcile.
 *
 * Two layouts change files without an event for their names:
 * - Kubernetes' secret and configMap volumes: the files are symlinks into a
 *   `..data` symlink, which kubelet swaps atomically (`..data_tmp` renamed
 *   over `..data`); an event for a name starting with `..` triggers every
 *   deployment of the directory.
 * - A directory replaced as a whole (removed and created again): the watch
 *   follows the old directory's inode, so each
 *   event for a name that is not a source file, and each `watch` call (every
 *   interval pass), checks the directory is still the one watched, and
 *   watches the new one (triggering its deployments) when it is not.
 */
import { type FSWatcher, statSync, watch } from "node:fs"
import { basename, dirname } from "node:path"
import { shownPath } from "@kvdeploy/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberMap from "effect/FiberMap"
import * as Schedule from "effect/Schedule"
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
    /** Directories gone from under their watch, looked for until they are back. */
    const awaitingDirectories = yield* FiberMap.make<string>()
    const context = yield* Effect.context<never>()
    /** directory -> file name -> deployment names */
    let index = new Map<string, Map<string, Set<string>>>()
    /** directory -> its watch, and the directory's identity (device and inode) when the watch began */
    const watchers = new Map<string, { readonly watcher: FSWatcher; readonly identity: string }>()
    const identityOf = (dir: string): string | undefined => {
      try {
        const s = statSync(dir)
        return `${s.dev}:${s.ino}`
      } catch {
        return undefined
      }
    }
    const fire = (name: string) => {
      Effect.runForkWith(context)(
        FiberMap.run(
          debounced,
          name,
          Effect.andThen(Effect.sleep(Duration.millis(debounceMs)), onChange(name)),
        ),
      )
    }
    const fireAll = (dir: string) => {
      const files = index.get(dir)
      if (files !== undefined) for (const names of files.values()) for (const n of names) fire(n)
    }
    /** Watch `dir` (again: a watch it had is closed first). The error when it cannot be watched now, else undefined. */
    const open = (dir: string): unknown => {
      watchers.get(dir)?.watcher.close()
      watchers.delete(dir)
      const identity = identityOf(dir)
      if (identity === undefined) return Object.assign(new Error("no such directory"), { code: "ENOENT" })
      try {
        const w = watch(dir, { persistent: false }, (_event, file) => onEvent(dir, file))
        w.on("error", () => {
          w.close()
          if (watchers.get(dir)?.watcher === w) watchers.delete(dir)
        })
        watchers.set(dir, { watcher: w, identity })
        return undefined
      } catch (e) {
        return e
      }
    }
    /** Is `dir` still the directory its watch began on? If not, watch the one there now and trigger its deployments. */
    const recheck = (dir: string): void => {
      const watched = watchers.get(dir)
      const now = identityOf(dir)
      if (watched !== undefined && watched.identity === now) return
      if (now === undefined) {
        // Gone (being replaced): look for the new one every second for two minutes (after that,
        // each interval pass looks), then watch it and trigger its deployments.
        watched?.watcher.close()
        watchers.delete(dir)
        Effect.runForkWith(context)(
          FiberMap.run(
            awaitingDirectories,
            dir,
            Effect.retry(
              Effect.suspend(() =>
                !index.has(dir) || watchers.has(dir)
                  ? Effect.void
                  : identityOf(dir) === undefined
                    ? Effect.fail("missing" as const)
                    : Effect.sync(() => recheck(dir)),
              ),
              { schedule: Schedule.spaced(Duration.seconds(1)), times: 120 },
            ).pipe(Effect.ignore),
            { onlyIfMissing: true },
          ),
        )
        return
      }
      if (open(dir) === undefined) fireAll(dir)
    }
    const onEvent = (dir: string, file: string | null) => {
      const files = index.get(dir)
      if (files === undefined) return
      if (file === null) {
        fireAll(dir)
        return
      }
      // Editors and atomic writers touch temporary names too; only the configured names count,
      // and names starting with ".." (Kubernetes' ..data symlink swap changes every file at once).
      const names = files.get(file)
      if (names !== undefined) for (const n of names) fire(n)
      else if (file.startsWith("..")) fireAll(dir)
      else recheck(dir)
    }
    const close = () => {
      for (const w of watchers.values()) w.watcher.close()
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
              w.watcher.close()
              watchers.delete(dir)
            }
          }
          for (const dir of next.keys()) {
            const watched = watchers.get(dir)
            // Still the directory the watch began on: nothing to do. Replaced or new: watch it now.
            if (watched !== undefined && watched.identity === identityOf(dir)) continue
            const failed = open(dir)
            if (failed !== undefined) {
              yield* Effect.logWarning(
                "cannot watch a source directory; the interval still reconciles it",
              ).pipe(
                Effect.annotateLogs({
                  directory: shownPath(dir),
                  error: (failed as NodeJS.ErrnoException).code ?? String(failed),
                }),
              )
            }
          }
        }),
    }
  })
