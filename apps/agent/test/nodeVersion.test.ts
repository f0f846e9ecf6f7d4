/** A Node.js older than the engines range is refused at start, with the fix, before anything is loaded. */
import { spawnSync } from "node:child_process"
import { describe, expect, it } from "vitest"
import { bin } from "./harness.js"

/** Run the built binary on this Node.js, made to report another version (as an older runtime would). */
const runAs = (version: string, args: ReadonlyArray<string>) =>
  spawnSync(
    process.execPath,
    [
      "--import",
      `data:text/javascript,Object.defineProperty(process.versions,"node",{value:"${version}"});Object.defineProperty(process,"version",{value:"v${version}"})`,
      bin,
      ...args,
    ],
    { encoding: "utf8", timeout: 30_000 },
  )

describe("the Node.js version", () => {
  it("refuses 20.x and 22.9 (exit 2, the version and the fix), and runs on 22.10", () => {
    for (const old of ["20.20.2", "22.9.0"]) {
      const r = runAs(old, ["--config", "/nonexistent/agent.yaml", "--check"])
      expect(r.status, r.stderr).toBe(2)
      expect(r.stderr).toContain(`needs Node.js 22.10 or later, and this is v${old}`)
    }
    // 22.10 passes the check: the command itself answers (here: an error of its own).
    const current = runAs("22.10.0", ["--config", "/nonexistent/agent.yaml", "--check"])
    expect(current.stderr).not.toContain("needs Node.js")
    expect(current.stderr).toMatch(/nonexistent\/agent\.yaml/)
  })
})
