/**
 * Another writer's version of a deployment's certificate written BETWEEN the agent's passes (another
 * agent with another source, a person's `kvdeploy deploy`), not during one of its deploys: the agent
 * holds as after a `Superseded` deploy (its log, state record and outcome series say Superseded),
 * and imports nothing over it. docs/agent.md (step 4 and Limits) says so. Two agents with different
 * sources for one certificate so write one version each, then one holds; a renewal of a source is
 * deployed once, and the other agent then holds. A version written while the agent was stopped is
 * held at its restart (from the state record). What stays as before: a deployment with no record
 * deploys; a version of the source certificate by another writer is in place; a read that answers
 * the agent's own earlier version (a lagging replica) is deployed over.
 */
import { spawn } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { request } from "node:https"
import { join } from "node:path"
import type { Emulator } from "@kvdeploy/kv-emulator"
import { describe, expect, it } from "vitest"
import {
  type AgentProcess,
  agentRoot,
  baseEnv,
  type LogLine,
  metricValue,
  perTestWorld,
  sdkFor,
  type Workdir,
  writeConfig,
} from "./harness.js"
import type { Issued } from "./pki.js"

const world = perTestWorld()
/** The fix a hold on another writer's version names (its start: one writer per certificate). */
const oneWriter = expect.stringMatching(
  /^keep one writer per certificate: .*The hold ends when this deployment's source certificate is renewed/,
)
const VAULT = "kv-writers"
const CERT = "shared"
const cli = join(agentRoot, "..", "cli", "dist", "bin.js")

const versionOf = (id: unknown): string => String(id).split("/").at(-1) ?? ""
const writePair = (w: Workdir, name: string, issued: Issued) => ({
  cert: w.write(`${name}.crt`, issued.certPem),
  key: w.write(`${name}.key`, issued.keyPem),
})
const served = (e: Emulator) => e.state.versions(VAULT, CERT) ?? []
const deployLines = (a: AgentProcess, from = 0) =>
  a.lines.slice(from).filter((l) => l.deployment === CERT && l.msg.startsWith("deploy: "))
const supersededLines = (a: AgentProcess, from = 0) =>
  a.lines.slice(from).filter((l) => l.deployment === CERT && l.msg.startsWith("superseded: "))
const deployed = (outcome: string) => (l: LogLine) => l.deployment === CERT && l.msg === `deploy: ${outcome}`

/** Resolves once agent `a` has ended `n` interval passes after its log line `from`. */
const passes = (a: AgentProcess, from: number, n: number) =>
  expect
    .poll(() => a.lines.slice(from).filter((l) => l.msg === "pass over" && l.reason === "interval").length, {
      timeout: 30_000,
      interval: 50,
    })
    .toBeGreaterThanOrEqual(n)

const lastOutcome = async (a: AgentProcess, outcome: string) =>
  metricValue((await a.http("/metrics")).body, "kvdeploy_agent_last_outcome", { deployment: CERT, outcome })

const stateRecord = (w: Workdir, dir: string) => {
  const path = w.path(`${dir}/state.json`)
  return existsSync(path)
    ? (JSON.parse(readFileSync(path, "utf8")).deployments?.[CERT] as Record<string, unknown> | undefined)
    : undefined
}

/** An agent of one deployment `CERT` of VAULT from `source`, a pass every second, its own state directory. */
const agentOn = (w: Workdir, e: Emulator, who: string, source: { cert: string; key: string }, interval = 1) =>
  world.run(
    writeConfig(
      w,
      e,
      [{ name: CERT, vault: VAULT, certificate: CERT, source }],
      { reconcile_interval_seconds: interval, state_dir: w.path(`state-${who}`) },
      `agent-${who}.yaml`,
    ),
    e,
  )

/**
 * A person's `kvdeploy deploy` of `issued` to the certificate (the built CLI, run asynchronously: the
 * emulator answers from this process): the version it wrote.
 */
const handDeploy = async (w: Workdir, e: Emulator, issued: Issued, name: string): Promise<string> => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build the CLI first (pnpm -s turbo run build)`)
  const target = w.write("target.json", JSON.stringify(e.targetConfig(VAULT, CERT)))
  const files = writePair(w, name, issued)
  const child = spawn(
    process.execPath,
    [cli, "deploy", "--config", target, "--cert", files.cert, "--key", files.key, "--json"],
    { env: { ...baseEnv(), ...e.env.clientSecret }, stdio: ["ignore", "pipe", "pipe"] },
  )
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString("utf8")
  })
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString("utf8")
  })
  const status = await new Promise<number | null>((resolve) => child.on("close", resolve))
  expect(status, `kvdeploy deploy: ${stdout}${stderr}`).toBe(0)
  const out = JSON.parse(stdout) as { outcome: string; versionId: string }
  expect(out.outcome).toBe("Succeeded")
  return versionOf(out.versionId)
}

describe("another writer's version written between the agent's passes", () => {
  it("two agents with different sources for one certificate: one holds (Superseded) after one version each, and a renewal is written once without a flip back", async () => {
    const { e, w, p } = await world.setUp([VAULT])
    const a = agentOn(w, e, "a", writePair(w, "a", await p.leaf("a.example.test")))
    const aFirst = await a.waitFor(deployed("Succeeded"))
    const leafB = await p.leaf("b.example.test")
    // A's lines from here on: its pass may meet B's version before this test sees B's deploy line.
    const fromA = a.lines.length
    const b = agentOn(w, e, "b", writePair(w, "b", leafB))
    // No record of its own (a first pass, or a state lost): deployed as before, over A's version.
    const bFirst = await b.waitFor(deployed("Succeeded"))
    expect(versionOf(bFirst.previousVersionId)).toBe(versionOf(aFirst.versionId))
    const fromB = b.lines.length
    await passes(a, a.lines.length, 3)
    await passes(b, fromB, 3)

    // One version each, and no more: A holds on B's, B finds its own in place.
    expect(served(e).map((v) => v.version)).toEqual([
      versionOf(aFirst.versionId),
      versionOf(bFirst.versionId),
    ])
    expect(deployLines(a, fromA)).toEqual([])
    const held = supersededLines(a, fromA)
    expect(held).toHaveLength(1)
    expect(held[0]).toMatchObject({
      level: "warn",
      outcome: "Superseded",
      servedVersionId: versionOf(bFirst.versionId),
      servedX5t: leafB.x5t,
      ownVersionId: versionOf(aFirst.versionId),
      fix: oneWriter,
    })
    expect(String(held[0]?.reason)).toContain(`another writer wrote version ${versionOf(bFirst.versionId)}`)
    // The passes after it say held, with the same fix.
    const later = a.lines.slice(a.lines.indexOf(held[0] as LogLine) + 1).filter((l) => l.deployment === CERT)
    expect(later.length).toBeGreaterThan(0)
    for (const l of later) {
      expect(l.msg).toMatch(/^held: another writer's version is served/)
      expect(l.fix).toEqual(oneWriter)
    }
    expect(await lastOutcome(a, "Superseded")).toBe(1)
    expect(await lastOutcome(a, "Succeeded")).not.toBe(1)
    expect(await lastOutcome(b, "Skipped")).toBe(1)
    expect(supersededLines(b)).toEqual([])
    await expect
      .poll(() => stateRecord(w, "state-a"), { timeout: 20_000, interval: 100 })
      .toMatchObject({ outcome: "Superseded", held: true, versionId: versionOf(aFirst.versionId) })

    // A's source is renewed: deployed once; B (its source unchanged) now holds on it; no flip back.
    const renewed = await p.leaf("a.example.test")
    let from = a.lines.length
    writePair(w, "a", renewed)
    const aRenewed = await a.waitFor(deployed("Succeeded"), { from })
    expect(aRenewed.newX5t).toBe(renewed.x5t)
    const bHeld = await b.waitFor((l) => l.deployment === CERT && l.msg.startsWith("superseded: "), {
      from: fromB,
    })
    expect(bHeld.servedVersionId).toBe(versionOf(aRenewed.versionId))
    from = a.lines.length
    const fromB2 = b.lines.length
    await passes(a, from, 3)
    await passes(b, fromB2, 3)
    expect(served(e)).toHaveLength(3)
    expect(served(e).at(-1)?.x5t).toBe(renewed.x5t)
    expect(deployLines(b, fromB)).toEqual([])
    expect(await lastOutcome(b, "Superseded")).toBe(1)
    expect(await lastOutcome(a, "Skipped")).toBe(1)
  })

  it("a person's deploy of a newer certificate is not undone: the agent holds, Superseded in its log, state and metrics, until the vault serves its source again or the source changes", async () => {
    const { e, w, p } = await world.setUp([VAULT])
    const leaf1 = await p.leaf("api.example.test")
    const a = agentOn(w, e, "a", writePair(w, "agent", leaf1))
    const first = await a.waitFor(deployed("Succeeded"))
    await passes(a, 0, 1)

    // A person deploys a newer certificate by hand, between two passes.
    const leaf2 = await p.leaf("api.example.test")
    let from = a.lines.length
    const byHand = await handDeploy(w, e, leaf2, "hand")
    // Three passes after the hand deploy landed (a pass during it may already meet it; the lines
    // checked below count from before it): counted from \`from\`, a slow CLI lets all three run
    // before the person's version exists.
    await passes(a, a.lines.length, 3)
    expect(served(e).map((v) => v.x5t)).toEqual([leaf1.x5t, leaf2.x5t])
    expect(deployLines(a, from)).toEqual([])
    const held = supersededLines(a, from)
    expect(held).toHaveLength(1)
    expect(held[0]).toMatchObject({
      outcome: "Superseded",
      servedVersionId: byHand,
      servedX5t: leaf2.x5t,
      ownVersionId: versionOf(first.versionId),
      newX5t: leaf1.x5t,
    })
    expect(await lastOutcome(a, "Superseded")).toBe(1)
    // The expiry series says what the vault serves: the person's certificate.
    const page = (await a.http("/metrics")).body
    expect(
      metricValue(page, "kvdeploy_certificate_expiry_timestamp_seconds", { certificate_name: CERT }),
    ).toBe(leaf2.notAfter.getTime() / 1000)
    await expect
      .poll(() => stateRecord(w, "state-a"), { timeout: 20_000, interval: 100 })
      .toMatchObject({ outcome: "Superseded", held: true, fix: oneWriter })

    // The person puts the agent's certificate back: the vault serves the source, the hold is over.
    from = a.lines.length
    await handDeploy(w, e, leaf1, "back")
    await a.waitFor((l) => l.deployment === CERT && l.msg.startsWith("in place"), { from })
    await expect.poll(() => lastOutcome(a, "Skipped"), { timeout: 10_000 }).toBe(1)

    // Another hand deploy holds it again; the source renewed is deployed (once) over it.
    const leaf4 = await p.leaf("api.example.test")
    from = a.lines.length
    await handDeploy(w, e, leaf4, "hand2")
    await a.waitFor((l) => l.deployment === CERT && l.msg.startsWith("superseded: "), { from })
    const leaf3 = await p.leaf("api.example.test")
    from = a.lines.length
    writePair(w, "agent", leaf3)
    const renewed = await a.waitFor(deployed("Succeeded"), { from })
    expect(renewed.newX5t).toBe(leaf3.x5t)
    await passes(a, a.lines.indexOf(renewed), 2)
    expect(deployLines(a, from)).toHaveLength(1)
    expect(served(e).at(-1)?.x5t).toBe(leaf3.x5t)
    expect(await lastOutcome(a, "Skipped")).toBe(1)
  })
})

describe("another writer's version written while the agent was stopped", () => {
  it("is held at the restart, from the state record's version (Superseded, nothing imported)", async () => {
    const { e, w, p } = await world.setUp([VAULT])
    const leaf = await p.leaf("restart.example.test")
    const files = writePair(w, "restart", leaf)
    const a = agentOn(w, e, "a", files, 3600)
    const first = await a.waitFor(deployed("Succeeded"))
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
    expect(stateRecord(w, "state-a")).toMatchObject({
      outcome: "Succeeded",
      versionId: versionOf(first.versionId),
    })
    const byHand = await handDeploy(w, e, await p.leaf("restart.example.test"), "hand")
    const again = agentOn(w, e, "a", files, 3600)
    const held = await again.waitFor(
      (l) => l.deployment === CERT && (l.msg.startsWith("deploy: ") || l.msg.startsWith("superseded: ")),
    )
    expect(held).toMatchObject({
      msg: "superseded: another writer's version is served, written after this agent's; held, nothing imported",
      servedVersionId: byHand,
      ownVersionId: versionOf(first.versionId),
    })
    expect(served(e).at(-1)?.version).toBe(byHand)
    expect(await lastOutcome(again, "Superseded")).toBe(1)

    // Restarted during the hold, its source file rewritten with the same certificate (other bytes):
    // the record of the hold keeps the agent's version, so it holds again, nothing imported.
    again.signal("SIGTERM")
    expect(await again.exited).toBe(0)
    w.write("restart.crt", `${leaf.certPem}\n`)
    const third = agentOn(w, e, "a", files, 3600)
    const heldAgain = await third.waitFor(
      (l) => l.deployment === CERT && (l.msg.startsWith("deploy: ") || l.msg.startsWith("superseded: ")),
    )
    expect(heldAgain).toMatchObject({ servedVersionId: byHand, ownVersionId: versionOf(first.versionId) })
    expect(served(e)).toHaveLength(2)
  })
})

describe("a hold on another writer's version ends when the vault serves the source again", () => {
  it("put back by a person's plain deploy, without the deployment's tags: the hold ends, and the source is deployed with them", async () => {
    const { e, w, p } = await world.setUp([VAULT])
    const leaf = await p.leaf("tags.example.test")
    const files = writePair(w, "tags", leaf)
    const a = world.run(
      writeConfig(
        w,
        e,
        [{ name: CERT, vault: VAULT, certificate: CERT, source: files, target: { tags: { env: "prod" } } }],
        { reconcile_interval_seconds: 1, state_dir: w.path("state-a") },
        "agent-a.yaml",
      ),
      e,
    )
    await a.waitFor(deployed("Succeeded"))
    let from = a.lines.length
    await handDeploy(w, e, await p.leaf("tags.example.test"), "hand")
    await a.waitFor((l) => l.deployment === CERT && l.msg.startsWith("superseded: "), { from })
    // The person puts the source back with a plain deploy (no env tag).
    from = a.lines.length
    await handDeploy(w, e, leaf, "back")
    const redeployed = await a.waitFor(deployed("Succeeded"), { from })
    expect(redeployed.newX5t).toBe(leaf.x5t)
    await passes(a, a.lines.indexOf(redeployed), 2)
    expect(a.lines.slice(a.lines.indexOf(redeployed)).filter((l) => l.msg.startsWith("held"))).toEqual([])
    expect(served(e).at(-1)).toMatchObject({ x5t: leaf.x5t, tags: expect.objectContaining({ env: "prod" }) })
  })
})

/** The JSON Key Vault answers for version `version` of the certificate (a read of that version). */
const versionBody = (e: Emulator, version: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const url = new URL(`${e.vault(VAULT).url}/certificates/${CERT}/${version}?api-version=7.5`)
    const req = request(
      url,
      { ca: e.caPem, headers: { authorization: `Bearer ${e.issueToken(e.clientSecret.clientId)}` } },
      (res) => {
        let body = ""
        res.on("data", (c: Buffer) => {
          body += c.toString("utf8")
        })
        res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(body))))
      },
    )
    req.on("error", reject)
    req.end()
  })

describe("what stays as before", () => {
  it("another writer's version of the source certificate itself is in place, not held", async () => {
    const { e, w, p } = await world.setUp([VAULT])
    const leaf = await p.leaf("same.example.test")
    const files = writePair(w, "same", leaf)
    const a = agentOn(w, e, "a", files, 3600)
    const first = await a.waitFor(deployed("Succeeded"))
    // Another writer imports the same certificate, with kvdeploy's tags: a version that is not the agent's.
    const other = await sdkFor(e, VAULT).importCertificate(
      CERT,
      new TextEncoder().encode(leaf.certPem + leaf.keyPem),
      {
        policy: { contentType: "application/x-pem-file" },
        certificatePolicy: { secretProperties: { contentType: "application/x-pem-file" } },
        tags: { "certctl-managed-by": "certctl", "certctl-certificate-id": CERT },
      } as Parameters<ReturnType<typeof sdkFor>["importCertificate"]>[2],
    )
    expect(other.properties.version).not.toBe(versionOf(first.versionId))
    const from = a.lines.length
    a.signal("SIGHUP")
    const inPlace = await a.waitFor((l) => l.deployment === CERT && l.msg.startsWith("in place"), { from })
    expect(inPlace.versionId).toBe(other.properties.version)
    expect(supersededLines(a)).toEqual([])
    expect(await lastOutcome(a, "Skipped")).toBe(1)
  })

  it("a read that answers the agent's own earlier version (a lagging replica) is deployed over, not held", async () => {
    const { e, w, p } = await world.setUp([VAULT])
    const a = agentOn(w, e, "a", writePair(w, "own", await p.leaf("own.example.test")), 3600)
    const first = await a.waitFor(deployed("Succeeded"))
    const earlier = versionOf(first.versionId)
    // Key Vault keeps creation times in whole seconds: the renewal's version is created in a later one.
    const createdAt = served(e)[0]?.created ?? 0
    await expect.poll(() => Math.floor(Date.now() / 1000) > createdAt, { timeout: 5_000 }).toBe(true)
    const renewed = await p.leaf("own.example.test")
    let from = a.lines.length
    writePair(w, "own", renewed)
    const second = await a.waitFor(deployed("Succeeded"), { from })
    expect(served(e).map((v) => v.version)).toEqual([earlier, versionOf(second.versionId)])
    // The next read answers the earlier version, as a replica that has not seen the renewal would.
    const body = await versionBody(e, earlier)
    e.faults.add({
      operation: "getLatest",
      vault: VAULT,
      name: CERT,
      times: 1,
      action: { kind: "rawAnswer", body, contentType: "application/json; charset=utf-8" },
    })
    from = a.lines.length
    a.signal("SIGHUP")
    const decided = await a.waitFor(
      (l) =>
        l.deployment === CERT &&
        (l.msg.startsWith("deploy: ") || l.msg.startsWith("superseded: ") || l.msg.startsWith("in place")),
      { from },
    )
    // Not another writer's: deployed over as before (its snapshot the version read).
    expect(decided.msg).toBe("deploy: Succeeded")
    expect(versionOf(decided.previousVersionId)).toBe(earlier)
    expect(decided.newX5t).toBe(renewed.x5t)
  })
})
