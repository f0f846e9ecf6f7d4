/**
 * A vault refusal as the CLI reports it: the fix follows what was refused. A
 * missing permission is granted; a refused token (401) or a firewall refusal
 * is not, and saying "grant" there sends the operator the wrong way.
 */
import { VaultForbidden, VaultUnavailable } from "@kvdeploy/core"
import { describe, expect, it } from "vitest"
import { type CredentialInUse, tlsRefusedFix, vaultProblem } from "../src/cli/vault.js"

const clientSecret: CredentialInUse = {
  mode: "client_secret",
  tokenExchange: false,
  multiTenantAuthDisabled: false,
}

const problemOf = (error: VaultForbidden, credential: CredentialInUse = clientSecret) => {
  const p = vaultProblem("getLatest", error, credential).problems[0]
  if (p === undefined) throw new Error("no problem reported")
  return p
}

describe("a VaultForbidden as a CLI problem", () => {
  it("says what failed in words, without the port's operation names", () => {
    const problem = vaultProblem(
      "getLatest",
      new VaultForbidden({ operation: "getLatest", detail: "denied", permission: "certificates/get" }),
      clientSecret,
    )
    expect(problem.title).toBe("reading the certificate failed: forbidden (needs certificates/get): denied")
    expect(JSON.stringify(problem)).not.toContain("getLatest")
    // Titled for the operation that failed, not the command's main one (versions reads the latest too).
    const inVersions = vaultProblem(
      "listVersions",
      new VaultForbidden({ operation: "getLatest", detail: "denied" }),
      clientSecret,
    )
    expect(inVersions.title).toBe("reading the certificate failed: forbidden: denied")
  })

  it("a missing permission: names it and says to grant it", () => {
    const p = problemOf(
      new VaultForbidden({
        operation: "getLatest",
        detail: "denied",
        permission: "certificates/get",
        refusal: "permission",
      }),
    )
    expect(p.message).toBe("refused (VaultForbidden; needs certificates/get)")
    expect(p.field).toBe("vault")
    expect(p.fix).toContain("grant the identity the permission")
  })

  it("no token for the vault: the problem is the credential's, not the vault's, which nothing reached", () => {
    const refused = problemOf(
      new VaultForbidden({ operation: "getLatest", detail: "no token", refusal: "credential", unsent: true }),
    )
    expect(refused.field).toBe("credential")
    // Its words do not say the vault refused or did not answer: nothing reached it.
    expect(refused.message).toBe("no token could be had, so nothing reached the vault (VaultForbidden)")
    const outage = vaultProblem(
      "getLatest",
      new VaultUnavailable({ operation: "getLatest", detail: "no token", unsent: true }),
      clientSecret,
    ).problems[0]
    expect(outage?.field).toBe("credential")
    expect(outage?.message).toBe(
      "no token: the identity provider did not answer, so nothing reached the vault (VaultUnavailable)",
    )
    // The identity library refused the vault's tenant before any request: the credential's too.
    expect(
      problemOf(
        new VaultForbidden({ operation: "getLatest", detail: "tenant", refusal: "tenant", unsent: true }),
      ).field,
    ).toBe("credential")
    // An answer from the vault (a permission it refused) stays the vault's.
    expect(
      problemOf(new VaultForbidden({ operation: "getLatest", detail: "denied", refusal: "permission" }))
        .field,
    ).toBe("vault")
  })

  it("a refused token: names no permission and points at the tenant and cloud", () => {
    const p = problemOf(new VaultForbidden({ operation: "getLatest", detail: "AKV10032", refusal: "token" }))
    expect(p.message).toBe("refused (VaultForbidden)")
    expect(p.fix).toContain("tenant")
    expect(p.fix).not.toContain("grant")
    expect(p.fix).toContain("AZURE_TENANT_ID")
  })

  it("a refused token of a managed identity asking its endpoint: the identity's tenant, not AZURE_TENANT_ID", () => {
    const refused = new VaultForbidden({ operation: "getLatest", detail: "AKV10032", refusal: "token" })
    const endpoint = problemOf(refused, {
      mode: "managed_identity",
      tokenExchange: false,
      multiTenantAuthDisabled: false,
    })
    expect(endpoint.fix).toContain("a managed identity's token is of the tenant the identity is in")
    expect(endpoint.fix).not.toContain("AZURE_TENANT_ID")
    // The AKS token exchange asks AZURE_TENANT_ID's tenant: that variable is the one to check.
    const exchange = problemOf(refused, {
      mode: "managed_identity",
      tokenExchange: true,
      multiTenantAuthDisabled: false,
    })
    expect(exchange.fix).toContain("AZURE_TENANT_ID")
  })

  it("a vault in another tenant: an identity of that tenant or the tenant allowed, not a grant or the secret", () => {
    const p = problemOf(
      new VaultForbidden({ operation: "getLatest", detail: "tenants", refusal: "tenant", unsent: true }),
    )
    expect(p.fix).toContain("another tenant than the credential's")
    expect(p.fix).toContain("AZURE_ADDITIONALLY_ALLOWED_TENANTS")
    expect(p.fix).not.toContain("grant the identity")
    expect(p.fix).not.toContain("AZURE_CLIENT_SECRET")
  })

  it("a vault in another tenant with AZURE_IDENTITY_DISABLE_MULTITENANTAUTH set: unset it too", () => {
    const p = problemOf(
      new VaultForbidden({ operation: "getLatest", detail: "tenants", refusal: "tenant", unsent: true }),
      { ...clientSecret, multiTenantAuthDisabled: true },
    )
    expect(p.fix).toContain("AZURE_ADDITIONALLY_ALLOWED_TENANTS")
    expect(p.fix).toContain("unset AZURE_IDENTITY_DISABLE_MULTITENANTAUTH")
  })

  it("a refused credential of managed_identity: a host that has one, or with AKS's token exchange, the token file and its federated identity credential", () => {
    const refused = new VaultForbidden({
      operation: "getLatest",
      detail: "no token",
      refusal: "credential",
      unsent: true,
    })
    const endpoint = problemOf(refused, { ...clientSecret, mode: "managed_identity" })
    expect(endpoint.fix).toContain("run on an Azure host that has a managed identity")
    const exchange = problemOf(refused, { ...clientSecret, mode: "managed_identity", tokenExchange: true })
    expect(exchange.fix).toContain("AZURE_FEDERATED_TOKEN_FILE")
    expect(exchange.fix).toContain("federated identity credential on the user-assigned identity")
    expect(exchange.fix).not.toContain("run on")
  })

  it("a firewall refusal: points at the vault's networking rules", () => {
    const p = problemOf(
      new VaultForbidden({
        operation: "getLatest",
        detail: "ForbiddenByFirewall",
        permission: "network access",
        refusal: "network",
      }),
    )
    expect(p.fix).toContain("networking rules")
    expect(p.fix).not.toContain("grant")
  })
})

describe("a VaultUnavailable as a CLI problem", () => {
  it("a TLS certificate this machine did not accept: the CA trust, as deploy's next step says, not DNS or network", () => {
    const p = vaultProblem(
      "getLatest",
      new VaultUnavailable({ operation: "getLatest", detail: "not accepted", tlsRefused: true }),
      clientSecret,
    ).problems[0]
    expect(p?.field).toBe("vault")
    expect(p?.message).toBe("this machine did not accept the vault's TLS certificate (VaultUnavailable)")
    expect(p?.fix).toBe(tlsRefusedFix)
    expect(p?.fix).toContain("NODE_EXTRA_CA_CERTS")
    expect(p?.fix).not.toContain("DNS")
    // A vault that did not answer at all: its URL, DNS and network, as before.
    const unreached = vaultProblem(
      "getLatest",
      new VaultUnavailable({ operation: "getLatest", detail: "ECONNREFUSED" }),
      clientSecret,
    ).problems[0]
    expect(unreached?.message).toBe("no answer from the vault (VaultUnavailable)")
    expect(unreached?.fix).toContain("DNS")
  })
})
