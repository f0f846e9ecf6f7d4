// kv-emulator throughput on loopback, against a bare node:https server measured in the same run.
//
// Each server runs in its own child process (this file re-run with --child), the load
// generator here, so client and server each get one of the two cores. Clients are
// keep-alive node:https agents (the SDK's pipeline uses the same), with a bearer token the
// emulator's Entra endpoint issued through the client-credentials grant.
//
//   get-latest: GET /certificates/bench/?api-version=2025-07-01, authenticated (token verified,
//               RBAC, throttling window off, request logged), vs. the baseline answering the
//               same-size fixed body.
//   import:     POST /certificates/{n}/import, spread over 10 vaults, throttling off (Key Vault
//               itself caps imports at 300 per 10 s per vault = 30/s), vs. the baseline reading
//               the same bodies and answering a fixed body. Every import sends a DIFFERENT
//               certificate: a fresh RSA-2048 key and self-signed certificate per import, all
//               built before any timing, as a password-protected PFX (PBES2 AES-256-CBC,
//               PBKDF2-SHA-256 and a SHA-256 MAC, 2048 iterations: OpenSSL 3's defaults, written
//               by @kvdeploy/pkcs12) and as PEM (PKCS#8 key + certificate). No body is sent twice
//               to the emulator, so no cache keyed by the bytes can help.
//               Each round sends warm-up + measured + in-flight bodies; the rate counts the
//               answers between the end of the warm-up and the moment the last body was sent
//               (every client busy the whole time).
//
// Goals: >= 2,000 authenticated get-latest/s; import > 30/s per vault across 10 vaults.
// Printed honestly: met or not.
//
// Knobs (environment): KVDEPLOY_BENCH_SECONDS (get-latest window per round, default 2),
// KVDEPLOY_BENCH_IMPORTS (measured imports per round, default 300), KVDEPLOY_BENCH_PFX_WORKERS
// (the emulator's pfxWorkers option; unset: its default), KVDEPLOY_BENCH_COMPARE_PFX_WORKERS (a
// second emulator process with this pfxWorkers, driven with the same bodies in the same import
// rounds, e.g. 0 to see what the pool brings), KVDEPLOY_BENCH_EMULATOR_NODE_FLAGS (extra node
// flags for the emulator children, e.g. "--cpu-prof --cpu-prof-dir=/dev/shm/prof").
import { spawn } from "node:child_process"
import * as https from "node:https"
import { cpus, loadavg } from "node:os"
import { fileURLToPath } from "node:url"

const VAULTS = 10
const DURATION_MS = Number(process.env.KVDEPLOY_BENCH_SECONDS ?? "2") * 1000
const WARMUP_MS = 800
const CONCURRENCY_GET = 32
const CONCURRENCY_IMPORT = 4 // per vault
const IMPORT_CONCURRENCY = VAULTS * CONCURRENCY_IMPORT
const IMPORTS = Number(process.env.KVDEPLOY_BENCH_IMPORTS ?? "300")
const IMPORT_WARMUP = 40
const ROUNDS = 3
const PFX_WORKERS = process.env.KVDEPLOY_BENCH_PFX_WORKERS
const COMPARE_PFX_WORKERS = process.env.KVDEPLOY_BENCH_COMPARE_PFX_WORKERS
const EMULATOR_NODE_FLAGS = (process.env.KVDEPLOY_BENCH_EMULATOR_NODE_FLAGS ?? "")
  .split(" ")
  .filter((f) => f.length > 0)

// ---------- child processes ----------
if (process.argv[2] === "--child") {
  const kind = process.argv[3]
  if (kind === "emulator") {
    const { start } = await import("@kvdeploy/kv-emulator")
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
      stdio: ["ignore", "pipe", "inherit"],
    })
    let buf = ""
    p.stdout.on("data", (c) => {
      buf += c.toString()
      const nl = buf.indexOf("\n")
      if (nl >= 0) resolve({ proc: p, info: JSON.parse(buf.slice(0, nl)) })
    })
    p.on("exit", (code) => reject(new Error(`child ${args.join(" ")} exited ${code}`)))
  })

const request = (agent, url, { method = "GET", headers = {}, body, ca }) =>
  new Promise((resolve, reject) => {
    const req = https.request(url, { method, agent, ca, headers }, (res) => {
      const chunks = []
      res.on("data", (c) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString("utf8") }))
    })
    req.on("error", reject)
    if (body !== undefined) req.end(body)
    else req.end()
  })

/** Runs `concurrency` loops of `once` for the duration after a warm-up; returns completed-with-expected-status per second. */
const load = async (concurrency, once, expectStatus) => {
  let counting = false
  let ok = 0
  let bad = 0
  let stop = false
  const loop = async (i) => {
    while (!stop) {
      const r = await once(i)
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
  return ok / seconds
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
  let t0 = 0
  let t1 = 0
  let counting = false
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
          if (bad === 1) console.log(`  first unexpected answer: ${r.status} ${r.text.slice(0, 300)}`)
        }
      } else if (t1 === 0 && r.status !== expectStatus && done <= warmup) {
        console.log(`  warm-up answer: ${r.status} ${r.text.slice(0, 300)}`)
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
  return ok / ((t1 - t0) / 1000)
}

// ---------- material: a fresh key + certificate per import, built before any timing ----------
const { generateKey, issue, toPem } = await import("@kvdeploy/pkcs12/testing")
const { encodePfx } = await import("@kvdeploy/pkcs12")
const Effect = await import("effect/Effect")
const Redacted = await import("effect/Redacted")
const PER_ROUND = IMPORT_WARMUP + IMPORTS + IMPORT_CONCURRENCY
const MATERIALS = 1 + ROUNDS * PER_ROUND
const KEY_USAGE = 1 | 4 // digitalSignature | keyEncipherment
const SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
const buildOne = async (i) => {
  const key = await generateKey("RSA-2048")
  const cn = `bench-${i}.example.test`
  const der = await issue({
    subject: `CN=${cn}`,
    key,
    sans: [{ type: "dns", value: cn }],
    keyUsage: KEY_USAGE,
    extendedKeyUsage: [SERVER_AUTH],
    notAfter: new Date(Date.now() + 30 * 86_400_000),
  })
  const pfx = await Effect.runPromise(
    encodePfx(
      { leaf: der, chain: [], key: Redacted.make(key.pkcs8) },
      { encoding: "modern", password: Redacted.make("bench") },
    ),
  )
  return {
    pfx: JSON.stringify({ value: Buffer.from(pfx).toString("base64"), pwd: "bench", tags: { bench: "yes" } }),
    pem: JSON.stringify({
      value: toPem("PRIVATE KEY", key.pkcs8) + toPem("CERTIFICATE", der),
      policy: { secret_props: { contentType: "application/x-pem-file" } },
      tags: { bench: "yes" },
    }),
  }
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
if (
  new Set(materials.map((m) => m.pfx)).size !== MATERIALS ||
  new Set(materials.map((m) => m.pem)).size !== MATERIALS
)
  throw new Error("the bench built the same PFX or PEM twice")
console.log(
  `${MATERIALS} distinct certificates (fresh RSA-2048 key each) built in ${((performance.now() - built) / 1000).toFixed(1)} s before timing`,
)
const seedBody = materials[0].pfx
const roundBodies = (kind, r) =>
  materials.slice(1 + r * PER_ROUND, 1 + (r + 1) * PER_ROUND).map((m) => m[kind])
const importBytes = materials[1].pfx.length
const pemBytes = materials[1].pem.length

// ---------- both servers up; rounds alternate so both see the same machine load ----------
/** An emulator child with `workers` PFX workers ("" for its default), a token and an agent. */
const emulatorSession = async (workers) => {
  const emu = await child(["emulator", workers], EMULATOR_NODE_FLAGS)
  const info = emu.info
  const agent = new https.Agent({ keepAlive: true, maxSockets: 256, ca: info.caPem })
  const tokenRes = await request(agent, `${info.authorityHost}/${info.tenantId}/oauth2/v2.0/token`, {
    method: "POST",
    ca: info.caPem,
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      client_id: info.clientId,
      client_secret: info.clientSecret,
      scope: "https://vault.azure.net/.default",
      grant_type: "client_credentials",
    }).toString(),
  })
  const token = JSON.parse(tokenRes.text).access_token
  const auth = { Authorization: `Bearer ${token}` }
  const importOnce = (prefix) => (slot, body) =>
    request(
      agent,
      `${info.vaults[slot % VAULTS].url}/certificates/${prefix}-${slot}/import?api-version=2025-07-01`,
      {
        method: "POST",
        ca: info.caPem,
        headers: { ...auth, "content-type": "application/json" },
        body,
      },
    )
  const stop = async () => {
    agent.destroy()
    emu.proc.removeAllListeners("exit")
    const exited = new Promise((r) => emu.proc.once("exit", r))
    emu.proc.kill("SIGTERM")
    await exited
  }
  return { info, agent, auth, importOnce, stop }
}
const main = await emulatorSession(PFX_WORKERS ?? "")
// Optionally a second emulator with another pfxWorkers, measured in the same import rounds.
const compare = COMPARE_PFX_WORKERS !== undefined ? await emulatorSession(COMPARE_PFX_WORKERS) : undefined
const { info, agent, auth } = main
const v0 = info.vaults[0].url
const seed = await request(agent, `${v0}/certificates/bench/import?api-version=2025-07-01`, {
  method: "POST",
  ca: info.caPem,
  headers: { ...auth, "content-type": "application/json" },
  body: seedBody,
})
if (seed.status !== 200) throw new Error(`seed import failed: ${seed.status} ${seed.text}`)
const getUrl = `${v0}/certificates/bench/?api-version=2025-07-01`
const sampleGet = await request(agent, getUrl, { ca: info.caPem, headers: auth })
const unauth = await request(agent, getUrl, { ca: info.caPem })
if (unauth.status !== 401) throw new Error("the emulator did not challenge an unauthenticated request")

const base = await child(["baseline", sampleGet.text])
const bagent = new https.Agent({ keepAlive: true, maxSockets: 256, ca: base.info.caPem })
const baseUrl = `https://127.0.0.1:${base.info.port}`

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const rounds = async (label, emuOnce, baseOnce, concurrency) => {
  const e = []
  const b = []
  for (let r = 0; r < ROUNDS; r++) {
    e.push(await load(concurrency, emuOnce, 200))
    if (baseOnce) b.push(await load(concurrency, baseOnce, 200))
  }
  console.log(
    `  ${label}: emulator ${e.map((x) => x.toFixed(0)).join(", ")}${baseOnce ? `; baseline ${b.map((x) => x.toFixed(0)).join(", ")}` : ""} (req/s per round)`,
  )
  return { emu: median(e), base: baseOnce ? median(b) : Number.NaN }
}

console.log(
  `${ROUNDS} alternating rounds of ${DURATION_MS / 1000}s (after ${WARMUP_MS}ms warm-up) per server; medians below`,
)
const get = await rounds(
  `get-latest, ${CONCURRENCY_GET} keep-alive clients`,
  () => request(agent, getUrl, { ca: info.caPem, headers: auth }),
  () => request(bagent, `${baseUrl}/certificates/bench/`, { ca: base.info.caPem, headers: auth }),
  CONCURRENCY_GET,
)
const baseImportOnce = (_slot, body) =>
  request(bagent, `${baseUrl}/certificates/x/import`, {
    method: "POST",
    ca: base.info.caPem,
    headers: { ...auth, "content-type": "application/json" },
    body,
  })
const importRounds = async (label, kind) => {
  const e = []
  const b = []
  const c = []
  for (let r = 0; r < ROUNDS; r++) {
    const bodies = roundBodies(kind, r)
    e.push(await loadQueue(IMPORT_CONCURRENCY, bodies, IMPORT_WARMUP, main.importOnce(kind), 200))
    // The baseline reads the same bodies (it parses nothing, so sending them again is fair).
    b.push(await loadQueue(IMPORT_CONCURRENCY, bodies, IMPORT_WARMUP, baseImportOnce, 200))
    // So does the other emulator process (its own memory: it has seen none of them).
    if (compare)
      c.push(await loadQueue(IMPORT_CONCURRENCY, bodies, IMPORT_WARMUP, compare.importOnce(kind), 200))
  }
  console.log(
    `  ${label}: emulator ${e.map((x) => x.toFixed(0)).join(", ")}; baseline ${b.map((x) => x.toFixed(0)).join(", ")}${compare ? `; emulator with pfxWorkers=${COMPARE_PFX_WORKERS} ${c.map((x) => x.toFixed(0)).join(", ")}` : ""} (req/s per round)`,
  )
  return { emu: median(e), base: median(b), compare: compare ? median(c) : Number.NaN }
}
const pfx = await importRounds(
  `import PFX (a distinct ${importBytes} B JSON each), ${VAULTS} vaults x ${CONCURRENCY_IMPORT} clients`,
  "pfx",
)
const pem = await importRounds(
  `import PEM (a distinct ${pemBytes} B JSON each), ${VAULTS} vaults x ${CONCURRENCY_IMPORT} clients`,
  "pem",
)
bagent.destroy()
base.proc.removeAllListeners("exit")
base.proc.kill("SIGTERM")
await main.stop()
await compare?.stop()

const fmt = (n) => n.toFixed(0).padStart(7)
console.log("")
console.log("                              emulator   baseline   ratio (emulator / bare node:https)")
console.log(
  `get-latest (req/s)            ${fmt(get.emu)}    ${fmt(get.base)}   ${(get.emu / get.base).toFixed(2)}`,
)
console.log(
  `import PFX (req/s, 10 vaults) ${fmt(pfx.emu)}    ${fmt(pfx.base)}   ${(pfx.emu / pfx.base).toFixed(2)}`,
)
console.log(`  per vault                   ${fmt(pfx.emu / VAULTS)}`)
console.log(
  `import PEM (req/s, 10 vaults) ${fmt(pem.emu)}    ${fmt(pem.base)}   ${(pem.emu / pem.base).toFixed(2)}`,
)
console.log(`  per vault                   ${fmt(pem.emu / VAULTS)}`)
if (compare) {
  console.log(
    `pfxWorkers=${COMPARE_PFX_WORKERS}: import PFX ${pfx.compare.toFixed(0)}/s (${(pfx.compare / VAULTS).toFixed(1)} per vault), PEM ${pem.compare.toFixed(0)}/s (${(pem.compare / VAULTS).toFixed(1)} per vault); ratio to pfxWorkers=${PFX_WORKERS ?? "default"}: PFX ${(pfx.compare / pfx.emu).toFixed(2)}, PEM ${(pem.compare / pem.emu).toFixed(2)}`,
  )
}
console.log("")
const verdict = (ok) => (ok ? "MET" : "NOT MET")
console.log(
  `goal: >= 2,000 authenticated get-latest/s ....... ${verdict(get.emu >= 2000)} (${get.emu.toFixed(0)}/s)`,
)
console.log(
  `goal: import > 30/s per vault across 10 vaults ... PFX ${verdict(pfx.emu / VAULTS > 30)} (${(pfx.emu / VAULTS).toFixed(1)}/s per vault); PEM ${verdict(pem.emu / VAULTS > 30)} (${(pem.emu / VAULTS).toFixed(1)}/s per vault)`,
)
const load1 = loadavg()[0]
console.log(
  `emulator pfxWorkers: ${PFX_WORKERS ?? "default"}; machine: ${cpus().length} cores, load average ${load1.toFixed(1)} at the end (other work on the machine lowers both columns)`,
)
process.exit(0)
