/** The four credential modes of the certctl Azure Key Vault target. */
export type CredentialMode = "default" | "managed_identity" | "client_secret" | "workload_identity"

export const credentialModes: ReadonlyArray<CredentialMode> = [
  "default",
  "managed_identity",
  "client_secret",
  "workload_identity",
]

/**
 * The environment variables each mode needs (a variable set to blanks counts as not set), and where
 * to set them. Data only: a configuration check can read it without making a credential.
 */
export const credentialVariables: Partial<
  Record<CredentialMode, { readonly names: ReadonlyArray<string>; readonly fix: string }>
> = {
  client_secret: {
    names: ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"],
    fix: "Set the missing variables in the environment kvdeploy runs in (the agent's service, the pipeline or the shell), never in the target configuration",
  },
  workload_identity: {
    names: ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"],
    fix: "Run in a pod labelled azure.workload.identity/use=true whose service account is annotated with azure.workload.identity/client-id; the webhook sets these variables",
  },
}

/**
 * What a credential needs to know. It comes from the validated target
 * configuration: the mode and optional user-assigned identity from the target,
 * the authority host from the vault's cloud. No secret is ever part of it:
 * a client secret is read from `AZURE_CLIENT_SECRET` only.
 */
export interface CredentialSettings {
  readonly mode: CredentialMode
  /** Client id of a user-assigned managed identity (`managed_identity` and `default`). */
  readonly managedIdentityClientId?: string | undefined
  /** Entra ID authority host of the vault's cloud, e.g. https://login.microsoftonline.com. */
  readonly authorityHost: string
  /**
   * Skip MSAL's instance discovery against the public cloud. Needed for custom
   * clouds (Azure Stack Hub, private deployments, the emulator), whose authority
   * MSAL does not know.
   */
  readonly disableInstanceDiscovery?: boolean | undefined
  /** Key Vault resource of the vault's cloud (token audience), e.g. https://vault.azure.net. */
  readonly keyVaultResource?: string | undefined
  /**
   * Extra CA certificates (PEM) to trust for the authority host, on top of
   * Node's default roots: a private cloud's CA, or the emulator's.
   */
  readonly trustedCaPem?: string | ReadonlyArray<string> | undefined
  /**
   * The time limit on each HTTP request to an identity endpoint, in ms (default 5 s more than the
   * token request's limit of the mode, `tokenRequestTimeLimitFor`: 35 s, or 95 s where a managed
   * identity endpoint may answer): one that accepts the connection and never answers is let go then,
   * with its connection (identityRequestTimeout.ts).
   */
  readonly identityRequestTimeoutMs?: number | undefined
}

/** Public authority hosts of the three Azure clouds. */
export const authorityHosts = {
  public: "https://login.microsoftonline.com",
  usgovernment: "https://login.microsoftonline.us",
  china: "https://login.chinacloudapi.cn",
} as const
