/**
 * What an operator does about a deployment's read of its vault that failed (`cannot read the
 * vault`), by the class of the failure: every class gets a fix, not only a timeout.
 */

/** The fields of a vault error the fix is chosen by (a core VaultError, or VaultNotFound). */
export interface VaultReadFailure {
  readonly _tag: string
  readonly cause?: unknown
  readonly timedOutAfterMs?: number | undefined
  readonly tlsRefused?: boolean | undefined
  readonly refusal?: string | undefined
  readonly permission?: string | undefined
}

/** Network codes of a connection that was never made: refused, a name that does not resolve, no route. */
const unreachableCodes: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EAI_NONAME",
  "EAI_FAIL",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
])

/** The status and network code the adapter's failure (azure-kv's KeyVaultRequestFailure) carries. */
const causeFacts = (
  cause: unknown,
): { readonly status: number | undefined; readonly code: string | undefined } => {
  if (typeof cause !== "object" || cause === null) return { status: undefined, code: undefined }
  const { statusCode, code } = cause as { readonly statusCode?: unknown; readonly code?: unknown }
  return {
    status: typeof statusCode === "number" ? statusCode : undefined,
    code: typeof code === "string" ? code : undefined,
  }
}

export const vaultReadFix = (e: VaultReadFailure, vaultUrl: string): string => {
  if (e.timedOutAfterMs !== undefined)
    return `the vault answered nothing within agent.request_timeout_seconds (${e.timedOutAfterMs / 1000} s): check the network path to the vault (a proxy, a firewall, DNS), or raise request_timeout_seconds`
  const { status, code } = causeFacts(e.cause)
  switch (e._tag) {
    case "VaultUnavailable":
      if (e.tlsRefused === true)
        return "this machine did not accept the vault's TLS certificate (the reason names why): behind a proxy or firewall that inspects TLS, trust its CA (NODE_EXTRA_CA_CERTS=/path/to/proxy-ca.pem in the agent's environment, or NODE_OPTIONS=--use-system-ca for the system store); a name that does not match means target.vault_url is not the vault's; retrying as is fails the same way"
      if (status !== undefined && status >= 500)
        return `the vault answered ${status}, a problem on the vault's side: the agent retries with backoff; if it lasts, check Azure's status (https://azure.status.microsoft) and the vault's Resource health in the Azure portal`
      if (code !== undefined && unreachableCodes.has(code))
        return `the vault could not be reached (${code}): check target.vault_url (${vaultUrl}) and the network path from this host (DNS, a firewall, HTTPS_PROXY and NO_PROXY in the agent's environment); the agent retries with backoff`
      return `the connection to the vault failed: check the network path from this host to ${vaultUrl} (a proxy, a firewall, DNS); the agent retries with backoff`
    case "VaultThrottled":
      return "the vault throttles requests (other clients of the vault count too): the agent waits out its Retry-After; if it lasts, lower agent.vault_concurrency or agent.concurrency, or find the other client"
    case "VaultForbidden":
      return e.refusal === "network"
        ? "the vault's firewall refused this host's address (the reason says which): add it to the vault's networking rules, or reach the vault through its private endpoint"
        : e.refusal === "disabled"
          ? "the certificate's latest version is disabled, and Key Vault reads no disabled version: enable it, or import a new version"
          : e.refusal === "tenant"
            ? "the vault refused the identity's token (no grant helps): check that the identity is in the vault's tenant and that the vault is in the target's cloud (`kvdeploy doctor` shows the token's tenant)"
            : e.refusal === "token"
              ? // A token this host still holds valid can be expired for the vault when the host's
                // clock was set back after it was obtained: the identity libraries judge it by it.
                // The agent asks for a new token then (azureVaults.ts), except for a managed identity.
                "the vault refused the identity's token (no grant helps): check that the identity is in the vault's tenant, that the vault is in the target's cloud, and that this host's clock is right (the agent asks for a new token at most once a minute, but a managed identity's token from the host's endpoint is kept until the agent restarts: restart it once the clock is right); `kvdeploy doctor` shows the token's tenant and checks its times against this host's clock"
              : e.refusal === "resource"
                ? "the vault asked for a token for another resource than the target's cloud.keyvault_resource (the reason names both): check target.vault_url, or set cloud.keyvault_resource to the resource the vault names"
                : `grant the identity ${e.permission === undefined ? "the permission the reason names" : e.permission} on the vault (a role such as Key Vault Certificates Officer, or an access policy); \`kvdeploy doctor\` shows which data actions work`
    case "VaultMalformedAnswer":
      return `something other than Key Vault answered (a proxy or gateway in between is the likely one): check target.vault_url (${vaultUrl}) and HTTPS_PROXY and NO_PROXY in the agent's environment`
    case "VaultRequestRejected":
      return `the vault refused the read${status === undefined ? "" : ` (${status})`}: check target.vault_url and target.certificate_name`
    default:
      return `check the network path from this host to ${vaultUrl}; the agent retries with backoff`
  }
}
