/**
 * Reading operator input: a file path, or `-` for standard input (once per
 * run). Contents stay in memory; nothing is written anywhere.
 */
import { closeSync, constants, createReadStream, fstat, open as openCallback, type Stats } from "node:fs"
import { access, open, realpath, stat } from "node:fs/promises"
import { Socket } from "node:net"
import { dirname, join } from "node:path"
import type { Readable } from "node:stream"
import { promisify } from "node:util"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { type BoundedRead, fsErrorReason, readAtMost, shownPath } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import { looksLikePastedText, type Problem, usageOne } from "./problems.js"
import { printErr, styleErr } from "./terminal.js"

let stdinTakenBy: string | undefined

/**
 * A file or standard input, read to its end or refused once it has given more than 1 MiB (core's
 * readAtMost): a device such as /dev/zero, an endless pipe or a huge standard input is not read for
 * ever into memory. Files of /proc, which say they are empty, are read for what they hold.
 */
export const readInput = (evaluate: () => Readable): Effect.Effect<BoundedRead, unknown> =>
  readAtMost(NodeStream.fromReadable<Uint8Array, unknown>({ evaluate, onError: (e) => e }), maxInputBytes)

const openFd = promisify(openCallback)
const fstatFd = promisify(fstat)

/**
 * A file read as `readInput` reads it, opened without waiting: a FIFO (`--cert <(…)`, a named pipe)
 * is opened non-blocking and read as a socket, so that the wait for its writer is the event loop's,
 * not a blocking `open` in one of libuv's threads. A FIFO with no writer would hold such a thread
 * for good, and Node's exit waits for its threads: SIGTERM and Ctrl+C printed "interrupted" and the
 * process lived on until SIGKILL. Anything else is read as before (a regular file from the
 * descriptor opened, a directory or device by its path, whose errors say what it is).
 */
export const readPath = (path: string): Effect.Effect<BoundedRead, unknown> =>
  Effect.acquireUseRelease(
    Effect.tryPromise({
      try: async (): Promise<Readable> => {
        // A plain descriptor (not a FileHandle, which would close it again when collected): the
        // stream made of it owns it and closes it.
        const fd = await openFd(path, constants.O_RDONLY | constants.O_NONBLOCK)
        let stats: Stats
        try {
          stats = await fstatFd(fd)
        } catch (e) {
          closeSync(fd)
          throw e
        }
        if (stats.isFIFO() || stats.isSocket()) return new Socket({ fd, readable: true, writable: false })
        if (stats.isFile()) return createReadStream("", { fd })
        closeSync(fd)
        return createReadStream(path)
      },
      catch: (e) => e,
    }),
    (stream) => readInput(() => stream),
    (stream) => Effect.sync(() => stream.destroy()),
  )

/** Whether a file system error is a refusal by permissions (the file's, or a directory's above it). */
const deniedByPermissions = (error: unknown): boolean => {
  const code = (error as { code?: unknown } | null)?.code
  return code === "EACCES" || code === "EPERM"
}

/**
 * The fix for a file that could not be read: its permissions when they refused it ("check the
 * path" sends the operator to a path that is right), else `otherwise`.
 */
export const fsErrorFix = (error: unknown, otherwise: string): string =>
  deniedByPermissions(error)
    ? "make the file readable by the user kvdeploy runs as (check its permissions and those of its directories: ls -l), or run kvdeploy as a user that may read it"
    : otherwise

/**
 * The fix for a material flag given a directory (`--cert /etc/letsencrypt/live/NAME`): the file in
 * it that the flag takes, named as an ACME client's live directory names it.
 */
export const directoryFix = (flag: string, directory: string): string => {
  const inIt = (file: string) => shownPath(join(directory, file))
  switch (flag) {
    case "--cert":
      return `give the certificate file in it, not the directory (certbot's live directory: --cert ${inIt("fullchain.pem")} --key ${inIt("privkey.pem")})`
    case "--key":
      return `give the private key file in it, not the directory (certbot's live directory: --key ${inIt("privkey.pem")})`
    case "--chain":
      return `give the chain file in it, not the directory (certbot's live directory: --chain ${inIt("chain.pem")}, or --cert ${inIt("fullchain.pem")} alone)`
    default:
      return `give the file in it, not the directory: ${flag} DIR/FILE`
  }
}

/** The fix for an empty material file: it holds nothing to read, so no path or permission fix helps. */
export const emptyFileFix = (flag: string): string =>
  `give the file that holds the ${flag === "--pfx" ? "PKCS#12 (PFX)" : flag === "--key" || flag === "--previous-key" ? "private key (PEM or DER)" : "certificates (PEM or DER)"}: this one holds nothing (a copy or a renewal that stopped part-way leaves such a file)`

/** Maximum input size: PEM bundles, PFX files and target files are small; refuse anything absurd. */
export const maxInputBytes = 1024 * 1024

/**
 * Read `source` (a path, or `-` for stdin) for the flag `flag`. Fails with a
 * usage problem naming the flag and file.
 */
export const readSource = (
  flag: string,
  source: string,
): Effect.Effect<Uint8Array, ReturnType<typeof usageOne>> =>
  Effect.gen(function* () {
    if (source === "-") {
      if (stdinTakenBy !== undefined) {
        return yield* usageOne(
          flag,
          `reads standard input, but ${stdinTakenBy} already does`,
          "give at most one input as '-'; pass the others as files",
        )
      }
      if (process.stdin.isTTY === true) {
        return yield* usageOne(
          flag,
          "is '-' but standard input is a terminal",
          "pipe the file in, or give its path",
        )
      }
      stdinTakenBy = flag
      const read = yield* readInput(() => process.stdin).pipe(
        Effect.mapError((e) =>
          usageOne(flag, `standard input could not be read: ${fsErrorReason(e)}`, "check the pipe"),
        ),
      )
      if (read.over)
        return yield* usageOne(
          flag,
          "standard input is larger than 1 MiB",
          "pipe a PEM or PFX file of at most 1 MiB",
        )
      if (read.bytes.byteLength === 0) {
        return yield* usageOne(flag, "standard input is empty", "pipe the file in, or give its path")
      }
      return read.bytes
    }
    if (looksLikePastedText(source)) return yield* pastedText(flag)
    const read = yield* readPath(source).pipe(
      Effect.mapError((e) =>
        usageOne(
          flag,
          `${shownPath(source)}: ${fsErrorReason(e)}`,
          (e as NodeJS.ErrnoException | undefined)?.code === "EISDIR"
            ? directoryFix(flag, source)
            : fsErrorFix(e, "check the path"),
        ),
      ),
    )
    if (read.over)
      return yield* usageOne(
        flag,
        `${shownPath(source)} is larger than 1 MiB`,
        "give a PEM or PFX file of at most 1 MiB",
      )
    if (read.bytes.byteLength === 0)
      return yield* usageOne(flag, `${shownPath(source)} is empty`, emptyFileFix(flag))
    if (flag === "--key" || flag === "--previous-key" || flag === "--pfx") {
      const readable = yield* Effect.promise(() => readableByEveryUser(source))
      if (readable !== undefined)
        yield* printErr(
          `${styleErr().yellow("warning")}: ${flag} ${shownPath(readable.file)} is readable by every user (${readable.mode})${flag === "--pfx" ? ", and it holds the private key" : ""}: any local user can copy the key\n  fix: chmod 600 ${shownPath(readable.file)} (or 640 with a group of the users that need it)`,
        )
    }
    return read.bytes
  })

/**
 * The file a path leads to (links followed: certbot's live/ link is 0777, its archive/ file the one
 * judged) and its mode, when every user may read it: o+r, and every directory on the way to it
 * lets others through (o+x; certbot's archive/ is 0700). Undefined otherwise, and for anything but
 * a regular file (a pipe, standard input). A warning only: the key is read all the same.
 */
const readableByEveryUser = async (
  path: string,
): Promise<{ readonly file: string; readonly mode: string } | undefined> => {
  try {
    const file = await realpath(path)
    const stats = await stat(file)
    if (!stats.isFile() || (stats.mode & 0o004) === 0) return undefined
    for (let dir = dirname(file); ; dir = dirname(dir)) {
      if (((await stat(dir)).mode & 0o001) === 0) return undefined
      if (dirname(dir) === dir) break
    }
    return { file, mode: `mode ${(stats.mode & 0o7777).toString(8).padStart(4, "0")}` }
  } catch {
    return undefined
  }
}

/** A flag whose value is certificate or key text, not a path: named, never quoted. */
const pastedText = (flag: string) =>
  usageOne(
    flag,
    "holds certificate or key text instead of a file path; it is not shown here",
    "put it in a file and give the file's path, or give - and pipe it on standard input",
  )

/**
 * What `readSource` would refuse about `source`, found without reading it (a file that says it is
 * empty is read for one byte): it is text instead of a path, does not exist, cannot be read, is a
 * directory, is empty or too large. Standard input and
 * anything that is not a regular file (a pipe, `<(…)`, a device) are left alone: reading them would
 * consume what the command reads afterwards.
 */
export const sourceFileProblems = (flag: string, source: string): Effect.Effect<ReadonlyArray<Problem>> =>
  Effect.promise(async (): Promise<ReadonlyArray<Problem>> => {
    if (source === "-") return []
    const problem = (message: string, fix: string): ReadonlyArray<Problem> => [{ field: flag, message, fix }]
    if (looksLikePastedText(source)) return pastedText(flag).problems
    try {
      const stats = await stat(source)
      if (stats.isDirectory())
        return problem(`${shownPath(source)}: is a directory`, directoryFix(flag, source))
      if (!stats.isFile()) return []
      if (stats.size > maxInputBytes)
        return problem(
          `${shownPath(source)} is ${stats.size} bytes`,
          "give a PEM or PFX file of at most 1 MiB",
        )
      await access(source, constants.R_OK)
      // A size of 0 is checked by reading a byte (a regular file loses nothing to it): files of /proc
      // say 0 and hold more, and an empty file found only when the material is read was reported
      // alone, on a later run than the other problems.
      if (stats.size === 0 && (await holdsNothing(source)))
        return problem(`${shownPath(source)} is empty`, emptyFileFix(flag))
      return []
    } catch (e) {
      return problem(`${shownPath(source)}: ${fsErrorReason(e)}`, fsErrorFix(e, "check the path"))
    }
  })

/** Whether a regular file holds not one byte. */
const holdsNothing = async (path: string): Promise<boolean> => {
  const handle = await open(path, "r")
  try {
    return (await handle.read(Buffer.alloc(1), 0, 1, 0)).bytesRead === 0
  } finally {
    await handle.close()
  }
}

/** Display name of a source in messages. */
export const sourceName = (source: string): string => (source === "-" ? "standard input" : source)
