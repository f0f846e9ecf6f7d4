/**
 * Target fields and flags named like an Object method (constructor, toString, __proto__): an
 * unknown field or shell like any other, never "internal error" (exit 70) or an empty --json.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { json, runCli } from "./harness.js"

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-method-names-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const targetFile = (key: string) => {
  const path = join(dir, `${key}.json`)
  writeFileSync(path, `{"vault_url":"https://kv-prod.vault.azure.net","certificate_name":"api","${key}":"x"}`)
  return path
}

describe("a target field named like an Object method", () => {
  for (const key of ["constructor", "toString", "__proto__"])
    it(`validate --json: ${key} is an unknown field (exit 2, one JSON document)`, async () => {
      const r = await runCli(["validate", targetFile(key), "--json"])
      expect(r.code, r.stderr).toBe(2)
      const record = json<{ valid: boolean; problems: Array<{ field: string; message: string }> }>(r)
      expect(record.valid).toBe(false)
      expect(record.problems.map((p) => [p.field, p.message])).toEqual([[key, "is not a known field"]])
      expect(r.stderr).not.toContain("internal error")
    })

  it("validate: the field is named, with the fix (exit 2)", async () => {
    const r = await runCli(["validate", targetFile("valueOf")])
    expect(r.code).toBe(2)
    expect(r.stdout).toMatch(/valueOf: is not a known field/)
    expect(r.stdout).toContain("remove it or fix its spelling")
  })
})

describe("--completions with a name of Object.prototype", () => {
  it("--completions constructor --json is an unknown shell, as --completions nosuch is", async () => {
    const unknown = await runCli(["--completions", "nosuch", "--json"])
    const method = await runCli(["--completions", "constructor", "--json"])
    expect(unknown.code).not.toBe(0)
    expect(method.code).toBe(unknown.code)
    expect(method.stdout.replaceAll("constructor", "nosuch")).toBe(unknown.stdout)
  })
})
