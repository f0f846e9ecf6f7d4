// Entry point of kvdeploy-agent. Node's on-disk compile cache is turned on before the agent's
// code is loaded (dist/bin.js is this small entry; the agent is a chunk next to it): V8 keeps the
// bytecode of that code (no data) in the OS temporary directory, or in NODE_COMPILE_CACHE, and a
// later start of the same build compiles less (loading the bundle: ~580 -> ~450 ms on the 2-core
// bench host). The single executable carries its code in its blob: nothing to cache there.
import * as nodeModule from "node:module"
import { isSea } from "node:sea"

// The cache's directory, when it is on (not in the single executable, nor where it cannot be written).
const cacheDirectory = isSea() ? undefined : nodeModule.enableCompileCache?.().directory
void import("./main.js").then(({ main }) => {
  // Written now, not only at a clean exit: an agent that is killed still leaves it for the next start.
  if (cacheDirectory !== undefined) nodeModule.flushCompileCache?.()
  main(process.argv.slice(2))
})
