/**
 * File watching: the directories holding source files are watched (not the
 * files: an atomic rename replaces the inode, and a watch on the old inode
 * would go silent). An event for a file name triggers the deployments that
 * read it after a quiet period (debounce), so a writer that writes
 * certificate and key one after the other causes one reconcile.
 *
 * A source path that is a symbolic link (or leads through links) reads a file
 * in another directory: every link followed and the file it resolves to are
 * watched too, each in the directory that really holds it (sourceLinks.ts),
 * so `/etc/ssl/api/cert.pem -> /var/lib/acme/api/cert.pem` whose target an
 * ACME client replaces by a rename is seen. Each triggered deployment's paths
 * are resolved again before it runs (a link re-pointed to another directory
 * moves the watch there), and every path at each `watch` call (every interval
 * pass). Watches are per directory, shared by every deployment that needs
 * one, and a chain of links costs at most MAX_WATCHED_LINKS + 2 of them.
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
 *
 * A directory that does not exist is watched for by its name in the directory
 * that would hold it. One that cannot be watched (the system's watches spent,
 * a loop of links) is left to the interval pass, and said once in the log
 * (again only after it was watched since).
 */
import { type FSWatcher, statSync, watch } from "node:fs"
import { basename, dirname } from "node:path"
import { shownPath } from "@kvdeploy/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberMap from "effect/FiberMap"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { Deployment, Source } from "./config.js"
import { sourcePaths } from "./source.js"
import { MAX_WATCHED_LINKS, sourceEntries, type WatchedEntry } from "./sourceLinks.js"

export interface Watcher {
  /** Watch the directories of these deployments (replaces the previous set). */
  readonly watch: (deployments: ReadonlyArray<Pick<Deployment, "name" | "source">>) => Effect.Effect<void>
  /** The directories watched now (what `watch` and the events since made of the deployments' paths). */
  readonly watched: () => ReadonlyArray<string>
}

const entryKey = (e: WatchedEntry) => `${e.directory}\0${e.name}`

/** The entries of paths that lead through no link: each path's own name in its own directory. */
const plainEntries = (paths: ReadonlyArray<string>): ReadonlyArray<WatchedEntry> =>
  paths.map((path) => ({ directory: dirname(path), name: basename(path) }))

/** Whether `entries` are `paths`' plain entries (no link on the way, each path written as it resolves). */
const isPlain = (paths: ReadonlyArray<string>, entries: ReadonlyArray<WatchedEntry>): boolean =>
  entries.length === paths.length &&
  entries.every((e, i) => {
    const path = paths[i] as string
    return e.directory === dirname(path) && e.name === basename(path)
  })

export const makeWatcher = (
  debounceMs: number,
  onChange: (name: string) => Effect.Effect<void>,
): Effect.Effect<Watcher, never, Scope.Scope> =>
  Effect.gen(function* () {
    const debounced = yield* FiberMap.make<string>()
    /** Directories gone from under their watch, looked for until they are back. */
    const awaitingDirectories = yield* FiberMap.make<string>()
    const context = yield* Effect.context<never>()
    /** deployment name -> its source (its paths as configured: sourcePaths) */
    let sourceOf = new Map<string, Source>()
    /**
     * deployment name -> the entries its paths resolved to when last looked at, for a deployment
     * whose paths lead through links; one whose paths do not (most) is not kept here: its entries
     * are its paths' own (plainEntries). 10,000 such deployments keep no entry objects (about 5 MB).
     */
    let linkedEntriesOf = new Map<string, ReadonlyArray<WatchedEntry>>()
    const entriesOf = (name: string): ReadonlyArray<WatchedEntry> => {
      const source = sourceOf.get(name)
      return linkedEntriesOf.get(name) ?? (source === undefined ? [] : plainEntries(sourcePaths(source)))
    }
    /** directory -> file name -> deployment names */
    let index = new Map<string, Map<string, Set<string>>>()
    /** directory -> its watch, and the directory's identity (device and inode) when the watch began */
    const watchers = new Map<string, { readonly watcher: FSWatcher; readonly identity: string }>()
    /** Directories said in the log to be unwatchable (until watched again). */
    const saidUnwatchable = new Set<string>()
    /** Paths said in the log to have more links than are watched. */
    const saidPastBound = new Set<string>()
    const identityOf = (dir: string): string | undefined => {
      try {
        const s = statSync(dir)
        return `${s.dev}:${s.ino}`
      } catch {
        return undefined
      }
    }
    const addEntries = (name: string, entries: ReadonlyArray<WatchedEntry>) => {
      for (const { directory, name: file } of entries) {
        let files = index.get(directory)
        if (files === undefined) {
          files = new Map<string, Set<string>>()
          index.set(directory, files)
        }
        const names = files.get(file)
        if (names === undefined) files.set(file, new Set([name]))
        else names.add(name)
      }
    }
    const removeEntries = (name: string, entries: ReadonlyArray<WatchedEntry>) => {
      for (const { directory, name: file } of entries) {
        const files = index.get(directory)
        const names = files?.get(file)
        if (files === undefined || names === undefined) continue
        names.delete(name)
        if (names.size === 0) files.delete(file)
        if (files.size === 0) index.delete(directory)
      }
    }
    /** The entries of a deployment's paths now, and the paths whose links go past the bound. */
    const resolveEntries = (paths: ReadonlyArray<string>, directories: Set<string> = new Set()) => {
      const entries: Array<WatchedEntry> = []
      const seen = new Set<string>()
      const pastBound: Array<string> = []
      for (const path of paths) {
        const found = sourceEntries(path, directories)
        if (found.linksPastBound) pastBound.push(path)
        for (const e of found.entries) {
          if (seen.has(entryKey(e))) continue
          seen.add(entryKey(e))
          entries.push(e)
        }
      }
      return { entries, pastBound }
    }
    const fire = (name: string) => {
      Effect.runForkWith(context)(
        FiberMap.run(
          debounced,
          name,
          Effect.sleep(Duration.millis(debounceMs)).pipe(
            Effect.andThen(Effect.uninterruptible(resolveAgain(name))),
            Effect.andThen(onChange(name)),
          ),
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
      let identity: string
      try {
        const s = statSync(dir)
        identity = `${s.dev}:${s.ino}`
      } catch (e) {
        return e
      }
      try {
        const w = watch(dir, { persistent: false }, (_event, file) => onEvent(dir, file))
        w.on("error", () => {
          w.close()
          if (watchers.get(dir)?.watcher === w) watchers.delete(dir)
        })
        watchers.set(dir, { watcher: w, identity })
        saidUnwatchable.delete(dir)
        return undefined
      } catch (e) {
        return e
      }
    }
    /**
     * Bring the watches of `dirs` in line with the index: closed when no entry needs the directory,
     * opened when one does and it is not watched (or the directory there is not the one watched).
     */
    const settle = (dirs: Iterable<string>): Effect.Effect<void> =>
      Effect.gen(function* () {
        for (const dir of dirs) {
          const watched = watchers.get(dir)
          if (!index.has(dir)) {
            if (watched !== undefined) {
              watched.watcher.close()
              watchers.delete(dir)
            }
            saidUnwatchable.delete(dir)
            continue
          }
          // Still the directory the watch began on: nothing to do. Replaced or new: watch it now.
          if (watched !== undefined && watched.identity === identityOf(dir)) continue
          const failed = open(dir)
          if (failed === undefined || saidUnwatchable.has(dir)) continue
          // Missing: its name is watched in the directory that would hold it (sourceEntries), and
          // the deployment's run says the file is missing.
          if ((failed as NodeJS.ErrnoException).code === "ENOENT") continue
          saidUnwatchable.add(dir)
          yield* Effect.logWarning("cannot watch a source directory; the interval still reconciles it").pipe(
            Effect.annotateLogs({
              directory: shownPath(dir),
              error: (failed as NodeJS.ErrnoException).code ?? String(failed),
            }),
          )
        }
      })
    const sayPastBound = (paths: ReadonlyArray<string>): Effect.Effect<void> =>
      Effect.forEach(
        paths.filter((p) => !saidPastBound.has(p)),
        (path) => {
          saidPastBound.add(path)
          return Effect.logWarning(
            `a source path leads through more than ${MAX_WATCHED_LINKS} symbolic links; changes past them are seen by the interval pass only`,
          ).pipe(Effect.annotateLogs({ path: shownPath(path) }))
        },
        { discard: true },
      )
    /** Resolve a deployment's paths again (before it runs): a link re-pointed moves its watch. */
    const resolveAgain = (name: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        const source = sourceOf.get(name)
        if (source === undefined) return Effect.void
        const paths = sourcePaths(source)
        const { entries, pastBound } = resolveEntries(paths)
        const old = entriesOf(name)
        const dirs = new Set(entries.map((e) => e.directory))
        if (
          old.length !== entries.length ||
          old.some((e, i) => entryKey(e) !== entryKey(entries[i] as WatchedEntry))
        ) {
          removeEntries(name, old)
          addEntries(name, entries)
          if (isPlain(paths, entries)) linkedEntriesOf.delete(name)
          else linkedEntriesOf.set(name, entries)
          for (const e of old) dirs.add(e.directory)
        }
        return Effect.andThen(settle(dirs), sayPastBound(pastBound))
      })
    /** Is `dir` still the directory its watch began on? If not, watch the one there now and trigger its deployments. */
    const recheck = (dir: string): void => {
      const watched = watchers.get(dir)
      const now = identityOf(dir)
      if (watched !== undefined && watched.identity === now) return
      if (now === undefined) {
        // Gone (being replaced, or a link's target moved away): its deployments run (their paths
        // resolved again), and the directory is looked for every second for two minutes (after
        // that, each interval pass looks), then watched and its deployments triggered.
        watched?.watcher.close()
        watchers.delete(dir)
        fireAll(dir)
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
      // Editors and atomic writers touch temporary names too; only the configured names count (and
      // the links they lead through, and their targets), and names starting with ".." (Kubernetes'
      // ..data symlink swap changes every file at once).
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
          const nextSources = new Map<string, Source>()
          const nextEntries = new Map<string, ReadonlyArray<WatchedEntry>>()
          const pastBound: Array<string> = []
          index = new Map()
          // The directories on the way found once for every path of this pass.
          const directories = new Set<string>()
          for (const d of deployments) {
            const paths = sourcePaths(d.source)
            const resolved = resolveEntries(paths, directories)
            nextSources.set(d.name, d.source)
            if (!isPlain(paths, resolved.entries)) nextEntries.set(d.name, resolved.entries)
            addEntries(d.name, resolved.entries)
            pastBound.push(...resolved.pastBound)
          }
          sourceOf = nextSources
          linkedEntriesOf = nextEntries
          const stillPastBound = new Set(pastBound)
          for (const path of saidPastBound) if (!stillPastBound.has(path)) saidPastBound.delete(path)
          for (const dir of saidUnwatchable) if (!index.has(dir)) saidUnwatchable.delete(dir)
          yield* settle(new Set([...watchers.keys(), ...index.keys()]))
          yield* sayPastBound(pastBound)
        }),
      watched: () => [...watchers.keys()],
    }
  })
