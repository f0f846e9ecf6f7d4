/**
 * The reconciler itself (in-memory vaults, no HTTP) listing a vault on a pass
 * over every deployment (docs/agent.md, *Listing a vault*):
 * - an entry listed more than 30 s before the deployment's turn is not used;
 * - the list stops once its pages reach half the deployments it covers;
 * - a list that failed with a 429 ends that pass's list only (a refusal for
 *   want of the permission is what turns listing off until a reload);
 * and the state file is written once a pass is over, without a stop.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { forwardTags, type ListedCertificate, type Vault, VaultThrottled } from "@kvdeploy/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest"
import { makeAgentMetrics } from "../src/agentMetrics.js"
import type { AgentConfig, Deployment } from "../src/config.js"
import type { Reconciler } from "../src/reconciler.js"
import { openStateStore, type StateFile } from "../src/state.js"
import { configIn, oneVault, reconcilerEffect } from "./inProcess.js"
import { type Issued, makePki } from "./pki.js"

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-listing-passes-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const VAULT = "https://listingpasses.vault.azure.net"

let leaf: Issued
beforeAll(async () => {
  leaf = await (await makePki()).leaf("listing-passes.example.test")
  writeFileSync(join(dir, "l.crt"), leaf.certPem)
  writeFileSync(join(dir, "l.key"), leaf.keyPem, { mode: 0o600 })
})

/** `n` deployments `d<i>` of certificate `c<i>` in one vault, all of the same source; their own state directory. */
const configOf = (n: number, stateDir: string): AgentConfig => {
  return configIn(dir, {
    agent: {
      listen: "127.0.0.1:0",
      state_dir: stateDir,
      backoff_base_seconds: 60,
      vault_list_min_deployments: 1,
    },
    deployments: Array.from({ length: n }, (_, i) => ({
      name: `d${i}`,
      source: { cert: join(dir, "l.crt"), key: join(dir, "l.key") },
      target: { vault_url: VAULT, certificate_name: `c${i}` },
    })),
  })
}

/** The entry (or the read) of a certificate serving the source in place for deployment `d`. */
const inPlace = (d: Deployment): ListedCertificate => ({
  name: d.target.certificateName,
  x5t: leaf.x5t,
  enabled: true,
  tags: forwardTags(d.target.tags, d.certificateId),
})

/**
 * A clock `shiftMs` milliseconds ahead of the real one (its wall time and its monotonic time alike),
 * its wall time `wallOnlyMs` more (a system clock set back or forward); sleeps are the real clock's.
 */
const shiftedClock = () => {
  const real = Effect.runSync(Clock.clockWith(Effect.succeed))
  const state = { shiftMs: 0, wallOnlyMs: 0 }
  const now = () => real.currentTimeMillisUnsafe() + state.shiftMs + state.wallOnlyMs
  const monotonic = () => real.monotonicTimeNanosUnsafe() + BigInt(state.shiftMs) * 1_000_000n
  const clock: Clock.Clock = {
    currentTimeMillisUnsafe: now,
    currentTimeMillis: Effect.sync(now),
    currentTimeNanosUnsafe: () => BigInt(now()) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => BigInt(now()) * 1_000_000n),
    monotonicTimeNanosUnsafe: monotonic,
    monotonicTimeNanos: Effect.sync(monotonic),
    sleep: (duration) => real.sleep(duration),
  }
  return { clock, state }
}

interface Started {
  readonly reconciler: Reconciler
  /** The reason, the deployments found in place from a list and the duration, of each pass over so far. */
  readonly passes: Array<PassOver>
  /** Run a pass over every deployment and wait for its end. */
  readonly pass: () => Promise<PassOver>
}

interface PassOver {
  readonly reason: string
  readonly listed: number
  readonly durationMs: number
}

/** The reconciler for `config` over `vault`, logging nothing; shut down after the test. */
const start = async (config: AgentConfig, vault: Vault["Service"], clock?: Clock.Clock): Promise<Started> => {
  const state = openStateStore(config.settings.stateDir, () => {})
  const metrics = makeAgentMetrics()
  const passes: Array<PassOver> = []
  const counted = {
    ...metrics,
    passOver: (reason: string, endedAtMs: number, durationMs: number, listed: number) => {
      passes.push({ reason, listed, durationMs })
      metrics.passOver(reason, endedAtMs, durationMs, listed)
    },
  }
  const made = reconcilerEffect(config, state, oneVault(vault), counted)
  const reconciler = await Effect.runPromise(
    clock === undefined ? made : made.pipe(Effect.provideService(Clock.Clock, clock)),
  )
  onTestFinished(async () => {
    await Effect.runPromise(Effect.timeoutOption(reconciler.shutdown, "5 seconds"))
  })
  return {
    reconciler,
    passes,
    pass: async () => {
      const before = passes.length
      Effect.runFork(reconciler.triggerAll("interval"))
      await expect.poll(() => passes.length, { timeout: 20_000, interval: 20 }).toBe(before + 1)
      return passes[before] as PassOver
    },
  }
}

/** Reads of the vault by certificate name, answering the source in place. */
const readsOf = (config: AgentConfig) => {
  const reads: Array<string> = []
  const byName = new Map(config.deployments.map((d) => [d.target.certificateName, d]))
  const getLatest = (name: string) =>
    Effect.sync(() => {
      reads.push(name)
      const d = byName.get(name)
      if (d === undefined) throw new Error(`no deployment of ${name}`)
      return { ...inPlace(d), versionId: "v1", serialHex: "01", createdAt: new Date(0) }
    })
  return { reads, getLatest }
}

describe("a pass that lists the vault", () => {
  // Page 1 shows d0 and d1 in place; page 2 (d2) comes 31 s later by the clock (its monotonic time):
  // d0's and d1's entries are older than 30 s when their turn comes (after the whole list), d2's is
  // fresh. With the system clock also set back 60 s between the pages, d0's and d1's entries are
  // from 29 s in the future by the wall clock, which a wall-clock age would take for fresh.
  it.each([
    ["", 0],
    [", though the system clock was set back 60 s meanwhile (the age is monotonic)", -60_000],
  ])(
    "does not use an entry listed more than 30 s before the deployment's turn%s: that deployment reads its own",
    async (_, wallOnlyMs) => {
      const config = configOf(3, join(dir, `age-state${wallOnlyMs}`))
      const [d0, d1, d2] = config.deployments as [Deployment, Deployment, Deployment]
      const { reads, getLatest } = readsOf(config)
      const { clock, state } = shiftedClock()
      const vault = {
        getLatest,
        listCertificates: (continuation: string | undefined) =>
          Effect.sync(() => {
            if (continuation === undefined)
              return { certificates: [inPlace(d0), inPlace(d1)], continuation: "2" }
            state.shiftMs += 31_000
            state.wallOnlyMs += wallOnlyMs
            return { certificates: [inPlace(d2)], continuation: undefined }
          }),
      } as unknown as Vault["Service"]
      const { pass } = await start(config, vault, clock)
      expect((await pass()).listed).toBe(1)
      expect(reads.sort()).toEqual(["c0", "c1"])
    },
  )

  // A deployment's read answers 5 s later by the clock, and the system clock is set back an hour
  // meanwhile: the pass lasted 5 s (its duration is monotonic), not minus an hour.
  it("measures a pass's duration on the monotonic clock, whatever the system clock did meanwhile", async () => {
    const config = configOf(2, join(dir, "duration-state"))
    const [d0] = config.deployments as [Deployment, Deployment]
    const { reads, getLatest } = readsOf(config)
    const { clock, state } = shiftedClock()
    const vault = {
      getLatest: (name: string) =>
        Effect.suspend(() => {
          if (reads.length === 0) {
            state.shiftMs += 5_000
            state.wallOnlyMs -= 3_600_000
          }
          return getLatest(name)
        }),
      listCertificates: () => Effect.succeed({ certificates: [inPlace(d0)], continuation: "2" }),
    } as unknown as Vault["Service"]
    const { pass } = await start(config, vault, clock)
    const over = await pass()
    expect(reads).toHaveLength(1)
    expect(over.durationMs).toBeGreaterThanOrEqual(5_000)
    expect(over.durationMs).toBeLessThan(3_600_000)
  })

  it("stops the list once its pages reach half the deployments it covers; the others read their own", async () => {
    const config = configOf(4, join(dir, "half-state"))
    const { reads, getLatest } = readsOf(config)
    // A vault holding many more certificates than are deployed to it: page after page of others.
    let pages = 0
    const vault = {
      getLatest,
      listCertificates: () =>
        Effect.sync(() => {
          pages++
          const others = Array.from({ length: 25 }, (_, i) => ({
            name: `other-${pages}-${i}`,
            x5t: "x",
            enabled: true,
            tags: {},
          }))
          return { certificates: others, continuation: pages < 10 ? String(pages + 1) : undefined }
        }),
    } as unknown as Vault["Service"]
    const { pass } = await start(config, vault)
    expect((await pass()).listed).toBe(0)
    // 4 deployments: 2 pages, then every deployment reads its own certificate.
    expect(pages).toBe(2)
    expect(reads.sort()).toEqual(["c0", "c1", "c2", "c3"])
  })

  it("lists again on the next pass after a list that failed with a 429 (only a refused list stops listing)", async () => {
    const config = configOf(2, join(dir, "throttled-state"))
    const [d0, d1] = config.deployments as [Deployment, Deployment]
    const { reads, getLatest } = readsOf(config)
    let lists = 0
    const vault = {
      getLatest,
      listCertificates: () =>
        Effect.suspend(() => {
          lists++
          return lists === 1
            ? Effect.fail(
                new VaultThrottled({
                  operation: "listCertificates",
                  detail: "429 in this test",
                  retryAfterMs: 10,
                }),
              )
            : Effect.succeed({ certificates: [inPlace(d0), inPlace(d1)], continuation: undefined })
        }),
    } as unknown as Vault["Service"]
    const { pass } = await start(config, vault)
    // The first pass's list fails: each deployment reads its own.
    expect((await pass()).listed).toBe(0)
    expect(reads).toHaveLength(2)
    // The next interval pass (no reload in between) lists the vault again and reads nothing.
    expect((await pass()).listed).toBe(2)
    expect(lists).toBe(2)
    expect(reads).toHaveLength(2)
  })
})

describe("the state file", () => {
  it("is written once a pass is over (3 s quiet), without a stop", async () => {
    const config = configOf(1, join(dir, "pass-state"))
    const { getLatest } = readsOf(config)
    const vault = { getLatest } as unknown as Vault["Service"]
    const { pass } = await start(config, vault)
    await pass()
    const path = join(config.settings.stateDir, "state.json")
    await expect
      .poll(
        () =>
          existsSync(path)
            ? (JSON.parse(readFileSync(path, "utf8")) as StateFile).deployments.d0?.outcome
            : undefined,
        { timeout: 10_000, interval: 100 },
      )
      .toBe("Skipped")
  })
})
