/**
 * An unexpected throw (a defect: a bug in kvdeploy-agent or a library it uses), said instead of a
 * silent exit or a reload that stops half-way. Expected failures (an invalid configuration, a
 * state directory that cannot be used) have their own messages; this is the rest.
 */
import { withoutKeyText } from "@kvdeploy/core"
import * as Cause from "effect/Cause"

/** The exit code of a start or `--check` ended by a defect: EX_SOFTWARE, as `kvdeploy` exits. */
export const INTERNAL_ERROR_EXIT = 70

/** Whether `cause` is a defect alone: no expected failure in it, and not only an interruption. */
export const isDefectOnly = (cause: Cause.Cause<unknown>): boolean =>
  !Cause.hasInterruptsOnly(cause) && Cause.findErrorOption(cause)._tag === "None"

/** The defect in one line, without key text it may quote (a library's message holding a file's bytes). */
export const internalErrorMessage = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const text =
    error instanceof Error
      ? `${error.name === "Error" ? "" : `${error.name}: `}${error.message}`
      : typeof error === "string"
        ? error
        : String(error)
  const line = text.split("\n")[0] ?? ""
  return `internal error: ${withoutKeyText(line === "" ? "an unexpected failure without a message" : line)}`
}

export const internalErrorFix =
  "this is a bug in kvdeploy-agent: report it with the agent's version (kvdeploy-agent --version) and the shape of the configuration (no key material is in this message)"
