/**
 * Start-up of the built agent (dist/bin.js): it turns on Node's compile cache (in the OS temporary
 * directory) before loading its code, so a second start of the same build uses the bytecode the
 * first one wrote (no data: V8 code of the agent's own bundle), and it still checks a
 * configuration as before.
 */
import { spawnSync } from "node:child_process"
import { mkdirSync, readdirSync } from "node:fs"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { baseEnv, bin, workdir } from "./harness.js"

const work = workdir()
afterAll(() => work.remove())

const config = work.write(
  "agent.json",
  JSON.stringify({
    deployments: Array.from({ length: 3 }, (_, i) => ({
      name: `c${i}`,
      source: { cert: `c${i}.crt`, key: `c${i}.key` },
      target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: `c${i}` },
    })),
  }),
)

/** `--check` with TMPDIR set: the agent's cache goes to TMPDIR/node-compile-cache. */
const check = (tmpdir: string) => {
  const env: Record<string, string> = { ...baseEnv(), TMPDIR: tmpdir, NODE_DEBUG_NATIVE: "COMPILE_CACHE" }
  delete env.NODE_COMPILE_CACHE
  return spawnSync(process.execPath, [bin, "--check", "--config", config], { env, encoding: "utf8" })
}

describe("start-up", () => {
  it("writes the agent's compiled code to the compile cache, and a second start uses it", () => {
    const tmpdir = work.path("tmp")
    mkdirSync(tmpdir)
    const first = check(tmpdir)
    expect(first.status, first.stderr).toBe(0)
    expect(first.stdout).toBe(`${config}: valid, 3 deployment(s)\n`)
    // One directory per Node version and V8 flags, holding an entry per module.
    const cacheDir = join(tmpdir, "node-compile-cache")
    const entries = readdirSync(cacheDir).flatMap((d) => readdirSync(join(cacheDir, d)))
    expect(entries.length).toBeGreaterThan(0)
    const second = check(tmpdir)
    expect(second.status, second.stderr).toBe(0)
    expect(second.stdout).toBe(first.stdout)
    // The chunk that holds the agent's code (dist/agent-main-*.js) was compiled from the cache.
    expect(second.stderr).toMatch(/V8 code cache for ESM file:\/\/\S+\/dist\/agent-main-\w+\.js was accepted/)
  })
})
