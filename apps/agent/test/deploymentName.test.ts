/**
 * A deployment name the schema refuses: the problem says what is wrong with it (a space, a first
 * character, its length) and the fix says the form, from the same rule the schema checks. It said
 * only "is not of the form this field takes".
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { agent, inScratch } from "./checkFixtures.js"

const checkName = (dir: string, name: string) => {
  const config = join(dir, "agent.yaml")
  writeFileSync(
    config,
    `deployments:\n  - { name: ${JSON.stringify(name)}, source: { cert: ${join(dir, "a.crt")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }\n`,
  )
  const r = agent(["--config", config, "--check", "--json"])
  expect(r.status, r.stderr).toBe(2)
  const problems = (
    JSON.parse(r.stdout) as { problems: Array<{ field: string; message: string; fix: string }> }
  ).problems
  return problems.filter((p) => p.field === "deployments[0].name")
}

const rule = "1 to 128 characters: letters, digits, '.', '_' and '-', the first a letter or digit"

describe("a deployment name the schema refuses", () => {
  it("names what is wrong, and the fix says the form", () =>
    inScratch((dir) => {
      expect(checkName(dir, "bad name")).toEqual([
        {
          field: "deployments[0].name",
          message: "holds a space, which a deployment name does not take",
          fix: `give a name of ${rule} (it names the deployment in logs, metrics and the state file)`,
        },
      ])
      expect(checkName(dir, "api/prod+1")[0]?.message).toBe(
        "holds '/', '+', which a deployment name does not take",
      )
      expect(checkName(dir, "-api")[0]?.message).toBe(
        "starts with '-': the first character is a letter or digit",
      )
      expect(checkName(dir, `a${"b".repeat(128)}`)[0]?.message).toBe("is 129 characters long: at most 128")
      expect(checkName(dir, "")[0]?.message).toBe("is empty")
    }))
})
