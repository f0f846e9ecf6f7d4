/**
 * Readiness and the configured-deployments gauge, in process (docs/agent.md, "Metrics" and the
 * `/readyz` probe): not ready (`kvdeploy_agent_ready 0`, which the KvdeployAgentNotReady alert
 * reads) until every deployment was reconciled once; ready at once with no deployment;
 * `kvdeploy_agent_deployments` follows every reload.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Vault, VaultUnavailable } from "@kvdeploy/core"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import { afterAll, describe, expect, it } from "vitest"
import { makeAgentMetrics } from "../src/agentMetrics.js"
import type { AgentConfig } from "../src/config.js"
import { configIn, oneVault, quickRetries, reconcilerOf } from "./inProcess.js"
import { makePki } from "./pki.js"

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-readiness-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** The value of an unlabelled gauge on the metrics page, or undefined when the page has none. */
const gauge = async (metrics: ReturnType<typeof makeAgentMetrics>, name: string) => {
  const line = (await metrics.registry.metrics()).split("\n").find((l) => l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

const configOf = (state: string, names: ReadonlyArray<string>): AgentConfig =>
  configIn(dir, {
    agent: { ...quickRetries(dir), state_dir: join(dir, state) },
    deployments: names.map((name) => ({
      name,
      source: { cert: join(dir, "r.crt"), key: join(dir, "r.key") },
      target: { vault_url: "https://readyvault.vault.azure.net", certificate_name: name },
    })),
  })

describe("readiness", () => {
  it("an agent with no deployment is ready at once", async () => {
    const metrics = makeAgentMetrics()
    const { reconciler } = await reconcilerOf(
      configOf("none", []),
      join(dir, "none"),
      oneVault({} as Vault["Service"]),
      metrics,
    )
    expect(reconciler.isReady()).toBe(true)
    expect(await gauge(metrics, "kvdeploy_agent_ready")).toBe(1)
    expect(await gauge(metrics, "kvdeploy_agent_deployments")).toBe(0)
    await Effect.runPromise(reconciler.shutdown)
  })

  it("is not ready (gauge 0) until the first reconcile ends, then ready; the deployments gauge follows reloads", async () => {
    const pki = await makePki()
    const leaf = await pki.leaf("ready.example.test")
    writeFileSync(join(dir, "r.crt"), leaf.certPem)
    writeFileSync(join(dir, "r.key"), leaf.keyPem, { mode: 0o600 })
    // The vault holds the first read until the test lets it go, then fails it (a reconcile that
    // ends in a failure is reconciled: ready means tried, not succeeded).
    const release = Deferred.makeUnsafe<void>()
    let reads = 0
    const held = {
      getLatest: () =>
        Effect.suspend(() => {
          reads++
          return Deferred.await(release)
        }).pipe(
          Effect.andThen(Effect.fail(new VaultUnavailable({ operation: "getLatest", detail: "down" }))),
        ),
    } as unknown as Vault["Service"]
    const metrics = makeAgentMetrics()
    const config = configOf("held", ["r"])
    const { reconciler } = await reconcilerOf(config, join(dir, "held"), oneVault(held), metrics)
    expect(reconciler.isReady()).toBe(false)
    expect(await gauge(metrics, "kvdeploy_agent_ready")).toBe(0)
    expect(await gauge(metrics, "kvdeploy_agent_deployments")).toBe(1)
    Effect.runFork(reconciler.triggerAll("interval"))
    await expect.poll(() => reads, { timeout: 20_000, interval: 20 }).toBeGreaterThan(0)
    // The read is out and held: still not ready.
    expect(reconciler.isReady()).toBe(false)
    expect(await gauge(metrics, "kvdeploy_agent_ready")).toBe(0)
    Deferred.doneUnsafe(release, Effect.void)
    await expect.poll(() => reconciler.isReady(), { timeout: 20_000, interval: 20 }).toBe(true)
    expect(await gauge(metrics, "kvdeploy_agent_ready")).toBe(1)
    // A reload adding a deployment, then one removing two.
    await Effect.runPromise(
      reconciler.apply({ ...configOf("held", ["r", "s", "t"]), settings: config.settings }),
    )
    expect(await gauge(metrics, "kvdeploy_agent_deployments")).toBe(3)
    await Effect.runPromise(reconciler.apply({ ...configOf("held", ["t"]), settings: config.settings }))
    expect(await gauge(metrics, "kvdeploy_agent_deployments")).toBe(1)
    await Effect.runPromise(reconciler.shutdown)
  })
})
