// kvdeploy start-up: wall time of `kvdeploy --help` and of `kvdeploy show`
// against the emulator, each as a ratio to a baseline measured in the same
// run: a bare Node script that loads the Azure SDK (@azure/identity and
// @azure/keyvault-certificates) and makes the same request (get the latest
// version of one certificate). Goals: show <= 1.3x the baseline; --help under
// 250 ms (median). `kvdeploy --version` is timed too (no goal: it is answered
// without loading the command tree, as --help is). Each figure is the median of RUNS runs, alternated so that
// machine noise hits all of them alike.
import { spawn, spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { start } from "@kvdeploy/kv-emulator"

const RUNS = Number(process.env.KVDEPLOY_BENCH_RUNS ?? 15)
const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const cli = join(root, "apps", "cli")
const bin = join(cli, "dist", "bin.js")
if (!existsSync(bin)) {
  const r = spawnSync(process.execPath, [join(cli, "scripts", "bundle.mjs")], { stdio: "inherit" })
  if (r.status !== 0) process.exit(1)
}

// The SDK as the CLI resolves it (same versions).
const requireFromCli = createRequire(join(cli, "package.json"))
const sdk = (name) => pathToFileURL(requireFromCli.resolve(name)).href

const emulator = await start({ vaults: ["bench"], throttling: false, warn: () => {} })
const name = "startup-bench"
await emulator.state.foreignImport("bench", name, { "certctl-managed-by": "certctl" })
const scratch = mkdtempSync(join("/dev/shm", "kvdeploy-bench-"))
const target = join(scratch, "target.json")
writeFileSync(target, JSON.stringify(emulator.targetConfig("bench", name, "clientSecret")))
const baseline = join(scratch, "baseline.mjs")
writeFileSync(
  baseline,
  `import { ClientSecretCredential } from ${JSON.stringify(sdk("@azure/identity"))}
import { CertificateClient } from ${JSON.stringify(sdk("@azure/keyvault-certificates"))}
const e = process.env
const credential = new ClientSecretCredential(e.AZURE_TENANT_ID, e.AZURE_CLIENT_ID, e.AZURE_CLIENT_SECRET, {
  authorityHost: e.AZURE_AUTHORITY_HOST, disableInstanceDiscovery: true,
})
const client = new CertificateClient(${JSON.stringify(emulator.vault("bench").url)}, credential, { disableChallengeResourceVerification: true })
const c = await client.getCertificate(${JSON.stringify(name)})
process.stdout.write(c.properties.version + "\\n")
`,
)
const env = { ...process.env, ...emulator.env.clientSecret, NO_COLOR: "1" }

const time = (args) =>
  new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const child = spawn(process.execPath, args, { env, stdio: ["ignore", "ignore", "pipe"] })
    let err = ""
    child.stderr.on("data", (c) => {
      err += c
    })
    child.on("error", reject)
    child.on("close", (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6
      if (code !== 0) reject(new Error(`${args.join(" ")} exited ${code}: ${err}`))
      else resolve(ms)
    })
  })

const subjects = {
  "node (empty script)": ["-e", "0"],
  "baseline: Azure SDK getCertificate": [baseline],
  "kvdeploy --help": [bin, "--help"],
  "kvdeploy --version": [bin, "--version"],
  "kvdeploy show": [bin, "show", "--config", target],
}
const samples = Object.fromEntries(Object.keys(subjects).map((k) => [k, []]))
try {
  // Warm the file cache once.
  for (const args of Object.values(subjects)) await time(args)
  for (let i = 0; i < RUNS; i++) {
    for (const [k, args] of Object.entries(subjects)) samples[k].push(await time(args))
  }
} finally {
  await emulator.stop()
  rmSync(scratch, { recursive: true, force: true })
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const base = median(samples["baseline: Azure SDK getCertificate"])
console.log(
  `kvdeploy start-up, median of ${RUNS} runs each (ratios against the bare Azure SDK script, same run)`,
)
for (const [k, xs] of Object.entries(samples)) {
  const m = median(xs)
  console.log(`  ${k.padEnd(38)} ${m.toFixed(0).padStart(6)} ms   ${(m / base).toFixed(2)}x baseline`)
}
const show = median(samples["kvdeploy show"]) / base
const help = median(samples["kvdeploy --help"])
const own = help - median(samples["node (empty script)"])
console.log(`  kvdeploy --help over an empty node start: ${own.toFixed(0)} ms (the part kvdeploy controls)`)
console.log(`  goal: show <= 1.30x baseline: ${show.toFixed(2)}x ${show <= 1.3 ? "met" : "NOT met"}`)
console.log(`  goal: --help < 250 ms median: ${help.toFixed(0)} ms ${help < 250 ? "met" : "NOT met"}`)
