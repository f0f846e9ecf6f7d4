/** Flags shared by several commands, so each one is spelled and documented once. */
import * as Flag from "effect/cli/Flag"

export const json = Flag.Boolean("json").pipe(
  Flag.withDescription("Print only the result record as JSON on stdout (no colours, no progress)."),
  Flag.withDefault(false),
)

/** Flags that name a target: the certctl configuration fields, from a file or one by one. */
export const target = {
  config: Flag.String("config").pipe(
    Flag.withMetavar("FILE"),
    Flag.withDescription(
      "Target configuration file (JSON with the certctl fields: vault_url, certificate_name, tags, credential_mode, managed_identity_client_id, on_soft_deleted, pfx_encoding, content_type, consumers, cloud). Flags given as well override its fields.",
    ),
    Flag.optional,
  ),
  vaultUrl: Flag.String("vault-url").pipe(
    Flag.withMetavar("URL"),
    Flag.withDescription("The vault, e.g. https://my-vault.vault.azure.net (the certctl vault_url)."),
    Flag.optional,
  ),
  // A string checked by the target's validation (not Flag.Literals, which the parser refuses on its
  // own): a wrong mode is then listed with the target's other problems, in one run.
  credentialMode: Flag.String("credential-mode").pipe(
    Flag.withMetavar("default|managed_identity|client_secret|workload_identity"),
    Flag.withDescription(
      "How to get a token: default (the DefaultAzureCredential chain), managed_identity, client_secret (AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET from the environment) or workload_identity (AKS).",
    ),
    Flag.optional,
  ),
  managedIdentityClientId: Flag.String("managed-identity-client-id").pipe(
    Flag.withMetavar("GUID"),
    Flag.withDescription(
      "Client id of a user-assigned managed identity (with --credential-mode managed_identity).",
    ),
    Flag.optional,
  ),
}

export const certificateName = Flag.String("name").pipe(
  Flag.withMetavar("NAME"),
  Flag.withDescription(
    "Certificate name in the vault (the certctl certificate_name): 1-127 of A-Z a-z 0-9 -.",
  ),
  Flag.optional,
)

export const tags = Flag.String("tag").pipe(
  Flag.withMetavar("KEY=VALUE"),
  Flag.withDescription(
    "Operator tag to put on the new version (repeatable; at most 12; the keys certctl-managed-by, certctl-certificate-id and certctl-rollback-of are kvdeploy's own).",
  ),
  Flag.atLeast(0),
)

/** The target's consumers (deploy and plan): repeatable, or one comma list. */
export const consumers = Flag.String("consumer").pipe(
  Flag.withMetavar("NAME"),
  Flag.withDescription(
    "A service that reads this certificate from the vault: front_door, application_gateway or app_service (repeatable, or a comma list; replaces the target file's consumers). Preflight refuses a certificate it would not take, before anything is written, and warns where its documentation is weaker; content_type keep imports PKCS#12 for it.",
  ),
  Flag.atLeast(0),
)

/** Where certificate material comes from. */
export const material = {
  cert: Flag.String("cert").pipe(
    Flag.withMetavar("FILE|-"),
    Flag.withDescription(
      "PEM leaf certificate (may be followed by its chain, and even the key); '-' reads stdin.",
    ),
    Flag.optional,
  ),
  chain: Flag.String("chain").pipe(
    Flag.withMetavar("FILE|-"),
    Flag.withDescription("PEM intermediate certificates, any order; '-' reads stdin."),
    Flag.optional,
  ),
  key: Flag.String("key").pipe(
    Flag.withMetavar("FILE|-"),
    Flag.withDescription(
      "PEM private key (PKCS#8, PKCS#1 or SEC1; encrypted keys need --key-passphrase-env); '-' reads stdin.",
    ),
    Flag.optional,
  ),
  keyPassphraseEnv: Flag.String("key-passphrase-env").pipe(
    Flag.withMetavar("VAR"),
    Flag.withDescription(
      "Name of the environment variable holding the passphrase of an encrypted --key (never the passphrase itself).",
    ),
    Flag.optional,
  ),
  pfx: Flag.String("pfx").pipe(
    Flag.withMetavar("FILE|-"),
    Flag.withDescription("PKCS#12 (.pfx/.p12) file holding the certificate, chain and key; '-' reads stdin."),
    Flag.optional,
  ),
  pfxPasswordEnv: Flag.String("pfx-password-env").pipe(
    Flag.withMetavar("VAR"),
    Flag.withDescription(
      "Name of the environment variable holding the PFX password. Without it kvdeploy asks on a terminal, or tries the empty password. The password is never a flag value.",
    ),
    Flag.optional,
  ),
}
