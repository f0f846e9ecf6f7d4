/**
 * A pass ends (its "pass over" is recorded, and with it the idle release is
 * let go) even when a reload removes deployments while the pass is being set
 * up: every deployment the pass counts either ends its part or leaves it.
 * The reconciler itself, with 3,000 deployments (enough that setting up the
 * pass takes more than one run of the fiber scheduler) whose sources are
 * missing, so every first attempt ends at once as a broken source.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { TestWorld } from "@kvdeploy/core/test"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Result from "effect/Result"
import { afterAll, describe, expect, it } from "vitest"
import { stringify } from "yaml"
import { makeAgentMetrics } from "../src/agentMetrics.js"
import { type AgentConfig, parseAgentConfig } from "../src/config.js"
import { makeReconciler } from "../src/reconciler.js"
import { openStateStore } from "../src/state.js"
import { VaultAccessUnavailable, Vaults } from "../src/vaults.js"

const N = 3000
const dir = mkdtempSync(join(tmpdir(), "kvdeploy-pass-count-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const configOf = (n: number): AgentConfig => {
  const text = stringify({
    agent: { listen: "127.0.0.1:0", state_dir: join(dir, "state"), backoff_base_seconds: 60 },
    deployments: Array.from({ length: n }, (_, i) => ({
      name: `d${i}`,
      source: { cert: join(dir, `missing-${i}.crt`), key: join(dir, `missing-${i}.key`) },
      target: { vault_url: "https://countvault.vault.azure.net", certificate_name: `c${i}` },
    })),
  })
  const parsed = parseAgentConfig(text, join(dir, "agent.yaml"), dir, {})
  if (Result.isFailure(parsed)) throw new Error(parsed.failure.message)
  return parsed.success
}

const vaults = Layer.succeed(Vaults)({
  forTarget: () => Effect.fail(new VaultAccessUnavailable({ reason: "no vault in this test", fix: "none" })),
  releaseIdleConnections: Effect.succeed(0),
})

describe("a pass over every deployment", () => {
  it.each([
    ["a reload applied before the pass", false],
    ["a reload applied while the pass is set up", true],
  ])("ends with %s that removed a deployment", async (_label, concurrent) => {
    const full = configOf(N)
    const smaller = { ...configOf(N - 1), settings: full.settings }
    const metrics = makeAgentMetrics()
    const over: Array<string> = []
    const record = metrics.passOver
    const counted = {
      ...metrics,
      passOver: (reason: string, endedAtMs: number, durationMs: number, listed: number) => {
        over.push(reason)
        record(reason, endedAtMs, durationMs, listed)
      },
    }
    const state = openStateStore(join(dir, concurrent ? "concurrent" : "before"), () => {})
    const reconciler = await Effect.runPromise(
      makeReconciler(full, state, counted).pipe(
        Effect.provide(Layer.mergeAll(vaults, TestWorld.layer, Logger.layer([]))),
      ),
    )
    if (concurrent) {
      Effect.runFork(reconciler.triggerAll("interval"))
      Effect.runFork(reconciler.apply(smaller))
    } else {
      await Effect.runPromise(reconciler.apply(smaller))
      Effect.runFork(reconciler.triggerAll("interval"))
    }
    await expect.poll(() => over, { timeout: 30_000, interval: 100 }).toContain("interval")
    expect(reconciler.deployments()).toHaveLength(N - 1)
    await Effect.runPromise(reconciler.shutdown)
  })
})
