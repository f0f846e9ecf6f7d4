/**
 * A credential mode whose variables the environment lacks (or holds malformed): `--check` refuses the configuration
 * (exit 2), the running agent warns and still runs every deployment it can.
 */
import { spawnSync } from "node:child_process"
import type { AuthMode } from "@kvdeploy/kv-emulator"
import { describe, expect, it } from "vitest"
import { agentSuite, baseEnv, bin, metricValue, startAgent, writeConfig } from "./harness.js"

const VAULT = "agent-env"
const suite = agentSuite([VAULT])

/** A fresh leaf for `name`.example.test written to the work directory: the source of its deployments. */
const sourceOf = async (name: string) => {
  const { pki, work } = suite
  const leaf = await pki.leaf(`${name}.example.test`)
  work.write(`${name}.crt`, leaf.certPem)
  work.write(`${name}.key`, leaf.keyPem)
  return { leaf, source: { cert: work.path(`${name}.crt`), key: work.path(`${name}.key`) } }
}

/** Deployment `name` of `source` into VAULT as `name`-cert, with the credential of the emulator's `mode`. */
const deploymentAs = (name: string, source: { cert: string; key: string }, mode: AuthMode) => ({
  name,
  vault: VAULT,
  certificate: `${name}-cert`,
  source,
  target: suite.emulator.targetConfig(VAULT, `${name}-cert`, mode),
})

describe("a credential mode's variables missing from the environment", () => {
  it("fail --check, and only the deployments of that mode in the running agent", async () => {
    const { emulator, work } = suite
    const { leaf, source } = await sourceOf("env")
    const config = writeConfig(work, emulator, [
      // Managed identity through the emulator's App Service endpoint: its variables are set.
      deploymentAs("managed", source, "managedIdentityAppService"),
      // Client secret: AZURE_CLIENT_SECRET is not set.
      { name: "secret", vault: VAULT, certificate: "secret-cert", source },
    ])
    const { AZURE_CLIENT_SECRET: _unset, ...withoutSecret } = emulator.env.clientSecret
    const env = { ...baseEnv(), ...withoutSecret, ...emulator.env.managedIdentityAppService }

    const check = spawnSync(process.execPath, [bin, "--config", config, "--check"], { encoding: "utf8", env })
    expect(check.status, check.stdout + check.stderr).toBe(2)
    expect(check.stderr).toContain(
      "deployments[1].target.credential_mode: client_secret (used by 1 deployment) needs AZURE_CLIENT_SECRET, not set in the agent's environment",
    )

    // A value the credential cannot work with fails the check alike, named and never quoted.
    const pasted = "Zx8Q~a-client-secret-pasted-into-the-client-id"
    const malformed = spawnSync(process.execPath, [bin, "--config", config, "--check"], {
      encoding: "utf8",
      env: { ...env, AZURE_CLIENT_SECRET: "s", AZURE_CLIENT_ID: pasted },
    })
    expect(malformed.status, malformed.stdout + malformed.stderr).toBe(2)
    expect(malformed.stderr).toContain(
      "deployments[1].target.credential_mode: client_secret (1 deployment) cannot work: AZURE_CLIENT_ID is not a client id (a GUID)",
    )
    expect(malformed.stdout + malformed.stderr).not.toContain(pasted)

    const a = startAgent(config, env)
    suite.agent = a
    const warning = await a.waitFor((l) => /needs AZURE_CLIENT_SECRET/.test(l.msg))
    expect(warning.msg).toMatch(
      /these deployments fail until the environment is fixed and the agent restarted$/,
    )
    await a.waitFor((l) => l.deployment === "managed" && l.msg === "deploy: Succeeded")
    expect(emulator.state.versions(VAULT, "managed-cert")?.at(-1)?.x5t).toBe(leaf.x5t)
    expect(emulator.state.versions(VAULT, "secret-cert")).toBeUndefined()
    // The deployment without its credential is Failed in the metrics (KvdeployDeployFailing): it had
    // no outcome series at all, and kept a Skipped one from an earlier run.
    await a.waitFor((l) => l.deployment === "secret" && l.msg === "no vault access")
    const page = (await a.http("/metrics")).body
    expect(
      metricValue(page, "kvdeploy_agent_last_outcome", { deployment: "secret", outcome: "Failed" }),
    ).toBe(1)
    expect(
      metricValue(page, "kvdeploy_agent_last_outcome", { deployment: "managed", outcome: "Succeeded" }),
    ).toBe(1)
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
  })
})

describe("one credential per identity", () => {
  it("a system-assigned and a user-assigned managed identity in one vault each deploy as themselves", async () => {
    const { emulator, work } = suite
    const { leaf, source } = await sourceOf("identities")
    const config = writeConfig(work, emulator, [
      deploymentAs("system", source, "managedIdentityImds"),
      // The same vault, with managed_identity_client_id: the user-assigned identity.
      deploymentAs("user", source, "managedIdentityUserAssigned"),
    ])
    const mark = emulator.requests.mark()
    const a = startAgent(config, { ...baseEnv(), ...emulator.env.managedIdentityImds })
    suite.agent = a
    await a.waitFor((l) => l.deployment === "system" && l.msg === "deploy: Succeeded")
    await a.waitFor((l) => l.deployment === "user" && l.msg === "deploy: Succeeded")
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
    // Each certificate's requests were made by its own identity (the emulator logs the token's client).
    const principals = (name: string) => [
      ...new Set(
        emulator.requests
          .entries({ vault: VAULT, since: mark })
          .filter((r) => !r.challenge && r.path.startsWith(`/certificates/${name}`))
          .map((r) => r.principal),
      ),
    ]
    const { systemAssigned, userAssigned } = emulator.managedIdentity
    expect(principals("system-cert")).toEqual([systemAssigned.clientId])
    expect(principals("user-cert")).toEqual([userAssigned.clientId])
    expect(emulator.state.versions(VAULT, "user-cert")?.at(-1)?.x5t).toBe(leaf.x5t)
  })

  it("a cold start of many deployments of one identity asks the identity provider for one token", async () => {
    const { emulator, work } = suite
    const { source } = await sourceOf("many")
    const config = writeConfig(
      work,
      emulator,
      Array.from({ length: 24 }, (_, i) => ({
        name: `many-${i}`,
        vault: VAULT,
        certificate: `many-${i}`,
        source,
      })),
    )
    const mark = emulator.requests.mark()
    const a = startAgent(config, { ...baseEnv(), ...emulator.env.clientSecret })
    suite.agent = a
    for (let i = 0; i < 24; i++)
      await a.waitFor((l) => l.deployment === `many-${i}` && l.msg === "deploy: Succeeded")
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
    const tokens = emulator.requests
      .entries({ vault: "entra", since: mark })
      .filter((r) => r.operation === "token")
    expect(tokens).toHaveLength(1)
  })
})
