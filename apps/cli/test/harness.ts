/**
 * End-to-end harness: the emulator in this process, the BUILT `kvdeploy`
 * (dist/bin.js) as a subprocess, temporary files on /dev/shm (removed after),
 * and the emulator's request log to prove what was (not) written.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { getCACertificates, setDefaultCACertificates } from "node:tls"
import { fileURLToPath } from "node:url"
import { ClientSecretCredential } from "@azure/identity"
import { CertificateClient, type ImportCertificateOptions } from "@azure/keyvault-certificates"
import { type Emulator, type EmulatorOptions, start } from "@kvdeploy/kv-emulator"
import { afterAll } from "vitest"

export const cliRoot = join(dirname(fileURLToPath(import.meta.url)), "..")
export const bin = join(cliRoot, "dist", "bin.js")

export interface CliResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** The environment of a kvdeploy run: no Azure variables from the host, no colours. */
export const baseEnv = (): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue
    if (/^(AZURE_|NODE_EXTRA_CA_CERTS|IDENTITY_|MSI_|FORCE_COLOR)/.test(k)) continue
    env[k] = v
  }
  env.NO_COLOR = "1"
  return env
}

export const runCli = (
  args: ReadonlyArray<string>,
  options: {
    readonly stdin?: string | Uint8Array
    readonly env?: Readonly<Record<string, string>>
    readonly timeoutMs?: number
    /** Run as this user and group (a test run by root that needs permissions to refuse a read). */
    readonly user?: { readonly uid: number; readonly gid: number }
    /** Called with the process once it started (a test that signals it). */
    readonly started?: (child: ChildProcess) => void
  } = {},
): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...baseEnv(), ...(options.env ?? {}) },
      stdio: ["pipe", "pipe", "pipe"],
      ...(options.user ?? {}),
    })
    const out: Array<Buffer> = []
    const err: Array<Buffer> = []
    child.stdout.on("data", (c: Buffer) => out.push(c))
    child.stderr.on("data", (c: Buffer) => err.push(c))
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 45_000)
    child.on("error", reject)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({
        code: code ?? (signal === null ? -1 : 128),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      })
    })
    child.stdin.on("error", () => {})
    options.started?.(child)
    if (options.stdin !== undefined) child.stdin.end(options.stdin)
    else child.stdin.end()
  })

export interface World {
  readonly emulator: Emulator
  readonly vault: string
  /** Environment for client-secret mode against the emulator (includes NODE_EXTRA_CA_CERTS). */
  readonly env: Readonly<Record<string, string>>
  /** A target file (no secret in it) for certificate `name`. */
  readonly targetFile: (name: string, extra?: Record<string, unknown>) => string
  /** Write a temporary file on /dev/shm; removed by `stop`. */
  readonly file: (name: string, content: string | Uint8Array) => string
  /** Requests that could change the vault (anything but GET), since `mark`, optionally for one certificate. */
  readonly writesSince: (mark: number, name?: string) => number
  /** The test's own SDK client for the vault (another actor changing it). */
  readonly sdk: () => CertificateClient
  /**
   * The same emulator, files and stop, for another of the vaults `startWorld` was given: a test
   * that counts a vault's requests or writes since a mark has one to itself, beside other tests.
   */
  readonly inVault: (vault: string) => World
  readonly stop: () => Promise<void>
}

/**
 * The emulator the CLI's tests run against: no throttling, quiet, and answering an import as Key
 * Vault does, which infers no content type (`importContentType: "required"`): every import the CLI
 * makes is so proven to state its content type.
 */
export const startEmulator = (options: EmulatorOptions = {}): Promise<Emulator> =>
  start({ throttling: false, warn: () => {}, importContentType: "required", ...options })

/** The emulator's first vault is `vault`; `moreVaults` are served beside it (see {@link World.inVault}). */
export const startWorld = async (
  vault = "kvdeploy-e2e",
  moreVaults: ReadonlyArray<string> = [],
): Promise<World> => {
  const emulator = await startEmulator({ vaults: [vault, ...moreVaults] })
  // This test process talks to the emulator directly too (to delete a certificate): trust its CA here.
  setDefaultCACertificates([...getCACertificates("default"), emulator.caPem])
  const dir = mkdtempSync(join("/dev/shm", "kvdeploy-cli-test-"))
  let n = 0
  const file = (name: string, content: string | Uint8Array) => {
    const path = join(dir, `${++n}-${name}`)
    writeFileSync(path, content, { mode: 0o600 })
    return path
  }
  const stop = async () => {
    rmSync(dir, { recursive: true, force: true })
    await emulator.stop()
  }
  const inVault = (vault: string): World => ({
    emulator,
    vault,
    env: emulator.env.clientSecret,
    targetFile: (name, extra = {}) =>
      file(
        `${name}.json`,
        JSON.stringify({ ...emulator.targetConfig(vault, name, "clientSecret"), ...extra }, null, 2),
      ),
    file,
    writesSince: (mark, name) =>
      emulator.requests
        .entries({ since: mark, vault })
        .filter((e) => e.method !== "GET" && !e.challenge)
        .filter((e) => name === undefined || e.path.toLowerCase().includes(`/${name.toLowerCase()}`)).length,
    sdk: () =>
      new CertificateClient(
        emulator.vault(vault).url,
        new ClientSecretCredential(
          emulator.env.clientSecret.AZURE_TENANT_ID ?? "",
          emulator.env.clientSecret.AZURE_CLIENT_ID ?? "",
          emulator.env.clientSecret.AZURE_CLIENT_SECRET ?? "",
          { authorityHost: emulator.authorityHost, disableInstanceDiscovery: true },
        ),
        { disableChallengeResourceVerification: true },
      ),
    inVault: (other) => {
      // A vault the emulator does not serve would throw only at the first request.
      emulator.vault(other)
      return inVault(other)
    },
    stop,
  })
  return inVault(vault)
}

/** Parse the JSON a `--json` run printed; fails the test when stdout is not exactly one JSON document. */
export const json = <T = Record<string, unknown>>(r: CliResult): T => {
  try {
    return JSON.parse(r.stdout) as T
  } catch {
    throw new Error(`stdout is not JSON (exit ${r.code}):\n${r.stdout}\n--- stderr ---\n${r.stderr}`)
  }
}

/**
 * The options of a bare SDK `importCertificate` of PEM bytes that Key Vault takes (another tool's
 * import): `policy` makes the SDK send the PEM text, and `certificatePolicy`, which the SDK's
 * serializer reads (4.9.0-4.10.3 drop `policy` from the body), states its content type on the wire.
 */
export const pemImportOptions = (options: ImportCertificateOptions = {}): ImportCertificateOptions =>
  ({
    ...options,
    policy: { contentType: "application/x-pem-file" },
    certificatePolicy: { secretProperties: { contentType: "application/x-pem-file" } },
  }) as ImportCertificateOptions

/** One check of `kvdeploy doctor --json`'s `checks`. */
/** The error document a command prints on stdout with --json when it fails. */
export interface ErrorDocument {
  readonly error: {
    readonly title: string
    readonly exitCode: number
    readonly problems: ReadonlyArray<{
      readonly field: string
      readonly message: string
      readonly fix: string
    }>
  }
}

export interface DoctorCheck {
  readonly check: string
  readonly status: string
  readonly detail: string
  readonly fix?: string
  /** The allowed-tenants check's tenant ids ("*": any). */
  readonly tenants?: ReadonlyArray<string> | "*"
}

/**
 * A scratch directory under /dev/shm (`prefix-XXXXXX`) and the list a test file puts the processes
 * it starts in, both cleaned after the file: a process still running is stopped (SIGTERM) and
 * awaited, then the directory removed.
 */
export const scratchWithChildren = (prefix: string) => {
  const scratch = mkdtempSync(join("/dev/shm", `${prefix}-`))
  const running: Array<ChildProcess> = []
  afterAll(async () => {
    for (const child of running) if (child.exitCode === null) child.kill("SIGTERM")
    await Promise.all(
      running.map((c) =>
        c.exitCode === null ? new Promise((resolve) => c.once("close", resolve)) : Promise.resolve(),
      ),
    )
    rmSync(scratch, { recursive: true, force: true })
  })
  return { scratch, running }
}
