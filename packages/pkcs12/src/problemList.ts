/**
 * The cap on the problems listed for one input (parsePem's, inspectMaterial's): text made of
 * thousands of stray blocks, or a chain of hundreds of certificates that do not link, gave a problem
 * each, megabytes in one log line or one preflight report. The rest are counted in one problem.
 */
import type { MaterialProblem } from "@kvdeploy/core"

/** At most this many problems are listed for one input; the rest are counted. */
export const MAX_LISTED_PROBLEMS = 20

/** `problems` cut to `MAX_LISTED_PROBLEMS` in place, with one problem (of `field`) counting the rest. */
export const capProblems = (
  problems: Array<MaterialProblem>,
  field: (omitted: ReadonlyArray<MaterialProblem>) => string,
): void => {
  if (problems.length <= MAX_LISTED_PROBLEMS) return
  const omitted = problems.slice(MAX_LISTED_PROBLEMS)
  problems.length = MAX_LISTED_PROBLEMS
  problems.push({
    field: field(omitted),
    message: `has ${omitted.length} more problems, not listed`,
    fix: "fix the ones listed; the input is probably not the right file",
  })
}
