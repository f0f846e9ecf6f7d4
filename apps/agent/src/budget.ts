/**
 * A vault's request budget, matched to Key Vault's throttling: per vault, per
 * window (10 s), a number of imports and, separately, a number of other
 * requests. Key Vault counts a request in a sliding window, so a permit is
 * returned one window after its request *finished* (the vault stamped it at
 * some point before that): however requests are spread, no window ever sees
 * more than the budget. A 429 closes the vault's gate for its Retry-After;
 * every request to that vault waits for the gate, requests to other vaults do
 * not. When the gate reopens, the requests that waited go back gradually (see
 * `Ramp`), not all at once.
 */
import * as Cause from "effect/Cause"
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
  /**
   * Wait until the vault's gate is open (no Retry-After pending) and, while it reopens, until a
   * request may go (see `Ramp`): an import and a read for a deployment that is likely to import
   * (`likelyImport`), a read only for one whose certificate is likely in place already (a
   * comparison does not wait behind the imports' ramp).
   */
  readonly awaitGate: (likelyImport: boolean) => Effect.Effect<void>
  /**
   * Close the gate for `ms` (a 429's Retry-After); when it reopens, requests of `kind` (the kind
   * throttled; every kind when not given) go back gradually (see `Ramp`).
   */
  readonly closeGate: (ms: number, kind?: RequestKind) => Effect.Effect<void>
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

/**
 * How a vault's gate reopens. A Retry-After says when the vault takes a request again, not how
 * many: Key Vault's window frees as its oldest requests leave it, often a few at a time, so the
 * requests that waited, all sent when the gate reopened, met 429s again (and closed the gate again
 * for everyone). Instead, as Key Vault's guidance asks (back off, then resume gradually), a 429
 * gives the gate a ramp: when the gate reopens, one request goes (a probe); each answer without a
 * 429 lets another go and one more with it, so the requests in flight double with each round trip
 * (TCP's slow start). The ramp is the throttled kind's (imports or other requests: each has a
 * window of its own at Key Vault); the other kind goes once the gate is open. A 429 closes the gate
 * again with a new ramp: a vault that still throttles when the gate reopens meets one request, not
 * all of them. The ramp ends (the gate is wholly open) when an answer finds no request waiting for a
 * place. A request interrupted before its answer gives its place back. The places are a semaphore
 * resized to the allowance. This ramps the requests in flight, not their pace, so it needs no guess
 * of the vault's real limit; it costs a vault that throttled a few round trips before all its
 * waiting requests are in flight again. A vault never throttled has no ramp.
 */
interface Ramp {
  /** Requests the ramp lets be in flight: `allowance` places. */
  readonly places: Semaphore.Semaphore
  allowance: number
  /** Requests waiting for a place. */
  waiting: number
}

/** Make a vault's budget (synchronously, so that a map of budgets can be filled without a race). */
export const makeVaultBudgetUnsafe = (vaultUrl: string, limits: BudgetLimits): VaultBudget => {
  const imports = Semaphore.makeUnsafe(limits.importsPerWindow)
  const others = Semaphore.makeUnsafe(limits.readsPerWindow)
  let gateUntil = 0
  // A ramp per kind: Key Vault counts imports and other requests in windows of their own, so only
  // the answers of the kind a 429 answered tell whether that window takes requests again.
  const ramps: Record<RequestKind, Ramp | undefined> = { import: undefined, other: undefined }
  const gateRemainingMs = Effect.map(monotonicMillis, (now) => Math.max(0, gateUntil - now))
  /**
   * Wait for the gate, then for a place on the ramp of the request's kind; the ramp it goes under
   * (undefined: the gate is wholly open to it). Only the waits are interruptible (by the caller's
   * `restore`): a place taken is always settled (`rampAnswered`). A gate never closed (or seen wholly
   * open since it was last closed) is open: no clock read. Every request passes here twice (before
   * its global permit and before it is sent).
   */
  const passGate = (
    kind: RequestKind,
    restore: <A>(wait: Effect.Effect<A>) => Effect.Effect<A>,
  ): Effect.Effect<Ramp | undefined> =>
    Effect.suspend(() =>
      gateUntil === 0 && ramps[kind] === undefined
        ? Effect.succeed(undefined)
        : Effect.flatMap(gateRemainingMs, (ms) => {
            if (ms > 0) return Effect.andThen(restore(Effect.sleep(ms)), passGate(kind, restore))
            gateUntil = 0
            const r = ramps[kind]
            if (r === undefined) return Effect.succeed(undefined)
            r.waiting++
            return Effect.flatMap(
              Effect.ensuring(
                restore(r.places.take(1)),
                Effect.sync(() => {
                  r.waiting--
                }),
              ),
              // A 429 closed the gate again while this waited (and woke the old ramp's waiters): wait again.
              () => (ramps[kind] === r ? Effect.succeed(r) : passGate(kind, restore)),
            )
          }),
    )
  /** A request that went under ramp `r` ended (`answered`: the vault answered it, without a 429). */
  const rampAnswered = (kind: RequestKind, r: Ramp | undefined, answered: boolean): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (r === undefined || ramps[kind] !== r) return Effect.void
      if (!answered) return Effect.asVoid(r.places.release(1))
      r.allowance++
      // Every request that came was let go, and one more could be: the gate is wholly open again.
      if (r.waiting === 0) {
        ramps[kind] = undefined
        return Effect.void
      }
      return Effect.andThen(r.places.resize(r.allowance), Effect.asVoid(r.places.release(1)))
    })
  const awaitPlace = (kind: RequestKind): Effect.Effect<void> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(passGate(kind, restore), (r) =>
        r === undefined || ramps[kind] !== r ? Effect.void : Effect.asVoid(r.places.release(1)),
      ),
    )
  // Before a deployment takes a global permit: a place on each ramp it is likely to use is waited
  // for, not kept (its requests wait for their own), so that a deployment does not take a global
  // permit while its vault's ramp is full.
  const awaitReads = awaitPlace("other")
  const awaitImportAndReads = Effect.andThen(awaitPlace("import"), awaitReads)
  const awaitGate = (likelyImport: boolean): Effect.Effect<void> =>
    likelyImport ? awaitImportAndReads : awaitReads
  const closeGate = (ms: number, kind?: RequestKind) =>
    Effect.flatMap(monotonicMillis, (now) =>
      Effect.suspend(() => {
        gateUntil = Math.max(gateUntil, now + ms)
        return Effect.forEach(
          kind === undefined ? (["import", "other"] as const) : [kind],
          (k) => {
            const old = ramps[k]
            ramps[k] = { places: Semaphore.makeUnsafe(1), allowance: 1, waiting: 0 }
            // Whoever waits on the old ramp wakes, finds it replaced, and waits for the gate again.
            return old === undefined ? Effect.void : old.places.resize(Number.MAX_SAFE_INTEGER)
          },
          { discard: true },
        )
      }),
    )
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
   * Run a request on a permit already taken, once the gate lets it go, in an uninterruptible region
   * (the waits and the request made interruptible by the caller's `restore`); the permit goes back a
   * window after it finished (at once after a 429).
   */
  const settle = <A, E extends { readonly _tag: string }, R>(
    kind: RequestKind,
    request: Effect.Effect<A, E, R>,
    restore: <AX, EX, RX>(effect: Effect.Effect<AX, EX, RX>) => Effect.Effect<AX, EX, RX>,
  ): Effect.Effect<A, E, R> =>
    Effect.flatMap(
      // Interrupted at the gate (nothing sent): the permit goes back at once.
      Effect.onInterrupt(passGate(kind, restore), () => lanes[kind].semaphore.release(1)),
      (r) =>
        Effect.flatMap(Effect.exit(restore(request)), (exit) => {
          if (exit._tag === "Failure") {
            const failure = exit.cause.reasons.find((reason) => reason._tag === "Fail")
            const retryAfter = failure?._tag === "Fail" ? retryAfterOf(failure.error) : undefined
            if (retryAfter !== undefined)
              // A throttled request does not count towards the window: close the gate (with a new
              // ramp), give the permit back now.
              return Effect.andThen(
                Effect.andThen(closeGate(retryAfter, kind), lanes[kind].semaphore.release(1)),
                exit,
              )
          }
          // Interrupted (a reload, shutdown) before its answer: it tells nothing of the vault.
          const answered = exit._tag === "Success" || !Cause.hasInterruptsOnly(exit.cause)
          return Effect.andThen(
            Effect.andThen(rampAnswered(kind, r, answered), lanes[kind].releaseLater),
            exit,
          )
        }),
    )
  const onPermit = <A, E extends { readonly _tag: string }, R>(
    kind: RequestKind,
    request: Effect.Effect<A, E, R>,
  ) => Effect.uninterruptibleMask((restore) => settle(kind, request, restore))
  const spend = <A, E extends { readonly _tag: string }, R>(
    kind: RequestKind,
    request: Effect.Effect<A, E, R>,
  ) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.andThen(restore(lanes[kind].semaphore.take(1)), settle(kind, request, restore)),
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
