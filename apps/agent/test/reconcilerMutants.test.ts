/**
 * What an operator reads off the reconciler (its state records, its log lines, its series, when it
 * retries), checked in process over core's in-memory vault with the real codec: behaviour that
 * mutants of reconciler.ts changed while every other test still passed.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Vault } from "@kvdeploy/core"
import { Fault } from "@kvdeploy/core/test"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import { afterAll, describe, expect, it } from "vitest"
import type { AgentConfig } from "../src/config.js"
import { openStateStore } from "../src/state.js"
import { codecReconciler, configIn, inMemoryVault, jsonLogger, oneVault } from "./inProcess.js"
import { type Issued, makePki } from "./pki.js"

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-reconciler-mutants-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const VAULT = "https://mutants.vault.azure.net"

/**
 * A reconciler of one deployment `name` (its own directory, files and state) over an in-memory vault
 * decoding with the real codec; its log lines collected in `lines`.
 */
const setUp = async (
  name: string,
  agent: Record<string, unknown> = {},
  /** The vault the deployment is given, made from the in-memory one (default: that one). */
  wrap: (vault: Vault["Service"]) => Vault["Service"] = (vault) => vault,
) => {
  const sub = mkdtempSync(join(dir, "case-"))
  const pki = await makePki()
  const write = (leaf: Issued) => {
    writeFileSync(join(sub, `${name}.crt`), leaf.certPem)
    writeFileSync(join(sub, `${name}.key`), leaf.keyPem, { mode: 0o600 })
  }
  const config: AgentConfig = configIn(sub, {
    agent: {
      listen: "127.0.0.1:0",
      state_dir: join(sub, "state"),
      vault_list_min_deployments: 0,
      ...agent,
    },
    deployments: [
      {
        name,
        source: { cert: join(sub, `${name}.crt`), key: join(sub, `${name}.key`) },
        target: { vault_url: VAULT, certificate_name: name },
      },
    ],
  })
  const { vault, handle, metrics, recorder } = await inMemoryVault()
  const { lines, logger } = jsonLogger()
  const state = openStateStore(join(sub, "state"), () => {})
  const { reconciler, agentMetrics } = await codecReconciler(
    config,
    state,
    oneVault(wrap(vault)),
    metrics,
    logger,
  )
  return { pki, write, vault, handle, recorder, lines, state, agentMetrics, reconciler, sub }
}

/** Another writer's certificate material (for the in-memory vault's foreign import). */
const foreignMaterial = async (leaf: Issued) => {
  const parsed = await Effect.runPromise(Pkcs12.parsePem(leaf.certPem + leaf.keyPem))
  const [der] = parsed.certificates
  if (der === undefined || parsed.key === undefined) throw new Error("no material")
  return { leaf: der, chain: [], key: parsed.key }
}

describe("a deploy's state record", () => {
  it("names the version the deploy wrote (Succeeded), as the vault serves it", async () => {
    const w = await setUp("sv", { backoff_base_seconds: 60, backoff_max_seconds: 60 })
    const leaf = await w.pki.leaf("sv.example.test")
    w.write(leaf)
    await Effect.runPromise(w.reconciler.triggerAll("start"))
    await expect.poll(() => w.state.get("sv")?.outcome, { timeout: 20_000, interval: 20 }).toBe("Succeeded")
    const served = w.handle.latest("sv")
    expect(served?.x5t).toBe(leaf.x5t)
    expect(w.state.get("sv")?.versionId).toBe(served?.versionId)
    await Effect.runPromise(w.reconciler.shutdown)
  }, 30_000)

  it("of a Superseded deploy names its own version (another writer's came after), and holds it", async () => {
    const w = await setUp("ss", { backoff_base_seconds: 60, backoff_max_seconds: 60 })
    const leaf = await w.pki.leaf("ss.example.test")
    w.write(leaf)
    // Another writer imports its certificate just before the deploy's verify read: the comparison's
    // read passes, the deploy uses it as its snapshot, imports, and its verify finds the other version.
    const other = await w.pki.leaf("other.example.test")
    w.handle.script("getLatest", Fault.pass, Fault.foreignImport(await foreignMaterial(other)))
    await Effect.runPromise(w.reconciler.triggerAll("start"))
    await expect.poll(() => w.state.get("ss")?.outcome, { timeout: 20_000, interval: 20 }).toBe("Superseded")
    const ours = w.handle.versions("ss").find((v) => v.x5t === leaf.x5t)
    expect(w.handle.latest("ss")?.x5t).toBe(other.x5t)
    expect(w.state.get("ss")).toMatchObject({ held: true, versionId: ours?.versionId, x5t: leaf.x5t })
    await Effect.runPromise(w.reconciler.shutdown)
  }, 30_000)

  it("of an Unverified deploy names the version it imported, not held (retried)", async () => {
    const w = await setUp("uv", { backoff_base_seconds: 60, backoff_max_seconds: 60 })
    const leaf = await w.pki.leaf("uv.example.test")
    w.write(leaf)
    // The comparison's read passes (nothing served); the verify read after the import is refused.
    w.handle.script("getLatest", Fault.pass, Fault.fail("Forbidden"))
    await Effect.runPromise(w.reconciler.triggerAll("start"))
    await expect.poll(() => w.state.get("uv")?.outcome, { timeout: 20_000, interval: 20 }).toBe("Unverified")
    const imported = w.handle.latest("uv")
    expect(imported?.x5t).toBe(leaf.x5t)
    expect(w.state.get("uv")).toMatchObject({ held: false, versionId: imported?.versionId })
    await Effect.runPromise(w.reconciler.shutdown)
  }, 30_000)
})

/** `ms` of real time: retries here are a second apart (backoff_base_seconds 1). */
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const quick = { backoff_base_seconds: 1, backoff_max_seconds: 1 }

describe("a defect in a deployment's attempt", () => {
  it("is said (an error line naming the deployment, without the defect's key text), and the next pass tries again", async () => {
    let dying = true
    const w = await setUp("df", quick, (vault) => ({
      ...vault,
      getLatest: (name) =>
        dying
          ? Effect.die(new Error("a library failed on -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n"))
          : vault.getLatest(name),
    }))
    w.write(await w.pki.leaf("df.example.test"))
    await Effect.runPromise(w.reconciler.triggerAll("start"))
    const said = () => w.lines.filter((l) => l.message === "deployment stopped by an internal error")
    await expect.poll(() => said().length, { timeout: 20_000, interval: 20 }).toBe(1)
    expect(said()[0]?.level).toBe("ERROR")
    expect(said()[0]?.annotations).toMatchObject({ deployment: "df", fix: expect.stringContaining("bug") })
    expect(JSON.stringify(said())).not.toContain("MIIEvQIBADANBg")
    // The defect's own first line (the read's, not a stand-in), its key text's line left out.
    expect(String(said()[0]?.annotations.reason)).toMatch(/^internal error: a library failed on /)
    // The next pass tries again, and goes through.
    dying = false
    await Effect.runPromise(w.reconciler.triggerAll("interval"))
    await expect.poll(() => w.state.get("df")?.outcome, { timeout: 20_000, interval: 20 }).toBe("Succeeded")
    await Effect.runPromise(w.reconciler.shutdown)
  }, 30_000)
})

describe("retries", () => {
  it("a held outcome is not retried with backoff: one held decision, no read of the vault after it", async () => {
    const w = await setUp("hd", quick)
    const leaf = await w.pki.leaf("hd.example.test")
    w.write(leaf)
    const other = await w.pki.leaf("other.example.test")
    w.handle.script("getLatest", Fault.pass, Fault.foreignImport(await foreignMaterial(other)))
    await Effect.runPromise(w.reconciler.triggerAll("start"))
    await expect.poll(() => w.state.get("hd")?.outcome, { timeout: 20_000, interval: 20 }).toBe("Superseded")
    const reads = w.handle.calls().byOperation.getLatest
    await sleep(3000)
    expect(w.handle.calls().byOperation.getLatest).toBe(reads)
    expect(w.lines.filter((l) => String(l.message).startsWith("held:"))).toEqual([])
    // The next pass says it is held, once.
    await Effect.runPromise(w.reconciler.triggerAll("interval"))
    await expect
      .poll(() => w.lines.filter((l) => String(l.message).startsWith("held:")).length, {
        timeout: 10_000,
        interval: 20,
      })
      .toBe(1)
    expect(w.state.get("hd")).toMatchObject({ outcome: "Superseded", held: true })
    await Effect.runPromise(w.reconciler.shutdown)
  }, 30_000)

  it("a deployment whose retry succeeded is compared again by the next interval pass", async () => {
    const w = await setUp("rt", quick)
    w.write(await w.pki.leaf("rt.example.test"))
    // The first comparison's read fails: retried with backoff, and the retry deploys.
    w.handle.script("getLatest", Fault.fail("Unavailable"))
    await Effect.runPromise(w.reconciler.triggerAll("start"))
    await expect.poll(() => w.state.get("rt")?.outcome, { timeout: 20_000, interval: 20 }).toBe("Succeeded")
    await expect
      .poll(() => w.lines.some((l) => l.message === "pass over"), { timeout: 10_000, interval: 20 })
      .toBe(true)
    // The retries are over: an interval pass compares it again (the vault serves it: Skipped).
    await Effect.runPromise(w.reconciler.triggerAll("interval"))
    await expect.poll(() => w.state.get("rt")?.outcome, { timeout: 10_000, interval: 20 }).toBe("Skipped")
    await Effect.runPromise(w.reconciler.shutdown)
  }, 30_000)
})

describe("a held deployment's expiry series", () => {
  it("is removed for its own certificate when the vault serves nothing under the name any more", async () => {
    const w = await setUp("hx", { backoff_base_seconds: 60, backoff_max_seconds: 60 })
    w.write(await w.pki.leaf("hx.example.test"))
    const other = await w.pki.leaf("other.example.test")
    w.handle.script("getLatest", Fault.pass, Fault.foreignImport(await foreignMaterial(other)))
    await Effect.runPromise(w.reconciler.triggerAll("start"))
    await expect.poll(() => w.state.get("hx")?.outcome, { timeout: 20_000, interval: 20 }).toBe("Superseded")
    // The start pass is over (a held outcome is recorded, then written, then said): a trigger while
    // it runs would be part of it.
    await expect
      .poll(() => w.lines.some((l) => l.message === "pass over"), { timeout: 10_000, interval: 20 })
      .toBe(true)
    // The certificate is deleted since: the held pass's read finds nothing.
    await Effect.runPromise(w.handle.softDelete("hx"))
    await Effect.runPromise(w.reconciler.triggerAll("interval"))
    await expect
      .poll(() => w.lines.filter((l) => String(l.message).startsWith("held:")).length, {
        timeout: 10_000,
        interval: 20,
      })
      .toBe(1)
    expect(w.recorder.count("certificateNotServed", `${VAULT}/hx`)).toBe(1)
    expect(w.recorder.count("certificateNotServed")).toBe(1)
    await Effect.runPromise(w.reconciler.shutdown)
  }, 30_000)
})

describe("a trigger of a name no deployment has", () => {
  // The watcher's debounced file change of a deployment a reload removed meanwhile (runtime.ts
  // watches the new deployments only after apply): nothing to run, and nothing may fail.
  it("does nothing", async () => {
    const w = await setUp("kept", { backoff_base_seconds: 60, backoff_max_seconds: 60 })
    w.write(await w.pki.leaf("kept.example.test"))
    await Effect.runPromise(w.reconciler.trigger("removed", "file change"))
    await Effect.runPromise(w.reconciler.trigger("removed", "interval"))
    expect(w.handle.calls().total).toBe(0)
    expect(w.state.get("removed")).toBeUndefined()
    await Effect.runPromise(w.reconciler.shutdown)
  }, 30_000)
})

describe("a trigger after shutdown", () => {
  it("starts nothing: no read of the source's vault once the reconciler stopped", async () => {
    const w = await setUp("late", { backoff_base_seconds: 60, backoff_max_seconds: 60 })
    w.write(await w.pki.leaf("late.example.test"))
    await Effect.runPromise(w.reconciler.shutdown)
    await Effect.runPromise(w.reconciler.trigger("late", "file change"))
    await Effect.runPromise(w.reconciler.triggerAll("interval"))
    await sleep(500)
    expect(w.handle.calls().total).toBe(0)
    expect(w.state.get("late")).toBeUndefined()
  }, 30_000)
})
