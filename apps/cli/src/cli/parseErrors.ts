/**
 * The command-line parser's errors, made more useful before they are shown: an unknown flag gets
 * the command's flags it may stand for (the parser suggests only near spellings: `--vault` got
 * nothing, though `--vault-url` exists), a mistyped command is not followed by an "unrecognized
 * flag" for each of its flags, and a flag given twice says so instead of "2 occurrences".
 */
import * as CliError from "effect/cli/CliError"
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

export const refineParseErrors = (
  errors: ReadonlyArray<ParseError>,
  helpDoc: HelpDoc,
): ReadonlyArray<ParseError> => {
  // The flags after a mistyped command are that command's: the unknown command says it all.
  const mistypedCommand = errors.some((e) => e._tag === "UnknownSubcommand")
  const flags = helpDoc.flags.map((f) => f.name)
  return errors.flatMap((e): Array<ParseError> => {
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
