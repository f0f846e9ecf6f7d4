/**
 * The README's example as written there, with the in-memory vault and the synthetic codec in
 * place of @kvdeploy/azure-kv's and @kvdeploy/pkcs12's layers: like theirs, the vault layer needs
 * a PfxCodec, so the example has to give it one (the README's earlier `Layer.mergeAll` of all four
 * layers left the vault's needs unmet: it did not compile).
 */
import { assert, describe, it } from "@effect/vitest"
import { AuditLog, deploy } from "@kvdeploy/core"
import { InMemoryVault, SyntheticCodec } from "@kvdeploy/core/test"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { PrometheusExposition, layer as prometheus } from "../src/prometheus.js"
import { newCert, request as requestFor } from "./world.js"

const vaultLayer = InMemoryVault.layer
const codecLayer = SyntheticCodec.layer
const request = requestFor(newCert.material)

describe("README example", () => {
  it.effect("deploys, then answers the exposition text with the deploy's series", () =>
    Effect.gen(function* () {
      // README text starts
      const page = Effect.gen(function* () {
        yield* deploy(request)
        return yield* Effect.flatMap(Effect.service(PrometheusExposition), (p) => p.text)
      }).pipe(
        Effect.provide(
          vaultLayer.pipe(Layer.provideMerge(Layer.mergeAll(prometheus, codecLayer, AuditLog.layerLogger))),
        ),
      )
      // README text ends
      const text = yield* page
      assert.include(text, 'certctl_deploy_attempts_total{target_type="azure_kv",result="succeeded"} 1')
      assert.include(text, "kvdeploy_deploy_duration_seconds_count 1")
    }),
  )
})
