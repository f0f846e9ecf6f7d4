/** How long until (or since) a time is said: days, hours, minutes, and seconds under a minute. */
import { describe, expect, it } from "vitest"
import { spanText } from "../src/spanText.js"

describe("spanText", () => {
  it("rounds down in the largest unit that is not zero, seconds under a minute (not '0 min')", () => {
    const day = 86_400_000
    expect(spanText(90 * day + 5)).toBe("90 d")
    expect(spanText(2 * day)).toBe("2 d")
    expect(spanText(2 * day - 1)).toBe("47 h")
    expect(spanText(3_600_000)).toBe("1 h")
    expect(spanText(3_599_999)).toBe("59 min")
    expect(spanText(60_000)).toBe("1 min")
    expect(spanText(40_000)).toBe("40 s")
    expect(spanText(999)).toBe("0 s")
  })
})
