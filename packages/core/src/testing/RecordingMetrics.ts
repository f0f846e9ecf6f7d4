/**
 * A Metrics implementation that keeps every recorded event in memory, for
 * core's own tests. (@kvdeploy/metrics has the catalogue-backed adapters.)
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Metrics } from "../ports/Metrics.js"

export type MetricEvent =
  | { readonly series: "deployAttempt"; readonly label: string }
  | { readonly series: "validateFailure"; readonly label: string }
  | { readonly series: "postVerifyFailure"; readonly label: string }
  | { readonly series: "rollback"; readonly label: string }
  | { readonly series: "idempotentSkip"; readonly label: "" }
  | { readonly series: "deployDuration"; readonly label: ""; readonly value: number }
  | { readonly series: "vaultRequest"; readonly label: string }
  | { readonly series: "vaultThrottled"; readonly label: "" }
  | { readonly series: "vaultHttpRequest"; readonly label: string }
  | { readonly series: "certificateExpiry"; readonly label: string; readonly value: number }
  | { readonly series: "certificateNotServed"; readonly label: string }

export class MetricsRecorder extends Context.Service<
  MetricsRecorder,
  {
    readonly events: () => ReadonlyArray<MetricEvent>
    /** Events of one series (optionally with one label value). */
    readonly count: (series: MetricEvent["series"], label?: string) => number
    readonly clear: () => void
  }
>()("@kvdeploy/core/test/MetricsRecorder") {}

const make = Effect.sync(() => {
  const events: Array<MetricEvent> = []
  const push = (e: MetricEvent) => Effect.sync(() => void events.push(e))
  const metrics: (typeof Metrics)["Service"] = {
    deployAttempt: (result) => push({ series: "deployAttempt", label: result }),
    validateFailure: (reason) => push({ series: "validateFailure", label: reason }),
    postVerifyFailure: (reason) => push({ series: "postVerifyFailure", label: reason }),
    rollback: (outcome) => push({ series: "rollback", label: outcome }),
    idempotentSkip: () => push({ series: "idempotentSkip", label: "" }),
    deployDuration: (seconds) => push({ series: "deployDuration", label: "", value: seconds }),
    vaultRequest: (operation, status) => push({ series: "vaultRequest", label: `${operation}:${status}` }),
    vaultThrottled: () => push({ series: "vaultThrottled", label: "" }),
    vaultHttpRequest: (operation, status) =>
      push({ series: "vaultHttpRequest", label: `${operation}:${status}` }),
    certificateExpiry: (c, notAfter) =>
      push({
        series: "certificateExpiry",
        label: `${c.vaultUrl}/${c.certificateName}`,
        value: notAfter.getTime() / 1000,
      }),
    certificateNotServed: (c) =>
      push({ series: "certificateNotServed", label: `${c.vaultUrl}/${c.certificateName}` }),
  }
  const recorder: (typeof MetricsRecorder)["Service"] = {
    events: () => [...events],
    count: (series, label) =>
      events.filter((e) => e.series === series && (label === undefined || e.label === label)).length,
    clear: () => {
      events.length = 0
    },
  }
  return Context.make(Metrics, metrics).pipe(Context.add(MetricsRecorder, recorder))
})

export const RecordingMetrics = { layer: Layer.effectContext(make) } as const
