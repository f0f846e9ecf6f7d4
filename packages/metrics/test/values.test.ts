/**
 * Values as the adapters expose them: the duration histogram's buckets are the catalogue's
 * (seconds, up to two minutes), and the expiry gauge holds whole Unix seconds, rounded down.
 */
import { assert, describe, it } from "@effect/vitest"
import { Metrics } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import { deployDurationBuckets, layerTest, MetricsSnapshot } from "../src/index.js"
import { PrometheusExposition, layer as prometheusLayer } from "../src/prometheus.js"

const bucketLines = (text: string): Array<[string, number]> =>
  text
    .split("\n")
    .filter((l) => l.startsWith("kvdeploy_deploy_duration_seconds_bucket{"))
    .map((l) => {
      const le = /le="([^"]+)"/.exec(l)?.[1] ?? ""
      return [le, Number(l.slice(l.lastIndexOf(" ") + 1))]
    })

describe("kvdeploy_deploy_duration_seconds", () => {
  it.effect("Prometheus: the catalogue's buckets, and each observation in the bucket of its seconds", () =>
    Effect.gen(function* () {
      const metrics = yield* Metrics
      yield* metrics.deployDuration(0.3)
      yield* metrics.deployDuration(45)
      const text = yield* Effect.flatMap(Effect.service(PrometheusExposition), (p) => p.text)
      const buckets = bucketLines(text)
      assert.deepStrictEqual(
        buckets.map(([le]) => le),
        [...deployDurationBuckets.map(String), "+Inf"],
      )
      const count = new Map(buckets)
      assert.strictEqual(count.get("0.25"), 0)
      assert.strictEqual(count.get("0.5"), 1)
      assert.strictEqual(count.get("30"), 1)
      assert.strictEqual(count.get("60"), 2)
      assert.include(text, "kvdeploy_deploy_duration_seconds_sum 45.3")
      assert.include(text, "kvdeploy_deploy_duration_seconds_count 2")
    }).pipe(Effect.provide(prometheusLayer)),
  )

  it.effect("in memory: count and sum in seconds", () =>
    Effect.gen(function* () {
      const metrics = yield* Metrics
      yield* metrics.deployDuration(0.3)
      yield* metrics.deployDuration(45)
      const h = (yield* MetricsSnapshot).histogram("kvdeploy_deploy_duration_seconds")
      assert.strictEqual(h.count, 2)
      assert.closeTo(h.sum, 45.3, 1e-9)
    }).pipe(Effect.provide(layerTest)),
  )
})

describe("kvdeploy_certificate_expiry_timestamp_seconds", () => {
  const target = { vaultUrl: "https://kv-a.vault.azure.net", certificateName: "web" }
  // 2027-01-01T00:00:00.900Z: a certificate is not valid in the second it expires in.
  const notAfter = new Date("2027-01-01T00:00:00.900Z")

  it.effect("Prometheus: whole seconds, rounded down", () =>
    Effect.gen(function* () {
      const metrics = yield* Metrics
      yield* metrics.certificateExpiry(target, notAfter)
      const text = yield* Effect.flatMap(Effect.service(PrometheusExposition), (p) => p.text)
      assert.include(
        text.split("\n"),
        'kvdeploy_certificate_expiry_timestamp_seconds{vault_url="https://kv-a.vault.azure.net",certificate_name="web"} 1798761600',
      )
    }).pipe(Effect.provide(prometheusLayer)),
  )

  it.effect("in memory: whole seconds, rounded down", () =>
    Effect.gen(function* () {
      const metrics = yield* Metrics
      yield* metrics.certificateExpiry(target, notAfter)
      assert.strictEqual(
        (yield* MetricsSnapshot).value("kvdeploy_certificate_expiry_timestamp_seconds", {
          vault_url: target.vaultUrl,
          certificate_name: target.certificateName,
        }),
        1798761600,
      )
      // Not served any more: the series is gone from what the adapter holds.
      yield* metrics.certificateNotServed(target)
      assert.notInclude(
        [...(yield* MetricsSnapshot).all().keys()].join("\n"),
        "kvdeploy_certificate_expiry_timestamp_seconds",
      )
    }).pipe(Effect.provide(layerTest)),
  )
})
