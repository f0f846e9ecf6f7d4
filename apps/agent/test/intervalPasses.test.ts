/**
 * Interval passes against deployments that are retrying or held back, with the built agent and
 * the emulator: an interval pass leaves a deployment retrying to its backoff (it used to start the
 * backoff again, so a failing deployment retried at least once an interval, in step with every
 * other), and a pass the next one overtakes is not reported as an ended pass.
 */
import { describe, expect, it } from "vitest"
import {
  type LogLine,
  metricValue,
  oneSourceConfig,
  perTestWorld,
  whileImporting,
  writeConfig,
} from "./harness.js"

const world = perTestWorld()

/**
 * An agent with two deployments of `vault`, one at a time: the first read of "slow" takes 2.5 s, and
 * "queued" waits behind it, so a pass begun meanwhile (an interval pass after `intervalSeconds`, a
 * reload) takes "queued" before the start pass got to it.
 */
const slowThenQueued = async (vault: string, intervalSeconds: number) => {
  const { e, w, p } = await world.setUp([vault])
  const deployments = []
  for (const name of ["slow", "queued"]) {
    const leaf = await p.leaf(`${name}.example.test`)
    deployments.push({
      name,
      vault,
      certificate: name,
      source: { cert: w.write(`${name}.crt`, leaf.certPem), key: w.write(`${name}.key`, leaf.keyPem) },
    })
  }
  e.faults.add({ operation: "getLatest", vault, name: "slow", times: 1, action: { kind: "delay", ms: 2500 } })
  return world.run(
    writeConfig(w, e, deployments, {
      reconcile_interval_seconds: intervalSeconds,
      vault_concurrency: 1,
      concurrency: 1,
    }),
    e,
  )
}

describe("interval passes", () => {
  it("leave a deployment retrying to its backoff: its retries keep growing apart", async () => {
    const { e, w, p } = await world.setUp(["kv-interval-backoff"])
    const leaf = await p.leaf("backoff.example.test")
    const other = await p.leaf("other.example.test")
    // A broken source (the key of another certificate): retried with backoff, 2 s first, then 4 s.
    const config = oneSourceConfig(
      w,
      e,
      { name: "b", vault: "kv-interval-backoff", certPem: leaf.certPem, keyPem: other.keyPem },
      { reconcile_interval_seconds: 1, backoff_base_seconds: 2, backoff_max_seconds: 60 },
    )
    const a = world.run(config, e)
    const broken = (l: LogLine) => l.deployment === "b" && /^source broken/.test(l.msg)
    await a.waitFor(broken)
    // Seven interval passes go by (one a second).
    const from = a.lines.length
    for (let i = 0; i < 7; i++)
      await a.waitFor((l) => l.msg === "pass over" && l.reason === "interval", { from: a.lines.length })
    const attempts = a.lines.slice(from).filter(broken)
    // With the backoff kept (jittered 0.8-1.2): retries about 2 s and 4 s after the first, so at
    // most 3 in these 7 s. Restarted by each pass, it was one a second.
    expect(attempts.length, JSON.stringify(attempts)).toBeGreaterThanOrEqual(1)
    expect(attempts.length, JSON.stringify(attempts)).toBeLessThanOrEqual(3)
    expect(attempts.every((l) => l.trigger === "retry")).toBe(true)
    // Nothing reached the vault for the broken source.
    expect(e.state.versions("kv-interval-backoff", "b") ?? []).toEqual([])
  })

  it("that come during a first attempt longer than the interval do not cut its backoff short", async () => {
    const { e, w, p } = await world.setUp(["kv-interval-slow"])
    const leaf = await p.leaf("slow.example.test")
    const config = oneSourceConfig(
      w,
      e,
      { name: "s", vault: "kv-interval-slow", certPem: leaf.certPem, keyPem: leaf.keyPem },
      { reconcile_interval_seconds: 1, backoff_base_seconds: 2, backoff_max_seconds: 60 },
    )
    // Every read of the vault is refused after 3 s (a slow refusal): each attempt outlasts three intervals.
    e.faults.add({
      operation: "getLatest",
      vault: "kv-interval-slow",
      times: "always",
      action: {
        kind: "status",
        status: 403,
        code: "Forbidden",
        message: "Caller is not authorized.",
        afterMs: 3000,
      },
    })
    // Debug lines too: after the first, each failed read is one (`cannot read the vault: still failing`).
    const a = world.run(config, e, { KVDEPLOY_AGENT_LOG_LEVEL: "debug" })
    const failed = (l: LogLine) => l.deployment === "s" && /^cannot read the vault/.test(l.msg)
    await a.waitFor(failed)
    await a.waitFor(failed, { from: a.lines.length })
    await a.waitFor(failed, { from: a.lines.length })
    const attempts = a.lines.filter(failed)
    // After the first attempt, each begins when its backoff ends ("retry"), not when an interval
    // pass that came during the attempt before starts it again ("interval", at once).
    expect(
      attempts.slice(1).map((l) => l.trigger),
      JSON.stringify(attempts),
    ).toEqual(["retry", "retry"])
  })

  it("a pass the next one overtakes is logged as overtaken and does not set the last-pass gauge", async () => {
    const a = await slowThenQueued("kv-overtaken", 1)
    // (The interval passes behind it, overtaken by the next ones while "slow" is read, say so too.)
    const overtaken = await a.waitFor(
      (l) => l.msg === "pass overtaken: the next pass began before it got through" && l.reason === "start",
    )
    expect(overtaken.notAttempted).toBeGreaterThanOrEqual(1)
    expect(overtaken.overtakenBy).toBe("interval")
    expect(String(overtaken.fix)).toContain("reconcile_interval_seconds")
    // Both deploy, in a later pass; and the passes after it end as before.
    await a.waitFor((l) => l.deployment === "queued" && l.msg === "deploy: Succeeded")
    await a.waitFor((l) => l.msg === "pass over" && l.reason === "interval")
    expect(a.lines.some((l) => l.msg === "pass over" && l.reason === "start")).toBe(false)
    const page = (await a.http("/metrics")).body
    expect(
      metricValue(page, "kvdeploy_agent_last_pass_timestamp_seconds", { reason: "start" }),
    ).toBeUndefined()
    expect(
      metricValue(page, "kvdeploy_agent_last_pass_timestamp_seconds", { reason: "interval" }),
    ).toBeGreaterThan(0)
  })

  it("a pass a reload overtook says so, and that nothing is to fix (it blamed the interval)", async () => {
    const a = await slowThenQueued("kv-overtaken-hup", 600)
    await a.waitFor((l) => l.msg === "kvdeploy-agent started")
    a.signal("SIGHUP")
    const overtaken = await a.waitFor(
      (l) => l.msg === "pass overtaken: the next pass began before it got through" && l.reason === "start",
    )
    expect(overtaken.overtakenBy).toBe("reload")
    expect(String(overtaken.fix)).toMatch(/^a reload \(SIGHUP\) began the next pass/)
    expect(String(overtaken.fix)).not.toContain("reconcile_interval_seconds")
    await a.waitFor((l) => l.deployment === "queued" && l.msg === "deploy: Succeeded")
  })

  it("a target renamed by SIGHUP while its import runs: the old name's expiry series does not come back", async () => {
    const { e, w, p } = await world.setUp(["kv-renamed"])
    const leaf = await p.leaf("renamed.example.test")
    w.write("r.crt", leaf.certPem)
    w.write("r.key", leaf.keyPem)
    const deployment = (certificate: string) => ({
      name: "r",
      vault: "kv-renamed",
      certificate,
      source: { cert: w.path("r.crt"), key: w.path("r.key") },
    })
    e.faults.add({
      operation: "import",
      vault: "kv-renamed",
      name: "old-name",
      times: 1,
      action: { kind: "delay", ms: 2500 },
    })
    const a = world.run(writeConfig(w, e, [deployment("old-name")]), e)
    await whileImporting(e, "kv-renamed")
    // Renamed while the import of old-name waits.
    writeConfig(w, e, [deployment("new-name")])
    const from = a.lines.length
    a.signal("SIGHUP")
    await a.waitFor((l) => l.msg === "configuration applied", { from })
    await a.waitFor((l) => l.msg === "deploy: Succeeded" && l.certificate === "old-name")
    await a.waitFor((l) => l.msg === "deploy: Succeeded" && l.certificate === "new-name")
    const page = (await a.http("/metrics")).body
    expect(
      metricValue(page, "kvdeploy_certificate_expiry_timestamp_seconds", { certificate_name: "new-name" }),
    ).toBe(Math.floor(leaf.notAfter.getTime() / 1000))
    expect(page).not.toContain('certificate_name="old-name"')
  })
})
