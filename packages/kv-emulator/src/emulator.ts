/**
 * Starting and stopping the emulator: the TLS identity, one HTTPS server per
 * vault, one for Entra ID (and the admin API), one plain-HTTP server for
 * managed identity, and the handles tests use (faults, RBAC, request log, state).
 */

import { randomBytes, randomUUID } from "node:crypto"
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import { availableParallelism, tmpdir } from "node:os"
import { join } from "node:path"
import { fsErrorReason, shownPath } from "@kvdeploy/core"
import type { PfxEncoding } from "./codec.js"
import { AZURE_AD_TOKEN_EXCHANGE, Directory, type Permission, type Principal } from "./directory.js"
import { entraHandler, managedIdentityHandler } from "./entra.js"
import {
  type ActiveFault,
  FaultController,
  type FaultRule,
  type OperationName,
  validateRule,
} from "./faults.js"
import { isRecord, parseJson, readBody, sendJson } from "./http.js"
import type { ImportContentTypeMode } from "./material.js"
import {
  ensureStateDir,
  type LoadedVault,
  loadVault,
  readVaultFiles,
  renameVaultFiles,
  saveVault,
  vaultFile,
} from "./persistence.js"
import { PfxPool, pfxWorkerScript, runningFromSource } from "./pfxPool.js"
import { createTlsIdentity } from "./pki.js"
import { RequestLog, type RequestLogEntry, type RequestLogFilter } from "./requestLog.js"
import { type CertVersion, type Tags, VaultStore } from "./store.js"
import { KEY_VAULT_LIMITS, type ThrottleLimits, VaultThrottle } from "./throttle.js"
import { VaultHandler } from "./vault.js"

export interface VaultOptions {
  readonly name: string
  /** Port to listen on (0 or omitted: any free port). */
  readonly port?: number
  /** Tenant the vault belongs to (default: the emulator's tenant). */
  readonly tenantId?: string
  /** Throttling for this vault; `false` turns it off. */
  readonly throttling?: Partial<ThrottleLimits> | false
}

export interface EmulatorOptions {
  /** Vault names (or options). Default: one vault named "kvdeploy-demo". */
  readonly vaults?: ReadonlyArray<string | VaultOptions>
  /** Host name or IP clients use in URLs; also put in the TLS certificate. Default 127.0.0.1. */
  readonly host?: string
  /** Address to bind. Default: `host` (loopback). */
  readonly bind?: string
  readonly tenantId?: string
  /** The domain name of the emulator's tenant, which Entra ID takes for its id. Default kvdeploy-emulator.onmicrosoft.com. */
  readonly tenantDomain?: string
  /**
   * Tenants besides the emulator's own (their home tenant) in which its applications, the client
   * secret application and the workload identity, are provisioned as multi-tenant applications
   * with a service principal: Entra ID gives them tokens of those tenants. Default none: a token of
   * any other tenant (a vault's `tenantId`) is refused with AADSTS700016, as Entra ID refuses an
   * application that has no service principal in the tenant asked. `tenancy.provision` adds one
   * while the emulator runs. Managed identities get tokens of their own tenant only, whatever this says.
   */
  readonly appTenants?: ReadonlyArray<string>
  readonly entraPort?: number
  readonly managedIdentityPort?: number
  /** Throttling for every vault (per-vault options win). Default: Key Vault's limits; `false` turns it off. */
  readonly throttling?: Partial<ThrottleLimits> | false
  /** Soft-delete retention in days (Key Vault default 90). */
  readonly recoverableDays?: number
  /**
   * Milliseconds a certificate's delete or recovery takes to show (default 0: at once). Key Vault
   * takes about 10 s in the SDK's recordings: meanwhile a deleted certificate is neither served nor
   * among the deleted ones (an import or create answers 409 `ObjectIsBeingDeleted`), and a
   * recovered one is not served yet (the SDK's pollers wait through both).
   */
  readonly propagationMs?: number
  /**
   * Lifetime in seconds of the access tokens Entra ID and the managed identity endpoints issue
   * (default 3599, as Entra's). A short one lets a test cross token expiries in seconds.
   */
  readonly tokenLifetimeSeconds?: number
  /**
   * Seconds past its `exp` (and before its `nbf`) a vault still accepts a token (default 300, Key
   * Vault's clock skew); 0 refuses a token the moment it expires.
   */
  readonly tokenClockSkewSeconds?: number
  /**
   * Lifetime in seconds of the federated token in the workload identity's token file (default
   * 86400). The emulator writes a new one into the file at half that lifetime (at least hourly), as
   * the kubelet renews a projected service account token, so the file stays valid for a session of
   * any length.
   */
  readonly federatedTokenLifetimeSeconds?: number
  /** The resource in the challenge and the token audience. Default https://vault.azure.net. */
  readonly keyvaultResource?: string
  /** PKCS#12 profile of backing secrets. Default "legacy" (3DES / SHA-1 MAC, readable everywhere). */
  readonly secretEncoding?: PfxEncoding
  /**
   * How an import's format is decided. `"detect"` (default, as /work/shared/KEYVAULT.md asks): PEM
   * text is recognised by its content (`-----BEGIN`) whatever the policy says, and a policy
   * without `secret_props.contentType` is taken. `"required"`, as Key Vault answers (it infers
   * nothing): the value is read as the policy's `secret_props.contentType` says (no policy:
   * base64 PKCS#12), so PEM text sent without `application/x-pem-file` is refused as unreadable
   * PKCS#12, and a policy without `secret_props.contentType` is 400 BadParameter "Property policy
   * has invalid value" (Azure/azure-sdk-for-go#21780, Azure/azure-sdk-for-net#11669 and #13043,
   * Azure/azure-sdk-for-js#12309). Use "required" to prove a client states the content type on
   * every import.
   */
  readonly importContentType?: ImportContentTypeMode
  /**
   * Reuse the decoded material when a PFX import re-sends bytes (and password) seen
   * before (a retry, a rollback): skips the PKCS#12 key derivations. Default true.
   */
  readonly pfxDecodeCache?: boolean
  /**
   * Worker threads that read import values (PKCS#12 decoding, key/certificate
   * match, key usage) off the event loop; 0 reads them in the emulator's own
   * thread. Started on the first import, ended by `stop()`. Default: 2 (1 on a
   * single-core machine) when running the built package, 0 when running from its
   * TypeScript sources (vitest), where the workers would run the build instead,
   * and 0 when the worker script is not next to the emulator's modules (bundled
   * into another program); asked for explicitly there, it warns and reads in-thread.
   */
  readonly pfxWorkers?: number
  /**
   * Persist vault contents here (files 0600; they hold private keys; a warning goes to `warn`).
   * Made when missing; a path that is no directory, or one the emulator cannot write in, is
   * refused at start (a `StateDirError`), and so is a vault's file there (`vault-<name>.json`)
   * that cannot be loaded: unreadable, no file, not JSON or cut short, or not a vault's state as
   * the emulator writes it (a `StateFileError`, a StateDirError naming each such file, what is
   * wrong and the fix; the file is left as it is). A save that fails later is warned about once
   * (the emulator goes on serving from memory) and tried again at the next change.
   */
  readonly stateDir?: string
  /** Where to write the public files (CA certificate, federated token). Default: a fresh temp dir removed at stop. */
  readonly workDir?: string
  /** Fixed secrets, for a stable demo configuration. Random when omitted. */
  readonly clientSecret?: string
  readonly identityHeader?: string
  readonly adminKey?: string
  /** Where warnings go. Default: process.stderr. */
  readonly warn?: (line: string) => void
}

export interface EmulatorVault {
  readonly name: string
  /** https://127.0.0.1:PORT — pass to CertificateClient / SecretClient. */
  readonly url: string
  readonly port: number
  readonly tenantId: string
}

export interface ClientSecretIdentity {
  readonly tenantId: string
  readonly clientId: string
  readonly clientSecret: string
  readonly objectId: string
}
export interface WorkloadIdentity {
  readonly tenantId: string
  readonly clientId: string
  readonly objectId: string
  /**
   * File (0600) holding a federated token (AZURE_FEDERATED_TOKEN_FILE), renewed at half the token's
   * lifetime (`federatedTokenLifetimeSeconds`), replaced whole each time.
   */
  readonly tokenFile: string
  /** The issuer and subject the federated credential trusts. */
  readonly issuer: string
  readonly subject: string
}
export interface ManagedIdentities {
  readonly systemAssigned: { readonly clientId: string; readonly objectId: string }
  readonly userAssigned: { readonly clientId: string; readonly objectId: string }
  /** App Service style: IDENTITY_ENDPOINT (http) and IDENTITY_HEADER. */
  readonly appServiceEndpoint: string
  readonly identityHeader: string
  /** IMDS style: AZURE_POD_IDENTITY_AUTHORITY_HOST (http); tokens at /metadata/identity/oauth2/token. */
  readonly imdsHost: string
}

export type AuthMode =
  | "clientSecret"
  | "workloadIdentity"
  | "managedIdentityAppService"
  | "managedIdentityImds"
  | "managedIdentityUserAssigned"

export interface CustomCloud {
  readonly vault_dns_suffix: string
  readonly authority_host: string
  readonly keyvault_resource: string
}

export interface RbacControl {
  /** Replaces a principal's permissions (permission names like "secrets/get" and/or built-in role names). */
  readonly set: (clientId: string, grants: ReadonlyArray<Permission | string>) => void
  /** Removes permissions from a principal (e.g. `deny(id, ["secrets/get"])`). */
  readonly deny: (clientId: string, permissions: ReadonlyArray<Permission>) => void
  readonly allow: (clientId: string, permissions: ReadonlyArray<Permission>) => void
  readonly permissionsOf: (clientId: string) => ReadonlyArray<Permission>
  /**
   * Scopes a principal's role assignment to these objects, as assignments at their resource paths
   * (`/…/vaults/VAULT/certificates/NAME`, `…/secrets/NAME`, `…/keys/NAME`) are, in every vault:
   * each scope is `"certificates/NAME"`, `"secrets/NAME"` or `"keys/NAME"`. A request about any
   * other object gets 403 — the certificate's backing secret (`GET /secrets/NAME/VERSION`) and key
   * included unless their own scopes are given — and so does a request about the vault (the
   * certificate list, a deleted certificate: read, recover, purge, list). A bare name, an unknown
   * type or a name Key Vault would refuse throws, naming the form (nothing is changed then).
   */
  readonly scopeTo: (clientId: string, scopes: ReadonlyArray<string>) => void
  /** The principal's object scopes (`type/name`, lower case), or undefined when it is assigned at the vault. */
  readonly scopesOf: (clientId: string) => ReadonlyArray<string> | undefined
  /** Every principal back to all permissions, vault-wide. */
  readonly reset: () => void
}

/**
 * Where the emulator's applications have a service principal: their home tenant (the emulator's),
 * and the tenants a multi-tenant application is provisioned in. Entra ID's token endpoint gives an
 * application tokens of those tenants only; any other answers AADSTS700016.
 */
export interface TenancyControl {
  /** Provisions the application `clientId` in `tenantId` (its service principal there). Throws for an unknown client id. */
  readonly provision: (clientId: string, tenantId: string) => void
  /** Removes the application's service principal from `tenantId` (not its home tenant). */
  readonly withdraw: (clientId: string, tenantId: string) => void
  /** The tenants the principal has a service principal in, its home tenant first (lower case). */
  readonly tenantsOf: (clientId: string) => ReadonlyArray<string>
}

export interface FaultControl {
  readonly add: (rule: FaultRule) => string
  /** Fails `operation` `times` times with `status`, then lets it succeed. */
  readonly failTimes: (
    operation: OperationName,
    times: number,
    status: number,
    options?: { vault?: string; code?: string; message?: string },
  ) => string
  readonly remove: (id: string) => boolean
  /** Lets the requests a `hold` fault holds go on (and later ones pass); false for an unknown id. */
  readonly release: (id: string) => boolean
  readonly clear: () => void
  readonly list: () => ReadonlyArray<ActiveFault>
}

export interface RequestLogControl {
  readonly entries: (filter?: RequestLogFilter) => ReadonlyArray<RequestLogEntry>
  readonly count: (filter?: RequestLogFilter) => number
  /** Sequence number of the latest entry: pass as `since` to count only later requests. */
  readonly mark: () => number
  readonly clear: () => void
  /** Vault requests arrived and not yet answered (a fault's delay or hold keeps one in flight). */
  readonly inFlight: () => number
  /**
   * Resolves once no vault request is in flight, so every one sent so far is in the log. A request
   * is logged when answered: one whose client gave up first (a timeout under a delay fault) is
   * logged after the client's call ends. Await this before checking what a call sent.
   */
  readonly idle: () => Promise<void>
}

export interface CertificateVersionState {
  readonly version: string
  readonly x5t: string
  readonly enabled: boolean
  readonly created: number
  readonly tags: Tags | undefined
  readonly contentType: string
  readonly exportable: boolean
  readonly foreign: boolean
  /** DER of every certificate in the order the secret serves them. */
  readonly certificates: ReadonlyArray<Uint8Array>
}

export interface StateControl {
  /**
   * Versions of a certificate in creation order (undefined when it does not exist or is deleted;
   * with `includeDeleted`, a deleted certificate's versions too, which a recovery brings back,
   * and undefined only once it is purged or never existed).
   */
  readonly versions: (
    vault: string,
    name: string,
    options?: { readonly includeDeleted?: boolean },
  ) => ReadonlyArray<CertificateVersionState> | undefined
  readonly isDeleted: (vault: string, name: string) => boolean
  /** Policy as stored (wire format). */
  readonly policy: (vault: string, name: string) => unknown
  /** Another writer imports a fresh self-signed version now. */
  readonly foreignImport: (vault: string, name: string, tags?: Tags) => Promise<CertificateVersionState>
  /** Empties a vault (or every vault). */
  readonly reset: (vault?: string) => void
}

export interface Emulator {
  readonly vaults: ReadonlyArray<EmulatorVault>
  readonly vault: (name: string) => EmulatorVault
  /** The CA certificate (PEM, public): trust it with `tlsOptions: { ca }` or NODE_EXTRA_CA_CERTS. */
  readonly caPem: string
  /** Path of a file holding `caPem`. */
  readonly caFile: string
  readonly tenantId: string
  /** The tenant's domain name: Entra ID takes it in place of `tenantId` (Key Vault's challenges name the id). */
  readonly tenantDomain: string
  /** https://127.0.0.1:PORT — `authorityHost` for @azure/identity credentials. */
  readonly authorityHost: string
  readonly keyvaultResource: string
  readonly clientSecret: ClientSecretIdentity
  readonly workloadIdentity: WorkloadIdentity
  readonly managedIdentity: ManagedIdentities
  /** Environment variables per auth mode (each includes NODE_EXTRA_CA_CERTS). */
  readonly env: Readonly<Record<AuthMode, Readonly<Record<string, string>>>>
  readonly cloud: CustomCloud
  /** The kvdeploy target configuration that selects this emulator. */
  readonly targetConfig: (vault: string, certificateName: string, mode?: AuthMode) => Record<string, unknown>
  /** Admin API: header `x-kv-emulator-admin-key: <adminKey>` on `/_emulator/*` of any HTTPS port. */
  readonly adminKey: string
  readonly adminUrl: string
  readonly faults: FaultControl
  readonly rbac: RbacControl
  /** Which tenants the applications are provisioned in (see `appTenants`). */
  readonly tenancy: TenancyControl
  readonly requests: RequestLogControl
  readonly state: StateControl
  /** Signs an access token for a principal (e.g. an expired one, or one for another tenant). */
  readonly issueToken: (
    clientId: string,
    options?: { resource?: string; tenantId?: string; lifetimeSeconds?: number; issuedAt?: number },
  ) => string
  /**
   * A federated token for the workload identity (what AZURE_FEDERATED_TOKEN_FILE holds): valid for
   * `lifetimeSeconds` (3600) from `issuedAt` (epoch seconds; now), e.g. an expired one.
   */
  readonly issueFederatedToken: (
    subject?: string,
    options?: { readonly lifetimeSeconds?: number; readonly issuedAt?: number },
  ) => string
  /**
   * Moves the clock Entra ID, the managed identity endpoints and the vaults issue and judge access
   * tokens by to `seconds` ahead of this host's (negative: behind; 0, the default, is this host's).
   * Ahead stands for a client whose clock was set back after it got its tokens: a token it still
   * holds as valid has expired for the vault, and a new one is valid for its full lifetime.
   */
  readonly setTokenClockOffset: (seconds: number) => void
  readonly stop: () => Promise<void>
}

const listen = (server: http.Server | https.Server, port: number, host: string): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(port, host, () => {
      server.off("error", reject)
      resolve((server.address() as AddressInfo).port)
    })
  })

const urlHost = (host: string) => (host.includes(":") ? `[${host}]` : host)

const tune = (server: http.Server | https.Server) => {
  server.keepAliveTimeout = 65_000
  server.headersTimeout = 66_000
  server.requestTimeout = 120_000
}

export const start = async (options: EmulatorOptions = {}): Promise<Emulator> => {
  const names = (options.vaults ?? ["kvdeploy-demo"]).map((v) =>
    (typeof v === "string" ? v : v.name).toLowerCase(),
  )
  const dup = names.find((n, i) => names.indexOf(n) !== i)
  if (dup !== undefined) throw new Error(`duplicate vault name ${dup}`)
  if (
    options.propagationMs !== undefined &&
    !(Number.isFinite(options.propagationMs) && options.propagationMs >= 0)
  )
    throw new Error(`propagationMs must be a number of milliseconds, 0 or more; got ${options.propagationMs}`)
  const federatedLifetime = options.federatedTokenLifetimeSeconds
  if (federatedLifetime !== undefined && !(Number.isInteger(federatedLifetime) && federatedLifetime > 0))
    throw new Error(
      `federatedTokenLifetimeSeconds must be a whole number of seconds, 1 or more; got ${federatedLifetime}`,
    )
  // A state directory that cannot hold the state is refused before anything is opened or made
  // (it used to pass when it was a file, and the first save then crashed the process).
  const contentTypeMode = options.importContentType
  if (contentTypeMode !== undefined && contentTypeMode !== "detect" && contentTypeMode !== "required")
    throw new Error(
      `importContentType must be "detect" (PEM recognised by its content, the default) or "required" (Key Vault's rule: the policy's secret_props.contentType says the format); got ${JSON.stringify(contentTypeMode)}`,
    )
  if (options.stateDir !== undefined) ensureStateDir(options.stateDir)
  // So is a vault's file there that cannot be loaded (cut short, not JSON, not a vault's state,
  // unreadable): it used to fail the start with JSON.parse's SyntaxError, which quotes the file's
  // text, or pass and fail requests later. The file is left as it is.
  const read =
    options.stateDir !== undefined
      ? readVaultFiles(
          options.stateDir,
          (options.vaults ?? ["kvdeploy-demo"]).map((v) => (typeof v === "string" ? v : v.name)),
        )
      : { loaded: new Map<string, LoadedVault>(), renames: [] }
  const saved = read.loaded
  const opened: Array<http.Server | https.Server> = []
  // Its own work directory (the CA, the federated token) is made here, so that a start that fails
  // (a port in use) removes it as it closes the servers already opened, instead of leaving it behind.
  const ownWorkDir = options.workDir === undefined ? mkdtempSync(join(tmpdir(), "kv-emulator-")) : undefined
  try {
    const emulator = await startServers(options, opened, ownWorkDir, saved)
    // An older emulator's mixed-case vault file is renamed only now: a start refused before (a port
    // in use) changes none. One that cannot be renamed stops the emulator, as a damaged file would.
    if (options.stateDir !== undefined && read.renames.length > 0) {
      const stateDir = options.stateDir
      try {
        renameVaultFiles(stateDir, read.renames)
      } catch (e) {
        await emulator.stop()
        throw e
      }
    }
    return emulator
  } catch (e) {
    for (const s of opened) {
      s.close()
      s.closeAllConnections()
    }
    if (ownWorkDir !== undefined) rmSync(ownWorkDir, { recursive: true, force: true })
    throw e
  }
}

const startServers = async (
  options: EmulatorOptions,
  servers: Array<http.Server | https.Server>,
  /** The work directory `start` made (removed on stop), or undefined when the caller gave one. */
  madeWorkDir: string | undefined,
  /** Each vault's contents read from the state directory, by the name `vaults` gives it. */
  saved: ReadonlyMap<string, LoadedVault>,
): Promise<Emulator> => {
  const host = options.host ?? "127.0.0.1"
  const bind = options.bind ?? host
  const warn = options.warn ?? ((line: string) => process.stderr.write(`${line}\n`))
  const tenantId = options.tenantId ?? randomUUID()
  const keyvaultResource = options.keyvaultResource ?? "https://vault.azure.net"
  const recoverableDays = options.recoverableDays ?? 90
  const adminKey = options.adminKey ?? randomBytes(18).toString("base64url")
  const identityHeader = options.identityHeader ?? randomBytes(18).toString("base64url")
  const ownWorkDir = madeWorkDir !== undefined
  const workDir = madeWorkDir ?? options.workDir ?? ""
  const tls = await createTlsIdentity(host === "127.0.0.1" || host === "localhost" ? [] : [host])
  const pool = materialPool(options, warn)
  const log = new RequestLog()
  const faults = new FaultController()
  const stores = new Map<string, VaultStore>()
  const handlers = new Map<string, VaultHandler>()
  const tlsOptions = { key: tls.keyPem, cert: tls.certPem }

  // Entra first: its URL goes into every vault's challenge.
  const entraServer = https.createServer(tlsOptions)
  tune(entraServer)
  servers.push(entraServer)
  const entraPort = await listen(entraServer, options.entraPort ?? 0, bind)
  const authorityHost = `https://${urlHost(host)}:${entraPort}`
  const directory = new Directory(
    tenantId,
    `${authorityHost}/federation`,
    options.tokenLifetimeSeconds ?? 3599,
  )
  const clientSecret = options.clientSecret ?? randomBytes(24).toString("base64url")
  const app = directory.addPrincipal({ kind: "application", displayName: "kvdeploy-app", clientSecret })
  const subject = "system:serviceaccount:kvdeploy:kvdeploy-agent"
  const staticAssertion = `static-federated-token-${randomBytes(12).toString("hex")}`
  const workload = directory.addPrincipal({
    kind: "workload",
    displayName: "kvdeploy-workload",
    federated: { issuer: directory.federationIssuer, subject, audience: AZURE_AD_TOKEN_EXCHANGE },
    staticAssertion,
  })
  for (const tenant of options.appTenants ?? []) {
    directory.provision(app.clientId, tenant)
    directory.provision(workload.clientId, tenant)
  }
  const system = directory.addPrincipal({ kind: "systemAssigned", displayName: "kvdeploy-host" })
  const user = directory.addPrincipal({ kind: "userAssigned", displayName: "kvdeploy-agent-identity" })

  const caFile = join(workDir, "kv-emulator-ca.pem")
  writeFileSync(caFile, tls.caPem, { mode: 0o644 })
  const tokenFile = join(workDir, "federated-token")
  const federatedLifetime = options.federatedTokenLifetimeSeconds ?? 24 * 3600
  /** Whether the last renewal of the token file failed: warned once, until one works again. */
  let tokenFileStale = false
  /**
   * A new federated token into the token file: written beside it (0600) and renamed over it, so a
   * reader never sees half a token. The token itself is never logged.
   */
  const writeTokenFile = () => {
    const next = `${tokenFile}.${randomBytes(6).toString("hex")}.tmp`
    try {
      writeFileSync(next, directory.issueFederatedToken(subject, federatedLifetime), { mode: 0o600 })
      renameSync(next, tokenFile)
    } catch (e) {
      rmSync(next, { force: true })
      throw e
    }
  }
  writeTokenFile()

  if (options.stateDir !== undefined)
    warn(
      `kv-emulator: WARNING: state directory ${shownPath(options.stateDir)} holds the private keys of imported certificates (files 0600). Use it for demos only.`,
    )
  /** Vaults whose last save failed: warned once, until a save works again. */
  const unsaved = new Set<string>()
  /**
   * Writes a vault's file. A failure (the directory removed or made read-only, a full disk) does
   * not stop the emulator: it serves from memory, says once that the state is not being kept, and
   * tries again at the next change.
   */
  const save = (dir: string, store: VaultStore) => {
    try {
      saveVault(dir, store)
    } catch (e) {
      if (!unsaved.has(store.name)) {
        unsaved.add(store.name)
        warn(
          `kv-emulator: WARNING: vault ${store.name} could not be saved to ${shownPath(vaultFile(dir, store.name))} (${fsErrorReason(e)}): its state is not being kept (it is served from memory and lost at stop); the emulator tries again at each change.`,
        )
      }
      return
    }
    if (unsaved.delete(store.name))
      warn(`kv-emulator: vault ${store.name} is saved to ${shownPath(vaultFile(dir, store.name))} again.`)
  }
  const saveTimers = new Map<string, NodeJS.Immediate>()
  const scheduleSave = (store: VaultStore) => {
    const dir = options.stateDir
    if (dir === undefined || saveTimers.has(store.name)) return
    saveTimers.set(
      store.name,
      setImmediate(() => {
        saveTimers.delete(store.name)
        save(dir, store)
      }),
    )
  }

  const admin = adminHandler(() => emulator, adminKey)

  const vaultOptions: VaultOptions[] = (options.vaults ?? ["kvdeploy-demo"]).map((v) =>
    typeof v === "string" ? { name: v } : v,
  )
  const vaults: EmulatorVault[] = []
  const tenants = new Set<string>([tenantId])
  const tenantDomain = (options.tenantDomain ?? "kvdeploy-emulator.onmicrosoft.com").toLowerCase()
  const tenantDomains: ReadonlyMap<string, string> = new Map([[tenantDomain, tenantId]])
  for (const vo of vaultOptions) {
    const store: VaultStore = new VaultStore(
      vo.name,
      recoverableDays,
      () => scheduleSave(store),
      options.propagationMs ?? 0,
    )
    const contents = saved.get(vo.name)
    if (contents !== undefined) loadVault(store, contents)
    const limits = vo.throttling ?? options.throttling
    const throttle =
      limits === false ? undefined : new VaultThrottle({ ...KEY_VAULT_LIMITS, ...(limits ?? {}) })
    const vaultTenant = vo.tenantId ?? tenantId
    tenants.add(vaultTenant)
    const handler = new VaultHandler({
      name: vo.name,
      store,
      directory,
      tenantId: vaultTenant,
      faults,
      log,
      throttle,
      authorityHost,
      keyvaultResource,
      recoverableDays,
      tokenClockSkewSeconds: options.tokenClockSkewSeconds ?? 300,
      secretEncoding: options.secretEncoding ?? "legacy",
      pfxDecodeCache: options.pfxDecodeCache ?? true,
      importContentType: options.importContentType ?? "detect",
      materialReader: pool,
      admin: (req, res) => admin(req, res),
    })
    const server = https.createServer(tlsOptions, handler.handle)
    tune(server)
    servers.push(server)
    const port = await listen(server, vo.port ?? 0, bind)
    stores.set(vo.name.toLowerCase(), store)
    handlers.set(vo.name.toLowerCase(), handler)
    vaults.push({ name: vo.name, url: `https://${urlHost(host)}:${port}`, port, tenantId: vaultTenant })
  }

  entraServer.on(
    "request",
    entraHandler({
      directory,
      log,
      faults,
      authorityHost,
      tenants: () => tenants,
      tenantDomains: () => tenantDomains,
      admin: (req, res) => admin(req, res),
    }),
  )
  const miServer = http.createServer(
    managedIdentityHandler({
      directory,
      log,
      faults,
      identityHeader,
      tenantId,
      admin: (req, res) => admin(req, res),
    }),
  )
  tune(miServer)
  servers.push(miServer)
  const miPort = await listen(miServer, options.managedIdentityPort ?? 0, bind)
  const miHost = `http://${urlHost(host)}:${miPort}`

  const storeOf = (vault: string): VaultStore => {
    const s = stores.get(vault.toLowerCase())
    if (!s) throw new Error(`no vault named ${vault}`)
    return s
  }
  const versionState = (v: CertVersion): CertificateVersionState => ({
    version: v.version,
    x5t: v.x5t,
    enabled: v.enabled,
    created: v.created,
    tags: v.tags,
    contentType: v.contentType,
    exportable: v.exportable,
    foreign: v.foreign,
    certificates: v.certs,
  })

  const common = { NODE_EXTRA_CA_CERTS: caFile }
  const env: Record<AuthMode, Record<string, string>> = {
    clientSecret: {
      ...common,
      AZURE_TENANT_ID: tenantId,
      AZURE_CLIENT_ID: app.clientId,
      AZURE_CLIENT_SECRET: clientSecret,
      AZURE_AUTHORITY_HOST: authorityHost,
    },
    workloadIdentity: {
      ...common,
      AZURE_TENANT_ID: tenantId,
      AZURE_CLIENT_ID: workload.clientId,
      AZURE_FEDERATED_TOKEN_FILE: tokenFile,
      AZURE_AUTHORITY_HOST: authorityHost,
    },
    managedIdentityAppService: {
      ...common,
      IDENTITY_ENDPOINT: `${miHost}/msi/token`,
      IDENTITY_HEADER: identityHeader,
    },
    managedIdentityImds: { ...common, AZURE_POD_IDENTITY_AUTHORITY_HOST: miHost },
    managedIdentityUserAssigned: {
      ...common,
      AZURE_POD_IDENTITY_AUTHORITY_HOST: miHost,
      AZURE_CLIENT_ID: user.clientId,
    },
  }
  const cloud: CustomCloud = {
    vault_dns_suffix: host,
    authority_host: authorityHost,
    keyvault_resource: keyvaultResource,
  }
  const modeToCredential: Record<AuthMode, string> = {
    clientSecret: "client_secret",
    workloadIdentity: "workload_identity",
    managedIdentityAppService: "managed_identity",
    managedIdentityImds: "managed_identity",
    managedIdentityUserAssigned: "managed_identity",
  }

  // The token file renewed at half its token's lifetime (hourly at most), as the kubelet renews a
  // projected token before it expires: a workload identity client reading the file in a long
  // session keeps getting tokens. Started last, once nothing can fail the start: a timer left
  // behind would write into the work directory the failed start removed.
  const tokenRenewal = setInterval(
    () => {
      try {
        writeTokenFile()
        if (tokenFileStale) {
          tokenFileStale = false
          warn(`kv-emulator: the federated token file ${tokenFile} is renewed again.`)
        }
      } catch (e) {
        if (!tokenFileStale) {
          tokenFileStale = true
          warn(
            `kv-emulator: WARNING: the federated token file ${tokenFile} could not be renewed (${fsErrorReason(e)}): the token in it expires ${federatedLifetime} s after the last renewal; the emulator tries again at each renewal.`,
          )
        }
      }
    },
    Math.min(federatedLifetime * 500, 3600_000),
  )
  tokenRenewal.unref()

  let stopped = false
  const emulator: Emulator = {
    vaults,
    vault: (name) => {
      const v = vaults.find((x) => x.name.toLowerCase() === name.toLowerCase())
      if (!v) throw new Error(`no vault named ${name}`)
      return v
    },
    caPem: tls.caPem,
    caFile,
    tenantId,
    tenantDomain,
    authorityHost,
    keyvaultResource,
    clientSecret: { tenantId, clientId: app.clientId, clientSecret, objectId: app.objectId },
    workloadIdentity: {
      tenantId,
      clientId: workload.clientId,
      objectId: workload.objectId,
      tokenFile,
      issuer: directory.federationIssuer,
      subject,
    },
    managedIdentity: {
      systemAssigned: { clientId: system.clientId, objectId: system.objectId },
      userAssigned: { clientId: user.clientId, objectId: user.objectId },
      appServiceEndpoint: `${miHost}/msi/token`,
      identityHeader,
      imdsHost: miHost,
    },
    env,
    cloud,
    targetConfig: (vault, certificateName, mode = "clientSecret") => ({
      vault_url: emulator.vault(vault).url,
      certificate_name: certificateName,
      credential_mode: modeToCredential[mode],
      ...(mode === "managedIdentityUserAssigned" ? { managed_identity_client_id: user.clientId } : {}),
      cloud,
    }),
    adminKey,
    adminUrl: `${authorityHost}/_emulator`,
    faults: {
      add: (rule) => faults.add(rule),
      failTimes: (operation, times, status, o) => faults.failTimes(operation, times, status, o),
      remove: (id) => faults.remove(id),
      release: (id) => faults.release(id),
      clear: () => faults.clear(),
      list: () => faults.list(),
    },
    rbac: {
      set: (id, grants) => directory.setPermissions(id, grants),
      deny: (id, p) => directory.deny(id, p),
      allow: (id, p) => directory.allow(id, p),
      permissionsOf: (id) => directory.permissionsOf(id),
      scopeTo: (id, scopes) => directory.scopeTo(id, scopes),
      scopesOf: (id) => directory.scopesOf(id),
      reset: () => directory.resetPermissions(),
    },
    tenancy: {
      provision: (id, tenant) => directory.provision(id, tenant),
      withdraw: (id, tenant) => directory.withdraw(id, tenant),
      tenantsOf: (id) => directory.tenantsOf(id),
    },
    requests: {
      entries: (f) => log.entries(f),
      count: (f) => log.count(f),
      mark: () => log.mark(),
      clear: () => log.clear(),
      inFlight: () => log.inFlight(),
      idle: () => log.idle(),
    },
    state: {
      versions: (vault, name, options) =>
        (options?.includeDeleted === true
          ? storeOf(vault).held(name)
          : storeOf(vault).active(name)
        )?.versions.map(versionState),
      isDeleted: (vault, name) => storeOf(vault).deletedEntry(name) !== undefined,
      policy: (vault, name) => storeOf(vault).certificates.get(name.toLowerCase())?.policy,
      foreignImport: async (vault, name, tags) => {
        const h = handlers.get(vault.toLowerCase())
        if (!h) throw new Error(`no vault named ${vault}`)
        return versionState(await h.foreignImport(name, tags ? { tags } : {}))
      },
      reset: (vault) => {
        for (const s of vault === undefined ? stores.values() : [storeOf(vault)]) {
          s.certificates.clear()
          s.secrets.clear()
          s.changed()
        }
      },
    },
    setTokenClockOffset: (seconds) => {
      if (!Number.isSafeInteger(seconds))
        throw new TypeError(`setTokenClockOffset: whole seconds, got ${seconds}`)
      directory.tokenClockOffsetSeconds = seconds
    },
    issueToken: (clientId, o = {}) => {
      const p: Principal | undefined = directory.principal(clientId)
      if (!p) throw new Error(`no principal with client id ${clientId}`)
      return directory.issueAccessToken(p, {
        resource: o.resource ?? keyvaultResource,
        ...(o.tenantId !== undefined ? { tenantId: o.tenantId } : {}),
        ...(o.lifetimeSeconds !== undefined ? { lifetimeSeconds: o.lifetimeSeconds } : {}),
        ...(o.issuedAt !== undefined ? { issuedAt: o.issuedAt } : {}),
      }).token
    },
    issueFederatedToken: (s = subject, options = {}) =>
      directory.issueFederatedToken(s, options.lifetimeSeconds, options.issuedAt),
    stop: async () => {
      if (stopped) return
      stopped = true
      clearInterval(tokenRenewal)
      // Held requests go on (their connections close below).
      faults.clear()
      for (const t of saveTimers.values()) clearImmediate(t)
      if (options.stateDir !== undefined) for (const s of stores.values()) save(options.stateDir, s)
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve())
              s.closeAllConnections()
            }),
        ),
      )
      await pool?.close()
      if (ownWorkDir) rmSync(workDir, { recursive: true, force: true })
    },
  }
  return emulator
}

/** The default number of PFX workers (see `EmulatorOptions.pfxWorkers`). */
export const defaultPfxWorkers = (): number => (runningFromSource() ? 0 : Math.min(2, availableParallelism()))

const materialPool = (options: EmulatorOptions, warn: (line: string) => void): PfxPool | undefined => {
  const size = options.pfxWorkers ?? defaultPfxWorkers()
  if (!Number.isInteger(size) || size < 0) throw new Error(`pfxWorkers must be an integer >= 0, got ${size}`)
  if (size === 0) return undefined
  const script = pfxWorkerScript()
  if (script === undefined) {
    // Bundled (the CLI's esbuild chunks) or not built: read in this thread; say so only when asked for workers.
    if (options.pfxWorkers !== undefined)
      warn(
        "kv-emulator: the PFX worker script (dist/pfxWorker.js next to the emulator's modules) is missing: reading imports in the main thread.",
      )
    return undefined
  }
  return new PfxPool(size, script)
}

/** `/_emulator/*`: faults, request log, RBAC, foreign imports, over HTTPS with the admin key. */
const adminHandler =
  (get: () => Emulator, adminKey: string) =>
  async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const emulator = get()
    if (req.headers["x-kv-emulator-admin-key"] !== adminKey) {
      req.resume()
      return sendJson(res, 401, {
        error: { code: "Unauthorized", message: "x-kv-emulator-admin-key header missing or wrong" },
      })
    }
    const url = new URL(req.url ?? "/", "https://127.0.0.1")
    const parts = url.pathname
      .split("/")
      .filter((p) => p.length > 0)
      .slice(1)
    const method = req.method ?? "GET"
    // A release (POST /_emulator/faults/{id}/release) takes no body either.
    const noBody =
      method === "GET" || method === "DELETE" || (parts[0] === "faults" && parts[2] === "release")
    const parsed = noBody ? { ok: true as const, value: undefined } : parseJson(await readBody(req))
    if (noBody) req.resume()
    if (!parsed.ok)
      return sendJson(res, 400, { error: { code: "BadParameter", message: "body is not JSON" } })
    const body = parsed.value
    const bad = (message: string) => sendJson(res, 400, { error: { code: "BadParameter", message } })
    try {
      const [what, a, b, c, d] = parts
      if (what === "health") return sendJson(res, 200, { ok: true, vaults: emulator.vaults })
      if (what === "faults") {
        if (method === "GET") return sendJson(res, 200, { faults: emulator.faults.list() })
        if (method === "POST" && a !== undefined && b === "release")
          return sendJson(res, emulator.faults.release(a) ? 200 : 404, {})
        if (method === "POST") {
          const rules = Array.isArray(body) ? body : [body]
          const ids = rules.map((r: unknown) => emulator.faults.add(validateRule(r)))
          return sendJson(res, 200, { ids })
        }
        if (method === "DELETE") {
          if (a !== undefined) return sendJson(res, emulator.faults.remove(a) ? 200 : 404, {})
          emulator.faults.clear()
          return sendJson(res, 200, {})
        }
      }
      if (what === "requests") {
        if (method === "DELETE") {
          emulator.requests.clear()
          return sendJson(res, 200, {})
        }
        const q = url.searchParams
        const since = q.get("since")
        const status = q.get("status")
        const filter: RequestLogFilter = {
          ...(q.get("vault") !== null ? { vault: q.get("vault") ?? "" } : {}),
          ...(q.get("operation") !== null ? { operation: q.get("operation") ?? "" } : {}),
          ...(since !== null ? { since: Number(since) } : {}),
          ...(status !== null ? { status: Number(status) } : {}),
        }
        return sendJson(res, 200, {
          mark: emulator.requests.mark(),
          entries: emulator.requests.entries(filter),
        })
      }
      if (what === "rbac") {
        if (method === "DELETE" && a === undefined) {
          emulator.rbac.reset()
          return sendJson(res, 200, {})
        }
        if (a === undefined) return bad("rbac/{clientId}")
        const answer = () =>
          sendJson(res, 200, {
            clientId: a,
            permissions: emulator.rbac.permissionsOf(a),
            scopes: emulator.rbac.scopesOf(a) ?? null,
          })
        if (b === "scope") {
          if (method !== "PUT") return bad("PUT /_emulator/rbac/{clientId}/scope takes the scopes")
          const scopes = isRecord(body) ? body.scopes : undefined
          if (!Array.isArray(scopes) || !scopes.every((s) => typeof s === "string"))
            return bad(
              'body.scopes: give a list of "certificates/NAME", "secrets/NAME" or "keys/NAME", e.g. {"scopes":["certificates/api","secrets/api"]}',
            )
          emulator.rbac.scopeTo(a, scopes)
          return answer()
        }
        const perms =
          isRecord(body) && Array.isArray(body.permissions) ? (body.permissions as Permission[]) : []
        if (method === "PUT") emulator.rbac.set(a, perms)
        else if (method === "POST" && b === "deny") emulator.rbac.deny(a, perms)
        else if (method === "POST" && b === "allow") emulator.rbac.allow(a, perms)
        return answer()
      }
      if (
        what === "vaults" &&
        a !== undefined &&
        b === "certificates" &&
        c !== undefined &&
        d === "foreign-import" &&
        method === "POST"
      ) {
        const tags = isRecord(body) && isRecord(body.tags) ? (body.tags as Tags) : undefined
        const v = await emulator.state.foreignImport(a, c, tags)
        return sendJson(res, 200, { version: v.version, x5t: v.x5t })
      }
      if (what === "config" && method === "GET")
        return sendJson(res, 200, {
          vaults: emulator.vaults,
          tenantId: emulator.tenantId,
          authorityHost: emulator.authorityHost,
          env: emulator.env,
          cloud: emulator.cloud,
        })
      return sendJson(res, 404, {
        error: { code: "NotFound", message: `no admin endpoint ${method} ${url.pathname}` },
      })
    } catch (e) {
      return bad(e instanceof Error ? e.message : String(e))
    }
  }
