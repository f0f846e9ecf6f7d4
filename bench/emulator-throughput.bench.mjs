// kv-emulator throughput on loopback, against a bare node:https server measured in the same run.
//
// Processes and cores. Each server runs in its own child process (this file re-run with
// --child): the emulator (its main thread and its PFX worker threads) and the bare baseline.
// This process is only the load generator (and, before any timing, the material builder): it
// sends pre-built bodies (Buffers made before timing) over keep-alive node:https agents, the
// transport the SDK's pipeline uses, and reads the answers. No server code runs in it. The
// machine has 2 cores; the OS shares them between the load generator, the server under test
// and whatever else runs on the machine. So that the share is seen rather than guessed, every
// server's row prints the CPU it used (its process.cpuUsage over IPC: every thread, workers
// included) and the CPU this load generator used (its own process.cpuUsage) during that server's
// rounds, per answer and in cores (1.00 = one core busy the whole wall time), the server's split
// into its main thread and its other threads (PFX workers, GC helpers) read from Linux's /proc.
//
//   get-latest: GET /certificates/bench/?api-version=2025-07-01, authenticated (token verified,
//               RBAC, throttling window off, request logged), vs. the baseline answering the
//               same-size fixed body.
//   import:     POST /certificates/{n}/import, spread over 10 vaults (4 clients each), throttling
//               off (Key Vault itself caps imports at 300 per 10 s per vault = 30/s), vs. the
//               baseline reading the same bodies and answering a fixed body. Three kinds of body:
//               - pfx-2048:  a password-protected PFX as OpenSSL 3 writes it by default (PBES2
//                            AES-256-CBC, PBKDF2-SHA-256 and a SHA-256 MAC, 2048 iterations),
//                            written by @kvdeploy/pkcs12 - what an ordinary client sends;
//               - pfx-1:     kvdeploy's own transport PFX (@kvdeploy/core `transportPfxOptions`:
//                            same algorithms, blank password, 1 KDF/MAC iteration) with the
//                            import policy kvdeploy's adapter sends;
//               - pem:       PKCS#8 key + certificate as PEM text.
//               Every import sends a DIFFERENT certificate: a fresh RSA-2048 key per index, and
//               per kind its own self-signed certificate for it (own name and serial), all built
//               before any timing. No body is sent twice to the emulator, so no cache keyed by
//               the bytes can help. Each round sends warm-up + measured + in-flight bodies; the
//               rate counts the answers between the end of the warm-up and the moment the last
//               body was sent (every client busy the whole time). Before its rounds of a kind,
//               every server reads KVDEPLOY_BENCH_WARM_IMPORTS (default 200 per PFX worker) other distinct
//               bodies once, untimed (rate printed): the rounds measure the steady state of a
//               long-running emulator, not V8 compiling the decoder.
//
// Goals: >= 2,000 authenticated get-latest/s; import > 30/s per vault across 10 vaults (10 vaults
// served at once, each above 30/s: > 300/s in all). Printed honestly per kind: met or not.
//
// Knobs (environment): KVDEPLOY_BENCH_ROUNDS (rounds per server, default 3), KVDEPLOY_BENCH_SECONDS
// (get-latest window per round, default 2),
// KVDEPLOY_BENCH_IMPORTS (measured imports per round, default 300), KVDEPLOY_BENCH_ONLY (a comma
// list of sections: get,pfx-2048,pfx-1,pem; default all), KVDEPLOY_BENCH_PFX_WORKERS (the
// emulator's pfxWorkers option; unset: its default), KVDEPLOY_BENCH_COMPARE_PFX_WORKERS (a comma
// list: one more emulator process per value with that pfxWorkers, driven with the same bodies in
// the same import rounds, e.g. "0,1" to see what the pool brings), KVDEPLOY_BENCH_EMULATOR_NODE_FLAGS
// (extra node flags for the emulator children, e.g. "--cpu-prof --cpu-prof-dir=/dev/shm/prof"),
// KVDEPLOY_BENCH_COMPARE_EMULATOR (the path of another build's module exporting `start`, e.g. an
// older commit's packages/kv-emulator/dist/index.js: one more emulator process running that build,
// default pfxWorkers, driven with the same bodies in the same rounds: a before/after in one run).
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import * as https from "node:https"
import { cpus, loadavg } from "node:os"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"

const VAULTS = 10
const DURATION_MS = Number(process.env.KVDEPLOY_BENCH_SECONDS ?? "2") * 1000
const WARMUP_MS = 800
const CONCURRENCY_GET = 32
const CONCURRENCY_IMPORT = 4 // per vault
const IMPORT_CONCURRENCY = VAULTS * CONCURRENCY_IMPORT
const IMPORTS = Number(process.env.KVDEPLOY_BENCH_IMPORTS ?? "300")
const IMPORT_WARMUP = 40
const ROUNDS = Number(process.env.KVDEPLOY_BENCH_ROUNDS ?? "3")
const PFX_WORKERS = process.env.KVDEPLOY_BENCH_PFX_WORKERS
const COMPARE_PFX_WORKERS = (process.env.KVDEPLOY_BENCH_COMPARE_PFX_WORKERS ?? "")
  .split(",")
  .map((s) => s.trim())
  .filter((s) => s.length > 0)
// Distinct bodies every server reads once per import kind before its timed rounds (untimed, its
// rate printed): an emulator's first ~150 reads per PFX worker run before V8 has optimised
// the decoder (an earlier session measured about 6 ms of CPU each against about 3.6 ms once
// warm), which the 40-import warm-up of a round does not cover. Default: 200 per worker of the
// server with the most workers (the emulator's default is min(2, cores); 0 workers read in the
// event loop).
//
// What "other threads" per pfx-2048 answer holds, measured on this 2-core machine with the
// same build at the same time (PFX worker threads and V8's helpers told apart by their
// /proc/<pid>/task/<tid>/comm): the worker's own readMaterial (a warm read, 3.3-3.9 ms when
// looped inside a worker), plus ~0.15-0.4 ms for the request and the material crossing by
// postMessage (the same bodies through the emulator's PfxPool), plus 0.5-0.9 ms of V8 helper
// threads (parallel scavenges, concurrent marking) that no single thread's CPU clock shows. The
// machine's own speed drifts too: a fixed workload (PBKDF2-SHA-256 100,000 iterations; a
// JavaScript loop) took 12.9 to 21.9 ms (110 to 154 ms) within one hour on the same Node, so a
// per-read figure from one run and a per-answer figure from another can differ by that much:
// compare builds in one run (KVDEPLOY_BENCH_COMPARE_EMULATOR).
const MOST_WORKERS = Math.max(
  1,
  ...[PFX_WORKERS ?? "", ...COMPARE_PFX_WORKERS].map((w) =>
    w === "" ? Math.min(2, cpus().length) : Number(w),
  ),
)
const WARM_IMPORTS = Number(process.env.KVDEPLOY_BENCH_WARM_IMPORTS ?? String(200 * MOST_WORKERS))
const COMPARE_EMULATOR = process.env.KVDEPLOY_BENCH_COMPARE_EMULATOR ?? ""
const EMULATOR_NODE_FLAGS = (process.env.KVDEPLOY_BENCH_EMULATOR_NODE_FLAGS ?? "")
  .split(" ")
  .filter((f) => f.length > 0)
const SECTIONS = ["get", "pfx-2048", "pfx-1", "pem"]
const ONLY = (process.env.KVDEPLOY_BENCH_ONLY ?? SECTIONS.join(","))
  .split(",")
  .map((s) => s.trim())
  .filter((s) => s.length > 0)
for (const s of ONLY)
  if (!SECTIONS.includes(s))
    throw new Error(`KVDEPLOY_BENCH_ONLY: unknown section ${s} (use ${SECTIONS.join(",")})`)

// ---------- child processes ----------
if (process.argv[2] === "--child") {
  const kind = process.argv[3]
  // The parent asks for this process's CPU time (every thread).
  process.on("message", (m) => {
    if (m === "cpu") process.send?.({ cpu: process.cpuUsage() })
  })
  if (kind === "emulator") {
    const module =
      process.argv[5] !== undefined && process.argv[5] !== "" ? process.argv[5] : "@kvdeploy/kv-emulator"
    const { start } = await import(module)
    const emulator = await start({
      vaults: Array.from({ length: VAULTS }, (_, i) => `bench-${i}`),
      throttling: false,
      // Every import sends a distinct PFX anyway; the cache is off so it cannot even be consulted.
      pfxDecodeCache: false,
      ...(process.argv[4] !== undefined && process.argv[4] !== ""
        ? { pfxWorkers: Number(process.argv[4]) }
        : {}),
      warn: () => {},
    })
    globalThis.stopChild = () => emulator.stop()
    process.stdout.write(
      `${JSON.stringify({
        vaults: emulator.vaults,
        caPem: emulator.caPem,
        authorityHost: emulator.authorityHost,
        tenantId: emulator.tenantId,
        clientId: emulator.clientSecret.clientId,
        clientSecret: emulator.clientSecret.clientSecret,
      })}\n`,
    )
  } else {
    const { createTlsIdentity } = await import("@kvdeploy/kv-emulator")
    const tls = await createTlsIdentity([])
    const body = process.argv[4] ?? "{}"
    const server = https.createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
      req.resume()
      req.on("end", () => {
        res.writeHead(200, {
          "Content-Type": "application/json; charset=utf-8",
          "Content-Length": Buffer.byteLength(body),
        })
        res.end(body)
      })
    })
    server.keepAliveTimeout = 65_000
    server.listen(0, "127.0.0.1", () => {
      process.stdout.write(`${JSON.stringify({ port: server.address().port, caPem: tls.caPem })}\n`)
    })
  }
  process.on("SIGTERM", () => {
    void Promise.resolve(globalThis.stopChild?.()).then(() => process.exit(0))
  })
  await new Promise(() => {})
}

// ---------- helpers ----------
const child = (args, nodeFlags = []) =>
  new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...nodeFlags, fileURLToPath(import.meta.url), "--child", ...args], {
      stdio: ["ignore", "pipe", "inherit", "ipc"],
    })
    let buf = ""
    p.stdout.on("data", (c) => {
      buf += c.toString()
      const nl = buf.indexOf("\n")
      if (nl >= 0) resolve({ proc: p, info: JSON.parse(buf.slice(0, nl)) })
    })
    p.on("exit", (code) => reject(new Error(`child ${args.join(" ")} exited ${code}`)))
  })

/** CPU microseconds (user + system, every thread) of a child. */
const childCpu = (proc) =>
  new Promise((resolve) => {
    proc.once("message", (m) => resolve({ us: m.cpu.user + m.cpu.system }))
    proc.send("cpu")
  })
/**
 * CPU microseconds of a process's main thread (the thread whose id is the pid), from Linux's
 * /proc/<pid>/task/<pid>/stat (utime + stime, in clock ticks of 10 ms); undefined elsewhere.
 * The rest of a process's CPU is its other threads: PFX workers, V8's GC helpers, libuv's pool.
 */
const mainThreadCpu = (pid) => {
  try {
    const fields = readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? []
    return (Number(fields[11]) + Number(fields[12])) * 10_000
  } catch {
    return undefined
  }
}
const ownCpu = () => {
  const c = process.cpuUsage()
  return c.user + c.system
}

/** One request; the answer's body is kept only when asked for or when the status is not 2xx (the loops only count statuses). */
const request = (agent, url, { method = "GET", headers = {}, body, keepBody = false }) =>
  new Promise((resolve, reject) => {
    const req = https.request(url, { method, agent, headers }, (res) => {
      const chunks = []
      const status = res.statusCode ?? 0
      if (keepBody || status < 200 || status > 299) res.on("data", (c) => chunks.push(c))
      else res.resume()
      res.on("end", () => resolve({ status, chunks }))
    })
    req.on("error", reject)
    if (body !== undefined) req.end(body)
    else req.end()
  })
const textOf = (r) => Buffer.concat(r.chunks).toString("utf8")

/** Runs `concurrency` loops of `once` for the duration after a warm-up; returns completed-with-expected-status per second and the number of answers (warm-up included). */
const load = async (concurrency, once, expectStatus) => {
  let counting = false
  let ok = 0
  let bad = 0
  let stop = false
  let answered = 0
  const loop = async (i) => {
    while (!stop) {
      const r = await once(i)
      answered++
      if (counting) {
        if (r.status === expectStatus) ok++
        else bad++
      }
    }
  }
  const loops = Array.from({ length: concurrency }, (_, i) => loop(i))
  await new Promise((r) => setTimeout(r, WARMUP_MS))
  counting = true
  const t0 = performance.now()
  await new Promise((r) => setTimeout(r, DURATION_MS))
  counting = false
  const seconds = (performance.now() - t0) / 1000
  stop = true
  await Promise.all(loops)
  if (bad > 0) console.log(`  (${bad} answers with an unexpected status)`)
  return { rate: ok / seconds, answered }
}

/**
 * Runs `bodies` through `concurrency` loops, each body sent once. The first `warmup` answers
 * are not counted; the window then runs until the last body is sent (so every loop is busy
 * throughout). Returns answers with the expected status per second in the window.
 */
const loadQueue = async (concurrency, bodies, warmup, once, expectStatus) => {
  let next = 0
  let done = 0
  let ok = 0
  let bad = 0
  let t0 = warmup === 0 ? performance.now() : 0
  let t1 = 0
  let counting = warmup === 0
  const loop = async (slot) => {
    for (;;) {
      const i = next++
      if (i >= bodies.length) {
        if (counting) {
          counting = false
          t1 = performance.now()
        }
        return
      }
      const r = await once(slot, bodies[i])
      done++
      if (counting) {
        if (r.status === expectStatus) ok++
        else {
          bad++
          if (bad === 1) console.log(`  first unexpected answer: ${r.status} ${textOf(r).slice(0, 300)}`)
        }
      } else if (t1 === 0 && r.status !== expectStatus && done <= warmup) {
        console.log(`  warm-up answer: ${r.status} ${textOf(r).slice(0, 300)}`)
      }
      if (done === warmup) {
        counting = true
        t0 = performance.now()
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, slot) => loop(slot)))
  if (bad > 0) console.log(`  (${bad} answers with an unexpected status)`)
  if (t1 <= t0) throw new Error("import round too short: raise KVDEPLOY_BENCH_IMPORTS")
  return { rate: ok / ((t1 - t0) / 1000), answered: done }
}

/**
 * Rounds against one server process: the rates, and the CPU (user + system) that server
 * (every thread) and this load generator used while its rounds ran, over the answers they
 * produced (warm-up included) and over the wall time.
 */
const meter = (name, proc) => {
  const m = { name, rates: [], wallUs: 0, answered: 0, clientUs: 0, serverUs: 0, mainUs: 0 }
  m.run = async (f) => {
    const c0 = await childCpu(proc)
    const main0 = mainThreadCpu(proc.pid)
    const o0 = ownCpu()
    const t0 = performance.now()
    const { rate, answered } = await f()
    m.wallUs += (performance.now() - t0) * 1000
    m.clientUs += ownCpu() - o0
    const c1 = await childCpu(proc)
    const main1 = mainThreadCpu(proc.pid)
    m.serverUs += c1.us - c0.us
    m.mainUs = main0 === undefined || main1 === undefined ? Number.NaN : m.mainUs + main1 - main0
    m.answered += answered
    m.rates.push(rate)
  }
  m.median = () => median(m.rates)
  const ms = (us) => (us / m.answered / 1000).toFixed(2)
  m.line = () =>
    `    ${m.name.padEnd(28)} ${m.rates.map((x) => x.toFixed(0).padStart(5)).join(",")} req/s; CPU per answer: server ${ms(m.serverUs)} ms (main thread ${ms(m.mainUs)}, other threads ${ms(m.serverUs - m.mainUs)}), load generator ${ms(m.clientUs)} ms; cores used: server ${(m.serverUs / m.wallUs).toFixed(2)}, load generator ${(m.clientUs / m.wallUs).toFixed(2)}`
  return m
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

// ---------- material: a fresh key per index, a certificate per kind, built before any timing ----------
const IMPORT_KINDS = ["pfx-2048", "pfx-1", "pem"].filter((k) => ONLY.includes(k))
const { generateKey, issue, toPem } = await import("@kvdeploy/pkcs12/testing")
const { encodePfx } = await import("@kvdeploy/pkcs12")
const { transportPfxOptions } = await import("@kvdeploy/core")
const Effect = await import("effect/Effect")
const Redacted = await import("effect/Redacted")
const PER_ROUND = IMPORT_WARMUP + IMPORTS + IMPORT_CONCURRENCY
// Only the seed when no import section runs.
const MATERIALS = IMPORT_KINDS.length > 0 ? 1 + ROUNDS * PER_ROUND + WARM_IMPORTS : 1
const KEY_USAGE = 1 | 4 // digitalSignature | keyEncipherment
const SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
// The policy kvdeploy's adapter puts in its import body (@kvdeploy/azure-kv importPolicyFor).
const KVDEPLOY_POLICY = {
  key_props: { exportable: true, kty: "RSA", key_size: 2048, reuse_key: false },
  secret_props: { contentType: "application/x-pkcs12" },
  lifetime_actions: [{ trigger: { lifetime_percentage: 80 }, action: { action_type: "EmailContacts" } }],
  issuer: { name: "Unknown" },
  attributes: { enabled: true },
}
const certFor = (key, name) =>
  issue({
    subject: `CN=${name}`,
    key,
    sans: [{ type: "dns", value: name }],
    keyUsage: KEY_USAGE,
    extendedKeyUsage: [SERVER_AUTH],
    notAfter: new Date(Date.now() + 30 * 86_400_000),
  })
const pfxOf = (key, der, options) =>
  Effect.runPromise(encodePfx({ leaf: der, chain: [], key: Redacted.make(key.pkcs8) }, options))
const buildOne = async (i) => {
  const key = await generateKey("RSA-2048")
  const out = {}
  for (const kind of i === 0 ? ["pfx-2048"] : IMPORT_KINDS) {
    const der = await certFor(key, `bench-${kind}-${i}.example.test`)
    let body
    if (kind === "pfx-2048") {
      const pfx = await pfxOf(key, der, { encoding: "modern", password: Redacted.make("bench") })
      body = { value: Buffer.from(pfx).toString("base64"), pwd: "bench", tags: { bench: "yes" } }
    } else if (kind === "pfx-1") {
      const pfx = await pfxOf(key, der, transportPfxOptions("modern"))
      body = {
        value: Buffer.from(pfx).toString("base64"),
        pwd: "",
        policy: KVDEPLOY_POLICY,
        tags: { bench: "yes" },
      }
    } else {
      body = {
        value: toPem("PRIVATE KEY", key.pkcs8) + toPem("CERTIFICATE", der),
        policy: { secret_props: { contentType: "application/x-pem-file" } },
        tags: { bench: "yes" },
      }
    }
    out[kind] = Buffer.from(JSON.stringify(body))
  }
  return out
}
const built = performance.now()
const materials = new Array(MATERIALS)
{
  let nextMaterial = 0
  const builders = Array.from({ length: 4 }, async () => {
    for (;;) {
      const i = nextMaterial++
      if (i >= MATERIALS) return
      materials[i] = await buildOne(i)
    }
  })
  await Promise.all(builders)
}
for (const kind of IMPORT_KINDS) {
  const all = materials.slice(1).map((m) => m[kind].toString("latin1"))
  if (new Set(all).size !== all.length) throw new Error(`the bench built the same ${kind} body twice`)
}
console.log(
  `${MATERIALS} fresh RSA-2048 keys, each with a certificate per kind (${IMPORT_KINDS.join(", ") || "none"}), built in ${((performance.now() - built) / 1000).toFixed(1)} s before timing`,
)
const seedBody = materials[0]["pfx-2048"]
const roundBodies = (kind, r) =>
  materials.slice(1 + r * PER_ROUND, 1 + (r + 1) * PER_ROUND).map((m) => m[kind])
const warmBodies = (kind) => materials.slice(1 + ROUNDS * PER_ROUND).map((m) => m[kind])

// ---------- servers up; rounds alternate so every server sees the same machine load ----------
/** An emulator child with `workers` PFX workers ("" for its default), a token and an agent. */
const emulatorSession = async (workers, module = "") => {
  const emu = await child(["emulator", workers, module], EMULATOR_NODE_FLAGS)
  const info = emu.info
  const agent = new https.Agent({ keepAlive: true, maxSockets: 256, ca: info.caPem })
  const tokenRes = await request(agent, `${info.authorityHost}/${info.tenantId}/oauth2/v2.0/token`, {
    method: "POST",
    keepBody: true,
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      client_id: info.clientId,
      client_secret: info.clientSecret,
      scope: "https://vault.azure.net/.default",
      grant_type: "client_credentials",
    }).toString(),
  })
  const token = JSON.parse(textOf(tokenRes)).access_token
  const auth = { Authorization: `Bearer ${token}` }
  // One URL and header object per client slot, made once.
  const importTargets = (prefix) =>
    Array.from({ length: IMPORT_CONCURRENCY }, (_, slot) => ({
      url: `${info.vaults[slot % VAULTS].url}/certificates/${prefix}-${slot}/import?api-version=2025-07-01`,
      headers: { ...auth, "content-type": "application/json" },
    }))
  const importOnce = (prefix) => {
    const targets = importTargets(prefix)
    return (slot, body) => {
      const t = targets[slot]
      return request(agent, t.url, { method: "POST", headers: t.headers, body })
    }
  }
  const stop = async () => {
    agent.destroy()
    emu.proc.removeAllListeners("exit")
    const exited = new Promise((r) => emu.proc.once("exit", r))
    emu.proc.kill("SIGTERM")
    await exited
  }
  const label = `${workers === "" ? "default" : workers}${module === "" ? "" : ` (${module})`}`
  return { label, proc: emu.proc, info, agent, auth, importOnce, stop }
}
const main = await emulatorSession(PFX_WORKERS ?? "")
// Optionally more emulators with other pfxWorkers, measured in the same import rounds.
const compares = []
for (const w of COMPARE_PFX_WORKERS) compares.push(await emulatorSession(w))
if (COMPARE_EMULATOR !== "") compares.push(await emulatorSession("", COMPARE_EMULATOR))
const { info, agent, auth } = main
const v0 = info.vaults[0].url
const seed = await request(agent, `${v0}/certificates/bench/import?api-version=2025-07-01`, {
  method: "POST",
  headers: { ...auth, "content-type": "application/json" },
  body: seedBody,
})
if (seed.status !== 200) throw new Error(`seed import failed: ${seed.status} ${textOf(seed)}`)
const getUrl = `${v0}/certificates/bench/?api-version=2025-07-01`
const sampleGet = await request(agent, getUrl, { headers: auth, keepBody: true })
const unauth = await request(agent, getUrl, {})
if (unauth.status !== 401) throw new Error("the emulator did not challenge an unauthenticated request")

const base = await child(["baseline", textOf(sampleGet)])
const bagent = new https.Agent({ keepAlive: true, maxSockets: 256, ca: base.info.caPem })
const baseUrl = `https://127.0.0.1:${base.info.port}`

console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")} at the start; ${ROUNDS} alternating rounds per server, medians below`,
)
const results = {}
const emulatorName = (session) => `emulator, pfxWorkers=${session.label}`
if (ONLY.includes("get")) {
  const e = meter(emulatorName(main), main.proc)
  const b = meter("bare node:https", base.proc)
  for (let r = 0; r < ROUNDS; r++) {
    await e.run(() => load(CONCURRENCY_GET, () => request(agent, getUrl, { headers: auth }), 200))
    await b.run(() =>
      load(CONCURRENCY_GET, () => request(bagent, `${baseUrl}/certificates/bench/`, { headers: auth }), 200),
    )
  }
  console.log(
    `get-latest, ${CONCURRENCY_GET} keep-alive clients, ${DURATION_MS / 1000} s per round (load average ${loadavg()[0].toFixed(1)}):`,
  )
  console.log(e.line())
  console.log(b.line())
  results.get = { emu: e.median(), base: b.median() }
}

const baseImportOnce = (_slot, body) =>
  request(bagent, `${baseUrl}/certificates/x/import`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body,
  })
const KIND_LABEL = {
  "pfx-2048": "PFX, 2048 iterations (OpenSSL 3 default)",
  "pfx-1": "PFX, kvdeploy transport (1 iteration)",
  pem: "PEM",
}
for (const kind of IMPORT_KINDS) {
  const e = meter(emulatorName(main), main.proc)
  const b = meter("bare node:https", base.proc)
  const c = compares.map((s) => meter(emulatorName(s), s.proc))
  const emuOnce = main.importOnce(kind)
  const compareOnce = compares.map((s) => s.importOnce(kind))
  // Untimed warm-up: the same distinct bodies, read once by every server.
  const warmRates = []
  if (WARM_IMPORTS > 0)
    for (const once of [emuOnce, baseImportOnce, ...compareOnce])
      warmRates.push((await loadQueue(IMPORT_CONCURRENCY, warmBodies(kind), 0, once, 200)).rate)
  for (let r = 0; r < ROUNDS; r++) {
    const bodies = roundBodies(kind, r)
    await e.run(() => loadQueue(IMPORT_CONCURRENCY, bodies, IMPORT_WARMUP, emuOnce, 200))
    // The baseline reads the same bodies (it parses nothing, so sending them again is fair).
    await b.run(() => loadQueue(IMPORT_CONCURRENCY, bodies, IMPORT_WARMUP, baseImportOnce, 200))
    // So does every other emulator process (its own memory: it has seen none of them).
    for (let i = 0; i < compares.length; i++)
      await c[i].run(() => loadQueue(IMPORT_CONCURRENCY, bodies, IMPORT_WARMUP, compareOnce[i], 200))
  }
  console.log(
    `import ${KIND_LABEL[kind]}, a distinct ${materials[1][kind].length} B body each, ${VAULTS} vaults x ${CONCURRENCY_IMPORT} clients (load average ${loadavg()[0].toFixed(1)}):`,
  )
  if (WARM_IMPORTS > 0)
    console.log(
      `    untimed warm-up first, ${WARM_IMPORTS} other bodies read once by each server: ${warmRates.map((x) => x.toFixed(0)).join(", ")} req/s (emulator, bare node:https${compares.length > 0 ? ", compared emulators" : ""})`,
    )
  console.log(e.line())
  for (const m of c) console.log(m.line())
  console.log(b.line())
  results[kind] = {
    emu: e.median(),
    base: b.median(),
    compare: c.map((m) => m.median()),
    warm: warmRates[0] ?? 0,
  }
}
bagent.destroy()
base.proc.removeAllListeners("exit")
base.proc.kill("SIGTERM")
await main.stop()
for (const s of compares) await s.stop()

const fmt = (n) => n.toFixed(0).padStart(7)
console.log("")
console.log(
  "                                         emulator   baseline   ratio (emulator / bare node:https)",
)
if (results.get)
  console.log(
    `get-latest (req/s)                       ${fmt(results.get.emu)}    ${fmt(results.get.base)}   ${(results.get.emu / results.get.base).toFixed(2)}`,
  )
for (const kind of IMPORT_KINDS) {
  const r = results[kind]
  console.log(
    `import ${kind.padEnd(8)} (req/s, 10 vaults)      ${fmt(r.emu)}    ${fmt(r.base)}   ${(r.emu / r.base).toFixed(2)}`,
  )
  console.log(`  per vault                              ${(r.emu / VAULTS).toFixed(1).padStart(7)}`)
  for (let i = 0; i < compares.length; i++)
    console.log(
      `  pfxWorkers=${compares[i].label}: ${(r.compare[i] ?? 0).toFixed(0)}/s (${((r.compare[i] ?? 0) / VAULTS).toFixed(1)} per vault), ratio to pfxWorkers=${main.label} ${((r.compare[i] ?? 0) / r.emu).toFixed(2)}`,
    )
}
console.log("")
const verdict = (ok) => (ok ? "MET" : "NOT MET")
if (results.get)
  console.log(
    `goal: >= 2,000 authenticated get-latest/s ........ ${verdict(results.get.emu >= 2000)} (${results.get.emu.toFixed(0)}/s)`,
  )
for (const kind of IMPORT_KINDS) {
  const perVault = results[kind].emu / VAULTS
  console.log(
    `goal: import ${kind.padEnd(8)} > 30/s per vault, 10 vaults ... ${verdict(perVault > 30)} (${perVault.toFixed(1)}/s per vault${WARM_IMPORTS > 0 ? `, after ${WARM_IMPORTS} untimed imports per server; cold: ${(results[kind].warm / VAULTS).toFixed(1)}` : ""})`,
  )
}
console.log(
  `emulator pfxWorkers: ${main.label}; machine: ${cpus().length} cores, load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")} at the end (other work on the machine lowers every column)`,
)
process.exit(0)
