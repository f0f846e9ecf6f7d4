import { existsSync } from "node:fs"
import { rootCertificates } from "node:tls"
import type { TokenCredential } from "@azure/core-auth"
import {
  ClientSecretCredential,
  CredentialUnavailableError,
  ManagedIdentityCredential,
  type ManagedIdentityCredentialClientIdOptions,
  WorkloadIdentityCredential,
} from "@azure/identity"
import { shownPath } from "@kvdeploy/core"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { agentOutOfLogs } from "./agentOutOfLogs.js"
import { allowedTenantsFromEnvironment } from "./allowedTenants.js"
import {
  CredentialUnavailable,
  CredentialVariableMalformed,
  CredentialVariableMissing,
} from "./CredentialUnavailable.js"
import {
  chainSelection,
  defaultChain,
  ManagedIdentityTokenExchange,
  OwnTenantManagedIdentity,
} from "./defaultChain.js"
import {
  clientCertificateFileProblem,
  clientCertificateFileState,
  environmentCertificatePath,
  environmentProblems,
  federatedTokenExpired,
  federatedTokenFileDefect,
  federatedTokenFileProblem,
  federatedTokenFileState,
  isGuid,
  managedIdentityTokenExchange,
  readFederatedTokenTimes,
  spanInWords,
  tenantFix,
} from "./environment.js"
import { identityRequestMarginMs, withRequestTimeout } from "./identityRequestTimeout.js"
import { keyVaultScope } from "./probe.js"
import { type CredentialMode, type CredentialSettings, credentialVariables } from "./settings.js"
import {
  appNotFoundUnnoted,
  KEY_VAULT_SCOPE_REFUSED,
  noteCredentialTenant,
  noteRequestedTenant,
  noteTokenFileState,
  tenantMismatchFix,
  tenantNotAllowed,
  tenantNotAllowedReason,
  VAULT_TENANT_NOT_ALLOWED,
} from "./tokenErrors.js"
import { tokenRequestTimeLimitFor } from "./tokenRequests.js"

/** Which credential was built and for which identity. Printable: holds no secret. */
export interface CredentialIdentity {
  readonly mode: CredentialMode
  /** The @azure/identity class in use. */
  readonly source: string
  readonly tenantId?: string
  readonly clientId?: string
  /** Where the token comes from: authority host, managed identity endpoint or token file. */
  readonly endpoint?: string
  readonly tokenFile?: string
  /**
   * When the managed identity (`managed_identity`'s, or the `default` chain's) asks a managed
   * identity endpoint for a user-assigned identity: what names it (`managed_identity_client_id`, or
   * `AZURE_CLIENT_ID`, which @azure/identity's chain takes for the managed identity's too).
   * Undefined for the system-assigned identity, the AKS token exchange, another mode, or a chain
   * without a managed identity.
   */
  readonly managedIdentityClientIdFrom?: "managed_identity_client_id" | "AZURE_CLIENT_ID"
}

export interface ResolvedCredential {
  readonly credential: TokenCredential
  readonly identity: CredentialIdentity
}

/** A variable as @azure/identity reads it: set when not empty (spaces alone included). */
const sdkEnv = (name: string) =>
  Config.option(Config.String(name)).pipe(
    Effect.map(Option.filter((v) => v !== "")),
    Effect.map(Option.getOrUndefined),
    Effect.orElseSucceed(() => undefined),
  )

const optionalEnv = (name: string) =>
  Config.option(Config.String(name)).pipe(
    Effect.map(Option.filter((v) => v.trim() !== "")),
    Effect.orElseSucceed(() => Option.none<string>()),
  )

/**
 * The values of every variable `mode` needs. Called after checkEnvironment, which fails when one is
 * missing (the rule in environment.ts), so every one is here.
 */
const requireVariables = Effect.fn("Credentials.requireVariables")(function* (mode: CredentialMode) {
  const values: Record<string, string> = {}
  for (const name of credentialVariables[mode]?.names ?? []) {
    const value = yield* optionalEnv(name)
    if (Option.isSome(value)) values[name] = value.value
  }
  return values
})

/**
 * The tenants other than its own that a credential may get tokens for, from
 * AZURE_ADDITIONALLY_ALLOWED_TENANTS (tenant ids separated by `;`, or `*` for any), parsed by
 * allowedTenants.ts's rule, the one doctor and the agent's `--check` show. @azure/identity reads it
 * for its EnvironmentCredential only; its other credentials read it from their options, so
 * `client_secret` and `workload_identity` (and the default chain's sources) are given it here: a
 * vault of another tenant that a multi-tenant application may reach is allowed the same way in
 * every mode that asks Entra ID. Empty when unset.
 */
const additionallyAllowedTenants = Effect.map(allowedTenantsFromEnvironment, (allowed) => allowed.tenants)

/** The options that carry AZURE_ADDITIONALLY_ALLOWED_TENANTS, or none when it is unset. */
const allowedTenantsOption = (tenants: ReadonlyArray<string>) =>
  tenants.length === 0 ? {} : { additionallyAllowedTenants: [...tenants] }

/** Where the Azure Arc agent lives on Windows (MSAL's check); on Linux /opt/azcmagent/bin/himds. */
const arcWindowsAgent = `${process.env.ProgramFiles ?? "C:\\Program Files"}\\AzureConnectedMachineAgent\\himds.exe`

/** How doctor names the token exchange's source (the token file is shown apart, as a path). */
const tokenExchangeEndpoint = (authorityHost: string): string =>
  `Entra ID token exchange at ${authorityHost} (workload identity's federated token)`

/**
 * The managed identity endpoint MSAL will use when there is no token exchange, in its order, each
 * needing all of its variables: Service Fabric, App Service, Machine Learning, Cloud Shell, Azure
 * Arc (or its agent's file), else IMDS.
 */
export const managedIdentityEndpoint = Effect.gen(function* () {
  const set = (o: Option.Option<string>) => Option.isSome(o)
  const identityEndpoint = yield* optionalEnv("IDENTITY_ENDPOINT")
  const identityHeader = yield* optionalEnv("IDENTITY_HEADER")
  const thumbprint = yield* optionalEnv("IDENTITY_SERVER_THUMBPRINT")
  const msiEndpoint = yield* optionalEnv("MSI_ENDPOINT")
  const msiSecret = yield* optionalEnv("MSI_SECRET")
  const imdsEndpoint = yield* optionalEnv("IMDS_ENDPOINT")
  const endpoint = Option.getOrElse(identityEndpoint, () => "")
  if (set(identityEndpoint) && set(identityHeader) && set(thumbprint))
    return `Service Fabric endpoint ${endpoint}`
  if (set(identityEndpoint) && set(identityHeader)) return `App Service endpoint ${endpoint}`
  if (Option.isSome(msiEndpoint))
    return `${set(msiSecret) ? "Azure Machine Learning" : "Cloud Shell"} endpoint ${msiEndpoint.value}`
  if (set(identityEndpoint) && set(imdsEndpoint)) return `Azure Arc endpoint ${endpoint}`
  // MSAL also takes an Azure Arc machine by its agent's file, without the variables.
  if (existsSync(process.platform === "win32" ? arcWindowsAgent : "/opt/azcmagent/bin/himds"))
    return "Azure Arc endpoint (the machine's Arc agent)"
  const imds = yield* optionalEnv("AZURE_POD_IDENTITY_AUTHORITY_HOST")
  return `IMDS ${Option.getOrElse(imds, () => "http://169.254.169.254")}`
})

/**
 * The federated token file may hold a token, or why not, before any token request: it cannot be
 * read, or it is a directory, empty or too large to be a token (federatedTokenFileProblem: one
 * stat and a bounded read; its content is never shown). A first check only: @azure/identity reads
 * the file again when its cached copy is 5 minutes old, and reports what it finds then.
 */
const readableTokenFile = (mode: CredentialMode, tokenFile: string) =>
  Effect.gen(function* () {
    const problem = yield* Effect.sync(() => federatedTokenFileProblem(tokenFile))
    if (problem === undefined) return
    return yield* new CredentialUnavailable({
      mode,
      ...(problem.kind === "unreadable"
        ? {
            reason: `the federated token file ${shownPath(tokenFile)} (AZURE_FEDERATED_TOKEN_FILE) cannot be read`,
            fix: "Check the projected service account token volume is mounted and readable by this user",
          }
        : federatedTokenFileDefect(tokenFile, problem)),
      missing: [],
    })
  })

/**
 * As ManagedIdentityCredential's own exchange asks: for the scopes alone (and the caller's abort
 * signal). It passes no request options on, so the tenant a Key Vault challenge names, and its
 * claims, never reach the exchange: the token comes from AZURE_TENANT_ID's tenant, as it would there.
 */
const asManagedIdentityExchange = (credential: TokenCredential): TokenCredential => ({
  getToken: (scopes, options) =>
    credential.getToken(
      scopes,
      options?.abortSignal === undefined ? {} : { abortSignal: options.abortSignal },
    ),
})

/**
 * The federated token file's state, in words, beside a failed token request (`error`) of a
 * credential that reads it (workload_identity, managed identity's AKS token exchange), at `nowMs`,
 * or undefined when it says nothing about the failure. Read when the request has failed, so it is the file as it is now (the
 * kubelet may have renewed it since the credential was made); never its content:
 * - a file that cannot be read, is empty, a directory or too large: every request fails with it;
 * - Entra ID's refusal of the token's times (AADSTS700024), with the file's `exp` by this host's
 *   clock: expired (and when), or still valid here, which points at this host's clock.
 * Entra ID's answer is the judge: a local clock that is wrong neither refuses nor passes a request.
 */
export const tokenFileStateBeside = (
  tokenFile: string,
  error: unknown,
  nowMs: number,
): { readonly reason: string; readonly fix: string } | undefined => {
  const read = readFederatedTokenTimes(tokenFile)
  if (read.problem !== undefined) return federatedTokenFileState(tokenFile, read.problem)
  const text = error instanceof Error ? error.message : String(error)
  if (!/AADSTS700024\b/.test(text)) return
  const exp = read.times?.expiresAtSeconds
  if (exp === undefined) return
  if (exp * 1000 <= nowMs) return federatedTokenExpired(tokenFile, exp, nowMs)
  return {
    reason: `the token in ${shownPath(tokenFile)} expires at ${new Date(exp * 1000).toISOString()} (in ${spanInWords(exp * 1000 - nowMs)}, by this host's clock), and Entra ID refused it as expired or not valid yet`,
    fix: "Check this host's clock against Entra ID's (NTP): a token valid by this clock and refused as expired means the clocks differ",
  }
}

/**
 * A credential that reads the federated token file, whose failed token requests also name the
 * file's state (tokenFileStateBeside): Entra ID's refusal alone said neither which file nor when
 * its token expired. The error is the SDK's own, its message extended, so it is judged as before
 * (its status, its cause, its AADSTS code); noteTokenFileState keeps the two apart for readers that
 * cut the SDK's text short or name the file's state themselves.
 */
const namingTokenFileState = (tokenFile: string, credential: TokenCredential): TokenCredential => ({
  getToken: async (scopes, options) => {
    try {
      return await credential.getToken(scopes, options)
    } catch (error) {
      if (error instanceof Error && !refusedTenant(error)) {
        const state = tokenFileStateBeside(tokenFile, error, Date.now())
        if (state !== undefined) noteTokenFileState(error, `${state.reason}: ${state.fix}`)
      }
      throw error
    }
  },
})

/** @azure/identity's refusal of a token for a tenant the credential was not given (processMultiTenantRequest). */
const refusedTenant = (error: unknown): boolean =>
  error instanceof Error && /not configured to acquire tokens for tenant/.test(error.message)

/**
 * Key Vault's challenge names the vault's tenant by its id (lower case), and keyvault-common asks
 * the credential for a token of that tenant. @azure/identity's credentials compare it with the
 * tenant they were given, text for text (processMultiTenantRequest), and refuse any other before
 * sending a request, unless it is one of their additionally allowed tenants: a tenant given as its
 * domain name (contoso.onmicrosoft.com), or as its id in upper case, would have every token
 * refused. For those:
 * - the id in upper case, and the challenge names that id: the challenge's tenant is left out of
 *   the request (the same tenant);
 * - a domain name: the request is made as asked first (a vault of another tenant the credential
 *   may reach, with AZURE_ADDITIONALLY_ALLOWED_TENANTS, gets its token); only when the SDK refuses
 *   the challenge's tenant, before sending anything, is it asked again without it. The token then
 *   comes from the tenant configured, which Entra ID takes by its domain name, and the vault judges
 *   it (a token of another tenant gets Key Vault's 401, which says to check the tenant). When
 *   Entra ID answers the first request AADSTS700016 (no application of the client id there), a
 *   domain name gives no way to tell whether the challenge's tenant is its own: the tenant
 *   configured is asked once more, and the refusal is noted as of the credential's own tenant (a
 *   client id or tenant to check) only when Entra ID answers AADSTS700016 there too; any other
 *   answer (a token, a wrong secret, a failed request) leaves it the vault's tenant's.
 * A tenant given as its id in lower case keeps the SDK's own check: the credential is unchanged.
 */
export const forConfiguredTenant = (
  tenantId: string | undefined,
  credential: TokenCredential,
): TokenCredential =>
  tenantId === undefined || (isGuid(tenantId) && tenantId === tenantId.toLowerCase())
    ? credential
    : {
        getToken: async (scopes, options) => {
          const asked = options?.tenantId
          if (asked === undefined) return credential.getToken(scopes, options)
          const { tenantId: _challengeTenant, ...withoutTenant } = options ?? {}
          // Each attempt notes the tenant it asked on its error (noteRequestedTenant): an id in
          // upper case or a domain name compares with no tenant Entra ID names in its refusal.
          const same = asked.toLowerCase() === tenantId.toLowerCase()
          if (isGuid(tenantId))
            try {
              return await credential.getToken(scopes, same ? withoutTenant : options)
            } catch (error) {
              noteRequestedTenant(error, same ? undefined : asked, tenantId)
              throw error
            }
          try {
            return await credential.getToken(scopes, options)
          } catch (error) {
            if (!refusedTenant(error)) {
              // The domain name's tenant may be the one whose id the challenge asked: asked without
              // the challenge's tenant, it tells. Entra ID looks the application up before it checks
              // the secret: any answer at home but AADSTS700016 (a token, a wrong secret, a throttled
              // or failed request) says the client id is known there, or tells nothing. Not asked when
              // every AADSTS700016 of the error already says where its request went (a managed
              // identity's: its own tenant), and such an answer at home is no answer of the source
              // asked about (a chain's managed identity before it).
              const another = appNotFoundUnnoted(error)
                ? await credential.getToken(scopes, withoutTenant).then(
                    () => true,
                    (home: unknown) => !appNotFoundUnnoted(home),
                  )
                : true
              noteRequestedTenant(error, another ? asked : undefined, tenantId)
              throw error
            }
          }
          // Asked again without the challenge's tenant: of the tenant configured.
          try {
            return await credential.getToken(scopes, withoutTenant)
          } catch (error) {
            noteRequestedTenant(error, undefined, tenantId)
            throw error
          }
        },
      }

/**
 * A Key Vault challenge that names another tenant than the credential's (the vault is in another
 * directory) meets @azure/identity's refusal before any request, in words written for a developer
 * ("add it to the AdditionallyAllowedTenants on the credential options") that name the vault's
 * tenant only. It is given again as kvdeploy's refusal (VAULT_TENANT_NOT_ALLOWED, a
 * CredentialUnavailableError), naming both tenants and what to do, so a deploy, the agent and
 * doctor can say that the tenants differ. Outside forConfiguredTenant: a domain name's retry
 * without the challenge's tenant comes first.
 */
export const namingVaultTenant = (
  credentialTenant: string | undefined,
  credential: TokenCredential,
): TokenCredential =>
  credentialTenant === undefined
    ? credential
    : {
        getToken: async (scopes, options) => {
          try {
            return await credential.getToken(scopes, options)
          } catch (error) {
            const refused = tenantNotAllowed(error)
            if (refused === undefined) {
              // The tenant this credential was given, and the one its request asked (unless
              // forConfiguredTenant's attempt noted it), on its error: a refusal in another tenant
              // (AADSTS700016 in the vault's) is then told from one in its own (appNotInTenant).
              noteRequestedTenant(error, options?.tenantId, credentialTenant)
              noteCredentialTenant(error, credentialTenant)
              throw error
            }
            throw Object.assign(
              new CredentialUnavailableError(
                `${tenantNotAllowedReason({ ...refused, credentialTenant })}: ${tenantMismatchFix(refused.vaultTenant)}`,
              ),
              {
                code: VAULT_TENANT_NOT_ALLOWED,
                vaultTenant: refused.vaultTenant,
                credentialTenant,
                cause: error,
              },
            )
          }
        },
      }

/**
 * Construct an @azure/identity credential. Its constructors check their arguments and throw (a
 * tenant id that is no GUID or domain name, an unknown AZURE_TOKEN_CREDENTIALS value): such a
 * throw is the environment's problem, named with its fix, never a crash. The SDK's messages name
 * the value it refused (a tenant id, a credential name), never a secret.
 */
const construct = <T>(mode: CredentialMode, fix: string | ((refusal: string) => string), build: () => T) =>
  Effect.try({
    try: build,
    catch: (error) => {
      const refusal = error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error)
      return new CredentialUnavailable({
        mode,
        reason: `@azure/identity refused the settings: ${refusal}`,
        fix: typeof fix === "string" ? fix : fix(refusal),
        missing: [],
      })
    },
  })

/**
 * The fix for ManagedIdentityCredential's refusal of a client id (`refusal`, its message): Cloud
 * Shell and Service Fabric pick the identity themselves and refuse any client id, whatever it is;
 * elsewhere the client id is checked.
 */
const managedIdentityClientIdFix = (refusal: string): string =>
  /not supported for CloudShell|not supported by the Service Fabric/i.test(refusal)
    ? `Remove managed_identity_client_id: ${/CloudShell/i.test(refusal) ? "Cloud Shell" : "Service Fabric"} picks the managed identity itself (Service Fabric by the cluster's resource configuration) and refuses a client id`
    : "Check managed_identity_client_id (the user-assigned identity's client id, a GUID)"

/**
 * The credential that makes AKS workload identity's token exchange in place of a managed identity
 * (`managed_identity` mode, and the default chain's managed identity): a WorkloadIdentityCredential
 * at the target's cloud (`authority`: its authority host, TLS options and pipeline), asking as
 * ManagedIdentityCredential's own exchange asks (asManagedIdentityExchange), whose failures name
 * the token file's state (namingTokenFileState). ManagedIdentityCredential would make this exchange
 * through a WorkloadIdentityCredential of its own, built without the options it was given:
 * AZURE_AUTHORITY_HOST's authority (the workload identity webhook sets it; else the public
 * cloud's), Node's CAs only, none of these pipeline policies.
 */
const tokenExchangeCredential = (
  exchange: { readonly tenantId: string; readonly clientId: string; readonly tokenFile: string },
  authority: ConstructorParameters<typeof WorkloadIdentityCredential>[0],
): TokenCredential =>
  namingTokenFileState(
    exchange.tokenFile,
    asManagedIdentityExchange(
      new WorkloadIdentityCredential({
        ...authority,
        tenantId: exchange.tenantId,
        clientId: exchange.clientId,
        tokenFilePath: exchange.tokenFile,
        // As ManagedIdentityCredential's exchange does.
        disableInstanceDiscovery: true,
      }),
    ),
  )

/** The environment's first problem for `mode`, as the error `makeCredential` fails with. */
const checkEnvironment = Effect.fn("Credentials.checkEnvironment")(function* (
  mode: CredentialMode,
  managedIdentityClientId: string | undefined,
) {
  // The configured client id decides managed identity's token exchange, as the credential does.
  const first = (yield* environmentProblems(mode, { managedIdentityClientId }))[0]
  if (first === undefined) return
  return yield* first.kind === "missing"
    ? new CredentialVariableMissing({ mode, variables: first.variables, fix: first.fix })
    : new CredentialVariableMalformed({
        mode,
        variable: first.variables[0] ?? "",
        reason: first.reason,
        fix: first.fix,
      })
})

/**
 * A credential that gives tokens for the vault's resource only (`keyVaultResource/.default`). The
 * Key Vault SDK asks for the scope its vault's challenge names; for a custom cloud (Azure Stack
 * Hub, a private deployment) it is told not to check that name against the vault's host, so a
 * hostile or misconfigured endpoint could otherwise be handed a token for another API the
 * identity may call (Azure Resource Manager, say). Any other scope is refused before a token is
 * asked for, as a credential that is not available for it.
 */
export const forKeyVaultScope = (keyVaultResource: string, credential: TokenCredential): TokenCredential => {
  const allowed = keyVaultScope(keyVaultResource).toLowerCase()
  return {
    getToken: (scopes, options) => {
      const asked = (typeof scopes === "string" ? [scopes] : scopes).map((s) =>
        keyVaultScope(s.replace(/\/\.default$/i, "")).toLowerCase(),
      )
      const other = asked.find((s) => s !== allowed)
      if (other !== undefined)
        return Promise.reject(
          Object.assign(
            new CredentialUnavailableError(
              `kvdeploy asks for tokens for ${allowed} only (the target cloud's keyvault_resource), and the vault asked for ${other}: check cloud.keyvault_resource, or that the vault URL is the vault's`,
            ),
            { code: KEY_VAULT_SCOPE_REFUSED },
          ),
        )
      return credential.getToken(scopes, options)
    },
  }
}

/**
 * Build the TokenCredential for a credential mode. Environment variables are
 * read through Effect's ConfigProvider (the process environment by default),
 * so callers and tests choose where they come from. With `keyVaultResource`,
 * it gives tokens for the vault's resource only (forKeyVaultScope).
 */
export const makeCredential = Effect.fn("Credentials.makeCredential")(function* (
  settings: CredentialSettings,
) {
  const resolved: ResolvedCredential = yield* resolveCredential(settings)
  return settings.keyVaultResource === undefined
    ? resolved
    : ({
        ...resolved,
        credential: forKeyVaultScope(settings.keyVaultResource, resolved.credential),
      } satisfies ResolvedCredential)
})

const resolveCredential = Effect.fnUntraced(function* (settings: CredentialSettings) {
  const tls =
    settings.trustedCaPem === undefined
      ? {}
      : {
          tlsOptions: {
            ca: [
              ...rootCertificates,
              ...(typeof settings.trustedCaPem === "string"
                ? [settings.trustedCaPem]
                : settings.trustedCaPem),
            ],
          },
        }
  // Every credential's pipeline keeps the request's agent out of the SDK's log (agentOutOfLogs.ts),
  // and its HTTP client lets go of a request its identity endpoint holds (identityRequestTimeout.ts).
  const pipeline = {
    additionalPolicies: [{ policy: agentOutOfLogs, position: "perCall" as const }],
    httpClient: withRequestTimeout(
      settings.identityRequestTimeoutMs ?? tokenRequestTimeLimitFor(settings.mode) + identityRequestMarginMs,
    ),
  }
  const authority = {
    ...pipeline,
    authorityHost: settings.authorityHost,
    ...(settings.disableInstanceDiscovery === true ? { disableInstanceDiscovery: true } : {}),
    ...tls,
  }
  yield* checkEnvironment(settings.mode, settings.managedIdentityClientId)
  switch (settings.mode) {
    case "client_secret": {
      const env = yield* requireVariables("client_secret")
      const secret = yield* Config.Redacted("AZURE_CLIENT_SECRET").pipe(
        Effect.mapError(
          () =>
            new CredentialVariableMissing({
              mode: "client_secret",
              variables: ["AZURE_CLIENT_SECRET"],
              fix: "Set AZURE_CLIENT_SECRET in the environment",
            }),
        ),
      )
      const tenantId = env.AZURE_TENANT_ID as string
      const clientId = env.AZURE_CLIENT_ID as string
      const allowed = allowedTenantsOption(yield* additionallyAllowedTenants)
      const credential = yield* construct("client_secret", tenantFix, () =>
        namingVaultTenant(
          tenantId,
          forConfiguredTenant(
            tenantId,
            new ClientSecretCredential(tenantId, clientId, Redacted.value(secret), {
              ...authority,
              ...allowed,
            }),
          ),
        ),
      )
      return {
        credential,
        identity: {
          mode: "client_secret",
          source: "ClientSecretCredential",
          tenantId,
          clientId,
          endpoint: settings.authorityHost,
        },
      } satisfies ResolvedCredential
    }
    case "workload_identity": {
      const env = yield* requireVariables("workload_identity")
      const tokenFile = env.AZURE_FEDERATED_TOKEN_FILE as string
      yield* readableTokenFile("workload_identity", tokenFile)
      const tenantId = env.AZURE_TENANT_ID as string
      const clientId = env.AZURE_CLIENT_ID as string
      const allowed = allowedTenantsOption(yield* additionallyAllowedTenants)
      const credential = yield* construct("workload_identity", tenantFix, () =>
        namingVaultTenant(
          tenantId,
          forConfiguredTenant(
            tenantId,
            namingTokenFileState(
              tokenFile,
              new WorkloadIdentityCredential({
                tenantId,
                clientId,
                tokenFilePath: tokenFile,
                ...authority,
                ...allowed,
              }),
            ),
          ),
        ),
      )
      return {
        credential,
        identity: {
          mode: "workload_identity",
          source: "WorkloadIdentityCredential",
          tenantId,
          clientId,
          tokenFile,
          endpoint: settings.authorityHost,
        },
      } satisfies ResolvedCredential
    }
    case "managed_identity": {
      const clientId = settings.managedIdentityClientId
      const clientIdFix = managedIdentityClientIdFix("")
      const exchange = yield* managedIdentityTokenExchange(clientId)
      if (exchange !== undefined) {
        // The exchange reads workload identity's variables: judged as that mode judges them (a
        // client id that is no GUID, a value padded with spaces or a line break), before any request.
        const malformed = (yield* environmentProblems("workload_identity")).find(
          (p) =>
            p.kind === "malformed" && !(clientId !== undefined && p.variables.includes("AZURE_CLIENT_ID")),
        )
        if (malformed !== undefined)
          return yield* new CredentialVariableMalformed({
            mode: "managed_identity",
            variable: malformed.variables[0] ?? "",
            reason: malformed.reason,
            fix: malformed.fix,
          })
        yield* readableTokenFile("managed_identity", exchange.tokenFile)
        // The same exchange as ManagedIdentityCredential's, at the target's cloud (tokenExchangeCredential).
        const credential = yield* construct("managed_identity", `${tenantFix}; ${clientIdFix}`, () =>
          tokenExchangeCredential(exchange, authority),
        )
        return {
          credential,
          identity: {
            mode: "managed_identity",
            source: `WorkloadIdentityCredential (${clientId === undefined ? "" : "user-assigned, "}the managed identity's AKS token exchange)`,
            tenantId: exchange.tenantId,
            clientId: exchange.clientId,
            tokenFile: exchange.tokenFile,
            endpoint: tokenExchangeEndpoint(settings.authorityHost),
          },
        } satisfies ResolvedCredential
      }
      const endpoint = yield* managedIdentityEndpoint
      const credential = yield* construct("managed_identity", managedIdentityClientIdFix, () =>
        clientId === undefined
          ? new ManagedIdentityCredential({ ...pipeline, ...tls })
          : new ManagedIdentityCredential({ clientId, ...pipeline, ...tls }),
      )
      return {
        credential,
        identity: {
          mode: "managed_identity",
          source:
            clientId === undefined
              ? "ManagedIdentityCredential (system-assigned)"
              : "ManagedIdentityCredential (user-assigned)",
          ...(clientId === undefined
            ? {}
            : { clientId, managedIdentityClientIdFrom: "managed_identity_client_id" }),
          endpoint,
        },
      } satisfies ResolvedCredential
    }
    case "default": {
      // The chain's EnvironmentCredential reads a client certificate file whole with each token
      // attempt: one that is no regular file of a certificate's size (/dev/zero) is refused first.
      const sdkValues = new Map<string, string | undefined>()
      for (const name of [
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_TOKEN_CREDENTIALS",
      ])
        sdkValues.set(name, yield* sdkEnv(name))
      const certificatePath = environmentCertificatePath((name) => sdkValues.get(name))
      const certificateProblem =
        certificatePath === undefined ? undefined : clientCertificateFileProblem(certificatePath)
      if (certificatePath !== undefined && certificateProblem !== undefined)
        return yield* new CredentialUnavailable({
          mode: "default",
          ...clientCertificateFileState(certificatePath, certificateProblem),
          missing: [],
        })
      const tenantId = yield* optionalEnv("AZURE_TENANT_ID")
      const clientId = settings.managedIdentityClientId
      const allowed = allowedTenantsOption(yield* additionallyAllowedTenants)
      const selection = yield* sdkEnv("AZURE_TOKEN_CREDENTIALS")
      const environmentClientId = yield* sdkEnv("AZURE_CLIENT_ID")
      const tokenFile = yield* sdkEnv("AZURE_FEDERATED_TOKEN_FILE")
      // The chain's managed identity makes AKS workload identity's token exchange where the SDK's
      // would (its rule: managedIdentityTokenExchange), here at the target's cloud; elsewhere it is
      // ManagedIdentityCredential as the SDK's chain builds it: user-assigned by the configured
      // client id, else by AZURE_CLIENT_ID (the SDK's rule, whatever else that variable is for).
      const exchange = yield* managedIdentityTokenExchange(clientId)
      const managedClientId = clientId ?? environmentClientId
      const options = {
        ...authority,
        ...allowed,
        ...(clientId === undefined ? {} : { managedIdentityClientId: clientId }),
        ...(Option.isSome(tenantId) ? { tenantId: tenantId.value } : {}),
      }
      const managedIdentity = (probe: boolean): TokenCredential => {
        if (exchange !== undefined)
          return new ManagedIdentityTokenExchange(tokenExchangeCredential(exchange, authority))
        // As createDefaultManagedIdentityCredential: the chain's options, its IMDS retries, and an
        // IMDS probe unless AZURE_TOKEN_CREDENTIALS keeps the managed identity alone.
        const managedOptions: ManagedIdentityCredentialClientIdOptions & {
          readonly sendProbeRequest: boolean
        } = {
          ...options,
          ...(managedClientId === undefined ? {} : { clientId: managedClientId }),
          retryOptions: { maxRetries: 5, retryDelayInMs: 800 },
          sendProbeRequest: probe,
        }
        return new OwnTenantManagedIdentity(managedOptions)
      }
      const credential = yield* construct(
        "default",
        `${tenantFix}; and AZURE_TOKEN_CREDENTIALS, when set: "prod", "dev" or one credential's name (EnvironmentCredential, WorkloadIdentityCredential, ManagedIdentityCredential, AzureCliCredential, ...)`,
        () =>
          namingVaultTenant(
            Option.getOrUndefined(tenantId),
            forConfiguredTenant(
              Option.getOrUndefined(tenantId),
              defaultChain({ selection, options, environmentClientId, tokenFile, managedIdentity }),
            ),
          ),
      )
      const kept = chainSelection(selection) ?? []
      const managedFrom =
        kept.includes("ManagedIdentityCredential") && exchange === undefined && managedClientId !== undefined
          ? clientId !== undefined
            ? ("managed_identity_client_id" as const)
            : ("AZURE_CLIENT_ID" as const)
          : undefined
      const sources = [
        kept.includes("EnvironmentCredential") ? "environment" : undefined,
        kept.includes("WorkloadIdentityCredential") ? "workload identity" : undefined,
        kept.includes("ManagedIdentityCredential")
          ? exchange !== undefined
            ? "managed identity by AKS workload identity's token exchange"
            : managedFrom === undefined
              ? "managed identity (system-assigned)"
              : `managed identity (user-assigned by ${managedFrom})`
          : undefined,
        kept.some(
          (name) =>
            !["EnvironmentCredential", "WorkloadIdentityCredential", "ManagedIdentityCredential"].includes(
              name,
            ),
        )
          ? kept.length === 1
            ? kept[0]
            : "developer tools"
          : undefined,
      ].filter((x) => x !== undefined)
      // The developer tools get a token from the tool's own sign-in, in the cloud the tool has active
      // (az cloud set, azd config's cloud.name, Connect-AzAccount -Environment): only the authority
      // host of the others is the target's.
      const tools = kept.some(
        (name) =>
          !["EnvironmentCredential", "WorkloadIdentityCredential", "ManagedIdentityCredential"].includes(
            name,
          ),
      )
      const clouds =
        sources.length === 1 && tools
          ? "in the tool's own active cloud (az cloud set, azd's cloud.name, Connect-AzAccount -Environment), not set by the target"
          : tools
            ? "each source at the target's cloud but the developer tools, which use the tool's own active cloud"
            : "each source at the target's cloud"
      return {
        credential,
        identity: {
          mode: "default",
          source: `DefaultAzureCredential's chain${selection === undefined || selection.trim() === "" ? "" : " as AZURE_TOKEN_CREDENTIALS selects it"} (${sources.join(", ")}), ${clouds}`,
          ...(Option.isSome(tenantId) ? { tenantId: tenantId.value } : {}),
          ...(clientId === undefined ? {} : { clientId }),
          endpoint: settings.authorityHost,
          ...(managedFrom === undefined ? {} : { managedIdentityClientIdFrom: managedFrom }),
        },
      } satisfies ResolvedCredential
    }
  }
})
