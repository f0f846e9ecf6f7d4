import * as Effect from "effect/Effect"
import { TokenRequestFailed } from "./CredentialUnavailable.js"
import { type ChainHeard, chainFailures, chainNotBuilt, withChainReport } from "./chainReport.js"
import type { ResolvedCredential } from "./credential.js"
import { explainTokenFailure } from "./tokenFailure.js"

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
          ...explainTokenFailure(error, resolved.identity.mode, resolved.identity),
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
