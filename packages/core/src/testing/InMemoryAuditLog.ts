/** An AuditLog that keeps records in memory, for tests. */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { AuditRecord } from "../audit.js"
import { AuditLog } from "../ports/AuditLog.js"

export class AuditRecords extends Context.Service<
  AuditRecords,
  { readonly all: () => ReadonlyArray<AuditRecord>; readonly clear: () => void }
>()("@kvdeploy/core/test/AuditRecords") {}

export const InMemoryAuditLog = {
  layer: Layer.effectContext(
    Effect.sync(() => {
      const records: Array<AuditRecord> = []
      return Context.make(AuditLog, {
        record: (r: AuditRecord) => Effect.sync(() => void records.push(r)),
      }).pipe(
        Context.add(AuditRecords, {
          all: () => [...records],
          clear: () => {
            records.length = 0
          },
        }),
      )
    }),
  ),
} as const
