/**
 * `verify` of a certificate the vault serves outside its validity window: yes (it is served), with
 * a warning that clients refuse it, in text and in --json. The BUILT kvdeploy against the emulator.
 */
import { X509Certificate } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Issued } from "../src/cli/throwawayPki.js"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { json, runCli, startWorld, type World } from "./harness.js"
import { otherToolClient, PEM } from "./otherTool.js"

let world: World
let fx: Fixtures

beforeAll(async () => {
  ;[world, fx] = await Promise.all([startWorld("kvdeploy-verify-validity"), makeFixtures()])
}, 60_000)
afterAll(() => world?.stop())

interface Verdict {
  readonly serves: boolean
  readonly warnings: ReadonlyArray<{ field: string; message: string; fix: string }>
}

const verify = (name: string, leaf: Issued, json: boolean) =>
  runCli(["verify", "--config", world.targetFile(name), "--cert", "-", ...(json ? ["--json"] : [])], {
    stdin: leaf.certPem,
    env: world.env,
  })

describe("verify of a served certificate outside its validity window", () => {
  it("expired since it was deployed: yes, exit 0, and a warning that clients refuse it", async () => {
    const name = "vv-expired"
    // Valid for a few seconds: deployed while valid, expired by the time it is verified.
    const shortLived = await fx.leaf({ notAfterDays: 3 / 86_400 })
    const deployed = await runCli(["deploy", "--config", world.targetFile(name), "--cert", "-", "--json"], {
      stdin: fx.bundle(shortLived),
      env: world.env,
    })
    expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0)
    const valid = await verify(name, shortLived, true)
    if (Date.now() < Date.parse(new X509Certificate(shortLived.certPem).validTo))
      expect(json<Verdict>(valid).warnings).toEqual([])
    const expiry = new X509Certificate(shortLived.certPem).validTo
    await expect
      .poll(() => Date.now() > Date.parse(expiry) + 1000, { timeout: 10_000, interval: 200 })
      .toBe(true)

    const r = await verify(name, shortLived, true)
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const v = json<Verdict>(r)
    expect(v.serves).toBe(true)
    expect(v.warnings).toHaveLength(1)
    expect(v.warnings[0]?.field).toBe("certificate")
    expect(v.warnings[0]?.message).toMatch(
      /^expired at \S+ \(\d+ (s|min) ago\): it is served, and clients refuse it$/,
    )
    expect(v.warnings[0]?.fix).toContain("deploy a renewed certificate")
    const text = await verify(name, shortLived, false)
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/^yes /)
    expect(text.stdout).toContain("warning certificate: expired at")
  })

  it("not yet valid (another tool's import): yes, with a warning naming when it becomes valid", async () => {
    const name = "vv-future"
    const future = await fx.leaf({ notBeforeDays: 5, notAfterDays: 90 })
    await otherToolClient(world, { exportable: true, preserveCertOrder: false }).importCertificate(
      name,
      new TextEncoder().encode(future.certPem + fx.chainPem + future.keyPem),
      { policy: { contentType: PEM } },
    )
    const r = await verify(name, future, true)
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const v = json<Verdict>(r)
    expect(v.serves).toBe(true)
    expect(v.warnings.map((w) => w.message)).toEqual([
      expect.stringMatching(
        /^is not valid until \S+ \(in 4 d\): it is served, and clients refuse it until then$/,
      ),
    ])
  })

  it("a certificate the vault does not serve carries no validity warning (the answer is no)", async () => {
    const name = "vv-future"
    const other = await fx.leaf()
    const r = await verify(name, other, true)
    expect(r.code).toBe(1)
    expect(json<Verdict>(r).warnings).toEqual([])
  })
})
