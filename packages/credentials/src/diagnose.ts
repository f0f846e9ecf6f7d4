/**
 * `kvdeploy doctor` for credentials: which credential a target uses, for
 * which tenant and client, where its token comes from, and — when it does not
 * work — why (a missing variable, an unreadable token file, an unreachable
 * endpoint, a refused secret), with the fix. Nothing here keeps or prints a
 * token or a secret: only the token's claims that name the identity.
 */
import { fsCodeInWords, knownClouds, shownPath } from "@kvdeploy/core"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { type ChainSourceFailure, inChainOrder, shownSdkLine } from "./chainReport.js"
import { type CredentialIdentity, makeCredential, managedIdentityEndpoint } from "./credential.js"
import { chainSelection, defaultChainSources } from "./defaultChain.js"
import {
  authorityHostVariableNote,
  environmentCredentialVariables,
  federatedTokenExpired,
  federatedTokenFileDefect,
  federatedTokenFileProblem,
  managedIdentityTokenExchange,
  projectedTokenPath,
  readFederatedTokenTimes,
  shownClientId,
  shownTenantId,
  spanInWords,
} from "./environment.js"
import { type FederatedTokenUse, federatedTokenUse } from "./federatedTokenUse.js"
import {
  expectedTenant,
  expiryInWords,
  keyVaultScope,
  probeToken,
  type TokenProbe,
  tokenProblems,
} from "./probe.js"
import type { CredentialMode, CredentialSettings } from "./settings.js"
import { identityNotFoundFix, unrecognisedTokenFailure } from "./tokenFailure.js"
import { withTokenTimeLimit } from "./tokenRequests.js"

export type CheckStatus = "ok" | "missing" | "failed" | "warning" | "skipped"

export interface CredentialCheck {
  readonly name: string
  readonly status: CheckStatus
  readonly detail: string
  readonly fix?: string
}

export interface CredentialDiagnosis {
  readonly mode: CredentialMode
  /** True when a token was obtained for the vault's resource. */
  readonly ok: boolean
  readonly identity?: CredentialIdentity
  readonly token?: TokenProbe
  readonly checks: ReadonlyArray<CredentialCheck>
}

const env = (name: string) =>
  Config.option(Config.String(name)).pipe(
    Effect.map(Option.filter((v) => v.trim() !== "")),
    Effect.map(Option.getOrUndefined),
    Effect.orElseSucceed(() => undefined),
  )

/** A variable as @azure/identity reads it: set when not empty (spaces alone included). */
const sdkEnv = (name: string) =>
  Config.option(Config.String(name)).pipe(
    Effect.map(Option.filter((v) => v !== "")),
    Effect.map(Option.getOrUndefined),
    Effect.orElseSucceed(() => undefined),
  )

/**
 * The default chain's sources, in its order, and what each will do in this environment, by the rules
 * makeCredential builds the chain by (defaultChain.ts): the sources AZURE_TOKEN_CREDENTIALS keeps
 * (chainSelection), the client id of the workload identity and of the managed identity (the
 * configured one, else AZURE_CLIENT_ID), the managed identity's AKS token exchange
 * (managedIdentityTokenExchange) and otherwise the endpoint MSAL picks (managedIdentityEndpoint).
 * Pre-checks only: the token request that follows is the judge.
 */
const defaultChainChecks = Effect.fn("Credentials.defaultChainChecks")(function* (
  settings: CredentialSettings,
) {
  const tenant = yield* env("AZURE_TENANT_ID")
  const client = yield* env("AZURE_CLIENT_ID")
  const secret = yield* env("AZURE_CLIENT_SECRET")
  const certificatePath = yield* env("AZURE_CLIENT_CERTIFICATE_PATH")
  const tokenFile = yield* env("AZURE_FEDERATED_TOKEN_FILE")
  const kept = chainSelection(yield* sdkEnv("AZURE_TOKEN_CREDENTIALS"))
  if (kept === undefined)
    return [
      {
        name: "default chain",
        status: "failed",
        detail:
          "AZURE_TOKEN_CREDENTIALS names no source of the chain (its value is not shown here), so no chain is built",
        fix: `Set AZURE_TOKEN_CREDENTIALS to "prod", "dev" or one source's name (${defaultChainSources.join(", ")}), or unset it`,
      },
    ] satisfies ReadonlyArray<CredentialCheck>
  const checks: CredentialCheck[] = []
  const leftOut = (name: string): CredentialCheck => ({
    name,
    status: "skipped",
    detail: "left out of the chain by AZURE_TOKEN_CREDENTIALS",
  })
  const missingOf = (pairs: ReadonlyArray<readonly [string, string | undefined]>) =>
    pairs.filter(([, v]) => v === undefined).map(([k]) => k)

  const environmentMissing = missingOf([
    ["AZURE_TENANT_ID", tenant],
    ["AZURE_CLIENT_ID", client],
  ])
  const environmentSecret = secret !== undefined || certificatePath !== undefined
  checks.push(
    !kept.includes("EnvironmentCredential")
      ? leftOut("default: 1 environment")
      : environmentMissing.length === 0 && environmentSecret
        ? {
            name: "default: 1 environment",
            status: "ok",
            detail: `EnvironmentCredential will be used (tenant ${shownTenantId(tenant ?? "")}, client ${shownClientId(client ?? "")}, ${secret !== undefined ? "client secret" : "client certificate"})`,
          }
        : {
            name: "default: 1 environment",
            status: "skipped",
            detail: `not configured (missing ${[...environmentMissing, ...(environmentSecret ? [] : ["AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH"])].join(", ")})`,
          },
  )

  // The chain gives its workload identity the configured client id too, else AZURE_CLIENT_ID.
  const workloadClient = settings.managedIdentityClientId ?? client
  const workloadMissing = missingOf([
    ["AZURE_TENANT_ID", tenant],
    [settings.managedIdentityClientId === undefined ? "AZURE_CLIENT_ID" : "a client id", workloadClient],
    ["AZURE_FEDERATED_TOKEN_FILE", tokenFile],
  ])
  if (!kept.includes("WorkloadIdentityCredential")) {
    checks.push(leftOut("default: 2 workload identity"))
  } else if (workloadMissing.length > 0) {
    checks.push({
      name: "default: 2 workload identity",
      status: "skipped",
      detail: `not configured (missing ${workloadMissing.join(", ")})`,
    })
  } else {
    // One stat and a bounded read: a directory, an empty file or one too large to be a token
    // fails as an unreadable one does (the chain would report it as it reads it).
    const problem = yield* Effect.sync(() => federatedTokenFileProblem(tokenFile as string))
    const defect =
      problem === undefined || problem.kind === "unreadable"
        ? undefined
        : federatedTokenFileDefect(tokenFile as string, problem)
    checks.push(
      problem === undefined
        ? {
            name: "default: 2 workload identity",
            status: "ok",
            detail: `federated token file ${shownPath(tokenFile ?? "")} is readable (client ${shownClientId(workloadClient ?? "")}), exchanged at ${settings.authorityHost}`,
          }
        : defect === undefined
          ? {
              name: "default: 2 workload identity",
              status: "failed",
              detail: `AZURE_FEDERATED_TOKEN_FILE ${shownPath(tokenFile ?? "")} cannot be read`,
              fix: "Check the projected service account token volume is mounted and readable by this user",
            }
          : {
              name: "default: 2 workload identity",
              status: "failed",
              detail: defect.reason,
              fix: defect.fix,
            },
    )
  }

  if (!kept.includes("ManagedIdentityCredential")) {
    checks.push(leftOut("default: 3 managed identity"))
  } else {
    const exchange = yield* managedIdentityTokenExchange(settings.managedIdentityClientId)
    if (exchange !== undefined) {
      checks.push({
        name: "default: 3 managed identity",
        status: "ok",
        detail: `would make AKS workload identity's token exchange at ${settings.authorityHost} (the target's cloud), not ask a managed identity endpoint: client ${shownClientId(exchange.clientId)}, tenant ${shownTenantId(exchange.tenantId)}, token file ${shownPath(exchange.tokenFile)}`,
      })
    } else {
      const endpoint = yield* managedIdentityEndpoint
      const identity =
        settings.managedIdentityClientId !== undefined
          ? `the user-assigned identity ${shownClientId(settings.managedIdentityClientId)} (the configured client id)`
          : client !== undefined
            ? `the user-assigned identity ${shownClientId(client)} that AZURE_CLIENT_ID names (@azure/identity's chain takes AZURE_CLIENT_ID for its managed identity too; without it, the system-assigned identity)`
            : "the system-assigned identity"
      checks.push({
        name: "default: 3 managed identity",
        status: "ok",
        detail: `would ask ${endpoint}${endpoint === "IMDS http://169.254.169.254" ? " (reachable only on an Azure VM, VMSS, AKS node or with a managed identity)" : ""} for ${identity}`,
      })
    }
  }
  const tools = kept.filter(
    (name) =>
      !["EnvironmentCredential", "WorkloadIdentityCredential", "ManagedIdentityCredential"].includes(name),
  )
  checks.push(
    tools.length === 0
      ? leftOut("default: 4 developer tools")
      : {
          name: "default: 4 developer tools",
          status: "skipped",
          detail: `${tools.join(", ")} ${tools.length === 1 ? "is" : "are"} tried last (local development only)`,
        },
  )
  return checks
})

/** What a default chain source's fix may depend on besides the identity: the target's cloud and the environment. */
export interface ChainSourceContext {
  /** The target's authority host (its cloud's), which the chain's Entra ID sources ask. */
  readonly authorityHost?: string | undefined
  /** A variable's value as set (undefined when unset); process.env by default. */
  readonly lookup?: (name: string) => string | undefined
}

/** The developer tools of the default chain, each with how it is told its cloud (az's, azd's, PowerShell's names). */
const toolCloud: Readonly<Record<string, (cloud: string | undefined) => string>> = {
  AzureCliCredential: (cloud) =>
    cloud === undefined
      ? "register the target's cloud with the Azure CLI (az cloud register) and select it (az cloud set), then az login"
      : `az cloud set --name ${cloud}, then az login`,
  AzureDeveloperCliCredential: (cloud) =>
    cloud === undefined
      ? "set azd's cloud to the target's (azd config set cloud.name), then azd auth login"
      : `azd config set cloud.name ${cloud}, then azd auth login`,
  AzurePowerShellCredential: (cloud) =>
    cloud === undefined
      ? "sign in to the target's cloud (Connect-AzAccount -Environment with the cloud registered by Add-AzEnvironment)"
      : `Connect-AzAccount -Environment ${cloud}`,
  VisualStudioCodeCredential: () =>
    "set Visual Studio Code's Azure cloud (the azure.cloud setting) to the target's, and sign in again",
}

/** An authority host as compared: without a trailing slash, in lower case. */
const comparedHost = (authorityHost: string | undefined): string | undefined =>
  authorityHost?.replace(/\/+$/, "").toLowerCase()

/** The Azure CLI's name of a known cloud's authority host (azd and Az PowerShell take the same), or undefined for the public or a custom cloud. */
const toolCloudName = (authorityHost: string | undefined): string | undefined => {
  const host = comparedHost(authorityHost)
  const cloud = knownClouds.find((c) => c.authorityHost.toLowerCase() === host)?.name
  return cloud === "AzureUSGovernment"
    ? "AzureUSGovernment"
    : cloud === "AzureChina"
      ? "AzureChinaCloud"
      : undefined
}

/**
 * The fix for one default chain source that gave no token (chainSourceDetail's line), when kvdeploy
 * knows one:
 * - the chain's managed identity refused with "Identity not found" (identityNotFoundFix: by what
 *   named the client id it asked for, or none for the system-assigned identity);
 * - its environment source unavailable while a secret, certificate or user of its variables is set:
 *   the ones it lacks, by @azure/identity's rule (environmentCredentialVariables);
 * - a developer tool (Azure CLI, azd, Azure PowerShell, VS Code) whose token request Entra ID refused
 *   with AADSTS500011 (no such resource in the tenant) for a target outside the public cloud: the
 *   tool asks its own active cloud, not the target's; the fix is that tool's cloud setting.
 * Undefined otherwise: the source's own words are its detail.
 */
export const chainSourceFix = (
  source: ChainSourceFailure,
  identity: Pick<CredentialIdentity, "managedIdentityClientIdFrom">,
  context: ChainSourceContext = {},
): string | undefined => {
  if (source.credential === "ManagedIdentityCredential" && /identity not found/i.test(source.reason))
    return identityNotFoundFix(identity.managedIdentityClientIdFrom, "default")
  if (source.credential === "EnvironmentCredential" && /\bunavailable\b/i.test(source.reason)) {
    const { set, missing } = environmentCredentialVariables(context.lookup ?? ((name) => process.env[name]))
    // A secret, certificate or user set says a service principal is meant; AZURE_TENANT_ID and
    // AZURE_CLIENT_ID alone are also the workload identity's and the managed identity's.
    const meant = set.some((name) => name !== "AZURE_TENANT_ID" && name !== "AZURE_CLIENT_ID")
    return !meant || missing.length === 0
      ? undefined
      : `EnvironmentCredential needs ${missing.join(", ")} beside ${set.join(", ")}, which ${set.length === 1 ? "is" : "are"} set: set ${missing.length === 1 ? "it" : "them"} for the service principal (${missing.includes("AZURE_TENANT_ID") ? "AZURE_TENANT_ID: its directory (tenant) id" : "its client id and a secret or certificate"}), or unset ${set.join(" and ")} when no service principal is meant`
  }
  const tool =
    source.credential === undefined || !Object.hasOwn(toolCloud, source.credential)
      ? undefined
      : toolCloud[source.credential]
  if (tool !== undefined && /AADSTS500011\b/.test(source.reason)) {
    const host = comparedHost(context.authorityHost)
    if (host === undefined || host === "https://login.microsoftonline.com") return undefined
    return `${source.credential} asks for a token in the tool's own active cloud, not the target's (${context.authorityHost}), and Entra ID there knows no such Key Vault resource: ${tool(toolCloudName(context.authorityHost))}`
  }
  return undefined
}

const identityLine = (identity: CredentialIdentity): string =>
  [
    identity.source,
    identity.tenantId === undefined ? undefined : `tenant ${shownTenantId(identity.tenantId)}`,
    identity.clientId === undefined ? undefined : `client ${shownClientId(identity.clientId)}`,
    identity.tokenFile === undefined ? undefined : `token file ${shownPath(identity.tokenFile)}`,
    identity.endpoint === undefined ? undefined : `via ${identity.endpoint}`,
  ]
    .filter((x) => x !== undefined)
    .join(", ")

/** First line of an SDK message, cut short: enough to see the AADSTS code or the network error. */
const sdkMessage = (cause: unknown): string | undefined => {
  if (!(cause instanceof Error) || cause.message.trim() === "") return undefined
  return shownSdkLine(cause.message, 300)
}

/**
 * A default chain's source that gave no token, in words: its reason, opened by the credential it
 * belongs to as the SDK named it (said once: a reason that opens with it already is left as it
 * is), or `unnamed` when the SDK named none (chainFailures).
 */
export const chainSourceDetail = ({ credential, reason }: ChainSourceFailure): string =>
  credential !== undefined && reason.startsWith(credential) && !/\w/.test(reason.charAt(credential.length))
    ? reason
    : `${credential ?? "unnamed"}: ${reason}`

/**
 * A default chain's source the SDK could not build, in words: its name, that it was not tried, and
 * the reason its constructor gave (without the name it opens with, said once).
 */
export const chainNotBuiltDetail = ({ credential, reason }: ChainSourceFailure): string => {
  const own =
    credential !== undefined && reason.startsWith(credential) && !/\w/.test(reason.charAt(credential.length))
      ? reason.slice(credential.length).replace(/^:?\s*/, "")
      : reason
  return `${credential ?? "unnamed"}: not built, so not tried: ${own}`
}

/**
 * One check per source of a default chain that gave no token, in the chain's order (inChainOrder),
 * each opening with its credential's name: failed for a source that was tried (chainSourceDetail),
 * skipped for one the SDK could not build (chainNotBuiltDetail). Not numbered: an unnamed source's
 * place is not known for sure.
 */
export const chainSourceChecks = (
  sources: ReadonlyArray<ChainSourceFailure> | undefined,
  notBuilt: ReadonlyArray<ChainSourceFailure> | undefined = undefined,
  identity: Pick<CredentialIdentity, "managedIdentityClientIdFrom"> = {},
  context: ChainSourceContext = {},
): ReadonlyArray<CredentialCheck> =>
  inChainOrder(sources ?? [], notBuilt ?? []).map(({ source, tried }): CredentialCheck => {
    const fix = tried ? chainSourceFix(source, identity, context) : undefined
    return {
      name: "default chain source",
      status: tried ? "failed" : "skipped",
      detail: tried ? chainSourceDetail(source) : chainNotBuiltDetail(source),
      ...(fix === undefined ? {} : { fix }),
    }
  })

/**
 * The federated token a workload identity exchanges with Entra ID, judged by its own claims
 * (readFederatedTokenTimes; its signature is Entra ID's to check): expired, or not valid yet beyond
 * 5 minutes of clock skew, is what Entra ID refuses with AADSTS700024, and doctor names it with the
 * file's times. Failed when no token came; a warning when one came all the same (this host's
 * clock), when the token has no readable expiry, or when it is no JWT.
 */
export const federatedTokenCheck = (
  tokenFile: string,
  tokenObtained: boolean,
  nowMs: number,
): CredentialCheck => {
  const name = "federated token"
  const file = shownPath(tokenFile)
  const notTheProjectedToken = `Check that AZURE_FEDERATED_TOKEN_FILE names the projected service account token (the AKS workload identity webhook sets ${projectedTokenPath})`
  const read = readFederatedTokenTimes(tokenFile)
  if (read.problem !== undefined)
    return {
      name,
      status: tokenObtained ? "warning" : "failed",
      ...(read.problem.kind === "unreadable"
        ? {
            detail: `the federated token file ${file} (AZURE_FEDERATED_TOKEN_FILE) cannot be read now: ${fsCodeInWords(read.problem.code)}`,
            fix: "Check the projected service account token volume is mounted and readable by this user",
          }
        : (({ reason, fix }) => ({ detail: reason, fix }))(
            federatedTokenFileDefect(tokenFile, read.problem),
          )),
    }
  const times = read.times
  if (times === undefined)
    return {
      name,
      status: "warning",
      detail: `the token in ${file} is not a JWT, so when it expires cannot be read (a service account token is a JWT)`,
      fix: notTheProjectedToken,
    }
  const skewMs = 5 * 60_000
  const bad = tokenObtained ? "warning" : "failed"
  const { expiresAtSeconds: exp, notBeforeSeconds: nbf } = times
  if (exp !== undefined && exp * 1000 <= nowMs) {
    const expired = federatedTokenExpired(tokenFile, exp, nowMs)
    return { name, status: bad, detail: expired.reason, fix: expired.fix }
  }
  if (nbf !== undefined && nbf * 1000 > nowMs + skewMs)
    return {
      name,
      status: bad,
      detail: `the token in ${file} is not valid before ${new Date(nbf * 1000).toISOString()} (in ${spanInWords(nbf * 1000 - nowMs)}, by this host's clock): Entra ID refuses it until then (AADSTS700024)`,
      fix: "Check this host's clock (and the issuer's): a token is valid from when it was issued",
    }
  if (exp === undefined)
    return {
      name,
      status: "warning",
      detail: `the token in ${file} ${times.unreadable.includes("exp") ? "has an expiry (exp) that is no time in seconds" : "has no expiry (exp)"}, so when it expires cannot be read${times.unreadable.includes("nbf") ? ", nor its nbf" : ""} (a service account token's exp is a number of seconds)`,
      fix: notTheProjectedToken,
    }
  return {
    name,
    status: "ok",
    detail: `the token in ${file} expires at ${new Date(exp * 1000).toISOString()} (in ${spanInWords(exp * 1000 - nowMs)}); whatever writes the file renews it before then`,
  }
}

/**
 * doctor's `federated token` check for a use of the file (federatedTokenUse): the file's token
 * judged by federatedTokenCheck where it is read (with what reads it, when that is not the mode's
 * own credential); skipped, saying why, where it is not; a warning, never a failure, where whether
 * it is read cannot be told. Never shows the token: its path, and its times.
 */
export const federatedTokenUseCheck = (
  use: FederatedTokenUse,
  tokenObtained: boolean,
  nowMs: number,
): CredentialCheck => {
  switch (use._tag) {
    case "Read": {
      const check = federatedTokenCheck(use.tokenFile, tokenObtained, nowMs)
      return use.reader === undefined
        ? check
        : { ...check, detail: `${check.detail} (read by ${use.reader})` }
    }
    case "NotRead":
      return {
        name: "federated token",
        status: "skipped",
        detail: `not read: ${shownPath(use.tokenFile)} (AZURE_FEDERATED_TOKEN_FILE) is set, but ${use.why}`,
      }
    case "Undecided": {
      const check = federatedTokenCheck(use.tokenFile, tokenObtained, nowMs)
      return {
        name: check.name,
        status: "warning",
        detail: `${check.detail}; ${use.why}`,
        fix: check.fix === undefined ? use.fix : `${use.fix}; ${check.fix}`,
      }
    }
  }
}

/**
 * Diagnose the credential of `settings`: build it, ask for one token for the
 * vault's resource, and report every step. Never fails.
 */
export const diagnoseCredential = Effect.fn("Credentials.diagnose")(function* (settings: CredentialSettings) {
  const checks: CredentialCheck[] = []
  const resource = settings.keyVaultResource ?? "https://vault.azure.net"
  const authorityNote = authorityHostVariableNote(
    settings.authorityHost,
    yield* sdkEnv("AZURE_AUTHORITY_HOST"),
  )
  checks.push({
    name: "configuration",
    status: "ok",
    detail: `credential_mode ${settings.mode}; authority ${settings.authorityHost}${settings.disableInstanceDiscovery === true ? " (custom cloud: instance discovery off)" : ""}; Key Vault resource ${resource}${settings.managedIdentityClientId === undefined ? "" : `; user-assigned identity ${settings.managedIdentityClientId}`}${authorityNote === undefined ? "" : `; ${authorityNote}`}`,
  })
  if (settings.mode === "default") checks.push(...(yield* defaultChainChecks(settings)))

  const built = yield* makeCredential(settings).pipe(Effect.result)
  if (built._tag === "Failure") {
    const e = built.failure
    checks.push({
      name: "credential",
      status: "missing",
      detail: e.reason,
      fix: e.fix,
    })
    return { mode: settings.mode, ok: false, checks } satisfies CredentialDiagnosis
  }
  const resolved = withTokenTimeLimit(built.success)
  checks.push({ name: "credential", status: "ok", detail: identityLine(resolved.identity) })
  // Where the file's token is exchanged (workload identity, managed identity's AKS exchange, the
  // default chain's sources that read it), judged after the token request, which it explains.
  const tokenFileUse = yield* federatedTokenUse(settings, resolved.identity)

  const probed = yield* probeToken(resolved, keyVaultScope(resource)).pipe(Effect.result)
  if (probed._tag === "Failure") {
    const e = probed.failure
    const sdk = sdkMessage(e.cause)
    checks.push({
      name: "token",
      status: "failed",
      // A chain's first line says only that the chain failed: its sources follow, one check each.
      // An unrecognised failure's reason carries the library's words already (explainTokenFailure).
      detail: `${e.reason}${sdk === undefined || e.chainSources !== undefined || e.reason.startsWith(`${unrecognisedTokenFailure}: `) ? "" : ` (${sdk})`}`,
      fix: e.fix,
    })
    const identity: CredentialIdentity = resolved.identity
    checks.push(
      ...chainSourceChecks(e.chainSources, e.chainNotBuilt, identity, {
        authorityHost: settings.authorityHost,
      }),
    )
    if (tokenFileUse !== undefined) checks.push(federatedTokenUseCheck(tokenFileUse, false, Date.now()))
    return {
      mode: settings.mode,
      ok: false,
      identity: resolved.identity,
      checks,
    } satisfies CredentialDiagnosis
  }
  const token = probed.success
  checks.push({
    name: "token",
    status: "ok",
    detail: [
      `obtained for ${resource}`,
      token.answeredBy === undefined
        ? undefined
        : `from ${token.answeredBy} (the default chain's source that answered)`,
      token.tenantId === undefined ? undefined : `tenant ${token.tenantId}`,
      token.appId === undefined ? undefined : `app ${token.appId}`,
      token.objectId === undefined ? undefined : `object ${token.objectId}`,
      expiryInWords(token),
    ]
      .filter((x) => x !== undefined)
      .join(", "),
  })
  // A token Key Vault would refuse (another audience or tenant, expired), read from its claims; one
  // that is not a JWT is a warning (what it says cannot be read).
  const problems = tokenProblems(token, { resource, tenantId: expectedTenant(resolved.identity, token) })
  for (const p of problems)
    checks.push({
      name: p.check,
      status: p.status === "fail" ? "failed" : "warning",
      detail: p.detail,
      fix: p.fix,
    })
  if (tokenFileUse !== undefined) checks.push(federatedTokenUseCheck(tokenFileUse, true, Date.now()))
  return {
    mode: settings.mode,
    ok: problems.every((p) => p.status !== "fail"),
    identity: resolved.identity,
    token,
    checks,
  } satisfies CredentialDiagnosis
})

const statusMark: Readonly<Record<CheckStatus, string>> = {
  ok: "ok",
  missing: "MISSING",
  failed: "FAILED",
  warning: "WARN",
  skipped: "-",
}

/** Lines for `kvdeploy doctor`. */
export const formatDiagnosis = (diagnosis: CredentialDiagnosis): ReadonlyArray<string> => [
  `credential (${diagnosis.mode}): ${diagnosis.ok ? "works" : "does not work"}`,
  ...diagnosis.checks.flatMap((c) => [
    `  [${statusMark[c.status]}] ${c.name}: ${c.detail}`,
    ...(c.fix === undefined ? [] : [`        fix: ${c.fix}`]),
  ]),
]
