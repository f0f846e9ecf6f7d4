/**
 * What a token error says about the identity provider, read from the data @azure/identity and
 * MSAL attach to it. One rule for `doctor`'s explanation (probe.ts) and the Vault adapter's
 * mapping (@kvdeploy/azure-kv), so the two never disagree. Imports no identity library: the adapter
 * loads it without @azure/identity.
 */
import { closeSync, openSync, readSync } from "node:fs"
import { withoutKeyText, withoutSecretValues } from "@kvdeploy/core"

/**
 * EnvironmentCredential (alone, or the first source of DefaultAzureCredential) turns every failure
 * of the credential it uses into an AuthenticationError of status 400 whose text ends with that
 * failure's own text (its "More details:" taken out): the 400 is its own, never the identity
 * provider's. What is left is MSAL's message, laid out by MSAL: the error code first
 * (`temporarily_unavailable: Error(s): … - Description: …`), and for an answer that was not
 * Entra's JSON (a proxy's or a gateway's page), an `Http status code: 429` line. The wrapped
 * failure's text, and that status when MSAL wrote it; a JSON answer's status is not in the text
 * (a 429 whose JSON names no transient code is then read as a refusal, as nothing says otherwise).
 */
const environmentWrapped = (
  error: unknown,
): { readonly status: number | undefined; readonly text: string } | undefined => {
  const e = error as { readonly name?: unknown; readonly message?: unknown } | null
  if (e?.name !== "AuthenticationError" || typeof e.message !== "string") return undefined
  if (!e.message.startsWith("EnvironmentCredential authentication failed")) return undefined
  const at = e.message.indexOf("More details:")
  // The wrapper's own layout: "<error> Status code: 400\nMore details:\n<the failure's text>,".
  const text =
    at < 0
      ? ""
      : e.message
          .slice(at + "More details:".length)
          .trim()
          .replace(/,$/, "")
  // MSAL's own line, after its description of a non-JSON answer ("\nHttp status code: 503\nHttp status message: …").
  const status = /\nHttp status code: (\d{3})\nHttp status message: /.exec(text)?.[1]
  return { status: status === undefined ? undefined : Number(status), text }
}

/** MSAL's transient error codes leading its message, or Entra's transient AADSTS numbers. */
const transientText = /^(?:temporarily_unavailable|server_error)\b|\bAADSTS(?:90033|90055)\b/

/**
 * The same in a wrapped MSAL message, where nothing but the layout tells MSAL's words from Entra's
 * description: the code leading it, or a description that starts with a transient AADSTS number;
 * or MSAL's replay of an answer it keeps for Retry-After, or 60 s (its throttling cache, which keeps
 * 429 and 5xx answers and any other that carries Retry-After: the same credential's next request
 * gets it without a request). A replay leads with the answer's AADSTS numbers (`90033: AADSTS90033:
 * …`), or with nothing (`: …`) when it named none, and is empty when the answer had neither numbers
 * nor a description. An answer's own message leads with its error code (`invalid_client: Error(s):
 * …`), or with `: Error(s): …` when it named none. (A 4xx that carried Retry-After would be replayed
 * as an outage too, as for ClientSecretCredential; Entra sends Retry-After with 429 and 503.)
 */
const wrappedTransientText =
  /^(?:temporarily_unavailable|server_error):|- Description: AADSTS(?:90033|90055):|^(?:\d+(?: \d+)*)?: (?!Error\(s\):)|^$/

/**
 * The status of a token error: @azure/identity's own, or that of MSAL's error it wraps (its cause),
 * or for EnvironmentCredential's wrapper, the wrapped failure's.
 */
export const tokenErrorStatus = (error: unknown): number | undefined => {
  const wrapped = environmentWrapped(error)
  if (wrapped !== undefined) return wrapped.status
  const e = error as { readonly statusCode?: unknown; readonly cause?: { readonly status?: unknown } } | null
  return typeof e?.statusCode === "number"
    ? e.statusCode
    : typeof e?.cause?.status === "number"
      ? e.cause.status
      : undefined
}

/**
 * The identity provider (Entra ID or a managed identity endpoint) is down or throttling for now:
 * its status is 429 or 5xx, MSAL replays such an answer without a request, or MSAL says so with its
 * transient codes (AADSTS90033, AADSTS90055). Never judged from a message's free text (a refusal
 * naming a tenant "Throttle Labs" is no outage), and never for a chain's aggregate error, whose
 * text mixes every source's.
 */
export const identityProviderOutage = (error: unknown): boolean => {
  const e = error as {
    readonly name?: unknown
    readonly message?: unknown
    readonly cause?: { readonly name?: unknown; readonly errorCode?: unknown; readonly status?: unknown }
  } | null
  if (e?.name === "AggregateAuthenticationError") return false
  const status = tokenErrorStatus(error)
  if (status !== undefined) return status === 429 || status >= 500
  // EnvironmentCredential's wrapper keeps only the wrapped failure's text, laid out by MSAL.
  const wrapped = environmentWrapped(error)
  if (wrapped !== undefined) return wrappedTransientText.test(wrapped.text)
  // MSAL answering by itself: after a 429 or 5xx (or an answer with Retry-After) it sends no token
  // request for Retry-After, or 60 s, and throws that answer's text again as a ServerError with no
  // status (its ThrottlingUtils). A ServerError made from an answer always has the answer's status.
  if (e?.cause?.name === "ServerError" && e.cause.status === undefined) return true
  const code = e?.cause?.errorCode
  return (
    code === "temporarily_unavailable" ||
    code === "server_error" ||
    // Judged by the library's own words, without the token file's state put after them.
    (typeof e?.message === "string" && transientText.test(messageWithoutTokenFileState(error)))
  )
}

/**
 * The identity endpoint answered, but its answer was no token: what was wrong with it, in words, or
 * undefined. Such an answer comes from something other than the identity endpoint (a proxy, a
 * captive portal, a gateway that rewrote the answer) or a broken endpoint; it is neither a refused
 * credential nor an outage. Read from what MSAL and @azure/identity attach:
 * - MSAL's ServerError for a 2xx answer it could not read as a token answer (an HTML page, an
 *   empty body: `unknown_error`, with the status);
 * - @azure/identity's `Response had no "expiresOn" property.`, its words for an answer without an
 *   access token or an expiry;
 * - MSAL's `token_claims_cnf_required_for_signedjwt`: a token of type `pop` that was not asked for.
 * The text is checked too, for EnvironmentCredential's wrapper, which keeps the text alone.
 */
export const brokenTokenAnswer = (error: unknown): string | undefined => {
  const e = error as {
    readonly name?: unknown
    readonly message?: unknown
    readonly errors?: unknown
    readonly cause?: { readonly name?: unknown; readonly errorCode?: unknown; readonly status?: unknown }
  } | null
  // A chain (credential_mode default): the source that reached an endpoint and got no token from
  // it, when one did (the others are most often not configured here).
  if (e?.name === "AggregateAuthenticationError")
    return Array.isArray(e.errors)
      ? e.errors.map((inner: unknown) => brokenTokenAnswer(inner)).find((found) => found !== undefined)
      : undefined
  const text = typeof e?.message === "string" ? messageWithoutTokenFileState(error) : ""
  const status = e?.cause?.status
  const code = e?.cause?.errorCode
  // A 2xx whose JSON names an OAuth error (invalid_client, AADSTS…) is Entra's refusal, read as such.
  if (
    (e?.cause?.name === "ServerError" &&
      typeof status === "number" &&
      status >= 200 &&
      status < 300 &&
      (code === undefined || code === "unknown_error")) ||
    (/\bHttp status code: 2\d\d\b/.test(text) && !/\bAADSTS\d+/.test(text))
  )
    return `it answered ${typeof status === "number" ? status : "2xx"} with something that is not a token answer (an HTML page, an empty body or other text)`
  if (/Response had no "expiresOn" property/.test(text)) return "its answer had no access token or no expiry"
  if (
    e?.cause?.errorCode === "token_claims_cnf_required_for_signedjwt" ||
    /token_claims_cnf_required_for_signedjwt/.test(text)
  )
    return "its answer's token type was not Bearer (a proof-of-possession token, which kvdeploy does not ask for)"
  return undefined
}

const timedOutBrand: unique symbol = Symbol.for("@kvdeploy/credentials/TokenRequestTimedOut")

/** Whether `error` is a TokenRequestTimedOut, from whichever copy of this module made it. */
export const isTokenRequestTimedOut = (error: unknown): error is TokenRequestTimedOut =>
  typeof error === "object" &&
  error !== null &&
  (error as { [timedOutBrand]?: unknown })[timedOutBrand] === true

/**
 * Named as @azure/identity names a credential that cannot get a token, and carrying ETIMEDOUT, so
 * the Vault adapter reads it as what it is: no token, nothing sent to the vault, the identity
 * endpoint not answering (unavailable for now), not an import that may have taken effect.
 */
export class TokenRequestTimedOut extends Error {
  readonly code = "ETIMEDOUT"
  /** Its brand, read by isTokenRequestTimedOut across copies of this module (a bundle's, dist's, src's). */
  readonly [timedOutBrand] = true
  constructor(
    readonly timeoutMs: number,
    setting: string | undefined,
  ) {
    super(
      `the token request gave no token within ${timeoutMs} ms (ETIMEDOUT${setting === undefined ? "" : `; ${setting}`}), the identity library's own retries included: the identity endpoint (Entra ID, IMDS or the App Service identity endpoint) did not answer, or answered only with errors the library retries (as IMDS's 410 while a managed identity is set up); check that it is reachable and answering`,
    )
    this.name = "CredentialUnavailableError"
  }
}

/**
 * The `code` of forKeyVaultScope's refusal (a CredentialUnavailableError): the vault asked a token
 * for another resource than the target cloud's keyvault_resource. The adapter tells it from a
 * refused credential by it: the configuration is to fix, not the credential.
 */
export const KEY_VAULT_SCOPE_REFUSED = "KeyVaultScopeRefused"

/**
 * The `code` of the refusal kvdeploy's credentials give (a CredentialUnavailableError, carrying
 * `vaultTenant` and `credentialTenant`) when a Key Vault challenge asks a token for another tenant
 * than the credential's and @azure/identity will not get one for it (tenantNotAllowed).
 */
export const VAULT_TENANT_NOT_ALLOWED = "VaultTenantNotAllowed"

/** The vault's tenant, and the credential's when it is known, that are not the same. */
export interface TenantMismatch {
  /** The tenant the vault's challenge names: the vault's. */
  readonly vaultTenant: string
  /** The tenant the credential gets tokens of (AZURE_TENANT_ID, or the token's issuer), when known. */
  readonly credentialTenant: string | undefined
}

/**
 * @azure/identity's refusal (processMultiTenantRequest, a CredentialUnavailableError) of a token
 * for a tenant the credential was not given and does not additionally allow: "The current
 * credential is not configured to acquire tokens for tenant <id>. To enable acquiring tokens for
 * this tenant add it to the AdditionallyAllowedTenants on the credential options, …".
 */
const notAllowedTenantText = /not configured to acquire tokens for tenant (\S+?)\.(?=\s|$)/

/**
 * The vault is in another tenant than the credential's, as a token error says: Key Vault's challenge
 * named the vault's tenant, keyvault-common asked the credential for a token of it, and the
 * credential refused (not one of its additionally allowed tenants), before any request. Read from
 * kvdeploy's own refusal (VAULT_TENANT_NOT_ALLOWED, which names both tenants), or from
 * @azure/identity's text: alone, inside EnvironmentCredential's wrapper (credential_mode default),
 * or as one of a chain's errors. Undefined for any other error.
 */
export const tenantNotAllowed = (error: unknown): TenantMismatch | undefined => {
  const e = error as {
    readonly code?: unknown
    readonly vaultTenant?: unknown
    readonly credentialTenant?: unknown
    readonly name?: unknown
    readonly message?: unknown
    readonly errors?: unknown
  } | null
  if (e === null || typeof e !== "object") return undefined
  if (e.code === VAULT_TENANT_NOT_ALLOWED && typeof e.vaultTenant === "string")
    return {
      vaultTenant: e.vaultTenant,
      credentialTenant: typeof e.credentialTenant === "string" ? e.credentialTenant : undefined,
    }
  if (e.name === "AggregateAuthenticationError")
    return Array.isArray(e.errors)
      ? e.errors.map((inner: unknown) => tenantNotAllowed(inner)).find((found) => found !== undefined)
      : undefined
  const tenant = typeof e.message === "string" ? notAllowedTenantText.exec(e.message)?.[1] : undefined
  return tenant === undefined ? undefined : { vaultTenant: tenant, credentialTenant: undefined }
}

/**
 * An identity of the vault's tenant, the first way out of every tenant mismatch: a service principal
 * or workload identity registered there.
 */
const vaultTenantIdentityFix = (vaultTenant: string): string =>
  `use an identity of the vault's tenant (a service principal or workload identity there: AZURE_TENANT_ID=${vaultTenant}; a managed identity gets tokens of its own tenant only)`

/**
 * What to do when the vault's tenant is not the credential's, for the operator: an identity of the
 * vault's tenant, or, for a multi-tenant application that has a service principal there, that
 * tenant allowed. One text for the deploy's reason, the agent's log and doctor.
 */
export const tenantMismatchFix = (vaultTenant: string): string =>
  `${vaultTenantIdentityFix(vaultTenant)}, or, if the application is multi-tenant and has a service principal in that tenant, allow it: AZURE_ADDITIONALLY_ALLOWED_TENANTS=${vaultTenant} (client_secret, workload_identity and default; several tenants separated by ";")${
    multiTenantAuthDisabled()
      ? "; in those three modes, also unset AZURE_IDENTITY_DISABLE_MULTITENANTAUTH, which is set here: with it @azure/identity asks the credential's own tenant whatever the vault names, allowed or not"
      : ""
  }`

/**
 * The directory Entra ID's AADSTS700016 names: "Application with identifier '<client id>' was not
 * found in the directory '<directory>'" (a tenant's id, its domain name, or its display name, as
 * Entra ID writes it), when the text says one.
 */
export const appNotFoundDirectory = (text: string): string | undefined => {
  const named = /AADSTS700016\b[^\r\n]*?was not found in the directory '([^'\r\n]*)'/i.exec(text)?.[1]?.trim()
  return named === undefined || named === "" ? undefined : named
}

const tenantIdShape = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const domainShape = /^[a-z0-9-]+(?:\.[a-z0-9-]+)+$/i

/**
 * Whether `directory` (as Entra ID named it) is another tenant than `credentialTenant`: both tenant
 * ids, or both domain names, that differ. A display name, or an id beside a domain name, may be the
 * same tenant: not told. Only for an error no kvdeploy credential noted the tenant it asked on
 * (noteRequestedTenant), which says it whatever text names the directory.
 */
const isOtherTenant = (directory: string, credentialTenant: string): boolean => {
  const sameShape =
    (tenantIdShape.test(directory) && tenantIdShape.test(credentialTenant)) ||
    (domainShape.test(directory) && domainShape.test(credentialTenant) && !tenantIdShape.test(directory))
  return sameShape && directory.toLowerCase() !== credentialTenant.toLowerCase()
}

/**
 * Where a credential notes its own tenant on a failed token request's error (noteCredentialTenant):
 * under a registered symbol, so any copy of this module reads it; not enumerable.
 */
const credentialTenantKey: unique symbol = Symbol.for("@kvdeploy/credentials/credentialTenant")

/**
 * Where a credential notes the tenant its failed token request asked (noteRequestedTenant): the
 * tenant's id as Key Vault's challenge named it, or `null` for the credential's own.
 */
const requestedTenantKey: unique symbol = Symbol.for("@kvdeploy/credentials/requestedTenant")

/** Put `value` on `error` under `key`, not enumerable (JSON and util.inspect leave it out). */
const noteOn = (error: unknown, key: symbol, value: string | null): void => {
  if (typeof error !== "object" || error === null || !Object.isExtensible(error)) return
  Object.defineProperty(error, key, { value, enumerable: false, writable: true, configurable: true })
}

/**
 * Note the tenant a credential was given (AZURE_TENANT_ID) on its failed token request's error, so
 * a reader of the error can tell a refusal in another tenant (the vault's, which the challenge asked
 * for) from one in the credential's own (appNotInTenant).
 */
export const noteCredentialTenant = (error: unknown, tenant: string): void =>
  noteOn(error, credentialTenantKey, tenant)

/** The tenant noteCredentialTenant put on `error`, if any. */
const notedCredentialTenant = (error: unknown): string | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const noted = (error as { [credentialTenantKey]?: unknown })[credentialTenantKey]
  return typeof noted === "string" ? noted : undefined
}

/**
 * Note on a failed token request's error the tenant the request went to, where the attempt was
 * made (forConfiguredTenant, namingVaultTenant): `asked`, the tenant given in the request's options
 * (Key Vault's challenge's), unless it is none or the credential's own (`configured`, in any letter
 * case), or AZURE_IDENTITY_DISABLE_MULTITENANTAUTH makes @azure/identity ask its own whatever is
 * given: then the credential's own. The attempt nearest the request notes it; a later note leaves
 * it. appNotInTenant reads it, whatever text Entra ID names the directory with (an id, a domain
 * name, a display name such as "Default Directory").
 */
export const noteRequestedTenant = (error: unknown, asked: string | undefined, configured: string): void => {
  if (typeof error !== "object" || error === null || requestedTenantKey in error) return
  noteOn(
    error,
    requestedTenantKey,
    asked === undefined || asked.toLowerCase() === configured.toLowerCase() || multiTenantAuthDisabled()
      ? null
      : asked,
  )
}

/**
 * Note on a failed token request's error that the request went to the credential's own tenant
 * whatever tenant was asked: a source that ignores the requested tenant (managed identity's AKS
 * token exchange, which asks AZURE_TENANT_ID's; a managed identity endpoint, which knows no tenant).
 * Noted where the source throws, before the chain's note on its own error, which appNotInTenant
 * reads only for inner errors that carry none.
 */
export const noteOwnTenantRequested = (error: unknown): void => {
  if (typeof error !== "object" || error === null || requestedTenantKey in error) return
  noteOn(error, requestedTenantKey, null)
}

/** The tenant noteRequestedTenant put on `error`: an id, `null` for the credential's own, or undefined when none was noted. */
const notedRequestedTenant = (error: unknown): string | null | undefined => {
  if (typeof error !== "object" || error === null || !(requestedTenantKey in error)) return undefined
  const noted = (error as { [requestedTenantKey]?: unknown })[requestedTenantKey]
  return typeof noted === "string" ? noted : null
}

/**
 * Entra ID answered AADSTS700016 (no application of this client id in the tenant asked) to a token
 * request whose error is `error`, or one of a chain's sources' errors.
 */
export const appNotFoundAnswer = (error: unknown): boolean => {
  const e = error as { readonly name?: unknown; readonly errors?: unknown } | null
  if (e === null || typeof e !== "object") return false
  if (e.name === "AggregateAuthenticationError" && Array.isArray(e.errors))
    return e.errors.some((inner: unknown) => appNotFoundAnswer(inner))
  return /\bAADSTS700016\b/.test(messageWithoutTokenFileState(error))
}

/**
 * An AADSTS700016 (appNotFoundAnswer) of `error`, or of one of a chain's sources' errors, whose
 * request's tenant no source noted (noteRequestedTenant, noteOwnTenantRequested): where it was
 * answered is still to tell. False when every such answer carries its tenant (a managed
 * identity's, noted as the credential's own).
 */
export const appNotFoundUnnoted = (error: unknown): boolean => {
  const e = error as { readonly name?: unknown; readonly errors?: unknown } | null
  if (e === null || typeof e !== "object" || requestedTenantKey in e) return false
  if (e.name === "AggregateAuthenticationError" && Array.isArray(e.errors))
    return e.errors.some((inner: unknown) => appNotFoundUnnoted(inner))
  return /\bAADSTS700016\b/.test(messageWithoutTokenFileState(error))
}

/**
 * Entra ID answered AADSTS700016 (no application of this client id in the tenant asked) for a token
 * request that went to another tenant than the credential's own: the vault's, which Key Vault's
 * challenge named and the credential was allowed to ask (AZURE_ADDITIONALLY_ALLOWED_TENANTS). The
 * application then has no service principal there, or the client id is no application's (Entra ID
 * answers both alike). The tenant asked is the one noted on the error (noteRequestedTenant); the
 * credential's is the one noted there too (noteCredentialTenant) or `credentialTenant`. Without a
 * noted request, the directory Entra ID names is compared with the credential's tenant, when both
 * are ids or both domain names. Undefined when the request went to the credential's own tenant (a
 * wrong client id or tenant), or nothing tells.
 */
export const appNotInTenant = (error: unknown, credentialTenant?: string): TenantMismatch | undefined =>
  appNotInRequestedTenant(error, credentialTenant, undefined)

const appNotInRequestedTenant = (
  error: unknown,
  credentialTenant: string | undefined,
  requestedTenant: string | null | undefined,
): TenantMismatch | undefined => {
  const e = error as { readonly name?: unknown; readonly errors?: unknown } | null
  if (e === null || typeof e !== "object") return undefined
  const own = notedCredentialTenant(error) ?? credentialTenant
  // null (the credential's own tenant) is a note too: not replaced by the caller's.
  const noted = notedRequestedTenant(error)
  const requested = noted === undefined ? requestedTenant : noted
  if (e.name === "AggregateAuthenticationError")
    return Array.isArray(e.errors)
      ? e.errors
          .map((inner: unknown) => appNotInRequestedTenant(inner, own, requested))
          .find((found) => found !== undefined)
      : undefined
  if (own === undefined) return undefined
  const text = messageWithoutTokenFileState(error)
  if (!/\bAADSTS700016\b/.test(text)) return undefined
  if (requested !== undefined)
    return requested === null || requested.toLowerCase() === own.toLowerCase()
      ? undefined
      : { vaultTenant: requested, credentialTenant: own }
  const directory = appNotFoundDirectory(text)
  return directory !== undefined && isOtherTenant(directory, own)
    ? { vaultTenant: directory, credentialTenant: own }
    : undefined
}

/**
 * Why no token could be had when Entra ID found no application of the client id in the vault's
 * tenant, which the credential asked (appNotInTenant): both causes, as Entra ID's answer is the
 * same for each.
 */
export const appNotInTenantReason = (mismatch: TenantMismatch): string =>
  `Entra ID found no application of this client id in tenant ${mismatch.vaultTenant}, the vault's, which the credential asked a token of (AADSTS700016: not found in that directory); the credential's own tenant is ${mismatch.credentialTenant ?? "another"} (AZURE_TENANT_ID): either the application has no service principal in the vault's tenant (a single-tenant app registration, or one no admin of that tenant has consented to), or AZURE_CLIENT_ID is not the application's id (Entra ID answers the same for a client id no tenant knows)`

/**
 * What to do when Entra ID found no application of the client id in the vault's tenant: check the
 * client id; if it is right, provision the application there, or take an identity of that tenant.
 * Not "allow the tenant": the request reached it, so it is allowed already.
 */
export const appNotInTenantFix = (vaultTenant: string): string =>
  `check AZURE_CLIENT_ID (the application's client id, on its app registration's overview); if it is right, provision the application in tenant ${vaultTenant} (make its app registration multi-tenant and have an admin of that tenant consent to it, which creates its service principal there, then give that service principal its role on the vault), or ${vaultTenantIdentityFix(vaultTenant)}`

/**
 * AZURE_IDENTITY_DISABLE_MULTITENANTAUTH is set: read where and as @azure/identity reads it at each
 * token request (processMultiTenantRequest: process.env, any value but empty).
 */
export const multiTenantAuthDisabled = (): boolean =>
  (process.env.AZURE_IDENTITY_DISABLE_MULTITENANTAUTH ?? "") !== ""

/**
 * Why no token could be had, when the vault's tenant is not the credential's and the credential
 * refused it (tenantNotAllowed), in words; tenant ids are shown (neither is a secret).
 */
export const tenantNotAllowedReason = (mismatch: TenantMismatch): string =>
  `the vault is in tenant ${mismatch.vaultTenant} (its challenge names it), not the credential's tenant${
    mismatch.credentialTenant === undefined ? "" : ` ${mismatch.credentialTenant} (AZURE_TENANT_ID)`
  }, and the credential may not get tokens for another tenant (@azure/identity refused to ask for one)`

/** The SDK's own message and the federated token file's state put after it, of an error noteTokenFileState extended. */
interface TokenFileState {
  readonly sdkMessage: string
  readonly state: string
}

/**
 * Where noteTokenFileState keeps them: on the error itself, under a registered symbol, so that every
 * copy of this module reads what any copy wrote (an install with two versions of this package, or a
 * bundle's copy beside dist's). Non-enumerable: JSON and util.inspect leave it out.
 */
const tokenFileStateKey: unique symbol = Symbol.for("@kvdeploy/credentials/tokenFileState")

/** The state noteTokenFileState kept on `error`, by whichever copy of this module. */
const tokenFileStateKept = (error: unknown): TokenFileState | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const kept = (error as { [tokenFileStateKey]?: unknown })[tokenFileStateKey] as
    | { readonly sdkMessage?: unknown; readonly state?: unknown }
    | null
    | undefined
  return typeof kept?.sdkMessage === "string" && typeof kept.state === "string"
    ? { sdkMessage: kept.sdkMessage, state: kept.state }
    : undefined
}

/**
 * Put the federated token file's state (`state`, in words: never the token) after a failed token
 * request's message, in brackets, keeping the two apart: a reader that cuts an identity library's
 * long text short keeps the state whole (tokenFileStateOf), and one that names the file's state
 * itself leaves it out (messageWithoutTokenFileState). Noted again, the state replaces the last one.
 * Kept on the error, so any copy of this module reads it.
 */
export const noteTokenFileState = (error: Error, state: string): void => {
  const sdkMessage = tokenFileStateKept(error)?.sdkMessage ?? error.message
  Object.defineProperty(error, tokenFileStateKey, {
    value: { sdkMessage, state } satisfies TokenFileState,
    enumerable: false,
    writable: true,
    configurable: true,
  })
  error.message = `${sdkMessage} [${state}]`
}

/** An error's message as the identity library wrote it, without the token file's state noteTokenFileState put after it. */
export const messageWithoutTokenFileState = (error: unknown): string =>
  error instanceof Error ? (tokenFileStateKept(error)?.sdkMessage ?? error.message) : String(error)

/** The federated token file's state noteTokenFileState put after an error's message, if any. */
export const tokenFileStateOf = (error: unknown): string | undefined => tokenFileStateKept(error)?.state

/**
 * The environment variables whose values are secrets an identity endpoint may echo back in an error
 * (a gateway that quotes the token request's form, an App Service endpoint that quotes its header).
 */
const secretVariables = [
  "AZURE_CLIENT_SECRET",
  "AZURE_CLIENT_CERTIFICATE_PASSWORD",
  "AZURE_PASSWORD",
  "IDENTITY_HEADER",
  "MSI_SECRET",
] as const

/** The most of the federated token file read to know its token (a service account token is a few KiB). */
const tokenFileReadLimit = 64 * 1024

/** The federated token file's content as it is now (the kubelet renews it), or undefined. */
const federatedTokenNow = (path: string): string | undefined => {
  let fd: number | undefined
  try {
    fd = openSync(path, "r")
    const buffer = Buffer.alloc(tokenFileReadLimit)
    const read = readSync(fd, buffer, 0, buffer.length, 0)
    return buffer.subarray(0, read).toString("utf8")
  } catch {
    return undefined
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/**
 * The secret values this process gives its identity library, each with how a message names it in
 * its place: the AZURE_CLIENT_SECRET (and certificate password, password) value, the managed identity
 * endpoint's header secret (IDENTITY_HEADER, MSI_SECRET), and the federated token file's content.
 * Read when an error is shown, as the environment and the file are then.
 */
export const knownIdentitySecrets = (
  env: Readonly<Record<string, string | undefined>> = process.env,
): ReadonlyArray<{ readonly value: string; readonly label: string }> => {
  const secrets: Array<{ readonly value: string; readonly label: string }> = []
  for (const name of secretVariables) {
    const value = env[name]
    if (value !== undefined && value !== "") secrets.push({ value, label: `the value of ${name}` })
  }
  const tokenFile = env.AZURE_FEDERATED_TOKEN_FILE
  const token = tokenFile === undefined || tokenFile === "" ? undefined : federatedTokenNow(tokenFile)
  if (token !== undefined) secrets.push({ value: token, label: "the federated token" })
  return secrets
}

/**
 * An identity library's error text (or a part of it) as kvdeploy shows it, on every path (the CLI's
 * and the library's vault errors, the agent's log lines and state file, doctor): without the secret
 * values the process knows (knownIdentitySecrets), the secret fields of a token request or answer
 * (`client_secret=…`, `"access_token": "…"`), JWT-shaped tokens, and key text (withoutKeyText).
 * What was taken out is named in its place ("[a token, not shown]"); the rest (the error code, the
 * endpoint's description, a correlation id) stays. Applied before any cut, so no cut leaves part of
 * a secret that no longer reads as one.
 */
export const shownIdentityText = (
  text: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string => withoutKeyText(withoutSecretValues(text, knownIdentitySecrets(env)))

/** An identity library's error message (without the token file's state) as kvdeploy shows it (shownIdentityText). */
export const shownIdentityMessage = (error: unknown): string =>
  shownIdentityText(messageWithoutTokenFileState(error))
