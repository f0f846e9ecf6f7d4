/**
 * `kvdeploy restore`: put an earlier version's certificate back, as a new version, by deploying the
 * material of that version's backing secret (the PFX Key Vault keeps, chain and key included): the
 * way back after a RollbackFailed, or from any wrong certificate, without the key touching a disk.
 */
import {
  CERTIFICATE_ID_TAG,
  certificateIdProblems,
  type DeployOutcome,
  type DeployWarning,
  isOlderThanServed,
  MAX_OPERATOR_TAGS,
  PfxCodec,
  tagProblems,
  unfitTagValue,
  Vault,
  withoutReserved,
} from "@kvdeploy/core"
import { knownIdentitySecrets } from "@kvdeploy/credentials/tokenErrors"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Effect from "effect/Effect"
import * as flags from "../cli/flags.js"
import { fromVersionOf } from "../cli/fromVersion.js"
import { deployedSummary } from "../cli/outcome.js"
import { ExitWith, failure, usage, usageOne } from "../cli/problems.js"
import { resolveTarget } from "../cli/target.js"
import { printErr, progress, styleErr } from "../cli/terminal.js"
import { absentCertificate, credentialInUse, vaultProblem, withDeployServices } from "../cli/vault.js"
import { deployFlags, deployReported, printOutcome } from "./deploy.js"

/**
 * The outcome as a restore words it: an older certificate put back is what a restore of an older
 * version does, so the warning's fix (written for a deploy: "a stale file?") says how to check the
 * version instead.
 */
const restoreWorded = (outcome: DeployOutcome, versionId: string): DeployOutcome =>
  outcome.warnings === undefined
    ? outcome
    : {
        ...outcome,
        warnings: outcome.warnings.map((w) =>
          isOlderThanServed(w)
            ? {
                ...w,
                fix: `nothing, if version ${versionId} holds the certificate you meant to put back (\`kvdeploy versions\` lists each version's expiry); if not, restore or deploy the newer one`,
              }
            : w,
        ),
      }

/**
 * The operator tags the restored version carries: the source version's (reserved keys excluded),
 * as a rollback's version carries the previous version's, sorted by key; those a deploy would
 * refuse (a key or value that reads as key material, a key with spaces around it), and those over
 * the number that fit beside kvdeploy's, are left out, and said.
 */
const carriedTags = (
  versionId: string,
  versionTags: Readonly<Record<string, string>>,
): { readonly tags: Record<string, string>; readonly warnings: ReadonlyArray<DeployWarning> } => {
  const entries = Object.entries(withoutReserved(versionTags)).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  )
  // A value holding the identity's secret is no tag to write again either (left out, its key said).
  const secrets = knownIdentitySecrets(process.env)
  const fits = ([k, v]: readonly [string, string]) =>
    tagProblems({ [k]: v }, "tags", new Set(), secrets).length === 0
  const fit = entries.filter(fits)
  const unfit = entries.filter((entry) => !fits(entry)).map(([k]) => k)
  const kept = fit.slice(0, MAX_OPERATOR_TAGS)
  const over = fit.slice(MAX_OPERATOR_TAGS).map(([k]) => k)
  // A key that may be key material is counted, never shown.
  const named = (keys: ReadonlyArray<string>) => {
    const shown = keys.filter((k) => !unfitTagValue(k) && k.length <= 256)
    const hidden = keys.length - shown.length
    return [...shown, ...(hidden === 0 ? [] : [`${hidden} not shown`])].join(", ")
  }
  const warnings: Array<DeployWarning> = []
  if (unfit.length > 0)
    warnings.push({
      field: "--from-version",
      message: `version ${versionId} carries ${unfit.length === 1 ? "a tag" : `${unfit.length} tags`} a deploy does not take (${named(unfit)}): a new version this restore writes does not carry ${unfit.length === 1 ? "it" : "them"}`,
      fix: "set the tag on the new version yourself if it is needed (`az keyvault certificate set-attributes --tags`), with a key and value a deploy takes",
    })
  if (over.length > 0)
    warnings.push({
      field: "--from-version",
      message: `version ${versionId} carries more operator tags than fit beside kvdeploy's (${MAX_OPERATOR_TAGS}): a new version this restore writes does not carry ${named(over)}`,
      fix: "nothing, if those tags are not needed; Key Vault allows 15 tags a version, and kvdeploy sets up to 3 of them",
    })
  return { tags: Object.fromEntries(kept), warnings }
}

export const restore = Command.make(
  "restore",
  {
    ...flags.target,
    name: flags.certificateName,
    fromVersion: Flag.String("from-version").pipe(
      Flag.withMetavar("VERSION"),
      Flag.withDescription(
        "The version whose certificate to put back: its id, as `kvdeploy versions` lists them, or its id URL as az prints it (https://VAULT.vault.azure.net/certificates/NAME/VERSION, of this certificate).",
      ),
    ),
    adopt: deployFlags.adopt,
    force: deployFlags.force,
    json: flags.json,
  },
  (input) =>
    Effect.gen(function* () {
      const { config, nameField } = yield* resolveTarget(input, { name: input.name })
      const from = fromVersionOf(input.fromVersion, config.certificateName, config.vaultUrl)
      if (from._tag === "Refused") return yield* usageOne("--from-version", from.message, from.fix)
      const versionId = from.versionId
      const name = config.certificateName
      const credential = yield* credentialInUse(config)
      yield* progress(`restoring ${name} from its version ${versionId}…`)
      const code = yield* withDeployServices(
        config,
        Effect.gen(function* () {
          const vault = yield* Vault
          const codec = yield* PfxCodec
          const version = yield* vault.getVersion(name, versionId).pipe(
            // Key Vault answers 404 alike for a version the certificate does not have, a name that
            // holds no certificate and one a soft-deleted certificate holds: its latest tells which.
            Effect.catchTag("VaultNotFound", () =>
              vault.getLatest(name).pipe(
                Effect.matchEffect({
                  onSuccess: () =>
                    Effect.fail(
                      usageOne(
                        "--from-version",
                        `${name} has no version ${versionId} in ${config.vaultUrl}`,
                        "`kvdeploy versions` lists its versions",
                      ),
                    ),
                  onFailure: (e) =>
                    e._tag === "VaultNotFound"
                      ? Effect.flip(
                          absentCertificate(
                            vault,
                            config,
                            "check the name with `kvdeploy list`: a restore puts back a version of a certificate the vault holds",
                            nameField,
                            `recover it first (\`az keyvault certificate recover --vault-name VAULT --name ${name}\`): its versions come back with it (\`kvdeploy versions\` lists them), and the restore can read them`,
                          ),
                        )
                      : Effect.fail(vaultProblem("getLatest", e, credential)),
                }),
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
          // The version's operator tags come back with its certificate, as a rollback's do.
          const carried = carriedTags(versionId, version.tags)
          const warnings: ReadonlyArray<DeployWarning> = [
            ...(taggedRefused
              ? [
                  {
                    field: "--from-version",
                    message: `version ${versionId}'s ${CERTIFICATE_ID_TAG} tag is not a certificate id a deploy takes (not shown): restored under the certificate's name, ${name}`,
                    fix: `nothing, if the certificate's name will do as its id; else deploy the certificate with \`kvdeploy deploy --certificate-id ID\``,
                  },
                ]
              : []),
            ...carried.warnings,
          ]
          // Said on stderr when found (the text's), and in the JSON's `warnings`.
          for (const w of warnings) yield* printErr(`${styleErr().yellow("warning")}: ${w.message}`)
          const leaf = yield* deployedSummary(material)
          return yield* deployReported(
            {
              target: { ...config, tags: carried.tags },
              material,
              certificateId,
              options: { adopt: input.adopt, force: input.force },
            },
            (outcome) =>
              printOutcome(restoreWorded(outcome, versionId), {
                config,
                leaf,
                credential,
                json: input.json,
                // The restore's own reads (the version, its backing secret) come before the deploy's.
                restoredFrom: { versionId, vaultCalls: 2 },
                warnings,
              }),
          )
        }),
      )
      if (code !== 0) return yield* new ExitWith({ exitCode: code })
    }).pipe(Effect.scoped),
).pipe(
  Command.withDescription(
    `Put an earlier version's certificate back: read that version's backing secret (the PFX Key Vault keeps, with its chain and private key; needs certificates/get and secrets/get, and the version enabled) and deploy it as deploy does (preflight, snapshot, skipped when the vault serves it already, ownership, import, verify, rollback), as a new version that carries that version's own operator tags (reserved keys excluded; not the target's), as a rollback's version carries the previous one's. Skipped compares the leaf and the tags only: when the served version holds the same leaf with another chain or content type, --force imports it anyway. The key stays in memory. The way back after a RollbackFailed or any wrong certificate: \`kvdeploy versions\` lists the versions.

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
