/**
 * Reading a source's files: synchronous reads refuse anything but a regular
 * file (a FIFO would block the event loop, and with it every deployment).
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import {
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import { afterEach, describe, expect, it } from "vitest"
import { readSource, type SourceStamp, unchangedSince } from "../src/source.js"
import { jsonLogger } from "./inProcess.js"

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
  it("warns once of a key file every user may read (it is read all the same), again after a chmod back and forth, never of a 0600 key", async () => {
    const d = scratch()
    chmodSync(d, 0o755)
    const cert = join(d, "c.pem")
    const key = join(d, "k.pem")
    writeFileSync(cert, "CERT")
    writeFileSync(key, "KEY", { mode: 0o644 })
    chmodSync(key, 0o644)
    const { lines, logger } = jsonLogger()
    const read = () =>
      Effect.runPromise(
        readSource({ _tag: "Pem", cert, chain: undefined, key }).pipe(Effect.provide(Logger.layer([logger]))),
      )
    const warned = () => lines.filter((l) => String(l.message).includes("is readable by every user"))
    const bytes = await read()
    expect(bytes.files.map((f) => f.role)).toEqual(["cert", "key"])
    await read()
    expect(warned().map((l) => [l.message, l.annotations.fix])).toEqual([
      [
        `the private key file ${key} is readable by every user (mode 0644): any local user can copy the key`,
        `chmod 600 ${key}, or chmod 640 ${key} with a group the agent's user is in (chgrp ssl-cert ${key}: the systemd unit runs the agent with SupplementaryGroups=ssl-cert)`,
      ],
    ])
    chmodSync(key, 0o600)
    await read()
    expect(warned()).toHaveLength(1)
    chmodSync(key, 0o644)
    await read()
    expect(warned()).toHaveLength(2)
  })

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
    // The largest a source file may be: 1 MiB.
    const large = Buffer.alloc(1024 * 1024)
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

  it("refuses a file larger than 1 MiB without reading it (a 2 GB sparse cert.pem), with its size", async () => {
    const d = scratch()
    writeFileSync(join(d, "over.pem"), Buffer.alloc(1024 * 1024 + 1))
    // Sparse: 2 GB long, no block written. Read whole, it took the agent to 11.8 GB.
    writeFileSync(join(d, "huge.pem"), "")
    truncateSync(join(d, "huge.pem"), 2 * 1024 * 1024 * 1024)
    const rssBefore = process.memoryUsage().rss
    const failed = await Effect.runPromise(
      Effect.flip(
        readSource({ _tag: "Pem", cert: join(d, "huge.pem"), chain: undefined, key: join(d, "over.pem") }),
      ),
    )
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * 1024 * 1024)
    expect(failed.problems).toEqual([
      `cert ${join(d, "huge.pem")} is larger than 1 MiB (2147483648 bytes), and certificate, chain, key and PFX files are a few KB: point the source at the certificate file itself`,
      `key ${join(d, "over.pem")} is larger than 1 MiB (1048577 bytes), and certificate, chain, key and PFX files are a few KB: point the source at the certificate file itself`,
    ])
  })

  it.skipIf(!existsSync("/proc/kallsyms"))(
    "stops reading a file whose size says 0 once it gave more than 1 MiB (/proc/kallsyms)",
    async () => {
      const failed = await Effect.runPromise(
        Effect.flip(readSource({ _tag: "Pem", cert: "/proc/kallsyms", chain: undefined, key: undefined })),
      )
      expect(failed.problems).toEqual([
        "cert /proc/kallsyms is larger than 1 MiB, and certificate, chain, key and PFX files are a few KB: point the source at the certificate file itself",
      ])
      // A small one is read to its end.
      const read = await Effect.runPromise(
        readSource({ _tag: "Pem", cert: "/proc/self/status", chain: undefined, key: undefined }),
      )
      expect(Buffer.from(read.files[0]?.bytes ?? []).toString()).toMatch(/^Name:/)
    },
  )

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
      `key ${join(d, "missing.key")} does not exist; fix: if the path is mistyped, correct it (ls ${d} shows what is there); if the file is not written yet (a certificate not issued yet), nothing to do: the agent watches ${d} and deploys it once the file appears`,
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
    expect(failed.problems).toEqual([
      `chain ${join(d, "chain.pem")} does not exist; fix: if the path is mistyped, correct it (ls ${d} shows what is there); if the file is not written yet (a certificate not issued yet), nothing to do: the agent watches ${d} and deploys it once the file appears`,
    ])
  })

  describe("who may change the files (ssh's StrictModes: only root and the agent's user)", () => {
    const isRoot = process.getuid?.() === 0
    /** Another user's id, for the cases that need root to make (chown). */
    const other = 4242
    const pem = (cert: string, key: string) => ({ _tag: "Pem" as const, cert, chain: undefined, key })
    const problems = async (source: Parameters<typeof readSource>[0]) =>
      (await Effect.runPromise(Effect.flip(readSource(source)))).problems

    it("refuses files in a directory every user may write (no sticky bit), with the fix", async () => {
      const d = scratch()
      const open = join(d, "open")
      mkdirSync(open)
      writeFileSync(join(open, "cert.pem"), "certificate bytes")
      writeFileSync(join(open, "key.pem"), "key bytes")
      chmodSync(open, 0o777)
      const found = await problems(pem(join(open, "cert.pem"), join(open, "key.pem")))
      expect(found).toEqual([
        `cert ${join(open, "cert.pem")}: the directory ${open} is writable by every user (mode 0777, no sticky bit): a user other than root and the agent's could replace the file, so it is not read; fix: chmod o-w ${open}; every directory on the way to a source file, every symbolic link followed and the file itself must be owned by root or the agent's user and writable by no one else`,
        expect.stringContaining(
          `key ${join(open, "key.pem")}: the directory ${open} is writable by every user`,
        ),
      ])
    })

    it("refuses a symbolic link into such a directory, and a file every user may write", async () => {
      const d = scratch()
      const open = join(d, "open")
      mkdirSync(open)
      writeFileSync(join(open, "elsewhere.key"), "key bytes")
      chmodSync(open, 0o777)
      const safe = join(d, "safe")
      mkdirSync(safe, { mode: 0o755 })
      writeFileSync(join(safe, "cert.pem"), "certificate bytes", { mode: 0o666 })
      chmodSync(join(safe, "cert.pem"), 0o666)
      symlinkSync("../open/elsewhere.key", join(safe, "key.pem"))
      const found = await problems(pem(join(safe, "cert.pem"), join(safe, "key.pem")))
      expect(found).toEqual([
        expect.stringContaining(
          `cert ${join(safe, "cert.pem")}: the file ${join(safe, "cert.pem")} is writable by every user (mode 0666)`,
        ),
        expect.stringContaining(
          `key ${join(safe, "key.pem")}: the directory ${open} is writable by every user`,
        ),
      ])
    })

    it.skipIf(!isRoot)(
      "refuses a directory, a file or a link owned by another user (as root: chown)",
      async () => {
        const d = scratch()
        const theirs = join(d, "theirs")
        mkdirSync(theirs, { mode: 0o755 })
        writeFileSync(join(theirs, "cert.pem"), "certificate bytes")
        chownSync(theirs, other, other)
        const mine = join(d, "mine")
        mkdirSync(mine, { mode: 0o755 })
        writeFileSync(join(mine, "cert.pem"), "certificate bytes")
        writeFileSync(join(mine, "their.key"), "key bytes")
        chownSync(join(mine, "their.key"), other, 0)
        writeFileSync(join(mine, "key.pem"), "key bytes")
        symlinkSync("key.pem", join(mine, "link.key"))
        lchownSync(join(mine, "link.key"), other, 0)
        expect(await problems(pem(join(theirs, "cert.pem"), join(mine, "their.key")))).toEqual([
          expect.stringContaining(
            `the directory ${theirs} is owned by uid ${other}, neither root nor the agent's user`,
          ),
          expect.stringContaining(`the file ${join(mine, "their.key")} is owned by uid ${other}`),
        ])
        // Its fix gives the link itself to root: chown -h (plain chown changes the link's target).
        expect(await problems(pem(join(mine, "cert.pem"), join(mine, "link.key")))).toEqual([
          expect.stringMatching(
            new RegExp(
              `the symbolic link ${join(mine, "link.key")} is owned by uid ${other}.*; fix: chown -h root ${join(mine, "link.key")} `,
            ),
          ),
        ])
        // A directory writable by its group is refused too, unless the group is root's. (Other
        // directories: a directory's judgment is kept for a second.)
        const groups = join(d, "groups")
        mkdirSync(groups, { mode: 0o775 })
        writeFileSync(join(groups, "cert.pem"), "certificate bytes")
        chownSync(groups, 0, other)
        chmodSync(groups, 0o775)
        expect(await problems(pem(join(groups, "cert.pem"), join(groups, "cert.pem")))).toEqual([
          expect.stringContaining(
            `the directory ${groups} is writable by group ${other} (mode 0775): a user`,
          ),
          expect.stringContaining(`the directory ${groups} is writable by group ${other}`),
        ])
        const rootGroup = join(d, "root-group")
        mkdirSync(rootGroup, { mode: 0o775 })
        writeFileSync(join(rootGroup, "cert.pem"), "certificate bytes")
        chownSync(rootGroup, 0, 0)
        chmodSync(rootGroup, 0o775)
        await Effect.runPromise(readSource(pem(join(rootGroup, "cert.pem"), join(rootGroup, "cert.pem"))))
      },
    )

    it.skipIf(!isRoot)(
      "reads the files of the source's owner (source.owner), and no file of another user's through its entries",
      async () => {
        const d = scratch()
        // An ACME client running as its own user (uid 4242) writes its own directory.
        const acme = join(d, "acme")
        mkdirSync(acme, { mode: 0o700 })
        writeFileSync(join(acme, "cert.pem"), "certificate bytes", { mode: 0o644 })
        writeFileSync(join(acme, "key.pem"), "key bytes", { mode: 0o600 })
        for (const p of [acme, join(acme, "cert.pem"), join(acme, "key.pem")]) chownSync(p, other, other)
        const owned = (cert: string, key: string) => ({ ...pem(cert, key), owner: other })
        const read = await Effect.runPromise(readSource(owned(join(acme, "cert.pem"), join(acme, "key.pem"))))
        expect(read.files.map((f) => Buffer.from(f.bytes).toString())).toEqual([
          "certificate bytes",
          "key bytes",
        ])
        // Without the owner named, the same files are refused, and the fix names source.owner.
        expect(await problems(pem(join(acme, "cert.pem"), join(acme, "key.pem")))).toEqual([
          expect.stringContaining(
            `the directory ${acme} is owned by uid ${other}, neither root nor the agent's user (uid 0): a user other than root and the agent's could replace the file, so it is not read; fix: chown root ${acme} (or to uid 0), or keep the files where only root and the agent's user can write; if uid ${other} is the ACME client that writes them, name it as the source's owner (source.owner)`,
          ),
          expect.stringContaining(`the directory ${acme} is owned by uid ${other}`),
        ])
        // The owner links root's key into its directory (a symbolic link of its own, and a hard
        // link): neither is read, though root's file and its directories pass.
        const roots = join(d, "root-only")
        mkdirSync(roots, { mode: 0o700 })
        writeFileSync(join(roots, "other.key"), "root's key bytes", { mode: 0o600 })
        symlinkSync(join(roots, "other.key"), join(acme, "linked.key"))
        lchownSync(join(acme, "linked.key"), other, other)
        execFileSync("ln", [join(roots, "other.key"), join(acme, "hard.key")])
        expect(await problems(owned(join(acme, "cert.pem"), join(acme, "linked.key")))).toEqual([
          `key ${join(acme, "linked.key")}: the file ${join(roots, "other.key")} is owned by uid 0, and reached through the directory ${acme} of the source's owner (uid ${other}): the source's owner could have put there a file it cannot read itself, such as root's key, so it is not read; fix: have uid ${other} write the file itself (the file must be its own), or keep files of other users out of its directories; every directory on the way to a source file, every symbolic link followed and the file itself must be owned by root, the agent's user or the source's owner (uid ${other}) and writable by no one else`,
        ])
        expect(await problems(owned(join(acme, "cert.pem"), join(acme, "hard.key")))).toEqual([
          expect.stringContaining(
            `key ${join(acme, "hard.key")}: the file ${join(acme, "hard.key")} is owned by uid 0, and reached through the directory ${acme} of the source's owner`,
          ),
        ])
        // A root-owned link elsewhere into the owner's directory reaches the owner's own file: read.
        const etc = join(d, "etc")
        mkdirSync(etc, { mode: 0o755 })
        symlinkSync(join(acme, "key.pem"), join(etc, "key.pem"))
        await Effect.runPromise(readSource(owned(join(etc, "key.pem"), join(etc, "key.pem"))))
        // A third user's file is refused, named with the users that may own the files.
        writeFileSync(join(acme, "third.key"), "key bytes", { mode: 0o600 })
        chownSync(join(acme, "third.key"), other + 1, other + 1)
        expect(await problems(owned(join(acme, "cert.pem"), join(acme, "third.key")))).toEqual([
          `key ${join(acme, "third.key")}: the file ${join(acme, "third.key")} is owned by uid ${other + 1}, neither root, the agent's user (uid 0) nor the source's owner (uid ${other}): a user other than root, the agent's and the source's owner (uid ${other}) could replace the file, so it is not read; fix: chown root ${join(acme, "third.key")} (or to uid ${other}, the source's owner), or keep the files where only those users can write; every directory on the way to a source file, every symbolic link followed and the file itself must be owned by root, the agent's user or the source's owner (uid ${other}) and writable by no one else`,
        ])
        // A directory of its own writable by its group is refused as any other. (Another directory:
        // a directory's judgment is kept for a second.)
        const shared = join(d, "acme-shared")
        mkdirSync(shared, { mode: 0o700 })
        writeFileSync(join(shared, "key.pem"), "key bytes", { mode: 0o600 })
        chownSync(join(shared, "key.pem"), other, other)
        chownSync(shared, other, other)
        chmodSync(shared, 0o770)
        expect(await problems(owned(join(shared, "key.pem"), join(shared, "key.pem")))).toEqual([
          expect.stringContaining(`the directory ${shared} is writable by group ${other} (mode 0770)`),
          expect.stringContaining(`the directory ${shared} is writable by group ${other}`),
        ])
      },
    )

    it("reads certbot's layout: live/NAME/privkey.pem -> ../../archive/NAME/privkey1.pem", async () => {
      const d = scratch()
      mkdirSync(join(d, "archive", "example.com"), { recursive: true, mode: 0o700 })
      mkdirSync(join(d, "live", "example.com"), { recursive: true, mode: 0o700 })
      writeFileSync(join(d, "archive", "example.com", "cert1.pem"), "certificate bytes", { mode: 0o644 })
      writeFileSync(join(d, "archive", "example.com", "privkey1.pem"), "key bytes", { mode: 0o600 })
      symlinkSync("../../archive/example.com/cert1.pem", join(d, "live", "example.com", "cert.pem"))
      symlinkSync("../../archive/example.com/privkey1.pem", join(d, "live", "example.com", "privkey.pem"))
      const read = await Effect.runPromise(
        readSource(
          pem(join(d, "live", "example.com", "cert.pem"), join(d, "live", "example.com", "privkey.pem")),
        ),
      )
      expect(read.files.map((f) => Buffer.from(f.bytes).toString())).toEqual([
        "certificate bytes",
        "key bytes",
      ])
    })

    it("reads a Kubernetes secret volume (..data links, a sticky 1777 mount directory) but not another user's file in it", async () => {
      const d = scratch()
      const mount = join(d, "tls")
      mkdirSync(mount)
      chmodSync(mount, 0o1777)
      mkdirSync(join(mount, "..2026_12_01_10_00_00.123"), { mode: 0o755 })
      writeFileSync(join(mount, "..2026_12_01_10_00_00.123", "tls.crt"), "certificate bytes", { mode: 0o644 })
      writeFileSync(join(mount, "..2026_12_01_10_00_00.123", "tls.key"), "key bytes", { mode: 0o600 })
      symlinkSync("..2026_12_01_10_00_00.123", join(mount, "..data"))
      symlinkSync("..data/tls.crt", join(mount, "tls.crt"))
      symlinkSync("..data/tls.key", join(mount, "tls.key"))
      const read = await Effect.runPromise(readSource(pem(join(mount, "tls.crt"), join(mount, "tls.key"))))
      expect(read.files.map((f) => Buffer.from(f.bytes).toString())).toEqual([
        "certificate bytes",
        "key bytes",
      ])
      if (!isRoot) return
      // Anyone may add a file to a sticky directory: one another user added is not read.
      writeFileSync(join(mount, "planted.key"), "key bytes")
      chownSync(join(mount, "planted.key"), other, other)
      expect(await problems(pem(join(mount, "tls.crt"), join(mount, "planted.key")))).toEqual([
        expect.stringContaining(`the file ${join(mount, "planted.key")} is owned by uid ${other}`),
      ])
    })
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
