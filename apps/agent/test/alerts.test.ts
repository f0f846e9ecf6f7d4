/**
 * The alerts docs/agent.md offers ("Alerts worth having") are valid Prometheus rules, and fire as
 * their comments say: checked by Prometheus's own tool (`promtool check rules`, `promtool test
 * rules`). With CI=true a missing promtool fails the test instead of skipping it.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { dump } from "js-yaml"
import { afterAll, describe, expect, it } from "vitest"
import { agentRoot } from "./harness.js"

const hasPromtool = spawnSync("promtool", ["--version"], { encoding: "utf8" }).status === 0
const inCi = process.env.CI === "true"
const dir = mkdtempSync(join(tmpdir(), "kvdeploy-alerts-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** The YAML block under "## Alerts worth having" in docs/agent.md. */
const documentedRules = (): string => {
  const doc = readFileSync(join(agentRoot, "..", "..", "docs", "agent.md"), "utf8")
  const section = doc.slice(doc.indexOf("## Alerts worth having"))
  const block = /```yaml\n([\s\S]*?)```/.exec(section)
  if (block?.[1] === undefined) throw new Error("docs/agent.md has no alert rules block")
  return block[1]
}

/** A series that holds one value for `minutes` minutes. */
const held = (series: string, value: number, minutes: number) => ({
  series,
  values: `${value}x${minutes}`,
})

describe("the documented alerts", () => {
  it.skipIf(!hasPromtool && !inCi)("are valid rules that fire as their comments say", () => {
    expect(hasPromtool, "promtool is missing (Debian's prometheus package); .ci/run installs it").toBe(true)
    const rules = join(dir, "rules.yml")
    writeFileSync(rules, documentedRules())
    const check = spawnSync("promtool", ["check", "rules", rules], { encoding: "utf8" })
    expect(check.status, check.stdout + check.stderr).toBe(0)
    const outcome = (o: string) => `kvdeploy_agent_last_outcome{deployment="api",outcome="${o}"}`
    const tests = {
      rule_files: [rules],
      evaluation_interval: "1m",
      tests: [
        {
          interval: "1m",
          input_series: [
            held(outcome("Failed"), 1, 120),
            held(outcome("Superseded"), 1, 10),
            held("kvdeploy_agent_ready", 1, 120),
          ],
          alert_rule_test: [
            // A deployment that cannot reach its vault: not before an hour, then firing.
            { eval_time: "30m", alertname: "KvdeployDeployFailing", exp_alerts: [] },
            {
              eval_time: "90m",
              alertname: "KvdeployDeployFailing",
              exp_alerts: [{ exp_labels: { deployment: "api", outcome: "Failed" } }],
            },
            // A held outcome fires at once; the ready agent does not.
            {
              eval_time: "5m",
              alertname: "KvdeployNeedsAPerson",
              exp_alerts: [{ exp_labels: { deployment: "api", outcome: "Superseded" } }],
            },
            { eval_time: "90m", alertname: "KvdeployAgentNotReady", exp_alerts: [] },
          ],
        },
      ],
    }
    const testFile = join(dir, "tests.yml")
    writeFileSync(testFile, dump(tests))
    const test = spawnSync("promtool", ["test", "rules", testFile], { encoding: "utf8" })
    expect(test.status, test.stdout + test.stderr).toBe(0)
  })
})
