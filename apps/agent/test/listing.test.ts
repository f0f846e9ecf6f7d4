/**
 * The built agent's vault listing: a pass over a vault with at least
 * `vault_list_min_deployments` deployments lists the vault's certificates
 * (25 per request) and takes every deployment that the list shows in place as
 * done, without a read of its own. Anything the list does not confirm is read
 * and decided as before; a refused list falls back to reads; 0 turns it off.
 * The emulator's request log proves which requests each pass made.
 */
import { describe, expect, it } from "vitest"
import {
  type AgentProcess,
  agentSuite,
  baseEnv,
  type LogLine,
  metricValue,
  requestHeld,
  startAgent,
  writeConfig,
} from "./harness.js"

const VAULT = "agent-list"
const MOVED_FROM = "agent-list-a"
const MOVED_TO = "agent-list-b"
const OWN = "agent-list-own"
const SHORT = "agent-list-short"
/** More than one page of 25, at least the default vault_list_min_deployments (25). */
const N = 30
const PAGES = Math.ceil(N / 25)

const suite = agentSuite([VAULT, MOVED_FROM, MOVED_TO, OWN, SHORT])

/** How often the emulator's fault `id` matched a request so far. */

/** The deployment's next decision after log line `from`: found in place, or a deploy's outcome. */
const decision = (a: AgentProcess, deployment: string, from: number): Promise<LogLine> =>
  a.waitFor(
    (l) => l.deployment === deployment && (l.msg.startsWith("in place") || l.msg.startsWith("deploy:")),
    { from, timeoutMs: 20_000 },
  )

/** The vault's requests since `mark` (token challenges apart), counted by operation and status. */
const requestsSince = (mark: number, vault = VAULT): Record<string, number> => {
  const counts: Record<string, number> = {}
  for (const e of suite.emulator.requests.entries({ since: mark, vault })) {
    if (e.challenge) continue
    const key = `${e.operation} ${e.status}`
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

const name = (i: number) => `site-${i}`

describe("a pass over a vault with many deployments lists it", () => {
  it("confirms what is in place from the list, holds on what another writer replaced, and reads each one when the list is refused", async () => {
    const { emulator, pki, work } = suite
    const leaves = await Promise.all(Array.from({ length: N }, (_, i) => pki.leaf(`${name(i)}.example.test`)))
    leaves.forEach((leaf, i) => {
      work.write(`${name(i)}.key`, leaf.keyPem)
      work.write(`${name(i)}.crt`, leaf.certPem)
    })
    // Key Vault's names are case-insensitive and the list answers them as first created: one
    // certificate exists already in lower case (another kvdeploy writer's), and its deployment names
    // it in mixed case. Its list entry must still be found.
    const mixed = 3
    await emulator.state.foreignImport(VAULT, `${name(mixed)}-cert`, { "certctl-managed-by": "certctl" })
    const certificateOf = (i: number) => (i === mixed ? `Site-${i}-Cert` : `${name(i)}-cert`)
    const deployments = leaves.map((_, i) => ({
      name: name(i),
      vault: VAULT,
      certificate: certificateOf(i),
      source: { cert: work.path(`${name(i)}.crt`), key: work.path(`${name(i)}.key`) },
    }))
    const config = writeConfig(work, emulator, deployments)
    const env = { ...baseEnv(), ...emulator.env.clientSecret }
    const a = startAgent(config, env)
    suite.agent = a
    const passOver = (reason: string, from: number): Promise<LogLine> =>
      a.waitFor((l) => l.msg === "pass over" && l.reason === reason, { from, timeoutMs: 60_000 })

    // The first pass: one list page (the one foreign certificate, not in place), every deployment reads
    // and deploys.
    let mark = emulator.requests.mark()
    const started = await passOver("start", 0)
    expect(started).toMatchObject({ deployments: N, inPlace: 0, inPlaceFromList: 0, other: N, listPages: 1 })
    for (let i = 0; i < N; i++)
      expect(emulator.state.versions(VAULT, certificateOf(i))?.at(-1)?.x5t).toBe(leaves[i]?.x5t)
    expect(requestsSince(mark)).toEqual({
      "list 200": 1,
      "getLatest 404": N - 1,
      "import 200": N,
      "getLatest 200": N + 1,
    })

    // A pass that changes nothing: the list's pages and no other request.
    mark = emulator.requests.mark()
    let from = a.lines.length
    a.signal("SIGHUP")
    const quiet = await passOver("reload", from)
    expect(quiet).toMatchObject({
      deployments: N,
      inPlace: N,
      inPlaceFromList: N,
      other: 0,
      listPages: PAGES,
    })
    expect(requestsSince(mark)).toEqual({ "list 200": PAGES })
    const page = (await a.http("/metrics")).body
    expect(metricValue(page, "kvdeploy_agent_last_pass_listed_in_place", { reason: "reload" })).toBe(N)
    expect(
      metricValue(page, "kvdeploy_agent_last_pass_duration_seconds", { reason: "reload" }),
    ).toBeGreaterThan(0)
    expect(
      metricValue(page, "kvdeploy_agent_last_outcome", { deployment: name(0), outcome: "Skipped" }),
    ).toBe(1)

    // Another kvdeploy writer replaces one certificate: the list does not confirm it, so that deployment
    // reads it and holds on the other writer's version (Superseded, nothing imported); the others stay listed.
    const replaced = 7
    const foreign = await emulator.state.foreignImport(VAULT, `${name(replaced)}-cert`, {
      "certctl-managed-by": "certctl",
    })
    expect(foreign.x5t).not.toBe(leaves[replaced]?.x5t)
    mark = emulator.requests.mark()
    from = a.lines.length
    a.signal("SIGHUP")
    const oneChanged = await passOver("reload", from)
    expect(oneChanged).toMatchObject({ inPlace: N - 1, inPlaceFromList: N - 1, other: 1, listPages: PAGES })
    expect(requestsSince(mark)).toEqual({ "list 200": PAGES, "getLatest 200": 1 })
    expect(
      a.lines.slice(from).some((l) => l.deployment === name(replaced) && l.msg.startsWith("superseded: ")),
    ).toBe(true)
    // Its source renewed ends the hold: deployed over the other writer's version.
    const renewal = await pki.leaf(`${name(replaced)}.example.test`)
    leaves[replaced] = renewal
    from = a.lines.length
    work.write(`${name(replaced)}.key`, renewal.keyPem)
    work.write(`${name(replaced)}.crt`, renewal.certPem)
    await a.waitFor((l) => l.deployment === name(replaced) && l.msg === "deploy: Succeeded", { from })
    expect(emulator.state.versions(VAULT, `${name(replaced)}-cert`)?.at(-1)?.x5t).toBe(leaves[replaced]?.x5t)

    // The list refused (403): every deployment reads its own certificate, and the warning says what to grant.
    const refusal = emulator.faults.add({
      operation: "list",
      vault: VAULT,
      times: 1,
      action: { kind: "status", status: 403, code: "Forbidden", message: "Caller is not authorized" },
    })
    mark = emulator.requests.mark()
    from = a.lines.length
    a.signal("SIGHUP")
    const refused = await passOver("reload", from)
    expect(refused).toMatchObject({ inPlace: N, inPlaceFromList: 0, other: 0, listPages: 0 })
    expect(requestsSince(mark)).toEqual({ "list 403": 1, "getLatest 200": N })
    const warning = a.lines.slice(from).find((l) => l.msg.startsWith("vault list refused"))
    expect(warning?.level).toBe("warn")
    expect(String(warning?.fix)).toContain("certificates/list")
    // The vault's problem, not one deployment's: no deployment field, the number it concerns.
    expect(warning?.deployment).toBeUndefined()
    expect(warning?.deployments).toBe(N)
    emulator.faults.remove(refusal)

    // A reload tries the list again (a grant may have been made since).
    mark = emulator.requests.mark()
    from = a.lines.length
    a.signal("SIGHUP")
    expect(await passOver("reload", from)).toMatchObject({ inPlaceFromList: N, listPages: PAGES })
    expect(requestsSince(mark)).toEqual({ "list 200": PAGES })

    // An entry the vault answers without its facts: that deployment reads its own certificate, the
    // page's others stay listed (the whole page failed before: N reads), and the warning names it.
    // Another writer's certificate, first on the page, also without its facts: it concerns no
    // deployment, and the warning does not name it.
    await emulator.state.foreignImport(VAULT, "0-foreign-unused")
    const odd = emulator.faults.add({
      operation: "list",
      vault: VAULT,
      times: 1,
      action: { kind: "omitFields", fields: ["value.0.attributes.enabled", "value.1.attributes.enabled"] },
    })
    mark = emulator.requests.mark()
    from = a.lines.length
    a.signal("SIGHUP")
    expect(await passOver("reload", from)).toMatchObject({
      inPlace: N,
      inPlaceFromList: N - 1,
      listPages: PAGES,
    })
    expect(requestsSince(mark)).toEqual({ "list 200": PAGES, "getLatest 200": 1 })
    const named = a.lines
      .slice(from)
      .find((l) => l.msg.startsWith("vault list: entries the vault answered without"))
    expect(named?.level).toBe("warn")
    expect(named?.entries).toHaveLength(1)
    expect(JSON.stringify(named?.entries)).toContain("lacks `attributes.enabled`")
    expect(JSON.stringify(named?.entries)).not.toContain("0-foreign-unused")
    emulator.faults.remove(odd)

    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)

    // vault_list_min_deployments: 0 never lists: a restarted agent reads each certificate.
    const off = writeConfig(work, emulator, deployments, { vault_list_min_deployments: 0 }, "agent-off.yaml")
    mark = emulator.requests.mark()
    const b = startAgent(off, env)
    suite.agent = b
    const restarted = await b.waitFor((l) => l.msg === "pass over" && l.reason === "start", {
      timeoutMs: 60_000,
    })
    expect(restarted).toMatchObject({ inPlace: N, inPlaceFromList: 0, listPages: 0 })
    expect(requestsSince(mark)).toEqual({ "getLatest 200": N })
  })

  it("short and empty pages (Key Vault may answer them): listed to the end within the page budget, else each unlisted deployment reads its own certificate", async () => {
    const { emulator, pki, work } = suite
    const leaves = await Promise.all(Array.from({ length: N }, (_, i) => pki.leaf(`short-${i}.example.test`)))
    const deployments = leaves.map((leaf, i) => ({
      name: `short-${i}`,
      vault: SHORT,
      certificate: `short-${i}-cert`,
      source: {
        cert: work.write(`short-${i}.crt`, leaf.certPem),
        key: work.write(`short-${i}.key`, leaf.keyPem),
      },
    }))
    // Its own state directory: an earlier test's agent may run on until the file ends (its lock).
    const config = writeConfig(
      work,
      emulator,
      deployments,
      { state_dir: work.path("state-short") },
      "agent-short.yaml",
    )
    const a = startAgent(config, { ...baseEnv(), ...emulator.env.clientSecret })
    suite.agent = a
    const passOver = (reason: string, from: number): Promise<LogLine> =>
      a.waitFor((l) => l.msg === "pass over" && l.reason === reason, { from, timeoutMs: 60_000 })
    await passOver("start", 0)
    for (let i = 0; i < N; i++)
      expect(emulator.state.versions(SHORT, `short-${i}-cert`)?.at(-1)?.x5t).toBe(leaves[i]?.x5t)

    // Full pages: 2 requests confirm all 30 (the fleet-scale count, unchanged).
    let mark = emulator.requests.mark()
    let from = a.lines.length
    a.signal("SIGHUP")
    expect(await passOver("reload", from)).toMatchObject({ inPlaceFromList: N, listPages: PAGES })
    expect(requestsSince(mark, SHORT)).toEqual({ "list 200": PAGES })

    // An empty first page, then pages of 4: 1 + 8 pages, within the budget (15, half the group).
    let faults = [
      emulator.faults.add({
        operation: "list",
        vault: SHORT,
        times: 1,
        action: { kind: "shortPage", items: 0 },
      }),
      emulator.faults.add({
        operation: "list",
        vault: SHORT,
        times: "always",
        action: { kind: "shortPage", items: 4 },
      }),
    ]
    mark = emulator.requests.mark()
    from = a.lines.length
    a.signal("SIGHUP")
    expect(await passOver("reload", from)).toMatchObject({
      inPlace: N,
      inPlaceFromList: N,
      listPages: 1 + Math.ceil(N / 4),
    })
    expect(requestsSince(mark, SHORT)).toEqual({ "list 200": 1 + Math.ceil(N / 4) })
    for (const id of faults) emulator.faults.remove(id)

    // Empty pages that go on: the list stops at its budget; no deployment is taken as listed, none is
    // deployed for want of an entry: each reads its own certificate and finds it in place. The log says
    // the pages were short (not that the vault holds many more certificates).
    faults = [
      emulator.faults.add({
        operation: "list",
        vault: SHORT,
        times: "always",
        action: { kind: "shortPage", items: 0 },
      }),
    ]
    mark = emulator.requests.mark()
    from = a.lines.length
    a.signal("SIGHUP")
    const budget = Math.ceil(N / 2)
    expect(await passOver("reload", from)).toMatchObject({
      inPlace: N,
      inPlaceFromList: 0,
      other: 0,
      listPages: budget,
    })
    expect(requestsSince(mark, SHORT)).toEqual({ "list 200": budget, "getLatest 200": N })
    const stopped = a.lines.slice(from).find((l) => l.msg.startsWith("vault list stopped early"))
    expect(stopped?.msg).toContain("the vault answered short pages")
    expect(stopped).toMatchObject({ pages: budget, entries: 0, found: 0, deployments: N })
    expect(a.lines.slice(from).some((l) => l.msg.startsWith("deploy:"))).toBe(false)
    for (const id of faults) emulator.faults.remove(id)

    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
  })

  it("drops a list entry for a deployment a reload moved to another vault meanwhile", async () => {
    const { emulator, pki, work } = suite
    const leaf = await pki.leaf("mover.example.test")
    work.write("mover.key", leaf.keyPem)
    work.write("mover.crt", leaf.certPem)
    const spec = (vault: string) => [
      {
        name: "mover",
        vault,
        certificate: "mover-cert",
        source: { cert: work.path("mover.crt"), key: work.path("mover.key") },
      },
    ]
    // Its own state directory: the earlier tests' agents run on until the file ends, and one state
    // directory takes one agent at a time (its lock).
    const settings = { vault_list_min_deployments: 1, state_dir: work.path("state-moved") }
    const config = writeConfig(work, emulator, spec(MOVED_FROM), settings, "moved.yaml")
    const a = startAgent(config, { ...baseEnv(), ...emulator.env.clientSecret })
    suite.agent = a
    await a.waitFor((l) => l.msg === "pass over" && l.reason === "start", { timeoutMs: 60_000 })
    expect(emulator.state.versions(MOVED_FROM, "mover-cert")?.map((v) => v.x5t)).toEqual([leaf.x5t])

    // A reload pass lists the old vault, and that list is held in the vault...
    const holdOld = emulator.faults.add({
      operation: "list",
      vault: MOVED_FROM,
      times: 1,
      action: { kind: "hold" },
    })
    const holdNew = emulator.faults.add({
      operation: "list",
      vault: MOVED_TO,
      times: 1,
      action: { kind: "hold" },
    })
    a.signal("SIGHUP")
    await requestHeld(suite.emulator, holdOld)
    // ...while a second reload moves the deployment to the other vault (whose list is held too).
    writeConfig(work, emulator, spec(MOVED_TO), settings, "moved.yaml")
    const from = a.lines.length
    a.signal("SIGHUP")
    await requestHeld(suite.emulator, holdNew)
    // No deployment names the old vault now: its client goes (the list held on it still finishes).
    const released = await a.waitFor((l) => /released the vault clients/.test(l.msg), { from })
    expect(released.vaults).toEqual([emulator.vault(MOVED_FROM).url])
    expect(released.clients).toBe(1)
    // The old vault's page (the certificate in place there) arrives after the move: it says nothing
    // about the new vault, which serves nothing yet. The deployment reads the new vault and deploys.
    emulator.faults.release(holdOld)
    const next = await decision(a, "mover", from)
    expect(next.msg).toBe("deploy: Succeeded")
    expect(emulator.state.versions(MOVED_TO, "mover-cert")?.map((v) => v.x5t)).toEqual([leaf.x5t])
    emulator.faults.release(holdNew)
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
  })

  it("gives no list entry to a deployment that deployed while the page was on its way", async () => {
    const { emulator, pki, work } = suite
    // Two pages: "aa-web" sorts first (page 1); 25 more certificates fill page 1 and start page 2.
    const others = await Promise.all(Array.from({ length: 25 }, (_, i) => pki.leaf(`o${i}.example.test`)))
    others.forEach((leaf, i) => {
      work.write(`o${i}.key`, leaf.keyPem)
      work.write(`o${i}.crt`, leaf.certPem)
    })
    const s1 = await pki.leaf("web.example.test")
    const s2 = await pki.leaf("web.example.test")
    work.write("web.key", s1.keyPem)
    work.write("web.crt", s1.certPem)
    const config = writeConfig(
      work,
      emulator,
      [
        {
          name: "web",
          vault: OWN,
          certificate: "aa-web",
          source: { cert: work.path("web.crt"), key: work.path("web.key") },
        },
        ...others.map((_, i) => ({
          name: `o${i}`,
          vault: OWN,
          certificate: `zz-o${i}`,
          source: { cert: work.path(`o${i}.crt`), key: work.path(`o${i}.key`) },
        })),
      ],
      { state_dir: work.path("state-own") },
      "own.yaml",
    )
    const a = startAgent(config, { ...baseEnv(), ...emulator.env.clientSecret })
    suite.agent = a
    await a.waitFor((l) => l.msg === "pass over" && l.reason === "start", { timeoutMs: 60_000 })
    expect(emulator.state.versions(OWN, "aa-web")?.at(-1)?.x5t).toBe(s1.x5t)

    // The source is renewed to S2; its deploy's import is held in the vault.
    const holdImport = emulator.faults.add({
      operation: "import",
      vault: OWN,
      name: "aa-web",
      times: 1,
      action: { kind: "hold" },
    })
    work.write("web.key", s2.keyPem)
    work.write("web.crt", s2.certPem)
    await requestHeld(suite.emulator, holdImport)
    // A reload pass lists the vault while that deploy is in flight: page 1 (aa-web still S1) is
    // answered, page 2 is held, so the pass's own attempts wait.
    const holdPage2 = emulator.faults.add({
      operation: "list",
      vault: OWN,
      skip: 1,
      times: 1,
      action: { kind: "hold" },
    })
    a.signal("SIGHUP")
    await requestHeld(suite.emulator, holdPage2)
    let from = a.lines.length
    emulator.faults.release(holdImport)
    await a.waitFor((l) => l.deployment === "web" && l.msg === "deploy: Succeeded", {
      from,
      timeoutMs: 20_000,
    })
    expect(emulator.state.versions(OWN, "aa-web")?.at(-1)?.x5t).toBe(s2.x5t)
    // The files go back to S1 at once: page 1 says S1 is in place, but it was read before this agent
    // wrote S2. The deployment must read the vault, find S2 and deploy S1 again.
    from = a.lines.length
    work.write("web.key", s1.keyPem)
    work.write("web.crt", s1.certPem)
    expect(await decision(a, "web", from)).toMatchObject({ msg: "deploy: Succeeded" })
    expect(emulator.state.versions(OWN, "aa-web")?.at(-1)?.x5t).toBe(s1.x5t)
    emulator.faults.release(holdPage2)
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
  })
})
