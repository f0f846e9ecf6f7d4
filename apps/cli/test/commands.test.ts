/**
 * The commands of the BUILT kvdeploy against the emulator over HTTPS: help and usage, deploy's
 * lifecycle (0 Succeeded/Skipped), show, versions, plan and verify. Each outcome's exit code is in
 * outcomesExitCodes.test.ts; validate, doctor, list and emulator in validateDoctor.test.ts.
 */
import { execFileSync, spawn } from "node:child_process"
import { createHash, generateKeyPairSync } from "node:crypto"
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { createServer, type Server } from "node:tls"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  deployArgs,
  fx,
  importAsKvdeploy,
  importThenSoftDelete,
  type Outcome,
  softDelete,
  useCommandsWorld,
  world,
} from "./commandsWorld.js"
import type { Fixtures } from "./fixtures.js"
import { json, runCli } from "./harness.js"

useCommandsWorld()

/** Every command, written out here rather than read from the build so a dropped command fails the tests. */
const commandNames = [
  "deploy",
  "plan",
  "restore",
  "show",
  "versions",
  "list",
  "verify",
  "validate",
  "doctor",
  "emulator",
  "demo",
]

describe("help, completion and usage", () => {
  it("--help lists every command with examples, fast path without the vault", async () => {
    const r = await runCli(["--help"])
    expect(r.code).toBe(0)
    for (const c of commandNames) {
      expect(r.stdout).toContain(`  ${c} `)
    }
    expect(r.stdout).toContain("EXAMPLES")
  })

  it("each command has --help with a description and examples", async () => {
    for (const c of commandNames) {
      const r = await runCli([c, "--help"])
      expect(r.code, c).toBe(0)
      expect(r.stdout, c).toContain("DESCRIPTION")
      expect(r.stdout, c).toContain("EXAMPLES")
      expect(r.stdout, c).toContain("--json")
      // The description is indented whole, also one written over several lines (deploy's).
      const description = r.stdout.split("DESCRIPTION\n")[1]?.split("\nUSAGE")[0] ?? ""
      for (const line of description.split("\n").filter((l) => l !== "")) expect(line, c).toMatch(/^ {2}\S/)
      // No interactive wizard: its prompts would write to stdout under --json.
      expect(r.stdout, c).not.toContain("--wizard")
      // The pre-rendered help (dist/help.json) is exactly what the command tree renders.
      const rendered = await runCli([c, "--help"], { env: { KVDEPLOY_NO_HELP_CACHE: "1" } })
      expect(rendered.stdout, c).toBe(r.stdout)
    }
  })

  it("--version prints package.json's version; with --json, one JSON document", async () => {
    const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version: string
    }
    const plain = await runCli(["--version"])
    expect(plain.code).toBe(0)
    expect(plain.stdout).toBe(`kvdeploy ${version}\n`)
    for (const argv of [
      ["--version", "--json"],
      ["--json", "--version"],
    ]) {
      const r = await runCli(argv)
      expect(r.code, argv.join(" ")).toBe(0)
      expect(JSON.parse(r.stdout)).toEqual({ name: "kvdeploy", version, node: process.version })
    }
    // With a command, before or after it: a usage error. The parser printed the version and exited
    // 0 without running the command (a deploy in a cron job reported success).
    for (const argv of [
      ["validate", "target.json", "--version"],
      ["--version", "deploy", "--config", "target.json"],
    ]) {
      const r = await runCli(argv)
      expect(r.code, argv.join(" ")).toBe(2)
      expect(r.stdout).toBe("")
      expect(r.stderr).toContain("--version: goes alone: with a command, only the version would be printed")
      const json = await runCli([...argv, "--json"])
      expect(json.code).toBe(2)
      expect(JSON.parse(json.stdout)).toMatchObject({
        error: {
          exitCode: 2,
          problems: [
            { field: "--version", fix: "run `kvdeploy --version` alone, or the command without --version" },
          ],
        },
      })
    }
    // So does --completions, which the parser answers the same way; and each written with "=".
    for (const argv of [
      ["deploy", "--config", "target.json", "--completions", "bash"],
      ["deploy", "--config", "target.json", "--completions=bash"],
    ]) {
      const completions = await runCli(argv)
      expect(completions.code).toBe(2)
      expect(completions.stdout).toBe("")
      expect(completions.stderr).toContain(
        "--completions: goes alone: with a command, only the completion script would be printed",
      )
    }
    // The framework's -v, alone or in a group of short flags, with = forms, and a misspelt command.
    for (const argv of [
      ["deploy", "--config", "target.json", "--version=1"],
      ["deploy", "--config", "target.json", "-v"],
      ["deploy", "--config", "target.json", "-hv"],
      ["deplyo", "--config", "target.json", "--version"],
    ]) {
      const r = await runCli(argv)
      expect(r.code, argv.join(" ")).toBe(2)
      expect(r.stderr, argv.join(" ")).toContain("--version: goes alone")
    }
    // Not a command: the values of --log-level and --completions, and anything after "--".
    expect((await runCli(["--log-level", "info", "--version"])).code).toBe(0)
    const file = await runCli(["validate", "--", "--version"])
    expect(file.stderr).not.toContain("goes alone")
    expect(file.stdout + file.stderr).toContain("--version: no such file")
  })

  it("prints a bash completion script", async () => {
    const r = await runCli(["--completions", "bash"])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("kvdeploy")
    expect(r.stdout).toMatch(/complete/)
    // With --json, the same script in one document (the framework printed the bare script).
    for (const argv of [
      ["--json", "--completions", "bash"],
      ["--completions=sh", "--json"],
    ]) {
      const j = await runCli(argv)
      expect(j.code, argv.join(" ")).toBe(0)
      expect(json<{ shell: string; script: string }>(j), argv.join(" ")).toEqual({
        shell: "bash",
        script: r.stdout.replace(/\n$/, ""),
      })
    }
  })

  it("--help with --json: the command and its plain page, in one document", async () => {
    for (const argv of [["show"], []]) {
      const page = await runCli([...argv, "--help"])
      const j = await runCli([...argv, "--help", "--json"])
      expect(j.code, argv.join(" ")).toBe(0)
      expect(json<{ command: string; help: string }>(j)).toEqual({
        command: ["kvdeploy", ...argv].join(" "),
        help: page.stdout,
      })
    }
  })

  it("an unknown flag or command is a usage error (exit 2)", async () => {
    expect((await runCli(["deploy", "--bogus"])).code).toBe(2)
    expect((await runCli(["frobnicate"])).code).toBe(2)
    const withJson = await runCli(["deploy", "--bogus", "--json"])
    expect(withJson.code).toBe(2)
    const error = json<{
      error: { title: string; exitCode: number; problems: Array<{ field: string; fix: string }> }
    }>(withJson).error
    expect(error.title).toContain("--bogus")
    // The JSON's exit code is the process's, and the problem names the flag and the help to read.
    expect(error.exitCode).toBe(2)
    expect(error.problems[0]?.field).toBe("--bogus")
    expect(error.problems[0]?.fix).toContain("--help")
    expect(withJson.stderr).toContain("kvdeploy deploy --help")
    // --wizard is no flag of kvdeploy: refused like any unknown flag, the JSON contract kept.
    const wizard = await runCli(["show", "--wizard", "--json"])
    expect(wizard.code).toBe(2)
    expect(json<{ error: { title: string } }>(wizard).error.title).toContain("--wizard")
  })
})

describe("deploy lifecycle", () => {
  const name = "lifecycle"
  let v1x5t = ""
  let v1version = ""
  let v1leaf: Awaited<ReturnType<Fixtures["leaf"]>>

  it("deploy: first deploy Succeeded (exit 0), stdout is the outcome record only", async () => {
    v1leaf = await fx.leaf()
    const r = await runCli(deployArgs(name), { stdin: fx.bundle(v1leaf), env: world.env })
    expect(r.code, r.stderr).toBe(0)
    const o = json<Outcome>(r)
    expect(o._tag).toBe("Succeeded")
    expect(o.previous).toBeUndefined()
    expect(o.vaultCalls).toBe(3)
    // What the text shows is in the JSON too: the outcome and exit code as plain fields, the certificate.
    const shown = json<{ outcome: string; exitCode: number; certificate: Record<string, string> }>(r)
    expect([shown.outcome, shown.exitCode]).toEqual(["Succeeded", 0])
    expect(shown.certificate).toEqual({
      subject: "CN=api.example.test",
      notAfter: new Date(v1leaf.certificate.notAfter).toISOString(),
      sha256: createHash("sha256").update(Buffer.from(v1leaf.certificate.rawData)).digest("hex"),
      // The chain's intermediate outlives the leaf: the leaf's, and no expiresFirst.
      earliestNotAfter: new Date(v1leaf.certificate.notAfter).toISOString(),
    })
    v1x5t = o.newX5t ?? ""
    v1version = o.versionId ?? ""
    const versions = world.emulator.state.versions(world.vault, name) ?? []
    expect(versions.map((v) => v.x5t)).toEqual([v1x5t])
    expect(JSON.stringify(r)).not.toContain("PRIVATE KEY")
  })

  it("deploy: the same certificate again is Skipped (exit 0) with no write", async () => {
    const mark = world.emulator.requests.mark()
    const r = await runCli(deployArgs(name), { stdin: fx.bundle(v1leaf), env: world.env })
    expect(r.code, r.stderr).toBe(0)
    const o = json<Outcome>(r)
    expect(o._tag).toBe("Skipped")
    expect(o.versionId).toBe(v1version)
    expect(world.writesSince(mark)).toBe(0)
  })

  it("deploy --metrics-file: this run's metrics for node_exporter's textfile collector, labelled with the target", async () => {
    const file = join(dirname(world.targetFile(name)), "kvdeploy-lifecycle.prom")
    // Under a umask of 077 too: node_exporter, a user of its own, must be able to read the file.
    const umask = process.umask(0o077)
    const since = world.emulator.requests.mark()
    const r = await runCli(deployArgs(name, ["--metrics-file", file]), {
      stdin: fx.bundle(v1leaf),
      env: world.env,
    }).finally(() => process.umask(umask))
    expect(r.code, r.stderr).toBe(0)
    expect(json<Outcome>(r)._tag).toBe("Skipped")
    expect(statSync(file).mode & 0o777).toBe(0o644)
    const text = readFileSync(file, "utf8")
    const target = `vault_url="${world.emulator.vault(world.vault).url}",certificate_name="${name}"`
    expect(text).toContain(
      `certctl_deploy_attempts_total{target_type="azure_kv",result="skipped",${target}} 1`,
    )
    expect(text).toContain(`kvdeploy_vault_requests_total{operation="getLatest",status="ok",${target}} 1`)
    // Per HTTP attempt: a new process's client meets the challenge (401) before the read (200).
    expect(text).toContain(
      `kvdeploy_vault_http_requests_total{operation="getLatest",status="401",${target}} 1`,
    )
    expect(text).toContain(
      `kvdeploy_vault_http_requests_total{operation="getLatest",status="200",${target}} 1`,
    )
    // As many as the vault received (its request log is the ground truth).
    const httpTotal = [...text.matchAll(/^kvdeploy_vault_http_requests_total\{[^}]*\} (\S+)$/gm)].reduce(
      (sum, m) => sum + Number(m[1]),
      0,
    )
    expect(httpTotal).toBe(world.emulator.requests.count({ since, vault: world.vault }))
    expect(text).not.toMatch(/PRIVATE KEY|AZURE_CLIENT_SECRET/)
    const promtool = spawn("promtool", ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] })
    const checked = await new Promise<number | null>((resolve) => {
      promtool.on("error", () => resolve(null))
      promtool.on("close", resolve)
      promtool.stdin.end(text)
    })
    if (checked !== null || process.env.CI === "true") expect(checked).toBe(0)
    // A run refused on its input (no client secret: exit 2, nothing sent) replaces the file too, its
    // attempt counted as rejected, so the last success does not stay in place.
    const { AZURE_CLIENT_SECRET: _secret, ...noSecret } = world.env
    const beforeRefused = world.emulator.requests.mark()
    const noCredential = await runCli(deployArgs(name, ["--metrics-file", file]), {
      stdin: fx.bundle(v1leaf),
      env: noSecret,
    })
    expect(noCredential.code, noCredential.stdout).toBe(2)
    expect(noCredential.stdout).toContain("AZURE_CLIENT_SECRET")
    expect(world.emulator.requests.entries({ since: beforeRefused, vault: world.vault })).toEqual([])
    const refusedText = readFileSync(file, "utf8")
    expect(refusedText).toContain(
      `certctl_deploy_attempts_total{target_type="azure_kv",result="rejected",${target}} 1`,
    )
    expect(refusedText).not.toContain('result="skipped"')
    // Its samples, as docs/keyvault-target.md says: the rejected attempt, the throttle counter at 0
    // and the duration histogram empty (no deploy ran); the other families have no sample.
    const samples = refusedText.split("\n").filter((l) => l !== "" && !l.startsWith("#"))
    expect([...new Set(samples.map((l) => l.replace(/[{ ].*$/, "")))]).toEqual([
      "certctl_deploy_attempts_total",
      "kvdeploy_vault_throttled_total",
      "kvdeploy_deploy_duration_seconds_bucket",
      "kvdeploy_deploy_duration_seconds_sum",
      "kvdeploy_deploy_duration_seconds_count",
    ])
    expect(samples.filter((l) => l.startsWith("certctl_deploy_attempts_total"))).toHaveLength(1)
    expect(
      samples.filter((l) => !l.startsWith("certctl_deploy_attempts_total")).every((l) => l.endsWith(" 0")),
    ).toBe(true)
    // A target file that cannot be read: the series would carry no target, so the file is left as
    // it is, with a warning; given --vault-url and --name, those label it.
    const unlabelled = await runCli(
      ["deploy", "--config", `${file}.missing.json`, "--cert", "-", "--json", "--metrics-file", file],
      { stdin: fx.bundle(v1leaf), env: world.env },
    )
    expect(unlabelled.code).toBe(2)
    expect(unlabelled.stderr).toContain("was not written: the target could not be read to label its series")
    expect(readFileSync(file, "utf8")).toBe(refusedText)
    // Given --vault-url and --name, they label it, written as a deploy writes them (lower case, no
    // trailing slash).
    const flagged = await runCli(
      [
        "deploy",
        "--config",
        `${file}.missing.json`,
        "--vault-url",
        "https://MyVault.vault.azure.net/",
      ].concat(["--name", "api", "--cert", "-", "--json", "--metrics-file", file]),
      { stdin: fx.bundle(v1leaf), env: world.env },
    )
    expect(flagged.code).toBe(2)
    expect(readFileSync(file, "utf8")).toContain(
      'certctl_deploy_attempts_total{target_type="azure_kv",result="rejected",vault_url="https://myvault.vault.azure.net",certificate_name="api"} 1',
    )
    // A file it cannot write is an input problem, before anything reaches the vault.
    const mark = world.emulator.requests.mark()
    const refused = await runCli(deployArgs(name, ["--metrics-file", "/nonexistent/dir/k.prom"]), {
      stdin: fx.bundle(v1leaf),
      env: world.env,
    })
    expect(refused.code).toBe(2)
    expect(refused.stdout + refused.stderr).toContain(
      "--metrics-file: /nonexistent/dir/k.prom: its directory /nonexistent/dir does not exist",
    )
    expect(world.emulator.requests.entries({ since: mark, vault: world.vault })).toEqual([])
  })

  it("deploy, show, versions, verify, list: a renewal, the history and the answers", async () => {
    const v2 = await fx.leaf({ dnsNames: ["api.example.test", "www.example.test"] })
    const r = await runCli(deployArgs(name, ["--tag", "env=test"]), { stdin: fx.bundle(v2), env: world.env })
    expect(r.code, r.stderr).toBe(0)
    const o = json<Outcome>(r)
    expect(o._tag).toBe("Succeeded")
    expect(o.previous?.versionId).toBe(v1version)

    const mark = world.emulator.requests.mark()
    const skip = await runCli(deployArgs(name, ["--tag", "env=test"]), {
      stdin: fx.bundle(v2),
      env: world.env,
    })
    expect(skip.code).toBe(0)
    expect(json<Outcome>(skip)._tag).toBe("Skipped")
    expect(json<Outcome>(skip).vaultCalls).toBe(1)
    expect(world.writesSince(mark)).toBe(0)

    const human = await runCli(
      ["deploy", "--config", world.targetFile(name), "--tag", "env=test", "--cert", "-"],
      {
        stdin: fx.bundle(v2),
        env: world.env,
      },
    )
    expect(human.code).toBe(0)
    expect(human.stdout).toMatch(/^Skipped/)
    expect(human.stdout).toContain("old ")
    expect(human.stdout).toContain("expires")
    expect(human.stdout).not.toContain("\u001b[")

    const show = await runCli(["show", "--config", world.targetFile(name)], { env: world.env })
    expect(show.code).toBe(0)
    expect(show.stdout).toContain(o.versionId ?? "?")
    expect(show.stdout).toContain("certctl-managed-by=certctl")

    // Another writer's version whose tags hold lines of a key (and a line break): show and versions
    // describe them, and print none of it.
    const pasted = "pasted-tags"
    // Lines 2-4 of an RSA key's PEM body (not its first: the DER's start is caught by an older rule).
    const body = generateKeyPairSync("rsa", { modulusLength: 2048 })
      .privateKey.export({ format: "der", type: "pkcs8" })
      .toString("base64")
      .slice(64, 256)
    await world.emulator.state.foreignImport(world.vault, pasted, {
      note: body,
      [body.slice(0, 128)]: "x",
      "certctl-certificate-id": body,
      multi: "a\nb",
    })
    for (const args of [
      ["show", "--config", world.targetFile(pasted)],
      ["show", "--config", world.targetFile(pasted), "--json"],
      ["versions", "--config", world.targetFile(pasted), "--json"],
    ]) {
      const r = await runCli(args, { env: world.env })
      expect(r.code, r.stderr).toBe(0)
      for (let at = 0; at + 32 <= body.length; at += 16)
        expect(r.stdout).not.toContain(body.slice(at, at + 32))
      expect(r.stdout).toContain(
        "(a tag value of 192 characters holding key text or control characters, not shown)",
      )
      expect(r.stdout).toContain(
        "(a tag key of 128 characters holding key text or control characters, not shown)",
      )
      expect(r.stdout).toContain(
        "(a tag value of 3 characters holding key text or control characters, not shown)",
      )
    }

    const versions = json<{
      versions: Array<{ versionId: string; latest: boolean; managedByKvdeploy: boolean }>
    }>(await runCli(["versions", "--config", world.targetFile(name), "--json"], { env: world.env }))
    expect(versions.versions.map((v) => v.versionId)).toEqual([o.versionId, v1version])
    expect(versions.versions[0]?.latest).toBe(true)
    expect(versions.versions.every((v) => v.managedByKvdeploy)).toBe(true)
    // A version list carries no certificate, so no serial: absent, not "".
    expect(versions.versions.every((v) => !("serialHex" in v))).toBe(true)
    // --limit: the header says how many of how many it shows.
    const limited = await runCli(["versions", "--config", world.targetFile(name), "--limit", "1"], {
      env: world.env,
    })
    expect(limited.code, limited.stderr).toBe(0)
    expect(limited.stdout.split("\n")[0]).toMatch(/: 1 of 2 versions, newest first$/)
    expect(limited.stdout.trimEnd().split("\n")).toHaveLength(2)
    const whole = await runCli(["versions", "--config", world.targetFile(name), "--limit", "5"], {
      env: world.env,
    })
    expect(whole.stdout.split("\n")[0]).toMatch(/: 2 versions, newest first$/)

    const yes = await runCli(["verify", "--config", world.targetFile(name), "--cert", "-"], {
      stdin: v2.certPem,
      env: world.env,
    })
    expect(yes.code, yes.stderr).toBe(0)
    expect(yes.stdout).toMatch(/^yes/)
    // --json names the served version in a field of its own, not only in the check's detail.
    const served = json<{ latest: { versionId: string } }>(
      await runCli(["show", "--config", world.targetFile(name), "--json"], { env: world.env }),
    ).latest.versionId
    const yesJson = json<{ checks: Array<{ check: string; servedVersionId?: string }> }>(
      await runCli(["verify", "--config", world.targetFile(name), "--cert", "-", "--json"], {
        stdin: v2.certPem,
        env: world.env,
      }),
    )
    expect(yesJson.checks[0]).toMatchObject({ check: "vault", servedVersionId: served })
    const no = await runCli(["verify", "--config", world.targetFile(name), "--cert", "-"], {
      stdin: fx.pki.root.certPem,
      env: world.env,
    })
    expect(no.code).toBe(1)
    expect(no.stdout).toMatch(/^no/)

    const listed = json<{ certificates: Array<{ name: string; managedByKvdeploy: boolean }> }>(
      await runCli(["list", "--config", world.targetFile(name), "--json"], { env: world.env }),
    )
    expect(listed.certificates.find((c) => c.name === name)?.managedByKvdeploy).toBe(true)
    const soon = json<{ certificates: Array<{ name: string }> }>(
      await runCli(["list", "--config", world.targetFile(name), "--expiring-within", "30d", "--json"], {
        env: world.env,
      }),
    )
    expect(soon.certificates.find((c) => c.name === name)).toBeUndefined()
    const later = json<{ certificates: Array<{ name: string }> }>(
      await runCli(["list", "--config", world.targetFile(name), "--expiring-within", "100d", "--json"], {
        env: world.env,
      }),
    )
    expect(later.certificates.find((c) => c.name === name)).toBeDefined()
  })
})

describe("a certificate operation in progress in the vault", () => {
  it("a renewal waiting for its CA: deploy fails at the import with the remedy, nothing written (1); a create that never completed: show and plan say it holds no certificate", async () => {
    const name = "renewal-in-progress"
    await importAsKvdeploy(name)
    await world
      .sdk()
      .beginCreateCertificate(name, { issuerName: "Unknown", subject: "CN=renewal.example.test" })
    const mark = world.emulator.requests.mark()
    const r = await runCli(["deploy", "--config", world.targetFile(name), "--cert", "-"], {
      stdin: fx.bundle(await fx.leaf()),
      env: world.env,
    })
    expect(r.code, r.stderr).toBe(1)
    expect(r.stdout).toMatch(/^Failed/)
    expect(r.stdout).toContain("the vault is unchanged by this deploy")
    expect(r.stdout).toMatch(/next +a certificate operation is in progress on this certificate/)
    expect(r.stdout).toContain("az keyvault certificate pending delete")
    expect(world.writesSince(mark)).toBe(1)
    expect(world.emulator.state.versions(world.vault, name)).toHaveLength(1)
    // plan says so beforehand (exit 1, as deploy's), and says import once the operation is deleted.
    const planArgs = ["plan", "--config", world.targetFile(name), "--cert", "-", "--json"]
    const planned = await runCli(planArgs, { stdin: fx.bundle(await fx.leaf()), env: world.env })
    expect(planned.code, planned.stderr).toBe(1)
    expect(
      json<{ action: string; operation?: { status: string; issuerName?: string } }>(planned),
    ).toMatchObject({
      action: "fail-operation-in-progress",
      operation: { status: "inProgress", issuerName: "Unknown" },
    })
    await world.sdk().deleteCertificateOperation(name)
    const free = await runCli(planArgs, { stdin: fx.bundle(await fx.leaf()), env: world.env })
    expect(free.code, free.stderr).toBe(0)
    expect(json<{ action: string; operation?: unknown }>(free)).toMatchObject({ action: "import" })
    expect(json<{ operation?: unknown }>(free).operation).toBeUndefined()

    const started = "create-not-completed"
    await world
      .sdk()
      .beginCreateCertificate(started, { issuerName: "Unknown", subject: "CN=started.example.test" })
    const show = await runCli(["show", "--config", world.targetFile(started)], { env: world.env })
    expect(show.code).toBe(0)
    expect(show.stdout).toMatch(/certificate +none yet: a create was started in the vault/)
    const shown = json<{ latest: { noCertificate?: boolean } }>(
      await runCli(["show", "--config", world.targetFile(started), "--json"], { env: world.env }),
    )
    expect(shown.latest.noCertificate).toBe(true)
    const plan = await runCli(["plan", "--config", world.targetFile(started), "--cert", "-"], {
      stdin: fx.bundle(await fx.leaf()),
      env: world.env,
    })
    expect(plan.stdout).toMatch(
      /refuse: create-not-completed exists without certctl-managed-by=certctl, and its latest version holds no certificate yet/,
    )
    // Its x5t is said to be none, not left blank (plan's current line, and versions).
    expect(plan.stdout).toMatch(/current +[0-9a-f]{32} {2}x5t \(none: no certificate yet\)/)
    const versions = await runCli(["versions", "--config", world.targetFile(started)], { env: world.env })
    expect(versions.stdout).toContain("x5t (none: no certificate yet)")
    const refused = json<Outcome>(
      await runCli(deployArgs(started), { stdin: fx.bundle(await fx.leaf()), env: world.env }),
    )
    expect(refused._tag).toBe("Rejected")
    expect(refused.reason).toContain("holds no certificate yet")
    // verify says so too, not "another certificate".
    const verified = await runCli(["verify", "--config", world.targetFile(started), "--cert", "-"], {
      stdin: (await fx.leaf()).certPem,
      env: world.env,
    })
    expect(verified.code).toBe(1)
    expect(verified.stdout).toMatch(/latest version [0-9a-f]{32} holds no certificate yet/)
  })
})

describe("versions created in one second", () => {
  it("orderUnknown is said of the versions shown: --limit 1 (the served one) is known, --limit 2 is not", async () => {
    // Three versions by another writer, in one second (Key Vault keeps whole seconds): the served
    // one is known to be the newest, nothing orders the other two. A fresh name is tried until
    // the three share a second, so the test does not depend on where a second boundary falls.
    let name = ""
    for (let attempt = 0; attempt < 5 && name === ""; attempt++) {
      const candidate = `one-second-${attempt}`
      const made = []
      for (let i = 0; i < 3; i++) made.push(await world.emulator.state.foreignImport(world.vault, candidate))
      if (new Set(made.map((v) => v.created)).size === 1) name = candidate
    }
    expect(name, "three imports in one second").not.toBe("")
    const served = world.emulator.state.versions(world.vault, name)?.at(-1)?.version
    const list = async (limit?: number) =>
      json<{ orderUnknown: boolean; total: number; versions: Array<{ versionId: string; latest: boolean }> }>(
        await runCli(
          [
            "versions",
            "--config",
            world.targetFile(name),
            "--json",
            ...(limit ? ["--limit", `${limit}`] : []),
          ],
          { env: world.env },
        ),
      )
    const one = await list(1)
    expect(one.versions.map((v) => v.versionId)).toEqual([served])
    expect(one.orderUnknown).toBe(false)
    expect(one.total).toBe(3)
    const two = await list(2)
    expect(two.versions[0]?.versionId).toBe(served)
    expect(two.orderUnknown).toBe(true)
    expect((await list()).orderUnknown).toBe(true)
    const human = await runCli(["versions", "--config", world.targetFile(name), "--limit", "1"], {
      env: world.env,
    })
    expect(human.stdout).not.toContain("order among themselves is unknown")
  })
})

describe("a vault TLS certificate this machine does not trust", () => {
  it("every command names the CA trust as the fix, not the vault's DNS or network (the vault answered)", async () => {
    const name = "untrusted-tls"
    const leaf = await fx.leaf()
    // The emulator's CA is trusted through NODE_EXTRA_CA_CERTS alone: without it, its TLS
    // certificate is refused, as a TLS-inspecting proxy's is.
    const { NODE_EXTRA_CA_CERTS: _trusted, ...env } = world.env
    type Problem = { field: string; message: string; fix: string }
    const mark = world.emulator.requests.mark()
    for (const args of [
      ["show"],
      ["versions"],
      ["list"],
      ["verify", "--cert", "-"],
      ["plan", "--cert", "-"],
    ]) {
      const [command = "", ...rest] = args
      const r = await runCli([command, "--config", world.targetFile(name), ...rest, "--json"], {
        env,
        stdin: fx.bundle(leaf),
      })
      expect(r.code, `${command}: ${r.stdout}${r.stderr}`).toBe(1)
      const error = json<{ error: { title: string; problems: Array<Problem> } }>(r).error
      expect(error.title, command).toContain("TLS certificate was not accepted")
      expect(error.problems, command).toEqual([
        {
          field: "vault",
          message: "this machine did not accept the vault's TLS certificate (VaultUnavailable)",
          fix: expect.stringContaining("NODE_EXTRA_CA_CERTS=/path/to/proxy-ca.pem"),
        },
      ])
      expect(error.problems[0]?.fix, command).toContain("--use-system-ca")
      expect(error.problems[0]?.fix, command).not.toContain("DNS")
    }
    // Deploy's next step says the same, from the same words.
    const deployed = await runCli(["deploy", "--config", world.targetFile(name), "--cert", "-"], {
      env,
      stdin: fx.bundle(leaf),
    })
    expect(deployed.code, deployed.stdout).toBe(1)
    const shown = json<{ error: { problems: Array<Problem> } }>(
      await runCli(["show", "--config", world.targetFile(name), "--json"], { env }),
    ).error.problems[0]
    expect(deployed.stdout.split("\n")).toContain(`  next        ${shown?.fix}`)
    // Nothing reached the vault: each TLS handshake was refused.
    expect(world.emulator.requests.entries({ since: mark, vault: world.vault })).toEqual([])
  })
})

describe("a certificate that does not exist", () => {
  it("show and versions both say so, exit 1 (Key Vault lists its versions as empty, not 404)", async () => {
    type Problems = { error: { title: string; problems: Array<{ field: string }> } }
    for (const command of ["show", "versions"]) {
      const target = world.targetFile("never-existed")
      const r = await runCli([command, "--config", target, "--json"], {
        env: world.env,
      })
      expect(r.code, `${command}: ${r.stdout}`).toBe(1)
      expect(json<Problems>(r).error.title).toContain("never-existed")
      expect(r.stdout).toContain("does not exist")
      // The name came from the target file: its field is named, as the file's other fields are.
      expect(json<Problems>(r).error.problems.map((p) => p.field)).toEqual([`${target}: certificate_name`])
      // Given with --name (over the file's): the flag.
      const flagged = await runCli([command, "--config", target, "--name", "never-named", "--json"], {
        env: world.env,
      })
      expect(flagged.code, `${command}: ${flagged.stdout}`).toBe(1)
      expect(json<Problems>(flagged).error.problems.map((p) => p.field)).toEqual(["--name"])
    }
  })

  it("a cloud.keyvault_resource that is not the vault's: show and doctor name it and the vault URL as the fix, not the credential (1)", async () => {
    const served = world.emulator.targetConfig(world.vault, "other-resource", "clientSecret") as {
      cloud: Record<string, unknown>
    }
    const target = world.targetFile("other-resource", {
      cloud: { ...served.cloud, keyvault_resource: "https://vault.elsewhere.example" },
    })
    const mark = world.emulator.requests.mark()
    const shown = await runCli(["show", "--config", target, "--json"], { env: world.env })
    expect(shown.code, shown.stdout).toBe(1)
    const error = json<{ error: { problems: Array<{ message: string; fix: string }> } }>(shown).error
    expect(JSON.stringify(error)).toContain("and the vault asked for https://vault.azure.net/.default")
    // It said to check the client secret, which was fine.
    expect(error.problems.map((p) => p.fix)).toEqual([
      expect.stringMatching(
        /^the vault asked for a token for another resource than the target cloud's keyvault_resource .*the credential is not in question/,
      ),
    ])
    expect(JSON.stringify(error)).not.toContain("AZURE_CLIENT_SECRET")
    type Check = { check: string; status: string; fix?: string }
    const doctor = await runCli(["doctor", "--config", target, "--json"], { env: world.env })
    expect(doctor.code, doctor.stdout).toBe(1)
    const get = json<{ checks: Array<Check> }>(doctor).checks.find((c) => c.check === "certificates/get")
    expect(get?.status).toBe("fail")
    expect(get?.fix).toMatch(/set cloud\.keyvault_resource to the resource its challenge names/)
    // Said once: the later checks are not run into the same refusal (they failed, or said "forbidden").
    const later = json<{ checks: Array<Check> }>(doctor).checks.filter((c) =>
      ["certificates/import", "certificates/list", "secrets/get"].includes(c.check),
    )
    expect(later.map((c) => c.status)).toEqual(["skip", "skip", "skip"])
    // No token was asked for: only the body-less challenges reached the vault.
    expect(
      world.emulator.requests.entries({ since: mark, vault: world.vault }).filter((e) => !e.challenge),
    ).toEqual([])
  })

  it("show and versions on a soft-deleted name: named as soft-deleted with the way back, not as absent (1)", async () => {
    const name = "show-deleted"
    await importThenSoftDelete(name)
    for (const command of ["show", "versions"]) {
      const target = world.targetFile(name)
      const r = await runCli([command, "--config", target, "--json"], { env: world.env })
      expect(r.code, `${command}: ${r.stdout}`).toBe(1)
      const error = json<{
        error: { title: string; problems: Array<{ field: string; message: string; fix: string }> }
      }>(r).error
      expect(error.title).toBe(`${name} is soft-deleted in ${world.emulator.vault(world.vault).url}`)
      expect(error.problems[0]?.field).toBe(`${target}: certificate_name`)
      expect(error.problems[0]?.message).toMatch(/was deleted \d{4}-\d\d-\d\dT.* and is purged after \d{4}-/)
      expect(error.problems[0]?.fix).toContain("--on-soft-deleted recover")
      expect(r.stdout).not.toContain("does not exist")
    }
    // When the deleted certificate may not be read (403) it is "does not exist", as before; when it
    // cannot be read for another reason, that is said beside it.
    for (const [status, said] of [
      [403, /^no certificate named show-deleted$/],
      [
        400,
        /^no certificate named show-deleted \(whether a soft-deleted one holds the name could not be read: /,
      ],
    ] as const) {
      const fault = world.emulator.faults.add({
        operation: "getDeleted",
        name,
        times: "always",
        action: {
          kind: "status",
          status,
          code: status === 403 ? "Forbidden" : "BadParameter",
          message: "injected",
        },
      })
      const r = await runCli(["show", "--config", world.targetFile(name), "--json"], { env: world.env })
      world.emulator.faults.remove(fault)
      expect(r.code, r.stdout).toBe(1)
      const error = json<{ error: { title: string; problems: Array<{ message: string }> } }>(r).error
      expect(error.title).toContain("does not exist")
      expect(error.problems[0]?.message).toMatch(said)
    }
  })

  it("verify on a soft-deleted name: no (1), named as soft-deleted with the way back, as show says it", async () => {
    const name = "verify-deleted"
    const leaf = await importAsKvdeploy(name)
    await softDelete(name)
    const shown = json<{ error: { problems: Array<{ message: string; fix: string }> } }>(
      await runCli(["show", "--config", world.targetFile(name), "--json"], { env: world.env }),
    ).error.problems[0]
    const r = await runCli(["verify", "--config", world.targetFile(name), "--cert", "-", "--json"], {
      stdin: leaf.certPem,
      env: world.env,
    })
    expect(r.code, r.stdout + r.stderr).toBe(1)
    const check = json<{ serves: boolean; checks: Array<{ detail: string; fix?: string }> }>(r).checks[0]
    expect(check?.detail).toBe(`the certificate is soft-deleted: ${shown?.message}`)
    expect(check?.fix).toBe(shown?.fix)
    expect(check?.fix).toContain("--on-soft-deleted recover")
    const text = await runCli(["verify", "--config", world.targetFile(name), "--cert", "-"], {
      stdin: leaf.certPem,
      env: world.env,
    })
    expect(text.code).toBe(1)
    expect(text.stdout).toMatch(
      /✗ vault +\S+ verify-deleted: the certificate is soft-deleted: verify-deleted was deleted /,
    )
    expect(text.stdout).toContain("fix: deploy with --on-soft-deleted recover")
    expect(text.stdout).not.toContain("does not exist")
    // A name that never held a certificate is still "does not exist".
    const never = await runCli(["verify", "--config", world.targetFile("verify-never"), "--cert", "-"], {
      stdin: leaf.certPem,
      env: world.env,
    })
    expect(never.code).toBe(1)
    expect(never.stdout).toContain("verify-never: the certificate does not exist")
  })
})

describe("plan", () => {
  it("a name whose soft-deleted state cannot be read: plan says it could not tell, instead of a plain first deploy", async () => {
    const name = "plan-deleted-unread"
    await importThenSoftDelete(name)
    const fault = world.emulator.faults.add({
      operation: "getDeleted",
      name,
      times: "always",
      action: { kind: "status", status: 403, code: "Forbidden", message: "injected" },
    })
    try {
      const leaf = await fx.leaf()
      const planned = json<{ action: string; reason: string; softDeletedUnknown?: string }>(
        await runCli(["plan", ...deployArgs(name).slice(1)], { stdin: fx.bundle(leaf), env: world.env }),
      )
      expect(planned.action).toBe("import")
      expect(planned.softDeletedUnknown).toMatch(/injected|forbidden|certificates\/get/i)
      expect(planned.reason).toMatch(
        /whether a soft-deleted certificate holds the name could not be read \(.+\): if one does, deploy would fail without writing/,
      )
      const text = await runCli(["plan", "--config", world.targetFile(name), "--cert", "-"], {
        stdin: fx.bundle(leaf),
        env: world.env,
      })
      expect(text.stdout).toMatch(
        /current +\(none; whether a soft-deleted one holds the name could not be read\)/,
      )
    } finally {
      world.emulator.faults.remove(fault)
    }
    // Read, it is what it is: soft-deleted.
    expect(
      json<{ action: string; softDeletedUnknown?: string }>(
        await runCli(["plan", ...deployArgs(name).slice(1)], {
          stdin: fx.bundle(await fx.leaf()),
          env: world.env,
        }),
      ),
    ).toMatchObject({ action: "fail-soft-deleted" })
  })

  it("the same certificate with another tag value: plan says why a version would be written, and skip once it is", async () => {
    const name = "plan-tag-only"
    const leaf = await fx.leaf()
    const plan = async (tag: string) =>
      json<{ action: string; reason: string }>(
        await runCli(["plan", "--config", world.targetFile(name), "--cert", "-", "--tag", tag, "--json"], {
          stdin: fx.bundle(leaf),
          env: world.env,
        }),
      )
    expect(
      (await runCli([...deployArgs(name), "--tag", "env=a"], { stdin: fx.bundle(leaf), env: world.env }))
        .code,
    ).toBe(0)
    expect((await plan("env=a")).action).toBe("skip")
    const retag = await plan("env=b")
    expect(retag.action).toBe("import")
    expect(retag.reason).toMatch(
      /^the vault serves this certificate \(\S+\), but without the requested value of tag env: deploy would import the same certificate again as a new version that carries them, then verify/,
    )
    // Served disabled: a new version, enabled (no tags to carry).
    const client = world.sdk()
    const served = await client.getCertificate(name)
    await client.updateCertificateProperties(name, served.properties.version ?? "", { enabled: false })
    expect((await plan("env=a")).reason).toMatch(
      /^the vault serves this certificate \(\S+\), but disabled: deploy would import the same certificate again as a new version, enabled, then verify$/,
    )
    expect((await plan("env=b")).reason).toMatch(
      /but disabled, and without the requested value of tag env: deploy would import the same certificate again as a new version that carries them, enabled, then verify$/,
    )
  })

  it("a soft-deleted certificate kvdeploy did not write: plan says deploy would leave it deleted (unless --adopt)", async () => {
    const name = "plan-foreign-deleted"
    await importAsKvdeploy(name)
    const client = world.sdk()
    const latest = await client.getCertificate(name)
    // Another writer's certificate: kvdeploy's tags gone.
    await client.updateCertificateProperties(name, latest.properties.version ?? "", {
      tags: { owner: "other" },
    })
    await softDelete(name)
    const leaf = await fx.leaf()
    const plan = (extra: Array<string>) =>
      runCli(
        [
          "plan",
          "--config",
          world.targetFile(name),
          "--cert",
          "-",
          "--on-soft-deleted",
          "recover",
          "--json",
          ...extra,
        ],
        {
          stdin: fx.bundle(leaf),
          env: world.env,
        },
      )
    const refused = json<{
      action: string
      reason: string
      writes: number
      newCertificate: { subject: string }
    }>(await plan([]))
    expect(refused.newCertificate.subject).toBe("CN=api.example.test")
    expect(refused.action).toBe("refuse")
    expect(refused.reason).toContain("leave it deleted")
    expect(refused.writes).toBe(0)
    expect(json<{ action: string }>(await plan(["--adopt"])).action).toBe("recover-and-import")
    // And deploy does what plan said: refused, still deleted.
    const deployed = await runCli(deployArgs(name, ["--on-soft-deleted", "recover"]), {
      stdin: fx.bundle(leaf),
      env: world.env,
    })
    expect(deployed.code).toBe(2)
    expect(world.emulator.state.isDeleted(world.vault, name)).toBe(true)
  })

  it("a deleted certificate whose answer does not say which version it holds: plan says deploy would fail without writing, as deploy does", async () => {
    const name = "plan-unsaid-deleted"
    await importAsKvdeploy(name)
    await softDelete(name)
    const fault = world.emulator.faults.add({
      operation: "getDeleted",
      name,
      times: "always",
      action: { kind: "omitFields", fields: ["attributes.created"] },
    })
    try {
      const leaf = await fx.leaf()
      const planned = await runCli(
        ["plan", "--config", world.targetFile(name), "--cert", "-", "--on-soft-deleted", "recover", "--json"],
        { stdin: fx.bundle(leaf), env: world.env },
      )
      const plan = json<{ action: string; writes: number; reason: string }>(planned)
      expect([plan.action, plan.writes]).toEqual(["fail-soft-deleted", 0])
      expect(plan.reason).toContain("whether kvdeploy wrote it is unknown")
      expect(plan.reason).toContain("--adopt")
      const deployed = await runCli(deployArgs(name, ["--on-soft-deleted", "recover"]), {
        stdin: fx.bundle(leaf),
        env: world.env,
      })
      expect(deployed.code, deployed.stdout + deployed.stderr).toBe(1)
      expect(world.emulator.state.isDeleted(world.vault, name)).toBe(true)
    } finally {
      world.emulator.faults.remove(fault)
    }
  })

  it("reads a key from a pipe (a FIFO, as `<(…)` gives) once: the input check before it only looks at files", async () => {
    const leaf = await fx.leaf()
    const cert = world.file("fifo-leaf.pem", leaf.certPem + fx.chainPem)
    const fifo = join(dirname(cert), "fifo-key.pipe")
    execFileSync("mkfifo", [fifo])
    // The writer blocks until the CLI opens the pipe, writes the key once and closes it.
    const writer = spawn("sh", ["-c", 'printf "%s" "$KEY" > "$PIPE"'], {
      env: { PATH: process.env.PATH ?? "", KEY: leaf.keyPem, PIPE: fifo },
      stdio: "ignore",
    })
    const r = await runCli(
      ["plan", "--config", world.targetFile("fifo-key"), "--cert", cert, "--key", fifo, "--json"],
      {
        env: world.env,
      },
    )
    writer.kill()
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(json<{ action: string }>(r).action).toBe("import")
  })

  it("SIGTERM ends a run waiting for the writer of a FIFO (--cert, --key, --config): 130 at once, not a process that lives on", async () => {
    const leaf = await fx.leaf()
    const cert = world.file("fifo-wait-leaf.pem", leaf.certPem + fx.chainPem)
    const key = world.file("fifo-wait-leaf.key", leaf.keyPem)
    const fifo = join(dirname(cert), "fifo-no-writer.pipe")
    execFileSync("mkfifo", [fifo])
    try {
      for (const args of [
        ["plan", "--config", world.targetFile("fifo-wait"), "--cert", fifo, "--key", key],
        ["plan", "--config", world.targetFile("fifo-wait"), "--cert", cert, "--key", fifo],
        ["plan", "--config", fifo, "--cert", cert, "--key", key],
      ]) {
        const startedAt = Date.now()
        let signalledAt = 0
        const r = await runCli(args, {
          env: world.env,
          timeoutMs: 20_000,
          // The open of the FIFO waits for a writer that never comes; SIGTERM comes while it waits.
          started: (child) =>
            void setTimeout(() => {
              signalledAt = Date.now()
              child.kill("SIGTERM")
            }, 2_000),
        })
        expect(r.code, `${args.join(" ")}: ${r.stdout}${r.stderr}`).toBe(130)
        expect(r.stderr).toMatch(
          /interrupted: the command was stopped \(Ctrl\+C or SIGTERM\) before it finished/,
        )
        expect(signalledAt).toBeGreaterThan(startedAt)
        expect(Date.now() - signalledAt).toBeLessThan(5_000)
      }
    } finally {
      rmSync(fifo, { force: true })
    }
  })

  it("warns on stderr of a --key every user may read (the plan runs all the same), not of a 0600 one nor through certbot's 0777 live/ link", async () => {
    const leaf = await fx.leaf()
    const open = mkdtempSync(join(tmpdir(), "kvdeploy-readable-"))
    try {
      chmodSync(open, 0o755)
      const cert = join(open, "cert.pem")
      writeFileSync(cert, leaf.certPem + fx.chainPem)
      const key = join(open, "privkey1.pem")
      writeFileSync(key, leaf.keyPem)
      chmodSync(key, 0o644)
      const link = join(open, "privkey.pem")
      symlinkSync("privkey1.pem", link)
      const plan = (keyPath: string) =>
        runCli(
          ["plan", "--config", world.targetFile("readable-key"), "--cert", cert, "--key", keyPath, "--json"],
          {
            env: world.env,
          },
        )
      const readable = await plan(link)
      expect(readable.code, readable.stdout + readable.stderr).toBe(0)
      expect(readable.stderr).toContain(
        `warning: --key ${key} is readable by every user (mode 0644): any local user can copy the key\n  fix: chmod 600 ${key}`,
      )
      chmodSync(key, 0o600)
      const kept = await plan(link)
      expect(kept.code, kept.stdout + kept.stderr).toBe(0)
      expect(kept.stderr).not.toContain("readable by every user")
    } finally {
      rmSync(open, { recursive: true, force: true })
    }
  })

  it("previews import, skip and refuse without writing", async () => {
    const name = "planned"
    const leaf = await fx.leaf()
    const mark = world.emulator.requests.mark()
    const first = await runCli(["plan", "--config", world.targetFile(name), "--cert", "-", "--json"], {
      stdin: fx.bundle(leaf),
      env: world.env,
    })
    expect(first.code, first.stderr).toBe(0)
    const planned = json<{ action: string; tags: Record<string, string> }>(first)
    expect(planned.action).toBe("import")
    expect(world.writesSince(mark)).toBe(0)
    expect(world.emulator.state.versions(world.vault, name)).toBeUndefined()

    await runCli(deployArgs(name), { stdin: fx.bundle(leaf), env: world.env })
    // The tags the plan named are the tags the deploy wrote (kvdeploy's provenance tags included).
    expect(planned.tags).toMatchObject({ "certctl-managed-by": "certctl", "certctl-certificate-id": name })
    expect(world.emulator.state.versions(world.vault, name)?.at(-1)?.tags).toEqual(planned.tags)
    const again = await runCli(["plan", "--config", world.targetFile(name), "--cert", "-"], {
      stdin: fx.bundle(leaf),
      env: world.env,
    })
    expect(again.code).toBe(0)
    expect(again.stdout).toContain("action      skip")

    await world.emulator.state.foreignImport(world.vault, "foreign-plan")
    const mark2 = world.emulator.requests.mark()
    const refuse = await runCli(
      ["plan", "--config", world.targetFile("foreign-plan"), "--cert", "-", "--json"],
      { stdin: fx.bundle(leaf), env: world.env },
    )
    expect(refuse.code).toBe(2)
    expect(json<{ action: string; reason: string }>(refuse).reason).toContain("certctl-managed-by")
    // With --adopt, the plan is what deploy --adopt would do: take the certificate over.
    const adopt = await runCli(
      ["plan", "--config", world.targetFile("foreign-plan"), "--cert", "-", "--json", "--adopt"],
      { stdin: fx.bundle(leaf), env: world.env },
    )
    expect(adopt.code, adopt.stdout).toBe(0)
    expect(json<{ action: string }>(adopt).action).toBe("import")
    expect(world.writesSince(mark2)).toBe(0)
  })
})

// Its tests run side by side, each against a TLS server of its own: the polling test spends most of
// its time waiting between looks, which the others' runs fill.
describe("verify --endpoint", { concurrent: true }, () => {
  let server: Server
  let port = 0
  let served = ""
  beforeAll(async () => {
    const leaf = await fx.leaf()
    served = leaf.certPem
    server = createServer({ cert: leaf.certPem + fx.chainPem, key: leaf.keyPem })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    port = (server.address() as { port: number }).port
  })
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

  it("answers yes (0) for the certificate the endpoint presents, no (1) otherwise", async () => {
    const yes = await runCli(
      ["verify", "--cert", "-", "--endpoint", `127.0.0.1:${port}`, "--servername", "api.example.test"],
      { stdin: served },
    )
    expect(yes.code, yes.stdout + yes.stderr).toBe(0)
    const no = await runCli(["verify", "--cert", "-", "--endpoint", `127.0.0.1:${port}`, "--json"], {
      stdin: fx.pki.root.certPem,
    })
    expect(no.code).toBe(1)
    expect(json<{ serves: boolean }>(no).serves).toBe(false)
    // No SNI for an IP address, so Node has nothing to warn about (DEP0123).
    expect(no.stderr).not.toContain("DEP0123")
    // With a vault too, both must serve it: the endpoint does, the vault (no such certificate) does not.
    const both = await runCli(
      [
        "verify",
        "--config",
        world.targetFile("never-deployed"),
        "--cert",
        "-",
        "--endpoint",
        `127.0.0.1:${port}`,
        "--json",
      ],
      { stdin: served, env: world.env },
    )
    expect(both.code, both.stdout).toBe(1)
    const verdict = json<{ serves: boolean; checks: Array<{ serves: boolean }> }>(both)
    expect(verdict.serves).toBe(false)
    expect(verdict.checks.map((c) => c.serves).sort()).toEqual([false, true])
  })

  it("names the SNI it sends: none for an IP address (not the address as the name), else the host or --servername", async () => {
    const leaf = await fx.leaf()
    /** A null for each connection, then the SNI name of its handshake when one was sent. */
    const sent: Array<string | null> = []
    const recording = createServer({
      cert: leaf.certPem + fx.chainPem,
      key: leaf.keyPem,
      SNICallback: (servername, callback) => {
        sent.push(servername)
        callback(null, undefined)
      },
    })
    recording.on("connection", () => sent.push(null))
    await new Promise<void>((resolve) => recording.listen(0, "127.0.0.1", resolve))
    const port = (recording.address() as { port: number }).port
    /** The SNI names sent since the last call. */
    const names = () => sent.splice(0).filter((n) => n !== null)
    try {
      const ip = await runCli(["verify", "--cert", "-", "--endpoint", `127.0.0.1:${port}`], {
        stdin: leaf.certPem,
      })
      expect(ip.code, ip.stdout + ip.stderr).toBe(0)
      expect(ip.stdout).toContain(
        `127.0.0.1:${port} (no SNI: 127.0.0.1 is an IP address): presents this certificate`,
      )
      expect(ip.stdout).not.toContain("SNI 127.0.0.1")
      expect(names()).toEqual([])

      const given = await runCli(
        [
          "verify",
          "--cert",
          "-",
          "--endpoint",
          `127.0.0.1:${port}`,
          "--servername",
          "api.example.test",
          "--json",
        ],
        { stdin: leaf.certPem },
      )
      expect(given.code, given.stdout + given.stderr).toBe(0)
      expect(json<{ checks: Array<{ where: string }> }>(given).checks[0]?.where).toBe(
        `127.0.0.1:${port} (SNI api.example.test)`,
      )
      expect(names()).toEqual(["api.example.test"])

      // A host name is sent as given.
      const named = await runCli(["verify", "--cert", "-", "--endpoint", `localhost:${port}`, "--json"], {
        stdin: leaf.certPem,
      })
      expect(named.code, named.stdout + named.stderr).toBe(0)
      expect(json<{ checks: Array<{ where: string }> }>(named).checks[0]?.where).toBe(
        `localhost:${port} (SNI localhost)`,
      )
      expect(names()).toEqual(["localhost"])
    } finally {
      await new Promise<void>((resolve) => recording.close(() => resolve()))
    }
    // An endpoint that cannot be reached is named with what was tried.
    const closed = await runCli(["verify", "--cert", "-", "--endpoint", `127.0.0.1:${port}`, "--json"], {
      stdin: leaf.certPem,
    })
    expect(closed.code, closed.stdout + closed.stderr).toBe(1)
    const check = json<{ checks: Array<{ where: string; detail: string }> }>(closed).checks[0]
    expect(check?.where).toBe(`127.0.0.1:${port} (no SNI: 127.0.0.1 is an IP address)`)
    expect(check?.detail).toContain("ECONNREFUSED")
  })

  it("polls with --timeout: yes once the endpoint switches to the certificate; no, after every look that fits, when it never does", async () => {
    const [before, after] = await Promise.all([fx.leaf(), fx.leaf()])
    const switching = createServer({ cert: before.certPem + fx.chainPem, key: before.keyPem })
    let looks = 0
    // Counted per TCP connection: the CLI closes each as soon as it has the certificate, before the
    // server sees the handshake end. Once the first look is over, the endpoint picks up the new
    // certificate (as a gateway does).
    switching.on("connection", (socket) => {
      looks++
      if (looks === 1)
        socket.once("close", () =>
          switching.setSecureContext({ cert: after.certPem + fx.chainPem, key: after.keyPem }),
        )
    })
    await new Promise<void>((resolve) => switching.listen(0, "127.0.0.1", resolve))
    const at = `127.0.0.1:${(switching.address() as { port: number }).port}`
    try {
      const yes = await runCli(["verify", "--cert", "-", "--endpoint", at, "--timeout", "30s", "--json"], {
        stdin: after.certPem,
      })
      expect(yes.code, yes.stdout + yes.stderr).toBe(0)
      expect(looks).toBe(2)
      expect(json<{ checks: Array<{ detail: string }> }>(yes).checks[0]?.detail).toBe(
        "presents this certificate",
      )
      // Never the certificate: looks 2 seconds apart while one more fits in 3 seconds (at 0 s and 2 s).
      looks = 2 // counted on from the first run's two (the switch happens once)
      const no = await runCli(["verify", "--cert", "-", "--endpoint", at, "--timeout", "3s", "--json"], {
        stdin: before.certPem,
      })
      expect(no.code, no.stdout + no.stderr).toBe(1)
      expect(looks - 2).toBe(2)
      expect(json<{ checks: Array<{ detail: string }> }>(no).checks[0]?.detail).toMatch(
        /^presents another certificate/,
      )
    } finally {
      await new Promise<void>((resolve) => switching.close(() => resolve()))
    }
  })

  it("--timeout is kept when the wall clock is set back while it polls", async () => {
    const [served, other] = await Promise.all([fx.leaf(), fx.leaf()])
    const fixed = createServer({ cert: served.certPem + fx.chainPem, key: served.keyPem })
    await new Promise<void>((resolve) => fixed.listen(0, "127.0.0.1", resolve))
    const at = `127.0.0.1:${(fixed.address() as { port: number }).port}`
    // Loaded before kvdeploy: a second into the run, the wall clock (Date) goes back an hour, as
    // NTP stepping a clock or a VM restored from a snapshot would set it.
    const setBack = world.file(
      "set-back.mjs",
      "const now = Date.now; const start = now(); Date.now = () => { const t = now(); return t - start > 1000 ? t - 3_600_000 : t }\n",
    )
    try {
      const no = await runCli(["verify", "--cert", "-", "--endpoint", at, "--timeout", "4s", "--json"], {
        stdin: other.certPem,
        env: { NODE_OPTIONS: `--import=${setBack}` },
        // Before: the deadline moved back with the clock, and it polled for an hour (killed here).
        timeoutMs: 40_000,
      })
      expect(no.code, no.stdout + no.stderr).toBe(1)
      expect(json<{ checks: Array<{ detail: string }> }>(no).checks[0]?.detail).toMatch(
        /^presents another certificate/,
      )
    } finally {
      await new Promise<void>((resolve) => fixed.close(() => resolve()))
    }
  })
})

describe("emulator files", () => {
  it("writes no environment file (it holds the client secret) when the target file cannot be written", async () => {
    const envFile = join(dirname(world.file("emulator-files.marker", "")), "emulator-files.env")
    const r = await runCli([
      "emulator",
      "--write-env",
      envFile,
      "--write-config",
      "/nonexistent/kvdeploy-test/target.json",
      "--json",
    ])
    expect(r.code, r.stderr).toBe(2)
    expect(r.stdout + r.stderr).toContain(
      "--write-config: /nonexistent/kvdeploy-test/target.json: no such file",
    )
    expect(existsSync(envFile)).toBe(false)
  })
})
