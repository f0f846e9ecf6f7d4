/**
 * Structured logs: one JSON object per line on stdout, `{time, level, msg,
 * ...annotations}`. Log lines carry names, vault URLs, version ids,
 * thumbprints and reasons; key material is never passed to a log call (it
 * stays `Redacted` inside the deploy), and a `Redacted` value would print as
 * `<redacted>` anyway.
 */
import * as Cause from "effect/Cause"
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

export const jsonLineLogger = (write: (line: string) => void = (line) => process.stdout.write(line)) =>
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
    if (cause.reasons.length > 0) entry.cause = Cause.pretty(cause)
    write(`${JSON.stringify(entry)}\n`)
  })

export const layer = Logger.layer([jsonLineLogger()])
