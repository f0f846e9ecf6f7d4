/** Target files and --tag values: parsed as written (a byte order mark, keys named like Object's own). */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import { describe, expect, it } from "vitest"
import { parseTagFlags, readConfigFile } from "../src/cli/target.js"

describe("parseTagFlags", () => {
  it("takes __proto__ and constructor as tag keys like any other (they were 'given twice')", () => {
    const parsed = parseTagFlags(["__proto__=x", "constructor=y", "env=prod"])
    expect(parsed.problems).toEqual([])
    expect(Object.entries(parsed.tags)).toEqual([
      ["__proto__", "x"],
      ["constructor", "y"],
      ["env", "prod"],
    ])
    const twice = parseTagFlags(["env=a", "env=b"])
    expect(twice.problems[0]?.message).toBe('the key "env" is given twice')
  })
})

describe("readConfigFile", () => {
  it("reads a target file that starts with a byte order mark", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kvdeploy-target-"))
    try {
      const path = join(dir, "target.json")
      writeFileSync(
        path,
        `\uFEFF${JSON.stringify({ vault_url: "https://a-vault.vault.azure.net", certificate_name: "a" })}`,
      )
      const read = await Effect.runPromise(readConfigFile(path))
      expect(read).toEqual({ vault_url: "https://a-vault.vault.azure.net", certificate_name: "a" })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
