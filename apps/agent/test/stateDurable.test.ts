/**
 * The state file's write is durable: the temporary file is synced, renamed over state.json, and
 * then the directory is synced (the rename is an entry of the directory, which the file's own
 * fsync does not keep: after a power loss the directory could still name the state before it).
 * The file system calls are observed, not answered: every call goes to node:fs/promises.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import { afterEach, expect, it, vi } from "vitest"

const calls: Array<string> = []

vi.mock("node:fs/promises", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs/promises")>()
  return {
    ...actual,
    open: async (...args: Parameters<typeof actual.open>) => {
      const handle = await actual.open(...args)
      const what = String(args[0])
      const sync = handle.sync.bind(handle)
      handle.sync = async () => {
        calls.push(`sync ${what}`)
        return sync()
      }
      return handle
    },
    rename: async (from: string, to: string) => {
      calls.push(`rename ${from} -> ${to}`)
      return actual.rename(from, to)
    },
  }
})

const { openStateStore } = await import("../src/state.js")

let dir: string | undefined
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  dir = undefined
})

it("syncs the temporary file, renames it over state.json, then syncs the directory", async () => {
  dir = mkdtempSync(join(tmpdir(), "kvdeploy-state-durable-"))
  const state = openStateStore(dir, () => {}, { now: () => Date.UTC(2026, 11, 1) })
  state.set("api", {
    outcome: "RolledBack",
    at: "2026-12-01T00:00:00.000Z",
    reason: "the verify did not prove the import",
    configFingerprint: "c".repeat(64),
    sourceFingerprint: "s".repeat(64),
    x5t: "x5t",
    versionId: "v1",
    notAfter: "2030-01-01T00:00:00.000Z",
    lastSuccessAt: "2026-12-01T00:00:00.000Z",
    held: true,
  })
  calls.length = 0
  await Effect.runPromise(state.flush)
  expect(state.writeFailing()).toBe(false)
  const path = join(dir, "state.json")
  const tmp = `${path}.tmp-${process.pid}`
  expect(calls).toEqual([`sync ${tmp}`, `rename ${tmp} -> ${path}`, `sync ${dir}`])
  expect(JSON.parse(readFileSync(path, "utf8")).deployments.api.outcome).toBe("RolledBack")
})
