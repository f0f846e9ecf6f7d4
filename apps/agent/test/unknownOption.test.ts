/**
 * An unknown option near a known one (`--chek`) gets a did-you-mean, as kvdeploy's own CLI gives:
 * on stderr and as the fix's first words in `--check --json`'s answer. One far from every option
 * gets none.
 */
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { agent, example, exampleEnv } from "./checkFixtures.js"

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

  it("--check --json refused for its command line names the file by its absolute path, as every other verdict does", () => {
    const relative = join("examples", "agent.yaml")
    const pathOf = (args: ReadonlyArray<string>) => {
      const r = agent(args, exampleEnv)
      return (JSON.parse(r.stdout) as { path: string }).path
    }
    // The verdict on the file itself (run from the package's directory, as agent() runs).
    expect(pathOf(["--check", "--json", "--config", relative])).toBe(example)
    for (const refused of [
      ["--check", "--json", "--config", relative, "--chek"],
      ["--check", "--json", "--config", relative, "--config", relative],
      ["--check", "--json", "--config", relative, "--version"],
    ])
      expect(pathOf(refused), refused.join(" ")).toBe(example)
  })
})
