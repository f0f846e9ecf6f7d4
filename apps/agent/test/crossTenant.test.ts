/**
 * The agent (built) deploying to a vault of another Entra tenant than its credential's: its log
 * says that the tenants differ, names both, and what to do, as the CLI's reason does (the same
 * adapter's words); nothing is written.
 */
import { describe, expect, it } from "vitest"
import { perTestWorld, writeConfig } from "./harness.js"

const world = perTestWorld()
const VAULT_TENANT = "11111111-2222-3333-4444-555555555555"

describe("a vault in another tenant", () => {
  it("the agent's no-token line names the vault's tenant and the credential's, and the fix", async () => {
    const vault = "kv-other-tenant"
    const { e, w, p } = await world.setUp([{ name: vault, tenantId: VAULT_TENANT }])
    const leaf = await p.leaf("tenant.example.test")
    w.write("tenant.key", leaf.keyPem)
    w.write("tenant.crt", leaf.certPem)
    const config = writeConfig(w, e, [
      {
        name: "tenant",
        vault,
        certificate: "tenant",
        source: { cert: w.path("tenant.crt"), key: w.path("tenant.key") },
      },
    ])
    const a = world.run(config, e)
    const line = await a.waitFor(
      (l) => l.deployment === "tenant" && l.msg.startsWith("no token for the vault"),
      {
        timeoutMs: 30_000,
      },
    )
    const logged = JSON.stringify(line)
    expect(logged).toContain(
      `the vault is in tenant ${VAULT_TENANT} (its challenge names it), not the credential's tenant ${e.tenantId} (AZURE_TENANT_ID)`,
    )
    expect(logged).toContain(`AZURE_ADDITIONALLY_ALLOWED_TENANTS=${VAULT_TENANT}`)
    expect(e.state.versions(vault, "tenant")).toBeUndefined()
  })
})
