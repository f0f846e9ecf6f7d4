// kvdeploy-agent at fleet scale, against the emulator enforcing Key Vault's per-vault
// throttling windows (sliding 10 s: 300 imports and 4,000 other requests per vault), so
// throttling binds.
//
//   node bench/agent-fleet.bench.mjs [--scale 1] [--concurrency 64] [--rounds 5] [--no-windows]
//     [--no-list] [--material-workers N]
//
// Full scale: 10,000 certificates (EC P-256 keys, PEM files on /dev/shm) across 10 vaults,
// reconciled from cold by the built agent (apps/agent/dist/bin.js, a subprocess; the emulator
// runs in this process). --scale s < 1 deploys s x 10,000 certificates and scales the
// emulator's windows (and the agent's budget) by s too, so the windows still bind and the
// lower bound stays the same; the figures say which scale ran.
//
// Figures, each with its goal, printed honestly:
//   cold reconcile time / lower bound (imports per vault / imports per window x 10 s)  goal <= 1.1
//   failed deploys (anything but Succeeded at the end)                                 goal 0
//   429s the emulator sent                                                             goal ~0
//   vault requests per deploy (emulator's request log, token challenges excluded)      goal 3
//   no-change pass over every deployment / the same number of bare SDK getCertificate
//     calls at the same concurrency, in the same run (a long-lived child process):
//     medians of --rounds (default 5) interleaved passes of each                       goal <= 1.2
//     (the agent lists each vault, 25 certificates per request, and reads only what the
//     list does not show in place; --no-list makes it read every certificate instead)
//   resident memory of the idle agent with every deployment configured                 goal < 200 MB
//     measured three times: after the cold reconcile, after the no-change pass, and in a
//     restarted agent; each after a settle time (the agent's own release of memory once a
//     pass is over) and again after a full collection forced through the inspector.
//
// The agent runs the way the deployment files run it: with the single executable's node
// flags (apps/agent/scripts/node-flags.mjs: --expose-gc, --disable-sigusr1) and
// glibc's malloc settings of the systemd unit, the Dockerfile and the Kubernetes manifest
// (AGENT_ENV below). KVDEPLOY_BENCH_AGENT_FLAGS adds node flags (for example --cpu-prof
// --cpu-prof-dir=DIR to profile the agent).
//
// The emulator stands in for Key Vault, which runs elsewhere; here it shares the two cores
// with the agent under test, so its own CPU is taken from the agent. It reads imports on its
// event loop in this bench (pfxWorkers 0): its PFX worker threads cost more CPU in all than
// they save its event loop (a thread hop each way per import: 2.90-3.60 ms of emulator CPU
// per deploy with the default 2 workers, 2.75-2.99 ms with none, in full-scale runs of
// 2026-11-30). KVDEPLOY_BENCH_EMULATOR_PFX_WORKERS sets another number (2 is the emulator's
// default on this machine).
import "reflect-metadata"
import { spawn } from "node:child_process"
import { createHash, webcrypto } from "node:crypto"
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs"
import { loadavg } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { agentNodeFlags } from "../apps/agent/scripts/node-flags.mjs"

const here = dirname(fileURLToPath(import.meta.url))

// bench/run.mjs starts every bench with --expose-gc, which Node refuses in a worker thread's
// inherited execArgv: the emulator's PFX worker pool (it runs in this process) then fails every
// import with a 500 (ERR_WORKER_INVALID_EXEC_ARGV). This bench needs no node flag of its own:
// run it again without them.
if (process.execArgv.length > 0 && process.argv[2] !== "--baseline") {
  const { spawnSync } = await import("node:child_process")
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: "inherit",
  })
  process.exit(r.status ?? 1)
}

// ---------- child: the baseline, bare SDK getCertificate calls ----------
// A long-lived process: it keeps its clients (and their keep-alive connections) between the
// rounds, as the agent keeps its own. Each line "run" on stdin makes one pass over every name at
// the job's concurrency and answers one JSON line; "memory" answers its resident memory.
if (process.argv[2] === "--baseline") {
  const { CertificateClient } = await import("@azure/keyvault-certificates")
  const { ClientSecretCredential } = await import("@azure/identity")
  const { createInterface } = await import("node:readline")
  const job = JSON.parse(readFileSync(process.argv[3], "utf8"))
  const credential = new ClientSecretCredential(job.tenantId, job.clientId, job.clientSecret, {
    authorityHost: job.authorityHost,
    disableInstanceDiscovery: true,
  })
  const clients = job.vaultUrls.map(
    (url) =>
      new CertificateClient(url, credential, {
        disableChallengeResourceVerification: true,
        retryOptions: { maxRetries: 0 },
      }),
  )
  const pass = async (names) => {
    let next = 0
    let errors = 0
    const started = performance.now()
    const worker = async () => {
      while (next < names.length) {
        const i = next++
        try {
          await clients[i % clients.length].getCertificate(names[i])
        } catch {
          errors++
        }
      }
    }
    await Promise.all(Array.from({ length: job.concurrency }, worker))
    return { ms: performance.now() - started, errors }
  }
  // Warm each client (token, challenge), then open as many connections as the pass will use
  // (the agent's clients are warm from its cold pass): outside the measurement.
  for (let i = 0; i < clients.length; i++) await clients[i].getCertificate(job.names[i])
  await pass(job.names.slice(0, job.concurrency * 2))
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`)
  // The same work as an agent pass that lists: every vault's certificate list, page by page (25 per
  // request, as the agent asks), each entry's thumbprint compared with the source's; no reads.
  const listPass = async () => {
    let errors = 0
    let requests = 0
    let matched = 0
    const started = performance.now()
    const names = new Map(job.names.map((n, i) => [n.toLowerCase(), job.x5ts[i]]))
    await Promise.all(
      clients.map(async (client) => {
        try {
          for await (const page of client.listPropertiesOfCertificates({ maxresults: 25 }).byPage()) {
            requests++
            for (const p of page) {
              const thumbprint = p.x509Thumbprint && Buffer.from(p.x509Thumbprint).toString("base64url")
              if (names.get(p.name.toLowerCase()) === thumbprint && p.enabled !== false) matched++
            }
          }
        } catch {
          errors++
        }
      }),
    )
    return { ms: performance.now() - started, errors, requests, matched }
  }
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === "run") process.stdout.write(`${JSON.stringify(await pass(job.names))}\n`)
    else if (line === "list") process.stdout.write(`${JSON.stringify(await listPass())}\n`)
    else if (line === "memory")
      process.stdout.write(`${JSON.stringify({ rssMb: process.memoryUsage().rss / 1024 / 1024 })}\n`)
    else break
  }
  process.exit(0)
}

const { values } = parseArgs({
  options: {
    scale: { type: "string", default: "1" },
    concurrency: { type: "string", default: "64" },
    "no-windows": { type: "boolean", default: false },
    rounds: { type: "string", default: "5" },
    "no-list": { type: "boolean", default: false },
    "material-workers": { type: "string" },
  },
})
// --material-workers N: the agent's material_workers setting (default: the agent's own, 0:
// the material of every deploy is parsed, inspected and built on the agent's main thread);
// 1 or more moves it to worker threads (on this 2-core machine, shared with the emulator, 1
// worker made the cold pass no shorter: 1.38 either way on 2026-11-30).
const materialWorkersText = values["material-workers"]
if (materialWorkersText !== undefined && !/^\d+$/.test(materialWorkersText))
  throw new Error(
    `--material-workers must be a whole number (0 keeps the material work on the agent's main thread), got "${materialWorkersText}"`,
  )
const materialWorkers = materialWorkersText === undefined ? undefined : Number(materialWorkersText)
// --no-list: the agent never lists a vault (vault_list_min_deployments: 0), so every deployment
// of a no-change pass reads its own certificate, as the bare SDK baseline does.
const listing = values["no-list"] !== true
// --no-windows: the emulator does not throttle and the agent's budgets do not bind. The time
// figures are then not comparable with the goal (no lower bound); the run is for the memory
// figures with every one of the scale's deployments configured, which need no windows.
const windows = values["no-windows"] !== true
const scale = Number(values.scale)
const concurrency = Number(values.concurrency)
const rounds = Number(values.rounds)
if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error("--rounds must be a whole number >= 1")
const loadText = () =>
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`
if (!(scale > 0 && scale <= 1)) throw new Error("--scale must be in (0, 1]")
const VAULTS = 10
const TOTAL = Math.round(10_000 * scale)
const WRITES = Math.max(1, Math.round(300 * scale))
const OTHERS = Math.max(10, Math.round(4000 * scale))
const WINDOW_MS = 10_000
const agentBin = join(here, "..", "apps", "agent", "dist", "bin.js")

const { start } = await import("@kvdeploy/kv-emulator")
const x509 = await import("@peculiar/x509")
x509.cryptoProvider.set(webcrypto)

console.log(
  windows
    ? `agent-fleet: ${TOTAL} certificates over ${VAULTS} vaults (scale ${scale}); windows per vault: ${WRITES} imports, ${OTHERS} others / 10 s; agent concurrency ${concurrency}`
    : `agent-fleet: ${TOTAL} certificates over ${VAULTS} vaults (scale ${scale}); --no-windows: no throttling, for the memory figures; agent concurrency ${concurrency}`,
)
console.log(`  at start: ${loadText()}`)

// ---------- material ----------
const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" }
const pem = (label, der) =>
  `-----BEGIN ${label}-----\n${Buffer.from(der)
    .toString("base64")
    .match(/.{1,64}/g)
    .join("\n")}\n-----END ${label}-----\n`
const caKeys = await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])
const day = 86_400_000
const ca = await x509.X509CertificateGenerator.createSelfSigned({
  serialNumber: "01",
  name: "CN=agent-fleet bench CA",
  notBefore: new Date(Date.now() - day),
  notAfter: new Date(Date.now() + 3650 * day),
  signingAlgorithm: alg,
  keys: caKeys,
  extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
})
// Checked before any material is written.
const pfxWorkersText = process.env.KVDEPLOY_BENCH_EMULATOR_PFX_WORKERS
if (pfxWorkersText !== undefined && !(/^\d+$/.test(pfxWorkersText) && Number(pfxWorkersText) <= 64)) {
  console.error(
    `KVDEPLOY_BENCH_EMULATOR_PFX_WORKERS must be a whole number of worker threads from 0 to 64 (0 reads imports on the emulator's event loop), got "${pfxWorkersText}"`,
  )
  process.exit(2)
}
const pfxWorkersKnob = pfxWorkersText === undefined ? undefined : Number(pfxWorkersText)
const pfxWorkers = pfxWorkersKnob ?? 0
const work = mkdtempSync(join("/dev/shm", "kvdeploy-agent-fleet-"))
const genStarted = performance.now()
const deployments = []
for (let v = 0; v < VAULTS; v++) mkdirSync(join(work, `v${v}`))
for (let i = 0; i < TOTAL; i++) {
  const keys = await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (0x100000 + i).toString(16),
    subject: `CN=c${i}.fleet.example`,
    issuer: ca.subject,
    notBefore: new Date(Date.now() - day),
    notAfter: new Date(Date.now() + 90 * day),
    signingAlgorithm: alg,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: "dns", value: `c${i}.fleet.example` }])],
  })
  const v = i % VAULTS
  const base = join(work, `v${v}`, `c${i}`)
  writeFileSync(`${base}.crt`, `${cert.toString("pem")}\n`)
  writeFileSync(
    `${base}.key`,
    pem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)),
    { mode: 0o600 },
  )
  deployments.push({
    name: `c${i}`,
    vault: `fleet-${v}`,
    cert: `${base}.crt`,
    key: `${base}.key`,
    x5t: createHash("sha1").update(new Uint8Array(cert.rawData)).digest("base64url"),
  })
}
console.log(
  `  material: ${TOTAL} EC P-256 certificates written in ${((performance.now() - genStarted) / 1000).toFixed(1)} s`,
)

const emulator = await start({
  vaults: Array.from({ length: VAULTS }, (_, v) => `fleet-${v}`),
  throttling: windows ? { windowMs: WINDOW_MS, writes: WRITES, others: OTHERS } : false,
  // With the knob set, the emulator's warnings are printed: one says when the worker script is
  // missing and it reads imports on its event loop, whatever the knob asked for.
  warn: pfxWorkersKnob === undefined ? () => {} : (line) => console.log(`  emulator: ${line}`),
  pfxWorkers,
})
const yamlOf = (list) =>
  JSON.stringify({
    agent: {
      listen: "127.0.0.1:0",
      state_dir: join(work, "state"),
      concurrency,
      reconcile_interval_seconds: 86_400,
      vault_imports_per_window: windows ? Math.max(1, Math.floor(WRITES * 0.97)) : 1_000_000,
      vault_reads_per_window: windows ? Math.max(1, Math.floor(OTHERS * 0.97)) : 1_000_000,
      backoff_base_seconds: 1,
      backoff_max_seconds: 30,
      ...(listing ? {} : { vault_list_min_deployments: 0 }),
      ...(materialWorkers === undefined ? {} : { material_workers: materialWorkers }),
    },
    deployments: list.map((d) => ({
      name: d.name,
      source: { cert: d.cert, key: d.key },
      target: emulator.targetConfig(d.vault, d.name, "clientSecret"),
    })),
  })
const configPath = join(work, "agent.yaml")
writeFileSync(configPath, yamlOf(deployments))

// ---------- the agent ----------
const env = { ...process.env, ...emulator.env.clientSecret }
// As in apps/agent/deploy (systemd unit, Dockerfile, Kubernetes manifest): glibc malloc settings.
const AGENT_ENV = {
  MALLOC_ARENA_MAX: "2",
  MALLOC_TRIM_THRESHOLD_: "131072",
  MALLOC_MMAP_THRESHOLD_: "131072",
}
const agentLog = process.env.KVDEPLOY_BENCH_AGENT_LOG
const AGENT_FLAGS = [
  ...agentNodeFlags,
  ...(process.env.KVDEPLOY_BENCH_AGENT_FLAGS ?? "").split(" ").filter((f) => f !== ""),
]
console.log(
  `  agent: node ${AGENT_FLAGS.join(" ")} dist/bin.js, ${Object.entries(AGENT_ENV)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ")}; material_workers ${materialWorkers ?? "0 (the agent's default)"}`,
)
/** Start the agent with an inspector on a free loopback port (for the memory figures); answers its WebSocket URL. */
const startAgent = (extraFlags = []) => {
  const proc = spawn(
    process.execPath,
    [...AGENT_FLAGS, "--inspect=127.0.0.1:0", ...extraFlags, agentBin, "--config", configPath],
    { env: { ...env, ...AGENT_ENV }, stdio: ["ignore", "pipe", "pipe"] },
  )
  // The agent's own "idle: memory released after the pass" and "pass over" lines (its log is JSON lines on stdout).
  const releases = []
  const passes = []
  let partial = ""
  proc.stdout.on("data", (c) => {
    if (agentLog !== undefined) appendFileSync(agentLog, c)
    partial += c.toString()
    const lines = partial.split("\n")
    partial = lines.pop() ?? ""
    for (const l of lines) {
      if (l.includes('"idle: memory released after the pass"'))
        releases.push({ at: performance.now(), ...JSON.parse(l) })
      if (l.includes('"pass over"')) passes.push({ at: performance.now(), ...JSON.parse(l) })
    }
  })
  let err = ""
  const inspectorUrl = new Promise((resolve) => {
    proc.stderr.on("data", (c) => {
      const text = c.toString()
      if (err.length < 100_000) err += text
      const m = /Debugger listening on (ws:\/\/\S+)/.exec(err)
      if (m) resolve(m[1])
      // The inspector's own notices are not the agent's output.
      for (const l of text.split("\n"))
        if (
          l !== "" &&
          !/Debugger listening|Debugger ending|For help, see|Debugger attached|Waiting for the debugger/.test(
            l,
          )
        )
          process.stderr.write(`${l}\n`)
    })
  })
  return { proc, inspectorUrl, releases, passes }
}

/**
 * The agent's memory, idle: after `settleMs` (the agent releases memory on its own once a pass
 * is over), then after a full collection forced through the inspector.
 */
const idleMemory = async ({ proc, inspectorUrl, releases }, settleMs) => {
  await sleep(settleMs)
  const release = releases.at(-1)
  const ownRelease =
    release === undefined
      ? "the agent logged no release of memory yet"
      : `the agent's own release, ${releases.length} so far; the last ${((performance.now() - release.at) / 1000).toFixed(1)} s before this reading: ${release.rssBeforeMb} -> ${release.rssAfterMb} MB resident, ${release.gcMs} ms`
  const ws = new WebSocket(await inspectorUrl)
  await new Promise((resolve, reject) => {
    ws.onopen = resolve
    ws.onerror = reject
  })
  let id = 0
  const pending = new Map()
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data)
    pending.get(msg.id)?.(msg)
    pending.delete(msg.id)
  }
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      const i = ++id
      pending.set(i, resolve)
      ws.send(JSON.stringify({ id: i, method, params }))
    })
  const read = async () => {
    if (smapsDir !== undefined)
      writeFileSync(join(smapsDir, `smaps-${++smapsCount}.txt`), readFileSync(`/proc/${proc.pid}/smaps`))
    const r = await send("Runtime.evaluate", {
      expression: "JSON.stringify(process.memoryUsage())",
      returnByValue: true,
    })
    const u = JSON.parse(r.result.result.value)
    const mb = (b) => b / 1024 / 1024
    return {
      rss: rssMbOf(proc.pid),
      split: rssSplitOf(proc.pid),
      heapTotal: mb(u.heapTotal),
      heapUsed: mb(u.heapUsed),
      external: mb(u.external),
      arrayBuffers: mb(u.arrayBuffers),
      sockets: socketsOf(proc.pid),
    }
  }
  const settled = await read()
  await send("HeapProfiler.collectGarbage")
  await sleep(2000)
  const collected = await read()
  ws.close()
  return { settled, collected, ownRelease }
}
// KVDEPLOY_BENCH_SMAPS_DIR: a copy of the agent's /proc/<pid>/smaps at every memory reading
// (smaps-1.txt, smaps-2.txt, ... in reading order: settled, then collected, per idle point), to
// see which mappings hold the resident memory.
const smapsDir = process.env.KVDEPLOY_BENCH_SMAPS_DIR
let smapsCount = 0
const rssMbOf = (pid) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? "0") / 1024
/**
 * The resident memory split as Linux counts it: anonymous (V8's heap and code, malloc's arenas:
 * OpenSSL, buffers, Node's own) and file-backed (the node binary's and libraries' pages).
 */
const rssSplitOf = (pid) => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  const kb = (name) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? "0") / 1024
  return { anon: kb("RssAnon"), file: kb("RssFile") }
}
const socketsOf = (pid) => {
  let n = 0
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) n++
    } catch {}
  }
  return n
}
const memoryText = (m) =>
  `${m.rss.toFixed(0)} MB resident (${m.split.anon.toFixed(0)} anonymous, ${m.split.file.toFixed(0)} file-backed): V8 heap ${m.heapUsed.toFixed(0)} used of ${m.heapTotal.toFixed(0)} MB, external ${m.external.toFixed(0)} MB (array buffers ${m.arrayBuffers.toFixed(0)} MB), ${m.sockets} sockets`

const first = startAgent()
const child = first.proc
let port = 0
let outBuf = ""
child.stdout.on("data", (c) => {
  if (port !== 0) return
  outBuf += c.toString()
  const m = /Listening on http:\/\/[^:]+:(\d+)/.exec(outBuf)
  if (m) port = Number(m[1])
  if (outBuf.length > 1_000_000) outBuf = outBuf.slice(-10_000)
})
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
// A keep-alive connection the agent closed may reset: a failed poll is simply repeated.
const metricsPage = async () => {
  if (port === 0) return ""
  try {
    return await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  } catch {
    return ""
  }
}
const sum = (page, name, filter) =>
  page
    .split("\n")
    .filter((l) => l.startsWith(`${name}{`) && filter(l))
    .reduce((a, l) => a + Number(l.split(" ").at(-1)), 0)

// CPU seconds (user + system, every thread) of a process, from Linux's /proc (clock ticks of 1/100 s).
const cpuSecondsOf = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? []
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / 100
}
const ownCpuSeconds = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}
const coldStarted = performance.now()
const coldStartedEpoch = Date.now()
const coldMark = emulator.requests.mark()
const coldAgentCpu0 = cpuSecondsOf(child.pid)
const coldOwnCpu0 = ownCpuSeconds()
let succeeded = 0
// /readyz (cheap) until every deployment was attempted once, then /metrics (its page grows with
// the deployments: polling it every 500 ms cost the agent ~0.7 s of CPU in a 1,000-deployment
// cold pass) until every deploy succeeded.
const readyz = async () => {
  if (port === 0) return 0
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`)).status
  } catch {
    return 0
  }
}
while (true) {
  await sleep(250)
  if ((await readyz()) === 200) break
  if (performance.now() - coldStarted > 30 * 60_000) break
}
while (true) {
  const page = await metricsPage()
  succeeded = sum(page, "certctl_deploy_attempts_total", (l) => l.includes('result="succeeded"'))
  if (succeeded >= TOTAL) break
  if (performance.now() - coldStarted > 30 * 60_000) break
  await sleep(500)
}
const coldMs = performance.now() - coldStarted
// Where the cold pass's time went: the agent's CPU and this process's (the emulator, its PFX
// workers and this bench's polling), and when the first and last vault requests arrived.
const coldAgentCpu = cpuSecondsOf(child.pid) - coldAgentCpu0
const coldOwnCpu = ownCpuSeconds() - coldOwnCpu0
const vaultNames = new Set(Array.from({ length: VAULTS }, (_, v) => `fleet-${v}`))
const coldRequests = emulator.requests
  .entries({ since: coldMark })
  .filter((e) => !e.challenge && vaultNames.has(e.vault))
const perVaultImports = TOTAL / VAULTS
const lowerBoundMs = (perVaultImports / WRITES) * WINDOW_MS
const throttled = coldRequests.filter((e) => e.status === 429).length
const byOperation = {}
for (const e of coldRequests) byOperation[e.operation] = (byOperation[e.operation] ?? 0) + 1
const pageAfterCold = await metricsPage()
const notSucceeded = sum(
  pageAfterCold,
  "certctl_deploy_attempts_total",
  (l) => !l.includes('result="succeeded"') && !l.includes('result="skipped"'),
)
const vaultsServing = deployments.filter(
  (d) => (emulator.state.versions(d.vault, d.name)?.length ?? 0) >= 1,
).length
const failed = TOTAL - vaultsServing

// ---------- memory after the cold reconcile ----------
const afterCold = await idleMemory(first, 8000)

// ---------- no-change passes and the bare SDK baseline, interleaved ----------
// `rounds` rounds, each one agent pass (SIGHUP reloads the configuration and reconciles every
// deployment) and one baseline pass (a long-lived child process making the same number of bare
// SDK getCertificate calls at the same concurrency); the order alternates from round to round,
// so a trend in the machine's load falls on both. Each is timed by its own clock, from its start
// to its last answer: the agent's "pass over" duration, the baseline's time in its client. The
// goal's ratio is the median of the agent's passes over the median of the baseline's gets. When the
// agent lists its vaults, the baseline also makes the same list requests after its gets (its list
// pass: every vault's pages, each entry compared with the source's thumbprint), and a second ratio
// compares the agent with that: the same requests (the agent's pass also checks every source's
// files and records every outcome, which the bare listing does not).
const job = join(work, "baseline.json")
writeFileSync(
  job,
  JSON.stringify({
    tenantId: emulator.clientSecret.tenantId,
    clientId: emulator.clientSecret.clientId,
    clientSecret: emulator.clientSecret.clientSecret,
    authorityHost: emulator.authorityHost,
    vaultUrls: Array.from({ length: VAULTS }, (_, v) => emulator.vault(`fleet-${v}`).url),
    names: deployments.map((d) => d.name),
    x5ts: deployments.map((d) => d.x5t),
    concurrency,
  }),
)
const baselineProc = spawn(process.execPath, [fileURLToPath(import.meta.url), "--baseline", job], {
  env,
  cwd: here,
  stdio: ["pipe", "pipe", "inherit"],
})
const baselineAnswers = []
const baselineWaiters = []
let baselineOut = ""
baselineProc.stdout.on("data", (c) => {
  baselineOut += c
  const lines = baselineOut.split("\n")
  baselineOut = lines.pop() ?? ""
  for (const l of lines) {
    const waiter = baselineWaiters.shift()
    if (waiter) waiter(JSON.parse(l))
    else baselineAnswers.push(JSON.parse(l))
  }
})
const baselineAnswer = () =>
  baselineAnswers.length > 0
    ? Promise.resolve(baselineAnswers.shift())
    : new Promise((resolve) => baselineWaiters.push(resolve))
const baselineAsk = (command) => {
  baselineProc.stdin.write(`${command}\n`)
  return baselineAnswer()
}
await baselineAnswer() // warmed up
/** Wait until the emulator's window has room for one more pass of every vault (and at least `minMs`). */
const perVaultPass = TOTAL / VAULTS
const waitForRoom = async (minMs) => {
  await sleep(minMs)
  while (true) {
    const since = Date.now() - WINDOW_MS - 500
    const recent = emulator.requests
      .entries({ since: coldMark })
      .filter((e) => !e.challenge && vaultNames.has(e.vault) && e.time >= since).length
    if (recent / VAULTS + perVaultPass <= OTHERS * 0.9) return
    await sleep(250)
  }
}
const spanOf = (entries) => (entries.length < 2 ? 0 : entries.at(-1).time - entries[0].time)
const agentPass = async () => {
  const mark = emulator.requests.mark()
  const before = first.passes.length
  const signalled = performance.now()
  child.kill("SIGHUP")
  // The agent logs "pass over" once every deployment's attempt of the reload's pass ended, with the
  // pass's own duration (from its start, after the reload, to its last deployment): polled gently
  // (the emulator shares this process).
  let over
  while (over === undefined) {
    await sleep(100)
    over = first.passes.slice(before).find((p) => p.reason === "reload")
    if (performance.now() - signalled > 10 * 60_000) throw new Error("no pass over line within 10 minutes")
  }
  const wallMs = performance.now() - signalled
  await sleep(300)
  const entries = emulator.requests
    .entries({ since: mark })
    .filter((e) => !e.challenge && vaultNames.has(e.vault))
  return {
    passMs: over.durationMs,
    inPlace: over.inPlace,
    fromList: over.inPlaceFromList,
    listPages: over.listPages,
    spanMs: spanOf(entries),
    wallMs,
    requests: entries.length,
    gets: entries.filter((e) => e.operation === "getLatest").length,
    writes: entries.filter((e) => e.method !== "GET").length,
  }
}
const baselinePass = async () => {
  const mark = emulator.requests.mark()
  const r = await baselineAsk("run")
  const entries = emulator.requests
    .entries({ since: mark })
    .filter((e) => !e.challenge && vaultNames.has(e.vault))
  return { spanMs: spanOf(entries), clientMs: r.ms, errors: r.errors, requests: entries.length }
}
// The bare SDK doing the agent's listing work (when the agent lists): every vault's pages.
const baselineListPass = async () => {
  const r = await baselineAsk("list")
  return { clientMs: r.ms, errors: r.errors, requests: r.requests, matched: r.matched }
}
const baselineListPasses = []
const agentPasses = []
const baselinePasses = []
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? ["agent", "baseline"] : ["baseline", "agent"]
  for (const which of order) {
    // At least 4 s apart: the agent's own collection (3 s after its pass) is not in the next pass.
    await waitForRoom(4000)
    if (which === "agent") agentPasses.push({ ...(await agentPass()), load: loadavg()[0] })
    else {
      baselinePasses.push({ ...(await baselinePass()), load: loadavg()[0] })
      if (listing) baselineListPasses.push({ ...(await baselineListPass()), load: loadavg()[0] })
    }
  }
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}
// Each side's pass timed by its own clock, from its start to its last deployment's answer: the agent's
// "pass over" duration (the reload before it excluded) and the baseline's time in its client. (The
// emulator's first-to-last request span, the earlier measure, ends with the agent's last list page
// when the agent lists: it would leave out the comparisons made after it.)
const passMedianMs = median(agentPasses.map((p) => p.passMs))
const baselineMedianMs = median(baselinePasses.map((p) => p.clientMs))
const baselineListMedianMs = listing ? median(baselineListPasses.map((p) => p.clientMs)) : Number.NaN
const passWrites = agentPasses.reduce((a, p) => a + p.writes, 0)

// ---------- memory after the no-change passes ----------
const afterPass = await idleMemory(first, 8000)
const baselineRssMb = (await baselineAsk("memory")).rssMb
baselineProc.stdin.end()
await new Promise((r) => baselineProc.on("close", r))

child.kill("SIGTERM")
const exitCode = await new Promise((r) => child.on("close", (code) => r(code)))

// A restarted agent (same state directory) with every deployment configured and in place: idle memory, and no writes.
const restartMark = emulator.requests.mark()
const snapshot = process.env.KVDEPLOY_BENCH_HEAPSNAPSHOT_DIR
const secondAgent = startAgent(
  snapshot === undefined ? [] : ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${snapshot}`],
)
const second = secondAgent.proc
let port2 = 0
let buf2 = ""
second.stdout.on("data", (c) => {
  if (port2 !== 0) return
  buf2 += c.toString()
  const m = /Listening on http:\/\/[^:]+:(\d+)/.exec(buf2)
  if (m) port2 = Number(m[1])
})
const restartStarted = performance.now()
while (true) {
  await sleep(500)
  if (
    port2 !== 0 &&
    (await fetch(`http://127.0.0.1:${port2}/readyz`).then(
      (r) => r.status,
      () => 0,
    )) === 200
  )
    break
  if (performance.now() - restartStarted > 10 * 60_000) break
}
const restartReadyMs = performance.now() - restartStarted
const restarted = await idleMemory(secondAgent, 8000)
if (snapshot !== undefined) {
  second.kill("SIGUSR2")
  await sleep(5000)
}
const restartWrites = emulator.requests
  .entries({ since: restartMark })
  .filter((e) => vaultNames.has(e.vault) && e.method !== "GET" && !e.challenge).length
second.kill("SIGTERM")
await new Promise((r) => second.on("close", r))
await emulator.stop()
rmSync(work, { recursive: true, force: true })

// ---------- figures ----------
const ratioCold = coldMs / lowerBoundMs
const requestsPerDeploy = coldRequests.length / TOTAL
const ratioPass = passMedianMs / baselineMedianMs
const line = (label, value, goal, met) =>
  console.log(
    `  ${label.padEnd(58)} ${value.padStart(14)}   goal ${goal.padEnd(8)} ${met ? "MET" : "NOT MET"}`,
  )
console.log(
  `results (scale ${scale}: ${TOTAL} certificates, ${VAULTS} vaults, ${perVaultImports} imports per vault, concurrency ${concurrency}, ${listing ? "vault lists on" : "--no-list: every deployment reads its own certificate"}):`,
)
if (windows)
  line(
    `cold reconcile ${(coldMs / 1000).toFixed(1)} s / lower bound ${(lowerBoundMs / 1000).toFixed(1)} s`,
    ratioCold.toFixed(2),
    "<= 1.1",
    ratioCold <= 1.1,
  )
else
  console.log(
    `  cold reconcile ${(coldMs / 1000).toFixed(1)} s (--no-windows: no lower bound, not a goal figure)`,
  )
line("failed deploys (certificates not in their vault)", String(failed), "0", failed === 0)
line("deploy outcomes other than Succeeded", String(notSucceeded), "0", notSucceeded === 0)
line("429s received", String(throttled), "~0", throttled <= Math.ceil(TOTAL * 0.001))
line(
  `vault requests per deploy (${coldRequests.length} / ${TOTAL})`,
  requestsPerDeploy.toFixed(2),
  "3",
  requestsPerDeploy <= 3.05,
)
console.log(`    (cold requests by operation: ${JSON.stringify(byOperation)})`)
{
  const times = coldRequests.map((e) => e.time)
  const firstS = times.length > 0 ? (Math.min(...times) - coldStartedEpoch) / 1000 : Number.NaN
  const lastS = times.length > 0 ? (Math.max(...times) - coldStartedEpoch) / 1000 : Number.NaN
  const coldS = coldMs / 1000
  console.log(
    `    (cold CPU: agent ${coldAgentCpu.toFixed(1)} s = ${((coldAgentCpu * 1000) / TOTAL).toFixed(2)} ms per deploy, emulator process (pfxWorkers ${pfxWorkers}) ${coldOwnCpu.toFixed(1)} s = ${((coldOwnCpu * 1000) / TOTAL).toFixed(2)} ms per deploy; cores used ${((coldAgentCpu + coldOwnCpu) / coldS).toFixed(2)} of 2; first vault request at ${firstS.toFixed(1)} s, last at ${lastS.toFixed(1)} s)`,
  )
}
const agentRequests = median(agentPasses.map((p) => p.requests))
line(
  `no-change pass ${(passMedianMs / 1000).toFixed(2)} s (${agentRequests} requests) / bare SDK ${(baselineMedianMs / 1000).toFixed(2)} s (${TOTAL} gets) (medians of ${rounds})`,
  ratioPass.toFixed(2),
  "<= 1.2",
  ratioPass <= 1.2,
)
for (let r = 0; r < rounds; r++) {
  const a = agentPasses[r]
  const b = baselinePasses[r]
  console.log(
    `    (round ${r + 1}, ${r % 2 === 0 ? "agent first" : "baseline first"}: agent ${(a.passMs / 1000).toFixed(2)} s (${a.inPlace} in place, ${a.fromList} of them from ${a.listPages} list pages; ${a.requests} requests, ${a.gets} gets, ${a.writes} writes; first to last request ${(a.spanMs / 1000).toFixed(2)} s, ${(a.wallMs / 1000).toFixed(2)} s from SIGHUP, reload included; load ${a.load.toFixed(2)}), bare SDK ${(b.clientMs / 1000).toFixed(2)} s (${b.requests} requests, first to last ${(b.spanMs / 1000).toFixed(2)} s, ${b.errors} errors; load ${b.load.toFixed(2)}): ${(a.passMs / b.clientMs).toFixed(2)})`,
  )
}
if (listing) {
  const l = baselineListPasses
  // The bare listing must have found every source in place, as the agent did: otherwise it did other work.
  const short = l.filter((p) => p.matched !== TOTAL || p.errors > 0)
  if (short.length > 0)
    console.log(
      `    (WARNING: ${short.length} bare listing pass(es) matched fewer than ${TOTAL} certificates or failed: the same-requests ratio below is not comparable)`,
    )
  console.log(
    `    (same requests: no-change pass ${(passMedianMs / 1000).toFixed(2)} s / bare SDK listing every vault ${(baselineListMedianMs / 1000).toFixed(2)} s (${l.map((p) => `${p.requests} requests, ${p.matched} matched, ${p.errors} errors, ${(p.clientMs / 1000).toFixed(2)} s`).join("; ")}) = ${(passMedianMs / baselineListMedianMs).toFixed(2)}; the agent also checks every deployment's source files (a stat each) and records its outcome, state and metrics, which the bare listing does not)`,
  )
}
console.log(`    (no-change passes: ${passWrites} writes in all)`)
for (const [label, m] of [
  ["after the cold reconcile", afterCold],
  ["after the no-change pass", afterPass],
  ["restarted agent (all in place)", restarted],
]) {
  line(`idle resident memory, ${label}`, `${m.settled.rss.toFixed(0)} MB`, "< 200 MB", m.settled.rss < 200)
  console.log(`    (settled 8 s: ${memoryText(m.settled)})`)
  console.log(`    (${m.ownRelease})`)
  console.log(`    (then a forced full collection: ${memoryText(m.collected)})`)
}
console.log(
  `    (for scale: the bare SDK baseline process, ${VAULTS} clients after its ${rounds} passes of ${TOTAL} gets, idle: ${baselineRssMb.toFixed(0)} MB resident)`,
)
console.log(`    (restart: ready after ${(restartReadyMs / 1000).toFixed(1)} s, ${restartWrites} writes)`)
console.log(`  agent exit code on SIGTERM: ${exitCode}`)
console.log(`  at the end: ${loadText()}`)
