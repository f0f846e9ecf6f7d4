/**
 * The request log keeps the newest `limit` entries, in order, through many
 * times the limit (its front is dropped lazily and compacted in batches).
 */
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { RequestLog, type RequestLogEntry } from "../src/requestLog.js"

const entry = (log: RequestLog, status = 200): RequestLogEntry => ({
  seq: log.nextSeq(),
  time: 0,
  vault: "v",
  operation: "getLatest",
  method: "GET",
  path: "/certificates/a/",
  query: "",
  status,
  latencyMs: 0,
  challenge: false,
})

describe("RequestLog", () => {
  it("keeps exactly the newest `limit` entries in order, whatever the number added", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 200 }), (limit, added) => {
        const log = new RequestLog(limit)
        for (let i = 0; i < added; i++) log.add(entry(log))
        const seqs = log.entries().map((e) => e.seq)
        const first = Math.max(1, added - limit + 1)
        expect(seqs).toEqual(Array.from({ length: added - first + 1 }, (_, i) => first + i))
        expect(log.count()).toBe(seqs.length)
        expect(log.mark()).toBe(added)
      }),
    )
  })

  it("filters by status and `since` over the kept entries, and clear empties it", () => {
    const log = new RequestLog(4)
    for (let i = 0; i < 10; i++) log.add(entry(log, i % 2 === 0 ? 200 : 404))
    expect(log.entries({ status: 404 }).map((e) => e.seq)).toEqual([8, 10])
    expect(log.count({ since: 8 })).toBe(2)
    log.clear()
    expect(log.count()).toBe(0)
    log.add(entry(log))
    expect(log.entries().map((e) => e.seq)).toEqual([11])
  })
})
