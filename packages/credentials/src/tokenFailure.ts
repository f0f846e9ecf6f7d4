/**
 * Why a token request failed, in words an operator can act on, and the fix: what `doctor`'s token
 * check says, and what a vault request that got no token says (azure-kv), so the two agree. Read
 * from the identity library's error by its own words; the secrets and key text an answer may echo
 * are left out (shownIdentityText). Loads no identity library (its own subpath export).
 */
import type { CredentialMode } from "./settings.js"
import {
  appNotInTenant,
  appNotInTenantFix,
  appNotInTenantReason,
  brokenTokenAnswer,
  identityProviderOutage,
  isTokenRequestTimedOut,
  messageWithoutTokenFileState,
  shownIdentityText,
  tenantMismatchFix,
  tenantNotAllowed,
  tenantNotAllowedReason,
} from "./tokenErrors.js"

/** What to do when a mode's credential has nothing to get a token from here. */
const unavailableFix: Record<CredentialMode, string> = {
  managed_identity:
    "Run on an Azure host with a managed identity (VM, App Service, Container Apps, AKS node), or in an AKS pod set up for workload identity (AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and a client id); with managed_identity_client_id, check that user-assigned identity is attached to this host or federated for the pod",
  workload_identity:
    "Run in an AKS pod whose service account is annotated for workload identity (AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and AZURE_TENANT_ID are injected there)",
  client_secret: "Set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for the service principal",
  default:
    "Run where a managed identity is assigned, set AZURE_* variables, or sign in with `az login` for local development",
}

/**
 * What the credential that failed was asked for, beyond its mode, when the caller knows it (doctor,
 * the token probe): what named the managed identity's client id (CredentialIdentity's
 * managedIdentityClientIdFrom; none for the system-assigned identity).
 */
export interface TokenFailureContext {
  readonly managedIdentityClientIdFrom?: "managed_identity_client_id" | "AZURE_CLIENT_ID" | undefined
  /**
   * The tenant the credential was given (AZURE_TENANT_ID), when known: an AADSTS700016 that names
   * another directory is a refusal in the vault's tenant, not a wrong client id. A credential
   * kvdeploy built notes it on its errors itself (noteCredentialTenant).
   */
  readonly tenantId?: string | undefined
}

/**
 * The fix for a managed identity endpoint's "Identity not found", by what asked it for which
 * identity: the user-assigned identity AZURE_CLIENT_ID named (the default chain takes that variable
 * for its managed identity too), the one managed_identity_client_id named, or the system-assigned
 * identity when no client id was given. One rule for the token check and the chain's source lines.
 */
export const identityNotFoundFix = (
  from: TokenFailureContext["managedIdentityClientIdFrom"],
  mode: CredentialMode | undefined,
): string => {
  switch (from) {
    case "AZURE_CLIENT_ID":
      return "The chain's managed identity asked for the user-assigned identity AZURE_CLIENT_ID names (@azure/identity's chain takes that variable for its managed identity too), and this host has no identity of that client id: unless AZURE_CLIENT_ID is meant to name a user-assigned identity of this host, unset it (a service principal's client id left in the environment, say) for the system-assigned identity, or name the user-assigned identity with credential_mode: managed_identity and managed_identity_client_id"
    case "managed_identity_client_id":
      return "The endpoint knows no identity of the configured client id on this host: set managed_identity_client_id to the client id of a user-assigned identity assigned to this VM, App Service or pod (az vm identity show, az webapp identity show), or leave it out for the system-assigned identity"
    default:
      return `The endpoint knows no system-assigned identity on this host (no client id was asked for): enable the host's system-assigned identity (az vm identity assign, az webapp identity assign), or name a user-assigned identity assigned to this host with ${mode === "managed_identity" ? "" : "credential_mode: managed_identity and "}managed_identity_client_id`
  }
}

/**
 * An identity library's message in words kvdeploy shows: without secrets, tokens or key text
 * (shownIdentityText), without the SDK's troubleshooting link and the HTTP answer's headers MSAL
 * appends, on one line, cut at `max` characters. For a failure no rule names, so the operator reads
 * what failed (a file that could not be read, a gateway's page) where no reason of kvdeploy's is.
 */
export const shownFailureText = (text: string, max = 400): string => {
  const cleaned = text
    .replace(/\s*To troubleshoot, visit https:\/\/aka\.ms\/\S+?\.(?=\s|$)/g, "")
    .replace(/\n?Headers: \{[^\n]*?\}(?= - Correlation ID|\n|$)/g, "")
    .replace(/(?:Error\(s\)|(?<= - )(?:Timestamp|Correlation ID|Trace ID)): Not Available(?: - )?/g, "")
    .replace(/ - (?=\s|$)/g, " ")
  const shown = shownIdentityText(cleaned)
  // A known secret a page broke across lines is whole again once they are glued: when gluing
  // them shows more to hide, the glued text is the one shown (its lines run together).
  const glued = shownIdentityText(cleaned.replace(/[ \t]*\r?\n[ \t]*/g, ""))
  const words = (hiddenCount(glued) > hiddenCount(shown) ? glued : shown)
    .replace(/\s+/g, " ")
    .replace(/,$/, "")
    .trim()
  return words.length > max ? `${words.slice(0, max)}…` : words
}

/** How many values a text shown by shownIdentityText had hidden (its "[…, not shown]" placeholders). */
const hiddenCount = (text: string): number => text.match(/\[[^\]\n]*, not shown\]/g)?.length ?? 0

/** The reason of a failure no rule names; the library's own words follow it (shownFailureText). */
export const unrecognisedTokenFailure = "the token request failed"

/** Why a token request failed, in words an operator can act on (the fix for the credential mode when it is known). */
export const explainTokenFailure = (
  error: unknown,
  mode?: CredentialMode,
  context: TokenFailureContext | undefined = undefined,
): { reason: string; fix: string } => {
  const explained = explainBare(error, mode, context)
  // Entra ID's own first sentence beside kvdeploy's words: its AADSTS code tells apart what one
  // reason covers (a federated credential's issuer or its subject, a secret expired or wrong).
  const text = messageWithoutTokenFileState(error)
  const said = /AADSTS(\d+):[^\r\n]*?(?:\.(?=\s|$)|(?=[\r\n])|$|(?= Trace ID:))/.exec(text)
  return said === null ||
    !explained.reason.startsWith("Entra ID") ||
    explained.reason.includes(`AADSTS${said[1]}`)
    ? explained
    : { ...explained, reason: `${explained.reason} (Entra ID: ${shownIdentityText(said[0]).slice(0, 300)})` }
}

const explainBare = (
  error: unknown,
  mode: CredentialMode | undefined,
  context: TokenFailureContext | undefined,
): { reason: string; fix: string } => {
  const name = error instanceof Error ? error.name : ""
  // Judged by the library's own words: the token file's state put after them (credential.ts) names
  // the file, which would read as Entra ID's refusal of a federated token.
  const text = messageWithoutTokenFileState(error)
  const code =
    (error as { code?: unknown; cause?: { code?: unknown } } | null)?.code ??
    (error as { cause?: { code?: unknown } } | null)?.cause?.code
  // A chain's message joins every source's: judged by any one, it would read as that source's
  // failure. Each source's own reason is listed apart (chainFailures).
  if (name === "AggregateAuthenticationError") {
    return {
      reason: "none of the default chain's sources gave a token (each one's reason is listed)",
      fix: unavailableFix[mode ?? "default"],
    }
  }
  // The vault's challenge named another tenant than the credential's, and the credential may not get
  // tokens for it (a token request without a challenge, as the token check's, never meets this).
  const tenants = tenantNotAllowed(error)
  if (tenants !== undefined) {
    return {
      reason: tenantNotAllowedReason(tenants),
      fix: tenantMismatchFix(tenants.vaultTenant),
    }
  }
  if (isTokenRequestTimedOut(error)) {
    return {
      reason: `the identity endpoint gave no token within ${error.timeoutMs / 1000} s (its own retries included)`,
      fix: "Check that the token endpoint answers: a proxy or firewall that accepts the connection and holds it, or an identity endpoint asking to wait (Retry-After) longer than that; then run the command again",
    }
  }
  const broken = brokenTokenAnswer(error)
  if (broken !== undefined) {
    return {
      reason: `the identity endpoint answered, but not with a token: ${broken}`,
      fix: "Check what answers at the identity endpoint (the authority host, or the managed identity endpoint): a proxy from HTTPS_PROXY without NO_PROXY for it, a captive portal, or a TLS-inspecting gateway that rewrites answers; the credential itself was not refused",
    }
  }
  // MSAL reads the tenant's OpenID configuration only from an authority it has no metadata for (a
  // custom cloud's): an unknown tenant's 400 there and an outage's 500 end in the same error.
  if (/endpoints_resolution_error|openid-configuration/i.test(text)) {
    return {
      reason:
        "the authority host could not be reached or did not serve the tenant's OpenID configuration (it answers so for a tenant it does not know, too)",
      fix: "Check network access to the authority host (proxy, firewall, DNS, TLS trust), that it is the authority of the vault's cloud (a custom cloud's is cloud.authority_host in the target configuration), and that AZURE_TENANT_ID (or the identity's tenant) is right",
    }
  }
  if (
    /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|ECONNRESET|socket hang up|network/i.test(
      `${String(code)} ${text}`,
    )
  ) {
    return {
      reason: "the token endpoint could not be reached",
      fix: "Check network access to the authority host or managed identity endpoint (proxy, firewall, DNS)",
    }
  }
  // Entra ID's specific codes first: its OAuth error code (invalid_client) is the same for a refused
  // secret and a refused federated token.
  const secretRefused = {
    reason: "Entra ID refused the client secret",
    fix: "Check AZURE_CLIENT_SECRET is current and belongs to AZURE_CLIENT_ID",
  }
  const assertionRefused = {
    reason: "Entra ID refused the federated token",
    fix: "Check the federated identity credential's issuer and subject match the service account, and the token is fresh",
  }
  if (/AADSTS7000215|AADSTS7000222/i.test(text)) return secretRefused
  // A service principal's certificate signs a client assertion too: refused by EnvironmentCredential
  // (AZURE_CLIENT_CERTIFICATE_PATH, under default) or ClientCertificateCredential, it is the
  // certificate that was refused, not a federated token (which only the workload identity sends).
  if (
    /^(?:EnvironmentCredential|ClientCertificateCredential)\b/.test(text) &&
    /AADSTS700027\b|AADSTS700023\b|AADSTS50012\b|assertion/i.test(text)
  )
    return {
      reason: "Entra ID refused the service principal's client certificate (its signed client assertion)",
      fix: "Check the certificate in AZURE_CLIENT_CERTIFICATE_PATH is one uploaded to AZURE_CLIENT_ID's app registration (Certificates & secrets) and not expired there, and that the file holds that certificate's own private key",
    }
  if (/AADSTS700024\b/i.test(text))
    return {
      reason: "Entra ID refused the federated token as expired or not valid yet (AADSTS700024)",
      fix: "The token in AZURE_FEDERATED_TOKEN_FILE must be renewed before it expires (on AKS the kubelet rewrites the projected service account token): check that the variable names that file and not a copy, and this host's clock; doctor shows the token's times",
    }
  if (/AADSTS70021\b|AADSTS700211|AADSTS700212|AADSTS700213|AADSTS50027|federat|assertion/i.test(text))
    return assertionRefused
  if (/AADSTS90002\b|invalid_tenant/i.test(text)) {
    return {
      reason: "Entra ID does not know this tenant",
      fix: "Check AZURE_TENANT_ID (a tenant id or a verified domain of the directory the identity is in) and that the authority host is the vault's cloud's",
    }
  }
  // No application of the client id in the tenant the request asked, and that is not the
  // credential's own but the vault's (its challenge named it, and the credential may ask it): the
  // application has no service principal there, or the client id is no application's (Entra ID
  // answers both alike); the tenant variable is right, and the tenant is allowed already.
  const elsewhere = appNotInTenant(error, context?.tenantId)
  if (elsewhere !== undefined)
    return { reason: appNotInTenantReason(elsewhere), fix: appNotInTenantFix(elsewhere.vaultTenant) }
  if (/AADSTS700016|unauthorized_client|application.*not found/i.test(text)) {
    return {
      reason: "Entra ID does not know this client id in this tenant",
      fix: "Check AZURE_CLIENT_ID and AZURE_TENANT_ID",
    }
  }
  if (/invalid_client/i.test(text)) {
    if (mode === "workload_identity") return assertionRefused
    if (mode === "client_secret") return secretRefused
    return {
      reason: "Entra ID refused the credential",
      fix: "Check the credential the chain used (doctor's credential line): its secret, federated token or identity",
    }
  }
  // The provider's own outage or throttling: nothing is wrong with the credential; it passes.
  if (identityProviderOutage(error)) {
    return {
      reason:
        "the identity provider (Entra ID or the managed identity endpoint) is unavailable or throttling for now",
      fix: "Retry in a few minutes; nothing is wrong with the credential itself",
    }
  }
  // A managed identity endpoint that answered and refused (an identity it does not know, a wrong
  // IDENTITY_HEADER): not "no credential source", and the endpoint's own words say which.
  if (/ManagedIdentityCredential: Authentication failed/i.test(text)) {
    // The endpoint's own words are its description: MSAL adds, for an answer with no error of its
    // own (no JSON body), the HTTP status and the answer's headers after it, and a header's name there
    // is no refusal of the identity header.
    const description = (
      /Description: (.*?)(?:\nHttp status code:| - Correlation ID|$)/s.exec(text)?.[1] ?? ""
    ).trim()
    const status = /Http status code: (\d{3})/.exec(text)?.[1]
    if (status !== undefined && /^A (?:client|server) error occur/i.test(description))
      return {
        reason: `the managed identity endpoint answered HTTP ${status} without an error of its own (no managed identity endpoint's answer: a proxy or gateway may have answered in its place)`,
        fix: "Check what answers at this host's managed identity endpoint (doctor's identity line names it): HTTPS_PROXY or HTTP_PROXY without NO_PROXY for its address sends the request to a proxy, and outside Azure (or in a container without the host's network) nothing of Azure answers there; the identity itself was not judged",
      }
    const said = shownIdentityText(
      description === "" ? (text.split("\n")[0] ?? "").trim() : description,
    ).slice(0, 300)
    return {
      reason: `the managed identity endpoint refused the token request: ${said}`,
      fix: /identity not found/i.test(description)
        ? identityNotFoundFix(context?.managedIdentityClientIdFrom, mode)
        : /identity[-_ ]?header|MSI_SECRET|secret header/i.test(description)
          ? "The endpoint refused its identity header: IDENTITY_HEADER must be the value the platform set for this process (App Service, Container Apps, Functions), not a copy from elsewhere"
          : "Check the managed identity assigned to this host and the client id kvdeploy asks for (managed_identity_client_id), in the endpoint's words above",
    }
  }
  if (name === "CredentialUnavailableError" || /\bunavailable\b/i.test(text)) {
    return {
      reason: "no credential source is available in this environment",
      fix: unavailableFix[mode ?? "default"],
    }
  }
  if (/expires_on|expir/i.test(text)) {
    return {
      reason: "the token endpoint answered without a usable expiry",
      fix: "Check the managed identity endpoint",
    }
  }
  // No rule of kvdeploy's names it: the library's own words are the reason (a certificate file that
  // could not be read or holds no certificate, a gateway's page), without secrets or tokens.
  const said = shownFailureText(text)
  return {
    reason: said === "" ? unrecognisedTokenFailure : `${unrecognisedTokenFailure}: ${said}`,
    fix: "Check what the error names (a file a variable points at, the credential's variables, what answers at the identity endpoint) for the credential in use",
  }
}
