import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs"
import * as https from "node:https"
import { dirname, join } from "node:path"
import { encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { describe, expect, it } from "vitest"
import {
  deployArgs,
  fx,
  type Outcome,
  setPlainSecret,
  softDelete,
  useCommandsWorld,
  world,
} from "./commandsWorld.js"
import { json, pemImportOptions, runCli } from "./harness.js"

useCommandsWorld()

describe("validate, doctor, emulator", () => {
  it("validate --json: a result of far more than 64 KiB reaches a pipe whole (it was cut off at exit)", async () => {
    const fields = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`unknown_field_${i}`, i]))
    const r = await runCli(["validate", world.targetFile("many-unknown", fields), "--json"])
    expect(r.code).toBe(2)
    expect(r.stdout.length).toBeGreaterThan(65_536)
    const parsed = json<{ problems: Array<{ field: string }> }>(r)
    expect(parsed.problems.length).toBeGreaterThanOrEqual(3000)
  })

  it("validate: valid file exit 0, invalid exit 2 with every problem", async () => {
    const ok = await runCli(["validate", world.targetFile("valid-name")])
    expect(ok.code).toBe(0)
    const bad = world.file(
      "bad.json",
      JSON.stringify({
        vault_url: "http://x.vault.azure.net",
        certificate_name: "a_b",
        client_secret: "hunter2",
      }),
    )
    const r = await runCli(["validate", bad, "--json"])
    expect(r.code).toBe(2)
    const fields = json<{ problems: Array<{ field: string }> }>(r).problems.map((p) => p.field)
    expect(fields).toEqual(expect.arrayContaining(["client_secret", "vault_url", "certificate_name"]))
    expect(r.stdout).not.toContain("hunter2")
    // A file that cannot be read or is no JSON is invalid in the same record, not an error record.
    for (const [path, says] of [
      ["/dev/shm/kvdeploy-no-such-target.json", "no such file"],
      [world.file("target.yaml", "vault_url: https://a.vault.azure.net\n"), "is YAML (keys vault_url)"],
    ] as const) {
      const unread = await runCli(["validate", path, "--json"])
      expect(unread.code, unread.stdout).toBe(2)
      const record = json<{
        file: string
        valid: boolean
        problems: Array<{ field: string; message: string }>
      }>(unread)
      expect(record).toMatchObject({ file: path, valid: false, problems: [{ field: "FILE" }] })
      expect(record.problems[0]?.message).toContain(says)
    }
  })

  it("doctor: every check passes (0); a denied import fails with the fix (1); no version is written", async () => {
    const mark = world.emulator.requests.mark()
    const ok = await runCli(["doctor", "--config", world.targetFile("doctor"), "--json"], { env: world.env })
    expect(ok.code, ok.stdout).toBe(0)
    expect(json<{ warnings: number }>(ok).warnings).toBe(0)
    const checks = json<{ checks: Array<{ check: string; status: string }> }>(ok).checks
    expect(checks.map((c) => c.check)).toEqual(
      expect.arrayContaining([
        "credential",
        "identity",
        "token",
        "reachable",
        "certificates/get",
        "certificates/import",
        "certificates/list",
        "secrets/get",
      ]),
    )
    expect(ok.stdout).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/)
    world.emulator.rbac.deny(world.env.AZURE_CLIENT_ID ?? "", ["certificates/import"])
    const denied = await runCli(["doctor", "--config", world.targetFile("doctor")], { env: world.env })
    world.emulator.rbac.reset()
    expect(denied.code).toBe(1)
    expect(denied.stdout).toMatch(/FAIL\s+certificates\/import/)
    expect(denied.stdout).toContain("Key Vault Certificates Officer")
    // One row and its fix: Key Vault's refusal (over several lines) on one line, the grant said once.
    const lines = denied.stdout.split("\n")
    const row = lines.findIndex((l) => /FAIL\s+certificates\/import/.test(l))
    expect(lines[row]).toMatch(/certificates\/import\s+refused: /)
    expect(lines[row + 1]).toMatch(/^\s+fix: grant the identity/)
    expect(denied.stdout.split("Key Vault Certificates Officer").length - 1).toBe(1)
    expect(world.emulator.state.versions(world.vault, "kvdeploy-doctor-probe")).toBeUndefined()
    // The import probes went to the target's certificate, and were refused (400 permitted, 403 not): nothing written.
    expect(world.emulator.state.versions(world.vault, "doctor")).toBeUndefined()
    const probes = world.emulator.requests
      .entries({ since: mark, vault: world.vault })
      .filter((e) => e.method !== "GET" && !e.challenge)
    expect(probes.map((e) => `${e.operation} ${e.status}`)).toEqual(["import 400", "import 403"])
  })

  it("doctor with a role assigned at the certificate's scope: every check is made on that certificate; secrets/get warns, naming the backing secret's scope, until the role is scoped to it too", async () => {
    const name = "doctor-scoped"
    expect((await runCli(deployArgs(name), { stdin: fx.bundle(await fx.leaf()), env: world.env })).code).toBe(
      0,
    )
    const before = world.emulator.state.versions(world.vault, name)?.length
    const id = world.env.AZURE_CLIENT_ID ?? ""
    type Check = { check: string; status: string; detail: string; fix?: string }
    const doctorChecks = async () => {
      const r = await runCli(["doctor", "--config", world.targetFile(name), "--json"], { env: world.env })
      const report = json<{ warnings: number; checks: Array<Check> }>(r)
      return { code: r.code, warnings: report.warnings, checks: report.checks }
    }
    // The certificate's scope alone: its backing secret (GET /secrets/NAME/VERSION, a rollback's
    // read) is a secret object of its own, outside it.
    world.emulator.rbac.scopeTo(id, [`certificates/${name}`])
    try {
      const certificateOnly = await doctorChecks()
      expect(certificateOnly.code, JSON.stringify(certificateOnly.checks)).toBe(0)
      for (const check of ["certificates/get", "certificates/import", "certificates/list"])
        expect(certificateOnly.checks.find((c) => c.check === check)?.status, check).toBe("pass")
      const secret = certificateOnly.checks.find((c) => c.check === "secrets/get")
      expect(secret?.status).toBe("warn")
      expect(secret?.detail).toContain("a rollback cannot read the previous PFX from the backing secret")
      expect(secret?.fix).toContain(
        "scoped to the certificate's backing secret (…/vaults/VAULT/secrets/NAME) or to the vault",
      )
      expect(certificateOnly.warnings).toBe(1)
      const text = await runCli(["doctor", "--config", world.targetFile(name)], { env: world.env })
      expect(text.stdout).toMatch(/warn\s+secrets\/get/)
      expect(text.stdout).toContain("…/vaults/VAULT/secrets/NAME")

      // The backing secret's scope added: every check passes.
      world.emulator.rbac.scopeTo(id, [`certificates/${name}`, `secrets/${name}`])
      const both = await doctorChecks()
      expect(both.code, JSON.stringify(both.checks)).toBe(0)
      expect(both.warnings).toBe(0)
      expect(both.checks.find((c) => c.check === "secrets/get")).toMatchObject({
        status: "pass",
        detail: "the backing secret is readable (rollback can restore the previous PFX)",
      })
      expect(both.checks.find((c) => c.check === "certificates/import")?.status).toBe("pass")
      // A deploy under that scope works too, and another name is refused (the scope is real).
      expect(
        (await runCli(deployArgs(name), { stdin: fx.bundle(await fx.leaf()), env: world.env })).code,
      ).toBe(0)
      expect(
        (await runCli(deployArgs("doctor-unscoped"), { stdin: fx.bundle(await fx.leaf()), env: world.env }))
          .code,
      ).toBe(1)
    } finally {
      world.emulator.rbac.reset()
    }
    // The probes wrote nothing: the versions are the two deploys'.
    expect(world.emulator.state.versions(world.vault, name)?.length).toBe((before ?? 0) + 1)
  })

  it("doctor: a vault read that fails otherwise than 403/404 fails reachable, and lists the checks after it as skipped (1)", async () => {
    const name = "doctor-unreadable"
    const fault = world.emulator.faults.add({
      operation: "getLatest",
      name,
      times: "always",
      action: { kind: "status", status: 400, code: "BadParameter", message: "scripted" },
    })
    try {
      const r = await runCli(["doctor", "--config", world.targetFile(name), "--json"], { env: world.env })
      expect(r.code, r.stdout).toBe(1)
      const checks = json<{ checks: Array<{ check: string; status: string; detail: string }> }>(r).checks
      expect(checks.find((c) => c.check === "reachable")?.status).toBe("fail")
      expect(checks.filter((c) => c.status === "skip")).toEqual(
        ["certificates/get", "certificates/import", "certificates/list", "secrets/get"].map((check) => ({
          check,
          status: "skip",
          detail: "not checked: the first vault read failed",
        })),
      )
    } finally {
      world.emulator.faults.remove(fault)
    }
  })

  it("doctor: a denied list is a warning with the grant; a disabled latest version is not blamed on secrets/get", async () => {
    const name = "doctor-disabled"
    const deployed = await fx.leaf()
    expect((await runCli(deployArgs(name), { stdin: fx.bundle(deployed), env: world.env })).code).toBe(0)
    const latest = await world.sdk().getCertificate(name)
    await world.sdk().updateCertificateProperties(name, latest.properties.version ?? "", { enabled: false })
    // A disabled latest version is not served: verify says no (1), naming why.
    const verify = await runCli(["verify", "--config", world.targetFile(name), "--cert", "-", "--json"], {
      stdin: deployed.certPem,
      env: world.env,
    })
    expect(verify.code, verify.stdout).toBe(1)
    const verdict = json<{ serves: boolean; checks: Array<{ detail: string }> }>(verify)
    expect(verdict.serves).toBe(false)
    expect(verdict.checks[0]?.detail).toContain("is disabled")
    world.emulator.rbac.deny(world.env.AZURE_CLIENT_ID ?? "", ["certificates/list"])
    const r = await runCli(["doctor", "--config", world.targetFile(name), "--json"], { env: world.env })
    const text = await runCli(["doctor", "--config", world.targetFile(name)], { env: world.env })
    world.emulator.rbac.reset()
    // Warnings do not fail doctor, and its last line counts them: "ready" is never read alone.
    expect(r.code, r.stdout).toBe(0)
    expect(text.code).toBe(0)
    expect(text.stdout.trim().split("\n").at(-1)).toMatch(/^ready to deploy, with 2 warnings above/)
    type Check = { check: string; status: string; detail: string; fix?: string }
    expect(json<{ warnings: number }>(r).warnings).toBe(2)
    const checks = json<{ checks: Array<Check> }>(r).checks
    const list = checks.find((c) => c.check === "certificates/list")
    expect(list?.status).toBe("warn")
    expect(list?.fix).toContain("certificates/list")
    const secret = checks.find((c) => c.check === "secrets/get")
    expect(secret?.status).toBe("warn")
    expect(secret?.detail).toContain("disabled")
    expect(secret?.fix).toContain("enable it")
    expect(secret?.fix ?? "").not.toContain("grant the identity")
  })

  it("doctor: a name a plain secret holds fails (1) with the deploy's remedy, not 'ready to deploy'; an unmanaged certificate is a warning", async () => {
    type Check = { check: string; status: string; detail: string; fix?: string }
    const name = "doctor-held-by-secret"
    await setPlainSecret(name)
    const held = await runCli(["doctor", "--config", world.targetFile(name), "--json"], { env: world.env })
    // It passed every check and said "ready to deploy", and read the 409 as the probe's 400.
    expect(held.code, held.stdout).toBe(1)
    const checks = json<{ checks: Array<Check> }>(held).checks
    expect(checks.find((c) => c.check === "certificates/import")).toMatchObject({
      status: "pass",
      detail: `permitted (${name} refused the probe with 409 Conflict; nothing was written)`,
    })
    const conflict = checks.find((c) => c.check === "certificate name")
    expect(conflict?.status).toBe("fail")
    expect(conflict?.detail).toMatch(
      new RegExp(
        `^${name} takes no import now, so a deploy to it fails \\(409 Conflict\\): .*already a secret with the name`,
      ),
    )
    expect(conflict?.fix).toMatch(
      /^Key Vault refused the import as a conflict \(the reason says why\): when a key or secret of this name exists/,
    )
    const text = await runCli(["doctor", "--config", world.targetFile(name)], { env: world.env })
    expect(text.stdout).not.toContain("ready to deploy")
    expect(world.emulator.state.versions(world.vault, name)).toBeUndefined()

    // A certificate another tool imported (no kvdeploy tags): ready, with a warning naming --adopt.
    const foreign = "doctor-unmanaged"
    const served = await fx.leaf()
    await world
      .sdk()
      .importCertificate(
        foreign,
        new TextEncoder().encode(served.keyPem + served.certPem),
        pemImportOptions(),
      )
    const unmanaged = await runCli(["doctor", "--config", world.targetFile(foreign), "--json"], {
      env: world.env,
    })
    expect(unmanaged.code, unmanaged.stdout).toBe(0)
    const warned = json<{ checks: Array<Check> }>(unmanaged).checks.find((c) => c.check === "managed")
    expect(warned?.status).toBe("warn")
    expect(warned?.detail).toMatch(
      new RegExp(
        `^${foreign}'s latest version [0-9a-f]{32} was not written by kvdeploy \\(no certctl-managed-by=certctl tag\\): a deploy refuses to replace it`,
      ),
    )
    expect(warned?.fix).toContain("--adopt")
    // kvdeploy's own certificate: no such warning.
    expect(
      (await runCli(deployArgs("doctor-managed"), { stdin: fx.bundle(await fx.leaf()), env: world.env }))
        .code,
    ).toBe(0)
    const managed = await runCli(["doctor", "--config", world.targetFile("doctor-managed"), "--json"], {
      env: world.env,
    })
    expect(json<{ checks: Array<Check> }>(managed).checks.map((c) => c.check)).not.toContain("managed")
  })

  it("doctor: the target's certificate soft-deleted is a warning that says what a deploy does, with the remedy", async () => {
    const name = "doctor-soft-deleted"
    expect((await runCli(deployArgs(name), { stdin: fx.bundle(await fx.leaf()), env: world.env })).code).toBe(
      0,
    )
    await softDelete(name)
    type Check = { check: string; status: string; detail: string; fix?: string }
    const failing = await runCli(["doctor", "--config", world.targetFile(name), "--json"], { env: world.env })
    expect(failing.code, failing.stdout).toBe(0)
    const warned = json<{ checks: Array<Check> }>(failing).checks.find((c) => c.check === "soft-deleted")
    expect(warned?.status).toBe("warn")
    expect(warned?.detail).toBe(`${name} is soft-deleted: a deploy fails (exit 1) and writes nothing`)
    expect(warned?.fix).toContain("--on-soft-deleted recover")
    const text = await runCli(["doctor", "--config", world.targetFile(name)], { env: world.env })
    expect(text.stdout.trim().split("\n").at(-1)).toMatch(/^ready to deploy, with \d+ warnings? above/)
    // With on_soft_deleted: recover, it says the deploy recovers it first.
    const recovering = await runCli(
      ["doctor", "--config", world.targetFile(name, { on_soft_deleted: "recover" }), "--json"],
      { env: world.env },
    )
    const noted = json<{ checks: Array<Check> }>(recovering).checks.find((c) => c.check === "soft-deleted")
    expect(noted?.detail).toContain("a deploy recovers it first")
    // The help names the probe's name as it is: the target's certificate.
    const help = await runCli(["doctor", "--help"], { env: world.env })
    expect(help.stdout).toContain("under the target's certificate name")
  })

  it("list: every page of the vault (25 a page), as another client lists it; a denied list fails (1) in words with the grant", async () => {
    const names = async () => {
      const out: Array<string> = []
      for await (const p of world.sdk().listPropertiesOfCertificates()) out.push(p.name ?? "")
      return out.sort()
    }
    // More than one page of 25, whatever the tests before this one left in the vault.
    const missing = Math.max(0, 27 - (await names()).length)
    for (let i = 0; i < missing; i++)
      expect(
        (await runCli(deployArgs(`page-${i}`), { stdin: fx.bundle(await fx.leaf()), env: world.env })).code,
      ).toBe(0)
    const expected = await names()
    expect(expected.length).toBeGreaterThan(25)
    const listed = json<{ total: number; matched: number; certificates: Array<{ name: string }> }>(
      await runCli(["list", "--config", world.targetFile("listing"), "--json"], { env: world.env }),
    )
    expect(listed.certificates.map((c) => c.name)).toEqual(expected)
    expect([listed.total, listed.matched]).toEqual([expected.length, expected.length])
    // --managed keeps kvdeploy's certificates only: another writer's certificate is left out.
    await world.emulator.state.foreignImport(world.vault, "list-foreign")
    const managed = json<{
      total: number
      matched: number
      certificates: Array<{ name: string; managedByKvdeploy: boolean }>
    }>(
      await runCli(["list", "--config", world.targetFile("listing"), "--managed", "--json"], {
        env: world.env,
      }),
    )
    expect(managed.certificates.length).toBeGreaterThan(0)
    expect(managed.certificates.every((c) => c.managedByKvdeploy)).toBe(true)
    expect(managed.certificates.map((c) => c.name)).not.toContain("list-foreign")
    expect(managed.matched).toBeLessThan(managed.total)

    world.emulator.rbac.deny(world.env.AZURE_CLIENT_ID ?? "", ["certificates/list"])
    const denied = await runCli(["list", "--config", world.targetFile("listing"), "--json"], {
      env: world.env,
    })
    world.emulator.rbac.reset()
    expect(denied.code, denied.stdout).toBe(1)
    const error = json<{
      error: { title: string; problems: Array<{ field: string; message: string; fix: string }> }
    }>(denied).error
    expect(error.title).toMatch(
      /^listing the vault's certificates failed: forbidden \(needs certificates\/list\)/,
    )
    expect(error.problems[0]).toMatchObject({
      field: "vault",
      message: "refused (VaultForbidden; needs certificates/list)",
    })
    expect(error.problems[0]?.fix).toContain("grant the identity the permission")
    expect(denied.stdout).not.toContain("listCertificates")

    // A next-page link that leads back to a page already read ends the list (it was followed for good).
    const vaultUrl = world.emulator.vault(world.vault).url
    const looping = world.emulator.faults.add({
      operation: "list",
      times: "always",
      action: {
        kind: "setFields",
        fields: { nextLink: `${vaultUrl}/certificates?api-version=2025-07-01&maxresults=25` },
      },
    })
    const since = world.emulator.requests.mark()
    const loop = await runCli(["list", "--config", world.targetFile("listing"), "--json"], { env: world.env })
    world.emulator.faults.remove(looping)
    expect(loop.code, loop.stdout).toBe(1)
    const loopError = json<{ error: { title: string; problems: Array<{ message: string; fix: string }> } }>(
      loop,
    ).error
    expect(loopError.title).toContain("its next-page link leads back to a page already read")
    expect(loopError.problems[0]?.message).toBe("an answer kvdeploy cannot use (VaultMalformedAnswer)")
    expect(loopError.problems[0]?.fix).toContain("a proxy")
    expect(
      world.emulator.requests
        .entries({ vault: world.vault, since })
        .filter((e) => e.operation === "list" && !e.challenge),
    ).toHaveLength(2)

    // Next-page links that are each new but never end stop at --max-pages: what was read is printed,
    // said to be incomplete, and the command exits 1. (The first page's own link is followed.)
    const everything = await names()
    /** `list` with this cap, every list answer after its first page's made endless. */
    const listEndless = async (cap: string, ...more: Array<string>) => {
      const endless = world.emulator.faults.add({
        operation: "list",
        skip: 1,
        times: "always",
        action: { kind: "endlessList" },
      })
      const ran = await runCli(
        ["list", "--config", world.targetFile("listing"), "--max-pages", cap, ...more],
        {
          env: world.env,
        },
      )
      world.emulator.faults.remove(endless)
      return ran
    }
    const endlessSince = world.emulator.requests.mark()
    const capped = await listEndless("5", "--json")
    const cappedText = await listEndless("4")
    expect(capped.code, capped.stdout).toBe(1)
    const cappedDoc = json<{
      complete: boolean
      total: number
      certificates: Array<{ name: string }>
      incomplete: { pages: number; problem: string }
    }>(capped)
    expect(cappedDoc.complete).toBe(false)
    expect(cappedDoc.certificates.map((c) => c.name)).toEqual(everything)
    expect(cappedDoc.incomplete.pages).toBe(5)
    expect(cappedDoc.incomplete.problem).toBe(
      `the list did not end after 5 pages (${everything.length} certificates read): the vault holds more than that, or a proxy or service between this machine and the vault keeps answering next-page links; \`--max-pages 10\` reads further`,
    )
    expect(cappedText.code, cappedText.stdout).toBe(1)
    expect(cappedText.stdout).toContain(
      `: ${everything.length} of at least ${everything.length} certificates`,
    )
    expect(cappedText.stdout).toContain("incomplete: the list did not end after 4 pages")
    // 5 + 4 list requests: each run stopped at its cap, not one page later.
    expect(
      world.emulator.requests
        .entries({ vault: world.vault, since: endlessSince })
        .filter((e) => e.operation === "list" && !e.challenge),
    ).toHaveLength(9)
    // A list that ends says so; a cap that is not a number of pages is refused before any request.
    expect(
      json<{ complete: boolean }>(
        await runCli(["list", "--config", world.targetFile("listing"), "--json"], { env: world.env }),
      ).complete,
    ).toBe(true)
    for (const bad of ["0", "-3", "2.5", "lots", "1000001"]) {
      const refused = await runCli(
        ["list", "--config", world.targetFile("listing"), "--max-pages", bad, "--json"],
        {
          env: world.env,
        },
      )
      expect(refused.code, refused.stdout).toBe(2)
      expect(
        json<{ error: { problems: Array<{ field: string; message: string; fix: string }> } }>(refused).error
          .problems[0],
      ).toEqual({
        field: "--max-pages",
        message: `"${bad}" is not a number of pages from 1 to 1000000`,
        fix: "write a whole number such as 4000 (each page holds up to 25 certificates)",
      })
    }

    // Key Vault may answer short pages, even an empty first one, with a next link
    // (Azure/azure-sdk-for-go#10711): followed to the end, the list is the whole list, complete.
    const shortPages = () => [
      world.emulator.faults.add({ operation: "list", times: 2, action: { kind: "shortPage", items: 0 } }),
      world.emulator.faults.add({
        operation: "list",
        times: "always",
        action: { kind: "shortPage", items: 3 },
      }),
    ]
    const whole = await names()
    let faults = shortPages()
    const shortSince = world.emulator.requests.mark()
    const short = await runCli(["list", "--config", world.targetFile("listing"), "--json"], {
      env: world.env,
    })
    for (const id of faults) world.emulator.faults.remove(id)
    expect(short.code, short.stdout).toBe(0)
    const shortDoc = json<{ complete: boolean; total: number; certificates: Array<{ name: string }> }>(short)
    expect(shortDoc.complete).toBe(true)
    expect(shortDoc.certificates.map((c) => c.name)).toEqual(whole)
    expect(
      world.emulator.requests
        .entries({ vault: world.vault, since: shortSince })
        .filter((e) => e.operation === "list" && !e.challenge),
    ).toHaveLength(2 + Math.ceil(shortDoc.total / 3))
    // Under a page cap the short pages reach, what was read is not presented as the list: incomplete, exit 1.
    faults = shortPages()
    const shortCapped = await runCli(
      ["list", "--config", world.targetFile("listing"), "--max-pages", "3", "--json"],
      { env: world.env },
    )
    for (const id of faults) world.emulator.faults.remove(id)
    expect(shortCapped.code, shortCapped.stdout).toBe(1)
    const shortCappedDoc = json<{
      complete: boolean
      total: number
      incomplete: { pages: number; problem: string }
    }>(shortCapped)
    expect([shortCappedDoc.complete, shortCappedDoc.total, shortCappedDoc.incomplete.pages]).toEqual([
      false,
      3,
      3,
    ])
    expect(shortCappedDoc.incomplete.problem).toMatch(
      /^the list did not end after 3 pages \(3 certificates read\)/,
    )

    // An entry without its facts is named apart; the others are listed (the whole list failed before).
    const odd = world.emulator.faults.add({
      operation: "list",
      action: { kind: "omitFields", fields: ["value.0.attributes.enabled"] },
    })
    const partial = await runCli(["list", "--config", world.targetFile("listing"), "--json"], {
      env: world.env,
    })
    world.emulator.faults.remove(odd)
    expect(partial.code, partial.stdout).toBe(0)
    const partialDoc = json<{ total: number; unusable: Array<{ name: string; problem: string }> }>(partial)
    expect(partialDoc.unusable).toHaveLength(1)
    expect(partialDoc.total).toBe(expected.length)
    expect(partialDoc.unusable[0]?.problem).toMatch(
      /cannot be used \(lacks `attributes\.enabled`; .*`kvdeploy show --name /,
    )
  })

  it("list --expiring-within keeps a certificate that has already expired, and says so", async () => {
    // Key Vault refuses to import an expired certificate, so this one is imported seconds before it
    // expires, by the test's own SDK client (the CLI's start-up could outlast its validity), with
    // everything else done first: the other certificate imported, the client holding its token.
    const chain = [fx.pki.intermediate, fx.pki.root].map((c) => new Uint8Array(c.certificate.rawData))
    const pfxOf = (leaf: Awaited<ReturnType<typeof fx.leaf>>) =>
      Effect.runPromise(
        encodePfx(
          { leaf: new Uint8Array(leaf.certificate.rawData), chain, key: Redacted.make(leaf.pkcs8) },
          { encoding: "modern", password: Redacted.make(""), iterations: 1 },
        ),
      )
    const client = world.sdk()
    await client.importCertificate("list-lasting", await pfxOf(await fx.leaf()), { password: "" })
    const expiring = await fx.leaf({ notAfterDays: 5 / 86_400 })
    await client.importCertificate("list-expired", await pfxOf(expiring), { password: "" })
    // X.509 times have whole seconds: wait until the vault's expiry is past.
    await new Promise((r) => setTimeout(r, expiring.certificate.notAfter.getTime() + 1_000 - Date.now()))

    const args = ["list", "--config", world.targetFile("listing"), "--expiring-within", "1d"]
    const listed = json<{ certificates: Array<{ name: string; expiresAt?: string }> }>(
      await runCli([...args, "--json"], { env: world.env }),
    )
    const expired = listed.certificates.find((c) => c.name === "list-expired")
    expect(expired, JSON.stringify(listed)).toBeDefined()
    expect(Date.parse(expired?.expiresAt ?? "")).toBeLessThan(Date.now())
    expect(listed.certificates.map((c) => c.name)).not.toContain("list-lasting")
    const text = await runCli(args, { env: world.env })
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toMatch(/list-expired .*expired \d{4}-\d{2}-\d{2} \(0 min ago\)/)
  })

  it("deploy: a missing client secret is a usage error (2) naming the variable; nothing is sent to the vault", async () => {
    const { AZURE_CLIENT_SECRET: _, ...env } = world.env
    const leaf = await fx.leaf()
    const mark = world.emulator.requests.mark()
    const r = await runCli(deployArgs("no-secret"), { stdin: fx.bundle(leaf), env })
    expect(r.code, r.stderr).toBe(2)
    const text = r.stdout + r.stderr
    expect(text).toContain("AZURE_CLIENT_SECRET")
    expect(text).toContain("client_secret")
    expect(world.emulator.requests.entries({ since: mark, vault: world.vault })).toHaveLength(0)
    expect(world.emulator.state.versions(world.vault, "no-secret")).toBeUndefined()
  })

  it("doctor, credential_mode default: names the chain's source that answered; with none, each source's reason (1)", async () => {
    type Check = { check: string; status: string; detail: string; credential?: string | null }
    const target = world.targetFile("doctor-default", { credential_mode: "default" })
    const ok = await runCli(["doctor", "--config", target, "--json"], { env: world.env })
    expect(ok.code, ok.stdout).toBe(0)
    const token = json<{ checks: Array<Check> }>(ok).checks.find((c) => c.check === "token")
    expect(token?.detail).toContain("from EnvironmentCredential (the default chain's source that answered)")
    // IMDS answers when no service principal is set: the identity line names no authority as the
    // way the token came, and the token line names the managed identity.
    // (No AZURE_CLIENT_ID either: the chain would ask IMDS for that user-assigned identity.)
    const {
      AZURE_CLIENT_SECRET: _secret,
      AZURE_CLIENT_ID: _client,
      AZURE_TENANT_ID: _tenant,
      ...noPrincipal
    } = world.env
    const imds = await runCli(["doctor", "--config", target, "--json"], {
      env: {
        ...noPrincipal,
        // Set for something else: a managed identity's token is of the host's tenant, not judged by it.
        AZURE_TENANT_ID: "99999999-8888-7777-6666-555555555555",
        AZURE_TOKEN_CREDENTIALS: "prod",
        AZURE_POD_IDENTITY_AUTHORITY_HOST: world.emulator.managedIdentity.imdsHost,
      },
    })
    const imdsChecks = json<{ checks: Array<Check> }>(imds).checks
    expect(imdsChecks.find((c) => c.check === "token")?.detail).toContain(
      "from ManagedIdentityCredential (the default chain's source that answered)",
    )
    const identityLine = imdsChecks.find((c) => c.check === "identity")?.detail ?? ""
    expect(identityLine).toContain(
      `authority ${world.env.AZURE_AUTHORITY_HOST} for the chain's Entra ID sources`,
    )
    expect(identityLine).not.toContain("via ")
    expect(imdsChecks.filter((c) => c.check.startsWith("token "))).toEqual([])
    // No service principal, an App Service managed identity endpoint that refuses the header, and
    // no developer tools ("prod").
    const { AZURE_CLIENT_SECRET: _s, AZURE_CLIENT_ID: _c, AZURE_TENANT_ID: _t, ...rest } = world.env
    const env = {
      ...rest,
      AZURE_TOKEN_CREDENTIALS: "prod",
      IDENTITY_ENDPOINT: world.emulator.managedIdentity.appServiceEndpoint,
      IDENTITY_HEADER: "not-the-header",
    }
    const none = await runCli(["doctor", "--config", target, "--json"], { env })
    expect(none.code, none.stdout).toBe(1)
    const checks = json<{ checks: Array<Check> }>(none).checks
    expect(checks.find((c) => c.check === "token")?.status).toBe("fail")
    // Each named as the SDK named it, not numbered: the chain's workload identity (no variables) was
    // never built and gave no error, so the managed identity is the second error, not the second
    // source. The one not built is a skip in its place in the chain, naming the variable its
    // constructor asked for.
    const sources = checks.filter((c) => c.check.startsWith("chain source"))
    expect(sources.map((c) => [c.check, c.status, c.credential])).toEqual([
      ["chain source", "fail", "EnvironmentCredential"],
      ["chain source", "skip", "WorkloadIdentityCredential"],
      ["chain source", "fail", "ManagedIdentityCredential"],
    ])
    expect(sources[0]?.detail).toMatch(/^EnvironmentCredential is unavailable/)
    expect(sources[1]?.detail).toMatch(
      /^WorkloadIdentityCredential: not built, so not tried: is unavailable\. clientId is a required parameter\..*"AZURE_CLIENT_ID"/,
    )
    expect(sources[2]?.detail).toMatch(/^ManagedIdentityCredential: Authentication failed/)
    const noneText = await runCli(["doctor", "--config", target], { env })
    expect(noneText.stdout).toMatch(
      /skip {2}chain source {9}WorkloadIdentityCredential: not built, so not tried: /,
    )
  })

  it("doctor, credential_mode default with a service principal's AZURE_CLIENT_ID left in the environment: the chain's managed identity is user-assigned by it, and its Identity not found says to unset it (1)", async () => {
    type Check = { check: string; status: string; detail: string; fix?: string; credential?: string | null }
    const target = world.targetFile("doctor-default-leftover-client", { credential_mode: "default" })
    const { AZURE_CLIENT_SECRET: _secret, AZURE_TENANT_ID: _tenant, ...leftover } = world.env
    const r = await runCli(["doctor", "--config", target, "--json"], {
      env: {
        ...leftover,
        // A client id the host's identity endpoint does not know (the service principal's).
        AZURE_CLIENT_ID: "11111111-2222-3333-4444-555555555555",
        AZURE_TOKEN_CREDENTIALS: "ManagedIdentityCredential",
        AZURE_POD_IDENTITY_AUTHORITY_HOST: world.emulator.managedIdentity.imdsHost,
      },
    })
    expect(r.code, r.stdout).toBe(1)
    const checks = json<{ checks: Array<Check> }>(r).checks
    expect(checks.find((c) => c.check === "credential")?.detail).toContain(
      "managed identity (user-assigned by AZURE_CLIENT_ID)",
    )
    const source = checks.find(
      (c) => c.check === "chain source" && c.credential === "ManagedIdentityCredential",
    )
    expect(source?.status).toBe("fail")
    expect(source?.detail).toMatch(/Identity not found/)
    expect(source?.fix).toMatch(/unset it/)
    expect(source?.fix).toContain("AZURE_CLIENT_ID")
  })

  it("doctor, managed_identity with a client id the endpoint does not know: the endpoint's refusal in its words, not 'no credential source' (1)", async () => {
    type Check = { check: string; status: string; detail: string; fix?: string }
    const target = world.targetFile("doctor-mi-unknown", {
      credential_mode: "managed_identity",
      managed_identity_client_id: "11111111-2222-3333-4444-555555555555",
    })
    const r = await runCli(["doctor", "--config", target, "--json"], {
      env: world.emulator.env.managedIdentityImds,
    })
    expect(r.code, r.stdout).toBe(1)
    const token = json<{ checks: Array<Check> }>(r).checks.find((c) => c.check === "token")
    expect(token?.status).toBe("fail")
    expect(token?.detail).toMatch(
      /: the managed identity endpoint refused the token request: Identity not found$/,
    )
    expect(token?.fix).toMatch(
      /set managed_identity_client_id to the client id of a user-assigned identity assigned/,
    )
    // The deploy's next step: the managed identity endpoint's refusal is the host's identity to fix
    // (no token exchange here: no federated token file), not a secret or a token file.
    const deploy = await runCli(["deploy", "--config", target, "--cert", "-"], {
      stdin: fx.bundle(await fx.leaf()),
      env: world.emulator.env.managedIdentityImds,
    })
    expect(deploy.code, deploy.stdout).toBe(1)
    const next = deploy.stdout.split("\n").find((l) => l.trimStart().startsWith("next")) ?? ""
    expect(next).toContain("run on an Azure host that has a managed identity")
    expect(next).not.toContain("AZURE_FEDERATED_TOKEN_FILE")
    expect(next).not.toContain("AZURE_CLIENT_SECRET")
  })

  it("doctor, workload_identity: the federated token's expiry is shown; an expired one fails as such, the vault's checks skipped (1)", async () => {
    type Check = { check: string; status: string; detail: string; fix?: string }
    const target = world.targetFile("doctor-workload", { credential_mode: "workload_identity" })
    const env = (tokenFile: string) => ({
      ...world.emulator.env.workloadIdentity,
      AZURE_FEDERATED_TOKEN_FILE: tokenFile,
    })
    const fresh = await runCli(["doctor", "--config", target, "--json"], {
      env: env(world.emulator.workloadIdentity.tokenFile),
    })
    expect(fresh.code, fresh.stdout).toBe(0)
    const freshChecks = json<{ checks: Array<Check> }>(fresh).checks
    expect(freshChecks.find((c) => c.check === "federated token")).toMatchObject({
      status: "pass",
      detail: expect.stringMatching(/expires at \S+ \(in \d+ h/),
    })
    const vaultSkipped = [
      "reachable",
      "certificates/get",
      "certificates/import",
      "certificates/list",
      "secrets/get",
    ]
    const issued = (agoSeconds: number) =>
      world.emulator.issueFederatedToken(undefined, { issuedAt: Math.floor(Date.now() / 1000) - agoSeconds })
    // Signed 62 minutes ago, valid for an hour: expired 2 minutes ago, within the clock skew the input
    // check allows; Entra ID refuses it, and doctor says why from the file's own times.
    const justExpired = issued(62 * 60)
    const late = await runCli(["doctor", "--config", target, "--json"], {
      env: env(world.file("just-expired-federated-token", `${justExpired}\n`)),
    })
    expect(late.code, late.stdout).toBe(1)
    const checks = json<{ checks: Array<Check> }>(late).checks
    expect(checks.find((c) => c.check === "token")).toMatchObject({
      status: "fail",
      detail: expect.stringContaining(
        "Entra ID refused the federated token as expired or not valid yet (AADSTS700024)",
      ),
    })
    expect(checks.find((c) => c.check === "federated token")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/expired at \S+ \(2 min ago/),
      fix: expect.stringContaining("kubelet"),
    })
    expect(checks.filter((c) => c.status === "skip").map((c) => c.check)).toEqual(vaultSkipped)
    // Signed two hours ago (a copy of the projected token, long since renewed): refused by the input
    // check before any token request, by every command (doctor's credential check; deploy exit 2).
    const old = issued(2 * 3600)
    const oldFile = world.file("expired-federated-token", `${old}\n`)
    const stale = await runCli(["doctor", "--config", target, "--json"], { env: env(oldFile) })
    expect(stale.code, stale.stdout).toBe(1)
    const staleChecks = json<{ checks: Array<Check> }>(stale).checks
    expect(staleChecks.find((c) => c.check === "credential")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(
        /^AZURE_FEDERATED_TOKEN_FILE: cannot work with credential_mode workload_identity: the token in \S+ expired at \S+ \((59 min|1 h) ago/,
      ),
    })
    expect(staleChecks.filter((c) => c.status === "skip").map((c) => c.check)).toEqual(vaultSkipped)
    const deploy = await runCli(["deploy", "--config", target, "--cert", "-", "--json"], {
      stdin: fx.bundle(await fx.leaf()),
      env: env(oldFile),
    })
    expect(deploy.code, deploy.stdout).toBe(2)
    expect(deploy.stdout).toContain("AZURE_FEDERATED_TOKEN_FILE")
    // show says it as what it is in its title: an expired token, not a malformed variable.
    const shown = await runCli(["show", "--config", target, "--json"], { env: env(oldFile) })
    expect(shown.code, shown.stdout).toBe(2)
    expect(json<{ error: { title: string } }>(shown).error.title).toBe(
      "no credential for credential_mode workload_identity: the federated token in AZURE_FEDERATED_TOKEN_FILE expired",
    )
    for (const out of [late.stdout, stale.stdout, deploy.stdout, shown.stdout]) {
      expect(out).not.toContain(old)
      expect(out).not.toContain(justExpired)
    }
  })

  it("deploy, managed_identity in an AKS pod: its federated token file is judged as workload_identity's, before the request and beside Entra ID's refusal (1)", async () => {
    const target = world.targetFile("mi-exchange-file", { credential_mode: "managed_identity" })
    const pod = (tokenFile: string) => ({
      ...world.emulator.env.workloadIdentity,
      AZURE_FEDERATED_TOKEN_FILE: tokenFile,
    })
    const deploy = (tokenFile: string) =>
      fx.leaf().then((leaf) =>
        runCli(["deploy", "--config", target, "--cert", "-", "--json"], {
          stdin: fx.bundle(leaf),
          env: pod(tokenFile),
        }),
      )
    const issued = (agoSeconds: number) =>
      world.emulator.issueFederatedToken(undefined, { issuedAt: Math.floor(Date.now() / 1000) - agoSeconds })
    // A copy of the projected token, two hours old: refused before any token request (exit 2).
    const old = issued(2 * 3600)
    const oldFile = world.file("mi-expired-federated-token", `${old}\n`)
    const mark = world.emulator.requests.mark()
    const stale = await deploy(oldFile)
    expect(stale.code, stale.stdout).toBe(2)
    expect(
      json<{ error: { problems: Array<{ field: string; message: string }> } }>(stale).error.problems,
    ).toEqual([
      expect.objectContaining({
        field: "AZURE_FEDERATED_TOKEN_FILE",
        message: expect.stringMatching(
          /^cannot work with credential_mode managed_identity: the token in \S+ expired at \S+ \((59 min|1 h) ago, by this host's clock\)/,
        ),
      }),
    ])
    expect(world.emulator.requests.count({ since: mark })).toBe(0)
    // An invalid target lists the file's problem beside its own, with the configured client id
    // (AZURE_CLIENT_ID unset): that client id is what makes the exchange read the file.
    const { AZURE_CLIENT_ID: clientId = "", ...noClientId }: Record<string, string> = pod(oldFile)
    const invalid = await fx.leaf().then((leaf) =>
      runCli(
        [
          "deploy",
          "--config",
          world.targetFile("mi-exchange-invalid", {
            credential_mode: "managed_identity",
            managed_identity_client_id: clientId,
          }),
          "--cert",
          "-",
          "--tag",
          "production",
          "--json",
        ],
        { stdin: fx.bundle(leaf), env: noClientId },
      ),
    )
    expect(invalid.code, invalid.stdout).toBe(2)
    expect(
      json<{ error: { problems: Array<{ field: string; message: string }> } }>(invalid).error.problems.map(
        (p) => p.field,
      ),
    ).toEqual([expect.stringContaining("tag"), "AZURE_FEDERATED_TOKEN_FILE"])
    // A missing file: named with its error code, before any request too.
    const missing = await deploy(`${oldFile}-gone`)
    expect(missing.code, missing.stdout).toBe(2)
    expect(missing.stdout).toContain(
      `${oldFile}-gone (AZURE_FEDERATED_TOKEN_FILE) cannot be read: no such file or directory (ENOENT)`,
    )
    // Expired 2 minutes ago (within the clocks' 5 minutes): Entra ID refuses it, and the reason names
    // the file and its expiry beside Entra ID's words.
    const justExpired = issued(62 * 60)
    const lateFile = world.file("mi-just-expired-federated-token", `${justExpired}\n`)
    const late = await deploy(lateFile)
    expect(late.code, late.stdout).toBe(1)
    expect(json<Outcome>(late).reason).toMatch(
      new RegExp(
        `Entra ID refused the federated token as expired or not valid yet \\(AADSTS700024\\) \\(correlation id [0-9a-f-]{36}\\) \\[the token in ${lateFile} expired at \\S+ \\(2 min ago, by this host's clock\\).*kubelet rewrites the projected service account token`,
      ),
    )
    // The next step is the exchange's: the token file and the user-assigned identity's federated
    // identity credential, not a host with a managed identity (this pod has one: its exchange failed).
    const lateText = await fx
      .leaf()
      .then((leaf) =>
        runCli(["deploy", "--config", target, "--cert", "-"], { stdin: fx.bundle(leaf), env: pod(lateFile) }),
      )
    expect(lateText.code, lateText.stdout).toBe(1)
    const next = lateText.stdout.split("\n").find((l) => l.trimStart().startsWith("next")) ?? ""
    expect(next).toContain("AKS workload identity's token exchange")
    expect(next).toContain("AZURE_FEDERATED_TOKEN_FILE")
    expect(next).toContain("federated identity credential on the user-assigned identity")
    expect(next).not.toContain("run on")
    for (const out of [stale.stdout, missing.stdout, late.stdout, lateText.stdout])
      for (const token of [old, justExpired])
        for (const part of token.split(".")) expect(out).not.toContain(part)
  })

  it("doctor, default and managed_identity: the federated token is checked wherever @azure/identity reads it, and each chain source is named (1)", async () => {
    type Check = { check: string; status: string; detail: string; fix?: string; credential?: string | null }
    const target = world.targetFile("doctor-default-pod", { credential_mode: "default" })
    const issuedAt = Math.floor(Date.now() / 1000) - 2 * 3600
    const token = world.emulator.issueFederatedToken(undefined, { issuedAt })
    const tokenFile = world.file("expired-pod-federated-token", `${token}\n`)
    // An AKS workload identity pod whose token file is an old copy. The whole chain is tried (no
    // AZURE_TOKEN_CREDENTIALS), with a PATH that holds none of the developer tools, so each says so at
    // once whatever this host has installed (node itself is run by its full path): the test's own
    // directory of files.
    const path = dirname(world.file("no-tools-here", ""))
    const pod = {
      ...world.emulator.env.workloadIdentity,
      AZURE_FEDERATED_TOKEN_FILE: tokenFile,
      PATH: path,
    }
    const r = await runCli(["doctor", "--config", target, "--json"], { env: pod })
    expect(r.code, r.stdout).toBe(1)
    const checks = json<{ checks: Array<Check> }>(r).checks
    expect(checks.find((c) => c.check === "token")?.status).toBe("fail")
    // Each source the SDK gave an error for, named as the SDK named it: the workload identity's refusal
    // is MSAL's error, named by nothing; the managed identity's exchange, refused the same way, by its
    // own log line; Visual Studio Code's names no credential; the tools by their own log lines.
    const sources = checks.filter((c) => c.check === "chain source")
    expect(sources.map((c) => c.credential)).toEqual([
      "EnvironmentCredential",
      null,
      "ManagedIdentityCredential",
      null,
      "AzureCliCredential",
      "AzurePowerShellCredential",
      "AzureDeveloperCliCredential",
    ])
    // The broker, which the SDK could not build (kvdeploy does not ship its plugin), has no line.
    expect(sources.map((c) => c.status)).toEqual(Array(7).fill("fail"))
    expect(sources[1]?.detail).toMatch(/^unnamed: invalid_client: .*AADSTS700024/)
    expect(sources[2]?.detail).toMatch(/^ManagedIdentityCredential: invalid_client: .*AADSTS700024/)
    expect(checks.find((c) => c.check === "federated token")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(
        /^the token in \S+ expired at \S+ \((1 h|2 h) ago, by this host's clock\).* \(read by the chain's WorkloadIdentityCredential, and its ManagedIdentityCredential's AKS token exchange\)$/,
      ),
      fix: expect.stringContaining("kubelet"),
    })
    const text = await runCli(["doctor", "--config", target], { env: pod })
    expect(text.stdout).toMatch(/FAIL {2}chain source {9}unnamed: invalid_client/)
    expect(text.stdout).toMatch(/FAIL {2}federated token {6}the token in /)
    for (const out of [r.stdout, text.stdout])
      for (const part of token.split(".")) expect(out).not.toContain(part)
    // managed_identity with the file but no AZURE_TENANT_ID: no exchange, the endpoint answers, and
    // the check says why the file is not read (a skip: ready to deploy).
    const mi = await runCli(
      [
        "doctor",
        "--config",
        world.targetFile("doctor-mi-file", { credential_mode: "managed_identity" }),
        "--json",
      ],
      { env: { ...world.emulator.env.managedIdentityUserAssigned, AZURE_FEDERATED_TOKEN_FILE: tokenFile } },
    )
    expect(mi.code, mi.stdout).toBe(0)
    expect(
      json<{ checks: Array<Check> }>(mi).checks.find((c) => c.check === "federated token"),
    ).toMatchObject({
      status: "skip",
      detail: expect.stringMatching(
        /^not read: \S+ \(AZURE_FEDERATED_TOKEN_FILE\) is set, but .*AZURE_TENANT_ID is not set/,
      ),
    })
  })

  // The direct 429 (MSAL's own request and retry), which doctor's one token request meets; MSAL's
  // replay of it is tested against a long-lived credential in @kvdeploy/azure-kv's deploy test.
  it("doctor reads the token's claims: another audience and tenant, expired, or not a JWT, is said, not passed", async () => {
    type Check = { check: string; status: string; detail: string; fix?: string }
    const doctorWithToken = async (accessToken: string) => {
      const fault = world.emulator.faults.add({
        operation: "token",
        times: "always",
        action: { kind: "setFields", fields: { access_token: accessToken } },
      })
      try {
        const r = await runCli(["doctor", "--config", world.targetFile("claims"), "--json"], {
          env: world.env,
        })
        return { code: r.code, checks: json<{ checks: Array<Check> }>(r).checks }
      } finally {
        world.emulator.faults.remove(fault)
      }
    }
    const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url")
    const hourAgo = Math.floor(Date.now() / 1000) - 3_600
    const foreign = `${part({ alg: "RS256", typ: "JWT" })}.${part({
      aud: "https://storage.azure.com",
      tid: "11111111-2222-3333-4444-555555555555",
      nbf: hourAgo - 3_600,
      exp: hourAgo,
    })}.c2ln`
    const wrong = await doctorWithToken(foreign)
    expect(wrong.code).toBe(1)
    const byName = (checks: Array<Check>, name: string) => checks.filter((c) => c.check === name)
    expect(byName(wrong.checks, "token")[0]?.status).toBe("pass")
    expect(byName(wrong.checks, "token")[0]?.detail).toContain("tenant 11111111-2222-3333-4444-555555555555")
    expect(byName(wrong.checks, "token audience")).toEqual([
      expect.objectContaining({
        status: "fail",
        detail:
          "the token is for https://storage.azure.com, not the vault's resource https://vault.azure.net: Key Vault refuses it",
      }),
    ])
    expect(byName(wrong.checks, "token times")[0]?.detail).toMatch(/^the token expired at /)
    expect(byName(wrong.checks, "token tenant")[0]?.detail).toBe(
      `the token is of tenant 11111111-2222-3333-4444-555555555555, not AZURE_TENANT_ID's ${world.env.AZURE_TENANT_ID}`,
    )
    const opaque = await doctorWithToken("not-a-jwt")
    expect(byName(opaque.checks, "token claims")).toEqual([
      expect.objectContaining({ status: "warn", detail: expect.stringContaining("the token is not a JWT") }),
    ])
    // The token as Entra ID issues it has none of these problems.
    const ok = await runCli(["doctor", "--config", world.targetFile("claims"), "--json"], { env: world.env })
    const fine = json<{ checks: Array<Check> }>(ok).checks
    expect(fine.filter((c) => c.check.startsWith("token ") || c.check === "token claims")).toEqual([])
    expect(byName(fine, "token")[0]?.detail).toContain(`tenant ${world.env.AZURE_TENANT_ID}`)
  })

  it("a token endpoint that never answers: show and doctor give up at the 30 s limit and say why, not hang", async () => {
    const hold = world.emulator.faults.add({
      operation: "token",
      times: "always",
      action: { kind: "hold", timeoutMs: 150_000 },
    })
    const [show, doctor] = await Promise.all([
      runCli(["show", "--config", world.targetFile("held-token-show"), "--json"], {
        env: world.env,
        timeoutMs: 120_000,
      }),
      runCli(["doctor", "--config", world.targetFile("held-token-doctor"), "--json"], {
        env: world.env,
        timeoutMs: 120_000,
      }),
    ]).finally(() => world.emulator.faults.remove(hold))
    expect(show.code, show.stdout + show.stderr).toBe(1)
    const shown = json<{ error: { title: string; problems: Array<{ message: string; fix: string }> } }>(
      show,
    ).error
    expect(shown.title).toContain("no token for the vault (nothing was sent)")
    expect(shown.title).toContain("the token request gave no token within 30000 ms")
    expect(shown.problems[0]?.message).toContain("VaultUnavailable")
    expect(shown.problems[0]?.fix).toContain("the identity provider could not be reached")
    expect(doctor.code, doctor.stdout).toBe(1)
    type Check = { check: string; status: string; detail: string; fix?: string }
    const token = json<{ checks: Array<Check> }>(doctor).checks.find((c) => c.check === "token")
    expect(token?.status).toBe("fail")
    expect(token?.detail).toContain("the identity endpoint gave no token within 30 s")
  }, 150_000)

  it("doctor: Entra ID throttling fails the token check as an outage for now, not a refused credential (1)", async () => {
    world.emulator.faults.add({
      operation: "token",
      times: "always",
      action: { kind: "throttle", retryAfterSeconds: 0 },
    })
    const r = await runCli(["doctor", "--config", world.targetFile("doctor"), "--json"], { env: world.env })
    world.emulator.faults.clear()
    expect(r.code, r.stdout).toBe(1)
    type Check = { check: string; status: string; detail: string; fix?: string }
    const token = json<{ checks: Array<Check> }>(r).checks.find((c) => c.check === "token")
    expect(token?.status).toBe("fail")
    expect(token?.detail).toContain("unavailable or throttling for now")
    expect(token?.fix).toContain("nothing is wrong with the credential")
  })

  it("doctor: a missing client secret fails the credential check (1)", async () => {
    const { AZURE_CLIENT_SECRET: _, ...env } = world.env
    const r = await runCli(["doctor", "--config", world.targetFile("doctor")], { env })
    expect(r.code).toBe(1)
    expect(r.stdout).toContain("AZURE_CLIENT_SECRET")
  })

  it("emulator: runs in the foreground, prints the environment and target, and exits 0 when stopped", async () => {
    const { spawn } = await import("node:child_process")
    const { bin, baseEnv } = await import("./harness.js")
    /** `kvdeploy emulator --json` once it has printed its JSON, with its stderr and exit code to come. */
    const started = async (extra: ReadonlyArray<string> = []) => {
      const child = spawn(process.execPath, [bin, "emulator", "--json", ...extra], { env: baseEnv() })
      let stderr = ""
      child.stderr.on("data", (c: Buffer) => {
        stderr += c.toString()
      })
      const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)))
      const text = await new Promise<string>((resolve, reject) => {
        let buf = ""
        child.stdout.on("data", (c: Buffer) => {
          buf += c.toString()
          try {
            JSON.parse(buf)
            resolve(buf)
          } catch {}
        })
        child.on("error", reject)
        setTimeout(() => reject(new Error(`no JSON from kvdeploy emulator: ${buf}`)), 20_000)
      })
      return { child, text, exited, stderr: () => stderr }
    }
    const first = await started()
    const printed = JSON.parse(first.text) as {
      env: Record<string, string>
      targetConfig: Record<string, unknown>
    }
    expect(printed.env.NODE_EXTRA_CA_CERTS).toBeDefined()
    expect(printed.targetConfig.cloud).toBeDefined()
    // The admin API answers with the key it printed: faults can be scripted from another shell.
    const admin = (printed as unknown as { admin: { url: string; key: string } }).admin
    const faults = await new Promise<number>((resolve, reject) => {
      const req = https.get(
        `${admin.url}/faults`,
        {
          headers: { "x-kv-emulator-admin-key": admin.key },
          ca: readFileSync(printed.env.NODE_EXTRA_CA_CERTS ?? ""),
        },
        (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        },
      )
      req.on("error", reject)
    })
    expect(faults).toBe(200)
    // Stopped as a supervisor stops it (systemd, docker stop): SIGTERM, and exit 0, which is how
    // this command ends (130 would read as a failure). Ctrl+C (SIGINT) alike.
    first.child.kill("SIGTERM")
    expect(await first.exited, first.stderr()).toBe(0)
    expect(first.stderr()).toContain("kv-emulator stopped")
    // --write-env over a file that exists (readable by others): it holds the client secret, so it is
    // left readable by its owner only, as a new one is.
    const envFile = join(dirname(world.file("emulator-mode.marker", "")), "emulator-mode.env")
    writeFileSync(envFile, "old\n", { mode: 0o644 })
    chmodSync(envFile, 0o644)
    const second = await started(["--write-env", envFile])
    expect(statSync(envFile).mode & 0o777).toBe(0o600)
    expect(readFileSync(envFile, "utf8")).toContain("export AZURE_CLIENT_SECRET=")
    second.child.kill("SIGINT")
    expect(await second.exited, second.stderr()).toBe(0)
  })
})
