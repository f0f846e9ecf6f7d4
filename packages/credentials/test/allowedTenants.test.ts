/**
 * AZURE_ADDITIONALLY_ALLOWED_TENANTS as kvdeploy gives it to the credential (split at `;`, trimmed,
 * empty entries left out) and what doctor and the agent's `--check` say of it: the list, `*`, or
 * none; and a warning for each part of a value that allows less than it seems to, by
 * @azure/identity's own comparison (letter for letter with the challenge's tenant id).
 */
import { describe, expect, it } from "@effect/vitest"
import {
  allowedTenantsInWords,
  parseAllowedTenants,
  readsAllowedTenants,
  shownAllowedTenants,
} from "../src/allowedTenants.js"

const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
const other = "00000000-0000-0000-0000-0000000000aa"

describe("parseAllowedTenants", () => {
  it("the list, * for any, or none; nothing to warn of for a clean value", () => {
    expect(parseAllowedTenants(undefined)).toEqual({ set: false, tenants: [], any: false, warnings: [] })
    // An empty value is unset for @azure/identity too.
    expect(parseAllowedTenants("")).toEqual({ set: false, tenants: [], any: false, warnings: [] })
    expect(parseAllowedTenants(`${tenant};${other}`)).toEqual({
      set: true,
      tenants: [tenant, other],
      any: false,
      warnings: [],
    })
    // Spaces around an entry are trimmed before the SDK compares it: no warning.
    expect(parseAllowedTenants(` ${tenant} `).tenants).toEqual([tenant])
    expect(parseAllowedTenants(" * ")).toMatchObject({ any: true, warnings: [] })
    // With * any tenant: what else is listed changes nothing, and is not judged.
    expect(parseAllowedTenants(`contoso.com;*`)).toMatchObject({ any: true, warnings: [] })
  })

  it("warns of spaces only, empty entries, a domain name and what is no tenant id; an id in upper case is given in lower case", () => {
    expect(parseAllowedTenants("   ").warnings).toEqual([
      expect.objectContaining({
        reason: expect.stringContaining("holds no tenant (only spaces or line breaks)"),
      }),
    ])
    expect(parseAllowedTenants(" ; ;").warnings).toEqual([
      expect.objectContaining({ reason: expect.stringContaining("holds no tenant (only ';' and spaces)") }),
    ])
    expect(parseAllowedTenants(`;${tenant};;`)).toMatchObject({
      tenants: [tenant],
      warnings: [{ reason: expect.stringContaining("has 3 empty entries") }],
    })
    // A tenant id in upper case is the same tenant: given to the credential in lower case, which is
    // how Key Vault's challenge names it (@azure/identity compares the two letter for letter).
    const upper = parseAllowedTenants(
      ` ${tenant.toUpperCase()};${tenant.slice(0, 9).toUpperCase()}${tenant.slice(9)}`,
    )
    expect(upper.tenants).toEqual([tenant, tenant])
    expect(upper.warnings).toEqual([])
    const domain = parseAllowedTenants("contoso.onmicrosoft.com")
    expect(domain.warnings).toEqual([
      expect.objectContaining({
        reason: expect.stringContaining("names contoso.onmicrosoft.com, which is not a tenant id"),
        fix: expect.stringMatching(/^Replace contoso.onmicrosoft.com with the tenant's id/),
      }),
    ])
    // It allows nothing (@azure/identity compares it with the challenge's tenant id as text): not
    // shown as allowed, in a list or in words.
    expect(shownAllowedTenants(domain)).toEqual([])
    expect(allowedTenantsInWords(domain)).toBe(
      "none: tokens of its own tenant only (AZURE_ADDITIONALLY_ALLOWED_TENANTS names no tenant id)",
    )
    expect(shownAllowedTenants(parseAllowedTenants(`${tenant};contoso.onmicrosoft.com`))).toEqual([tenant])
    // Something pasted that is no tenant: named by its length, never shown.
    const pasted = "Zx8Q~very.secret-value_pasted into the wrong variable"
    const wrong = parseAllowedTenants(pasted)
    expect(wrong.warnings).toEqual([
      expect.objectContaining({
        reason: expect.stringContaining(`no tenant id (${pasted.length} characters, not shown)`),
      }),
    ])
    expect(allowedTenantsInWords(wrong)).not.toContain("secret")
    expect(JSON.stringify(wrong.warnings)).not.toContain("secret")
  })

  it("in words, and for which modes", () => {
    expect(allowedTenantsInWords(parseAllowedTenants(undefined), tenant)).toBe(
      `none: tokens of its own tenant (${tenant}) only (AZURE_ADDITIONALLY_ALLOWED_TENANTS is not set)`,
    )
    expect(allowedTenantsInWords(parseAllowedTenants("*"))).toBe(
      "any tenant (* in AZURE_ADDITIONALLY_ALLOWED_TENANTS), besides its own tenant",
    )
    expect(allowedTenantsInWords(parseAllowedTenants(`${other}`), tenant)).toBe(
      `${other} (AZURE_ADDITIONALLY_ALLOWED_TENANTS), besides its own tenant (${tenant})`,
    )
    expect(
      (["client_secret", "workload_identity", "default", "managed_identity"] as const).map(
        readsAllowedTenants,
      ),
    ).toEqual([true, true, true, false])
  })

  it("with AZURE_IDENTITY_DISABLE_MULTITENANTAUTH set (any value but empty): only its own tenant, and a list is warned of", () => {
    const disabled = parseAllowedTenants(other, "true")
    expect(disabled.multiTenantDisabled).toBe(true)
    expect(disabled.warnings).toEqual([
      {
        reason: expect.stringContaining("but AZURE_IDENTITY_DISABLE_MULTITENANTAUTH is set"),
        fix: expect.stringMatching(
          /^Unset AZURE_IDENTITY_DISABLE_MULTITENANTAUTH to reach a vault in another tenant/,
        ),
      },
    ])
    expect(allowedTenantsInWords(disabled, tenant)).toBe(
      `none: tokens of its own tenant (${tenant}) only, whatever a vault's challenge names (AZURE_IDENTITY_DISABLE_MULTITENANTAUTH is set)`,
    )
    expect(shownAllowedTenants(disabled)).toEqual([])
    expect(shownAllowedTenants(parseAllowedTenants("*", "1"))).toEqual([])
    // Set without a list: said in words, nothing to warn of.
    expect(parseAllowedTenants(undefined, "1")).toMatchObject({ multiTenantDisabled: true, warnings: [] })
    // Empty, as @azure/identity reads it: not set.
    expect(parseAllowedTenants(other, "").multiTenantDisabled).toBeUndefined()
  })
})
