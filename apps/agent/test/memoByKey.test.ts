/** One build per key: waiters share it, and a build stopped by its own caller's interruption leaves no waiter stuck. */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { describe, expect, it } from "vitest"
import { memoByKey } from "../src/memoByKey.js"

describe("memoByKey", () => {
  it("a build interrupted with its first caller is built again for the callers that waited for it", async () => {
    let builds = 0
    const build = Effect.andThen(
      Effect.sync(() => ++builds),
      Effect.as(Effect.sleep("50 millis"), "client"),
    )
    const memo = memoByKey<string, never>()
    const result = await Effect.runPromise(
      Effect.gen(function* () {
        // The first caller (a deployment a reload removes) starts the build and is interrupted in it.
        const first = yield* Effect.forkChild(memo("vault", build))
        yield* Effect.sleep("10 millis")
        // A second caller joins the build while it runs.
        const second = yield* Effect.forkChild(memo("vault", build))
        yield* Effect.sleep("10 millis")
        yield* Fiber.interrupt(first)
        const got = yield* Effect.timeoutOption(Fiber.join(second), "5 seconds")
        // Built once more, and kept: a later caller builds nothing.
        const later = yield* memo("vault", build)
        return { got, later }
      }),
    )
    expect(result.got).toEqual(Option.some("client"))
    expect(result.later).toBe("client")
    expect(builds).toBe(2)
  })

  it("a waiter interrupted together with the caller whose build it waits for starts no build", async () => {
    let builds = 0
    const build = Effect.andThen(
      Effect.sync(() => ++builds),
      Effect.as(Effect.sleep("200 millis"), "client"),
    )
    const memo = memoByKey<string, never>()
    await Effect.runPromise(
      Effect.gen(function* () {
        const first = yield* Effect.forkChild(memo("vault", build))
        yield* Effect.sleep("10 millis")
        const second = yield* Effect.forkChild(memo("vault", build))
        yield* Effect.sleep("10 millis")
        // Shutdown: every fiber interrupted at once.
        yield* Effect.all([Fiber.interrupt(first), Fiber.interrupt(second)], { concurrency: "unbounded" })
        yield* Effect.sleep("50 millis")
      }),
    )
    expect(builds).toBe(1)
  })

  it("shares one build between concurrent callers, and forgets a failed one", async () => {
    let builds = 0
    const memo = memoByKey<string, string>()
    const failing = Effect.andThen(
      Effect.sync(() => ++builds),
      Effect.flatMap(Effect.sleep("10 millis"), () => Effect.fail("no token")),
    )
    const both = await Effect.runPromise(
      Effect.all([Effect.flip(memo("k", failing)), Effect.flip(memo("k", failing))], { concurrency: 2 }),
    )
    expect(both).toEqual(["no token", "no token"])
    expect(builds).toBe(1)
    expect(await Effect.runPromise(memo("k", Effect.succeed("ok")))).toBe("ok")
  })

  it("retain forgets the keys it refuses; a forgotten build that fails leaves the key's new build in place", async () => {
    const memo = memoByKey<string, string>()
    const result = await Effect.runPromise(
      Effect.gen(function* () {
        const kept = yield* memo("kept", Effect.succeed("kept v1"))
        // A build still running when a reload forgets its key (a deploy of a removed deployment asked).
        const old = yield* Effect.forkChild(
          memo(
            "gone",
            Effect.flatMap(Effect.sleep("50 millis"), () => Effect.fail("no token")),
          ),
        )
        yield* Effect.sleep("10 millis")
        const forgotten = memo.retain((key) => key === "kept")
        // The key named again (a later reload): a new build, done before the old one fails.
        const rebuilt = yield* memo("gone", Effect.succeed("gone v2"))
        const oldEnd = yield* Effect.flip(Fiber.join(old))
        const afterOld = yield* memo("gone", Effect.succeed("gone v3"))
        const keptLater = yield* memo("kept", Effect.succeed("kept v2"))
        return { kept, forgotten, rebuilt, oldEnd, afterOld, keptLater }
      }),
    )
    expect(result).toEqual({
      kept: "kept v1",
      forgotten: 1,
      rebuilt: "gone v2",
      oldEnd: "no token",
      // The old build's failure did not remove the new build.
      afterOld: "gone v2",
      keptLater: "kept v1",
    })
  })
})
