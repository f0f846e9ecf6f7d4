/**
 * What a restarted agent's series show before it learns anything new
 * (the reconciler itself, in-memory vaults, the state directory kept between
 * runs): the source certificate's expiry of a source recorded in place (its
 * facts come from the state, not from a parse), the last time the vault
 * was seen serving the source, kept across restarts and across failures, and
 * the vault expiry series (`kvdeploy_certificate_expiry_timestamp_seconds`:
 * what the vault serves), kept in the state file for the configuration it was
 * read for, so that an agent restarted while the vault cannot be read shows it.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { forwardTags, type Vault, VaultUnavailable } from "@kvdeploy/core"
import { MetricsRecorder, TestWorld } from "@kvdeploy/core/test"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import { afterAll, describe, expect, it } from "vitest"
import { type AgentMetrics, makeAgentMetrics } from "../src/agentMetrics.js"
import type { AgentConfig } from "../src/config.js"
import { makeReconciler } from "../src/reconciler.js"
import { type DeploymentRecord, openStateStore } from "../src/state.js"
import { configIn, oneVault, quickRetries } from "./inProcess.js"
import { makePki } from "./pki.js"

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-restart-metrics-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const VAULT = "https://restartmetrics.vault.azure.net"

/** Deployment "m" of `certificateName` in VAULT, from m.crt and m.key. */
const configFor = (certificateName: string): AgentConfig =>
  configIn(
    dir,
    {
      agent: quickRetries(dir),
      deployments: [
        {
          name: "m",
          source: { cert: join(dir, "m.crt"), key: join(dir, "m.key") },
          target: { vault_url: VAULT, certificate_name: certificateName },
        },
      ],
    },
    process.env,
  )
const config = configFor("m")

/** The value of the agent's series `name` for deployment "m" on a scrape, or undefined. */
const seriesOf = async (metrics: AgentMetrics, name: string): Promise<number | undefined> => {
  const line = (await metrics.text()).split("\n").find((l) => l.startsWith(`${name}{deployment="m"} `))
  return line === undefined ? undefined : Number(line.split(" ")[1])
}

/**
 * One agent's life (a restart each time: a new reconciler, metrics and state store over the same
 * state directory `state`): start, one pass, stop once the record says `until`. Answers the record,
 * the agent's metrics as they were when it stopped, and the vault expiry values the run set.
 */
const runOnce = async (
  vault: Vault["Service"],
  until: (r: DeploymentRecord | undefined) => boolean,
  options: { readonly config?: AgentConfig; readonly state?: string } = {},
) => {
  const metrics = makeAgentMetrics()
  const state = openStateStore(join(dir, options.state ?? "state"), () => {})
  const { reconciler, recorder } = await Effect.runPromise(
    Effect.gen(function* () {
      const reconciler = yield* makeReconciler(options.config ?? config, state, metrics)
      return { reconciler, recorder: yield* MetricsRecorder }
    }).pipe(Effect.provide(Layer.mergeAll(oneVault(vault), TestWorld.layer, Logger.layer([])))),
  )
  const before = state.get("m")?.at
  Effect.runFork(reconciler.triggerAll("start"))
  await expect
    .poll(() => state.get("m")?.at !== before && until(state.get("m")), { timeout: 20_000, interval: 20 })
    .toBe(true)
  await Effect.runPromise(reconciler.shutdown)
  const served = recorder
    .events()
    .flatMap((e) => (e.series === "certificateExpiry" ? [{ label: e.label, value: e.value }] : []))
  return { record: state.get("m"), metrics, served }
}

/** A vault serving `leaf` in place for deployment "m" (its expiry in the answer), and one that cannot be read. */
const vaultsFor = (leaf: { readonly x5t: string; readonly notAfter: Date }) => {
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
        expiresAt: leaf.notAfter,
        tags: forwardTags(deployment.target.tags, deployment.certificateId),
      }),
  } as unknown as Vault["Service"]
  const failing = {
    getLatest: () =>
      Effect.fail(new VaultUnavailable({ operation: "getLatest", detail: "down in this test" })),
  } as unknown as Vault["Service"]
  return { serving, failing }
}

describe("a restarted agent's own series", () => {
  it("show the recorded source's expiry, and the last success time through restarts and failures", async () => {
    const leaf = await (await makePki()).leaf("restart-metrics.example.test")
    writeFileSync(join(dir, "m.crt"), leaf.certPem)
    writeFileSync(join(dir, "m.key"), leaf.keyPem, { mode: 0o600 })
    const { serving, failing } = vaultsFor(leaf)
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

  it("the vault expiry series: shown from the state file while the vault cannot be read, for the configuration it was read for", async () => {
    const leaf = await (await makePki()).leaf("served-expiry.example.test")
    writeFileSync(join(dir, "m.crt"), leaf.certPem)
    writeFileSync(join(dir, "m.key"), leaf.keyPem, { mode: 0o600 })
    const { serving, failing } = vaultsFor(leaf)
    // A state directory of its own: the test above left its records in the other.
    const own = { state: "state-served" }
    const series = { label: `${VAULT}/m`, value: leaf.notAfter.getTime() / 1000 }

    // The vault read: the series is set, and the record keeps it.
    const first = await runOnce(serving, (r) => r?.outcome === "Skipped", own)
    expect(first.served).toEqual([series])
    expect(first.record?.servedNotAfter).toBe(leaf.notAfter.toISOString())

    // Restarted while the vault cannot be read: the series is there from the start, from the state.
    const second = await runOnce(failing, (r) => r?.outcome === "Failed", own)
    expect(second.served).toEqual([series])
    // The failure's record keeps it, for the next restart.
    expect(second.record?.servedNotAfter).toBe(leaf.notAfter.toISOString())
    const third = await runOnce(failing, (r) => r?.outcome === "Failed", own)
    expect(third.served).toEqual([series])

    // Another target for the deployment (its configuration changed): not that certificate's value.
    const moved = await runOnce(failing, (r) => r?.outcome === "Failed", {
      ...own,
      config: configFor("m-moved"),
    })
    expect(moved.served).toEqual([])
    expect(moved.record?.servedNotAfter).toBeUndefined()
  })
})
