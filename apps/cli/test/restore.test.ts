/**
 * `kvdeploy restore --from-version V`: an earlier version's certificate put back as a new version,
 * from that version's backing secret, through the real SDKs against the emulator; what it refuses,
 * with nothing written (the emulator's request log).
 */
import { X509Certificate } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Issued } from "../src/cli/throwawayPki.js"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { json, runCli, startWorld, type World } from "./harness.js"
import { otherToolClient, PEM } from "./otherTool.js"

let world: World
let fx: Fixtures
let first: Issued
let second: Issued

beforeAll(async () => {
  ;[world, fx] = await Promise.all([startWorld("kvdeploy-restore"), makeFixtures()])
  ;[first, second] = await Promise.all([fx.leaf(), fx.leaf()])
}, 60_000)
afterAll(() => world?.stop())

interface Outcome {
  readonly outcome: string
  readonly exitCode: number
  readonly versionId?: string
  readonly newX5t?: string
  readonly previous?: { readonly versionId: string; readonly x5t: string }
}

const deployed = async (name: string, leaf: Issued): Promise<Outcome> => {
  const r = await runCli(["deploy", "--config", world.targetFile(name), "--cert", "-", "--json"], {
    stdin: fx.bundle(leaf),
    env: world.env,
  })
  expect(r.code, r.stdout + r.stderr).toBe(0)
  return json<Outcome>(r)
}

const restore = (name: string, version: string) =>
  runCli(["restore", "--config", world.targetFile(name), "--from-version", version, "--json"], {
    env: world.env,
  })

describe("kvdeploy restore", () => {
  it("puts an earlier version's certificate back as a new version, proven served; a second time it is Skipped", async () => {
    const name = "r-back"
    const v1 = await deployed(name, first)
    const v2 = await deployed(name, second)
    expect(v2.previous?.versionId).toBe(v1.versionId)

    const r = await restore(name, v1.versionId ?? "")
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const o = json<Outcome>(r)
    expect(o.outcome).toBe("Succeeded")
    // A new version, over the one served, holding the first certificate.
    expect(o.versionId).not.toBe(v1.versionId)
    expect(o.previous?.versionId).toBe(v2.versionId)
    expect(o.newX5t).toBe(v1.newX5t)
    const shown = await runCli(["show", "--config", world.targetFile(name), "--json"], { env: world.env })
    const latest = json<{ latest: { versionId: string; x5t: string; certificateId?: string } }>(shown).latest
    expect(latest.versionId).toBe(o.versionId)
    expect(latest.x5t).toBe(v1.newX5t)
    const versions = []
    for await (const v of world.sdk().listPropertiesOfCertificateVersions(name)) versions.push(v)
    expect(versions).toHaveLength(3)
    // It names the version it replaced, as a rollback's version does (`kvdeploy versions` shows it).
    expect(versions.find((v) => v.version === o.versionId)?.tags?.["certctl-rollback-of"]).toBe(v2.versionId)
    const listed = await runCli(["versions", "--config", world.targetFile(name), "--json"], {
      env: world.env,
    })
    expect(listed.stdout).toContain(`"rollbackOf": "${v2.versionId}"`)
    // The key went through memory only: nothing of it in the output.
    expect(r.stdout + r.stderr).not.toContain("PRIVATE KEY")

    const mark = world.emulator.requests.mark()
    const again = await restore(name, v1.versionId ?? "")
    expect(again.code, again.stdout + again.stderr).toBe(0)
    expect(json<Outcome>(again).outcome).toBe("Skipped")
    expect(world.writesSince(mark, name)).toBe(0)
  })

  it("a version whose certificate has expired is refused before its secret is read; nothing written", async () => {
    const name = "r-expired"
    // Valid for a few seconds: deployed while valid, expired by the time it is restored.
    const shortLived = await fx.leaf({ notAfterDays: 3 / 86_400 })
    const v1 = await deployed(name, shortLived)
    await deployed(name, second)
    const expiry = new X509Certificate(shortLived.certPem).validTo
    await expect
      .poll(() => Date.now() > Date.parse(expiry) + 1000, { timeout: 10_000, interval: 200 })
      .toBe(true)
    const mark = world.emulator.requests.mark()
    const r = await restore(name, v1.versionId ?? "")
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.stdout).toContain(`the certificate of version ${v1.versionId} expired at`)
    expect(r.stdout).toContain("restore a later version")
    const paths = world.emulator.requests.entries({ since: mark, vault: world.vault }).map((e) => e.path)
    expect(paths.some((p) => p.startsWith("/secrets/"))).toBe(false)
    expect(world.writesSince(mark, name)).toBe(0)
  })

  it("a version whose key is not exportable (another tool's import) is named, with the way instead; nothing written", async () => {
    const name = "r-not-exportable"
    const sealed = otherToolClient(world, { exportable: false, preserveCertOrder: false })
    const imported = await sealed.importCertificate(
      name,
      new TextEncoder().encode(first.certPem + fx.chainPem + first.keyPem),
      {
        policy: { contentType: PEM },
        tags: { "certctl-managed-by": "certctl", "certctl-certificate-id": name },
      },
    )
    await deployed(name, second)
    const mark = world.emulator.requests.mark()
    const r = await restore(name, imported.properties.version ?? "")
    expect(r.code, r.stdout + r.stderr).toBe(1)
    expect(r.stdout).toContain('"field": "--from-version"')
    expect(r.stdout).toContain("holds no private key (its key is not exportable)")
    expect(r.stdout).toContain("deploy the certificate and key from their files with `kvdeploy deploy`")
    expect(world.writesSince(mark, name)).toBe(0)
  })

  it("a version whose certificate is not yet valid (another tool's import) is refused before its secret is read", async () => {
    const name = "r-not-yet-valid"
    const future = await fx.leaf({ notBeforeDays: 5, notAfterDays: 90 })
    const imported = await otherToolClient(world, {
      exportable: true,
      preserveCertOrder: false,
    }).importCertificate(name, new TextEncoder().encode(future.certPem + fx.chainPem + future.keyPem), {
      policy: { contentType: PEM },
      tags: { "certctl-managed-by": "certctl", "certctl-certificate-id": name },
    })
    await deployed(name, second)
    const mark = world.emulator.requests.mark()
    const r = await restore(name, imported.properties.version ?? "")
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.stdout).toContain(`the certificate of version ${imported.properties.version} is not valid until`)
    const paths = world.emulator.requests.entries({ since: mark, vault: world.vault }).map((e) => e.path)
    expect(paths.some((p) => p.startsWith("/secrets/"))).toBe(false)
    expect(world.writesSince(mark, name)).toBe(0)
  })

  it("a disabled version is refused before its secret is read, with the way to enable it; nothing written", async () => {
    const name = "r-disabled"
    const v1 = await deployed(name, first)
    await deployed(name, second)
    await world.sdk().updateCertificateProperties(name, v1.versionId ?? "", { enabled: false })
    const mark = world.emulator.requests.mark()
    const r = await restore(name, v1.versionId ?? "")
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.stdout).toContain(
      `version ${v1.versionId} is disabled, and Key Vault reads no disabled version's secret`,
    )
    expect(r.stdout).toContain("az keyvault certificate set-attributes")
    // The version was read; its secret was not, and nothing was written.
    const paths = world.emulator.requests.entries({ since: mark, vault: world.vault }).map((e) => e.path)
    expect(paths.some((p) => p.startsWith("/secrets/"))).toBe(false)
    expect(world.writesSince(mark, name)).toBe(0)
  })

  it("a version whose certificate id tag a deploy would refuse is restored under the certificate's name, and the restore's own reads are said", async () => {
    const name = "r-bad-id"
    const v1 = await deployed(name, first)
    await deployed(name, second)
    await world.sdk().updateCertificateProperties(name, v1.versionId ?? "", {
      tags: { "certctl-managed-by": "certctl", "certctl-certificate-id": "-----BEGIN PRIVATE KEY-----" },
    })
    const r = await restore(name, v1.versionId ?? "")
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const o = json<Outcome & { certificateId: string; restoredFrom: unknown }>(r)
    expect(o.outcome).toBe("Succeeded")
    expect(o.certificateId).toBe(name)
    expect(o.restoredFrom).toEqual({ versionId: v1.versionId, vaultCalls: 2 })
    expect(r.stdout + r.stderr).not.toContain("PRIVATE KEY")
  })

  it("refuses a --from-version that is no version id, or no version of the certificate: exit 2, nothing written", async () => {
    const name = "r-refused"
    await deployed(name, first)
    const mark = world.emulator.requests.mark()
    const notAnId = await restore(name, "latest")
    expect(notAnId.code).toBe(2)
    expect(notAnId.stdout).toContain('"field": "--from-version"')
    expect(notAnId.stdout).toContain("is not a version id (32 hexadecimal digits)")
    // Refused before any request.
    expect(world.emulator.requests.entries({ since: mark, vault: world.vault })).toEqual([])

    const missing = await restore(name, "0123456789abcdef0123456789abcdef")
    expect(missing.code).toBe(2)
    expect(missing.stdout).toContain(`${name} has no version 0123456789abcdef0123456789abcdef`)
    expect(missing.stdout).toContain("`kvdeploy versions` lists its versions")
    expect(world.writesSince(mark, name)).toBe(0)
  })
})

describe("a disabled latest version holding the certificate deployed", () => {
  it("plan and deploy both warn that a deploy enables it again, with what to do if it was disabled on purpose", async () => {
    const name = "r-disabled-latest"
    const v1 = await deployed(name, first)
    await world.sdk().updateCertificateProperties(name, v1.versionId ?? "", { enabled: false })
    const words = `is the certificate of the vault's latest version (${v1.versionId}), which is disabled: a deploy imports it again`
    const planned = await runCli(["plan", "--config", world.targetFile(name), "--cert", "-", "--json"], {
      stdin: fx.bundle(first),
      env: world.env,
    })
    expect(planned.code, planned.stdout + planned.stderr).toBe(0)
    expect(planned.stdout).toContain(words)
    const again = await runCli(["deploy", "--config", world.targetFile(name), "--cert", "-", "--json"], {
      stdin: fx.bundle(first),
      env: world.env,
    })
    expect(again.code, again.stdout + again.stderr).toBe(0)
    expect(json<Outcome>(again).outcome).toBe("Succeeded")
    expect(again.stdout).toContain(words)
    expect(again.stdout).toContain("disable the new version too")
  })
})
