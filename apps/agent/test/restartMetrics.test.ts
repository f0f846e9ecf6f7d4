/**
 * What a restarted agent's series show before it learns anything new
 * (the reconciler itself, in-memory vaults, the state directory kept between
 * runs): the source certificate's expiry of a source recorded in place (its
 * facts come from the state, not from a parse), the last time the vault
 * was seen serving the source, kept across restarts and across failures, and
 * the vault expiry series (`kvdeploy_certificate_expiry_timestamp_seconds`:
 * what the vault serves), kept in the state file for the configuration it was
 * read for, so that an agent restarted while the vault cannot be read shows it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  forwardTags,
  type Vault,
  VaultConflictSoftDeleted,
  VaultNotFound,
  VaultUnavailable,
} from "@kvdeploy/core"
import { MetricsRecorder, RecordingMetrics } from "@kvdeploy/core/test"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import { afterAll, describe, expect, it } from "vitest"
import { type AgentMetrics, makeAgentMetrics } from "../src/agentMetrics.js"
import type { AgentConfig } from "../src/config.js"
import { makeReconciler } from "../src/reconciler.js"
import { type DeploymentRecord, openStateStore } from "../src/state.js"
import { configIn, oneVault, quickRetries } from "./inProcess.js"
import { makePki } from "./pki.js"

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-restart-metrics-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const VAULT = "https://restartmetrics.vault.azure.net"

/** Deployment "m" of `certificateName` in VAULT, from m.crt and m.key. */
const configFor = (certificateName: string): AgentConfig =>
  configIn(
    dir,
    {
      agent: quickRetries(dir),
      deployments: [
        {
          name: "m",
          source: { cert: join(dir, "m.crt"), key: join(dir, "m.key") },
          target: { vault_url: VAULT, certificate_name: certificateName },
        },
      ],
    },
    process.env,
  )
const config = configFor("m")

/** The value of the agent's series `name` for deployment "m" on a scrape, or undefined. */
const seriesOf = async (metrics: AgentMetrics, name: string): Promise<number | undefined> => {
  const line = (await metrics.text()).split("\n").find((l) => l.startsWith(`${name}{deployment="m"} `))
  return line === undefined ? undefined : Number(line.split(" ")[1])
}

/**
 * One agent's life (a restart each time: a new reconciler, metrics and state store over the same
 * state directory `state`): start, one pass, stop once the record says `until`. Answers the record,
 * the agent's metrics as they were when it stopped, and the vault expiry values the run set.
 */
const runOnce = async (
  vault: Vault["Service"],
  until: (r: DeploymentRecord | undefined) => boolean,
  options: {
    readonly config?: AgentConfig
    readonly state?: string
    /** Whether `until` alone decides (a held deployment's pass writes no new outcome). */
    readonly untilOnly?: boolean
  } = {},
) => {
  const metrics = makeAgentMetrics()
  const state = openStateStore(join(dir, options.state ?? "state"), () => {})
  const { reconciler, recorder } = await Effect.runPromise(
    Effect.gen(function* () {
      const reconciler = yield* makeReconciler(options.config ?? config, state, metrics)
      return { reconciler, recorder: yield* MetricsRecorder }
    }).pipe(
      // The real codec: a deploy (the deleted certificate's) preflights the PEM files.
      Effect.provide(Layer.mergeAll(oneVault(vault), Pkcs12.layer, RecordingMetrics.layer, Logger.layer([]))),
    ),
  )
  const before = state.get("m")?.at
  Effect.runFork(reconciler.triggerAll("start"))
  await expect
    .poll(() => (options.untilOnly === true || state.get("m")?.at !== before) && until(state.get("m")), {
      timeout: 20_000,
      interval: 20,
    })
    .toBe(true)
  await Effect.runPromise(reconciler.shutdown)
  const served = recorder
    .events()
    .flatMap((e) => (e.series === "certificateExpiry" ? [{ label: e.label, value: e.value }] : []))
  const notServed = recorder.count("certificateNotServed")
  return { record: state.get("m"), metrics, served, notServed }
}

/** A vault serving `leaf` in place for deployment "m" (its expiry in the answer), and one that cannot be read. */
const vaultsFor = (leaf: { readonly x5t: string; readonly notAfter: Date }) => {
  const deployment = config.deployments[0]
  if (deployment === undefined) throw new Error("no deployment")
  const serving = {
    getLatest: () =>
      Effect.succeed({
        versionId: "v1",
        x5t: leaf.x5t,
        serialHex: "01",
        enabled: true,
        createdAt: new Date(0),
        expiresAt: leaf.notAfter,
        tags: forwardTags(deployment.target.tags, deployment.certificateId),
      }),
  } as unknown as Vault["Service"]
  const failing = {
    getLatest: () =>
      Effect.fail(new VaultUnavailable({ operation: "getLatest", detail: "down in this test" })),
  } as unknown as Vault["Service"]
  return { serving, failing }
}

describe("a restarted agent's own series", () => {
  it("show the recorded source's expiry, and the last success time through restarts and failures", async () => {
    const leaf = await (await makePki()).leaf("restart-metrics.example.test")
    writeFileSync(join(dir, "m.crt"), leaf.certPem)
    writeFileSync(join(dir, "m.key"), leaf.keyPem, { mode: 0o600 })
    const { serving, failing } = vaultsFor(leaf)
    const expiry = "kvdeploy_agent_certificate_expiry_timestamp_seconds"
    const lastSuccess = "kvdeploy_agent_last_success_timestamp_seconds"
    const notAfter = Math.floor(leaf.notAfter.getTime() / 1000)
    const secondsOf = (iso: string | undefined) => Math.floor(Date.parse(iso ?? "") / 1000)

    // First run: the source is parsed and found in place.
    const first = await runOnce(serving, (r) => r?.outcome === "Skipped")
    expect(await seriesOf(first.metrics, expiry)).toBe(notAfter)

    // Restarted, nothing changed: the facts come from the state record (no parse), and the expiry
    // series is still there, from the record.
    const second = await runOnce(serving, (r) => r?.outcome === "Skipped")
    expect(await seriesOf(second.metrics, expiry)).toBe(notAfter)
    const servedAt = second.record?.lastSuccessAt
    expect(servedAt).toBeDefined()
    expect(await seriesOf(second.metrics, lastSuccess)).toBe(secondsOf(servedAt))

    // Restarted while the vault fails: no success in this run, yet the last success time is shown
    // (from the state), and the failure's record keeps it.
    const third = await runOnce(failing, (r) => r?.outcome === "Failed")
    expect(third.record?.lastSuccessAt).toBe(servedAt)
    expect(await seriesOf(third.metrics, lastSuccess)).toBe(secondsOf(servedAt))
    expect(await seriesOf(third.metrics, expiry)).toBe(notAfter)

    // Restarted again, the vault still failing: still the last time the vault served the source.
    const fourth = await runOnce(failing, (r) => r?.outcome === "Failed")
    expect(fourth.record?.lastSuccessAt).toBe(servedAt)
    expect(await seriesOf(fourth.metrics, lastSuccess)).toBe(secondsOf(servedAt))
  })

  it("the vault expiry series: shown from the state file while the vault cannot be read, for the configuration it was read for", async () => {
    const leaf = await (await makePki()).leaf("served-expiry.example.test")
    writeFileSync(join(dir, "m.crt"), leaf.certPem)
    writeFileSync(join(dir, "m.key"), leaf.keyPem, { mode: 0o600 })
    const { serving, failing } = vaultsFor(leaf)
    // A state directory of its own: the test above left its records in the other.
    const own = { state: "state-served" }
    const series = { label: `${VAULT}/m`, value: leaf.notAfter.getTime() / 1000 }

    // The vault read: the series is set, and the record keeps it.
    const first = await runOnce(serving, (r) => r?.outcome === "Skipped", own)
    expect(first.served).toEqual([series])
    expect(first.record?.servedNotAfter).toBe(leaf.notAfter.toISOString())

    // Restarted while the vault cannot be read: the series is there from the start, from the state.
    const second = await runOnce(failing, (r) => r?.outcome === "Failed", own)
    expect(second.served).toEqual([series])
    // The failure's record keeps it, for the next restart.
    expect(second.record?.servedNotAfter).toBe(leaf.notAfter.toISOString())
    const third = await runOnce(failing, (r) => r?.outcome === "Failed", own)
    expect(third.served).toEqual([series])

    // Another target for the deployment (its configuration changed): not that certificate's value.
    const moved = await runOnce(failing, (r) => r?.outcome === "Failed", {
      ...own,
      config: configFor("m-moved"),
    })
    expect(moved.served).toEqual([])
    expect(moved.record?.servedNotAfter).toBeUndefined()
  })

  it("the vault expiry series once the vault serves nothing (the certificate deleted): removed, and not shown after a restart", async () => {
    const leaf = await (await makePki()).leaf("deleted-expiry.example.test")
    writeFileSync(join(dir, "m.crt"), leaf.certPem)
    writeFileSync(join(dir, "m.key"), leaf.keyPem, { mode: 0o600 })
    const { serving, failing } = vaultsFor(leaf)
    const own = { state: "state-deleted" }
    const first = await runOnce(serving, (r) => r?.outcome === "Skipped", own)
    expect(first.record?.servedNotAfter).toBe(leaf.notAfter.toISOString())
    // Deleted by someone since: the read finds nothing, the import meets the soft-deleted name
    // (on_soft_deleted: fail), whose deleted certificate is read, and nothing is written. (A read of
    // it answered 404 would say someone recovered or purged it since: then nothing is removed.)
    const deleted = {
      getLatest: () =>
        Effect.fail(new VaultNotFound({ operation: "getLatest", detail: "deleted in this test" })),
      importVersion: () =>
        Effect.fail(
          new VaultConflictSoftDeleted({ operation: "importVersion", detail: "deleted in this test" }),
        ),
      getDeleted: () => Effect.succeed({ name: "m", recoveryId: `${VAULT}/deletedcertificates/m` }),
    } as unknown as Vault["Service"]
    const gone = await runOnce(deleted, (r) => r?.outcome === "Failed", own)
    // The restart showed the recorded value first (from the state), then the deploy removed it.
    expect(gone.served).toEqual([{ label: `${VAULT}/m`, value: leaf.notAfter.getTime() / 1000 }])
    expect(gone.notServed).toBe(1)
    expect(gone.record?.servedNotAfter).toBeUndefined()
    // Restarted while the vault cannot be read: no value from the state, as the vault served none.
    const restarted = await runOnce(failing, (r) => r?.outcome === "Failed", own)
    expect(restarted.served).toEqual([])
  })

  it("the vault expiry series of a held deployment: what the vault serves now is kept for the restart", async () => {
    const leaf = await (await makePki()).leaf("held-expiry.example.test")
    // The other writer's certificate, as the vault describes it.
    const other = { x5t: "b3RoZXItd3JpdGVyLXZlcnNpb24", notAfter: new Date("2027-03-02T00:00:00.000Z") }
    writeFileSync(join(dir, "m.crt"), leaf.certPem)
    writeFileSync(join(dir, "m.key"), leaf.keyPem, { mode: 0o600 })
    const { serving, failing } = vaultsFor(leaf)
    const own = { state: "state-held" }
    await runOnce(serving, (r) => r?.outcome === "Skipped", own)
    // Another writer's version in place since, and the deployment held on it (a Superseded), its
    // record still naming an older read's value.
    const path = join(dir, "state-held", "state.json")
    const file = JSON.parse(readFileSync(path, "utf8")) as { deployments: Record<string, DeploymentRecord> }
    const older = "2030-01-01T00:00:00.000Z"
    file.deployments.m = { ...file.deployments.m!, outcome: "Superseded", held: true, servedNotAfter: older }
    writeFileSync(path, JSON.stringify(file))
    const otherWriter = {
      getLatest: () =>
        Effect.succeed({
          versionId: "v9",
          x5t: other.x5t,
          serialHex: "09",
          enabled: true,
          createdAt: new Date(0),
          expiresAt: other.notAfter,
          tags: {},
        }),
    } as unknown as Vault["Service"]
    const served = { label: `${VAULT}/m`, value: other.notAfter.getTime() / 1000 }
    // The held pass reads the vault: the series says the other writer's certificate, and so does
    // the record, still held.
    const held = await runOnce(otherWriter, (r) => r?.servedNotAfter === other.notAfter.toISOString(), {
      ...own,
      untilOnly: true,
    })
    expect(held.served.at(-1)).toEqual(served)
    expect(held.record?.held).toBe(true)
    expect(held.record?.outcome).toBe("Superseded")
    // Restarted while the vault cannot be read: that value, not the older one, from the start (a
    // held deployment's failed read writes no new outcome: the run is stopped once it has begun).
    const restarted = await runOnce(failing, () => true, { ...own, untilOnly: true })
    expect(restarted.served[0]).toEqual(served)
    // The other writer's certificate deleted since: the held pass's read finds nothing, the series
    // is removed and the record, still held, keeps no value for the next restart.
    const none = {
      getLatest: () =>
        Effect.fail(new VaultNotFound({ operation: "getLatest", detail: "deleted in this test" })),
    } as unknown as Vault["Service"]
    const deleted = await runOnce(none, (r) => r?.servedNotAfter === undefined, { ...own, untilOnly: true })
    expect(deleted.notServed).toBe(1)
    expect(deleted.record?.held).toBe(true)
    expect(deleted.record?.outcome).toBe("Superseded")
    const again = await runOnce(failing, () => true, { ...own, untilOnly: true })
    expect(again.served).toEqual([])
  })
})
