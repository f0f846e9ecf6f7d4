/**
 * A file system that is itself read-only (its superblock) excuses a directory's mode bits: no one
 * changes it through any mount. A read-only *mount* of a writable file system does not: a
 * Kubernetes configMap volume (kubelet's file system, bind-mounted read-only), a read-only bind
 * mount of a directory every user may write through its own path, systemd's ProtectSystem=. Nor
 * does a read-only mount hidden under a later mount, and no mount excuses another owner. Needs root
 * (to own files as another user and to mount); skipped otherwise.
 */
import { execFileSync } from "node:child_process"
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { configFileUntrusted, walkPath } from "../src/pathTrust.js"
import { checkAsNobody } from "./harness.js"

const base = mkdtempSync(join("/dev/shm", "kvdeploy-ro-mount-"))
/** Mount points to unmount after the tests, last first. */
const mounted: Array<string> = []
const mount = (...args: Array<string>) => execFileSync("mount", args, { stdio: "ignore" })
const dirAt = (name: string) => {
  const at = join(base, name)
  mkdirSync(at, { recursive: true })
  return at
}
/** Bind-mount `from` read-only at a new directory. */
const readOnlyBind = (from: string, name: string): string => {
  const at = dirAt(name)
  mount("--bind", from, at)
  mounted.push(at)
  mount("-o", "remount,ro,bind", at)
  return at
}
/** A new tmpfs (options `options`) at a new directory, with `files` written into its root. */
const tmpfs = (name: string, options: string, files: ReadonlyArray<string>): string => {
  const at = dirAt(name)
  mount("-t", "tmpfs", "-o", `size=1m,${options}`, "tmpfs", at)
  mounted.push(at)
  for (const f of files) writeFileSync(join(at, f), "not a key", { mode: 0o644 })
  return at
}

let canMount = false
const at: Record<string, string> = {}
beforeAll(() => {
  if (process.getuid?.() !== 0) return
  try {
    // Another user's directory and file (uid 4242), bind-mounted read-only.
    const theirs = dirAt("theirs")
    writeFileSync(join(theirs, "tls.key"), "not a key", { mode: 0o644 })
    chownSync(theirs, 4242, 4242)
    chownSync(join(theirs, "tls.key"), 4242, 4242)
    at.others = readOnlyBind(theirs, "theirs-ro")
    // A directory every user may write, on a writable file system (/dev/shm), bind-mounted read-only.
    const everyone = dirAt("everyone")
    chmodSync(everyone, 0o777)
    writeFileSync(join(everyone, "tls.key"), "not a key", { mode: 0o644 })
    at.everyone = everyone
    at.open = readOnlyBind(everyone, "everyone-ro")
    // A configMap volume: kubelet's file system (a tmpfs here), root 0777, bind-mounted read-only and
    // then mounted nowhere else in this namespace: kubelet still writes it, on the node.
    const kubelet = tmpfs("kubelet-volume", "mode=0777", ["tls.crt"])
    // kubelet's atomic writer: agent.yaml -> ..data/agent.yaml, ..data -> ..2026_12_03_00_00_00.1
    mkdirSync(join(kubelet, "..2026_12_03_00_00_00.1"), { mode: 0o755 })
    writeFileSync(join(kubelet, "..2026_12_03_00_00_00.1", "agent.yaml"), "deployments: []\n", {
      mode: 0o644,
    })
    symlinkSync("..2026_12_03_00_00_00.1", join(kubelet, "..data"))
    symlinkSync("..data/agent.yaml", join(kubelet, "agent.yaml"))
    at.configMap = readOnlyBind(kubelet, "configmap")
    // The same without kubelet's layout: systemd's ProtectSystem=, a container's :ro volume of a
    // host directory (their file systems are written by the host's users).
    const host = tmpfs("host-volume", "mode=0777", ["agent.yaml"])
    at.protected = readOnlyBind(host, "protected")
    execFileSync("umount", ["-l", host], { stdio: "ignore" })
    mounted.splice(mounted.indexOf(host), 1)
    execFileSync("umount", ["-l", kubelet], { stdio: "ignore" })
    mounted.splice(mounted.indexOf(kubelet), 1)
    // File systems that are themselves read-only: roots 0777, and 0775 of a group (gid 4242).
    at.image = tmpfs("image", "mode=0777", ["tls.crt"])
    mount("-o", "remount,ro", at.image)
    at.groupImage = tmpfs("group-image", "mode=0775,gid=4242", ["tls.crt"])
    mount("-o", "remount,ro", at.groupImage)
    // A read-only tmpfs hidden under a writable one mounted later over its parent.
    const parent = dirAt("hidden")
    const hidden = tmpfs("hidden/cm", "mode=0777", [])
    mount("-o", "remount,ro", hidden)
    tmpfs("hidden", "mode=0755", [])
    mkdirSync(join(parent, "cm"))
    chmodSync(join(parent, "cm"), 0o777)
    writeFileSync(join(parent, "cm", "tls.key"), "not a key", { mode: 0o644 })
    at.hidden = join(parent, "cm")
    canMount = true
  } catch {
    canMount = false
  }
})
afterAll(() => {
  for (const m of mounted.reverse()) {
    try {
      execFileSync("umount", ["-l", m], { stdio: "ignore" })
    } catch {}
  }
  rmSync(base, { recursive: true, force: true })
})

const whyOf = (path: string) => {
  const walk = walkPath(path)
  return walk._tag === "Untrusted" ? [walk.untrusted.why, walk.untrusted.fix] : walk._tag
}

describe("read-only mounts and file systems", () => {
  it("a read-only file system excuses mode bits; a read-only mount of a writable one, a hidden mount and another owner do not", (context) => {
    if (!canMount) return context.skip()
    expect(walkPath(join(at.image ?? "", "tls.crt"))._tag).toBe("Resolved")
    expect(whyOf(join(at.configMap ?? "", "tls.crt"))).toEqual([
      "is writable by every user (mode 0777, no sticky bit); it is mounted read-only here, but its file system is not read-only, and another mount (the host's, kubelet's) may write it",
      `chmod o-w ${at.configMap} where the file system is mounted writable (on the host, in the volume's source)`,
    ])
    expect(whyOf(join(at.open ?? "", "tls.key"))).toEqual([
      `is writable by every user (mode 0777, no sticky bit); it is mounted read-only here, but the same directory is writable at ${at.everyone}`,
      `chmod o-w ${at.everyone}`,
    ])
    expect(whyOf(join(at.hidden ?? "", "tls.key"))).toEqual([
      "is writable by every user (mode 0777, no sticky bit)",
      `chmod o-w ${at.hidden}`,
    ])
    expect(whyOf(join(at.others ?? "", "tls.key"))[0]).toBe(
      "is owned by uid 4242, neither root nor the agent's user (uid 0)",
    )
  })

  it("the configuration file: a configMap volume's 0777 root is excused, a read-only mount without its layout, a writable mount of it here and another owner are not", (context) => {
    if (!canMount) return context.skip()
    // kubelet writes the volume from the ConfigMap; its root is 0777 on the node, under kubelet's own directory.
    expect(configFileUntrusted(join(at.configMap ?? "", "agent.yaml"))).toBeUndefined()
    // A read-only mount without kubelet's layout is not excused (ProtectSystem=, a :ro host volume).
    expect(configFileUntrusted(join(at.protected ?? "", "agent.yaml"))?.why).toBe(
      `the directory ${at.protected} is writable by every user (mode 0777, no sticky bit); it is mounted read-only here, but its file system is not read-only, and another mount (the host's, kubelet's) may write it: a user other than root and the agent's could change the configuration, and with it which files the agent deploys and to which vaults (it is read all the same)`,
    )
    expect(configFileUntrusted(join(at.open ?? "", "tls.key"))).toEqual({
      why: `the directory ${at.open} is writable by every user (mode 0777, no sticky bit); it is mounted read-only here, but the same directory is writable at ${at.everyone}: a user other than root and the agent's could change the configuration, and with it which files the agent deploys and to which vaults (it is read all the same)`,
      fix: `chmod o-w ${at.everyone}; the configuration file, every directory on the way to it and every symbolic link followed should be owned by root or the agent's user and writable by no one else (docs/agent.md, Files)`,
    })
    expect(configFileUntrusted(join(at.others ?? "", "tls.key"))?.fix).toMatch(
      new RegExp(`^chown root ${at.others}; `),
    )
    // A source in the same configMap volume is still refused (the sources' rule).
    expect(walkPath(join(at.configMap ?? "", "tls.crt"))._tag).toBe("Untrusted")
  })

  it("judge the same for an agent that is not root (access() said EACCES for a group's directory before it looked at the mount)", (context) => {
    if (!canMount) return context.skip()
    chmodSync(base, 0o755)
    const state = dirAt("state")
    chmodSync(state, 0o700)
    chownSync(state, 65534, 65534)
    const config = join(base, "agent.yaml")
    const target = (name: string) =>
      `target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: ${name} }`
    writeFileSync(
      config,
      `agent: { state_dir: ${state} }
deployments:
  - { name: image, source: { cert: ${join(at.groupImage ?? "", "tls.crt")} }, ${target("image")} }
  - { name: open, source: { cert: ${join(at.open ?? "", "tls.key")} }, ${target("open")} }
`,
      { mode: 0o644 },
    )
    const r = checkAsNobody(config)
    expect(r.status, r.stderr).toBe(2)
    const fields = (JSON.parse(r.stdout) as { problems: Array<{ field: string }> }).problems.map(
      (p) => p.field,
    )
    expect(fields).toContain("deployments[0].source")
    // The paths' problems (a field of a source's file); the image's file, trusted, is then read as
    // material, which these placeholder files are not (`deployments[0].source`).
    expect(
      (JSON.parse(r.stdout) as { problems: Array<{ field: string; message: string }> }).problems
        .map((p) => p.field)
        .filter((f) => f.includes(".source.")),
    ).toEqual(["deployments[1].source.cert"])
  })
})
