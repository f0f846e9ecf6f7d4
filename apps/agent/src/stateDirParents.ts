/**
 * Who may move the state directory away: the directories holding it. The state directory itself
 * must be the agent's and writable by no one else (main.ts refuses it otherwise), but a user who
 * may write a directory on the way to it may rename it away, or put another (an older copy) in
 * its place: the agent would start again without its records, and deploy held outcomes again.
 *
 * A warning, not a refusal: a Kubernetes volume's root is group-writable by the pod's fsGroup
 * (a supplementary group on OpenShift), an emptyDir is 0777, and a refusal would crash-loop such a
 * pod with a fix it cannot apply. Trusted: root, the agent's user, and the agent's groups (its
 * real, effective and supplementary groups) and root's group (gid 0), as for a source's
 * directories (pathTrust.ts). A directory others may write is fine when it is sticky and the entry
 * in it on the way is root's or the agent's (/tmp): only that entry's owner may rename it. When a
 * sticky directory's entry is another user's, that user (not every user) may rename it, and the fix
 * is the entry's owner, never a chmod of the shared directory.
 */

import { lstatSync, readlinkSync, type Stats } from "node:fs"
import { isAbsolute, join, resolve } from "node:path"
import { shownPath } from "@kvdeploy/core"
import { componentsLastFirst, MAX_LINKS, STICKY } from "./pathWalk.js"

/** A directory holding the state directory (or a link on the way to it) that others may write. */
export interface StateDirParentWarning {
  /** The directory, as the walk reached it. */
  readonly directory: string
  /** Its mode, four octal digits ("0777"). */
  readonly mode: string
  readonly owner: number
  readonly group: number
  /** The warning's words: the directory, why others may write it, and what follows. */
  readonly message: string
  readonly fix: string
}

/** The ids the agent runs with: its user and every group it is in. */
export interface AgentIds {
  readonly uid: number
  /** Its effective (primary) group, the one a chgrp gives a directory to. */
  readonly gid: number | undefined
  /** Every group it is in: real, effective and supplementary (a Kubernetes fsGroup). */
  readonly groups: ReadonlySet<number>
}

/** The running process's ids (undefined where there are none: Windows). */
export const processIds = (): AgentIds | undefined => {
  const uid = process.geteuid?.()
  if (uid === undefined) return undefined
  const groups = new Set<number>([
    ...[process.getgid?.(), process.getegid?.()].filter((g): g is number => g !== undefined),
    ...(process.getgroups?.() ?? []),
  ])
  return { uid, gid: process.getegid?.(), groups }
}

const lasting =
  "or give agent.state_dir a directory whose every parent only root, the agent's user and its groups may write, such as /var/lib/kvdeploy-agent"

/** The entry on the way in a directory: its path, owner and kind (lstat, not followed). */
interface Entry {
  readonly path: string
  readonly uid: number
  readonly kind: "directory" | "link" | "other"
}

const entryOf = (path: string, s: Stats): Entry => ({
  path,
  uid: s.uid,
  kind: s.isSymbolicLink() ? "link" : s.isDirectory() ? "directory" : "other",
})

/** Why others may rename `child` (the entry on the way) in the directory `dir` (stat `s`), or undefined. */
const judged = (
  stateDir: string,
  dir: string,
  s: Stats,
  /** The entry on the way in it (when it is missing yet, the agent's directory, as the agent makes it). */
  child: Entry,
  ids: AgentIds,
  /**
   * The walk judges `child`, a directory, next as the one holding the next component: there is one,
   * and it is not `..` (which leaves the directory unjudged). Also when `child` is the last
   * component (the state directory itself, main.ts's to judge).
   */
  judgedNext: boolean,
): StateDirParentWarning | undefined => {
  const shown = shownPath(dir)
  const mode = (s.mode & 0o7777).toString(8).padStart(4, "0")
  const said = (why: string, who: string, fix: string): StateDirParentWarning => ({
    directory: dir,
    mode,
    owner: s.uid,
    group: s.gid,
    message: `the state directory ${shownPath(stateDir)} is held by the directory ${shown}, which ${why}: ${who} could rename the state directory away or put another in its place, and the agent would start again without its records (held outcomes deployed again)`,
    fix: `${fix}, ${lasting}`,
  })
  // A directory's owner may rename any entry of it, sticky or not.
  if (s.uid !== 0 && s.uid !== ids.uid)
    return said(
      `is owned by uid ${s.uid}, neither root nor the agent's user (uid ${ids.uid})`,
      "that user",
      `chown root ${shown} (or to the agent's user, uid ${ids.uid})`,
    )
  const everyone = (s.mode & 0o002) !== 0
  const group = (s.mode & 0o020) !== 0 && s.gid !== 0 && !ids.groups.has(s.gid)
  if (!everyone && !group) return undefined
  if ((s.mode & STICKY) !== 0) {
    // Sticky: only the entry's owner (or the directory's, root's or the agent's here, or root) may
    // rename it: not every user nor the group, and a chmod of a shared directory (/tmp) would break
    // the host.
    if (child.uid === 0 || child.uid === ids.uid) return undefined
    // Another user's directory the walk goes into next, to judge it holding the next component: it
    // names it there, by the same owner, with the same fix (chown root); said here too, it would be
    // said twice. (The state directory itself is main.ts's to refuse.) A directory the walk leaves
    // by `..` is never judged: its owner may rename it and put a link in its place, so that its
    // `..` resolves where they choose; it is named here.
    if (child.kind === "directory" && judgedNext) return undefined
    const entry = shownPath(child.path)
    return said(
      `is sticky (mode ${mode}: only an entry's owner, the directory's or root may rename the entry), and the entry on the way, ${child.kind === "link" ? "the symbolic link " : ""}${entry}, is uid ${child.uid}'s`,
      "that user",
      `chown ${child.kind === "link" ? "-h " : ""}root ${entry} (or to the agent's user, uid ${ids.uid})`,
    )
  }
  if (everyone)
    return said(
      `is writable by every user (mode ${mode}, no sticky bit)`,
      "any user",
      `chmod o-w ${shown} (or chmod +t ${shown}: then no other user may rename the agent's directory in it)`,
    )
  return said(
    `is writable by group ${s.gid}, not one of the agent's (mode ${mode})`,
    "a member of that group",
    `chmod g-w ${shown}${ids.gid === undefined ? "" : ` (or chgrp ${ids.gid} ${shown}, the agent's group)`}`,
  )
}

/**
 * The directories on the way to `stateDir` (those holding each component, and those on the way to
 * each symbolic link's target) that a user other than root, the agent's user or its groups may
 * write, each once, nearest the root first. The state directory itself is main.ts's to judge. A
 * walk that cannot go on judges what it reached: for a component missing yet, the directory it
 * would be made in.
 */
export const stateDirParentWarnings = (
  stateDir: string,
  ids: AgentIds | undefined = processIds(),
): Array<StateDirParentWarning> => {
  if (ids === undefined) return []
  const found: Array<StateDirParentWarning> = []
  const seen = new Set<string>()
  const pending = componentsLastFirst(resolve(stateDir))
  let dir = "/"
  let links = 0
  try {
    while (pending.length > 0) {
      const name = pending.pop() as string
      if (name === "..") {
        dir = resolve(dir, "..")
        continue
      }
      const full = join(dir, name)
      let child: Stats
      try {
        child = lstatSync(full)
      } catch (e) {
        // Missing yet (--check before the first start): the directory the agent would make it in is
        // judged as holding the agent's own entry.
        if ((e as NodeJS.ErrnoException).code === "ENOENT" && !seen.has(dir)) {
          const bad = judged(
            stateDir,
            dir,
            lstatSync(dir),
            { path: full, uid: ids.uid, kind: "directory" },
            ids,
            true,
          )
          if (bad !== undefined) found.push(bad)
        }
        throw e
      }
      if (!seen.has(dir)) {
        const bad = judged(stateDir, dir, lstatSync(dir), entryOf(full, child), ids, pending.at(-1) !== "..")
        if (bad !== undefined) {
          seen.add(dir)
          found.push(bad)
        }
      }
      if (child.isSymbolicLink()) {
        if (++links > MAX_LINKS) break
        const target = readlinkSync(full)
        if (isAbsolute(target)) dir = "/"
        pending.push(...componentsLastFirst(target))
        continue
      }
      dir = full
    }
  } catch {
    // A component missing or unreadable: the start's own checks say why; what was reached is judged.
  }
  return found
}
