/**
 * PEM files written by `jq .cert` without `-r` (a JSON string: quotes, and the two characters `\n`
 * for each line break), as plan's --cert and --key: the cause is named, with jq -r as the fix, not
 * "check the PEM block is complete" or "the block is cut short".
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Issued } from "../src/cli/throwawayPki.js"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { type ErrorDocument, json, runCli, startWorld, type World } from "./harness.js"

let world: World
let fx: Fixtures
let leaf: Issued

beforeAll(async () => {
  ;[world, fx] = await Promise.all([startWorld("kvdeploy-json-quoted"), makeFixtures()])
  leaf = await fx.leaf()
}, 60_000)
afterAll(() => world?.stop())

describe("PEM text that was JSON-quoted", () => {
  it("as --cert and as --key: each block named with the cause and jq -r; no key text printed", async () => {
    const quoted = (pem: string) => `${JSON.stringify(pem)}\n`
    const run = (cert: string, key: string) =>
      runCli(
        [
          "plan",
          "--config",
          world.targetFile("json-quoted"),
          "--cert",
          world.file(`${cert}.pem`, cert === "cert-quoted" ? quoted(leaf.certPem) : leaf.certPem),
          "--key",
          world.file(`${key}.pem`, key === "key-quoted" ? quoted(leaf.keyPem) : leaf.keyPem),
          "--json",
        ],
        { env: world.env },
      )
    for (const [cert, key, label] of [
      ["cert-quoted", "key-plain", "CERTIFICATE"],
      ["cert-plain", "key-quoted", "PRIVATE KEY"],
    ] as const) {
      const r = await run(cert, key)
      expect(r.code, r.stdout + r.stderr).toBe(2)
      const problems = json<ErrorDocument>(r).error.problems
      expect(problems).toEqual([
        {
          field: expect.stringMatching(
            new RegExp(`^--${cert === "cert-quoted" ? "cert" : "key"} .*: block 1 \\(${label}\\)$`),
          ),
          message:
            "holds literal \\n sequences (a backslash and an n) instead of line breaks: the PEM text was JSON-quoted",
          fix: "write it with jq -r (raw output), or decode the JSON string, so that the file holds real line breaks",
        },
      ])
      for (const line of leaf.keyPem.split("\n").filter((l) => l.length >= 16 && !l.startsWith("-----")))
        expect(r.stdout + r.stderr).not.toContain(line)
    }
  })
})
