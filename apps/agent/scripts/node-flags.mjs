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
export const agentNodeFlags = Object.freeze(["--expose-gc"])
