/**
 * Another writer's version of a certificate a deployment adopts, as the built agent meets it: taken
 * over (`adopted: true`) when the agent read it as the version it replaces; covered, and not taken
 * over, when it landed while the agent's import was already on its way (Key Vault's import has no
 * condition on the version it replaces, so nothing can stop that import). The chaos test's takeover
 * check tells these two apart by the deploy record's `previousVersionId`, as here.
 */
import { describe, expect, it } from "vitest"
import { type LogLine, perTestWorld, requestHeld, type Workdir, writeConfig } from "./harness.js"
import type { Issued } from "./pki.js"

const world = perTestWorld()

const writePair = (w: Workdir, name: string, issued: Issued) => {
  w.write(`${name}.key`, issued.keyPem)
  w.write(`${name}.crt`, issued.certPem)
  return { cert: w.path(`${name}.crt`), key: w.path(`${name}.key`) }
}

const versionOf = (id: unknown) => String(id).split("/").at(-1)
const decided = (l: LogLine) =>
  l.deployment === "shared" && l.msg.startsWith("deploy: ") && l.msg !== "deploy: Skipped"

describe("another writer's versions", () => {
  it("a version the agent read is taken over; one landing while the agent's import is on its way is covered unread", async () => {
    const { e, w, p } = await world.setUp(["kv-foreign"])
    const source = writePair(w, "shared", await p.leaf("shared.example.test"))
    const a = world.run(
      writeConfig(w, e, [
        { name: "shared", vault: "kv-foreign", certificate: "shared", source, target: { adopt: true } },
      ]),
      e,
    )
    const first = await a.waitFor(decided)
    expect(first.msg).toBe("deploy: Succeeded")
    const ours = versionOf(first.versionId)

    // The agent's next import is held at the vault: the agent has read its own version as the latest.
    const hold = e.faults.add({
      operation: "import",
      vault: "kv-foreign",
      name: "shared",
      times: 1,
      action: { kind: "hold" },
    })
    const renewed = await p.leaf("shared.example.test")
    writePair(w, "shared", renewed)
    await requestHeld(e, hold)
    // Another writer's version lands now, under the held import.
    const unread = await e.state.foreignImport("kv-foreign", "shared")
    const from = a.lines.length
    e.faults.release(hold)
    const covering = await a.waitFor(decided, { from })
    expect(covering.msg).toBe("deploy: Succeeded")
    // It replaced the version it read (its own), not the other writer's, and took nothing over.
    expect(versionOf(covering.previousVersionId)).toBe(ours)
    expect(covering.adopted).toBe(false)
    expect(e.state.versions("kv-foreign", "shared")?.map((v) => [v.version, v.foreign])).toEqual([
      [ours, false],
      [unread.version, true],
      [versionOf(covering.versionId), false],
    ])
    expect(e.state.versions("kv-foreign", "shared")?.at(-1)?.x5t).toBe(renewed.x5t)

    // Another writer's version with no import on its way: the agent reads it and takes it over.
    const read = await e.state.foreignImport("kv-foreign", "shared")
    const before = a.lines.length
    writePair(w, "shared", await p.leaf("shared.example.test"))
    const takeover = await a.waitFor(decided, { from: before })
    expect(takeover.msg).toBe("deploy: Succeeded")
    expect(versionOf(takeover.previousVersionId)).toBe(read.version)
    expect(takeover.adopted).toBe(true)
  })
})
