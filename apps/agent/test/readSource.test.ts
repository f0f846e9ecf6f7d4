/**
 * Reading a source's files: synchronous reads refuse anything but a regular
 * file (a FIFO would block the event loop, and with it every deployment).
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import { afterEach, describe, expect, it } from "vitest"
import { readSource } from "../src/source.js"

let dir: string | undefined
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  dir = undefined
})

const scratch = (): string => {
  dir = mkdtempSync(join(tmpdir(), "kvdeploy-source-"))
  return dir
}

describe("readSource", () => {
  it("reads regular files and fingerprints them", async () => {
    const d = scratch()
    writeFileSync(join(d, "a.crt"), "certificate bytes")
    const read = await Effect.runPromise(
      readSource({ _tag: "Pem", cert: join(d, "a.crt"), chain: undefined, key: undefined }),
    )
    expect(read.files.map((f) => [f.role, Buffer.from(f.bytes).toString()])).toEqual([
      ["cert", "certificate bytes"],
    ])
    expect(read.fingerprint).toMatch(/^[0-9a-f]{64}$/)
  })

  it("refuses a FIFO without blocking, naming the file and the fix", async () => {
    const d = scratch()
    const fifo = join(d, "cert.pipe")
    execFileSync("mkfifo", [fifo])
    const failed = await Effect.runPromise(
      Effect.flip(readSource({ _tag: "Pem", cert: fifo, chain: undefined, key: undefined })),
    )
    expect(failed._tag).toBe("SourceBroken")
    expect(failed.problems).toEqual([
      `cert ${fifo} is not a regular file (a directory, FIFO or device): point the source at the certificate file itself`,
    ])
  })

  it("refuses a directory and reports a missing file", async () => {
    const d = scratch()
    const failed = await Effect.runPromise(
      Effect.flip(readSource({ _tag: "Pem", cert: d, chain: undefined, key: join(d, "missing.key") })),
    )
    expect(failed.problems).toEqual([
      `cert ${d} is not a regular file (a directory, FIFO or device): point the source at the certificate file itself`,
      `key ${join(d, "missing.key")} does not exist`,
    ])
  })
})
