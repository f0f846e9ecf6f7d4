/**
 * Composition of the kvdeploy CLI: the command tree, the Node platform layer
 * and the exit-code contract. Commands live one per file in `commands/`; heavy
 * adapters (Azure SDKs, pkijs, the emulator) are imported inside handlers so
 * `--help` and usage errors stay fast.
 *
 * Exit codes: 0 Succeeded/Skipped (or the command's "yes"), 1 Failed,
 * 2 usage or Rejected, 3 RolledBack, 4 RollbackFailed/Unverified,
 * 5 Superseded, 130 interrupted (`emulator`, which runs until it is stopped, exits 0 then).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as Cause from "effect/Cause"
import * as CliConfig from "effect/cli/CliConfig"
import * as CliError from "effect/cli/CliError"
import * as CliOutput from "effect/cli/CliOutput"
import * as Command from "effect/cli/Command"
import * as CommandSpec from "effect/cli/CommandSpec"
import * as Completions from "effect/cli/Completions"
import * as GlobalFlag from "effect/cli/GlobalFlag"
import type { HelpDoc } from "effect/cli/HelpDoc"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import {
  type CommandFlags,
  commandFlagsOf,
  FlagBeforeCommand,
  flagsBeforeCommand,
  refineParseErrors,
  slipFix,
} from "./cli/parseErrors.js"
import {
  CliProblem,
  ExitCode,
  ExitWith,
  pemArgumentProblems,
  reportedExit,
  stoppedBySignal,
  usage,
  usageOne,
  withoutKeyText,
  withoutPem,
} from "./cli/problems.js"
import {
  clearProgress,
  colourWanted,
  jsonOutput,
  jsonPrinted,
  printErr,
  printJson,
  styleErr,
} from "./cli/terminal.js"
import { demo } from "./commands/demo.js"
import { deploy } from "./commands/deploy.js"
import { doctor } from "./commands/doctor.js"
import { emulator } from "./commands/emulator.js"
import { list } from "./commands/list.js"
import { plan } from "./commands/plan.js"
import { restore } from "./commands/restore.js"
import { show } from "./commands/show.js"
import { validate } from "./commands/validate.js"
import { verify } from "./commands/verify.js"
import { versions } from "./commands/versions.js"
import { version } from "./version.js"

/**
 * The built-in global flags without `--wizard`: its interactive prompts write to stdout, which
 * breaks the promise that `--json` output is one JSON document and nothing else, and every input a
 * wizard would ask for is a flag already.
 */
const cliConfig = CliConfig.layer({ builtIns: GlobalFlag.BuiltIns.filter((f) => f !== GlobalFlag.Wizard) })

const subcommands = [
  deploy,
  plan,
  restore,
  show,
  versions,
  list,
  verify,
  validate,
  doctor,
  emulator,
  demo,
] as const
const subcommandNames: ReadonlySet<string> = new Set(subcommands.map((c) => c.name))

export const kvdeploy = Command.make("kvdeploy").pipe(
  Command.withDescription(
    "Deploy TLS certificates into Azure Key Vault safely: snapshot what the vault serves, import the new certificate as a new version, prove the vault serves exactly that version, and roll back when it does not. Every command takes --help and --json. Exit codes: 0 succeeded or skipped, 1 failed (no version written; the vault unchanged unless --on-soft-deleted recover recovered the certificate), 2 usage error or rejected (no version written), 3 rolled back, 4 rollback failed or unverified (needs a person), 5 superseded by another writer.",
  ),
  Command.withExamples([
    {
      command: "kvdeploy demo",
      description: "Watch a deploy, a skip and a rollback against the embedded emulator",
    },
    {
      command: "kvdeploy plan --config target.json --cert leaf.pem --key leaf.key",
      description: "What a deploy would do, read-only",
    },
    {
      command: "kvdeploy deploy --config target.json --cert leaf.pem --chain chain.pem --key leaf.key",
      description: "Deploy",
    },
    { command: "kvdeploy versions --config target.json", description: "Version history, newest first" },
    {
      // As docs/getting-started.md installs it: bash-completion's directory of the user's own, no root needed.
      command:
        "mkdir -p ~/.local/share/bash-completion/completions && kvdeploy --completions bash > ~/.local/share/bash-completion/completions/kvdeploy",
      description: "Install bash completion for your user",
    },
  ]),
  Command.withSubcommands(subcommands),
)

const wantsJson = (argv: ReadonlyArray<string>): boolean => argv.includes("--json")

const renderProblem = (error: CliProblem, json: boolean): Effect.Effect<void> =>
  Effect.gen(function* () {
    const title = withoutPem(error.title)
    const problems = error.problems.map((p) => ({
      field: withoutPem(p.field),
      message: withoutPem(p.message),
      fix: withoutPem(p.fix),
    }))
    if (json) yield* printJson({ error: { title, exitCode: error.exitCode, problems } })
    const s = styleErr()
    yield* printErr(`${s.red("error")}: ${title}`)
    for (const p of problems) {
      if (problems.length === 1 && title === `${p.field}: ${p.message}`) {
        yield* printErr(`  fix: ${p.fix}`)
      } else {
        yield* printErr(`  ${s.bold(p.field)}: ${p.message}`)
        yield* printErr(`    fix: ${p.fix}`)
      }
    }
  })

const colours = (stream: NodeJS.WriteStream) =>
  process.env.KVDEPLOY_HELP_COLOURS === "1" || colourWanted(stream)

/**
 * Help goes to stdout; a usage error goes to stderr as the error and a pointer
 * to the command's help (stdout stays clean for `--json`).
 */
/**
 * The help page of `doc`. The formatter indents only a description's first line: a description
 * written over several lines (deploy's) is indented whole, as the sections below it are.
 */
const helpPage = (doc: HelpDoc, coloured: boolean): string =>
  `${CliOutput.defaultFormatter({ colors: coloured }).formatHelpDoc(
    doc.description === undefined
      ? doc
      : { ...doc, description: doc.description.replace(/\n(?=.)/g, "\n  ") },
  )}\n`

/** Whether this run's command line asks for `--json` (the presenter's `--version` answers in JSON then). */
let presentJson = false
/** The parse errors as the presenter showed them (refined), for `--json` to give the same. */
let shownParseErrors: ReadonlyArray<CliError.NonShowHelpErrors> | undefined
/** The help of the command the presenter's parse errors are about (for their fixes under `--json`). */
let shownHelpDoc: HelpDoc | undefined
/** The command line the presenter's parse errors are about. */
let presentedArgv: ReadonlyArray<string> = []

/** The fix a refined parse error carries (a flag before the command's name, a usual slip), if any. */
const fixOfParseError = (e: CliError.NonShowHelpErrors, helpDoc: HelpDoc): string | undefined =>
  e instanceof FlagBeforeCommand ? e.fix : slipFix(e, helpDoc, presentedArgv)

const presenter = CliOutput.layerPresenter({
  present: (event) =>
    Effect.sync(() => {
      switch (event._tag) {
        case "Help":
          // With --json, one document as every command's answer is: the command and its page, plain.
          process.stdout.write(
            presentJson
              ? `${JSON.stringify({ command: event.commandPath.join(" "), help: helpPage(event.helpDoc, false) }, null, 2)}\n`
              : helpPage(event.helpDoc, colours(process.stdout)),
          )
          return
        case "Version":
          process.stdout.write(
            presentJson
              ? `${JSON.stringify({ name: event.name, version: event.version, node: process.version }, null, 2)}\n`
              : `${event.name} ${event.version}\n`,
          )
          return
        case "InvalidInvocation": {
          const formatter = CliOutput.defaultFormatter({ colors: colours(process.stderr) })
          shownHelpDoc = event.helpDoc
          shownParseErrors = refineParseErrors(
            event.errors,
            event.helpDoc,
            flagsBeforeCommand(presentedArgv, subcommandFlags()),
            { argv: presentedArgv, commands: subcommandNames },
          )
          process.stderr.write(`${withoutPem(formatter.formatErrors(shownParseErrors))}\n`)
          // An error that knows its fix says it; the others point at the command's help.
          for (const fix of new Set(shownParseErrors.map((e) => fixOfParseError(e, event.helpDoc))))
            process.stderr.write(
              `  fix: ${withoutPem(fix ?? `see \`${event.commandPath.join(" ")} --help\` for the flags and examples`)}\n`,
            )
          return
        }
      }
    }),
})

/**
 * Each command's own flags, as its parser takes them (the framework's CommandSpec; kvdeploy's
 * global flags left out): for a usage error about flags given before a command's name.
 */
export const subcommandFlags = (): ReadonlyMap<string, CommandFlags> =>
  new Map(
    subcommands.map((c) => [
      c.name,
      commandFlagsOf(
        Option.getOrThrow(CommandSpec.resolve(kvdeploy, ["kvdeploy", c.name], { builtIns: [] })),
      ),
    ]),
  )

/** The flag, argument or command a parse error is about, as the operator typed it. */
const fieldOfParseError = (e: Record<string, unknown>): string => {
  const flag = (name: unknown) =>
    typeof name === "string" ? (name.startsWith("-") ? name : `--${name}`) : undefined
  if (typeof e.option === "string") return e.kind === "argument" ? e.option : (flag(e.option) ?? "")
  if (typeof e.argument === "string") return e.argument
  if (typeof e.subcommand === "string") return "(command)"
  if (Array.isArray(e.arguments) && typeof e.arguments[0] === "string") return e.arguments[0]
  return "(command line)"
}

/** Run the CLI with these arguments (without `node` and the script); sets the process exit code. */
/** The framework's options that print and exit 0 wherever they stand, with the values of its own options. */
const exitingOptions = ["--version", "--completions"] as const
const valuedOptions: ReadonlySet<string> = new Set(["--log-level", "--completions"])

/**
 * `--version` or `--completions` given with a command (before or after it, `-v` and `=` forms and
 * short groups such as `-hv` included), or undefined. The parser answers them wherever they stand
 * and exits 0: `kvdeploy deploy … --version` would run no deploy and report success to a script or
 * a cron job. Any bare word but the value of `--log-level` or `--completions` is taken for a command
 * (a misspelt one too: it would otherwise print the version); nothing after `--` is an option.
 */
const builtInWithCommand = (argv: ReadonlyArray<string>): (typeof exitingOptions)[number] | undefined => {
  const end = argv.indexOf("--")
  const options = end === -1 ? argv : argv.slice(0, end)
  let command = false
  let found: (typeof exitingOptions)[number] | undefined
  for (let i = 0; i < options.length; i++) {
    const a = options[i] ?? ""
    const name = a.split("=", 1)[0] ?? a
    if (!a.startsWith("-")) command = true
    else if (/^-[A-Za-z]+$/.test(name) && name.includes("v")) found ??= "--version"
    else found ??= exitingOptions.find((o) => o === name)
    if (valuedOptions.has(a)) i++
  }
  return command ? found : undefined
}

/** The shells `--completions` takes, as the framework names them (`sh` is bash, `pwsh` PowerShell). */
const completionShells: Readonly<Record<string, "bash" | "zsh" | "fish" | "powershell">> = {
  bash: "bash",
  zsh: "zsh",
  fish: "fish",
  powershell: "powershell",
  sh: "bash",
  pwsh: "powershell",
}

/**
 * The shell of `kvdeploy --completions SHELL --json` (no command; `--log-level` and its value may
 * stand beside it), when SHELL is one the framework takes: the framework prints the bare script
 * whatever `--json` says, so kvdeploy answers this one itself, as `{shell, script}`. Undefined
 * otherwise (an unknown shell is left to the framework's usage error).
 */
const completionsAsJson = (
  argv: ReadonlyArray<string>,
): "bash" | "zsh" | "fish" | "powershell" | undefined => {
  let shell: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? ""
    if (a === "--json") continue
    if (a === "--log-level") i++
    else if (a.startsWith("--log-level=")) continue
    else if (a === "--completions" && shell === undefined) shell = argv[++i] ?? ""
    else if (a.startsWith("--completions=") && shell === undefined) shell = a.slice("--completions=".length)
    else return undefined
  }
  // Own keys only: `--completions constructor` names no shell.
  return shell === undefined || !Object.hasOwn(completionShells, shell) ? undefined : completionShells[shell]
}

/** The completion script for `shell` as one JSON document (`--completions SHELL --json`). */
const completionsJson = (shell: "bash" | "zsh" | "fish" | "powershell") =>
  printJson({ shell, script: Completions.generate("kvdeploy", shell, Completions.fromCommand(kvdeploy)) })

export const main = (argv: ReadonlyArray<string>): void => {
  // A reader that went away (`kvdeploy versions | head -1`): the rest of the output has nowhere to
  // go, and that is no crash ("Unhandled 'error' event"); the command's exit code stands.
  process.stdout.on("error", () => {})
  const json = wantsJson(argv)
  presentJson = json
  presentedArgv = argv
  // No colours and no progress line with --json, whatever the command (its help promises it).
  if (json) jsonOutput()
  // Certificate or key text on the command line is refused before any parsing, so no parser error can quote it.
  const pasted = pemArgumentProblems(argv)
  const alone = builtInWithCommand(argv)
  const completionsShell = json ? completionsAsJson(argv) : undefined
  const command =
    pasted.length > 0
      ? Effect.fail(
          usage(
            pasted.length === 1
              ? `${pasted[0]?.field}: holds certificate or key text instead of a file path or a value`
              : `${pasted.length} arguments hold certificate or key text instead of file paths or values`,
            pasted,
          ),
        )
      : alone !== undefined
        ? Effect.fail(
            usageOne(
              alone,
              `goes alone: with a command, only ${alone === "--version" ? "the version" : "the completion script"} would be printed, the command would not run, and the exit code would be 0`,
              `run \`kvdeploy ${alone}${alone === "--completions" ? " SHELL" : ""}\` alone, or the command without ${alone}`,
            ),
          )
        : completionsShell !== undefined
          ? completionsJson(completionsShell)
          : Command.runWith(kvdeploy, { version })(argv).pipe(Effect.provide(cliConfig))
  const program = command.pipe(
    // A command that ends without printing leaves no progress note behind (a print erases it).
    Effect.tap(() => clearProgress),
    Effect.catchCause((cause) => {
      const failure = Cause.findErrorOption(cause)
      if (failure._tag === "Some") {
        const error: unknown = failure.value
        if (error instanceof ExitWith) return clearProgress.pipe(Effect.andThen(Effect.fail(error)))
        if (error instanceof CliProblem)
          return renderProblem(error, json).pipe(Effect.andThen(Effect.fail(error)))
        if (CliError.isCliError(error)) {
          // The presenter already printed the parse error (stderr) and pointed at --help.
          if (json) {
            const errors = (shownParseErrors ??
              ("errors" in error && Array.isArray(error.errors) ? error.errors : [])) as ReadonlyArray<
              { message: string } & Record<string, unknown>
            >
            const command = argv[0] !== undefined && subcommandNames.has(argv[0]) ? ` ${argv[0]}` : ""
            const problems = errors.map((e) => {
              // One line each, for a script: the parser's "Did you mean this?" paragraph (for the
              // terminal) becomes the fix's first words.
              const suggestions = Array.isArray(e.suggestions) ? (e.suggestions as ReadonlyArray<string>) : []
              const message = e.message
                .replace(/\n\s*Did you mean (this|one of these)\?[\s\S]*$/, "")
                .replace(/\s*\n\s*/g, " ")
                .trim()
              const didYouMean = suggestions.length > 0 ? `did you mean ${suggestions.join(" or ")}? ` : ""
              return {
                field: withoutPem(fieldOfParseError(e)),
                message: withoutPem(message),
                fix: withoutPem(
                  didYouMean +
                    ((shownHelpDoc === undefined
                      ? undefined
                      : fixOfParseError(e as unknown as CliError.NonShowHelpErrors, shownHelpDoc)) ??
                      `see \`kvdeploy${command} --help\` for the flags and examples`),
                ),
              }
            })
            return printJson({
              error: {
                title: problems[0]?.message ?? withoutPem(error.message),
                exitCode: ExitCode.usage,
                problems,
              },
            }).pipe(Effect.andThen(Effect.fail(new ExitWith({ exitCode: ExitCode.usage }))))
          }
          return Effect.fail(new ExitWith({ exitCode: ExitCode.usage }))
        }
      }
      if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
      return printErr(`${styleErr().red("internal error")}: ${withoutKeyText(Cause.pretty(cause))}`).pipe(
        Effect.andThen(
          printErr(
            "This is a bug in kvdeploy; please report it with the command you ran (no key material is in this message).",
          ),
        ),
        Effect.andThen(Effect.fail(new ExitWith({ exitCode: 70 }))),
      )
    }),
    Effect.provide(Layer.merge(NodeServices.layer, presenter)),
  )
  NodeRuntime.runMain(program, {
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      const interrupted = Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)
      if (interrupted && reportedExit.exitCode !== undefined) return onExit(reportedExit.exitCode)
      if (interrupted && stoppedBySignal.isSuccess) return onExit(ExitCode.ok)
      if (interrupted)
        reportInterrupted(json, argv[0] === "deploy" || argv[0] === "restore" ? argv[0] : undefined)
      return Runtime.defaultTeardown(exit, onExit)
    },
  })
}

/**
 * Say that the command was interrupted (Ctrl+C, SIGTERM) before it finished: with --json, as the
 * one JSON document stdout promises (a script appending documents to a log would otherwise take
 * the last run's for this one's); else a line on stderr. Written synchronously (stdout and stderr
 * to files, pipes and terminals are on Linux), as the process exits right after.
 */
const reportInterrupted = (json: boolean, writer: "deploy" | "restore" | undefined): void => {
  const problem = {
    field: "(command)",
    // A restore is a deploy of an earlier version's material (deployReported): the same rule.
    message: `the command was stopped (Ctrl+C or SIGTERM) before it finished${writer === undefined ? "" : `; a ${writer} is stopped this way only before its first write, so it wrote nothing`}`,
    fix: "run the command again; `kvdeploy show` says what the vault serves now",
  }
  Effect.runSync(clearProgress)
  // A command that printed its document before the interruption came keeps it as the only one.
  if (json && jsonPrinted.value) return
  if (json)
    process.stdout.write(
      `${JSON.stringify({ error: { title: "interrupted", exitCode: ExitCode.interrupted, problems: [problem] } }, null, 2)}\n`,
    )
  else
    process.stderr.write(`${styleErr().yellow("interrupted")}: ${problem.message}\n  fix: ${problem.fix}\n`)
}

/**
 * Every command's help, rendered as `kvdeploy [COMMAND] --help` renders it
 * (the build stores them in dist/help.json so that help needs no command tree).
 */
export const helpPages = (
  commands: ReadonlyArray<string>,
  coloured: boolean,
): Promise<Record<string, string>> => {
  const pages: Record<string, string> = {}
  let current = ""
  const collector = CliOutput.layerPresenter({
    present: (event) =>
      Effect.sync(() => {
        if (event._tag === "Help") {
          pages[current] = helpPage(event.helpDoc, coloured)
        }
      }),
  })
  return Effect.runPromise(
    Effect.forEach(
      commands,
      (command) =>
        Effect.suspend(() => {
          current = command
          return Command.runWith(kvdeploy, { version })(
            command === "" ? ["--help"] : [command, "--help"],
          ).pipe(Effect.provide(cliConfig))
        }),
      { discard: true },
    ).pipe(Effect.provide(Layer.merge(NodeServices.layer, collector))),
  ).then(() => pages)
}
