/**
 * Every class of failed vault read (`cannot read the vault`) gets its own fix, as azure-kv's adapter
 * maps what the SDK throws: a refused connection and an unknown host (vault_url, the network), a
 * TLS certificate not accepted (the CA trust, a proxy that inspects TLS), a 5xx (retrying; Azure's
 * status), a timeout (request_timeout_seconds), a refusal of the identity (the grant).
 */
import { toVaultError } from "@kvdeploy/azure-kv"
import { VaultMalformedAnswer } from "@kvdeploy/core"
import { describe, expect, it } from "vitest"
import { vaultReadFix } from "../src/vaultReadFix.js"

const url = "https://kv-one.vault.azure.net"
const networkError = (code: string) => Object.assign(new Error(`connect ${code} 10.0.0.1:443`), { code })
const restError = (statusCode: number, code: string) =>
  Object.assign(new Error(`${code} from the vault`), { name: "RestError", statusCode, code })
const fixOf = (error: unknown, timeoutMs?: number) =>
  vaultReadFix(toVaultError("getLatest", "read", error, true, timeoutMs), url)

describe("the fix of a failed vault read", () => {
  it("a refused connection or a host name that does not resolve: vault_url and the network", () => {
    for (const code of ["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH"])
      expect(fixOf(networkError(code))).toBe(
        `the vault could not be reached (${code}): check target.vault_url (${url}) and the network path from this host (DNS, a firewall, HTTPS_PROXY and NO_PROXY in the agent's environment); the agent retries with backoff`,
      )
  })

  it("a TLS certificate this machine does not accept: the CA trust, a TLS-inspecting proxy", () => {
    for (const code of [
      "SELF_SIGNED_CERT_IN_CHAIN",
      "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
      "ERR_TLS_CERT_ALTNAME_INVALID",
    ]) {
      const fix = fixOf(networkError(code))
      expect(fix).toMatch(/^this machine did not accept the vault's TLS certificate/)
      expect(fix).toContain("NODE_EXTRA_CA_CERTS")
      expect(fix).toContain("proxy or firewall that inspects TLS")
    }
  })

  it("a 5xx: retrying, and Azure's status if it lasts", () => {
    for (const status of [500, 502, 503])
      expect(fixOf(restError(status, "ServiceUnavailable"))).toMatch(
        new RegExp(
          `^the vault answered ${status}, a problem on the vault's side: the agent retries with backoff; if it lasts, check Azure's status`,
        ),
      )
  })

  it("a timeout keeps its fix: request_timeout_seconds", () => {
    const aborted = Object.assign(new Error("The operation was aborted."), { name: "AbortError" })
    expect(fixOf(aborted, 2000)).toMatch(
      /^the vault answered nothing within agent\.request_timeout_seconds \(2 s\)/,
    )
  })

  it("a refusal of the identity: the permission, the firewall", () => {
    expect(fixOf(restError(403, "Forbidden"))).toMatch(/^grant the identity /)
    expect(fixOf(restError(429, "Throttled"))).toMatch(/^the vault throttles requests/)
  })

  it("each refusal of the vault's (the network, a disabled version, the token, the tenant, the resource, a grant) has its own fix", () => {
    const refused = (
      statusCode: number,
      code: string,
      message: string,
      headers: Record<string, string> = {},
    ) =>
      Object.assign(new Error(message), {
        name: "RestError",
        statusCode,
        code,
        response: { status: statusCode, headers: { get: (h: string) => headers[h.toLowerCase()] } },
      })
    const vaultTenant = "11111111-2222-3333-4444-555555555555"
    const tokenTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    const challenge = {
      "www-authenticate": `Bearer authorization="https://login.windows.net/${vaultTenant}", resource="https://vault.azure.net"`,
    }
    const firewall = "the vault's firewall refused this host's address (the reason says which)"
    const cases: ReadonlyArray<readonly [string, unknown, string]> = [
      [
        "a firewall",
        refused(
          403,
          "ForbiddenByFirewall",
          "Client address is not authorized and caller is not a trusted service.",
        ),
        firewall,
      ],
      [
        "a private link only",
        refused(
          403,
          "ForbiddenByConnection",
          "Connection is not an approved private link and caller was ignored because bypass is not set to 'AzureServices' and PublicNetworkAccess is set to 'Disabled'.",
        ),
        firewall,
      ],
      [
        "a disabled version",
        refused(403, "Forbidden", "Operation get is not allowed on a disabled certificate."),
        "the certificate's latest version is disabled, and Key Vault reads no disabled version",
      ],
      [
        "a token of another audience",
        refused(
          401,
          "Unauthorized",
          "AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://management.azure.com.",
          challenge,
        ),
        "the vault refused the identity's token (no grant helps): check that the identity is in the vault's tenant, that the vault is in the target's cloud, and that this host's clock is right",
      ],
      [
        "a token of another tenant",
        refused(
          401,
          "Unauthorized",
          `AKV10032: Invalid issuer. Expected one of https://sts.windows.net/${vaultTenant}/, found https://sts.windows.net/${tokenTenant}/.`,
          challenge,
        ),
        "the vault refused the identity's token (no grant helps)",
      ],
      [
        "a token asked for another resource",
        Object.assign(
          new Error("the vault asked for a token for https://vault.example.org, not https://vault.azure.net"),
          {
            name: "CredentialUnavailableError",
            code: "KeyVaultScopeRefused",
          },
        ),
        "the vault asked for a token for another resource than the target's cloud.keyvault_resource",
      ],
      [
        "no grant",
        refused(403, "Forbidden", "Caller is not authorized to perform action on resource."),
        "grant the identity certificates/get on the vault",
      ],
    ]
    const expected = ["network", "network", "disabled", "token", "tenant", "resource", "permission"]
    cases.forEach(([what, error, fix], i) => {
      const mapped = toVaultError("getLatest", "read", error, true)
      expect(mapped._tag === "VaultForbidden" ? mapped.refusal : mapped._tag, what).toBe(expected[i])
      expect(vaultReadFix(mapped, url).slice(0, fix.length), what).toBe(fix)
    })
  })

  it("an answer that is not Key Vault's (a proxy's) and a read the vault refused: their own fixes", () => {
    const malformed = new VaultMalformedAnswer({
      operation: "getLatest",
      detail: "the answer names no version id",
    })
    expect(vaultReadFix(malformed, url)).toBe(
      `something other than Key Vault answered (a proxy or gateway in between is the likely one): check target.vault_url (${url}) and HTTPS_PROXY and NO_PROXY in the agent's environment`,
    )
    const rejected = toVaultError(
      "getLatest",
      "read",
      Object.assign(new Error("The request URI contains an invalid name: a_b."), {
        name: "RestError",
        statusCode: 400,
        code: "BadParameter",
      }),
      true,
    )
    expect(rejected._tag).toBe("VaultRequestRejected")
    expect(vaultReadFix(rejected, url)).toBe(
      "the vault refused the read (400): check target.vault_url and target.certificate_name",
    )
  })

  it("every class has a fix of its own", () => {
    const fixes = [
      fixOf(networkError("ECONNREFUSED")),
      fixOf(networkError("SELF_SIGNED_CERT_IN_CHAIN")),
      fixOf(restError(503, "ServiceUnavailable")),
      fixOf(restError(403, "Forbidden")),
      fixOf(networkError("ECONNRESET")),
    ]
    expect(new Set(fixes).size).toBe(fixes.length)
  })
})
