/**
 * The synthetic codec's size bound is exact: preflight decides the 25 KB rule
 * from it without building the PFX, so it must never be less than what
 * `encode` answers.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import fc from "fast-check"
import { arbIssuedMaterial } from "../src/testing/arbitraries.js"
import { makeAuthority, SyntheticCodec } from "../src/testing/index.js"

describe("SyntheticCodec.maxEncodedBytes", () => {
  it("equals the length encode answers, for any material, profile and friendly name", async () => {
    const ca = makeAuthority("size")
    await fc.assert(
      fc.asyncProperty(
        arbIssuedMaterial(ca),
        fc.constantFrom("modern" as const, "legacy" as const),
        fc.option(fc.string({ unit: "grapheme", maxLength: 20 }), { nil: undefined }),
        fc.array(fc.uint8Array({ maxLength: 700 }), { maxLength: 4 }),
        async (issued, encoding, friendlyName, extra) => {
          const material = { ...issued.material, chain: [...issued.material.chain, ...extra] }
          const options = {
            encoding,
            password: Redacted.make(""),
            ...(friendlyName === undefined ? {} : { friendlyName }),
          }
          const pfx = await Effect.runPromise(SyntheticCodec.encode(material, options))
          expect(SyntheticCodec.maxEncodedBytes(material, options)).toBe(pfx.byteLength)
        },
      ),
      { numRuns: 300 },
    )
  })
})
