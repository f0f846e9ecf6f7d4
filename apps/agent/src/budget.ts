/**
 * A vault's request budget, matched to Key Vault's throttling: per vault, per
 * window (10 s), a number of imports and, separately, a number of other
 * requests. Key Vault counts a request in a sliding window, so a permit is
 * returned one window after its request *finished* (the vault stamped it at
 * some point before that): however requests are spread, no window ever sees
 * more than the budget. A 429 closes the vault's gate for its Retry-After;
 * every request to that vault waits for the gate, requests to other vaults do
 * not.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Semaphore from "effect/Semaphore"

export type RequestKind = "import" | "other"

export interface BudgetLimits {
  readonly importsPerWindow: number
  readonly readsPerWindow: number
  readonly windowMs: number
}

export interface VaultBudget {
  readonly vaultUrl: string
  /** Run one request within the budget (waits for a permit and for the gate). */
  readonly spend: <A, E extends { readonly _tag: string }, R>(
    kind: RequestKind,
    request: Effect.Effect<A, E, R>,
  ) => Effect.Effect<A, E, R>
  /**
   * Take an import permit ahead of the deploy that will use it, so that the
   * wait for the import window happens before the deploy holds a global
   * permit (and with a snapshot read just before the import).
   */
  readonly reserveImport: Effect.Effect<ImportReservation>
  /** Run the import on the reserved permit (a second import, a rollback, takes its own). */
  readonly spendReserved: <A, E extends { readonly _tag: string }, R>(
    reservation: ImportReservation,
    request: Effect.Effect<A, E, R>,
  ) => Effect.Effect<A, E, R>
  /** Give back a reservation no import used. */
  readonly releaseUnused: (reservation: ImportReservation) => Effect.Effect<void>
  /** Wait until the vault's gate is open (no Retry-After pending). */
  readonly awaitGate: Effect.Effect<void>
  /** Close the gate for `ms` (a 429's Retry-After). */
  readonly closeGate: (ms: number) => Effect.Effect<void>
  /** Milliseconds until the gate opens (0 when open). */
  readonly gateRemainingMs: Effect.Effect<number>
}

const retryAfterOf = (error: unknown): number | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const e = error as { readonly _tag?: unknown; readonly retryAfterMs?: unknown }
  if (e._tag !== "VaultThrottled") return undefined
  return typeof e.retryAfterMs === "number" ? e.retryAfterMs : 1000
}

export interface ImportReservation {
  state: "reserved" | "used" | "released"
}

/**
 * Milliseconds on the monotonic clock: windows and Retry-After gates are spans of time, and a wall
 * clock set back (an NTP step, a resumed VM) would hold every permit given back, and a closed gate,
 * for as long as the jump.
 */
const monotonicMillis: Effect.Effect<number> = Effect.map(Clock.monotonicTimeNanos, (nanos) =>
  Number(nanos / 1_000_000n),
)

/** Make a vault's budget (synchronously, so that a map of budgets can be filled without a race). */
export const makeVaultBudgetUnsafe = (vaultUrl: string, limits: BudgetLimits): VaultBudget => {
  const imports = Semaphore.makeUnsafe(limits.importsPerWindow)
  const others = Semaphore.makeUnsafe(limits.readsPerWindow)
  let gateUntil = 0
  const gateRemainingMs = Effect.map(monotonicMillis, (now) => Math.max(0, gateUntil - now))
  // A gate never closed (or seen open since it was last closed) is open: no clock read. Every
  // request passes here twice (before its global permit and before it is sent).
  const awaitGate: Effect.Effect<void> = Effect.suspend(() =>
    gateUntil === 0
      ? Effect.void
      : Effect.flatMap(gateRemainingMs, (ms) => {
          if (ms > 0) return Effect.andThen(Effect.sleep(ms), awaitGate)
          gateUntil = 0
          return Effect.void
        }),
  )
  const closeGate = (ms: number) =>
    Effect.map(monotonicMillis, (now) => {
      gateUntil = Math.max(gateUntil, now + ms)
    })
  /**
   * Permits to give back one window after their request finished: a queue of
   * due times per semaphore (in order: the monotonic clock never goes back) and one
   * fiber that sleeps until the earliest is due, only while the queue is not
   * empty. Not a sleeping fiber per request: a vault at Key Vault's read
   * window has 4,000 requests in a window.
   */
  const releaser = (semaphore: Semaphore.Semaphore) => {
    let due: Array<number> = []
    let head = 0
    let running = false
    const drain: Effect.Effect<void> = Effect.gen(function* () {
      while (head < due.length) {
        const now = yield* monotonicMillis
        const next = due[head] as number
        if (next > now) {
          yield* Effect.sleep(next - now)
          continue
        }
        let n = 0
        while (head < due.length && (due[head] as number) <= now) {
          head++
          n++
        }
        if (head === due.length) {
          due = []
          head = 0
        } else if (head > 1024) {
          due = due.slice(head)
          head = 0
        }
        yield* semaphore.release(n)
      }
      running = false
    })
    return Effect.flatMap(monotonicMillis, (now) =>
      Effect.suspend(() => {
        due.push(now + limits.windowMs)
        if (running) return Effect.void
        running = true
        return Effect.asVoid(Effect.forkDetach(drain))
      }),
    )
  }
  const lanes = {
    import: { semaphore: imports, releaseLater: releaser(imports) },
    other: { semaphore: others, releaseLater: releaser(others) },
  } as const
  /**
   * Run a request (made interruptible by the caller's `restore`) on a permit already taken, in an
   * uninterruptible region; the permit goes back a window after it finished (at once after a 429).
   */
  const settle = <A, E extends { readonly _tag: string }, R>(
    kind: RequestKind,
    sent: Effect.Effect<A, E, R>,
  ): Effect.Effect<A, E, R> =>
    Effect.flatMap(Effect.exit(sent), (exit) => {
      if (exit._tag === "Failure") {
        const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
        const retryAfter = failure?._tag === "Fail" ? retryAfterOf(failure.error) : undefined
        if (retryAfter !== undefined)
          // A throttled request does not count towards the window: close the gate, give the permit back now.
          return Effect.andThen(Effect.andThen(closeGate(retryAfter), lanes[kind].semaphore.release(1)), exit)
      }
      return Effect.andThen(lanes[kind].releaseLater, exit)
    })
  const onPermit = <A, E extends { readonly _tag: string }, R>(
    kind: RequestKind,
    request: Effect.Effect<A, E, R>,
  ) => Effect.uninterruptibleMask((restore) => settle(kind, restore(Effect.andThen(awaitGate, request))))
  const spend = <A, E extends { readonly _tag: string }, R>(
    kind: RequestKind,
    request: Effect.Effect<A, E, R>,
  ) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.andThen(
        restore(lanes[kind].semaphore.take(1)),
        settle(kind, restore(Effect.andThen(awaitGate, request))),
      ),
    )
  const reserveImport = Effect.map(imports.take(1), (): ImportReservation => ({ state: "reserved" }))
  const spendReserved = <A, E extends { readonly _tag: string }, R>(
    reservation: ImportReservation,
    request: Effect.Effect<A, E, R>,
  ) =>
    Effect.suspend(() => {
      if (reservation.state !== "reserved") return spend("import", request)
      reservation.state = "used"
      return onPermit("import", request)
    })
  const releaseUnused = (reservation: ImportReservation) =>
    Effect.suspend(() => {
      if (reservation.state !== "reserved") return Effect.void
      reservation.state = "released"
      return Effect.asVoid(imports.release(1))
    })
  return {
    vaultUrl,
    spend,
    reserveImport,
    spendReserved,
    releaseUnused,
    awaitGate,
    closeGate,
    gateRemainingMs,
  }
}

export const makeVaultBudget = (vaultUrl: string, limits: BudgetLimits): Effect.Effect<VaultBudget> =>
  Effect.sync(() => makeVaultBudgetUnsafe(vaultUrl, limits))
