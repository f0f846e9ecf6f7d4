/** `kvdeploy show`: the version the vault serves now, with provenance, expiry and tags. */

import * as Command from "effect/cli/Command"
import * as Effect from "effect/Effect"
import * as flags from "../cli/flags.js"
import { resolveTarget } from "../cli/target.js"
import { printJson, printLines, step, styleOut } from "../cli/terminal.js"
import { absentCertificate, credentialInUse, useVault, vaultProblem } from "../cli/vault.js"
import { versionDetail, versionRecord } from "../cli/versions.js"

export const show = Command.make(
  "show",
  { ...flags.target, name: flags.certificateName, json: flags.json },
  (input) =>
    Effect.gen(function* () {
      const { config, nameField } = yield* resolveTarget(input, { name: input.name })
      const credential = yield* credentialInUse(config)
      const latest = yield* useVault(config, (vault) =>
        step(`reading ${config.certificateName}`, vault.getLatest(config.certificateName)).pipe(
          Effect.catchTag("VaultNotFound", () =>
            Effect.flip(
              absentCertificate(
                vault,
                config,
                "check the name with `kvdeploy list`, or deploy it first",
                nameField,
              ),
            ),
          ),
          Effect.mapError((e) =>
            "_tag" in e && e._tag === "CliProblem" ? e : vaultProblem("getLatest", e, credential),
          ),
        ),
      )
      const record = versionRecord(latest, true)
      if (input.json)
        return yield* printJson({
          vaultUrl: config.vaultUrl,
          certificateName: config.certificateName,
          latest: record,
        })
      yield* printLines(versionDetail(config.certificateName, record, styleOut(), Date.now()))
    }),
).pipe(
  Command.withDescription(
    "Show the latest version of a certificate (what the vault serves now): version id, creation time, expiry, enabled, x5t thumbprint, serial, whether kvdeploy wrote it (certctl-managed-by), whether it is a rollback (certctl-rollback-of), and its tags. Needs certificates/get. Exit 0, 1 when it does not exist or cannot be read, 2 for a usage error.",
  ),
  Command.withShortDescription("Show the version the vault serves now"),
  Command.withExamples([
    {
      command: "kvdeploy show --vault-url https://my-vault.vault.azure.net --name api-prod",
      description: "Latest version of api-prod",
    },
    { command: "kvdeploy show --config target.json --json", description: "As JSON" },
  ]),
)
