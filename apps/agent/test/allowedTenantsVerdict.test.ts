/**
 * `kvdeploy-agent --check` on AZURE_ADDITIONALLY_ALLOWED_TENANTS naming a tenant's domain name: the
 * domain name allows nothing (@azure/identity compares each entry, as text, with the tenant id a
 * vault's challenge names), so the check does not list it as an allowed tenant; it warns once,
 * naming it, with the fix (the tenant's id). It listed the domain name as allowed and then warned
 * that it allows nothing.
 */
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { agent, example, exampleEnv, inScratch } from "./checkFixtures.js"

const TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"

describe("kvdeploy-agent --check: a domain name in AZURE_ADDITIONALLY_ALLOWED_TENANTS", () => {
  it("is not shown as allowed; one warning names it and says to give the tenant id", () =>
    inScratch((dir) => {
      const config = join(dir, "agent.yaml")
      writeFileSync(config, readFileSync(example))
      const check = (value: string, json: boolean) =>
        agent(["--config", config, "--check", ...(json ? ["--json"] : [])], {
          ...exampleEnv,
          AZURE_ADDITIONALLY_ALLOWED_TENANTS: value,
        })
      const text = check("contoso.onmicrosoft.com", false)
      expect(text.status, text.stderr).toBe(0)
      expect(text.stdout).toContain(
        "allowed tenants (workload_identity): none: tokens of its own tenant only (AZURE_ADDITIONALLY_ALLOWED_TENANTS names no tenant id)",
      )
      expect(text.stdout).not.toContain("contoso")
      // Said once, on stderr with the other warnings, with its fix.
      expect(text.stderr.match(/contoso\.onmicrosoft\.com, which is not a tenant id/g)).toHaveLength(1)
      expect(text.stderr).toMatch(/fix: Replace contoso\.onmicrosoft\.com with the tenant's id \(a GUID/)

      const json = check(`${TENANT_ID};contoso.onmicrosoft.com`, true)
      expect(json.status, json.stderr).toBe(0)
      const document = JSON.parse(json.stdout) as {
        allowedTenants: unknown
        warnings: Array<{ field: string; message: string; fix: string }>
      }
      expect(document.allowedTenants).toEqual({ modes: ["workload_identity"], tenants: [TENANT_ID] })
      expect(document.warnings.filter((w) => w.field === "AZURE_ADDITIONALLY_ALLOWED_TENANTS")).toEqual([
        {
          field: "AZURE_ADDITIONALLY_ALLOWED_TENANTS",
          message: expect.stringMatching(
            /^names contoso\.onmicrosoft\.com, which is not a tenant id .*allows nothing/,
          ),
          fix: expect.stringMatching(/^Replace contoso\.onmicrosoft\.com with the tenant's id/),
        },
      ])
    }))
})
