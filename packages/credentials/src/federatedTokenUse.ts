/**
 * Whether the credential of a mode reads the federated token file here (AZURE_FEDERATED_TOKEN_FILE),
 * by @azure/identity's own rule (4.x), so that doctor judges the file's token (its `federated token`
 * check: expired, not yet valid) wherever it is exchanged with Entra ID, not in `workload_identity`
 * alone:
 * - `workload_identity`: always (its credential needs the file);
 * - `managed_identity`: in an AKS workload identity pod, ManagedIdentityCredential exchanges the
 *   file's token (its tokenExchangeMsi: a client id, the configured one or AZURE_CLIENT_ID, with
 *   AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE); kvdeploy makes that exchange itself
 *   (makeCredential), and its identity names the file then;
 * - `default`: DefaultAzureCredential's WorkloadIdentityCredential, and its ManagedIdentityCredential's
 *   exchange, read it with the same three (the client id being the configured user-assigned one, else
 *   AZURE_CLIENT_ID), when AZURE_TOKEN_CREDENTIALS keeps them in the chain, and unless its
 *   EnvironmentCredential comes first with what it needs (a tenant, a client id, and a secret, a
 *   certificate or a user name and password): it then answers, or its refusal ends the chain.
 * The SDK takes a variable as set when it is not empty, spaces alone included, where kvdeploy takes a
 * variable of spaces as unset: with such a value the rule is not decided here (`Undecided`).
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { CredentialIdentity } from "./credential.js"
import type { CredentialSettings } from "./settings.js"

/** Whether the federated token file is read here, and by what. Holds the file's path, never its content. */
export type FederatedTokenUse =
  /** It is read; `reader` says by what when it is not the mode's own credential (the default chain's sources). */
  | { readonly _tag: "Read"; readonly tokenFile: string; readonly reader?: string }
  /** AZURE_FEDERATED_TOKEN_FILE is set, and the mode's credential does not read it here: `why`. */
  | { readonly _tag: "NotRead"; readonly tokenFile: string; readonly why: string }
  /** Whether it is read cannot be told from the SDK's rule: `why`, and `fix`. */
  | { readonly _tag: "Undecided"; readonly tokenFile: string; readonly why: string; readonly fix: string }

const read = (tokenFile: string, reader?: string): FederatedTokenUse =>
  reader === undefined ? { _tag: "Read", tokenFile } : { _tag: "Read", tokenFile, reader }
const notRead = (tokenFile: string, why: string): FederatedTokenUse => ({ _tag: "NotRead", tokenFile, why })
const undecided = (
  tokenFile: string,
  about: { readonly why: string; readonly fix: string },
): FederatedTokenUse => ({
  _tag: "Undecided",
  tokenFile,
  ...about,
})

/** A variable as it is set, spaces included (undefined when it is not set). */
const raw = (name: string) =>
  Config.option(Config.String(name)).pipe(
    Effect.map(Option.getOrUndefined),
    Effect.orElseSucceed(() => undefined),
  )

/** The SDK's test of a variable: set when not empty. */
const set = (value: string | undefined): value is string => value !== undefined && value !== ""

/** Set for the SDK, unset for kvdeploy: spaces or line breaks alone. */
const blank = (value: string | undefined): boolean => set(value) && value.trim() === ""

/** Which of the chain's sources that may read the file AZURE_TOKEN_CREDENTIALS keeps, as DefaultAzureCredential reads it; undefined for a value it does not take. */
const chainOf = (
  selection: string | undefined,
): { readonly environment: boolean; readonly workload: boolean; readonly managed: boolean } | undefined => {
  switch (selection) {
    case undefined:
    case "prod":
      return { environment: true, workload: true, managed: true }
    case "environmentcredential":
      return { environment: true, workload: false, managed: false }
    case "workloadidentitycredential":
      return { environment: false, workload: true, managed: false }
    case "managedidentitycredential":
      return { environment: false, workload: false, managed: true }
    case "dev":
    case "visualstudiocodecredential":
    case "azureclicredential":
    case "azurepowershellcredential":
    case "azuredeveloperclicredential":
      return { environment: false, workload: false, managed: false }
    default:
      return undefined
  }
}

const spacesOnly = (names: ReadonlyArray<string>): { readonly why: string; readonly fix: string } => ({
  why: `${names.join(" and ")} ${names.length === 1 ? "holds" : "hold"} only spaces or line breaks, which @azure/identity takes as set and kvdeploy as unset, so whether the token file is read cannot be told (its value is not shown)`,
  fix: `Set ${names.join(" and ")} to ${names.length === 1 ? "its value" : "their values"}, or unset ${names.length === 1 ? "it" : "them"}`,
})

/**
 * Whether the credential `identity` (made from `settings` by makeCredential) reads the federated
 * token file here (the module's rule). Undefined when AZURE_FEDERATED_TOKEN_FILE is not set and no
 * credential reads a file, or for `client_secret`, which never reads it. Variables are read through
 * Effect's ConfigProvider, as makeCredential reads them.
 */
export const federatedTokenUse = Effect.fn("Credentials.federatedTokenUse")(function* (
  settings: CredentialSettings,
  identity: CredentialIdentity,
) {
  if (identity.tokenFile !== undefined) return read(identity.tokenFile)
  const tokenFile = yield* raw("AZURE_FEDERATED_TOKEN_FILE")
  if (!set(tokenFile) || (settings.mode !== "managed_identity" && settings.mode !== "default")) return
  const tenant = yield* raw("AZURE_TENANT_ID")
  const environmentClient = yield* raw("AZURE_CLIENT_ID")
  const configuredClient = settings.managedIdentityClientId
  const client = configuredClient ?? environmentClient
  const blanks = [
    ...(blank(tokenFile) ? ["AZURE_FEDERATED_TOKEN_FILE"] : []),
    ...(blank(tenant) ? ["AZURE_TENANT_ID"] : []),
    ...(configuredClient === undefined && blank(environmentClient) ? ["AZURE_CLIENT_ID"] : []),
  ]
  const missing = [
    ...(set(tenant) ? [] : ["AZURE_TENANT_ID"]),
    ...(set(client)
      ? []
      : [
          settings.mode === "managed_identity"
            ? "a client id (managed_identity_client_id or AZURE_CLIENT_ID)"
            : "AZURE_CLIENT_ID",
        ]),
  ]
  if (settings.mode === "managed_identity") {
    // makeCredential made no exchange (its identity names no file): the SDK's ManagedIdentityCredential
    // would make one only where a variable of spaces reads as set to it.
    if (missing.length === 0) return undecided(tokenFile, spacesOnly(blanks))
    return notRead(
      tokenFile,
      `the managed identity's AKS token exchange needs AZURE_TENANT_ID and a client id (managed_identity_client_id or AZURE_CLIENT_ID), and ${missing.join(" and ")} ${missing.length === 1 ? "is" : "are"} not set, so ${identity.endpoint ?? "the managed identity endpoint"} is asked instead`,
    )
  }
  const selection = yield* raw("AZURE_TOKEN_CREDENTIALS")
  const chain = chainOf(set(selection) ? selection.trim().toLowerCase() : undefined)
  if (chain === undefined)
    return undecided(tokenFile, {
      why: "AZURE_TOKEN_CREDENTIALS names no chain this check knows, so whether the token file is read cannot be told (its value is not shown)",
      fix: `Set AZURE_TOKEN_CREDENTIALS to "prod", "dev" or one credential's name (WorkloadIdentityCredential, ManagedIdentityCredential, …), or unset it`,
    })
  if (!chain.workload && !chain.managed)
    return notRead(
      tokenFile,
      "AZURE_TOKEN_CREDENTIALS leaves the chain's workload identity and managed identity out, and no other source reads the file",
    )
  const readers =
    chain.workload && chain.managed
      ? "the chain's WorkloadIdentityCredential, and its ManagedIdentityCredential's AKS token exchange"
      : chain.workload
        ? "the chain's WorkloadIdentityCredential"
        : "the chain's ManagedIdentityCredential (its AKS token exchange)"
  if (missing.length > 0)
    return notRead(
      tokenFile,
      `${readers} ${chain.workload && chain.managed ? "read" : "reads"} it only with AZURE_TENANT_ID and a client id, and ${missing.join(" and ")} ${missing.length === 1 ? "is" : "are"} not set`,
    )
  if (blanks.length > 0) return undecided(tokenFile, spacesOnly(blanks))
  const secret = yield* raw("AZURE_CLIENT_SECRET")
  const certificate = yield* raw("AZURE_CLIENT_CERTIFICATE_PATH")
  const username = yield* raw("AZURE_USERNAME")
  const password = yield* raw("AZURE_PASSWORD")
  if (
    chain.environment &&
    set(environmentClient) &&
    (set(secret) || set(certificate) || (set(username) && set(password)))
  )
    return notRead(
      tokenFile,
      `the chain's EnvironmentCredential comes first (AZURE_TENANT_ID, AZURE_CLIENT_ID and ${set(secret) ? "AZURE_CLIENT_SECRET" : set(certificate) ? "AZURE_CLIENT_CERTIFICATE_PATH" : "AZURE_USERNAME and AZURE_PASSWORD"} are set): it answers, or its refusal ends the chain, before ${readers} would read it`,
    )
  return read(tokenFile, readers)
})
