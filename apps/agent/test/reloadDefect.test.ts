/**
 * A SIGHUP's reload that dies on an unexpected throw (a bug, not an invalid file): logged as an
 * error with the file and the fix, and the reload gauge set to 0. It used to end silently after
 * "reloading", the gauge still 1.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import { describe, expect, it } from "vitest"
import { makeAgentMetrics } from "../src/agentMetrics.js"
import { jsonLineLogger } from "../src/logging.js"
import { reloadOrSay } from "../src/runtime.js"

const gauge = async (text: Promise<string>) =>
  Number(/^kvdeploy_agent_config_last_reload_successful (\S+)$/m.exec(await text)?.[1])

const run = (reload: Effect.Effect<void>) => {
  const metrics = makeAgentMetrics()
  metrics.configLoaded(true, Date.now())
  const lines: Array<string> = []
  const fiber = Effect.runFork(
    reloadOrSay(reload, metrics, "/etc/kvdeploy/agent.yaml").pipe(
      Effect.provide(Logger.layer([jsonLineLogger((t) => lines.push(t))])),
    ),
  )
  return { metrics, lines, fiber }
}

describe("a reload that dies", () => {
  it("is logged as an internal error naming the file and the fix, and sets the reload gauge to 0", async () => {
    const { metrics, lines, fiber } = run(
      Effect.sync(() => {
        // As a plain-object lookup found Object.prototype's constructor and called it.
        throw new TypeError("Cannot convert object to primitive value")
      }),
    )
    await Effect.runPromise(Fiber.await(fiber))
    const entries = lines
      .join("")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(entries).toHaveLength(1)
    expect(entries[0]?.level).toBe("error")
    expect(entries[0]?.msg).toBe("the reload stopped on an internal error")
    expect(entries[0]?.config).toBe("/etc/kvdeploy/agent.yaml")
    expect(entries[0]?.error).toBe("internal error: TypeError: Cannot convert object to primitive value")
    expect(String(entries[0]?.fix)).toContain("this is a bug in kvdeploy-agent")
    expect(await gauge(metrics.text())).toBe(0)
  })

  it("a reload that ends, or is interrupted as the agent stops, leaves the gauge as it was", async () => {
    const done = run(Effect.void)
    await Effect.runPromise(Fiber.await(done.fiber))
    expect(done.lines).toEqual([])
    expect(await gauge(done.metrics.text())).toBe(1)
    const stopped = run(Effect.never)
    await Effect.runPromise(Fiber.interrupt(stopped.fiber))
    expect(stopped.lines).toEqual([])
    expect(await gauge(stopped.metrics.text())).toBe(1)
  })
})
