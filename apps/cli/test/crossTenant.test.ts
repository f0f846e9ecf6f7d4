/**
 * `kvdeploy deploy` and `kvdeploy doctor` (the built CLI) against an emulated vault of another
 * Entra tenant than the credential's: what the operator reads says that the tenants differ, names
 * both, and what to do (an identity of the vault's tenant, or that tenant allowed with
 * AZURE_ADDITIONALLY_ALLOWED_TENANTS), not to check a client secret that is fine. With the tenant
 * allowed, the same command deploys.
 */
import type { Emulator } from "@kvdeploy/kv-emulator"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { type DoctorCheck, json, runCli, startEmulator, startWorld, type World } from "./harness.js"

const VAULT = "cli-other-tenant"
// With letters: the upper-case case below needs them.
const VAULT_TENANT = "11111111-2222-3333-4444-5555555555ab"
let world: World
let emulator: Emulator
let fx: Fixtures

beforeAll(async () => {
  // The world's temporary files; the vault is another emulator's, of another tenant.
  world = await startWorld("cli-home-tenant")
  // The application is multi-tenant, provisioned in the vault's tenant: allowing that tenant lets
  // it get tokens there (the refusals below come from the credential, or from a token of its own tenant).
  emulator = await startEmulator({
    vaults: [{ name: VAULT, tenantId: VAULT_TENANT }],
    appTenants: [VAULT_TENANT],
  })
  fx = await makeFixtures()
}, 60_000)
afterAll(async () => {
  await emulator?.stop()
  await world?.stop()
})

const targetFile = (name: string) =>
  world.file(`${name}.json`, JSON.stringify(emulator.targetConfig(VAULT, name, "clientSecret")))

type Check = DoctorCheck

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

  it("with the tenant allowed but the application not provisioned there (AADSTS700016): Failed (1), refusal tenant, the reason says to provision it, not to check AZURE_CLIENT_ID", async () => {
    const env = { ...emulator.env.clientSecret, AZURE_ADDITIONALLY_ALLOWED_TENANTS: VAULT_TENANT }
    emulator.tenancy.withdraw(emulator.clientSecret.clientId, VAULT_TENANT)
    try {
      const r = await runCli(["deploy", "--config", targetFile("unprovisioned"), "--cert", "-", "--json"], {
        env,
        stdin: fx.bundle(await fx.leaf()),
      })
      expect(r.code, r.stdout).toBe(1)
      const outcome = json<{
        outcome: string
        refusal?: string
        unsent?: boolean
        next?: string
        reason: string
      }>(r)
      expect(outcome.outcome).toBe("Failed")
      expect(outcome.refusal).toBe("tenant")
      expect(outcome.unsent).toBe(true)
      expect(outcome.reason).toContain(
        `Entra ID found no application of this client id in tenant ${VAULT_TENANT}, the vault's`,
      )
      expect(outcome.reason).toContain(
        "either the application has no service principal in the vault's tenant",
      )
      expect(outcome.reason).toContain("or AZURE_CLIENT_ID is not the application's id")
      expect(outcome.reason).toContain(`provision the application in tenant ${VAULT_TENANT}`)
      expect(outcome.reason).not.toContain("AZURE_ADDITIONALLY_ALLOWED_TENANTS")
      expect(outcome.reason).not.toContain("Check AZURE_CLIENT_ID and AZURE_TENANT_ID")
      expect(outcome.next).toContain("give it a service principal there")
      expect(outcome.next).toContain("AZURE_CLIENT_ID may be wrong instead: check it")
      expect(emulator.state.versions(VAULT, "unprovisioned")).toBeUndefined()
    } finally {
      emulator.tenancy.provision(emulator.clientSecret.clientId, VAULT_TENANT)
    }
  })

  it("with the tenant allowed but AZURE_IDENTITY_DISABLE_MULTITENANTAUTH set: doctor says the list changes nothing, and the vault's refusal says to unset it (1)", async () => {
    const env = {
      ...emulator.env.clientSecret,
      AZURE_ADDITIONALLY_ALLOWED_TENANTS: VAULT_TENANT,
      AZURE_IDENTITY_DISABLE_MULTITENANTAUTH: "true",
    }
    const r = await runCli(["doctor", "--config", targetFile("doctor-disabled"), "--json"], { env })
    expect(r.code, r.stdout).toBe(1)
    const checks = json<{ checks: Array<Check> }>(r).checks
    expect(checks.filter((c) => c.check === "allowed tenants")).toEqual([
      expect.objectContaining({
        status: "warn",
        detail: expect.stringContaining(
          `the list changes nothing and a vault in another tenant refuses the token. Allowed: none: tokens of its own tenant (${emulator.tenantId}) only, whatever a vault's challenge names (AZURE_IDENTITY_DISABLE_MULTITENANTAUTH is set)`,
        ),
        fix: expect.stringMatching(/^Unset AZURE_IDENTITY_DISABLE_MULTITENANTAUTH/),
        tenants: [],
      }),
    ])
    // @azure/identity asked its own tenant: the vault refused that token, naming both tenants.
    const get = checks.find((c) => c.check === "certificates/get")
    expect(get?.status).toBe("fail")
    expect(get?.detail).toContain(`the vault is in tenant ${VAULT_TENANT}`)
    // The reason carries the fix in full (the next step, one text per refusal, says it names both).
    expect(get?.detail).toContain("unset AZURE_IDENTITY_DISABLE_MULTITENANTAUTH, which is set here")
    const deploy = await runCli(
      ["deploy", "--config", targetFile("deploy-disabled"), "--cert", "-", "--json"],
      {
        env,
        stdin: fx.bundle(await fx.leaf()),
      },
    )
    const outcome = json<{ outcome: string; refusal?: string; next?: string; reason: string }>(deploy)
    expect(outcome.outcome, deploy.stdout).toBe("Failed")
    expect(outcome.refusal).toBe("tenant")
    expect(outcome.reason).toContain("unset AZURE_IDENTITY_DISABLE_MULTITENANTAUTH, which is set here")
    // The next step says it too: allowing the tenant alone cannot work while the variable is set.
    const text = await runCli(["deploy", "--config", targetFile("deploy-disabled"), "--cert", "-"], {
      env,
      stdin: fx.bundle(await fx.leaf()),
    })
    expect(text.code, text.stdout).toBe(1)
    const next = text.stdout.split("\n").find((l) => l.trimStart().startsWith("next")) ?? ""
    expect(next).toContain("AZURE_ADDITIONALLY_ALLOWED_TENANTS")
    expect(next).toContain("unset AZURE_IDENTITY_DISABLE_MULTITENANTAUTH")
    // And doctor's fix, the same text.
    expect(get?.fix).toContain("unset AZURE_IDENTITY_DISABLE_MULTITENANTAUTH")
    expect(emulator.state.versions(VAULT, "deploy-disabled")).toBeUndefined()
  })

  it("doctor shows the tenants the mode reads from AZURE_ADDITIONALLY_ALLOWED_TENANTS, and warns of a value that allows less than it seems, as the vault's read shows (1)", async () => {
    type Listed = Check & { readonly tenants?: ReadonlyArray<string> | "*" }
    const doctor = async (value: string | undefined) => {
      const r = await runCli(["doctor", "--config", targetFile("doctor-allowed"), "--json"], {
        env: {
          ...emulator.env.clientSecret,
          ...(value === undefined ? {} : { AZURE_ADDITIONALLY_ALLOWED_TENANTS: value }),
        },
      })
      const checks = json<{ checks: Array<Listed> }>(r).checks
      return {
        code: r.code,
        allowed: checks.filter((c) => c.check === "allowed tenants"),
        get: checks.find((c) => c.check === "certificates/get"),
      }
    }
    const unset = await doctor(undefined)
    expect(unset.allowed).toEqual([
      {
        check: "allowed tenants",
        status: "pass",
        detail: `none: tokens of its own tenant (${emulator.tenantId}) only (AZURE_ADDITIONALLY_ALLOWED_TENANTS is not set)`,
        tenants: [],
      },
    ])
    // Empty entries and spaces around the id: left out and trimmed, so the vault's tenant is allowed;
    // the one check warns of the empty entries and says what is allowed.
    const padded = await doctor(`; ${VAULT_TENANT} ;`)
    expect(padded.code).toBe(0)
    expect(padded.allowed).toEqual([
      expect.objectContaining({
        status: "warn",
        detail: expect.stringMatching(
          new RegExp(
            `has 2 empty entries.*Allowed: ${VAULT_TENANT} \\(AZURE_ADDITIONALLY_ALLOWED_TENANTS\\), besides its own tenant \\(${emulator.tenantId}\\)$`,
          ),
        ),
        tenants: [VAULT_TENANT],
      }),
    ])
    const any = await doctor("*")
    expect(any.code).toBe(0)
    expect(any.allowed).toEqual([expect.objectContaining({ status: "pass", tenants: "*" })])
    // The id in upper case is the same tenant: given to the credential in lower case, as the
    // challenge names it, so the vault's tenant is allowed (@azure/identity compares letter for letter).
    const upper = await doctor(VAULT_TENANT.toUpperCase())
    expect(upper.code).toBe(0)
    expect(upper.allowed).toEqual([expect.objectContaining({ status: "pass", tenants: [VAULT_TENANT] })])
    // A domain name: @azure/identity compares it with the challenge's id as text, and refuses the
    // vault's tenant: the warning says so before the read does.
    const domain = await doctor("other.onmicrosoft.com")
    expect(domain.code).toBe(1)
    expect(domain.allowed).toEqual([
      expect.objectContaining({
        status: "warn",
        detail: expect.stringContaining("allows nothing"),
        tenants: [],
      }),
    ])
    expect(domain.get?.detail).toContain(`the vault is in tenant ${VAULT_TENANT}`)
    // managed_identity does not read it: said when it is set, nothing when it is not.
    const managed = world.file(
      "doctor-allowed-mi.json",
      JSON.stringify(world.emulator.targetConfig(world.vault, "doctor-allowed-mi", "managedIdentityImds")),
    )
    const mi = await runCli(["doctor", "--config", managed, "--json"], {
      env: { ...world.emulator.env.managedIdentityImds, AZURE_ADDITIONALLY_ALLOWED_TENANTS: VAULT_TENANT },
    })
    expect(json<{ checks: Array<Listed> }>(mi).checks.filter((c) => c.check === "allowed tenants")).toEqual([
      expect.objectContaining({
        status: "skip",
        detail: expect.stringMatching(/^not read: .*credential_mode managed_identity does not read it/),
      }),
    ])
    const miUnset = await runCli(["doctor", "--config", managed, "--json"], {
      env: world.emulator.env.managedIdentityImds,
    })
    expect(json<{ checks: Array<Listed> }>(miUnset).checks.map((c) => c.check)).not.toContain(
      "allowed tenants",
    )
  })
})
