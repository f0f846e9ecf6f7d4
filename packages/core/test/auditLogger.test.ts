/**
 * AuditLog.layerLogger, as docs/library.md says it: one log entry per record, the message
 * "kvdeploy deploy decision" with the record as JSON in its `audit` annotation, which a one-line
 * logger (Logger.consoleJson) prints on one line.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import { AuditLog, type AuditRecord } from "../src/index.js"

const record = {
  schema: "kvdeploy.audit/v1",
  outcome: "Rejected",
  decisions: ["preflight: rejected (1 problem(s))"],
  problems: [{ field: "material.key", message: "is bare bytes", fix: "wrap it\nwith Redacted.make" }],
} as unknown as AuditRecord

describe("AuditLog.layerLogger", () => {
  it.effect("one entry per record; with Logger.consoleJson's format, one line holding the record", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      // Logger.consoleJson is Logger.formatJson written to the console: its lines, kept here.
      const oneLine = Logger.map(Logger.formatJson, (line) => {
        lines.push(line)
      })
      yield* Effect.flatMap(Effect.service(AuditLog), (audit) => audit.record(record)).pipe(
        Effect.provide(AuditLog.layerLogger),
        Effect.provide(Logger.layer([oneLine])),
      )
      expect(lines).toHaveLength(1)
      const [line] = lines
      expect(line).not.toContain("\n")
      const entry = JSON.parse(line ?? "")
      expect(entry.message).toBe("kvdeploy deploy decision")
      expect(JSON.parse(entry.annotations.audit)).toEqual(record)
    }),
  )
})
