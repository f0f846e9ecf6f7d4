/**
 * A `deploy:` line's `newX5t` is the source certificate's x5t on every line, whatever the outcome
 * (the audit record's meaning, which scripts rely on); `versionId` says what was written, absent on
 * a `Rejected` or `Failed` line. docs/agent.md's Logs section says so (it said `newX5t` named the
 * version the deploy wrote, which a line that wrote nothing has none of).
 */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { agentRoot, perTestWorld, writeConfig } from "./harness.js"

const world = perTestWorld()
const logs = (() => {
  const page = readFileSync(join(agentRoot, "..", "..", "docs", "agent.md"), "utf8")
  const start = page.indexOf("\n## Logs\n")
  return page.slice(start, page.indexOf("\n## ", start + 1)).replace(/\s+/g, " ")
})()

describe("a deploy line's newX5t", () => {
  it("is the source's x5t on a line that wrote nothing (Rejected, Failed), without a versionId; the docs say so", async () => {
    const { e, w, p } = await world.setUp(["kv-fields"])
    // Another writer's certificate: the takeover is refused (Rejected, nothing written).
    await e.state.foreignImport("kv-fields", "taken")
    const taken = await p.leaf("taken.example.test")
    w.write("taken.crt", taken.certPem)
    w.write("taken.key", taken.keyPem)
    // An import the vault refuses with 400: nothing written.
    const refused = await p.leaf("refused.example.test")
    w.write("refused.crt", refused.certPem)
    w.write("refused.key", refused.keyPem)
    e.faults.add({
      operation: "import",
      vault: "kv-fields",
      name: "refused",
      times: "always",
      action: { kind: "status", status: 400, code: "BadParameter", message: "refused" },
    })
    const a = world.run(
      writeConfig(w, e, [
        {
          name: "taken",
          vault: "kv-fields",
          certificate: "taken",
          source: { cert: w.path("taken.crt"), key: w.path("taken.key") },
        },
        {
          name: "refused",
          vault: "kv-fields",
          certificate: "refused",
          source: { cert: w.path("refused.crt"), key: w.path("refused.key") },
        },
      ]),
      e,
    )
    for (const [name, leaf] of [
      ["taken", taken],
      ["refused", refused],
    ] as const) {
      const line = await a.waitFor((l) => l.deployment === name && l.msg.startsWith("deploy:"))
      expect(line.msg).toMatch(/^deploy: (Rejected|Failed)$/)
      expect(leaf.x5t).toMatch(/^[A-Za-z0-9_-]{27}$/)
      expect(line.newX5t).toBe(leaf.x5t)
      expect(line.versionId).toBeUndefined()
      expect(e.state.versions("kv-fields", name)?.some((v) => v.x5t === leaf.x5t) ?? false).toBe(false)
    }
    expect(logs).not.toContain("a `deploy:` line names the version it wrote `newX5t`")
    expect(logs).toContain(
      "`newX5t` (on every `deploy:` line, whatever its outcome: the x5t of the source's certificate, the one the deploy writes or would have written",
    )
    expect(logs).toContain("a `Failed` or `Rejected` line wrote nothing, and its `versionId` is absent")
  })
})
