import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { sharedModules } from "@kvdeploy/vitest-config"
import { defineConfig } from "vitest/config"

/**
 * The files that need a module registry of their own (isolate: true): two replace a module with
 * vi.mock (node:fs/promises, @kvdeploy/pkcs12) that the code under test must import anew, which a
 * worker that already imported it for another file would not do; stateRefused.test.ts calls
 * refuseStateWrites, which stops every state store of the process writing (src/state.ts's module
 * state), and state.test.ts, run after it in the same worker, found its writes refused.
 */
const ownModules = ["test/stateDurable.test.ts", "test/restartFacts.test.ts", "test/stateRefused.test.ts"]

export default defineConfig(
  sharedModules(ownModules, {
    globalSetup: ["test/build.ts"],
    // Three files at a time on two cores: many of these tests spend most of their time waiting on
    // the running agent's real clocks (a stale lock taken over after 30 s, an identity endpoint's
    // backoff, interval passes), with the CPU idle. Measured on the 2-core machine, the whole
    // suite: 247 s with 2 workers, 177 s with 3, every test passing.
    maxWorkers: 3,
    // Node's compile cache for the agents the tests start (hundreds of processes, each compiling
    // the same 4 MB bundle and its material worker's): Node keys each entry on the file's content,
    // so an edited bundle is compiled anew. Only Node reads it, not the agent; harness.ts's baseEnv
    // and checkFixtures.ts's pass this one on.
    env: {
      NODE_COMPILE_CACHE: join(
        dirname(fileURLToPath(import.meta.url)),
        "node_modules",
        ".cache",
        "agent-test-compile-cache",
      ),
    },
  }),
)
