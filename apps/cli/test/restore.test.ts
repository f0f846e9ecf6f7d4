/**
 * `kvdeploy restore --from-version V`: an earlier version's certificate put back as a new version,
 * from that version's backing secret, through the real SDKs against the emulator; what it refuses,
 * with nothing written (the emulator's request log).
 */
import { generateKeyPairSync, X509Certificate } from "node:crypto"
import { ClientSecretCredential } from "@azure/identity"
import { SecretClient } from "@azure/keyvault-secrets"
import { decodePfxCertificates } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { fromVersionOf } from "../src/cli/fromVersion.js"
import type { Issued } from "../src/cli/throwawayPki.js"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { type CliResult, json, runCli, startWorld, type World } from "./harness.js"
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

const restore = (name: string, version: string, more: ReadonlyArray<string> = ["--json"]) =>
  runCli(["restore", "--config", world.targetFile(name), "--from-version", version, ...more], {
    env: world.env,
  })

/**
 * The certificates (DER) of a version's backing secret, as the SDK's SecretClient reads it (the
 * PKCS#12 Key Vault keeps, blank password): the leaf and the chain it holds. Its key is not read.
 */
const backingCertificates = async (name: string, version: string): Promise<ReadonlyArray<Uint8Array>> => {
  const secrets = new SecretClient(
    world.emulator.vault(world.vault).url,
    new ClientSecretCredential(
      world.env.AZURE_TENANT_ID ?? "",
      world.env.AZURE_CLIENT_ID ?? "",
      world.env.AZURE_CLIENT_SECRET ?? "",
      { authorityHost: world.emulator.authorityHost, disableInstanceDiscovery: true },
    ),
    { disableChallengeResourceVerification: true },
  )
  const secret = await secrets.getSecret(name, { version })
  expect(secret.properties.contentType).toBe("application/x-pkcs12")
  return Effect.runPromise(
    decodePfxCertificates(new Uint8Array(Buffer.from(secret.value ?? "", "base64")), Redacted.make("")),
  )
}

/** The messages of a refusal's problems, as --json prints them. */
const problemOf = (r: CliResult) =>
  json<{ error: { problems: ReadonlyArray<{ message: string }> } }>(r)
    .error.problems.map((p) => p.message)
    .join("\n")

const derOf = (pem: string): ReadonlyArray<string> =>
  (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((c) =>
    Buffer.from(new X509Certificate(c).raw).toString("hex"),
  )
const hexOf = (ders: ReadonlyArray<Uint8Array>) => ders.map((d) => Buffer.from(d).toString("hex"))

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
    // The key went through memory only: nothing of it in the output.
    expect(r.stdout + r.stderr).not.toContain("PRIVATE KEY")

    const mark = world.emulator.requests.mark()
    const again = await restore(name, v1.versionId ?? "")
    expect(again.code, again.stdout + again.stderr).toBe(0)
    expect(json<Outcome>(again).outcome).toBe("Skipped")
    expect(world.writesSince(mark, name)).toBe(0)
  })

  it("Ctrl+C before its import stops a restore: exit 130, saying it wrote nothing", async () => {
    const name = "restore-interrupted"
    const older = await deployed(name, first)
    await deployed(name, second)
    // The restore's read of what the vault serves is held, and Ctrl+C comes while it waits.
    const held = world.emulator.faults.add({
      operation: "getLatest",
      name,
      times: 1,
      action: { kind: "hold", timeoutMs: 20_000 },
    })
    const mark = world.emulator.requests.mark()
    const stopped = await runCli(
      ["restore", "--config", world.targetFile(name), "--from-version", older.versionId ?? "", "--json"],
      {
        env: world.env,
        started: (child) => {
          const poll = setInterval(() => {
            if ((world.emulator.faults.list().find((f) => f.id === held)?.hits ?? 0) === 0) return
            clearInterval(poll)
            child.kill("SIGINT")
            setTimeout(() => world.emulator.faults.release(held), 300)
          }, 25)
        },
      },
    )
    expect(stopped.code, stopped.stderr).toBe(130)
    expect(problemOf(stopped)).toContain(
      "a restore is stopped this way only before its first write, so it wrote nothing",
    )
    expect(world.writesSince(mark, name)).toBe(0)
  })

  it("a version whose certificate has expired is refused before its secret is read; nothing written", async () => {
    const name = "r-expired"
    // Valid for a few seconds: deployed while valid, expired by the time it is restored. 10 s: a
    // fresh-clone CI run on a loaded machine took more than 3 s to deploy it, which then expired first.
    const shortLived = await fx.leaf({ notAfterDays: 10 / 86_400 })
    const v1 = await deployed(name, shortLived)
    await deployed(name, second)
    const expiry = new X509Certificate(shortLived.certPem).validTo
    await expect
      .poll(() => Date.now() > Date.parse(expiry) + 1000, { timeout: 20_000, interval: 200 })
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
    const o = json<
      Outcome & {
        certificateId: string
        restoredFrom: unknown
        warnings?: ReadonlyArray<{ field: string; message: string; fix: string }>
      }
    >(r)
    expect(o.outcome).toBe("Succeeded")
    expect(o.certificateId).toBe(name)
    expect(o.restoredFrom).toEqual({ versionId: v1.versionId, vaultCalls: 2 })
    // Said on stderr, and in the JSON's warnings (a script reads the JSON alone).
    const words = `version ${v1.versionId}'s certctl-certificate-id tag is not a certificate id a deploy takes (not shown): restored under the certificate's name, ${name}`
    expect(r.stderr).toContain(words)
    expect(o.warnings?.find((w) => w.message === words)?.field).toBe("--from-version")
    expect(r.stdout + r.stderr).not.toContain("PRIVATE KEY")
  })

  it("refuses a --from-version that is no version id, or no version of the certificate: exit 2, nothing written", async () => {
    const name = "r-refused"
    await deployed(name, first)
    const mark = world.emulator.requests.mark()
    const notAnId = await restore(name, "latest")
    expect(notAnId.code).toBe(2)
    expect(notAnId.stdout).toContain('"field": "--from-version"')
    expect(problemOf(notAnId)).toContain('"latest" is neither a version id (32 hexadecimal digits)')
    // Refused before any request.
    expect(world.emulator.requests.entries({ since: mark, vault: world.vault })).toEqual([])

    const missing = await restore(name, "0123456789abcdef0123456789abcdef")
    expect(missing.code).toBe(2)
    expect(missing.stdout).toContain(`${name} has no version 0123456789abcdef0123456789abcdef`)
    expect(missing.stdout).toContain("`kvdeploy versions` lists its versions")
    expect(world.writesSince(mark, name)).toBe(0)
  })
})

describe("restore of a version deployed without a chain (review 37bc)", () => {
  it("its chain warning gives the chain's fix, not a PFX export the operator never made", async () => {
    const name = "r-no-chain"
    const alone = async (leaf: Issued): Promise<Outcome> => {
      const r = await runCli(["deploy", "--config", world.targetFile(name), "--cert", "-", "--json"], {
        stdin: leaf.certPem + leaf.keyPem,
        env: world.env,
      })
      expect(r.code, r.stdout + r.stderr).toBe(0)
      return json<Outcome>(r)
    }
    const v1 = await alone(first)
    await alone(second)
    const r = await restore(name, v1.versionId ?? "")
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const chain = (
      json<{ warnings?: ReadonlyArray<{ field: string; message: string; fix: string }> }>(r).warnings ?? []
    ).filter((w) => w.field === "chain")
    expect(chain).toEqual([
      {
        field: "chain",
        message: expect.stringMatching(/^none given, and the leaf is issued by /),
        fix: "give the issuer's chain with the leaf (an ACME client's fullchain.pem, not cert.pem), unless a root your clients trust issues the leaf directly",
      },
    ])
    expect(r.stdout + r.stderr).not.toMatch(/PFX|-certfile/)
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
    // The text's `current` line says the served version is disabled, not only the warning below it.
    const text = await runCli(["plan", "--config", world.targetFile(name), "--cert", "-"], {
      stdin: fx.bundle(first),
      env: world.env,
    })
    expect(text.stdout).toMatch(
      new RegExp(
        `^ {2}current {5}${v1.versionId} .* disabled \\(its consumers cannot read it: Key Vault refuses a disabled version's secret\\)$`,
        "m",
      ),
    )
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

describe("restore and deploy --force: the served version holds the same leaf with another chain", () => {
  it("restore of the version with the chain is Skipped, saying so and naming --force; with --force, a new version whose backing secret holds the chain", async () => {
    const name = "r-force"
    // The leaf with its chain, then the same leaf alone (no chain given), with a tag so that it is
    // imported rather than skipped: the vault serves the leaf without its chain.
    const withChain = await deployed(name, first)
    const leafAlone = await runCli(
      ["deploy", "--config", world.targetFile(name), "--cert", "-", "--tag", "chain=none", "--json"],
      { stdin: first.certPem + first.keyPem, env: world.env },
    )
    expect(leafAlone.code, leafAlone.stdout + leafAlone.stderr).toBe(0)
    const served = json<Outcome>(leafAlone)
    expect(served.outcome).toBe("Succeeded")
    const chain = derOf(fx.chainOf(first))
    expect(chain.length).toBeGreaterThan(0)
    expect(hexOf(await backingCertificates(name, withChain.versionId ?? ""))).toEqual([
      ...derOf(first.certPem),
      ...chain,
    ])
    expect(hexOf(await backingCertificates(name, served.versionId ?? ""))).toEqual(derOf(first.certPem))

    // Skipped: the served version holds this leaf with every tag asked. Said, with the way on.
    const mark = world.emulator.requests.mark()
    const skipped = await restore(name, withChain.versionId ?? "")
    expect(skipped.code, skipped.stdout + skipped.stderr).toBe(0)
    const o = json<Outcome & { next?: string }>(skipped)
    expect(o.outcome).toBe("Skipped")
    expect(o.versionId).toBe(served.versionId)
    expect(o.next).toContain(`the served version ${served.versionId} holds this leaf`)
    expect(o.next).toContain(
      "if its chain or content type differ from this version's, --force imports it anyway",
    )
    const text = await restore(name, withChain.versionId ?? "", [])
    expect(text.code, text.stdout + text.stderr).toBe(0)
    expect(text.stdout).toMatch(/next {8}the served version [0-9a-f]{32} holds this leaf/)
    expect(text.stdout).toContain("--force imports it anyway")
    expect(world.writesSince(mark, name)).toBe(0)

    const forced = await restore(name, withChain.versionId ?? "", ["--force", "--json"])
    expect(forced.code, forced.stdout + forced.stderr).toBe(0)
    const f = json<Outcome & { next?: string }>(forced)
    expect(f.outcome).toBe("Succeeded")
    expect(f.previous?.versionId).toBe(served.versionId)
    expect(f.newX5t).toBe(withChain.newX5t)
    expect(f.next).toBeUndefined()
    // The new version, served, holds the leaf and its chain, as the version restored from did.
    expect(hexOf(await backingCertificates(name, f.versionId ?? ""))).toEqual([
      ...derOf(first.certPem),
      ...chain,
    ])
    const latest = await world.sdk().getCertificate(name)
    expect(latest.properties.version).toBe(f.versionId)
    // A restore is no rollback: no certctl-rollback-of (core's reconcile and rollback read that tag).
    expect(latest.properties.tags?.["certctl-rollback-of"]).toBeUndefined()
    expect(forced.stdout + forced.stderr).not.toContain("PRIVATE KEY")
  })

  it("deploy: an ordinary Skipped says nothing of --force (cron runs); plan says it; plan --force says it would import; deploy --force writes a new version", async () => {
    const name = "r-force-deploy"
    const v1 = await deployed(name, first)
    const deployArgs = (more: ReadonlyArray<string>) =>
      runCli(["deploy", "--config", world.targetFile(name), "--cert", "-", "--json", ...more], {
        stdin: fx.bundle(first),
        env: world.env,
      })
    const planArgs = (more: ReadonlyArray<string>) =>
      runCli(["plan", "--config", world.targetFile(name), "--cert", "-", "--json", ...more], {
        stdin: fx.bundle(first),
        env: world.env,
      })
    const again = await deployArgs([])
    expect(again.code, again.stdout + again.stderr).toBe(0)
    const skipped = json<Outcome & { next?: string }>(again)
    expect(skipped.outcome).toBe("Skipped")
    expect(skipped.next).toBeUndefined()
    expect(again.stdout + again.stderr).not.toContain("--force")
    // The text says the chain was not compared (a certbot user who moves from cert.pem to
    // fullchain.pem gets this Skipped), in the outcome's meaning: no `next` step, no --force.
    const text = await runCli(["deploy", "--config", world.targetFile(name), "--cert", "-"], {
      stdin: fx.bundle(first),
      env: world.env,
    })
    expect(text.code, text.stdout + text.stderr).toBe(0)
    expect(text.stdout).toContain(
      "the vault already serves this leaf with kvdeploy's tags; nothing was written (the chain is not compared: a leaf served without the chain given is skipped too, and `kvdeploy plan` says what repairs it)",
    )
    expect(text.stdout).not.toMatch(/^ {2}next /m)
    expect(text.stdout + text.stderr).not.toContain("--force")

    const planned = json<{ action: string; reason: string; writes: number }>(await planArgs([]))
    expect(planned.action).toBe("skip")
    expect(planned.reason).toContain("--force would import it anyway")
    const mark = world.emulator.requests.mark()
    const forcedPlan = json<{ action: string; reason: string; writes: number }>(await planArgs(["--force"]))
    expect(forcedPlan).toMatchObject({ action: "import", writes: 1 })
    expect(forcedPlan.reason).toContain("--force imports it all the same")
    expect(world.writesSince(mark, name)).toBe(0)

    const forced = await deployArgs(["--force"])
    expect(forced.code, forced.stdout + forced.stderr).toBe(0)
    const f = json<Outcome>(forced)
    expect(f.outcome).toBe("Succeeded")
    expect(f.previous?.versionId).toBe(v1.versionId)
    expect(f.versionId).not.toBe(v1.versionId)
    expect(f.newX5t).toBe(v1.newX5t)
  })
})

describe("restore: what the version carries, and how it is named", () => {
  it("the restored version carries the version's own operator tags, not the target's", async () => {
    const name = "r-tags"
    const tagged = async (leaf: Issued, env: string) => {
      const r = await runCli(
        ["deploy", "--config", world.targetFile(name), "--cert", "-", "--tag", `env=${env}`, "--json"],
        { stdin: fx.bundle(leaf), env: world.env },
      )
      expect(r.code, r.stdout + r.stderr).toBe(0)
      return json<Outcome>(r)
    }
    const v1 = await tagged(first, "a")
    await tagged(second, "b")
    // The target file asks another tag: a restore puts back the version's own.
    const r = await runCli(
      [
        "restore",
        "--config",
        world.targetFile(name, { tags: { env: "from-target", team: "web" } }),
        "--from-version",
        v1.versionId ?? "",
        "--json",
      ],
      { env: world.env },
    )
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const o = json<Outcome>(r)
    expect(o.outcome).toBe("Succeeded")
    const restored = await world.sdk().getCertificateVersion(name, o.versionId ?? "")
    expect(restored.properties.tags).toEqual({
      env: "a",
      "certctl-managed-by": "certctl",
      "certctl-certificate-id": name,
    })
  })

  it("a tag a deploy would refuse, and tags over the 12 that fit beside kvdeploy's, are left out and said (stderr and JSON)", async () => {
    const name = "r-tags-left-out"
    const v1 = await deployed(name, first)
    const v2 = await deployed(name, second)
    const reserved = { "certctl-managed-by": "certctl", "certctl-certificate-id": name }
    const twelve = Object.fromEntries(
      Array.from({ length: 12 }, (_, i) => [`t${String(i).padStart(2, "0")}`, "x"]),
    )
    type Warned = Outcome & { warnings?: ReadonlyArray<{ field: string; message: string }> }
    const restoredTags = async (o: Warned) =>
      (await world.sdk().getCertificateVersion(name, o.versionId ?? "")).properties.tags ?? {}
    // Key Vault's 15 tags: kvdeploy's 2, 12 that fit, and one whose value reads as key text.
    await world.sdk().updateCertificateProperties(name, v1.versionId ?? "", {
      tags: { ...reserved, ...twelve, pasted: "-----BEGIN PRIVATE KEY-----" },
    })
    const r1 = await restore(name, v1.versionId ?? "")
    expect(r1.code, r1.stdout + r1.stderr).toBe(0)
    const o1 = json<Warned>(r1)
    expect(o1.outcome).toBe("Succeeded")
    const unfit = `version ${v1.versionId} carries a tag a deploy does not take (pasted): a new version this restore writes does not carry it`
    expect(o1.warnings?.map((w) => w.message)).toContain(unfit)
    expect(r1.stderr).toContain(unfit)
    expect(await restoredTags(o1)).toMatchObject(twelve)
    expect(await restoredTags(o1)).not.toHaveProperty("pasted")
    expect(r1.stdout + r1.stderr).not.toContain("PRIVATE KEY")
    // 13 that fit: the 13th by key order is left out.
    await world.sdk().updateCertificateProperties(name, v2.versionId ?? "", {
      tags: { ...reserved, ...twelve, t12: "x" },
    })
    const r2 = await restore(name, v2.versionId ?? "")
    expect(r2.code, r2.stdout + r2.stderr).toBe(0)
    const o2 = json<Warned>(r2)
    expect(o2.outcome).toBe("Succeeded")
    expect(o2.warnings?.map((w) => w.message)).toContain(
      `version ${v2.versionId} carries more operator tags than fit beside kvdeploy's (12): a new version this restore writes does not carry t12`,
    )
    expect(await restoredTags(o2)).toMatchObject(twelve)
    expect(await restoredTags(o2)).not.toHaveProperty("t12")
  })

  it("a tag whose value holds the identity's secret is left out and its key said, the value never shown", async () => {
    const name = "r-tag-secret"
    const v1 = await deployed(name, first)
    await deployed(name, second)
    const secret = world.env.AZURE_CLIENT_SECRET ?? ""
    expect(secret.length).toBeGreaterThan(8)
    await world.sdk().updateCertificateProperties(name, v1.versionId ?? "", {
      tags: { "certctl-managed-by": "certctl", "certctl-certificate-id": name, env: "prod", note: secret },
    })
    const r = await restore(name, v1.versionId ?? "")
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stderr).toContain(
      `version ${v1.versionId} carries a tag a deploy does not take (note): a new version this restore writes does not carry it`,
    )
    expect(r.stdout + r.stderr).not.toContain(secret)
    const o = json<Outcome>(r)
    const tags = (await world.sdk().getCertificateVersion(name, o.versionId ?? "")).properties.tags ?? {}
    expect(tags).toMatchObject({ env: "prod" })
    expect(tags).not.toHaveProperty("note")
  })

  it("a tag key that reads as key text is counted, never shown; the tags left out over the 12 go by key order, not the vault's", async () => {
    const name = "r-tags-key-order"
    const v1 = await deployed(name, first)
    const v2 = await deployed(name, second)
    const reserved = { "certctl-managed-by": "certctl", "certctl-certificate-id": name }
    type Warned = Outcome & { warnings?: ReadonlyArray<{ field: string; message: string }> }
    const restoredTags = async (o: Warned) =>
      (await world.sdk().getCertificateVersion(name, o.versionId ?? "")).properties.tags ?? {}
    // A key's PKCS#8 in base64 (184 characters) pasted as a tag's key.
    const keyText = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ format: "der", type: "pkcs8" })
      .toString("base64")
    await world.sdk().updateCertificateProperties(name, v1.versionId ?? "", {
      tags: { ...reserved, team: "edge", [keyText]: "x" },
    })
    const r1 = await restore(name, v1.versionId ?? "")
    expect(r1.code, r1.stdout + r1.stderr).toBe(0)
    const o1 = json<Warned>(r1)
    expect(o1.outcome).toBe("Succeeded")
    const unfit = `version ${v1.versionId} carries a tag a deploy does not take (1 not shown): a new version this restore writes does not carry it`
    expect(o1.warnings?.map((w) => w.message)).toContain(unfit)
    expect(r1.stderr).toContain(unfit)
    // The private scalar's part of the text (every P-256 PKCS#8 starts alike) is nowhere.
    expect(r1.stdout + r1.stderr).not.toContain(keyText.slice(60, 100))
    expect(await restoredTags(o1)).toMatchObject({ team: "edge" })
    expect(await restoredTags(o1)).not.toHaveProperty(keyText)
    // 13 that fit, a00 set last (the vault answers its tags in the order they were set): by key
    // order t11 is the 13th, left out, and a00 is carried.
    const twelve = Object.fromEntries(
      Array.from({ length: 12 }, (_, i) => [`t${String(i).padStart(2, "0")}`, "x"]),
    )
    await world.sdk().updateCertificateProperties(name, v2.versionId ?? "", {
      tags: { ...reserved, ...twelve, a00: "x" },
    })
    const r2 = await restore(name, v2.versionId ?? "")
    expect(r2.code, r2.stdout + r2.stderr).toBe(0)
    const o2 = json<Warned>(r2)
    expect(o2.warnings?.map((w) => w.message)).toContain(
      `version ${v2.versionId} carries more operator tags than fit beside kvdeploy's (12): a new version this restore writes does not carry t11`,
    )
    expect(await restoredTags(o2)).toHaveProperty("a00")
    expect(await restoredTags(o2)).not.toHaveProperty("t11")
  })

  it("takes a version's id URL (as az prints it) or its path, of this certificate; refuses one of another certificate or vault, naming both", async () => {
    const name = "r-url"
    const v1 = await deployed(name, first)
    await deployed(name, second)
    const vaultUrl = world.emulator.vault(world.vault).url
    const url = `${vaultUrl}/certificates/${name}/${v1.versionId}`
    expect(url.length).toBeGreaterThan(64)
    const byUrl = await restore(name, url)
    expect(byUrl.code, byUrl.stdout + byUrl.stderr).toBe(0)
    const o = json<Outcome & { restoredFrom: { versionId: string } }>(byUrl)
    expect(o.outcome).toBe("Succeeded")
    expect(o.restoredFrom.versionId).toBe(v1.versionId)
    const byPath = await restore(name, `/certificates/${name}/${(v1.versionId ?? "").toUpperCase()}`)
    expect(byPath.code, byPath.stdout + byPath.stderr).toBe(0)
    expect(json<Outcome & { restoredFrom: { versionId: string } }>(byPath).restoredFrom.versionId).toBe(
      v1.versionId,
    )

    const mark = world.emulator.requests.mark()
    const otherName = await restore(name, `${vaultUrl}/certificates/r-other/${v1.versionId}`)
    expect(otherName.code).toBe(2)
    expect(otherName.stdout).toContain('"field": "--from-version"')
    expect(problemOf(otherName)).toContain(
      `is a version of the certificate "r-other", not of the target's certificate (${name})`,
    )
    const otherVault = await restore(
      name,
      `https://other.vault.azure.net/certificates/r-other/${v1.versionId}`,
    )
    expect(otherVault.code).toBe(2)
    expect(problemOf(otherVault)).toContain(
      `is a version of the certificate "r-other" in the vault "https://other.vault.azure.net", not of the target's certificate and vault (${name} in ${vaultUrl})`,
    )
    const noVersion = await restore(name, `${vaultUrl}/certificates/${name}`)
    expect(noVersion.code).toBe(2)
    expect(noVersion.stdout).toContain("names a certificate, not one of its versions")
    // A long value is described, in a sentence.
    const long = await restore(name, "x".repeat(81))
    expect(long.code).toBe(2)
    expect(long.stdout).toContain(
      "the value given (a string of 81 characters, not shown) is neither a version id (32 hexadecimal digits) nor the id of a version of",
    )
    expect(world.emulator.requests.entries({ since: mark, vault: world.vault })).toEqual([])
  })

  it("a soft-deleted certificate is named so, with the way to recover it; a name with no certificate is said to have none: nothing written", async () => {
    const name = "r-soft-deleted"
    const v1 = await deployed(name, first)
    await (await world.sdk().beginDeleteCertificate(name, { intervalInMs: 50 })).pollUntilDone()
    const mark = world.emulator.requests.mark()
    const r = await restore(name, v1.versionId ?? "")
    expect(r.code, r.stdout + r.stderr).toBe(1)
    expect(r.stdout).toContain(`${name} is soft-deleted in`)
    expect(r.stdout).toContain("recover it first (`az keyvault certificate recover")
    expect(r.stdout).not.toContain("has no version")
    const text = await restore(name, v1.versionId ?? "", [])
    expect(text.stderr + text.stdout).toContain(`${name} is soft-deleted in`)

    const none = await restore("r-never-deployed", v1.versionId ?? "")
    expect(none.code, none.stdout + none.stderr).toBe(1)
    expect(none.stdout).toContain("r-never-deployed does not exist in")
    expect(none.stdout).toContain("no certificate named r-never-deployed")
    expect(none.stdout).not.toContain("has no version")
    expect(world.writesSince(mark)).toBe(0)
  })
})

describe("fromVersionOf (--from-version's value)", () => {
  const vault = "https://my-vault.vault.azure.net"
  const id = "0123456789abcdef0123456789abcdef"
  it("a version id, its id URL (any case, a trailing slash, a query) or its path", () => {
    for (const given of [
      id,
      ` ${id.toUpperCase()} `,
      `${vault}/certificates/api-prod/${id}`,
      `HTTPS://MY-VAULT.vault.azure.net:443/certificates/API-PROD/${id}/?api-version=7.5`,
      `/certificates/api-prod/${id}`,
      `certificates/api-prod/${id}`,
    ])
      expect(fromVersionOf(given, "api-prod", `${vault}/`), given).toEqual({
        _tag: "VersionId",
        versionId: id,
      })
  })
  it("refuses what names no version of this certificate in this vault", () => {
    for (const given of [
      "latest",
      `${vault}/certificates/api-prod`,
      `${vault}/secrets/api-prod/${id}`,
      `${vault}/certificates/api-prod/${id}/extra`,
      `${vault}/certificates/api-prod/not-a-version`,
      `${vault}/certificates/other/${id}`,
      `https://other.vault.azure.net/certificates/api-prod/${id}`,
      "https://",
    ])
      expect(fromVersionOf(given, "api-prod", vault)._tag, given).toBe("Refused")
  })
  it("refuses a URL with a user name or password without repeating it", () => {
    const given = `https://admin:hunter2secret@my-vault.vault.azure.net/certificates/api-prod/${id}`
    const refused = fromVersionOf(given, "api-prod", vault)
    expect(refused._tag).toBe("Refused")
    expect(JSON.stringify(refused)).not.toContain("hunter2secret")
    expect(refused._tag === "Refused" && refused.message).toContain("carries a user name or password")
  })
})
