/**
 * Who may change a file the agent reads: ssh's StrictModes, for source files.
 * A source file is used only when no user but root and the agent's own could
 * have put it there: the file, every directory on the way to it, and every
 * symbolic link followed (and every directory on the way to that link's
 * target) is owned by root or the agent's user and writable by no one else.
 * The agent often runs as root and reads keys it deploys to Key Vault: a file
 * another user could replace (or point elsewhere with a symbolic link) would
 * let that user have any key on the host deployed, or their own.
 *
 * Links are allowed wherever they lead (certbot's `live/NAME/privkey.pem` ->
 * `../../archive/NAME/privkey1.pem`, Kubernetes' `tls.key` -> `..data/tls.key`),
 * as long as each link and its target pass the same rule. The path is resolved
 * by hand, as `fs.realpath` does, with an `lstat` per component, and the caller
 * opens the resolved path with O_NOFOLLOW, so the file read is the one judged.
 */
import { accessSync, constants, lstatSync, readlinkSync, type Stats } from "node:fs"
import { dirname, isAbsolute, join, resolve } from "node:path"
import { shownPath } from "@kvdeploy/core"

/** The agent's own user (undefined where there are no user ids). */
const agentUid = process.geteuid?.()

/** The sticky bit (S_ISVTX; not in Node's fs.constants). */
const STICKY = 0o1000

/** Symbolic links followed at most, as the kernel does (MAXSYMLINKS). */
const MAX_LINKS = 40

/** A user other than root and the agent's could change the file: nothing is read from it. */
export interface UntrustedPath {
  /** The file, directory or link that others could change. */
  readonly path: string
  /** What it is: "file", "directory", "symbolic link". */
  readonly kind: string
  /** Why others could change it, in words. */
  readonly why: string
  readonly fix: string
}

const kindOf = (s: Stats): string =>
  s.isSymbolicLink() ? "symbolic link" : s.isDirectory() ? "directory" : "file"

const mode = (s: Stats): string => `mode ${(s.mode & 0o7777).toString(8).padStart(4, "0")}`

/**
 * Why a user other than root and the agent's could change this entry (lstat of it), or undefined.
 * Group-writable counts unless the group is root's (gid 0): a group such as ssl-cert holds other
 * services, and its write bit would let each of them replace another's key. A sticky directory
 * (1777, /tmp) is fine: others may add entries to it but not replace one of another owner's, and
 * every entry followed must be root's or the agent's anyway. A link's own mode means nothing.
 * A file system mounted read-only (a Kubernetes configMap volume, 0777) is changed by no one
 * through this path, which excuses its mode bits, never another owner.
 */
const whyOthersMayWrite = (path: string, s: Stats): { why: string; fix: string } | undefined => {
  if (agentUid === undefined) return undefined
  const shown = shownPath(path)
  let found: { why: string; fix: string } | undefined
  // Another owner may change it through another path (a read-only bind mount of their directory
  // is still theirs): no read-only mount excuses it.
  if (s.uid !== 0 && s.uid !== agentUid)
    return {
      why: `is owned by uid ${s.uid}, neither root nor the agent's user (uid ${agentUid})`,
      fix: `chown root ${shown} (or to uid ${agentUid}), or keep the files where only root and the agent's user can write`,
    }
  if (s.isSymbolicLink() || (s.isDirectory() && (s.mode & STICKY) !== 0)) return undefined
  else if ((s.mode & 0o002) !== 0)
    found = {
      why: `is writable by every user (${mode(s)}${s.isDirectory() ? ", no sticky bit" : ""})`,
      fix: `chmod o-w ${shown}`,
    }
  else if ((s.mode & 0o020) !== 0 && s.gid !== 0)
    found = {
      why: `is writable by group ${s.gid} (${mode(s)})`,
      fix: `chmod g-w ${shown} (readable by the group is fine)`,
    }
  if (found === undefined || s.isSymbolicLink()) return found
  try {
    accessSync(path, constants.W_OK)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EROFS") return undefined
  }
  return found
}

/** Judgments of real directories, kept for a second (a pass reads many files in one directory). */
const judged = new Map<string, UntrustedPath | undefined>()
let judgedSince = 0
const JUDGED_MS = 1000

/** The entry's judgment, as an UntrustedPath. */
const untrusted = (path: string, s: Stats): UntrustedPath | undefined => {
  const found = whyOthersMayWrite(path, s)
  return found === undefined ? undefined : { path, kind: kindOf(s), why: found.why, fix: found.fix }
}

/** What the walk found: the first entry others could change, or the resolved file and its lstat. */
export type PathWalk =
  | { readonly _tag: "Untrusted"; readonly untrusted: UntrustedPath }
  | { readonly _tag: "Resolved"; readonly real: string; readonly stats: Stats }

/**
 * Resolve `path` (absolute, or relative to the working directory) one component at a time, judging
 * each directory, link and the final entry (when it is a regular file; anything else is the
 * caller's to refuse) by who may write it. Throws the file system's error (ENOENT, ENOTDIR, EACCES,
 * ELOOP) as `open` would.
 */
export const walkPath = (path: string): PathWalk => {
  const now = Date.now()
  if (now - judgedSince > JUDGED_MS || now < judgedSince) {
    judged.clear()
    judgedSince = now
  }
  const pending = resolve(path)
    .split("/")
    .filter((c) => c !== "" && c !== ".")
  pending.reverse()
  let dir = "/"
  let links = 0
  let stats: Stats | undefined
  if (!judged.has("/")) {
    stats = lstatSync("/")
    judged.set("/", untrusted("/", stats))
  }
  const rootJudged = judged.get("/")
  if (rootJudged !== undefined) return { _tag: "Untrusted", untrusted: rootJudged }
  while (pending.length > 0) {
    const name = pending.pop() as string
    if (name === "..") {
      dir = dirname(dir)
      stats = undefined
      continue
    }
    const full = join(dir, name)
    if (judged.has(full) && pending.length > 0) {
      const known = judged.get(full)
      if (known !== undefined) return { _tag: "Untrusted", untrusted: known }
      dir = full
      continue
    }
    stats = lstatSync(full)
    if (stats.isSymbolicLink()) {
      const bad = untrusted(full, stats)
      if (bad !== undefined) return { _tag: "Untrusted", untrusted: bad }
      if (++links > MAX_LINKS)
        throw Object.assign(new Error(`too many symbolic links: ${full}`), { code: "ELOOP" })
      const target = readlinkSync(full)
      if (isAbsolute(target)) dir = "/"
      pending.push(
        ...target
          .split("/")
          .filter((c) => c !== "" && c !== ".")
          .reverse(),
      )
      continue
    }
    if (stats.isDirectory()) {
      const bad = untrusted(full, stats)
      judged.set(full, bad)
      if (bad !== undefined) return { _tag: "Untrusted", untrusted: bad }
    } else if (pending.length > 0)
      throw Object.assign(new Error(`not a directory: ${full}`), { code: "ENOTDIR" })
    else if (stats.isFile()) {
      const bad = untrusted(full, stats)
      if (bad !== undefined) return { _tag: "Untrusted", untrusted: bad }
    }
    dir = full
  }
  return { _tag: "Resolved", real: dir, stats: stats ?? lstatSync(dir) }
}

/**
 * Why a user other than root and the agent's could change this entry (its lstat), or undefined:
 * the rule above for one directory, link or file.
 */
export const untrustedEntry = (path: string, s: Stats): UntrustedPath | undefined => untrusted(path, s)

/** The judgment of a regular file's own fstat (taken after it was opened): the file may have changed since its walk. */
export const untrustedFile = (path: string, s: Stats): UntrustedPath | undefined => untrusted(path, s)

/** The problem in words: what others could change, and why nothing is read. */
export const untrustedText = (u: UntrustedPath): string =>
  `the ${u.kind} ${shownPath(u.path)} ${u.why}: a user other than root and the agent's could replace the file, so it is not read`

/** The fix in words. */
export const untrustedFix = (u: UntrustedPath): string =>
  `${u.fix}; every directory on the way to a source file, every symbolic link followed and the file itself must be owned by root or the agent's user and writable by no one else`
