/**
 * The in-memory adapter: keeps every series of the catalogue in maps, keyed
 * by metric name and label set, and lets tests read them back.
 */
import { Metrics } from "@kvdeploy/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as C from "./catalogue.js"

export type Labels = Readonly<Record<string, string>>

export interface HistogramValue {
  readonly count: number
  readonly sum: number
}

/** Read access to the values the in-memory adapter holds. */
export class MetricsSnapshot extends Context.Service<
  MetricsSnapshot,
  {
    /** Value of a counter or gauge series (0 when never recorded). */
    readonly value: (name: string, labels?: Labels) => number
    readonly histogram: (name: string, labels?: Labels) => HistogramValue
    /** Every series recorded, as `name{k="v",...}` -> value (histograms as count). */
    readonly all: () => ReadonlyMap<string, number>
  }
>()("@kvdeploy/metrics/MetricsSnapshot") {}

export const seriesKey = (name: string, labels: Labels = {}): string => {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
  return `${name}{${parts.join(",")}}`
}

const make = Effect.sync(() => {
  const values = new Map<string, number>()
  const histograms = new Map<string, { count: number; sum: number }>()
  const add = (name: string, labels: Labels, by = 1) =>
    Effect.sync(() => {
      const key = seriesKey(name, labels)
      values.set(key, (values.get(key) ?? 0) + by)
    })
  const t = { target_type: C.TARGET_TYPE }
  const metrics: (typeof Metrics)["Service"] = {
    deployAttempt: (result) => add(C.deployAttempts.name, { ...t, result }),
    validateFailure: (reason) => add(C.validateFailures.name, { ...t, reason }),
    postVerifyFailure: (reason) => add(C.postVerifyFailures.name, { ...t, reason }),
    rollback: (outcome) => add(C.rollbacks.name, { ...t, outcome }),
    idempotentSkip: () => add(C.idempotentSkips.name, t),
    deployDuration: (seconds) =>
      Effect.sync(() => {
        const key = seriesKey(C.deployDuration.name)
        const h = histograms.get(key) ?? { count: 0, sum: 0 }
        histograms.set(key, { count: h.count + 1, sum: h.sum + seconds })
      }),
    vaultRequest: (operation, status) => add(C.vaultRequests.name, { operation, status }),
    vaultThrottled: () => add(C.vaultThrottled.name, {}),
    vaultHttpRequest: (operation, status) => add(C.vaultHttpRequests.name, { operation, status }),
    certificateExpiry: (certificate, notAfter) =>
      Effect.sync(() => {
        values.set(
          seriesKey(C.certificateExpiry.name, {
            vault_url: certificate.vaultUrl,
            certificate_name: certificate.certificateName,
          }),
          Math.floor(notAfter.getTime() / 1000),
        )
      }),
    certificateNotServed: (certificate) =>
      Effect.sync(() => {
        values.delete(
          seriesKey(C.certificateExpiry.name, {
            vault_url: certificate.vaultUrl,
            certificate_name: certificate.certificateName,
          }),
        )
      }),
  }
  const snapshot: (typeof MetricsSnapshot)["Service"] = {
    value: (name, labels) => values.get(seriesKey(name, labels)) ?? 0,
    histogram: (name, labels) => histograms.get(seriesKey(name, labels)) ?? { count: 0, sum: 0 },
    all: () => {
      const out = new Map(values)
      for (const [k, h] of histograms) out.set(k, h.count)
      return out
    },
  }
  return Context.make(Metrics, metrics).pipe(Context.add(MetricsSnapshot, snapshot))
})

/** In-memory Metrics for tests: provides `Metrics` and `MetricsSnapshot`. Fresh values per build. */
export const layerTest: Layer.Layer<Metrics | MetricsSnapshot> = Layer.effectContext(make)
