/**
 * Every command of the BUILT kvdeploy against the emulator over HTTPS, with
 * each exit code of the contract: 0 Succeeded/Skipped, 1 Failed, 2 usage or
 * Rejected, 3 RolledBack (through `demo`), 4 Unverified, 5 Superseded.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { createHash, generateKeyPairSync } from "node:crypto"
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs"
import * as https from "node:https"
import { dirname, join } from "node:path"
import { createServer, type Server } from "node:tls"
import { ClientSecretCredential } from "@azure/identity"
import { SecretClient } from "@azure/keyvault-secrets"
import { listening } from "@kvdeploy/core/test"
import { encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { issue } from "../src/cli/throwawayPki.js"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { json, runCli, startWorld, type World } from "./harness.js"

let world: World
let fx: Fixtures

beforeAll(async () => {
  ;[world, fx] = await Promise.all([startWorld(), makeFixtures()])
})
afterAll(async () => {
  await world?.stop()
})

interface Outcome {
  readonly _tag: string
  readonly versionId?: string
  readonly previous?: { readonly versionId: string } | undefined
  readonly newX5t?: string
  readonly problems?: ReadonlyArray<{ field: string; message: string }>
  readonly reason: string
  readonly vaultCalls: number
}

const deployArgs = (name: string, extra: ReadonlyArray<string> = []) => [
  "deploy",
  "--config",
  world.targetFile(name),
  "--cert",
  "-",
  "--json",
  ...extra,
]

/** Soft-delete a certificate through the SDK, as an operator's `az keyvault certificate delete` would. */
const softDelete = async (name: string) => {
  await (await world.sdk().beginDeleteCertificate(name, { intervalInMs: 50 })).pollUntilDone()
  expect(world.emulator.state.isDeleted(world.vault, name)).toBe(true)
}

/**
 * A certificate another tool imported as PEM (key first, as Key Vault's own PEM secrets are), with
 * kvdeploy's tags: its secret is `application/x-pem-file`.
 */
const importAsPem = async (name: string) => {
  const served = await fx.leaf()
  await world
    .sdk()
    .importCertificate(name, new TextEncoder().encode(served.keyPem + served.certPem + fx.chainPem), {
      policy: { contentType: "application/x-pem-file" },
      tags: { "certctl-managed-by": "certctl", "certctl-certificate-id": name },
    })
  return served
}

/** A plain secret (no certificate) named `name`: Key Vault then refuses a certificate of that name (409 Conflict). */
const setPlainSecret = async (name: string) => {
  const credential = new ClientSecretCredential(
    world.env.AZURE_TENANT_ID ?? "",
    world.env.AZURE_CLIENT_ID ?? "",
    world.env.AZURE_CLIENT_SECRET ?? "",
    { authorityHost: world.emulator.authorityHost, disableInstanceDiscovery: true },
  )
  await new SecretClient(world.emulator.vault(world.vault).url, credential, {
    disableChallengeResourceVerification: true,
  }).setSecret(name, "not a certificate")
}

/** Deploy a fresh certificate under `name`, then soft-delete it. */
const deployThenSoftDelete = async (name: string) => {
  expect((await runCli(deployArgs(name), { stdin: fx.bundle(await fx.leaf()), env: world.env })).code).toBe(0)
  await softDelete(name)
}

/** Every command, written out here rather than read from the build so a dropped command fails the tests. */
const commandNames = [
  "deploy",
  "plan",
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
    expect(text).not.toMatch(/PRIVATE KEY|AZURE_CLIENT_SECRET/)
    const promtool = spawn("promtool", ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] })
    const checked = await new Promise<number | null>((resolve) => {
      promtool.on("error", () => resolve(null))
      promtool.on("close", resolve)
      promtool.stdin.end(text)
    })
    if (checked !== null || process.env.CI === "true") expect(checked).toBe(0)
    // A file it cannot write is an input problem, before anything reaches the vault.
    const mark = world.emulator.requests.mark()
    const refused = await runCli(deployArgs(name, ["--metrics-file", "/nonexistent/dir/k.prom"]), {
      stdin: fx.bundle(v1leaf),
      env: world.env,
    })
    expect(refused.code).toBe(2)
    expect(refused.stdout + refused.stderr).toContain(
      "--metrics-file: /nonexistent/dir/k.prom: its directory cannot be written (ENOENT)",
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
    expect((await runCli(deployArgs(name), { stdin: fx.bundle(await fx.leaf()), env: world.env })).code).toBe(
      0,
    )
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

describe("a certificate that does not exist", () => {
  it("show and versions both say so, exit 1 (Key Vault lists its versions as empty, not 404)", async () => {
    for (const command of ["show", "versions"]) {
      const r = await runCli([command, "--config", world.targetFile("never-existed"), "--json"], {
        env: world.env,
      })
      expect(r.code, `${command}: ${r.stdout}`).toBe(1)
      expect(json<{ error: { title: string } }>(r).error.title).toContain("never-existed")
      expect(r.stdout).toContain("does not exist")
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
    await deployThenSoftDelete(name)
    for (const command of ["show", "versions"]) {
      const r = await runCli([command, "--config", world.targetFile(name), "--json"], { env: world.env })
      expect(r.code, `${command}: ${r.stdout}`).toBe(1)
      const error = json<{ error: { title: string; problems: Array<{ message: string; fix: string }> } }>(
        r,
      ).error
      expect(error.title).toBe(`${name} is soft-deleted in ${world.emulator.vault(world.vault).url}`)
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
    const leaf = await fx.leaf()
    expect((await runCli(deployArgs(name), { stdin: fx.bundle(leaf), env: world.env })).code).toBe(0)
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
    await deployThenSoftDelete(name)
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
    expect((await runCli(deployArgs(name), { stdin: fx.bundle(await fx.leaf()), env: world.env })).code).toBe(
      0,
    )
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

describe("outcomes and exit codes", () => {
  it("Rejected (exit 2): a certificate kvdeploy does not manage, until --adopt", async () => {
    const name = "adopt-me"
    await world.emulator.state.foreignImport(world.vault, name)
    const leaf = await fx.leaf()
    const mark = world.emulator.requests.mark()
    const r = await runCli(deployArgs(name), { stdin: fx.bundle(leaf), env: world.env })
    expect(r.code).toBe(2)
    expect(json<Outcome>(r)._tag).toBe("Rejected")
    // A certificate id of its own is no permission to take the certificate over.
    const withId = await runCli(deployArgs(name, ["--certificate-id", "other-id"]), {
      stdin: fx.bundle(leaf),
      env: world.env,
    })
    expect(withId.code, withId.stdout).toBe(2)
    expect(json<Outcome>(withId)._tag).toBe("Rejected")
    expect(world.writesSince(mark)).toBe(0)
    const adopted = await runCli(deployArgs(name, ["--adopt"]), { stdin: fx.bundle(leaf), env: world.env })
    expect(adopted.code, adopted.stdout).toBe(0)
    expect(json<Outcome & { adopted: boolean }>(adopted).adopted).toBe(true)
  })

  it("Failed (exit 1): the vault refuses the import; nothing changed", async () => {
    const name = "refused-import"
    const id = world.emulator.faults.add({
      operation: "import",
      name,
      action: { kind: "status", status: 400, code: "BadParameter", message: "injected" },
    })
    const leaf = await fx.leaf()
    const r = await runCli(deployArgs(name), { stdin: fx.bundle(leaf), env: world.env })
    world.emulator.faults.remove(id)
    expect(r.code).toBe(1)
    expect(json<Outcome>(r)._tag).toBe("Failed")
    expect(world.emulator.state.versions(world.vault, name)).toBeUndefined()
  })

  it("Failed (exit 1) on a soft-deleted name; --on-soft-deleted recover deploys", async () => {
    const name = "soft-deleted"
    await deployThenSoftDelete(name)
    const v2 = await fx.leaf()
    // The plan says so first (exit 1), writing nothing.
    const mark = world.emulator.requests.mark()
    const plan = await runCli(["plan", "--config", world.targetFile(name), "--cert", "-", "--json"], {
      stdin: fx.bundle(v2),
      env: world.env,
    })
    expect(plan.code, plan.stdout).toBe(1)
    expect(json<{ action: string }>(plan).action).toBe("fail-soft-deleted")
    expect(world.writesSince(mark)).toBe(0)
    const failed = await runCli(deployArgs(name), { stdin: fx.bundle(v2), env: world.env })
    expect(failed.code).toBe(1)
    expect(json<Outcome & { step: string }>(failed).step).toBe("soft-deleted")
    // The text's next step is the way out, not "retry as is" (which fails the same way).
    const text = await runCli(
      deployArgs(name).filter((a) => a !== "--json"),
      {
        stdin: fx.bundle(v2),
        env: world.env,
      },
    )
    expect(text.code).toBe(1)
    expect(text.stdout).toMatch(/next {8}deploy again with --on-soft-deleted recover/)
    expect(text.stdout).not.toContain("retried as is")
    const recovered = await runCli(deployArgs(name, ["--on-soft-deleted", "recover"]), {
      stdin: fx.bundle(v2),
      env: world.env,
    })
    expect(recovered.code, recovered.stdout).toBe(0)
    expect(json<Outcome>(recovered)._tag).toBe("Succeeded")
  })

  it("Failed (exit 1): deleted by another writer after the snapshot, the import's answer lost; the next step recovers", async () => {
    const name = "deleted-during-deploy"
    expect((await runCli(deployArgs(name), { stdin: fx.bundle(await fx.leaf()), env: world.env })).code).toBe(
      0,
    )
    const served = world.emulator.state.versions(world.vault, name)?.at(-1)?.version
    // The snapshot is read, then someone deletes the certificate; the vault refuses the import, and
    // the connection drops before its answer.
    const mark = world.emulator.requests.mark()
    const deletes = world.emulator.faults.add({
      operation: "getLatest",
      name,
      action: { kind: "foreignDelete", when: "after" },
    })
    const drops = world.emulator.faults.add({ operation: "import", name, action: { kind: "dropAnswer" } })
    const v2 = await fx.leaf()
    const failed = await runCli(
      deployArgs(name, ["--on-soft-deleted", "recover"]).filter((a) => a !== "--json"),
      { stdin: fx.bundle(v2), env: world.env },
    )
    world.emulator.faults.remove(deletes)
    world.emulator.faults.remove(drops)
    expect(failed.code, failed.stdout).toBe(1)
    const imports = world.emulator.requests
      .entries({ since: mark, operation: "import" })
      .filter((e) => !e.challenge)
    expect(imports.map((e) => [e.dropped, e.errorCode])).toEqual([[true, "Conflict"]])
    expect(failed.stdout).toContain(`while its latest version was still ${served}`)
    expect(failed.stdout).toMatch(/failed at {3}reconcile \(VaultConflictSoftDeleted\)/)
    expect(failed.stdout).toMatch(
      /next {8}kvdeploy concluded that nothing was written: deploy again; with --on-soft-deleted recover/,
    )
    // Nothing written, nothing recovered: the certificate is still deleted, with its one version.
    expect(world.emulator.state.versions(world.vault, name)).toBeUndefined()
    expect(world.emulator.state.versions(world.vault, name, { includeDeleted: true })).toHaveLength(1)
    const recovered = await runCli(deployArgs(name, ["--on-soft-deleted", "recover"]), {
      stdin: fx.bundle(v2),
      env: world.env,
    })
    expect(recovered.code, recovered.stdout).toBe(0)
    expect(json<Outcome & { recovered: string }>(recovered).recovered).toBe("recovered")
    expect(world.emulator.state.versions(world.vault, name)).toHaveLength(2)
  })

  it("Failed (exit 1) on a name a plain secret holds: the next step names the secret, not a retry or the version list", async () => {
    const name = "held-by-secret"
    await setPlainSecret(name)
    // plan reads no secret (it would fetch its value): it says import, and that it did not look.
    const planned = await runCli(["plan", ...deployArgs(name).slice(1)], {
      stdin: fx.bundle(await fx.leaf()),
      env: world.env,
    })
    expect(json<{ action: string; reason: string }>(planned)).toMatchObject({
      action: "import",
      reason: `first deploy: no certificate is served under this name (a key or a secret named ${name} would make the import fail: plan reads neither; \`kvdeploy doctor\` checks)`,
    })
    const r = await runCli(deployArgs(name), { stdin: fx.bundle(await fx.leaf()), env: world.env })
    expect(r.code, r.stdout).toBe(1)
    const o = json<Outcome & { error: string; code: string }>(r)
    expect([o.error, o.code]).toEqual(["VaultRequestRejected", "Conflict"])
    const text = await runCli(
      deployArgs(name).filter((a) => a !== "--json"),
      { stdin: fx.bundle(await fx.leaf()), env: world.env },
    )
    expect(text.stdout).toMatch(
      /next {8}Key Vault refused the import as a conflict \(the reason says why\): when a key or secret of this name exists/,
    )
    expect(text.stdout).toContain("There is already a secret with the name")
    expect(text.stdout).not.toContain("kvdeploy versions")
    expect(world.emulator.state.versions(world.vault, name)).toBeUndefined()
  })

  it("Failed (exit 1) on a denied import: the next step is the grant, not a retry", async () => {
    const name = "import-denied"
    world.emulator.rbac.deny(world.env.AZURE_CLIENT_ID ?? "", ["certificates/import"])
    const r = await runCli(
      deployArgs(name).filter((a) => a !== "--json"),
      {
        stdin: fx.bundle(await fx.leaf()),
        env: world.env,
      },
    )
    world.emulator.rbac.reset()
    expect(r.code, r.stdout).toBe(1)
    expect(r.stdout).toMatch(/next {8}grant what the reason names/)
    expect(r.stdout).toContain("certificates/import")
    expect(r.stdout).not.toContain("retried as is")
    expect(world.emulator.state.versions(world.vault, name)).toBeUndefined()
  })

  it("a recovered certificate whose import is then refused: exit 1, and the output says it was recovered", async () => {
    const name = "recovered-refused"
    await deployThenSoftDelete(name)
    // The first import answers 409 (soft-deleted); the one after the recovery is refused.
    const id = world.emulator.faults.add({
      operation: "import",
      vault: world.vault,
      name,
      skip: 1,
      action: { kind: "status", status: 400, code: "BadParameter", message: "refused for the test" },
    })
    const args = deployArgs(name, ["--on-soft-deleted", "recover"]).filter((a) => a !== "--json")
    const r = await runCli(args, { stdin: fx.bundle(await fx.leaf()), env: world.env })
    world.emulator.faults.remove(id)
    expect(r.code, r.stdout).toBe(1)
    expect(world.emulator.state.isDeleted(world.vault, name)).toBe(false)
    expect(r.stdout).toContain("no version was written, but the soft-deleted certificate was recovered")
    expect(r.stdout).toMatch(/recovered {3}the soft-deleted certificate was recovered/)
    expect(r.stdout).not.toContain("the vault is unchanged by this deploy")
    const asJson = await runCli(deployArgs(name), { stdin: fx.bundle(await fx.leaf()), env: world.env })
    expect(json<Outcome>(asJson)._tag).toBe("Succeeded")
    expect(json<Outcome & { recovered?: string }>(asJson).recovered).toBeUndefined()
  })

  it("Superseded (exit 5): another writer imports right after ours; not clobbered", async () => {
    const name = "superseded"
    const id = world.emulator.faults.add({
      operation: "import",
      name,
      action: { kind: "foreignImport", when: "after" },
    })
    const leaf = await fx.leaf()
    const r = await runCli(deployArgs(name), { stdin: fx.bundle(leaf), env: world.env })
    world.emulator.faults.remove(id)
    expect(r.code, r.stdout).toBe(5)
    expect(json<Outcome>(r)._tag).toBe("Superseded")
  })

  it("Unverified (exit 4): the vault cannot be read back after the import", async () => {
    const name = "unverified"
    const id = world.emulator.faults.add({
      operation: "getLatest",
      name,
      skip: 1,
      times: "always",
      action: { kind: "status", status: 403, code: "Forbidden", message: "injected: read revoked" },
    })
    const leaf = await fx.leaf()
    const r = await runCli(deployArgs(name), { stdin: fx.bundle(leaf), env: world.env })
    world.emulator.faults.remove(id)
    expect(r.code, r.stdout).toBe(4)
    expect(json<Outcome>(r)._tag).toBe("Unverified")
  })

  it("RolledBack (exit 3): the new version is disabled between import and verify; the previous one is restored", async () => {
    const name = "rolled-back"
    const v1 = await fx.leaf()
    expect((await runCli(deployArgs(name), { stdin: fx.bundle(v1), env: world.env })).code).toBe(0)
    // The verify read (the second getLatest of the next deploy) waits 3 s; meanwhile another actor disables the new version.
    const id = world.emulator.faults.add({
      operation: "getLatest",
      name,
      skip: 1,
      times: 1,
      action: { kind: "delay", ms: 3000 },
    })
    const mark = world.emulator.requests.mark()
    const v2 = await fx.leaf()
    const running = runCli(deployArgs(name), { stdin: fx.bundle(v2), env: world.env })
    const deadline = Date.now() + 60_000
    while (
      world.emulator.requests.count({ since: mark, vault: world.vault, operation: "import", status: 200 }) ===
      0
    ) {
      if (Date.now() > deadline) throw new Error("the deploy never imported")
      await new Promise((r) => setTimeout(r, 50))
    }
    const imported = world.emulator.state.versions(world.vault, name)?.at(-1)
    await world.sdk().updateCertificateProperties(name, imported?.version ?? "", { enabled: false })
    const r = await running
    world.emulator.faults.remove(id)
    expect(r.code, r.stdout + r.stderr).toBe(3)
    const o = json<Outcome & { failedVersionId: string; rollbackVersionId: string; rollbackSource: string }>(
      r,
    )
    expect(o._tag).toBe("RolledBack")
    expect(o.failedVersionId).toBe(imported?.version)
    const versions = world.emulator.state.versions(world.vault, name) ?? []
    const latest = versions.at(-1)
    expect(latest?.x5t).toBe(versions[0]?.x5t)
    expect(latest?.tags?.["certctl-rollback-of"]).toBe(imported?.version)
    const history = await runCli(["versions", "--config", world.targetFile(name)], { env: world.env })
    expect(history.stdout).toContain(`rollback of ${(imported?.version ?? "").slice(0, 12)}`)
    // Creation times say their zone, as show's ISO times do.
    expect(history.stdout).toMatch(/ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC {2}expires /)
  })

  it("Ctrl+C before the import stops the deploy (130, nothing written); SIGTERM after it waits for the rollback and reports it (3)", async () => {
    /** Wait until fault `id` has held a request, send `signal` to the deploy, and release the request 0.3 s later. */
    const signalWhenHeld = (id: string, signal: NodeJS.Signals) => (child: ChildProcess) => {
      const deadline = Date.now() + 60_000
      const poll = setInterval(() => {
        const hits = world.emulator.faults.list().find((f) => f.id === id)?.hits ?? 0
        if (hits > 0 || Date.now() > deadline) {
          clearInterval(poll)
          child.kill(signal)
          setTimeout(() => world.emulator.faults.release(id), 300)
        }
      }, 25)
    }
    // Before the import: the snapshot read is held, and Ctrl+C stops the deploy there.
    const before = "interrupt-before-import"
    const snapshot = world.emulator.faults.add({
      operation: "getLatest",
      name: before,
      times: 1,
      action: { kind: "hold", timeoutMs: 20_000 },
    })
    let mark = world.emulator.requests.mark()
    const stopped = await runCli(deployArgs(before), {
      stdin: fx.bundle(await fx.leaf()),
      env: world.env,
      started: signalWhenHeld(snapshot, "SIGINT"),
    })
    expect(stopped.code, stopped.stderr).toBe(130)
    // --json: stdout is still one JSON document, saying so (a log of documents gets this run's).
    const interrupted = JSON.parse(stopped.stdout) as {
      error: { title: string; exitCode: number; problems: ReadonlyArray<{ message: string }> }
    }
    expect(interrupted.error.title).toBe("interrupted")
    expect(interrupted.error.exitCode).toBe(130)
    expect(interrupted.error.problems[0]?.message).toContain("wrote nothing")
    expect(world.writesSince(mark, before)).toBe(0)
    expect(world.emulator.state.versions(world.vault, before) ?? []).toEqual([])
    // Without --json, a line on stderr says it, and stdout stays empty.
    const textual = world.emulator.faults.add({
      operation: "getLatest",
      name: before,
      times: 1,
      action: { kind: "hold", timeoutMs: 20_000 },
    })
    const stoppedText = await runCli(
      deployArgs(before).filter((a) => a !== "--json"),
      { stdin: fx.bundle(await fx.leaf()), env: world.env, started: signalWhenHeld(textual, "SIGTERM") },
    )
    expect(stoppedText.code, stoppedText.stderr).toBe(130)
    expect(stoppedText.stdout).toBe("")
    expect(stoppedText.stderr).toMatch(
      /interrupted: the command was stopped \(Ctrl\+C or SIGTERM\) before it finished/,
    )

    // After it: the import lands and is disabled (its verify finds it wrong); the rollback's read of
    // the previous version's secret is held, and SIGTERM comes then. The rollback runs to its end.
    const after = "interrupt-after-import"
    expect(
      (await runCli(deployArgs(after), { stdin: fx.bundle(await fx.leaf()), env: world.env })).code,
    ).toBe(0)
    world.emulator.faults.add({
      operation: "import",
      name: after,
      times: 1,
      action: { kind: "disableAfterCommit" },
    })
    const secret = world.emulator.faults.add({
      operation: "getSecret",
      name: after,
      times: 1,
      action: { kind: "hold", timeoutMs: 20_000 },
    })
    mark = world.emulator.requests.mark()
    const finished = await runCli(deployArgs(after), {
      stdin: fx.bundle(await fx.leaf()),
      env: world.env,
      started: signalWhenHeld(secret, "SIGTERM"),
    })
    expect(finished.code, finished.stdout + finished.stderr).toBe(3)
    expect(json<Outcome>(finished)._tag).toBe("RolledBack")
    expect(finished.stderr).toContain(
      `interrupted: a write to ${after} was sent; the deploy finishes first (verify, and a rollback when the vault serves something wrong), reports its outcome, then stops`,
    )
    const versions = world.emulator.state.versions(world.vault, after) ?? []
    expect(versions.at(-1)?.tags?.["certctl-rollback-of"]).toBe(versions.at(-2)?.version)
    expect(versions.at(-1)?.enabled).toBe(true)
    expect(world.writesSince(mark, after)).toBe(2)
  })

  it("SIGUSR1 during a deploy does not open Node's inspector: ignored with a line on stderr, and the deploy goes on", async () => {
    const name = "sigusr1-ignored"
    const before = await listening(9229)
    const held = world.emulator.faults.add({
      operation: "getLatest",
      name,
      times: 1,
      action: { kind: "hold", timeoutMs: 20_000 },
    })
    let openWhileHeld: boolean | undefined
    const r = await runCli(deployArgs(name), {
      stdin: fx.bundle(await fx.leaf()),
      env: world.env,
      started: (child: ChildProcess) => {
        const deadline = Date.now() + 60_000
        const poll = setInterval(() => {
          const hits = world.emulator.faults.list().find((f) => f.id === held)?.hits ?? 0
          if (hits === 0 && Date.now() < deadline) return
          clearInterval(poll)
          child.kill("SIGUSR1")
          // Node opens the inspector at once on the signal: half a second is ample to see it.
          setTimeout(async () => {
            openWhileHeld = await listening(9229)
            world.emulator.faults.release(held)
          }, 500)
        }, 25)
      },
    })
    expect(r.code, r.stderr).toBe(0)
    expect(json<Outcome>(r)._tag).toBe("Succeeded")
    expect(r.stderr).toContain("kvdeploy: SIGUSR1 ignored")
    expect(r.stderr).not.toContain("Debugger listening")
    expect(openWhileHeld).toBeDefined()
    if (!before) expect(openWhileHeld).toBe(false)
  })

  it("--previous-key: without secrets/get, the operator's kept key restores the previous version (exit 3); without it, RollbackFailed (exit 4)", async () => {
    const client = world.env.AZURE_CLIENT_ID ?? ""
    const deployWrong = async (name: string, extra: ReadonlyArray<string> = []) => {
      // The version each deploy imports is disabled right after: its verify sees it wrong.
      world.emulator.faults.add({ operation: "import", name, action: { kind: "disableAfterCommit" } })
      return runCli(deployArgs(name, extra), { stdin: fx.bundle(await fx.leaf()), env: world.env })
    }
    const v1 = await fx.leaf()
    for (const name of ["previous-key-none", "previous-key"])
      expect((await runCli(deployArgs(name), { stdin: fx.bundle(v1), env: world.env })).code).toBe(0)
    // plan says whether the key is the served certificate's, before any rollback needs it.
    const planned = async (key: string) => {
      const p = json<{ previousKey: string; action: string }>(
        await runCli(
          ["plan", ...deployArgs("previous-key").slice(1), "--previous-key", world.file("k.key", key)],
          {
            stdin: fx.bundle(await fx.leaf()),
            env: world.env,
          },
        ),
      )
      return [p.previousKey, p.action]
    }
    const otherKey = (await fx.leaf()).keyPem
    expect(await planned(v1.keyPem)).toEqual(["matches", "import"])
    expect(await planned(otherKey)).toEqual(["does-not-match", "refuse"])
    // Deploy refuses that key as plan said, before it writes: its rollback could not use it.
    const before = world.emulator.state.versions(world.vault, "previous-key")?.length
    const refused = await runCli(
      deployArgs("previous-key", ["--previous-key", world.file("other.key", otherKey)]),
      {
        stdin: fx.bundle(await fx.leaf()),
        env: world.env,
      },
    )
    expect(refused.code, refused.stdout + refused.stderr).toBe(2)
    const ro = json<Outcome & { problems: Array<{ field: string; fix: string }> }>(refused)
    expect(ro._tag).toBe("Rejected")
    expect(ro.problems.map((p) => p.field)).toEqual(["previousKey"])
    expect(ro.problems[0]?.fix).toMatch(/give the key of the version the vault serves now/)
    // The text names the flag.
    const shown = await runCli(
      [
        "deploy",
        "--config",
        world.targetFile("previous-key"),
        "--cert",
        "-",
        "--previous-key",
        world.file("other.key", otherKey),
      ],
      { stdin: fx.bundle(await fx.leaf()), env: world.env },
    )
    expect(shown.code).toBe(2)
    expect(shown.stdout).toMatch(/--previous-key: cannot restore the version the vault serves now/)
    expect(world.emulator.state.versions(world.vault, "previous-key")?.length).toBe(before)
    world.emulator.rbac.deny(client, ["secrets/get"])
    try {
      const none = await deployWrong("previous-key-none")
      expect(none.code, none.stdout).toBe(4)
      expect(json<Outcome>(none).reason).toMatch(
        /previous key unavailable: grant secrets\/get or keep key history/,
      )
      const r = await deployWrong("previous-key", ["--previous-key", world.file("v1.key", v1.keyPem)])
      expect(r.code, r.stdout + r.stderr).toBe(3)
      expect(json<Outcome & { rollbackSource: string }>(r).rollbackSource).toBe("caller-key")
      const versions = world.emulator.state.versions(world.vault, "previous-key") ?? []
      // The previous certificate again, with its chain (the new material's, which issues it).
      expect(versions.at(-1)?.x5t).toBe(versions[0]?.x5t)
      expect(versions.at(-1)?.certificates.length).toBe(versions[0]?.certificates.length)
      expect(versions[0]?.certificates.length).toBeGreaterThan(1)
    } finally {
      world.emulator.rbac.reset()
    }
  })

  it("a certificate whose secret is PEM: keep (the default) imports PEM; --content-type pkcs12 changes it, as plan says", async () => {
    const name = "pem-secret"
    await importAsPem(name)
    expect(world.emulator.state.versions(world.vault, name)?.at(-1)?.contentType).toBe(
      "application/x-pem-file",
    )
    type Planned = {
      action: string
      contentType?: { imported: string; served?: string; change: string }
      contentTypeChange?: { from: string; to: string }
    }
    const renewal = await fx.leaf()
    // keep: plan and deploy keep PEM, and say so.
    const kept = json<Planned>(
      await runCli(["plan", ...deployArgs(name).slice(1)], { stdin: fx.bundle(renewal), env: world.env }),
    )
    expect(kept.action).toBe("import")
    expect(kept.contentType).toEqual({
      imported: "application/x-pem-file",
      served: "application/x-pem-file",
      change: "kept",
    })
    expect(kept.contentTypeChange).toBeUndefined()
    const keptText = await runCli(["plan", "--config", world.targetFile(name), "--cert", "-"], {
      stdin: fx.bundle(renewal),
      env: world.env,
    })
    expect(keptText.stdout).toMatch(/content +PEM \(application\/x-pem-file\), as the vault serves it/)
    const keptDeploy = await runCli(deployArgs(name), { stdin: fx.bundle(renewal), env: world.env })
    expect(keptDeploy.code, keptDeploy.stdout + keptDeploy.stderr).toBe(0)
    expect(json<Outcome & { contentType?: unknown }>(keptDeploy).contentType).toEqual(kept.contentType)
    expect(world.emulator.state.versions(world.vault, name)?.at(-1)?.contentType).toBe(
      "application/x-pem-file",
    )

    // pkcs12: plan says the secret turns PKCS#12; deploy does it and notes it.
    const next = await fx.leaf()
    const asPkcs12 = ["--content-type", "pkcs12"]
    const planned = json<Planned>(
      await runCli(["plan", ...deployArgs(name, asPkcs12).slice(1)], {
        stdin: fx.bundle(next),
        env: world.env,
      }),
    )
    expect(planned.action).toBe("import")
    expect(planned.contentTypeChange).toEqual({ from: "application/x-pem-file", to: "application/x-pkcs12" })
    const text = await runCli(["plan", "--config", world.targetFile(name), "--cert", "-", ...asPkcs12], {
      stdin: fx.bundle(next),
      env: world.env,
    })
    expect(text.stdout).toMatch(
      /content +the secret is PEM \(application\/x-pem-file\) now; the import writes PKCS#12/,
    )
    const r = await runCli(deployArgs(name, asPkcs12), { stdin: fx.bundle(next), env: world.env })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(json<Outcome & { decisions: string[] }>(r).decisions.join("\n")).toMatch(
      /content type: the vault serves this certificate's secret as PEM/,
    )
    expect(world.emulator.state.versions(world.vault, name)?.at(-1)?.contentType).toBe("application/x-pkcs12")
    // Once PKCS#12, plan (keep) says nothing changes.
    const again = json<Planned>(
      await runCli(["plan", ...deployArgs(name).slice(1)], {
        stdin: fx.bundle(await fx.leaf()),
        env: world.env,
      }),
    )
    expect(again.contentTypeChange).toBeUndefined()
    expect(again.contentType?.change).toBe("kept")
  })

  it("warnings: an expired intermediate, and a CA-issued leaf without its chain, deploy with a warning each", async () => {
    const name = "chain-warnings"
    const oldIntermediate = await issue({
      subject: "CN=retired intermediate CA",
      ca: true,
      issuer: fx.pki.root,
      notBeforeDays: -400,
      notAfterDays: -10,
    })
    const leaf = await issue({ subject: "CN=api.example.test", issuer: oldIntermediate })
    const expiredChain = leaf.certPem + oldIntermediate.certPem + fx.pki.root.certPem + leaf.keyPem
    type Warned = { warnings?: Array<{ field: string; message: string; fix: string }> }
    const planned = json<Warned & { action: string }>(
      await runCli(["plan", ...deployArgs(name).slice(1)], { stdin: expiredChain, env: world.env }),
    )
    expect(planned.action).toBe("import")
    expect(planned.warnings?.map((w) => w.field)).toEqual(["chain[0]"])
    expect(planned.warnings?.[0]?.message).toMatch(/^CN=retired intermediate CA expired at /)
    const deployed = await runCli(deployArgs(name), { stdin: expiredChain, env: world.env })
    expect(deployed.code, deployed.stdout).toBe(0)
    expect(json<Outcome & Warned>(deployed).warnings).toEqual(planned.warnings)
    // A leaf and its key alone (cert.pem where fullchain.pem belongs), in text.
    const renewal = await fx.leaf()
    const text = await runCli(["deploy", "--config", world.targetFile(name), "--cert", "-"], {
      stdin: renewal.certPem + renewal.keyPem,
      env: world.env,
    })
    expect(text.code, text.stdout).toBe(0)
    expect(text.stdout).toMatch(
      /warning +chain: none given, and the leaf is issued by CN=kvdeploy test intermediate CA/,
    )
    expect(text.stdout).toMatch(
      /fix: give the issuer's chain with the leaf \(an ACME client's fullchain\.pem/,
    )
    // With its chain, no warning.
    const clean = json<Outcome & Warned>(
      await runCli(deployArgs(name), { stdin: fx.bundle(await fx.leaf()), env: world.env }),
    )
    expect(clean._tag).toBe("Succeeded")
    expect(clean.warnings).toBeUndefined()
  })

  it("content_type keep, a PFX over Key Vault's limit whose PEM fits, over a soft-deleted certificate: plan and deploy follow its content type (PEM: recover and import PEM; PKCS#12: refuse, left deleted)", async () => {
    // A chain long enough that the PFX is over 19,200 bytes while the PEM stays under 25,600.
    const extra: Array<Awaited<ReturnType<typeof issue>>> = []
    let issuer = fx.pki.intermediate
    const leafOf = () => issue({ subject: "CN=api.example.test", issuer })
    let leaf = await leafOf()
    const materialOf = (l: typeof leaf) => ({
      leaf: new Uint8Array(l.certificate.rawData),
      chain: [...extra]
        .reverse()
        .map((c) => new Uint8Array(c.certificate.rawData))
        .concat([fx.pki.intermediate, fx.pki.root].map((c) => new Uint8Array(c.certificate.rawData))),
      key: Redacted.make(l.pkcs8),
    })
    const pfxSize = async (l: typeof leaf) =>
      (
        await Effect.runPromise(
          encodePfx(materialOf(l), { encoding: "modern", password: Redacted.make(""), iterations: 1 }),
        )
      ).byteLength
    // Whole certificates while one more fits, then names on the leaf, a few bytes at a time.
    while ((await pfxSize(leaf)) <= 18_700) {
      issuer = await issue({ subject: `CN=p${extra.length}`, ca: true, issuer })
      extra.push(issuer)
      leaf = await leafOf()
    }
    const names: Array<string> = []
    while ((await pfxSize(leaf)) <= 19_200) {
      names.push(`n${names.length}.example.test`)
      leaf = await issue({ subject: "CN=api.example.test", issuer, dnsNames: names })
    }
    const bundle = (l: typeof leaf) =>
      l.certPem +
      [...extra]
        .reverse()
        .map((c) => c.certPem)
        .join("") +
      fx.chainPem +
      l.keyPem
    expect(bundle(leaf).length).toBeLessThan(25_400)
    const recover = ["--on-soft-deleted", "recover"]
    type Planned = { action: string; reason: string; contentType?: { imported: string; change: string } }
    const plan = async (name: string, extra: ReadonlyArray<string> = recover) =>
      json<Planned>(
        await runCli(["plan", ...deployArgs(name, extra).slice(1)], {
          stdin: bundle(leaf),
          env: world.env,
        }),
      )
    // on_soft_deleted fail (the default): plan and deploy agree, and a purge is never the remedy
    // (it would make a first deploy, which imports PKCS#12, over the limit).
    const failing = async (name: string, action: string, code: number, reason: RegExp) => {
      const planned = await plan(name, [])
      expect(planned.action, planned.reason).toBe(action)
      expect(planned.reason).toMatch(reason)
      expect(planned.reason).not.toMatch(/or purge it/)
      const deployed = await runCli(deployArgs(name), { stdin: bundle(leaf), env: world.env })
      expect(deployed.code, deployed.stdout).toBe(code)
      expect(json<Outcome>(deployed).reason).toMatch(reason)
      expect(world.emulator.state.isDeleted(world.vault, name)).toBe(true)
    }

    // Deleted as PEM: with fail, the recovery is the remedy; with recover, recovered, then imported as PEM.
    await importAsPem("big-pem-deleted")
    await softDelete("big-pem-deleted")
    await failing(
      "big-pem-deleted",
      "fail-soft-deleted",
      1,
      /is soft-deleted.*a recovery would serve its secret as PEM, which this material fits; .*recover.*purging it would make (this )?a first deploy, which imports PKCS#12, over the limit/,
    )
    const mark = world.emulator.requests.mark()
    const pemPlan = await plan("big-pem-deleted")
    expect(pemPlan.action, pemPlan.reason).toBe("recover-and-import")
    expect(pemPlan.contentType).toMatchObject({ imported: "application/x-pem-file", change: "kept" })
    expect(world.writesSince(mark)).toBe(0)
    const deployed = await runCli(deployArgs("big-pem-deleted", recover), {
      stdin: bundle(leaf),
      env: world.env,
    })
    expect(deployed.code, deployed.stdout).toBe(0)
    const outcome = json<Outcome & { recovered?: string; contentType?: { imported: string } }>(deployed)
    expect(outcome.recovered).toBe("recovered")
    expect(outcome.contentType?.imported).toBe("application/x-pem-file")

    // Deleted as PKCS#12 (kvdeploy's own first deploy): refused, left deleted, by plan and deploy.
    await deployThenSoftDelete("big-pkcs12-deleted")
    await failing(
      "big-pkcs12-deleted",
      "refuse",
      2,
      /is soft-deleted.*neither a recovery \(its secret PKCS#12.*nor a purge \(a first deploy imports PKCS#12\) would let this material be imported/,
    )
    const pfxPlan = await plan("big-pkcs12-deleted")
    expect(pfxPlan.action).toBe("refuse")
    expect(pfxPlan.reason).toMatch(
      /serves its secret as PKCS#12, which content_type keep keeps: deploy would refuse it before recovering, leave the certificate deleted and write nothing \(fix: shorten the chain.*; or set content_type: pem once /,
    )
    const refused = await runCli(deployArgs("big-pkcs12-deleted", recover), {
      stdin: bundle(leaf),
      env: world.env,
    })
    expect(refused.code, refused.stdout).toBe(2)
    expect(json<Outcome>(refused).reason).toMatch(
      /which content_type keep keeps; the import would be refused, so it was left deleted/,
    )
    expect(world.emulator.state.isDeleted(world.vault, "big-pkcs12-deleted")).toBe(true)
  })

  it("a soft-deleted PEM certificate: plan and deploy judge the previous key and the content type on what a recovery brings back", async () => {
    const name = "pem-deleted"
    const served = await importAsPem(name)
    await softDelete(name)
    const recover = ["--on-soft-deleted", "recover"]
    const wrongKey = world.file("pem-deleted-wrong.key", (await fx.leaf()).keyPem)
    const rightKey = world.file("pem-deleted-right.key", served.keyPem)
    const renewal = await fx.leaf()
    type Planned = {
      action: string
      reason: string
      writes: number
      previousKey?: string
      contentTypeChange?: { from: string; to: string }
    }
    const plan = async (leaf: typeof renewal, extra: Array<string>) =>
      json<Planned>(
        await runCli(["plan", ...deployArgs(name, [...recover, ...extra]).slice(1)], {
          stdin: fx.bundle(leaf),
          env: world.env,
        }),
      )
    const mark = world.emulator.requests.mark()
    // The deleted certificate is this one already: recovered, nothing imported.
    const same = await plan(served, [])
    expect(same.action).toBe("recover")
    expect(same.writes).toBe(1)
    expect(same.contentTypeChange).toBeUndefined()
    // A renewal: recovered and imported over, turning the secret into PKCS#12 (--content-type pkcs12).
    const renewed = await plan(renewal, ["--previous-key", rightKey, "--content-type", "pkcs12"])
    expect(renewed.action).toBe("recover-and-import")
    expect(renewed.previousKey).toBe("matches")
    expect(renewed.contentTypeChange).toEqual({ from: "application/x-pem-file", to: "application/x-pkcs12" })
    // A key the rollback could not use: refused, left deleted.
    const wrong = await plan(renewal, ["--previous-key", wrongKey])
    expect(wrong.action).toBe("refuse")
    expect(wrong.previousKey).toBe("does-not-match")
    expect(wrong.reason).toMatch(/which a recovery would bring back.*leave the certificate deleted/)
    // The text plan speaks of the soft-deleted certificate, not of one the vault serves (none is).
    const wrongText = await runCli(
      ["plan", ...deployArgs(name, [...recover, "--previous-key", wrongKey]).slice(1)].filter(
        (a) => a !== "--json",
      ),
      {
        stdin: fx.bundle(renewal),
        env: world.env,
      },
    )
    expect(wrongText.stdout).toContain(
      "previous key does NOT match the soft-deleted certificate: give the key of the soft-deleted version a recovery brings back",
    )
    expect(wrongText.stdout).not.toContain("serves now")
    expect(world.writesSince(mark)).toBe(0)
    // Deploy does what plan said.
    const refused = await runCli(deployArgs(name, [...recover, "--previous-key", wrongKey]), {
      stdin: fx.bundle(renewal),
      env: world.env,
    })
    expect(refused.code, refused.stdout).toBe(2)
    expect(json<Outcome>(refused).reason).toMatch(
      /cannot restore the version a recovery of the soft-deleted certificate would bring back/,
    )
    expect(world.emulator.state.isDeleted(world.vault, name)).toBe(true)
    const deployed = await runCli(
      deployArgs(name, [...recover, "--previous-key", rightKey, "--content-type", "pkcs12"]),
      {
        stdin: fx.bundle(renewal),
        env: world.env,
      },
    )
    expect(deployed.code, deployed.stdout).toBe(0)
    const outcome = json<Outcome & { decisions: string[]; recovered?: string }>(deployed)
    expect(outcome.recovered).toBe("recovered")
    expect(outcome.decisions.join("\n")).toMatch(
      /content type: the vault serves this certificate's secret as PEM/,
    )
    expect(world.emulator.state.versions(world.vault, name)?.at(-1)?.contentType).toBe("application/x-pkcs12")
  })

  it("RolledBack (exit 3) and the whole story: kvdeploy demo --json", async () => {
    const r = await runCli(["demo", "--json"], { timeoutMs: 60_000 })
    expect(r.code, r.stderr).toBe(0)
    const d = json<{
      ok: boolean
      steps: Array<{
        expected: string
        outcome: { _tag: string; versionId?: string; failedVersionId?: string; rollbackVersionId?: string }
      }>
      versions: Array<{ versionId: string; rollbackOf?: string }>
      metrics: string
    }>(r)
    expect(d.ok).toBe(true)
    expect(d.steps.map((s) => s.outcome._tag)).toEqual(["Succeeded", "Succeeded", "Skipped", "RolledBack"])
    expect(d.versions[0]?.rollbackOf).toBeDefined()
    // The history newest first in the order the demo wrote it, though Key Vault's whole seconds
    // cannot tell (its versions are written within a second or two).
    const [v1, v2, , v3] = d.steps.map((s) => s.outcome)
    expect(d.versions.map((v) => v.versionId)).toEqual([
      v3?.rollbackVersionId,
      v3?.failedVersionId,
      v2?.versionId,
      v1?.versionId,
    ])
    expect(d.metrics).toContain('certctl_deploy_rollback_total{target_type="azure_kv",outcome="restored"} 1')
  })
})

describe("verify --endpoint", () => {
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
    await world.sdk().importCertificate(foreign, new TextEncoder().encode(served.keyPem + served.certPem), {
      policy: { contentType: "application/x-pem-file" },
    })
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
