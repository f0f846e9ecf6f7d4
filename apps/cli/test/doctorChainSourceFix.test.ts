/**
 * doctor under credential_mode default, without the emulator: what the chain's credential line says
 * of the clouds its sources ask, and the fixes of sources kvdeploy knows more about than their own
 * words (chainSourceFix, given the target's cloud here): a service principal without its tenant, an
 * Azure CLI signed in to another cloud than the vault's (a fake `az` that answers as the real one
 * does then), and a failure no rule names (a certificate file that does not exist), whose words doctor
 * shows instead of sending its reader to doctor.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { json, runCli } from "./harness.js"

type Check = { check: string; status: string; detail: string; fix?: string; credential?: string | null }

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-chain-fix-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const target = (name: string, vaultUrl: string) => {
  const path = join(dir, `${name}.json`)
  writeFileSync(
    path,
    JSON.stringify({ vault_url: vaultUrl, certificate_name: "a", credential_mode: "default" }),
  )
  return path
}
const doctor = async (config: string, env: Record<string, string>) => {
  const r = await runCli(["doctor", "--config", config, "--json"], { env })
  expect(r.code, r.stdout + r.stderr).toBe(1)
  return json<{ checks: Array<Check> }>(r).checks
}

describe("doctor, default chain: fixes by what the source was given", () => {
  it("a client secret and client id without AZURE_TENANT_ID: the environment source's line names AZURE_TENANT_ID", async () => {
    const checks = await doctor(target("public", "https://myvault.vault.azure.net"), {
      AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
      AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000001",
      AZURE_CLIENT_SECRET: "not-a-real-secret-0123456789",
    })
    const source = checks.find((c) => c.check === "chain source" && c.credential === "EnvironmentCredential")
    expect(source?.fix).toMatch(
      /^EnvironmentCredential needs AZURE_TENANT_ID beside AZURE_CLIENT_ID, AZURE_CLIENT_SECRET/,
    )
    expect(JSON.stringify(checks)).not.toContain("not-a-real-secret-0123456789")
  })

  it("the Azure CLI signed in to the public cloud, the vault in US Government: the credential line and the fix say the tool's cloud", async () => {
    const bin = join(dir, "bin")
    const az = join(bin, "az")
    rmSync(bin, { recursive: true, force: true })
    mkdirSync(bin)
    writeFileSync(
      az,
      '#!/bin/sh\necho "ERROR: AADSTS500011: The resource principal named https://vault.usgovcloudapi.net was not found in the tenant named Contoso. Trace ID: 1 Correlation ID: 2" >&2\nexit 1\n',
    )
    chmodSync(az, 0o755)
    const checks = await doctor(target("gov", "https://myvault.vault.usgovcloudapi.net"), {
      AZURE_TOKEN_CREDENTIALS: "AzureCliCredential",
      PATH: `${bin}:${process.env.PATH ?? ""}`,
    })
    expect(checks.find((c) => c.check === "credential")?.detail).toMatch(/in the tool's own active cloud/)
    const source = checks.find((c) => c.check === "chain source" && c.credential === "AzureCliCredential")
    expect(source?.detail).toMatch(/AADSTS500011/)
    expect(source?.fix).toMatch(/az cloud set --name AzureUSGovernment/)
  })

  it("a certificate file that holds no certificate: the token check shows the library's words, and does not send doctor to itself", async () => {
    const notACertificate = join(dir, "not-a-certificate.pem")
    writeFileSync(notACertificate, "not a certificate\n")
    const checks = await doctor(target("public-cert", "https://myvault.vault.azure.net"), {
      AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
      AZURE_TENANT_ID: "00000000-0000-0000-0000-000000000002",
      AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000001",
      AZURE_CLIENT_CERTIFICATE_PATH: notACertificate,
    })
    const token = checks.find((c) => c.check === "token")
    expect(token?.status).toBe("fail")
    expect(token?.detail).toMatch(
      /the token request failed: .*The file at the specified path does not contain a PEM-encoded certificate/,
    )
    expect(token?.fix).not.toMatch(/kvdeploy doctor/)
  })

  it("a certificate file that does not exist: the credential check names it and AZURE_CLIENT_CERTIFICATE_PATH (a stat, before the library reads it)", async () => {
    const checks = await doctor(target("public-cert-missing", "https://myvault.vault.azure.net"), {
      AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
      AZURE_TENANT_ID: "00000000-0000-0000-0000-000000000002",
      AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000001",
      AZURE_CLIENT_CERTIFICATE_PATH: join(dir, "no-such-certificate.pem"),
    })
    const credential = checks.find((c) => c.check === "credential")
    expect(credential?.status).toBe("fail")
    expect(credential?.detail).toBe(
      `the client certificate file ${join(dir, "no-such-certificate.pem")} (AZURE_CLIENT_CERTIFICATE_PATH) cannot be read: no such file or directory (ENOENT)`,
    )
  })
})

describe("doctor: AZURE_AUTHORITY_HOST of another cloud than the target's", () => {
  it("the identity line notes that it is not used and the target's authority is", async () => {
    const checks = await doctor(target("public-authority", "https://myvault.vault.azure.net"), {
      AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
      AZURE_AUTHORITY_HOST: "https://login.microsoftonline.us",
    })
    expect(checks.find((c) => c.check === "identity")?.detail).toMatch(
      /; AZURE_AUTHORITY_HOST \(https:\/\/login\.microsoftonline\.us\) is not used: kvdeploy gives the credential the target's cloud's authority \(https:\/\/login\.microsoftonline\.com\)$/,
    )
  })
})
