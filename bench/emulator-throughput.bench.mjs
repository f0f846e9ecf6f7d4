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
//   import:     POST /certificates/{n}/import with a password-protected PFX (base64, OpenSSL 3
//               defaults), spread over 10 vaults, throttling off (Key Vault itself caps imports at
//               300 per 10 s per vault = 30/s), vs. the baseline reading the same body and
//               answering a fixed body.
//
// Goals: >= 2,000 authenticated get-latest/s; import > 30/s per vault across 10 vaults.
// Printed honestly: met or not.
import { execFileSync, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as https from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const VAULTS = 10
const DURATION_MS = Number(process.env.KVDEPLOY_BENCH_SECONDS ?? "2") * 1000
const WARMUP_MS = 800
const CONCURRENCY_GET = 32
const CONCURRENCY_IMPORT = 4 // per vault
const ROUNDS = 3

// ---------- child processes ----------
if (process.argv[2] === "--child") {
  const kind = process.argv[3]
  if (kind === "emulator") {
    const { start } = await import("@kvdeploy/kv-emulator")
    const emulator = await start({
      vaults: Array.from({ length: VAULTS }, (_, i) => `bench-${i}`),
      throttling: false,
      // Every import here re-sends the same PFX: measure what distinct PFX files cost.
      pfxDecodeCache: false,
      warn: () => {},
    })
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
  process.on("SIGTERM", () => process.exit(0))
  await new Promise(() => {})
}

// ---------- helpers ----------
const child = (args) =>
  new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url), "--child", ...args], {
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

// ---------- material: a PFX made by OpenSSL (its defaults), password "bench" ----------
const dir = mkdtempSync(join(tmpdir(), "kvemu-bench-"))
execFileSync(
  "openssl",
  [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    join(dir, "k.pem"),
    "-out",
    join(dir, "c.pem"),
    "-days",
    "30",
    "-subj",
    "/CN=bench.example.test",
  ],
  { stdio: "ignore" },
)
execFileSync(
  "openssl",
  [
    "pkcs12",
    "-export",
    "-inkey",
    join(dir, "k.pem"),
    "-in",
    join(dir, "c.pem"),
    "-passout",
    "pass:bench",
    "-out",
    join(dir, "b.pfx"),
  ],
  { stdio: "ignore" },
)
const pfxBase64 = readFileSync(join(dir, "b.pfx")).toString("base64")
const importBody = JSON.stringify({ value: pfxBase64, pwd: "bench", tags: { bench: "yes" } })
const pemText = readFileSync(join(dir, "k.pem"), "utf8") + readFileSync(join(dir, "c.pem"), "utf8")
const pemBody = JSON.stringify({
  value: pemText,
  policy: { secret_props: { contentType: "application/x-pem-file" } },
  tags: { bench: "yes" },
})

rmSync(dir, { recursive: true, force: true })

// ---------- both servers up; rounds alternate so both see the same machine load ----------
const emu = await child(["emulator"])
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
const v0 = info.vaults[0].url
const seed = await request(agent, `${v0}/certificates/bench/import?api-version=2025-07-01`, {
  method: "POST",
  ca: info.caPem,
  headers: { ...auth, "content-type": "application/json" },
  body: importBody,
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
const importOnce = (body, prefix) => (i) =>
  request(agent, `${info.vaults[i % VAULTS].url}/certificates/${prefix}-${i}/import?api-version=2025-07-01`, {
    method: "POST",
    ca: info.caPem,
    headers: { ...auth, "content-type": "application/json" },
    body,
  })
const baseImportOnce = (body) => () =>
  request(bagent, `${baseUrl}/certificates/x/import`, {
    method: "POST",
    ca: base.info.caPem,
    headers: { ...auth, "content-type": "application/json" },
    body,
  })
const pfx = await rounds(
  `import PFX (OpenSSL 3 defaults, ${importBody.length} B JSON), ${VAULTS} vaults x ${CONCURRENCY_IMPORT} clients`,
  importOnce(importBody, "imp"),
  baseImportOnce(importBody),
  VAULTS * CONCURRENCY_IMPORT,
)
const pem = await rounds(
  `import PEM (${pemBody.length} B JSON), ${VAULTS} vaults x ${CONCURRENCY_IMPORT} clients`,
  importOnce(pemBody, "pem"),
  baseImportOnce(pemBody),
  VAULTS * CONCURRENCY_IMPORT,
)
agent.destroy()
bagent.destroy()
emu.proc.kill("SIGTERM")
base.proc.kill("SIGTERM")

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
console.log("")
const verdict = (ok) => (ok ? "MET" : "NOT MET")
console.log(
  `goal: >= 2,000 authenticated get-latest/s ....... ${verdict(get.emu >= 2000)} (${get.emu.toFixed(0)}/s)`,
)
console.log(
  `goal: import > 30/s per vault across 10 vaults ... PFX ${verdict(pfx.emu / VAULTS > 30)} (${(pfx.emu / VAULTS).toFixed(1)}/s per vault); PEM ${verdict(pem.emu / VAULTS > 30)} (${(pem.emu / VAULTS).toFixed(1)}/s per vault)`,
)
if (pfx.emu / VAULTS <= 30)
  console.log(
    "  PFX imports are bound by @kvdeploy/pkcs12's decodePfx (PKCS#12 key derivations in JS, tens of ms per file).",
  )
const load1 = (await import("node:os")).loadavg()[0]
console.log(
  `machine: ${(await import("node:os")).cpus().length} cores, load average ${load1.toFixed(1)} at the end (other work on the machine lowers both columns)`,
)
process.exit(0)
