/**
 * A source file that does not exist: the running agent's `source broken` line gives the fix
 * `--check` gives for it (a mistyped path, or a certificate not issued yet), not only the fact.
 */
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { agent as check } from "./checkFixtures.js"
import { perTestWorld, writeConfig } from "./harness.js"

const world = perTestWorld()

describe("a source file that does not exist", () => {
  it("is source broken at runtime with the fix --check gives: a mistyped path, or not issued yet", async () => {
    const { e, w, p } = await world.setUp(["kv-missing"])
    const leaf = await p.leaf("typo.example.test")
    w.write("typo.crt", leaf.certPem)
    w.write("typo.key", leaf.keyPem)
    // The cert's file name mistyped (`typo.cert`), the key's directory (`tpyo/`).
    const cert = w.path("typo.cert")
    const key = w.path(join("tpyo", "typo.key"))
    const config = writeConfig(w, e, [
      { name: "typo", vault: "kv-missing", certificate: "typo", source: { cert, key } },
    ])
    const checked = check(["--config", config, "--check", "--json"])
    const warnings = (JSON.parse(checked.stdout) as { warnings: Array<{ field: string; fix: string }> })
      .warnings
    const fixOf = (field: string) => warnings.find((x) => x.field === field)?.fix
    expect(fixOf("deployments[0].source.cert")).toMatch(/^if the path is mistyped, correct it/)
    expect(fixOf("deployments[0].source.key")).toMatch(/^a missing directory is likelier a mistyped path/)

    const a = world.run(config, e)
    const broken = await a.waitFor((l) => l.deployment === "typo" && l.msg.startsWith("source broken"))
    expect(broken.problems).toEqual([
      `cert ${cert} does not exist; fix: ${fixOf("deployments[0].source.cert")}`,
      `key ${key} does not exist, nor does the directory ${w.path("tpyo")} (${w.dir} exists); fix: ${fixOf("deployments[0].source.key")}`,
    ])
    expect(e.state.versions("kv-missing", "typo")).toBeUndefined()
  })
})
