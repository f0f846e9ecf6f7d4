/**
 * The alerts docs/keyvault-target.md offers for CLI runs ("Metrics of a CLI run") are valid
 * Prometheus rules and fire as their comments say, on series as `deploy --metrics-file` writes them:
 * checked with `promtool check rules` and `promtool test rules`. With CI=true a missing promtool
 * fails the test instead of skipping it.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { dump } from "js-yaml"
import { afterAll, describe, expect, it } from "vitest"
import { cliRoot } from "./harness.js"

const hasPromtool = spawnSync("promtool", ["--version"], { encoding: "utf8" }).status === 0
const inCi = process.env.CI === "true"
const dir = mkdtempSync(join(tmpdir(), "kvdeploy-cli-alerts-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("the documented alerts of CLI runs", () => {
  it.skipIf(!hasPromtool && !inCi)("are valid rules that fire as their comments say", () => {
    expect(hasPromtool, "promtool is missing (Debian's prometheus package); .ci/run installs it").toBe(true)
    const doc = readFileSync(join(cliRoot, "..", "..", "docs", "keyvault-target.md"), "utf8")
    const section = doc.slice(doc.indexOf("## Metrics of a CLI run"))
    const rulesText = /```yaml\n([\s\S]*?)```/.exec(section)?.[1]
    expect(rulesText).toBeDefined()
    const rules = join(dir, "rules.yml")
    writeFileSync(rules, rulesText ?? "")
    const check = spawnSync("promtool", ["check", "rules", rules], { encoding: "utf8" })
    expect(check.status, check.stdout + check.stderr).toBe(0)
    const target = 'vault_url="https://kv.vault.azure.net",certificate_name="api"'
    const attempts = (result: string) =>
      `certctl_deploy_attempts_total{target_type="azure_kv",result="${result}",${target}}`
    const expAttempt = (result: string) => ({
      exp_labels: {
        target_type: "azure_kv",
        result,
        vault_url: "https://kv.vault.azure.net",
        certificate_name: "api",
      },
    })
    const tests = {
      rule_files: [rules],
      evaluation_interval: "1m",
      tests: [
        {
          interval: "1m",
          input_series: [
            { series: attempts("rolled_back"), values: "1x10" },
            { series: attempts("failed"), values: "1x10" },
            { series: attempts("succeeded"), values: "1x10" },
            // The file was last written at time 0: three days later, the runs have stopped.
            {
              series: 'node_textfile_mtime_seconds{file="/var/lib/node_exporter/kvdeploy-api.prom"}',
              values: "0x5000",
            },
          ],
          alert_rule_test: [
            {
              eval_time: "5m",
              alertname: "KvdeployRunNeedsAPerson",
              exp_alerts: [expAttempt("rolled_back")],
            },
            { eval_time: "5m", alertname: "KvdeployRunFailed", exp_alerts: [expAttempt("failed")] },
            { eval_time: "1d", alertname: "KvdeployRunsStopped", exp_alerts: [] },
            {
              eval_time: "3d",
              alertname: "KvdeployRunsStopped",
              exp_alerts: [{ exp_labels: { file: "/var/lib/node_exporter/kvdeploy-api.prom" } }],
            },
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
