// Runs every workspace package's tests (`vitest run`) in two lanes at once, each lane one package
// after another, and prints each package's output as one block when it ends, so the log reads
// package by package. Exits 1 when a package's tests failed (every package runs all the same);
// a SIGINT or SIGTERM stops the packages running, starts no more, and exits 130 or 143.
//
// Why two lanes: run one after another, the packages keep two cores busy only part of the time.
// The agent's tests wait on timers (a 30 s lock staleness, token limits, backoffs) and several of
// the libraries' suites on their emulator, so one package at a time left about a third of the
// machine idle. Lane 1 holds the agent, then the CLI (the two longest suites); lane 2 the libraries,
// the ones that use the processor most first (they run beside the agent's waits), the waiting ones
// last (beside the CLI). Measured on the two-core machine: see the changeset of this file. A few
// of the CLI's files run at the end of lane 2 (`split` below), so that both lanes end together.
//
//   node scripts/test-lanes.mjs                  every package
//   node scripts/test-lanes.mjs agent pkcs12     these packages only (names or folders)
//   KVDEPLOY_TEST_LANES=1 node scripts/...        one lane: every package one after another
import { spawn, spawnSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const root = new URL("..", import.meta.url).pathname

/** The lanes' order; a package not named here goes to the end of lane 2. */
const lanes = [
  ["apps/agent", "apps/cli"],
  [
    "packages/pkcs12",
    "packages/core",
    "packages/kv-emulator",
    "packages/metrics",
    "packages/azure-kv",
    "packages/credentials",
    // The CLI's files named in `split` below, run after the libraries (lane 1 runs the rest).
    "apps/cli#2",
  ],
]

/**
 * Packages whose tests are cut in two: these files run as `PACKAGE#2` where the lanes place it, the
 * rest where the package itself is. The agent then the whole CLI made lane 1 the longer one (CI, two
 * cores: 380 s + 316 s against the libraries' 565 s), and with the libraries' suites now sharing
 * their workers' imports (isolate: false) lane 2 is shorter still: these CLI files (about 150 of
 * its 540 file-seconds) move lane 1's end forward and lane 2's back to about the same time. Each
 * part writes its own JSON report (.vitest-results.json and .vitest-results.2.json, both read by
 * test-summary.mjs). A test file not named here runs in the first part, so none is ever left out.
 */
const split = {
  "apps/cli": [
    "test/restore.test.ts",
    "test/outcomesExitCodes.test.ts",
    "test/credentialModes.test.ts",
    "test/verifyLeaf.test.ts",
  ],
}

const withTests = []
for (const group of ["packages", "apps", "tooling"]) {
  const dir = join(root, group)
  if (!existsSync(dir)) continue
  for (const name of readdirSync(dir).sort()) {
    const manifest = join(dir, name, "package.json")
    if (!existsSync(manifest)) continue
    const scripts = JSON.parse(readFileSync(manifest, "utf8")).scripts ?? {}
    if (typeof scripts.test === "string") withTests.push(`${group}/${name}`)
  }
}

const asked = process.argv.slice(2)
const unknown = asked.filter((a) => !withTests.some((p) => p === a || p.endsWith(`/${a}`)))
if (unknown.length > 0) {
  console.error(
    `test-lanes: no package with tests named ${unknown.join(", ")}: name one of ${withTests.map((p) => p.split("/")[1]).join(", ")}`,
  )
  process.exit(2)
}
const chosen = withTests.filter(
  (p) => asked.length === 0 || asked.some((a) => p === a || p.endsWith(`/${a}`)),
)
const oneLane = process.env.KVDEPLOY_TEST_LANES === "1"
/** `apps/cli#2` is chosen with `apps/cli`, and only when two lanes run (one lane runs it whole). */
const isChosen = (entry) => {
  const [dir, part] = entry.split("#")
  return chosen.includes(dir) && (part === undefined || (!oneLane && split[dir] !== undefined))
}
const placed = lanes.map((lane) => lane.filter(isChosen))
placed[1].push(...chosen.filter((p) => !lanes.flat().includes(p)))
const plan = (oneLane ? [placed.flat()] : placed).filter((lane) => lane.length > 0)
const cut = oneLane ? [] : Object.keys(split).filter((dir) => chosen.includes(dir))

const started = Date.now()
const seconds = (ms) => `${Math.round(ms / 1000)} s`
const children = new Set()
const failed = []
/** The signal that stopped the run (Ctrl-C, a CI cancel): no package starts after it. */
let stoppedBy
const notRun = []

/** vitest's arguments for `entry`: a part of a cut package names its files, or leaves them out. */
const vitestArgs = (entry) => {
  const [dir, part] = entry.split("#")
  if (!cut.includes(dir)) return []
  if (part === "2") return [...split[dir], "--outputFile.json=.vitest-results.2.json"]
  return split[dir].flatMap((file) => ["--exclude", file])
}

const runPackage = (entry) =>
  new Promise((resolve) => {
    const dir = entry
    const [folder] = entry.split("#")
    const t0 = Date.now()
    console.log(`[tests] ${dir}: started (at ${seconds(t0 - started)})`)
    const child = spawn("pnpm", ["run", "--silent", "test", ...vitestArgs(entry)], {
      cwd: join(root, folder),
      stdio: ["ignore", "pipe", "pipe"],
      // The two parts of a cut package must not both bundle it (each global setup's bundle first
      // removes dist/, under the other part's running tests): it was bundled once, below.
      env: cut.includes(folder) ? { ...process.env, KVDEPLOY_TEST_BUNDLE_DONE: "1" } : process.env,
    })
    children.add(child)
    const output = []
    child.stdout.on("data", (c) => output.push(c))
    child.stderr.on("data", (c) => output.push(c))
    const done = (code, signal) => {
      children.delete(child)
      const verdict =
        code === 0 ? "passed" : signal !== null ? `stopped by ${signal}` : `FAILED (exit ${code})`
      if (code !== 0) failed.push(dir)
      const text = Buffer.concat(output).toString("utf8").trimEnd()
      process.stdout.write(
        `\n──── ${dir}: ${verdict} in ${seconds(Date.now() - t0)} ────\n${text}\n──── end of ${dir} ────\n\n`,
      )
      resolve()
    }
    child.on("error", (error) => {
      output.push(Buffer.from(`could not start pnpm: ${error.message}\n`))
      done(1, null)
    })
    child.on("close", done)
  })

for (const signal of ["SIGINT", "SIGTERM"])
  process.on(signal, () => {
    stoppedBy ??= signal
    for (const child of children) child.kill(signal)
  })

// A cut package's bundle, made current once before its two parts start (its tests run the bundle).
for (const dir of cut) {
  const bundled = spawnSync(process.execPath, ["scripts/bundle.mjs", "--if-changed"], {
    cwd: join(root, dir),
    stdio: "inherit",
  })
  if (bundled.status !== 0) {
    console.error(`test-lanes: bundling ${dir} failed (exit ${bundled.status}): its tests were not run`)
    process.exit(1)
  }
}

console.log(
  `[tests] ${plan.length === 1 ? "one lane" : `${plan.length} lanes at once`}: ${plan.map((lane) => lane.join(" -> ")).join(" | ")}`,
)
await Promise.all(
  plan.map(async (lane) => {
    for (const dir of lane) {
      if (stoppedBy !== undefined) notRun.push(dir)
      else await runPackage(dir)
    }
  }),
)
// A package passed when each of its parts did (failed and notRun hold parts: apps/cli#2).
const folders = (entries) => new Set(entries.map((entry) => entry.split("#")[0]))
const notPassed = folders([...failed, ...notRun]).size
console.log(
  `[tests] ${chosen.length - notPassed} of ${chosen.length} packages passed in ${seconds(Date.now() - started)}${failed.length > 0 ? `; failed: ${failed.join(", ")}` : ""}`,
)
if (notRun.length > 0) console.log(`[tests] stopped by ${stoppedBy}; not run: ${notRun.join(", ")}`)
// A stopped run ends as the signal would have ended it (130 for SIGINT, 143 for SIGTERM).
if (stoppedBy !== undefined) process.exitCode = stoppedBy === "SIGINT" ? 130 : 143
else if (failed.length > 0) process.exitCode = 1
