import { withoutKeyText } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import { TokenRequestFailed } from "./CredentialUnavailable.js"
import { type ChainHeard, chainFailures, chainNotBuilt, withChainReport } from "./chainReport.js"
import type { ResolvedCredential } from "./credential.js"
import {
  brokenTokenAnswer,
  identityProviderOutage,
  isTokenRequestTimedOut,
  messageWithoutTokenFileState,
  tenantMismatchFix,
  tenantNotAllowed,
  tenantNotAllowedReason,
} from "./tokenErrors.js"

/** What a token says about the identity that got it. The token itself is never kept. */
export interface TokenProbe {
  /** When the token expires, as its endpoint said; undefined when that is no time (an absurd `expires_in`). */
  readonly expiresOn: Date | undefined
  readonly tenantId?: string
  readonly objectId?: string
  readonly appId?: string
  readonly audience?: string
  /** For the default chain: the source that answered (EnvironmentCredential, ManagedIdentityCredential, ...), when the SDK said. */
  readonly answeredBy?: string
  /** Whether the token is a JWT whose claims could be read (Entra ID's access tokens are). */
  readonly jwt: boolean
  /** The token's own `exp` and `nbf` claims, when it has them. */
  readonly claimExpiresOn?: Date
  readonly notBefore?: Date
}

/** A problem of a token obtained: what `doctor` reports after its token check. */
export interface TokenProblem {
  readonly check: string
  readonly status: "fail" | "warn"
  readonly detail: string
  readonly fix: string
}

/** How far this host's clock may be from the identity endpoint's before a token's times count. */
const clockSkewMs = 5 * 60_000

const guid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * The tenant a token must be of: the one configured (AZURE_TENANT_ID) when the source that got the
 * token uses it (a service principal, workload identity; in a default chain, when one of those
 * answered). A managed identity's token is of the host's tenant, whatever AZURE_TENANT_ID says.
 */
export const expectedTenant = (
  identity: { readonly mode: ResolvedCredential["identity"]["mode"]; readonly tenantId?: string | undefined },
  probe: Pick<TokenProbe, "answeredBy">,
): string | undefined =>
  identity.mode === "client_secret" ||
  identity.mode === "workload_identity" ||
  (identity.mode === "default" &&
    (probe.answeredBy === "EnvironmentCredential" || probe.answeredBy === "WorkloadIdentityCredential"))
    ? identity.tenantId
    : undefined

/**
 * What is wrong with a token the credential obtained, read from its claims: Key Vault would refuse
 * it, so a probe that only asked whether a token came would pass what a deploy then fails. Judged:
 * - not a JWT: Entra ID's access tokens are; something else answered (warn: the vault read after
 *   it tells whether the vault takes it);
 * - its audience is not the vault's resource (the target's cloud; an application id audience is
 *   taken as it is);
 * - expired, or not valid yet, beyond 5 minutes of clock skew (this host's clock, or a replayed token);
 * - issued by another tenant than `expected.tenantId` (expectedTenant; when it is a tenant id).
 */
export const tokenProblems = (
  probe: TokenProbe,
  expected: { readonly resource: string; readonly tenantId?: string | undefined; readonly nowMs?: number },
): ReadonlyArray<TokenProblem> => {
  if (!probe.jwt)
    return [
      {
        check: "token claims",
        status: "warn",
        detail:
          "the token is not a JWT, so its audience, tenant and times cannot be read (Entra ID's access tokens are JWTs)",
        fix: "Check what answers at the identity endpoint (a proxy or gateway answering in its place); the vault read below shows whether Key Vault takes the token",
      },
    ]
  const problems: Array<TokenProblem> = []
  const now = expected.nowMs ?? Date.now()
  const resource = expected.resource.replace(/\/+$/, "")
  const audience = probe.audience?.replace(/\/+$/, "")
  // A v2 token names the resource by its application id (a GUID), which Key Vault takes too: only
  // a URI is compared, without regard to case.
  if (audience !== undefined && !guid.test(audience) && audience.toLowerCase() !== resource.toLowerCase())
    problems.push({
      check: "token audience",
      status: "fail",
      detail: `the token is for ${audience}, not the vault's resource ${resource}: Key Vault refuses it`,
      fix: "Check the target's cloud (authority host and keyvault_resource) is the vault's",
    })
  const expiry = probe.claimExpiresOn ?? probe.expiresOn
  if (expiry !== undefined && expiry.getTime() + clockSkewMs < now)
    problems.push({
      check: "token times",
      status: "fail",
      detail: `the token expired at ${expiry.toISOString()}, before this host's time ${new Date(now).toISOString()}`,
      fix: "Check this host's clock (timedatectl; an NTP source), and that nothing between this host and the identity endpoint answers old tokens",
    })
  if (probe.notBefore !== undefined && probe.notBefore.getTime() - clockSkewMs > now)
    problems.push({
      check: "token times",
      status: "fail",
      detail: `the token is not valid before ${probe.notBefore.toISOString()}, after this host's time ${new Date(now).toISOString()}: this host's clock is behind`,
      fix: "Check this host's clock (timedatectl; an NTP source)",
    })
  const configured = expected.tenantId
  if (
    configured !== undefined &&
    guid.test(configured) &&
    probe.tenantId !== undefined &&
    probe.tenantId.toLowerCase() !== configured.toLowerCase()
  )
    problems.push({
      check: "token tenant",
      status: "fail",
      detail: `the token is of tenant ${probe.tenantId}, not AZURE_TENANT_ID's ${configured}`,
      fix: "Check AZURE_TENANT_ID and the authority host: the token came from another directory than the one configured",
    })
  return problems
}

/** A token's expiry in words: its time, or that the endpoint gave none that is a time. */
export const expiryInWords = (probe: Pick<TokenProbe, "expiresOn">): string =>
  probe.expiresOn === undefined
    ? "an expiry that is no time (the identity endpoint's expires_in or expires_on is out of range)"
    : `expires ${probe.expiresOn.toISOString()}`

/** Key Vault's token scope for a cloud's Key Vault resource, e.g. https://vault.azure.net/.default. */
export const keyVaultScope = (keyVaultResource: string): string =>
  `${keyVaultResource.replace(/\/+$/, "")}/.default`

/** A JWT's claims, or undefined for a token that is not a JWT (three parts, a JSON object in the second). */
const claimsOf = (token: string): Record<string, unknown> | undefined => {
  const parts = token.split(".")
  const payload = parts[1]
  if (parts.length !== 3 || payload === undefined) return undefined
  try {
    const parsed: unknown = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"))
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}

/** A NumericDate claim (seconds since the epoch) as a Date, when it is one a Date holds. */
const dateClaim = (value: unknown): Date | undefined => {
  if (typeof value !== "number") return undefined
  const date = new Date(value * 1000)
  return Number.isFinite(date.getTime()) ? date : undefined
}

/** What to do when a mode's credential has nothing to get a token from here. */
const unavailableFix: Record<ResolvedCredential["identity"]["mode"], string> = {
  managed_identity:
    "Run on an Azure host with a managed identity (VM, App Service, Container Apps, AKS node), or in an AKS pod set up for workload identity (AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and a client id); with managed_identity_client_id, check that user-assigned identity is attached to this host or federated for the pod",
  workload_identity:
    "Run in an AKS pod whose service account is annotated for workload identity (AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and AZURE_TENANT_ID are injected there)",
  client_secret: "Set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for the service principal",
  default:
    "Run where a managed identity is assigned, set AZURE_* variables, or sign in with `az login` for local development",
}

/** Why a token request failed, in words an operator can act on (the fix for the credential mode when it is known). */
export const explainTokenFailure = (
  error: unknown,
  mode?: ResolvedCredential["identity"]["mode"],
): { reason: string; fix: string } => {
  const explained = explainBare(error, mode)
  // Entra ID's own first sentence beside kvdeploy's words: its AADSTS code tells apart what one
  // reason covers (a federated credential's issuer or its subject, a secret expired or wrong).
  const text = messageWithoutTokenFileState(error)
  const said = /AADSTS(\d+):[^\r\n]*?(?:\.(?=\s|$)|(?=[\r\n])|$|(?= Trace ID:))/.exec(text)
  return said === null ||
    !explained.reason.startsWith("Entra ID") ||
    explained.reason.includes(`AADSTS${said[1]}`)
    ? explained
    : { ...explained, reason: `${explained.reason} (Entra ID: ${withoutKeyText(said[0]).slice(0, 300)})` }
}

const explainBare = (
  error: unknown,
  mode?: ResolvedCredential["identity"]["mode"],
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
    const said = withoutKeyText(
      (/Description: (.*?)(?: - Correlation ID|$)/.exec(text)?.[1] ?? text.split("\n")[0] ?? "").trim(),
    ).slice(0, 300)
    return {
      reason: `the managed identity endpoint refused the token request: ${said}`,
      fix: /identity not found/i.test(text)
        ? "The endpoint knows no identity of that client id on this host: set managed_identity_client_id to the client id of a user-assigned identity assigned to this VM, App Service or pod (az vm identity show, az webapp identity show), or leave it out for the system-assigned identity"
        : /header/i.test(text)
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
  return {
    reason: "the token request failed",
    fix: "Run `kvdeploy doctor` for details and check the identity's configuration",
  }
}

/** Get one token for `scope` and report what it says, without keeping the token. */
export const probeToken = Effect.fn("Credentials.probeToken")(function* (
  resolved: ResolvedCredential,
  scope: string,
) {
  const request = (heard: ChainHeard | undefined) =>
    Effect.tryPromise({
      try: (signal) => resolved.credential.getToken(scope, { abortSignal: signal }),
      catch: (error) => {
        const chainSources = chainFailures(error, heard?.failures)
        // The sources the SDK could not build, said only when the chain failed (with a token they are
        // no reason for anything), also when none threw: a chain whose every source was left
        // unbuilt fails with "Failed to retrieve a valid token" and an empty error list.
        const notBuilt = chainNotBuilt(heard?.skipped ?? [])
        return new TokenRequestFailed({
          mode: resolved.identity.mode,
          source: resolved.identity.source,
          ...explainTokenFailure(error, resolved.identity.mode),
          ...(chainSources.length === 0 ? {} : { chainSources }),
          ...(notBuilt.length === 0 ? {} : { chainNotBuilt: notBuilt }),
          cause: error,
        })
      },
    })
  // The default chain does not say which source answered but in its log: listen for that line, and
  // for its sources' own error lines, which name the source of an error that does not name itself.
  const [token, answeredBy] =
    resolved.identity.mode === "default"
      ? yield* withChainReport(request)
      : [yield* request(undefined), undefined]
  if (token === null) {
    return yield* new TokenRequestFailed({
      mode: resolved.identity.mode,
      source: resolved.identity.source,
      reason: "the credential returned no token",
      fix: "Check the identity has access to the tenant",
    })
  }
  const claims = claimsOf(token.token)
  const claim = (name: string): string | undefined => {
    const value = claims?.[name]
    return typeof value === "string" ? value : undefined
  }
  const claimExpiresOn = dateClaim(claims?.exp)
  const notBefore = dateClaim(claims?.nbf)
  const tenantId = claim("tid")
  const objectId = claim("oid")
  const appId = claim("appid") ?? claim("azp")
  const audience = claim("aud")
  // An endpoint (or a proxy) may answer an expiry no Date holds (expires_in: 99999999999999).
  const expiresOn = new Date(token.expiresOnTimestamp)
  return {
    expiresOn: Number.isFinite(expiresOn.getTime()) ? expiresOn : undefined,
    ...(tenantId === undefined ? {} : { tenantId }),
    ...(objectId === undefined ? {} : { objectId }),
    ...(appId === undefined ? {} : { appId }),
    ...(audience === undefined ? {} : { audience }),
    ...(answeredBy === undefined ? {} : { answeredBy }),
    jwt: claims !== undefined,
    ...(claimExpiresOn === undefined ? {} : { claimExpiresOn }),
    ...(notBefore === undefined ? {} : { notBefore }),
  } satisfies TokenProbe
})
