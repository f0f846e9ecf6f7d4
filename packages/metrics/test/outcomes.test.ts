/** Every outcome moves the right series (core's deploy calls the Metrics port at every outcome). */

import { assert, describe, it } from "@effect/vitest"
import { Fault, InMemoryVaultHandle, issue, withWrongKey } from "@kvdeploy/core/test"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { layerTest, MetricsSnapshot } from "../src/index.js"
import { ca, managedTags, NAME, newCert, oldCert, request, run, VAULT_URL, vaultWorld } from "./world.js"

const world = Layer.mergeAll(vaultWorld, layerTest)
const fresh = <A, E, R>(eff: Effect.Effect<A, E, R>) => Effect.provide(eff, world)
const t = { target_type: "azure_kv" }
const attempts = "certctl_deploy_attempts_total"

/** Run a scenario and return every series that changed, with its value. */
const scenario = (
  setup: (vault: (typeof InMemoryVaultHandle)["Service"]) => Effect.Effect<void>,
  material = newCert.material,
) =>
  fresh(
    Effect.gen(function* () {
      const vault = yield* InMemoryVaultHandle
      const metrics = yield* MetricsSnapshot
      yield* setup(vault)
      const outcome = yield* run(request(material))
      return { outcome, metrics }
    }),
  )
const seeded = (vault: (typeof InMemoryVaultHandle)["Service"], material = oldCert.material) =>
  Effect.asVoid(vault.seed(NAME, material, { tags: managedTags }))

describe("each outcome moves the right series", () => {
  it.effect("Succeeded", () =>
    Effect.gen(function* () {
      const { outcome, metrics: m } = yield* scenario((v) => seeded(v))
      assert.strictEqual(outcome._tag, "Succeeded")
      assert.strictEqual(m.value(attempts, { ...t, result: "succeeded" }), 1)
      assert.strictEqual(
        m.value("kvdeploy_vault_requests_total", { operation: "getLatest", status: "ok" }),
        2,
      )
      assert.strictEqual(
        m.value("kvdeploy_vault_requests_total", { operation: "importVersion", status: "ok" }),
        1,
      )
      assert.strictEqual(m.histogram("kvdeploy_deploy_duration_seconds").count, 1)
      assert.strictEqual(
        m.value("kvdeploy_certificate_expiry_timestamp_seconds", {
          vault_url: VAULT_URL,
          certificate_name: NAME,
        }),
        Math.floor(newCert.notAfter.getTime() / 1000),
      )
    }),
  )

  it.effect("Skipped", () =>
    Effect.gen(function* () {
      const { outcome, metrics: m } = yield* scenario((v) => seeded(v, newCert.material))
      assert.strictEqual(outcome._tag, "Skipped")
      assert.strictEqual(m.value(attempts, { ...t, result: "skipped" }), 1)
      assert.strictEqual(m.value("certctl_deploy_idempotent_skip_total", t), 1)
    }),
  )

  it.effect("Rejected", () =>
    Effect.gen(function* () {
      const { outcome, metrics: m } = yield* scenario(() => Effect.void, withWrongKey(newCert))
      assert.strictEqual(outcome._tag, "Rejected")
      assert.strictEqual(m.value(attempts, { ...t, result: "rejected" }), 1)
      assert.strictEqual(
        m.value("certctl_deploy_validate_failures_total", { ...t, reason: "key_mismatch" }),
        1,
      )
      assert.strictEqual(
        m.value("kvdeploy_vault_requests_total", { operation: "getLatest", status: "ok" }),
        0,
      )
    }),
  )

  it.effect("Failed (and throttling is counted)", () =>
    Effect.gen(function* () {
      const { outcome, metrics: m } = yield* scenario((v) =>
        Effect.sync(() => v.script("getLatest", ...Array.from({ length: 5 }, () => Fault.fail("Throttled")))),
      )
      assert.strictEqual(outcome._tag, "Failed")
      assert.strictEqual(m.value(attempts, { ...t, result: "failed" }), 1)
      assert.strictEqual(m.value("kvdeploy_vault_throttled_total"), 5)
      assert.strictEqual(
        m.value("kvdeploy_vault_requests_total", { operation: "getLatest", status: "throttled" }),
        5,
      )
    }),
  )

  it.effect("Unverified", () =>
    Effect.gen(function* () {
      const { outcome, metrics: m } = yield* scenario((v) =>
        Effect.tap(seeded(v), () =>
          Effect.sync(() =>
            v.script("getLatest", Fault.pass, ...Array.from({ length: 5 }, () => Fault.fail("Unavailable"))),
          ),
        ),
      )
      assert.strictEqual(outcome._tag, "Unverified")
      assert.strictEqual(m.value(attempts, { ...t, result: "unverified" }), 1)
      assert.strictEqual(
        m.value("certctl_deploy_post_verify_failures_total", { ...t, reason: "unreadable" }),
        1,
      )
    }),
  )

  it.effect("Superseded", () =>
    Effect.gen(function* () {
      const { outcome, metrics: m } = yield* scenario((v) =>
        Effect.tap(seeded(v), () =>
          Effect.sync(() => v.script("getLatest", Fault.pass, Fault.foreignImport(oldCert.material))),
        ),
      )
      assert.strictEqual(outcome._tag, "Superseded")
      assert.strictEqual(m.value(attempts, { ...t, result: "superseded" }), 1)
      assert.strictEqual(
        m.value("certctl_deploy_post_verify_failures_total", { ...t, reason: "superseded" }),
        1,
      )
    }),
  )

  it.effect("RolledBack", () =>
    Effect.gen(function* () {
      // A previous certificate that expires before the new one: the expiry series must say the one served.
      const expiringSooner = issue({
        seed: "m-old-sooner",
        issuer: ca,
        notAfter: new Date(Date.UTC(2090, 0, 1)),
      })
      const { outcome, metrics: m } = yield* scenario((v) =>
        Effect.tap(seeded(v, expiringSooner.material), () =>
          Effect.sync(() => v.script("importVersion", Fault.alter("drop-tags"))),
        ),
      )
      assert.strictEqual(outcome._tag, "RolledBack")
      assert.strictEqual(m.value(attempts, { ...t, result: "rolled_back" }), 1)
      assert.strictEqual(
        m.value("certctl_deploy_post_verify_failures_total", { ...t, reason: "mismatch" }),
        1,
      )
      assert.strictEqual(m.value("certctl_deploy_rollback_total", { ...t, outcome: "restored" }), 1)
      assert.strictEqual(
        m.value("kvdeploy_vault_requests_total", { operation: "getVersionSecret", status: "ok" }),
        1,
      )
      // The vault serves the previous certificate again: its expiry, not the rolled-back one's.
      assert.notStrictEqual(expiringSooner.notAfter.getTime(), newCert.notAfter.getTime())
      assert.strictEqual(
        m.value("kvdeploy_certificate_expiry_timestamp_seconds", {
          vault_url: VAULT_URL,
          certificate_name: NAME,
        }),
        Math.floor(expiringSooner.notAfter.getTime() / 1000),
      )
    }),
  )

  it.effect("RollbackFailed", () =>
    Effect.gen(function* () {
      const { outcome, metrics: m } = yield* scenario((v) =>
        Effect.tap(seeded(v), () =>
          Effect.sync(() => {
            v.setSecretsGet(false)
            v.script("importVersion", Fault.alter("drop-tags"))
          }),
        ),
      )
      assert.strictEqual(outcome._tag, "RollbackFailed")
      assert.strictEqual(m.value(attempts, { ...t, result: "rollback_failed" }), 1)
      assert.strictEqual(m.value("certctl_deploy_rollback_total", { ...t, outcome: "also_failed" }), 1)
      assert.strictEqual(
        m.value("kvdeploy_vault_requests_total", { operation: "getVersionSecret", status: "forbidden" }),
        1,
      )
    }),
  )
})
