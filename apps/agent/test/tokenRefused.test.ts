/**
 * A token the agent holds as valid that the vault refuses: the host's clock was set back after the
 * agent got its tokens (the identity libraries judge a token's expiry by the host's clock, the vault
 * by Azure's). The emulator's token clock moved two hours ahead stands for it: every token the agent
 * holds has expired for the vault, while the agent's clock says an hour is left. The agent must let
 * go of what it holds and ask for a new token, not keep sending the refused one until the host's
 * clock catches up: in client secret and workload identity mode it does. A managed identity's token
 * is kept by MSAL for the whole process (@azure/identity gives no way past that cache), so in that
 * mode the agent says so, and to restart.
 */
import type { AuthMode, Emulator } from "@kvdeploy/kv-emulator"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { baseEnv, startAgent, startEmulator, type Workdir, workdir, writeConfig } from "./harness.js"
import { makePki, type Pki } from "./pki.js"

const VAULT = "agent-token-refused"
let emulator: Emulator
let work: Workdir
let pki: Pki
beforeAll(async () => {
  // The vault refuses a token the moment it expires (no skew), as the emulator's clock says.
  emulator = await startEmulator({ vaults: [VAULT], tokenClockSkewSeconds: 0 })
  work = workdir()
  pki = await makePki()
})
afterAll(async () => {
  work?.remove()
  await emulator?.stop()
})

/**
 * An agent deploying one certificate per mode (`renewed`: a mode whose tokens the agent renews,
 * `kept`: a managed identity's), once every deploy succeeded the token clock moved two hours ahead;
 * answers what followed, from `mark` in the request log and `from` in the agent's lines.
 */
const afterTheClockMoved = async (renewed: AuthMode, kept?: AuthMode) => {
  emulator.setTokenClockOffset(0)
  const modes = kept === undefined ? [renewed] : [renewed, kept]
  const deployments = []
  for (const mode of modes) {
    const leaf = await pki.leaf(`${mode.toLowerCase()}.example.test`)
    deployments.push({
      name: mode,
      vault: VAULT,
      certificate: mode,
      source: {
        cert: work.write(`${mode}.crt`, leaf.certPem),
        key: work.write(`${mode}.key`, leaf.keyPem),
      },
      target: emulator.targetConfig(VAULT, mode, mode),
    })
  }
  // Each agent its own state directory: the one before it was killed holding its lock.
  const config = writeConfig(
    work,
    emulator,
    deployments,
    { reconcile_interval_seconds: 1, state_dir: work.path(`state-${renewed}`) },
    `${renewed}.yaml`,
  )
  const env = Object.assign(baseEnv(), ...modes.map((m) => emulator.env[m]))
  const a = startAgent(config, env)
  for (const mode of modes) await a.waitFor((l) => l.deployment === mode && l.msg === "deploy: Succeeded")
  const mark = emulator.requests.mark()
  const from = a.lines.length
  emulator.setTokenClockOffset(2 * 3600)
  const readsOf = (mode: AuthMode) =>
    emulator.requests
      .entries({ vault: VAULT, since: mark })
      .filter((r) => !r.challenge && r.path.includes(`/certificates/${mode}`))
      .map((r) => r.status)
  return { a, mark, from, readsOf }
}

describe("a token the vault refuses while the agent holds it valid", () => {
  for (const mode of ["clientSecret", "workloadIdentity"] as const)
    it(`is let go of in ${mode} mode: the agent asks for a new token and reads the vault again${mode === "clientSecret" ? "; a managed identity's is named, with the restart" : ""}`, async () => {
      const kept = mode === "clientSecret" ? "managedIdentityImds" : undefined
      const { a, mark, from, readsOf } = await afterTheClockMoved(mode, kept)
      try {
        // Refused, then answered again with a new token.
        await vi.waitFor(
          () => {
            const statuses = readsOf(mode)
            const refused = statuses.indexOf(401)
            expect(refused, "a read refused (401)").toBeGreaterThanOrEqual(0)
            expect(statuses.slice(refused), "a read answered after the refusal").toContain(200)
          },
          { timeout: 20_000, interval: 200 },
        )
        // A new token from Entra ID, issued by the moved clock.
        expect(emulator.requests.entries({ since: mark, operation: "token" }).length).toBeGreaterThanOrEqual(
          1,
        )
        const renewed = a.lines.slice(from).filter((l) => /asks for a new token/.test(String(l.msg)))
        expect(renewed.map((l) => [l.level, l.credential_mode])).toEqual([
          ["warn", mode === "clientSecret" ? "client_secret" : "workload_identity"],
        ])
        if (kept !== undefined) {
          // The managed identity: its reads refused, and the operator told to restart.
          const told = await a.waitFor(
            (l) =>
              l.credential_mode === "managed_identity" &&
              /keeps a managed identity's token/.test(String(l.msg)),
            { from },
          )
          expect(told.level).toBe("warn")
          expect(String(told.fix)).toMatch(/restart the agent/)
          expect(readsOf(kept)).toContain(401)
          expect(readsOf(kept)).not.toContain(200)
        }
      } finally {
        a.kill()
      }
    })
})
