/**
 * A `deploy: Failed` line carries the vault error that failed it as every other line of a vault
 * error does (docs/agent.md, Logs): its `error` tag, the port `operation` that failed and the
 * deploy's `step`, as `kvdeploy deploy --json` says them. It said them only in the `reason`'s
 * words, so `select(.error == "VaultForbidden")` missed a lost certificates/import grant, and
 * likewise throttled imports, lost import answers and soft-deleted names.
 */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { agentRoot, type LogLine, perTestWorld, sdkFor, writeConfig } from "./harness.js"

const world = perTestWorld()
const logs = (() => {
  const page = readFileSync(join(agentRoot, "..", "..", "docs", "agent.md"), "utf8")
  const start = page.indexOf("\n## Logs\n")
  return page.slice(start, page.indexOf("\n## ", start + 1)).replace(/\s+/g, " ")
})()

describe("a deploy: Failed line", () => {
  it("carries the vault error's tag, the port operation that failed and the step (a refused, throttled or lost import, a soft-deleted name); a Succeeded line none", async () => {
    const { e, w, p } = await world.setUp(["kv-failed", "kv-throttled"])
    const vaultOf: Record<string, string> = {
      forbidden: "kv-failed",
      lost: "kv-failed",
      deleted: "kv-failed",
      fine: "kv-failed",
      throttled: "kv-throttled",
    }
    // The identity lost certificates/import on this certificate.
    e.faults.add({
      operation: "import",
      vault: "kv-failed",
      name: "forbidden",
      times: "always",
      action: { kind: "status", status: 403, code: "Forbidden", message: "Caller is not authorized" },
    })
    // The connection drops before the vault commits the import: its answer is lost, and the
    // version list then shows it did not take effect.
    e.faults.add({
      operation: "import",
      vault: "kv-failed",
      name: "lost",
      times: "always",
      action: { kind: "drop" },
    })
    // Its own vault: a 429 closes the vault's gate for the Retry-After.
    e.faults.add({
      operation: "import",
      vault: "kv-throttled",
      name: "throttled",
      times: "always",
      action: { kind: "throttle", retryAfterSeconds: 1 },
    })
    // Another writer's certificate, deleted: the import meets the soft-deleted name (on_soft_deleted: fail).
    await e.state.foreignImport("kv-failed", "deleted")
    await (
      await sdkFor(e, "kv-failed").beginDeleteCertificate("deleted", { intervalInMs: 50 })
    ).pollUntilDone()
    const deployments = []
    for (const [name, vault] of Object.entries(vaultOf)) {
      const leaf = await p.leaf(`${name}.example.test`)
      deployments.push({
        name,
        vault,
        certificate: name,
        source: { cert: w.write(`${name}.crt`, leaf.certPem), key: w.write(`${name}.key`, leaf.keyPem) },
      })
    }
    const a = world.run(writeConfig(w, e, deployments), e)
    const lineOf = (name: string) =>
      a.waitFor((l) => l.deployment === name && l.msg.startsWith("deploy:"), { timeoutMs: 45_000 })
    const expected: Record<string, Partial<LogLine>> = {
      forbidden: { error: "VaultForbidden", operation: "importVersion", step: "import" },
      throttled: { error: "VaultThrottled", operation: "importVersion", step: "import" },
      lost: { error: "VaultAmbiguous", operation: "importVersion", step: "reconcile" },
      deleted: { error: "VaultConflictSoftDeleted", operation: "importVersion", step: "soft-deleted" },
    }
    for (const [name, fields] of Object.entries(expected)) {
      const line = await lineOf(name)
      expect(line.msg, JSON.stringify(line)).toBe("deploy: Failed")
      expect({ error: line.error, operation: line.operation, step: line.step }, name).toEqual(fields)
    }
    // jq's select(.error == "VaultForbidden") finds the lost grant.
    expect(a.lines.filter((l) => l.error === "VaultForbidden").map((l) => l.deployment)).toContain(
      "forbidden",
    )
    const fine = await lineOf("fine")
    expect(fine.msg).toBe("deploy: Succeeded")
    expect([fine.error, fine.operation, fine.step]).toEqual([undefined, undefined, undefined])
    expect(logs).toContain(
      "a `deploy: Failed` line adds the `step` that failed (`snapshot`, `import`, `reconcile`, `soft-deleted`), as `kvdeploy deploy --json` does",
    )
  })

  it("an Unverified or RollbackFailed line a vault call ended carries that call's error, operation and step too; one no call ended none", async () => {
    const vault = "kv-ended"
    const { e, w, p } = await world.setUp([vault])
    // The agent's own comparison reads the latest first; the verify's reads after the import are refused.
    e.faults.add({
      operation: "getLatest",
      vault,
      name: "unread",
      skip: 1,
      times: "always",
      action: { kind: "status", status: 403, code: "Forbidden", message: "refused in this test" },
    })
    // Another writer's certificate, adopted: its import lands disabled (wrong), and the rollback's
    // read of the previous version's backing secret is refused.
    await e.state.foreignImport(vault, "unrestorable")
    for (const name of ["unrestorable", "first-wrong"])
      e.faults.add({ operation: "import", vault, name, times: 1, action: { kind: "disableAfterCommit" } })
    e.faults.add({
      operation: "getSecret",
      vault,
      name: "unrestorable",
      times: "always",
      action: { kind: "status", status: 403, code: "Forbidden", message: "refused in this test" },
    })
    const deployments = []
    for (const name of ["unread", "unrestorable", "first-wrong"]) {
      const leaf = await p.leaf(`${name}.example.test`)
      deployments.push({
        name,
        vault,
        certificate: name,
        ...(name === "unrestorable" ? { target: { adopt: true } } : {}),
        source: { cert: w.write(`${name}.crt`, leaf.certPem), key: w.write(`${name}.key`, leaf.keyPem) },
      })
    }
    const a = world.run(writeConfig(w, e, deployments), e)
    const lineOf = (name: string) =>
      a.waitFor((l) => l.deployment === name && l.msg.startsWith("deploy:"), { timeoutMs: 45_000 })
    const expected: Record<string, readonly [string, Partial<LogLine>]> = {
      unread: ["deploy: Unverified", { error: "VaultForbidden", operation: "getLatest", step: "verify" }],
      unrestorable: [
        "deploy: RollbackFailed",
        { error: "VaultForbidden", operation: "getVersionSecret", step: "rollback" },
      ],
      // A first deploy has nothing to restore: no call failed, so none is named.
      "first-wrong": ["deploy: RollbackFailed", { error: undefined, operation: undefined, step: undefined }],
    }
    for (const [name, [msg, fields]] of Object.entries(expected)) {
      const line = await lineOf(name)
      expect(line.msg, JSON.stringify(line)).toBe(msg)
      expect({ error: line.error, operation: line.operation, step: line.step }, name).toEqual(fields)
    }
    expect(a.lines.filter((l) => l.error === "VaultForbidden").map((l) => l.deployment)).toEqual(
      expect.arrayContaining(["unread", "unrestorable"]),
    )
    expect(logs).toContain(
      "an `Unverified` or `RollbackFailed` line whose outcome a call's error ended carries the same three",
    )
  })
})
