/**
 * `kvdeploy deploy` and `kvdeploy doctor` (the built CLI) against an emulated vault of another
 * Entra tenant than the credential's: what the operator reads says that the tenants differ, names
 * both, and what to do (an identity of the vault's tenant, or that tenant allowed with
 * AZURE_ADDITIONALLY_ALLOWED_TENANTS), not to check a client secret that is fine. With the tenant
 * allowed, the same command deploys.
 */
import { type Emulator, start } from "@kvdeploy/kv-emulator"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { json, runCli, startWorld, type World } from "./harness.js"

const VAULT = "cli-other-tenant"
const VAULT_TENANT = "11111111-2222-3333-4444-555555555555"
let world: World
let emulator: Emulator
let fx: Fixtures

beforeAll(async () => {
  // The world's temporary files; the vault is another emulator's, of another tenant.
  world = await startWorld("cli-home-tenant")
  emulator = await start({
    vaults: [{ name: VAULT, tenantId: VAULT_TENANT }],
    throttling: false,
    warn: () => {},
  })
  fx = await makeFixtures()
}, 60_000)
afterAll(async () => {
  await emulator?.stop()
  await world?.stop()
})

const targetFile = (name: string) =>
  world.file(`${name}.json`, JSON.stringify(emulator.targetConfig(VAULT, name, "clientSecret")))

interface Check {
  readonly check: string
  readonly status: string
  readonly detail: string
  readonly fix?: string
}

describe("a vault in another tenant than the credential's", () => {
  it("deploy: Failed (1), the reason names both tenants and the fix, the next step is not the secret; nothing written", async () => {
    const name = "other-tenant"
    const bundle = fx.bundle(await fx.leaf())
    const text = await runCli(["deploy", "--config", targetFile(name), "--cert", "-"], {
      env: emulator.env.clientSecret,
      stdin: bundle,
    })
    expect(text.code, text.stdout + text.stderr).toBe(1)
    expect(text.stdout).toContain(
      `the vault is in tenant ${VAULT_TENANT} (its challenge names it), not the credential's tenant ${emulator.tenantId} (AZURE_TENANT_ID)`,
    )
    expect(text.stdout).toContain(`AZURE_ADDITIONALLY_ALLOWED_TENANTS=${VAULT_TENANT}`)
    const next = text.stdout.split("\n").find((l) => l.trimStart().startsWith("next")) ?? ""
    expect(next).toContain("the vault is in another tenant than the credential's")
    expect(next).not.toContain("AZURE_CLIENT_SECRET")
    const outcome = json<{ outcome: string; refusal?: string; unsent?: boolean; reason: string }>(
      await runCli(["deploy", "--config", targetFile(name), "--cert", "-", "--json"], {
        env: emulator.env.clientSecret,
        stdin: bundle,
      }),
    )
    expect(outcome.outcome).toBe("Failed")
    expect(outcome.refusal).toBe("tenant")
    expect(outcome.unsent).toBe(true)
    expect(emulator.state.versions(VAULT, name)).toBeUndefined()
  })

  it("doctor: certificates/get fails naming both tenants and the fix, reachable and the later checks are skipped (1)", async () => {
    const r = await runCli(["doctor", "--config", targetFile("doctor-tenant"), "--json"], {
      env: emulator.env.clientSecret,
    })
    expect(r.code, r.stdout).toBe(1)
    const checks = json<{ checks: Array<Check> }>(r).checks
    const byName = (check: string) => checks.find((c) => c.check === check)
    expect(byName("token")?.status).toBe("pass")
    expect(byName("reachable")?.status).toBe("skip")
    const get = byName("certificates/get")
    expect(get?.status).toBe("fail")
    expect(get?.detail).toContain(
      `the vault is in tenant ${VAULT_TENANT} (its challenge names it), not the credential's tenant ${emulator.tenantId}`,
    )
    expect(get?.fix).toContain("AZURE_ADDITIONALLY_ALLOWED_TENANTS")
    expect(get?.fix).not.toContain("AZURE_CLIENT_SECRET")
    for (const later of ["certificates/import", "certificates/list", "secrets/get"])
      expect(byName(later)?.status).toBe("skip")
  })

  it("with AZURE_ADDITIONALLY_ALLOWED_TENANTS naming the vault's tenant (client_secret): doctor is ready and the deploy succeeds", async () => {
    const name = "allowed-tenant"
    const env = { ...emulator.env.clientSecret, AZURE_ADDITIONALLY_ALLOWED_TENANTS: VAULT_TENANT }
    const doctor = await runCli(["doctor", "--config", targetFile(name)], { env })
    expect(doctor.code, doctor.stdout).toBe(0)
    const r = await runCli(["deploy", "--config", targetFile(name), "--cert", "-", "--json"], {
      env,
      stdin: fx.bundle(await fx.leaf()),
    })
    expect(json<{ outcome: string }>(r).outcome, r.stdout).toBe("Succeeded")
  })
})
