/**
 * Sources other than separate PEM files, and the consumer pickup check: a
 * PFX (password from an environment variable, made by OpenSSL), a PFX whose
 * password is wrong (reported, never sent), and a TLS endpoint expected to
 * serve the deployed certificate, reported as kvdeploy_agent_pickup_ok.
 */
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { createServer, type Server } from "node:tls"
import type { Emulator } from "@kvdeploy/kv-emulator"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  type AgentProcess,
  baseEnv,
  metricValue,
  startAgent,
  startEmulator,
  type Workdir,
  workdir,
  writeConfig,
} from "./harness.js"
import { makePki, type Pki } from "./pki.js"

const VAULT = "kv-sources"
let emulator: Emulator
let work: Workdir
let pki: Pki
let agent: AgentProcess | undefined
const servers: Array<Server> = []

beforeAll(async () => {
  emulator = await startEmulator({ vaults: [VAULT] })
  work = workdir()
  pki = await makePki()
})
afterAll(async () => {
  agent?.kill()
  for (const s of servers) s.close()
  work.remove()
  await emulator.stop()
})

const tlsServer = (certPem: string, keyPem: string): Promise<number> =>
  new Promise((resolve) => {
    const server = createServer({ cert: certPem, key: keyPem }, (socket) => socket.end())
    servers.push(server)
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port))
  })

describe("sources and pickup", () => {
  it("deploys a PFX, refuses one it cannot open, and reports whether consumers serve the certificate", async () => {
    const pfxLeaf = await pki.leaf("pfx.example.test")
    const certFile = work.write("pfx-leaf.crt", pfxLeaf.certPem)
    const keyFile = work.write("pfx-leaf.key", pfxLeaf.keyPem)
    execFileSync(
      "openssl",
      [
        "pkcs12",
        "-export",
        "-in",
        certFile,
        "-inkey",
        keyFile,
        "-out",
        work.path("good.pfx"),
        "-passout",
        "env:PFX_PW",
      ],
      { env: { ...process.env, PFX_PW: "correct horse" } },
    )
    execFileSync(
      "openssl",
      [
        "pkcs12",
        "-export",
        "-in",
        certFile,
        "-inkey",
        keyFile,
        "-out",
        work.path("other.pfx"),
        "-passout",
        "env:PFX_PW",
      ],
      { env: { ...process.env, PFX_PW: "another password" } },
    )

    const served = await pki.leaf("served.example.test")
    work.write("served.crt", served.certPem)
    work.write("served.key", served.keyPem)
    const stale = await pki.leaf("served.example.test")
    const goodPort = await tlsServer(served.certPem, served.keyPem)
    const stalePort = await tlsServer(stale.certPem, stale.keyPem)
    const servedStale = await pki.leaf("stale.example.test")
    work.write("stale.crt", servedStale.certPem)
    work.write("stale.key", servedStale.keyPem)

    const specs = (stalePickup: boolean) => [
      {
        name: "pfx",
        vault: VAULT,
        certificate: "pfx",
        source: { pfx: work.path("good.pfx"), pfx_password_env: "PFX_PW" },
      },
      {
        name: "pfx-wrong",
        vault: VAULT,
        certificate: "pfx-wrong",
        source: { pfx: work.path("other.pfx"), pfx_password_env: "PFX_PW" },
      },
      {
        name: "served",
        vault: VAULT,
        certificate: "served",
        source: { cert: work.path("served.crt"), key: work.path("served.key") },
        pickup: { host: "127.0.0.1", port: goodPort, servername: "served.example.test" },
      },
      {
        name: "stale",
        vault: VAULT,
        certificate: "stale",
        source: { cert: work.path("stale.crt"), key: work.path("stale.key") },
        ...(stalePickup ? { pickup: { host: "127.0.0.1", port: stalePort } } : {}),
      },
    ]
    // One material worker (opt-in): the PFX and its password go through it, as an agent configured so runs.
    const config = writeConfig(work, emulator, specs(true), { material_workers: 1 })
    agent = startAgent(config, { ...baseEnv(), ...emulator.env.clientSecret, PFX_PW: "correct horse" })
    const a = agent
    // The started line gives the workers the agent may start (the worker is built next to it).
    expect((await a.waitFor((l) => l.msg === "kvdeploy-agent started")).materialWorkers).toBe(1)
    await a.waitFor((l) => l.deployment === "pfx" && l.msg === "deploy: Succeeded")
    expect(emulator.state.versions(VAULT, "pfx")?.at(-1)?.x5t).toBe(pfxLeaf.x5t)
    const wrong = await a.waitFor((l) => l.deployment === "pfx-wrong" && /^source broken/.test(l.msg))
    expect(JSON.stringify(wrong.problems)).toMatch(/PFX_PW does not open it/)
    expect(emulator.state.versions(VAULT, "pfx-wrong")).toBeUndefined()
    expect(JSON.stringify(a.lines)).not.toContain("correct horse")

    await a.waitFor((l) => l.deployment === "served" && /^pickup: the consumer serves/.test(l.msg))
    await a.waitFor((l) => l.deployment === "stale" && /^pickup: the consumer does not serve/.test(l.msg))
    const page = (await a.http("/metrics")).body
    expect(metricValue(page, "kvdeploy_agent_pickup_ok", { deployment: "served" })).toBe(1)
    expect(metricValue(page, "kvdeploy_agent_pickup_ok", { deployment: "stale" })).toBe(0)
    // The stale deployment's pickup check taken out by a reload: its last answer is no longer served
    // (an alert on it kept firing until a restart).
    const from = a.lines.length
    writeConfig(work, emulator, specs(false), { material_workers: 1 })
    a.signal("SIGHUP")
    await a.waitFor((l) => l.msg === "configuration applied", { from })
    const reloaded = (await a.http("/metrics")).body
    expect(reloaded).not.toContain('kvdeploy_agent_pickup_ok{deployment="stale"}')
    expect(metricValue(reloaded, "kvdeploy_agent_pickup_ok", { deployment: "served" })).toBe(1)
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
    expect(readFileSync(work.path("state/state.json"), "utf8")).not.toContain("correct horse")
  })
})
