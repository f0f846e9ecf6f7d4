/**
 * The Prometheus adapter: the catalogue registered on a prom-client Registry
 * of its own (no global registry), and the exposition text to serve on
 * /metrics. Imported from `@kvdeploy/metrics/prometheus`.
 */
import { Metrics } from "@kvdeploy/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Counter, Gauge, Histogram, Registry } from "prom-client"
import * as C from "./catalogue.js"

export class PrometheusExposition extends Context.Service<
  PrometheusExposition,
  {
    /** The exposition text (format 0.0.4) of every series. */
    readonly text: Effect.Effect<string>
    readonly contentType: string
    /**
     * Drop the expiry series (`kvdeploy_certificate_expiry_timestamp_seconds`) of every target but
     * these: a long-running caller (the agent) whose configuration no longer names a target, so that
     * an alert on the series does not fire for a certificate it no longer deploys.
     */
    readonly retainCertificateExpiry: (
      keep: ReadonlyArray<{ readonly vaultUrl: string; readonly certificateName: string }>,
    ) => Effect.Effect<void>
  }
>()("@kvdeploy/metrics/PrometheusExposition") {}

/**
 * A counter whose increments wait in a map, by their label values, until the
 * counter is read (a scrape: prom-client calls `collect` first). A labelled
 * `inc` validates and hashes its labels on every call; a pass increments a few
 * series thousands of times (three vault requests and an attempt per deploy),
 * so each increment is a map update and each series one `inc` per scrape. The
 * exposition is the same: a series appears once it was incremented.
 */
const deferredCounter = (registry: Registry, spec: C.SeriesSpec) => {
  const pending = new Map<string, { readonly labels: Record<string, string>; by: number }>()
  new Counter({
    name: spec.name,
    help: spec.help,
    labelNames: [...spec.labels],
    registers: [registry],
    collect() {
      for (const p of pending.values()) {
        if (p.by === 0) continue
        this.inc(p.labels, p.by)
        p.by = 0
      }
    },
  })
  /** Count one under `key`, the label values' own key (`labels` makes the label set the first time). */
  return (key: string, labels: () => Record<string, string>) => {
    const p = pending.get(key)
    if (p !== undefined) p.by += 1
    else pending.set(key, { labels: labels(), by: 1 })
  }
}

export interface PrometheusOptions {
  /**
   * Labels every series carries besides its own (a series' own label of the same name wins): a
   * CLI run's file for node_exporter's textfile collector names its target, so that the files of
   * several targets' runs do not hold the same series.
   */
  readonly defaultLabels?: Readonly<Record<string, string>>
}

const make = (options: PrometheusOptions = {}) =>
  Effect.sync(() => {
    const registry = new Registry()
    if (options.defaultLabels !== undefined) registry.setDefaultLabels({ ...options.defaultLabels })
    const t = C.TARGET_TYPE
    /** A counter of `target_type` and one label (`name`) that varies. */
    const byOne = (spec: C.SeriesSpec, name: string) => {
      const count = deferredCounter(registry, spec)
      return (value: string) => count(value, () => ({ target_type: t, [name]: value }))
    }
    const attempts = byOne(C.deployAttempts, "result")
    const validate = byOne(C.validateFailures, "reason")
    const postVerify = byOne(C.postVerifyFailures, "reason")
    const rollbacks = byOne(C.rollbacks, "outcome")
    const skips = deferredCounter(registry, C.idempotentSkips)
    const requests = deferredCounter(registry, C.vaultRequests)
    const throttled = deferredCounter(registry, C.vaultThrottled)
    const httpRequests = deferredCounter(registry, C.vaultHttpRequests)
    const duration = new Histogram({
      name: C.deployDuration.name,
      help: C.deployDuration.help,
      buckets: [...C.deployDurationBuckets],
      registers: [registry],
    })
    // notAfter by vault and certificate, set at every deploy: the values wait here and reach the
    // gauge when it is read, as the counters' increments do (a labelled set of two labels sorts
    // and hashes them and stores a new object: about 10 us a deploy in a profiled cold pass, about
    // 1 us each in one loop at the scrape). Keyed by both names (a newline joins them: neither a
    // vault URL nor a certificate name holds one), first set first, as the gauge keeps them.
    const expiryPending = new Map<
      string,
      { readonly labels: { vault_url: string; certificate_name: string }; seconds: number }
    >()
    // Every target whose expiry was ever set, for retainCertificateExpiry.
    const expiryKnown = new Map<string, { vault_url: string; certificate_name: string }>()
    const expiryKey = (vaultUrl: string, certificateName: string) => `${vaultUrl}\n${certificateName}`
    const expiryGauge = new Gauge({
      name: C.certificateExpiry.name,
      help: C.certificateExpiry.help,
      labelNames: [...C.certificateExpiry.labels],
      registers: [registry],
      collect() {
        for (const p of expiryPending.values()) this.set(p.labels, p.seconds)
        expiryPending.clear()
      },
    })
    /** Removes a target's expiry series (set or pending), if it has one. */
    const forgetExpiry = (key: string) => {
      const labels = expiryKnown.get(key)
      if (labels !== undefined) expiryGauge.remove(labels)
      expiryKnown.delete(key)
      expiryPending.delete(key)
    }
    const skipLabels = () => ({ target_type: t })
    const noLabels = () => ({})
    const metrics: (typeof Metrics)["Service"] = {
      deployAttempt: (result) => Effect.sync(() => attempts(result)),
      validateFailure: (reason) => Effect.sync(() => validate(reason)),
      postVerifyFailure: (reason) => Effect.sync(() => postVerify(reason)),
      rollback: (outcome) => Effect.sync(() => rollbacks(outcome)),
      idempotentSkip: () => Effect.sync(() => skips("", skipLabels)),
      deployDuration: (seconds) => Effect.sync(() => duration.observe(seconds)),
      vaultRequest: (operation, status) =>
        Effect.sync(() => requests(`${operation} ${status}`, () => ({ operation, status }))),
      vaultThrottled: () => Effect.sync(() => throttled("", noLabels)),
      vaultHttpRequest: (operation, status) =>
        Effect.sync(() => httpRequests(`${operation} ${status}`, () => ({ operation, status }))),
      certificateExpiry: (certificate, notAfter) =>
        Effect.sync(() => {
          const seconds = Math.floor(notAfter.getTime() / 1000)
          const key = expiryKey(certificate.vaultUrl, certificate.certificateName)
          const p = expiryPending.get(key)
          if (p !== undefined) p.seconds = seconds
          else {
            const labels = { vault_url: certificate.vaultUrl, certificate_name: certificate.certificateName }
            expiryPending.set(key, { labels, seconds })
            if (!expiryKnown.has(key)) expiryKnown.set(key, labels)
          }
        }),
      certificateNotServed: (certificate) =>
        Effect.sync(() => forgetExpiry(expiryKey(certificate.vaultUrl, certificate.certificateName))),
    }
    const exposition: (typeof PrometheusExposition)["Service"] = {
      text: Effect.promise(() => registry.metrics()),
      contentType: registry.contentType,
      retainCertificateExpiry: (keep) =>
        Effect.sync(() => {
          const kept = new Set(keep.map((c) => expiryKey(c.vaultUrl, c.certificateName)))
          for (const key of [...expiryKnown.keys()]) if (!kept.has(key)) forgetExpiry(key)
        }),
    }
    return Context.make(Metrics, metrics).pipe(Context.add(PrometheusExposition, exposition))
  })

/** Prometheus Metrics: provides `Metrics` and `PrometheusExposition`, on a registry of its own. */
export const layer: Layer.Layer<Metrics | PrometheusExposition> = Layer.effectContext(make())

/** As `layer`, with options (labels every series carries). */
export const layerWith = (options: PrometheusOptions): Layer.Layer<Metrics | PrometheusExposition> =>
  Layer.effectContext(make(options))
