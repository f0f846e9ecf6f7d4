/**
 * The single executable (Node's single-executable-application support),
 * started with no Node.js on PATH, deploys against the emulator and exits 0
 * on SIGTERM. Building it takes tens of seconds (esbuild bundle, SEA blob,
 * postject injection into a copy of the Node binary); it is built once in
 * beforeAll and the time is printed.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { join } from "node:path"
import type { Emulator } from "@kvdeploy/kv-emulator"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  type AgentProcess,
  agentRoot,
  baseEnv,
  startAgent,
  startEmulator,
  type Workdir,
  workdir,
  writeConfig,
} from "./harness.js"
import { makePki } from "./pki.js"

const exe = join(agentRoot, "dist", "sea", "kvdeploy-agent")
let emulator: Emulator
let work: Workdir
let emptyPath: string
let agent: AgentProcess | undefined

beforeAll(async () => {
  const started = Date.now()
  execFileSync(process.execPath, [join(agentRoot, "scripts", "bundle.mjs"), "--sea"], {
    cwd: agentRoot,
    stdio: "pipe",
  })
  execFileSync(process.execPath, [join(agentRoot, "scripts", "sea.mjs")], { cwd: agentRoot, stdio: "pipe" })
  process.stdout.write(`single executable built in ${Date.now() - started} ms\n`)
  emulator = await startEmulator({ vaults: ["kv-sea"] })
  work = workdir()
  emptyPath = mkdtempSync(join("/dev/shm", "kvdeploy-agent-nopath-"))
}, 300_000)

afterAll(async () => {
  agent?.kill()
  work?.remove()
  if (emptyPath !== undefined) rmSync(emptyPath, { recursive: true, force: true })
  await emulator?.stop()
})

describe("single executable", () => {
  it("runs with no Node.js on PATH: deploys (through a material worker), releases memory after the pass, serves /metrics, ignores SIGUSR1, exits 0 on SIGTERM", async () => {
    const env = { ...baseEnv(), ...emulator.env.clientSecret, PATH: emptyPath }
    // Nothing named node is reachable through that PATH.
    expect(spawnSync("node", ["--version"], { env }).error).toBeDefined()
    const pki = await makePki()
    const leaf = await pki.leaf("sea.example.test")
    work.write("sea.key", leaf.keyPem)
    work.write("sea.crt", leaf.certPem)
    const config = writeConfig(
      work,
      emulator,
      [
        {
          name: "sea",
          vault: "kv-sea",
          certificate: "sea",
          source: { cert: work.path("sea.crt"), key: work.path("sea.key") },
        },
        // One material worker: the executable runs it from its SEA asset.
      ],
      { material_workers: 1 },
    )
    agent = startAgent(config, env, { command: [exe] })
    await agent.waitFor((l) => l.deployment === "sea" && l.msg === "deploy: Succeeded", { timeoutMs: 60_000 })
    expect(emulator.state.versions("kv-sea", "sea")?.at(-1)?.x5t).toBe(leaf.x5t)
    // The executable starts Node with --expose-gc (sea-config execArgv): memory is released after the pass.
    const started = await agent.waitFor((l) => l.msg === "kvdeploy-agent started")
    expect(started.releaseMemoryAfterPass).toBe(true)
    expect(started.materialWorkers).toBe(1)
    // The deploy's material came from the worker (its asset ran), which then ended idle.
    const ended = await agent.waitFor((l) => l.msg === "material workers ended (idle)", { timeoutMs: 15_000 })
    expect(ended.answered).toBeGreaterThanOrEqual(1)
    expect(ended.handedBack).toBe(0)
    expect(agent.lines.filter((l) => /^material worker (failed|error)/.test(l.msg))).toEqual([])
    const released = await agent.waitFor((l) => l.msg === "idle: memory released after the pass", {
      timeoutMs: 15_000,
    })
    expect(released.attempts).toBeGreaterThanOrEqual(1)
    expect(released.rssAfterMb).toBeGreaterThan(0)
    await agent.waitFor((l) => /Listening on/.test(l.msg))
    expect((await agent.http("/metrics")).body).toContain("certctl_deploy_attempts_total")
    // SIGUSR1 does not open Node's inspector in the executable either (with --disable-sigusr1 in its
    // execArgv where the building Node has it, Node ignores the signal before the agent's listener).
    agent.signal("SIGUSR1")
    await new Promise((r) => setTimeout(r, 1000))
    expect(agent.stderr()).not.toContain("Debugger listening")
    expect((await agent.http("/healthz")).status).toBe(200)
    agent.signal("SIGTERM")
    expect(await agent.exited).toBe(0)
  })
})
