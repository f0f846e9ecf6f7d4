/**
 * A token the agent holds as valid that the vault refuses: the host's clock was set back after the
 * agent got its tokens (the identity libraries judge a token's expiry by the host's clock, the vault
 * by Azure's). The emulator's token clock moved two hours ahead stands for it: every token the agent
 * holds has expired for the vault, while the agent's clock says an hour is left. The agent must let
 * go of what it holds and ask for a new token, not keep sending the refused one until the host's
 * clock catches up: in client secret and workload identity mode, and for a managed identity over
 * AKS's token exchange, it does. A managed identity's token from the host's endpoint is kept by MSAL
 * for the whole process (@azure/identity gives no way past that cache), so there the agent says so,
 * and to restart.
 */
import { existsSync, renameSync } from "node:fs"
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

/** A deployment of the test's agent: its certificate's name, its target's mode and its environment's. */
interface Deployed {
  readonly name: string
  readonly target: AuthMode
  readonly env: AuthMode
}

/**
 * An agent of `deployed`, once every deploy succeeded: the token clock moved two hours ahead (after
 * `beforeTheMove`); answers what followed, from `mark` in the request log and `from` in its lines.
 */
const afterTheClockMoved = async (
  label: string,
  deployed: ReadonlyArray<Deployed>,
  beforeTheMove: () => void = () => {},
) => {
  emulator.setTokenClockOffset(0)
  const deployments = []
  for (const d of deployed) {
    const leaf = await pki.leaf(`${d.name.toLowerCase()}.example.test`)
    deployments.push({
      name: d.name,
      vault: VAULT,
      certificate: d.name,
      source: {
        cert: work.write(`${d.name}.crt`, leaf.certPem),
        key: work.write(`${d.name}.key`, leaf.keyPem),
      },
      target: emulator.targetConfig(VAULT, d.name, d.target),
    })
  }
  // Each agent its own state directory: the one before it was killed holding its lock.
  const config = writeConfig(
    work,
    emulator,
    deployments,
    { reconcile_interval_seconds: 1, state_dir: work.path(`state-${label}`) },
    `${label}.yaml`,
  )
  const env = Object.assign(baseEnv(), ...deployed.map((d) => emulator.env[d.env]))
  const a = startAgent(config, env)
  for (const d of deployed) await a.waitFor((l) => l.deployment === d.name && l.msg === "deploy: Succeeded")
  const mark = emulator.requests.mark()
  const from = a.lines.length
  beforeTheMove()
  emulator.setTokenClockOffset(2 * 3600)
  const readsOf = (name: string) =>
    emulator.requests
      .entries({ vault: VAULT, since: mark })
      .filter((r) => !r.challenge && r.path.includes(`/certificates/${name}`))
      .map((r) => r.status)
  /** Waits until a read of `name` was refused (401), then one answered (200). */
  const answeredAgain = (name: string, timeout = 20_000) =>
    vi.waitFor(
      () => {
        const statuses = readsOf(name)
        const refused = statuses.indexOf(401)
        expect(refused, `${name}: a read refused (401)`).toBeGreaterThanOrEqual(0)
        expect(statuses.slice(refused), `${name}: a read answered after the refusal`).toContain(200)
      },
      { timeout, interval: 200 },
    )
  const renewedLines = () => a.lines.slice(from).filter((l) => /asks for a new token/.test(String(l.msg)))
  return { a, mark, from, readsOf, answeredAgain, renewedLines }
}

describe("a token the vault refuses while the agent holds it valid", () => {
  it("is let go of in client secret mode: a new token, and the reads answered again; a managed identity's is named, with the restart", async () => {
    const { a, mark, from, readsOf, answeredAgain, renewedLines } = await afterTheClockMoved("secret", [
      { name: "secret", target: "clientSecret", env: "clientSecret" },
      { name: "imds", target: "managedIdentityImds", env: "managedIdentityImds" },
    ])
    try {
      await answeredAgain("secret")
      // A new token from Entra ID, issued by the moved clock.
      expect(emulator.requests.entries({ since: mark, operation: "token" }).length).toBeGreaterThanOrEqual(1)
      expect(renewedLines().map((l) => [l.level, l.credential_mode])).toEqual([["warn", "client_secret"]])
      // The managed identity asking the host's endpoint: its reads stay refused, and the operator is
      // told to restart.
      const told = await a.waitFor(
        (l) =>
          l.credential_mode === "managed_identity" && /keeps a managed identity's token/.test(String(l.msg)),
        { from },
      )
      expect(told.level).toBe("warn")
      expect(String(told.fix)).toMatch(/restart the agent/)
      expect(readsOf("imds")).toContain(401)
      expect(readsOf("imds")).not.toContain(200)
    } finally {
      a.kill()
    }
  })

  it("is let go of in workload identity mode, and for a managed identity over AKS's token exchange", async () => {
    const { a, mark, answeredAgain, renewedLines } = await afterTheClockMoved("workload", [
      { name: "workload", target: "workloadIdentity", env: "workloadIdentity" },
      // credential_mode managed_identity with AZURE_FEDERATED_TOKEN_FILE: kvdeploy's own exchange.
      { name: "exchange", target: "managedIdentityImds", env: "workloadIdentity" },
    ])
    try {
      await answeredAgain("workload")
      await answeredAgain("exchange")
      expect(emulator.requests.entries({ since: mark, operation: "token" }).length).toBeGreaterThanOrEqual(2)
      expect(
        renewedLines()
          .map((l) => [l.level, l.credential_mode])
          .sort(),
      ).toEqual([
        ["warn", "managed_identity"],
        ["warn", "workload_identity"],
      ])
    } finally {
      a.kill()
    }
  })

  it("names why no new credential could be made (the token file gone), and is answered as soon as it can", async () => {
    const tokenFile = emulator.workloadIdentity.tokenFile
    const aside = `${tokenFile}.aside`
    const { a, from, answeredAgain } = await afterTheClockMoved(
      "gone",
      [{ name: "gone", target: "workloadIdentity", env: "workloadIdentity" }],
      () => renameSync(tokenFile, aside),
    )
    try {
      // The deployment's line names the missing file, not only the refused token.
      await a.waitFor((l) => l.deployment === "gone" && String(l.reason ?? "").includes(tokenFile), {
        from,
        timeoutMs: 20_000,
      })
      renameSync(aside, tokenFile)
      // Back within the deployment's backoff (at most 2 s here), not a renewal interval (60 s) later.
      await answeredAgain("gone", 10_000)
    } finally {
      if (existsSync(aside)) renameSync(aside, tokenFile)
      a.kill()
    }
  })
})
