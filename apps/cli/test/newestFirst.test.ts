/**
 * Versions newest first, with Key Vault's whole-second creation times: what is known breaks a tie
 * (the caller's own order, the served version, a rollback and what it replaced), and a tie nothing
 * breaks is said to be of unknown order instead of being shown as if it were known.
 */
import { ROLLBACK_OF_TAG, type VaultVersion } from "@kvdeploy/core"
import { describe, expect, it } from "vitest"
import { newestFirst } from "../src/cli/versions.js"

const at = new Date("2026-12-01T10:00:00Z")
const version = (
  versionId: string,
  x5t: string,
  seconds = 0,
  tags: Record<string, string> = {},
): VaultVersion => ({
  versionId,
  x5t,
  serialHex: "01",
  enabled: true,
  createdAt: new Date(at.getTime() + seconds * 1000),
  tags,
})

// The demo's story, all in one second: v1, v2, v3 (rolled back), r4 (v2's material again).
const v1 = version("a-v1", "X1")
const v2 = version("d-v2", "X2")
const v3 = version("b-v3", "X3")
const r4 = version("c-r4", "X2", 0, { [ROLLBACK_OF_TAG]: "b-v3" })
const ids = (vs: ReadonlyArray<VaultVersion>) => vs.map((v) => v.versionId)

describe("newestFirst", () => {
  it("a rollback and the version it replaced, without the served version: known, in the vault's order or not", () => {
    for (const order of [
      [v2, v3, r4],
      [r4, v2, v3],
      [v3, r4, v2],
    ]) {
      const sorted = newestFirst(order)
      expect(ids(sorted)).toEqual(["c-r4", "b-v3", "d-v2"])
      expect(sorted.orderUnknown).toBe(false)
    }
  })

  it("orders by creation second first", () => {
    const sorted = newestFirst([version("a", "A", 0), version("c", "C", 2), version("b", "B", 1)])
    expect(ids(sorted)).toEqual(["c", "b", "a"])
    expect(sorted.orderUnknown).toBe(false)
  })

  it("within one second: the caller's own order settles everything", () => {
    const sorted = newestFirst([v1, v3, r4, v2], "c-r4", ["a-v1", "d-v2", "b-v3", "c-r4"])
    expect(ids(sorted)).toEqual(["c-r4", "b-v3", "d-v2", "a-v1"])
    expect(sorted.orderUnknown).toBe(false)
  })

  it("within one second, without it: the served version and the rollback's story order those they can; the rest is said to be unknown", () => {
    const sorted = newestFirst([v1, v3, r4, v2], "c-r4")
    // r4 is served; v3 is what r4 rolled back; v2 (r4's material) came before v3.
    expect(ids(sorted)[0]).toBe("c-r4")
    expect(ids(sorted).indexOf("d-v2")).toBeGreaterThan(ids(sorted).indexOf("b-v3"))
    // Nothing says whether v1 or v2 came first.
    expect(sorted.orderUnknown).toBe(true)
    // The served version is known to be the newest: `--limit 1` shows it in a known order.
    expect(sorted.firstUnknown).toBe(1)
  })

  it("firstUnknown: the newest versions before an unsettled tie are known, the tie's first place is not", () => {
    // Two whole seconds apart: c (second 2) is newest, then a tie nothing settles (second 1), then d.
    const sorted = newestFirst([
      version("a", "A", 1),
      version("d", "D", 0),
      version("c", "C", 2),
      version("b", "B", 1),
    ])
    expect(ids(sorted)[0]).toBe("c")
    expect(ids(sorted)[3]).toBe("d")
    expect(sorted.orderUnknown).toBe(true)
    expect(sorted.firstUnknown).toBe(1)
    // Without a tie, every place is known.
    expect(newestFirst([version("a", "A", 0), version("b", "B", 1)]).firstUnknown).toBe(2)
  })
})
