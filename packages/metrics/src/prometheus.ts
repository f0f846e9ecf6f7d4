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
  }
>()("@kvdeploy/metrics/PrometheusExposition") {}

const make = Effect.sync(() => {
  const registry = new Registry()
  const counter = (spec: C.SeriesSpec) =>
    new Counter({ name: spec.name, help: spec.help, labelNames: [...spec.labels], registers: [registry] })
  const attempts = counter(C.deployAttempts)
  const validate = counter(C.validateFailures)
  const postVerify = counter(C.postVerifyFailures)
  const rollbacks = counter(C.rollbacks)
  const skips = counter(C.idempotentSkips)
  const requests = counter(C.vaultRequests)
  const throttled = counter(C.vaultThrottled)
  const duration = new Histogram({
    name: C.deployDuration.name,
    help: C.deployDuration.help,
    buckets: [...C.deployDurationBuckets],
    registers: [registry],
  })
  const expiry = new Gauge({
    name: C.certificateExpiry.name,
    help: C.certificateExpiry.help,
    labelNames: [...C.certificateExpiry.labels],
    registers: [registry],
  })
  const t = C.TARGET_TYPE
  const metrics: (typeof Metrics)["Service"] = {
    deployAttempt: (result) => Effect.sync(() => attempts.inc({ target_type: t, result })),
    validateFailure: (reason) => Effect.sync(() => validate.inc({ target_type: t, reason })),
    postVerifyFailure: (reason) => Effect.sync(() => postVerify.inc({ target_type: t, reason })),
    rollback: (outcome) => Effect.sync(() => rollbacks.inc({ target_type: t, outcome })),
    idempotentSkip: () => Effect.sync(() => skips.inc({ target_type: t })),
    deployDuration: (seconds) => Effect.sync(() => duration.observe(seconds)),
    vaultRequest: (operation, status) => Effect.sync(() => requests.inc({ operation, status })),
    vaultThrottled: () => Effect.sync(() => throttled.inc()),
    certificateExpiry: (certificate, notAfter) =>
      Effect.sync(() =>
        expiry.set(
          { vault_url: certificate.vaultUrl, certificate_name: certificate.certificateName },
          Math.floor(notAfter.getTime() / 1000),
        ),
      ),
  }
  const exposition: (typeof PrometheusExposition)["Service"] = {
    text: Effect.promise(() => registry.metrics()),
    contentType: registry.contentType,
  }
  return Context.make(Metrics, metrics).pipe(Context.add(PrometheusExposition, exposition))
})

/** Prometheus Metrics: provides `Metrics` and `PrometheusExposition`, on a registry of its own. */
export const layer: Layer.Layer<Metrics | PrometheusExposition> = Layer.effectContext(make)
