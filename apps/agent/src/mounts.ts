/**
 * Whether a directory can be written through any path of this mount namespace, from the kernel's
 * list of mounts (/proc/self/mountinfo, proc(5)). A Kubernetes configMap volume is a directory of
 * mode 0777 that kubelet bind-mounts read-only into the container, and mounts nowhere else in it:
 * no one there can change it, whatever its mode says. A read-only bind mount of a host directory
 * every user may write is not such a case: the directory is still written through its own path.
 * `access(W_OK)` cannot tell the two apart (both say EROFS), and for a user without the write
 * permission it says EACCES before it looks at the mount.
 */
import { readFileSync } from "node:fs"
import { join, relative } from "node:path"

interface Mount {
  /** The device's major:minor, as mountinfo gives it. */
  readonly device: string
  /** The directory of the file system that is mounted (a bind mount's source, "/" for the whole). */
  readonly root: string
  readonly mountPoint: string
  /** Read-only by the mount's options or the file system's own (its superblock's). */
  readonly readOnly: boolean
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
    const options = (fields[5] ?? "").split(",")
    const superOptions = (fields[separator + 3] ?? "").split(",")
    mounts.push({
      device: fields[2] ?? "",
      root: unescapeOctal(fields[3] ?? ""),
      mountPoint: unescapeOctal(fields[4] ?? ""),
      readOnly: options.includes("ro") || superOptions.includes("ro"),
    })
  }
  return mounts
}

const within = (path: string, dir: string): boolean =>
  dir === "/" || path === dir || path.startsWith(`${dir}/`)

/** The mounts, read again at most once a second (a pass judges many directories). */
let cached: { readonly atMs: number; readonly mounts: ReadonlyArray<Mount> | undefined } | undefined

/**
 * Whether the directory at `path` (resolved: no symbolic link in it) can be written through no path
 * of this mount namespace: the mount it is on is read-only, and no writable mount of the same file
 * system shows it. `writableAt` names such a path when there is one.
 */
export const writableThrough = (
  path: string,
  nowMs: number,
): { readonly readOnlyHere: boolean; readonly writableAt: string | undefined } => {
  if (cached === undefined || nowMs - cached.atMs > 1000 || nowMs < cached.atMs)
    cached = { atMs: nowMs, mounts: readMounts() }
  const mounts = cached.mounts
  if (mounts === undefined) return { readOnlyHere: false, writableAt: undefined }
  // The mount the path is on: the longest mount point holding it, the last mounted of equals.
  let here: Mount | undefined
  for (const m of mounts)
    if (within(path, m.mountPoint) && (here === undefined || m.mountPoint.length >= here.mountPoint.length))
      here = m
  if (here === undefined || !here.readOnly) return { readOnlyHere: false, writableAt: undefined }
  // Where the directory is in its file system, and a writable mount of that file system showing it.
  const inFileSystem = `/${relative("/", `${here.root}/${relative(here.mountPoint, path)}`)}`
  for (const m of mounts)
    if (m.device === here.device && !m.readOnly && within(inFileSystem, m.root)) {
      const rest = relative(m.root, inFileSystem)
      return { readOnlyHere: true, writableAt: join(m.mountPoint, rest) }
    }
  return { readOnlyHere: true, writableAt: undefined }
}
