/** `deploy --metrics-file`: the run's metrics written for node_exporter's textfile collector. */
import { randomBytes } from "node:crypto"
import {
  closeSync,
  constants,
  fchmodSync,
  fsyncSync,
  lstatSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs"
import { basename, dirname, join, resolve } from "node:path"

const errorCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? String(e)

/**
 * How old a temporary file must be (by mtime) for a run to take it for a leftover: a run writes and
 * renames its file within milliseconds, so one this old belongs to a run killed mid-write.
 */
export const LEFTOVER_AGE_MS = 10 * 60_000

/** The suffix of a temporary file: random bytes (this version), or a process id (earlier ones). */
const temporarySuffix = /^(?:[0-9a-f]{16}|[1-9]\d{0,9})$/

/**
 * Remove the temporary files that runs killed mid-write left beside `file` (`<name>.tmp-<suffix>`
 * last modified more than ten minutes ago): the collector skips them (it reads `*.prom`), but they
 * would stay for good. Age decides, not the process id in older names: runs in other PID namespaces
 * (containers sharing the collector's directory) see neither each other's processes nor distinct
 * ids, so a live writer's file is never taken for a leftover. One that cannot be removed is left.
 */
const removeLeftovers = (file: string): void => {
  const directory = dirname(file)
  const prefix = `${basename(file)}.tmp-`
  let names: ReadonlyArray<string>
  try {
    names = readdirSync(directory)
  } catch {
    return
  }
  const now = Date.now()
  for (const name of names) {
    if (!name.startsWith(prefix) || !temporarySuffix.test(name.slice(prefix.length))) continue
    try {
      const path = join(directory, name)
      if (now - lstatSync(path).mtimeMs > LEFTOVER_AGE_MS) unlinkSync(path)
    } catch {}
  }
}

/**
 * Make the rename in `directory` durable: the file's fsync keeps its bytes, not the directory
 * entry the rename changed. Not on Windows, which cannot open a directory.
 */
const syncDirectory = (directory: string): void => {
  if (process.platform === "win32") return
  const fd = openSync(directory, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * Replace `file` with `text` atomically and durably: a temporary file in the same directory
 * (`<name>.tmp-<16 random hex digits>`, made anew with O_EXCL, never through a link, mode 0644:
 * no other run, whatever its process id or PID namespace, writes or removes it), written whole and
 * fsynced, then renamed over `file`, and the directory fsynced. A collector never reads half a file,
 * and after a crash or a power loss `file` is the old text or the new one. Temporary files of runs
 * killed mid-write (older than ten minutes) are removed first. Undefined once written, else why not
 * (an error code).
 */
export const writeMetricsFile = (file: string, text: string): string | undefined => {
  const target = resolve(file)
  const temp = `${target}.tmp-${randomBytes(8).toString("hex")}`
  removeLeftovers(target)
  try {
    const fd = openSync(
      temp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0),
      0o644,
    )
    try {
      // The mode asked at creation is masked by the umask (077 gives 0600, which node_exporter, a
      // user of its own, cannot read): set it whole.
      fchmodSync(fd, 0o644)
      const bytes = Buffer.from(text, "utf8")
      for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(temp, target)
  } catch (e) {
    try {
      unlinkSync(temp)
    } catch {}
    return errorCode(e)
  }
  try {
    syncDirectory(dirname(target))
  } catch {
    // Renamed, so the collector reads the new file; only the rename's survival of a power loss is
    // not assured (a directory this user may write but not read: EACCES; a network or FUSE mount
    // that cannot sync one: EINVAL, ENOTSUP), and the next run's metrics replace it anyway.
  }
  return undefined
}
