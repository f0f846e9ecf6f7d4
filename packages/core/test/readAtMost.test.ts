import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { readAtMost } from "../src/index.js"

const chunk = (size: number, byte: number) => new Uint8Array(size).fill(byte)

describe("readAtMost", () => {
  it.effect("reads a stream to its end when it gives at most the limit, in order", () =>
    Effect.gen(function* () {
      const read = yield* readAtMost(Stream.make(chunk(3, 1), chunk(2, 2)), 5)
      expect(read.over).toBe(false)
      expect([...read.bytes]).toEqual([1, 1, 1, 2, 2])
      const empty = yield* readAtMost(Stream.empty, 5)
      expect(empty).toEqual({ bytes: new Uint8Array(0), over: false })
    }),
  )

  it.effect("stops after the chunk that passes the limit, gives no bytes, and closes the stream", () =>
    Effect.gen(function* () {
      let pulled = 0
      let closed = false
      // An endless source, as /dev/zero is: the read must end on its own.
      const endless = Stream.forever(Stream.sync(() => chunk(4, 0))).pipe(
        Stream.tap(() => Effect.sync(() => pulled++)),
        Stream.ensuring(Effect.sync(() => (closed = true))),
      )
      const read = yield* readAtMost(endless, 10)
      expect(read).toEqual({ bytes: new Uint8Array(0), over: true })
      expect(pulled).toBe(3)
      expect(closed).toBe(true)
    }),
  )

  it.effect("passes the stream's failure through", () =>
    Effect.gen(function* () {
      const failed = yield* Effect.flip(readAtMost(Stream.fail("EACCES"), 10))
      expect(failed).toBe("EACCES")
    }),
  )
})
