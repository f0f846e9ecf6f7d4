/**
 * Once the state directory's lock is lost (refuseStateWrites), no state store of the process writes
 * again: another agent may own the directory, and its records must not be replaced by this one's.
 * (A file of its own: the refusal is for the whole process.)
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import { afterAll, describe, expect, it } from "vitest"
import { openStateStore, refuseStateWrites } from "../src/state.js"

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-state-refused-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const record = (outcome: string) => ({
  outcome,
  at: "2026-12-01T00:00:00.000Z",
  reason: "test",
  configFingerprint: "c".repeat(64),
  sourceFingerprint: "s".repeat(64),
  x5t: "x5t",
  versionId: "v1",
  notAfter: "2030-01-01T00:00:00.000Z",
  lastSuccessAt: "2026-12-01T00:00:00.000Z",
  held: false,
})

describe("state writes after the lock is lost", () => {
  it("are refused with a warning, and the file keeps what was written before", async () => {
    const warnings: Array<string> = []
    const state = openStateStore(dir, (line) => warnings.push(line))
    state.set("a", record("Succeeded"))
    await Effect.runPromise(state.flush)
    const written = readFileSync(join(dir, "state.json"), "utf8")
    expect(written).toContain("Succeeded")

    refuseStateWrites("the state directory's lock was lost (test)")
    state.set("a", record("RolledBack"))
    await Effect.runPromise(state.flush)
    expect(readFileSync(join(dir, "state.json"), "utf8")).toBe(written)
    expect(warnings.at(-1)).toContain("not written: the state directory's lock was lost (test)")
  })
})
