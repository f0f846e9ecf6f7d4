/**
 * The built agent while its identity endpoint fails (IMDS dropping every connection): each failed
 * read says no token could be had, not that the vault could not be read; the metrics count the
 * identity's outage apart from the vault's; each deployment says so once, however many attempts
 * fail, and the identity's own lines and series follow the outage; the deploy goes through once the
 * endpoint is back.
 */
import { describe, expect, it } from "vitest"
import { noTokenMessage, recoveredMessage } from "../src/identityHealth.js"
import { baseEnv, metricValue, startAgent, startEmulator, workdir, writeConfig } from "./harness.js"
import { makePki } from "./pki.js"

// Side by side: each test has its own emulator, work directory and agent, and spends most of its time
// waiting on the agent's clocks (the second one's token request runs out its 30 s limit).
describe("an identity endpoint that fails", { concurrent: true }, () => {
  it("is told as no token for the vault, counted as identity_unavailable, and the deploy goes through once it is back", async () => {
    const vault = "identity-outage"
    const emulator = await startEmulator({ vaults: [vault] })
    const work = workdir()
    const fault = emulator.faults.add({ operation: "imdsToken", times: "always", action: { kind: "drop" } })
    const pki = await makePki()
    // Three deployments of one identity.
    const names = ["io-1", "io-2", "io-3"]
    const deployments = []
    for (const name of names) {
      const leaf = await pki.leaf(`${name}.example.test`)
      deployments.push({
        name,
        vault,
        certificate: name,
        source: {
          cert: work.write(`${name}.crt`, leaf.certPem),
          key: work.write(`${name}.key`, leaf.keyPem),
        },
        target: emulator.targetConfig(vault, name, "managedIdentityImds"),
      })
    }
    // Each pass lists the vault (3 deployments).
    const agentSettings = { backoff_base_seconds: 1, backoff_max_seconds: 4, vault_list_min_deployments: 1 }
    const config = writeConfig(work, emulator, deployments, agentSettings)
    const a = startAgent(config, { ...baseEnv(), ...emulator.env.managedIdentityImds })
    const identity = { credential_mode: "managed_identity" }
    const noTokenLines = (name: string) =>
      a.lines.filter(
        (l) => l.deployment === name && l.msg === "no token for the vault: retrying with backoff",
      )
    const identityLines = (msg: string) => a.lines.filter((l) => l.msg === msg)
    try {
      const failed = await a.waitFor(
        (l) => l.deployment === "io-1" && l.msg === "no token for the vault: retrying with backoff",
        { timeoutMs: 60_000 },
      )
      expect(failed.reason).toContain("no token for the vault (nothing was sent)")
      // At least 9 reads that got no token: some deployment failed 3 times or more.
      const deadline = Date.now() + 60_000
      let page = ""
      for (;;) {
        page = (await a.http("/metrics")).body
        const count = metricValue(page, "kvdeploy_vault_requests_total", {
          operation: "getLatest",
          status: "identity_unavailable",
        })
        if ((count ?? 0) >= 9) break
        if (Date.now() > deadline) throw new Error(`only ${count} reads without a token in 60 s`)
        await new Promise((resolve) => setTimeout(resolve, 500))
      }
      expect(a.lines.some((l) => l.msg.startsWith("cannot read the vault"))).toBe(false)
      expect(
        metricValue(page, "kvdeploy_vault_requests_total", { operation: "getLatest", status: "unavailable" }),
      ).toBeUndefined()
      // Each deployment says it once, however many attempts failed; the identity's line says it once.
      for (const name of names) expect(noTokenLines(name)).toHaveLength(1)
      const down = identityLines(noTokenMessage)
      expect(down).toHaveLength(1)
      expect(down[0]).toMatchObject({ level: "warn", credential_mode: "managed_identity" })
      expect(down[0]?.authority_host).toBe(emulator.authorityHost)
      expect(metricValue(page, "kvdeploy_agent_token_request_failing", identity)).toBe(1)
      expect(metricValue(page, "kvdeploy_agent_token_expiry_timestamp_seconds", identity)).toBeUndefined()
      // Nothing but the body-less challenge reached the vault.
      expect(emulator.requests.entries({ vault }).every((r) => r.challenge)).toBe(true)
      // A reload moves io-1 to another certificate: its first attempt without a token is told again;
      // the others, unchanged, stay silent, and the identity (still named) says nothing new.
      const from = a.lines.length
      writeConfig(
        work,
        emulator,
        deployments.map((d) =>
          d.name === "io-1"
            ? {
                ...d,
                certificate: "io-1-moved",
                target: emulator.targetConfig(vault, "io-1-moved", "managedIdentityImds"),
              }
            : d,
        ),
        agentSettings,
      )
      a.signal("SIGHUP")
      const moved = await a.waitFor(
        (l) => l.deployment === "io-1" && l.msg === "no token for the vault: retrying with backoff",
        { from, timeoutMs: 30_000 },
      )
      expect(moved.reason).toContain("no token for the vault (nothing was sent)")
      expect(noTokenLines("io-1")).toHaveLength(2)
      for (const name of ["io-2", "io-3"]) expect(noTokenLines(name)).toHaveLength(1)
      expect(identityLines(noTokenMessage)).toHaveLength(1)
      // The reload's pass listed the vault again without a token: the vault's line was said once.
      const listDeadline = Date.now() + 30_000
      const listsWithoutToken = async () =>
        metricValue((await a.http("/metrics")).body, "kvdeploy_vault_requests_total", {
          operation: "listCertificates",
          status: "identity_unavailable",
        }) ?? 0
      while ((await listsWithoutToken()) < 2) {
        if (Date.now() > listDeadline) throw new Error("the reload's pass did not list the vault")
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
      const listLines = a.lines.filter((l) => l.msg.startsWith("vault list failed"))
      expect(listLines).toHaveLength(1)
      expect(listLines[0]).toMatchObject({
        vault: emulator.targetConfig(vault, "io-1", "managedIdentityImds").vault_url,
      })
      emulator.faults.remove(fault)
      for (const name of names)
        await a.waitFor((l) => l.deployment === name && l.msg === "deploy: Succeeded", { timeoutMs: 60_000 })
      const back = identityLines(recoveredMessage)
      expect(back).toHaveLength(1)
      expect(back[0]).toMatchObject({ level: "info", credential_mode: "managed_identity" })
      expect(back[0]?.failed_requests).toBeGreaterThanOrEqual(1)
      page = (await a.http("/metrics")).body
      expect(metricValue(page, "kvdeploy_agent_token_request_failing", identity)).toBe(0)
      expect(metricValue(page, "kvdeploy_agent_token_expiry_timestamp_seconds", identity)).toBeGreaterThan(
        Date.now() / 1000,
      )
    } finally {
      a.kill()
      work.remove()
      await emulator.stop()
    }
  }, 150_000)

  it("an attempt of a configuration a reload replaced, waiting for its token, is stopped, and the new one's first attempt without a token is told", async () => {
    const vault = "identity-reload"
    const emulator = await startEmulator({ vaults: [vault] })
    const work = workdir()
    // Entra ID holds every token request (until the test ends): each one runs out the agent's limit on a
    // token request (request_timeout_seconds, and at least 30 s).
    const hold = emulator.faults.add({
      operation: "token",
      times: "always",
      action: { kind: "hold", timeoutMs: 120_000 },
    })
    const pki = await makePki()
    const leaf = await pki.leaf("ir.example.test")
    const source = { cert: work.write("ir.crt", leaf.certPem), key: work.write("ir.key", leaf.keyPem) }
    const agentSettings = { backoff_base_seconds: 1, backoff_max_seconds: 2 }
    const config = writeConfig(
      work,
      emulator,
      [{ name: "ir", vault, certificate: "ir-a", source }],
      agentSettings,
    )
    const a = startAgent(config, { ...baseEnv(), ...emulator.env.clientSecret })
    const noTokenLines = () =>
      a.lines.filter(
        (l) => l.deployment === "ir" && l.msg === "no token for the vault: retrying with backoff",
      )
    try {
      // The first attempt waits for its token; the reload moves the deployment to another certificate meanwhile.
      const deadline = Date.now() + 30_000
      while ((emulator.faults.list().find((f) => f.id === hold)?.hits ?? 0) < 1) {
        if (Date.now() > deadline) throw new Error("no token request reached Entra ID in 30 s")
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      const from = a.lines.length
      writeConfig(work, emulator, [{ name: "ir", vault, certificate: "ir-b", source }], agentSettings)
      a.signal("SIGHUP")
      await a.waitFor((l) => l.msg === "configuration applied", { from, timeoutMs: 20_000 })
      expect(noTokenLines()).toHaveLength(0)
      // The replaced configuration's attempt is stopped by the reload (it would have gone on to the old
      // certificate once it had a token); the new one's first attempt without a token is said.
      await a.waitFor(
        (l) => l.msg === "no token for the vault: retrying with backoff" && l.certificate === "ir-b",
        { from, timeoutMs: 45_000 },
      )
      expect(noTokenLines().map((l) => l.certificate)).toEqual(["ir-b"])
    } finally {
      a.kill()
      emulator.faults.remove(hold)
      work.remove()
      await emulator.stop()
    }
  }, 90_000)

  it("a workload identity whose federated token file holds an expired token: its line names the expiry as the cause", async () => {
    const vault = "identity-federated"
    const emulator = await startEmulator({ vaults: [vault] })
    const work = workdir()
    // Signed by the emulator's issuer two hours ago, valid for one: a copy of a projected token.
    const old = emulator.issueFederatedToken(undefined, {
      issuedAt: Math.floor(Date.now() / 1000) - 2 * 3600,
    })
    const tokenFile = work.write("azure-identity-token", old)
    const pki = await makePki()
    const leaf = await pki.leaf("wf.example.test")
    const source = { cert: work.write("wf.crt", leaf.certPem), key: work.write("wf.key", leaf.keyPem) }
    const config = writeConfig(work, emulator, [
      {
        name: "wf",
        vault,
        certificate: "wf",
        source,
        target: emulator.targetConfig(vault, "wf", "workloadIdentity"),
      },
    ])
    const a = startAgent(config, {
      ...baseEnv(),
      ...emulator.env.workloadIdentity,
      AZURE_FEDERATED_TOKEN_FILE: tokenFile,
    })
    try {
      const line = await a.waitFor((l) => l.msg === noTokenMessage, { timeoutMs: 30_000 })
      expect(line).toMatchObject({ credential_mode: "workload_identity", level: "warn" })
      expect(String(line.reason)).toContain("AADSTS700024")
      expect(Date.parse(String(line.federated_token_expires_at))).toBeLessThan(Date.now() - 3_000_000)
      expect(String(line.fix)).toMatch(/^the federated token in \S+ expired at \S+, and Entra ID refuses/)
      // Said once: the reason is Entra ID's text, without the file's state that the fix names.
      expect(String(line.reason)).not.toContain("expired at")
      expect(JSON.stringify(a.lines)).not.toContain(old)
      // The expired token is no start-up warning (`--check` refuses it): the kubelet may renew the file.
      expect(a.lines.filter((l) => String(l.msg).includes("until the environment is fixed"))).toEqual([])
    } finally {
      a.kill()
      work.remove()
      await emulator.stop()
    }
  }, 60_000)
})
