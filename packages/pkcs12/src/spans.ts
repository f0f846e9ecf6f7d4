/**
 * Trace options of this package's spans. Effect captures a stack trace for
 * every span by default (an Error per call, ~3% of a warm inspect); the span
 * names say where each one comes from.
 */
import type * as Tracer from "effect/Tracer"

export const noStackTrace: Tracer.TraceOptions = { captureStackTrace: false }
