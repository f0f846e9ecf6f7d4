/**
 * The agent's own series, next to the catalogue that core records
 * (@kvdeploy/metrics/prometheus): per deployment the last success time, the
 * last outcome, the expiry of the source's certificate (the earliest of the leaf and its issuer in the chain), source health and the
 * consumer pickup check; readiness and the fleet size.
 */
import { Gauge, Registry } from "prom-client"
import type { IdentityTokenState } from "./identityHealth.js"

export interface AgentMetrics {
  readonly registry: Registry
  readonly lastSuccess: (deployment: string, atMs: number) => void
  readonly lastOutcome: (deployment: string, outcome: string) => void
  readonly expiry: (deployment: string, notAfter: Date) => void
  readonly sourceBroken: (deployment: string, broken: boolean) => void
  /** The pickup check's answer; `undefined`: the deployment has no pickup check (any more), and no series. */
  readonly pickup: (deployment: string, ok: boolean | undefined) => void
  readonly ready: (ready: boolean) => void
  readonly deployments: (count: number) => void
  /** A reconcile pass (start, interval, reload) ended: every deployment's first attempt of it is over. */
  readonly passOver: (reason: string, endedAtMs: number, durationMs: number, listed: number) => void
  /** The configuration was read at start or by a reload (SIGHUP): `ok` false when it was invalid and the running one kept. */
  readonly configLoaded: (ok: boolean, atMs: number) => void
  /** Whether a user other than root and the agent's could change the configuration file, as judged at start and at the last reload. */
  readonly configChangeableByOthers: (yes: boolean) => void
  /** Where the state file's last write stands, read at each scrape (true: it failed, and the outcomes since are not on disk). */
  readonly stateWriteFailing: (failing: () => boolean) => void
  /** Where each identity's token requests stand, read at each scrape. */
  readonly identities: (states: () => ReadonlyArray<IdentityTokenState>) => void
  readonly forget: (deployment: string) => void
  readonly text: () => Promise<string>
}

export const makeAgentMetrics = (): AgentMetrics => {
  const registry = new Registry()
  // Process memory under the usual names (prom-client's default set has a gauge named *_total, which promtool refuses).
  new Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
    registers: [registry],
    collect() {
      this.set(process.memoryUsage.rss())
    },
  })
  new Gauge({
    name: "nodejs_heap_size_used_bytes",
    help: "V8 heap used, in bytes.",
    registers: [registry],
    collect() {
      this.set(process.memoryUsage().heapUsed)
    },
  })
  new Gauge({
    name: "nodejs_heap_size_total_bytes",
    help: "V8 heap size, in bytes.",
    registers: [registry],
    collect() {
      this.set(process.memoryUsage().heapTotal)
    },
  })
  new Gauge({
    name: "nodejs_external_memory_bytes",
    help: "Memory of C++ objects bound to JavaScript objects managed by V8 (Buffers included), in bytes.",
    registers: [registry],
    collect() {
      this.set(process.memoryUsage().external)
    },
  })
  const gauge = (name: string, help: string, labelNames: ReadonlyArray<string>) =>
    new Gauge({ name, help, labelNames: [...labelNames], registers: [registry] })
  /**
   * A gauge by deployment whose values wait in a map and reach the gauge when
   * it is read (a scrape). A labelled set validates and hashes its labels and
   * stores a new object; a pass sets a few of these per deployment, between
   * its other work, where each set cost about 10-20 us of the main thread
   * (profiled cold pass); the values of a pass reach prom-client in one loop
   * at the next scrape instead (about 1 us each), and a value set twice
   * between scrapes is stored once. The exposition is the same.
   */
  const byDeployment = (name: string, help: string) => {
    const pending = new Map<string, number>()
    const held = new Gauge({
      name,
      help,
      labelNames: ["deployment"],
      registers: [registry],
      collect() {
        for (const [deployment, value] of pending) this.set({ deployment }, value)
        pending.clear()
      },
    })
    return {
      set: (deployment: string, value: number) => void pending.set(deployment, value),
      forget: (deployment: string) => {
        pending.delete(deployment)
        held.remove({ deployment })
      },
    }
  }
  // Set at every success, so every deployment of a no-change pass.
  const lastSuccess = byDeployment(
    "kvdeploy_agent_last_success_timestamp_seconds",
    "Unix time the vault was last seen serving the deployment's source certificate (deployed or already in place).",
  )
  // The outcome a deployment's series shows (applied at a scrape), and the one set since (pending).
  const outcomes = new Map<string, string>()
  const outcomesPending = new Map<string, string>()
  const lastOutcome = new Gauge({
    name: "kvdeploy_agent_last_outcome",
    help: "1 for the outcome of the deployment's last reconcile (Succeeded, Skipped, Failed, Rejected, Unverified, Superseded, RolledBack, RollbackFailed, SourceBroken; a held deployment keeps the outcome it is held on).",
    labelNames: ["deployment", "outcome"],
    registers: [registry],
    collect() {
      for (const [deployment, outcome] of outcomesPending) {
        // Removed and set again even when it is back to the outcome shown: a change moves the
        // series to the end of its family, as a set at the time of the change did.
        const previous = outcomes.get(deployment)
        if (previous !== undefined) this.remove({ deployment, outcome: previous })
        outcomes.set(deployment, outcome)
        this.set({ deployment, outcome }, 1)
      }
      outcomesPending.clear()
    },
  })
  const expiry = byDeployment(
    "kvdeploy_agent_certificate_expiry_timestamp_seconds",
    "Earliest notAfter (Unix time) of the deployment's source leaf and of the intermediate in its chain that issued it (an intermediate that expires first breaks what the vault serves then).",
  )
  const broken = byDeployment(
    "kvdeploy_agent_source_broken",
    "1 when the deployment's source files cannot be used (missing, half-written, mismatched key).",
  )
  const pickup = byDeployment(
    "kvdeploy_agent_pickup_ok",
    "1 when the deployment's consumer endpoint serves the source certificate, 0 when it serves another one or cannot be reached.",
  )
  const ready = gauge("kvdeploy_agent_ready", "1 once every deployment has been reconciled once.", [])
  const count = gauge("kvdeploy_agent_deployments", "Deployments configured.", [])
  const passEnded = gauge(
    "kvdeploy_agent_last_pass_timestamp_seconds",
    "Unix time the last reconcile pass over every deployment ended, by what started it (start, interval, reload).",
    ["reason"],
  )
  const passDuration = gauge(
    "kvdeploy_agent_last_pass_duration_seconds",
    "How long the last reconcile pass over every deployment took, by what started it.",
    ["reason"],
  )
  const passListed = gauge(
    "kvdeploy_agent_last_pass_listed_in_place",
    "Deployments the last pass found in place from a list of their vault's certificates (no read of their own).",
    ["reason"],
  )
  const reloadOk = gauge(
    "kvdeploy_agent_config_last_reload_successful",
    "1 when the last reading of the configuration (start, SIGHUP) was valid, 0 when it was not and the agent kept the one it runs.",
    [],
  )
  const reloadedAt = gauge(
    "kvdeploy_agent_config_last_reload_success_timestamp_seconds",
    "Unix time the agent began running the configuration it runs (its start, or the last valid SIGHUP reload).",
    [],
  )
  const changeable = gauge(
    "kvdeploy_agent_config_changeable_by_others",
    "1 when a user other than root and the agent's could change the configuration file (its mode or owner, a directory on its way, a link followed), as found at start and at the last reload; 0 when not.",
    [],
  )
  let writeFailing: () => boolean = () => false
  new Gauge({
    name: "kvdeploy_agent_state_last_write_successful",
    help: "1 while the state file's last write succeeded (or none was needed yet), 0 once one failed: outcomes and holds since are not on disk.",
    registers: [registry],
    collect() {
      this.set(writeFailing() ? 0 : 1)
    },
  })
  // Each identity's token requests, as they stand at the scrape (a reload's identities only).
  let identityStates: () => ReadonlyArray<IdentityTokenState> = () => []
  const identityLabels = [
    "credential_mode",
    "managed_identity_client_id",
    "authority_host",
    "key_vault_resource",
  ]
  new Gauge({
    name: "kvdeploy_agent_token_request_failing",
    help: "1 while the identity's last token request failed (the deployments then run on a token obtained earlier until it expires, or get none), 0 once one succeeded.",
    labelNames: identityLabels,
    registers: [registry],
    collect() {
      this.reset()
      for (const identity of identityStates()) this.set({ ...identity.labels }, identity.failing ? 1 : 0)
    },
  })
  new Gauge({
    name: "kvdeploy_agent_token_expiry_timestamp_seconds",
    help: "Unix time the newest token the identity obtained expires: the deployments of an identity whose token requests fail reach their vaults until then.",
    labelNames: identityLabels,
    registers: [registry],
    collect() {
      this.reset()
      for (const identity of identityStates())
        if (identity.expiresOnMs !== undefined)
          this.set({ ...identity.labels }, Math.floor(identity.expiresOnMs / 1000))
    },
  })
  // Whether each deployment's source is broken as last set, so that a pass that changes nothing sets nothing.
  const brokenNow = new Map<string, boolean>()
  return {
    registry,
    lastSuccess: (deployment, atMs) => lastSuccess.set(deployment, Math.floor(atMs / 1000)),
    lastOutcome: (deployment, outcome) => {
      if ((outcomesPending.get(deployment) ?? outcomes.get(deployment)) === outcome) return
      // Last in the map: changes reach the gauge in the order they were made.
      outcomesPending.delete(deployment)
      outcomesPending.set(deployment, outcome)
    },
    expiry: (deployment, notAfter) => expiry.set(deployment, Math.floor(notAfter.getTime() / 1000)),
    sourceBroken: (deployment, b) => {
      if (brokenNow.get(deployment) === b) return
      brokenNow.set(deployment, b)
      broken.set(deployment, b ? 1 : 0)
    },
    pickup: (deployment, ok) =>
      ok === undefined ? pickup.forget(deployment) : pickup.set(deployment, ok ? 1 : 0),
    ready: (r) => ready.set(r ? 1 : 0),
    deployments: (n) => count.set(n),
    configLoaded: (ok, atMs) => {
      reloadOk.set(ok ? 1 : 0)
      if (ok) reloadedAt.set(Math.floor(atMs / 1000))
    },
    configChangeableByOthers: (yes) => changeable.set(yes ? 1 : 0),
    stateWriteFailing: (failing) => {
      writeFailing = failing
    },
    identities: (states) => {
      identityStates = states
    },
    passOver: (reason, endedAtMs, durationMs, listed) => {
      passEnded.set({ reason }, Math.floor(endedAtMs / 1000))
      passDuration.set({ reason }, durationMs / 1000)
      passListed.set({ reason }, listed)
    },
    forget: (deployment) => {
      const previous = outcomes.get(deployment)
      if (previous !== undefined) lastOutcome.remove({ deployment, outcome: previous })
      outcomes.delete(deployment)
      outcomesPending.delete(deployment)
      brokenNow.delete(deployment)
      lastSuccess.forget(deployment)
      expiry.forget(deployment)
      broken.forget(deployment)
      pickup.forget(deployment)
    },
    text: () => registry.metrics(),
  }
}
