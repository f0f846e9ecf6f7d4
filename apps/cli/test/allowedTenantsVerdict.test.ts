/**
 * `kvdeploy doctor`'s `allowed tenants` check gives one verdict on AZURE_ADDITIONALLY_ALLOWED_TENANTS.
 * A tenant's domain name (`contoso.onmicrosoft.com`) allows nothing: @azure/identity checks no entry
 * of the list and compares each with the tenant id a vault's challenge names, as text. doctor printed
 * a `pass` naming the domain as allowed and then a `warn` saying it allows nothing; it now says once,
 * as a warning, what is allowed and how to fix the value. Against the emulator, with the built CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type DoctorCheck, json, runCli, startWorld, type World } from "./harness.js"

let world: World
const TENANT_ID = "11111111-2222-3333-4444-5555555555ab"

beforeAll(async () => {
  world = await startWorld("cli-allowed-verdict")
}, 60_000)
afterAll(async () => {
  await world?.stop()
})

type Check = DoctorCheck

const doctor = async (value: string, asJson: boolean) =>
  runCli(["doctor", "--config", world.targetFile("allowed-verdict"), ...(asJson ? ["--json"] : [])], {
    env: { ...world.env, AZURE_ADDITIONALLY_ALLOWED_TENANTS: value },
  })

const allowedChecks = async (value: string): Promise<ReadonlyArray<Check>> =>
  json<{ checks: Array<Check> }>(await doctor(value, true)).checks.filter(
    (c) => c.check === "allowed tenants",
  )

describe("doctor: the allowed tenants check", () => {
  it("a domain name: one warning that says it allows nothing and to give the tenant id; not listed as allowed", async () => {
    const checks = await allowedChecks("contoso.onmicrosoft.com")
    expect(checks).toHaveLength(1)
    expect(checks[0]).toMatchObject({ status: "warn", tenants: [] })
    expect(checks[0]?.detail).toContain("names contoso.onmicrosoft.com, which is not a tenant id (a GUID)")
    expect(checks[0]?.detail).toContain("allows nothing")
    expect(checks[0]?.detail).toMatch(/Allowed: none: tokens of its own tenant \(.*\) only/)
    expect(checks[0]?.fix).toMatch(/^Replace contoso.onmicrosoft.com with the tenant's id \(a GUID/)
    // The text output: one line for the check, a warning, with its fix under it.
    const text = await doctor("contoso.onmicrosoft.com", false)
    const lines = text.stdout.split("\n").filter((l) => / allowed tenants /.test(l))
    expect(lines, text.stdout).toHaveLength(1)
    expect(lines[0]).toMatch(/^ {2}warn {2}allowed tenants/)
    expect(text.stdout).toMatch(/fix: Replace contoso.onmicrosoft.com with the tenant's id/)
  })

  it("a tenant id beside a domain name: the id is allowed, the domain name warned of, in the one check", async () => {
    const checks = await allowedChecks(`${TENANT_ID};contoso.onmicrosoft.com`)
    expect(checks).toHaveLength(1)
    expect(checks[0]).toMatchObject({ status: "warn", tenants: [TENANT_ID] })
    expect(checks[0]?.detail).toContain(`Allowed: ${TENANT_ID} (AZURE_ADDITIONALLY_ALLOWED_TENANTS)`)
    expect(checks[0]?.detail).not.toMatch(/Allowed: .*contoso/)
  })

  it("a tenant id alone: one pass that lists it", async () => {
    const checks = await allowedChecks(TENANT_ID.toUpperCase())
    expect(checks).toEqual([expect.objectContaining({ status: "pass", tenants: [TENANT_ID] })])
  })
})
