/**
 * Errors the CLI reports to the operator. Each one says what is wrong, where
 * (the flag, file or field) and what to do, and carries the exit code. They
 * never hold key material: messages are built from field names and facts only.
 */
import * as Data from "effect/Data"
import * as Runtime from "effect/Runtime"

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
} as const

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
