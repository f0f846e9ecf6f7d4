import * as Schema from "effect/Schema"

/**
 * A credential mode cannot be set up from this environment: a variable is
 * missing, a token file cannot be read, a value is malformed. Says what to do.
 */
export class CredentialUnavailable extends Schema.TaggedError<CredentialUnavailable>()(
  "CredentialUnavailable",
  {
    mode: Schema.String,
    reason: Schema.String,
    fix: Schema.String,
    missing: Schema.Array(Schema.String),
  },
) {
  override get message(): string {
    return `credential_mode ${this.mode}: ${this.reason}. ${this.fix}`
  }
}

/**
 * A credential mode needs environment variables that are not set (or blank):
 * a configuration problem of the process, found before any request. Callers
 * that distinguish usage errors from failures (the CLI's exit 2) catch this
 * tag. `variables` names each missing one; `fix` says where to set them.
 * Never carries a value.
 */
export class CredentialVariableMissing extends Schema.TaggedError<CredentialVariableMissing>()(
  "CredentialVariableMissing",
  {
    mode: Schema.String,
    variables: Schema.Array(Schema.String),
    fix: Schema.String,
  },
) {
  /** The first missing variable. */
  get variable(): string {
    return this.variables[0] ?? ""
  }
  /** Same as `variables`, under the name `CredentialUnavailable` uses. */
  get missing(): ReadonlyArray<string> {
    return this.variables
  }
  get reason(): string {
    return `missing environment variable${this.variables.length > 1 ? "s" : ""} ${this.variables.join(", ")}`
  }
  override get message(): string {
    return `credential_mode ${this.mode}: ${this.reason}. ${this.fix}`
  }
}

/**
 * An environment variable the credential reads is set to a value that cannot
 * work (an AZURE_CLIENT_ID that is no GUID, a proxy variable that is no URL):
 * like a missing one, a configuration problem of the process found before any
 * request (the CLI's exit 2). `reason` names the variable, never its value.
 */
export class CredentialVariableMalformed extends Schema.TaggedError<CredentialVariableMalformed>()(
  "CredentialVariableMalformed",
  {
    mode: Schema.String,
    variable: Schema.String,
    reason: Schema.String,
    fix: Schema.String,
  },
) {
  /** Always empty: the variable is set. */
  get missing(): ReadonlyArray<string> {
    return []
  }
  override get message(): string {
    return `credential_mode ${this.mode}: ${this.reason}. ${this.fix}`
  }
}

/** Every way `makeCredential` can fail; each carries `reason` and `fix`. */
export type CredentialSetupError =
  | CredentialUnavailable
  | CredentialVariableMissing
  | CredentialVariableMalformed

/** A credential was set up but getting a token failed. Never carries the token. */
export class TokenRequestFailed extends Schema.TaggedError<TokenRequestFailed>()("TokenRequestFailed", {
  mode: Schema.String,
  source: Schema.String,
  reason: Schema.String,
  fix: Schema.String,
  /**
   * For the default chain: each source that gave no token, in the order the SDK met them (see
   * chainFailures): its credential's name when the SDK gave one (EnvironmentCredential,
   * WorkloadIdentityCredential, ManagedIdentityCredential, AzureCliCredential, …), and its reason.
   * Not the chain's positions: a source the SDK could not build is skipped without an error
   * (chainNotBuilt names those).
   */
  chainSources: Schema.optional(
    Schema.Array(Schema.Struct({ credential: Schema.UndefinedOr(Schema.String), reason: Schema.String })),
  ),
  /**
   * For the default chain that gave no token: each source the SDK could not build, so never tried
   * (a workload identity without its variables), as its stand-in logged it (chainNotBuilt).
   */
  chainNotBuilt: Schema.optional(
    Schema.Array(Schema.Struct({ credential: Schema.UndefinedOr(Schema.String), reason: Schema.String })),
  ),
  cause: Schema.optional(Schema.Defect()),
}) {
  /** Each chain source's reason alone, in chainSources' order (as before the names were read). */
  get sources(): ReadonlyArray<string> | undefined {
    return this.chainSources?.map((s) => s.reason)
  }
  override get message(): string {
    return `credential_mode ${this.mode} (${this.source}): ${this.reason}. ${this.fix}`
  }
}
