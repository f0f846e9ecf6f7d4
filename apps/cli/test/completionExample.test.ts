/**
 * `kvdeploy --help`'s completion example is the one docs/getting-started.md gives (it said
 * /etc/bash_completion.d/, the docs ~/.local/share/bash-completion/completions/).
 */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { cliRoot, runCli } from "./harness.js"

describe("the shell completion example", () => {
  it("is the same in kvdeploy --help and in docs/getting-started.md", async () => {
    const page = readFileSync(join(cliRoot, "..", "..", "docs", "getting-started.md"), "utf8")
    const documented = /`(mkdir -p [^`]*kvdeploy --completions bash > [^`]*)`/.exec(page)?.[1]
    expect(documented).toBeDefined()
    const help = await runCli(["--help"])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain(documented)
    expect(help.stdout).not.toContain("/etc/bash_completion.d")
  })
})
