/** `kvdeploy versions`: the version history, newest first, marking kvdeploy's writes and rollbacks. */

import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as flags from "../cli/flags.js"
import { type Problem, wholeNumberFlag } from "../cli/problems.js"
import { resolveTargetAfterFlags } from "../cli/target.js"
import { printJson, printLines, step, styleOut } from "../cli/terminal.js"
import { absentCertificate, credentialInUse, useVault, vaultProblem } from "../cli/vault.js"
import { newestFirst, versionLines, versionRecord } from "../cli/versions.js"

export const versions = Command.make(
  "versions",
  {
    ...flags.target,
    name: flags.certificateName,
    limit: Flag.String("limit").pipe(
      Flag.withMetavar("N"),
      Flag.withDescription("Show at most N versions."),
      Flag.optional,
    ),
    json: flags.json,
  },
  (input) =>
    Effect.gen(function* () {
      // Every problem of the input in one usage error: --limit's and the target's.
      const problems: Array<Problem> = []
      let limit: number | undefined
      if (Option.isSome(input.limit)) {
        const n = wholeNumberFlag(
          "--limit",
          input.limit.value,
          { min: 1, max: Number.MAX_SAFE_INTEGER },
          "a number of versions to show (1 or more)",
          "give a whole number of 1 or more, or leave --limit out for every version",
        )
        if (typeof n === "number") limit = n
        else problems.push(n)
      }
      const { config, nameField } = yield* resolveTargetAfterFlags(problems, input, { name: input.name })
      const credential = yield* credentialInUse(config)
      const [all, latestId] = yield* useVault(config, (vault) => {
        const missing = Effect.flip(
          absentCertificate(vault, config, "check the name with `kvdeploy list`", nameField),
        )
        return step(
          `listing versions of ${config.certificateName}`,
          Effect.all([
            vault.listVersions(config.certificateName),
            // Which version the vault serves: ties in creation time (one-second resolution) are ordered by it.
            vault.getLatest(config.certificateName).pipe(
              Effect.map((v): string | undefined => v.versionId),
              Effect.catchTag("VaultNotFound", () => Effect.succeed(undefined)),
            ),
          ]),
        ).pipe(
          // Key Vault lists a name that holds no certificate as empty (200): the same answer as a 404.
          Effect.flatMap(([all, latestId]) =>
            all.length === 0 && latestId === undefined ? missing : Effect.succeed([all, latestId] as const),
          ),
          Effect.catchTag("VaultNotFound", () => missing),
          Effect.mapError((e) =>
            "_tag" in e && e._tag === "CliProblem" ? e : vaultProblem("listVersions", e, credential),
          ),
        )
      })
      const sorted = newestFirst(all, latestId)
      const limited = limit === undefined ? sorted : sorted.slice(0, limit)
      const records = limited.map((v) => versionRecord(v, v.versionId === latestId))
      // Of the versions shown: with --limit, the order beyond them does not matter.
      const orderUnknown = limited.length > sorted.firstUnknown
      if (input.json) {
        return yield* printJson({
          vaultUrl: config.vaultUrl,
          certificateName: config.certificateName,
          total: all.length,
          // Some versions of one second are in the vault's order, which says nothing of which came first.
          orderUnknown,
          versions: records,
        })
      }
      const s = styleOut()
      // With --limit, how many of how many are shown: "30 versions" above 3 lines read as a cut list.
      const counted =
        records.length < all.length
          ? `${records.length} of ${all.length} versions`
          : `${all.length} version${all.length === 1 ? "" : "s"}`
      yield* printLines([
        `${s.bold(config.certificateName)} in ${config.vaultUrl}: ${counted}, newest first`,
        ...(orderUnknown
          ? [
              s.dim(
                "(some versions were created in the same second, and Key Vault keeps whole seconds: their order among themselves is unknown)",
              ),
            ]
          : []),
        ...versionLines(records, s, Date.now()),
      ])
    }),
).pipe(
  Command.withDescription(
    "List every version of a certificate, newest first: version id, creation time, expiry, x5t, and marks for the latest version, versions kvdeploy wrote (certctl-managed-by), rollbacks (certctl-rollback-of) and disabled versions. Needs certificates/list. Exit 0, 1 when it does not exist (no version) or cannot be read, 2 for a usage error.",
  ),
  Command.withShortDescription("Version history, newest first"),
  Command.withExamples([
    { command: "kvdeploy versions --config target.json", description: "History of the target's certificate" },
    {
      command: "kvdeploy versions --config target.json --limit 5 --json",
      description: "The 5 newest, as JSON",
    },
  ]),
)
