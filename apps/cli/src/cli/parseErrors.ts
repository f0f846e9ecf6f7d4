/**
 * The command-line parser's errors, made more useful before they are shown: an unknown flag gets
 * the command's flags it may stand for (the parser suggests only near spellings: `--vault` got
 * nothing, though `--vault-url` exists), a mistyped command is not followed by an "unrecognized
 * flag" for each of its flags, a flag given twice says so instead of "2 occurrences", and a flag
 * given before the command's name (`kvdeploy --json show`) says so, with where it goes, instead of
 * "Unrecognized flag: --json … Did you mean this? --json" (or, for a flag with a value, an unknown
 * command named after the value).
 */
import { existsSync } from "node:fs"
import { didYouMean, looksLikeKeyText, shownSecretVariable } from "@kvdeploy/core"
import * as CliError from "effect/cli/CliError"
import type * as CommandSpec from "effect/cli/CommandSpec"
import type { HelpDoc } from "effect/cli/HelpDoc"

type ParseError = CliError.NonShowHelpErrors

/** The command's flags an unknown `--option` may stand for: those that start with it, contain it, or that it starts with. */
const flagsLike = (option: string, flags: ReadonlyArray<string>): Array<string> => {
  const typed = option.replace(/^-+/, "").toLowerCase()
  if (typed.length < 3) return []
  return flags
    .filter((f) => f.startsWith(typed) || f.includes(`-${typed}`) || typed.startsWith(f))
    .slice(0, 3)
    .map((f) => `--${f}`)
}

/**
 * A command's flags as typed (`--json`, and each alias: `-j`), each with whether it takes a value.
 * A flag that takes none (`Flag.Boolean`) is not followed by its value: `kvdeploy --json deplyo`
 * is a flag, then a mistyped command.
 */
export type CommandFlags = ReadonlyMap<string, { readonly takesValue: boolean }>

/** The flags of a command's spec (the framework's CommandSpec: what its parser takes), as typed. */
export const commandFlagsOf = (spec: CommandSpec.Spec): CommandFlags =>
  new Map(
    spec.flags.flatMap((f) =>
      [f.name, ...f.aliases].map((name) => [
        name.length === 1 ? `-${name}` : `--${name}`,
        { takesValue: f.type._tag !== "Boolean" || f.optionalValue !== undefined },
      ]),
    ),
  )

/** The flags kvdeploy itself takes before a command's name (the command framework's own). */
const ownFlags: ReadonlySet<string> = new Set(["--help", "-h", "--version", "--completions", "--log-level"])

/**
 * A misplaced flag's value as the fix repeats it: as typed, unless it may be a secret. A variable's
 * name (`--pfx-password-env`, `--key-passphrase-env`, …) is shown only when it reads as one (a
 * passphrase typed there is not printed back); a value that looks like key text, never.
 */
const shownFlagValue = (flag: string, value: string): string =>
  flag.endsWith("-env")
    ? (shownSecretVariable(value) ?? "VAR")
    : looksLikeKeyText(value) || /[\r\n]/.test(value)
      ? "VALUE"
      : value

interface MisplacedFlag {
  /** The flag as typed, without an inline value: `--config`. */
  readonly flag: string
  /**
   * Whether the command named after it takes it (true when the line names none): a flag it does not
   * take (`kvdeploy --jsno show`) is not sent after the command's name as if that were the fix.
   */
  readonly known: boolean
  /** For a flag the command does not take: the near one it may stand for ("did you mean --json? "), or "". */
  readonly nearest: string
  /**
   * The flag and its value as the fix shows it: `--config target.json`, `--json` (see
   * shownFlagValue); `--name VALUE` for a flag given no value.
   */
  readonly typed: string
  /** The value that followed it, as typed (matched against the parser's errors, never shown). */
  readonly value: string | undefined
}

/**
 * The flags given before the command's name (`kvdeploy --json show`), each with the value that
 * followed it, if any; none without a command name on the line. The parser reads them as
 * kvdeploy's own (it has none but its framework's), and a flag's value as the command.
 */
export const flagsBeforeCommand = (
  argv: ReadonlyArray<string>,
  commands: ReadonlyMap<string, CommandFlags>,
): { readonly command: string | undefined; readonly flags: ReadonlyArray<MisplacedFlag> } | undefined => {
  const at = argv.findIndex((a) => commands.has(a))
  const command = argv[at]
  // No command on the line, and a flag first (`kvdeploy --config target.json`): the flags are a
  // command's, and the parser read the first value as the command ("Unknown subcommand target.json").
  const noCommand = at < 0 && argv[0]?.startsWith("-") === true
  if (!noCommand && (at <= 0 || command === undefined)) return undefined
  const end = noCommand ? argv.length : at
  // The flags of the command named (of any command, when the line names none).
  const taken: CommandFlags =
    command !== undefined
      ? (commands.get(command) ?? new Map())
      : new Map([...commands.values()].flatMap((flags) => [...flags]))
  const flags: Array<MisplacedFlag> = []
  for (let i = 0; i < end; i++) {
    const arg = argv[i] ?? ""
    if (!arg.startsWith("-")) continue
    const flag = arg.split("=")[0] ?? arg
    if (ownFlags.has(flag)) continue
    const next = argv[i + 1]
    const inline = arg.includes("=") ? arg.slice(flag.length + 1) : undefined
    const takes = taken.get(flag)
    // A flag no command takes: a word after it before the command's name is taken for its value.
    const takesValue = takes?.takesValue ?? true
    const value =
      inline ?? (takesValue && i + 1 < end && next !== undefined && !next.startsWith("-") ? next : undefined)
    // A flag that takes a value and was given none here (`kvdeploy --name deploy`: the word after it
    // is the command) is shown with a placeholder, so the fix, followed, is a whole command line.
    // (`--config=`, an empty inline value, is given none either.)
    const shown =
      value !== undefined && value !== "" ? shownFlagValue(flag, value) : takesValue ? "VALUE" : undefined
    const known = takes !== undefined || command === undefined
    flags.push({
      flag,
      typed: shown === undefined ? flag : `${flag} ${shown}`,
      value,
      known,
      nearest: known
        ? ""
        : didYouMean(
            flag,
            [...taken.keys()].filter((f) => f.startsWith("--")),
          ),
    })
  }
  return flags.length === 0 ? undefined : { command, flags }
}

/** A command's flag given before the command's name: said so, with where it goes. */
export class FlagBeforeCommand extends CliError.UnrecognizedOption {
  readonly misplaced: MisplacedFlag
  /** The command named after the flag; undefined when the line names none (`kvdeploy --json`). */
  readonly commandName: string | undefined
  constructor(misplaced: MisplacedFlag, commandName: string | undefined) {
    super({ option: misplaced.flag, command: ["kvdeploy"], suggestions: [] })
    this.misplaced = misplaced
    this.commandName = commandName
  }
  override get message(): string {
    if (this.commandName === undefined)
      return `${this.misplaced.flag} is given without a command: kvdeploy's flags go after a command's name`
    return this.misplaced.known
      ? `${this.misplaced.flag} is given before the command name "${this.commandName}": a command's flags go after its name`
      : `${this.misplaced.flag} is given before the command name "${this.commandName}", and ${this.commandName} takes no such flag`
  }
  /** What to do, in place of the pointer to --help. */
  get fix(): string {
    if (this.commandName === undefined)
      return `name the command first: kvdeploy COMMAND ${this.misplaced.typed} (\`kvdeploy --help\` lists the commands)`
    return this.misplaced.known
      ? `put it after the command: kvdeploy ${this.commandName} ${this.misplaced.typed}`
      : `${this.misplaced.nearest}see \`kvdeploy ${this.commandName} --help\` for its flags, and put them after the command's name`
  }
}

/**
 * A file name a secret does not look like: a short path of plain characters ending in the extension
 * of a file kvdeploy reads (a target file, a certificate, a key, a PFX), such as `target.yaml`.
 */
const fileNameLike = /^[\w./-]{1,120}\.(?:json|ya?ml|pem|crt|cer|der|key|pfx|p12)$/i

/**
 * Whether a stray argument may be repeated in a usage error: it names a kvdeploy command, a file or
 * directory that exists (and reads as no key text), a file name by its look (`target.yaml`, which
 * the target-file hint names), or a small number. Anything else may be a secret typed where its
 * flag or variable belongs (`--pfx-password-env PFXPW "correct horse"`), and is not shown.
 */
const harmlessArgument = (value: string, commands: ReadonlySet<string>): boolean =>
  commands.has(value) ||
  /^\d{1,4}$/.test(value) ||
  fileNameLike.test(value) ||
  (!looksLikeKeyText(value) && existsSync(value))

/**
 * The parser's "Unexpected positional argument", with each argument shown only when it is harmless
 * (harmlessArgument); any other is named by its position on the command line (`argument 7`, as the
 * words after `kvdeploy` are counted), never quoted, with the fix. Its `arguments` (what a problem's
 * field names) are the shown forms too.
 */
export class UnexpectedArgumentNotShown extends CliError.UnexpectedArgument {
  /** Each argument as a message shows it: quoted, or `argument 7 (not shown: it may be a secret)`. */
  readonly shown: ReadonlyArray<string>
  /** The positions of the arguments not shown (`argument 7`); empty when every one was shown. */
  readonly hidden: ReadonlyArray<string>
  constructor(typed: ReadonlyArray<string>, argv: ReadonlyArray<string>, commands: ReadonlySet<string>) {
    // Where each stands: of the places a value stands, its last ones (a stray value follows the
    // flags it was meant for; an earlier place may be a flag's value), in order.
    const places = new Map<string, Array<number>>()
    for (const value of new Set(typed)) {
      const count = typed.filter((t) => t === value).length
      const at = argv.flatMap((a, i) => (a === value ? [i] : []))
      places.set(value, at.slice(Math.max(0, at.length - count)))
    }
    const entries = typed.map((value) => {
      if (harmlessArgument(value, commands))
        return { field: value, shown: JSON.stringify(value), hidden: false }
      const at = places.get(value)?.shift() ?? -1
      const position = at < 0 ? "an argument" : `argument ${at + 1}`
      return { field: position, shown: `${position} (not shown: it may be a secret)`, hidden: true }
    })
    super({ arguments: entries.map((e) => e.field) })
    this.shown = entries.map((e) => e.shown)
    this.hidden = entries.filter((e) => e.hidden).map((e) => e.field)
  }
  override get message(): string {
    return `Unexpected positional ${this.shown.length === 1 ? "argument" : "arguments"}: ${this.shown.join(", ")}`
  }
  /** What to do about the arguments not shown; undefined when every one was shown. */
  get fix(): string | undefined {
    if (this.hidden.length === 0) return undefined
    return `${this.hidden.join(" and ")} ${this.hidden.length === 1 ? "is" : "are"} taken by no flag: a value goes right after its flag (--flag VALUE or --flag=VALUE), so check the words before it; quote a path with spaces ("my cert.pem"); a secret is never given on the command line, but in the environment variable a -env flag names (--pfx-password-env PFXPW)`
  }
}

export const refineParseErrors = (
  parsed: ReadonlyArray<ParseError>,
  helpDoc: HelpDoc,
  misplaced?: ReturnType<typeof flagsBeforeCommand>,
  /** The command line and kvdeploy's command names: a stray argument is shown only when harmless. */
  line: { readonly argv: ReadonlyArray<string>; readonly commands: ReadonlySet<string> } = {
    argv: [],
    commands: new Set(),
  },
): ReadonlyArray<ParseError> => {
  // The parser's errors about flags given before the command's name (an unrecognized flag, or its
  // value read as an unknown command) are replaced by one that says so.
  const misplacedFlags = new Set(misplaced?.flags.map((f) => f.flag))
  const misplacedValues = new Set(misplaced?.flags.map((f) => f.value))
  // A value read as the command kept the parser from reaching the real one: the flags after it
  // were judged as kvdeploy's own, and are the command's.
  const valueReadAsCommand = parsed.some(
    (e) => e._tag === "UnknownSubcommand" && misplacedValues.has(e.subcommand),
  )
  const errors = parsed.filter(
    (e) =>
      !(e._tag === "UnrecognizedOption" && misplacedFlags.has(e.option)) &&
      !(e._tag === "UnrecognizedOption" && valueReadAsCommand && (e.command?.length ?? 1) <= 1) &&
      !(e._tag === "UnknownSubcommand" && misplacedValues.has(e.subcommand)),
  )
  const before =
    misplaced === undefined ? [] : misplaced.flags.map((f) => new FlagBeforeCommand(f, misplaced.command))
  // The flags after a mistyped command are that command's: the unknown command says it all.
  const mistypedCommand = errors.some((e) => e._tag === "UnknownSubcommand")
  const flags = helpDoc.flags.map((f) => f.name)
  return [...before, ...errors].flatMap((e): Array<ParseError> => {
    if (e instanceof FlagBeforeCommand) return [e]
    if (e._tag === "UnexpectedArgument" && !(e instanceof UnexpectedArgumentNotShown))
      return [new UnexpectedArgumentNotShown(e.arguments, line.argv, line.commands)]
    if (e._tag === "UnrecognizedOption") {
      if (mistypedCommand) return []
      if (e.suggestions.length > 0) return [e]
      return [
        new CliError.UnrecognizedOption({
          option: e.option,
          ...(e.command === undefined ? {} : { command: e.command }),
          suggestions: flagsLike(e.option, flags),
        }),
      ]
    }
    const given = e._tag === "InvalidValue" ? /^(\d+) occurrences$/.exec(e.value) : null
    if (e._tag === "InvalidValue" && given !== null)
      return [
        new CliError.InvalidValue({
          option: e.option,
          value: `given ${given[1]} times`,
          expected:
            e.option.replace(/^-+/, "") === "chain"
              ? "one file (put the chain's certificates in one: cat intermediate.pem root.pem > chain.pem)"
              : "one value",
          kind: e.kind,
        }),
      ]
    return [e]
  })
}

/**
 * The fix for a parse error that is one of the usual slips between commands, by what the command
 * takes: `--config FILE` to a command whose file is its argument (`validate`), and a target file
 * given as an argument to one that takes `--config`. Undefined for the others (the pointer to the
 * command's help is said then). A value that may be a secret is not repeated (shownFlagValue).
 */
export const slipFix = (e: ParseError, helpDoc: HelpDoc, argv: ReadonlyArray<string>): string | undefined => {
  const command = (helpDoc.commandPath ?? ["kvdeploy"]).join(" ")
  const flags = new Set(helpDoc.flags.map((f) => f.name))
  const fileArgument = helpDoc.args?.find((a) => a.name === "file")
  if (
    e._tag === "UnrecognizedOption" &&
    e.option === "--config" &&
    fileArgument !== undefined &&
    !flags.has("config")
  )
    return `${command} takes the file as its argument, without --config: ${command} FILE`
  // A flag given twice (refineParseErrors says so): which one to keep is the operator's to say.
  if (e._tag === "InvalidValue" && /^given \d+ times$/.test(e.value)) {
    const flag = `--${e.option.replace(/^-+/, "")}`
    return `give ${flag} once${flag === "--chain" ? ", with the chain's certificates in one file" : ""}`
  }
  // Not when --config is given already: the argument is then something else.
  if (
    e._tag === "UnexpectedArgument" &&
    flags.has("config") &&
    !argv.some((a) => a === "--config" || a.startsWith("--config="))
  ) {
    const [argument] = e.arguments
    if (argument !== undefined && /\.(json|ya?ml)$/i.test(argument))
      return `give the target file with --config, in place of the bare argument: --config ${shownFlagValue("--config", argument)}`
  }
  // A stray argument not shown (it may be a secret): where a value goes.
  if (e instanceof UnexpectedArgumentNotShown) return e.fix
  return undefined
}
