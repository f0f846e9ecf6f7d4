/**
 * docs/agent.md's "From a clone" recipe, run as written: the agent it starts gives memory back after
 * a pass (`releaseMemoryAfterPass: true`, which needs Node's --expose-gc), and every line it logs at
 * start is one the page's Logs section names (`Listening on http://…` among them).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { type AgentProcess, agentRoot, baseEnv, startAgent } from "./harness.js"

const repoRoot = join(agentRoot, "..", "..")
const page = readFileSync(join(repoRoot, "docs", "agent.md"), "utf8")

/** The shell block that follows "From a clone". */
const recipe = (() => {
  const from = page.indexOf("From a clone")
  const start = page.indexOf("```sh\n", from)
  return page.slice(start + "```sh\n".length, page.indexOf("```", start + 5))
})()

/** The text of the section `## title`, to the next `## `. */
const section = (title: string) => {
  const start = page.indexOf(`\n## ${title}\n`)
  return page.slice(start, page.indexOf("\n## ", start + 1))
}

const dirs: Array<string> = []
const started: Array<AgentProcess> = []
afterEach(() => {
  for (const a of started.splice(0)) a.kill()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe("docs/agent.md's From a clone recipe", () => {
  it("runs the agent with memory released after each pass, and its start lines are in the Logs list", async () => {
    expect(recipe).toContain("apps/agent/dist")
    const dir = mkdtempSync(join(tmpdir(), "kvdeploy-recipe-"))
    dirs.push(dir)
    const config = join(dir, "agent.yaml")
    writeFileSync(
      config,
      `agent:\n  listen: 127.0.0.1:0\n  state_dir: ${join(dir, "state")}\ndeployments: []\n`,
    )
    const env = baseEnv()
    // Only what the recipe sets: not a NODE_OPTIONS the test runner has.
    delete env.NODE_OPTIONS
    const a = startAgent(config, env, {
      command: [
        "bash",
        "-c",
        `set -e\ncd ${JSON.stringify(repoRoot)}\n${recipe}\nexec kvdeploy-agent "$@"`,
        "recipe",
      ],
    })
    started.push(a)
    const listening = await a.waitFor((l) => l.msg.startsWith("Listening on "), { timeoutMs: 60_000 })
    const start = a.lines.find((l) => l.msg === "kvdeploy-agent started")
    expect(start?.releaseMemoryAfterPass, a.stderr()).toBe(true)
    const logs = section("Logs").replace(/\s+/g, " ")
    for (const line of a.lines.slice(0, a.lines.indexOf(listening) + 1)) {
      const named = line.msg.replace(/http:\/\/\S+/, "http://HOST:PORT")
      expect(logs, `the Logs section names "${named}"`).toContain(named.replace(/\s+/g, " ").slice(0, 60))
    }
  })
})
