/**
 * Validate-only (the certctl contract's dry run) is not supported by Key Vault:
 * there is no server-side "would this import succeed" call. The entry point
 * answers a tagged error; `kvdeploy plan` (preflight + snapshot) is the
 * read-only preview.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { DeployRequest } from "./request.js"

export class ValidateOnlyNotSupported extends Schema.TaggedError<ValidateOnlyNotSupported>()(
  "ValidateOnlyNotSupported",
  { target: Schema.String, detail: Schema.String },
) {
  override get message(): string {
    return this.detail
  }
}

export const validateOnly = (request: DeployRequest): Effect.Effect<never, ValidateOnlyNotSupported> =>
  Effect.fail(
    new ValidateOnlyNotSupported({
      target: `${request.target.vaultUrl}/certificates/${request.target.certificateName}`,
      detail:
        "Azure Key Vault has no validate-only import; use `kvdeploy plan` for a read-only preview (preflight and snapshot)",
    }),
  )
