/**
 * The fix for a Node.js older than 22.10 names what installs a newer one: `bash scripts/dev setup`
 * (it said "the project's README installs one", which it does not: the set-up script does).
 */
import { spawnAsNodeVersion } from "@kvdeploy/core/test"
import { describe, expect, it } from "vitest"
import { bin } from "./harness.js"

describe("an old Node.js", () => {
  it("the fix names bash scripts/dev setup, on stderr and in the JSON fix", () => {
    const text = spawnAsNodeVersion("20.20.2", bin, ["show", "--name", "x"])
    expect(text.status).toBe(2)
    expect(text.stderr).toContain("`bash scripts/dev setup` installs Node.js 24")
    expect(text.stderr).not.toContain("README")
    const json = spawnAsNodeVersion("20.20.2", bin, ["show", "--name", "x", "--json"])
    expect(JSON.parse(json.stdout).error.problems[0].fix).toContain(
      "`bash scripts/dev setup` installs Node.js 24",
    )
  })
})
