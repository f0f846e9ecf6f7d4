/**
 * A vault's list page answered while the deployments it lists changed (an attempt ran, a reload
 * replaced or removed them), readiness across reloads, and a shutdown during a reload that waits for
 * a removed deployment's import: checked in process over core's in-memory vault with the real codec.
 * The tests kill mutants of reconciler.ts (listVault's stale-page guard, addSlot's count, apply's
 * count and its tracking of a removed deployment's attempt, markAttempted's guard) that every other
 * test let pass; one shows a page is still used when no attempt came near it. A reload that removes
 * deployments stops all their attempts at once.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { ListedPage, Vault } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import { afterAll, describe, expect, it } from "vitest"
import type { makeAgentMetrics } from "../src/agentMetrics.js"
import type { AgentConfig } from "../src/config.js"
import { openStateStore } from "../src/state.js"
import {
  codecReconciler,
  inMemoryVault,
  jsonLogger,
  type Line,
  oneSourceConfig,
  oneVault,
  type SourceSpec,
} from "./inProcess.js"
import { type Issued, makePki } from "./pki.js"

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-stale-mutants-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const VAULT = "https://stale.vault.azure.net"

/** A promise the test resolves: `open()`. */
const latch = () => {
  let open = () => {}
  const promise = new Promise<void>((resolve) => {
    open = resolve
  })
  return { promise, open }
}

/**
 * Reconcilers over one in-memory vault decoding with the real codec, of deployments of one source
 * (`write` puts a leaf there). The vault's list takes its page when asked (the vault as it is then)
 * and answers it once `pageGate` opens, with a continuation (so that the list stops at its page
 * budget and says how many deployments it found); pages after the first are empty. Reads of a
 * certificate wait at its `readGates` entry, imports at its `importGates` entry.
 */
const setUp = async (agent: Record<string, unknown> = {}) => {
  const sub = mkdtempSync(join(dir, "case-"))
  const pki = await makePki()
  const first = await pki.leaf("first.stale.example.test")
  const second = await pki.leaf("second.stale.example.test")
  const write = (leaf: Issued) => {
    writeFileSync(join(sub, "s.crt"), leaf.certPem)
    writeFileSync(join(sub, "s.key"), leaf.keyPem, { mode: 0o600 })
  }
  write(first)
  const configOf = (specs: ReadonlyArray<SourceSpec>): AgentConfig =>
    oneSourceConfig(sub, VAULT, specs, { vault_list_min_deployments: 1, ...agent })
  const { vault, handle, metrics } = await inMemoryVault()
  const control = {
    pageGate: undefined as Promise<void> | undefined,
    /** Lists asked (first pages). */
    asked: 0,
    readGates: new Map<string, Promise<void>>(),
    reading: [] as Array<string>,
    importGates: new Map<string, Promise<void>>(),
    /** The certificates imports were sent for. */
    imports: [] as Array<string>,
  }
  const gated = <A, E>(gate: Promise<void> | undefined, effect: Effect.Effect<A, E>) =>
    gate === undefined
      ? effect
      : Effect.andThen(
          Effect.promise(() => gate),
          effect,
        )
  const wrapped: Vault["Service"] = {
    ...vault,
    getLatest: (name) =>
      Effect.suspend(() => {
        control.reading.push(name)
        return gated(control.readGates.get(name), vault.getLatest(name))
      }),
    importVersion: (request) =>
      Effect.suspend(() => {
        control.imports.push(request.name)
        return gated(control.importGates.get(request.name), vault.importVersion(request))
      }),
    listCertificates: (continuation) =>
      Effect.suspend(() => {
        if (continuation !== undefined)
          return Effect.succeed<ListedPage>({ certificates: [], continuation: "more" })
        control.asked++
        const gate = control.pageGate
        return Effect.flatMap(vault.listCertificates!(undefined), (page) =>
          gated(gate, Effect.succeed<ListedPage>({ ...page, continuation: "more" })),
        )
      }),
  }
  const { lines, logger } = jsonLogger()
  const run = <A>(effect: Effect.Effect<A>) =>
    Effect.runPromise(effect.pipe(Effect.provide(Logger.layer([logger]))))
  const start = async (config: AgentConfig) => {
    const state = openStateStore(join(sub, "state"), () => {})
    return { ...(await codecReconciler(config, state, oneVault(wrapped), metrics, logger)), state }
  }
  return { first, second, write, handle, control, lines, run, start, configOf }
}

const poll = { timeout: 10_000, interval: 20 }
const said = (lines: ReadonlyArray<Line>, prefix: string) =>
  lines.filter((l) => String(l.message).startsWith(prefix))
const passes = (lines: ReadonlyArray<Line>) => said(lines, "pass over").length
/** The lines of the lists that stopped at their page budget (each says how many deployments it found). */
const stopped = (lines: ReadonlyArray<Line>) => said(lines, "vault list stopped early")

/** The value of the agent's series `name` (no labels), or undefined. */
const gauge = async (metrics: ReturnType<typeof makeAgentMetrics>, name: string) => {
  const line = (await metrics.text()).split("\n").find((l) => l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.split(" ").at(-1))
}

/**
 * The page went unused: the attempt the list starts read the vault and deployed `a`'s first
 * certificate again (a third deploy), with nothing taken as in place.
 */
const firstDeployedAgain = async (
  w: Awaited<ReturnType<typeof setUp>>,
  state: Awaited<ReturnType<Awaited<ReturnType<typeof setUp>>["start"]>>["state"],
) => {
  await expect.poll(() => said(w.lines, "deploy: Succeeded").length, poll).toBe(3)
  expect(w.handle.latest("a")?.x5t).toBe(w.first.x5t)
  expect(state.get("a")).toMatchObject({ outcome: "Succeeded", x5t: w.first.x5t })
  expect(said(w.lines, "in place:")).toEqual([])
}

/**
 * After the first pass: an interval pass whose list asks for the vault's page (its second), the
 * answer held until the returned latch opens.
 */
const pageHeld = async (
  w: Awaited<ReturnType<typeof setUp>>,
  reconciler: Awaited<ReturnType<Awaited<ReturnType<typeof setUp>>["start"]>>["reconciler"],
) => {
  const page = latch()
  w.control.pageGate = page.promise
  await w.run(reconciler.triggerAll("interval"))
  await expect.poll(() => w.control.asked, poll).toBe(2)
  return page
}

describe("a vault's list page answered after the deployment it lists had an attempt", () => {
  it("running since before the page was asked: not used; the next attempt reads what the attempt wrote", async () => {
    const w = await setUp()
    const { reconciler, state } = await w.start(w.configOf([{ name: "a" }]))
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    expect(w.handle.latest("a")?.x5t).toBe(w.first.x5t)
    // The source changes: its deploy waits at its import, the vault still serving the first certificate.
    const importing = latch()
    w.control.importGates.set("a", importing.promise)
    w.write(w.second)
    await w.run(reconciler.trigger("a", "file change"))
    await expect.poll(() => w.control.imports, poll).toEqual(["a", "a"])
    // A reload lists the vault meanwhile: its page shows the first certificate.
    await w.run(reconciler.triggerAll("reload"))
    await expect.poll(() => stopped(w.lines).length, poll).toBe(2)
    expect(stopped(w.lines)[1]?.annotations).toMatchObject({ pages: 1, found: 0, deployments: 1 })
    // The change is undone before the deploy of the second certificate ends: the vault serves the
    // second, the source is the first again. The page's entry said the first was in place: not so now.
    w.write(w.first)
    w.control.importGates.delete("a")
    importing.open()
    await firstDeployedAgain(w, state)
    await w.run(reconciler.shutdown)
  }, 60_000)

  it("begun and ended while the page was on its way: not used; the next attempt reads what the attempt wrote", async () => {
    const w = await setUp()
    const { reconciler, state } = await w.start(w.configOf([{ name: "a" }]))
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    // An interval pass asks for the page (the vault serving the first certificate); the answer is slow.
    const page = await pageHeld(w, reconciler)
    // Meanwhile the source changes and is deployed (that attempt ends the pass), then the change is undone.
    w.write(w.second)
    await w.run(reconciler.trigger("a", "file change"))
    await expect.poll(() => passes(w.lines), poll).toBe(2)
    expect(w.handle.latest("a")?.x5t).toBe(w.second.x5t)
    w.write(w.first)
    // The page comes, showing the first certificate in place: it was, when the page was taken.
    w.control.pageGate = undefined
    page.open()
    await expect.poll(() => stopped(w.lines).length, poll).toBe(2)
    expect(stopped(w.lines)[1]?.annotations).toMatchObject({ pages: 1, found: 0, deployments: 1 })
    // The attempt the list starts reads the vault, and deploys the first certificate again.
    await firstDeployedAgain(w, state)
    await w.run(reconciler.shutdown)
  }, 60_000)

  it("that ended before the page was asked: the page is used (the list's entry settles the comparison)", async () => {
    const w = await setUp()
    const { reconciler } = await w.start(w.configOf([{ name: "a" }]))
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    const reads = w.control.reading.length
    await w.run(reconciler.triggerAll("interval"))
    await expect.poll(() => passes(w.lines), poll).toBe(2)
    expect(stopped(w.lines)[1]?.annotations).toMatchObject({ found: 1, deployments: 1 })
    expect(said(w.lines, "pass over")[1]?.annotations).toMatchObject({ inPlaceFromList: 1, listPages: 1 })
    expect(w.control.reading.length).toBe(reads)
    await w.run(reconciler.shutdown)
  }, 60_000)
})

describe("a vault's list page answered after a reload", () => {
  it("gives no entry to a deployment the reload moved to another certificate or removed", async () => {
    const w = await setUp()
    const { reconciler } = await w.start(w.configOf([{ name: "a" }, { name: "b" }, { name: "c" }]))
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    // The page (every certificate in place) is on its way when the reload moves a and removes b.
    const page = await pageHeld(w, reconciler)
    await w.run(reconciler.apply(w.configOf([{ name: "a", certificate: "moved" }, { name: "c" }])))
    expect(said(w.lines, "configuration applied")[0]?.annotations).toMatchObject({ changed: 1, removed: 1 })
    w.control.pageGate = undefined
    page.open()
    await expect.poll(() => passes(w.lines), poll).toBe(2)
    // Only c is found on the page (and settled by it); a reads its new certificate, deployed there.
    expect(stopped(w.lines)[1]?.annotations).toMatchObject({ pages: 2, found: 1, deployments: 3 })
    expect(said(w.lines, "pass over")[1]?.annotations).toMatchObject({ inPlaceFromList: 1 })
    await expect.poll(() => w.handle.latest("moved")?.x5t, poll).toBe(w.first.x5t)
    await w.run(reconciler.shutdown)
  }, 60_000)
})

describe("readiness", () => {
  it("waits for every deployment's first attempt, not for one a reload removed before it was attempted", async () => {
    const w = await setUp({ vault_list_min_deployments: 0, concurrency: 1 })
    const { reconciler, agentMetrics } = await w.start(w.configOf([{ name: "a" }, { name: "b" }]))
    expect(reconciler.isReady()).toBe(false)
    const reading = latch()
    w.control.readGates.set("a", reading.promise)
    w.control.readGates.set("b", reading.promise)
    await w.run(reconciler.triggerAll("start"))
    // One deployment reads (its read waits); the other waits for the one permit.
    await expect.poll(() => w.control.reading.length, poll).toBe(1)
    const first = w.control.reading[0] ?? ""
    const waiting = first === "a" ? "b" : "a"
    expect(reconciler.isReady()).toBe(false)
    // The one waiting is removed: the other's attempt is still to come.
    await w.run(reconciler.apply(w.configOf([{ name: first }])))
    expect(reconciler.isReady()).toBe(false)
    expect(await gauge(agentMetrics, "kvdeploy_agent_ready")).toBe(0)
    w.control.readGates.clear()
    reading.open()
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    expect(w.control.reading).not.toContain(waiting)
    expect(reconciler.isReady()).toBe(true)
    expect(await gauge(agentMetrics, "kvdeploy_agent_ready")).toBe(1)
    await w.run(reconciler.shutdown)
  }, 60_000)

  it("counts a deployment a reload removed during its attempt once: not ready while another is still to come", async () => {
    const w = await setUp({ vault_list_min_deployments: 0 })
    const { reconciler } = await w.start(w.configOf([{ name: "a" }, { name: "r" }, { name: "c" }]))
    const importing = latch()
    const reading = latch()
    w.control.importGates.set("r", importing.promise)
    w.control.readGates.set("c", reading.promise)
    await w.run(reconciler.triggerAll("start"))
    // a deployed; r's import sent and waiting; c's read waiting.
    await expect.poll(() => said(w.lines, "deploy: Succeeded").length, poll).toBe(1)
    await expect.poll(() => w.control.imports, poll).toContain("r")
    await expect.poll(() => w.control.reading, poll).toContain("c")
    // The reload removes r: counted as attempted at once, and its attempt's end counts it no more.
    const applied = w.run(reconciler.apply(w.configOf([{ name: "a" }, { name: "c" }])))
    await expect.poll(() => reconciler.deployments().map((d) => d.name), poll).toEqual(["a", "c"])
    w.control.importGates.clear()
    importing.open()
    await applied
    await expect.poll(() => w.handle.latest("r")?.x5t, poll).toBe(w.first.x5t)
    expect(reconciler.isReady()).toBe(false)
    w.control.readGates.clear()
    reading.open()
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    expect(reconciler.isReady()).toBe(true)
    await w.run(reconciler.shutdown)
  }, 60_000)
})

describe("a shutdown while a reload waits for a removed deployment's import", () => {
  it("waits for that import too: no deploy is left unfinished", async () => {
    const w = await setUp({ vault_list_min_deployments: 0, shutdown_grace_seconds: 60 })
    const { reconciler } = await w.start(w.configOf([{ name: "a" }, { name: "r" }]))
    const importing = latch()
    w.control.importGates.set("r", importing.promise)
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => w.handle.latest("a")?.x5t, poll).toBe(w.first.x5t)
    await expect.poll(() => w.control.imports, poll).toContain("r")
    // The reload removes r: its import was sent, so the reload waits for it to end.
    const applied = w.run(reconciler.apply(w.configOf([{ name: "a" }])))
    await expect.poll(() => reconciler.deployments().map((d) => d.name), poll).toEqual(["a"])
    let importedWhenStopped: string | undefined
    const stopping = w.run(reconciler.shutdown).then(() => {
      importedWhenStopped = w.handle.latest("r")?.x5t
    })
    await expect.poll(() => said(w.lines, "stopping:").length, poll).toBe(1)
    // The shutdown must not end while the import is on its way. Nothing signals that it waits (it
    // says so before waiting): given a second, a shutdown that did not wait says it gave up on r.
    const deadline = Date.now() + 1_000
    while (Date.now() < deadline && said(w.lines, "grace period over").length === 0)
      await new Promise((resolve) => setTimeout(resolve, 20))
    importing.open()
    await applied
    await stopping
    expect(said(w.lines, "grace period over")).toEqual([])
    expect(importedWhenStopped).toBe(w.first.x5t)
  }, 60_000)
})

describe("a reload that removes deployments", () => {
  it("stops them all at once: one waiting for its read sends no import while the reload waits for another's import in flight", async () => {
    const w = await setUp({ vault_list_min_deployments: 0, shutdown_grace_seconds: 60 })
    const { reconciler } = await w.start(w.configOf([{ name: "a" }, { name: "sent" }, { name: "reading" }]))
    const importing = latch()
    const reading = latch()
    w.control.importGates.set("sent", importing.promise)
    w.control.readGates.set("reading", reading.promise)
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => w.handle.latest("a")?.x5t, poll).toBe(w.first.x5t)
    await expect.poll(() => w.control.imports, poll).toContain("sent")
    await expect.poll(() => w.control.reading, poll).toContain("reading")
    // The reload removes both: it waits for "sent"'s import, which was sent; "reading" sent nothing.
    const applied = w.run(reconciler.apply(w.configOf([{ name: "a" }])))
    await expect.poll(() => reconciler.deployments().map((d) => d.name), poll).toEqual(["a"])
    // "reading"'s read answers while the reload still waits for "sent": a removed deployment stopped
    // only after "sent" would import now. Nothing signals that it does not: given a second, one that
    // was not stopped has sent its import.
    w.control.readGates.delete("reading")
    reading.open()
    const deadline = Date.now() + 1_000
    while (Date.now() < deadline && !w.control.imports.includes("reading"))
      await new Promise((resolve) => setTimeout(resolve, 20))
    importing.open()
    await applied
    expect(w.control.imports).not.toContain("reading")
    expect(w.handle.latest("reading")).toBeUndefined()
    expect(w.handle.latest("sent")?.x5t).toBe(w.first.x5t)
    await w.run(reconciler.shutdown)
  }, 60_000)
})
