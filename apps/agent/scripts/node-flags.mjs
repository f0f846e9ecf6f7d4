// The Node flags kvdeploy-agent runs with: the single executable's execArgv (scripts/sea.mjs)
// and what bench/agent-fleet.bench.mjs starts `node dist/bin.js` with, so that the bench
// measures the agent as deployed.
//
// --expose-gc: the agent releases memory after each reconcile pass with a full collection
//   (src/idleRelease.ts).
//
// Tried and left out: --max-semi-space-size=16 (V8's default young generation on a 24 GB host
// is 32 MB per semi-space). Two full-scale fleet runs with CPU profiles on 2026-11-30 spent the
// same share of the agent's cold pass in garbage collection either way (9.5% with 32 MB, 8.8%
// with 16 MB); the first, unprofiled runs that looked better were within the runs' spread.
//
// --disable-sigusr1: SIGUSR1 would open Node's inspector on 127.0.0.1:9229, where any local user
//   could connect and read the agent's memory and environment (AZURE_CLIENT_SECRET, PFX
//   passwords, keys being deployed). With it Node ignores the signal from its start. Node 22.14 and
//   23.7 brought the flag, and a Node without it refuses to start with it ("bad option"; Node 20
//   does): it is added only when the Node that runs this script takes
//   it (the single executable carries that same Node). The agent also listens for SIGUSR1 itself
//   from its first line (src/bin.ts), which keeps the inspector closed on any Node once that line
//   has run, and logs that it ignored the signal.
import { spawnSync } from "node:child_process"

/** Whether this Node takes --disable-sigusr1. */
export const nodeTakesDisableSigusr1 =
  spawnSync(process.execPath, ["--disable-sigusr1", "-e", ""], { stdio: "ignore" }).status === 0

export const agentNodeFlags = Object.freeze([
  "--expose-gc",
  ...(nodeTakesDisableSigusr1 ? ["--disable-sigusr1"] : []),
])
