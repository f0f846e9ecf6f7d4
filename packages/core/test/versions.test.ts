/** The version list's helpers for reconciling: what may have been created since, and in what order. */
import { assert, describe, it } from "@effect/vitest"
import type { VaultVersion } from "../src/index.js"
import { byCreationLatestFirst, createdSince } from "../src/versions.js"

const version = (versionId: string, second: number): VaultVersion =>
  ({ versionId, createdAt: new Date(second * 1000) }) as VaultVersion

describe("createdSince", () => {
  it("every version from the snapshot's second on, but the snapshot itself", () => {
    const snapshot = version("s", 100)
    const listed = [version("a", 99), snapshot, version("b", 100), version("c", 101)]
    assert.deepStrictEqual(
      createdSince(listed, snapshot).map((v) => v.versionId),
      ["b", "c"],
    )
    assert.strictEqual(createdSince(listed, undefined).length, 4)
  })
})

describe("byCreationLatestFirst", () => {
  it("latest second first, whatever the list's order; one second by version id", () => {
    const listed = [version("m", 100), version("z", 300), version("b", 200), version("a", 200)]
    assert.deepStrictEqual(
      byCreationLatestFirst(listed).map((v) => v.versionId),
      ["z", "a", "b", "m"],
    )
  })
})
