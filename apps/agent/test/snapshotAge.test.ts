/**
 * The snapshot an attempt hands the deploy: its own read of the latest version, only while that read
 * is at most a second old when the deploy starts; an older one is not passed, and the deploy reads
 * the vault again (another writer may have imported meanwhile). Checked in process over core's
 * in-memory vault with the real codec, under the TestClock: time passes only where a test moves it,
 * during a parse held up on the material workers (a MaterialWorkers whose parse moves the clock) or
 * during the wait for the vault's import permit. The vault's call log says which reads were sent.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Metrics } from "@kvdeploy/core"
import { Fault } from "@kvdeploy/core/test"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import { generateKey, issue } from "@kvdeploy/pkcs12/testing"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/testing/TestClock"
import { afterAll, describe, expect, it } from "vitest"
import { makeAgentMetrics } from "../src/agentMetrics.js"
import { MaterialWorkers, onMainThread } from "../src/materialPool.js"
import { makeReconciler, type Reconciler } from "../src/reconciler.js"
import { openStateStore } from "../src/state.js"
import { inMemoryVault, oneSourceConfig, oneVault } from "./inProcess.js"
import { makePki } from "./pki.js"

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-snapshot-age-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const VAULT = "https://snapshots.vault.azure.net"
const poll = { timeout: 10_000, interval: 20 }

/** Another writer's certificate (no kvdeploy tags): a deploy that reads it refuses to take it over. */
const foreignMaterial = async () => {
  const key = await generateKey("P-256")
  const der = await issue({
    subject: "CN=other-writer.snapshots.example.test",
    key,
    notBefore: new Date(Date.now() - 86_400_000),
    notAfter: new Date(Date.now() + 30 * 86_400_000),
  })
  return { leaf: der, chain: [], key: Redacted.make(key.pkcs8) }
}

/**
 * A reconciler of one deployment `a` over an in-memory vault, under the TestClock (`clock`, set to
 * the time the test began), with the agent settings `agent`. Its material workers parse on the main thread; `stallNextParse(e)`
 * runs `e` at the start of the next parse (a parse held up in the worker pool's queue), and
 * `stalls` says how many reads of the latest version the vault had answered when each ran.
 */
const setUp = async (agent: Record<string, unknown> = {}) => {
  const sub = mkdtempSync(join(dir, "case-"))
  const pki = await makePki()
  const leaf = await pki.leaf("a.snapshots.example.test")
  writeFileSync(join(sub, "s.crt"), leaf.certPem)
  writeFileSync(join(sub, "s.key"), leaf.keyPem, { mode: 0o600 })
  const { vault, handle, metrics } = await inMemoryVault()
  let stall: Effect.Effect<unknown> | undefined
  const stalls: Array<number> = []
  const materialWorkers = Layer.succeed(MaterialWorkers)({
    workers: 0,
    forDeploy: (source, bytes, env, codec, encoding) =>
      Effect.andThen(
        Effect.suspend(() => {
          const during = stall
          stall = undefined
          if (during === undefined) return Effect.void
          stalls.push(handle.calls().byOperation.getLatest ?? 0)
          return during
        }),
        onMainThread(source, bytes, env, codec, encoding),
      ),
  })
  const state = openStateStore(join(sub, "state"), () => {})
  const { reconciler, clock } = await Effect.runPromise(
    Effect.gen(function* () {
      const clock = yield* TestClock.testClockWith(Effect.succeed)
      // Now, by the clock: the certificates' validity windows are checked against it.
      yield* clock.setTime(Date.now())
      const reconciler = yield* makeReconciler(
        oneSourceConfig(sub, VAULT, [{ name: "a" }], agent),
        state,
        makeAgentMetrics(),
      )
      return { reconciler, clock }
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          oneVault(vault),
          Pkcs12.layer,
          Layer.succeed(Metrics)(metrics),
          Logger.layer([]),
          materialWorkers,
          TestClock.layer(),
        ),
      ),
    ),
  )
  return {
    handle,
    state,
    reconciler,
    clock,
    stalls,
    stallNextParse: (during: Effect.Effect<unknown>) => {
      stall = during
    },
    /** The vault's operations since its calls were last reset, in order. */
    operations: () => handle.callLog().map((c) => c.operation),
  }
}

/** The reconciler stopped (its lines not logged). */
const stop = (w: { readonly reconciler: Reconciler }) =>
  Effect.runPromise(w.reconciler.shutdown.pipe(Effect.provide(Logger.layer([]))))

/**
 * A deployment whose last attempt could not read the vault (a 503): its source was parsed then, so
 * the next attempt, on an import permit reserved before it began, parses it again only after it has
 * read the vault (for the deploy). The vault's calls are reset.
 */
const afterUnreadVault = async () => {
  const w = await setUp()
  w.handle.script("getLatest", Fault.fail("Unavailable"))
  await Effect.runPromise(w.reconciler.triggerAll("start"))
  await expect.poll(() => w.state.get("a")?.outcome, poll).toBe("Failed")
  w.handle.resetCalls()
  return w
}

describe("the snapshot a deploy on a permit reserved before its attempt gets", () => {
  it("is read again when the parse after the attempt's read was held up for more than a second", async () => {
    const w = await afterUnreadVault()
    const foreign = await foreignMaterial()
    // While the parse waits (2 s by the clock), another writer imports its own certificate.
    w.stallNextParse(
      Effect.andThen(w.handle.seed("a", foreign, { writer: "other" }), TestClock.adjust("2 seconds")),
    )
    await Effect.runPromise(w.reconciler.trigger("a", "reload"))
    await expect.poll(() => w.state.get("a")?.outcome, poll).not.toBe("Failed")
    // The parse came after the attempt's one read.
    expect(w.stalls).toEqual([1])
    // The deploy read the latest version again, found the other writer's, and refused to take it over:
    // nothing imported. (Given the read from before the stall, it found no certificate and imported.)
    expect(w.operations()).toEqual(["getLatest", "getLatest"])
    expect(w.state.get("a")).toMatchObject({ outcome: "Rejected", held: true })
    expect(w.handle.latest("a")?.writer).toBe("other")
    await stop(w)
  }, 30_000)

  it("is the attempt's read when the parse took no time: one read before the import", async () => {
    const w = await afterUnreadVault()
    await Effect.runPromise(w.reconciler.trigger("a", "reload"))
    await expect.poll(() => w.state.get("a")?.outcome, poll).toBe("Succeeded")
    // The attempt's read (the snapshot), the import, the verify's read.
    expect(w.operations()).toEqual(["getLatest", "importVersion", "getLatest"])
    await stop(w)
  }, 30_000)

  it("is the attempt's read a second after it, and read again a millisecond later", async () => {
    const deployAfter = async (ms: number) => {
      const w = await afterUnreadVault()
      w.stallNextParse(TestClock.adjust(ms))
      await Effect.runPromise(w.reconciler.trigger("a", "reload"))
      await expect.poll(() => w.state.get("a")?.outcome, poll).toBe("Succeeded")
      expect(w.stalls).toEqual([1])
      await stop(w)
      return w.operations()
    }
    expect(await deployAfter(1000)).toEqual(["getLatest", "importVersion", "getLatest"])
    expect(await deployAfter(1001)).toEqual(["getLatest", "getLatest", "importVersion", "getLatest"])
  }, 30_000)

  it("is read again after 2 s of waiting though the system clock was set back 5 s meanwhile (the age is monotonic)", async () => {
    const w = await afterUnreadVault()
    // By the wall clock the read is then 3 s in the future, which a wall-clock age takes for fresh.
    w.stallNextParse(
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.andThen(TestClock.setTime(now - 5_000), TestClock.adjust("2 seconds")),
      ),
    )
    await Effect.runPromise(w.reconciler.trigger("a", "reload"))
    await expect.poll(() => w.state.get("a")?.outcome, poll).toBe("Succeeded")
    expect(w.stalls).toEqual([1])
    expect(w.operations()).toEqual(["getLatest", "getLatest", "importVersion", "getLatest"])
    await stop(w)
  }, 30_000)
})

describe("the snapshot a deploy that waited for its import permit gets", () => {
  /**
   * A deployment deployed, then the vault serving another tool's copy of the same certificate,
   * without kvdeploy's tags (not in place, so a deploy runs; not another certificate, which the
   * agent would hold on before any deploy); calls reset. The deploy refuses to take it over.
   */
  const deployedThenForeign = async (agent: Record<string, unknown>) => {
    const w = await setUp(agent)
    await Effect.runPromise(w.reconciler.triggerAll("start"))
    await expect.poll(() => w.state.get("a")?.outcome, poll).toBe("Succeeded")
    const own = w.handle.versions("a").at(-1)
    if (own === undefined) throw new Error("the deploy wrote no version")
    await Effect.runPromise(w.handle.seed("a", own.material, { writer: "other" }))
    w.handle.resetCalls()
    return w
  }

  it("is read again after a wait of more than a second", async () => {
    // One import per 10 minutes: the first deploy's import took this window's permit.
    const w = await deployedThenForeign({ vault_imports_per_window: 1, vault_window_seconds: 600 })
    // The state says the source is in place: the attempt reads, finds another writer's certificate,
    // and waits for the import permit, which the clock gives 10 minutes on.
    await Effect.runPromise(w.reconciler.trigger("a", "interval"))
    await expect.poll(() => w.handle.calls().byOperation.getLatest ?? 0, poll).toBe(1)
    expect(w.state.get("a")?.outcome).toBe("Succeeded")
    await Effect.runPromise(w.clock.adjust("600 seconds"))
    await expect.poll(() => w.state.get("a")?.outcome, poll).toBe("Rejected")
    expect(w.operations()).toEqual(["getLatest", "getLatest"])
    await stop(w)
  }, 30_000)

  it("is the attempt's read when the permit came at once: one read", async () => {
    const w = await deployedThenForeign({})
    await Effect.runPromise(w.reconciler.trigger("a", "interval"))
    await expect.poll(() => w.state.get("a")?.outcome, poll).toBe("Rejected")
    expect(w.operations()).toEqual(["getLatest"])
    await stop(w)
  }, 30_000)
})
