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

describe("readConfigFile: a target file written in YAML", () => {
  const readText = async (text: string) => {
    const dir = mkdtempSync(join(tmpdir(), "kvdeploy-target-"))
    try {
      const path = join(dir, "target.yaml")
      writeFileSync(path, text)
      const exit = await Effect.runPromise(Effect.flip(readConfigFile(path, "FILE")))
      return exit.problems[0]
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }

  it("is named YAML with its keys, never a value, and the fix writes it as JSON", async () => {
    const problem = await readText(
      "# copied from agent.yaml\nvault_url: https://a-vault.vault.azure.net\ncertificate_name: www\npfx_password: Sup3rSecret\n",
    )
    expect(problem?.field).toBe("FILE")
    expect(problem?.message).toMatch(
      /target\.yaml is YAML \(keys vault_url, certificate_name, pfx_password\), and a target file is JSON$/,
    )
    expect(problem?.fix).toMatch(/^write the same fields as one JSON object: \{ "vault_url": /)
    expect(JSON.stringify(problem)).not.toContain("Sup3rSecret")
    expect(JSON.stringify(problem)).not.toContain("a-vault")
  })

  it("flow style, as docs/agent.md writes a target, and a deployment copied with its list dash", async () => {
    const flow = await readText('{ vault_url: "https://kv-prod.vault.azure.net", certificate_name: shop }\n')
    expect(flow?.message).toMatch(
      /target\.yaml is YAML \(keys vault_url, certificate_name\), and a target file is JSON$/,
    )
    const dashed = await readText("- vault_url: https://kv-prod.vault.azure.net\n  certificate_name: shop\n")
    expect(dashed?.message).toMatch(
      /target\.yaml is YAML, a list of one mapping \(keys vault_url, certificate_name\), and a target file is JSON$/,
    )
    // A list of several is no target copied by mistake: JSON's error stays.
    const two = await readText("- vault_url: a\n- vault_url: b\n")
    expect(two?.message).toMatch(/is not valid JSON: /)
  })

  it("keeps the JSON syntax error for broken JSON and for text that is no YAML mapping", async () => {
    for (const text of [
      '{ "vault_url": ',
      '{ "vault_url": "https://a.vault.azure.net", }',
      "[1, 2",
      "just some words",
      "vault_url = 'x'\nname = 'y'\n",
    ]) {
      const problem = await readText(text)
      expect(problem?.message, text).toMatch(/is not valid JSON: /)
      expect(problem?.fix).toBe("fix the JSON syntax (the file must be one JSON object)")
    }
  })

  it("shows only keys written as a target's fields are, and at most eight", async () => {
    const keys = ["Vault-URL", ...Array.from({ length: 10 }, (_, i) => `field_${i}`)]
    const problem = await readText(keys.map((k) => `${k}: 1`).join("\n"))
    expect(problem?.message).toContain(
      "is YAML (keys field_0, field_1, field_2, field_3, field_4, field_5, field_6, field_7, …)",
    )
    expect(problem?.message).not.toContain("Vault-URL")
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
