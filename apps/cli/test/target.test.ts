/** Target files and --tag values: parsed as written (a byte order mark, keys named like Object's own). */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import { describe, expect, it } from "vitest"
import { jsonSyntaxError, parseTagFlags, readConfigFile } from "../src/cli/target.js"

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

describe("jsonSyntaxError: where a target file's JSON is broken, without its text", () => {
  const complaint = (text: string) => {
    try {
      JSON.parse(text)
    } catch (e) {
      return jsonSyntaxError(text, (e as Error).message)
    }
    throw new Error("valid JSON")
  }
  const secret = "Sup3rSecretPassphraseXYZZY"
  it("an unexpected token deep in the file: its line and column, no text around it", () => {
    const text = `{\n  "vault_url": "https://my-vault.vault.azure.net",\n  "pfx_password": '${secret}'\n}`
    const said = complaint(text)
    expect(said).toBe("Unexpected token ''' (line 3, column 19)")
    expect(text.split("\n")[2]?.[18]).toBe("'")
  })
  it("an unquoted value: no part of it is shown", () => {
    const said = complaint(`{"vault_url": "https://my-vault.vault.azure.net",\n "x": ${secret}}`)
    expect(said).toMatch(/^Unexpected token 'S' \(line 2, column 7\)$/)
  })
  it("complaints with a position keep it, as line and column", () => {
    expect(complaint(`{"pw": "${secret}`)).toMatch(/^Unterminated string \(line 1, column \d+\)$/)
    expect(complaint(`{"pw": "a\tb"}`)).toBe("Bad control character in string literal (line 1, column 10)")
  })
  it("never the secret, whatever V8 says", () => {
    for (const text of [
      `{"pfx_password": '${secret}'}`,
      `{"a": ${secret}}`,
      `'${secret}'`,
      `{"a": "b"} ${secret}`,
      `{"a": "b",, "c": "${secret}"}`,
    ])
      expect(complaint(text)).not.toMatch(/Sup3r|XYZZY|ecret/)
  })
})
