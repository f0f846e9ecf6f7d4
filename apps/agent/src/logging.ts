/**
 * Structured logs: one JSON object per line on stdout, `{time, level, msg,
 * ...annotations}`. Log lines carry names, vault URLs, version ids,
 * thumbprints and reasons; key material is never passed to a log call (it
 * stays `Redacted` inside the deploy), and a `Redacted` value would print as
 * `<redacted>` anyway.
 */
import { shownIdentityText } from "@kvdeploy/credentials/tokenErrors"
import * as Cause from "effect/Cause"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as References from "effect/References"

const plain = (value: unknown): unknown => {
  if (Redacted.isRedacted(value)) return "<redacted>"
  if (value instanceof Date) return value.toISOString()
  if (value instanceof Uint8Array) return `<${value.byteLength} bytes>`
  if (Array.isArray(value)) return value.map(plain)
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = plain(v)
    return out
  }
  return value
}

/** Where the lines go: `write` takes one line; `flush` sends whatever is held, synchronously. */
export interface LineSink {
  readonly write: (line: string) => void
  readonly flush: () => void
}

/**
 * Lines to `stream` (stdout), written together once per turn of the event
 * loop (`setImmediate`): one `write` for the lines of every callback of the
 * turn instead of one per line (a cold pass logs a line per deployment as its
 * last response comes in, and a write to a pipe costs more of the main thread
 * than building the line). Lines keep their order; `flush` writes what is held
 * at once, and runs on process exit (a fatal error's exit included) and for
 * every fatal line, so an exit loses no line that a direct write would have
 * kept. Nothing else writes to stdout while the agent logs (main.ts writes
 * usage, version, schema and the check result without logging).
 */
export const tickBatchedSink = (
  stream: { write(text: string): unknown } = process.stdout,
  onExit: (flush: () => void) => void = (flush) => void process.on("exit", flush),
): LineSink => {
  let held = ""
  let scheduled = false
  const flush = () => {
    scheduled = false
    if (held === "") return
    const text = held
    held = ""
    stream.write(text)
  }
  onExit(flush)
  return {
    write: (line) => {
      held += line
      if (!scheduled) {
        scheduled = true
        setImmediate(flush)
      }
    },
    flush,
  }
}

export const jsonLineLogger = (
  write: (line: string) => void = (line) => process.stdout.write(line),
  flush?: () => void,
) =>
  Logger.make<unknown, void>(({ message, logLevel, date, fiber, cause }) => {
    const parts = Array.isArray(message) ? message : [message]
    const entry: Record<string, unknown> = {
      time: date.toISOString(),
      level: logLevel.toLowerCase(),
      msg: parts.map((p) => (typeof p === "string" ? p : JSON.stringify(plain(p)))).join(" "),
    }
    for (const [k, v] of Object.entries(fiber.getRef(References.CurrentLogAnnotations))) {
      if (v !== undefined) entry[k] = plain(v)
    }
    // A cause's text may quote what a library was given (a file's bytes, an answer's body, a token
    // request's secret): shown as identity error text is (shownIdentityText).
    if (cause.reasons.length > 0) entry.cause = shownIdentityText(Cause.pretty(cause))
    write(`${JSON.stringify(entry)}\n`)
    if (logLevel === "Fatal") flush?.()
  })

const levels: Readonly<Record<string, "Debug" | "Info" | "Warn" | "Error">> = {
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  warning: "Warn",
  error: "Error",
}

/**
 * The least level written: `KVDEPLOY_AGENT_LOG_LEVEL` (debug, info, warn, error), info without it.
 * `debug` adds the lines an operator rarely needs (each retry of a read that keeps failing, the
 * vault connections closed after a pass). Another value is said on the first line, and ignored.
 */
export const minimumLevelOf = (
  value: string | undefined,
): { readonly level: "Debug" | "Info" | "Warn" | "Error"; readonly unknown?: string } => {
  if (value === undefined || value.trim() === "") return { level: "Info" }
  const name = value.trim().toLowerCase()
  // Own keys only: a value such as "constructor" is not a level.
  const level = Object.hasOwn(levels, name) ? levels[name] : undefined
  return level === undefined ? { level: "Info", unknown: value } : { level }
}

/** The agent's logger: JSON lines on stdout, written once per tick (see `tickBatchedSink`). */
export const layer = Layer.suspend(() => {
  const sink = tickBatchedSink()
  const minimum = minimumLevelOf(process.env.KVDEPLOY_AGENT_LOG_LEVEL)
  if (minimum.unknown !== undefined)
    sink.write(
      `${JSON.stringify({
        time: new Date().toISOString(),
        level: "warn",
        msg: "KVDEPLOY_AGENT_LOG_LEVEL is not a log level: logging at info",
        value: minimum.unknown.slice(0, 40),
        fix: "set KVDEPLOY_AGENT_LOG_LEVEL to debug, info, warn or error, or unset it",
      })}\n`,
    )
  return Layer.merge(
    Logger.layer([jsonLineLogger(sink.write, sink.flush)]),
    Layer.succeed(References.MinimumLogLevel)(minimum.level),
  )
})
