/**
 * An unknown option near a known one (`--chek`) gets a did-you-mean, as kvdeploy's own CLI gives:
 * on stderr and as the fix's first words in `--check --json`'s answer. One far from every option
 * gets none.
 */
import { describe, expect, it } from "vitest"
import { agent } from "./checkFixtures.js"

describe("kvdeploy-agent with an unknown option", () => {
  it("--chek: did you mean --check? (exit 2), on stderr and in the JSON fix", () => {
    const text = agent(["--chek", "--config", "/nonexistent/agent.yaml"])
    expect(text.status).toBe(2)
    expect(text.stderr).toContain("did you mean --check?")
    const json = agent(["--chek", "--json", "--config", "/nonexistent/agent.yaml"])
    expect(json.status).toBe(2)
    const answer = JSON.parse(json.stdout) as { problems: Array<{ message: string; fix: string }> }
    expect(answer.problems[0]?.message).toContain("--chek")
    expect(answer.problems[0]?.fix).toBe("did you mean --check? see kvdeploy-agent --help")
    // --confg: --config.
    expect(agent(["--confg", "/x.yaml", "--check"]).stderr).toContain("did you mean --config?")
  })

  it("an option far from every known one: no guess", () => {
    const r = agent(["--bogus-thing", "--check"])
    expect(r.status).toBe(2)
    expect(r.stderr).not.toContain("did you mean")
  })
})
