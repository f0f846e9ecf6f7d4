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

/** A credential was set up but getting a token failed. Never carries the token. */
export class TokenRequestFailed extends Schema.TaggedError<TokenRequestFailed>()("TokenRequestFailed", {
  mode: Schema.String,
  source: Schema.String,
  reason: Schema.String,
  fix: Schema.String,
  cause: Schema.optional(Schema.Defect()),
}) {
  override get message(): string {
    return `credential_mode ${this.mode} (${this.source}): ${this.reason}. ${this.fix}`
  }
}
