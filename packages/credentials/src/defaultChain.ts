/**
 * `credential_mode: default`: DefaultAzureCredential's chain, built here from @azure/identity's own
 * credential classes, in the SDK's order and with its selection by AZURE_TOKEN_CREDENTIALS
 * (@azure/identity 4.14's defaultAzureCredential.js and defaultAzureCredentialFunctions.js), so
 * that every source is given the target's cloud (authority host, instance discovery) and TLS
 * options. DefaultAzureCredential gives them to each source too, but its ManagedIdentityCredential,
 * in an AKS workload identity pod, makes the token exchange through a WorkloadIdentityCredential it
 * builds without them: the pod's federated token went to AZURE_AUTHORITY_HOST's authority, else the
 * public cloud's, whatever the target's cloud. Here the chain's managed identity is the one
 * `managed_identity` mode makes (its exchange at the target's cloud), given by the caller.
 *
 * The chain is the SDK's ChainedTokenCredential, so it fails as DefaultAzureCredential fails (an
 * AggregateAuthenticationError of the sources' CredentialUnavailableErrors, or "Failed to retrieve
 * a valid token"), and writes the lines doctor reads (chainReport.ts) as it does: the source that
 * answered by its class name (the chain's managed identity is named ManagedIdentityCredential, as
 * the SDK's is), and a source whose constructor threw by the SDK's own stand-in line (`Skipping
 * <factory>, reason: <error>`). Two warnings the SDK's chain logs while it is built (a source it
 * could not build; a value of AZURE_TOKEN_CREDENTIALS it refuses, which kvdeploy reports as its
 * own error) are not written. The sign-in broker (BrokerCredential, last in the SDK's chain)
 * is left out: @azure/identity does not export it, and without the @azure/identity-broker plugin,
 * which kvdeploy does not ship, the SDK's chain could not build it either.
 */
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth"
import {
  AzureCliCredential,
  AzureDeveloperCliCredential,
  AzurePowerShellCredential,
  ChainedTokenCredential,
  CredentialUnavailableError,
  type DefaultAzureCredentialClientIdOptions,
  EnvironmentCredential,
  ManagedIdentityCredential,
  VisualStudioCodeCredential,
  WorkloadIdentityCredential,
} from "@azure/identity"
import { createClientLogger } from "@azure/logger"
import { noteOwnTenantRequested } from "./tokenErrors.js"

/** The chain's sources, in the order it tries them. */
export const defaultChainSources = [
  "EnvironmentCredential",
  "WorkloadIdentityCredential",
  "ManagedIdentityCredential",
  "VisualStudioCodeCredential",
  "AzureCliCredential",
  "AzurePowerShellCredential",
  "AzureDeveloperCliCredential",
] as const

export type DefaultChainSource = (typeof defaultChainSources)[number]

const productionSources: ReadonlyArray<DefaultChainSource> = [
  "EnvironmentCredential",
  "WorkloadIdentityCredential",
  "ManagedIdentityCredential",
]
const developerSources: ReadonlyArray<DefaultChainSource> = [
  "VisualStudioCodeCredential",
  "AzureCliCredential",
  "AzurePowerShellCredential",
  "AzureDeveloperCliCredential",
]

/**
 * The sources AZURE_TOKEN_CREDENTIALS keeps, read as DefaultAzureCredential reads it (`raw`: the
 * variable as set; empty or spaces alone is unset): unset, every source; `prod` or `dev`; or one
 * source's name, in any case. Undefined for any other value, which DefaultAzureCredential refuses.
 */
export const chainSelection = (raw: string | undefined): ReadonlyArray<DefaultChainSource> | undefined => {
  const value = raw === undefined ? "" : raw.trim().toLowerCase()
  if (value === "") return [...productionSources, ...developerSources]
  if (value === "prod") return productionSources
  if (value === "dev") return developerSources
  const one = defaultChainSources.find((name) => name.toLowerCase() === value)
  return one === undefined ? undefined : [one]
}

/** DefaultAzureCredential's refusal of a value of AZURE_TOKEN_CREDENTIALS it does not take, in its words. */
export const invalidSelectionMessage = (raw: string): string =>
  `Invalid value for AZURE_TOKEN_CREDENTIALS = ${raw}. Valid values are 'prod' or 'dev' or any of these credentials - ${defaultChainSources.join(", ")}.`

/** The SDK's logger, whose lines the operator's AZURE_LOG_LEVEL shows and chainReport.ts hears. */
const identityLogger = createClientLogger("identity")

/**
 * A source whose constructor threw: it gives no token, and says why in the line DefaultAzureCredential's
 * own stand-in (UnavailableDefaultCredential, not exported) writes, so that doctor reads it as before.
 */
class NotBuiltSource implements TokenCredential {
  constructor(
    private readonly factory: string,
    private readonly reason: string,
  ) {}
  getToken(): Promise<AccessToken | null> {
    identityLogger.info(
      "DefaultAzureCredential => getToken() =>",
      `Skipping ${this.factory}, reason: ${this.reason}`,
    )
    return Promise.resolve(null)
  }
}

/** What the chain needs from its caller. */
export interface DefaultChainParts {
  /** AZURE_TOKEN_CREDENTIALS as set (undefined when unset). */
  readonly selection: string | undefined
  /** The options every source is given: the target's cloud, TLS, pipeline, tenants, client id. */
  readonly options: DefaultAzureCredentialClientIdOptions
  /** AZURE_CLIENT_ID as the SDK reads it (undefined when unset or empty). */
  readonly environmentClientId: string | undefined
  /** AZURE_FEDERATED_TOKEN_FILE as the SDK reads it (undefined when unset or empty). */
  readonly tokenFile: string | undefined
  /**
   * The chain's managed identity: `probe` says whether it first probes IMDS (in the chain, as the
   * SDK's does; not when AZURE_TOKEN_CREDENTIALS keeps it alone).
   */
  readonly managedIdentity: (probe: boolean) => TokenCredential
}

/**
 * The chain's workload identity, as createDefaultWorkloadIdentityCredential builds it: the client id
 * the chain is given, else AZURE_CLIENT_ID; the token file from AZURE_FEDERATED_TOKEN_FILE.
 */
const workloadIdentity = (parts: DefaultChainParts): TokenCredential => {
  const clientId =
    parts.options.workloadIdentityClientId ??
    parts.options.managedIdentityClientId ??
    parts.environmentClientId
  return new WorkloadIdentityCredential({
    ...parts.options,
    ...(clientId !== undefined && parts.tokenFile !== undefined
      ? { clientId, tokenFilePath: parts.tokenFile }
      : {}),
  })
}

/**
 * The chain of `parts`: a ChainedTokenCredential of the sources AZURE_TOKEN_CREDENTIALS keeps.
 * Throws DefaultAzureCredential's own error for a value of it that it refuses (the caller reports
 * it); a source whose constructor throws is left in its place as a NotBuiltSource.
 */
export const defaultChain = (parts: DefaultChainParts): ChainedTokenCredential => {
  const selected = chainSelection(parts.selection)
  if (selected === undefined) throw new Error(invalidSelectionMessage(parts.selection ?? ""))
  const alone = selected.length === 1
  const build: Record<DefaultChainSource, () => TokenCredential> = {
    EnvironmentCredential: () => new EnvironmentCredential(parts.options),
    WorkloadIdentityCredential: () => workloadIdentity(parts),
    ManagedIdentityCredential: () => parts.managedIdentity(!alone),
    VisualStudioCodeCredential: () => new VisualStudioCodeCredential(parts.options),
    AzureCliCredential: () => new AzureCliCredential(parts.options),
    AzurePowerShellCredential: () => new AzurePowerShellCredential(parts.options),
    AzureDeveloperCliCredential: () => new AzureDeveloperCliCredential(parts.options),
  }
  return new ChainedTokenCredential(
    ...selected.map((name) => {
      try {
        return build[name]()
      } catch (error) {
        return new NotBuiltSource(
          `createDefault${name}`,
          error instanceof Error ? error.message : String(error),
        )
      }
    }),
  )
}

/** ManagedIdentityCredential's test of a network failure (its isNetworkError). */
const networkFailure = (error: unknown): boolean => {
  const e = error as { errorCode?: unknown; code?: unknown; statusCode?: unknown; message?: unknown }
  if (e?.errorCode === "network_error") return true
  if (e?.code === "ENETUNREACH" || e?.code === "EHOSTUNREACH") return true
  return (
    (e?.statusCode === 403 || e?.code === 403) &&
    typeof e.message === "string" &&
    e.message.includes("unreachable")
  )
}

/**
 * The chain's managed identity where it makes AKS workload identity's token exchange (`exchange`:
 * a WorkloadIdentityCredential at the target's cloud). It fails as ManagedIdentityCredential does:
 * an AuthenticationRequiredError as it is, any other failure (Entra ID's refusal, an
 * AuthenticationError, among them) as a CredentialUnavailableError naming itself with the
 * exchange's error as its cause, so the chain goes on to its next source; and logs the failure in
 * its words. Its class is named
 * ManagedIdentityCredential: the chain logs the class name of the source that answered, and doctor
 * reads it there.
 */
export class ManagedIdentityTokenExchange implements TokenCredential {
  constructor(private readonly exchange: TokenCredential) {}
  async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
    try {
      return await this.exchange.getToken(scopes, options)
    } catch (error) {
      // The exchange asks AZURE_TENANT_ID's tenant whatever the challenge names: its refusal
      // (AADSTS700016 among them) is one in the credential's own tenant, not the vault's.
      noteOwnTenantRequested(error)
      const message = error instanceof Error ? error.message : String(error)
      // ManagedIdentityCredential's own error line (formatError's words), which names the source of
      // an error that does not name itself (chainReport.ts): Entra ID's refusal, passed on as it is.
      identityLogger.error(
        "ManagedIdentityCredential => getToken() =>",
        `ERROR. Scopes: ${Array.isArray(scopes) ? scopes.join(", ") : scopes}. Error message: ${message}.`,
      )
      if (error instanceof Error && error.name === "AuthenticationRequiredError") throw error
      const unavailable = new CredentialUnavailableError(
        networkFailure(error)
          ? `ManagedIdentityCredential: Network unreachable. Message: ${message}`
          : `ManagedIdentityCredential: Authentication failed. Message ${message}`,
        { cause: error },
      )
      noteOwnTenantRequested(unavailable)
      throw unavailable
    }
  }
}
Object.defineProperty(ManagedIdentityTokenExchange, "name", { value: "ManagedIdentityCredential" })

/**
 * The chain's managed identity where it asks a managed identity endpoint (IMDS, App Service, ...):
 * ManagedIdentityCredential itself, whose errors are noted as of the credential's own tenant
 * (noteOwnTenantRequested): the endpoint knows no tenant, and the challenge's is never asked.
 * Its class name stays ManagedIdentityCredential (the chain logs it; doctor reads it).
 */
export class OwnTenantManagedIdentity extends ManagedIdentityCredential {
  override async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken> {
    try {
      return await super.getToken(scopes, options)
    } catch (error) {
      noteOwnTenantRequested(error)
      throw error
    }
  }
}
Object.defineProperty(OwnTenantManagedIdentity, "name", { value: "ManagedIdentityCredential" })
