/**
 * Whether a file system is read-only, from the kernel's list of mounts (/proc/self/mountinfo,
 * proc(5)). Only a file system that is itself read-only (its superblock: a read-only image, a tmpfs
 * remounted read-only) is written by no one. A read-only *mount* is not evidence: systemd's
 * ProtectSystem=, a container's read-only volume and a Kubernetes configMap volume are read-only
 * mounts of file systems that the host, or kubelet, writes through another mount, possibly in
 * another mount namespace that this list does not show. `access(W_OK)` cannot tell the two apart
 * (both say EROFS), and for a user without the write permission it says EACCES before it looks at
 * the mount.
 */
import { readFileSync } from "node:fs"
import { join, relative } from "node:path"

interface Mount {
  /** The device's major:minor, as mountinfo gives it. */
  readonly device: string
  /** The directory of the file system that is mounted (a bind mount's source, "/" for the whole). */
  readonly root: string
  readonly mountPoint: string
  /** Read-only by the mount's own options. */
  readonly mountReadOnly: boolean
  /** Read-only by the file system's options (its superblock): written through no mount. */
  readonly fileSystemReadOnly: boolean
}

/** mountinfo's octal escapes (a space is \040) undone. */
const unescapeOctal = (field: string): string =>
  field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)))

/** The mounts, in the order they were mounted; undefined where there is no mountinfo. */
const readMounts = (): ReadonlyArray<Mount> | undefined => {
  let text: string
  try {
    text = readFileSync("/proc/self/mountinfo", "utf8")
  } catch {
    return undefined
  }
  const mounts: Array<Mount> = []
  for (const line of text.split("\n")) {
    // id parent major:minor root mount-point mount-options [optional fields...] - type source super-options
    const fields = line.split(" ")
    const separator = fields.indexOf("-", 6)
    if (fields.length < 10 || separator === -1) continue
    mounts.push({
      device: fields[2] ?? "",
      root: unescapeOctal(fields[3] ?? ""),
      mountPoint: unescapeOctal(fields[4] ?? ""),
      mountReadOnly: (fields[5] ?? "").split(",").includes("ro"),
      fileSystemReadOnly: (fields[separator + 3] ?? "").split(",").includes("ro"),
    })
  }
  return mounts
}

const within = (path: string, dir: string): boolean =>
  dir === "/" || path === dir || path.startsWith(`${dir}/`)

/** A stat's device number as mountinfo writes it (glibc's encoding of dev_t: major:minor). */
const deviceOf = (dev: number): string => {
  const d = BigInt(dev)
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn)
  return `${major}:${minor}`
}

/** The mounts, read again at most once a second (a pass judges many directories). */
let cached: { readonly atMs: number; readonly mounts: ReadonlyArray<Mount> | undefined } | undefined

/** What the mount list says of an entry's file system. */
export type FileSystemWrites =
  /** The file system itself is read-only: no one writes it, through any mount. */
  | { readonly _tag: "ReadOnly" }
  /** Mounted read-only here, on a file system that is not: `writableAt` names a writable mount of it here. */
  | { readonly _tag: "MountedReadOnly"; readonly writableAt: string | undefined }
  /** Writable, or not known (no mount list, a mount hidden under another). */
  | { readonly _tag: "Writable" }

/**
 * What the mount list says of the entry at `path` (resolved: no symbolic link in it), whose stat
 * gave the device `dev`: the mount it is on is the last mounted of the longest mount points that
 * hold it, and must be of that device (else the path is under a mount hidden by a later one, and
 * nothing is known).
 */
export const fileSystemWrites = (path: string, dev: number, nowMs: number): FileSystemWrites => {
  if (cached === undefined || nowMs - cached.atMs > 1000 || nowMs < cached.atMs)
    cached = { atMs: nowMs, mounts: readMounts() }
  const mounts = cached.mounts
  if (mounts === undefined) return { _tag: "Writable" }
  let here: Mount | undefined
  for (const m of mounts)
    if (within(path, m.mountPoint) && (here === undefined || m.mountPoint.length >= here.mountPoint.length))
      here = m
  if (here === undefined || here.device !== deviceOf(dev)) return { _tag: "Writable" }
  if (here.fileSystemReadOnly) return { _tag: "ReadOnly" }
  if (!here.mountReadOnly) return { _tag: "Writable" }
  // Where the entry is in its file system, and a writable mount of that file system showing it.
  const inFileSystem = `/${relative("/", `${here.root}/${relative(here.mountPoint, path)}`)}`
  for (const m of mounts)
    if (m.device === here.device && !m.mountReadOnly && within(inFileSystem, m.root))
      return { _tag: "MountedReadOnly", writableAt: join(m.mountPoint, relative(m.root, inFileSystem)) }
  return { _tag: "MountedReadOnly", writableAt: undefined }
}
