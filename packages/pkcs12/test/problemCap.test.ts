/**
 * inspectMaterial lists at most 20 problems and counts the rest, as parsePem does: a chain of
 * hundreds of certificates that do not link gave a problem each (600: 120 KB of a plan's output).
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { beforeAll, describe, expect, it } from "vitest"
import { inspectMaterial } from "../src/index.js"
import { generateKey, issue, type TestKey } from "./fixtures.js"

let key: TestKey
let leaf: Uint8Array
const strays: Array<Uint8Array> = []
beforeAll(async () => {
  key = await generateKey("P-256")
  leaf = await issue({ subject: "CN=cap.test", key, ca: false })
  const caKey = await generateKey("P-256")
  for (let i = 0; i < 45; i++) strays.push(await issue({ subject: `CN=stray ${i}`, key: caKey, ca: true }))
}, 60_000)

describe("inspectMaterial's problem list", () => {
  it("45 certificates outside the leaf's chain: 20 listed, then one counting the other 25", async () => {
    const inspected = await Effect.runPromise(
      inspectMaterial({ leaf, chain: strays, key: Redacted.make(key.pkcs8) }),
    )
    expect(inspected.problems).toHaveLength(21)
    expect(inspected.problems.slice(0, 20).every((p) => p.field.startsWith("chain["))).toBe(true)
    expect(inspected.problems[20]).toEqual({
      field: "chain",
      message: "has 25 more problems, not listed",
      fix: "fix the ones listed; the input is probably not the right file",
    })
  })

  it("20 problems or fewer are all listed, none counted", async () => {
    const inspected = await Effect.runPromise(
      inspectMaterial({ leaf, chain: strays.slice(0, 20), key: Redacted.make(key.pkcs8) }),
    )
    expect(inspected.problems).toHaveLength(20)
    expect(inspected.problems.some((p) => p.message.includes("more problems"))).toBe(false)
  })
})
