/**
 * AZURE_ADDITIONALLY_ALLOWED_TENANTS: the tenants other than its own that a credential may get
 * tokens for (a Key Vault challenge of a vault in another tenant asks for one). One rule for the
 * credentials makeCredential builds and for what doctor and the agent's `--check` show, read
 * without loading @azure/identity.
 *
 * kvdeploy reads the variable and gives the parsed list to the credential of every mode that asks
 * Entra ID (`client_secret`, `workload_identity`, `default`; @azure/identity reads it itself for
 * its EnvironmentCredential only): split at `;`, each entry trimmed, empty ones left out, a tenant
 * id (a GUID) in lower case. The SDK then allows any tenant when an entry is `*`
 * (resolveAdditionallyAllowedTenantIds), and otherwise compares the tenant asked for with each
 * entry, text for text and letter case included (processMultiTenantRequest's localeCompare). A Key
 * Vault challenge names its tenant by its id in lower case: an id given in upper case (as the
 * portal's copy button and some tools write it) is the same tenant, and is given to the SDK in
 * lower case so that it matches. A tenant's domain name (`contoso.onmicrosoft.com`) allows nothing:
 * the SDK checks no entry of the list (only `*` means anything to it), so it takes the name without
 * complaint and compares it, as text, with the id the challenge names, which it never equals. Such
 * an entry is warned of, and never shown as allowed. `managed_identity` does not read it: a managed
 * identity gets tokens of its own tenant only.
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { isGuid, shownTenantId } from "./environment.js"
import type { CredentialMode } from "./settings.js"

/** The modes whose credential kvdeploy gives AZURE_ADDITIONALLY_ALLOWED_TENANTS. */
export const modesReadingAllowedTenants: ReadonlyArray<CredentialMode> = [
  "client_secret",
  "workload_identity",
  "default",
]

/** Whether `mode`'s credential reads AZURE_ADDITIONALLY_ALLOWED_TENANTS. */
export const readsAllowedTenants = (mode: CredentialMode): boolean =>
  modesReadingAllowedTenants.includes(mode)

/** A value of AZURE_ADDITIONALLY_ALLOWED_TENANTS as the credential takes it. */
export interface AllowedTenants {
  /** Whether the variable is set (to anything, spaces included). */
  readonly set: boolean
  /** The entries given to the credential: trimmed, empty ones left out, a tenant id in lower case. */
  readonly tenants: ReadonlyArray<string>
  /** An entry is `*`: any tenant. */
  readonly any: boolean
  /** What in the value does not do what it seems to (nothing is refused for it): each with its fix. */
  readonly warnings: ReadonlyArray<{ readonly reason: string; readonly fix: string }>
  /**
   * AZURE_IDENTITY_DISABLE_MULTITENANTAUTH is set (any value but empty, as @azure/identity reads it):
   * the credential asks its own tenant whatever a vault's challenge names, and the list changes nothing.
   */
  readonly multiTenantDisabled?: true
}

const variable = "AZURE_ADDITIONALLY_ALLOWED_TENANTS"
const disabling = "AZURE_IDENTITY_DISABLE_MULTITENANTAUTH"

/**
 * `raw`, the variable as it is set (undefined when not set), as the credential takes it;
 * `disabled`, AZURE_IDENTITY_DISABLE_MULTITENANTAUTH as it is set: when it is, the list is read the
 * same, and a list that names a tenant is warned of (it changes nothing).
 */
export const parseAllowedTenants = (raw: string | undefined, disabled?: string): AllowedTenants => {
  const parsed = parseTenantList(raw)
  if (disabled === undefined || disabled === "") return parsed
  return {
    ...parsed,
    multiTenantDisabled: true,
    warnings: [
      ...parsed.warnings,
      ...(parsed.tenants.length === 0
        ? []
        : [
            {
              reason: `${variable} allows other tenants, but ${disabling} is set: @azure/identity then asks the credential's own tenant whatever the vault's challenge names, so the list changes nothing and a vault in another tenant refuses the token`,
              fix: `Unset ${disabling} to reach a vault in another tenant, or unset ${variable} if every vault is in the credential's own tenant`,
            },
          ]),
    ],
  }
}

const parseTenantList = (raw: string | undefined): AllowedTenants => {
  if (raw === undefined || raw === "") return { set: false, tenants: [], any: false, warnings: [] }
  const entries = raw.split(";").map((t) => t.trim())
  // A GUID's letters have no case: the challenge's id, in lower case, matches it so.
  const tenants = entries.filter((t) => t !== "").map((t) => (isGuid(t) ? t.toLowerCase() : t))
  const any = tenants.includes("*")
  const warnings: Array<{ reason: string; fix: string }> = []
  if (tenants.length === 0) {
    warnings.push({
      reason: `${variable} is set but holds no tenant (${raw.trim() === "" ? "only spaces or line breaks" : "only ';' and spaces"}), so no other tenant is allowed`,
      fix: `Set ${variable} to the tenant ids the credential may get tokens for, separated by ';' (or '*' for any tenant), or unset it`,
    })
    return { set: true, tenants, any, warnings }
  }
  const empty = entries.length - tenants.length
  if (empty > 0)
    warnings.push({
      reason: `${variable} has ${empty} empty entr${empty === 1 ? "y" : "ies"} (a ';' at its start or end, or two together), left out`,
      fix: `Separate the tenant ids with one ';' each, with none at the start or end`,
    })
  // With `*` every tenant is allowed: what else is listed changes nothing.
  if (!any)
    for (const tenant of tenants) {
      const shown = shownTenantId(tenant)
      if (isGuid(tenant)) continue
      if (shown === tenant)
        warnings.push({
          reason: `${variable} names ${shown}, which is not a tenant id (a GUID), so it allows nothing: Key Vault's challenge names a tenant by its id, and @azure/identity compares each entry with it as text (a domain name never matches)`,
          fix: `Replace ${shown} with the tenant's id (a GUID; \`az account tenant list\`, or the vault's tenant as a deploy's refusal names it)`,
        })
      else
        warnings.push({
          reason: `${variable} has an entry that is no tenant id (${tenant.length} characters, not shown), which allows nothing`,
          fix: "Give tenant ids (GUIDs) separated by ';', or '*' for any tenant",
        })
    }
  return { set: true, tenants, any, warnings }
}

/**
 * The entries a vault's challenge can match: the tenant ids. Anything else in the list (a domain
 * name) is given to the credential too, but allows nothing, and is warned of instead.
 */
const tenantIds = (allowed: AllowedTenants): ReadonlyArray<string> => allowed.tenants.filter(isGuid)

/**
 * The tenants the credential may get tokens for besides its own, as shown: `*`, or the tenant ids
 * in the list (an entry that is no tenant id allows nothing, and is not one of them); none while
 * AZURE_IDENTITY_DISABLE_MULTITENANTAUTH is set, whatever the list says (allowedTenantsInWords says
 * the same).
 */
export const shownAllowedTenants = (allowed: AllowedTenants): ReadonlyArray<string> | "*" =>
  allowed.multiTenantDisabled === true ? [] : allowed.any ? "*" : tenantIds(allowed)

/**
 * What a credential may get tokens for besides its own tenant (`ownTenant`, when known), in words:
 * any tenant, the tenant ids in the list, or none (the variable unset, holding no tenant, or
 * naming no tenant id: a domain name allows nothing).
 */
export const allowedTenantsInWords = (allowed: AllowedTenants, ownTenant?: string): string => {
  const own = ownTenant === undefined ? "its own tenant" : `its own tenant (${shownTenantId(ownTenant)})`
  if (allowed.multiTenantDisabled === true)
    return `none: tokens of ${own} only, whatever a vault's challenge names (${disabling} is set)`
  if (allowed.any) return `any tenant (* in ${variable}), besides ${own}`
  const ids = tenantIds(allowed)
  if (ids.length > 0) return `${ids.join(", ")} (${variable}), besides ${own}`
  const why = !allowed.set
    ? "is not set"
    : allowed.tenants.length === 0
      ? "holds no tenant"
      : "names no tenant id"
  return `none: tokens of ${own} only (${variable} ${why})`
}

/**
 * AZURE_ADDITIONALLY_ALLOWED_TENANTS as the credential takes it, with AZURE_IDENTITY_DISABLE_MULTITENANTAUTH,
 * read through Effect's ConfigProvider.
 */
export const allowedTenantsFromEnvironment: Effect.Effect<AllowedTenants> = Effect.all([
  Config.option(Config.String(variable)),
  Config.option(Config.String(disabling)),
]).pipe(
  Effect.map(([value, disabled]) =>
    parseAllowedTenants(Option.getOrUndefined(value), Option.getOrUndefined(disabled)),
  ),
  Effect.orElseSucceed(() => parseAllowedTenants(undefined)),
)
