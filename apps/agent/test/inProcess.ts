/**
 * The reconciler run in the test's own process over in-memory vaults (no HTTP, no built agent):
 * for tests that drive passes, restarts and lists step by step.
 */
import { join } from "node:path"
import { Metrics, Vault } from "@kvdeploy/core"
import {
  InMemoryVault,
  InMemoryVaultHandle,
  MetricsRecorder,
  RecordingMetrics,
  TestWorld,
} from "@kvdeploy/core/test"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Result from "effect/Result"
import { stringify } from "yaml"
import { type AgentMetrics, makeAgentMetrics } from "../src/agentMetrics.js"
import { type AgentConfig, parseAgentConfig } from "../src/config.js"
import { makeReconciler } from "../src/reconciler.js"
import { openStateStore, type StateStore } from "../src/state.js"
import { VaultAccessUnavailable, Vaults } from "../src/vaults.js"

/** Vaults answering `byUrl[vault_url]`; a target of any other vault has no access. */
export const vaultsOf = (byUrl: Readonly<Record<string, Vault["Service"]>>): Layer.Layer<Vaults> =>
  Layer.succeed(Vaults)({
    forTarget: (target) => {
      const vault = byUrl[target.vaultUrl]
      return vault === undefined
        ? Effect.fail(new VaultAccessUnavailable({ reason: "no vault in this test", fix: "none" }))
        : Effect.succeed(vault)
    },
    releaseIdleConnections: Effect.succeed(0),
    retain: () => Effect.succeed({ clients: 0, vaults: [] }),
    identities: () => [],
  })

/** Vaults answering `vault` for every target. */
export const oneVault = (vault: Vault["Service"]): Layer.Layer<Vaults> =>
  Layer.succeed(Vaults)({
    forTarget: () => Effect.succeed(vault),
    releaseIdleConnections: Effect.succeed(0),
    retain: () => Effect.succeed({ clients: 0, vaults: [] }),
    identities: () => [],
  })

/** Making the reconciler for `config` over `vaults` with `state`, logging nothing. */
export const reconcilerEffect = (
  config: AgentConfig,
  state: StateStore,
  vaults: Layer.Layer<Vaults>,
  metrics: AgentMetrics = makeAgentMetrics(),
) =>
  makeReconciler(config, state, metrics).pipe(
    Effect.provide(Layer.mergeAll(vaults, TestWorld.layer, Logger.layer([]))),
  )

/** The reconciler for `config` over `vaults`, its state in `stateDir`, logging nothing. */
export const reconcilerOf = async (
  config: AgentConfig,
  stateDir: string,
  vaults: Layer.Layer<Vaults>,
  metrics: AgentMetrics = makeAgentMetrics(),
) => {
  const state = openStateStore(stateDir, () => {})
  const reconciler = await Effect.runPromise(reconcilerEffect(config, state, vaults, metrics))
  return { reconciler, state }
}

/** `document` (an agent configuration) as the agent reads it from `dir`/agent.yaml; a test error when it is invalid. */
export const configIn = (
  dir: string,
  document: unknown,
  env: Readonly<Record<string, string | undefined>> = {},
): AgentConfig => {
  const parsed = parseAgentConfig(stringify(document), join(dir, "agent.yaml"), dir, env)
  if (Result.isFailure(parsed)) throw new Error(parsed.failure.message)
  return parsed.success
}

/** A deployment of a test's one source: its name, its certificate's, and further fields (a pickup check). */
export interface SourceSpec {
  readonly name: string
  readonly certificate?: string
  readonly extra?: Record<string, unknown>
}

/**
 * Deployments of the one source in `dir` (`s.crt`, `s.key`) to `vault`, each certificate named as
 * its spec says, with the agent's state in `dir`/state, no list required before passes, retries a
 * minute apart, and `agent`'s settings over those.
 */
export const oneSourceConfig = (
  dir: string,
  vault: string,
  specs: ReadonlyArray<SourceSpec>,
  agent: Record<string, unknown> = {},
): AgentConfig =>
  configIn(dir, {
    agent: {
      listen: "127.0.0.1:0",
      state_dir: join(dir, "state"),
      vault_list_min_deployments: 0,
      backoff_base_seconds: 60,
      backoff_max_seconds: 60,
      ...agent,
    },
    deployments: specs.map((s) => ({
      name: s.name,
      source: { cert: join(dir, "s.crt"), key: join(dir, "s.key") },
      target: { vault_url: vault, certificate_name: s.certificate ?? s.name },
      ...s.extra,
    })),
  })

/** Agent settings for a reconciler restarted over `dir`/state: retries a second apart. */
export const quickRetries = (dir: string) => ({
  listen: "127.0.0.1:0",
  state_dir: join(dir, "state"),
  backoff_base_seconds: 1,
  backoff_max_seconds: 1,
})

/** A log line as Effect's JSON logger writes it. */
export interface Line {
  readonly message: unknown
  readonly level: string
  readonly annotations: Record<string, unknown>
}

/** A logger that keeps each line as Effect's JSON logger writes it, in `lines`. */
export const jsonLogger = () => {
  const lines: Array<Line> = []
  const logger = Logger.make((options) => {
    lines.push(JSON.parse(Logger.formatJson.log(options)))
  })
  return { lines, logger }
}

/** Core's in-memory vault decoding with the real codec (its handle), and metrics that record. */
export const inMemoryVault = () =>
  Effect.runPromise(
    Effect.gen(function* () {
      return {
        vault: yield* Vault,
        handle: yield* InMemoryVaultHandle,
        metrics: yield* Metrics,
        recorder: yield* MetricsRecorder,
      }
    }).pipe(
      Effect.provide(
        Layer.mergeAll(InMemoryVault.layer.pipe(Layer.provide(Pkcs12.layer)), RecordingMetrics.layer),
      ),
    ),
  )

/** The reconciler for `config` over `vaults` with the real codec, `metrics`, logging to `logger`. */
export const codecReconciler = async (
  config: AgentConfig,
  state: StateStore,
  vaults: Layer.Layer<Vaults>,
  metrics: Metrics["Service"],
  logger: ReturnType<typeof jsonLogger>["logger"],
) => {
  const agentMetrics = makeAgentMetrics()
  const reconciler = await Effect.runPromise(
    makeReconciler(config, state, agentMetrics).pipe(
      Effect.provide(
        Layer.mergeAll(vaults, Pkcs12.layer, Layer.succeed(Metrics)(metrics), Logger.layer([logger])),
      ),
    ),
  )
  return { reconciler, agentMetrics }
}
