/** The agent's own series: what a scrape shows after the values were set (some are set only when read). */
import { spawnSync } from "node:child_process"
import { promtoolSkipped } from "@kvdeploy/vitest-config/promtool"
import { describe, expect, it } from "vitest"
import { makeAgentMetrics } from "../src/agentMetrics.js"
import type { IdentityTokenState } from "../src/identityHealth.js"

const series = (text: string, name: string): Array<string> =>
  text.split("\n").filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))

describe("makeAgentMetrics", () => {
  it("shows each deployment's latest success time at every scrape, and none after it is forgotten", async () => {
    const m = makeAgentMetrics()
    const name = "kvdeploy_agent_last_success_timestamp_seconds"
    m.lastSuccess("api", 1_700_000_000_900)
    m.lastSuccess("web", 1_700_000_100_000)
    m.lastSuccess("api", 1_700_000_200_400)
    expect(series(await m.text(), name).sort()).toEqual([
      `${name}{deployment="api"} 1700000200`,
      `${name}{deployment="web"} 1700000100`,
    ])
    // Unchanged since the last scrape: still shown.
    expect(series(await m.text(), name)).toHaveLength(2)
    m.lastSuccess("web", 1_700_000_300_000)
    m.forget("api")
    m.lastSuccess("db", 1_700_000_400_000)
    m.forget("db")
    expect(series(await m.text(), name)).toEqual([`${name}{deployment="web"} 1700000300`])
  })

  it("shows each deployment's last outcome, expiry, source health and pickup as last set, at every scrape", async () => {
    const m = makeAgentMetrics()
    const names = [
      "kvdeploy_agent_last_outcome",
      "kvdeploy_agent_certificate_expiry_timestamp_seconds",
      "kvdeploy_agent_source_broken",
      "kvdeploy_agent_pickup_ok",
    ]
    const shown = async () => {
      const text = await m.text()
      return names.flatMap((n) => series(text, n))
    }
    expect(await shown()).toEqual([])
    m.lastOutcome("api", "Failed")
    m.lastOutcome("web", "Succeeded")
    m.lastOutcome("api", "Succeeded")
    m.expiry("api", new Date("2027-01-01T00:00:00.900Z"))
    m.expiry("web", new Date("2027-02-01T00:00:00Z"))
    m.sourceBroken("api", true)
    m.sourceBroken("web", false)
    m.sourceBroken("api", false)
    m.pickup("web", false)
    m.pickup("web", true)
    const first = [
      // api's change from Failed moved its series after web's.
      'kvdeploy_agent_last_outcome{deployment="web",outcome="Succeeded"} 1',
      'kvdeploy_agent_last_outcome{deployment="api",outcome="Succeeded"} 1',
      'kvdeploy_agent_certificate_expiry_timestamp_seconds{deployment="api"} 1798761600',
      'kvdeploy_agent_certificate_expiry_timestamp_seconds{deployment="web"} 1801440000',
      'kvdeploy_agent_source_broken{deployment="api"} 0',
      'kvdeploy_agent_source_broken{deployment="web"} 0',
      'kvdeploy_agent_pickup_ok{deployment="web"} 1',
    ]
    expect(await shown()).toEqual(first)
    // Nothing set since: the same series.
    expect(await shown()).toEqual(first)
    m.lastOutcome("web", "Failed")
    m.lastOutcome("api", "Succeeded")
    m.sourceBroken("web", true)
    m.expiry("api", new Date("2027-03-01T00:00:00Z"))
    m.forget("api")
    m.lastOutcome("db", "Held")
    m.expiry("db", new Date("2027-04-01T00:00:00Z"))
    m.pickup("db", false)
    m.forget("db")
    // A change and a change back between scrapes (series order as if each had been set at once).
    m.lastOutcome("ops", "Succeeded")
    m.lastOutcome("ops", "Failed")
    m.lastOutcome("ops", "Succeeded")
    expect(await shown()).toEqual([
      'kvdeploy_agent_last_outcome{deployment="web",outcome="Failed"} 1',
      'kvdeploy_agent_last_outcome{deployment="ops",outcome="Succeeded"} 1',
      'kvdeploy_agent_certificate_expiry_timestamp_seconds{deployment="web"} 1801440000',
      'kvdeploy_agent_source_broken{deployment="web"} 1',
      'kvdeploy_agent_pickup_ok{deployment="web"} 1',
    ])
    // web changed and back between scrapes: its series moves after ops, as a set at each change did.
    m.lastOutcome("web", "Succeeded")
    m.lastOutcome("web", "Failed")
    expect(series(await m.text(), "kvdeploy_agent_last_outcome")).toEqual([
      'kvdeploy_agent_last_outcome{deployment="ops",outcome="Succeeded"} 1',
      'kvdeploy_agent_last_outcome{deployment="web",outcome="Failed"} 1',
    ])
  })

  it.skipIf(promtoolSkipped)(
    "shows each identity's token requests as they stand at the scrape, and none for an identity let go",
    async () => {
      const m = makeAgentMetrics()
      const mi = {
        credential_mode: "managed_identity",
        managed_identity_client_id: "11111111-2222-3333-4444-555555555555",
        authority_host: "https://login.microsoftonline.com",
        key_vault_resource: "",
      }
      const sp = { ...mi, credential_mode: "client_secret", managed_identity_client_id: "" }
      let states: ReadonlyArray<IdentityTokenState> = [
        { labels: mi, failing: true, expiresOnMs: 1_800_000_000_900 },
        { labels: sp, failing: false, expiresOnMs: undefined },
      ]
      m.identities(() => states)
      const failing = "kvdeploy_agent_token_request_failing"
      const expiry = "kvdeploy_agent_token_expiry_timestamp_seconds"
      const miLabels =
        'credential_mode="managed_identity",managed_identity_client_id="11111111-2222-3333-4444-555555555555",authority_host="https://login.microsoftonline.com",key_vault_resource=""'
      const spLabels =
        'credential_mode="client_secret",managed_identity_client_id="",authority_host="https://login.microsoftonline.com",key_vault_resource=""'
      let text = await m.text()
      expect(series(text, failing)).toEqual([`${failing}{${miLabels}} 1`, `${failing}{${spLabels}} 0`])
      // No token obtained yet: no expiry.
      expect(series(text, expiry)).toEqual([`${expiry}{${miLabels}} 1800000000`])
      // The page is a valid exposition.
      const checked = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" })
      expect(checked.status, `${checked.stdout}${checked.stderr}`).toBe(0)
      // The managed identity recovered; the service principal's identity was let go by a reload.
      states = [{ labels: mi, failing: false, expiresOnMs: 1_800_086_400_000 }]
      text = await m.text()
      expect(series(text, failing)).toEqual([`${failing}{${miLabels}} 0`])
      expect(series(text, expiry)).toEqual([`${expiry}{${miLabels}} 1800086400`])
    },
  )
})
