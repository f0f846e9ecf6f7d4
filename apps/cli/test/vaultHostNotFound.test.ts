/**
 * A vault URL whose host does not resolve (a mistyped vault name): the report names vault_url and
 * what to check (the vault's name, the cloud's vault suffix, DNS), not only "could not be reached".
 * A `.invalid` name never resolves (RFC 6761).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeFixtures } from "./fixtures.js"
import { json, runCli, startWorld, type World } from "./harness.js"

let world: World
let target = ""
let cert = ""
let key = ""
beforeAll(async () => {
  world = await startWorld("kv-host-not-found")
  const fixtures = await makeFixtures()
  const leaf = await fixtures.leaf()
  cert = world.file("leaf.pem", leaf.certPem + fixtures.chainOf(leaf))
  key = world.file("leaf.key", leaf.keyPem)
  const { cloud } = world.emulator.targetConfig(world.vault, "typo", "clientSecret") as {
    cloud: Record<string, unknown>
  }
  // A custom cloud whose vault suffix is .vault.invalid: the URL passes validation, and its host never resolves.
  target = world.targetFile("typo", {
    vault_url: "https://kvdeploy-no-such-vualt.vault.invalid",
    cloud: { ...cloud, vault_dns_suffix: "vault.invalid" },
  })
})
afterAll(async () => world?.stop())

const namesVaultUrlAndFix = (text: string) => {
  expect(text).toContain("check the vault's name in vault_url for a typo")
  expect(text).toContain("ENOTFOUND kvdeploy-no-such-vualt.vault.invalid")
  expect(text).toContain("nothing was sent")
  expect(text).toMatch(/the vault's name.*suffix.*DNS.*`kvdeploy doctor`/s)
}

describe("a vault host that does not resolve", () => {
  it("versions: the problem's field is vault_url, its fix the vault's name, the cloud's suffix and DNS (1)", async () => {
    const r = await runCli(["versions", "--config", target, "--json"], { env: world.env })
    expect(r.code, r.stdout + r.stderr).toBe(1)
    const problem = json<{ error: { title: string; problems: Array<Record<string, string>> } }>(r).error
    expect(problem.problems[0]?.field).toBe("vault_url")
    expect(problem.problems[0]?.message).toContain("the vault's host name was not found")
    namesVaultUrlAndFix(problem.title)
    expect(problem.problems[0]?.fix).toMatch(
      /vault's name in vault_url.*vault suffix.*vault_dns_suffix.*DNS.*`kvdeploy doctor`/s,
    )
  }, 60_000)

  it("deploy: the Failed outcome's reason names vault_url and the fix (1)", async () => {
    const r = await runCli(["deploy", "--config", target, "--cert", cert, "--key", key, "--json"], {
      env: world.env,
    })
    expect(r.code, r.stdout + r.stderr).toBe(1)
    const outcome = json<{ outcome: string; reason: string }>(r)
    expect(outcome.outcome).toBe("Failed")
    namesVaultUrlAndFix(outcome.reason)
  }, 60_000)
})
