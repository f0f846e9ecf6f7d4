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

/** Make a vault's budget (synchronously, so that a map of budgets can be filled without a race). */
export const makeVaultBudgetUnsafe = (vaultUrl: string, limits: BudgetLimits): VaultBudget => {
  const imports = Semaphore.makeUnsafe(limits.importsPerWindow)
  const others = Semaphore.makeUnsafe(limits.readsPerWindow)
  let gateUntil = 0
  const gateRemainingMs = Effect.map(Clock.currentTimeMillis, (now) => Math.max(0, gateUntil - now))
  const awaitGate: Effect.Effect<void> = Effect.flatMap(gateRemainingMs, (ms) =>
    ms <= 0
      ? Effect.void
      : Effect.andThen(
          Effect.sleep(ms),
          Effect.suspend(() => awaitGate),
        ),
  )
  const closeGate = (ms: number) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      gateUntil = Math.max(gateUntil, now + ms)
    })
  /** Run a request on a permit already taken; the permit goes back a window after it finished (at once after a 429). */
  const onPermit = <A, E extends { readonly _tag: string }, R>(
    semaphore: Semaphore.Semaphore,
    request: Effect.Effect<A, E, R>,
  ) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        const exit = yield* Effect.exit(restore(Effect.andThen(awaitGate, request)))
        if (exit._tag === "Failure") {
          const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
          const retryAfter = failure?._tag === "Fail" ? retryAfterOf(failure.error) : undefined
          if (retryAfter !== undefined) {
            // A throttled request does not count towards the window: close the gate, give the permit back now.
            yield* closeGate(retryAfter)
            yield* semaphore.release(1)
            return yield* exit
          }
        }
        yield* Effect.forkDetach(Effect.andThen(Effect.sleep(limits.windowMs), semaphore.release(1)))
        return yield* exit
      }),
    )
  const spend = <A, E extends { readonly _tag: string }, R>(
    kind: RequestKind,
    request: Effect.Effect<A, E, R>,
  ) => {
    const semaphore = kind === "import" ? imports : others
    return Effect.uninterruptibleMask((restore) =>
      Effect.andThen(restore(semaphore.take(1)), onPermit(semaphore, restore(request))),
    )
  }
  const reserveImport = Effect.map(imports.take(1), (): ImportReservation => ({ state: "reserved" }))
  const spendReserved = <A, E extends { readonly _tag: string }, R>(
    reservation: ImportReservation,
    request: Effect.Effect<A, E, R>,
  ) =>
    Effect.suspend(() => {
      if (reservation.state !== "reserved") return spend("import", request)
      reservation.state = "used"
      return onPermit(imports, request)
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
