/**
 * `maxEncodedBytes` is what the core's preflight decides Key Vault's 25 KB rule
 * with, before any vault call and without building the PFX: it must never be
 * less than the length `encodePfx` answers, and it must be close enough to be
 * useful (a loose bound only makes preflight build the PFX to measure it).
 */
import { describe, expect, it } from "@effect/vitest"
import { PfxCodec } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import fc from "fast-check"
import { beforeAll } from "vitest"
import { encodePfx, layer, maxEncodedBytes } from "../src/index.js"
import {
  generateKey,
  issue,
  makeAuthorities,
  makeMaterial,
  type TestAuthorities,
  type TestKey,
} from "./fixtures.js"

let authorities: TestAuthorities
const keys: Array<TestKey> = []

beforeAll(async () => {
  authorities = await makeAuthorities()
  for (const spec of ["P-256", "P-384", "P-521", "RSA-2048", "RSA-4096"] as const)
    keys.push(await generateKey(spec))
})

describe("maxEncodedBytes", () => {
  it("is never less than the encoded length, and at most 2 KB more, for any key, chain, profile and friendly name", async () => {
    let tightest = Number.POSITIVE_INFINITY
    let loosest = 0
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: keys.length - 1 }),
        fc.constantFrom(1 as const, 2 as const, 3 as const, 4 as const),
        fc.constantFrom("modern" as const, "legacy" as const),
        fc.constantFrom("3des" as const, "rc2-40" as const),
        fc.option(fc.string({ unit: "grapheme", maxLength: 40 }), { nil: undefined }),
        fc.string({ maxLength: 24 }),
        async (keyIndex, length, encoding, legacyCertificateCipher, friendlyName, password) => {
          const key = keys[keyIndex] as TestKey
          const material = await makeMaterial(key, length, authorities)
          const options = {
            encoding,
            password: Redacted.make(password),
            legacyCertificateCipher,
            ...(friendlyName === undefined ? {} : { friendlyName }),
          }
          const pfx = await Effect.runPromise(encodePfx(material, options))
          const bound = maxEncodedBytes(material, options)
          expect(bound).toBeGreaterThanOrEqual(pfx.byteLength)
          expect(bound - pfx.byteLength).toBeLessThanOrEqual(2048)
          tightest = Math.min(tightest, bound - pfx.byteLength)
          loosest = Math.max(loosest, bound - pfx.byteLength)
        },
      ),
      { numRuns: 150 },
    )
    // The slack was measured, not assumed: it stays positive and bounded.
    expect(tightest).toBeGreaterThan(0)
    expect(loosest).toBeLessThanOrEqual(2048)
  })

  it("is never less than the encoded length for long friendly names (two bytes a UTF-16 unit, on two bags)", async () => {
    const material = await makeMaterial(keys[0] as TestKey, 2, authorities)
    for (const friendlyName of ["a".repeat(4000), "é".repeat(2500), "😀".repeat(1500)])
      for (const encoding of ["modern", "legacy"] as const) {
        const options = { encoding, password: Redacted.make("pw"), friendlyName }
        const pfx = await Effect.runPromise(encodePfx(material, options))
        const bound = maxEncodedBytes(material, options)
        expect(bound).toBeGreaterThanOrEqual(pfx.byteLength)
        expect(bound - pfx.byteLength).toBeLessThanOrEqual(2048)
      }
  })

  it("a certificate too big for Key Vault is over 25 KB by the bound and by the real encoding alike", async () => {
    const key = keys[0] as TestKey
    // 1,200 DNS names of 30 characters: a leaf of about 40 KB, a bundle no vault accepts.
    const sans = Array.from({ length: 1200 }, (_, i) => ({
      type: "dns" as const,
      value: `host-${String(i).padStart(5, "0")}.big.example.test`,
    }))
    const leaf = await issue({ subject: "CN=big.example.test", key, ca: false, sans })
    const material = { leaf, chain: [], key: Redacted.make(key.pkcs8) }
    const options = { encoding: "modern" as const, password: Redacted.make("x") }
    const pfx = await Effect.runPromise(encodePfx(material, options))
    expect(pfx.byteLength).toBeGreaterThan(25 * 1024)
    expect(maxEncodedBytes(material, options)).toBeGreaterThanOrEqual(pfx.byteLength)
  })

  it.effect("the PfxCodec layer offers it to the core", () =>
    Effect.gen(function* () {
      const codec = yield* PfxCodec
      const material = yield* Effect.promise(() => makeMaterial(keys[0] as TestKey, 2, authorities))
      const options = { encoding: "modern" as const, password: Redacted.make("") }
      const bound = codec.maxEncodedBytes?.(material, options)
      const pfx = yield* codec.encode(material, options)
      expect(bound).toBeGreaterThanOrEqual(pfx.byteLength)
    }).pipe(Effect.provide(layer)),
  )
})
