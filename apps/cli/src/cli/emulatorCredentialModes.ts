/**
 * The credential modes kvdeploy can try against a running emulator, each with the environment that
 * points it at the emulator's identity endpoint and the target fields that select it: what
 * `kvdeploy emulator` prints (`--all-modes`), writes beside its --write-env / --write-config files,
 * and carries in `--json`. Nothing here is a secret beyond the emulator's own throwaway ones (its
 * client secret, its managed identity endpoint's header); the federated token is named by its file.
 */
import { basename } from "node:path"
import { shellQuote } from "@kvdeploy/core"
import type { Emulator } from "@kvdeploy/kv-emulator"

/** The ids of the credential modes the emulator serves, client_secret first (known before it starts). */
export const emulatorModeIds = [
  "client_secret",
  "managed_identity_app_service",
  "managed_identity_imds",
  "managed_identity_user_assigned",
  "workload_identity",
  "managed_identity_aks_exchange",
  "default",
] as const

/** One way to get a token from the emulator. */
export interface EmulatorCredentialMode {
  /** Names the mode in `--json` and in the files written for it (`emulator.<id>.env`). */
  readonly id: (typeof emulatorModeIds)[number]
  /** What it is, in a line. */
  readonly title: string
  /** The target's credential_mode. */
  readonly credentialMode: "client_secret" | "managed_identity" | "workload_identity" | "default"
  /** The target's managed_identity_client_id, where the mode needs one. */
  readonly managedIdentityClientId?: string
  /** Client id of the identity that gets the token (the admin API's RBAC takes it). */
  readonly clientId: string
  /** The variables to export. */
  readonly env: Readonly<Record<string, string>>
  /** The other modes' variables, to unset first: left set, they would change what this mode does. */
  readonly unset: ReadonlyArray<string>
  /** The target configuration for this mode (the printed one, its credential fields changed). */
  readonly targetConfig: Record<string, unknown>
  /** The same choice as command-line flags, over a target file of another mode. */
  readonly flags: ReadonlyArray<string>
  /** The federated token file the emulator writes (0600) and renews, removed at stop. */
  readonly tokenFile?: string
}

/** The modes, client_secret first (the one `kvdeploy emulator` prints without --all-modes). */
export const emulatorCredentialModes = (
  started: Emulator,
  vault: string,
  certificateName: string,
): ReadonlyArray<EmulatorCredentialMode> => {
  const mi = started.managedIdentity
  const userAssigned = mi.userAssigned.clientId
  // The user-assigned identity is chosen by the target (managed_identity_client_id), which is how
  // kvdeploy selects one: the IMDS variables alone, without the AZURE_CLIENT_ID the emulator's own
  // `env.managedIdentityUserAssigned` adds for other clients.
  const modes: Array<Omit<EmulatorCredentialMode, "unset" | "flags">> = [
    {
      id: "client_secret",
      title:
        "client_secret: the application's secret (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET)",
      credentialMode: "client_secret",
      clientId: started.clientSecret.clientId,
      env: started.env.clientSecret,
      targetConfig: started.targetConfig(vault, certificateName, "clientSecret"),
    },
    {
      id: "managed_identity_app_service",
      title:
        "managed_identity, system-assigned, through App Service's endpoint (IDENTITY_ENDPOINT, IDENTITY_HEADER)",
      credentialMode: "managed_identity",
      clientId: mi.systemAssigned.clientId,
      env: started.env.managedIdentityAppService,
      targetConfig: started.targetConfig(vault, certificateName, "managedIdentityAppService"),
    },
    {
      id: "managed_identity_imds",
      title:
        "managed_identity, system-assigned, through IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST points it here)",
      credentialMode: "managed_identity",
      clientId: mi.systemAssigned.clientId,
      env: started.env.managedIdentityImds,
      targetConfig: started.targetConfig(vault, certificateName, "managedIdentityImds"),
    },
    {
      id: "managed_identity_user_assigned",
      title: "managed_identity, the user-assigned identity the target names by client id (through IMDS)",
      credentialMode: "managed_identity",
      managedIdentityClientId: userAssigned,
      clientId: userAssigned,
      env: started.env.managedIdentityImds,
      targetConfig: started.targetConfig(vault, certificateName, "managedIdentityUserAssigned"),
    },
    {
      id: "workload_identity",
      title:
        "workload_identity (AKS): a federated token file the emulator signed and renews (AZURE_FEDERATED_TOKEN_FILE)",
      credentialMode: "workload_identity",
      clientId: started.workloadIdentity.clientId,
      env: started.env.workloadIdentity,
      targetConfig: started.targetConfig(vault, certificateName, "workloadIdentity"),
      tokenFile: started.workloadIdentity.tokenFile,
    },
    {
      // On AKS, managed_identity with workload identity's variables: @azure/identity's
      // ManagedIdentityCredential then makes the token exchange with the federated token file
      // instead of asking an identity endpoint (the pod has none).
      id: "managed_identity_aks_exchange",
      title:
        "managed_identity on AKS: the token exchange with workload identity's federated token file (no identity endpoint asked)",
      credentialMode: "managed_identity",
      clientId: started.workloadIdentity.clientId,
      env: started.env.workloadIdentity,
      targetConfig: {
        ...started.targetConfig(vault, certificateName, "workloadIdentity"),
        credential_mode: "managed_identity",
      },
      tokenFile: started.workloadIdentity.tokenFile,
    },
    {
      id: "default",
      title:
        "default (DefaultAzureCredential): with App Service's variables, its managed identity source answers",
      credentialMode: "default",
      clientId: mi.systemAssigned.clientId,
      env: started.env.managedIdentityAppService,
      targetConfig: {
        ...started.targetConfig(vault, certificateName, "managedIdentityAppService"),
        credential_mode: "default",
      },
    },
  ]
  const everyVariable = [...new Set(modes.flatMap((m) => Object.keys(m.env)))].filter(
    (name) => name !== "NODE_EXTRA_CA_CERTS",
  )
  return modes.map((m) => ({
    ...m,
    unset: everyVariable.filter((name) => !(name in m.env)),
    flags: [
      "--credential-mode",
      m.credentialMode,
      ...(m.managedIdentityClientId === undefined
        ? []
        : ["--managed-identity-client-id", m.managedIdentityClientId]),
    ],
  }))
}

/** A value as the shell reads it back (core's, kept here for this module's importers). */
export { shellQuote }

/** The `export` lines of an environment. */
export const exportLines = (env: Readonly<Record<string, string>>): Array<string> =>
  Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}`)

/** A mode's shell lines: the other modes' variables unset, then its own exported. */
export const modeShellLines = (mode: EmulatorCredentialMode): Array<string> => [
  ...(mode.unset.length === 0 ? [] : [`unset ${mode.unset.join(" ")}`]),
  ...exportLines(mode.env),
]

/** The target fields that select a mode, as they read in the target file. */
export const modeTargetFields = (mode: EmulatorCredentialMode): string =>
  [
    `"credential_mode": "${mode.credentialMode}"`,
    ...(mode.managedIdentityClientId === undefined
      ? []
      : [`"managed_identity_client_id": "${mode.managedIdentityClientId}"`]),
  ].join(", ")

/**
 * The file written for a mode beside one of the --write-* files: the mode's id before the file's
 * extension (`emulator.env` -> `emulator.workload_identity.env`), or after a name without one.
 */
export const modeFile = (path: string, id: EmulatorCredentialMode["id"]): string => {
  const name = basename(path)
  const dir = path.slice(0, path.length - name.length)
  const dot = name.lastIndexOf(".")
  return dot > 0 ? `${dir}${name.slice(0, dot)}.${id}${name.slice(dot)}` : `${path}.${id}`
}
