/**
 * The agent's HTTP endpoints (loopback by default): `/metrics` (Prometheus
 * text: core's catalogue and the agent's own series), `/healthz` (the process
 * runs) and `/readyz` (every deployment was reconciled once).
 */

import { PrometheusExposition } from "@kvdeploy/metrics/prometheus"
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import { AgentRuntime } from "./runtime.js"

const metrics = HttpRouter.add(
  "GET",
  "/metrics",
  Effect.gen(function* () {
    const exposition = yield* PrometheusExposition
    const runtime = yield* AgentRuntime
    const core = yield* exposition.text
    const own = yield* Effect.promise(() => runtime.metrics.text())
    return HttpServerResponse.text(`${core.trimEnd()}\n${own}`, { contentType: exposition.contentType })
  }),
)

const healthz = HttpRouter.add("GET", "/healthz", Effect.succeed(HttpServerResponse.text("ok\n")))

const readyz = HttpRouter.add(
  "GET",
  "/readyz",
  Effect.map(Effect.service(AgentRuntime), (runtime) =>
    runtime.reconciler.isReady()
      ? HttpServerResponse.text("ready\n")
      : HttpServerResponse.text("not ready: the first reconcile has not finished\n", { status: 503 }),
  ),
)

/** The routes; serve them with `HttpRouter.serve` over a server layer. */
export const routes = Layer.mergeAll(metrics, healthz, readyz)
