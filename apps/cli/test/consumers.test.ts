/**
 * A target's consumers end to end, the built CLI against the emulator: a front_door target refuses
 * an EC certificate before anything reaches the vault (exit 2, no import in the emulator's request
 * log), deploy and plan take --consumer (repeatable or a comma list) with the file's validation,
 * and validate shows them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { json, pemImportOptions, runCli, startWorld, type World } from "./harness.js"

let world: World
let fx: Fixtures

beforeAll(async () => {
  ;[world, fx] = await Promise.all([startWorld("kvdeploy-consumers"), makeFixtures()])
})
afterAll(async () => {
  await world?.stop()
})

interface Outcome {
  readonly _tag: string
  readonly outcome: string
  readonly consumers?: ReadonlyArray<string>
  readonly problems?: ReadonlyArray<{ field: string; message: string; fix: string; reason: string }>
  readonly warnings?: ReadonlyArray<{ field: string; message: string }>
}

const imports = (mark: number) =>
  world.emulator.requests.count({ since: mark, vault: world.vault, operation: "import" })

/**
 * An RSA certificate another tool imported as PEM under `name`, with kvdeploy's tags, then
 * soft-deleted: a recovery brings back this certificate, its secret PEM.
 */
const pemThenSoftDeleted = async (name: string) => {
  const served = await fx.leaf({ key: { kind: "RSA", bits: 2048 } })
  await world.sdk().importCertificate(
    name,
    new TextEncoder().encode(served.keyPem + served.certPem + fx.chainOf(served)),
    pemImportOptions({
      tags: { "certctl-managed-by": "certctl", "certctl-certificate-id": name },
    }),
  )
  await (await world.sdk().beginDeleteCertificate(name, { intervalInMs: 50 })).pollUntilDone()
  expect(world.emulator.state.isDeleted(world.vault, name)).toBe(true)
  return served
}

describe("consumers", () => {
  it("deploy: a front_door target refuses an EC certificate, exit 2, and no import reaches the vault", async () => {
    const name = "fd-ec"
    const ec = await fx.leaf()
    const mark = world.emulator.requests.mark()
    const r = await runCli(
      ["deploy", "--config", world.targetFile(name, { consumers: ["front_door"] }), "--cert", "-", "--json"],
      { stdin: fx.bundle(ec), env: world.env },
    )
    expect(r.code, r.stderr).toBe(2)
    const o = json<Outcome>(r)
    expect(o.outcome).toBe("Rejected")
    expect(o.consumers).toEqual(["front_door"])
    expect(o.problems?.map((p) => [p.field, p.reason])).toEqual([["key", "unsupported_key"]])
    expect(o.problems?.[0]?.message).toMatch(
      /Azure Front Door \(consumers: front_door\) does not support certificates with EC keys/,
    )
    expect(imports(mark)).toBe(0)
    expect(world.writesSince(mark)).toBe(0)
    expect(world.emulator.state.versions(world.vault, name) ?? []).toEqual([])

    // The text output says the same, and names the fix.
    const text = await runCli(
      ["deploy", "--config", world.targetFile(name), "--consumer", "front_door", "--cert", "-"],
      { stdin: fx.bundle(ec), env: world.env },
    )
    expect(text.code).toBe(2)
    expect(text.stdout + text.stderr).toContain("issue the certificate with an RSA key")
    expect(imports(mark)).toBe(0)
  })

  it("deploy --consumer (a comma list): an RSA certificate deploys, app_service's and front_door's checks pass", async () => {
    const name = "fd-rsa"
    const rsa = await fx.leaf({ key: { kind: "RSA", bits: 2048 } })
    const mark = world.emulator.requests.mark()
    const r = await runCli(
      [
        "deploy",
        "--config",
        world.targetFile(name),
        "--consumer",
        "front_door,app_service",
        "--cert",
        "-",
        "--json",
      ],
      { stdin: fx.bundle(rsa), env: world.env },
    )
    expect(r.code, r.stderr).toBe(0)
    const o = json<Outcome>(r)
    expect(o.outcome).toBe("Succeeded")
    expect(o.consumers).toEqual(["front_door", "app_service"])
    expect(o.warnings ?? []).toEqual([])
    expect(imports(mark)).toBe(1)
  })

  it("plan: says deploy would refuse (exit 2), and warns as deploy does; --json carries the consumers", async () => {
    const name = "plan-consumers"
    const ec = await fx.leaf()
    const mark = world.emulator.requests.mark()
    const refused = await runCli(
      ["plan", "--config", world.targetFile(name), "--consumer", "front_door", "--cert", "-", "--json"],
      { stdin: fx.bundle(ec), env: world.env },
    )
    expect(refused.code, refused.stderr).toBe(2)
    const record = json<{
      action: string
      target: { consumers?: ReadonlyArray<string> }
      preflight: { problems: ReadonlyArray<{ field: string; message: string }> }
    }>(refused)
    expect(record.action).toBe("refuse")
    expect(record.target.consumers).toEqual(["front_door"])
    expect(record.preflight.problems.map((p) => p.field)).toEqual(["key"])
    const warned = await runCli(
      ["plan", "--config", world.targetFile(name), "--consumer", "app_service", "--cert", "-", "--json"],
      { stdin: fx.bundle(ec), env: world.env },
    )
    expect(warned.code, warned.stderr).toBe(0)
    const plan = json<{ action: string; warnings?: ReadonlyArray<{ field: string; message: string }> }>(
      warned,
    )
    expect(plan.action).toBe("import")
    expect(plan.warnings?.map((w) => w.field)).toEqual(["key"])
    expect(plan.warnings?.[0]?.message).toMatch(/Azure App Service \(consumers: app_service\) works with ECC/)
    expect(world.writesSince(mark)).toBe(0)
  })

  it("--consumer is validated as the file's field: an unknown name and a duplicate, exit 2, nothing sent", async () => {
    const ec = await fx.leaf()
    const mark = world.emulator.requests.mark()
    const r = await runCli(
      [
        "deploy",
        "--config",
        world.targetFile("bad-consumer"),
        "--consumer",
        "front_dor",
        "--consumer",
        "app_service,app_service",
        "--cert",
        "-",
      ],
      { stdin: fx.bundle(ec), env: world.env },
    )
    expect(r.code).toBe(2)
    const out = r.stdout + r.stderr
    expect(out).toContain('--consumer: is not a consumer kvdeploy knows ("front_dor")')
    expect(out).toContain("did you mean front_door?")
    expect(out).toContain("--consumer: names app_service again")
    expect(world.emulator.requests.entries({ since: mark, vault: world.vault })).toEqual([])
    // content_type pem with a consumer: refused, with the fix.
    const pem = await runCli(
      [
        "deploy",
        "--config",
        world.targetFile("pem-consumer", { content_type: "pem" }),
        "--consumer",
        "application_gateway",
        "--cert",
        "-",
      ],
      { stdin: fx.bundle(ec), env: world.env },
    )
    expect(pem.code).toBe(2)
    expect(pem.stdout + pem.stderr).toMatch(/content_type: is pem, but application_gateway .* PKCS#12 only/)
    // The consumer came from --consumer: the fix names the flag, not the file's field.
    expect(pem.stdout + pem.stderr).toContain(
      "leave application_gateway out of --consumer if it does not read this certificate",
    )
    expect(pem.stdout + pem.stderr).not.toContain("from consumers")
    expect(world.emulator.requests.entries({ since: mark, vault: world.vault })).toEqual([])
  })

  it("plan and deploy over a soft-deleted certificate that is this one, served as PEM: plan warns as deploy does; deploy is Skipped and states no content type", async () => {
    const name = "recover-pem"
    const served = await pemThenSoftDeleted(name)
    const args = (command: string) => [
      command,
      "--config",
      world.targetFile(name),
      "--consumer",
      "app_service",
      "--on-soft-deleted",
      "recover",
      "--cert",
      "-",
      "--json",
    ]
    const mark = world.emulator.requests.mark()
    const planned = await runCli(args("plan"), { stdin: fx.bundle(served), env: world.env })
    expect(planned.code, planned.stderr).toBe(0)
    const plan = json<{
      action: string
      contentType?: unknown
      warnings?: ReadonlyArray<{ field: string; message: string; fix: string }>
    }>(planned)
    expect(plan.action).toBe("recover")
    expect(plan.contentType).toBeUndefined()
    expect(plan.warnings?.map((w) => w.field)).toEqual(["consumers"])
    expect(plan.warnings?.[0]?.message).toMatch(
      /^names app_service, which read PKCS#12 only, and the soft-deleted certificate a recovery brings back serves this certificate's secret as application\/x-pem-file: it is this certificate, so it is recovered and no version is imported/,
    )
    expect(world.writesSince(mark)).toBe(0)

    const deployed = await runCli(args("deploy"), { stdin: fx.bundle(served), env: world.env })
    expect(deployed.code, deployed.stderr).toBe(0)
    const o = json<Outcome & { recovered?: string; contentType?: unknown }>(deployed)
    expect(o.outcome).toBe("Skipped")
    expect(o.recovered).toBe("recovered")
    // The import sent before the recovery met the deleted certificate and wrote nothing.
    expect(o.contentType).toBeUndefined()
    expect(world.emulator.state.versions(world.vault, name)).toHaveLength(1)
    // The same warning as plan's.
    expect(o.warnings).toEqual(plan.warnings)
  })

  it("plan over a soft-deleted certificate that is this one, whose answer does not say its content type: says it is judged after the recovery", async () => {
    const name = "recover-unsaid"
    const served = await pemThenSoftDeleted(name)
    const planArgs = (extra: ReadonlyArray<string>) => [
      "plan",
      "--config",
      world.targetFile(name),
      ...extra,
      "--on-soft-deleted",
      "recover",
      "--cert",
      "-",
      "--json",
    ]
    // The deleted certificate's answer without its policy (so without the secret's content type).
    const unsaid = world.emulator.faults.add({
      operation: "getDeleted",
      times: "always",
      action: { kind: "omitFields", fields: ["policy"] },
    })
    try {
      const mark = world.emulator.requests.mark()
      for (const [extra, said] of [
        [["--consumer", "app_service"], "the application/x-pkcs12 app_service reads"],
        [["--content-type", "pkcs12"], "the application/x-pkcs12 content_type pkcs12 asks for"],
      ] as const) {
        const planned = await runCli(planArgs(extra), { stdin: fx.bundle(served), env: world.env })
        expect(planned.code, planned.stderr).toBe(0)
        const plan = json<{ action: string; reason: string; warnings?: ReadonlyArray<unknown> }>(planned)
        expect(plan.action).toBe("recover")
        expect(plan.warnings).toBeUndefined()
        expect(plan.reason).toContain(
          `the soft-deleted certificate's answer does not say its secret's content type: whether it is ${said} is known only after the recovery`,
        )
      }
      // content_type keep without consumers asks for what is served: nothing to say.
      const kept = await runCli(planArgs([]), { stdin: fx.bundle(served), env: world.env })
      expect(kept.code, kept.stderr).toBe(0)
      expect(json<{ reason: string }>(kept).reason).not.toContain("does not say its secret's content type")
      expect(world.writesSince(mark)).toBe(0)
    } finally {
      world.emulator.faults.remove(unsaid)
    }
  })

  it("validate shows the consumers, in text and --json", async () => {
    const file = world.targetFile("shown", { consumers: ["application_gateway", "front_door"] })
    const text = await runCli(["validate", file])
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toMatch(/consumers +application_gateway, front_door/)
    const record = json<{ valid: boolean; target: { consumers?: ReadonlyArray<string> } }>(
      await runCli(["validate", file, "--json"]),
    )
    expect(record.target.consumers).toEqual(["application_gateway", "front_door"])
    const none = await runCli(["validate", world.targetFile("none")])
    expect(none.stdout).toMatch(/consumers +\(none\)/)
  })
})
