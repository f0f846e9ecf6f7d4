/**
 * Reading a source's files: synchronous reads refuse anything but a regular
 * file (a FIFO would block the event loop, and with it every deployment).
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import { afterEach, describe, expect, it } from "vitest"
import { readSource, type SourceStamp, unchangedSince } from "../src/source.js"

/** Every scratch directory of the running test (a test may make several), removed after it. */
const dirs: Array<string> = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

const scratch = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "kvdeploy-source-"))
  dirs.push(dir)
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

  it("reads every byte of an empty file, a large one and each file of a source, stamped with its size", async () => {
    const d = scratch()
    const large = Buffer.alloc(3 * 1024 * 1024 + 17)
    for (let i = 0; i < large.length; i++) large[i] = (i * 31 + 7) & 0xff
    writeFileSync(join(d, "empty.crt"), "")
    writeFileSync(join(d, "large.pem"), large)
    writeFileSync(join(d, "key.pem"), "key bytes")
    const read = await Effect.runPromise(
      readSource({
        _tag: "Pem",
        cert: join(d, "empty.crt"),
        chain: join(d, "large.pem"),
        key: join(d, "key.pem"),
      }),
    )
    expect(read.files.map((f) => [f.role, f.bytes.byteLength])).toEqual([
      ["cert", 0],
      ["chain", large.length],
      ["key", 9],
    ])
    expect(Buffer.compare(Buffer.from(read.files[1]?.bytes ?? []), large)).toBe(0)
    expect(Buffer.from(read.files[2]?.bytes ?? []).toString()).toBe("key bytes")
    expect(read.stamp.files.map((f) => f.size)).toEqual([0, large.length, 9])
    // The fingerprint covers role, length and bytes of each file, in order.
    const hash = createHash("sha256")
    for (const [role, bytes] of [
      ["cert", Buffer.alloc(0)],
      ["chain", large],
      ["key", Buffer.from("key bytes")],
    ] as const) {
      hash.update(`${role}\0${bytes.length}\0`)
      hash.update(bytes)
    }
    expect(read.fingerprint).toBe(hash.digest("hex"))
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

  it("a missing chain file breaks the source (a leaf without its intermediates is never deployed)", async () => {
    const d = scratch()
    writeFileSync(join(d, "cert.pem"), "certificate bytes")
    writeFileSync(join(d, "key.pem"), "key bytes")
    const failed = await Effect.runPromise(
      Effect.flip(
        readSource({
          _tag: "Pem",
          cert: join(d, "cert.pem"),
          // As a relative `./chain.pem` of the configuration resolves: shown without the `/./`.
          chain: `${d}/./chain.pem`,
          key: join(d, "key.pem"),
        }),
      ),
    )
    expect(failed._tag).toBe("SourceBroken")
    expect(failed.problems).toEqual([`chain ${join(d, "chain.pem")} does not exist`])
  })

  describe("unchangedSince (a pass that finds the files as stamped does not read them)", () => {
    /** Two files last changed long before they are read; the stamp as if read `laterMs` after. */
    const stamped = async (laterMs = 5000) => {
      const d = scratch()
      const cert = join(d, "a.crt")
      const key = join(d, "a.key")
      writeFileSync(cert, "certificate bytes")
      writeFileSync(key, "key bytes")
      const read = await Effect.runPromise(readSource({ _tag: "Pem", cert, chain: undefined, key }))
      // The files' ctime is now (utimes cannot move it): stamp them as read `laterMs` afterwards.
      const stamp: SourceStamp = { ...read.stamp, readAtMs: read.stamp.readAtMs + laterMs }
      return { cert, key, stamp, now: stamp.readAtMs + 1 }
    }

    it("trusts files found exactly as stamped", async () => {
      const { stamp, now } = await stamped()
      expect(stamp.fingerprint).toMatch(/^[0-9a-f]{64}$/)
      expect(unchangedSince(stamp, now)).toBe(true)
    })

    it("notices a rewrite in place, even of the same size with the old mtime put back", async () => {
      const { cert, stamp, now } = await stamped()
      const before = statSync(cert)
      // Past the file system's timestamp tick (coarse clocks): the stamp's own guard covers a
      // rewrite within it (RACY_MS), which this test does not.
      await new Promise((resolve) => setTimeout(resolve, 50))
      // `touch -r` copies the timestamps to the nanosecond (utimesSync with a Date would round
      // them, and the mtime alone would then give the rewrite away): only the ctime tells.
      const reference = `${cert}.times`
      execFileSync("touch", ["-r", cert, reference])
      writeFileSync(cert, "CERTIFICATE BYTES")
      execFileSync("touch", ["-r", reference, cert])
      expect(statSync(cert).size).toBe(before.size)
      expect(statSync(cert).mtimeMs).toBe(before.mtimeMs)
      expect(unchangedSince(stamp, now)).toBe(false)
    })

    it("notices an atomic rename over a file, a removed file and a file replaced by a directory", async () => {
      const renamed = await stamped()
      writeFileSync(`${renamed.key}.tmp`, "key bytes")
      renameSync(`${renamed.key}.tmp`, renamed.key)
      expect(unchangedSince(renamed.stamp, renamed.now)).toBe(false)
      const removed = await stamped()
      rmSync(removed.cert)
      expect(unchangedSince(removed.stamp, removed.now)).toBe(false)
    })

    it("does not trust files changed shortly before they were read, nor an old stamp", async () => {
      // Read 1 s after the files were written: a write in the same timestamp tick could hide.
      const racy = await stamped(1000)
      expect(unchangedSince(racy.stamp, racy.now)).toBe(false)
      const old = await stamped()
      expect(unchangedSince(old.stamp, old.now + 11 * 60_000)).toBe(false)
      // A clock that went back.
      expect(unchangedSince(old.stamp, old.stamp.readAtMs - 1)).toBe(false)
    })
  })
})
