/**
 * Chaos, for the built agent: eight deployments over two vaults, their sources renewed at random
 * while the emulator fails at random (503s, lost and refused imports, throttling, another writer's
 * imports and deletes, a version disabled right after its write, imports denied for a while). The
 * deletes take a while to show, as Key Vault's do. Then the faults stop, every source is renewed
 * once more (which ends any hold), and the agent must bring every vault in step:
 * - each certificate served is its deployment's newest source, enabled, tagged as kvdeploy's;
 * - every version the agent wrote, a deleted certificate's included, is one of its deployment's
 *   sources, or a rollback (tagged) to a certificate the vault held before;
 * - every deploy that replaced another writer's version it read says adopted;
 * - no private key in the agent's log; the agent never exited, and it is ready.
 * The seed is printed; KVDEPLOY_AGENT_CHAOS_SEED replays its choices (not its timing), and
 * KVDEPLOY_AGENT_CHAOS_MS changes how long the faults go on.
 */
import { createPrivateKey } from "node:crypto"
import { pickWeighted, seededRandom } from "@kvdeploy/core/test"
import type { FaultRule } from "@kvdeploy/kv-emulator"
import { describe, expect, it } from "vitest"
import { metricValue, perTestWorld, sdkFor, type Workdir, writeConfig } from "./harness.js"
import type { Issued } from "./pki.js"

const world = perTestWorld()
const SEED = Number(process.env.KVDEPLOY_AGENT_CHAOS_SEED ?? Date.now() % 1_000_000)
const CHAOS_MS = Number(process.env.KVDEPLOY_AGENT_CHAOS_MS ?? 10_000)
const VAULTS = ["kv-chaos-a", "kv-chaos-b"]
const PER_VAULT = 4

type Rule = Omit<FaultRule, "vault" | "name">
const faultMenu: ReadonlyArray<
  readonly [number, { readonly label: string; readonly rules: ReadonlyArray<Rule> }]
> = [
  [
    4,
    {
      label: "reads 503 x2",
      rules: [{ operation: "getLatest", times: 2, action: { kind: "status", status: 503 } }],
    },
  ],
  [3, { label: "import dropped before commit", rules: [{ operation: "import", action: { kind: "drop" } }] }],
  [
    3,
    {
      label: "import dropped after commit",
      rules: [{ operation: "import", action: { kind: "dropAfterCommit" } }],
    },
  ],
  [2, { label: "import 500", rules: [{ operation: "import", action: { kind: "status", status: 500 } }] }],
  [
    2,
    {
      label: "import throttled",
      rules: [{ operation: "import", times: 2, action: { kind: "throttle", retryAfterSeconds: 0 } }],
    },
  ],
  [
    2,
    {
      label: "import answered late",
      rules: [{ operation: "import", action: { kind: "delayAfterCommit", ms: 1_500 } }],
    },
  ],
  [
    2,
    {
      label: "new version disabled",
      rules: [{ operation: "import", action: { kind: "disableAfterCommit" } }],
    },
  ],
  [
    2,
    {
      label: "foreign import after ours",
      rules: [{ operation: "import", action: { kind: "foreignImport", when: "after" } }],
    },
  ],
  [
    1,
    {
      label: "foreign import before a read",
      rules: [{ operation: "getLatest", action: { kind: "foreignImport" } }],
    },
  ],
  [
    1,
    {
      label: "deleted before a read",
      rules: [{ operation: "getLatest", action: { kind: "foreignDelete" } }],
    },
  ],
  [
    1,
    {
      label: "deleted after an import",
      rules: [{ operation: "import", action: { kind: "foreignDelete", when: "after" } }],
    },
  ],
]

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe("the agent under chaos", () => {
  it(`brings every vault in step once the faults stop (seed ${SEED})`, async () => {
    console.log(`agent chaos seed ${SEED} (KVDEPLOY_AGENT_CHAOS_SEED=${SEED} replays its choices)`)
    const random = seededRandom(SEED)
    const { e, w, p } = await world.setUp(VAULTS, { propagationMs: 400 })
    const deployments = VAULTS.flatMap((vault, v) =>
      Array.from({ length: PER_VAULT }, (_, i) => ({ name: `app-${v}${i}`, vault })),
    )
    const sources = new Map<string, Array<Issued>>()
    const writeSource = async (w: Workdir, name: string) => {
      const issued = await p.leaf(`${name}.example.test`)
      sources.set(name, [...(sources.get(name) ?? []), issued])
      // The key first, then the certificate: the agent may read a pair that does not match for a moment.
      w.write(`${name}.key`, issued.keyPem)
      w.write(`${name}.crt`, issued.certPem)
    }
    for (const d of deployments) await writeSource(w, d.name)
    const config = writeConfig(
      w,
      e,
      deployments.map((d) => ({
        name: d.name,
        vault: d.vault,
        certificate: d.name,
        source: { cert: w.path(`${d.name}.crt`), key: w.path(`${d.name}.key`) },
        // Another writer's versions are taken over, and deleted certificates recovered: the vaults can
        // always be brought in step once the faults stop.
        target: { adopt: true, on_soft_deleted: "recover" },
      })),
      { reconcile_interval_seconds: 1, request_timeout_seconds: 1, recover_timeout_seconds: 10 },
    )
    const a = world.run(config, e)
    let exited: number | undefined
    void a.exited.then((code) => {
      exited = code
    })
    await expect.poll(async () => (await a.http("/readyz")).status, { timeout: 30_000 }).toBe(200)

    // The chaos: a source renewed, a fault added, or imports denied for a while, every 50-250 ms.
    const happened = new Map<string, number>()
    const count = (what: string) => happened.set(what, (happened.get(what) ?? 0) + 1)
    const started = Date.now()
    const until = started + CHAOS_MS
    const chaosMark = e.requests.mark()
    // Half-way, once in every run: an operator deletes one certificate the vault serves, and another
    // writer imports over another (taken over: every deployment adopts). Either can be refused when
    // a fault's delete got there first.
    let operatorDeleted: (typeof deployments)[number] | undefined
    let foreignWritten: (typeof deployments)[number] | undefined
    let scripted = false
    // Where the request log and the agent's log stood when the operator deleted: what recovered
    // that delete comes after (a fault's own deletes of the same certificate may have come before).
    let deleteMark = 0
    let linesAtDelete = 0
    // The other writer's version, when the vault took it.
    let foreignVersion: string | undefined
    while (Date.now() < until) {
      if (!scripted && Date.now() >= started + CHAOS_MS / 2) {
        scripted = true
        const served = deployments.filter((d) => e.state.versions(d.vault, d.name) !== undefined)
        operatorDeleted = served[0]
        foreignWritten = served[1]
        deleteMark = e.requests.mark()
        linesAtDelete = a.lines.length
        if (operatorDeleted)
          await sdkFor(e, operatorDeleted.vault)
            .beginDeleteCertificate(operatorDeleted.name)
            .then(() => count("an operator's delete"))
            .catch(() => count("an operator's delete, refused"))
        if (foreignWritten)
          await e.state
            .foreignImport(foreignWritten.vault, foreignWritten.name)
            .then((v) => {
              foreignVersion = v.version
              count("another writer's import")
            })
            .catch(() => count("another writer's import, refused"))
      }
      const d = deployments[Math.floor(random() * deployments.length)] ?? deployments[0]
      if (d === undefined) break
      const r = random()
      if (r < 0.3) {
        await writeSource(w, d.name)
        count("source renewed")
      } else if (r < 0.95) {
        const { label, rules } = pickWeighted(random, faultMenu)
        for (const rule of rules) e.faults.add({ ...rule, vault: d.vault, name: d.name })
        count(label)
        // An import fault fires at the deployment's next import: most often a renewal's.
        if (rules.some((rule) => rule.operation === "import") && random() < 0.7) await writeSource(w, d.name)
      } else {
        e.rbac.deny(e.clientSecret.clientId, ["certificates/import"])
        await sleep(300 + random() * 500)
        e.rbac.allow(e.clientSecret.clientId, ["certificates/import"])
        count("imports denied for a while")
      }
      await sleep(50 + random() * 200)
    }
    // What fired (a fault waits for its operation on its certificate, which may never come).
    const fired = new Map<string, number>()
    for (const entry of e.requests.entries({ since: chaosMark }))
      if (entry.fault !== undefined) {
        const kind = `fired: ${entry.operation} ${entry.fault.split(":")[1]}`
        fired.set(kind, (fired.get(kind) ?? 0) + 1)
      }
    e.faults.clear()
    // Deletes and recoveries under way show, then every source is renewed once more.
    await sleep(600)
    for (const d of deployments) await writeSource(w, d.name)
    console.log(
      [...happened.entries(), ...fired.entries()]
        .sort()
        .map(([k, n]) => `${String(n).padStart(4)}  ${k}`)
        .join("\n"),
    )

    // In step: every vault serves its deployment's newest source.
    const newest = (name: string) => sources.get(name)?.at(-1)
    const servedVersion = (d: { name: string; vault: string }) => e.state.versions(d.vault, d.name)?.at(-1)
    await expect
      .poll(
        () =>
          deployments
            .filter((d) => {
              const latest = servedVersion(d)
              return latest?.x5t !== newest(d.name)?.x5t || !latest?.enabled
            })
            .map((d) => d.name),
        { timeout: 60_000, interval: 200 },
      )
      .toEqual([])
    for (const d of deployments) {
      const latest = servedVersion(d)
      expect(latest?.tags?.["certctl-managed-by"], d.name).toBe("certctl")
      expect(e.state.isDeleted(d.vault, d.name), d.name).toBe(false)
    }
    // ... and says so (Skipped: a pass since found the source in place).
    await expect
      .poll(
        async () => {
          const page = (await a.http("/metrics")).body
          return deployments
            .map((d) => ({
              name: d.name,
              inStep: ["Succeeded", "Skipped"].some(
                (outcome) =>
                  metricValue(page, "kvdeploy_agent_last_outcome", { deployment: d.name, outcome }) === 1,
              ),
            }))
            .filter((d) => !d.inStep)
            .map((d) => d.name)
        },
        { timeout: 20_000 },
      )
      .toEqual([])

    // Every version the agent wrote is a source of its deployment, or a rollback to a certificate the
    // vault held; the emulator's other writer's versions are the only others.
    const strays: Array<string> = []
    const outcomes = new Map<string, number>()
    for (const l of a.lines)
      if (typeof l.msg === "string" && l.msg.startsWith("deploy: "))
        outcomes.set(l.msg, (outcomes.get(l.msg) ?? 0) + 1)
    for (const d of deployments) {
      const versions = e.state.versions(d.vault, d.name, { includeDeleted: true }) ?? []
      const ofSources = new Set((sources.get(d.name) ?? []).map((s) => s.x5t))
      // What a rollback may restore: a source of the deployment, or another writer's certificate.
      const restorable = new Set([...ofSources, ...versions.filter((v) => v.foreign).map((v) => v.x5t)])
      for (const v of versions) {
        if (v.foreign) continue
        const rollback = v.tags?.["certctl-rollback-of"] !== undefined
        if (v.tags?.["certctl-managed-by"] !== "certctl") strays.push(`${d.name} ${v.version}: not tagged`)
        if (!(rollback ? restorable : ofSources).has(v.x5t))
          strays.push(
            `${d.name} ${v.version}: ${v.x5t} is ${rollback ? "a rollback to a certificate the vault never held" : "no source of the deployment"}`,
          )
      }
    }
    console.log(
      [...outcomes.entries()]
        .sort()
        .map(([k, n]) => `${String(n).padStart(4)}  ${k}`)
        .join("\n"),
    )
    expect(strays).toEqual([])
    // The run went through what it set up: faults fired, the operator's delete was recovered, and the
    // other writer's version was taken over (below).
    expect([...fired.values()].reduce((n, k) => n + k, 0)).toBeGreaterThanOrEqual(5)
    if (happened.has("an operator's delete") && operatorDeleted !== undefined) {
      const { vault, name } = operatorDeleted
      // The emulator recovered it at a client's request, and the agent is the only client that
      // recovers. The agent said so: "recovered", or "unknown" when its recovery request or the wait
      // for Key Vault to serve the certificate ran past the 1 s request timeout (a loaded machine)
      // and a later pass found the certificate served again.
      const recoveries = e.requests
        .entries({ since: deleteMark, vault, operation: "recover", status: 200 })
        .filter((r) => r.path.includes(`/deletedcertificates/${name}/`))
      expect(recoveries.length, `recoveries of ${name} since the operator's delete`).toBeGreaterThanOrEqual(1)
      const said = a.lines
        .slice(linesAtDelete)
        .filter((l) => l.deployment === name && l.recovered !== undefined)
      expect(
        said.length,
        `the agent's recovery of ${name} in its log since the delete`,
      ).toBeGreaterThanOrEqual(1)
    }
    // The agent says when it takes another writer's certificate over: every deploy that replaced
    // another writer's version (the one it read as the latest) and wrote one of its own says adopted.
    const versionOf = (id: unknown) => (typeof id === "string" ? id.split("/").at(-1) : undefined)
    const records = a.lines.filter((l) => typeof l.msg === "string" && l.msg.startsWith("deploy: "))
    const untold: Array<string> = []
    for (const d of deployments) {
      const foreign = new Set(
        (e.state.versions(d.vault, d.name, { includeDeleted: true }) ?? [])
          .filter((v) => v.foreign)
          .map((v) => v.version),
      )
      for (const r of records) {
        const replaced = versionOf(r.previousVersionId)
        if (r.deployment !== d.name || replaced === undefined || !foreign.has(replaced)) continue
        if (r.versionId !== undefined && r.adopted !== true)
          untold.push(`${d.name}: ${r.msg} replaced another writer's ${replaced} without saying adopted`)
      }
    }
    expect(untold).toEqual([])
    // The half-way import of another writer's version was taken over: a deploy read it (or another
    // writer's version after it) as the one it replaced, and said adopted. Unless it landed while the
    // agent's import was on its way (Key Vault's import replaces whatever is latest): then the agent's
    // next version covered it unread, written by a deploy that had read a version from before it.
    if (foreignWritten !== undefined && foreignVersion !== undefined) {
      const { vault, name } = foreignWritten
      const versions = e.state.versions(vault, name, { includeDeleted: true }) ?? []
      const order = versions.map((v) => v.version)
      const at = order.indexOf(foreignVersion)
      const indexOf = (id: unknown) => order.indexOf(versionOf(id) ?? "")
      const ofIt = records.filter((r) => r.deployment === name)
      const tookOver = ofIt.some(
        (r) =>
          at >= 0 &&
          r.adopted === true &&
          indexOf(r.previousVersionId) >= at &&
          versions[indexOf(r.previousVersionId)]?.foreign === true,
      )
      if (!tookOver) {
        const next = versions.slice(at + 1).find((v) => !v.foreign)
        const writer = ofIt.find(
          (r) =>
            next !== undefined &&
            (versionOf(r.versionId) === next.version || versionOf(r.rollbackVersionId) === next.version),
        )
        const read = indexOf(writer?.previousVersionId)
        expect(
          at >= 0 && writer !== undefined && read >= 0 && read < at,
          `${name}: another writer's ${foreignVersion} neither taken over nor covered by an import already on its way\n` +
            `versions: ${versions.map((v) => `${v.version}${v.foreign ? " (other writer)" : ""}`).join(", ")}\n` +
            ofIt
              .map(
                (r) =>
                  `${r.msg} previous ${versionOf(r.previousVersionId)} version ${versionOf(r.versionId)} adopted ${String(r.adopted)}`,
              )
              .join("\n"),
        ).toBe(true)
        console.log(
          `${name}: another writer's ${foreignVersion} landed under an import on its way: covered unread`,
        )
      }
    }

    // No private key in the log: each source key's private scalar, in the encodings a line could carry.
    const log = JSON.stringify(a.lines) + a.stderr()
    for (const issued of [...sources.values()].flat()) {
      const d = createPrivateKey(issued.keyPem).export({ format: "jwk" }).d ?? ""
      const scalar = Buffer.from(d, "base64url")
      for (const s of [d, scalar.toString("base64"), scalar.toString("hex")])
        expect(log.includes(s)).toBe(false)
      expect(log.includes(issued.keyPem.split("\n")[1] ?? "-")).toBe(false)
    }
    expect(exited).toBeUndefined()
    expect((await a.http("/readyz")).status).toBe(200)
  }, 150_000)
})
