/**
 * A configuration file that cannot be read: the fix names where its path came from (`--config`,
 * $KVDEPLOY_AGENT_CONFIG, or the default /etc/kvdeploy/agent.yaml) and what to do. It said "check
 * the path given with --config" to an agent given no --config.
 */
import { existsSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { agent } from "./checkFixtures.js"

interface Refused {
  readonly path: string
  readonly valid: boolean
  readonly problems: ReadonlyArray<{ field: string; message: string; fix: string }>
}

const missing = "/nonexistent/kvdeploy-agent-missing.yaml"

describe("a configuration file that cannot be read", () => {
  it("named by --config: the fix points at --config", () => {
    const r = agent(["--config", missing, "--check", "--json"])
    expect(r.status).toBe(2)
    const [p] = (JSON.parse(r.stdout) as Refused).problems
    expect(p?.message).toBe("cannot be read: no such file or directory (ENOENT)")
    expect(p?.fix).toBe(`check the path given with --config (${missing}) and its permissions`)
  })

  it("named by $KVDEPLOY_AGENT_CONFIG: the fix names the variable, not --config (--check, and a plain run)", () => {
    const r = agent(["--check", "--json"], { KVDEPLOY_AGENT_CONFIG: missing })
    expect(r.status).toBe(2)
    const document = JSON.parse(r.stdout) as Refused
    expect(document.path).toBe(missing)
    expect(document.problems[0]?.fix).toMatch(/^check the path \$KVDEPLOY_AGENT_CONFIG holds \(/)
    expect(document.problems[0]?.fix).not.toContain("given with --config")
    const plain = agent([], { KVDEPLOY_AGENT_CONFIG: missing })
    expect(plain.status).toBe(2)
    expect(plain.stderr).toContain("fix: check the path $KVDEPLOY_AGENT_CONFIG holds")
    expect(plain.stderr).not.toContain("given with --config")
  })

  it.skipIf(existsSync("/etc/kvdeploy/agent.yaml"))(
    "the default /etc/kvdeploy/agent.yaml (neither given): the fix says it was the default, and how to give another",
    () => {
      for (const args of [["--check", "--json"], []]) {
        const r = agent(args)
        expect(r.status, r.stderr).toBe(2)
        const text = args.length === 0 ? r.stderr : (JSON.parse(r.stdout) as Refused).problems[0]?.fix
        expect(text).toContain(
          "no --config was given and $KVDEPLOY_AGENT_CONFIG is not set, so the agent read the default /etc/kvdeploy/agent.yaml: put the configuration there, or give its path with --config FILE",
        )
        expect(text).not.toContain("given with --config")
      }
    },
  )
})
