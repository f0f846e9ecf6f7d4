/** The configuration: every problem listed at once, the published JSON Schema in step with the Effect Schema. */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { jsonSchema, parseAgentConfig } from "../src/config.js"
import { agentRoot } from "./harness.js"

const problemsOf = (yaml: string, env: Record<string, string> = {}) => {
  const r = parseAgentConfig(yaml, "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", env)
  if (r._tag === "Success") return []
  return r.failure.problems.map((p) => `${p.field}: ${p.message}`)
}

describe("agent configuration", () => {
  it("accepts the example configuration and applies defaults", () => {
    const text = readFileSync(join(agentRoot, "examples", "agent.yaml"), "utf8")
    const r = parseAgentConfig(text, "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", {
      PORTAL_PFX_PASSWORD: "x",
    })
    if (r._tag === "Failure") throw new Error(r.failure.message)
    expect(
      r.success.deployments.map((d) => [d.name, d.target.certificateName, d.certificateId, d.adopt]),
    ).toEqual([
      ["api-prod", "api-prod", "api-prod-2026", false],
      ["portal", "portal", "portal", true],
    ])
    expect(r.success.settings.listenPort).toBe(9464)
    expect(r.success.settings.vaultListMinDeployments).toBe(25)
    expect(r.success.settings.importsPerWindow).toBeLessThanOrEqual(300)
    expect(r.success.deployments[1]?.source).toEqual({
      _tag: "Pfx",
      pfx: "/etc/ssl/kvdeploy/portal/portal.pfx",
      passwordEnv: "PORTAL_PFX_PASSWORD",
    })
  })

  it("lists every problem, in schema and in targets, at once", () => {
    const problems = problemsOf(`
agent:
  concurrency: 0
  listen: "not an address"
  vault_list_min_deployments: 2.5
  colour: blue
deployments:
  - name: api
    source: { cert: c.pem, key: k.pem, password: hunter2 }
    target: { vault_url: "http://x.example", certificate_name: "bad name!", client_secret: "s3cret" }
  - name: api
    source: { pfx: p.pfx, pfx_password_env: MISSING_VAR }
    target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: "ok", adopt: "yes" }
  - name: other
    source: { cert: c.pem }
    target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: "OK" }
`)
    const expected = [
      /^agent\.colour: /,
      /^agent\.concurrency: /,
      /^agent\.listen: .*not host:port/,
      /^agent\.vault_list_min_deployments: /,
      /^deployments\[0\]\.source\.password: looks like a secret/,
      /^deployments\[0\]\.target\.client_secret: looks like a secret/,
      /^deployments\[0\]\.target\.vault_url: uses http/,
      /^deployments\[0\]\.target\.certificate_name: /,
      /^deployments\[1\]\.name: "api" is also the name/,
      /^deployments\[1\]\.source\.pfx_password_env: the environment variable MISSING_VAR is not set/,
      /^deployments\[1\]\.target\.adopt: /,
      /^deployments\[2\]\.target: deploys to the same certificate as deployments\[1\]/,
    ]
    for (const e of expected)
      expect(
        problems.some((p) => e.test(p)),
        `${e} in\n${problems.join("\n")}`,
      ).toBe(true)
    expect(problems.join("\n")).not.toContain("hunter2")
    expect(problems.join("\n")).not.toContain("s3cret")
  })

  it("reports YAML syntax errors with their line", () => {
    expect(problemsOf("deployments:\n  - name: [unclosed\n")[0]).toMatch(/^\(yaml\) line \d+/)
  })

  it("publishes the JSON Schema generated from the Effect Schema", () => {
    const published = JSON.parse(
      readFileSync(join(agentRoot, "schema", "agent-config.schema.json"), "utf8"),
    ) as unknown
    expect(published, "run `pnpm --filter @kvdeploy/agent schema` to regenerate").toEqual(jsonSchema())
  })
})
