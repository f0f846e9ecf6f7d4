/**
 * The vault expiry series (`kvdeploy_certificate_expiry_timestamp_seconds`: what the vault serves)
 * after a restart: the state file keeps the value the last read gave, so an agent restarted while
 * the vault cannot be read shows it (the KvdeployServedCertificateExpiresSoon alert keeps working),
 * and only for the configuration it was read for.
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
import { makeAgentMetrics } from "../src/agentMetrics.js"
import type { AgentConfig } from "../src/config.js"
import { makeReconciler } from "../src/reconciler.js"
import { type DeploymentRecord, openStateStore } from "../src/state.js"
import { configIn, oneVault, quickRetries } from "./inProcess.js"
import { makePki } from "./pki.js"

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-served-expiry-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const VAULT = "https://servedexpiry.vault.azure.net"

const configFor = (certificateName: string): AgentConfig =>
  configIn(
    dir,
    {
      agent: quickRetries(dir),
      deployments: [
        {
          name: "s",
          source: { cert: join(dir, "s.crt"), key: join(dir, "s.key") },
          target: { vault_url: VAULT, certificate_name: certificateName },
        },
      ],
    },
    process.env,
  )

/**
 * One agent's life over the same state directory: start, one pass, stop once the record says
 * `until`. Answers the record and the vault expiry values the run set, in order.
 */
const runOnce = async (
  config: AgentConfig,
  vault: Vault["Service"],
  until: (r: DeploymentRecord | undefined) => boolean,
) => {
  const state = openStateStore(join(dir, "state"), () => {})
  const before = state.get("s")?.at
  const { reconciler, recorder } = await Effect.runPromise(
    Effect.gen(function* () {
      const reconciler = yield* makeReconciler(config, state, makeAgentMetrics())
      return { reconciler, recorder: yield* MetricsRecorder }
    }).pipe(Effect.provide(Layer.mergeAll(oneVault(vault), TestWorld.layer, Logger.layer([])))),
  )
  Effect.runFork(reconciler.triggerAll("start"))
  await expect
    .poll(() => state.get("s")?.at !== before && until(state.get("s")), { timeout: 20_000, interval: 20 })
    .toBe(true)
  await Effect.runPromise(reconciler.shutdown)
  const served = recorder
    .events()
    .flatMap((e) => (e.series === "certificateExpiry" ? [{ label: e.label, value: e.value }] : []))
  return { record: state.get("s"), served }
}

describe("the vault expiry series after a restart", () => {
  it("is shown from the state file while the vault cannot be read, for the configuration it was read for", async () => {
    const leaf = await (await makePki()).leaf("served-expiry.example.test")
    writeFileSync(join(dir, "s.crt"), leaf.certPem)
    writeFileSync(join(dir, "s.key"), leaf.keyPem, { mode: 0o600 })
    const config = configFor("s")
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
    const seconds = leaf.notAfter.getTime() / 1000
    const series = { label: `${VAULT}/s`, value: seconds }

    // The vault read: the series is set, and the record keeps it.
    const first = await runOnce(config, serving, (r) => r?.outcome === "Skipped")
    expect(first.served).toEqual([series])
    expect(first.record?.servedNotAfter).toBe(leaf.notAfter.toISOString())

    // Restarted while the vault cannot be read: the series is there from the start, from the state.
    const second = await runOnce(config, failing, (r) => r?.outcome === "Failed")
    expect(second.served).toEqual([series])
    // The failure's record keeps it, for the next restart.
    expect(second.record?.servedNotAfter).toBe(leaf.notAfter.toISOString())
    const third = await runOnce(config, failing, (r) => r?.outcome === "Failed")
    expect(third.served).toEqual([series])

    // Another target for the deployment (its configuration changed): not that certificate's value.
    const moved = await runOnce(configFor("s-moved"), failing, (r) => r?.outcome === "Failed")
    expect(moved.served).toEqual([])
    expect(moved.record?.servedNotAfter).toBeUndefined()
  })
})
