/** The per-vault budget under the TestClock: sliding windows counted from completion, Retry-After gates. */
import { describe, expect, it } from "@effect/vitest"
import { VaultThrottled } from "@kvdeploy/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/testing/TestClock"
import { makeVaultBudget } from "../src/budget.js"

const limits = { importsPerWindow: 2, readsPerWindow: 3, windowMs: 10_000 }

describe("VaultBudget", () => {
  it.effect("lets no more imports into a window than the budget, counting from each request's end", () =>
    Effect.gen(function* () {
      const budget = yield* makeVaultBudget("https://kv.example", limits)
      const started: Array<number> = []
      const request = (ms: number) =>
        Effect.gen(function* () {
          started.push(yield* Clock.currentTimeMillis)
          yield* Effect.sleep(ms)
        })
      const fiber = yield* Effect.forkChild(
        Effect.forEach([0, 1, 2, 3, 4], () => budget.spend("import", request(1000)), {
          concurrency: "unbounded",
        }),
      )
      yield* TestClock.adjust(60_000)
      yield* Fiber.join(fiber)
      // Two at once; the next two one window after the first two finished (1 s + 10 s), and so on.
      expect(started).toEqual([0, 0, 11_000, 11_000, 22_000])
    }),
  )

  it.effect("keeps imports and other requests apart", () =>
    Effect.gen(function* () {
      const budget = yield* makeVaultBudget("https://kv.example", limits)
      const started: Array<string> = []
      const at = (kind: "import" | "other", i: number) =>
        budget.spend(
          kind,
          Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => started.push(`${kind}${i}@${t}`))),
        )
      const fiber = yield* Effect.forkChild(
        Effect.all(
          [at("import", 0), at("import", 1), at("import", 2), at("other", 0), at("other", 1), at("other", 2)],
          { concurrency: "unbounded" },
        ),
      )
      yield* TestClock.adjust(30_000)
      yield* Fiber.join(fiber)
      expect(started.filter((s) => s.endsWith("@0")).sort()).toEqual([
        "import0@0",
        "import1@0",
        "other0@0",
        "other1@0",
        "other2@0",
      ])
      expect(started).toContain("import2@10000")
    }),
  )

  it.effect("a 429 closes the vault's gate for Retry-After, and gives its permit back", () =>
    Effect.gen(function* () {
      const budget = yield* makeVaultBudget("https://kv.example", limits)
      const throttled = budget.spend(
        "other",
        Effect.fail(new VaultThrottled({ operation: "getLatest", detail: "429", retryAfterMs: 5000 })),
      )
      const result = yield* Effect.result(throttled)
      expect(result._tag).toBe("Failure")
      expect(yield* budget.gateRemainingMs).toBe(5000)
      const fiber = yield* Effect.forkChild(budget.spend("other", Clock.currentTimeMillis))
      yield* TestClock.adjust(4999)
      expect(fiber.pollUnsafe()).toBeUndefined()
      yield* TestClock.adjust(1)
      expect(yield* Fiber.join(fiber)).toBe(5000)
      // The throttled request's permit came back at once: three more "other" requests fit in this window? two do (one spent at 5000).
      const more = yield* Effect.forkChild(
        Effect.all([budget.spend("other", Effect.void), budget.spend("other", Effect.void)], {
          concurrency: "unbounded",
        }),
      )
      yield* TestClock.adjust(0)
      expect((yield* Fiber.join(more)).length).toBe(2)
    }),
  )

  it.effect("a reserved import permit is used by the import, or given back when no import came", () =>
    Effect.gen(function* () {
      const budget = yield* makeVaultBudget("https://kv.example", limits)
      const a = yield* budget.reserveImport
      const b = yield* budget.reserveImport
      yield* budget.releaseUnused(b)
      yield* budget.spendReserved(a, Effect.void)
      // a's permit is out for a window, b's is back: one import goes now, the next waits for a's window.
      const started: Array<number> = []
      const fiber = yield* Effect.forkChild(
        Effect.forEach(
          [0, 1],
          () =>
            budget.spend(
              "import",
              Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => started.push(t))),
            ),
          { concurrency: "unbounded" },
        ),
      )
      yield* TestClock.adjust(20_000)
      yield* Fiber.join(fiber)
      expect(started).toEqual([0, 10_000])
    }),
  )

  // The live clock with its wall time set back a minute after the first request (an NTP step, a
  // resumed VM); its monotonic time and its timers go on as they do.
  it.live("a wall clock set back holds neither a permit given back nor a Retry-After gate", () =>
    Effect.gen(function* () {
      const live = yield* Clock.clockWith(Effect.succeed)
      let offsetMs = 0
      const setBack: Clock.Clock = {
        monotonicTimeNanosUnsafe: () => live.monotonicTimeNanosUnsafe(),
        monotonicTimeNanos: live.monotonicTimeNanos,
        sleep: (duration) => live.sleep(duration),
        currentTimeMillisUnsafe: () => live.currentTimeMillisUnsafe() + offsetMs,
        currentTimeMillis: Effect.sync(() => live.currentTimeMillisUnsafe() + offsetMs),
        currentTimeNanosUnsafe: () => live.currentTimeNanosUnsafe() + BigInt(offsetMs) * 1_000_000n,
        currentTimeNanos: Effect.sync(() => live.currentTimeNanosUnsafe() + BigInt(offsetMs) * 1_000_000n),
      }
      const outcome = yield* Effect.gen(function* () {
        const budget = yield* makeVaultBudget("https://kv.example", {
          importsPerWindow: 1,
          readsPerWindow: 1,
          windowMs: 200,
        })
        // The only read permit, due back 0.2 s after this request; then a 429 asking for 0.2 s.
        yield* budget.spend("other", Effect.void)
        yield* Effect.exit(
          budget.spend(
            "import",
            Effect.fail(
              new VaultThrottled({ operation: "importVersion", detail: "throttled", retryAfterMs: 200 }),
            ),
          ),
        )
        offsetMs = -60_000
        const read = yield* Effect.timeoutOption(budget.spend("other", Effect.succeed("read")), "10 seconds")
        const gate = yield* Effect.timeoutOption(budget.awaitGate(true), "10 seconds")
        return { read, gate }
      }).pipe(Effect.provideService(Clock.Clock, setBack))
      expect(outcome.read._tag, "the permit is back one window after its request").toBe("Some")
      expect(outcome.gate._tag, "the gate opens after its Retry-After").toBe("Some")
    }),
  )

  /**
   * A vault whose window takes fewer requests than the budget (a limit lower than the agent's, or
   * other clients of the vault): Key Vault's sliding window as the emulator keeps it, counting each
   * request at its arrival and answering one over the limit with a 429 whose Retry-After (whole
   * seconds) ends when the window's oldest request leaves it. Each answer takes 100 ms.
   */
  const windowedVault = (limit: number, windowMs: number) => {
    const stamps: Array<number> = []
    const arrivals: Array<{ readonly at: number; readonly status: 200 | 429; readonly reopening: boolean }> =
      []
    let closed = false
    const request = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      while (stamps.length > 0 && (stamps[0] as number) <= now - windowMs) stamps.shift()
      const reopening = closed && now > 0
      closed = false
      if (stamps.length >= limit) {
        arrivals.push({ at: now, status: 429, reopening })
        const retryAfterMs = Math.ceil(((stamps[0] as number) + windowMs - now) / 1000) * 1000
        yield* Effect.sleep(100)
        // Its answer closes the agent's gate (the budget sees the 429).
        closed = true
        return yield* new VaultThrottled({ operation: "importVersion", detail: "429", retryAfterMs })
      }
      stamps.push(now)
      arrivals.push({ at: now, status: 200, reopening })
      yield* Effect.sleep(100)
    })
    return { request, arrivals }
  }

  it.effect(
    "a gate that reopens lets one request go first, then more as they are answered without a 429",
    () =>
      Effect.gen(function* () {
        const budget = yield* makeVaultBudget("https://kv.example", {
          importsPerWindow: 20,
          readsPerWindow: 20,
          windowMs: 10_000,
        })
        // The vault takes two a window: the first two at 0, two more when they leave its window.
        const vault = windowedVault(2, 10_000)
        // Twelve deployments' imports at once, each sent again (through the gate) after its 429.
        const fiber = yield* Effect.forkChild(
          Effect.forEach(
            Array.from({ length: 12 }, (_, i) => i),
            () =>
              budget
                .spend("import", vault.request)
                .pipe(Effect.retry({ while: (e) => e._tag === "VaultThrottled", times: 100 })),
            { concurrency: "unbounded" },
          ),
        )
        yield* TestClock.adjust(300_000)
        yield* Fiber.join(fiber)
        const arrivals = vault.arrivals
        expect(arrivals.filter((a) => a.status === 200)).toHaveLength(12)
        // The first burst (before any 429) is the budget's: all twelve at 0, two taken, ten throttled.
        expect(arrivals.filter((a) => a.at === 0)).toHaveLength(12)
        // Each reopening (the first request after a 429 closed the gate) goes alone.
        const reopenings = arrivals.filter((a) => a.reopening)
        expect(reopenings.length).toBeGreaterThan(0)
        for (const r of reopenings)
          expect(
            arrivals.filter((a) => a.at === r.at),
            `requests sent when the gate reopened at ${r.at} ms`,
          ).toHaveLength(1)
        // And the requests go back gradually: at any arrival, the requests in flight (each answered
        // 100 ms after it arrived) are at most one more than the answers without a 429 since the last
        // reopening (one more place per such answer).
        let reopenedAt = 0
        for (const a of arrivals.filter((x) => x.at > 0)) {
          if (a.reopening) reopenedAt = a.at
          const inFlight = arrivals.filter((x) => x.at <= a.at && x.at + 100 > a.at).length
          const answered = arrivals.filter(
            (x) => x.status === 200 && x.at >= reopenedAt && x.at + 100 <= a.at,
          ).length
          expect(inFlight, `requests in flight at ${a.at} ms`).toBeLessThanOrEqual(1 + answered)
        }
        // Sent all at once at each reopening, 8 + 6 + 4 + 2 = 20 requests met a 429 after the first
        // burst; ramped, 11 do (docs/agent.md gives both).
        expect(arrivals.filter((x) => x.at > 0 && x.status === 429).length).toBeLessThanOrEqual(11)
      }),
  )

  it.effect("a request interrupted while the gate reopens gives its place back to the next", () =>
    Effect.gen(function* () {
      const budget = yield* makeVaultBudget("https://kv.example", limits)
      yield* budget.closeGate(1000)
      // The first request after the reopening never answers (until it is interrupted: a reload).
      const probe = yield* Effect.forkChild(budget.spend("other", Effect.never))
      yield* TestClock.adjust(0)
      const next = yield* Effect.forkChild(budget.spend("other", Clock.currentTimeMillis))
      const deployment = yield* Effect.forkChild(budget.awaitGate(true))
      yield* TestClock.adjust(5000)
      // The gate reopened at 1000, but its one place is the unanswered request's.
      expect(next.pollUnsafe(), "a request waiting for its place").toBeUndefined()
      expect(deployment.pollUnsafe(), "a deployment waiting for a place").toBeUndefined()
      // A waiter is interrupted too (shutdown): it leaves nothing behind.
      const leaving = yield* Effect.forkChild(budget.spend("other", Effect.void))
      yield* TestClock.adjust(0)
      yield* Fiber.interrupt(leaving)
      yield* Fiber.interrupt(probe)
      expect(yield* Fiber.join(next)).toBe(5000)
      yield* Fiber.join(deployment)
    }),
  )

  it.effect("a 429 to an import ramps the imports when the gate reopens; other requests go at once", () =>
    Effect.gen(function* () {
      const budget = yield* makeVaultBudget("https://kv.example", limits)
      yield* budget.closeGate(1000, "import")
      // The import sent when the gate reopens is not answered yet.
      const probe = yield* Effect.forkChild(budget.spend("import", Effect.never))
      const nextImport = yield* Effect.forkChild(budget.spend("import", Clock.currentTimeMillis))
      const reads = yield* Effect.forkChild(
        Effect.all(
          [0, 1, 2].map(() => budget.spend("other", Clock.currentTimeMillis)),
          { concurrency: "unbounded" },
        ),
      )
      yield* TestClock.adjust(1000)
      // The reads went as the gate opened: their window is not the one that throttled.
      expect(yield* Fiber.join(reads)).toEqual([1000, 1000, 1000])
      expect(nextImport.pollUnsafe(), "an import waiting for the first one's answer").toBeUndefined()
      yield* Fiber.interrupt(probe)
      expect(yield* Fiber.join(nextImport)).toBe(1000)
    }),
  )

  it.effect(
    "while the imports ramp, a deployment likely in place passes the gate; one likely to import waits for an import place",
    () =>
      Effect.gen(function* () {
        const budget = yield* makeVaultBudget("https://kv.example", limits)
        yield* budget.closeGate(1000, "import")
        // The import sent when the gate reopens is not answered yet: the imports' one place is its.
        const probe = yield* Effect.forkChild(budget.spend("import", Effect.never))
        const comparison = yield* Effect.forkChild(
          Effect.andThen(budget.awaitGate(false), Clock.currentTimeMillis),
        )
        const deploy = yield* Effect.forkChild(
          Effect.andThen(budget.awaitGate(true), Clock.currentTimeMillis),
        )
        yield* TestClock.adjust(1000)
        expect(comparison.pollUnsafe(), "a likely comparison through the gate as it reopened").toBeDefined()
        expect(yield* Fiber.join(comparison)).toBe(1000)
        yield* TestClock.adjust(4000)
        expect(deploy.pollUnsafe(), "a likely import waiting for the first import's answer").toBeUndefined()
        yield* Fiber.interrupt(probe)
        expect(yield* Fiber.join(deploy)).toBe(5000)
      }),
  )

  it.effect("a request interrupted while it waits at a closed gate gives its window permit back", () =>
    Effect.gen(function* () {
      const budget = yield* makeVaultBudget("https://kv.example", {
        importsPerWindow: 1,
        readsPerWindow: 1,
        windowMs: 10_000,
      })
      yield* budget.closeGate(1000)
      // Took the one read permit, then waits for the gate: a reload interrupts it.
      const waiter = yield* Effect.forkChild(budget.spend("other", Effect.void))
      yield* TestClock.adjust(10)
      yield* Fiber.interrupt(waiter)
      const next = yield* Effect.forkChild(budget.spend("other", Clock.currentTimeMillis))
      yield* TestClock.adjust(60_000)
      expect(next.pollUnsafe(), "the next read ran on the permit given back").toBeDefined()
      // A reserved import interrupted at the gate gives its permit back too.
      yield* budget.closeGate(1000)
      const reservation = yield* budget.reserveImport
      const importing = yield* Effect.forkChild(budget.spendReserved(reservation, Effect.void))
      yield* TestClock.adjust(10)
      yield* Fiber.interrupt(importing)
      yield* budget.releaseUnused(reservation)
      const nextImport = yield* Effect.forkChild(budget.spend("import", Clock.currentTimeMillis))
      yield* TestClock.adjust(60_000)
      expect(nextImport.pollUnsafe(), "the next import ran on the permit given back").toBeDefined()
    }),
  )
})
