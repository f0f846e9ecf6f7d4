/**
 * The running agent: its configuration, reconciler and own metrics, built
 * once and shared by the reconcile loop and the HTTP endpoints. Building it
 * starts the loop (start, interval, file changes, SIGHUP); releasing it stops
 * the loop and finishes the deploys in flight.
 */
import { type Metrics, type PfxCodec, shownPath, withoutPem } from "@kvdeploy/core"
import { PrometheusExposition } from "@kvdeploy/metrics/prometheus"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Semaphore from "effect/Semaphore"
import { type AgentMetrics, makeAgentMetrics } from "./agentMetrics.js"
import { type AgentConfig, changedSettings, loadAgentConfigUnless, noDeploymentsWarning } from "./config.js"
import { handleHangups } from "./hangup.js"
import { internalErrorFix, internalErrorMessage, isDefectOnly } from "./internalError.js"
import { MaterialWorkers } from "./materialPool.js"
import { configFileUntrusted } from "./pathTrust.js"
import { makeReconciler, type Reconciler } from "./reconciler.js"
import { openStateStore } from "./state.js"
import { Vaults } from "./vaults.js"
import { version } from "./version.js"
import { makeWatcher } from "./watcher.js"

/** The start's and each reload's warning for a configuration that lists no deployment (valid, and deploys nothing). */
const warnIfNoDeployments = (config: Pick<AgentConfig, "deployments" | "path">) =>
  config.deployments.length === 0
    ? Effect.logWarning(`${noDeploymentsWarning.field} ${noDeploymentsWarning.message}`).pipe(
        Effect.annotateLogs({ config: config.path, fix: noDeploymentsWarning.fix }),
      )
    : Effect.void
/**
 * A SIGHUP's reload that cannot end silently: one that dies (a defect: a bug, not an invalid file,
 * which the reload reports itself) is logged as an error naming the file and the fix, and
 * `kvdeploy_agent_config_last_reload_successful` goes to 0. The running configuration is kept as far
 * as the reload had not applied it yet. An interruption (the agent stopping) is not a failure.
 */
export const reloadOrSay = (
  reload: Effect.Effect<void>,
  metrics: Pick<AgentMetrics, "configLoaded">,
  configPath: string,
): Effect.Effect<void> =>
  reload.pipe(
    Effect.catchCause((cause) => {
      if (!isDefectOnly(cause)) return Effect.failCause(cause)
      metrics.configLoaded(false, Date.now())
      return Effect.logError("the reload stopped on an internal error", cause).pipe(
        Effect.annotateLogs({
          config: configPath,
          error: internalErrorMessage(cause),
          fix: `${internalErrorFix}; the agent keeps running; restart it to run ${shownPath(configPath)} from the start (kvdeploy_agent_config_last_reload_successful is 0)`,
        }),
      )
    }),
  )

export class AgentRuntime extends Context.Service<
  AgentRuntime,
  {
    readonly config: () => AgentConfig
    readonly reconciler: Reconciler
    readonly metrics: AgentMetrics
  }
>()("@kvdeploy/agent/AgentRuntime") {}

/** What the environment lacks or holds malformed for some deployments: a warning each; the agent runs every deployment it can. */
const logEnvironmentProblems = (config: AgentConfig) =>
  Effect.forEach(
    config.environmentProblems ?? [],
    (p) =>
      Effect.logWarning(
        `${p.field}: ${p.message}; these deployments fail until the environment is fixed and the agent restarted`,
      ).pipe(Effect.annotateLogs({ fix: p.fix })),
    { discard: true },
  )

/**
 * A configuration file others may change: a warning at start and at each reload (whatever the file
 * then holds), and its gauge (the agent runs it all the same; pathTrust's configFileUntrusted says why).
 */
const judgeConfigFile = (path: string, metrics: AgentMetrics) =>
  Effect.suspend(() => {
    const untrusted = configFileUntrusted(path)
    metrics.configChangeableByOthers(untrusted !== undefined)
    return untrusted === undefined
      ? Effect.void
      : Effect.logWarning(`the configuration file: ${untrusted.why}`).pipe(
          Effect.annotateLogs({ config: path, fix: untrusted.fix }),
        )
  })

export const layer = (initial: AgentConfig): Layer.Layer<AgentRuntime, never, Vaults | Metrics | PfxCodec> =>
  Layer.effect(AgentRuntime)(
    Effect.gen(function* () {
      const context = yield* Effect.context<Vaults | Metrics | PfxCodec>()
      const vaults = yield* Vaults
      const metrics = makeAgentMetrics()
      // The store's warnings (a state file that cannot be read or written) are log lines like the
      // rest, on stdout with the agent's logger. Logged at once, not forked: the write that fails
      // last is the one at shutdown, and a forked line could lose the race with the exit.
      const services = yield* Effect.context<never>()
      const state = openStateStore(
        initial.settings.stateDir,
        (line) => {
          Effect.runSyncWith(services)(Effect.logWarning(line))
        },
        { agentVersion: version, info: (line) => Effect.runSyncWith(services)(Effect.logInfo(line)) },
      )
      metrics.stateWriteFailing(state.writeFailing)
      metrics.identities(vaults.identities)
      metrics.configLoaded(true, Date.now())
      let config = initial
      // Records of deployments the configuration no longer has are dropped at start, as a reload
      // drops them: a held outcome must not come back when a new deployment reuses the name.
      const configured = new Set(initial.deployments.map((d) => d.name))
      const stale = state.names().filter((name) => !configured.has(name))
      for (const name of stale) state.remove(name)
      if (stale.length > 0)
        yield* Effect.logInfo("state: dropped the records of deployments no longer configured").pipe(
          Effect.annotateLogs({ deployments: stale.length <= 20 ? stale : stale.length }),
        )
      const reconciler = yield* makeReconciler(initial, state, metrics)
      const watcher = yield* makeWatcher(initial.settings.debounceMs, (name) =>
        reconciler.trigger(name, "file change"),
      )
      // Released in reverse order: the loop stops, then the deploys in flight finish, then the state is written.
      yield* Effect.addFinalizer(() => reconciler.shutdown)
      yield* watcher.watch(initial.deployments)
      // The workers that may answer (0: none configured, or their code is missing).
      const materialWorkers = (yield* MaterialWorkers).workers
      yield* logEnvironmentProblems(initial)
      yield* judgeConfigFile(initial.path, metrics)
      yield* Effect.logInfo("kvdeploy-agent started").pipe(
        Effect.annotateLogs({
          config: initial.path,
          deployments: initial.deployments.length,
          concurrency: initial.settings.concurrency,
          intervalSeconds: initial.settings.reconcileIntervalMs / 1000,
          stateFile: state.path,
          releaseMemoryAfterPass: reconciler.releasesMemory,
          materialWorkers,
        }),
      )
      yield* warnIfNoDeployments(initial)
      // State is written at most every 5 seconds when an outcome changed, after each pass (the idle
      // release) and at shutdown.
      yield* Effect.forkScoped(Effect.repeat(state.flushChanges, Schedule.spaced("5 seconds")))
      yield* reconciler.triggerAll("start")
      yield* Effect.forkScoped(
        Effect.repeat(
          // The deployments of each pass's own time (a SIGHUP may have changed them since the start),
          // whose directories the pass watches again (a directory made again since is watched anew).
          Effect.andThen(
            Effect.suspend(() => watcher.watch(reconciler.deployments())),
            reconciler.triggerAll("interval"),
          ),
          Schedule.spaced(Duration.millis(initial.settings.reconcileIntervalMs)),
        ).pipe(Effect.delay(Duration.millis(initial.settings.reconcileIntervalMs))),
      )
      const reload = Effect.gen(function* () {
        yield* Effect.logInfo("SIGHUP: reloading the configuration").pipe(
          Effect.annotateLogs({ config: config.path }),
        )
        // Judged whatever the file holds: one made open to others and then invalid (or removed) is
        // the case its gauge is for.
        yield* judgeConfigFile(config.path, metrics)
        const next = yield* loadAgentConfigUnless(config.path, config.textSha256).pipe(Effect.result)
        if (next._tag === "Failure") {
          metrics.configLoaded(false, Date.now())
          yield* Effect.logError("the new configuration is invalid; keeping the running one").pipe(
            Effect.annotateLogs({
              // The line alone names the file and what to do (a log search for errors finds only it).
              config: config.path,
              problems: next.failure.problems.map((p) =>
                withoutPem(`${p.field}: ${p.message} (fix: ${p.fix})`),
              ),
              fix: `correct ${config.path} (kvdeploy-agent --config ${config.path} --check lists every problem), then send SIGHUP again; until then the agent runs the configuration it ran before (kvdeploy_agent_config_last_reload_successful is 0)`,
            }),
          )
          return
        }
        const loaded = next.success
        metrics.configLoaded(true, Date.now())
        if (loaded === "unchanged") {
          // The same text, so the same deployments: nothing to parse or apply; reconciled all the same.
          yield* Effect.logInfo("configuration unchanged; reconciling every deployment").pipe(
            Effect.annotateLogs({ config: config.path }),
          )
          yield* reconciler.triggerAll("reload")
          return
        }
        const changed = changedSettings(config.settings, loaded.settings)
        if (changed.length > 0)
          yield* Effect.logWarning(
            "agent settings changed; they take effect at the next restart (deployments are reloaded now)",
          ).pipe(Effect.annotateLogs({ settings: changed }))
        yield* logEnvironmentProblems(loaded)
        yield* warnIfNoDeployments(loaded)
        yield* reconciler.apply({ ...loaded, settings: config.settings })
        // The reconciler keeps its own Deployment objects for the deployments that did not change:
        // hold those, not the reloaded copies (10,000 deployments: a second copy of about 10 MB).
        config = { ...loaded, settings: config.settings, deployments: reconciler.deployments() }
        yield* watcher.watch(config.deployments)
        // The expiry series of targets no deployment names any more (removed, or renamed) go, so
        // that an alert on them does not fire for a certificate the agent no longer deploys.
        const exposition = yield* Effect.serviceOption(PrometheusExposition)
        if (exposition._tag === "Some")
          yield* exposition.value.retainCertificateExpiry(config.deployments.map((d) => d.target))
        // The clients and credentials of vaults no deployment names any more go too (tens of KB
        // each, and an agent whose configuration moves between vaults would otherwise keep them all).
        const released = yield* vaults.retain(config.deployments.map((d) => d.target))
        if (released.clients > 0)
          yield* Effect.logInfo("reload: released the vault clients no deployment uses any more").pipe(
            Effect.annotateLogs({ clients: released.clients, vaults: released.vaults }),
          )
        yield* reconciler.triggerAll("reload")
      })
      // One reload at a time, in the order of the signals: each reads the file when its turn comes,
      // so the last signal's reload applies the file as it is then (two concurrent reloads could
      // finish in the other order and leave the older configuration running).
      const reloading = yield* Semaphore.make(1)
      const onHup = () => {
        Effect.runForkWith(context)(reloading.withPermits(1)(reloadOrSay(reload, metrics, config.path)))
      }
      // A SIGHUP that came while the agent started (after it read its configuration) reloads now.
      yield* Effect.acquireRelease(
        Effect.sync(() => handleHangups(onHup, { replayPending: true })),
        (stopHandling) => Effect.sync(stopHandling),
      )
      return { config: () => config, reconciler, metrics }
    }),
  )
