// The Node flags kvdeploy-agent runs with: the single executable's execArgv (scripts/sea.mjs),
// what the README tells to pass to `node dist/bin.js`, and what bench/agent-fleet.bench.mjs
// starts the agent with, so the bench measures the agent as deployed.
//
// --expose-gc: the agent releases memory after each reconcile pass with a full collection
//   (src/idleRelease.ts).
// --max-semi-space-size=16: V8's young generation may grow to 16 MB per semi-space (V8's
//   default limit is 8 MB on 64-bit hosts... see docs/agent.md#memory for the figures). A cold pass
//   keeps 64 deploys in flight, whose short-lived objects (HTTP bodies, parsed certificates, PFX
//   buffers) outlived the smaller young generation and were promoted, then collected by full
//   collections: a larger young generation lets them die young. The idle agent's memory is
//   not larger: the release after the pass shrinks the young generation again.
export const agentNodeFlags = Object.freeze(["--expose-gc", "--max-semi-space-size=16"])
