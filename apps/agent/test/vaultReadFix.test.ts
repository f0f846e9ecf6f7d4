/**
 * Every class of failed vault read (`cannot read the vault`) gets its own fix, as azure-kv's adapter
 * maps what the SDK throws: a refused connection and an unknown host (vault_url, the network), a
 * TLS certificate not accepted (the CA trust, a proxy that inspects TLS), a 5xx (retrying; Azure's
 * status), a timeout (request_timeout_seconds), a refusal of the identity (the grant).
 */
import { toVaultError } from "@kvdeploy/azure-kv"
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
