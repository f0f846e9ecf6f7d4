/**
 * The state directory holds private keys: a vault's file is written through a temporary file of a
 * name of its own, made anew (O_EXCL) and never through a link (O_NOFOLLOW), mode 0600, so a name
 * planted in the directory (a link at the old fixed `vault-NAME.json.tmp`) gets nothing; and a state
 * directory that another user owns or that group or other may write is refused at start
 * (StateDirError, with the fix: chmod 700 or chown, or a directory of one's own).
 */
import {
  chmodSync,
  chownSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it, onTestFinished } from "vitest"
import { StateDirError, start } from "../src/index.js"
import { clients, makeMaterial, pemBundle } from "./support.js"

const VAULT = "trusted"

/** A fresh directory (0700, this user's): removed after the test. */
const fresh = (name: string) => {
  const dir = mkdtempSync(join(tmpdir(), `kvemu-${name}-`))
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Starts the emulator on `dir`: the error it was refused with (a start that worked is stopped and fails the test). */
const refusal = async (dir: string): Promise<unknown> => {
  const started = start({ vaults: [VAULT], stateDir: dir, warn: () => {} })
  onTestFinished(() => started.then((e) => e.stop()).catch(() => {}))
  return started.then(
    () => "started",
    (e: unknown) => e,
  )
}

describe("kv-emulator's state directory", () => {
  it("a link planted at the old temporary name gets nothing: the vault's file is written anew, 0600", async () => {
    const dir = fresh("state-tmp")
    const elsewhere = fresh("elsewhere")
    const loot = join(elsewhere, "loot")
    symlinkSync(loot, join(dir, `vault-${VAULT}.json.tmp`))
    const emulator = await start({ vaults: [VAULT], stateDir: dir, warn: () => {} })
    try {
      const m = await makeMaterial()
      await clients(emulator, VAULT).certificates.importCertificate("stolen", Buffer.from(pemBundle(m)), {
        policy: { contentType: "application/x-pem-file" },
      })
    } finally {
      await emulator.stop()
    }
    // Nothing was made (or written) where the link points.
    expect(readdirSync(elsewhere)).toEqual([])
    const file = join(dir, `vault-${VAULT}.json`)
    expect(JSON.parse(readFileSync(file, "utf8")).certificates[0].name).toBe("stolen")
    expect(statSync(file).mode & 0o777).toBe(0o600)
    // No temporary file of its own left beside it (the planted link is not its to remove).
    expect(readdirSync(dir).sort()).toEqual([`vault-${VAULT}.json`, `vault-${VAULT}.json.tmp`])
  }, 60_000)

  it("a state directory every user may write (sticky, as /tmp): refused at start, with a directory of one's own as the fix", async () => {
    const dir = fresh("state-shared")
    chmodSync(dir, 0o1777)
    const e = await refusal(dir)
    expect(e).toBeInstanceOf(StateDirError)
    const error = e as StateDirError
    expect(error.reason).toBe("is writable by every user (mode 1777)")
    expect(error.fix).toContain("a directory of your own")
    expect(error.fix).toContain("mkdir -m 700")
    expect(readdirSync(dir)).toEqual([])
  })

  it.runIf(process.geteuid?.() === 0)(
    "a state directory another group may write: refused at start, chmod 700 as the fix",
    async () => {
      const dir = fresh("state-group")
      chownSync(dir, process.geteuid?.() ?? 0, 65534)
      chmodSync(dir, 0o770)
      const e = await refusal(dir)
      expect(e).toBeInstanceOf(StateDirError)
      expect((e as StateDirError).reason).toBe("is writable by group 65534 (mode 0770)")
      expect((e as StateDirError).fix).toBe(`chmod 700 ${dir}`)
    },
  )

  it("a state directory writable by the emulator's own group (mkdir under umask 002, a user's private group): used", async () => {
    const dir = fresh("state-own-group")
    chmodSync(dir, 0o775)
    expect(statSync(dir).gid).toBe(process.getegid?.())
    expect(await refusal(dir)).toBe("started")
  })

  it.runIf(process.geteuid?.() === 0)(
    "a state directory of another user's: refused at start, chown as the fix",
    async () => {
      const dir = fresh("state-owner")
      chownSync(dir, 65534, 65534)
      const e = await refusal(dir)
      expect(e).toBeInstanceOf(StateDirError)
      expect((e as StateDirError).reason).toBe("is owned by uid 65534, not by the emulator's user (uid 0)")
      expect((e as StateDirError).fix).toContain(`chown 0 ${dir} && chmod 700 ${dir}`)
      expect(readdirSync(dir)).toEqual([])
    },
  )
})
