import { describe, expect, it } from "@effect/vitest"
import { judgeExistingVersion, MANAGED_BY_TAG, servesInPlace } from "../src/index.js"
import { judgedTags, judgedVersion } from "./fixtures.js"

const tags = judgedTags
const version = judgedVersion

describe("judgeExistingVersion (steps 3-4)", () => {
  it("the same certificate, enabled, with every forwarded tag is in place, adopt or not", () => {
    for (const adopt of [false, true]) {
      expect(judgeExistingVersion(version({}), "same", tags, adopt)._tag).toBe("InPlace")
      // Extra tags on the version do not matter.
      expect(judgeExistingVersion(version({ tags: { ...tags, extra: "x" } }), "same", tags, adopt)._tag).toBe(
        "InPlace",
      )
    }
  })

  it("another certificate, a disabled version or a missing tag is replaced when kvdeploy manages it", () => {
    for (const current of [
      version({ x5t: "other" }),
      version({ enabled: false }),
      version({ tags: { ...tags, team: "core" } }),
    ]) {
      expect(servesInPlace(current, "same", tags)).toBe(false)
      expect(judgeExistingVersion(current, "same", tags, false)).toEqual({ _tag: "Replace", adopting: false })
    }
  })

  it("a certificate kvdeploy does not manage is refused, or adopted when asked", () => {
    const foreign = version({ x5t: "other", tags: { owner: "someone" } })
    expect(judgeExistingVersion(foreign, "same", tags, false)._tag).toBe("NotManaged")
    expect(judgeExistingVersion(foreign, "same", tags, true)).toEqual({ _tag: "Replace", adopting: true })
    const otherValue = version({ x5t: "other", tags: { [MANAGED_BY_TAG]: "someone-else" } })
    expect(judgeExistingVersion(otherValue, "same", tags, false)._tag).toBe("NotManaged")
  })
})
