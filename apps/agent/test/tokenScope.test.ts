/**
 * Two deployments whose clouds share an authority but not a Key Vault resource (the public cloud
 * and Azure Stack Hub on Entra ID, say) each get a credential for their own resource: a credential
 * gives tokens for its cloud's resource only, so one shared by both would serve one and refuse the
 * other, whichever came first.
 */
import { describe, expect, it } from "vitest"
import { perTestWorld, writeConfig } from "./harness.js"

const world = perTestWorld()

describe("credentials per Key Vault resource", () => {
  it("a deployment whose cloud names another resource is refused a token; the other deploys", async () => {
    const vault = "kv-scopes"
    const { e, w, p } = await world.setUp([vault])
    const deployment = async (name: string, target?: Record<string, unknown>) => {
      const leaf = await p.leaf(`${name}.example.test`)
      w.write(`${name}.key`, leaf.keyPem)
      w.write(`${name}.crt`, leaf.certPem)
      return {
        name,
        vault,
        certificate: name,
        source: { cert: w.path(`${name}.crt`), key: w.path(`${name}.key`) },
        ...(target === undefined ? {} : { target }),
      }
    }
    const cloud = e.targetConfig(vault, "x", "clientSecret").cloud as Record<string, unknown>
    // The other cloud first in the file: its deployment asks for a credential first.
    const config = writeConfig(w, e, [
      await deployment("elsewhere", {
        cloud: { ...cloud, keyvault_resource: "https://vault.elsewhere.example" },
      }),
      await deployment("here"),
    ])
    const a = world.run(config, e)
    const here = await a.waitFor((l) => l.deployment === "here" && l.msg.startsWith("deploy:"), {
      timeoutMs: 30_000,
    })
    expect(here.msg).toBe("deploy: Succeeded")
    const refused = await a.waitFor(
      (l) => l.deployment === "elsewhere" && JSON.stringify(l).includes("kvdeploy asks for tokens for"),
      { timeoutMs: 30_000 },
    )
    expect(JSON.stringify(refused)).toContain("https://vault.elsewhere.example/.default only")
    expect(e.state.versions(vault, "elsewhere")).toBeUndefined()
  })
})
