// Documented Prometheus alert rules, checked by Prometheus's own tool: the rules block a
// markdown page gives after a heading, `promtool check rules` on it, then `promtool test rules`
// with the series and alerts a test expects. With CI=true a missing promtool fails a test that
// needs it instead of skipping it (.ci/run installs Debian's prometheus package).
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export const promtoolAvailable = spawnSync("promtool", ["--version"], { encoding: "utf8" }).status === 0
export const promtoolRequired = process.env.CI === "true"
/** Whether a test that needs promtool is skipped here: promtool is missing, and not required. */
export const promtoolSkipped = !promtoolAvailable && !promtoolRequired

/** The first ```yaml block after the line `heading` in the markdown file `path`. */
export const rulesBlock = (path, heading) => {
  const doc = readFileSync(path, "utf8")
  const at = doc.indexOf(heading)
  const block = at === -1 ? null : /```yaml\n([\s\S]*?)```/.exec(doc.slice(at))
  if (block === null) throw new Error(`${path} has no yaml block after ${heading}`)
  return block[1]
}

/**
 * `promtool check rules` on `rules`, then `promtool test rules` with `tests` (the `tests` list of
 * a promtool test file; the rule file is added): the first that fails, or status 0 and both outputs.
 * Throws when promtool is missing (a test not skipped by `promtoolSkipped`: CI requires it).
 */
export const checkRules = (rules, tests) => {
  if (!promtoolAvailable)
    throw new Error("promtool is missing (Debian's prometheus package); .ci/run installs it")
  const dir = mkdtempSync(join(tmpdir(), "kvdeploy-rules-"))
  try {
    const rulesFile = join(dir, "rules.yml")
    writeFileSync(rulesFile, rules)
    const check = spawnSync("promtool", ["check", "rules", rulesFile], { encoding: "utf8" })
    if (check.status !== 0) return { status: check.status, output: check.stdout + check.stderr }
    const testFile = join(dir, "tests.yml")
    // JSON is YAML: promtool reads it as its test file.
    writeFileSync(testFile, JSON.stringify({ rule_files: [rulesFile], evaluation_interval: "1m", tests }))
    const test = spawnSync("promtool", ["test", "rules", testFile], { encoding: "utf8" })
    return { status: test.status, output: check.stdout + test.stdout + test.stderr }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
