/**
 * One agent per state directory: a second agent started on the same state_dir waits for the first
 * one's lock instead of deploying beside it (two writers per certificate, two writers of one state
 * file), starts once the first has stopped and released it, and stops at once on SIGTERM while it
 * waits. An agent that loses its lock stops (exit 1) without writing the state another may own now.
 */
import { existsSync, readFileSync, rmSync, statSync } from "node:fs"

import { describe, expect, it } from "vitest"
import { type LogLine, perTestWorld, writeConfig } from "./harness.js"

const world = perTestWorld()

const timeOf = (line: LogLine | undefined): number => Date.parse(String(line?.time))
const waiting = (l: LogLine) => /^the state directory is locked by another agent/.test(l.msg)

/** A first agent holding the state directory, its one deployment deployed. */
const firstAgent = async (vault: string) => {
  const { e, w, p } = await world.setUp([vault])
  const leaf = await p.leaf("lock.example.test")
  w.write("l.crt", leaf.certPem)
  w.write("l.key", leaf.keyPem)
  const deployment = {
    name: "l",
    vault,
    certificate: "l",
    source: { cert: w.path("l.crt"), key: w.path("l.key") },
  }
  const config = (file: string) => writeConfig(w, e, [deployment], {}, file)
  const first = world.run(config("first.yaml"), e)
  await first.waitFor((l) => l.deployment === "l" && l.msg === "deploy: Succeeded")
  expect(existsSync(w.path("state/agent.lock"))).toBe(true)
  return { e, w, first, second: () => world.run(config("second.yaml"), e) }
}

describe("the state directory's lock", () => {
  it("a second agent on the same state_dir waits, deploys nothing, and starts once the first stops", async () => {
    const { e, w, first, second: startSecond } = await firstAgent("kv-lock")
    const second = startSecond()
    await second.waitFor(waiting)
    // A reload sent to the waiting agent is logged and ignored (it used to kill it).
    second.signal("SIGHUP")
    await second.waitFor((l) => /^SIGHUP ignored/.test(l.msg))

    // The first stops and releases the lock; only then does the second start, and it finds the
    // certificate in place.
    first.signal("SIGTERM")
    expect(await first.exited).toBe(0)
    await second.waitFor((l) => l.deployment === "l" && /^in place/.test(l.msg), { timeoutMs: 15_000 })
    const started = second.lines.find((l) => l.msg === "kvdeploy-agent started")
    // Its start comes after the first's last line (its exit), not while the first ran.
    expect(timeOf(started)).toBeGreaterThanOrEqual(timeOf(first.lines.at(-1)))
    expect(e.state.versions("kv-lock", "l")).toHaveLength(1)
    second.signal("SIGTERM")
    expect(await second.exited).toBe(0)
    expect(existsSync(w.path("state/agent.lock"))).toBe(false)
  })

  it("a waiting agent stops at once on SIGTERM, having started nothing", async () => {
    const { first, second: startSecond } = await firstAgent("kv-lock-stop")
    const second = startSecond()
    await second.waitFor(waiting)
    const sent = Date.now()
    second.signal("SIGTERM")
    expect(await second.exited).toBe(0)
    // The wait is 35 s; a stop that waited for it took that long.
    expect(Date.now() - sent).toBeLessThan(5_000)
    expect(second.lines.some((l) => l.msg === "kvdeploy-agent started")).toBe(false)
    first.signal("SIGTERM")
    expect(await first.exited).toBe(0)
  })

  // That it then writes no state is stateRefused.test.ts's (here no write was pending when it stopped).
  it("an agent that loses its lock stops with exit 1, naming the cause and the fix", async () => {
    const { w, first } = await firstAgent("kv-lock-lost")
    const statePath = w.path("state/state.json")
    await expect.poll(() => existsSync(statePath), { timeout: 10_000 }).toBe(true)
    const before = { text: readFileSync(statePath, "utf8"), mtimeMs: statSync(statePath).mtimeMs }
    // Another process takes the directory over: the lock is gone under the running agent.
    rmSync(w.path("state/agent.lock"), { recursive: true, force: true })
    expect(await first.exited).toBe(1)
    const stopped = first.lines.find((l) => l.msg === "kvdeploy-agent stopped")
    expect(String(stopped?.error)).toContain("lock on the state directory")
    expect(String(stopped?.fix)).toContain("one agent alone")
    expect({ text: readFileSync(statePath, "utf8"), mtimeMs: statSync(statePath).mtimeMs }).toEqual(before)
  })
})
