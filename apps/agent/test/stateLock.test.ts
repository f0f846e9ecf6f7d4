/**
 * One agent per state directory: a second agent started on the same state_dir waits for the first
 * one's lock instead of deploying beside it (two writers per certificate, two writers of one state
 * file), starts once the first has stopped and released it, and stops at once on SIGTERM while it
 * waits. An agent that loses its lock stops (exit 1) without writing the state another may own now.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, utimesSync } from "node:fs"

import { describe, expect, it } from "vitest"
import { type LogLine, perTestWorld, writeConfig } from "./harness.js"

const files = perTestWorld()
type World = ReturnType<typeof files.own>

const timeOf = (line: LogLine | undefined): number => Date.parse(String(line?.time))
const waiting = (l: LogLine) => /^the state directory is locked by another agent/.test(l.msg)

/** A first agent holding the state directory, its one deployment deployed. */
const firstAgent = async (world: World, vault: string) => {
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

// Side by side: each test has an emulator, work directory and agents of its own (files.own), and
// most of their time is spent waiting on the agents' clocks (a stale lock is taken over after 30 s).
describe("the state directory's lock", { concurrent: true }, () => {
  it("a second agent on the same state_dir waits, deploys nothing, and starts once the first stops", async ({
    onTestFinished,
  }) => {
    const world = files.own({ onTestFinished })
    const { e, w, first, second: startSecond } = await firstAgent(world, "kv-lock")
    const second = startSecond()
    await second.waitFor(waiting)
    // A reload sent to the waiting agent (it used to kill it, then it was ignored): its file, changed
    // while it waits, is read again once it runs, so the deployment added is deployed.
    const leaf = await (await world.pki()).leaf("added.example.test")
    writeConfig(
      w,
      e,
      [
        {
          name: "l",
          vault: "kv-lock",
          certificate: "l",
          source: { cert: w.path("l.crt"), key: w.path("l.key") },
        },
        {
          name: "added",
          vault: "kv-lock",
          certificate: "added",
          source: { cert: w.write("added.crt", leaf.certPem), key: w.write("added.key", leaf.keyPem) },
        },
      ],
      {},
      "second.yaml",
    )
    second.signal("SIGHUP")
    await second.waitFor((l) => /^SIGHUP while the agent waits for the state directory's lock/.test(l.msg))

    // The first stops and releases the lock; only then does the second start, and it finds the
    // certificate in place.
    first.signal("SIGTERM")
    expect(await first.exited).toBe(0)
    await second.waitFor((l) => l.deployment === "l" && /^in place/.test(l.msg), { timeoutMs: 15_000 })
    const started = second.lines.find((l) => l.msg === "kvdeploy-agent started")
    // Its start comes after the first's last line (its exit), not while the first ran.
    expect(timeOf(started)).toBeGreaterThanOrEqual(timeOf(first.lines.at(-1)))
    expect(e.state.versions("kv-lock", "l")).toHaveLength(1)
    await second.waitFor((l) => l.deployment === "added" && l.msg === "deploy: Succeeded")
    second.signal("SIGTERM")
    expect(await second.exited).toBe(0)
    expect(existsSync(w.path("state/agent.lock"))).toBe(false)
  })

  it("a waiting agent stops at once on SIGTERM, having started nothing", async ({ onTestFinished }) => {
    const world = files.own({ onTestFinished })
    const { first, second: startSecond } = await firstAgent(world, "kv-lock-stop")
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
  it("an agent that loses its lock stops with exit 1, naming the cause and the fix", async ({
    onTestFinished,
  }) => {
    const world = files.own({ onTestFinished })
    const { w, first } = await firstAgent(world, "kv-lock-lost")
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

  it("a lock dated ahead that nobody refreshes (a killed agent's, then the clock set back) is taken over after 30 s unchanged", async ({
    onTestFinished,
  }) => {
    const world = files.own({ onTestFinished })
    const { e, w, p } = await world.setUp(["kv-lock-ahead"])
    const leaf = await p.leaf("ahead.example.test")
    const deployment = {
      name: "ahead",
      vault: "kv-lock-ahead",
      certificate: "ahead",
      source: { cert: w.write("a.crt", leaf.certPem), key: w.write("a.key", leaf.keyPem) },
    }
    mkdirSync(w.path("state"), { mode: 0o700 })
    mkdirSync(w.path("state/agent.lock"))
    const ahead = new Date(Date.now() + 10 * 60_000)
    utimesSync(w.path("state/agent.lock"), ahead, ahead)
    const a = world.run(writeConfig(w, e, [deployment], {}, "ahead.yaml"), e)
    await a.waitFor(waiting)
    // Before: it waited 35 s, then exited 1 saying another agent had refreshed the lock all along,
    // and did so at every restart until the clock passed the lock's date.
    const taken = await a.waitFor(
      (l) => /^the state directory's lock was not refreshed for 30 s/.test(l.msg),
      {
        timeoutMs: 40_000,
      },
    )
    expect(String(taken.msg)).toContain(ahead.toISOString())
    await a.waitFor((l) => l.deployment === "ahead" && l.msg === "deploy: Succeeded")
  }, 60_000)
})
