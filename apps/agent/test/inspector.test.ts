/**
 * SIGUSR1 does not open Node's inspector (127.0.0.1:9229), through which any local user could read
 * the agent's memory and environment (AZURE_CLIENT_SECRET): the agent ignores it with a warning and
 * keeps running. The flag list of the single executable (and of the fleet benchmark) carries
 * --disable-sigusr1 wherever the Node that builds it has the flag.
 */
import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { listening } from "@kvdeploy/core/test"
import { describe, expect, it } from "vitest"
import { agentRoot, agentSuite, baseEnv, oneDeploymentConfig, startAgent } from "./harness.js"

const VAULT = "agent-inspector"
const suite = agentSuite([VAULT])

describe("SIGUSR1", () => {
  it("does not open the inspector: the agent logs that it ignored it and keeps serving", async () => {
    const { emulator } = suite
    const config = await oneDeploymentConfig(suite, VAULT, "inspector")
    const before = await listening(9229)
    const a = startAgent(config, { ...baseEnv(), ...emulator.env.clientSecret })
    suite.agent = a
    await a.waitFor((l) => /Listening on/.test(l.msg))
    const from = a.lines.length
    a.signal("SIGUSR1")
    await a.waitFor((l) => /^SIGUSR1 ignored/.test(l.msg), { from })
    await new Promise((r) => setTimeout(r, 500))
    expect(a.stderr()).not.toContain("Debugger listening")
    if (!before) expect(await listening(9229)).toBe(false)
    expect((await a.http("/healthz")).status).toBe(200)
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
  })

  it("--disable-sigusr1 is among the agent's Node flags wherever this Node has it", async () => {
    const { agentNodeFlags, nodeTakesDisableSigusr1 } = await import(
      join(agentRoot, "scripts", "node-flags.mjs")
    )
    const has = spawnSync(process.execPath, ["--disable-sigusr1", "-e", ""]).status === 0
    expect(nodeTakesDisableSigusr1).toBe(has)
    expect(agentNodeFlags.includes("--disable-sigusr1")).toBe(has)
    // The project's Node (24 LTS, which builds the single executable) has it: the flag is there.
    if (Number(process.versions.node.split(".")[0]) >= 24)
      expect(agentNodeFlags).toContain("--disable-sigusr1")
    expect(agentNodeFlags).toContain("--expose-gc")
  })
})
