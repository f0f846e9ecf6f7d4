/**
 * The alerts docs/keyvault-target.md offers for CLI runs ("Metrics of a CLI run") are valid
 * Prometheus rules and fire as their comments say, on series as `deploy --metrics-file` writes them:
 * checked with `promtool check rules` and `promtool test rules`. With CI=true a missing promtool
 * fails the test instead of skipping it.
 */
import { join } from "node:path"
import { checkRules, promtoolSkipped, rulesBlock } from "@kvdeploy/vitest-config/promtool"
import { describe, expect, it } from "vitest"
import { cliRoot } from "./harness.js"

const vault = "https://kv.vault.azure.net"
const attempts = (result: string) =>
  `certctl_deploy_attempts_total{target_type="azure_kv",result="${result}",vault_url="${vault}",certificate_name="api"}`
const fired = (result: string) => ({
  exp_labels: { target_type: "azure_kv", result, vault_url: vault, certificate_name: "api" },
})

describe("the documented alerts of CLI runs", () => {
  it.skipIf(promtoolSkipped)("are valid rules that fire as their comments say", () => {
    const rules = rulesBlock(
      join(cliRoot, "..", "..", "docs", "keyvault-target.md"),
      "## Metrics of a CLI run",
    )
    const file = "/var/lib/node_exporter/kvdeploy-api.prom"
    const result = checkRules(rules, [
      {
        interval: "1m",
        input_series: [
          { series: attempts("rolled_back"), values: "1x10" },
          { series: attempts("failed"), values: "1x10" },
          { series: attempts("succeeded"), values: "1x10" },
          // The file was last written at time 0: three days later, the runs have stopped.
          { series: `node_textfile_mtime_seconds{file="${file}"}`, values: "0x5000" },
        ],
        alert_rule_test: [
          { eval_time: "5m", alertname: "KvdeployRunNeedsAPerson", exp_alerts: [fired("rolled_back")] },
          { eval_time: "5m", alertname: "KvdeployRunFailed", exp_alerts: [fired("failed")] },
          { eval_time: "1d", alertname: "KvdeployRunsStopped", exp_alerts: [] },
          { eval_time: "3d", alertname: "KvdeployRunsStopped", exp_alerts: [{ exp_labels: { file } }] },
        ],
      },
    ])
    expect(result.status, result.output).toBe(0)
  })
})
