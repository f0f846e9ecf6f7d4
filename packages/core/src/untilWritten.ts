/**
 * A deploy that an interruption (Ctrl+C, SIGTERM) stops only before it writes. Once an import or
 * a recovery is sent, the vault may hold a version nobody proved; stopping there would leave it
 * unverified, and a wrong one in place with no rollback. From its first write on, the deploy runs
 * to its end (verify, and rollback when the vault serves something wrong); before it, the deploy
 * is stopped at once, and nothing was written.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { Vault } from "./ports/Vault.js"

/** The vault operations that write: the first of them ends the deploy's interruptible part. */
export type VaultWrite = "importVersion" | "recoverDeleted"

export interface UntilWrittenOptions {
  /** Called once, as the first write starts. */
  readonly onWrite?: (operation: VaultWrite) => void
  /** Run when an interruption comes after the first write, before waiting for the program's end. */
  readonly onInterruptedAfterWrite?: Effect.Effect<void>
}

/**
 * Run `program` (a deploy, or anything that writes through the `Vault` it is given) so that an
 * interruption stops it only before its first write. After the first write, an interruption waits
 * for the program's end (its outcome reported, by the program itself: the effect still ends
 * interrupted), and the program runs on as if there were none.
 */
export const interruptibleUntilWritten = <A, E, R>(
  program: (vault: Vault["Service"]) => Effect.Effect<A, E, R>,
  vault: Vault["Service"],
  options: UntilWrittenOptions = {},
): Effect.Effect<A, E, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function* () {
      let written = false
      let stopping = false
      const write = <X, Y>(operation: VaultWrite, call: Effect.Effect<X, Y>): Effect.Effect<X, Y> =>
        Effect.suspend(() => {
          // Decided to stop before this write started: it is not sent.
          if (stopping) return Effect.interrupt
          if (!written) {
            written = true
            options.onWrite?.(operation)
          }
          return call
        })
      // The program runs in a fiber of its own that only this function interrupts (an interruptible
      // one: the program's own forks, its snapshot read, can be stopped with it).
      const child = yield* Effect.forkChild(
        program(
          Vault.of({
            ...vault,
            importVersion: (request) => write("importVersion", vault.importVersion(request)),
            recoverDeleted: (name) => write("recoverDeleted", vault.recoverDeleted(name)),
          }),
        ),
      )
      const ended = yield* Effect.exit(restore(Fiber.await(child)))
      if (Exit.isSuccess(ended)) return yield* ended.value
      // Interrupted. Before the first write: stop the program, nothing was written.
      if (!written) {
        stopping = true
        yield* Fiber.interrupt(child)
        return yield* Effect.interrupt
      }
      // After it: the program ends as it would have.
      if (options.onInterruptedAfterWrite !== undefined) yield* options.onInterruptedAfterWrite
      return yield* Fiber.join(child)
    }),
  )
