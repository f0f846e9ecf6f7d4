/**
 * What the state file records after each outcome of the reconciler (a vault that could not be read,
 * no vault access, a broken source, a held outcome kept), and the pickup check's series and lines:
 * checked in process over core's in-memory vault with the real codec. Each test kills mutants of
 * reconciler.ts (keepServed, record, recordUnread, the broken-source branch of an attempt,
 * pickupCheck) that every other test let pass.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import type { Server } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createServer } from "node:tls"
import { type Vault, VaultForbidden } from "@kvdeploy/core"
import { Fault } from "@kvdeploy/core/test"
import { generateKey, issue } from "@kvdeploy/pkcs12/testing"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import { afterAll, describe, expect, it } from "vitest"
import type { makeAgentMetrics } from "../src/agentMetrics.js"
import type { AgentConfig } from "../src/config.js"
import { openStateStore, type StateStore } from "../src/state.js"
import type { Vaults } from "../src/vaults.js"
import { codecReconciler, configIn, inMemoryVault, jsonLogger, type Line, oneVault } from "./inProcess.js"
import { type Issued, makePki } from "./pki.js"

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-record-mutants-"))
const servers: Array<Server> = []
afterAll(() => {
  for (const s of servers) s.close()
  rmSync(dir, { recursive: true, force: true })
})
const VAULT = "https://records.vault.azure.net"

/** Whether the next `getLatest` of the wrapped vault fails for want of a token (nothing sent). */
interface Switches {
  noToken: boolean
}

/**
 * A reconciler of one deployment `name` over an in-memory vault decoding with the real codec (its
 * `getLatest` failing for want of a token while `switches.noToken`); its log lines in `lines`.
 * `vaults` replaces the vault access (a target without access, say); `state` a restarted agent's.
 */
const setUp = async (
  name: string,
  options: {
    readonly agent?: Record<string, unknown>
    readonly deployment?: Record<string, unknown>
    readonly sub?: string
    readonly vaults?: Layer.Layer<Vaults>
  } = {},
) => {
  const sub = options.sub ?? mkdtempSync(join(dir, "case-"))
  const pki = await makePki()
  const write = (leaf: Issued) => {
    writeFileSync(join(sub, `${name}.crt`), leaf.certPem)
    writeFileSync(join(sub, `${name}.key`), leaf.keyPem, { mode: 0o600 })
  }
  /** The configuration with `deployment`'s fields (a pickup check, say) over the defaults. */
  const configOf = (deployment: Record<string, unknown> | undefined): AgentConfig =>
    configIn(sub, {
      agent: {
        listen: "127.0.0.1:0",
        state_dir: join(sub, "state"),
        vault_list_min_deployments: 0,
        backoff_base_seconds: 60,
        backoff_max_seconds: 60,
        ...options.agent,
      },
      deployments: [
        {
          name,
          source: { cert: join(sub, `${name}.crt`), key: join(sub, `${name}.key`) },
          target: { vault_url: VAULT, certificate_name: name },
          ...deployment,
        },
      ],
    })
  const config = configOf(options.deployment)
  const { vault, handle, metrics } = await inMemoryVault()
  const switches: Switches = { noToken: false }
  const wrapped: Vault["Service"] = {
    ...vault,
    getLatest: (certificate) =>
      switches.noToken
        ? Effect.fail(
            new VaultForbidden({
              operation: "getLatest",
              detail: "the identity provider refused the credential",
              refusal: "credential",
              unsent: true,
            }),
          )
        : vault.getLatest(certificate),
  }
  const { lines, logger } = jsonLogger()
  const start = async (state: StateStore = openStateStore(join(sub, "state"), () => {})) => ({
    ...(await codecReconciler(config, state, options.vaults ?? oneVault(wrapped), metrics, logger)),
    state,
  })
  /** `effect` (a reload's apply) run with the test's logger. */
  const run = <A>(effect: Effect.Effect<A>) =>
    Effect.runPromise(effect.pipe(Effect.provide(Logger.layer([logger]))))
  return { pki, write, vault, handle, switches, lines, start, run, sub, config, configOf }
}

const poll = { timeout: 10_000, interval: 20 }
const said = (lines: ReadonlyArray<Line>, prefix: string) =>
  lines.filter((l) => String(l.message).startsWith(prefix))

/** The material of a certificate another writer imports, expiring at `notAfter`. */
const foreignMaterial = async (cn: string, notAfter: Date) => {
  const key = await generateKey("P-256")
  const der = await issue({
    subject: `CN=${cn}`,
    key,
    notBefore: new Date(Date.now() - 86_400_000),
    notAfter,
  })
  return { leaf: der, chain: [], key: Redacted.make(key.pkcs8) }
}

/** The text of series `name` of the agent's own registry for `deployment` (with `labels`), or undefined. */
const series = async (
  metrics: ReturnType<typeof makeAgentMetrics>,
  name: string,
  deployment: string,
  extra = "",
): Promise<number | undefined> => {
  const text = await metrics.text()
  const line = text
    .split("\n")
    .find((l) => l.startsWith(`${name}{`) && l.includes(`deployment="${deployment}"`) && l.includes(extra))
  return line === undefined ? undefined : Number(line.split(" ").at(-1))
}

describe("a vault that could not be read, after a deploy", () => {
  it("is recorded Failed for the source in place: its thumbprint and expiry, the last success and what the vault served kept", async () => {
    const w = await setUp("fr")
    const leaf = await w.pki.leaf("fr.example.test")
    w.write(leaf)
    const { reconciler, state, agentMetrics } = await w.start()
    await Effect.runPromise(reconciler.triggerAll("start"))
    await expect.poll(() => state.get("fr")?.outcome, poll).toBe("Succeeded")
    const succeeded = state.get("fr")
    expect(succeeded?.servedNotAfter).toBe(leaf.notAfter.toISOString())
    const lastSuccess = Math.floor(Date.parse(succeeded?.lastSuccessAt ?? "") / 1000)
    expect(await series(agentMetrics, "kvdeploy_agent_last_success_timestamp_seconds", "fr")).toBe(
      lastSuccess,
    )
    // The next attempt fails a second later at least: its time is not the last success's.
    await new Promise((resolve) => setTimeout(resolve, 1000))
    w.handle.script("getLatest", Fault.fail("Unavailable"))
    await Effect.runPromise(reconciler.triggerAll("interval"))
    await expect.poll(() => state.get("fr")?.outcome, poll).toBe("Failed")
    expect(state.get("fr")).toEqual({
      outcome: "Failed",
      at: expect.any(String),
      reason: "reading the certificate: unavailable: scripted Unavailable",
      configFingerprint: succeeded?.configFingerprint,
      sourceFingerprint: succeeded?.sourceFingerprint,
      x5t: leaf.x5t,
      versionId: undefined,
      notAfter: succeeded?.notAfter,
      // No chain: the leaf's.
      earliestNotAfter: leaf.notAfter.toISOString(),
      earliestNotAfterRule: "issuer-path",
      lastSuccessAt: succeeded?.lastSuccessAt,
      held: false,
      servedNotAfter: leaf.notAfter.toISOString(),
    })
    expect(Date.parse(state.get("fr")?.at ?? "")).toBeGreaterThanOrEqual(Date.parse(succeeded?.at ?? ""))
    expect(await series(agentMetrics, "kvdeploy_agent_last_outcome", "fr", 'outcome="Failed"')).toBe(1)
    expect(await series(agentMetrics, "kvdeploy_agent_last_success_timestamp_seconds", "fr")).toBe(
      lastSuccess,
    )
    expect(await series(agentMetrics, "kvdeploy_agent_last_outcome", "fr", 'outcome="Succeeded"')).toBe(
      undefined,
    )
    await Effect.runPromise(reconciler.shutdown)
  }, 40_000)
})

const day = 86_400_000

/**
 * Deploys `leaf` for `w`'s deployment `name` while another writer imports its own certificate
 * (expiring `foreignNotAfter`) just before the deploy's verify read: Superseded, held.
 */
const superseded = async (
  w: Awaited<ReturnType<typeof setUp>>,
  name: string,
  leaf: Issued,
  foreignNotAfter: Date,
) => {
  w.write(leaf)
  w.handle.script(
    "getLatest",
    Fault.pass,
    Fault.foreignImport(await foreignMaterial("other.example.test", foreignNotAfter)),
  )
  const started = await w.start()
  await Effect.runPromise(started.reconciler.triggerAll("start"))
  await expect.poll(() => started.state.get(name)?.outcome, poll).toBe("Superseded")
  // The start pass is over (a held outcome is recorded, then written, then said): a trigger while
  // it runs would be part of it.
  await expect.poll(() => said(w.lines, "pass over").length, poll).toBe(1)
  return started
}

describe("a held outcome", () => {
  it("stays recorded, with what the vault served, when a restarted agent cannot read the vault", async () => {
    const w = await setUp("hr")
    const leaf = await w.pki.leaf("hr.example.test")
    const foreignNotAfter = new Date(Math.floor((Date.now() + 200 * day) / 1000) * 1000)
    const first = await superseded(w, "hr", leaf, foreignNotAfter)
    // The held pass reads the other writer's version: the record says what the vault serves.
    await Effect.runPromise(first.reconciler.triggerAll("interval"))
    await expect.poll(() => first.state.get("hr")?.servedNotAfter, poll).toBe(foreignNotAfter.toISOString())
    await Effect.runPromise(first.reconciler.shutdown)
    const held = first.state.get("hr")
    // Restarted (a new reconciler over the same state): its read of the vault fails.
    w.handle.script("getLatest", Fault.fail("Unavailable"))
    const again = await w.start(first.state)
    await Effect.runPromise(again.reconciler.triggerAll("start"))
    await expect.poll(() => said(w.lines, "cannot read the vault").length, poll).toBe(1)
    expect(again.state.get("hr")).toEqual(held)
    expect(again.state.get("hr")).toMatchObject({
      outcome: "Superseded",
      held: true,
      servedNotAfter: foreignNotAfter.toISOString(),
    })
    expect(
      await series(again.agentMetrics, "kvdeploy_agent_last_outcome", "hr", 'outcome="Superseded"'),
    ).toBe(1)
    await Effect.runPromise(again.reconciler.shutdown)
  }, 60_000)

  it("drops what the vault served from its record once the vault serves nothing under the name", async () => {
    const w = await setUp("hn")
    const leaf = await w.pki.leaf("hn.example.test")
    const foreignNotAfter = new Date(Math.floor((Date.now() + 200 * day) / 1000) * 1000)
    const { reconciler, state } = await superseded(w, "hn", leaf, foreignNotAfter)
    await Effect.runPromise(reconciler.triggerAll("interval"))
    await expect.poll(() => state.get("hn")?.servedNotAfter, poll).toBe(foreignNotAfter.toISOString())
    // Another writer's newer version, expiring later: the held pass records its expiry.
    const later = new Date(Math.floor((Date.now() + 300 * day) / 1000) * 1000)
    await Effect.runPromise(w.handle.seed("hn", await foreignMaterial("later.example.test", later)))
    await Effect.runPromise(reconciler.triggerAll("interval"))
    await expect.poll(() => state.get("hn")?.servedNotAfter, poll).toBe(later.toISOString())
    await Effect.runPromise(w.handle.softDelete("hn"))
    await Effect.runPromise(reconciler.triggerAll("interval"))
    await expect.poll(() => said(w.lines, "held:").length, poll).toBe(3)
    expect(state.get("hn")).toMatchObject({ outcome: "Superseded", held: true, x5t: leaf.x5t })
    expect(Object.keys(state.get("hn") ?? {})).not.toContain("servedNotAfter")
    await Effect.runPromise(reconciler.shutdown)
  }, 60_000)

  it("stays recorded while the source is broken, and holds the source once it is whole again", async () => {
    const w = await setUp("hb")
    const leaf = await w.pki.leaf("hb.example.test")
    const { reconciler, state, agentMetrics } = await superseded(
      w,
      "hb",
      leaf,
      new Date(Math.floor((Date.now() + 200 * day) / 1000) * 1000),
    )
    const held = state.get("hb")
    writeFileSync(
      join(w.sub, "hb.crt"),
      "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    await Effect.runPromise(reconciler.trigger("hb", "file change"))
    await expect.poll(() => said(w.lines, "source broken").length, poll).toBe(1)
    expect(await series(agentMetrics, "kvdeploy_agent_source_broken", "hb")).toBe(1)
    expect(state.get("hb")).toEqual(held)
    const imports = w.handle.calls().byOperation.importVersion
    w.write(leaf)
    await Effect.runPromise(reconciler.trigger("hb", "file change"))
    await expect.poll(() => said(w.lines, "held:").length, poll).toBe(1)
    expect(await series(agentMetrics, "kvdeploy_agent_source_broken", "hb")).toBe(0)
    expect(w.handle.calls().byOperation.importVersion).toBe(imports)
    expect(state.get("hb")).toMatchObject({ outcome: "Superseded", held: true, x5t: leaf.x5t })
    await Effect.runPromise(reconciler.shutdown)
  }, 60_000)
})

describe("a deploy refused because another writer's certificate holds the name", () => {
  it("is recorded held with the fix the held lines repeat", async () => {
    const w = await setUp("nm")
    const leaf = await w.pki.leaf("nm.example.test")
    w.write(leaf)
    await Effect.runPromise(
      w.handle.seed("nm", await foreignMaterial("other.example.test", new Date(Date.now() + 30 * day))),
    )
    const { reconciler, state } = await w.start()
    await Effect.runPromise(reconciler.triggerAll("start"))
    await expect.poll(() => state.get("nm")?.outcome, poll).toBe("Rejected")
    const rejected = state.get("nm")
    expect(rejected?.held).toBe(true)
    expect(rejected?.fix).toContain("adopt: true")
    await Effect.runPromise(reconciler.triggerAll("interval"))
    await expect.poll(() => said(w.lines, "held:").length, poll).toBe(1)
    expect(said(w.lines, "held:")[0]?.annotations.fix).toBe(rejected?.fix)
    await Effect.runPromise(reconciler.shutdown)
  }, 60_000)
})

describe("a held outcome followed by a new source", () => {
  it("gives way to the decision about the new source: its deploy's refusal recorded, with its thumbprint", async () => {
    const w = await setUp("hs")
    const leaf = await w.pki.leaf("hs.example.test")
    const { reconciler, state } = await superseded(
      w,
      "hs",
      leaf,
      new Date(Math.floor((Date.now() + 200 * day) / 1000) * 1000),
    )
    const held = state.get("hs")
    const renewed = await w.pki.leaf("hs.example.test")
    w.write(renewed)
    await Effect.runPromise(reconciler.trigger("hs", "file change"))
    // The other writer's version is served: the deploy of the new source is refused (a takeover needs adopt).
    await expect.poll(() => state.get("hs")?.outcome, poll).toBe("Rejected")
    expect(state.get("hs")?.x5t).toBe(renewed.x5t)
    expect(state.get("hs")?.sourceFingerprint).not.toBe(held?.sourceFingerprint)
    expect(state.get("hs")?.fix).toContain("adopt: true")
    await Effect.runPromise(reconciler.shutdown)
  }, 60_000)
})

describe("a held outcome of a configuration a reload replaced", () => {
  it("gives way to the Failed outcome of the new configuration's read that failed", async () => {
    const w = await setUp("hc")
    const leaf = await w.pki.leaf("hc.example.test")
    const { reconciler, state, agentMetrics } = await superseded(
      w,
      "hc",
      leaf,
      new Date(Math.floor((Date.now() + 200 * day) / 1000) * 1000),
    )
    const changed = w.configOf({ target: { vault_url: VAULT, certificate_name: "hc", tags: { team: "x" } } })
    await w.run(reconciler.apply(changed))
    w.handle.script("getLatest", Fault.fail("Unavailable"))
    await w.run(reconciler.triggerAll("reload"))
    await expect.poll(() => state.get("hc")?.outcome, poll).toBe("Failed")
    expect(state.get("hc")).toMatchObject({
      held: false,
      configFingerprint: changed.deployments[0]?.fingerprint,
      x5t: leaf.x5t,
    })
    expect(await series(agentMetrics, "kvdeploy_agent_last_outcome", "hc", 'outcome="Failed"')).toBe(1)
    await Effect.runPromise(reconciler.shutdown)
  }, 60_000)
})

describe("a broken source", () => {
  it("is recorded SourceBroken with the fingerprint of its bytes and no certificate facts; the last success kept", async () => {
    const w = await setUp("sb")
    const leaf = await w.pki.leaf("sb.example.test")
    w.write(leaf)
    const { reconciler, state, agentMetrics } = await w.start()
    await Effect.runPromise(reconciler.triggerAll("start"))
    await expect.poll(() => state.get("sb")?.outcome, poll).toBe("Succeeded")
    const succeeded = state.get("sb")
    writeFileSync(
      join(w.sub, "sb.crt"),
      "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    await Effect.runPromise(reconciler.trigger("sb", "file change"))
    await expect.poll(() => state.get("sb")?.outcome, poll).toBe("SourceBroken")
    const broken = state.get("sb")
    expect(broken).toMatchObject({
      configFingerprint: succeeded?.configFingerprint,
      x5t: undefined,
      versionId: undefined,
      notAfter: undefined,
      held: false,
      lastSuccessAt: succeeded?.lastSuccessAt,
    })
    expect(broken?.sourceFingerprint).toMatch(/^[0-9a-f]{64}$/)
    expect(broken?.sourceFingerprint).not.toBe(succeeded?.sourceFingerprint)
    expect(broken?.reason).toContain("sb.crt")
    expect(said(w.lines, "source broken")).toHaveLength(1)
    expect(said(w.lines, "source broken")[0]?.level).toBe("WARN")
    // What is wrong with the files, for the operator to fix.
    expect(said(w.lines, "source broken")[0]?.annotations.problems).toEqual([expect.any(String)])
    expect(await series(agentMetrics, "kvdeploy_agent_source_broken", "sb")).toBe(1)
    expect(await series(agentMetrics, "kvdeploy_agent_last_outcome", "sb", 'outcome="SourceBroken"')).toBe(1)
    await Effect.runPromise(reconciler.shutdown)
  }, 60_000)
})

describe("a source whose files cannot be read", () => {
  it("is recorded SourceBroken with no fingerprint, said once, and nothing sent to the vault", async () => {
    const w = await setUp("mf")
    const leaf = await w.pki.leaf("mf.example.test")
    w.write(leaf)
    const { reconciler, state, agentMetrics } = await w.start()
    await Effect.runPromise(reconciler.triggerAll("start"))
    await expect.poll(() => state.get("mf")?.outcome, poll).toBe("Succeeded")
    const calls = w.handle.calls().total
    rmSync(join(w.sub, "mf.crt"))
    await Effect.runPromise(reconciler.trigger("mf", "file change"))
    await expect.poll(() => state.get("mf")?.outcome, poll).toBe("SourceBroken")
    expect(state.get("mf")).toMatchObject({ sourceFingerprint: undefined, x5t: undefined, held: false })
    expect(said(w.lines, "source broken")).toHaveLength(1)
    expect(said(w.lines, "source broken")[0]?.annotations.problems).toEqual([
      expect.stringContaining("mf.crt"),
    ])
    expect(await series(agentMetrics, "kvdeploy_agent_source_broken", "mf")).toBe(1)
    expect(w.handle.calls().total).toBe(calls)
    await Effect.runPromise(reconciler.shutdown)
  }, 60_000)
})

describe("the line that no token could be had for the vault", () => {
  it("is said once for a run of such attempts, and again after another outcome ended the run", async () => {
    const w = await setUp("nt")
    const leaf = await w.pki.leaf("nt.example.test")
    w.write(leaf)
    w.switches.noToken = true
    const { reconciler, state } = await w.start()
    await Effect.runPromise(reconciler.triggerAll("start"))
    await expect.poll(() => said(w.lines, "no token for the vault").length, poll).toBe(1)
    expect(state.get("nt")).toMatchObject({
      outcome: "Failed",
      x5t: leaf.x5t,
      held: false,
      versionId: undefined,
    })
    const firstAt = state.get("nt")?.at
    // A second attempt without a token: recorded, not said again.
    await new Promise((resolve) => setTimeout(resolve, 5))
    await Effect.runPromise(reconciler.trigger("nt", "file change"))
    await expect.poll(() => state.get("nt")?.at, poll).not.toBe(firstAt)
    expect(said(w.lines, "no token for the vault")).toHaveLength(1)
    // Another outcome (the source broken): the run is over.
    writeFileSync(
      join(w.sub, "nt.crt"),
      "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    await Effect.runPromise(reconciler.trigger("nt", "file change"))
    await expect.poll(() => state.get("nt")?.outcome, poll).toBe("SourceBroken")
    w.write(leaf)
    await Effect.runPromise(reconciler.trigger("nt", "file change"))
    await expect.poll(() => said(w.lines, "no token for the vault").length, poll).toBe(2)
    expect(state.get("nt")?.outcome).toBe("Failed")
    await Effect.runPromise(reconciler.shutdown)
  }, 60_000)
})

/** A TLS endpoint on 127.0.0.1 serving `leaf` (replaced by `serve`): its port. */
const consumer = async (leaf: Issued) => {
  const server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (socket) => socket.end())
  servers.push(server)
  const port = await new Promise<number>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)),
  )
  return {
    port,
    serve: (other: Issued) => server.setSecureContext({ cert: other.certPem, key: other.keyPem }),
  }
}

describe("the pickup check", () => {
  it("sets the pickup series and says whether the consumer serves the source certificate", async () => {
    const w = await setUp("pk")
    const leaf = await w.pki.leaf("pk.example.test")
    const endpoint = await consumer(leaf)
    const pickup = { host: "127.0.0.1", port: endpoint.port, servername: "pk.example.test" }
    const again = await setUp("pk", { sub: w.sub, deployment: { pickup } })
    again.write(leaf)
    const { reconciler, state, agentMetrics } = await again.start()
    await Effect.runPromise(reconciler.triggerAll("start"))
    await expect.poll(() => said(again.lines, "pickup:").length, poll).toBe(1)
    expect(state.get("pk")?.outcome).toBe("Succeeded")
    const [served] = said(again.lines, "pickup:")
    expect(served).toMatchObject({
      message: "pickup: the consumer serves the source certificate",
      level: "INFO",
      annotations: { deployment: "pk", pickup: `127.0.0.1:${endpoint.port}` },
    })
    expect(await series(agentMetrics, "kvdeploy_agent_pickup_ok", "pk")).toBe(1)
    // The consumer serves another certificate: the next pass (in place) says so.
    endpoint.serve(await w.pki.leaf("pk.example.test"))
    await Effect.runPromise(reconciler.triggerAll("interval"))
    await expect.poll(() => said(again.lines, "pickup:").length, poll).toBe(2)
    expect(said(again.lines, "pickup:")[1]).toMatchObject({
      message: "pickup: the consumer does not serve the source certificate yet",
      level: "WARN",
      annotations: { deployment: "pk", pickup: `127.0.0.1:${endpoint.port}` },
    })
    expect(await series(agentMetrics, "kvdeploy_agent_pickup_ok", "pk")).toBe(0)
    await Effect.runPromise(reconciler.shutdown)
  }, 60_000)

  it("of a deployment a reload changed otherwise keeps its series", async () => {
    const w = await setUp("pc")
    const leaf = await w.pki.leaf("pc.example.test")
    const endpoint = await consumer(leaf)
    const pickup = { host: "127.0.0.1", port: endpoint.port, servername: "pc.example.test" }
    const again = await setUp("pc", { sub: w.sub, deployment: { pickup } })
    again.write(leaf)
    const { reconciler, agentMetrics } = await again.start()
    await Effect.runPromise(reconciler.triggerAll("start"))
    await expect.poll(() => said(again.lines, "pickup:").length, poll).toBe(1)
    expect(await series(agentMetrics, "kvdeploy_agent_pickup_ok", "pc")).toBe(1)
    // Its target's tags change: the same check.
    await again.run(
      reconciler.apply(
        again.configOf({ pickup, target: { vault_url: VAULT, certificate_name: "pc", tags: { team: "x" } } }),
      ),
    )
    expect(said(again.lines, "configuration applied")[0]?.annotations).toMatchObject({ changed: 1 })
    expect(await series(agentMetrics, "kvdeploy_agent_pickup_ok", "pc")).toBe(1)
    await Effect.runPromise(reconciler.shutdown)
  }, 60_000)

  it("taken out by a reload takes its series out", async () => {
    const w = await setUp("pr")
    const leaf = await w.pki.leaf("pr.example.test")
    const endpoint = await consumer(leaf)
    const again = await setUp("pr", {
      sub: w.sub,
      deployment: { pickup: { host: "127.0.0.1", port: endpoint.port, servername: "pr.example.test" } },
    })
    again.write(leaf)
    const { reconciler, agentMetrics } = await again.start()
    await Effect.runPromise(reconciler.triggerAll("start"))
    await expect.poll(() => said(again.lines, "pickup:").length, poll).toBe(1)
    expect(await series(agentMetrics, "kvdeploy_agent_pickup_ok", "pr")).toBe(1)
    await again.run(reconciler.apply(again.configOf(undefined)))
    expect(await series(agentMetrics, "kvdeploy_agent_pickup_ok", "pr")).toBe(undefined)
    expect(said(again.lines, "configuration applied")[0]?.annotations).toMatchObject({
      changed: 1,
      added: 0,
      removed: 0,
    })
    // And the next pass checks nothing.
    await Effect.runPromise(reconciler.triggerAll("interval"))
    await expect.poll(() => said(again.lines, "pass over").length, poll).toBe(2)
    expect(said(again.lines, "pickup:")).toHaveLength(1)
    expect(await series(agentMetrics, "kvdeploy_agent_pickup_ok", "pr")).toBe(undefined)
    await Effect.runPromise(reconciler.shutdown)
  }, 60_000)
})
