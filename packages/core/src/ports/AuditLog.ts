/**
 * The AuditLog port: one structured record per deploy, written when the deploy
 * reaches its outcome. Records hold version ids, thumbprints, tags and reasons;
 * never key material or PFX bytes.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { AuditRecord } from "../audit.js"

export class AuditLog extends Context.Service<
  AuditLog,
  {
    readonly record: (record: AuditRecord) => Effect.Effect<void>
  }
>()("@kvdeploy/core/AuditLog") {
  /**
   * Writes each record as one log entry: `Effect.logInfo("kvdeploy deploy decision")` with the
   * record as JSON in its `audit` annotation. Effect's default logger prints the entry over three
   * lines; a one-line logger (`Logger.consoleJson`, `Logger.consoleLogFmt`) prints it on one.
   */
  static readonly layerLogger: Layer.Layer<AuditLog> = Layer.succeed(AuditLog, {
    record: (record) =>
      Effect.logInfo("kvdeploy deploy decision").pipe(Effect.annotateLogs({ audit: JSON.stringify(record) })),
  })
  /** Drops every record. */
  static readonly layerNoop: Layer.Layer<AuditLog> = Layer.succeed(AuditLog, { record: () => Effect.void })
}
