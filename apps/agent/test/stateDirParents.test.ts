/**
 * A directory holding the state directory that a user other than root, the agent's user or one of
 * the agent's groups may write (and that no sticky bit guards for the agent's entry) lets that user
 * rename the state directory away or put another in its place: the agent would start again without
 * its records and deploy held outcomes again. The agent warns of it once at start (and `--check`
 * lists it), and starts all the same: a refusal crash-looped a pod whose volume is group-writable
 * by a supplementary fsGroup (OpenShift) or an emptyDir (0777), with a fix it cannot apply. The
 * shipped recipes' layouts (the Kubernetes manifest's volume, systemd's StateDirectory= with
 * DynamicUser=) stay silent. Run as root: the layouts need other owners, and the agent other users.
 */
import { spawnSync } from "node:child_process"
import {
  chmodSync,
  chownSync,
  lchownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { type AgentProcess, agentRoot, baseEnv, bin, type LogLine, startAgent } from "./harness.js"

/** A client secret credential's variables, of the right forms (never used: no source is written). */
const azureEnv = {
  AZURE_TENANT_ID: "00000000-0000-0000-0000-000000000001",
  AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000002",
  AZURE_CLIENT_SECRET: "not-a-secret",
}

const scratches: Array<string> = []
const agents: Array<AgentProcess> = []
afterEach(() => {
  for (const a of agents.splice(0)) a.kill()
  for (const s of scratches.splice(0)) rmSync(s, { recursive: true, force: true })
})

/** A scratch directory every user may search (the agents run as other users), root's, 0755. */
const scratch = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "kvdeploy-state-parents-"))
  chmodSync(dir, 0o755)
  scratches.push(dir)
  return dir
}

/** Make `path` a directory of `uid`:`gid` with `mode` (its parents made root's, 0755). */
const dirOf = (path: string, uid: number, gid: number, mode: number): string => {
  mkdirSync(path, { recursive: true, mode: 0o755 })
  chownSync(path, uid, gid)
  chmodSync(path, mode)
  return path
}

/** An agent configuration with `state_dir` (left out when undefined) and a source not written yet. */
const configIn = (dir: string, stateDir: string | undefined): string => {
  const config = join(dir, "agent.yaml")
  writeFileSync(
    config,
    `agent: { listen: "127.0.0.1:0"${stateDir === undefined ? "" : `, state_dir: ${stateDir}`} }
deployments:
  - { name: a, source: { cert: ${join(dir, "later.crt")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a, credential_mode: client_secret } }
`,
    { mode: 0o644 },
  )
  return config
}

const isParentWarning = (l: LogLine) =>
  l.level === "warn" && /^the state directory .* is held by the directory /.test(l.msg)

/**
 * Start the agent (as `ids`, else as root), reload it (SIGHUP: the warning is said at start only)
 * and stop it, and answer its state-directory parent warnings.
 */
const parentWarnings = async (
  config: string,
  ids?: { readonly uid: number; readonly gid: number; readonly groups: ReadonlyArray<number> },
  env: Record<string, string> = {},
): Promise<Array<LogLine>> => {
  const command =
    ids === undefined
      ? undefined
      : [
          "setpriv",
          `--reuid=${ids.uid}`,
          `--regid=${ids.gid}`,
          ids.groups.length === 0 ? "--clear-groups" : `--groups=${ids.groups.join(",")}`,
          process.execPath,
          bin,
        ]
  const a = startAgent(
    config,
    { ...baseEnv(), ...azureEnv, ...env },
    command === undefined ? {} : { command },
  )
  agents.push(a)
  await a.waitFor((l) => /Listening on/.test(l.msg), { timeoutMs: 30_000 })
  const from = a.lines.length
  a.signal("SIGHUP")
  await a.waitFor((l) => l.msg === "pass over" && l.reason === "reload", { from, timeoutMs: 30_000 })
  // Stopped before the next start over the same state directory (one agent per lock).
  a.signal("SIGTERM")
  await a.exited
  return a.lines.filter(isParentWarning)
}

/** The shipped Kubernetes manifest's ids and paths. */
const manifest = (() => {
  const text = readFileSync(join(agentRoot, "deploy", "kubernetes", "kvdeploy-agent.yaml"), "utf8")
  const field = (name: string): string => {
    const m = new RegExp(`\\b${name}: ([^\\s,}]+)`).exec(text)
    if (m?.[1] === undefined) throw new Error(`the manifest has no ${name}`)
    return m[1]
  }
  const mount = /\{ name: state, mountPath: ([^,\s]+)/.exec(text)?.[1]
  if (mount === undefined) throw new Error("the manifest mounts no state volume")
  return {
    uid: Number(field("runAsUser")),
    gid: Number(field("runAsGroup")),
    fsGroup: Number(field("fsGroup")),
    stateDir: field("state_dir"),
    mount,
  }
})()

/** The shipped systemd unit's state directory settings. */
const unit = (() => {
  const text = readFileSync(join(agentRoot, "deploy", "systemd", "kvdeploy-agent.service"), "utf8")
  const setting = (name: string) => new RegExp(`^${name}=(.*)$`, "m").exec(text)?.[1]
  return {
    dynamicUser: setting("DynamicUser") === "yes",
    stateDirectory: setting("StateDirectory") ?? "",
    mode: Number.parseInt(setting("StateDirectoryMode") ?? "0755", 8),
  }
})()

const docs = readFileSync(join(agentRoot, "..", "..", "docs", "agent.md"), "utf8").replace(/\s+/g, " ")

describe.skipIf(process.geteuid?.() !== 0)("the state directory's parents", { timeout: 120_000 }, () => {
  it("one another user owns, or every user may write without a sticky bit: one warning at start naming it, its mode and owner, why and the fix; the agent runs", async () => {
    const dir = scratch()
    const userdir = dirOf(join(dir, "userdir"), 65534, 65534, 0o755)
    const theirs = await parentWarnings(configIn(dir, join(userdir, "st")))
    expect(theirs).toHaveLength(1)
    expect(theirs[0]).toMatchObject({
      msg: `the state directory ${join(userdir, "st")} is held by the directory ${userdir}, which is owned by uid 65534, neither root nor the agent's user (uid 0): that user could rename the state directory away or put another in its place, and the agent would start again without its records (held outcomes deployed again)`,
      directory: userdir,
      mode: "0755",
      owner: 65534,
      group: 65534,
      fix: `chown root ${userdir} (or to the agent's user, uid 0), or give agent.state_dir a directory whose every parent only root, the agent's user and its groups may write, such as /var/lib/kvdeploy-agent`,
    })
    const open = dirOf(join(dir, "open"), 0, 0, 0o777)
    const everyone = await parentWarnings(configIn(dir, join(open, "st")))
    expect(everyone).toHaveLength(1)
    expect(everyone[0]).toMatchObject({
      msg: `the state directory ${join(open, "st")} is held by the directory ${open}, which is writable by every user (mode 0777, no sticky bit): any user could rename the state directory away or put another in its place, and the agent would start again without its records (held outcomes deployed again)`,
      directory: open,
      mode: "0777",
      owner: 0,
      group: 0,
      fix: `chmod o-w ${open} (or chmod +t ${open}: then no other user may rename the agent's directory in it), or give agent.state_dir a directory whose every parent only root, the agent's user and its groups may write, such as /var/lib/kvdeploy-agent`,
    })
    // With the sticky bit (as /tmp), others may not rename the agent's own directory in it.
    const sticky = dirOf(join(dir, "sticky"), 0, 0, 0o1777)
    expect(await parentWarnings(configIn(dir, join(sticky, "st")))).toEqual([])
    expect(docs).toContain(
      "a directory holding `state_dir` that a user other than root, the agent's user or one of the agent's groups may write",
    )
  })

  it("the shipped Kubernetes manifest's volume (group-writable by the fsGroup, the agent's group), and OpenShift's (a supplementary fsGroup): silent; a group not the agent's: a warning", async () => {
    const dir = scratch()
    // kubelet gives the volume's root to the fsGroup, group-writable and setgid.
    const volume = dirOf(join(dir, manifest.mount), 0, manifest.fsGroup, 0o2775)
    expect(manifest.stateDir.startsWith(`${manifest.mount}/`)).toBe(true)
    const config = configIn(dir, join(dir, manifest.stateDir))
    // The pod's process: runAsUser, runAsGroup, and the fsGroup as a supplementary group.
    const pod = { uid: manifest.uid, gid: manifest.gid, groups: [manifest.fsGroup] }
    expect(await parentWarnings(config, pod)).toEqual([])
    // OpenShift: an arbitrary uid in group 0, its fsGroup a supplementary group only.
    rmSync(join(dir, manifest.stateDir), { recursive: true, force: true })
    chownSync(volume, 0, 1000650000)
    expect(await parentWarnings(config, { uid: 1000650000, gid: 0, groups: [0, 1000650000] })).toEqual([])
    // A group the agent is not in may write the volume (the agent's state directory made before):
    // a warning, and the agent runs.
    rmSync(join(dir, manifest.stateDir), { recursive: true, force: true })
    dirOf(join(dir, manifest.stateDir), manifest.uid, manifest.gid, 0o700)
    chownSync(volume, 0, 65533)
    const other = await parentWarnings(config, pod)
    expect(other).toHaveLength(1)
    expect(other[0]).toMatchObject({
      msg: `the state directory ${join(dir, manifest.stateDir)} is held by the directory ${volume}, which is writable by group 65533, not one of the agent's (mode 2775): a member of that group could rename the state directory away or put another in its place, and the agent would start again without its records (held outcomes deployed again)`,
      fix: `chmod g-w ${volume} (or chgrp ${manifest.gid} ${volume}, the agent's group), or give agent.state_dir a directory whose every parent only root, the agent's user and its groups may write, such as /var/lib/kvdeploy-agent`,
    })
  })

  it("the shipped systemd unit's StateDirectory= with DynamicUser= (a link into /var/lib/private): silent", async () => {
    expect(unit.dynamicUser).toBe(true)
    const dir = scratch()
    const dynamicUid = 61_234
    const varLib = dirOf(join(dir, "var", "lib"), 0, 0, 0o755)
    // Root's, and no one else may write it (0711 here so the test's user may search it, as the
    // unit's namespace lets its user reach its own directory).
    const priv = dirOf(join(varLib, "private"), 0, 0, 0o711)
    dirOf(join(priv, unit.stateDirectory), dynamicUid, dynamicUid, unit.mode)
    symlinkSync(join("private", unit.stateDirectory), join(varLib, unit.stateDirectory))
    const config = configIn(dir, undefined)
    const ids = { uid: dynamicUid, gid: dynamicUid, groups: [] }
    expect(await parentWarnings(config, ids, { STATE_DIRECTORY: join(varLib, unit.stateDirectory) })).toEqual(
      [],
    )
    // The same layout under a directory every user may write: the warning names it. (The
    // directory holding the link itself is the start's to refuse, as before.)
    chmodSync(join(dir, "var"), 0o777)
    const open = await parentWarnings(config, ids, { STATE_DIRECTORY: join(varLib, unit.stateDirectory) })
    expect(open.map((l) => l.directory)).toEqual([join(dir, "var")])
  })

  it("a sticky directory (/tmp) whose entry on the way is another user's: no 'any user' and no chmod of the shared directory; a directory entry is named once, by its owner; a link entry names its owner and chown -h", () => {
    const dir = scratch()
    const stateWarnings = (stateDir: string) => {
      const r = spawnSync(process.execPath, [bin, "--config", configIn(dir, stateDir), "--check", "--json"], {
        encoding: "utf8",
        env: { ...baseEnv(), ...azureEnv },
      })
      expect(r.status, r.stdout + r.stderr).toBe(0)
      return (JSON.parse(r.stdout).warnings as Array<Record<string, string>>).filter(
        (w) => w.field === "agent.state_dir",
      )
    }
    const lasting =
      "or give agent.state_dir a directory whose every parent only root, the agent's user and its groups may write, such as /var/lib/kvdeploy-agent"
    for (const [name, mode, gid] of [
      ["tmp", 0o1777, 0],
      // Group-writable by a group not the agent's, and sticky.
      ["shared", 0o1770, 65533],
    ] as const) {
      const sticky = dirOf(join(dir, name), 0, gid, mode)
      // Another user's directory in it holds the state directory (/tmp/alice/state): only that user
      // (or root) may rename it; its own warning says so, with chown root.
      const alice = dirOf(join(sticky, "alice"), 65534, 65534, 0o755)
      dirOf(join(alice, "st"), 0, 0, 0o700)
      expect(stateWarnings(join(alice, "st"))).toEqual([
        {
          field: "agent.state_dir",
          message: `the state directory ${join(alice, "st")} is held by the directory ${alice}, which is owned by uid 65534, neither root nor the agent's user (uid 0): that user could rename the state directory away or put another in its place, and the agent would start again without its records (held outcomes deployed again)`,
          fix: `chown root ${alice} (or to the agent's user, uid 0), ${lasting}`,
        },
      ])
      // Another user's symbolic link in it on the way to a directory only root may write.
      const real = dirOf(join(dir, `${name}-real`), 0, 0, 0o755)
      dirOf(join(real, "st"), 0, 0, 0o700)
      const link = join(sticky, "link")
      symlinkSync(real, link)
      lchownSync(link, 65534, 65534)
      const m = (mode & 0o7777).toString(8).padStart(4, "0")
      expect(stateWarnings(join(link, "st"))).toEqual([
        {
          field: "agent.state_dir",
          message: `the state directory ${join(link, "st")} is held by the directory ${sticky}, which is sticky (mode ${m}: only an entry's owner, the directory's or root may rename the entry), and the entry on the way, the symbolic link ${link}, is uid 65534's: that user could rename the state directory away or put another in its place, and the agent would start again without its records (held outcomes deployed again)`,
          fix: `chown -h root ${link} (or to the agent's user, uid 0), ${lasting}`,
        },
      ])
      // Another user's directory on the way that the walk leaves by `..` (a link to
      // <sticky>/alice/../st): it is never judged as holding the next component, yet its owner may
      // rename it and put a link in its place, making alice/.. resolve where they choose. The sticky
      // directory's entry is named by its owner.
      dirOf(join(sticky, "st"), 0, 0, 0o700)
      const through = join(dir, `${name}-through`)
      symlinkSync(`${alice}/../st`, through)
      expect(stateWarnings(through)).toEqual([
        {
          field: "agent.state_dir",
          message: `the state directory ${through} is held by the directory ${sticky}, which is sticky (mode ${m}: only an entry's owner, the directory's or root may rename the entry), and the entry on the way, ${alice}, is uid 65534's: that user could rename the state directory away or put another in its place, and the agent would start again without its records (held outcomes deployed again)`,
          fix: `chown root ${alice} (or to the agent's user, uid 0), ${lasting}`,
        },
      ])
    }
    expect(docs).toContain(
      "a sticky directory's entry on the way that is another user's is named by that user",
    )
  })

  it("--check lists the same warning (field agent.state_dir), and the configuration stays valid (exit 0)", () => {
    const dir = scratch()
    const open = dirOf(join(dir, "open"), 0, 0, 0o777)
    mkdirSync(join(open, "st"), { mode: 0o700 })
    const r = spawnSync(
      process.execPath,
      [bin, "--config", configIn(dir, join(open, "st")), "--check", "--json"],
      {
        encoding: "utf8",
        env: { ...baseEnv(), ...azureEnv },
      },
    )
    expect(r.status, r.stdout + r.stderr).toBe(0)
    const warnings = JSON.parse(r.stdout).warnings as Array<Record<string, string>>
    // Missing yet (a first start makes it): the directory it would be made in is judged.
    const missing = spawnSync(
      process.execPath,
      [bin, "--config", configIn(dir, join(open, "new", "st")), "--check", "--json"],
      { encoding: "utf8", env: { ...baseEnv(), ...azureEnv } },
    )
    expect(missing.status, missing.stdout + missing.stderr).toBe(0)
    expect(
      (JSON.parse(missing.stdout).warnings as Array<Record<string, string>>)
        .filter((w) => w.field === "agent.state_dir")
        .map((w) => w.message),
    ).toEqual([expect.stringContaining(`is held by the directory ${open}, which is writable by every user`)])
    expect(warnings.filter((w) => w.field === "agent.state_dir")).toEqual([
      {
        field: "agent.state_dir",
        message: `the state directory ${join(open, "st")} is held by the directory ${open}, which is writable by every user (mode 0777, no sticky bit): any user could rename the state directory away or put another in its place, and the agent would start again without its records (held outcomes deployed again)`,
        fix: `chmod o-w ${open} (or chmod +t ${open}: then no other user may rename the agent's directory in it), or give agent.state_dir a directory whose every parent only root, the agent's user and its groups may write, such as /var/lib/kvdeploy-agent`,
      },
    ])
  })
})
