// Runs every benchmark under bench/ (files named *.bench.mjs), one after another,
// so they do not compete for the two cores. Each prints ratios against a baseline
// it measures in the same process or script.

import { spawnSync } from "node:child_process"
import { readdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
// Arguments before a "--" (or all, when there is none and none starts with "-") select
// benchmarks by name; what follows the first argument starting with "-" (or "--") is passed on
// to each selected benchmark, e.g. `node bench/run.mjs agent-fleet --scale 0.1`.
const args = process.argv.slice(2)
const firstFlag = args.findIndex((a) => a.startsWith("-"))
const only = firstFlag === -1 ? args : args.slice(0, firstFlag)
const passed = firstFlag === -1 ? [] : args.slice(args[firstFlag] === "--" ? firstFlag + 1 : firstFlag)
const files = readdirSync(here)
  .filter((f) => f.endsWith(".bench.mjs"))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()
let failed = 0
for (const file of files) {
  console.log(`\n=== ${file} ===`)
  const r = spawnSync(process.execPath, ["--expose-gc", join(here, file), ...passed], { stdio: "inherit" })
  if (r.status !== 0) failed++
}
if (failed > 0) {
  console.error(`${failed} benchmark(s) failed`)
  process.exit(1)
}
