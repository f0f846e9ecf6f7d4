/**
 * Optional state directory: each vault's certificates and secrets as JSON
 * (0600), so a demo survives a restart. It holds imported private keys, so the
 * emulator warns on stderr when it is used. The emulator's own keys (CA, token
 * signing) are never written.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs"
import { join } from "node:path"
import type { PolicyWire } from "./policy.js"
import type { CertEntry, CertVersion, SecretEntry, VaultStore } from "./store.js"

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

export const vaultFile = (dir: string, vault: string): string => join(dir, `vault-${vault}.json`)

/** A file system error in words ("not a directory", "permission denied"), without the stack or syscall. */
export const fsReason = (error: unknown): string => {
  const code = (error as { code?: unknown } | null)?.code
  switch (code) {
    case "ENOENT":
      return "no such file or directory"
    case "ENOTDIR":
      return "a part of the path is a file, not a directory"
    case "EEXIST":
      return "a file is in the way"
    case "EACCES":
    case "EPERM":
      return "permission denied"
    case "EROFS":
      return "read-only file system"
    case "ENOSPC":
      return "no space left on device"
    case "EDQUOT":
      return "disk quota exceeded"
    case "EISDIR":
      return "is a directory"
    default:
      return error instanceof Error ? error.message : String(error)
  }
}

/** The `stateDir` option names a path that is no directory the emulator can write in. */
export class StateDirError extends Error {
  override readonly name = "StateDirError"
  constructor(
    /** The path given as `stateDir`. */
    readonly path: string,
    /** Why it cannot be used ("is a file, not a directory", "permission denied"). */
    readonly reason: string,
    options?: { readonly cause?: unknown },
  ) {
    super(
      `stateDir ${path}: ${reason}; give a directory the emulator can write to, or a path where it can make one`,
      options,
    )
  }
}

/**
 * Makes the state directory (0700) when it does not exist, and proves it is a directory the
 * emulator can write in (a file written and removed), so that a path that cannot hold the state
 * is refused at start instead of failing the first save. Throws a StateDirError.
 */
export const ensureStateDir = (dir: string): void => {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code
    // An existing path that is no directory: say so, rather than "file already exists".
    const reason = code === "EEXIST" && !isDirectory(dir) ? "is a file, not a directory" : fsReason(e)
    throw new StateDirError(dir, reason, { cause: e })
  }
  if (!isDirectory(dir)) throw new StateDirError(dir, "is a file, not a directory")
  const probe = join(dir, `.kv-emulator-write-check-${process.pid}`)
  try {
    writeFileSync(probe, "", { mode: 0o600 })
  } catch (e) {
    throw new StateDirError(dir, `a file cannot be written in it (${fsReason(e)})`, { cause: e })
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
  const tmp = `${file}.tmp`
  try {
    writeFileSync(tmp, JSON.stringify(data), { mode: 0o600 })
    chmodSync(tmp, 0o600)
    renameSync(tmp, file)
  } catch (e) {
    // A part written (a full disk) holds private keys: not left behind.
    try {
      unlinkSync(tmp)
    } catch {}
    throw e
  }
}

export const loadVault = (dir: string, store: VaultStore): boolean => {
  const file = vaultFile(dir, store.name)
  if (!existsSync(file)) return false
  const data = JSON.parse(readFileSync(file, "utf8")) as VaultFile
  if (data.format !== 1) throw new Error(`${file}: unknown state format`)
  for (const e of data.certificates) {
    const entry: CertEntry = {
      name: e.name,
      policy: e.policy,
      policyCreated: e.policyCreated,
      policyUpdated: e.policyUpdated,
      ...(e.deleted ? { deleted: e.deleted } : {}),
      versions: e.versions.map((v) => ({
        ...v,
        leaf: bytes(v.leaf),
        certs: v.certs.map(bytes),
        key: v.key === null ? undefined : bytes(v.key),
      })),
    }
    store.certificates.set(e.name.toLowerCase(), entry)
  }
  for (const s of data.secrets)
    store.secrets.set(s.name.toLowerCase(), { name: s.name, versions: [...s.versions] })
  return true
}
