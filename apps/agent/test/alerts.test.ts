/**
 * The alerts docs/agent.md offers ("Alerts worth having") are valid Prometheus rules, and fire as
 * their comments say: checked by Prometheus's own tool (`promtool check rules`, `promtool test
 * rules`). With CI=true a missing promtool fails the test instead of skipping it.
 */
import { join } from "node:path"
import { checkRules, promtoolSkipped, rulesBlock } from "@kvdeploy/vitest-config/promtool"
import { describe, expect, it } from "vitest"
import { agentRoot } from "./harness.js"

/** A series that holds one value for `minutes` minutes. */
const held = (series: string, value: number, minutes: number) => ({ series, values: `${value}x${minutes}` })

describe("the documented alerts", () => {
  it.skipIf(promtoolSkipped)("are valid rules that fire as their comments say", () => {
    const rules = rulesBlock(join(agentRoot, "..", "..", "docs", "agent.md"), "## Alerts worth having")
    const outcome = (o: string) => `kvdeploy_agent_last_outcome{deployment="api",outcome="${o}"}`
    const result = checkRules(rules, [
      {
        interval: "1m",
        input_series: [
          held(outcome("Failed"), 1, 120),
          held(outcome("Superseded"), 1, 10),
          held("kvdeploy_agent_ready", 1, 120),
          // A reload whose file was invalid 20 minutes in; the state's writes fail from the start.
          { series: "kvdeploy_agent_config_last_reload_successful", values: "1x20 0x100" },
          held("kvdeploy_agent_state_last_write_successful", 0, 120),
          // The configuration file's directory made writable by others at minute 30 (found by a reload).
          { series: "kvdeploy_agent_config_changeable_by_others", values: "0x30 1x90" },
          // One identity's token requests fail from minute 10 on; another's never do.
          {
            series:
              'kvdeploy_agent_token_request_failing{credential_mode="managed_identity",authority_host="https://login.microsoftonline.com"}',
            values: "0x10 1x110",
          },
          held('kvdeploy_agent_token_request_failing{credential_mode="client_secret"}', 0, 120),
          // The vault serves a certificate that expires 2 days after the test's start, another 90 days.
          held(
            'kvdeploy_certificate_expiry_timestamp_seconds{vault_url="https://kv",certificate_name="api"}',
            2 * 86400,
            120,
          ),
          held(
            'kvdeploy_certificate_expiry_timestamp_seconds{vault_url="https://kv",certificate_name="web"}',
            90 * 86400,
            120,
          ),
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
          // An invalid reload fires after 10 minutes; writes failing, after 15.
          { eval_time: "25m", alertname: "KvdeployAgentConfigInvalid", exp_alerts: [] },
          { eval_time: "35m", alertname: "KvdeployAgentConfigInvalid", exp_alerts: [{ exp_labels: {} }] },
          { eval_time: "10m", alertname: "KvdeployAgentStateNotWritten", exp_alerts: [] },
          { eval_time: "20m", alertname: "KvdeployAgentStateNotWritten", exp_alerts: [{ exp_labels: {} }] },
          // A configuration others may change: after an hour of it.
          { eval_time: "80m", alertname: "KvdeployAgentConfigChangeableByOthers", exp_alerts: [] },
          {
            eval_time: "100m",
            alertname: "KvdeployAgentConfigChangeableByOthers",
            exp_alerts: [{ exp_labels: {} }],
          },
          // An identity's token requests failing: after 15 minutes of it, for that identity only.
          { eval_time: "20m", alertname: "KvdeployTokenRequestsFailing", exp_alerts: [] },
          {
            eval_time: "30m",
            alertname: "KvdeployTokenRequestsFailing",
            exp_alerts: [
              {
                exp_labels: {
                  credential_mode: "managed_identity",
                  authority_host: "https://login.microsoftonline.com",
                },
              },
            ],
          },
          // What the vault serves expires soon: after an hour, for that certificate only.
          { eval_time: "30m", alertname: "KvdeployServedCertificateExpiresSoon", exp_alerts: [] },
          {
            eval_time: "90m",
            alertname: "KvdeployServedCertificateExpiresSoon",
            exp_alerts: [{ exp_labels: { vault_url: "https://kv", certificate_name: "api" } }],
          },
        ],
      },
    ])
    expect(result.status, result.output).toBe(0)
  })
})
