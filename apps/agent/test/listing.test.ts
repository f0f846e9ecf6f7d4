/**
 * The built agent's vault listing: a pass over a vault with at least
 * `vault_list_min_deployments` deployments lists the vault's certificates
 * (25 per request) and takes every deployment that the list shows in place as
 * done, without a read of its own. Anything the list does not confirm is read
 * and decided as before; a refused list falls back to reads; 0 turns it off.
 * The emulator's request log proves which requests each pass made.
 */
import { describe, expect, it } from "vitest"
import { agentSuite, baseEnv, type LogLine, metricValue, startAgent, writeConfig } from "./harness.js"

const VAULT = "agent-list"
/** More than one page of 25, at least the default vault_list_min_deployments (25). */
const N = 30
const PAGES = Math.ceil(N / 25)

const suite = agentSuite([VAULT])

/** The vault's requests since `mark` (token challenges apart), counted by operation and status. */
const requestsSince = (mark: number): Record<string, number> => {
  const counts: Record<string, number> = {}
  for (const e of suite.emulator.requests.entries({ since: mark, vault: VAULT })) {
    if (e.challenge) continue
    const key = `${e.operation} ${e.status}`
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

const name = (i: number) => `site-${i}`

describe("a pass over a vault with many deployments lists it", () => {
  it("confirms what is in place from the list, deploys what another writer replaced, and reads each one when the list is refused", async () => {
    const { emulator, pki, work } = suite
    const leaves = await Promise.all(Array.from({ length: N }, (_, i) => pki.leaf(`${name(i)}.example.test`)))
    leaves.forEach((leaf, i) => {
      work.write(`${name(i)}.key`, leaf.keyPem)
      work.write(`${name(i)}.crt`, leaf.certPem)
    })
    const deployments = leaves.map((_, i) => ({
      name: name(i),
      vault: VAULT,
      certificate: `${name(i)}-cert`,
      source: { cert: work.path(`${name(i)}.crt`), key: work.path(`${name(i)}.key`) },
    }))
    const config = writeConfig(work, emulator, deployments)
    const env = { ...baseEnv(), ...emulator.env.clientSecret }
    const a = startAgent(config, env)
    suite.agent = a
    const passOver = (reason: string, from: number): Promise<LogLine> =>
      a.waitFor((l) => l.msg === "pass over" && l.reason === reason, { from, timeoutMs: 60_000 })

    // The first pass: the vault is empty (one list page, nothing in it), every deployment reads and deploys.
    let mark = emulator.requests.mark()
    const started = await passOver("start", 0)
    expect(started).toMatchObject({ deployments: N, inPlace: 0, inPlaceFromList: 0, other: N, listPages: 1 })
    for (let i = 0; i < N; i++)
      expect(emulator.state.versions(VAULT, `${name(i)}-cert`)?.map((v) => v.x5t)).toEqual([leaves[i]?.x5t])
    expect(requestsSince(mark)).toEqual({
      "list 200": 1,
      "getLatest 404": N,
      "import 200": N,
      "getLatest 200": N,
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
    // reads it (the read is the deploy's snapshot), imports its source and verifies; the others stay listed.
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
    expect(requestsSince(mark)).toEqual({ "list 200": PAGES, "getLatest 200": 2, "import 200": 1 })
    expect(emulator.state.versions(VAULT, `${name(replaced)}-cert`)?.at(-1)?.x5t).toBe(leaves[replaced]?.x5t)
    expect(
      a.lines.slice(from).some((l) => l.deployment === name(replaced) && l.msg === "deploy: Succeeded"),
    ).toBe(true)

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
    emulator.faults.remove(refusal)

    // A reload tries the list again (a grant may have been made since).
    mark = emulator.requests.mark()
    from = a.lines.length
    a.signal("SIGHUP")
    expect(await passOver("reload", from)).toMatchObject({ inPlaceFromList: N, listPages: PAGES })
    expect(requestsSince(mark)).toEqual({ "list 200": PAGES })

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
})
