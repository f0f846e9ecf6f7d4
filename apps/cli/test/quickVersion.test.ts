/**
 * `kvdeploy --version` is answered by dist/bin.js without loading the command tree (as `--help`
 * is): the same text and JSON as the framework's answer, and it works from a copy of bin.js with
 * only the chunks bin.js itself imports, where any command fails for want of the tree.
 */
import { spawnSync } from "node:child_process"
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { baseEnv, bin, cliRoot, runCli } from "./harness.js"

const packageVersion = (
  JSON.parse(readFileSync(join(cliRoot, "package.json"), "utf8")) as { version: string }
).version

const forms: ReadonlyArray<ReadonlyArray<string>> = [
  ["--version"],
  ["-v"],
  ["--version", "--json"],
  ["--json", "-v"],
]

describe("kvdeploy --version", () => {
  it.concurrent.each(forms.map((args) => [args.join(" "), args] as const))(
    "kvdeploy %s: what the framework answers",
    async (_, args) => {
      const [quick, framework] = await Promise.all([
        runCli(args),
        runCli(args, { env: { KVDEPLOY_NO_HELP_CACHE: "1" } }),
      ])
      expect(quick).toEqual(framework)
      expect(quick.code).toBe(0)
      if (args.includes("--json"))
        expect(JSON.parse(quick.stdout)).toEqual({
          name: "kvdeploy",
          version: packageVersion,
          node: process.version,
        })
      else expect(quick.stdout).toBe(`kvdeploy ${packageVersion}\n`)
    },
  )

  // A copy of bin.js with the chunks its own import lines name, and nothing else of dist/.
  const alone = mkdtempSync(join(tmpdir(), "kvdeploy-quick-version-"))
  afterAll(() => rmSync(alone, { recursive: true, force: true }))
  const binText = readFileSync(bin, "utf8")
  const imported = [...binText.matchAll(/from\s*"(\.\/chunks\/[^"]+)"|import\s*"(\.\/chunks\/[^"]+)"/g)]
    .map((m) => m[1] ?? m[2])
    .filter((p) => p !== undefined)
  // bin.js loads the command tree with a dynamic import that the copy leaves out.
  mkdirSync(join(alone, "chunks"))
  copyFileSync(bin, join(alone, "bin.js"))
  for (const p of imported) copyFileSync(join(dirname(bin), p), join(alone, p))
  const runAlone = (args: ReadonlyArray<string>) =>
    spawnSync(process.execPath, [join(alone, "bin.js"), ...args], { env: baseEnv(), encoding: "utf8" })

  it("needs none of the command tree: a copy of bin.js without it prints the version, and fails a command", () => {
    expect(binText).toMatch(/import\("\.\/chunks\/main-[^"]+\.js"\)/)
    expect(runAlone(["--version"])).toMatchObject({ status: 0, stdout: `kvdeploy ${packageVersion}\n` })
    const command = runAlone(["validate", "--config", "target.json"])
    expect(command.status).not.toBe(0)
    expect(command.stderr).toMatch(/Cannot find module .*main-/)
  })
})
