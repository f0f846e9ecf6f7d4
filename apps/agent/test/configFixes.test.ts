/**
 * Configuration mistakes an operator makes that got only the generic pointer ("see
 * schema/agent-config.schema.json or docs/agent.md") or a fix that does harm: each gets a fix of
 * its own in `--check --json` (the agent's start says the same problems).
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { agent, inScratch } from "./checkFixtures.js"
import { makePki } from "./pki.js"

const generic = "see schema/agent-config.schema.json or docs/agent.md"
const target =
  '{ vault_url: "https://kv1.vault.azure.net", certificate_name: c1, credential_mode: managed_identity'

/** The problems `--check --json` finds in `yaml`. */
const problemsIn = (dir: string, yaml: string, file = "agent.yaml") => {
  const path = join(dir, file)
  writeFileSync(path, yaml)
  const r = agent(["--config", path, "--check", "--json"])
  expect(r.status, r.stderr).toBe(2)
  return (JSON.parse(r.stdout) as { problems: Array<{ field: string; message: string; fix: string }> })
    .problems
}

const deployment = (targetExtra: string) =>
  `deployments:\n  - name: a\n    source: { cert: /etc/ssl/a.crt, key: /etc/ssl/a.key }\n    target: ${target}${targetExtra} }\n`

describe("configuration mistakes get a fix of their own", () => {
  it("deployments: with nothing after it (YAML's null), and a file without deployments", () =>
    inScratch((dir) => {
      const empty = problemsIn(dir, "deployments:\n")
      expect(empty).toHaveLength(1)
      expect(empty[0]?.field).toBe("deployments")
      expect(empty[0]?.fix).toMatch(
        /^deployments: has no value \(a key with nothing after it is YAML's null\): list the deployments under it/,
      )
      const missing = problemsIn(dir, "agent: {}\n")
      expect(missing).toEqual([
        {
          field: "deployments",
          message: "is missing",
          fix: expect.stringMatching(
            /^add deployments: the list of certificates the agent keeps deployed, each with name, source and target/,
          ),
        },
      ])
    }))

  it("a PEM file given as the configuration: said to be one, its content not shown", async () => {
    const leaf = await (await makePki()).leaf("pem.example.test")
    inScratch((dir) => {
      for (const [file, pem] of [
        ["leaf.key", leaf.keyPem],
        ["leaf.pem", leaf.certPem],
      ] as const) {
        const problems = problemsIn(dir, pem, file)
        expect(problems).toEqual([
          {
            field: "(config)",
            message:
              "is a PEM file (a certificate or a key), not the agent's configuration; its content is not shown",
            fix: expect.stringMatching(
              /^give --config \(or KVDEPLOY_AGENT_CONFIG\) the agent's configuration file/,
            ),
          },
        ])
        const body = pem.split("\n")[1] ?? ""
        expect(JSON.stringify(problems)).not.toContain(body.slice(0, 20))
      }
      // Another document that is no mapping: the form the configuration takes, not only the pointer.
      expect(problemsIn(dir, "- just\n- a list\n")[0]?.fix).not.toBe(generic)
    })
  })

  it("adopt: yes (YAML 1.2 reads it as text): write true", () =>
    inScratch((dir) => {
      const [yes] = problemsIn(dir, deployment(", adopt: yes"))
      expect(yes?.field).toBe("deployments[0].target.adopt")
      expect(yes?.fix).toMatch(
        /^write true: YAML 1\.2, which the agent reads, takes yes as text, not a boolean/,
      )
      expect(problemsIn(dir, deployment(", adopt: off"))[0]?.fix).toMatch(/^write false: /)
    }))

  it("a tag whose value is YAML's null: give it a value or remove it, not quote it", () =>
    inScratch((dir) => {
      for (const empty of ["null", "~", ""]) {
        const problems = problemsIn(dir, deployment(`, tags: { env: ${empty} }`))
        expect(problems, empty).toEqual([
          {
            field: "deployments[0].target.tags.env",
            message: "tag value is not a string",
            fix: "give the tag a value (tags: { env: prod }) or remove it: a key with nothing after it, ~ or null is YAML's null, no value (quoted, it would be the text null)",
          },
        ])
      }
      // A number is still told to be quoted: quoted, it is the text meant.
      expect(problemsIn(dir, deployment(", tags: { build: 42 }"))[0]?.fix).toBe("quote the value")
    }))
})
