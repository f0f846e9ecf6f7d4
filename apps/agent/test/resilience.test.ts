/**
 * The built agent when vaults misbehave: one vault answering 429 with
 * Retry-After (honoured; the other vault goes on), a vault that fails and
 * recovers, the per-vault budget keeping within Key Vault's windows, a
 * certificate someone deletes while the agent runs (a delete that takes a
 * while to show, as Key Vault's does), SIGHUP
 * with a changed configuration, SIGTERM while a deploy is in flight and while
 * a rollback is in flight, and a restart from the state directory.
 */
import { X509Certificate } from "node:crypto"
import { readFileSync, statSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { metricValue, perTestWorld, requestHeld, sdkFor, type Workdir, writeConfig } from "./harness.js"
import type { Issued, Pki } from "./pki.js"

const world = perTestWorld()

const writePair = (w: Workdir, name: string, issued: Issued) => {
  w.write(`${name}.key`, issued.keyPem)
  w.write(`${name}.crt`, issued.certPem)
  return { cert: w.path(`${name}.crt`), key: w.path(`${name}.key`) }
}

/** A deployment named like its certificate, with a fresh leaf for `<name>.example.test` written as a pair. */
const deploymentOf = async (w: Workdir, p: Pki, vault: string, name: string) => ({
  name,
  vault,
  certificate: name,
  source: writePair(w, name, await p.leaf(`${name}.example.test`)),
})

const succeeded = (name: string) => (l: { deployment?: unknown; msg: string }) =>
  l.deployment === name && l.msg === "deploy: Succeeded"

describe("vaults that throttle, fail and recover", () => {
  it("honours Retry-After on a throttled vault while the other vault goes on", async () => {
    const { e, w, p } = await world.setUp(["kv-throttled", "kv-fine"])
    // Every request to kv-throttled gets 429 Retry-After: 5 s, three times. (5 s, not 2: the other
    // vault's deploys must be done within it, and a stalled machine has taken over 2 s.)
    e.faults.add({
      operation: "*",
      vault: "kv-throttled",
      times: 3,
      action: { kind: "throttle", retryAfterSeconds: 5 },
    })
    const deployments = []
    for (let i = 0; i < 3; i++) {
      deployments.push(await deploymentOf(w, p, "kv-throttled", `t${i}`))
      deployments.push(await deploymentOf(w, p, "kv-fine", `f${i}`))
    }
    const a = world.run(writeConfig(w, e, deployments), e)
    for (const d of deployments) await a.waitFor(succeeded(d.name), { timeoutMs: 45_000 })
    const throttledLog = e.requests.entries({ vault: "kv-throttled" }).filter((r) => !r.challenge)
    const first429 = throttledLog.find((r) => r.status === 429)
    const last429 = throttledLog.filter((r) => r.status === 429).at(-1)
    expect(first429).toBeDefined()
    // After a 429 the agent waited out Retry-After (5 s) for that vault: no request reached it in between.
    const after = throttledLog.filter((r) => r.seq > (first429?.seq ?? 0) && r.status !== 429)
    for (const r of after) expect(r.time - (first429?.time ?? 0)).toBeGreaterThanOrEqual(4900)
    // The other vault was not held up by it: its deploys were done before the throttled vault's gate reopened.
    const fineImports = e.requests
      .entries({ vault: "kv-fine", operation: "import" })
      .filter((r) => r.status === 200)
    expect(fineImports).toHaveLength(3)
    for (const r of fineImports) expect(r.time).toBeLessThan((last429?.time ?? 0) + 5000)
    const page = (await a.http("/metrics")).body
    expect(metricValue(page, "kvdeploy_vault_throttled_total")).toBeGreaterThanOrEqual(1)
  })

  it("keeps within the vault's import window: no 429 when the emulator enforces it", async () => {
    const { e, w, p } = await world.setUp([
      { name: "kv-window", throttling: { windowMs: 2000, writes: 3, others: 1000 } },
    ])
    const deployments = []
    for (let i = 0; i < 8; i++) deployments.push(await deploymentOf(w, p, "kv-window", `w${i}`))
    const a = world.run(
      writeConfig(w, e, deployments, {
        vault_imports_per_window: 3,
        vault_window_seconds: 2,
        concurrency: 8,
      }),
      e,
    )
    for (const d of deployments) await a.waitFor(succeeded(d.name), { timeoutMs: 45_000 })
    expect(e.requests.entries({ vault: "kv-window", status: 429 })).toHaveLength(0)
    expect(
      e.requests.entries({ vault: "kv-window", operation: "import" }).filter((r) => r.status === 200),
    ).toHaveLength(8)
  })

  it("vault_concurrency bounds the requests (and so the connections) one vault sees at once", async () => {
    const { e, w, p } = await world.setUp(["kv-lanes"])
    // Every read is held 300 ms, so deployments of the vault overlap whenever they may.
    e.faults.add({
      operation: "getLatest",
      vault: "kv-lanes",
      times: "always",
      action: { kind: "delay", ms: 300 },
    })
    const deployments = []
    for (let i = 0; i < 8; i++) deployments.push(await deploymentOf(w, p, "kv-lanes", `l${i}`))
    const a = world.run(writeConfig(w, e, deployments, { concurrency: 8, vault_concurrency: 2 }), e)
    for (const d of deployments) await a.waitFor(succeeded(d.name), { timeoutMs: 45_000 })
    // The most requests the vault was answering at any moment (arrival to answer). Arrival times are
    // whole milliseconds: a request that arrived in the millisecond its predecessor's answer left is not
    // counted as overlapping it.
    const edges = e.requests
      .entries({ vault: "kv-lanes" })
      .filter((r) => !r.challenge)
      .flatMap((r) => [
        { at: r.time, step: 1 },
        { at: r.time + r.latencyMs - 1, step: -1 },
      ])
      .sort((x, y) => x.at - y.at || x.step - y.step)
    let open = 0
    let most = 0
    for (const edge of edges) {
      open += edge.step
      most = Math.max(most, open)
    }
    expect(most).toBe(2)
  })

  it("a read the vault leaves unanswered ends at request_timeout_seconds, which the log line names with the fix", async () => {
    const { e, w, p } = await world.setUp(["kv-silent"])
    const hold = e.faults.add({
      operation: "getLatest",
      vault: "kv-silent",
      times: "always",
      action: { kind: "hold", timeoutMs: 20_000 },
    })
    const a = world.run(
      writeConfig(w, e, [await deploymentOf(w, p, "kv-silent", "silent")], { request_timeout_seconds: 1 }),
      e,
    )
    const line = await a.waitFor((l) => l.deployment === "silent" && /^cannot read the vault/.test(l.msg))
    e.faults.remove(hold)
    e.faults.release(hold)
    expect(String(line.reason)).toContain("no answer within 1 s, the per-request timeout")
    expect(String(line.fix)).toMatch(
      /^the vault answered nothing within agent\.request_timeout_seconds \(1 s\): check the network path to the vault/,
    )
    expect(e.state.versions("kv-silent", "silent")).toBeUndefined()
  })

  it("retries with backoff while the vault fails, says so once per deployment with a fix, and says when the vault is readable again", async () => {
    const { e, w, p } = await world.setUp(["kv-flaky"])
    const fault = e.faults.add({
      operation: "*",
      vault: "kv-flaky",
      times: "always",
      action: { kind: "status", status: 503, code: "ServiceUnavailable" },
    })
    const a = world.run(
      writeConfig(w, e, [await deploymentOf(w, p, "kv-flaky", "flaky")], {
        backoff_base_seconds: 1,
        backoff_max_seconds: 2,
      }),
      e,
    )
    const failing = (l: { deployment?: unknown; msg: string }) =>
      l.deployment === "flaky" && /^cannot read the vault/.test(l.msg)
    const firstFailure = await a.waitFor(failing)
    expect(firstFailure.level).toBe("warn")
    expect(String(firstFailure.fix)).toMatch(
      /^the vault answered 503, a problem on the vault's side: the agent retries/,
    )
    expect(String(firstFailure.fix)).toContain("Azure's status")
    // Several failed reads (the SDK retries a 503 itself: each read is several requests), each counted.
    const failedReads = async () =>
      metricValue((await a.http("/metrics")).body, "kvdeploy_vault_requests_total", {
        operation: "getLatest",
        status: "unavailable",
      }) ?? 0
    await expect.poll(failedReads, { timeout: 60_000, interval: 500 }).toBeGreaterThanOrEqual(3)
    await expect.poll(async () => (await a.http("/readyz")).status, { timeout: 10_000 }).toBe(200)
    expect(e.state.versions("kv-flaky", "flaky")).toBeUndefined()
    const counted = await failedReads()
    e.faults.remove(fault)
    const again = await a.waitFor((l) => l.deployment === "flaky" && l.msg === "vault readable again", {
      timeoutMs: 30_000,
    })
    expect(again.level).toBe("info")
    expect(again.failedReads).toBeGreaterThanOrEqual(counted)
    // The first failure's time (taken as it failed, just before its line was written).
    expect(Date.parse(String(again.since))).toBeLessThanOrEqual(Date.parse(String(firstFailure.time)))
    expect(Date.parse(String(again.since))).toBeGreaterThan(Date.parse(String(firstFailure.time)) - 1000)
    await a.waitFor(succeeded("flaky"), { timeoutMs: 30_000 })
    expect(e.state.versions("kv-flaky", "flaky")).toHaveLength(1)
    // One line for the whole outage, and no idle line after each burst of retries.
    expect(a.lines.filter(failing)).toEqual([firstFailure])
    expect(a.lines.filter((l) => l.msg.startsWith("idle:"))).toEqual([])
  })

  it("shows each failed read as a debug line with KVDEPLOY_AGENT_LOG_LEVEL=debug; a refused connection's fix names vault_url", async () => {
    const { e, w, p } = await world.setUp(["kv-gone"])
    const deployment = await deploymentOf(w, p, "kv-gone", "gone")
    // The vault's URL on a port nothing listens on: the connection is refused.
    const { createServer } = await import("node:net")
    const closedPort = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const port = (server.address() as { port: number }).port
        server.close(() => resolve(port))
      })
    })
    const config = writeConfig(
      w,
      e,
      [{ ...deployment, target: { vault_url: `https://127.0.0.1:${closedPort}` } }],
      { backoff_base_seconds: 1, backoff_max_seconds: 1 },
    )
    const a = world.run(config, e, { KVDEPLOY_AGENT_LOG_LEVEL: "debug" })
    const first = await a.waitFor(
      (l) => l.deployment === "gone" && l.msg === "cannot read the vault: retrying with backoff",
    )
    expect(String(first.reason)).toContain("ECONNREFUSED")
    expect(String(first.fix)).toMatch(
      /^the vault could not be reached \(ECONNREFUSED\): check target\.vault_url/,
    )
    const quiet = await a.waitFor(
      (l) =>
        l.deployment === "gone" && l.msg === "cannot read the vault: still failing, retrying with backoff",
      { timeoutMs: 30_000 },
    )
    expect(quiet.level).toBe("debug")
    expect(quiet.trigger).toBe("retry")
    expect(quiet.failedReads).toBe(2)
    // The first failure's time (taken as it failed, just before its line was written).
    expect(Date.parse(String(quiet.since))).toBeLessThanOrEqual(Date.parse(String(first.time)))
    expect(Date.parse(String(quiet.since))).toBeGreaterThan(Date.parse(String(first.time)) - 1000)
  })

  it("recover_timeout_seconds ends a recovery Key Vault never serves; the next attempt deploys over the recovered certificate", async () => {
    const { e, w, p } = await world.setUp(["kv-recover"])
    const sdk = sdkFor(e, "kv-recover")
    // A managed certificate, soft-deleted.
    const before = await e.state.foreignImport("kv-recover", "gone", { "certctl-managed-by": "certctl" })
    await (await sdk.beginDeleteCertificate("gone", { intervalInMs: 50 })).pollUntilDone()
    // Key Vault takes the recovery, but never serves the certificate: every read of it answers 404.
    const unserved = e.faults.add({
      operation: "getLatest",
      vault: "kv-recover",
      name: "gone",
      times: "always",
      action: { kind: "status", status: 404, code: "CertificateNotFound", message: "not found" },
    })
    const deployment = {
      ...(await deploymentOf(w, p, "kv-recover", "gone")),
      target: { on_soft_deleted: "recover" },
    }
    const a = world.run(writeConfig(w, e, [deployment], { recover_timeout_seconds: 1 }), e)
    // Without the setting the recovery would be waited for 5 minutes.
    const failed = await a.waitFor((l) => l.deployment === "gone" && l.msg === "deploy: Failed", {
      timeoutMs: 20_000,
    })
    expect(failed.reason).toMatch(/the certificate was not served within 1 s/)
    expect(failed.recovered).toBe("unknown")
    expect(e.requests.entries({ vault: "kv-recover", operation: "recover" })).toHaveLength(1)
    expect(e.state.isDeleted("kv-recover", "gone")).toBe(false)
    // Once Key Vault serves it, the retry deploys over it: no second recovery.
    e.faults.remove(unserved)
    await a.waitFor(succeeded("gone"), { timeoutMs: 30_000 })
    expect(e.state.versions("kv-recover", "gone")?.map((v) => v.version)).toEqual([
      before.version,
      expect.any(String),
    ])
    expect(e.requests.entries({ vault: "kv-recover", operation: "recover" })).toHaveLength(1)
  })
})

describe("a certificate someone deletes while the agent runs", () => {
  it("the next pass recovers it with on_soft_deleted: recover and writes no version; without, each attempt fails naming the remedy and writes nothing", async () => {
    // Deletes and recoveries take a while to show, as Key Vault's do.
    const { e, w, p } = await world.setUp(["kv-deleted"], { propagationMs: 1_500 })
    const kept = {
      ...(await deploymentOf(w, p, "kv-deleted", "kept")),
      target: { on_soft_deleted: "recover" },
    }
    const left = await deploymentOf(w, p, "kv-deleted", "left")
    const a = world.run(writeConfig(w, e, [kept, left], { reconcile_interval_seconds: 1 }), e)
    await a.waitFor(succeeded("kept"))
    await a.waitFor(succeeded("left"))
    const served = e.state.versions("kv-deleted", "kept")?.map((v) => v.version)
    const sdk = sdkFor(e, "kv-deleted")
    const since = a.lines.length
    // The deletes are sent, not waited for: the agent may recover "kept" before a poller would see it deleted.
    for (const n of ["kept", "left"]) await sdk.beginDeleteCertificate(n, { intervalInMs: 100 })
    expect(
      e.requests.entries({ vault: "kv-deleted", operation: "delete", challenge: false }).map((r) => r.status),
    ).toEqual([200, 200])
    const recovered = await a.waitFor((l) => l.deployment === "kept" && l.recovered === "recovered", {
      from: since,
      timeoutMs: 30_000,
    })
    // The recovered certificate is the source's: nothing to import.
    expect(recovered.msg).toBe("deploy: Skipped")
    expect(
      e.requests
        .entries({ vault: "kv-deleted", operation: "recover" })
        .filter((r) => r.path.includes("/kept/")),
    ).toHaveLength(1)
    expect(e.state.versions("kv-deleted", "kept")?.map((v) => v.version)).toEqual(served)
    const refused = await a.waitFor(
      (l) =>
        l.deployment === "left" &&
        l.msg === "deploy: Failed" &&
        String(l.reason).startsWith("left is soft-deleted"),
      { from: since, timeoutMs: 30_000 },
    )
    // Not the refusals while the delete was under way (their reason names soft-deletes too): the
    // refusal of a soft-deleted name, with its remedy.
    expect(refused.reason).toContain(
      "set on_soft_deleted: recover to recover it and deploy, or purge it first",
    )
    expect(e.state.isDeleted("kv-deleted", "left")).toBe(true)
    const ofLeft = (operation: "recover" | "import") =>
      e.requests
        .entries({ vault: "kv-deleted", operation })
        .filter((r) => r.path.includes("/certificates/left/"))
    expect(ofLeft("recover")).toHaveLength(0)
    expect(ofLeft("import").filter((r) => r.status === 200)).toHaveLength(1)
  })
})

describe("signals and restarts", () => {
  it("SIGHUP reloads the configuration: a new deployment and changed tags are deployed; an invalid file is refused", async () => {
    const { e, w, p } = await world.setUp(["kv-hup"])
    const one = await deploymentOf(w, p, "kv-hup", "one")
    const config = writeConfig(w, e, [one])
    const a = world.run(config, e)
    await a.waitFor(succeeded("one"))
    // A changed file: deployment "one" gets a tag, deployment "two" is new.
    const two = await deploymentOf(w, p, "kv-hup", "two")
    writeConfig(w, e, [{ ...one, target: { tags: { team: "edge" } } }, two])
    let from = a.lines.length
    a.signal("SIGHUP")
    await a.waitFor(succeeded("two"), { from })
    await a.waitFor(succeeded("one"), { from })
    expect(e.state.versions("kv-hup", "one")?.at(-1)?.tags?.team).toBe("edge")
    // An invalid file: the running configuration stays.
    w.write("agent.yaml", "deployments: [ { name: broken } ]\n")
    from = a.lines.length
    a.signal("SIGHUP")
    const refused = await a.waitFor((l) => /invalid; keeping the running one/.test(l.msg), { from })
    expect(JSON.stringify(refused.problems)).toMatch(/deployments\[0\]/)
    expect((await a.http("/healthz")).status).toBe(200)
    // The running configuration's text again: not parsed again, every deployment still reconciled
    // (one read each), nothing written.
    writeConfig(w, e, [{ ...one, target: { tags: { team: "edge" } } }, two])
    const mark = e.requests.mark()
    from = a.lines.length
    a.signal("SIGHUP")
    await a.waitFor((l) => l.msg === "configuration unchanged; reconciling every deployment", { from })
    const readsOf = (name: string) =>
      e.requests
        .entries({ since: mark })
        .filter(
          (r) =>
            !r.challenge &&
            r.operation === "getLatest" &&
            new RegExp(`/certificates/${name}/?$`).test(r.path),
        )
    await expect.poll(() => readsOf("one").length + readsOf("two").length, { timeout: 10_000 }).toBe(2)
    expect(e.requests.entries({ since: mark }).filter((r) => r.method !== "GET" && !r.challenge)).toEqual([])
    expect(a.lines.slice(from).some((l) => l.msg === "configuration applied")).toBe(false)
  })

  it("SIGHUP removing a deployment in the middle of its first attempt does not make the agent ready early", async () => {
    const { e, w, p } = await world.setUp(["kv-ready"])
    // One attempt at a time, and every snapshot read held 2 s: while "first" is in its read,
    // "second" has not been attempted.
    e.faults.add({
      operation: "getLatest",
      vault: "kv-ready",
      times: "always",
      action: { kind: "delay", ms: 2000 },
    })
    const first = await deploymentOf(w, p, "kv-ready", "first")
    const second = await deploymentOf(w, p, "kv-ready", "second")
    const a = world.run(writeConfig(w, e, [first, second], { concurrency: 1 }), e)
    // The first snapshot read has reached the vault: one deployment is mid-attempt.
    await expect
      .poll(() => e.requests.entries({ vault: "kv-ready" }).filter((r) => !r.challenge).length, {
        timeout: 15_000,
      })
      .toBeGreaterThan(0)
    const reading = e.requests.entries({ vault: "kv-ready" }).find((r) => !r.challenge)?.path ?? ""
    const inFlight = reading.includes("/certificates/first") ? first : second
    const waiting = inFlight === first ? second : first
    // Remove the deployment being attempted; the other one is still to be attempted.
    writeConfig(w, e, [waiting], { concurrency: 1 })
    const from = a.lines.length
    a.signal("SIGHUP")
    await a.waitFor((l) => l.msg === "configuration applied", { from })
    expect((await a.http("/readyz")).status).toBe(503)
    await a.waitFor(succeeded(waiting.name), { from, timeoutMs: 30_000 })
    await expect.poll(async () => (await a.http("/readyz")).status, { timeout: 10_000 }).toBe(200)
  })

  it("SIGTERM during a deploy finishes it (import, verify) and exits 0", async () => {
    const { e, w, p } = await world.setUp(["kv-term"])
    // The import commits, then its answer is held back 1.5 s: SIGTERM arrives while the deploy is in flight.
    e.faults.add({
      operation: "import",
      vault: "kv-term",
      times: 1,
      action: { kind: "delayAfterCommit", ms: 1500 },
    })
    const a = world.run(writeConfig(w, e, [await deploymentOf(w, p, "kv-term", "term")]), e)
    await expect
      .poll(() => e.state.versions("kv-term", "term")?.length ?? 0, { timeout: 30_000, interval: 20 })
      .toBe(1)
    const marked = a.lines.length
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
    const done = a.lines.slice(marked).find(succeeded("term"))
    expect(done, JSON.stringify(a.lines.slice(marked))).toBeDefined()
    expect(a.lines.slice(marked).some((l) => /^stopping/.test(l.msg))).toBe(true)
    const state = JSON.parse(readFileSync(w.path("state/state.json"), "utf8")) as {
      deployments: Record<string, { outcome: string }>
    }
    expect(state.deployments.term?.outcome).toBe("Succeeded")
  })

  it("SIGTERM during a rollback waits for the rollback past the grace period, then exits 0", async () => {
    const { e, w, p } = await world.setUp(["kv-rollback"])
    const previous = await p.leaf("rb.example.test")
    const source = writePair(w, "rb", previous)
    // A grace period far shorter than the rollback: the agent must wait for the rollback anyway.
    const a = world.run(
      writeConfig(w, e, [{ name: "rb", vault: "kv-rollback", certificate: "rb", source }], {
        shutdown_grace_seconds: 0.2,
      }),
      e,
    )
    await a.waitFor(succeeded("rb"))
    const previousVersion = e.state.versions("kv-rollback", "rb")?.at(-1)
    expect(previousVersion?.x5t).toBe(previous.x5t)

    // The renewal's verify read is held (the agent's compare read passes), and while it is the new
    // version is disabled through the SDK: the vault serves our version, but wrong, so the deploy
    // rolls back. The rollback's read of the previous PFX is held too: SIGTERM arrives mid-rollback.
    // Holds the test lets go, not delays: a stalled machine outlasted a 3 s delay in a review.
    const verifyHold = e.faults.add({
      operation: "getLatest",
      vault: "kv-rollback",
      name: "rb",
      skip: 1,
      action: { kind: "hold" },
    })
    const secretHold = e.faults.add({
      operation: "getSecret",
      vault: "kv-rollback",
      name: "rb",
      action: { kind: "hold" },
    })
    const sdk = sdkFor(e, "kv-rollback", { retryOptions: { maxRetries: 0 } })
    const from = a.lines.length
    const renewal = await p.leaf("rb.example.test")
    writePair(w, "rb", renewal)
    await expect
      .poll(() => e.state.versions("kv-rollback", "rb")?.length ?? 0, { timeout: 30_000, interval: 10 })
      .toBe(2)
    const failed = e.state.versions("kv-rollback", "rb")?.at(-1)
    expect(failed?.x5t).toBe(renewal.x5t)
    await requestHeld(e, verifyHold)
    await sdk.updateCertificateProperties("rb", failed?.version as string, { enabled: false })
    e.faults.release(verifyHold)
    // The rollback has started: its read of the previous version's backing secret is being held.
    await requestHeld(e, secretHold)
    // Said before that read: an agent killed now leaves this line (the deploy's own comes at its end).
    const rollingBack = await a.waitFor(
      (l) => l.deployment === "rb" && l.msg === "rolling back: the verify did not prove the import",
      { from },
    )
    expect(rollingBack.level).toBe("warn")
    expect(rollingBack.previousVersionId).toBe(previousVersion?.version)
    const marked = a.lines.length
    a.signal("SIGTERM")
    // Past the grace period (0.2 s), the agent says it waits for the rollback; then it may go on.
    await a.waitFor((l) => /waiting for the rollbacks in flight/.test(l.msg), { from: marked })
    e.faults.release(secretHold)
    expect(await a.exited).toBe(0)

    const after = a.lines.slice(marked)
    const stopping = after.findIndex((l) => /^stopping/.test(l.msg))
    const rolledBack = after.findIndex((l) => l.deployment === "rb" && l.msg === "deploy: RolledBack")
    expect(stopping, JSON.stringify(a.lines.slice(from))).toBeGreaterThanOrEqual(0)
    // The rollback finished after the stop began (it was in flight), and was not abandoned.
    expect(rolledBack, JSON.stringify(after)).toBeGreaterThan(stopping)
    expect(after.some((l) => /waiting for the rollbacks in flight/.test(l.msg))).toBe(true)
    expect(after[rolledBack]?.rollbackVersionId).toBeDefined()

    // The vault serves the previous certificate again, as a new version tagged as the rollback of ours.
    const versions = e.state.versions("kv-rollback", "rb") ?? []
    expect(versions).toHaveLength(3)
    const restored = versions.at(-1)
    expect(restored?.x5t).toBe(previous.x5t)
    expect(restored?.version).toBe(after[rolledBack]?.rollbackVersionId)
    expect(restored?.tags?.["certctl-rollback-of"]).toBe(failed?.version)
    const latest = await sdk.getCertificate("rb")
    expect(Buffer.from(latest.properties.x509Thumbprint ?? []).toString("base64url")).toBe(previous.x5t)
    expect(latest.properties.enabled).toBe(true)
    // The state directory records the rollback (held: the same source is not deployed again).
    const state = JSON.parse(readFileSync(w.path("state/state.json"), "utf8")) as {
      deployments: Record<string, { outcome: string; held: boolean; versionId: string }>
    }
    expect(state.deployments.rb).toMatchObject({
      outcome: "RolledBack",
      held: true,
      versionId: restored?.version,
    })
  })

  it("a restart with the state directory does not redeploy, and keeps a held outcome held", async () => {
    const { e, w, p } = await world.setUp(["kv-restart"])
    const leafA = await p.leaf("a.example.test")
    const deployments = [
      { name: "a", vault: "kv-restart", certificate: "a", source: writePair(w, "a", leafA) },
      await deploymentOf(w, p, "kv-restart", "b"),
    ]
    // Another writer imports a newer version of "b" right after ours: Superseded, held (not clobbered).
    e.faults.add({
      operation: "import",
      vault: "kv-restart",
      name: "b",
      times: 1,
      action: { kind: "foreignImport", when: "after" },
    })
    const config = writeConfig(w, e, deployments)
    const first = world.run(config, e)
    await first.waitFor(succeeded("a"))
    await first.waitFor((l) => l.deployment === "b" && l.msg === "deploy: Superseded")
    // The expiry series says what the vault serves: the other writer's version, not ours.
    const served = e.state.versions("kv-restart", "b")?.at(-1)
    expect(served?.foreign).toBe(true)
    const servedNotAfter = Math.floor(
      Date.parse(new X509Certificate(Buffer.from(served?.certificates[0] ?? new Uint8Array())).validTo) /
        1000,
    )
    const expiryOfB = (page: string) =>
      metricValue(page, "kvdeploy_certificate_expiry_timestamp_seconds", { certificate_name: "b" })
    expect(expiryOfB((await first.http("/metrics")).body)).toBe(servedNotAfter)
    first.signal("SIGTERM")
    expect(await first.exited).toBe(0)
    const stateText = readFileSync(w.path("state/state.json"), "utf8")
    const state = JSON.parse(stateText) as {
      deployments: Record<string, { outcome: string; held: boolean; x5t: string }>
    }
    expect(state.deployments.a).toMatchObject({ outcome: "Succeeded", held: false, x5t: leafA.x5t })
    expect(state.deployments.b).toMatchObject({ outcome: "Superseded", held: true })
    expect(stateText).not.toMatch(/PRIVATE KEY|BEGIN/)
    // The state directory (created by the agent) 0700, its file 0600: outcomes and holds are not for other users.
    expect(statSync(w.path("state")).mode & 0o777).toBe(0o700)
    expect(statSync(w.path("state/state.json")).mode & 0o777).toBe(0o600)

    const mark = e.requests.mark()
    const second = world.run(config, e)
    await expect
      .poll(async () => (second.port() === 0 ? 0 : (await second.http("/readyz")).status), {
        timeout: 30_000,
      })
      .toBe(200)
    await second.waitFor((l) => l.deployment === "b" && /^held/.test(l.msg))
    const writes = e.requests
      .entries({ since: mark, vault: "kv-restart" })
      .filter((r) => r.method !== "GET" && !r.challenge)
    expect(writes).toHaveLength(0)
    // One request per deployment to compare (plus the token challenge).
    expect(
      e.requests
        .entries({ since: mark, vault: "kv-restart", operation: "getLatest" })
        .filter((r) => !r.challenge),
    ).toHaveLength(2)
    const page = (await second.http("/metrics")).body
    expect(metricValue(page, "kvdeploy_agent_last_outcome", { deployment: "b", outcome: "Superseded" })).toBe(
      1,
    )
    // Held, read again by the restarted agent: the served version's expiry.
    expect(expiryOfB(page)).toBe(servedNotAfter)
    second.signal("SIGINT")
    expect(await second.exited).toBe(0)
  })
})
