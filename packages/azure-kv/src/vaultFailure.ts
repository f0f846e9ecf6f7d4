/**
 * SDK failures -> core's tagged vault errors, by what they mean for a deploy:
 * did the request take effect (no, maybe), and what does the operator do.
 *
 * The SDK's RestError holds the request, whose body for an import is the PFX:
 * it is never kept. `cause` is a `KeyVaultRequestFailure` with the status,
 * codes, request id and the SDK's message only, without key text (see shownMessage).
 */
import { getDefaultProxySettings, isRestError } from "@azure/core-rest-pipeline"
import {
  azurePolicyRefusalCode,
  hostNotFoundFix,
  shellQuote,
  VaultAmbiguous,
  VaultConflictSoftDeleted,
  VaultForbidden,
  VaultNotFound,
  type VaultOperation,
  VaultRequestRejected,
  VaultThrottled,
  VaultUnavailable,
  withoutKeyText,
  withoutTerminalControls,
} from "@kvdeploy/core"
import {
  appNotInTenant,
  appNotInTenantFix,
  appNotInTenantReason,
  brokenTokenAnswer,
  identityProviderOutage,
  isTokenRequestTimedOut,
  KEY_VAULT_SCOPE_REFUSED,
  shownIdentityMessage,
  shownIdentityText,
  tenantMismatchFix,
  tenantNotAllowed,
  tenantNotAllowedReason,
  tokenErrorStatus,
  tokenFileStateOf,
} from "@kvdeploy/credentials/tokenErrors"
import { explainTokenFailure } from "@kvdeploy/credentials/tokenFailure"
import { ImportOutcomeUnknown, neverSentCodes, tlsRefusedCodes } from "./importPolicy.js"
import { LatestNotFound } from "./notFoundPolicy.js"
import { grantAdvice, requiredPermission } from "./permissions.js"
import { overCapHeader, retryAfterMsOf } from "./retryAfterCap.js"

/**
 * The SDK's message as a failure keeps it. An answer the SDK could not parse (PARSE_ERROR) has its
 * whole body in the message, and a backing secret's body is the PFX with its key: that message is
 * replaced. Any other message is kept without PEM text or long base64 (an identity provider's answer
 * may echo a value it was given).
 */
const shownMessage = (fields: {
  readonly message: string
  readonly code?: string | undefined
  readonly statusCode?: number | undefined
}) =>
  fields.code === "PARSE_ERROR"
    ? `the answer${fields.statusCode === undefined ? "" : ` (status ${fields.statusCode})`} is not the JSON Key Vault sends; it is not shown (it may hold secret material)`
    : // One line: Key Vault's RBAC refusals run over lines (Caller, Action, Resource, Assignment...),
      // which broke every report they went into. The lines are joined after key text is taken out.
      withoutKeyText(fields.message)
        .replace(/\s*[\r\n]+\s*/g, " ")
        .trim()

/** A Key Vault request failure with everything but the request and response bodies. */
export class KeyVaultRequestFailure extends Error {
  readonly statusCode: number | undefined
  readonly code: string | undefined
  readonly innerCode: string | undefined
  readonly requestId: string | undefined
  readonly retryAfterMs: number | undefined
  /**
   * The answer asked for a wait beyond what the SDK is let wait (retryAfterCap.ts): a 429 was
   * then not retried, and `retryAfterMs` is the wait it asked for.
   */
  readonly retryAfterOverCap: true | undefined
  /** The answer's `Date` header (the vault's clock, whole seconds), in epoch milliseconds. */
  readonly answeredAtMs: number | undefined
  /** The tenant a 401's challenge (`WWW-Authenticate`) names: the vault's. */
  readonly challengeTenant: string | undefined
  /** The tenant of the token a 401 refused as of another issuer (Key Vault's AKV10032 names it). */
  readonly tokenTenant: string | undefined
  constructor(fields: {
    readonly name: string
    readonly message: string
    readonly statusCode?: number | undefined
    readonly code?: string | undefined
    readonly innerCode?: string | undefined
    readonly requestId?: string | undefined
    readonly retryAfterMs?: number | undefined
    readonly retryAfterOverCap?: boolean | undefined
    readonly answeredAtMs?: number | undefined
    readonly challengeTenant?: string | undefined
    readonly tokenTenant?: string | undefined
  }) {
    super(shownMessage(fields))
    this.name = fields.name
    this.statusCode = fields.statusCode
    this.code = fields.code
    this.innerCode = fields.innerCode
    this.requestId = fields.requestId
    this.retryAfterMs = fields.retryAfterMs
    this.retryAfterOverCap = fields.retryAfterOverCap === true ? true : undefined
    this.answeredAtMs = fields.answeredAtMs
    this.challengeTenant = fields.challengeTenant
    this.tokenTenant = fields.tokenTenant
  }
}

type Kind = "read" | "write"

export type MappedVaultError =
  | VaultNotFound
  | VaultForbidden
  | VaultThrottled
  | VaultConflictSoftDeleted
  | VaultAmbiguous
  | VaultUnavailable
  | VaultRequestRejected

interface KeyVaultErrorDetails {
  readonly error?: { readonly code?: unknown; readonly innerError?: { readonly code?: unknown } }
}

const stringOrUndefined = (value: unknown): string | undefined =>
  typeof value === "string" ? value : undefined

const innerCodeOf = (details: unknown, bodyText: string | undefined): string | undefined => {
  const fromDetails = stringOrUndefined(
    (details as KeyVaultErrorDetails | undefined)?.error?.innerError?.code,
  )
  if (fromDetails !== undefined) return fromDetails
  if (bodyText === undefined) return undefined
  try {
    const parsed = JSON.parse(bodyText) as { error?: { innererror?: { code?: unknown } } }
    return stringOrUndefined(parsed.error?.innererror?.code)
  } catch {
    return undefined
  }
}

/** When the vault answered, by its `Date` header (an HTTP date: whole seconds), or undefined. */
export const answeredAtMsOf = (
  headers: { get(name: string): string | undefined } | undefined,
): number | undefined => {
  const raw = headers?.get("date")
  if (raw === undefined) return undefined
  const ms = Date.parse(raw)
  return Number.isFinite(ms) ? ms : undefined
}

/**
 * The tenant Key Vault's challenge names (`WWW-Authenticate: Bearer authorization="https://login.windows.net/<tenant>", …`,
 * or `authorization_uri`), as keyvault-common reads it: the first segment of the authorization
 * URL's path. Undefined when the header or the tenant is not there.
 */
const challengeTenantOf = (
  headers: { get(name: string): string | undefined } | undefined,
): string | undefined => {
  const challenge = headers?.get("www-authenticate")
  if (challenge === undefined) return undefined
  const uri = /\bauthorization(?:_uri)?\s*=\s*"([^"]*)"/i.exec(challenge)?.[1]
  if (uri === undefined) return undefined
  try {
    const tenant = new URL(uri).pathname.split("/").find((segment) => segment !== "")
    return tenant === undefined ? undefined : decodeURIComponent(tenant)
  } catch {
    return undefined
  }
}

/**
 * The tenant of the token Key Vault refused as of another issuer: its AKV10032 answer names the
 * issuers it takes and the one it found ("AKV10032: Invalid issuer. Expected one of
 * https://sts.windows.net/<vault's tenant>/, …, found https://sts.windows.net/<token's tenant>/.").
 * Read from the SDK's message, which is the answer's for most calls, else from the answer's own
 * (a list's pages fail with "Pagination failed with unexpected statusCode 401").
 */
const refusedIssuerTenant = (message: string, bodyText: string | undefined): string | undefined => {
  const issuer =
    /AKV10032:.*?\bfound https?:\/\/[^/\s]+\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b/i
  const said = issuer.exec(message)?.[1]
  if (said !== undefined || bodyText === undefined) return said
  try {
    const answer = (JSON.parse(bodyText) as { error?: { message?: unknown } }).error?.message
    return typeof answer === "string" ? issuer.exec(answer)?.[1] : undefined
  } catch {
    return undefined
  }
}

/** The sanitised facts of any failure the SDK or credential threw. */
export const describeFailure = (error: unknown): KeyVaultRequestFailure => {
  if (error instanceof ImportOutcomeUnknown) {
    return new KeyVaultRequestFailure({
      name: error.name,
      message: error.message,
      statusCode: error.statusCode,
      code: error.networkCode,
    })
  }
  if (error instanceof LatestNotFound) {
    // The facts the SDK's RestError for the same 404 gives (see notFoundPolicy.ts).
    return new KeyVaultRequestFailure({
      name: "RestError",
      message: error.message,
      statusCode: error.statusCode,
      code: error.code,
      innerCode: error.innerCode,
      requestId: error.headers.get("x-ms-request-id"),
      retryAfterMs: retryAfterMsOf(error.headers),
      answeredAtMs: answeredAtMsOf(error.headers),
    })
  }
  if (isRestError(error)) {
    const response = error.response
    return new KeyVaultRequestFailure({
      name: "RestError",
      message: error.message,
      statusCode: error.statusCode,
      code: error.code,
      innerCode: innerCodeOf(error.details, response?.bodyAsText ?? undefined),
      requestId: response?.headers.get("x-ms-request-id"),
      retryAfterMs: retryAfterMsOf(response?.headers),
      ...(response?.headers.get(overCapHeader) === undefined ? {} : { retryAfterOverCap: true }),
      answeredAtMs: answeredAtMsOf(response?.headers),
      ...(error.statusCode === 401
        ? {
            challengeTenant: challengeTenantOf(response?.headers),
            tokenTenant: refusedIssuerTenant(error.message, response?.bodyAsText ?? undefined),
          }
        : {}),
    })
  }
  // Anything else is no answer of the vault's: a credential's failure (whose message may quote an
  // identity endpoint's answer, and in it a secret or a token) or a network error.
  if (error instanceof Error) {
    const code = stringOrUndefined((error as Error & { code?: unknown }).code)
    return new KeyVaultRequestFailure({ name: error.name, message: shownIdentityText(error.message), code })
  }
  return new KeyVaultRequestFailure({ name: "Error", message: shownIdentityText(String(error)) })
}

const credentialErrorNames: ReadonlySet<string> = new Set([
  "CredentialUnavailableError",
  "AuthenticationError",
  "AggregateAuthenticationError",
  "AuthenticationRequiredError",
])

/** How @azure/identity and MSAL say the identity provider or identity endpoint could not be reached. */
const unreachableAuthority =
  /network_error|endpoints_resolution_error|network unreachable|ENOTFOUND|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EAI_AGAIN|socket hang up|getaddrinfo/i

const isSoftDeletedConflict = (f: KeyVaultRequestFailure): boolean =>
  f.innerCode === "ObjectIsDeletedButRecoverable" ||
  f.code === "ObjectIsDeletedButRecoverable" ||
  /deleted but recoverable/i.test(f.message)

/**
 * Key Vault's 409 for an import or create while the certificate's pending operation (a create
 * waiting for its CA, or for the merge of a CSR's certificate) is `inProgress`: code `Forbidden`,
 * "A new key vault certificate can not be created or imported while a pending key vault
 * certificate's status is inProgress." (Key Vault's "Monitor and manage certificate creation").
 */
const isOperationInProgress = (f: KeyVaultRequestFailure): boolean =>
  /pending key vault certificate's status is inProgress|while a pending .*inProgress/i.test(f.message)

/**
 * Key Vault's 409 while a delete of the object is still under way (it takes seconds: a deleted
 * certificate shows among the deleted ones about 10 s after the delete in the SDK's recordings):
 * inner code `ObjectIsBeingDeleted`, "… is currently being deleted." (recorded for keys). It passes
 * by itself; the name is then soft-deleted (or purged).
 */
const isBeingDeleted = (f: KeyVaultRequestFailure): boolean =>
  f.innerCode === "ObjectIsBeingDeleted" ||
  f.code === "ObjectIsBeingDeleted" ||
  /is currently being deleted/i.test(f.message)

/** Key Vault's 403 for reading a disabled secret, certificate or key version (not a permission refusal). */
const disabledCodes: ReadonlySet<string> = new Set(["SecretDisabled", "CertificateDisabled", "KeyDisabled"])
const isDisabledObject = (f: KeyVaultRequestFailure): boolean =>
  (f.innerCode !== undefined && disabledCodes.has(f.innerCode)) ||
  (f.code !== undefined && disabledCodes.has(f.code)) ||
  /not allowed on a disabled (secret|certificate|key)/i.test(f.message)

/** What an Azure Policy refusal names: the assignment and the definition that refused the certificate. */
interface PolicyRefusal {
  /** Key Vault's own sentence ("Certificate 'NAME' was disallowed by policy."), when it said one. */
  readonly said: string | undefined
  /** The assignment's name and resource id, in words. */
  readonly assignment: string | undefined
  /** The command that shows the assignment, when its name and scope are known (from its id). */
  readonly show: string | undefined
  /** The definition's name (a built-in's is a GUID), or its id. */
  readonly definition: string | undefined
  /** The assignment judges lifetime action triggers (the built-in definition, or its name says so). */
  readonly lifetimeActions: boolean
}

/** The built-in "Certificates should have the specified lifetime action triggers" definition's name. */
const LIFETIME_ACTION_DEFINITION = "12ef42cb-9903-4e39-9c26-422d29570417"

const textOf = (value: unknown): string | undefined =>
  typeof value === "string" && value.trim() !== "" ? value.trim() : undefined

/** The most of a policy refusal's name, id, definition or message its reason shows. */
const POLICY_TEXT_LIMIT = 200

/**
 * A policy refusal's text as its reason shows it. The answer's message is JSON parsed again, so its
 * `\n` and `\u001b` escapes are real controls by now, which the CLI would print as they are (a
 * forged line, a terminal's escape sequence): on one line, controls escaped (withoutTerminalControls),
 * without key text, and at most POLICY_TEXT_LIMIT characters.
 */
const shownPolicyText = (text: string): string => {
  const shown = withoutTerminalControls(
    withoutKeyText(text)
      .replace(/\s*[\r\n]+\s*/g, " ")
      .trim(),
  )
  return shown.length <= POLICY_TEXT_LIMIT ? shown : `${shown.slice(0, POLICY_TEXT_LIMIT - 1)}…`
}

/**
 * `az policy assignment show` for the assignment `name` at `scope`, each quoted for a POSIX shell
 * (shellQuote): names hold spaces, `$`, `;`, quotes, resource groups parentheses. Undefined when a
 * value would not be shown whole and as it is (shownPolicyText changed it), or holds a backtick,
 * which would end the command's quoting in the reason: the reason then names the general command.
 */
const showCommand = (name: string, scope: string | undefined): string | undefined =>
  [name, scope ?? ""].some((value) => shownPolicyText(value) !== value.trim() || value.includes("`"))
    ? undefined
    : `az policy assignment show --name ${shellQuote(name)}${scope === undefined ? "" : ` --scope ${shellQuote(scope)}`}`

/** An Azure Policy identifier's (`{name, id}`) name and resource id, when they are text. */
const identifierOf = (value: unknown): { readonly name?: string; readonly id?: string } => {
  if (typeof value !== "object" || value === null) return {}
  const { name, id } = value as { readonly name?: unknown; readonly id?: unknown }
  const n = textOf(name)
  const i = textOf(id)
  return { ...(n === undefined ? {} : { name: n }), ...(i === undefined ? {} : { id: i }) }
}

/** Where an assignment's resource id says it is assigned: the id before its provider path. */
const assignmentScope = (id: string): string | undefined => {
  const at = id.toLowerCase().indexOf("/providers/microsoft.authorization/policyassignments/")
  return at > 0 ? id.slice(0, at) : undefined
}

/**
 * Key Vault's 403 when the vault's Azure Policy refused the certificate (a built-in certificate
 * policy assigned with effect Deny): its error's message is itself JSON, `{"objectName", "message":
 * "Certificate 'NAME' was disallowed by policy.", "policyIdentifiers": {"policyAssignment": {name,
 * id}, "policyDefinition": {…}}}` (as an azure-cli maintainer quoted it, Azure/azure-cli#21626). Its
 * codes (`Forbidden`, inner `ForbiddenByPolicy`) are an access policy's refusal's too: the message
 * tells them apart. Undefined for any other answer.
 */
const azurePolicyRefusal = (f: KeyVaultRequestFailure): PolicyRefusal | undefined => {
  if (f.statusCode !== 403) return undefined
  const start = f.message.indexOf("{")
  let parsed: unknown
  if (start >= 0)
    try {
      parsed = JSON.parse(f.message.slice(start, f.message.lastIndexOf("}") + 1))
    } catch {
      parsed = undefined
    }
  const answer = (typeof parsed === "object" && parsed !== null ? parsed : {}) as {
    readonly message?: unknown
    readonly policyIdentifiers?: unknown
  }
  const identifiers =
    typeof answer.policyIdentifiers === "object" && answer.policyIdentifiers !== null
      ? (answer.policyIdentifiers as {
          readonly policyAssignment?: unknown
          readonly policyDefinition?: unknown
        })
      : undefined
  if (identifiers === undefined && !/was disallowed by policy/i.test(f.message)) return undefined
  const assigned = identifierOf(identifiers?.policyAssignment)
  const defined = identifierOf(identifiers?.policyDefinition)
  const scope = assigned.id === undefined ? undefined : assignmentScope(assigned.id)
  const name = assigned.name === undefined ? undefined : shownPolicyText(assigned.name)
  const id = assigned.id === undefined ? undefined : shownPolicyText(assigned.id)
  const assignment = name === undefined ? id : id === undefined ? name : `${name} (${id})`
  const definedAs = defined.name ?? defined.id
  const definition = definedAs === undefined ? undefined : shownPolicyText(definedAs)
  const said = textOf(answer.message) ?? /[^.{}"]*was disallowed by policy\.?/i.exec(f.message)?.[0]?.trim()
  return {
    said: said === undefined ? undefined : shownPolicyText(said),
    assignment,
    show: assigned.name === undefined ? undefined : showCommand(assigned.name, scope),
    definition,
    lifetimeActions:
      definition?.toLowerCase().includes(LIFETIME_ACTION_DEFINITION) === true ||
      /lifetime[\s_-]*action/i.test(`${assignment ?? ""} ${definition ?? ""}`),
  }
}

/**
 * A policy refusal's detail: what refused, that nothing was written and no grant helps, and what
 * does. When the assignment judges lifetime action triggers, the policy it refused may be kvdeploy's
 * own import policy, which no certificate changes.
 */
const policyRefusalDetail = (refusal: PolicyRefusal): string => {
  const named = [
    refusal.assignment === undefined ? undefined : `policy assignment ${refusal.assignment}`,
    refusal.definition === undefined ? undefined : `definition ${refusal.definition}`,
  ].filter((part) => part !== undefined)
  const which = named.length === 0 ? "" : ` (${named.join(", ")})`
  const fix = refusal.lifetimeActions
    ? "the assignment judges lifetime action triggers, and the lifetime action it refused may be kvdeploy's import policy's own (an e-mail to the certificate contacts at 80 % of the lifetime, which kvdeploy sets on every import and no setting changes): ask for the assignment to allow it (a maximum lifetime percentage of at least 80) or for a policy exemption for this vault"
    : "deploy a certificate that satisfies the assignment (its validity period, key type, RSA key size or curve, as the assignment's parameters say), or ask for a policy exemption for this vault or certificate"
  return `the vault's Azure Policy refused this certificate${which}, so nothing was written; this is no missing permission and no role or access policy changes it: ${fix} (\`${refusal.show ?? "az policy assignment list --scope VAULT_RESOURCE_ID"}\` shows ${refusal.show === undefined ? "the assignments and their parameters" : "its parameters"}); a retry as is meets the same refusal${
    refusal.said === undefined ? "" : `. Key Vault: ${refusal.said}`
  }`
}

/**
 * Key Vault's 403s for the client's network, not its identity: the firewall refused the address
 * (`ForbiddenByFirewall`), or public network access is off and the request did not come through an
 * approved private endpoint (`ForbiddenByConnection`: "Connection is not an approved private link
 * and caller was ignored because bypass is not set to 'AzureServices' and PublicNetworkAccess is
 * set to 'Disabled'").
 */
const networkCodes: ReadonlySet<string> = new Set(["ForbiddenByFirewall", "ForbiddenByConnection"])
const isNetworkRefusal = (f: KeyVaultRequestFailure): boolean =>
  (f.code !== undefined && networkCodes.has(f.code)) ||
  (f.innerCode !== undefined && networkCodes.has(f.innerCode)) ||
  /not an approved private link|PublicNetworkAccess is set to .?Disabled/i.test(f.message)

/**
 * Map a failure of `operation` to core's error. `kind` says whether the
 * request writes: an unreadable answer to a write may have taken effect
 * (VaultAmbiguous); to a read it is just unavailable.
 */
export const toVaultError = (
  operation: VaultOperation,
  kind: Kind,
  error: unknown,
  sdkRetries = true,
  /** The per-request timeout the client gives the SDK (ms): an aborted request names it. */
  timeoutMs?: number,
  /**
   * Whether the adapter was given `trustedCaPem`: its TLS context then holds Node's roots and those
   * CAs, without NODE_EXTRA_CA_CERTS, and a refused TLS certificate's advice says so.
   */
  trustedCaPem = false,
): MappedVaultError => {
  // Built without stack traces: the error and its cause are made here, after the SDK's call failed,
  // so their stacks would show this mapping and not the failure (the SDK's own error, with its
  // stack, is not kept: it holds the request). Capturing them cost ~90 us per failure, a 404
  // snapshot read on every first deploy among them.
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return mapFailure(operation, kind, error, sdkRetries, timeoutMs, trustedCaPem)
  } finally {
    Error.stackTraceLimit = limit
  }
}

/** Network error codes the SDK's exponential retry strategy retries (@typespec/ts-http-runtime's isSystemError). */
const sdkRetriedCodes: ReadonlySet<string> = new Set([
  "ETIMEDOUT",
  "ESOCKETTIMEDOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOENT",
  "ENOTFOUND",
])

/**
 * Whether the SDK's retry policy has already retried this failure with backoff: 429 and 503
 * with a Retry-After header (throttling strategy), 408 and 5xx but 501 and 505 without one, and
 * the transport errors above (exponential strategy). Imports and recoveries are never resent
 * (importPolicy.ts), so their unknown outcomes were not retried.
 */
const sdkRetried = (cause: KeyVaultRequestFailure): boolean => {
  const status = cause.statusCode
  if (status === undefined) return cause.code !== undefined && sdkRetriedCodes.has(cause.code)
  // A 429 whose wait was over the bound (retryAfterCap.ts) was not sent again, and must not be by
  // the deploy program's quick read retries either: the vault asked for the wait. A 503's was
  // retried on the SDK's backoff.
  if (cause.retryAfterMs !== undefined && (status === 429 || status === 503)) return true
  return (status >= 500 && status !== 501 && status !== 505) || status === 408
}

/** `text` ended as a sentence (Key Vault's messages end with a full stop; others may not). */
const sentence = (text: string): string => (/[.!?]$/.test(text) ? text : `${text}.`)

/** What to do about a 429 the SDK's retries did not get past: wait, run again, and if it recurs, load the vault less. */
const throttleAdvice = (wait: string): string =>
  `Wait ${wait} and run again; if it recurs, run fewer deploys against this vault at once (Key Vault's service limits throttle each vault on all its callers' requests together)`

/**
 * The host name of the proxy the SDK sends through (from HTTPS_PROXY, HTTP_PROXY or ALL_PROXY), when
 * the name a DNS failure names (`getaddrinfo ENOTFOUND NAME`) is that proxy's, or names none.
 */
const unresolvedProxyHost = (detail: string): string | undefined => {
  let host: string | undefined
  try {
    const settings = getDefaultProxySettings()
    host = settings === undefined ? undefined : new URL(settings.host).hostname.toLowerCase()
  } catch {
    return undefined
  }
  if (host === undefined || host === "") return undefined
  const missing = /ENOTFOUND\s+([^\s,;:)]+)/.exec(detail)?.[1]?.toLowerCase()
  return missing === undefined || missing === host ? host : undefined
}

/** Characters of an identity endpoint's error text a failure keeps (its AADSTS code and description fit). */
const identityTextLimit = 1_000

const shortIdentityText = (text: string): string =>
  text.length <= identityTextLimit
    ? text
    : `${text.slice(0, identityTextLimit)}… (${text.length - identityTextLimit} more characters not shown)`

const mapFailure = (
  operation: VaultOperation,
  kind: Kind,
  error: unknown,
  sdkRetries: boolean,
  timeoutMs: number | undefined,
  trustedCaPem: boolean,
): MappedVaultError => {
  const cause = describeFailure(error)
  const detail = cause.message
  const fields = { operation, cause }
  // The deploy program retries transient reads only when the SDK has not (one retry loop, not two).
  const sent =
    sdkRetries && !(error instanceof ImportOutcomeUnknown) && sdkRetried(cause)
      ? { ...fields, retried: true }
      : fields
  const ambiguousOrUnavailable = (what: string, extra: { readonly timedOutAfterMs?: number } = {}) =>
    kind === "write"
      ? new VaultAmbiguous({
          ...fields,
          ...extra,
          detail: `${what}; the ${operation === "recoverDeleted" ? "recovery" : "import"} may have taken effect`,
        })
      : new VaultUnavailable({ ...sent, ...extra, detail: what })

  if (error instanceof ImportOutcomeUnknown) return new VaultAmbiguous({ ...fields, detail })

  // No token: nothing was sent to the vault. The identity provider's own throttling or outage
  // passes (the vault is unavailable for now); anything else (a refused secret or federated token,
  // an unknown tenant, a credential source this host does not have) does not, and is no network
  // problem of the vault's.
  if (credentialErrorNames.has(cause.name)) {
    const unsent = { ...fields, unsent: true }
    // Not retried again by the deploy program (one retry loop, not a second one on top): an
    // identity provider that answered 429 or 5xx (@azure/identity's retry policy, and IMDS's own,
    // retried it, honouring Retry-After; or MSAL answered from its throttling cache, which a retry
    // within the minute meets again), a request that ran out its time limit (it waited that long
    // already), and an answer that was no token (a retry meets the same). One that could not be
    // reached is retried: IMDS's retry policy leaves refused connections alone.
    const given = { ...unsent, retried: true }
    // The vault asked a token for another resource than the target cloud's keyvault_resource
    // (forKeyVaultScope refused it before asking): the configuration or the vault URL is to fix.
    if (cause.code === KEY_VAULT_SCOPE_REFUSED)
      return new VaultForbidden({
        ...given,
        refusal: "resource",
        detail: `no token for the vault (nothing was sent): ${cause.message}`,
      })
    // The vault is in another tenant than the credential's, which may not get tokens for it: an
    // identity of that tenant, or the tenant allowed, is to fix (not the secret, not a grant).
    const tenants = tenantNotAllowed(error)
    if (tenants !== undefined)
      return new VaultForbidden({
        ...given,
        refusal: "tenant",
        detail: `no token for the vault (nothing was sent): ${tenantNotAllowedReason(tenants)}: ${tenantMismatchFix(tenants.vaultTenant)}`,
      })
    // Entra ID found no application of the client id in the vault's tenant, which the credential
    // was allowed to ask (AADSTS700016 to a request that went there, not to the credential's own):
    // the application has no service principal there, or the client id is no application's; not a
    // secret to check, nor a tenant to allow.
    const elsewhere = appNotInTenant(error)
    if (elsewhere !== undefined) {
      const correlation = /Correlation ID: ([0-9a-f-]{36})/i.exec(shownIdentityMessage(error))?.[1]
      return new VaultForbidden({
        ...given,
        refusal: "tenant",
        detail: `no token for the vault (nothing was sent): ${appNotInTenantReason(elsewhere)}: ${appNotInTenantFix(elsewhere.vaultTenant)}${
          correlation === undefined ? "" : ` (correlation id ${correlation})`
        }`,
      })
    }
    const authorityStatus = tokenErrorStatus(error)
    // An identity endpoint's error page (a proxy's, a gateway's) comes whole in the library's
    // message: kept to its start, which names the error, so a report stays one readable line. The
    // federated token file's state that the credential put after it is kept whole, after the cut:
    // Entra ID's refusal of a federated token alone runs to hundreds of characters.
    const fileState = tokenFileStateOf(error)
    const detail =
      fileState === undefined
        ? shortIdentityText(cause.message)
        : `${shortIdentityText(shownIdentityMessage(error))} [${fileState}]`
    const broken = brokenTokenAnswer(error)
    if (broken !== undefined)
      return new VaultUnavailable({
        ...given,
        detail: `no token for the vault (nothing was sent): the identity endpoint answered, but not with a token (${broken}; a proxy or gateway between this host and the endpoint may have answered in its place): ${detail}`,
      })
    if (isTokenRequestTimedOut(error))
      return new VaultUnavailable({
        ...given,
        detail: `no token for the vault (nothing was sent): ${detail}`,
      })
    if (identityProviderOutage(error))
      return new VaultUnavailable({
        ...given,
        detail:
          authorityStatus === undefined
            ? `no token for the vault (nothing was sent): the identity provider is unavailable or throttling for now: ${detail}`
            : `no token for the vault (nothing was sent): the identity provider is unavailable or throttling for now (it answered ${authorityStatus}): ${detail}`,
      })
    // @azure/identity reports an identity provider or managed identity endpoint it could not reach
    // as CredentialUnavailableError (MSAL's network_error, a refused connection, an unknown host),
    // with no status: the network's problem for now, not the credential's.
    const ownText = shownIdentityMessage(error)
    if (authorityStatus === undefined && unreachableAuthority.test(ownText))
      return new VaultUnavailable({
        ...unsent,
        detail: /endpoints_resolution_error/i.test(ownText)
          ? // A custom cloud's authority: MSAL reads the tenant's OpenID configuration first, and an
            // unknown tenant's 400 there ends in the same error as an outage's 500 (retried as one).
            `no token for the vault (nothing was sent): the identity provider could not be reached or did not serve the tenant's OpenID configuration (as for a tenant it does not know: check AZURE_TENANT_ID): ${detail}`
          : `no token for the vault (nothing was sent): the identity provider could not be reached: ${detail}`,
      })
    // In doctor's words where they name the refusal of an endpoint that answered (Entra ID's first
    // sentence with its AADSTS code, which every refusal of Entra ID carries; the managed identity
    // endpoint's own words), with the endpoint's correlation id for a support request and the token
    // file's state; else the library's text as it is (a default chain's sources, each with its
    // reason; a file that could not be read, which no endpoint judged). @azure/identity names
    // Entra ID's refusals AuthenticationRequiredError or AuthenticationError, as it names a file it
    // could not read: the name tells nothing apart.
    const explained = explainTokenFailure(error)
    const specific =
      (explained.reason.startsWith("Entra ID") && /AADSTS\d+/.test(ownText)) ||
      explained.reason.startsWith("the managed identity endpoint refused") ||
      explained.reason.startsWith("the managed identity endpoint answered")
    const correlation = /Correlation ID: ([0-9a-f-]{36})/i.exec(ownText)?.[1]
    return new VaultForbidden({
      ...unsent,
      refusal: "credential",
      detail: specific
        ? `no token for the vault (nothing was sent to the vault): ${explained.reason}${
            correlation === undefined ? "" : ` (correlation id ${correlation})`
          }${fileState === undefined ? "" : ` [${fileState}]`}`
        : `no token for the vault: the credential was refused or is not available here (nothing was sent to the vault): ${detail}`,
    })
  }

  const status = cause.statusCode
  if (status !== undefined) {
    if (status === 404)
      return new VaultNotFound(
        cause.answeredAtMs === undefined
          ? { ...fields, detail }
          : { ...fields, detail, answeredAtMs: cause.answeredAtMs },
      )
    if (status === 401) {
      // A token of another tenant than the vault's (one the credential got without the challenge's
      // tenant: a managed identity's, or a tenant configured by its domain name): the challenge
      // names the vault's tenant, and Key Vault's answer the token's.
      const vaultTenant = cause.challengeTenant
      const tokenTenant = cause.tokenTenant
      if (
        vaultTenant !== undefined &&
        tokenTenant !== undefined &&
        vaultTenant.toLowerCase() !== tokenTenant.toLowerCase()
      )
        return new VaultForbidden({
          ...fields,
          refusal: "tenant",
          detail: `the vault refused the token: the vault is in tenant ${vaultTenant} (its challenge names it), and the token is of tenant ${tokenTenant}, which Key Vault does not take: ${tenantMismatchFix(vaultTenant)}: ${detail}`,
        })
      // Not a missing permission: the token itself was refused (a grant would not help).
      return new VaultForbidden({
        ...fields,
        refusal: "token",
        detail: `the vault refused the token (check the credential's tenant${vaultTenant === undefined ? "" : `, against the vault's tenant ${vaultTenant} that its challenge names,`} and that the token is for this cloud's Key Vault resource): ${detail}`,
      })
    }
    if (status === 403) {
      if (isNetworkRefusal(cause)) {
        return new VaultForbidden({
          ...fields,
          permission: "network access",
          refusal: "network",
          detail: /not an approved private link|PublicNetworkAccess/i.test(cause.message)
            ? `the vault takes no requests from public networks (public network access is disabled) and this one did not come through an approved private endpoint: reach the vault through its private endpoint (check that its name resolves to the private address), or allow public access from this network in the vault's networking settings: ${detail}`
            : `the vault's firewall refused this client's network address: add it to the vault's networking rules, or reach the vault through a private endpoint: ${detail}`,
        })
      }
      if (isDisabledObject(cause)) {
        return new VaultForbidden({
          ...fields,
          refusal: "disabled",
          detail: `the version is disabled, and Key Vault reads no disabled version (the identity's permissions are not in question): enable it, or leave it: ${detail}`,
        })
      }
      // The vault's Azure Policy refused the certificate: a definite refusal of this request's
      // content, not a permission (a grant would not help), so not a VaultForbidden.
      const policy = azurePolicyRefusal(cause)
      if (policy !== undefined)
        return new VaultRequestRejected({
          ...fields,
          status,
          code: azurePolicyRefusalCode,
          detail: policyRefusalDetail(policy),
        })
      return new VaultForbidden({
        ...fields,
        permission: requiredPermission[operation].accessPolicy,
        refusal: "permission",
        detail: `${grantAdvice(operation)}: ${detail}`,
      })
    }
    if (status === 409 && isSoftDeletedConflict(cause)) {
      return new VaultConflictSoftDeleted({
        ...fields,
        detail: `${detail} Recover it (on_soft_deleted: recover, needs certificates/recover) or purge it.`,
      })
    }
    if (status === 409 && isBeingDeleted(cause))
      return new VaultRequestRejected({
        ...fields,
        status,
        code: "ObjectIsBeingDeleted",
        detail: `the certificate is being deleted in the vault (a delete still under way, for some seconds), so nothing was written; once it is deleted the name is soft-deleted: recover it (on_soft_deleted: recover) to deploy over it, or purge it, then deploy again: ${detail}`,
      })
    if (status === 409 && isOperationInProgress(cause))
      return new VaultRequestRejected({
        ...fields,
        status,
        code: cause.innerCode ?? cause.code ?? String(status),
        detail: `a certificate operation is in progress on this certificate (a create waiting for its CA, or for the merge of a signed CSR), and Key Vault takes no import while it is: let it complete, or delete it if nobody will (az keyvault certificate pending show / delete; the portal's "Certificate Operation"; a cancel only asks the issuer to stop, and the operation stays in progress until it does; deleting it may not cancel a CA's request), then deploy again: ${detail}`,
      })
    if (status === 429) {
      // After the SDK's retries nothing retries it again (one retry loop): the operator does, so the
      // detail says when (the last Retry-After) and what makes it recur (Key Vault's service limits
      // count every caller's requests to the vault together, so concurrent deploys share them).
      const seconds = cause.retryAfterMs === undefined ? undefined : Math.ceil(cause.retryAfterMs / 1000)
      const wait = seconds === undefined ? undefined : `${seconds} s`
      return new VaultThrottled({
        ...sent,
        detail:
          cause.retryAfterOverCap && sdkRetries
            ? `the vault throttled the request and asked to wait ${wait} (Retry-After), longer than kvdeploy lets one request wait, so it was not retried: ${sentence(detail)} ${throttleAdvice(wait ?? "a while")}`
            : !sdkRetries
              ? `the vault throttled the request (the SDK's retries are off here: its caller waits and retries)${wait === undefined ? "" : `; it asks to wait ${wait}`}: ${detail}`
              : wait === undefined
                ? `the vault throttled the request (without Retry-After, so the SDK did not retry it): ${sentence(detail)} ${throttleAdvice("a few seconds")}`
                : seconds === 0
                  ? `the vault throttled the request and it did not succeed within the SDK's retries; its last answer asked to retry at once (Retry-After: 0): ${sentence(detail)} ${throttleAdvice("a second")}`
                  : `the vault throttled the request and it did not succeed within the SDK's retries; its last answer asked to wait ${wait} (Retry-After): ${sentence(detail)} ${throttleAdvice(wait)}`,
        ...(cause.retryAfterMs === undefined ? {} : { retryAfterMs: cause.retryAfterMs }),
      })
    }
    // A success whose answer could not be read (PARSE_ERROR: a faulty proxy, a cut body): the vault
    // did what was asked. For a write that is no refusal: ambiguous, reconciled by reading back.
    if (status >= 200 && status < 300)
      return ambiguousOrUnavailable(
        `the vault answered ${status}, but its answer could not be read: ${detail}`,
      )
    if (status >= 500) return ambiguousOrUnavailable(`the vault answered ${status}: ${detail}`)
    if (status === 408) return ambiguousOrUnavailable(`the vault timed out the request (408): ${detail}`)
    if (status === 400 && operation === "importVersion" && /\bexpired\b/i.test(cause.message))
      return new VaultRequestRejected({
        ...fields,
        status,
        code: cause.innerCode ?? cause.code ?? String(status),
        detail: `${detail} (${expiredByTheVaultsClock(cause.answeredAtMs, Date.now())})`,
      })
    return new VaultRequestRejected({
      ...fields,
      status,
      code: cause.innerCode ?? cause.code ?? String(status),
      detail,
    })
  }

  if (cause.code !== undefined && tlsRefusedCodes.has(cause.code))
    return new VaultUnavailable({
      ...fields,
      tlsRefused: true,
      detail: trustedCaPem
        ? `the vault's TLS certificate was not accepted (${cause.code}), so nothing was sent: ${detail}. This client trusts Node's CA list and the CAs given as trustedCaPem (NODE_EXTRA_CA_CERTS and the system store are not read then); a proxy or firewall that inspects TLS needs its CA among trustedCaPem`
        : `the vault's TLS certificate was not accepted (${cause.code}), so nothing was sent: ${detail}. kvdeploy trusts Node's CA list and the CA file NODE_EXTRA_CA_CERTS names; a proxy or firewall that inspects TLS needs its CA there (or the system store, with NODE_OPTIONS=--use-system-ca)`,
    })
  // Behind a proxy from the environment the name that did not resolve may be the proxy's: said so,
  // and not blamed on vault_url.
  const proxy = cause.code === "ENOTFOUND" ? unresolvedProxyHost(detail) : undefined
  if (proxy !== undefined)
    return new VaultUnavailable({
      ...sent,
      detail: `the proxy's host name ${proxy} (from HTTPS_PROXY, HTTP_PROXY or ALL_PROXY) was not found (${detail}), so nothing was sent: check the proxy variable's host name, or this machine's DNS`,
    })
  // The vault's host name does not resolve: most often vault_url names no vault (a mistyped vault
  // name, another cloud's vault suffix); the report names the field and what to check.
  if (cause.code === "ENOTFOUND")
    return new VaultUnavailable({
      ...sent,
      hostNotFound: true,
      detail: `the vault's host name was not found (${detail}), so nothing was sent: ${hostNotFoundFix}`,
    })
  if (cause.code !== undefined && neverSentCodes.has(cause.code)) {
    return new VaultUnavailable({
      ...sent,
      detail: `the vault could not be reached (${cause.code}): ${detail}`,
    })
  }
  // The SDK aborts a request at the client's timeout (an interrupted call's abort reaches no caller).
  if (cause.name === "AbortError")
    return ambiguousOrUnavailable(
      timeoutMs === undefined
        ? `the request was aborted or timed out: ${detail}`
        : `the request was aborted or timed out (no answer within ${timeoutMs / 1000} s, the per-request timeout): ${detail}`,
      timeoutMs === undefined ? {} : { timedOutAfterMs: timeoutMs },
    )
  return ambiguousOrUnavailable(`the request failed (${cause.code ?? cause.name}): ${detail}`)
}

/**
 * What a vault's refusal of an import as expired means: kvdeploy's preflight found the certificate
 * valid by this host's clock before sending it, so the vault's clock is past its end and this
 * host's is not. With the answer's Date header (`answeredAtMs`), how far behind this host is.
 */
export const expiredByTheVaultsClock = (answeredAtMs: number | undefined, nowMs: number): string => {
  const checked =
    "kvdeploy found the certificate unexpired by this host's clock before sending it, and the vault's clock says it has expired"
  if (answeredAtMs === undefined)
    return `${checked}: this host's clock is likely behind the vault's (or the certificate ran out in between): check this host's clock (timedatectl, or w32tm on Windows) and deploy a renewed certificate`
  // The Date header has whole seconds: within a second is no clock difference.
  const aheadSeconds = Math.round((answeredAtMs - nowMs) / 1000)
  const dated = `the vault's answer is dated ${new Date(answeredAtMs).toISOString()}`
  if (aheadSeconds > 1)
    return `${checked}: ${dated}, ${aheadSeconds} s ahead of this host's clock: set this host's clock right (timedatectl, or w32tm on Windows) and deploy a renewed certificate`
  return aheadSeconds < -1
    ? `${checked}: ${dated}, ${-aheadSeconds} s behind this host's clock, so the clocks do not explain it: deploy a renewed certificate, and check the leaf's notAfter (openssl x509 -noout -enddate)`
    : `${checked}: ${dated}, within a second of this host's clock, so the certificate ran out between the check and the import: deploy a renewed certificate`
}

/** For calls whose port type has no soft-deleted conflict: such a 409 is a definite refusal. */
export const withoutSoftDeleted = <E extends MappedVaultError>(
  error: E,
): Exclude<E, VaultConflictSoftDeleted> | VaultRequestRejected =>
  error._tag === "VaultConflictSoftDeleted"
    ? new VaultRequestRejected({
        operation: error.operation,
        detail: error.detail,
        status: 409,
        code: "ObjectIsDeletedButRecoverable",
        ...(error.cause === undefined ? {} : { cause: error.cause }),
      })
    : (error as Exclude<E, VaultConflictSoftDeleted>)

/**
 * For calls whose port type has no not-found (imports, the certificate list):
 * a 404 there is a definite refusal (the vault or path does not exist).
 */
export const withoutNotFound = <E extends MappedVaultError>(
  error: E,
): Exclude<E, VaultNotFound> | VaultRequestRejected =>
  error._tag === "VaultNotFound"
    ? new VaultRequestRejected({
        operation: error.operation,
        detail: error.detail,
        status: 404,
        code: "NotFound",
        ...(error.cause === undefined ? {} : { cause: error.cause }),
      })
    : (error as Exclude<E, VaultNotFound>)
