/**
 * A vault refusal as the CLI reports it: the fix follows what was refused. A
 * missing permission is granted; a refused token (401) or a firewall refusal
 * is not, and saying "grant" there sends the operator the wrong way.
 */
import { VaultForbidden } from "@kvdeploy/core"
import { describe, expect, it } from "vitest"
import { vaultProblem } from "../src/cli/vault.js"

const problemOf = (error: VaultForbidden) => {
  const p = vaultProblem("getLatest", error).problems[0]
  if (p === undefined) throw new Error("no problem reported")
  return p
}

describe("a VaultForbidden as a CLI problem", () => {
  it("says what failed in words, without the port's operation names", () => {
    const problem = vaultProblem(
      "getLatest",
      new VaultForbidden({ operation: "getLatest", detail: "denied", permission: "certificates/get" }),
    )
    expect(problem.title).toBe("reading the certificate failed: forbidden (needs certificates/get): denied")
    expect(JSON.stringify(problem)).not.toContain("getLatest")
    // Titled for the operation that failed, not the command's main one (versions reads the latest too).
    const inVersions = vaultProblem(
      "listVersions",
      new VaultForbidden({ operation: "getLatest", detail: "denied" }),
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

  it("a refused token: names no permission and points at the tenant and cloud", () => {
    const p = problemOf(new VaultForbidden({ operation: "getLatest", detail: "AKV10032", refusal: "token" }))
    expect(p.message).toBe("refused (VaultForbidden)")
    expect(p.fix).toContain("tenant")
    expect(p.fix).not.toContain("grant")
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
