/**
 * A directory mounted read-only, and writable through no other mount, excuses its mode bits (no one
 * changes it: a Kubernetes configMap volume's 0777 mount point, bind-mounted read-only from a file
 * system mounted nowhere else), never another owner: a read-only bind mount of another user's
 * directory is still theirs to change. Nor does a read-only bind mount of a directory every user may
 * write through its own path. Needs root (to own files as another user and to mount); skipped
 * otherwise.
 */
import { execFileSync } from "node:child_process"
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { walkPath } from "../src/pathTrust.js"
import { checkAsNobody } from "./harness.js"

const base = mkdtempSync(join("/dev/shm", "kvdeploy-ro-mount-"))
const mounted: Array<string> = []
const mount = (...args: Array<string>) => execFileSync("mount", args, { stdio: "ignore" })
/** Bind-mount `from` read-only at a new directory; undefined when this process may not mount. */
const readOnlyBind = (from: string, name: string): string | undefined => {
  const at = join(base, name)
  mkdirSync(at)
  try {
    mount("--bind", from, at)
    mounted.push(at)
    mount("-o", "remount,ro,bind", at)
    return at
  } catch {
    return undefined
  }
}
let canMount = false
let others: string | undefined
let open: string | undefined
let volume: string | undefined
/** A volume whose root is writable by a group the agent is not in (0775, gid 4242). */
let groupVolume: string | undefined
beforeAll(() => {
  if (process.getuid?.() !== 0) return
  // Another user's directory and file (uid 4242).
  const theirs = join(base, "theirs")
  mkdirSync(theirs, { mode: 0o755 })
  writeFileSync(join(theirs, "tls.key"), "not a key", { mode: 0o644 })
  chownSync(theirs, 4242, 4242)
  chownSync(join(theirs, "tls.key"), 4242, 4242)
  // A root-owned directory every user may write, on a file system mounted writable (/dev/shm).
  const everyone = join(base, "everyone")
  mkdirSync(everyone)
  chmodSync(everyone, 0o777)
  writeFileSync(join(everyone, "tls.key"), "not a key", { mode: 0o644 })
  others = readOnlyBind(theirs, "theirs-ro")
  open = readOnlyBind(everyone, "everyone-ro")
  // A configMap volume: a file system of its own (kubelet's, here a tmpfs) whose root is 0777,
  // bind-mounted read-only, and then mounted nowhere writable in this mount namespace.
  const kubelet = join(base, "kubelet-volume")
  mkdirSync(kubelet)
  try {
    mount("-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", kubelet)
    writeFileSync(join(kubelet, "tls.key"), "not a key", { mode: 0o644 })
    volume = readOnlyBind(kubelet, "configmap")
    execFileSync("umount", ["-l", kubelet], { stdio: "ignore" })
    mount("-t", "tmpfs", "-o", "size=1m,mode=0775,gid=4242", "tmpfs", kubelet)
    writeFileSync(join(kubelet, "tls.crt"), "not a certificate", { mode: 0o644 })
    groupVolume = readOnlyBind(kubelet, "group-volume")
    execFileSync("umount", ["-l", kubelet], { stdio: "ignore" })
  } catch {
    volume = undefined
  }
  canMount = others !== undefined && open !== undefined && volume !== undefined && groupVolume !== undefined
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
  it("excuse a 0777 volume mounted nowhere writable, not another user's directory, nor one writable through its own path", (context) => {
    if (!canMount || others === undefined || open === undefined || volume === undefined) return context.skip()
    expect(walkPath(join(volume, "tls.key"))._tag).toBe("Resolved")
    const owner = walkPath(join(others, "tls.key"))
    expect(owner._tag).toBe("Untrusted")
    expect(owner._tag === "Untrusted" ? owner.untrusted.why : "").toBe(
      "is owned by uid 4242, neither root nor the agent's user (uid 0)",
    )
    const everyone = walkPath(join(open, "tls.key"))
    expect(
      everyone._tag === "Untrusted" ? [everyone.untrusted.why, everyone.untrusted.fix] : everyone,
    ).toEqual([
      `is writable by every user (mode 0777, no sticky bit); it is mounted read-only here, but the same directory is writable at ${join(base, "everyone")}`,
      `chmod o-w ${join(base, "everyone")}`,
    ])
  })

  it("judge the same for an agent that is not root (access() said EACCES for a group's volume before it looked at the mount)", (context) => {
    if (!canMount || open === undefined || groupVolume === undefined) return context.skip()
    chmodSync(base, 0o755)
    const state = join(base, "state")
    mkdirSync(state, { mode: 0o700 })
    chownSync(state, 65534, 65534)
    const config = join(base, "agent.yaml")
    const target = (name: string) =>
      `target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: ${name} }`
    writeFileSync(
      config,
      `agent: { state_dir: ${state} }
deployments:
  - { name: volume, source: { cert: ${join(groupVolume, "tls.crt")} }, ${target("volume")} }
  - { name: open, source: { cert: ${join(open, "tls.key")} }, ${target("open")} }
`,
      { mode: 0o644 },
    )
    const r = checkAsNobody(config)
    expect(r.status, r.stderr).toBe(2)
    expect(
      (JSON.parse(r.stdout) as { problems: Array<{ field: string; message: string }> }).problems,
    ).toEqual([
      {
        field: "deployments[1].source.cert",
        message: expect.stringContaining(
          `the directory ${open} is writable by every user (mode 0777, no sticky bit); it is mounted read-only here, but the same directory is writable at ${join(base, "everyone")}`,
        ),
        fix: expect.stringMatching(new RegExp(`^chmod o-w ${join(base, "everyone")};`)),
      },
    ])
  })
})
