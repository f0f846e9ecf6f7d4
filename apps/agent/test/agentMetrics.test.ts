/** The agent's own series: what a scrape shows after the values were set (some are set only when read). */
import { describe, expect, it } from "vitest"
import { makeAgentMetrics } from "../src/agentMetrics.js"

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
})
