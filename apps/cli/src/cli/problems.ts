/**
 * Errors the CLI reports to the operator. Each one says what is wrong, where
 * (the flag, file or field) and what to do, and carries the exit code. They
 * never hold key material: messages are built from field names and facts only.
 */
import { createPrivateKey, X509Certificate } from "node:crypto"
import { existsSync } from "node:fs"
import { holdsEncodedBase64, looksLikeDerBase64 } from "@kvdeploy/core"
import * as Data from "effect/Data"
import * as Runtime from "effect/Runtime"

export { withoutKeyText, withoutPem } from "@kvdeploy/core"

/** One thing wrong with the input, a flag or the environment. */
export interface Problem {
  /** The flag, file or configuration field concerned (`--cert`, `target.json: vault_url`). */
  readonly field: string
  readonly message: string
  readonly fix: string
}

/** Exit codes; outcome codes come from `@kvdeploy/core` (`exitCodeOf`). */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  rolledBack: 3,
  needsPerson: 4,
  superseded: 5,
  /** Interrupted (Ctrl+C, SIGTERM) before the command finished. */
  interrupted: 130,
} as const

/**
 * Set by a command that runs in the foreground until it is stopped (`kvdeploy emulator`) once it
 * is up: Ctrl+C or SIGTERM is then how it ends, and it exits 0, not 130 (a supervisor that sends
 * SIGTERM reads 130 as a failure).
 */
export const stoppedBySignal = { isSuccess: false }

/**
 * Set by a command once it printed an outcome it finished although it was interrupted (a deploy
 * interrupted after its import runs to its end): the command then exits with this code, not 130.
 */
export const reportedExit: { exitCode: number | undefined } = { exitCode: undefined }

/**
 * The command cannot go on. `kind` says whether it is a usage problem (exit 2,
 * the vault was not touched) or a failure talking to the vault or the system.
 */
export class CliProblem extends Data.TaggedError("CliProblem")<{
  readonly exitCode: number
  readonly title: string
  readonly problems: ReadonlyArray<Problem>
}> {
  override get [Runtime.errorExitCode](): number {
    return this.exitCode
  }
  override get message(): string {
    return [this.title, ...this.problems.map((p) => `${p.field}: ${p.message} (${p.fix})`)].join("; ")
  }
}

/** A usage problem: bad flags, unreadable or invalid input. Exit 2, nothing was sent to the vault. */
export const usage = (title: string, problems: ReadonlyArray<Problem>): CliProblem =>
  new CliProblem({ exitCode: ExitCode.usage, title, problems })

export const usageOne = (field: string, message: string, fix: string): CliProblem =>
  usage(`${field}: ${message}`, [{ field, message, fix }])

/**
 * A flag's whole number, from the text given (a flag read as a string, so that "abc" or "1.5" is
 * named with the fix, not the parser's own words): the number, or the problem naming `flag`, what
 * the number is (`what`, e.g. "a number of pages from 1 to 1000000") and `fix`.
 */
export const wholeNumberFlag = (
  flag: string,
  raw: string,
  range: { readonly min: number; readonly max: number },
  what: string,
  fix: string,
): number | Problem => {
  const text = raw.trim()
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN
  return n >= range.min && n <= range.max
    ? n
    : { field: flag, message: `${JSON.stringify(raw)} is not ${what}`, fix }
}

/** A failure (vault unreachable, forbidden, ...). Exit 1 unless told otherwise. */
export const failure = (
  title: string,
  problems: ReadonlyArray<Problem>,
  exitCode: number = ExitCode.failed,
) => new CliProblem({ exitCode, title, problems })

/**
 * The command already printed its result and only has to end with this exit
 * code (an outcome other than success, `verify` answering "no").
 */
export class ExitWith extends Data.TaggedError("ExitWith")<{ readonly exitCode: number }> {
  override get [Runtime.errorExitCode](): number {
    return this.exitCode
  }
}

/** Whether `value` is the base64 of a DER private key (PKCS#8, SEC1, PKCS#1) or certificate, as OpenSSL reads them. */
const isDerMaterial = (value: string): boolean => {
  if (value.length < 64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return false
  const der = Buffer.from(value, "base64")
  for (const type of ["pkcs8", "sec1", "pkcs1"] as const) {
    try {
      createPrivateKey({ key: der, format: "der", type })
      return true
    } catch {}
  }
  try {
    new X509Certificate(der)
    return true
  } catch {
    return false
  }
}

/**
 * Whether a value given as a file path (or a flag value) is certificate or key text instead: PEM
 * markers or a line break, or base64 without its PEM lines (what OpenSSL reads as a key or
 * certificate, or the base64 of DER cut short by a paste: 64 or more characters from the "M" of a
 * SEQUENCE, also after "KEY=" in a tag; or 64 or more base64 characters from inside a key, such as a
 * line of a PEM body: see holdsEncodedBase64; `insideKey: false` leaves that rule out, for the
 * paths of files to write, which need not exist and may read like base64), when no file has that
 * name.
 */
export const looksLikePastedText = (
  value: string,
  options: { readonly lineBreaks?: boolean; readonly insideKey?: boolean } = {},
): boolean =>
  /-----BEGIN |PRIVATE KEY-----/.test(value) ||
  (options.lineBreaks !== false && /[\r\n]/.test(value)) ||
  ((isDerMaterial(value) ||
    looksLikeDerBase64(value) ||
    (options.insideKey !== false && holdsEncodedBase64(value))) &&
    !existsSync(value))

/** The flags whose value is a file of certificate or key material, or - for standard input. */
const materialFlags = new Set(["--cert", "--chain", "--key", "--pfx", "--previous-key"])

/** The other flags whose value is a path (a file read or written, a directory), never -. */
const pathFlags = new Set(["--config", "--write-env", "--write-config", "--metrics-file", "--state-dir"])

/**
 * Command-line arguments that hold PEM text (a certificate or key pasted where a path or value
 * goes), one problem each, named by the flag they belong to and never quoting them. kvdeploy takes
 * certificate material from files and standard input only.
 */
export const pemArgumentProblems = (argv: ReadonlyArray<string>): Array<Problem> => {
  const problems: Array<Problem> = []
  argv.forEach((arg, i) => {
    const inline = /^(--?[A-Za-z0-9][A-Za-z0-9-]*)=/.exec(arg)?.[1]
    const previous = argv[i - 1]
    const flag =
      inline ??
      (previous !== undefined && /^--?[A-Za-z0-9][A-Za-z0-9-]*$/.test(previous)
        ? previous
        : `argument ${i + 1}`)
    const material = materialFlags.has(flag)
    const path = material || pathFlags.has(flag) || flag.startsWith("argument ")
    // A line break alone marks pasted text only where a path goes: a value's own check names it (a
    // tag's control characters; a duration, port or address quoted with its line breaks escaped).
    if (
      !looksLikePastedText(inline === undefined ? arg : arg.slice(inline.length + 1), {
        lineBreaks: path,
        // A path flag (an output file among them) may name a file that does not exist yet, and a long
        // path of short words with digits can read like base64.
        insideKey: !pathFlags.has(flag),
      })
    )
      return
    problems.push({
      field: flag,
      message:
        "holds certificate or key text (PEM or base64) instead of a file path or a value; it is not shown here",
      fix: material
        ? "put it in a file and give the file's path, or give - and pipe it on standard input (command-line arguments are visible to every user of the host, so never put a key in one)"
        : path
          ? "give a file's path here; certificate and key material goes in files given to --cert, --chain, --key or --pfx, or on standard input with - (command-line arguments are visible to every user of the host, so never put a key in one)"
          : `give the flag its own value (a name, an id, KEY=VALUE${flag === "--tag" ? "; a digest or an id of 64 or more base64 characters: in hex" : ""}), not certificate or key text; certificate material goes in files given to --cert, --chain, --key or --pfx (command-line arguments are visible to every user of the host, so never put a key in one)`,
    })
  })
  return problems
}
