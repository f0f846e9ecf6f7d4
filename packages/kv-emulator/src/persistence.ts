/**
 * Optional state directory: each vault's certificates and secrets as JSON
 * (0600), so a demo survives a restart. It holds imported private keys, so the
 * emulator warns on stderr when it is used. The emulator's own keys (CA, token
 * signing) are never written.
 */
import { createPrivateKey, randomBytes } from "node:crypto"
import {
  closeSync,
  constants,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  type Stats,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs"
import { basename, join } from "node:path"
import { fsErrorReason, shownPath } from "@kvdeploy/core"
import { certOf, PEM_CONTENT_TYPE, PFX_CONTENT_TYPE } from "./material.js"
import { type PolicyWire, parsePolicy } from "./policy.js"
import type { CertEntry, CertVersion, SecretEntry, SecretVersion, Tags, VaultStore } from "./store.js"

interface VersionFile extends Omit<CertVersion, "leaf" | "certs" | "key"> {
  readonly leaf: string
  readonly certs: ReadonlyArray<string>
  readonly key: string | null
}
interface EntryFile {
  readonly name: string
  readonly policy: PolicyWire
  readonly policyCreated: number
  readonly policyUpdated: number
  readonly deleted?: { readonly deletedDate: number; readonly scheduledPurgeDate: number } | undefined
  readonly versions: ReadonlyArray<VersionFile>
}
interface VaultFile {
  readonly format: 1
  readonly vault: string
  readonly certificates: ReadonlyArray<EntryFile>
  readonly secrets: ReadonlyArray<SecretEntry>
}

const b64 = (u: Uint8Array) => Buffer.from(u).toString("base64")
const bytes = (s: string) => new Uint8Array(Buffer.from(s, "base64"))

/**
 * A vault's file: `<dir>/vault-<name>.json`, the name in lower case, since a vault's name has no
 * letter case (its host is a DNS name): `--vault KV-Demo` and `--vault kv-demo` are one vault, and
 * one file.
 */
export const vaultFile = (dir: string, vault: string): string =>
  join(dir, `vault-${vault.toLowerCase()}.json`)

/** statSync, or undefined where there is nothing (or nothing that can be looked at). */
const statOf = (path: string): Stats | undefined => {
  try {
    return statSync(path)
  } catch {
    return undefined
  }
}

/**
 * The vault's files in `dir` named in another letter case than vaultFile's (an emulator before
 * this one named the file as the vault was given: `vault-KV-Demo.json`), other than vaultFile's
 * own (on a file system without case, that one is listed under the name it was written with).
 */
const otherCaseFiles = (dir: string, vault: string): ReadonlyArray<string> => {
  const own = vaultFile(dir, vault)
  let names: ReadonlyArray<string>
  try {
    names = readdirSync(dir)
  } catch {
    return []
  }
  const ownStat = statOf(own)
  return names
    .filter((n) => n !== basename(own) && n.toLowerCase() === basename(own))
    .map((n) => join(dir, n))
    .filter((f) => {
      const st = statOf(f)
      return ownStat === undefined || st === undefined || st.ino !== ownStat.ino || st.dev !== ownStat.dev
    })
}

/** The `stateDir` option names a path that is no directory the emulator can write in. */
export class StateDirError extends Error {
  override readonly name: string = "StateDirError"
  constructor(
    /** The path given as `stateDir`. */
    readonly path: string,
    /** Why it cannot be used ("is a file, not a directory", "permission denied"). */
    readonly reason: string,
    options?: {
      readonly cause?: unknown
      /** What to do, where it is more than giving another path (a directory others may write: chmod 700). */
      readonly fix?: string
    },
  ) {
    super(
      `stateDir ${shownPath(path)}: ${reason}; ${options?.fix ?? "give a directory the emulator can write to, or a path where it can make one"}`,
      options,
    )
    this.fix = options?.fix
  }
  /** What to do, where it is more than giving another path (undefined: give a directory the emulator can write to). */
  readonly fix: string | undefined
}

/**
 * Why the state directory (an existing one) may not hold private keys: another user owns it, or
 * another group or every user may write in it (a name planted there, or the directory's files
 * replaced, would take or give them the keys), with the fix, as the agent refuses its state_dir.
 * Undefined when it is this user's own and no one else may write it (its own group may: a user's
 * private group), or where there are no POSIX owners (Windows).
 */
const stateDirTrustRefusal = (
  dir: string,
  stat: Stats,
): { readonly reason: string; readonly fix: string } | undefined => {
  const uid = process.geteuid?.()
  if (uid === undefined) return undefined
  const ownDir = `give stateDir a directory of your own that no one else may write (mkdir -m 700 DIR), or a path where the emulator can make one (mode 0700)`
  if (stat.uid !== uid)
    return {
      reason: `is owned by uid ${stat.uid}, not by the emulator's user (uid ${uid})`,
      fix: `chown ${uid} ${shownPath(dir)} && chmod 700 ${shownPath(dir)} (its files are kept), or ${ownDir}`,
    }
  // Group-writable by the emulator's own group passes: a user's private group (mkdir under umask
  // 002, the default of Debian, Ubuntu and Fedora for such users) holds that user alone.
  const writableByOthers =
    (stat.mode & 0o002) !== 0 || ((stat.mode & 0o020) !== 0 && stat.gid !== process.getegid?.())
  if (writableByOthers) {
    const mode = (stat.mode & 0o7777).toString(8).padStart(4, "0")
    return {
      reason: `is writable by ${(stat.mode & 0o002) !== 0 ? "every user" : `group ${stat.gid}`} (mode ${mode})`,
      // A sticky directory every user may write (/tmp) is shared: chmod would take it from the others.
      fix:
        (stat.mode & 0o1000) !== 0
          ? `${ownDir}; do not chmod ${shownPath(dir)}, a directory others share`
          : `chmod 700 ${shownPath(dir)}`,
    }
  }
  return undefined
}

/**
 * Makes the state directory (0700) when it does not exist, refuses one that another user owns or
 * that group or other may write (stateDirTrustRefusal), and proves it is a directory the emulator
 * can write in (a file written and removed), so that a path that cannot hold the state is refused
 * at start instead of failing the first save. Throws a StateDirError.
 */
export const ensureStateDir = (dir: string): void => {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code
    // An existing path that is no directory: say so, rather than "file already exists".
    const reason = code === "EEXIST" && !isDirectory(dir) ? "is a file, not a directory" : fsErrorReason(e)
    throw new StateDirError(dir, reason, { cause: e })
  }
  if (!isDirectory(dir)) throw new StateDirError(dir, "is a file, not a directory")
  const refused = stateDirTrustRefusal(dir, statSync(dir))
  if (refused !== undefined) throw new StateDirError(dir, refused.reason, { fix: refused.fix })
  const probe = join(dir, `.kv-emulator-write-check-${process.pid}-${randomBytes(6).toString("hex")}`)
  try {
    closeSync(
      openSync(
        probe,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      ),
    )
  } catch (e) {
    throw new StateDirError(dir, `a file cannot be written in it (${fsErrorReason(e)})`, { cause: e })
  }
  try {
    unlinkSync(probe)
  } catch {}
}

const isDirectory = (path: string): boolean => {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

export const saveVault = (dir: string, store: VaultStore): void => {
  const data: VaultFile = {
    format: 1,
    vault: store.name,
    certificates: [...store.certificates.values()]
      .filter((e) => e.versions.length > 0)
      .map((e) => ({
        name: e.name,
        policy: e.policy,
        policyCreated: e.policyCreated,
        policyUpdated: e.policyUpdated,
        ...(e.deleted ? { deleted: e.deleted } : {}),
        versions: e.versions.map((v) => ({
          ...v,
          leaf: b64(v.leaf),
          certs: v.certs.map(b64),
          key: v.key ? b64(v.key) : null,
        })),
      })),
    secrets: [...store.secrets.values()],
  }
  const file = vaultFile(dir, store.name)
  // A name of its own, made anew (O_EXCL) and never through a link (O_NOFOLLOW): a name planted in
  // the directory is never written through (the keys would go to whoever planted it).
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`
  let fd: number | undefined
  try {
    fd = openSync(
      tmp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    )
    fchmodSync(fd, 0o600)
    const bytes = Buffer.from(JSON.stringify(data), "utf8")
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at)
    fsyncSync(fd)
    closeSync(fd)
    fd = undefined
    renameSync(tmp, file)
  } catch (e) {
    if (fd !== undefined)
      try {
        closeSync(fd)
      } catch {}
    // A part written (a full disk) holds private keys: not left behind. (Nothing of its own to
    // remove when the open failed: EEXIST is another's name, never removed.)
    if ((e as NodeJS.ErrnoException).code !== "EEXIST")
      try {
        unlinkSync(tmp)
      } catch {}
    throw e
  }
}

/** One vault's file in the state directory that cannot be loaded, and what to do about it. */
export interface DamagedVaultFile {
  /** The vault, as the `vaults` option names it. */
  readonly vault: string
  /** The file's path (`<stateDir>/vault-<vault>.json`, the vault's name in lower case, or the name an older emulator gave it). */
  readonly file: string
  /** What is wrong with it ("is cut short: its JSON ends before it is complete"), never its content. */
  readonly reason: string
  /** What to do: make it readable, or move it aside (the vault then starts empty), or restore it from a backup. */
  readonly fix: string
}

/**
 * A vault's file in the state directory cannot be loaded: unreadable, no file, not JSON, or JSON
 * that is not a vault's state as the emulator writes it. A StateDirError (`path` is the state
 * directory), so that a caller refusing a bad state directory at start refuses this one too; `files`
 * names each damaged file with its reason and fix. The files are left as they are, and neither the
 * reason nor the message quotes their content (they hold private keys).
 */
export class StateFileError extends StateDirError {
  override readonly name: string = "StateFileError"
  constructor(
    path: string,
    readonly files: ReadonlyArray<DamagedVaultFile>,
    options?: { readonly cause?: unknown },
  ) {
    super(path, files.map((f) => `${f.file} ${f.reason}`).join("; "), options)
    this.message = `stateDir ${path}: ${files.map((f) => `vault ${f.vault} cannot be loaded: ${f.file} ${f.reason}; ${f.fix}`).join("; ")}`
  }
}

/** A vault's contents as read from its file, checked: what the store takes. */
export interface LoadedVault {
  readonly certificates: ReadonlyArray<CertEntry>
  readonly secrets: ReadonlyArray<SecretEntry>
}

/** What is wrong with a part of the file: where (a path of fixed field names and indexes) and what. */
class Shape extends Error {
  constructor(
    readonly at: string,
    readonly what: string,
  ) {
    super(`${at} ${what}`)
  }
}

type Rec = Readonly<Record<string, unknown>>
const isRec = (v: unknown): v is Rec => typeof v === "object" && v !== null && !Array.isArray(v)
const bad = (at: string, what: string): never => {
  throw new Shape(at, what)
}
const field = (at: string, k: string) => (at === "" ? k : `${at}.${k}`)
const missingOr = (v: unknown, what: string) => (v === undefined ? "is missing" : what)
const rec = (v: unknown, at: string): Rec => (isRec(v) ? v : bad(at, missingOr(v, "is not an object")))
const str = (o: Rec, k: string, at: string): string => {
  const v = o[k]
  return typeof v === "string" ? v : bad(field(at, k), missingOr(v, "is not a string"))
}
const num = (o: Rec, k: string, at: string): number => {
  const v = o[k]
  return typeof v === "number" && Number.isFinite(v) ? v : bad(field(at, k), missingOr(v, "is not a number"))
}
const bool = (o: Rec, k: string, at: string): boolean => {
  const v = o[k]
  return typeof v === "boolean" ? v : bad(field(at, k), missingOr(v, "is not true or false"))
}
const list = (o: Rec, k: string, at: string): ReadonlyArray<unknown> => {
  const v = o[k]
  return Array.isArray(v) ? v : bad(field(at, k), missingOr(v, "is not a list"))
}
/** Tags: absent, or an object of strings (the tag names are the file's: not put in the message). */
const tagsOf = (o: Rec, at: string): Tags | undefined => {
  const v = o.tags
  if (v === undefined) return undefined
  const where = field(at, "tags")
  const tags = rec(v, where)
  if (!Object.values(tags).every((t) => typeof t === "string")) bad(where, "has a value that is not a string")
  return tags as Tags
}
/** Base64 DER of a certificate, parsed (a leaf that does not parse would fail its requests later). */
const certificate = (v: unknown, at: string): Uint8Array => {
  if (typeof v !== "string") return bad(at, missingOr(v, "is not a string"))
  const der = bytes(v)
  try {
    certOf(der)
  } catch {
    bad(at, "is not a certificate (base64 of its DER)")
  }
  return der
}
/** Base64 PKCS#8 DER of a private key, or null (none kept). */
const privateKey = (v: unknown, at: string): Uint8Array | undefined => {
  if (v === null) return undefined
  if (typeof v !== "string") return bad(at, missingOr(v, "is not a string or null"))
  const der = bytes(v)
  try {
    createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs8" })
  } catch {
    bad(at, "is not a private key (base64 of its PKCS#8 DER) or null")
  }
  return der
}

const keyFactsOf = (v: unknown, at: string): CertVersion["keyFacts"] => {
  const o = rec(v, at)
  const kty = o.kty
  if (kty !== "RSA" && kty !== "EC") return bad(field(at, "kty"), missingOr(kty, 'is not "RSA" or "EC"'))
  const keySize = o.keySize === undefined ? undefined : num(o, "keySize", at)
  const crv = o.crv === undefined ? undefined : str(o, "crv", at)
  return { kty, ...(keySize !== undefined ? { keySize } : {}), ...(crv !== undefined ? { crv } : {}) }
}

const contentTypeOf = (o: Rec, at: string): CertVersion["contentType"] => {
  const v = o.contentType
  return v === PEM_CONTENT_TYPE || v === PFX_CONTENT_TYPE
    ? v
    : bad(field(at, "contentType"), missingOr(v, `is not "${PEM_CONTENT_TYPE}" or "${PFX_CONTENT_TYPE}"`))
}

/** A certificate version, its fields checked in the order `saveVault` writes them. */
const certVersionOf = (v: unknown, at: string): CertVersion => {
  const o = rec(v, at)
  const version = str(o, "version", at)
  const leaf = certificate(o.leaf, field(at, "leaf"))
  const certs = list(o, "certs", at).map((c, i) => certificate(c, `${field(at, "certs")}[${i}]`))
  const key = privateKey(o.key, field(at, "key"))
  const keyFacts = keyFactsOf(o.keyFacts, field(at, "keyFacts"))
  const exportable = bool(o, "exportable", at)
  const contentType = contentTypeOf(o, at)
  const preserveCertOrder = bool(o, "preserveCertOrder", at)
  const x5t = str(o, "x5t", at)
  const nbf = num(o, "nbf", at)
  const exp = num(o, "exp", at)
  const created = num(o, "created", at)
  const enabled = bool(o, "enabled", at)
  const updated = num(o, "updated", at)
  const tags = tagsOf(o, at)
  const foreign = bool(o, "foreign", at)
  return {
    version,
    leaf,
    certs,
    key,
    keyFacts,
    exportable,
    contentType,
    preserveCertOrder,
    x5t,
    nbf,
    exp,
    created,
    enabled,
    updated,
    tags,
    foreign,
  }
}

const certEntryOf = (v: unknown, at: string): CertEntry => {
  const o = rec(v, at)
  const name = str(o, "name", at)
  let policy: PolicyWire
  try {
    // Checked as an import's policy is (the same reader); kept as written.
    parsePolicy(o.policy)
    policy = o.policy as PolicyWire
  } catch (e) {
    const part = /^Property (\S+) has invalid value/.exec(e instanceof Error ? e.message : "")?.[1]
    return bad(
      field(at, "policy"),
      missingOr(
        o.policy,
        `is not a certificate policy${part !== undefined && part !== "policy" ? ` (${part} has an invalid value)` : ""}`,
      ),
    )
  }
  const deleted =
    o.deleted === undefined
      ? undefined
      : (() => {
          const d = rec(o.deleted, field(at, "deleted"))
          return {
            deletedDate: num(d, "deletedDate", field(at, "deleted")),
            scheduledPurgeDate: num(d, "scheduledPurgeDate", field(at, "deleted")),
          }
        })()
  const versions = list(o, "versions", at).map((x, i) => certVersionOf(x, `${field(at, "versions")}[${i}]`))
  // A certificate is served from its latest version: one without any is never written.
  if (versions.length === 0) bad(field(at, "versions"), "is empty")
  return {
    name,
    policy,
    policyCreated: num(o, "policyCreated", at),
    policyUpdated: num(o, "policyUpdated", at),
    ...(deleted !== undefined ? { deleted } : {}),
    versions,
  }
}

const secretVersionOf = (v: unknown, at: string): SecretVersion => {
  const o = rec(v, at)
  return {
    version: str(o, "version", at),
    value: str(o, "value", at),
    contentType: o.contentType === undefined ? undefined : str(o, "contentType", at),
    created: num(o, "created", at),
    enabled: bool(o, "enabled", at),
    updated: num(o, "updated", at),
    tags: tagsOf(o, at),
  }
}

const secretEntryOf = (v: unknown, at: string): SecretEntry => {
  const o = rec(v, at)
  return {
    name: str(o, "name", at),
    versions: list(o, "versions", at).map((x, i) => secretVersionOf(x, `${field(at, "versions")}[${i}]`)),
  }
}

/** The vault's contents from the parsed JSON of its file; a Shape names the first part that is wrong. */
const vaultOf = (data: unknown): LoadedVault => {
  if (!isRec(data)) return bad("", "")
  if (data.format !== 1)
    bad(
      "format",
      typeof data.format === "number"
        ? `is ${data.format}: this emulator reads format 1 only`
        : missingOr(data.format, "is not 1"),
    )
  str(data, "vault", "")
  return {
    certificates: list(data, "certificates", "").map((e, i) => certEntryOf(e, `certificates[${i}]`)),
    secrets: list(data, "secrets", "").map((e, i) => secretEntryOf(e, `secrets[${i}]`)),
  }
}

/** A JSON.parse failure in words, from its position only: its own message quotes the text. */
const jsonReason = (error: unknown, text: string): string => {
  const message = error instanceof Error ? error.message : ""
  const at = /at position (\d+)/.exec(message)?.[1]
  const position = at === undefined ? undefined : Number(at)
  const end = text.trimEnd().length
  if (/end of JSON input|Unterminated/.test(message) || (position !== undefined && position >= end))
    return "is cut short: its JSON ends before it is complete (an interrupted copy or a full disk?)"
  return `is not JSON${position !== undefined ? ` (it cannot be read from character ${position + 1} on)` : ""}`
}

/** The fix for a file that cannot be loaded: nothing is lost unless the user deletes it. */
const movedAside = (file: string, vault: string) =>
  `move it aside (rename it to ${basename(file)}.damaged, say) or delete it, and vault ${vault} starts empty: the certificates and secrets it held are not served (deploy them again; a deleted file's are gone); or restore it from a backup. The emulator has not changed it`

/**
 * Reads and checks a vault's file: undefined when there is none, its contents when it is a vault's
 * state as `saveVault` writes it, or what is wrong with it (the file is not changed).
 */
const readVaultFile = (
  dir: string,
  vault: string,
): (LoadedVault & { readonly renameFrom?: string }) | DamagedVaultFile | undefined => {
  const own = vaultFile(dir, vault)
  const others = otherCaseFiles(dir, vault)
  if (others.length > 1 || (others.length === 1 && statOf(own) !== undefined)) {
    const all = [...(statOf(own) === undefined ? [] : [own]), ...others]
    return {
      vault,
      file: all.join(", "),
      reason: `are ${all.length} files of one vault (a vault's name has no letter case), so which to serve is not known`,
      fix: `keep the one to serve, named ${basename(own)}, and move the others aside (rename them to NAME.aside, say); the emulator has not changed them`,
    }
  }
  // A file an older emulator wrote under the name as given (vault-KV-Demo.json) is read; once the
  // start has worked, renameVaultFiles renames it to the lower-case name the emulator saves to, so
  // that no second file starts.
  const file = others[0] ?? own
  const loaded = readVaultFileAt(file, vault)
  if (file === own || loaded === undefined || "reason" in loaded) return loaded
  return { ...loaded, renameFrom: file }
}

/** Renames a vault's file an older emulator named as the vault was given to vaultFile's name. */
const renamedToLowerCase = (dir: string, vault: string, from: string): DamagedVaultFile | undefined => {
  const own = vaultFile(dir, vault)
  try {
    renameSync(from, own)
    return undefined
  } catch (e) {
    return {
      vault,
      file: from,
      reason: `cannot be renamed to ${basename(own)}, the lower-case name the emulator saves vault ${vault} to (${fsErrorReason(e)})`,
      fix: `rename it to ${basename(own)} yourself (a vault's name has no letter case); the emulator has not changed it`,
    }
  }
}

/** readVaultFile of one file. */
const readVaultFileAt = (file: string, vault: string): LoadedVault | DamagedVaultFile | undefined => {
  const damaged = (reason: string, fix = movedAside(file, vault)): DamagedVaultFile => ({
    vault,
    file,
    reason,
    fix,
  })
  let text: string
  try {
    const stat = statSync(file)
    if (stat.isDirectory())
      return damaged(
        "is a directory, not a file",
        `move the directory aside (rename it) or remove it, and vault ${vault} starts empty; or put the vault's file from a backup in its place. The emulator has not changed it`,
      )
    // A FIFO would block the start for ever; a device is no saved state.
    if (!stat.isFile()) return damaged("is not a regular file (a FIFO, a socket or a device)")
    text = readFileSync(file, "utf8")
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code
    if (code === "ENOENT") return undefined
    return damaged(
      `cannot be read (${fsErrorReason(e)})`,
      code === "EACCES" || code === "EPERM"
        ? `make it readable and writable by the user the emulator runs as (chown it to that user; mode 0600), or ${movedAside(file, vault)}`
        : movedAside(file, vault),
    )
  }
  if (text.trim() === "") return damaged("is empty (an interrupted copy or a full disk?)")
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (e) {
    return damaged(jsonReason(e, text))
  }
  try {
    return vaultOf(data)
  } catch (e) {
    if (!(e instanceof Shape)) throw e
    return damaged(
      e.at === ""
        ? "holds JSON that is not a vault's state (not an object)"
        : `holds JSON that is not a vault's state as this emulator writes it: ${e.at} ${e.what}`,
    )
  }
}

/** The vaults' files as read, and the renames still to make once the start has worked. */
export interface ReadVaultFiles {
  readonly loaded: ReadonlyMap<string, LoadedVault>
  /**
   * Files an older emulator named as the vault was given (`vault-KV-Demo.json`), each to be renamed
   * to the lower-case name the emulator saves to (renameVaultFiles), once nothing can refuse the
   * start any more: a start refused (another vault's damaged file, a port in use) changes none.
   */
  readonly renames: ReadonlyArray<readonly [vault: string, from: string]>
}

/**
 * Reads and checks the files of these vaults in the state directory, before anything is opened:
 * the contents of each that has one. Throws a StateFileError naming every file that cannot be
 * loaded; the files are left as they are.
 */
export const readVaultFiles = (dir: string, vaults: ReadonlyArray<string>): ReadVaultFiles => {
  const loaded = new Map<string, LoadedVault>()
  const damaged: DamagedVaultFile[] = []
  const renames: Array<readonly [string, string]> = []
  for (const vault of vaults) {
    const read = readVaultFile(dir, vault)
    if (read === undefined) continue
    if ("reason" in read) damaged.push(read)
    else {
      const { renameFrom, ...contents } = read
      loaded.set(vault, contents)
      if (renameFrom !== undefined) renames.push([vault, renameFrom])
    }
  }
  if (damaged.length > 0) throw new StateFileError(dir, damaged)
  return { loaded, renames }
}

/**
 * Makes readVaultFiles' renames, once the start has worked. Throws a StateFileError naming each
 * file that could not be renamed (left as it was).
 */
export const renameVaultFiles = (dir: string, renames: ReadVaultFiles["renames"]): void => {
  const refused = renames.flatMap(([vault, from]) => renamedToLowerCase(dir, vault, from) ?? [])
  if (refused.length > 0) throw new StateFileError(dir, refused)
}

/** Puts a vault's contents, as `readVaultFiles` read them, in its store. */
export const loadVault = (store: VaultStore, vault: LoadedVault): void => {
  for (const e of vault.certificates) store.certificates.set(e.name.toLowerCase(), e)
  for (const s of vault.secrets)
    store.secrets.set(s.name.toLowerCase(), { name: s.name, versions: [...s.versions] })
}
