// validate; doctor against the vault (permissions, the state of the target's certificate); the emulator
// command. Split by subject so that the files run side by side: list.test.ts and credentialModes.test.ts.
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs"
import * as https from "node:https"
import { dirname, join } from "node:path"
import { describe, expect, it } from "vitest"
import {
  deployArgs,
  fx,
  importAsKvdeploy,
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
    await importAsKvdeploy(name)
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
      // restore reads a version's backing secret too.
      expect(secret?.detail).toContain(
        "`kvdeploy restore` cannot read any version's (it needs secrets/get too)",
      )
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
    // The probes wrote nothing: the versions are the one imported before and the deploy's.
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
    const deployed = await importAsKvdeploy(name)
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
    // kvdeploy's own certificate (its tags): no such warning.
    await importAsKvdeploy("doctor-managed")
    const managed = await runCli(["doctor", "--config", world.targetFile("doctor-managed"), "--json"], {
      env: world.env,
    })
    expect(json<{ checks: Array<Check> }>(managed).checks.map((c) => c.check)).not.toContain("managed")
  })

  it("doctor: the target's certificate soft-deleted is a warning that says what a deploy does, with the remedy", async () => {
    const name = "doctor-soft-deleted"
    await importAsKvdeploy(name)
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
    // --write-env over a file an earlier emulator wrote (before its files had their marker line),
    // readable by others: it holds the client secret, so it is left readable by its owner only, as a
    // new one is.
    const envFile = join(dirname(world.file("emulator-mode.marker", "")), "emulator-mode.env")
    writeFileSync(
      envFile,
      "export NODE_EXTRA_CA_CERTS=/tmp/kv-emulator-old/kv-emulator-ca.pem\nexport AZURE_CLIENT_SECRET=old\n",
      {
        mode: 0o644,
      },
    )
    chmodSync(envFile, 0o644)
    const second = await started(["--write-env", envFile])
    expect(statSync(envFile).mode & 0o777).toBe(0o600)
    expect(readFileSync(envFile, "utf8")).toContain("export AZURE_CLIENT_SECRET=")
    expect(readFileSync(envFile, "utf8")).toMatch(/^# kvdeploy emulator: /)
    second.child.kill("SIGINT")
    expect(await second.exited, second.stderr()).toBe(0)
    // Its own file, with the marker line, is written over again by the next run (a new secret).
    const secondText = readFileSync(envFile, "utf8")
    const third = await started(["--write-env", envFile])
    expect(readFileSync(envFile, "utf8")).not.toBe(secondText)
    third.child.kill("SIGINT")
    expect(await third.exited, third.stderr()).toBe(0)
  })
})
