/**
 * A restarted agent compares a source it found in place before (the state's
 * record: Succeeded or Skipped, the same configuration, the same SHA-256 of
 * the files) without parsing it again: the record holds the thumbprint and
 * expiry those bytes parse to. Anything else is parsed as before.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { forwardTags, type Vault } from "@kvdeploy/core"
import { changeProcessEnv } from "@kvdeploy/core/test"
import * as Effect from "effect/Effect"
import { afterAll, describe, expect, it, vi } from "vitest"
import type { AgentConfig } from "../src/config.js"
import { recordedFacts } from "../src/reconciler.js"
import type { DeploymentRecord, StateFile } from "../src/state.js"
import { configIn, oneVault, quickRetries, reconcilerOf } from "./inProcess.js"
import { makePki } from "./pki.js"

const parses = vi.hoisted(() => ({ count: 0 }))
vi.mock("@kvdeploy/pkcs12", async (importOriginal) => {
  const original = await importOriginal<typeof import("@kvdeploy/pkcs12")>()
  return {
    ...original,
    parsePem: (...args: Parameters<typeof original.parsePem>) => {
      parses.count++
      return original.parsePem(...args)
    },
  }
})

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-restart-facts-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const VAULT = "https://restartvault.vault.azure.net"

const pemSource = { cert: join(dir, "r.crt"), key: join(dir, "r.key") }

const configOf = (
  tags: Record<string, string> = {},
  source: Record<string, string> = pemSource,
): AgentConfig => {
  return configIn(
    dir,
    {
      agent: quickRetries(dir),
      deployments: [{ name: "r", source, target: { vault_url: VAULT, certificate_name: "r", tags } }],
    },
    process.env,
  )
}

/** One reconciler's life: start, one pass over every deployment, stop. Answers the record. */
const runOnce = async (
  config: AgentConfig,
  vault: Vault["Service"],
  until: (r: DeploymentRecord | undefined) => boolean = () => true,
) => {
  const { reconciler, state } = await reconcilerOf(config, join(dir, "state"), oneVault(vault))
  const before = state.get("r")?.at
  Effect.runFork(reconciler.triggerAll("interval"))
  await expect
    .poll(() => state.get("r")?.at !== before && until(state.get("r")), { timeout: 20_000, interval: 50 })
    .toBe(true)
  await Effect.runPromise(reconciler.shutdown)
  return state.get("r")
}

/** A vault serving `x5t` with kvdeploy's tags for the deployment of `config`, counting its reads. */
const servingVault = (config: AgentConfig, x5t: string) => {
  const deployment = config.deployments[0]
  if (deployment === undefined) throw new Error("no deployment")
  let reads = 0
  const vault = {
    getLatest: () =>
      Effect.sync(() => {
        reads++
        return {
          versionId: "v1",
          x5t,
          serialHex: "01",
          enabled: true,
          createdAt: new Date(0),
          tags: forwardTags(deployment.target.tags, deployment.certificateId),
        }
      }),
  } as unknown as Vault["Service"]
  return { vault, reads: () => reads }
}

/** A new leaf for `cn`, written as `<name>.crt` and `<name>.key` in the test directory. */
const leafFiles = async (name: string, cn: string) => {
  const leaf = await (await makePki()).leaf(cn)
  writeFileSync(join(dir, `${name}.crt`), leaf.certPem)
  writeFileSync(join(dir, `${name}.key`), leaf.keyPem, { mode: 0o600 })
  return leaf
}

describe("a restarted agent", () => {
  it("compares an unchanged source recorded in place without parsing it; a changed one is parsed", async () => {
    const leaf = await leafFiles("r", "restart.example.test")
    const config = configOf()
    const { vault, reads } = servingVault(config, leaf.x5t)

    const first = await runOnce(config, vault)
    expect(first?.outcome).toBe("Skipped")
    expect(first?.x5t).toBe(leaf.x5t)
    const parsedFirst = parses.count
    expect(parsedFirst).toBeGreaterThan(0)

    // Restarted, same files, same configuration: in place again, one read, no parse.
    const readsBefore = reads()
    const second = await runOnce(config, vault)
    expect(second?.outcome).toBe("Skipped")
    expect(second?.x5t).toBe(leaf.x5t)
    expect(reads()).toBe(readsBefore + 1)
    expect(parses.count).toBe(parsedFirst)

    // Restarted with another configuration of the deployment (a tag): the record is not its, so parsed.
    await runOnce(configOf({ env: "test" }), vault)
    expect(parses.count).toBeGreaterThan(parsedFirst)
  })
})

describe("a restarted agent, when the record does not hold", () => {
  it("a record whose thumbprint is not the source's: nothing sent, warned, then compared with the parsed facts", async () => {
    const leaf = await leafFiles("r", "tampered.example.test")
    const config = configOf({ case: "tampered" })
    const { vault } = servingVault(config, leaf.x5t)
    expect((await runOnce(config, vault))?.x5t).toBe(leaf.x5t)
    // The state names another certificate for the same bytes (hand-edited, or an older parser's reading).
    const path = join(dir, "state", "state.json")
    const file = JSON.parse(readFileSync(path, "utf8")) as StateFile
    const record = file.deployments.r
    if (record === undefined) throw new Error("no record")
    writeFileSync(path, JSON.stringify({ ...file, deployments: { r: { ...record, x5t: "not-the-source" } } }))
    // The vault serves the source, which the recorded thumbprint does not match: the deploy path parses
    // the files, finds the other certificate, sends nothing (the vault has no import), and the retry
    // compares with the parsed facts.
    const after = await runOnce(config, vault, (r) => r?.x5t === leaf.x5t)
    expect(after?.outcome).toBe("Skipped")
    expect(after?.x5t).toBe(leaf.x5t)
  })

  it("a PFX opened with a password from the environment is parsed again: a wrong password shows at the restart", async () => {
    const leaf = await leafFiles("p", "pfx-restart.example.test")
    execFileSync(
      "openssl",
      ["pkcs12", "-export", "-in", join(dir, "p.crt"), "-inkey", join(dir, "p.key")].concat([
        "-out",
        join(dir, "p.pfx"),
        "-passout",
        "env:KVDEPLOY_RESTART_PW",
      ]),
      { env: { ...process.env, KVDEPLOY_RESTART_PW: "right" } },
    )
    const restoreEnv = changeProcessEnv({ KVDEPLOY_RESTART_PW: "right" })
    try {
      const config = configOf(
        { case: "pfx" },
        { pfx: join(dir, "p.pfx"), pfx_password_env: "KVDEPLOY_RESTART_PW" },
      )
      const { vault } = servingVault(config, leaf.x5t)
      expect((await runOnce(config, vault))?.outcome).toBe("Skipped")
      process.env.KVDEPLOY_RESTART_PW = "wrong"
      expect((await runOnce(config, vault))?.outcome).toBe("SourceBroken")
    } finally {
      restoreEnv()
    }
  })
})

describe("recordedFacts", () => {
  const record: DeploymentRecord = {
    outcome: "Skipped",
    at: "2026-11-30T00:00:00.000Z",
    reason: "",
    configFingerprint: "cfg",
    sourceFingerprint: "src",
    x5t: "thumb",
    versionId: "v1",
    notAfter: "2027-01-01T00:00:00.000Z",
    earliestNotAfter: "2026-12-24T00:00:00.000Z",
    earliestNotAfterRule: "issuer-path",
    lastSuccessAt: undefined,
    held: false,
  }
  const cfg = { fingerprint: "cfg" }
  it("answers the recorded facts only for an in-place record of this configuration and these bytes", () => {
    expect(recordedFacts(record, cfg, "src")).toEqual({
      fingerprint: "src",
      x5t: "thumb",
      notAfter: new Date("2027-01-01T00:00:00.000Z"),
      notAfterText: "2027-01-01T00:00:00.000Z",
      earliestNotAfter: new Date("2026-12-24T00:00:00.000Z"),
      earliestNotAfterText: "2026-12-24T00:00:00.000Z",
    })
    expect(recordedFacts({ ...record, outcome: "Succeeded" }, cfg, "src")?.x5t).toBe("thumb")
    expect(recordedFacts(undefined, cfg, "src")).toBeUndefined()
    for (const outcome of ["Failed", "SourceBroken", "RolledBack", "Superseded", "Held", "Unverified"])
      expect(recordedFacts({ ...record, outcome }, cfg, "src")).toBeUndefined()
    expect(recordedFacts(record, { fingerprint: "other" }, "src")).toBeUndefined()
    expect(recordedFacts(record, cfg, "other")).toBeUndefined()
    expect(recordedFacts({ ...record, x5t: undefined }, cfg, "src")).toBeUndefined()
    expect(recordedFacts({ ...record, notAfter: undefined }, cfg, "src")).toBeUndefined()
    expect(recordedFacts({ ...record, notAfter: "not a date" }, cfg, "src")).toBeUndefined()
    // Written by an agent before the chain's expiry was recorded: parsed again, not taken as the leaf's.
    expect(recordedFacts({ ...record, earliestNotAfter: undefined }, cfg, "src")).toBeUndefined()
    expect(recordedFacts({ ...record, earliestNotAfter: "not a date" }, cfg, "src")).toBeUndefined()
    // Written by an agent that counted the leaf's issuer alone (no rule recorded), or by another rule.
    expect(recordedFacts({ ...record, earliestNotAfterRule: undefined }, cfg, "src")).toBeUndefined()
    expect(recordedFacts({ ...record, earliestNotAfterRule: "issuer" }, cfg, "src")).toBeUndefined()
    // A hand-edited state file's nulls (the file is read without a schema).
    expect(recordedFacts({ ...record, x5t: null } as unknown as DeploymentRecord, cfg, "src")).toBeUndefined()
    expect(
      recordedFacts({ ...record, notAfter: null } as unknown as DeploymentRecord, cfg, "src"),
    ).toBeUndefined()
  })

  it("answers them for a record an earlier agent wrote with the fingerprint that included pickup", () => {
    // A deployment with a pickup check: earlier agents put pickup in its fingerprint.
    const withPickup = { fingerprint: "cfg-now", formerFingerprints: ["cfg"] }
    expect(recordedFacts(record, withPickup, "src")?.x5t).toBe("thumb")
    expect(recordedFacts({ ...record, configFingerprint: "cfg-now" }, withPickup, "src")?.x5t).toBe("thumb")
    expect(recordedFacts({ ...record, configFingerprint: "another" }, withPickup, "src")).toBeUndefined()
  })
})
