/**
 * From core's validated target configuration to the settings of its
 * credential: the mode and user-assigned identity from the target, the
 * authority host and Key Vault resource from its cloud. A custom cloud (Azure
 * Stack Hub, a private deployment, the emulator) has an authority MSAL does
 * not know, so instance discovery is turned off for it only.
 */
import type { TargetConfig } from "@kvdeploy/core"
import type { CredentialSettings } from "./settings.js"

export interface TargetCredentialOptions {
  /** Extra CA certificates (PEM) to trust for the authority host (a private cloud's CA, the emulator's). */
  readonly trustedCaPem?: string | ReadonlyArray<string> | undefined
}

export const credentialSettingsFromTarget = (
  target: Pick<TargetConfig, "credentialMode" | "managedIdentityClientId" | "cloud">,
  options: TargetCredentialOptions = {},
): CredentialSettings => ({
  mode: target.credentialMode,
  ...(target.managedIdentityClientId === undefined
    ? {}
    : { managedIdentityClientId: target.managedIdentityClientId }),
  authorityHost: target.cloud.authorityHost,
  keyVaultResource: target.cloud.keyVaultResource,
  ...(target.cloud.name === "Custom" ? { disableInstanceDiscovery: true } : {}),
  ...(options.trustedCaPem === undefined ? {} : { trustedCaPem: options.trustedCaPem }),
})
