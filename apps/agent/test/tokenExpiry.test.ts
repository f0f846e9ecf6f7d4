/**
 * Tokens that expire while the agent runs: with 3-second tokens and a vault that refuses a token
 * the moment it expires, the agent keeps comparing every second for several lifetimes, in client
 * secret and in managed identity (IMDS) mode, and never sends an expired token.
 */
import type { Emulator } from "@kvdeploy/kv-emulator"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { baseEnv, startAgent, startEmulator, type Workdir, workdir, writeConfig } from "./harness.js"
import { makePki, type Pki } from "./pki.js"

const VAULT = "agent-token-expiry"
let emulator: Emulator
let work: Workdir
let pki: Pki
beforeAll(async () => {
  emulator = await startEmulator({ vaults: [VAULT], tokenLifetimeSeconds: 3, tokenClockSkewSeconds: 0 })
  work = workdir()
  pki = await makePki()
})
afterAll(async () => {
  work?.remove()
  await emulator?.stop()
})

describe("tokens that expire while the agent runs", () => {
  it("are refreshed: every comparison over several lifetimes is answered, in client secret and managed identity mode", async () => {
    const deployments = []
    for (const [name, mode] of [
      ["secret", "clientSecret"],
      ["imds", "managedIdentityImds"],
    ] as const) {
      const leaf = await pki.leaf(`${name}.example.test`)
      deployments.push({
        name,
        vault: VAULT,
        certificate: name,
        source: {
          cert: work.write(`${name}.crt`, leaf.certPem),
          key: work.write(`${name}.key`, leaf.keyPem),
        },
        target: emulator.targetConfig(VAULT, name, mode),
      })
    }
    const config = writeConfig(work, emulator, deployments, { reconcile_interval_seconds: 1 })
    const a = startAgent(config, {
      ...baseEnv(),
      ...emulator.env.clientSecret,
      ...emulator.env.managedIdentityImds,
    })
    try {
      for (const name of ["secret", "imds"])
        await a.waitFor((l) => l.deployment === name && l.msg === "deploy: Succeeded")
      const mark = emulator.requests.mark()
      const from = a.lines.length
      // Eight interval passes, one a second: more than two lifetimes of every token.
      for (let i = 0; i < 8; i++)
        await a.waitFor((l) => l.msg === "pass over" && l.reason === "interval", { from: a.lines.length })
      const reads = emulator.requests
        .entries({ vault: VAULT, since: mark })
        .filter((r) => !r.challenge)
        .map((r) => `${r.operation} ${r.status}`)
      expect(reads.length).toBeGreaterThanOrEqual(8)
      expect(reads.filter((r) => r !== "getLatest 200" && r !== "list 200")).toEqual([])
      // Each identity asked again for a token as its tokens expired.
      const asked = (operation: string) => emulator.requests.entries({ since: mark, operation }).length
      expect(asked("token")).toBeGreaterThanOrEqual(2)
      expect(asked("imdsToken")).toBeGreaterThanOrEqual(2)
      expect(a.lines.slice(from).filter((l) => l.level !== "info")).toEqual([])
    } finally {
      a.kill()
    }
  })
})
