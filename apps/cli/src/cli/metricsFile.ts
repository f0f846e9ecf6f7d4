/** `deploy --metrics-file`: the run's metrics written for node_exporter's textfile collector. */
import {
  closeSync,
  constants,
  fchmodSync,
  fsyncSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs"
import { basename, dirname, join, resolve } from "node:path"

const errorCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? String(e)

/** Whether a process of this id runs (one another user owns included: EPERM says it exists). */
const running = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return errorCode(e) === "EPERM"
  }
}

/**
 * Remove the temporary files that runs killed mid-write left beside `file` (`<name>.tmp-<pid>`
 * of a process that no longer runs): the collector skips them (it reads `*.prom`), but they would
 * stay for good. A run still writing keeps its own; one that cannot be removed is left.
 */
const removeLeftovers = (file: string): void => {
  const prefix = `${basename(file)}.tmp-`
  let names: ReadonlyArray<string>
  try {
    names = readdirSync(dirname(file))
  } catch {
    return
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue
    const pid = name.slice(prefix.length)
    if (!/^[1-9]\d{0,9}$/.test(pid) || (Number(pid) !== process.pid && running(Number(pid)))) continue
    try {
      unlinkSync(join(dirname(file), name))
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
 * (`<name>.tmp-<pid>`, made anew, never through a link, mode 0644), written whole and fsynced, then
 * renamed over `file`, and the directory fsynced. A collector never reads half a file, and after a
 * crash or a power loss `file` is the old text or the new one. Temporary files of runs killed
 * mid-write are removed first. Undefined once written, else why not (an error code).
 */
export const writeMetricsFile = (file: string, text: string): string | undefined => {
  const target = resolve(file)
  const temp = `${target}.tmp-${process.pid}`
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
