/**
 * What each vault operation needs, said the way an operator grants it: the
 * access-policy permission, the RBAC data action, and a built-in role that
 * holds it.
 */
import type { VaultOperation } from "@kvdeploy/core"

export interface RequiredPermission {
  /** Access-policy permission, e.g. `secrets/get`. */
  readonly accessPolicy: string
  /** RBAC data action, e.g. `Microsoft.KeyVault/vaults/secrets/getSecret/action`. */
  readonly dataAction: string
  /** Built-in roles that grant it, narrowest first. */
  readonly roles: ReadonlyArray<string>
}

const certificateRead: RequiredPermission = {
  accessPolicy: "certificates/get",
  dataAction: "Microsoft.KeyVault/vaults/certificates/read",
  roles: ["Key Vault Certificate User", "Key Vault Certificates Officer"],
}

export const requiredPermission: { readonly [K in VaultOperation]: RequiredPermission } = {
  getLatest: certificateRead,
  getVersion: certificateRead,
  listVersions: { ...certificateRead, accessPolicy: "certificates/list" },
  importVersion: {
    accessPolicy: "certificates/import",
    dataAction: "Microsoft.KeyVault/vaults/certificates/import/action",
    roles: ["Key Vault Certificates Officer"],
  },
  getVersionSecret: {
    accessPolicy: "secrets/get",
    dataAction: "Microsoft.KeyVault/vaults/secrets/getSecret/action",
    roles: ["Key Vault Secrets User", "Key Vault Certificate User"],
  },
  getDeleted: { ...certificateRead, roles: ["Key Vault Certificates Officer"] },
  recoverDeleted: {
    accessPolicy: "certificates/recover",
    dataAction: "Microsoft.KeyVault/vaults/certificates/recover/action",
    roles: ["Key Vault Certificates Officer"],
  },
  listCertificates: { ...certificateRead, accessPolicy: "certificates/list" },
  getOperation: certificateRead,
}

/**
 * Operations a role scoped to one certificate cannot grant: the vault's certificate list, and a
 * deleted certificate (its object is gone; the deleted one is the vault's).
 */
const vaultScopeOnly: ReadonlySet<VaultOperation> = new Set([
  "listCertificates",
  "getDeleted",
  "recoverDeleted",
])

/** One sentence telling the operator what to grant for `operation`, and where (the narrowest scope that grants it). */
export const grantAdvice = (operation: VaultOperation): string => {
  const p = requiredPermission[operation]
  const roles = p.roles.map((r) => `"${r}"`).join(" or ")
  // The backing secret is a secret object of its own (`GET /secrets/NAME/VERSION`), not the
  // certificate: a role scoped to the certificate is not shown to cover it.
  const scope = vaultScopeOnly.has(operation)
    ? "on the vault"
    : operation === "getVersionSecret"
      ? "scoped to the certificate's backing secret (…/vaults/VAULT/secrets/NAME) or to the vault"
      : "scoped to the certificate (…/vaults/VAULT/certificates/NAME) or to the vault"
  return `grant the identity the RBAC role ${roles} ${scope} (data action ${p.dataAction}), or the access-policy permission ${p.accessPolicy}`
}
