/**
 * End-to-end harness: the emulator in this process, the BUILT agent
 * (dist/bin.js, or the single executable) as a subprocess with its JSON log
 * lines collected, certificate files on /dev/shm in a directory removed after
 * each test, and the emulator's request log to prove what was (not) written.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import {
  CertificateClient,
  type CertificateClientOptions,
  type ImportCertificateOptions,
} from "@azure/keyvault-certificates"
import { type Emulator, type EmulatorOptions, start } from "@kvdeploy/kv-emulator"
import { afterAll, afterEach, beforeAll, expect } from "vitest"
import { stringify } from "yaml"
import { makePki, type Pki } from "./pki.js"

export const agentRoot = join(dirname(fileURLToPath(import.meta.url)), "..")
export const bin = join(agentRoot, "dist", "bin.js")

/**
 * `kvdeploy-agent --config CONFIG --check --json` run as uid and gid 65534 with no other group (a
 * root test's stand-in for a service's own user: setpriv). The configuration must be readable by it.
 */
export const checkAsNobody = (config: string) =>
  spawnSync(
    "setpriv",
    [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      process.execPath,
      bin,
      "--config",
      config,
      "--check",
      "--json",
    ],
    { encoding: "utf8" },
  )

export type LogLine = Record<string, unknown> & { readonly msg: string; readonly level: string }

/** The environment of an agent run: no Azure variables from the host. */
export const baseEnv = (): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue
    if (/^(AZURE_|NODE_EXTRA_CA_CERTS|IDENTITY_|MSI_|KVDEPLOY_AGENT_)/.test(k)) continue
    env[k] = v
  }
  return env
}

export interface Workdir {
  readonly dir: string
  /** Write a file atomically (temporary name, then rename), as certificate tools do. */
  readonly write: (name: string, content: string | Uint8Array) => string
  /** Write a file in place (truncate, write): a half-written state can be observed. */
  readonly writeInPlace: (name: string, content: string | Uint8Array) => string
  readonly path: (name: string) => string
  readonly remove: () => void
}

export const workdir = (): Workdir => {
  const dir = mkdtempSync(join("/dev/shm", "kvdeploy-agent-test-"))
  let n = 0
  return {
    dir,
    write: (name, content) => {
      const tmp = join(dir, `.${name}.tmp-${++n}`)
      writeFileSync(tmp, content, { mode: 0o600 })
      renameSync(tmp, join(dir, name))
      return join(dir, name)
    },
    writeInPlace: (name, content) => {
      writeFileSync(join(dir, name), content, { mode: 0o600 })
      return join(dir, name)
    },
    path: (name) => join(dir, name),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  }
}

/**
 * The emulator the agent's tests run against: no throttling, quiet, and answering an import as Key
 * Vault does, which infers no content type (`importContentType: "required"`): every import the
 * agent makes is so proven to state its content type.
 */
export const startEmulator = (options: EmulatorOptions = {}): Promise<Emulator> =>
  start({ throttling: false, warn: () => {}, importContentType: "required", ...options })

/** What a test file of one agent against one emulator shares: set before its tests, stopped after them. */
export interface AgentSuite {
  readonly emulator: Emulator
  readonly pki: Pki
  readonly work: Workdir
  /** The agent the file's test started last; every agent set here is killed after the file's tests. */
  agent: AgentProcess | undefined
}

/**
 * Waits until the emulator's `hold` fault `id` holds a request: the request has reached the vault
 * (the request log only has it once it is answered). A test that holds a request and waits for
 * this does not depend on how fast the agent got there.
 */
export const requestHeld = (emulator: Emulator, id: string) =>
  expect
    .poll(() => emulator.faults.list().find((f) => f.id === id)?.hits ?? 0, { timeout: 30_000, interval: 10 })
    .toBe(1)

/** An emulator serving `vaults`, a test PKI and a work directory for the calling test file (its beforeAll/afterAll). */
export const agentSuite = (vaults: ReadonlyArray<string>): AgentSuite => {
  // Every agent a test sets, not only the last: a test that starts a second agent (a restart) set it
  // over the first, and an agent a later test replaced was left running after the suite (found
  // running an hour later, its parent gone).
  const started: Array<AgentProcess> = []
  let current: AgentProcess | undefined
  const suite = {} as { -readonly [K in keyof AgentSuite]: AgentSuite[K] }
  Object.defineProperty(suite, "agent", {
    get: () => current,
    set: (agent: AgentProcess | undefined) => {
      if (agent !== undefined && !started.includes(agent)) started.push(agent)
      current = agent
    },
    enumerable: true,
  })
  beforeAll(async () => {
    suite.emulator = await startEmulator({ vaults: [...vaults] })
    suite.pki = await makePki()
    suite.work = workdir()
  })
  afterAll(async () => {
    for (const agent of started) agent.kill()
    suite.work.remove()
    await suite.emulator.stop()
  })
  return suite
}

export interface AgentProcess {
  readonly child: ChildProcess
  readonly lines: Array<LogLine>
  readonly stderr: () => string
  /** Wait for a log line matching `predicate` (after index `from`); fails with the log on timeout. */
  readonly waitFor: (
    predicate: (line: LogLine) => boolean,
    options?: { from?: number; timeoutMs?: number },
  ) => Promise<LogLine>
  readonly http: (path: string) => Promise<{ status: number; body: string; contentType: string | null }>
  readonly port: () => number
  readonly signal: (signal: NodeJS.Signals) => void
  /** Resolves with the exit code (or 128+signal). */
  readonly exited: Promise<number>
  readonly kill: () => void
}

const problemText = (lines: ReadonlyArray<LogLine>, stderr: string) =>
  `--- agent log ---\n${lines.map((l) => JSON.stringify(l)).join("\n")}\n--- stderr ---\n${stderr}`

export const startAgent = (
  configPath: string,
  env: Readonly<Record<string, string>>,
  options: { readonly command?: ReadonlyArray<string>; readonly args?: ReadonlyArray<string> } = {},
): AgentProcess => {
  const command = options.command ?? [process.execPath, bin]
  const [exe, ...pre] = command
  const child = spawn(exe as string, [...pre, "--config", configPath, ...(options.args ?? [])], {
    env: { ...env },
    stdio: ["ignore", "pipe", "pipe"],
  })
  const lines: Array<LogLine> = []
  const waiters = new Set<() => void>()
  let buffered = ""
  let err = ""
  child.stdout?.on("data", (chunk: Buffer) => {
    buffered += chunk.toString("utf8")
    let nl = buffered.indexOf("\n")
    while (nl >= 0) {
      const text = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      try {
        lines.push(JSON.parse(text) as LogLine)
      } catch {
        lines.push({ msg: text, level: "raw" })
      }
      nl = buffered.indexOf("\n")
    }
    for (const w of waiters) w()
  })
  child.stderr?.on("data", (chunk: Buffer) => {
    err += chunk.toString("utf8")
  })
  // Set before the waiters look: one waiting for a line the exited agent never wrote fails at once,
  // saying it exited, instead of at its timeout.
  let exitedFlag = false
  const exited = new Promise<number>((resolve) => {
    child.on("close", (code, signal) => {
      exitedFlag = true
      for (const w of waiters) w()
      resolve(code ?? (signal === null ? -1 : 128))
    })
  })
  const waitFor: AgentProcess["waitFor"] = (predicate, o = {}) =>
    new Promise((resolve, reject) => {
      const check = () => {
        for (let i = o.from ?? 0; i < lines.length; i++) {
          const line = lines[i] as LogLine
          if (predicate(line)) {
            cleanup()
            resolve(line)
            return
          }
        }
        if (exitedFlag) {
          cleanup()
          reject(new Error(`the agent exited before the expected log line\n${problemText(lines, err)}`))
        }
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(
          new Error(`no expected log line within ${o.timeoutMs ?? 30_000} ms\n${problemText(lines, err)}`),
        )
      }, o.timeoutMs ?? 30_000)
      const cleanup = () => {
        clearTimeout(timer)
        waiters.delete(check)
      }
      waiters.add(check)
      check()
    })
  let port = 0
  const portOf = () => {
    if (port !== 0) return port
    for (const l of lines) {
      const m = /Listening on http:\/\/[^:]+:(\d+)/.exec(l.msg)
      if (m !== null) port = Number(m[1])
    }
    return port
  }
  return {
    child,
    lines,
    stderr: () => err,
    waitFor,
    http: async (path) => {
      const r = await fetch(`http://127.0.0.1:${portOf()}${path}`)
      return { status: r.status, body: await r.text(), contentType: r.headers.get("content-type") }
    },
    port: portOf,
    signal: (s) => {
      child.kill(s)
    },
    exited,
    kill: () => {
      if (!exitedFlag) child.kill("SIGKILL")
    },
  }
}

export interface DeploymentSpec {
  readonly name: string
  readonly vault: string
  readonly certificate: string
  readonly source: Record<string, string | number>
  readonly target?: Record<string, unknown>
  readonly pickup?: Record<string, unknown>
}

/** Write an agent configuration for deployments against the emulator. */
export const writeConfig = (
  work: Workdir,
  emulator: Emulator,
  deployments: ReadonlyArray<DeploymentSpec>,
  agent: Record<string, unknown> = {},
  file = "agent.yaml",
): string =>
  work.write(
    file,
    stringify({
      agent: {
        listen: "127.0.0.1:0",
        state_dir: work.path("state"),
        reconcile_interval_seconds: 3600,
        debounce_ms: 200,
        backoff_base_seconds: 0.2,
        backoff_max_seconds: 2,
        shutdown_grace_seconds: 10,
        ...agent,
      },
      deployments: deployments.map((d) => ({
        name: d.name,
        source: d.source,
        target: { ...emulator.targetConfig(d.vault, d.certificate, "clientSecret"), ...(d.target ?? {}) },
        ...(d.pickup === undefined ? {} : { pickup: d.pickup }),
      })),
    }),
  )

/**
 * The configuration of one deployment `name` to certificate `name` of `vault`, its source the files
 * `name`.crt and `name`.key written with `certPem` and `keyPem` (a key of another certificate makes
 * a broken source), and the agent settings `agent`.
 */
export const oneSourceConfig = (
  work: Workdir,
  emulator: Emulator,
  spec: { readonly name: string; readonly vault: string; readonly certPem: string; readonly keyPem: string },
  agent: Record<string, unknown> = {},
): string => {
  const { name, vault } = spec
  const cert = work.write(`${name}.crt`, spec.certPem)
  const key = work.write(`${name}.key`, spec.keyPem)
  return writeConfig(work, emulator, [{ name, vault, certificate: name, source: { cert, key } }], agent)
}

/** The configuration of one deployment `name` (a fresh leaf for `name`.example.test) to certificate `name` of `vault`. */
export const oneDeploymentConfig = async (
  suite: AgentSuite,
  vault: string,
  name: string,
): Promise<string> => {
  const leaf = await suite.pki.leaf(`${name}.example.test`)
  return writeConfig(suite.work, suite.emulator, [
    {
      name,
      vault,
      certificate: name,
      source: {
        cert: suite.work.write(`${name}.crt`, leaf.certPem),
        key: suite.work.write(`${name}.key`, leaf.keyPem),
      },
    },
  ])
}

/**
 * Resolves once a deploy's import has reached the emulator and waits in the `delay` fault the test
 * put on the vault's imports: the fault counts a hit when the request arrives, before the delay.
 * (Waiting a fixed time after the snapshot read instead let a slow machine send the signal before
 * the import, and the test then saw no import to overlap.)
 */
export const whileImporting = async (emulator: Emulator, vault: string): Promise<void> => {
  const delays = () =>
    emulator.faults
      .list()
      .filter((f) => f.operation === "import" && f.vault === vault && f.action.kind === "delay")
  if (delays().length === 0)
    throw new Error(`whileImporting: no delay fault on ${vault}'s imports to wait in`)
  const deadline = Date.now() + 20_000
  while (!delays().some((f) => f.hits > 0)) {
    if (Date.now() > deadline) throw new Error(`no import reached ${vault} within 20 s`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** The metric's value from a Prometheus text page, or undefined. */
export const metricValue = (
  page: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined => {
  for (const line of page.split("\n")) {
    if (!line.startsWith(name)) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line)
    if (m === null || m[1] !== name) continue
    const got: Record<string, string> = {}
    for (const pair of (m[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      got[pair[1] as string] = pair[2] as string
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[4])
  }
  return undefined
}

/**
 * A fresh emulator, work directory and agents for each test of a file, stopped and removed after
 * each test (the call registers the afterEach), and the PKI the file's tests share.
 */
export const perTestWorld = () => {
  let emulator: Emulator | undefined
  let work: Workdir | undefined
  const agents: Array<AgentProcess> = []
  let pkiPromise: Promise<Pki> | undefined
  const pki = () => {
    pkiPromise ??= makePki()
    return pkiPromise
  }
  afterEach(async () => {
    for (const a of agents.splice(0)) a.kill()
    work?.remove()
    work = undefined
    await emulator?.stop()
    emulator = undefined
  })
  return {
    pki,
    /** An emulator with these vaults (and `options`), a work directory and the shared PKI. */
    setUp: async (vaults: NonNullable<EmulatorOptions["vaults"]>, options: EmulatorOptions = {}) => {
      emulator = await startEmulator({ ...options, vaults })
      work = workdir()
      return { e: emulator, w: work, p: await pki() }
    },
    /** The agent on `config`, with the emulator's client-secret environment (and `env`); killed after the test. */
    run: (config: string, e: Emulator, env: Readonly<Record<string, string>> = {}) => {
      const a = startAgent(config, { ...baseEnv(), ...e.env.clientSecret, ...env })
      agents.push(a)
      return a
    },
    /**
     * `setUp` and `run` for one test of its own, for tests that run side by side (`concurrent`): its
     * emulator, work directory and agents are stopped and removed when that test finishes (the
     * `onTestFinished` of its context, which vitest keeps per test, where an afterEach is the file's).
     */
    own: (test: { readonly onTestFinished: (fn: () => Promise<void>) => void }) => {
      let ownEmulator: Emulator | undefined
      let ownWork: Workdir | undefined
      const ownAgents: Array<AgentProcess> = []
      test.onTestFinished(async () => {
        for (const a of ownAgents.splice(0)) a.kill()
        ownWork?.remove()
        await ownEmulator?.stop()
      })
      return {
        pki,
        setUp: async (vaults: NonNullable<EmulatorOptions["vaults"]>, options: EmulatorOptions = {}) => {
          if (ownEmulator !== undefined) throw new Error("own(): one setUp per test")
          ownEmulator = await startEmulator({ ...options, vaults })
          ownWork = workdir()
          return { e: ownEmulator, w: ownWork, p: await pki() }
        },
        run: (config: string, e: Emulator, env: Readonly<Record<string, string>> = {}) => {
          const a = startAgent(config, { ...baseEnv(), ...e.env.clientSecret, ...env })
          ownAgents.push(a)
          return a
        },
      }
    },
  }
}

/** The Azure SDK's certificate client for `vault`, as an operator's own tooling would use it. */
export const sdkFor = (e: Emulator, vault: string, options: CertificateClientOptions = {}) =>
  new CertificateClient(
    e.vault(vault).url,
    {
      getToken: async () => ({
        token: e.issueToken(e.clientSecret.clientId),
        expiresOnTimestamp: Date.now() + 3_600_000,
      }),
    },
    { tlsOptions: { ca: e.caPem }, disableChallengeResourceVerification: true, ...options },
  )

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
