// Build the single executable (Node's single-executable-application support):
// the CommonJS bundle (scripts/bundle.mjs --sea) becomes a SEA blob, which
// postject injects into a copy of this Node binary: dist/sea/kvdeploy-agent
// runs with no Node.js on PATH. Prints how long each step took. The executable
// starts Node with --expose-gc (execArgv), so the agent can give memory back
// after each reconcile pass, and with --disable-sigusr1 when the building Node
// has it (node-flags.mjs). The material worker's CommonJS bundle
// (dist/sea/materialWorker.cjs) goes into the blob as an asset: a worker of the
// executable cannot load a file from the blob, so the agent starts it from the
// asset's text (src/materialPool.ts).
import { execFileSync } from "node:child_process"
import { chmodSync, copyFileSync, existsSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { agentNodeFlags } from "./node-flags.mjs"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const out = join(root, "dist", "sea")
const main = join(out, "agent.cjs")
const worker = join(out, "materialWorker.cjs")
for (const f of [main, worker])
  if (!existsSync(f)) throw new Error(`${f} is missing: run node scripts/bundle.mjs --sea first`)
const started = Date.now()
const config = join(out, "sea-config.json")
const blob = join(out, "agent.blob")
writeFileSync(
  config,
  JSON.stringify({
    main,
    output: blob,
    disableExperimentalSEAWarning: true,
    // No V8 code cache in the blob: built with it (2026-11-30, 10,000 deployments), the executable
    // started no faster (`--version` 579 ms without, 596 with, medians of 15; first vault request
    // 1520 and 1446 ms, medians of 7, within their spread) and grew by 0.8 MB. Node 24 also
    // refuses import() in an executable with a code cache; the agent's bundle no longer holds one.
    useCodeCache: false,
    useSnapshot: false,
    // The agent's Node flags (--expose-gc, and --disable-sigusr1 when this Node has it): see node-flags.mjs.
    execArgv: [...agentNodeFlags],
    // The name is src/materialPool.ts's seaWorkerAsset.
    assets: { "materialWorker.cjs": worker },
  }),
)
execFileSync(process.execPath, ["--experimental-sea-config", config], { stdio: "inherit" })
const exe = join(out, "kvdeploy-agent")
copyFileSync(process.execPath, exe)
chmodSync(exe, 0o755)
const require = createRequire(import.meta.url)
const postject = require.resolve("postject/dist/cli.js")
execFileSync(
  process.execPath,
  [postject, exe, "NODE_SEA_BLOB", blob, "--sentinel-fuse", "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2"],
  { stdio: "inherit" },
)
console.log(`kvdeploy-agent single executable: ${exe} (${Date.now() - started} ms)`)
