/** `kvdeploy validate FILE`: core's target validation on a configuration file, every problem listed. */
import { shownCloud, shownPath, validateTargetConfigSync } from "@kvdeploy/core"
import { knownIdentitySecrets } from "@kvdeploy/credentials/tokenErrors"
import * as Argument from "effect/cli/Argument"
import * as Command from "effect/cli/Command"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as flags from "../cli/flags.js"
import { ExitCode, ExitWith, withoutPem } from "../cli/problems.js"
import { readConfigFile } from "../cli/target.js"
import { printJson, printLines, styleOut } from "../cli/terminal.js"

export const validate = Command.make(
  "validate",
  {
    file: Argument.String("file").pipe(
      Argument.withMetavar("FILE"),
      Argument.withDescription("Target configuration (JSON, the certctl fields)."),
    ),
    json: flags.json,
  },
  ({ file, json }) =>
    Effect.gen(function* () {
      // A file that cannot be read or parsed is as invalid as one with bad fields: one record shape
      // for a script (`valid: false`, `problems`), the same exit.
      const read = yield* Effect.result(readConfigFile(file, "FILE"))
      const result =
        read._tag === "Failure"
          ? Result.fail({ problems: read.failure.problems })
          : // A tag value holding the identity's secret is refused without being shown, as deploy refuses it.
            validateTargetConfigSync(read.success, { knownSecrets: knownIdentitySecrets(process.env) })
      const raw = read._tag === "Success" ? read.success : {}
      const s = styleOut()
      if (Result.isSuccess(result)) {
        const t = result.success
        if (json) yield* printJson({ file, valid: true, target: t, problems: [] })
        else
          yield* printLines([
            `${s.green("valid")}  ${shownPath(file)}`,
            `  vault            ${t.vaultUrl} (${shownCloud(t.cloud, raw.cloud)})`,
            `  certificate      ${t.certificateName}`,
            `  credential mode  ${t.credentialMode}${t.managedIdentityClientId === undefined ? "" : ` (client id ${t.managedIdentityClientId})`}`,
            `  tags             ${
              Object.keys(t.tags).length === 0
                ? "(none)"
                : Object.entries(t.tags)
                    .map(([k, v]) => `${k}=${v}`)
                    .join(", ")
            }`,
            `  on soft-deleted  ${t.onSoftDeleted}    pfx encoding  ${t.pfxEncoding}    content type  ${t.contentType}`,
            `  consumers        ${t.consumers === undefined ? "(none)" : t.consumers.join(", ")}${t.consumers !== undefined && t.contentType === "keep" ? "    (content type keep imports PKCS#12 for them)" : ""}`,
            `  authority        ${t.cloud.authorityHost}    token resource  ${t.cloud.keyVaultResource}`,
          ])
        return
      }
      const problems = result.failure.problems.map((p) => ({
        field: withoutPem(p.field),
        message: withoutPem(p.message),
        fix: withoutPem(p.fix),
      }))
      if (json) yield* printJson({ file, valid: false, problems })
      else
        yield* printLines([
          `${s.red("invalid")}  ${shownPath(file)}: ${problems.length} problem${problems.length === 1 ? "" : "s"}`,
          ...problems.flatMap((p) => [`  ${s.bold(p.field)}: ${p.message}`, `    fix: ${p.fix}`]),
        ])
      return yield* new ExitWith({ exitCode: ExitCode.usage })
    }),
).pipe(
  Command.withDescription(
    "Check a target configuration file without contacting any vault. Every problem is listed with its field and the fix; secrets in the file are refused. Exit 0 when valid, 2 when not.",
  ),
  Command.withShortDescription("Check a target configuration file (no vault access)"),
  Command.withExamples([
    { command: "kvdeploy validate target.json", description: "List every problem in target.json" },
    { command: "kvdeploy validate target.json --json", description: "The same as a JSON record" },
  ]),
)
