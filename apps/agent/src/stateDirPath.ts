/**
 * Whether this process can make and write the state directory: the checks the agent makes before
 * its first pass, and `--check` makes without creating anything. A state directory that does not
 * exist is made one level at a time (0700), after the nearest directory that exists is found and
 * may be written: a read-only tree, a path under a file, a symbolic link to nothing and a directory
 * this user may not write are each named with their fix. (Node's recursive mkdir also loops for
 * ever under /proc, where a mkdir fails with ENOENT and its parent exists.)
 */
import {
  accessSync,
  constants as fsConstants,
  lstatSync,
  mkdirSync,
  readlinkSync,
  realpathSync,
  statfsSync,
  statSync,
} from "node:fs"
import { dirname, resolve } from "node:path"
import { shownPath } from "@kvdeploy/core"

export interface StateDirPathProblem {
  readonly code: string
  readonly message: string
  readonly fix: string
}

const codeOf = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? String(e)

const uidOf = (): number | undefined => process.geteuid?.()

const readOnlyFix =
  "give agent.state_dir a directory on a writable file system; under systemd (ProtectSystem=strict), leave state_dir out to use the unit's StateDirectory=, or add the directory to ReadWritePaths="

/**
 * The kernel's file systems that hold no files of their own (statfs magic numbers, linux/magic.h):
 * a directory there cannot be made, or holds nothing across a restart, whatever `access` says
 * (root passes its W_OK under /proc).
 */
const virtualFileSystems: ReadonlyMap<number, string> = new Map([
  [0x9fa0, "proc"],
  [0x62656572, "sysfs"],
  [0x27e0eb, "cgroup"],
  [0x63677270, "cgroup2"],
  [0x64626720, "debugfs"],
  [0x74726163, "tracefs"],
  [0x73636673, "securityfs"],
  [0x1cd1, "devpts"],
  [0xcafe4a11, "bpf"],
  [0x6165676c, "pstore"],
  [0x62656570, "configfs"],
  [0xde5e81e4, "efivarfs"],
])

/** The name of the virtual file system `path` is on, or undefined (also when statfs cannot tell). */
const virtualFileSystemOf = (path: string): string | undefined => {
  try {
    return virtualFileSystems.get(statfsSync(path).type)
  } catch {
    return undefined
  }
}

/**
 * Why this process may not create entries in the existing directory `path`, or undefined.
 * `dir` is the state directory; `creating` says whether `path` is a directory above it.
 */
const unwritable = (dir: string, path: string, creating: boolean): StateDirPathProblem | undefined => {
  const virtual = virtualFileSystemOf(path)
  if (virtual !== undefined)
    return {
      code: "EVIRTUAL",
      message: `the state directory ${shownPath(dir)}${creating ? ` cannot be created: ${shownPath(path)}` : ""} is on the kernel's ${virtual} file system, which holds no files of the agent's`,
      fix: "give agent.state_dir a directory on a disk (e.g. /var/lib/kvdeploy-agent); under systemd, leave state_dir out to use the unit's StateDirectory=",
    }
  try {
    accessSync(path, fsConstants.W_OK | fsConstants.X_OK)
    return undefined
  } catch (e) {
    const code = codeOf(e)
    const named = creating
      ? `the state directory ${shownPath(dir)} cannot be created: ${shownPath(path)}`
      : `the state directory ${shownPath(dir)}`
    if (code === "EROFS")
      return { code, message: `${named} is on a read-only file system (EROFS)`, fix: readOnlyFix }
    if (code === "EACCES" || code === "EPERM")
      return {
        code,
        message: `${named} may not be written by ${uidOf() === undefined ? "this user" : `uid ${uidOf()}`} (${code})`,
        fix: `${creating ? `create it for the agent's user: mkdir -p ${shownPath(dir)} && ` : ""}chown ${uidOf() ?? "AGENT_USER"} ${shownPath(dir)} && chmod 0700 ${shownPath(dir)}; or give agent.state_dir a directory that user may ${creating ? "create" : "write"}`,
      }
    return { code, message: `${named} cannot be used (${code})`, fix: readOnlyFix }
  }
}

/**
 * For a symbolic link whose target does not exist: what it names, and the path at the end of its
 * chain of links that is missing (a link to a link to nothing names the last one's target, which
 * is what can be created). Undefined when `path` is no symbolic link.
 */
const danglingTarget = (
  path: string,
): { readonly link: string; readonly missing: string; readonly chained: boolean } | undefined => {
  let link: string
  try {
    if (!lstatSync(path).isSymbolicLink()) return undefined
    link = readlinkSync(path)
  } catch {
    return undefined
  }
  // Each hop's target is resolved from the real directory of the link (its own links followed), as
  // the kernel does: `..` after a linked directory is that directory's parent, not the link's.
  const hop = (from: string, target: string) => {
    let base = dirname(from)
    try {
      base = realpathSync(base)
    } catch {}
    return resolve(base, target)
  }
  let missing = hop(path, link)
  let chained = false
  for (let hops = 0; hops < 40; hops++) {
    try {
      if (!lstatSync(missing).isSymbolicLink()) break
      missing = hop(missing, readlinkSync(missing))
      chained = true
    } catch {
      break
    }
  }
  return { link, missing, chained }
}

/**
 * The directories above `dir`, nearest first, down to the first that exists (its last entry), or
 * the problem that stops the walk: a file on the way, a symbolic link to nothing, an unreadable
 * directory on the way.
 */
const walkUp = (
  dir: string,
): { readonly missing: ReadonlyArray<string>; readonly existing: string } | StateDirPathProblem => {
  const missing: Array<string> = []
  let path = resolve(dir)
  for (;;) {
    try {
      const stats = statSync(path)
      if (!stats.isDirectory())
        return {
          code: "ENOTDIR",
          message: `the state directory ${shownPath(dir)} cannot be created: ${shownPath(path)} is a file, not a directory (ENOTDIR)`,
          fix: "give agent.state_dir a path that is not under a file",
        }
      return { missing, existing: path }
    } catch (e) {
      const code = codeOf(e)
      if (code === "ENOENT") {
        const dangling = danglingTarget(path)
        if (dangling !== undefined)
          return {
            code,
            message: `the state directory ${shownPath(dir)} cannot be created: ${shownPath(path)} is a symbolic link to ${shownPath(dangling.link)}, which ${!dangling.chained ? "" : `leads through links to ${shownPath(dangling.missing)}, which `}does not exist (ENOENT)`,
            fix: `create ${shownPath(dangling.missing)} (mode 0700, the agent's user's), or remove the link ${shownPath(path)}`,
          }
      }
      if (code !== "ENOENT" && code !== "ENOTDIR")
        return {
          code,
          message: `the state directory ${shownPath(dir)} cannot be used: ${shownPath(path)} cannot be read (${code})`,
          fix: "give agent.state_dir a directory the agent's user may reach and write",
        }
      missing.push(path)
      const parent = dirname(path)
      if (parent === path) return { missing, existing: path }
      path = parent
    }
  }
}

const isProblem = (x: object): x is StateDirPathProblem => "code" in x

/**
 * Why the state directory `dir` cannot be made or written by this process, or undefined: for an
 * existing directory, whether it may be written; for a missing one, whether the nearest directory
 * above it that exists may be. Creates nothing.
 */
export const stateDirPathProblem = (dir: string): StateDirPathProblem | undefined => {
  const walked = walkUp(dir)
  if (isProblem(walked)) return walked
  return unwritable(dir, walked.existing, walked.missing.length > 0)
}

/**
 * Make the state directory `dir` when it is missing (each missing directory 0700, from the top
 * down), after stateDirPathProblem found nothing in the way. Throws the error of a mkdir that fails,
 * or the problem found on the way (a file, a link to nothing) when one appeared since.
 */
export const makeStateDir = (dir: string): void => {
  const walked = walkUp(dir)
  if (isProblem(walked)) throw Object.assign(new Error(walked.message), { code: walked.code })
  for (const path of [...walked.missing].reverse()) {
    try {
      mkdirSync(path, { mode: 0o700 })
    } catch (e) {
      // Made by another process in the meantime: fine when it is a directory now.
      if (codeOf(e) !== "EEXIST" || !statSync(path).isDirectory()) throw e
    }
  }
}
