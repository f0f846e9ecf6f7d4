/**
 * A stray command-line argument (one no flag takes) is repeated in the usage error only when it is
 * harmless to show: a kvdeploy command's name, or a file that exists. Anything else may be a secret
 * typed where its flag or variable belongs, and is named by its position, with the fix.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { type ErrorDocument, json, runCli } from "./harness.js"

const dir = mkdtempSync(join("/dev/shm", "kvdeploy-stray-argument-"))
const pfx = join(dir, "c.pfx")
writeFileSync(pfx, "not read: the command line is refused first")
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("a stray command-line argument", () => {
  const line = ["deploy", "--config", join(dir, "t.json"), "--pfx", pfx, "--pfx-password-env", "PFXPW"]

  it("a passphrase typed after its variable's flag is not repeated: named by its position, with where a value goes (2)", async () => {
    const human = await runCli([...line, "correct horse"])
    expect(human.code).toBe(2)
    expect(human.stdout + human.stderr).not.toContain("correct horse")
    expect(human.stderr).toContain(
      "Unexpected positional argument: argument 8 (not shown: it may be a secret)",
    )
    expect(human.stderr).toContain(
      'fix: argument 8 is taken by no flag: a value goes right after its flag (--flag VALUE or --flag=VALUE), so check the words before it; quote a path with spaces ("my cert.pem")',
    )

    const r = await runCli([...line, "correct horse", "--json"])
    expect(r.code).toBe(2)
    expect(r.stdout + r.stderr).not.toContain("correct horse")
    const { error } = json<ErrorDocument>(r)
    expect(error.exitCode).toBe(2)
    expect(error.problems).toEqual([
      {
        field: "argument 8",
        message: "Unexpected positional argument: argument 8 (not shown: it may be a secret)",
        fix: expect.stringContaining("argument 8 is taken by no flag"),
      },
    ])
  })

  it("two stray words: each named by its own position (2)", async () => {
    const r = await runCli([...line, "hunter2secret", "--json", "hunter2secret"])
    expect(r.stdout + r.stderr).not.toContain("hunter2secret")
    const { error } = json<ErrorDocument>(r)
    expect(error.problems[0]?.message).toBe(
      "Unexpected positional arguments: argument 8 (not shown: it may be a secret), argument 10 (not shown: it may be a secret)",
    )
    expect(error.problems[0]?.fix).toContain("argument 8 and argument 10 are taken by no flag")
  })

  it("a file name by its look and a small number are harmless too; the target-file hint still names a bare target file (2)", async () => {
    const r = await runCli(["versions", "--config", join(dir, "t.json"), "5", "--json"])
    expect(json<ErrorDocument>(r).error.problems[0]?.message).toBe('Unexpected positional argument: "5"')
    const bare = await runCli(["deploy", "missing-target.yaml", "--json"])
    expect(bare.code).toBe(2)
    const problem = json<ErrorDocument>(bare).error.problems.find((p) => p.field === "missing-target.yaml")
    expect(problem?.fix).toContain("give the target file with --config, in place of the bare argument")
    // A secret with a dot in it is no file name: hidden.
    const dotted = await runCli([...line, "s3cr3t.v4lue", "--json"])
    expect(dotted.stdout + dotted.stderr).not.toContain("s3cr3t.v4lue")
  })

  it("a long number (a numeric passphrase) and a name with a space that ends in .pem are not shown (2)", async () => {
    const r = await runCli([
      "deploy",
      "--pfx-password-env",
      "PFXPW",
      "12345678",
      "correct horse.pem",
      "--json",
    ])
    expect(r.code).toBe(2)
    expect(r.stdout + r.stderr).not.toContain("12345678")
    expect(r.stdout + r.stderr).not.toContain("correct horse")
    expect(json<ErrorDocument>(r).error.problems[0]?.message).toBe(
      "Unexpected positional arguments: argument 4 (not shown: it may be a secret), argument 5 (not shown: it may be a secret)",
    )
  })

  it("a stray word that was also a flag's value is named by its last place, the stray one (2)", async () => {
    // PFXPW is the flag's value at argument 3 and the stray word at argument 4.
    const r = await runCli(["deploy", "--pfx-password-env", "PFXPW", "PFXPW", "--json"])
    expect(r.code).toBe(2)
    const { error } = json<ErrorDocument>(r)
    expect(error.problems[0]?.field).toBe("argument 4")
    expect(error.problems[0]?.message).toBe(
      "Unexpected positional argument: argument 4 (not shown: it may be a secret)",
    )
  })

  it("a command's name and a file that exists are harmless, and shown as typed (2)", async () => {
    const r = await runCli([...line, pfx, "versions", "--json"])
    expect(r.code).toBe(2)
    const { error } = json<ErrorDocument>(r)
    expect(error.problems[0]?.field).toBe(pfx)
    expect(error.problems[0]?.message).toBe(`Unexpected positional arguments: "${pfx}", "versions"`)
    expect(error.problems[0]?.fix).not.toContain("taken by no flag")
  })
})
