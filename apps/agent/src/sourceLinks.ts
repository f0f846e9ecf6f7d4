/**
 * The directory entries whose change changes what a source path reads, for the watcher: the path's
 * own name in its directory, every symbolic link followed on the way to the file (in the directory
 * that really holds the link) and the file the path resolves to (in its real directory).
 *
 * `/etc/ssl/api/cert.pem -> /var/lib/acme/api/cert.pem`, whose target an ACME client replaces by a
 * rename, changes nothing in `/etc/ssl/api`: only a watch on `/var/lib/acme/api` sees it. A link
 * re-pointed elsewhere is an event for the link's name, after which the path is resolved again.
 *
 * The path is resolved as `walkPath` (pathTrust.ts) does, one `lstat` per component, without judging
 * who may write what (the read does that): this only says where to look. An entry that does not
 * exist (a dangling link, a directory not made yet) ends the walk, and its name in the directory
 * that does exist is the entry to watch: its creation is the event.
 */
import { lstatSync, readlinkSync } from "node:fs"
import { basename, dirname, isAbsolute, join, resolve } from "node:path"
import { componentsLastFirst } from "./pathWalk.js"

/** One name in one directory: an event for it in that directory changes what the path reads. */
export interface WatchedEntry {
  readonly directory: string
  readonly name: string
}

/**
 * Symbolic links followed at most per path for watching. A longer chain is resolved no further here:
 * the entries past it are left to the interval pass. It bounds the watches a chain of links costs
 * (a source's owner may make the links in its directories) far below the kernel's 40.
 */
export const MAX_WATCHED_LINKS = 8

export interface SourceEntries {
  readonly entries: ReadonlyArray<WatchedEntry>
  /** The chain had more than MAX_WATCHED_LINKS links: what lies past them is not watched. */
  readonly linksPastBound: boolean
}

/**
 * The entries to watch for `path` (absolute, or relative to the working directory), deduplicated, the
 * path's own first. `directories` holds the directories (not links) found so far by the caller's
 * other paths of the same moment, and gains this path's: 10,000 deployments in a few directories
 * cost about one `lstat` per file, not one per component.
 */
export const sourceEntries = (path: string, directories: Set<string> = new Set()): SourceEntries => {
  const entries: Array<WatchedEntry> = []
  const seen = new Set<string>()
  const add = (directory: string, name: string) => {
    const key = `${directory}\0${name}`
    if (seen.has(key)) return
    seen.add(key)
    entries.push({ directory, name })
  }
  // The configured name in the configured directory, as written (a directory replaced as a whole is
  // followed by that name).
  add(dirname(path), basename(path))
  const pending = componentsLastFirst(resolve(path))
  let dir = "/"
  let links = 0
  while (pending.length > 0) {
    const name = pending.pop() as string
    if (name === "..") {
      dir = dirname(dir)
      continue
    }
    const full = join(dir, name)
    if (pending.length > 0 && directories.has(full)) {
      dir = full
      continue
    }
    let isLink: boolean
    try {
      const s = lstatSync(full)
      isLink = s.isSymbolicLink()
      if (s.isDirectory()) directories.add(full)
      else if (!isLink && pending.length > 0) return { entries, linksPastBound: false }
    } catch {
      // Missing (its creation is the event to wait for), or not searchable: watch the name where it
      // would be, and go no further.
      add(dir, name)
      return { entries, linksPastBound: false }
    }
    if (isLink) {
      add(dir, name)
      if (++links > MAX_WATCHED_LINKS) return { entries, linksPastBound: true }
      let target: string
      try {
        target = readlinkSync(full)
      } catch {
        return { entries, linksPastBound: false }
      }
      if (isAbsolute(target)) dir = "/"
      pending.push(...componentsLastFirst(target))
      continue
    }
    dir = full
  }
  if (dir !== "/") add(dirname(dir), basename(dir))
  return { entries, linksPastBound: false }
}
