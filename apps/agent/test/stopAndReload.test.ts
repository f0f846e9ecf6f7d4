/**
 * How the agent stops and reloads when something is in the way: a listen address in use, a
 * grace period that ends with an import in flight, a reload that removes a deployment whose
 * import is in flight, an invalid file on SIGHUP.
 */
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs"
import { createServer } from "node:net"
import { join } from "node:path"
import { afterEach, describe, expect, it, onTestFinished } from "vitest"
import { stringify } from "yaml"
import {
  type AgentProcess,
  agentSuite,
  baseEnv,
  bin,
  checkAsNobody,
  metricValue,
  requestHeld,
  startAgent,
  writeConfig,
} from "./harness.js"

const VAULT = "agent-stop"
const suite = agentSuite([VAULT])
const started: Array<AgentProcess> = []
afterEach(() => {
  for (const a of started.splice(0)) a.kill()
  suite.emulator.faults.clear()
})
const start = (config: string) => {
  const a = startAgent(config, { ...baseEnv(), ...suite.emulator.env.clientSecret })
  started.push(a)
  return a
}

/** The deployments the state file has a record of. */
const stateNames = () =>
  Object.keys(
    (JSON.parse(readFileSync(suite.work.path("state/state.json"), "utf8")) as { deployments: object })
      .deployments,
  )

/** A deployment of `name` from freshly written files of `leaf`, to `${name}-cert`. */
const spec = (name: string, leaf: { certPem: string; keyPem: string }) => ({
  name,
  vault: VAULT,
  certificate: `${name}-cert`,
  source: {
    cert: suite.work.write(`${name}.crt`, leaf.certPem),
    key: suite.work.write(`${name}.key`, leaf.keyPem),
  },
})

/**
 * An agent with two deployments from `file`: `keptName` deployed, `heldName`'s import held by the
 * emulator until `release()` (it has reached the vault when this answers: committed, in flight).
 * A hold, not a delay: on a slow machine the import could still be unsent when a delay ran out or
 * when the test signalled.
 */
const startWithHeldImport = async (keptName: string, heldName: string, file: string) => {
  const { emulator, pki, work } = suite
  const kept = spec(keptName, await pki.leaf(`${keptName}.example.test`))
  const held = spec(heldName, await pki.leaf(`${heldName}.example.test`))
  const config = writeConfig(work, emulator, [kept, held], {}, file)
  const hold = emulator.faults.add({
    operation: "import",
    vault: VAULT,
    name: `${heldName}-cert`,
    action: { kind: "hold" },
  })
  const a = start(config)
  await a.waitFor((l) => l.deployment === keptName && l.msg === "deploy: Succeeded")
  await requestHeld(suite.emulator, hold)
  return { a, kept, release: () => emulator.faults.release(hold) }
}

/** Waits until the agent's metrics no longer name `deployment` (a reload removed it). */
const seriesGone = (a: AgentProcess, deployment: string) =>
  expect
    .poll(async () => (await a.http("/metrics")).body.includes(`deployment="${deployment}"`), {
      timeout: 30_000,
    })
    .toBe(false)

describe("stopping and reloading", () => {
  it("a listen address in use: exit 1 naming the address and the fix, before any pass", async () => {
    const { emulator, pki, work } = suite
    const held = createServer()
    await new Promise<void>((resolve) => held.listen(0, "127.0.0.1", resolve))
    const port = (held.address() as { port: number }).port
    try {
      const leaf = await pki.leaf("busy.example.test")
      const config = writeConfig(
        work,
        emulator,
        [spec("busy", leaf)],
        { listen: `127.0.0.1:${port}` },
        "busy.yaml",
      )
      const a = start(config)
      expect(await a.exited).toBe(1)
      const failure = a.lines.find((l) => l.msg === "kvdeploy-agent cannot start")
      expect(String(failure?.error)).toContain("EADDRINUSE")
      expect(String(failure?.fix)).toContain(`127.0.0.1:${port} is in use`)
      expect(a.lines.some((l) => l.msg === "pass over")).toBe(false)
      expect(emulator.state.versions(VAULT, "busy-cert")).toBeUndefined()
    } finally {
      held.close()
    }
  })

  it("a listen host name that does not resolve: exit 1 naming it, with the fix (the line had none)", async () => {
    const { emulator, pki, work } = suite
    const leaf = await pki.leaf("unresolved.example.test")
    const config = writeConfig(
      work,
      emulator,
      [spec("unresolved", leaf)],
      { listen: "no-such-host.invalid:9471" },
      "unresolved.yaml",
    )
    const a = start(config)
    expect(await a.exited).toBe(1)
    const failure = a.lines.find((l) => l.msg === "kvdeploy-agent cannot start")
    expect(String(failure?.error)).toContain("ENOTFOUND")
    expect(String(failure?.fix)).toMatch(/^agent\.listen no-such-host\.invalid:9471: listen on an IP address/)
    expect(emulator.state.versions(VAULT, "unresolved-cert")).toBeUndefined()
  })

  it("a state directory that cannot be created: exit 1 naming it and the fix, before any pass (it exited 1 silently)", async () => {
    const { emulator, pki, work } = suite
    const leaf = await pki.leaf("stateless.example.test")
    // A directory under a regular file: ENOTDIR, as a state_dir in a read-only tree gives EROFS.
    const file = work.write("not-a-directory", "x")
    const config = writeConfig(
      work,
      emulator,
      [spec("stateless", leaf)],
      { state_dir: `${file}/state` },
      "stateless.yaml",
    )
    const a = start(config)
    expect(await a.exited).toBe(1)
    const failure = a.lines.find((l) => l.msg === "kvdeploy-agent cannot start")
    expect(String(failure?.error)).toContain("ENOTDIR")
    expect(String(failure?.error)).toContain(`${file}/state`)
    expect(String(failure?.fix)).toContain("agent.state_dir")
    expect(a.lines.some((l) => l.msg === "pass over")).toBe(false)
    expect(emulator.state.versions(VAULT, "stateless-cert")).toBeUndefined()
  })

  it.skipIf(!existsSync("/proc/self"))(
    "a state directory under /proc, where mkdir fails with ENOENT: exit 1 naming it (a recursive mkdir spun for ever, deaf to SIGTERM)",
    async () => {
      const { emulator, pki, work } = suite
      const leaf = await pki.leaf("proc.example.test")
      const stateDir = "/proc/kvdeploy-agent-state"
      const a = start(writeConfig(work, emulator, [spec("proc", leaf)], { state_dir: stateDir }, "proc.yaml"))
      const exited = await Promise.race([
        a.exited,
        new Promise<"running">((resolve) => setTimeout(() => resolve("running"), 20_000)),
      ])
      if (exited === "running") a.kill()
      expect(exited).toBe(1)
      const failure = a.lines.find((l) => l.msg === "kvdeploy-agent cannot start")
      expect(String(failure?.error)).toContain(stateDir)
      expect(String(failure?.fix)).toContain("agent.state_dir")
      expect(emulator.state.versions(VAULT, "proc-cert")).toBeUndefined()
    },
  )

  it("a state directory another user made or may write: exit 1 naming it and the fix; a link to one of the agent's own is followed (systemd's DynamicUser=)", async () => {
    const { emulator, pki, work } = suite
    const leaf = await pki.leaf("planted.example.test")
    const refusal = async (stateDir: string, file: string) => {
      const a = start(writeConfig(work, emulator, [spec("planted", leaf)], { state_dir: stateDir }, file))
      expect(await a.exited).toBe(1)
      expect(a.lines.some((l) => l.msg === "pass over")).toBe(false)
      return a.lines.find((l) => l.msg === "kvdeploy-agent cannot start")
    }
    // Every user may write it: its state.json could be anyone's.
    const open = work.path("open-state")
    mkdirSync(open)
    chmodSync(open, 0o777)
    const openFailure = await refusal(open, "open-state.yaml")
    expect(openFailure?.error).toBe(`the state directory ${open} is writable by every user (mode 0777)`)
    expect(openFailure?.fix).toBe(`chmod 0700 ${open} (the agent creates it so)`)
    if (process.getuid?.() === 0) {
      const theirs = work.path("their-state")
      mkdirSync(theirs, { mode: 0o700 })
      chownSync(theirs, 4242, 4242)
      const theirFailure = await refusal(theirs, "their-state.yaml")
      expect(theirFailure?.error).toBe(
        `the state directory ${theirs} is owned by uid 4242, not by the agent's user (uid 0)`,
      )
      expect(String(theirFailure?.fix)).toContain(`chown 0 ${theirs} && chmod 0700 ${theirs}`)
    }
    expect(emulator.state.versions(VAULT, "planted-cert")).toBeUndefined()
    // systemd's StateDirectory= with DynamicUser=: a link (root's, in a directory of root's) into a
    // private directory of the agent's user, 0700.
    mkdirSync(work.path("private/kvdeploy-agent"), { recursive: true, mode: 0o700 })
    symlinkSync("private/kvdeploy-agent", work.path("linked-state"))
    const a = start(
      writeConfig(
        work,
        emulator,
        [spec("planted", leaf)],
        { state_dir: work.path("linked-state") },
        "linked.yaml",
      ),
    )
    await a.waitFor((l) => l.deployment === "planted" && l.msg === "deploy: Succeeded")
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
    expect(
      Object.keys(
        JSON.parse(readFileSync(work.path("private/kvdeploy-agent/state.json"), "utf8")).deployments,
      ),
    ).toEqual(["planted"])
  })

  it.skipIf(process.getuid?.() !== 0)(
    "a state file the agent's user may not read (root's, after a sudo edit): exit 1 naming it and the fix, the file left in place",
    async () => {
      const { emulator, pki } = suite
      // A directory of its own that uid 65534 may reach: the agent runs as that user.
      const dir = mkdtempSync(join("/dev/shm", "kvdeploy-agent-unreadable-state-"))
      onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
      chmodSync(dir, 0o755)
      const leaf = await pki.leaf("unread.example.test")
      writeFileSync(join(dir, "unread.crt"), leaf.certPem, { mode: 0o644 })
      writeFileSync(join(dir, "unread.key"), leaf.keyPem, { mode: 0o644 })
      const stateDir = join(dir, "state")
      mkdirSync(stateDir, { mode: 0o700 })
      chownSync(stateDir, 65534, 65534)
      // A held outcome, in a file root wrote back 0600 (sudo install, sudo cp -p of a backup).
      const stateFile = join(stateDir, "state.json")
      const text = `${JSON.stringify({
        schema: "kvdeploy.agent-state/v1",
        deployments: {
          unread: {
            outcome: "RollbackFailed",
            at: "2026-01-01T00:00:00.000Z",
            reason: "the rollback failed",
            configFingerprint: "c".repeat(64),
            held: true,
          },
        },
      })}\n`
      writeFileSync(stateFile, text, { mode: 0o600 })
      const config = join(dir, "agent.yaml")
      writeFileSync(
        config,
        stringify({
          agent: { listen: "127.0.0.1:0", state_dir: stateDir },
          deployments: [
            {
              name: "unread",
              source: { cert: join(dir, "unread.crt"), key: join(dir, "unread.key") },
              target: emulator.targetConfig(VAULT, "unread-cert", "clientSecret"),
            },
          ],
        }),
        { mode: 0o644 },
      )
      const a = startAgent(
        config,
        { ...baseEnv(), ...emulator.env.clientSecret },
        { command: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, bin] },
      )
      started.push(a)
      // Before: set aside as state.json.unreadable-TIME, and the agent started without its records.
      const ended = await Promise.race([
        a.exited,
        a
          .waitFor((l) => l.msg === "kvdeploy-agent started")
          .then(
            () => "started",
            () => "exited",
          ),
      ])
      expect(ended).toBe(1)
      const failure = a.lines.find((l) => l.msg === "kvdeploy-agent cannot start")
      expect(failure?.error).toBe(
        `the state file ${stateFile} may not be read by uid 65534 (EACCES): the agent would start without its records, and deploy again what they hold for a person`,
      )
      expect(failure?.fix).toBe(
        `chown 65534 ${stateFile} && chmod 0600 ${stateFile} (its records are kept), or remove it to start without state`,
      )
      expect(readdirSync(stateDir).filter((f) => f.startsWith("state.json"))).toEqual(["state.json"])
      expect(readFileSync(stateFile, "utf8")).toBe(text)
      expect(emulator.state.versions(VAULT, "unread-cert")).toBeUndefined()
      // --check run as the agent's user says so too.
      const checked = checkAsNobody(config)
      expect(checked.status).toBe(2)
      expect(JSON.parse(checked.stdout).problems).toContainEqual({
        field: "agent.state_dir",
        message: failure?.error,
        fix: failure?.fix,
      })
    },
  )

  it("a state file that cannot be written: a warning on stdout, and the exit after SIGTERM is 1", async () => {
    const { emulator, pki, work } = suite
    const leaf = await pki.leaf("unwritten.example.test")
    const stateDir = work.path("unwritten-state")
    const config = writeConfig(
      work,
      emulator,
      [spec("unwritten", leaf)],
      { state_dir: stateDir },
      "unwritten.yaml",
    )
    const a = start(config)
    await a.waitFor((l) => l.deployment === "unwritten" && l.msg === "deploy: Succeeded")
    const written = async () =>
      metricValue((await a.http("/metrics")).body, "kvdeploy_agent_state_last_write_successful", {})
    expect(await written()).toBe(1)
    // The directory becomes a file; a renewal gives the state something new to write.
    rmSync(stateDir, { recursive: true, force: true })
    writeFileSync(stateDir, "not a directory")
    const renewed = await pki.leaf("unwritten.example.test")
    const from = a.lines.length
    work.write("unwritten.key", renewed.keyPem)
    work.write("unwritten.crt", renewed.certPem)
    await a.waitFor((l) => l.deployment === "unwritten" && l.msg === "deploy: Succeeded", { from })
    // The pass's write (after 3 s of quiet) fails: /metrics says so, not the log alone.
    await expect.poll(written, { timeout: 15_000, interval: 500 }).toBe(0)
    a.signal("SIGTERM")
    expect(await a.exited).toBe(1)
    // The write at shutdown is the one that fails (the pass's write waits for 3 s of quiet): its
    // warning is logged before the exit's error, at once (a forked line could lose the race with the exit).
    const warned = a.lines.findIndex(
      (l) => l.level === "warn" && /state file .* cannot be written/.test(String(l.msg)),
    )
    const failed = a.lines.findIndex(
      (l) => l.level === "error" && String(l.msg).startsWith("the state file cannot be written"),
    )
    expect(warned).toBeGreaterThanOrEqual(0)
    expect(failed).toBeGreaterThan(warned)
    // Each with what to do (the lines had none).
    expect(String(a.lines[warned]?.msg)).toContain(
      `; fix: ${stateDir} is no longer a directory the agent can write into: remove what is there and restart the agent`,
    )
    expect(String(a.lines[failed]?.fix)).toMatch(/^make the state directory writable again/)
    expect(a.stderr()).not.toContain("cannot be written")
  })

  it("SIGTERM whose grace period ends with an import in flight: exit 1, the deployment named", async () => {
    const { emulator, pki, work } = suite
    const leaf = await pki.leaf("slow.example.test")
    const config = writeConfig(
      work,
      emulator,
      [spec("slow", leaf)],
      { shutdown_grace_seconds: 1 },
      "slow.yaml",
    )
    // Held until the agent has exited: the import is in flight at SIGTERM however slow the start.
    const hold = emulator.faults.add({
      operation: "import",
      vault: VAULT,
      name: "slow-cert",
      action: { kind: "hold" },
    })
    const a = start(config)
    await requestHeld(suite.emulator, hold)
    expect(a.lines.some((l) => l.deployment === "slow" && /^deploy: /.test(l.msg))).toBe(false)
    a.signal("SIGTERM")
    expect(await a.exited).toBe(1)
    const warning = a.lines.find((l) => /exiting with deploys unfinished/.test(l.msg))
    expect(warning?.deployments).toEqual(["slow"])
    emulator.faults.release(hold)
  })

  it("a reload that removes a deployment with an import in flight: its series and state stay removed", async () => {
    const { emulator, work } = suite
    const { a, kept, release } = await startWithHeldImport("keep", "gone", "reload.yaml")
    // gone's import is held; the reload removes it, and waits for the import before it applies.
    writeConfig(work, emulator, [kept], {}, "reload.yaml")
    let from = a.lines.length
    a.signal("SIGHUP")
    await seriesGone(a, "gone")
    release()
    await a.waitFor((l) => l.msg === "configuration applied", { from })
    // The import's late outcome came after the removal: it must not bring the series back.
    expect(emulator.state.versions(VAULT, "gone-cert")).toHaveLength(1)
    const page = (await a.http("/metrics")).body
    expect(page).toMatch(/kvdeploy_agent_last_outcome\{deployment="keep"/)
    expect(page).not.toContain('deployment="gone"')
    // Its certificate's expiry series too: an alert on it would fire for a certificate no longer deployed.
    expect(page).toMatch(/kvdeploy_certificate_expiry_timestamp_seconds\{[^}]*certificate_name="keep-cert"/)
    expect(page).not.toContain('certificate_name="gone-cert"')
    expect(metricValue(page, "kvdeploy_agent_config_last_reload_successful", {})).toBe(1)
    const loadedAt = metricValue(page, "kvdeploy_agent_config_last_reload_success_timestamp_seconds", {})
    expect(loadedAt).toBeGreaterThan(Date.now() / 1000 - 120)
    // An invalid file on SIGHUP: every problem with its fix, the running configuration kept.
    work.write("reload.yaml", "agent:\n  backof_base_seconds: 1\ndeployments: []\n")
    from = a.lines.length
    a.signal("SIGHUP")
    const invalid = await a.waitFor((l) => /the new configuration is invalid/.test(l.msg), { from })
    expect(JSON.stringify(invalid.problems)).toContain("fix:")
    // The line names the file and what to do (it had neither: an error search found it alone).
    const reloaded = work.path("reload.yaml")
    expect(invalid.config).toBe(reloaded)
    expect(invalid.fix).toBe(
      `correct ${reloaded} (kvdeploy-agent --config ${reloaded} --check lists every problem), then send SIGHUP again; until then the agent runs the configuration it ran before (kvdeploy_agent_config_last_reload_successful is 0)`,
    )
    // Before, it showed on the log alone: systemctl reload succeeds whatever the file holds.
    const after = (await a.http("/metrics")).body
    expect(metricValue(after, "kvdeploy_agent_config_last_reload_successful", {})).toBe(0)
    expect(metricValue(after, "kvdeploy_agent_config_last_reload_success_timestamp_seconds", {})).toBe(
      loadedAt,
    )
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
    expect(stateNames()).toEqual(["keep"])
  })

  it("records of deployments no longer configured are dropped at start (after the reload test's state)", async () => {
    const { emulator, pki, work } = suite
    expect(stateNames()).toEqual(["keep"])
    const leaf = await pki.leaf("fresh.example.test")
    const config = writeConfig(work, emulator, [spec("fresh", leaf)], {}, "fresh.yaml")
    const a = start(config)
    const dropped = await a.waitFor((l) =>
      /dropped the records of deployments no longer configured/.test(l.msg),
    )
    expect(dropped.deployments).toEqual(["keep"])
    await a.waitFor((l) => l.deployment === "fresh" && l.msg === "deploy: Succeeded")
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
    expect(stateNames()).toEqual(["fresh"])
  })

  it("SIGTERM while a reload waits for a removed deployment's import: the import is waited for, not abandoned", async () => {
    const { emulator, work } = suite
    const { a, kept, release } = await startWithHeldImport("stays", "leaves", "term.yaml")
    writeConfig(work, emulator, [kept], {}, "term.yaml")
    a.signal("SIGHUP")
    // The reload has removed it and waits for its import.
    await seriesGone(a, "leaves")
    const from = a.lines.length
    a.signal("SIGTERM")
    await a.waitFor((l) => /^stopping/.test(l.msg), { from })
    // The agent waits for the held import: it has not exited a second later (abandoning it, it
    // exited at once).
    const early = await Promise.race([
      a.exited.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 1000)),
    ])
    expect(early).toBe(false)
    release()
    expect(await a.exited).toBe(0)
    expect(emulator.state.versions(VAULT, "leaves-cert")).toHaveLength(1)
  })

  /** Resolves once the process catches SIGHUP (Linux: bit 0 of SigCgt in /proc/PID/status). */
  const catchingHangups = async (pid: number) => {
    for (let i = 0; i < 2_000; i++) {
      const status = readFileSync(`/proc/${pid}/status`, "utf8")
      const caught = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status)?.[1]
      if (caught !== undefined && (BigInt(`0x${caught}`) & 1n) === 1n) return
      await new Promise((r) => setTimeout(r, 2))
    }
    throw new Error("the agent never caught SIGHUP")
  }

  it("SIGHUP from the first moment the process catches it, during start-up: no death, one reload once running", async () => {
    const { emulator, pki, work } = suite
    const leaf = await pki.leaf("early-hup.example.test")
    const a = start(writeConfig(work, emulator, [spec("early-hup", leaf)], {}, "early-hup.yaml"))
    // The first SIGHUP listener of the process (before: the state lock's exit hook, which re-raised
    // the signal, and the agent died by it without a word).
    await catchingHangups(a.child.pid ?? 0)
    a.signal("SIGHUP")
    await a.waitFor((l) => l.msg === "SIGHUP: reloading the configuration")
    await a.waitFor((l) => l.deployment === "early-hup" && l.msg === "deploy: Succeeded")
    expect(a.lines.some((l) => /^SIGHUP while the agent is not running its passes/.test(String(l.msg)))).toBe(
      true,
    )
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
  })

  it("SIGHUP while stopping is ignored: the import in flight is waited for, the exit is the grace period's", async () => {
    const { emulator, pki, work } = suite
    const leaf = await pki.leaf("late-hup.example.test")
    const hold = emulator.faults.add({
      operation: "import",
      vault: VAULT,
      name: "late-hup-cert",
      action: { kind: "hold" },
    })
    const a = start(writeConfig(work, emulator, [spec("late-hup", leaf)], {}, "late-hup.yaml"))
    await requestHeld(emulator, hold)
    const from = a.lines.length
    a.signal("SIGTERM")
    await a.waitFor((l) => /^stopping/.test(String(l.msg)), { from })
    a.signal("SIGHUP")
    await a.waitFor((l) => /^SIGHUP while the agent is not running its passes/.test(String(l.msg)), { from })
    emulator.faults.release(hold)
    // Before: killed by the SIGHUP (129), the import's outcome and the state's last write lost.
    expect(await a.exited).toBe(0)
    expect(a.lines.some((l) => l.deployment === "late-hup" && l.msg === "deploy: Succeeded")).toBe(true)
    expect(stateNames()).toContain("late-hup")
  })

  it("a configuration file others may change: a warning and its gauge at start and at each reload while it lasts, and the agent runs", async () => {
    const { emulator, pki, work } = suite
    const open = work.path("open")
    mkdirSync(open)
    chmodSync(open, 0o777)
    const written = writeConfig(
      work,
      emulator,
      [spec("open-dir", await pki.leaf("open-dir.example.test"))],
      {
        state_dir: work.path("state-open"),
      },
      "open-dir.yaml",
    )
    const config = `${open}/agent.yaml`
    writeFileSync(config, readFileSync(written))
    const a = start(config)
    const warned = (from: number) =>
      a.lines.slice(from).filter((l) => l.level === "warn" && /^the configuration file: /.test(l.msg))
    await a.waitFor((l) => l.deployment === "open-dir" && l.msg === "deploy: Succeeded")
    expect(warned(0)).toEqual([
      expect.objectContaining({
        msg: `the configuration file: the directory ${open} is writable by every user (mode 0777, no sticky bit): a user other than root and the agent's could change the configuration, and with it which files the agent deploys and to which vaults (it is read all the same)`,
        config,
        fix: expect.stringMatching(new RegExp(`^chmod o-w ${open}; `)),
      }),
    ])
    const gauge = async () =>
      metricValue((await a.http("/metrics")).body, "kvdeploy_agent_config_changeable_by_others", {})
    expect(await gauge()).toBe(1)
    // Mended, then reloaded: no warning. Opened again: the reload warns again.
    chmodSync(open, 0o755)
    let from = a.lines.length
    a.signal("SIGHUP")
    await a.waitFor((l) => /^configuration unchanged/.test(l.msg), { from })
    expect(warned(from)).toEqual([])
    expect(await gauge()).toBe(0)
    // Opened again and made invalid: the reload that keeps the running configuration says so too.
    chmodSync(open, 0o777)
    writeFileSync(config, "deployments: [\n")
    from = a.lines.length
    a.signal("SIGHUP")
    await a.waitFor((l) => /^the new configuration is invalid/.test(l.msg), { from })
    expect(warned(from)).toHaveLength(1)
    expect(await gauge()).toBe(1)
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
  })

  it("a reload that points a deployment at another certificate while its first read is in flight: nothing is written to the old one", async () => {
    const { emulator, pki, work } = suite
    const leaf = await pki.leaf("moved.example.test")
    const before = spec("moved", leaf)
    const config = writeConfig(
      work,
      emulator,
      [before],
      { state_dir: work.path("state-moved") },
      "moved.yaml",
    )
    // The comparison read of the old target is held: the run is the old configuration's, before its import.
    const hold = emulator.faults.add({
      operation: "getLatest",
      vault: VAULT,
      name: "moved-cert",
      action: { kind: "hold" },
    })
    const a = start(config)
    await requestHeld(emulator, hold)
    writeConfig(
      work,
      emulator,
      [{ ...before, certificate: "moved-elsewhere" }],
      { state_dir: work.path("state-moved") },
      "moved.yaml",
    )
    const from = a.lines.length
    a.signal("SIGHUP")
    await a.waitFor((l) => l.msg === "configuration applied", { from })
    emulator.faults.release(hold)
    await a.waitFor(
      (l) => l.deployment === "moved" && l.certificate === "moved-elsewhere" && l.msg === "deploy: Succeeded",
      { from },
    )
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
    // Before: the old configuration's run went on once its read was answered, and imported into the
    // certificate the reload had moved the deployment away from.
    expect(emulator.state.versions(VAULT, "moved-cert") ?? []).toHaveLength(0)
    expect(a.lines.some((l) => l.certificate === "moved-cert" && /^deploy: /.test(l.msg))).toBe(false)
    expect(emulator.state.versions(VAULT, "moved-elsewhere")).toHaveLength(1)
  })

  it("a reload that points a deployment at another certificate while its import is sent: the import is waited for and recorded, then the new one deployed", async () => {
    const { emulator, pki, work } = suite
    const leaf = await pki.leaf("sent.example.test")
    const before = spec("sent", leaf)
    const settings = { state_dir: work.path("state-sent") }
    const config = writeConfig(work, emulator, [before], settings, "sent.yaml")
    const hold = emulator.faults.add({
      operation: "import",
      vault: VAULT,
      name: "sent-cert",
      action: { kind: "hold" },
    })
    const a = start(config)
    await requestHeld(emulator, hold)
    writeConfig(work, emulator, [{ ...before, certificate: "sent-elsewhere" }], settings, "sent.yaml")
    const from = a.lines.length
    a.signal("SIGHUP")
    await a.waitFor((l) => l.msg === "SIGHUP: reloading the configuration", { from })
    emulator.faults.release(hold)
    await a.waitFor(
      (l) => l.deployment === "sent" && l.certificate === "sent-elsewhere" && l.msg === "deploy: Succeeded",
      { from },
    )
    // The import already sent ended, and was said, before the reload said it had applied the change
    // (before: `configuration applied` came first, while the old configuration's import was still held).
    const sent = a.lines.findIndex((l) => l.certificate === "sent-cert" && l.msg === "deploy: Succeeded")
    const applied = a.lines.findIndex((l, i) => i >= from && l.msg === "configuration applied")
    expect(sent).toBeGreaterThanOrEqual(0)
    expect(applied).toBeGreaterThan(sent)
    expect(emulator.state.versions(VAULT, "sent-cert")).toHaveLength(1)
    expect(emulator.state.versions(VAULT, "sent-elsewhere")).toHaveLength(1)
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
  })
})
