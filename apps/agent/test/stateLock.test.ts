/**
 * One agent per state directory: a second agent started on the same state_dir waits for the first
 * one's lock instead of deploying beside it (two writers per certificate, two writers of one state
 * file), and starts once the first has stopped and released it.
 */
import { existsSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { perTestWorld, writeConfig } from "./harness.js"

const world = perTestWorld()

describe("the state directory's lock", () => {
  it("a second agent on the same state_dir waits, deploys nothing, and starts once the first stops", async () => {
    const { e, w, p } = await world.setUp(["kv-lock"])
    const leaf = await p.leaf("lock.example.test")
    w.write("l.crt", leaf.certPem)
    w.write("l.key", leaf.keyPem)
    const deployment = {
      name: "l",
      vault: "kv-lock",
      certificate: "l",
      source: { cert: w.path("l.crt"), key: w.path("l.key") },
    }
    const first = world.run(writeConfig(w, e, [deployment], {}, "first.yaml"), e)
    await first.waitFor((l) => l.deployment === "l" && l.msg === "deploy: Succeeded")
    expect(existsSync(w.path("state/agent.lock"))).toBe(true)

    // The same state_dir, its own listen port: it waits for the lock and starts nothing meanwhile.
    const second = world.run(writeConfig(w, e, [deployment], {}, "second.yaml"), e)
    await second.waitFor((l) => /^the state directory is locked by another agent/.test(l.msg))
    expect(second.lines.some((l) => l.msg === "kvdeploy-agent started")).toBe(false)

    // The first stops and releases the lock; the second takes it and finds the certificate in place.
    first.signal("SIGTERM")
    expect(await first.exited).toBe(0)
    await second.waitFor((l) => l.deployment === "l" && /^in place/.test(l.msg), { timeoutMs: 15_000 })
    expect(e.state.versions("kv-lock", "l")).toHaveLength(1)
    second.signal("SIGTERM")
    expect(await second.exited).toBe(0)
    expect(existsSync(w.path("state/agent.lock"))).toBe(false)
  })
})
