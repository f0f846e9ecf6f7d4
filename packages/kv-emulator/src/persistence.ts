/**
 * Optional state directory: each vault's certificates and secrets as JSON
 * (0600), so a demo survives a restart. It holds imported private keys, so the
 * emulator warns on stderr when it is used. The emulator's own keys (CA, token
 * signing) are never written.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
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

export const ensureStateDir = (dir: string): void => {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 })
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
  writeFileSync(tmp, JSON.stringify(data), { mode: 0o600 })
  chmodSync(tmp, 0o600)
  renameSync(tmp, file)
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
