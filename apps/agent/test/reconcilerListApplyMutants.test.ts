/**
 * The reconciler's list of a vault (refusals, the no-token line told once, entries without their
 * facts) and a reload's apply (deployments removed, changed, and a state record of an earlier
 * agent's fingerprint adopted), checked in process over core's in-memory vault with the real codec:
 * each test kills mutants of reconciler.ts (listVault, adoptedRecord, addSlot, apply) that every
 * other test let pass.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type ListedPage, type Vault, type VaultError, VaultForbidden } from "@kvdeploy/core"
import { Fault } from "@kvdeploy/core/test"
import { generateKey, issue } from "@kvdeploy/pkcs12/testing"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import { afterAll, describe, expect, it } from "vitest"
import type { makeAgentMetrics } from "../src/agentMetrics.js"
import type { AgentConfig } from "../src/config.js"
import { openStateStore, type StateStore } from "../src/state.js"
import {
  codecReconciler,
  inMemoryVault,
  jsonLogger,
  type Line,
  oneSourceConfig,
  oneVault,
  type SourceSpec,
} from "./inProcess.js"
import { makePki } from "./pki.js"

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-list-apply-mutants-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const VAULT = "https://listapply.vault.azure.net"

/**
 * Reconcilers over one in-memory vault decoding with the real codec, of deployments of one source
 * (`write`s leaf). The vault's list answers `list` while it is set (else the in-memory vault's own
 * pages), counted in `listed`; its reads wait while `gate` is set, and say so in `reading`.
 */
const setUp = async (agent: Record<string, unknown> = {}) => {
  const sub = mkdtempSync(join(dir, "case-"))
  const pki = await makePki()
  const leaf = await pki.leaf("list-apply.example.test")
  writeFileSync(join(sub, "s.crt"), leaf.certPem)
  writeFileSync(join(sub, "s.key"), leaf.keyPem, { mode: 0o600 })
  const configOf = (specs: ReadonlyArray<SourceSpec>): AgentConfig =>
    oneSourceConfig(sub, VAULT, specs, agent)
  const { vault, handle, metrics } = await inMemoryVault()
  const control: {
    list: ((continuation: string | undefined) => Effect.Effect<ListedPage, VaultError>) | undefined
    listed: number
    gate: Promise<void> | undefined
    reading: Array<string>
    noToken: boolean
    importGate: Promise<void> | undefined
    importing: number
  } = {
    list: undefined,
    listed: 0,
    gate: undefined,
    reading: [],
    noToken: false,
    importGate: undefined,
    importing: 0,
  }
  const wrapped: Vault["Service"] = {
    ...vault,
    getLatest: (name) =>
      Effect.suspend(() => {
        control.reading.push(name)
        const gate = control.gate
        const read = control.noToken ? Effect.fail(unsent("getLatest")) : vault.getLatest(name)
        return gate === undefined
          ? read
          : Effect.andThen(
              Effect.promise(() => gate),
              read,
            )
      }),
    importVersion: (request) =>
      Effect.suspend(() => {
        control.importing++
        const gate = control.importGate
        const write = vault.importVersion(request)
        return gate === undefined
          ? write
          : Effect.andThen(
              Effect.promise(() => gate),
              write,
            )
      }),
    listCertificates: (continuation) =>
      Effect.suspend(() => {
        control.listed++
        const list = control.list
        return list === undefined ? vault.listCertificates!(continuation) : list(continuation)
      }),
  }
  const { lines, logger } = jsonLogger()
  const run = <A>(effect: Effect.Effect<A>) =>
    Effect.runPromise(effect.pipe(Effect.provide(Logger.layer([logger]))))
  const start = async (
    config: AgentConfig,
    state: StateStore = openStateStore(join(sub, "state"), () => {}),
  ) => ({ ...(await codecReconciler(config, state, oneVault(wrapped), metrics, logger)), state })
  return { pki, leaf, handle, control, lines, run, start, configOf, sub }
}

/** A request no token could be had for (nothing sent). */
const unsent = (operation: "getLatest" | "listCertificates") =>
  new VaultForbidden({
    operation,
    detail: "the identity provider refused the credential",
    refusal: "credential",
    unsent: true,
  })

const poll = { timeout: 10_000, interval: 20 }
const said = (lines: ReadonlyArray<Line>, prefix: string) =>
  lines.filter((l) => String(l.message).startsWith(prefix))
const passes = (lines: ReadonlyArray<Line>) => said(lines, "pass over").length

/** The value of the agent's series `name` for `deployment` (with `extra` among its labels), or undefined. */
const series = async (
  metrics: ReturnType<typeof makeAgentMetrics>,
  name: string,
  deployment: string,
  extra = "",
) => {
  const line = (await metrics.text())
    .split("\n")
    .find((l) => l.startsWith(`${name}{`) && l.includes(`deployment="${deployment}"`) && l.includes(extra))
  return line === undefined ? undefined : Number(line.split(" ").at(-1))
}

const listing = { vault_list_min_deployments: 1 }
const three: ReadonlyArray<SourceSpec> = [{ name: "a" }, { name: "b" }, { name: "c" }]

describe("a vault's list refused", () => {
  it("for want of the permission: said with the grant to make, not asked again until a reload", async () => {
    const w = await setUp(listing)
    w.control.list = () =>
      Effect.fail(
        new VaultForbidden({ operation: "listCertificates", detail: "no list", refusal: "permission" }),
      )
    const { reconciler, state } = await w.start(w.configOf(three))
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    expect(["a", "b", "c"].map((n) => state.get(n)?.outcome)).toEqual(["Succeeded", "Succeeded", "Succeeded"])
    const refused = said(w.lines, "vault list")
    expect(refused).toHaveLength(1)
    expect(refused[0]).toMatchObject({
      message: "vault list refused: each deployment reads its own certificate until the next reload (SIGHUP)",
      level: "WARN",
      annotations: { vault: VAULT, deployments: 3, error: "VaultForbidden", operation: "listCertificates" },
    })
    expect(String(refused[0]?.annotations.fix)).toContain("certificates/list")
    expect(w.control.listed).toBe(1)
    // The next pass reads each certificate: no list.
    await w.run(reconciler.triggerAll("interval"))
    await expect.poll(() => passes(w.lines), poll).toBe(2)
    expect(w.control.listed).toBe(1)
    // A reload lists again.
    await w.run(reconciler.triggerAll("reload"))
    await expect.poll(() => passes(w.lines), poll).toBe(3)
    expect(w.control.listed).toBe(2)
    await w.run(reconciler.shutdown)
  }, 60_000)

  it("by the firewall: said without a grant to make, and the next pass lists again", async () => {
    const w = await setUp(listing)
    w.control.list = () =>
      Effect.fail(
        new VaultForbidden({ operation: "listCertificates", detail: "firewall", refusal: "network" }),
      )
    const { reconciler } = await w.start(w.configOf(three))
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    const failed = said(w.lines, "vault list")
    expect(failed).toHaveLength(1)
    expect(failed[0]?.message).toBe(
      "vault list failed: the deployments not listed read their own certificate",
    )
    expect(Object.keys(failed[0]?.annotations ?? {})).not.toContain("fix")
    await w.run(reconciler.triggerAll("interval"))
    await expect.poll(() => passes(w.lines), poll).toBe(2)
    expect(w.control.listed).toBe(2)
    expect(said(w.lines, "vault list")).toHaveLength(2)
    await w.run(reconciler.shutdown)
  }, 60_000)
})

describe("a vault's list without a token", () => {
  it("is said at the first such list, not at every pass, and again after a list that had one", async () => {
    const w = await setUp(listing)
    const { reconciler } = await w.start(w.configOf(three))
    // Deployed first (the list of an empty vault), then the lists get no token.
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    w.control.list = () => Effect.fail(unsent("listCertificates"))
    await w.run(reconciler.triggerAll("interval"))
    await expect.poll(() => passes(w.lines), poll).toBe(2)
    expect(said(w.lines, "vault list failed")).toHaveLength(1)
    await w.run(reconciler.triggerAll("interval"))
    await expect.poll(() => passes(w.lines), poll).toBe(3)
    expect(said(w.lines, "vault list failed")).toHaveLength(1)
    expect(w.control.listed).toBe(3)
    // A list with a token ends the run: the next without one is said again.
    w.control.list = undefined
    await w.run(reconciler.triggerAll("interval"))
    await expect.poll(() => passes(w.lines), poll).toBe(4)
    w.control.list = () => Effect.fail(unsent("listCertificates"))
    await w.run(reconciler.triggerAll("interval"))
    await expect.poll(() => passes(w.lines), poll).toBe(5)
    expect(said(w.lines, "vault list failed")).toHaveLength(2)
    await w.run(reconciler.shutdown)
  }, 60_000)

  it("is said again after a list that failed otherwise", async () => {
    const w = await setUp(listing)
    const { reconciler } = await w.start(w.configOf(three))
    w.control.list = () => Effect.fail(unsent("listCertificates"))
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    w.control.list = () =>
      Effect.fail(
        new VaultForbidden({ operation: "listCertificates", detail: "firewall", refusal: "network" }),
      )
    await w.run(reconciler.triggerAll("interval"))
    await expect.poll(() => passes(w.lines), poll).toBe(2)
    w.control.list = () => Effect.fail(unsent("listCertificates"))
    await w.run(reconciler.triggerAll("interval"))
    await expect.poll(() => passes(w.lines), poll).toBe(3)
    expect(said(w.lines, "vault list failed")).toHaveLength(3)
    await w.run(reconciler.shutdown)
  }, 60_000)
})

describe("a vault's list with entries that lack their facts", () => {
  it("names those of deployed certificates (whatever their case), at most 20, and not another writer's", async () => {
    const w = await setUp(listing)
    const specs = Array.from({ length: 22 }, (_, i) => ({ name: `u${i}` }))
    w.control.list = () =>
      Effect.succeed({
        certificates: [],
        continuation: undefined,
        unusable: [
          ...specs.map((s) => ({ name: s.name.toUpperCase(), detail: "no x5t" })),
          { name: "someone-elses", detail: "no x5t" },
        ],
      })
    const { reconciler, state } = await w.start(w.configOf(specs))
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    const entries = said(w.lines, "vault list: entries the vault answered without their facts")
    expect(entries).toHaveLength(1)
    expect(entries[0]?.level).toBe("WARN")
    expect(entries[0]?.annotations.vault).toBe(VAULT)
    expect(entries[0]?.annotations.entries).toEqual(
      specs.slice(0, 20).map((s) => `${s.name.toUpperCase()}: no x5t`),
    )
    expect(String(entries[0]?.annotations.fix)).toContain("proxy")
    // Each read its own certificate.
    expect(specs.map((s) => state.get(s.name)?.outcome)).toEqual(specs.map(() => "Succeeded"))
    await w.run(reconciler.shutdown)
  }, 60_000)

  it("says nothing when only another writer's entries lack them", async () => {
    const w = await setUp(listing)
    w.control.list = () =>
      Effect.succeed({
        certificates: [],
        continuation: undefined,
        unusable: [{ name: "someone-elses", detail: "no x5t" }],
      })
    const { reconciler } = await w.start(w.configOf(three))
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    expect(said(w.lines, "vault list:")).toEqual([])
    await w.run(reconciler.shutdown)
  }, 60_000)
})

describe("a vault's list stopped at its page budget", () => {
  /** A listed entry of certificate `name` (not the source's). */
  const entry = (name: string) => ({ name, x5t: "AAAA", enabled: true, tags: {} })

  it("says the vault answered short pages when its pages held fewer than 25 entries", async () => {
    const w = await setUp(listing)
    // Two deployments: one page at most. The page holds one of theirs and an entry without its facts.
    w.control.list = () =>
      Effect.succeed({
        certificates: [entry("a")],
        continuation: "more",
        unusable: [{ name: "someone-elses", detail: "no x5t" }],
      })
    const { reconciler } = await w.start(w.configOf([{ name: "a" }, { name: "b" }]))
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    const stopped = said(w.lines, "vault list stopped early")
    expect(stopped).toHaveLength(1)
    expect(stopped[0]?.message).toContain("the vault answered short pages")
    expect(stopped[0]).toMatchObject({
      level: "INFO",
      annotations: { vault: VAULT, pages: 1, entries: 2, found: 1, deployments: 2 },
    })
    expect(w.control.listed).toBe(1)
    // The pass's line counts the page read.
    expect(said(w.lines, "pass over")[0]?.annotations.listPages).toBe(1)
    await w.run(reconciler.shutdown)
  }, 60_000)

  it("says the vault holds many more certificates when its pages were full", async () => {
    const w = await setUp(listing)
    w.control.list = () =>
      Effect.succeed({
        certificates: Array.from({ length: 25 }, (_, i) => entry(`other-${i}`)),
        continuation: "more",
      })
    const { reconciler } = await w.start(w.configOf([{ name: "a" }, { name: "b" }]))
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    const stopped = said(w.lines, "vault list stopped early")
    expect(stopped).toHaveLength(1)
    expect(stopped[0]?.message).toContain("it holds many more certificates than are deployed to it")
    expect(stopped[0]?.annotations).toMatchObject({ pages: 1, entries: 25, found: 0, deployments: 2 })
    await w.run(reconciler.shutdown)
  }, 60_000)
})

describe("a reload", () => {
  it("that removes a deployment removes its state record and series, and says what it applied", async () => {
    const w = await setUp()
    const { reconciler, state, agentMetrics } = await w.start(w.configOf(three))
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    expect(await series(agentMetrics, "kvdeploy_agent_last_outcome", "c", 'outcome="Succeeded"')).toBe(1)
    await w.run(reconciler.apply(w.configOf([{ name: "a" }, { name: "b" }, { name: "d" }])))
    expect(state.get("c")).toBeUndefined()
    expect(await series(agentMetrics, "kvdeploy_agent_last_outcome", "c")).toBeUndefined()
    expect(said(w.lines, "configuration applied")[0]?.annotations).toMatchObject({
      deployments: 3,
      added: 1,
      changed: 0,
      removed: 1,
    })
    expect(reconciler.deployments().map((d) => d.name)).toEqual(["a", "b", "d"])
    await w.run(reconciler.shutdown)
  }, 60_000)

  it("that removes a deployment whose import is on its way: the import's outcome brings no state record back", async () => {
    const w = await setUp()
    const { reconciler, state } = await w.start(w.configOf([{ name: "a" }, { name: "r" }]))
    let open = () => {}
    w.control.importGate = new Promise<void>((resolve) => {
      open = resolve
    })
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => w.control.importing, poll).toBe(2)
    // The reload waits for the import sent (it runs to its end): released meanwhile.
    const applied = w.run(reconciler.apply(w.configOf([{ name: "a" }])))
    await new Promise((resolve) => setTimeout(resolve, 50))
    w.control.importGate = undefined
    open()
    await applied
    await expect.poll(() => state.get("a")?.outcome, poll).toBe("Succeeded")
    expect(w.handle.latest("r")?.x5t).toBe(w.leaf.x5t)
    expect(state.get("r")).toBeUndefined()
    expect(state.names()).toEqual(["a"])
    await w.run(reconciler.shutdown)
  }, 60_000)

  it("that removes a deployment waiting for its turn lets the pass end", async () => {
    const w = await setUp({ concurrency: 1 })
    const { reconciler } = await w.start(w.configOf([{ name: "a" }, { name: "b" }]))
    let open = () => {}
    w.control.gate = new Promise<void>((resolve) => {
      open = resolve
    })
    await w.run(reconciler.triggerAll("start"))
    // One deployment reads (its read waits); the other waits for the one permit.
    await expect.poll(() => w.control.reading.length, poll).toBe(1)
    const reading = w.control.reading[0] ?? ""
    const waiting = reading === "a" ? "b" : "a"
    await w.run(reconciler.apply(w.configOf([{ name: reading }])))
    w.control.gate = undefined
    open()
    await expect.poll(() => passes(w.lines), poll).toBe(1)
    expect(w.control.reading).not.toContain(waiting)
    await w.run(reconciler.shutdown)
  }, 60_000)

  it("that moves a deployment to another certificate stops its attempt for the old one: nothing written there", async () => {
    const w = await setUp()
    const { reconciler, state } = await w.start(w.configOf([{ name: "m", certificate: "old" }]))
    let open = () => {}
    w.control.gate = new Promise<void>((resolve) => {
      open = resolve
    })
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => w.control.reading, poll).toEqual(["old"])
    await w.run(reconciler.apply(w.configOf([{ name: "m", certificate: "new" }])))
    expect(said(w.lines, "configuration applied")[0]?.annotations).toMatchObject({
      added: 0,
      changed: 1,
      removed: 0,
    })
    w.control.gate = undefined
    open()
    await w.run(reconciler.triggerAll("reload"))
    await expect.poll(() => state.get("m")?.outcome, poll).toBe("Succeeded")
    expect(w.handle.latest("new")?.x5t).toBe(w.leaf.x5t)
    expect(w.handle.versions("old")).toEqual([])
    await w.run(reconciler.shutdown)
  }, 60_000)

  it("that moves a deployment to another certificate says again that no token could be had", async () => {
    const w = await setUp()
    w.control.noToken = true
    const { reconciler, state } = await w.start(w.configOf([{ name: "t", certificate: "one" }]))
    await w.run(reconciler.triggerAll("start"))
    await expect.poll(() => said(w.lines, "no token for the vault").length, poll).toBe(1)
    await w.run(reconciler.apply(w.configOf([{ name: "t", certificate: "two" }])))
    await w.run(reconciler.triggerAll("reload"))
    await expect.poll(() => said(w.lines, "no token for the vault").length, poll).toBe(2)
    expect(state.get("t")?.outcome).toBe("Failed")
    await w.run(reconciler.shutdown)
  }, 60_000)
})

/** Another writer's certificate material. */
const foreignMaterial = async () => {
  const key = await generateKey("P-256")
  const der = await issue({
    subject: "CN=other.example.test",
    key,
    notBefore: new Date(Date.now() - 86_400_000),
    notAfter: new Date(Date.now() + 30 * 86_400_000),
  })
  return { leaf: der, chain: [], key: Redacted.make(key.pkcs8) }
}

describe("a held outcome an earlier agent recorded (its fingerprint with the pickup check in it)", () => {
  it("is adopted under the fingerprint without pickup, and still held after a reload changed the pickup check", async () => {
    const w = await setUp()
    const pickupAt = (port: number) => ({ extra: { pickup: { host: "127.0.0.1", port } } })
    const first = w.configOf([{ name: "h", ...pickupAt(1) }])
    // Superseded under this agent, then written back as the earlier agent wrote it.
    w.handle.script("getLatest", Fault.pass, Fault.foreignImport(await foreignMaterial()))
    const before = await w.start(first)
    await w.run(before.reconciler.triggerAll("start"))
    await expect.poll(() => before.state.get("h")?.outcome, poll).toBe("Superseded")
    await w.run(before.reconciler.shutdown)
    const [d] = first.deployments
    const former = d?.formerFingerprints?.[0]
    expect(former).toBeDefined()
    expect(former).not.toBe(d?.fingerprint)
    const record = before.state.get("h")
    if (record === undefined || former === undefined) throw new Error("no record")
    before.state.set("h", { ...record, configFingerprint: former })
    // The upgraded agent starts: the record is this deployment's, under its fingerprint now.
    const after = await w.start(first, before.state)
    expect(after.state.get("h")).toEqual({ ...record, configFingerprint: d?.fingerprint })
    expect(await series(after.agentMetrics, "kvdeploy_agent_last_outcome", "h", 'outcome="Superseded"')).toBe(
      1,
    )
    // A reload moves the pickup check: the source stays held, nothing imported.
    const imports = w.handle.calls().byOperation.importVersion
    await w.run(after.reconciler.apply(w.configOf([{ name: "h", ...pickupAt(2) }])))
    await w.run(after.reconciler.triggerAll("reload"))
    await expect.poll(() => said(w.lines, "held:").length, poll).toBe(1)
    expect(w.handle.calls().byOperation.importVersion).toBe(imports)
    expect(after.state.get("h")).toMatchObject({ outcome: "Superseded", held: true })
    await w.run(after.reconciler.shutdown)
  }, 60_000)

  it("of another configuration is not adopted: the deployment it no longer describes deploys", async () => {
    const w = await setUp()
    const pickup = { extra: { pickup: { host: "127.0.0.1", port: 1 } } }
    const first = w.configOf([{ name: "h", certificate: "before", ...pickup }])
    w.handle.script("getLatest", Fault.pass, Fault.foreignImport(await foreignMaterial()))
    const before = await w.start(first)
    await w.run(before.reconciler.triggerAll("start"))
    await expect.poll(() => before.state.get("h")?.outcome, poll).toBe("Superseded")
    await w.run(before.reconciler.shutdown)
    // Restarted with the deployment moved to another certificate: the record is not this configuration's.
    const record = before.state.get("h")
    const moved = w.configOf([{ name: "h", certificate: "after", ...pickup }])
    const after = await w.start(moved, before.state)
    expect(after.state.get("h")).toEqual(record)
    await w.run(after.reconciler.triggerAll("start"))
    await expect.poll(() => after.state.get("h")?.outcome, poll).toBe("Succeeded")
    expect(w.handle.latest("after")?.x5t).toBe(w.leaf.x5t)
    expect(after.state.get("h")?.configFingerprint).toBe(moved.deployments[0]?.fingerprint)
    await w.run(after.reconciler.shutdown)
  }, 60_000)
})
