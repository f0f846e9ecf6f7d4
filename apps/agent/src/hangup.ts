/**
 * The agent's one SIGHUP listener, installed by bin.ts before anything else and kept for the
 * process's life. Node ends a process on a SIGHUP nobody listens for, and so does the state lock's
 * exit hook when it is the only listener: before the runtime's reload handler was installed (start-up)
 * or after it was removed (shutdown), a `systemctl reload` killed the agent without a word, an import
 * in flight and the state's last write with it. Whoever handles SIGHUP for a while (the lock wait,
 * the running agent's reloads) sets the handler here; a signal without one is remembered, for the
 * runtime to reload once when it starts, and logged.
 */
let handler: (() => void) | undefined
let pending = false

const log = (msg: string) =>
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level: "info", msg })}\n`)

/** Listen for SIGHUP for the rest of the process's life (bin.ts, once). */
export const listenForHangups = (): void => {
  // `--check` prints its report (one JSON document with --json) and exits: no log line of its own.
  const checking = process.argv.includes("--check")
  process.on("SIGHUP", () => {
    if (handler !== undefined) return handler()
    pending = true
    if (!checking)
      log(
        "SIGHUP while the agent is not running its passes (starting or stopping): a starting agent reloads once it runs; a stopping one ignores it",
      )
  })
}

/** Remember a SIGHUP its handler could not act on yet (the lock wait), for the runtime to reload once it runs. */
export const rememberHangup = (): void => {
  pending = true
}

/**
 * Handle SIGHUP with `onHangup` until the answer is called. `replayPending`: run it at once when a
 * SIGHUP came while nobody handled them (the runtime does, so that a reload sent during start-up is
 * not lost).
 */
export const handleHangups = (
  onHangup: () => void,
  options: { readonly replayPending?: boolean } = {},
): (() => void) => {
  handler = onHangup
  if (options.replayPending === true && pending) {
    pending = false
    onHangup()
  }
  return () => {
    if (handler === onHangup) handler = undefined
  }
}
