/**
 * A certificate that expires before the one the vault serves (a stale file, renewals out of order):
 * `plan` and `deploy` say so as a warning, and deploy still imports it (an older certificate put
 * back on purpose is a deploy too).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Issued } from "../src/cli/throwawayPki.js"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { json, runCli, startWorld, type World } from "./harness.js"

let world: World
let fx: Fixtures
let later: Issued
let sooner: Issued
let latest: Issued

beforeAll(async () => {
  ;[world, fx] = await Promise.all([startWorld("kvdeploy-older"), makeFixtures()])
  // Explicit, distinct start dates: each leaf takes "now" after generating its key, so with the
  // default start `sooner` could start a second after `later`, and a later start makes it a
  // renewal (no warning). A day earlier, it is an older certificate however long the keys take.
  ;[later, sooner, latest] = await Promise.all([
    fx.leaf({ notBeforeDays: -1, notAfterDays: 200 }),
    fx.leaf({ notBeforeDays: -2, notAfterDays: 60 }),
    fx.leaf({ notBeforeDays: -1, notAfterDays: 300 }),
  ])
}, 60_000)
afterAll(() => world?.stop())

interface Warning {
  readonly field: string
  readonly message: string
  readonly fix: string
}
const olderWarnings = (doc: { warnings?: ReadonlyArray<Warning> }) =>
  (doc.warnings ?? []).filter((w) => w.message.includes("an older certificate replaces a newer one"))

describe("a certificate older than the one served", () => {
  it("plan and deploy warn, deploy imports it; the newer one again is not warned about", async () => {
    const target = world.targetFile("older")
    const run = (command: string, leaf: Issued, ...more: ReadonlyArray<string>) =>
      runCli([command, "--config", target, "--cert", "-", ...more], {
        stdin: fx.bundle(leaf),
        env: world.env,
      })

    const first = await run("deploy", later, "--json")
    expect(first.code, first.stdout + first.stderr).toBe(0)
    const servedId = json<{ versionId: string }>(first).versionId

    const planned = await run("plan", sooner, "--json")
    expect(planned.code, planned.stdout + planned.stderr).toBe(0)
    const plan = json<{ action: string; warnings?: ReadonlyArray<Warning> }>(planned)
    expect(plan.action).toBe("import")
    const [warning, ...more] = olderWarnings(plan)
    expect(more).toEqual([])
    expect(warning?.field).toBe("leaf")
    expect(warning?.message).toContain(`before the certificate the vault serves (${servedId}`)
    expect(warning?.fix).toContain("deploy the newer one again")

    const deployed = await run("deploy", sooner)
    expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0)
    expect(deployed.stdout + deployed.stderr).toMatch(
      /warning.*leaf.*an older certificate replaces a newer one/,
    )

    const again = await run("deploy", latest, "--json")
    expect(again.code, again.stdout + again.stderr).toBe(0)
    expect(olderWarnings(json<{ warnings?: ReadonlyArray<Warning> }>(again))).toEqual([])

    // A restore of the first version puts an older certificate back on purpose: its fix says how to
    // check the version, not "a stale file".
    const restored = await runCli(["restore", "--config", target, "--from-version", servedId, "--json"], {
      env: world.env,
    })
    expect(restored.code, restored.stdout + restored.stderr).toBe(0)
    const [restoreWarning, ...others] = olderWarnings(json<{ warnings?: ReadonlyArray<Warning> }>(restored))
    expect(others).toEqual([])
    expect(restoreWarning?.fix).toBe(
      `nothing, if version ${servedId} holds the certificate you meant to put back (\`kvdeploy versions\` lists each version's expiry); if not, restore or deploy the newer one`,
    )
  })
})
