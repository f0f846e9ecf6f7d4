/**
 * Where a Key Vault RBAC role assignment applies. Azure scopes an assignment to a resource path:
 * the vault (`/…/vaults/VAULT`), or one object of it, `/…/vaults/VAULT/certificates/NAME`,
 * `…/secrets/NAME` or `…/keys/NAME`. A certificate's backing secret and key are objects of their
 * own under the certificate's name: an assignment at the certificate's scope does not contain
 * their paths, so it does not cover `GET /secrets/NAME/VERSION`.
 *
 * The emulator takes an object scope as `TYPE/NAME` (the end of that path), in every vault it
 * serves; a principal without object scopes is assigned at the vault.
 */
import type { OperationName } from "./faults.js"

export const OBJECT_TYPES = ["certificates", "secrets", "keys"] as const
export type ObjectType = (typeof OBJECT_TYPES)[number]

/** One object of a vault, as a role assignment's scope names it (lower case: Key Vault's names are case-insensitive). */
export interface VaultObject {
  readonly type: ObjectType
  readonly name: string
}

/**
 * The object each operation is about, or "vault" where only an assignment at the vault grants it:
 * the certificate list, and a deleted certificate (read, recovered, purged, listed) — its object is
 * gone, the deleted one is the vault's.
 */
export const OPERATION_OBJECT_TYPE: Readonly<Record<OperationName, ObjectType | "vault">> = {
  import: "certificates",
  create: "certificates",
  getOperation: "certificates",
  cancelOperation: "certificates",
  deleteOperation: "certificates",
  getLatest: "certificates",
  getVersion: "certificates",
  versions: "certificates",
  list: "vault",
  updateProperties: "certificates",
  getPolicy: "certificates",
  updatePolicy: "certificates",
  delete: "certificates",
  getDeleted: "vault",
  listDeleted: "vault",
  recover: "vault",
  purge: "vault",
  getSecret: "secrets",
  setSecret: "secrets",
  getKey: "keys",
}

/** The object a request about `name` by `operation` is judged on; undefined: the vault. */
export const objectOf = (operation: OperationName, name: string | undefined): VaultObject | undefined => {
  const type = OPERATION_OBJECT_TYPE[operation]
  return type === "vault" || name === undefined ? undefined : { type, name: name.toLowerCase() }
}

/** Key Vault's object names: 1 to 127 letters, digits and dashes. */
const OBJECT_NAME = /^[0-9A-Za-z-]{1,127}$/

const FORM = '"certificates/NAME", "secrets/NAME" or "keys/NAME"'

/**
 * Reads a scope `TYPE/NAME` (TYPE certificates, secrets or keys, in any case); throws an Error
 * naming the form for anything else, a bare name included (it would not say which object).
 */
export const parseObjectScope = (scope: string): VaultObject => {
  const shown = JSON.stringify(scope)
  const slash = scope.indexOf("/")
  if (slash < 0)
    return refuse(
      `rbac scope ${shown} names no object type: use ${FORM} (a certificate's backing secret is the secret "secrets/NAME", its key "keys/NAME": scope each one the principal may use)`,
    )
  const type = scope.slice(0, slash).toLowerCase()
  const name = scope.slice(slash + 1)
  if (!(OBJECT_TYPES as ReadonlyArray<string>).includes(type))
    return refuse(`rbac scope ${shown}: the object type "${scope.slice(0, slash)}" is not one of ${FORM}`)
  if (!OBJECT_NAME.test(name))
    return refuse(
      `rbac scope ${shown}: "${name}" is not a Key Vault object name (1 to 127 letters, digits and dashes): use ${FORM}`,
    )
  return { type: type as ObjectType, name: name.toLowerCase() }
}

const refuse = (message: string): never => {
  throw new Error(message)
}

/** The scope's key in a principal's set: `type/name`, lower case. */
export const scopeKey = (o: VaultObject): string => `${o.type}/${o.name}`
