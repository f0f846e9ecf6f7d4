/**
 * `kvdeploy restore`: put an earlier version's certificate back, as a new version, by deploying the
 * material of that version's backing secret (the PFX Key Vault keeps, chain and key included): the
 * way back after a RollbackFailed, or from any wrong certificate, without the key touching a disk.
 */
import { CERTIFICATE_ID_TAG, certificateIdProblems, PfxCodec, quotedValue, Vault } from "@kvdeploy/core"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Effect from "effect/Effect"
import * as flags from "../cli/flags.js"
import { leafSummary } from "../cli/outcome.js"
import { ExitWith, failure, usage, usageOne } from "../cli/problems.js"
import { resolveTarget } from "../cli/target.js"
import { printErr, progress, styleErr } from "../cli/terminal.js"
import { credentialInUse, vaultProblem, withDeployServices } from "../cli/vault.js"
import { deployFlags, deployReported, printOutcome } from "./deploy.js"

/** A Key Vault version id: 32 hexadecimal digits. */
const versionIdPattern = /^[0-9a-f]{32}$/i

export const restore = Command.make(
  "restore",
  {
    ...flags.target,
    name: flags.certificateName,
    fromVersion: Flag.String("from-version").pipe(
      Flag.withMetavar("VERSION"),
      Flag.withDescription(
        "The version whose certificate to put back (its id, as `kvdeploy versions` lists them).",
      ),
    ),
    adopt: deployFlags.adopt,
    json: flags.json,
  },
  (input) =>
    Effect.gen(function* () {
      // As `kvdeploy versions` lists them: lower case.
      const versionId = input.fromVersion.trim().toLowerCase()
      const { config } = yield* resolveTarget(input, { name: input.name })
      if (!versionIdPattern.test(versionId))
        return yield* usageOne(
          "--from-version",
          `${quotedValue(input.fromVersion)} is not a version id (32 hexadecimal digits)`,
          "give a version id as `kvdeploy versions` lists them",
        )
      const name = config.certificateName
      const credential = yield* credentialInUse(config)
      yield* progress(`restoring ${name} from its version ${versionId}…`)
      const code = yield* withDeployServices(
        config,
        Effect.gen(function* () {
          const vault = yield* Vault
          const codec = yield* PfxCodec
          const version = yield* vault.getVersion(name, versionId).pipe(
            Effect.catchTag("VaultNotFound", () =>
              Effect.fail(
                usageOne(
                  "--from-version",
                  `${name} has no version ${versionId} in ${config.vaultUrl}`,
                  "`kvdeploy versions` lists its versions",
                ),
              ),
            ),
            Effect.mapError((e) =>
              "_tag" in e && e._tag === "CliProblem" ? e : vaultProblem("getVersion", e, credential),
            ),
          )
          // What a deploy of that version's certificate would refuse, or Key Vault would not read, is
          // said before its secret is read.
          const refused = (message: string, fix: string) =>
            Effect.fail(usage(`--from-version: ${message}`, [{ field: "--from-version", message, fix }]))
          if (!version.enabled)
            return yield* refused(
              `version ${versionId} is disabled, and Key Vault reads no disabled version's secret`,
              `enable it first (\`az keyvault certificate set-attributes --vault-name VAULT --name ${name} --version ${versionId} --enabled true\`; the vault then serves it only if it is the latest), or restore another version (\`kvdeploy versions\`)`,
            )
          if (version.expiresAt !== undefined && version.expiresAt.getTime() <= Date.now())
            return yield* refused(
              `the certificate of version ${versionId} expired at ${version.expiresAt.toISOString()}, and a deploy refuses an expired certificate`,
              "restore a later version (`kvdeploy versions`), or deploy a renewed certificate with `kvdeploy deploy`",
            )
          if (version.notBefore !== undefined && version.notBefore.getTime() > Date.now())
            return yield* refused(
              `the certificate of version ${versionId} is not valid until ${version.notBefore.toISOString()}, and a deploy refuses a certificate not yet valid`,
              "restore another version (`kvdeploy versions`), or restore this one once it is valid",
            )
          const secret = yield* vault.getVersionSecret(name, versionId).pipe(
            Effect.catchTag("VaultNoPrivateKey", () =>
              Effect.fail(
                failure(`the private key of ${name}/${versionId} cannot be read`, [
                  {
                    field: "--from-version",
                    message: `the backing secret of version ${versionId} holds no private key (its key is not exportable), so its certificate cannot be put back from the vault`,
                    fix: "restore another version (`kvdeploy versions`), or deploy the certificate and key from their files with `kvdeploy deploy`",
                  },
                ]),
              ),
            ),
            Effect.mapError((e) =>
              "_tag" in e && e._tag === "CliProblem" ? e : vaultProblem("getVersionSecret", e, credential),
            ),
          )
          const material = yield* codec.decode(secret.pfx, secret.password).pipe(
            Effect.mapError((e) =>
              failure(`the backing secret of ${name}/${versionId} cannot be read`, [
                {
                  field: "--from-version",
                  message: `the backing secret of ${versionId} cannot be read as a certificate and its key: ${e.finding}`,
                  fix: "restore another version (`kvdeploy versions`), or deploy the certificate and key from their files with `kvdeploy deploy`",
                },
              ]),
            ),
          )
          // Deployed as an ordinary deploy (preflight, snapshot, skip when it is served already,
          // ownership, import, verify, rollback), under the certificate id the version carries (the
          // certificate's name when it carries none, or one a deploy would refuse).
          const tagged = version.tags[CERTIFICATE_ID_TAG]
          const taggedRefused =
            tagged !== undefined && certificateIdProblems(tagged, CERTIFICATE_ID_TAG).length > 0
          const certificateId = tagged !== undefined && !taggedRefused ? tagged : name
          if (taggedRefused)
            yield* printErr(
              `${styleErr().yellow("warning")}: version ${versionId}'s ${CERTIFICATE_ID_TAG} tag is not a certificate id a deploy takes (not shown): restored under the certificate's name, ${name}`,
            )
          return yield* deployReported(
            {
              target: config,
              material,
              certificateId,
              // The version it replaces is named on it, as on a rollback's.
              options: { adopt: input.adopt, rollbackOfServed: true },
            },
            (outcome) =>
              printOutcome(outcome, {
                config,
                leaf: leafSummary(material.leaf),
                credential,
                json: input.json,
                // The restore's own reads (the version, its backing secret) come before the deploy's.
                restoredFrom: { versionId, vaultCalls: 2 },
              }),
          )
        }),
      )
      if (code !== 0) return yield* new ExitWith({ exitCode: code })
    }).pipe(Effect.scoped),
).pipe(
  Command.withDescription(
    `Put an earlier version's certificate back: read that version's backing secret (the PFX Key Vault keeps, with its chain and private key; needs certificates/get and secrets/get, and the version enabled) and deploy it as a new version tagged certctl-rollback-of=<the version served before>, as deploy does (preflight, snapshot, skipped when the vault serves it already, ownership, import, verify, rollback). The key stays in memory. The way back after a RollbackFailed or any wrong certificate: \`kvdeploy versions\` lists the versions.

Exit codes: as deploy's: 0 Succeeded or Skipped, 1 Failed (or the version's secret could not be read), 2 usage error or Rejected (an expired certificate is refused), 3 RolledBack, 4 RollbackFailed or Unverified, 5 Superseded.`,
  ),
  Command.withShortDescription("Put an earlier version's certificate back, as a new version"),
  Command.withExamples([
    {
      command: "kvdeploy restore --config target.json --from-version 0123456789abcdef0123456789abcdef",
      description: "Serve that version's certificate again",
    },
    { command: "kvdeploy versions --config target.json", description: "The versions to choose from" },
  ]),
)
