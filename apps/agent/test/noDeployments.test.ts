/**
 * `deployments: []` is valid (an agent set up before its first certificate), but an agent that
 * deploys nothing looks like one that works: `--check`, the start and a reload warn of it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { agent } from "./checkFixtures.js"
import { type AgentProcess, baseEnv, startAgent } from "./harness.js"

const dirs: Array<string> = []
const started: Array<AgentProcess> = []
afterEach(() => {
  for (const a of started.splice(0)) a.kill()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

const configWithoutDeployments = () => {
  const dir = mkdtempSync(join(tmpdir(), "kvdeploy-no-deployments-"))
  dirs.push(dir)
  const path = join(dir, "agent.yaml")
  writeFileSync(path, `agent:\n  listen: 127.0.0.1:0\n  state_dir: ${join(dir, "state")}\ndeployments: []\n`)
  return path
}

const warning = {
  field: "deployments",
  message: "is an empty list: the agent runs and deploys nothing",
  fix: expect.stringMatching(/^list the certificates to deploy under deployments: /),
}

describe("a configuration without deployments", () => {
  it("is valid for --check (exit 0), with a warning", () => {
    const path = configWithoutDeployments()
    const json = agent(["--config", path, "--check", "--json"])
    expect(json.status, json.stderr).toBe(0)
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: true, deployments: 0, warnings: [warning] })
    const text = agent(["--config", path, "--check"])
    expect(text.status).toBe(0)
    expect(text.stderr).toContain("deployments: is an empty list: the agent runs and deploys nothing")
  })

  it("starts the agent, which warns that it deploys nothing", async () => {
    const path = configWithoutDeployments()
    const a = startAgent(path, baseEnv())
    started.push(a)
    const line = await a.waitFor(
      (l) => l.msg === "deployments is an empty list: the agent runs and deploys nothing",
    )
    expect(line).toMatchObject({ level: "warn", config: path, fix: warning.fix })
    expect(a.lines.find((l) => l.msg === "kvdeploy-agent started")?.deployments).toBe(0)
  })

  it("a reload to a configuration that still lists none warns again", async () => {
    const path = configWithoutDeployments()
    const a = startAgent(path, baseEnv())
    started.push(a)
    const isWarning = (l: { readonly msg?: unknown }): boolean =>
      l.msg === "deployments is an empty list: the agent runs and deploys nothing"
    await a.waitFor(isWarning)
    const from = a.lines.length
    // Another text (a comment), so the reload applies it rather than finding it unchanged.
    writeFileSync(path, `# reloaded\n${readFileSync(path, "utf8")}`)
    a.signal("SIGHUP")
    const again = await a.waitFor(isWarning, { from })
    expect(again).toMatchObject({ level: "warn", config: path, fix: warning.fix })
  })
})
