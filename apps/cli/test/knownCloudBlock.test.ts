/**
 * A target whose cloud block gives one known cloud's three endpoints is that known cloud, and the
 * BUILT kvdeploy says so: `validate` (text and --json) and `doctor`'s target check name the known
 * cloud and note that the block equals it, where they said "custom cloud". No vault is reached:
 * doctor stops at the credential, whose variables are not set.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { json, runCli } from "./harness.js"

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-known-cloud-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const targetFile = (name: string, cloud: Record<string, unknown>): string => {
  const path = join(dir, `${name}.json`)
  writeFileSync(
    path,
    JSON.stringify({
      vault_url: "https://my-vault.vault.azure.net",
      certificate_name: "api",
      credential_mode: "client_secret",
      cloud,
    }),
  )
  return path
}

const publicBlock = {
  vault_dns_suffix: "vault.azure.net",
  authority_host: "https://login.microsoftonline.com",
  keyvault_resource: "https://vault.azure.net",
}

describe("a cloud block equal to a known cloud", () => {
  it("validate --json: the target's cloud is the public cloud's, as without the block", async () => {
    const r = await runCli(["validate", targetFile("public", publicBlock), "--json"])
    expect(r.code, r.stderr).toBe(0)
    const parsed = json<{ valid: boolean; target: { cloud: Record<string, string> } }>(r)
    expect(parsed.valid).toBe(true)
    expect(parsed.target.cloud).toEqual({
      name: "AzurePublic",
      vaultDnsSuffix: "vault.azure.net",
      authorityHost: "https://login.microsoftonline.com",
      keyVaultResource: "https://vault.azure.net",
    })
  })

  it("validate: names the cloud, notes that the block equals it, an alias host and a label", async () => {
    const plain = await runCli(["validate", targetFile("plain", publicBlock)])
    expect(plain.code, plain.stderr).toBe(0)
    expect(plain.stdout).toContain(
      "vault            https://my-vault.vault.azure.net (AzurePublic: the cloud block's endpoints are the public cloud's)",
    )
    expect(plain.stdout).not.toContain("custom cloud")
    const alias = await runCli([
      "validate",
      targetFile("alias", { ...publicBlock, name: "corp", authority_host: "https://login.windows.net" }),
    ])
    expect(alias.code, alias.stderr).toBe(0)
    expect(alias.stdout).toContain(
      "(AzurePublic: the cloud block's endpoints are the public cloud's; authority_host https://login.windows.net is an alias of its https://login.microsoftonline.com; cloud.name \"corp\" is only a label)",
    )
    expect(alias.stdout).toMatch(/authority\s+https:\/\/login\.microsoftonline\.com\s/)
  })

  it("doctor: the target check names the known cloud (and stops at the unset credential variables)", async () => {
    const r = await runCli(["doctor", "--config", targetFile("doctor", publicBlock), "--json"])
    const checks = json<{ checks: Array<{ check: string; status: string; detail: string }> }>(r).checks
    expect(checks[0]).toMatchObject({
      check: "target",
      status: "pass",
      detail:
        "https://my-vault.vault.azure.net (AzurePublic: the cloud block's endpoints are the public cloud's), credential_mode client_secret",
    })
    expect(checks.find((c) => c.check === "credential")?.status).toBe("fail")
  })
})
