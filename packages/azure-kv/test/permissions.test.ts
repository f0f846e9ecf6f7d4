/**
 * The grant a refusal advises, held to the emulator's table of Key Vault's wire facts (the RBAC
 * data action its 403 names for each operation, and what each built-in role grants): a refused
 * import must not be told to grant another data action, and every role named must grant it.
 */
import type { VaultOperation } from "@kvdeploy/core"
import { OPERATION_OBJECT_TYPE, OPERATION_PERMISSION, ROLES } from "@kvdeploy/kv-emulator"
import { describe, expect, it } from "vitest"
import { grantAdvice, requiredPermission } from "../src/permissions.js"

/** The emulator's name of the request each port operation makes. */
const wireOperation: { readonly [K in VaultOperation]: keyof typeof OPERATION_PERMISSION } = {
  getLatest: "getLatest",
  getVersion: "getVersion",
  listVersions: "versions",
  importVersion: "import",
  getVersionSecret: "getSecret",
  getDeleted: "getDeleted",
  recoverDeleted: "recover",
  listCertificates: "list",
  getOperation: "getOperation",
}

describe("grantAdvice", () => {
  for (const operation of Object.keys(wireOperation) as Array<VaultOperation>) {
    it(`${operation}: the data action and permission Key Vault checks, and roles that grant it`, () => {
      const [permission, dataAction] = OPERATION_PERMISSION[wireOperation[operation]]
      const advised = requiredPermission[operation]
      expect(advised.dataAction).toBe(dataAction)
      expect(advised.accessPolicy).toBe(permission)
      expect(advised.roles.length).toBeGreaterThan(0)
      for (const role of advised.roles) expect(ROLES[role], role).toContain(permission)
      const text = grantAdvice(operation)
      expect(text).toContain(`data action ${dataAction}`)
      expect(text).toContain(`access-policy permission ${permission}`)
      for (const role of advised.roles) expect(text).toContain(`"${role}"`)
    })
  }
  it("names the narrowest scope: the certificate where a role scoped to it grants the action, else the vault", () => {
    expect(grantAdvice("importVersion")).toContain(
      '"Key Vault Certificates Officer" scoped to the certificate (…/vaults/VAULT/certificates/NAME) or to the vault',
    )
    expect(grantAdvice("getLatest")).toContain("scoped to the certificate")
    // The backing secret is a secret object: its own scope.
    expect(grantAdvice("getVersionSecret")).toContain(
      "scoped to the certificate's backing secret (…/vaults/VAULT/secrets/NAME) or to the vault",
    )
    for (const operation of ["listCertificates", "getDeleted", "recoverDeleted"] as const) {
      expect(grantAdvice(operation), operation).toContain("on the vault (data action")
      expect(grantAdvice(operation), operation).not.toContain("scoped to the certificate")
    }
  })

  it("names the scope of the object the emulator judges each request on (its model of Azure's scope paths)", () => {
    const scopeSaid = {
      certificates: "scoped to the certificate (…/vaults/VAULT/certificates/NAME) or to the vault",
      secrets: "scoped to the certificate's backing secret (…/vaults/VAULT/secrets/NAME) or to the vault",
      vault: "on the vault (data action",
    } as const
    for (const operation of Object.keys(wireOperation) as Array<VaultOperation>) {
      const judgedOn = OPERATION_OBJECT_TYPE[wireOperation[operation]]
      if (judgedOn === "keys") throw new Error(`${operation}: kvdeploy reads no key`)
      expect(grantAdvice(operation), operation).toContain(scopeSaid[judgedOn])
    }
  })

  it("a backing secret's read names a role that grants only secrets (the narrowest) and the certificate user role", () => {
    expect(requiredPermission.getVersionSecret.roles).toEqual([
      "Key Vault Secrets User",
      "Key Vault Certificate User",
    ])
  })
})
