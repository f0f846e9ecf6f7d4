/**
 * The audit record's `at` text: `isoTimeOf(ms)` is exactly `new Date(ms).toISOString()`,
 * over the whole range it computes itself (1970-9999) and the times it leaves to Date.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { isoTimeOf } from "../src/isoTime.js"

const LAST_MS_OF_9999 = 253_402_300_799_999

describe("isoTimeOf", () => {
  it("equals toISOString for any millisecond of 1970-9999", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: LAST_MS_OF_9999 }), (ms) => {
        expect(isoTimeOf(ms)).toBe(new Date(ms).toISOString())
      }),
      { numRuns: 20_000 },
    )
  })

  it("equals toISOString at the edges of days, months, leap days and centuries", () => {
    const edges: Array<number> = [0, 999, 1000, 59_999, 3_599_999, 86_399_999, LAST_MS_OF_9999]
    for (const year of [1970, 1999, 2000, 2024, 2100, 2400, 9999]) {
      for (let month = 0; month < 12; month++) {
        const first = Date.UTC(year, month, 1)
        edges.push(first, first - 1, first + 999)
      }
      edges.push(
        Date.UTC(year, 1, 28, 23, 59, 59, 999),
        Date.UTC(year, 1, 29),
        Date.UTC(year, 11, 31, 23, 59, 59, 999),
      )
    }
    for (const ms of edges) expect(isoTimeOf(ms), String(ms)).toBe(new Date(ms).toISOString())
  })

  it("leaves times before 1970, after 9999 and fractional ones to Date (same text, same error)", () => {
    for (const ms of [-1, -86_400_001, -62_198_755_200_000, LAST_MS_OF_9999 + 1, 8.64e15, -8.64e15, 1.5, -0])
      expect(isoTimeOf(ms), String(ms)).toBe(new Date(ms).toISOString())
    expect(() => isoTimeOf(Number.NaN)).toThrow(RangeError)
    expect(() => isoTimeOf(8.64e15 + 1)).toThrow(RangeError)
  })
})
