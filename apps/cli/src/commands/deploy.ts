/** `kvdeploy deploy`: the deploy program (snapshot, import, verify, rollback) for one certificate and target. */
import { accessSync, constants as fsConstants, statSync } from "node:fs"
import { dirname, resolve } from "node:path"
import {
  type AuditLog,
  certificateIdProblems,
  type DeployOutcome,
  type DeployRequest,
  type DeployWarning,
  exitCodeOf,
  interruptibleUntilWritten,
  Metrics,
  type PfxCodec,
  deploy as runDeploy,
  shownPath,
  type TargetConfig,
  Vault,
} from "@kvdeploy/core"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { withStepProgress } from "../cli/deployProgress.js"
import * as flags from "../cli/flags.js"
import { type MaterialFlags, materialFlagProblems, readMaterial, secretNotAsked } from "../cli/material.js"
import { writeMetricsFile } from "../cli/metricsFile.js"
import { deployedSummary, type leafSummary, nextStep, outcomeLines, skippedNext } from "../cli/outcome.js"
import {
  previousKeyFlag,
  previousKeyOptions,
  previousKeyPassphraseEnvFlag,
  previousKeyProblems,
  readPreviousKey,
} from "../cli/previousKey.js"
import { ExitCode, ExitWith, type Problem, reportedExit, usage } from "../cli/problems.js"
import { resolveTarget, type TargetFlags } from "../cli/target.js"
import { printErr, printJson, printLines, progress, styleErr, styleOut } from "../cli/terminal.js"
import { credentialInUse, credentialVariableProblems, withDeployServices } from "../cli/vault.js"

export const deployFlags = {
  ...flags.target,
  name: flags.certificateName,
  tag: flags.tags,
  ...flags.material,
  certificateId: Flag.String("certificate-id").pipe(
    Flag.withMetavar("ID"),
    Flag.withDescription(
      "Your id for this certificate, recorded in the certctl-certificate-id tag (default: the certificate name).",
    ),
    Flag.optional,
  ),
  adopt: Flag.Boolean("adopt").pipe(
    Flag.withDescription(
      "Take over a certificate that exists without certctl-managed-by=certctl (recorded in the outcome).",
    ),
    Flag.withDefault(false),
  ),
  force: Flag.Boolean("force").pipe(
    Flag.withDescription(
      "Import even when the vault serves this certificate already (the same leaf, with kvdeploy's tags): its chain, content type or tags may differ, which the skip does not compare. Ownership (--adopt), verify and rollback as always.",
    ),
    Flag.withDefault(false),
  ),
  // Strings checked by the target's validation, so a wrong value is listed with the other problems.
  onSoftDeleted: Flag.String("on-soft-deleted").pipe(
    Flag.withMetavar("fail|recover"),
    Flag.withDescription(
      "When the name is held by a soft-deleted certificate: fail (default, nothing changes) or recover it, then deploy.",
    ),
    Flag.optional,
  ),
  previousKey: previousKeyFlag,
  previousKeyPassphraseEnv: previousKeyPassphraseEnvFlag,
  pfxEncoding: Flag.String("pfx-encoding").pipe(
    Flag.withMetavar("modern|legacy"),
    Flag.withDescription(
      "PKCS#12 encryption of the import: modern (AES-256, default) or legacy (3DES/SHA-1).",
    ),
    Flag.optional,
  ),
  contentType: Flag.String("content-type").pipe(
    Flag.withMetavar("keep|pkcs12|pem"),
    Flag.withDescription(
      "Content type of the certificate's secret the import writes: keep (default: what the vault serves now, PKCS#12 for a new certificate), pkcs12, or pem (leaf, chain and PKCS#8 key as PEM text, for consumers that read the secret as PEM).",
    ),
    Flag.optional,
  ),
  consumer: flags.consumers,
  json: flags.json,
}

/** deploy's own flag: this run's metrics, as a file for node_exporter's textfile collector. */
const metricsFile = Flag.String("metrics-file").pipe(
  Flag.withMetavar("FILE"),
  Flag.withDescription(
    "Write this run's Prometheus metrics to FILE (replaced atomically and fsynced, mode 0644), labelled with the vault and certificate: for node_exporter's textfile collector (a FILE ending in .prom in its directory). The outcome stays the exit code; a file that cannot be written is a warning.",
  ),
  Flag.optional,
)

/**
 * The metrics file of a run refused on its input before any vault call: `certctl_deploy_attempts_total
 * {result="rejected"}` 1, labelled with the target (its fields as read, else `--vault-url` and
 * `--name` as given). Every series carries those labels, so that the files of several certificates
 * hold no series twice: when neither gives both, the file is not written, and a warning says so. A
 * file that cannot be written is a warning, as after a deploy.
 */
const rejectedRunMetrics = (
  file: string,
  input: TargetFlags & TargetFieldFlags,
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    // The target as read; else the flags' fields alone (a target file that cannot be read), checked
    // and written as a deploy writes them, so that the labels are those of the run's other files.
    const read = yield* Effect.result(resolveTarget(input, targetOverrides(input)))
    const target =
      read._tag === "Success" || Option.isNone(input.config)
        ? read
        : yield* Effect.result(resolveTarget({ ...input, config: Option.none() }, targetOverrides(input)))
    const labels =
      target._tag === "Success"
        ? {
            vault_url: target.success.config.vaultUrl,
            certificate_name: target.success.config.certificateName,
          }
        : undefined
    if (labels === undefined)
      return yield* printErr(
        `${styleErr().yellow("warning")}: --metrics-file ${shownPath(file)} was not written: the target could not be read to label its series (give --vault-url and --name, or fix the target file); the file still holds an earlier run's`,
      )
    const prometheus = yield* Effect.promise(() => import("@kvdeploy/metrics/prometheus"))
    const context = yield* Layer.build(prometheus.layerWith({ defaultLabels: labels }))
    const text = yield* Effect.gen(function* () {
      yield* (yield* Metrics).deployAttempt("rejected")
      return yield* (yield* prometheus.PrometheusExposition).text
    }).pipe(Effect.provideContext(context))
    const written = writeMetricsFile(file, text)
    if (written !== undefined)
      yield* printErr(
        `${styleErr().yellow("warning")}: --metrics-file ${shownPath(file)} was not written (${written}); the run's problems are below`,
      )
  }).pipe(Effect.orDie)

/** Why `--metrics-file` cannot be written: its directory must exist and be writable, and it must not be a directory. */
const metricsFileProblems = (file: string): ReadonlyArray<Problem> => {
  const problem = (message: string, fix: string): ReadonlyArray<Problem> => [
    { field: "--metrics-file", message: `${shownPath(file)}: ${message}`, fix },
  ]
  if (file === "" || file === "-")
    return [
      {
        field: "--metrics-file",
        message: file === "" ? "is empty" : "- is not a file path (the metrics are written to a file)",
        fix: "give the path of the file to write, such as /var/lib/node_exporter/textfile/kvdeploy-api.prom",
      },
    ]
  try {
    if (statSync(file).isDirectory())
      return problem("is a directory", "give the path of a file in it, such as DIR/kvdeploy-NAME.prom")
  } catch {}
  const directory = dirname(resolve(file))
  try {
    accessSync(directory, fsConstants.W_OK | fsConstants.X_OK)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    const why =
      code === "EROFS"
        ? "a read-only file system"
        : code === "EACCES" || code === "EPERM"
          ? "permission denied"
          : (code ?? String(e))
    // Said in words: "(ENOENT)" alone left the operator to decode it.
    return code === "ENOENT"
      ? problem(
          `its directory ${shownPath(directory)} does not exist`,
          "create it (mkdir -p), or give a file in node_exporter's textfile directory (--collector.textfile.directory)",
        )
      : code === "ENOTDIR"
        ? problem(
            `a part of its directory ${shownPath(directory)} is a file, not a directory`,
            "give a file in an existing directory this user may write (node_exporter's textfile directory)",
          )
        : problem(
            `its directory ${shownPath(directory)} cannot be written by this user (${why})`,
            "give a file in a directory this user may write (node_exporter's textfile directory), or run kvdeploy as a user that may write it",
          )
  }
  return []
}

/** The flags of deploy (and plan) that give target fields over the target file's. */
interface TargetFieldFlags {
  readonly name: Option.Option<string>
  readonly tag: ReadonlyArray<string>
  readonly onSoftDeleted: Option.Option<string>
  readonly pfxEncoding: Option.Option<string>
  readonly contentType: Option.Option<string>
  readonly consumer: ReadonlyArray<string>
}

/** The target fields those flags give. */
const targetOverrides = (input: TargetFieldFlags) => ({
  name: input.name,
  tags: input.tag,
  onSoftDeleted: input.onSoftDeleted,
  pfxEncoding: input.pfxEncoding,
  contentType: input.contentType,
  consumers: input.consumer,
})

/**
 * The target (config file, then flags), checked alike for `deploy` and `plan` before any input file
 * is parsed. Every problem found before the material is parsed is listed in one usage error: the
 * target's, the environment variables its credential mode needs and lacks or holds malformed, and the material
 * flags' (flags that cannot go together, a password variable not set, a file that cannot be read,
 * is empty or too large). The files are read and parsed (`deployInputs`) only when there is none
 * of those (no password prompt before that).
 */
export const checkedTarget = (
  input: TargetFlags &
    MaterialFlags &
    TargetFieldFlags & {
      readonly certificateId: Option.Option<string>
    },
  /** Problems of the command's own further flags (deploy's --previous-key), listed with the material flags'. */
  moreFileProblems: Effect.Effect<ReadonlyArray<Problem>> = Effect.succeed([]),
) =>
  Effect.gen(function* () {
    const target = yield* Effect.result(resolveTarget(input, targetOverrides(input)))
    // A failure that is not the input's (exit 1) stands alone.
    if (target._tag === "Failure" && target.failure.exitCode !== ExitCode.usage) return yield* target.failure
    const { problems: environment, summary: environmentSummary } =
      target._tag === "Success"
        ? yield* credentialVariableProblems(target.success.config)
        : { problems: [], summary: undefined }
    const files = [...(yield* materialFlagProblems(input)), ...(yield* moreFileProblems)]
    // The id becomes the certctl-certificate-id tag: checked with the other flags, before any file is read.
    const id = Option.match(input.certificateId, {
      onNone: () => [],
      onSome: (value) => certificateIdProblems(value, "--certificate-id"),
    })
    if (target._tag === "Failure" || environment.length > 0 || files.length > 0 || id.length > 0) {
      const problems = [
        ...(target._tag === "Failure" ? target.failure.problems : []),
        ...environment,
        ...id,
        ...files,
      ]
      const [only] = problems
      const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`
      const title =
        target._tag === "Success" && problems.length === 1 && only !== undefined
          ? `${only.field}: ${only.message}`
          : [
              ...(target._tag === "Failure" ? [target.failure.title] : []),
              ...(environmentSummary === undefined ? [] : [environmentSummary]),
              ...(id.length > 0 ? [`the --certificate-id flag: ${count(id.length, "problem")}`] : []),
              ...(files.length > 0 ? [`the certificate flags: ${count(files.length, "problem")}`] : []),
            ].join("; ")
      return yield* usage(title, problems)
    }
    return target.success.config
  })

/** The flags whose files `readMaterial` reads, and those of `readPreviousKey`. */
const MATERIAL_FLAGS = ["--cert", "--chain", "--key", "--key-passphrase-env", "--pfx", "--pfx-password-env"]
const PREVIOUS_KEY_FLAGS = ["--previous-key", "--previous-key-passphrase-env"]

/**
 * Deploy's and plan's inputs, read the same way (so that a plan accepts exactly the inputs its
 * deploy would): the target, the material, and the previous key when `--previous-key` names one.
 * Every input that cannot be read is listed in one usage error (exit 2, nothing sent to the
 * vault), each with its flag and fix, not one per run: the material and the previous key are both
 * parsed whatever the other's fate, and also when the flags' checks (`checkedTarget`) found
 * problems, each input whose own flags they found none in. Nobody is asked for a passphrase or a
 * password in a run that fails anyway: an input that would need one is then left unread.
 */
/** An input path whose read may wait for good: stdin (`-`), or no regular file (a FIFO, a terminal). */
const mayWait = (path: string): boolean => {
  if (path === "-") return true
  try {
    return !statSync(path).isFile()
  } catch {
    // Missing or unreadable: its read fails at once, naming why.
    return false
  }
}

export const deployInputs = (
  input: Parameters<typeof checkedTarget>[0] & {
    readonly previousKey: Option.Option<string>
    readonly previousKeyPassphraseEnv: Option.Option<string>
  },
  /** Problems of the command's own further flags (deploy's --metrics-file). */
  moreProblems: ReadonlyArray<Problem> = [],
) =>
  Effect.gen(function* () {
    const checked = yield* Effect.result(
      checkedTarget(
        input,
        Effect.map(previousKeyProblems(input.previousKey, input.previousKeyPassphraseEnv), (found) => [
          ...found,
          ...moreProblems,
        ]),
      ),
    )
    // A failure that is not the input's (exit 1) stands alone.
    if (checked._tag === "Failure" && checked.failure.exitCode !== ExitCode.usage)
      return yield* checked.failure
    // An input not read in a run that fails already: one whose own flags have problems, and one
    // that may wait for good: stdin, or a path that is no regular file (a terminal's /dev/tty or
    // /dev/stdin would wait for typing, a FIFO for a writer that may never come).
    const flagged = (
      failing: boolean,
      flags: ReadonlyArray<string>,
      sources: ReadonlyArray<Option.Option<string>>,
    ) =>
      failing &&
      ((checked._tag === "Failure" && checked.failure.problems.some((p) => flags.includes(p.field))) ||
        sources.some((source) => Option.isSome(source) && mayWait(source.value)))
    const material = flagged(checked._tag === "Failure", MATERIAL_FLAGS, [
      input.cert,
      input.chain,
      input.key,
      input.pfx,
    ])
      ? undefined
      : yield* Effect.result(readMaterial(input, { ask: checked._tag === "Success" }))
    const previous =
      Option.isNone(input.previousKey) ||
      flagged(checked._tag === "Failure" || material?._tag === "Failure", PREVIOUS_KEY_FLAGS, [
        input.previousKey,
      ])
        ? undefined
        : yield* Effect.result(
            readPreviousKey(
              input.previousKey.value,
              { own: input.previousKeyPassphraseEnv, key: input.keyPassphraseEnv },
              { ask: checked._tag === "Success" && material?._tag === "Success" },
            ),
          )
    const failures = [checked, material, previous].flatMap((r) =>
      r?._tag === "Failure" && r.failure !== secretNotAsked ? [r.failure] : [],
    )
    const [first] = failures
    // The first failure decides the exit code, as when reading stopped there: one that is not the
    // input's (exit 1: a file that could not be read for another reason) stands alone, and after a
    // usage problem only the other usage problems are listed with it.
    if (first !== undefined && first.exitCode !== ExitCode.usage) return yield* first
    const listed = failures.filter((f) => f.exitCode === ExitCode.usage)
    if (first !== undefined)
      return yield* listed.length === 1
        ? first
        : usage(
            listed.map((f) => f.title).join("; "),
            listed.flatMap((f) => f.problems),
          )
    // Left unread only in a run that fails (a failure above).
    if (checked._tag === "Failure" || material?._tag !== "Success" || previous?._tag === "Failure")
      return yield* checked._tag === "Failure" ? checked.failure : secretNotAsked
    return { config: checked.success, material: material.success, previous: previous?.success }
  })

/**
 * A deploy's outcome printed as deploy prints it: with --json its record, with `outcome` and
 * `exitCode` as plain fields (scripts need not know `_tag`) and the certificate deployed; else its
 * lines. Answers the exit code, which an interruption that waited for the deploy ends with.
 */
export const printOutcome = (
  outcome: DeployOutcome,
  shown: {
    readonly config: TargetConfig
    readonly leaf: ReturnType<typeof leafSummary>
    readonly credential: Effect.Success<ReturnType<typeof credentialInUse>>
    readonly json: boolean
    /** restore's: the version its material came from, and the vault calls that read it (not the deploy's). */
    readonly restoredFrom?: { readonly versionId: string; readonly vaultCalls: number }
    /**
     * The command's own warnings (restore's, about the version it read), put before the outcome's in
     * the JSON's `warnings`; the text has them on stderr, said when they were found.
     */
    readonly warnings?: ReadonlyArray<DeployWarning>
  },
): Effect.Effect<number> =>
  Effect.gen(function* () {
    const code = exitCodeOf(outcome)
    const { config, leaf, restoredFrom } = shown
    // A restore's Skipped says what --force would do; an ordinary deploy's says nothing more.
    const skipped = restoredFrom === undefined ? undefined : skippedNext(outcome)
    // The JSON's `next`: the outcome's own step, or a restore's Skipped's (they never meet).
    const todo = skipped ?? nextStep(outcome, shown.credential)
    const warnings = [...(shown.warnings ?? []), ...(outcome.warnings ?? [])]
    if (shown.json)
      yield* printJson({
        outcome: outcome._tag,
        exitCode: code,
        ...(restoredFrom === undefined ? {} : { restoredFrom }),
        ...outcome,
        ...(warnings.length === 0 ? {} : { warnings }),
        ...(leaf === undefined ? {} : { certificate: leaf }),
        ...(config.consumers === undefined ? {} : { consumers: config.consumers }),
        ...(todo === undefined ? {} : { next: todo }),
      })
    else {
      const lines = outcomeLines(outcome, leaf, styleOut(), Date.now(), shown.credential)
      // Before the last line (the steps), where the outcome's own `next` goes.
      if (skipped !== undefined) lines.splice(lines.length - 1, 0, `  next        ${skipped}`)
      yield* printLines([
        ...(restoredFrom === undefined
          ? []
          : [
              `restoring from version ${restoredFrom.versionId} (read with its backing secret: ${restoredFrom.vaultCalls} vault calls before the deploy's below)`,
            ]),
        ...lines,
      ])
    }
    reportedExit.exitCode = code
    return code
  })

/**
 * Core's deploy of `request`, with the deploy services in place: Ctrl+C or SIGTERM stops it before
 * its import; after it, the deploy finishes (verify, rollback) and `report` runs first (a version
 * written and left unproven needs a person). Answers what `report` answers (the exit code).
 */
export const deployReported = (
  request: DeployRequest,
  report: (outcome: DeployOutcome) => Effect.Effect<number>,
): Effect.Effect<number, never, Vault | PfxCodec | Metrics | AuditLog> =>
  Effect.flatMap(Effect.service(Vault), (vault) =>
    interruptibleUntilWritten(
      (guarded) => runDeploy(request).pipe(Effect.provideService(Vault, guarded), Effect.flatMap(report)),
      withStepProgress(vault, request.target.certificateName),
      {
        onInterruptedAfterWrite: printErr(
          `${styleErr().yellow("interrupted")}: a write to ${request.target.certificateName} was sent; the deploy finishes first (verify, and a rollback when the vault serves something wrong), reports its outcome, then stops`,
        ),
      },
    ),
  )

export const deploy = Command.make("deploy", { ...deployFlags, metricsFile }, (input) =>
  Effect.gen(function* () {
    const metricsProblems = Option.match(input.metricsFile, { onNone: () => [], onSome: metricsFileProblems })
    const inputs = yield* Effect.result(deployInputs(input, metricsProblems))
    if (inputs._tag === "Failure") {
      // A run that stops on its input (exit 2, nothing sent) replaces the metrics file too, with its
      // attempt counted as rejected: the file is the last run's, and the alert on rejected runs fires
      // instead of the last success staying in place (until the file's age alert, days later).
      if (
        Option.isSome(input.metricsFile) &&
        metricsProblems.length === 0 &&
        inputs.failure.exitCode === ExitCode.usage
      )
        yield* rejectedRunMetrics(input.metricsFile.value, input)
      return yield* inputs.failure
    }
    const { config, material, previous } = inputs.success
    // With --metrics-file: this run's metrics, on a registry of their own, labelled with the target.
    const prometheus = Option.isSome(input.metricsFile)
      ? yield* Effect.promise(() => import("@kvdeploy/metrics/prometheus"))
      : undefined
    const metricsContext =
      prometheus === undefined
        ? undefined
        : yield* Layer.build(
            prometheus.layerWith({
              defaultLabels: { vault_url: config.vaultUrl, certificate_name: config.certificateName },
            }),
          )
    yield* progress(`deploying ${config.certificateName} to ${config.vaultUrl}…`)
    const leaf = yield* deployedSummary(material)
    // What a refusal's next step depends on: the mode, and for managed_identity the AKS token exchange.
    const credential = yield* credentialInUse(config)
    /** The outcome as core reports it, printed (inside the part an interruption waits for). */
    const report = (outcome: DeployOutcome) =>
      Effect.gen(function* () {
        const code = yield* printOutcome(outcome, { config, leaf, credential, json: input.json })
        if (Option.isSome(input.metricsFile) && prometheus !== undefined && metricsContext !== undefined) {
          const text = yield* Effect.flatMap(
            Effect.service(prometheus.PrometheusExposition),
            (p) => p.text,
          ).pipe(Effect.provideContext(metricsContext))
          const written = writeMetricsFile(input.metricsFile.value, text)
          // The outcome stays the exit code: the deploy happened; the file's failure is said apart.
          if (written !== undefined)
            yield* printErr(
              `${styleErr().yellow("warning")}: --metrics-file ${shownPath(input.metricsFile.value)} was not written (${written}); the deploy's outcome is above`,
            )
        }
        return code
      })
    // Ctrl+C or SIGTERM stops the deploy before its import; after it, the deploy finishes (verify,
    // rollback) and reports first: a version written and left unproven needs a person.
    const code = yield* withDeployServices(
      config,
      deployReported(
        {
          target: config,
          material,
          certificateId: Option.getOrElse(input.certificateId, () => config.certificateName),
          options: {
            adopt: input.adopt,
            force: input.force,
            ...(previous === undefined ? {} : previousKeyOptions(previous, material.chain)),
          },
        },
        report,
      ),
      metricsContext === undefined ? {} : { metrics: Layer.succeedContext(metricsContext) },
    )
    if (code !== 0) return yield* new ExitWith({ exitCode: code })
  }).pipe(Effect.scoped),
).pipe(
  Command.withDescription(
    `Deploy a certificate and its key to a Key Vault certificate as a new version, safely:
preflight (key matches leaf, chain order and signatures, validity, key type, name, tags, size; nothing written on failure),
snapshot (what the vault serves now), idempotency (skip when already served: the leaf and the tags compared, not the chain or content type; --force imports it anyway), ownership (refuse certificates kvdeploy does not manage unless --adopt),
import (a PKCS#12 built in memory), verify (the vault serves exactly that version), rollback (previous material re-imported, tagged certctl-rollback-of) when it does not.

Material: --cert/--chain/--key PEM files, or --pfx (password from the variable named by --pfx-password-env, or a prompt on a terminal; never a flag value). '-' reads standard input.
Target: --config target.json (certctl fields) and/or --vault-url, --name, --tag, --credential-mode.

Exit codes: 0 Succeeded or Skipped, 1 Failed (no version written; the vault unchanged unless --on-soft-deleted recover recovered the certificate), 2 usage error or Rejected (no version written), 3 RolledBack, 4 RollbackFailed or Unverified (needs a person), 5 Superseded.`,
  ),
  Command.withShortDescription("Deploy a certificate: snapshot, import, verify, roll back"),
  Command.withExamples([
    {
      command:
        "kvdeploy deploy --vault-url https://my-vault.vault.azure.net --name api-prod --cert leaf.pem --chain chain.pem --key leaf.key --tag env=production",
      description: "Deploy from PEM files",
    },
    {
      command:
        "PFX_PASSWORD=… kvdeploy deploy --config target.json --pfx api.pfx --pfx-password-env PFX_PASSWORD",
      description: "Deploy a PFX",
    },
    {
      command: "cat bundle.pem | kvdeploy deploy --config target.json --cert - --json",
      description: "Leaf, chain and key from stdin; JSON outcome",
    },
  ]),
)
