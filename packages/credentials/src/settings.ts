/** The four credential modes of the certctl Azure Key Vault target. */
export type CredentialMode = "default" | "managed_identity" | "client_secret" | "workload_identity"

export const credentialModes: ReadonlyArray<CredentialMode> = [
  "default",
  "managed_identity",
  "client_secret",
  "workload_identity",
]

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
}

/** Public authority hosts of the three Azure clouds. */
export const authorityHosts = {
  public: "https://login.microsoftonline.com",
  usgovernment: "https://login.microsoftonline.us",
  china: "https://login.chinacloudapi.cn",
} as const
