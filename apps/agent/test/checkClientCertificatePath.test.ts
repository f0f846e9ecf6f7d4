/**
 * `--check` judges AZURE_CLIENT_CERTIFICATE_PATH as it judges AZURE_FEDERATED_TOKEN_FILE: with
 * credential_mode default and no client secret, @azure/identity's EnvironmentCredential reads that
 * file whole with each token attempt; /dev/zero grew the agent to 1.3 GB while --check said valid.
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { agent, inScratch, selfSigned } from "./checkFixtures.js"

describe("kvdeploy-agent --check and the client certificate file", () => {
  it("a device at AZURE_CLIENT_CERTIFICATE_PATH (default mode): exit 2, naming the variable and the fix", () => {
    inScratch((dir) => {
      selfSigned(dir, "ok")
      const config = join(dir, "default.yaml")
      writeFileSync(
        config,
        `deployments:
  - { name: ok, source: { cert: ${join(dir, "ok.crt")}, key: ${join(dir, "ok.key")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: ok, credential_mode: default } }
`,
      )
      const env = {
        AZURE_TENANT_ID: "00000000-0000-0000-0000-0000000000a0",
        AZURE_CLIENT_ID: "00000000-0000-0000-0000-0000000000a1",
      }
      const zero = agent(["--config", config, "--check", "--json"], {
        ...env,
        AZURE_CLIENT_CERTIFICATE_PATH: "/dev/zero",
      })
      expect(zero.status, zero.stdout + zero.stderr).toBe(2)
      const problems = (
        JSON.parse(zero.stdout) as { problems: Array<{ field: string; message: string; fix: string }> }
      ).problems
      expect(problems).toEqual([
        {
          field: "deployments[0].target.credential_mode",
          message:
            "default (1 deployment) cannot work: the client certificate file /dev/zero (AZURE_CLIENT_CERTIFICATE_PATH) is not a regular file (it is a character device)",
          fix: expect.stringMatching(/^Set AZURE_CLIENT_CERTIFICATE_PATH to the PEM or PFX file/),
        },
      ])
      // A certificate file of a usual size: valid.
      const fine = agent(["--config", config, "--check"], {
        ...env,
        AZURE_CLIENT_CERTIFICATE_PATH: join(dir, "ok.crt"),
      })
      expect(fine.status, fine.stderr).toBe(0)
    })
  })
})
