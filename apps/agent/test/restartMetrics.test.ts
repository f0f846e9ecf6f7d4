/**
 * What a restarted agent's own series show before it learns anything new
 * (the reconciler itself, in-memory vaults, the state directory kept between
 * runs): the source certificate's expiry of a source recorded in place (its
 * facts come from the state, not from a parse), and the last time the vault
 * was seen serving the source, kept across restarts and across failures.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { forwardTags, type Vault, VaultUnavailable } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import { afterAll, describe, expect, it } from "vitest"
import { type AgentMetrics, makeAgentMetrics } from "../src/agentMetrics.js"
import type { AgentConfig } from "../src/config.js"
import type { DeploymentRecord } from "../src/state.js"
import { configIn, oneVault, quickRetries, reconcilerOf } from "./inProcess.js"
import { makePki } from "./pki.js"

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-restart-metrics-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const VAULT = "https://restartmetrics.vault.azure.net"

const config: AgentConfig = configIn(
  dir,
  {
    agent: quickRetries(dir),
    deployments: [
      {
        name: "m",
        source: { cert: join(dir, "m.crt"), key: join(dir, "m.key") },
        target: { vault_url: VAULT, certificate_name: "m" },
      },
    ],
  },
  process.env,
)

/** The value of the agent's series `name` for deployment "m" on a scrape, or undefined. */
const seriesOf = async (metrics: AgentMetrics, name: string): Promise<number | undefined> => {
  const line = (await metrics.text()).split("\n").find((l) => l.startsWith(`${name}{deployment="m"} `))
  return line === undefined ? undefined : Number(line.split(" ")[1])
}

/**
 * One agent's life (a restart each time: a new reconciler, metrics and state store over the same
 * state directory): start, one pass, stop once the record says `until`. Answers the record and the
 * agent's metrics as they were when it stopped.
 */
const runOnce = async (vault: Vault["Service"], until: (r: DeploymentRecord | undefined) => boolean) => {
  const metrics = makeAgentMetrics()
  const { reconciler, state } = await reconcilerOf(config, join(dir, "state"), oneVault(vault), metrics)
  const before = state.get("m")?.at
  Effect.runFork(reconciler.triggerAll("start"))
  await expect
    .poll(() => state.get("m")?.at !== before && until(state.get("m")), { timeout: 20_000, interval: 20 })
    .toBe(true)
  await Effect.runPromise(reconciler.shutdown)
  return { record: state.get("m"), metrics }
}

describe("a restarted agent's own series", () => {
  it("show the recorded source's expiry, and the last success time through restarts and failures", async () => {
    const leaf = await (await makePki()).leaf("restart-metrics.example.test")
    writeFileSync(join(dir, "m.crt"), leaf.certPem)
    writeFileSync(join(dir, "m.key"), leaf.keyPem, { mode: 0o600 })
    const deployment = config.deployments[0]
    if (deployment === undefined) throw new Error("no deployment")
    const serving = {
      getLatest: () =>
        Effect.succeed({
          versionId: "v1",
          x5t: leaf.x5t,
          serialHex: "01",
          enabled: true,
          createdAt: new Date(0),
          tags: forwardTags(deployment.target.tags, deployment.certificateId),
        }),
    } as unknown as Vault["Service"]
    const failing = {
      getLatest: () =>
        Effect.fail(new VaultUnavailable({ operation: "getLatest", detail: "down in this test" })),
    } as unknown as Vault["Service"]
    const expiry = "kvdeploy_agent_certificate_expiry_timestamp_seconds"
    const lastSuccess = "kvdeploy_agent_last_success_timestamp_seconds"
    const notAfter = Math.floor(leaf.notAfter.getTime() / 1000)
    const secondsOf = (iso: string | undefined) => Math.floor(Date.parse(iso ?? "") / 1000)

    // First run: the source is parsed and found in place.
    const first = await runOnce(serving, (r) => r?.outcome === "Skipped")
    expect(await seriesOf(first.metrics, expiry)).toBe(notAfter)

    // Restarted, nothing changed: the facts come from the state record (no parse), and the expiry
    // series is still there, from the record.
    const second = await runOnce(serving, (r) => r?.outcome === "Skipped")
    expect(await seriesOf(second.metrics, expiry)).toBe(notAfter)
    const servedAt = second.record?.lastSuccessAt
    expect(servedAt).toBeDefined()
    expect(await seriesOf(second.metrics, lastSuccess)).toBe(secondsOf(servedAt))

    // Restarted while the vault fails: no success in this run, yet the last success time is shown
    // (from the state), and the failure's record keeps it.
    const third = await runOnce(failing, (r) => r?.outcome === "Failed")
    expect(third.record?.lastSuccessAt).toBe(servedAt)
    expect(await seriesOf(third.metrics, lastSuccess)).toBe(secondsOf(servedAt))
    expect(await seriesOf(third.metrics, expiry)).toBe(notAfter)

    // Restarted again, the vault still failing: still the last time the vault served the source.
    const fourth = await runOnce(failing, (r) => r?.outcome === "Failed")
    expect(fourth.record?.lastSuccessAt).toBe(servedAt)
    expect(await seriesOf(fourth.metrics, lastSuccess)).toBe(secondsOf(servedAt))
  })
})
