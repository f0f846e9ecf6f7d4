/**
 * The Prometheus exposition is checked by a real parser: `promtool check
 * metrics`. With CI=true a missing promtool fails the test instead of skipping it.
 */
import { spawnSync } from "node:child_process"
import { assert, describe, it } from "@effect/vitest"
import { Metrics } from "@kvdeploy/core"
import { Fault, InMemoryVaultHandle, withWrongKey } from "@kvdeploy/core/test"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { catalogue } from "../src/index.js"
import { PrometheusExposition, layer as prometheusLayer } from "../src/prometheus.js"
import { managedTags, NAME, newCert, oldCert, request, run, vaultWorld } from "./world.js"

const promtool = (() => {
  const r = spawnSync("promtool", ["--version"], { encoding: "utf8" })
  return r.error === undefined && r.status === 0
})()
const inCi = process.env.CI === "true"

/** A few deploys with different outcomes, then the exposition text. */
const exposition = Effect.gen(function* () {
  const vault = yield* InMemoryVaultHandle
  yield* vault.seed(NAME, oldCert.material, { tags: managedTags })
  yield* run(request(withWrongKey(newCert)))
  vault.script("getLatest", Fault.fail("Throttled"))
  vault.script("importVersion", Fault.alter("drop-tags"))
  yield* run(request(newCert.material))
  yield* run(request(newCert.material))
  return yield* Effect.flatMap(Effect.service(PrometheusExposition), (p) => p.text)
}).pipe(Effect.provide(Layer.mergeAll(vaultWorld, prometheusLayer)))

/** Parse sample lines `name{labels} value` (enough to read values back). */
const samples = (text: string): Map<string, number> => {
  const out = new Map<string, number>()
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue
    const i = line.lastIndexOf(" ")
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

/** The expiry series a scrape shows, in its order: each as its certificate name and value. */
const expirySeries = (text: string): Array<Array<string>> =>
  text
    .split("\n")
    .filter((l) => l.startsWith("kvdeploy_certificate_expiry_timestamp_seconds{"))
    .map((l) => /certificate_name="([^"]*)"\} ([0-9]+)/.exec(l)?.slice(1) ?? [l])

describe("Prometheus adapter", () => {
  it.effect("promtool accepts the exposition", () =>
    Effect.gen(function* () {
      const text = yield* exposition
      if (!promtool) {
        if (inCi)
          assert.fail("promtool is required in CI (Debian package `prometheus`); it was not found on PATH")
        console.warn("promtool not found: exposition not checked by promtool (set CI=true to make this fail)")
        return
      }
      const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" })
      assert.strictEqual(
        r.status,
        0,
        `promtool check metrics failed:\n${r.stdout}\n${r.stderr}\n---\n${text}`,
      )
    }),
  )

  it("promtool rejects a broken exposition (the check can fail)", () => {
    if (!promtool) {
      if (inCi) assert.fail("promtool is required in CI")
      return
    }
    const r = spawnSync("promtool", ["check", "metrics"], {
      input: '# HELP x_total a\n# TYPE x_total counter\nx_total{a="1" 1\n',
      encoding: "utf8",
    })
    assert.notStrictEqual(r.status, 0)
  })

  it.effect("declares every series of the catalogue and holds the recorded values", () =>
    Effect.gen(function* () {
      const text = yield* exposition
      for (const s of catalogue) {
        assert.include(text, `# HELP ${s.name} ${s.help}`)
        assert.include(text, `# TYPE ${s.name} ${s.type}`)
      }
      const v = samples(text)
      assert.strictEqual(v.get('certctl_deploy_attempts_total{target_type="azure_kv",result="rejected"}'), 1)
      assert.strictEqual(
        v.get('certctl_deploy_attempts_total{target_type="azure_kv",result="rolled_back"}'),
        1,
      )
      assert.strictEqual(v.get('certctl_deploy_attempts_total{target_type="azure_kv",result="succeeded"}'), 1)
      assert.strictEqual(v.get('certctl_deploy_rollback_total{target_type="azure_kv",outcome="restored"}'), 1)
      assert.strictEqual(
        v.get('certctl_deploy_validate_failures_total{target_type="azure_kv",reason="key_mismatch"}'),
        1,
      )
      assert.strictEqual(v.get("kvdeploy_vault_throttled_total"), 1)
      assert.strictEqual(v.get("kvdeploy_deploy_duration_seconds_count"), 3)
      assert.strictEqual(v.get('kvdeploy_vault_requests_total{operation="getLatest",status="throttled"}'), 1)
    }),
  )

  it.effect(
    "kvdeploy_vault_http_requests_total counts each HTTP attempt by operation and status, next to the per-call series, and promtool accepts it",
    () =>
      Effect.gen(function* () {
        const metrics = yield* Metrics
        // One port call (an import throttled twice, after the challenge): four HTTP requests.
        yield* metrics.vaultHttpRequest("importVersion", "401")
        yield* metrics.vaultHttpRequest("importVersion", "429")
        yield* metrics.vaultHttpRequest("importVersion", "429")
        yield* metrics.vaultHttpRequest("importVersion", "200")
        yield* metrics.vaultHttpRequest("getLatest", "no_response")
        yield* metrics.vaultRequest("importVersion", "ok")
        const text = yield* Effect.flatMap(Effect.service(PrometheusExposition), (p) => p.text)
        const v = samples(text)
        assert.strictEqual(
          v.get('kvdeploy_vault_http_requests_total{operation="importVersion",status="401"}'),
          1,
        )
        assert.strictEqual(
          v.get('kvdeploy_vault_http_requests_total{operation="importVersion",status="429"}'),
          2,
        )
        assert.strictEqual(
          v.get('kvdeploy_vault_http_requests_total{operation="importVersion",status="200"}'),
          1,
        )
        assert.strictEqual(
          v.get('kvdeploy_vault_http_requests_total{operation="getLatest",status="no_response"}'),
          1,
        )
        assert.strictEqual(v.get('kvdeploy_vault_requests_total{operation="importVersion",status="ok"}'), 1)
        if (!promtool) {
          if (inCi) assert.fail("promtool is required in CI")
          return
        }
        const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" })
        assert.strictEqual(
          r.status,
          0,
          `promtool check metrics failed:\n${r.stdout}\n${r.stderr}\n---\n${text}`,
        )
      }).pipe(Effect.provide(prometheusLayer)),
  )

  it.effect("counts every increment between scrapes, and shows a series only once it was incremented", () =>
    Effect.gen(function* () {
      const metrics = yield* Metrics
      const scrape = Effect.flatMap(Effect.service(PrometheusExposition), (p) => p.text)
      const counters = (text: string) =>
        text
          .split("\n")
          .filter((l) => /^(certctl_deploy_\w+_total|kvdeploy_vault_\w+_total)[{ ]/.test(l))
          .sort()
      assert.deepStrictEqual(counters(yield* scrape), ["kvdeploy_vault_throttled_total 0"])
      for (let i = 0; i < 3; i++) {
        yield* metrics.vaultRequest("getLatest", "not_found")
        yield* metrics.vaultRequest("importVersion", "ok")
        yield* metrics.deployAttempt("succeeded")
      }
      yield* metrics.idempotentSkip()
      yield* metrics.vaultThrottled()
      yield* metrics.validateFailure("key_mismatch")
      yield* metrics.postVerifyFailure("unreadable")
      yield* metrics.rollback("restored")
      const first = [
        'certctl_deploy_attempts_total{target_type="azure_kv",result="succeeded"} 3',
        'certctl_deploy_idempotent_skip_total{target_type="azure_kv"} 1',
        'certctl_deploy_post_verify_failures_total{target_type="azure_kv",reason="unreadable"} 1',
        'certctl_deploy_rollback_total{target_type="azure_kv",outcome="restored"} 1',
        'certctl_deploy_validate_failures_total{target_type="azure_kv",reason="key_mismatch"} 1',
        'kvdeploy_vault_requests_total{operation="getLatest",status="not_found"} 3',
        'kvdeploy_vault_requests_total{operation="importVersion",status="ok"} 3',
        "kvdeploy_vault_throttled_total 1",
      ]
      const firstText = yield* scrape
      assert.deepStrictEqual(counters(firstText), first)
      // Unchanged: the same totals again.
      assert.deepStrictEqual(counters(yield* scrape), counters(firstText))
      yield* metrics.vaultRequest("getLatest", "not_found")
      yield* metrics.vaultRequest("getLatest", "ok")
      yield* metrics.deployAttempt("failed")
      const second = counters(yield* scrape)
      assert.include(second, 'kvdeploy_vault_requests_total{operation="getLatest",status="not_found"} 4')
      assert.include(second, 'kvdeploy_vault_requests_total{operation="getLatest",status="ok"} 1')
      assert.include(second, 'certctl_deploy_attempts_total{target_type="azure_kv",result="failed"} 1')
      assert.include(second, 'certctl_deploy_attempts_total{target_type="azure_kv",result="succeeded"} 3')
    }).pipe(Effect.provide(prometheusLayer)),
  )

  it.effect("shows each certificate's last expiry at every scrape, in the order first set", () =>
    Effect.gen(function* () {
      const metrics = yield* Metrics
      const scrape = Effect.flatMap(Effect.service(PrometheusExposition), (p) => p.text)
      const expiries = (text: string) =>
        text.split("\n").filter((l) => l.startsWith("kvdeploy_certificate_expiry_timestamp_seconds{"))
      const target = (vaultUrl: string, certificateName: string) =>
        ({ vaultUrl, certificateName }) as Parameters<typeof metrics.certificateExpiry>[0]
      const a = "https://a.vault.azure.net"
      const b = "https://b.vault.azure.net"
      assert.deepStrictEqual(expiries(yield* scrape), [])
      yield* metrics.certificateExpiry(target(b, "web"), new Date("2027-01-01T00:00:00.900Z"))
      yield* metrics.certificateExpiry(target(a, "web"), new Date("2027-02-01T00:00:00Z"))
      yield* metrics.certificateExpiry(target(b, "web"), new Date("2027-03-01T00:00:00Z"))
      const first = [
        'kvdeploy_certificate_expiry_timestamp_seconds{vault_url="https://b.vault.azure.net",certificate_name="web"} 1803859200',
        'kvdeploy_certificate_expiry_timestamp_seconds{vault_url="https://a.vault.azure.net",certificate_name="web"} 1801440000',
      ]
      assert.deepStrictEqual(expiries(yield* scrape), first)
      assert.deepStrictEqual(expiries(yield* scrape), first)
      yield* metrics.certificateExpiry(target(a, "api"), new Date("2027-04-01T00:00:00Z"))
      yield* metrics.certificateExpiry(target(b, "web"), new Date("2027-05-01T00:00:00Z"))
      assert.deepStrictEqual(expiries(yield* scrape), [
        'kvdeploy_certificate_expiry_timestamp_seconds{vault_url="https://b.vault.azure.net",certificate_name="web"} 1809129600',
        'kvdeploy_certificate_expiry_timestamp_seconds{vault_url="https://a.vault.azure.net",certificate_name="web"} 1801440000',
        'kvdeploy_certificate_expiry_timestamp_seconds{vault_url="https://a.vault.azure.net",certificate_name="api"} 1806537600',
      ])
    }).pipe(Effect.provide(prometheusLayer)),
  )

  it.effect(
    "retainCertificateExpiry drops the expiry series of the targets not kept, scraped or pending",
    () =>
      Effect.gen(function* () {
        const metrics = yield* Metrics
        const exposition = yield* PrometheusExposition
        const expiries = (text: string) => expirySeries(text).map(([name]) => name)
        const vaultUrl = "https://a.vault.azure.net"
        yield* metrics.certificateExpiry(
          { vaultUrl, certificateName: "kept" },
          new Date("2027-01-01T00:00:00Z"),
        )
        yield* metrics.certificateExpiry(
          { vaultUrl, certificateName: "gone" },
          new Date("2027-01-01T00:00:00Z"),
        )
        assert.deepStrictEqual(expiries(yield* exposition.text), ["kept", "gone"])
        // Set again after the scrape (pending), then dropped: neither the gauge's value nor the pending one shows.
        yield* metrics.certificateExpiry(
          { vaultUrl, certificateName: "gone" },
          new Date("2027-02-01T00:00:00Z"),
        )
        yield* metrics.certificateExpiry(
          { vaultUrl, certificateName: "late" },
          new Date("2027-02-01T00:00:00Z"),
        )
        yield* exposition.retainCertificateExpiry([{ vaultUrl, certificateName: "kept" }])
        assert.deepStrictEqual(expiries(yield* exposition.text), ["kept"])
        // A target set again later shows again.
        yield* metrics.certificateExpiry(
          { vaultUrl, certificateName: "gone" },
          new Date("2027-03-01T00:00:00Z"),
        )
        assert.deepStrictEqual(expiries(yield* exposition.text), ["kept", "gone"])
      }).pipe(Effect.provide(prometheusLayer)),
  )

  it.effect(
    "certificateNotServed drops that target's expiry series, scraped or pending, and a later set shows it again",
    () =>
      Effect.gen(function* () {
        const metrics = yield* Metrics
        const exposition = yield* PrometheusExposition
        const expiries = (text: string) => expirySeries(text).map((series) => series.join(" "))
        const vaultUrl = "https://a.vault.azure.net"
        const at = (iso: string) => String(Date.parse(iso) / 1000)
        yield* metrics.certificateExpiry(
          { vaultUrl, certificateName: "api" },
          new Date("2027-01-01T00:00:00Z"),
        )
        yield* metrics.certificateExpiry(
          { vaultUrl, certificateName: "web" },
          new Date("2027-01-01T00:00:00Z"),
        )
        assert.deepStrictEqual(expiries(yield* exposition.text), [
          `api ${at("2027-01-01T00:00:00Z")}`,
          `web ${at("2027-01-01T00:00:00Z")}`,
        ])
        // Scraped, then not served: gone; the other target stays.
        yield* metrics.certificateNotServed({ vaultUrl, certificateName: "web" })
        assert.deepStrictEqual(expiries(yield* exposition.text), [`api ${at("2027-01-01T00:00:00Z")}`])
        // Pending (set after the last scrape), then not served: the pending value does not show either.
        yield* metrics.certificateExpiry(
          { vaultUrl, certificateName: "api" },
          new Date("2027-02-01T00:00:00Z"),
        )
        yield* metrics.certificateNotServed({ vaultUrl, certificateName: "api" })
        // A target never set, and one already removed: nothing happens.
        yield* metrics.certificateNotServed({ vaultUrl, certificateName: "never" })
        yield* metrics.certificateNotServed({ vaultUrl, certificateName: "web" })
        assert.deepStrictEqual(expiries(yield* exposition.text), [])
        yield* metrics.certificateExpiry(
          { vaultUrl, certificateName: "web" },
          new Date("2027-03-01T00:00:00Z"),
        )
        assert.deepStrictEqual(expiries(yield* exposition.text), [`web ${at("2027-03-01T00:00:00Z")}`])
      }).pipe(Effect.provide(prometheusLayer)),
  )
})
