/**
 * The state directory: the last outcome per deployment (outcome, version id,
 * thumbprint, source fingerprint, times), never key material. Written
 * atomically (temporary file, fsync, rename, directory fsync) at most every 5 seconds when an
 * outcome changed, after each pass and at shutdown, so a restart knows what is already in place and what is held
 * (an outcome that needs a person is not retried for the same source). Changes of times
 * alone wait for the write after the pass, or at most `TIME_ONLY_MAX_AGE_MS` (60 s) when
 * the agent never goes quiet.
 */
import {
  chmodSync,
  closeSync,
  constants,
  copyFileSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
} from "node:fs"
import { open, rename, unlink } from "node:fs/promises"
import { dirname, join } from "node:path"
import { shownPath } from "@kvdeploy/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import { configFingerprintOf } from "./config.js"

export interface DeploymentRecord {
  /** The outcome tag (DeployOutcome tags, or "SourceBroken": RECORDED_OUTCOMES). */
  readonly outcome: string
  readonly at: string
  readonly reason: string
  /** Fingerprint of the deployment's configuration when this was recorded. */
  readonly configFingerprint: string
  /** SHA-256 of the source files this outcome was about (undefined when unreadable). */
  readonly sourceFingerprint: string | undefined
  readonly x5t: string | undefined
  readonly versionId: string | undefined
  /** The leaf's notAfter. */
  readonly notAfter: string | undefined
  /**
   * The earliest notAfter of the source's leaf and chain certificates (the value of
   * `kvdeploy_agent_certificate_expiry_timestamp_seconds`), with `notAfter`. Absent in files of
   * agents before it (a restart then parses the source again) and when no source was parsed.
   */
  readonly earliestNotAfter?: string | undefined
  /**
   * The rule `earliestNotAfter` was taken by (`issuer-path`: every certificate on the leaf's issuer
   * path up to a root). Absent in files of agents before it, whose `earliestNotAfter` counted the
   * leaf's issuer alone: a restart then parses the source again.
   */
  readonly earliestNotAfterRule?: string | undefined
  /** Last time the vault was seen serving this source (Succeeded or Skipped). */
  readonly lastSuccessAt: string | undefined
  /** True when this outcome needs a person: not retried until the source or the configuration changes. */
  readonly held: boolean
  /**
   * The notAfter of the certificate the vault served at the last read that told it (the value of
   * `kvdeploy_certificate_expiry_timestamp_seconds` for the target), for this configuration: a
   * restarted agent shows it again before it can read the vault. Absent in files of agents before it.
   */
  readonly servedNotAfter?: string | undefined
  /**
   * The fix of a held Rejected outcome (the deploy's problems'), or of a Superseded hold on another
   * writer's version met between passes, which the held lines repeat. Absent in files of agents
   * before it, and for other outcomes.
   */
  readonly fix?: string | undefined
}

export interface StateFile {
  readonly schema: "kvdeploy.agent-state/v1"
  /** The version of the agent that wrote it (absent in files of agents before the field). */
  readonly agentVersion?: string
  readonly deployments: Record<string, DeploymentRecord>
}

export interface StateStore {
  readonly get: (name: string) => DeploymentRecord | undefined
  readonly set: (name: string, record: DeploymentRecord) => void
  readonly remove: (name: string) => void
  /** The names that have a record. */
  readonly names: () => ReadonlyArray<string>
  /** Write now when anything changed. */
  readonly flush: Effect.Effect<void>
  /**
   * Write now when anything but times changed (the periodic write): a record
   * that differs from the one it replaces only in `at` and `lastSuccessAt`
   * (a pass that found the deployment in place) waits for the next `flush`
   * (after the pass, at shutdown). A restart reads outcomes, fingerprints and
   * holds, which such a change leaves as they were. Backstop: changes of times
   * older than `TIME_ONLY_MAX_AGE_MS` are written too, so an agent that is
   * never quiet (a fleet whose passes follow each other, a deployment always
   * retrying) does not keep its last-success times off the disk for ever.
   */
  readonly flushChanges: Effect.Effect<void>
  readonly path: string
  /** Whether the last write failed (and what it held is not on disk yet). */
  readonly writeFailing: () => boolean
}

/** Changes of times alone are written at least this often by the periodic write (see flushChanges). */
export const TIME_ONLY_MAX_AGE_MS = 60_000

export interface StateStoreOptions {
  /** Wall-clock milliseconds (tests pass their own). */
  readonly now?: () => number
  /**
   * The running agent's version, written into the state file. A state file another version wrote
   * (or one from before the field) is copied once, at start, to `state.json.before-<this version>`
   * and `info` says so: an older agent may not take a newer one's records as its deployments' (and
   * would then try again what was held for a person), so going back means putting that copy back.
   */
  readonly agentVersion?: string
  readonly info?: (line: string) => void
}

/** The same record but for its times. */
const sameBut = (a: DeploymentRecord, b: DeploymentRecord): boolean =>
  a.outcome === b.outcome &&
  a.reason === b.reason &&
  a.configFingerprint === b.configFingerprint &&
  a.sourceFingerprint === b.sourceFingerprint &&
  a.x5t === b.x5t &&
  a.versionId === b.versionId &&
  a.notAfter === b.notAfter &&
  a.earliestNotAfter === b.earliestNotAfter &&
  a.earliestNotAfterRule === b.earliestNotAfterRule &&
  a.held === b.held &&
  a.servedNotAfter === b.servedNotAfter &&
  a.fix === b.fix

/**
 * The state file's text, never read through a symbolic link (O_NOFOLLOW: ELOOP) nor from anything
 * but a regular file (opened non-blocking: a FIFO does not block the start).
 */
const readStateText = (path: string): string => {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  try {
    if (!fstatSync(fd).isFile()) throw Object.assign(new Error("not a regular file"), { code: "ENOTREG" })
    return readFileSync(fd, "utf8")
  } finally {
    closeSync(fd)
  }
}

/**
 * Why the state file could not be read, in words that quote none of its text (`text`, what was
 * read of it): V8's JSON.parse message quotes the text around the error, which is not the log's to
 * carry (the file may have been planted or garbled with anything); the place is said instead.
 */
const unreadableWhy = (e: unknown, text: string): string => {
  const code = (e as NodeJS.ErrnoException).code
  if (code === "ELOOP") return "it is a symbolic link (ELOOP), which the agent does not follow"
  if (code === "ENOTREG") return "it is not a regular file (a directory, a FIFO or a device)"
  if (code === "EISDIR") return "it is a directory"
  if (code === "EACCES" || code === "EPERM")
    return `the agent${typeof process.getuid === "function" ? ` (uid ${process.getuid()})` : ""} may not read it (${code}): make it the agent's user's (chown) or remove it`
  if (code !== undefined) return code
  if (!(e instanceof SyntaxError)) return "its records are not in the agent's form"
  return `not valid JSON${jsonFailedAt(e.message, text)}`
}

/** Where JSON.parse stopped, from its message: " at line L, column C", or "" when it cannot say. */
const jsonFailedAt = (message: string, text: string): string => {
  const lineAt = (position: number) => text.slice(0, position).split("\n").length
  const at = / at position (\d+)/.exec(message)
  if (at !== null || /^Unexpected end of JSON input/.test(message)) {
    const position = at === null ? text.length : Number(at[1])
    return ` at line ${lineAt(position)}, column ${position - text.lastIndexOf("\n", position - 1)}`
  }
  // `Unexpected token 'x', ..."ten either side"... is not valid JSON`: found by its excerpt.
  const quoted = /^Unexpected token .*?, (\.\.\.)?"(.*)"(?:\.\.\.)? is not valid JSON$/s.exec(message)
  const start = quoted === null ? -1 : text.indexOf(quoted[2] ?? "")
  if (quoted === null || start < 0) return ""
  if (quoted[1] === undefined) return ` at line ${lineAt(start)} or after`
  const position = start + 10
  return ` at line ${lineAt(position)}, column ${position - text.lastIndexOf("\n", position - 1)}`
}

/** A time as the agent writes them (ISO 8601); a record with another holds nothing a metric can show. */
const RecordTime = Schema.String.check(
  Schema.makeFilter((s: string) => Number.isFinite(Date.parse(s)) || "is not a time (ISO 8601)"),
)

/**
 * The outcomes the agent records (core's DeployOutcome tags, and SourceBroken). Another (a hand
 * edit's typo, another program's word) was shown as the deployment's outcome on /metrics and on its
 * held line, which no alert or dashboard knows.
 */
const RECORDED_OUTCOMES = [
  "Succeeded",
  "Skipped",
  "Rejected",
  "Failed",
  "Unverified",
  "Superseded",
  "RolledBack",
  "RollbackFailed",
  "SourceBroken",
] as const

/** A record as the agent writes it: what a record of the file must be before anything of it is used. */
const RecordFields = Schema.Struct({
  outcome: Schema.Literals(RECORDED_OUTCOMES),
  at: RecordTime,
  reason: Schema.String,
  configFingerprint: Schema.String,
  sourceFingerprint: Schema.optional(Schema.String),
  x5t: Schema.optional(Schema.String),
  versionId: Schema.optional(Schema.String),
  notAfter: Schema.optional(RecordTime),
  earliestNotAfter: Schema.optional(RecordTime),
  earliestNotAfterRule: Schema.optional(Schema.String),
  lastSuccessAt: Schema.optional(RecordTime),
  held: Schema.Boolean,
  servedNotAfter: Schema.optional(RecordTime),
  fix: Schema.optional(Schema.String),
})
const decodeRecord = Schema.decodeUnknownExit(RecordFields)

/** The record in the file, checked, or what is wrong with it (its first problem, without its values). */
const recordOf = (value: unknown): DeploymentRecord | string => {
  const decoded = decodeRecord(value, { onExcessProperty: "ignore" })
  if (Exit.isFailure(decoded)) {
    const squashed = Cause.squash(decoded.cause)
    const issue = squashed instanceof Error ? squashed.message : String(squashed)
    return issue.split("\n").slice(0, 3).join(" ").replace(/\s+/g, " ").slice(0, 200)
  }
  const r = decoded.value
  return {
    outcome: r.outcome,
    at: r.at,
    reason: r.reason,
    // Written by an agent that kept the canonical JSON itself as the configuration's fingerprint.
    configFingerprint: r.configFingerprint.startsWith("{")
      ? configFingerprintOf(r.configFingerprint)
      : r.configFingerprint,
    sourceFingerprint: r.sourceFingerprint,
    x5t: r.x5t,
    versionId: r.versionId,
    notAfter: r.notAfter,
    ...(r.earliestNotAfter === undefined ? {} : { earliestNotAfter: r.earliestNotAfter }),
    ...(r.earliestNotAfterRule === undefined ? {} : { earliestNotAfterRule: r.earliestNotAfterRule }),
    lastSuccessAt: r.lastSuccessAt,
    held: r.held,
    ...(r.servedNotAfter === undefined ? {} : { servedNotAfter: r.servedNotAfter }),
    ...(r.fix === undefined ? {} : { fix: r.fix }),
  }
}

/** What a state file that cannot be used costs: no outcome is remembered, so none is held. */
export const withoutState =
  "starting without state: every deployment is compared with its vault again, and one whose last outcome was held (it needed a person) is deployed again"

/**
 * What the state file holds: nothing (no file), its records (every record checked before any is
 * used: one that is not in the agent's form, a hand edit or another program's, is left out and
 * named in `bad`), or why none can be used. Nothing is changed: the store sets such a file aside,
 * `--check` warns of it.
 */
export type StateFileRead =
  | { readonly _tag: "Missing" }
  | {
      readonly _tag: "Read"
      readonly records: ReadonlyMap<string, DeploymentRecord>
      /** The records left out, each as its name and its first problem (without its values). */
      readonly bad: ReadonlyArray<string>
      /** The version of the agent that wrote it, when it says. */
      readonly agentVersion: string | undefined
    }
  /** `why` reads after "state file PATH ". */
  | { readonly _tag: "Unusable"; readonly why: string }

export const readStateFile = (path: string): StateFileRead => {
  let text = ""
  try {
    text = readStateText(path)
    const parsed = JSON.parse(text) as {
      readonly schema?: unknown
      readonly agentVersion?: unknown
      readonly deployments?: unknown
    }
    const deployments = parsed?.deployments
    if (
      parsed?.schema === "kvdeploy.agent-state/v1" &&
      typeof deployments === "object" &&
      deployments !== null &&
      !Array.isArray(deployments)
    ) {
      const records = new Map<string, DeploymentRecord>()
      const bad: Array<string> = []
      for (const [name, value] of Object.entries(deployments)) {
        const record = recordOf(value)
        if (typeof record === "string") bad.push(`${JSON.stringify(name.slice(0, 64))}: ${record}`)
        // Fields this agent does not know (a newer agent's) are kept and written back.
        else records.set(name, { ...(value as object), ...record })
      }
      const agentVersion =
        typeof parsed.agentVersion === "string" ? parsed.agentVersion.slice(0, 64) : undefined
      return { _tag: "Read", records, bad, agentVersion }
    }
    return {
      _tag: "Unusable",
      why:
        typeof parsed?.schema === "string" && parsed.schema !== "kvdeploy.agent-state/v1"
          ? `has the schema ${JSON.stringify(parsed.schema.slice(0, 64))}, not kvdeploy.agent-state/v1 (a newer agent's?)`
          : "is not an agent's state file (no schema kvdeploy.agent-state/v1 with its deployments)",
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { _tag: "Missing" }
    return { _tag: "Unusable", why: `cannot be read (${unreadableWhy(e, text)})` }
  }
}

/**
 * Why the agent may not start on the state directory `dir`'s state file, or undefined: a state.json
 * its user may not read (EACCES, EPERM; root's after a `sudo` edit or restore). Its records are
 * likely whole, and a chown gives them back; set aside like a damaged file, they were lost, and with
 * them every hold (an outcome that needed a person was deployed again). Anything else (no file, a
 * damaged one, a link) is the store's to judge.
 */
export const stateFileRefusal = (
  dir: string,
): { readonly message: string; readonly fix: string } | undefined => {
  const path = join(dir, "state.json")
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code !== "EACCES" && code !== "EPERM") return undefined
    const uid = process.geteuid?.()
    const user = uid === undefined ? "the agent's user" : `uid ${uid}`
    return {
      message: `the state file ${shownPath(path)} may not be read by ${user} (${code}): the agent would start without its records, and deploy again what they hold for a person`,
      fix: `chown ${uid ?? "AGENT_USER"} ${shownPath(path)} && chmod 0600 ${shownPath(path)} (its records are kept), or remove it to start without state`,
    }
  }
  closeSync(fd)
  return undefined
}

/** The records left out of a state file, in words (after "state file PATH "). */
export const badRecordsText = (bad: ReadonlyArray<string>): string =>
  `has ${bad.length} record${bad.length === 1 ? "" : "s"} not in the agent's form (${bad.slice(0, 10).join("; ")}${bad.length > 10 ? `; and ${bad.length - 10} more` : ""})`

/** What the records left out cost, in words. */
export const keptText = (read: { readonly records: ReadonlyMap<string, unknown> }): string =>
  `those deployments start without a record (one whose last outcome was held is deployed again)${read.records.size === 0 ? "" : `, the other ${read.records.size} keep theirs`}`

/** Why no state file may be written any more in this process (the state directory's lock was lost), or undefined. */
let writesRefused: string | undefined

/**
 * Stop every state store of this process writing: another agent may own the state directory now
 * (its lock was lost), and a write would replace that agent's records with this one's.
 */
export const refuseStateWrites = (why: string): void => {
  writesRefused = why
}

/**
 * Make a rename in `directory` durable: the file's own fsync keeps its bytes, not the directory
 * entry the rename changed, so after a power loss the directory could still name the file before
 * it (a hold recorded in it lost: a rolled-back certificate deployed again). A file system that
 * cannot sync a directory (EINVAL, ENOTSUP, EISDIR on some network and FUSE mounts) is left as it
 * is: the rename itself took place.
 */
const syncDirectory = async (directory: string): Promise<void> => {
  const handle = await open(directory, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    await handle.sync()
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code !== "EINVAL" && code !== "ENOTSUP" && code !== "EISDIR") throw e
  } finally {
    await handle.close()
  }
}

/**
 * Copy the state file another agent version wrote (`wroteIt`, undefined: one from before versions
 * were written) to `state.json.before-<running>`, once per version: the copy an operator puts back
 * to go back to it. An existing copy is kept (the first start of this version made it); a copy
 * that cannot be made is a warning, not a reason not to start.
 */
const keepForDowngrade = (
  path: string,
  wroteIt: string | undefined,
  running: string,
  warn: (line: string) => void,
  info: (line: string) => void,
): void => {
  const copy = `${path}.before-${running.replace(/[^0-9A-Za-z.+-]/g, "_")}`
  try {
    copyFileSync(path, copy, constants.COPYFILE_EXCL)
    chmodSync(copy, 0o600)
    info(
      `state file ${shownPath(path)} was written by ${wroteIt === undefined ? "an agent that did not record its version (an earlier one)" : `agent ${wroteIt}`}; kept as ${shownPath(copy)}: to go back to that version, stop the agent and copy it back to state.json (an older agent may not take this version's records as its deployments', and would try again what is held)`,
    )
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code !== "EEXIST")
      warn(
        `state file ${shownPath(path)}: the copy for going back to the agent that wrote it could not be made (${code ?? String(e)}) at ${shownPath(copy)}`,
      )
  }
}

/** Open (or create) the state directory; a corrupt state file is set aside, not fatal. */
export const openStateStore = (
  dir: string,
  warn: (line: string) => void,
  options: StateStoreOptions = {},
): StateStore => {
  const now = options.now ?? Date.now
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const path = join(dir, "state.json")
  // The temporary files of agents stopped mid-write (killed, the machine down): the agent holds the
  // directory's lock by now, so no other writes one. Its state.json is the last write that completed.
  for (const name of readdirSync(dir))
    if (/^state\.json\.tmp-\d+$/.test(name))
      try {
        unlinkSync(join(dir, name))
      } catch {}
  const records = new Map<string, DeploymentRecord>()
  /** Keep an unreadable state file beside the new one for a person to look at, instead of overwriting it. */
  const setAside = (): string => {
    const aside = `${path}.unreadable-${new Date(now()).toISOString().replace(/[:.]/g, "-")}`
    try {
      renameSync(path, aside)
      return `kept as ${aside}`
    } catch (e) {
      return `it could not be kept aside (${(e as NodeJS.ErrnoException).code ?? String(e)}) and will be overwritten`
    }
  }
  let keptFromSetAside = false
  const read = readStateFile(path)
  if (
    read._tag === "Read" &&
    options.agentVersion !== undefined &&
    read.agentVersion !== options.agentVersion
  )
    keepForDowngrade(path, read.agentVersion, options.agentVersion, warn, options.info ?? (() => {}))
  if (read._tag === "Read") {
    for (const [name, record] of read.records) records.set(name, record)
    if (read.bad.length > 0) {
      // The file is set aside below: the records kept are written anew at the next flush (a stop
      // before any record changed would otherwise leave no state file, and lose them).
      keptFromSetAside = true
      warn(`state file ${shownPath(path)} ${badRecordsText(read.bad)}; ${setAside()}; ${keptText(read)}`)
    }
  } else if (read._tag !== "Missing")
    warn(`state file ${shownPath(path)} ${read.why}; ${setAside()}; ${withoutState}`)
  let dirty = keptFromSetAside
  // Changed in more than its times (see flushChanges).
  let changed = keptFromSetAside
  // When the oldest change not written yet was made (0: none).
  let dirtySince = keptFromSetAside ? now() : 0
  let writing: Promise<void> = Promise.resolve()
  let failing = false
  const write = async () => {
    if (writesRefused !== undefined) throw new Error(`not written: ${writesRefused}`)
    const body: StateFile = {
      schema: "kvdeploy.agent-state/v1",
      ...(options.agentVersion === undefined ? {} : { agentVersion: options.agentVersion }),
      deployments: Object.fromEntries(records),
    }
    const tmp = `${path}.tmp-${process.pid}`
    // Made anew (O_EXCL) and never through a link (O_NOFOLLOW): a name planted in the directory is not
    // written through. One left by an agent that was killed with this process id is removed first.
    const create = () =>
      open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
    const handle = await create().catch(async (e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e
      await unlink(tmp)
      return create()
    })
    try {
      try {
        await handle.writeFile(`${JSON.stringify(body)}\n`)
        await handle.sync()
      } finally {
        await handle.close()
      }
      await rename(tmp, path)
    } catch (e) {
      // A write cut short (ENOSPC, EDQUOT, EIO) or a rename refused: its temporary file was left for
      // good (the next process has another id), holding what it got of the space that ran out.
      await unlink(tmp).catch(() => {})
      throw e
    }
    await syncDirectory(dirname(path))
    failing = false
  }
  const flush = Effect.promise(() => {
    if (!dirty) return writing
    dirty = false
    changed = false
    dirtySince = 0
    writing = writing.then(write, write).catch((e: unknown) => {
      failing = true
      dirty = true
      changed = true
      if (dirtySince === 0) dirtySince = now()
      warn(
        `state file ${shownPath(path)} cannot be written: ${String((e as Error).message)}; fix: ${stateWriteFix((e as NodeJS.ErrnoException).code, dirname(path))}`,
      )
    })
    return writing
  })
  return {
    path,
    get: (name) => records.get(name),
    set: (name, record) => {
      const previous = records.get(name)
      records.set(name, record)
      if (!dirty) dirtySince = now()
      dirty = true
      if (!changed && (previous === undefined || !sameBut(previous, record))) changed = true
    },
    names: () => [...records.keys()],
    remove: (name) => {
      if (records.delete(name)) {
        if (!dirty) dirtySince = now()
        dirty = true
        changed = true
      }
    },
    flush,
    writeFailing: () => failing,
    flushChanges: Effect.suspend(() =>
      changed || (dirty && now() - dirtySince >= TIME_ONLY_MAX_AGE_MS) ? flush : Effect.void,
    ),
  }
}

/**
 * What to do when the state file cannot be written, by the file system's error: the outcomes and
 * holds since its last write are then in memory only, and lost at an exit.
 */
export const stateWriteFix = (code: string | undefined, dir: string): string =>
  code === "ENOSPC" || code === "EDQUOT"
    ? `free space on the file system of ${shownPath(dir)} (or raise the quota); the agent writes it again at its next change`
    : code === "EROFS"
      ? `${shownPath(dir)} is on a read-only file system now: remount it read-write, or give agent.state_dir a writable directory and restart`
      : code === "ENOENT"
        ? `${shownPath(dir)} was removed: restart the agent, which makes it again (mode 0700)`
        : code === "ENOTDIR"
          ? `${shownPath(dir)} is no longer a directory the agent can write into: remove what is there and restart the agent, which makes it again (mode 0700)`
          : code === "EACCES" || code === "EPERM"
            ? `give the agent's user write access to ${shownPath(dir)} again (chmod 0700, owned by that user); the agent writes it again at its next change`
            : `check ${shownPath(dir)} (its file system, its permissions); the agent writes it again at its next change`
