/**
 * A read-only mount excuses a directory's mode bits (no one writes it through this path: a
 * Kubernetes configMap volume's 0777 mount point), never another owner: a read-only bind mount of
 * another user's directory is still theirs to change through its own path. Needs root (to own files
 * as another user and to mount); skipped otherwise.
 */
import { execFileSync } from "node:child_process"
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { walkPath } from "../src/pathTrust.js"

const base = mkdtempSync(join("/dev/shm", "kvdeploy-ro-mount-"))
const mounted: Array<string> = []
/** Bind-mount `from` read-only at a new directory; undefined when this process may not mount. */
const readOnlyBind = (from: string, name: string): string | undefined => {
  const at = join(base, name)
  mkdirSync(at)
  try {
    execFileSync("mount", ["--bind", from, at], { stdio: "ignore" })
    mounted.push(at)
    execFileSync("mount", ["-o", "remount,ro,bind", at], { stdio: "ignore" })
    return at
  } catch {
    return undefined
  }
}
let canMount = false
let others: string | undefined
let open: string | undefined
beforeAll(() => {
  if (process.getuid?.() !== 0) return
  // Another user's directory and file (uid 4242).
  const theirs = join(base, "theirs")
  mkdirSync(theirs, { mode: 0o755 })
  writeFileSync(join(theirs, "tls.key"), "not a key", { mode: 0o644 })
  chownSync(theirs, 4242, 4242)
  chownSync(join(theirs, "tls.key"), 4242, 4242)
  // A root-owned directory every user may write (a configMap mount point's 0777).
  const everyone = join(base, "everyone")
  mkdirSync(everyone)
  chmodSync(everyone, 0o777)
  writeFileSync(join(everyone, "tls.key"), "not a key", { mode: 0o644 })
  others = readOnlyBind(theirs, "theirs-ro")
  open = readOnlyBind(everyone, "everyone-ro")
  canMount = others !== undefined && open !== undefined
})
afterAll(() => {
  for (const at of mounted.reverse()) {
    try {
      execFileSync("umount", [at], { stdio: "ignore" })
    } catch {}
  }
  rmSync(base, { recursive: true, force: true })
})

describe("read-only mounts", () => {
  it("excuse a 0777 directory, not another user's directory or file", (context) => {
    if (!canMount || others === undefined || open === undefined) return context.skip()
    expect(walkPath(join(open, "tls.key"))._tag).toBe("Resolved")
    const owner = walkPath(join(others, "tls.key"))
    expect(owner._tag).toBe("Untrusted")
    expect(owner._tag === "Untrusted" ? owner.untrusted.why : "").toBe(
      "is owned by uid 4242, neither root nor the agent's user (uid 0)",
    )
  })
})
