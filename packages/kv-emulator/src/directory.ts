/**
 * The emulator's Entra ID tenant: applications (client secret, federated
 * workload identity), managed identities (system- and user-assigned), the
 * access tokens it signs for them, and RBAC permissions per principal.
 */
import { randomBytes } from "node:crypto"
import type { OperationName } from "./faults.js"
import {
  createSigningKey,
  decodeJwt,
  type JwtClaims,
  newGuid,
  type SigningKey,
  signJwt,
  verifyJwt,
} from "./jwt.js"
import { parseObjectScope, scopeKey, type VaultObject } from "./rbacScope.js"

export const PERMISSIONS = [
  "certificates/get",
  "certificates/list",
  "certificates/update",
  "certificates/create",
  "certificates/import",
  "certificates/delete",
  "certificates/recover",
  "certificates/purge",
  "secrets/get",
  "secrets/set",
  "keys/get",
] as const
export type Permission = (typeof PERMISSIONS)[number]

/** Built-in Key Vault RBAC roles, reduced to the permissions this emulator checks. */
export const ROLES: Readonly<Record<string, ReadonlyArray<Permission>>> = {
  "Key Vault Administrator": PERMISSIONS,
  "Key Vault Certificates Officer": PERMISSIONS.filter(
    (p) => p.startsWith("certificates/") || p === "keys/get",
  ),
  "Key Vault Certificate User": ["certificates/get", "certificates/list", "secrets/get", "keys/get"],
  "Key Vault Reader": ["certificates/get", "certificates/list", "keys/get"],
  "Key Vault Secrets User": ["secrets/get"],
}

/**
 * What each operation needs, and the RBAC data action Key Vault names in its 403: the data actions
 * of Azure's resource provider operations list for Microsoft.KeyVault (a deleted certificate is read
 * with `certificates/read`, recovered with `certificates/recover/action`; there is no
 * `certificates/write`, an update is `certificates/update/action`).
 */
export const OPERATION_PERMISSION: Readonly<Record<OperationName, readonly [Permission, string]>> = {
  import: ["certificates/import", "Microsoft.KeyVault/vaults/certificates/import/action"],
  create: ["certificates/create", "Microsoft.KeyVault/vaults/certificates/create/action"],
  getOperation: ["certificates/get", "Microsoft.KeyVault/vaults/certificates/read"],
  cancelOperation: ["certificates/update", "Microsoft.KeyVault/vaults/certificates/update/action"],
  deleteOperation: ["certificates/update", "Microsoft.KeyVault/vaults/certificates/update/action"],
  getLatest: ["certificates/get", "Microsoft.KeyVault/vaults/certificates/read"],
  getVersion: ["certificates/get", "Microsoft.KeyVault/vaults/certificates/read"],
  versions: ["certificates/list", "Microsoft.KeyVault/vaults/certificates/read"],
  list: ["certificates/list", "Microsoft.KeyVault/vaults/certificates/read"],
  updateProperties: ["certificates/update", "Microsoft.KeyVault/vaults/certificates/update/action"],
  getPolicy: ["certificates/get", "Microsoft.KeyVault/vaults/certificates/read"],
  updatePolicy: ["certificates/update", "Microsoft.KeyVault/vaults/certificates/update/action"],
  delete: ["certificates/delete", "Microsoft.KeyVault/vaults/certificates/delete"],
  getDeleted: ["certificates/get", "Microsoft.KeyVault/vaults/certificates/read"],
  listDeleted: ["certificates/list", "Microsoft.KeyVault/vaults/certificates/read"],
  recover: ["certificates/recover", "Microsoft.KeyVault/vaults/certificates/recover/action"],
  purge: ["certificates/purge", "Microsoft.KeyVault/vaults/certificates/purge/action"],
  getSecret: ["secrets/get", "Microsoft.KeyVault/vaults/secrets/getSecret/action"],
  setSecret: ["secrets/set", "Microsoft.KeyVault/vaults/secrets/setSecret/action"],
  getKey: ["keys/get", "Microsoft.KeyVault/vaults/keys/read"],
}

export type PrincipalKind = "application" | "workload" | "systemAssigned" | "userAssigned"

export interface Principal {
  readonly kind: PrincipalKind
  readonly displayName: string
  readonly clientId: string
  readonly objectId: string
  /** Client secret (applications). */
  readonly clientSecret?: string
  /** Federated credential: accepted assertion issuer and subject (workload identities). */
  readonly federated?: { readonly issuer: string; readonly subject: string; readonly audience: string }
  /** A fixed assertion string accepted as-is (a configured static federated token). */
  readonly staticAssertion?: string
  /**
   * The tenant the application is registered in (its home tenant; the directory's when not given).
   * Entra ID gives an application tokens of a tenant only where it has a service principal: its
   * home tenant, and the tenants a multi-tenant application is provisioned in (`provision`).
   */
  readonly homeTenant?: string
}

export interface AccessTokenOptions {
  readonly resource: string
  readonly tenantId?: string
  readonly lifetimeSeconds?: number
  /** Issued-at override (epoch seconds), e.g. to mint an expired token. */
  readonly issuedAt?: number
}

export const AZURE_AD_TOKEN_EXCHANGE = "api://AzureADTokenExchange"

export class Directory {
  readonly tokenKey: SigningKey = createSigningKey()
  /** Signs workload identity (federated) tokens, like a Kubernetes service account issuer. */
  readonly federationKey: SigningKey = createSigningKey()
  readonly principals = new Map<string, Principal>()
  private readonly grants = new Map<string, Set<Permission>>()
  /** Principals whose role assignment is scoped to some objects: `type/name` keys, lower case. */
  private readonly scopes = new Map<string, Set<string>>()
  private readonly verified = new Map<string, JwtClaims>()
  /** Tenants beyond its home tenant an application has a service principal in, by client id (lower case). */
  private readonly provisioned = new Map<string, Set<string>>()
  /**
   * Seconds the clock tokens are issued and judged by runs ahead of this host's (negative: behind):
   * Entra ID's, the managed identity endpoints' and the vaults'. A test moves it to stand for a
   * client whose own clock was set back after it got its tokens (see `Emulator.setTokenClockOffset`).
   */
  tokenClockOffsetSeconds = 0

  /** Now, in epoch seconds, by the clock tokens are issued and judged by. */
  tokenNowSeconds(): number {
    return Math.floor(Date.now() / 1000) + this.tokenClockOffsetSeconds
  }

  constructor(
    readonly tenantId: string,
    readonly federationIssuer: string,
    /** Lifetime of the access tokens it issues unless a request says otherwise (seconds). */
    readonly tokenLifetimeSeconds = 3599,
  ) {}

  addPrincipal(
    p: Omit<Principal, "objectId" | "clientId"> & { clientId?: string; objectId?: string },
  ): Principal {
    const principal: Principal = {
      ...p,
      clientId: p.clientId ?? newGuid(),
      objectId: p.objectId ?? newGuid(),
    }
    this.principals.set(principal.clientId.toLowerCase(), principal)
    return principal
  }

  principal(clientId: string): Principal | undefined {
    return this.principals.get(clientId.toLowerCase())
  }

  // ----- tenants -----
  /** The tenant a principal is registered in. */
  homeTenantOf(p: Principal): string {
    return (p.homeTenant ?? this.tenantId).toLowerCase()
  }
  /**
   * Provisions an application in another tenant (a multi-tenant app registration with a service
   * principal there, as an admin's consent makes one): Entra ID then gives it tokens of that
   * tenant too. Throws for a client id the directory does not know.
   */
  provision(clientId: string, tenantId: string): void {
    if (this.principal(clientId) === undefined) throw new Error(`no principal with client id ${clientId}`)
    const key = clientId.toLowerCase()
    const tenants = this.provisioned.get(key) ?? new Set<string>()
    tenants.add(tenantId.toLowerCase())
    this.provisioned.set(key, tenants)
  }
  /** Removes an application's service principal from a tenant other than its home tenant. */
  withdraw(clientId: string, tenantId: string): void {
    this.provisioned.get(clientId.toLowerCase())?.delete(tenantId.toLowerCase())
  }
  /** The tenants a principal has a service principal in: its home tenant first. */
  tenantsOf(clientId: string): ReadonlyArray<string> {
    const p = this.principal(clientId)
    if (p === undefined) return []
    const home = this.homeTenantOf(p)
    return [home, ...[...(this.provisioned.get(clientId.toLowerCase()) ?? [])].filter((t) => t !== home)]
  }
  /** Whether Entra ID gives `p` tokens of `tenantId` (lower case): its home tenant, or one it is provisioned in. */
  isProvisionedIn(p: Principal, tenantId: string): boolean {
    return (
      this.homeTenantOf(p) === tenantId ||
      this.provisioned.get(p.clientId.toLowerCase())?.has(tenantId) === true
    )
  }

  systemAssigned(): Principal | undefined {
    for (const p of this.principals.values()) if (p.kind === "systemAssigned") return p
    return undefined
  }

  // ----- RBAC -----
  permissionsOf(clientId: string): ReadonlyArray<Permission> {
    const g = this.grants.get(clientId.toLowerCase())
    return g ? [...g] : PERMISSIONS
  }
  /** Replaces the principal's permissions: permission names and/or built-in role names. */
  setPermissions(clientId: string, grants: ReadonlyArray<Permission | string>): void {
    const set = new Set<Permission>()
    for (const g of grants) {
      const role = Object.hasOwn(ROLES, g) ? ROLES[g] : undefined
      if (role) for (const p of role) set.add(p)
      else if ((PERMISSIONS as ReadonlyArray<string>).includes(g)) set.add(g as Permission)
      else throw new Error(`unknown permission or role: ${g}`)
    }
    this.grants.set(clientId.toLowerCase(), set)
  }
  deny(clientId: string, permissions: ReadonlyArray<Permission>): void {
    const set = new Set(this.permissionsOf(clientId))
    for (const p of permissions) set.delete(p)
    this.grants.set(clientId.toLowerCase(), set)
  }
  allow(clientId: string, permissions: ReadonlyArray<Permission>): void {
    const set = new Set(this.permissionsOf(clientId))
    for (const p of permissions) set.add(p)
    this.grants.set(clientId.toLowerCase(), set)
  }
  /**
   * Scopes a principal's role assignment to these objects, each `certificates/NAME`,
   * `secrets/NAME` or `keys/NAME` (as assignments at those resource paths are): a request about
   * another object — the same name of another type included, such as a certificate's backing
   * secret under a certificate scope — or about the vault (a list, a deleted certificate) is
   * refused. Throws, naming the form, for any other scope (a bare name too); nothing is changed then.
   */
  scopeTo(clientId: string, scopes: ReadonlyArray<string>): void {
    const keys = new Set(scopes.map((s) => scopeKey(parseObjectScope(s))))
    this.scopes.set(clientId.toLowerCase(), keys)
  }
  /** The principal's object scopes (`type/name`), or undefined when it is assigned at the vault. */
  scopesOf(clientId: string): ReadonlyArray<string> | undefined {
    const scope = this.scopes.get(clientId.toLowerCase())
    return scope === undefined ? undefined : [...scope]
  }
  resetPermissions(): void {
    this.grants.clear()
    this.scopes.clear()
  }
  /** Whether the principal may do `permission` on `object` (undefined: a request about the vault). */
  can(clientId: string, permission: Permission, object: VaultObject | undefined): boolean {
    const scope = this.scopes.get(clientId.toLowerCase())
    if (scope !== undefined && (object === undefined || !scope.has(scopeKey(object)))) return false
    const g = this.grants.get(clientId.toLowerCase())
    return g ? g.has(permission) : true
  }

  // ----- tokens -----
  issuerFor(tenantId: string): string {
    return `https://sts.windows.net/${tenantId}/`
  }

  issueAccessToken(p: Principal, options: AccessTokenOptions): { token: string; expiresOn: number } {
    const now = options.issuedAt ?? this.tokenNowSeconds()
    const tid = options.tenantId ?? this.tenantId
    const exp = now + (options.lifetimeSeconds ?? this.tokenLifetimeSeconds)
    const claims: JwtClaims = {
      aud: options.resource,
      iss: this.issuerFor(tid),
      iat: now,
      nbf: now,
      exp,
      aio: randomBytes(12).toString("base64url"),
      appid: p.clientId,
      appidacr: p.kind === "application" ? "1" : "2",
      idp: this.issuerFor(tid),
      idtyp: "app",
      oid: p.objectId,
      rh: "0.emulator.",
      sub: p.objectId,
      tid,
      uti: randomBytes(16).toString("base64url"),
      ver: "1.0",
      ...(p.kind === "systemAssigned" || p.kind === "userAssigned"
        ? {
            xms_mirid: `/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/kv-emulator/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${p.displayName}`,
          }
        : {}),
    }
    return { token: signJwt(this.tokenKey, claims), expiresOn: exp }
  }

  /** A workload identity (federated) token signed by the emulator's federation issuer, issued at `issuedAt` (epoch seconds; now). */
  issueFederatedToken(subject: string, lifetimeSeconds = 3600, issuedAt?: number): string {
    const now = issuedAt ?? Math.floor(Date.now() / 1000)
    return signJwt(this.federationKey, {
      aud: [AZURE_AD_TOKEN_EXCHANGE],
      iss: this.federationIssuer,
      sub: subject,
      iat: now,
      nbf: now,
      exp: now + lifetimeSeconds,
      "kubernetes.io": {
        namespace: "kvdeploy",
        serviceaccount: { name: subject.split(":").pop() ?? subject },
      },
    })
  }

  /** Checks a bearer token the emulator issued; claims on success. */
  verifyAccessToken(token: string): { ok: true; claims: JwtClaims } | { ok: false; message: string } {
    const cached = this.verified.get(token)
    if (cached) return { ok: true, claims: cached }
    const v = verifyJwt(token, [this.tokenKey])
    if (!v.ok) {
      return {
        ok: false,
        message:
          v.reason === "malformed"
            ? "AKV10000: Request is missing a Bearer or PoP token."
            : "AKV10010: Signature validation failed.",
      }
    }
    if (this.verified.size > 10_000) this.verified.clear()
    this.verified.set(token, v.claims)
    return { ok: true, claims: v.claims }
  }

  /** Verifies a federated assertion: signed by the emulator's federation issuer, or a configured static token. */
  verifyAssertion(
    assertion: string,
    p: Principal,
  ): { ok: true } | { ok: false; code: string; description: string } {
    if (p.staticAssertion !== undefined && assertion === p.staticAssertion) return { ok: true }
    const fed = p.federated
    if (!fed)
      return {
        ok: false,
        code: "invalid_client",
        description: `AADSTS700027: Client assertion failed signature validation. The application ${p.clientId} has no federated identity credential.`,
      }
    const decoded = decodeJwt(assertion)
    if (!decoded)
      return {
        ok: false,
        code: "invalid_client",
        description: "AADSTS50027: JWT token is invalid or malformed.",
      }
    const iss = decoded.claims.iss
    if (iss !== fed.issuer)
      return {
        ok: false,
        code: "invalid_client",
        description: `AADSTS700211: No matching federated identity record found for presented assertion issuer '${String(iss)}'.`,
      }
    const sig = verifyJwt(assertion, [this.federationKey])
    if (!sig.ok)
      return {
        ok: false,
        code: "invalid_client",
        description: "AADSTS700027: Client assertion failed signature validation.",
      }
    if (decoded.claims.sub !== fed.subject)
      return {
        ok: false,
        code: "invalid_client",
        description: `AADSTS700213: No matching federated identity record found for presented assertion subject '${String(decoded.claims.sub)}'.`,
      }
    const aud = decoded.claims.aud
    const auds = Array.isArray(aud) ? aud : [aud]
    if (!auds.includes(fed.audience))
      return {
        ok: false,
        code: "invalid_client",
        description: `AADSTS700212: No matching federated identity record found for presented assertion audience '${String(aud)}'.`,
      }
    // Entra ID judges the assertion by its own clock, the one it issues tokens by.
    const now = this.tokenNowSeconds()
    const exp = decoded.claims.exp
    if (typeof exp !== "number" || exp < now)
      return {
        ok: false,
        code: "invalid_client",
        description: "AADSTS700024: Client assertion is not within its valid time range.",
      }
    return { ok: true }
  }
}
