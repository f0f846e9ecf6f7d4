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
 * A source may name one more user, its `owner` (an ACME client that runs as
 * its own user and writes its own directory): that user's files, directories
 * and links pass too. Since that user could link (or hard-link) a file it
 * cannot read into its directory, a file reached through any entry of that
 * user's must be that user's own file: root's keys stay out of its reach.
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
import { fileSystemWrites } from "./mounts.js"
import { componentsLastFirst, MAX_LINKS, STICKY } from "./pathWalk.js"

/** The agent's own user (undefined where there are no user ids). */
const agentUid = process.geteuid?.()

/** A user other than root and the agent's (and the source's owner) could change the file: nothing is read from it. */
export interface UntrustedPath {
  /** The file, directory or link that others could change. */
  readonly path: string
  /** What it is: "file", "directory", "symbolic link". */
  readonly kind: string
  /** Why others could change it, in words. */
  readonly why: string
  readonly fix: string
  /** The source's owner (`source.owner`), when it names one. */
  readonly owner: number | undefined
  /** What follows, in words, when it is not that others could replace the file. */
  readonly consequence?: string
  /** Whether it is another user's (else: its mode lets others write it). */
  readonly anotherOwners?: boolean
}

/**
 * The user a source names besides root and the agent's user (`source.owner`), or undefined when it
 * names none or one of those two (trusted anyway).
 */
const extraOwner = (owner: number | undefined): number | undefined =>
  owner === undefined || owner === 0 || owner === agentUid ? undefined : owner

/** The users who may own a source's entries, in words: "a user other than ...". */
const otherThan = (owner: number | undefined): string =>
  owner === undefined ? "root and the agent's" : `root, the agent's and the source's owner (uid ${owner})`

/** The users who may own a source's entries, in words: "owned by ...". */
const ownedBy = (owner: number | undefined): string =>
  owner === undefined
    ? "root or the agent's user"
    : `root, the agent's user or the source's owner (uid ${owner})`

const kindOf = (s: Stats): string =>
  s.isSymbolicLink() ? "symbolic link" : s.isDirectory() ? "directory" : "file"

/**
 * The root of a volume kubelet's atomic writer fills (configMap, secret, projected): a directory
 * holding the link `..data` to the current `..TIMESTAMP` directory, which kubelet swaps.
 */
const isKubeletVolumeRoot = (path: string, s: Stats): boolean => {
  if (!s.isDirectory()) return false
  try {
    return lstatSync(join(path, "..data")).isSymbolicLink()
  } catch {
    return false
  }
}

/** The command that gives an entry (of a kind: kindOf) to root: `chown -h` for a link (plain chown changes its target). */
const chownRoot = (kind: string): string => (kind === "symbolic link" ? "chown -h root" : "chown root")

const mode = (s: Stats): string => `mode ${(s.mode & 0o7777).toString(8).padStart(4, "0")}`

/**
 * Why a user other than root and the agent's could change this entry (lstat of it), or undefined.
 * Group-writable counts unless the group is root's (gid 0): a group such as ssl-cert holds other
 * services, and its write bit would let each of them replace another's key. A sticky directory
 * (1777, /tmp) is fine: others may add entries to it but not replace one of another owner's, and
 * every entry followed must be root's or the agent's anyway. A link's own mode means nothing.
 * A directory or file on a file system that is itself read-only (mounts.ts) is changed by no one,
 * which excuses its mode bits, never another owner. A read-only mount of a writable file system
 * (systemd's ProtectSystem=, a container's read-only volume, a configMap volume) excuses nothing:
 * the host or kubelet writes that file system through another mount.
 */
const whyOthersMayWrite = (
  path: string,
  s: Stats,
  owner: number | undefined,
  /** The configuration file's rule (configFileUntrusted): a configMap volume's root on a read-only mount is excused its mode bits. */
  configurationRule = false,
): { why: string; fix: string; anotherOwners?: boolean } | undefined => {
  if (agentUid === undefined) return undefined
  const shown = shownPath(path)
  // Another owner may change it through another path (a read-only bind mount of their directory
  // is still theirs): no read-only mount excuses it.
  if (s.uid !== 0 && s.uid !== agentUid && s.uid !== owner)
    return owner === undefined
      ? {
          anotherOwners: true,
          why: `is owned by uid ${s.uid}, neither root nor the agent's user (uid ${agentUid})`,
          fix: `${chownRoot(kindOf(s))} ${shown} (or to uid ${agentUid}), or keep the files where only root and the agent's user can write; if uid ${s.uid} is the ACME client that writes them, name it as the source's owner (source.owner)`,
        }
      : {
          anotherOwners: true,
          why: `is owned by uid ${s.uid}, neither root, the agent's user (uid ${agentUid}) nor the source's owner (uid ${owner})`,
          fix: `${chownRoot(kindOf(s))} ${shown} (or to uid ${owner}, the source's owner), or keep the files where only those users can write`,
        }
  if (s.isSymbolicLink() || (s.isDirectory() && (s.mode & STICKY) !== 0)) return undefined
  let why: string
  let fix: (at: string) => string
  if ((s.mode & 0o002) !== 0) {
    why = `is writable by every user (${mode(s)}${s.isDirectory() ? ", no sticky bit" : ""})`
    fix = (at) => `chmod o-w ${at}`
  } else if ((s.mode & 0o020) !== 0 && s.gid !== 0) {
    why = `is writable by group ${s.gid} (${mode(s)})`
    fix = (at) => `chmod g-w ${at} (readable by the group is fine)`
  } else return undefined
  // On a file system that is itself read-only, no one changes it; a read-only mount is no evidence.
  const writes = fileSystemWrites(path, s.dev, Date.now())
  // The configuration's rule: the root of a configMap volume (kubelet's layout), on a read-only
  // mount with no writable mount of it here, is excused its mode bits. Not any read-only mount:
  // systemd's ProtectSystem= and a container's :ro volume of a host directory look the same from
  // inside, and their file systems are written by the host's users.
  if (
    writes._tag === "ReadOnly" ||
    (configurationRule &&
      writes._tag === "MountedReadOnly" &&
      writes.writableAt === undefined &&
      isKubeletVolumeRoot(path, s))
  )
    return undefined
  if (writes._tag === "Writable") return { why, fix: fix(shown) }
  return writes.writableAt === undefined
    ? {
        why: `${why}; it is mounted read-only here, but its file system is not read-only, and another mount (the host's, kubelet's) may write it`,
        fix: `${fix(shown)} where the file system is mounted writable (on the host, in the volume's source)`,
      }
    : {
        why: `${why}; it is mounted read-only here, but the same ${kindOf(s)} is writable at ${shownPath(writes.writableAt)}`,
        fix: fix(shownPath(writes.writableAt)),
      }
}

/** A directory's judgment: why others could change it, and whether it is the source owner's. */
interface Judgment {
  readonly bad: UntrustedPath | undefined
  readonly owners: boolean
}

/**
 * Judgments of real directories, kept for a second (a pass reads many files in one directory), by
 * the source's owner they were made for (a directory of that user's passes only for its sources)
 * and whether a read-only mount excused mode bits ("<owner>" or "<owner> ro").
 */
const judged = new Map<string, Map<string, Judgment>>()
const judgedKey = (owner: number | undefined, configurationRule: boolean): string =>
  `${owner ?? ""}${configurationRule ? " ro" : ""}`
let judgedSince = 0
const JUDGED_MS = 1000

/** The entry's judgment, as an UntrustedPath. */
const untrusted = (
  path: string,
  s: Stats,
  owner: number | undefined,
  configurationRule = false,
): UntrustedPath | undefined => {
  const found = whyOthersMayWrite(path, s, owner, configurationRule)
  return found === undefined
    ? undefined
    : {
        path,
        kind: kindOf(s),
        why: found.why,
        fix: found.fix,
        owner,
        ...(found.anotherOwners === true ? { anotherOwners: true } : {}),
      }
}

const judge = (path: string, s: Stats, owner: number | undefined, configurationRule = false): Judgment => ({
  bad: untrusted(path, s, owner, configurationRule),
  owners: owner !== undefined && s.uid === owner,
})

/**
 * A file that is not the source owner's, reached through `via`, an entry of that user's: that user
 * could have linked there (or hard-linked) a file it cannot read itself, such as root's key.
 */
const notTheOwnersFile = (
  path: string,
  s: Stats,
  owner: number,
  via: { readonly path: string; readonly kind: string },
): UntrustedPath => ({
  path,
  kind: kindOf(s),
  why: `is owned by uid ${s.uid}, and reached through the ${via.kind} ${shownPath(via.path)} of the source's owner (uid ${owner})`,
  fix: `have uid ${owner} write the file itself (the file must be its own), or keep files of other users out of its directories`,
  owner,
  consequence:
    "the source's owner could have put there a file it cannot read itself, such as root's key, so it is not read",
})

/** What the walk found: the first entry others could change, or the resolved file and its lstat. */
export type PathWalk =
  | { readonly _tag: "Untrusted"; readonly untrusted: UntrustedPath }
  | {
      readonly _tag: "Resolved"
      readonly real: string
      readonly stats: Stats
      /** The first entry of the source owner's on the way (the file must then be that user's own). */
      readonly via: { readonly path: string; readonly kind: string } | undefined
    }

/**
 * Resolve `path` (absolute, or relative to the working directory) one component at a time, judging
 * each directory, link and the final entry (when it is a regular file; anything else is the
 * caller's to refuse) by who may write it: root, the agent's user, and `owner` (the source's
 * `owner`, a uid) when given. Throws the file system's error (ENOENT, ENOTDIR, EACCES, ELOOP) as
 * `open` would.
 */
export const walkPath = (
  path: string,
  sourceOwner?: number,
  /** The configuration file's rule: a configMap volume's root on a read-only mount is excused its mode bits (never another owner). */
  configurationRule = false,
): PathWalk => {
  const owner = extraOwner(sourceOwner)
  const now = Date.now()
  if (now - judgedSince > JUDGED_MS || now < judgedSince) {
    judged.clear()
    judgedSince = now
  }
  let known = judged.get(judgedKey(owner, configurationRule))
  if (known === undefined) {
    known = new Map()
    judged.set(judgedKey(owner, configurationRule), known)
  }
  const judgeHere = (at: string, s: Stats) => judge(at, s, owner, configurationRule)
  const pending = componentsLastFirst(resolve(path))
  let dir = "/"
  let links = 0
  let stats: Stats | undefined
  let via: { readonly path: string; readonly kind: string } | undefined
  if (!known.has("/")) {
    stats = lstatSync("/")
    known.set("/", judgeHere("/", stats))
  }
  const root = known.get("/") as Judgment
  if (root.bad !== undefined) return { _tag: "Untrusted", untrusted: root.bad }
  if (root.owners) via = { path: "/", kind: "directory" }
  while (pending.length > 0) {
    const name = pending.pop() as string
    if (name === "..") {
      dir = dirname(dir)
      stats = undefined
      continue
    }
    const full = join(dir, name)
    const cached = pending.length > 0 ? known.get(full) : undefined
    if (cached !== undefined) {
      if (cached.bad !== undefined) return { _tag: "Untrusted", untrusted: cached.bad }
      if (cached.owners && via === undefined) via = { path: full, kind: "directory" }
      dir = full
      continue
    }
    stats = lstatSync(full)
    if (stats.isSymbolicLink()) {
      const link = judgeHere(full, stats)
      if (link.bad !== undefined) return { _tag: "Untrusted", untrusted: link.bad }
      if (link.owners && via === undefined) via = { path: full, kind: "symbolic link" }
      if (++links > MAX_LINKS)
        throw Object.assign(new Error(`too many symbolic links: ${full}`), { code: "ELOOP" })
      const target = readlinkSync(full)
      if (isAbsolute(target)) dir = "/"
      pending.push(...componentsLastFirst(target))
      continue
    }
    if (stats.isDirectory()) {
      const directory = judgeHere(full, stats)
      known.set(full, directory)
      if (directory.bad !== undefined) return { _tag: "Untrusted", untrusted: directory.bad }
      if (directory.owners && via === undefined) via = { path: full, kind: "directory" }
    } else if (pending.length > 0)
      throw Object.assign(new Error(`not a directory: ${full}`), { code: "ENOTDIR" })
    else if (stats.isFile()) {
      const bad = untrustedFile(full, stats, owner, via, configurationRule)
      if (bad !== undefined) return { _tag: "Untrusted", untrusted: bad }
    }
    dir = full
  }
  return { _tag: "Resolved", real: dir, stats: stats ?? lstatSync(dir), via }
}

/**
 * Why a user other than root and the agent's could change this entry (its lstat), or undefined:
 * the rule above for one directory, link or file (of a source without an owner).
 */
export const untrustedEntry = (path: string, s: Stats): UntrustedPath | undefined =>
  untrusted(path, s, undefined)

/**
 * The judgment of a regular file, by its lstat in the walk and again by its own fstat (taken after
 * it was opened: the file may have changed since its walk): who may write it, and, when the walk
 * went through an entry of the source owner's (`via`), whether it is that user's own.
 */
export const untrustedFile = (
  path: string,
  s: Stats,
  sourceOwner: number | undefined,
  via: { readonly path: string; readonly kind: string } | undefined,
  configurationRule = false,
): UntrustedPath | undefined => {
  const owner = extraOwner(sourceOwner)
  const bad = untrusted(path, s, owner, configurationRule)
  if (bad !== undefined) return bad
  return owner !== undefined && via !== undefined && s.uid !== owner
    ? notTheOwnersFile(path, s, owner, via)
    : undefined
}

/** The problem in words: what others could change, and why nothing is read. */
export const untrustedText = (u: UntrustedPath): string =>
  `the ${u.kind} ${shownPath(u.path)} ${u.why}: ${u.consequence ?? `a user other than ${otherThan(u.owner)} could replace the file, so it is not read`}`

/** The fix in words. */
export const untrustedFix = (u: UntrustedPath): string =>
  `${u.fix}; every directory on the way to a source file, every symbolic link followed and the file itself must be owned by ${ownedBy(u.owner)} and writable by no one else`

/**
 * Who besides root and the agent's user may change the configuration file, in words with the fix,
 * or undefined (no one, or a path that cannot be walked: its load says why). The sources' rule
 * for the file, every directory on the way to it and every symbolic link followed, with one
 * difference: the root of a configMap volume (kubelet's `..data` layout) on a read-only mount of a
 * file system that no mount here shows writable is excused its mode bits (never another owner). It is a warning, not a
 * refusal: the file holds no key, and the shipped Kubernetes recipe mounts it from a configMap,
 * whose volume root is 0777 on the node's disk (under kubelet's own root-only directory), written
 * by kubelet from the ConfigMap, which the cluster's RBAC guards. Whoever may change it may still
 * choose which files the agent reads (each must pass the sources' rule) and the vaults they go to.
 */
export const configFileUntrusted = (
  path: string,
): { readonly why: string; readonly fix: string } | undefined => {
  let walk: PathWalk
  // Judged afresh: read at start and at a reload, maybe just after a chmod that mended it.
  judged.delete(judgedKey(undefined, true))
  try {
    walk = walkPath(path, undefined, true)
  } catch {
    return undefined
  }
  if (walk._tag === "Resolved") return undefined
  const u = walk.untrusted
  const shown = shownPath(u.path)
  return {
    why: `the ${u.kind} ${shown} ${u.why}: a user other than root and the agent's could change the configuration, and with it which files the agent deploys and to which vaults (it is read all the same)`,
    fix: `${u.anotherOwners === true ? `${chownRoot(u.kind)} ${shown}${agentUid === 0 ? "" : ` (or to uid ${agentUid})`}` : u.fix}; the configuration file, every directory on the way to it and every symbolic link followed should be owned by root or the agent's user and writable by no one else (docs/agent.md, Files)`,
  }
}

/**
 * Why this process may not read `path` (an EACCES), in words, with the fix: the first directory on
 * the way it may not search, or the file it may not read. Undefined when access() finds neither
 * (the refusal came from elsewhere, a security module). Certbot keeps `live/` and `archive/` 0700:
 * an agent that is not root reads them through a group it is in.
 */
export const readRefusal = (path: string): { readonly why: string; readonly fix: string } | undefined => {
  const who = `the agent's user (uid ${agentUid ?? "?"}, groups ${process.getgroups?.().join(", ") ?? "?"})`
  const groupFix = (what: string, bits: string, at: string) =>
    `give a group the agent is in (the systemd unit's SupplementaryGroups=, ssl-cert) ${what} on it: chgrp GROUP ${at} && chmod ${bits} ${at} (never g+w); or run the agent as a user that may read it`
  // Resolved as the kernel resolves it, link by link (certbot's live/ links lead into archive/):
  // the directory refused is the one on the way the link leads to.
  const pending = componentsLastFirst(resolve(path))
  let dir = "/"
  let links = 0
  try {
    while (pending.length > 0) {
      const name = pending.pop() as string
      if (name === "..") {
        dir = dirname(dir)
        continue
      }
      try {
        accessSync(dir, constants.X_OK)
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EACCES") return undefined
        return {
          why: `${who} may not search the directory ${shownPath(dir)} on its way`,
          fix: groupFix("search (x)", "g+x", shownPath(dir)),
        }
      }
      const full = join(dir, name)
      if (lstatSync(full).isSymbolicLink()) {
        if (++links > MAX_LINKS) return undefined
        const target = readlinkSync(full)
        if (isAbsolute(target)) dir = "/"
        pending.push(...componentsLastFirst(target))
        continue
      }
      dir = full
    }
    accessSync(dir, constants.R_OK)
    return undefined
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EACCES"
      ? {
          why: `${who} may not read the file ${shownPath(dir)}`,
          fix: groupFix("read", "g+r", shownPath(dir)),
        }
      : undefined
  }
}

/**
 * Why every user of the host may read a private key file (a key source or a PFX, which holds the
 * key), with the fix, or undefined: the file (`real`, the path the walk resolved, with its stats)
 * is readable by others (o+r) and every directory on the way to it lets others through (o+x). A
 * warning, not a refusal: the agent judges who may change a source (it would deploy their key),
 * while a key others may read was already theirs to copy, and refusing it would stop deployments
 * over a file the agent did not make. Group-readable is left alone: a group is how a key is shared
 * with the services that serve it (Debian's ssl-cert, 0640 root:ssl-cert; the systemd unit runs
 * the agent with SupplementaryGroups=ssl-cert), and the agent cannot tell which group is meant to.
 */
export const keyReadableByOthers = (
  role: string,
  real: string,
  s: Stats,
): { readonly why: string; readonly fix: string } | undefined => {
  if (agentUid === undefined || (s.mode & 0o004) === 0) return undefined
  for (let dir = dirname(real); ; dir = dirname(dir)) {
    try {
      if ((lstatSync(dir).mode & 0o001) === 0) return undefined
    } catch {
      return undefined
    }
    if (dirname(dir) === dir) break
  }
  const shown = shownPath(real)
  return {
    why: `the ${role === "pfx" ? "PFX file" : "private key file"} ${shown} is readable by every user (${mode(s)})${role === "pfx" ? ", and it holds the private key" : ""}: any local user can copy the key`,
    fix: `chmod 600 ${shown}, or chmod 640 ${shown} with a group the agent's user is in (chgrp ssl-cert ${shown}: the systemd unit runs the agent with SupplementaryGroups=ssl-cert)`,
  }
}
