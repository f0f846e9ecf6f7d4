/**
 * `kvdeploy emulator` tells an operator how to try every credential mode it serves: with
 * --all-modes, a block per mode (the variables to unset and export, the target's credential fields
 * or the same as flags), and in --json, `modes`. Each mode is tried here with only what the
 * emulator printed or wrote, as an operator would: the BUILT `kvdeploy doctor` in a bash that
 * sourced the client_secret block first (each block unsets what it must), then through the files
 * --all-modes writes beside --write-env / --write-config.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { baseEnv, bin, scratchWithChildren } from "./harness.js"

const { scratch, running } = scratchWithChildren("kvdeploy-emulator-modes")

/**
 * `kvdeploy emulator ARGS` in `cwd`, once `done(stdout)` says it has printed all it prints; fails
 * with what it printed when it exits first (an unknown flag).
 */
const emulator = (args: ReadonlyArray<string>, done: (stdout: string) => boolean, cwd = scratch) =>
  new Promise<{ child: ChildProcess; stdout: string; exited: Promise<number | null> }>((resolve, reject) => {
    const child = spawn(process.execPath, [bin, "emulator", ...args], { env: baseEnv(), cwd })
    running.push(child)
    let stdout = ""
    let stderr = ""
    const exited = new Promise<number | null>((r) => child.once("close", (code) => r(code)))
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString()
    })
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString()
      if (done(stdout)) resolve({ child, stdout, exited })
    })
    void exited.then((code) =>
      reject(new Error(`kvdeploy emulator exited (${code}) before printing all:\n${stdout}\n${stderr}`)),
    )
  })

/** A bash script's exit code and output, with the harness's environment (no Azure variables). */
const bash = (script: string) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn("bash", ["-c", script], { env: baseEnv(), cwd: scratch })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString()
    })
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString()
    })
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

const kvdeploy = `${JSON.stringify(process.execPath)} ${JSON.stringify(bin)}`

type Check = { check: string; status: string; detail: string }
/** `kvdeploy doctor … --json` after `setup` (shell lines), its checks by name. */
const doctor = async (setup: ReadonlyArray<string>, args: string) => {
  const r = await bash(["set -e", ...setup, `${kvdeploy} doctor ${args} --json`].join("\n"))
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0)
  const checks = (JSON.parse(r.stdout) as { checks: Array<Check> }).checks
  expect(checks.filter((c) => c.status === "fail")).toEqual([])
  return (name: string) => checks.find((c) => c.check === name)?.detail ?? ""
}

/** What doctor says of each mode: the credential it made and where its token came from. */
const expected: Record<string, { credential: RegExp; identity?: RegExp; token?: RegExp }> = {
  client_secret: { credential: /^ClientSecretCredential$/ },
  managed_identity_app_service: {
    credential: /^ManagedIdentityCredential \(system-assigned\)$/,
    identity: /via App Service endpoint http:\/\/127\.0\.0\.1:\d+\/msi\/token/,
  },
  managed_identity_imds: {
    credential: /^ManagedIdentityCredential \(system-assigned\)$/,
    identity: /via IMDS http:\/\/127\.0\.0\.1:\d+$/,
  },
  managed_identity_user_assigned: {
    credential: /^ManagedIdentityCredential \(user-assigned\)$/,
    identity: /via IMDS http:\/\/127\.0\.0\.1:\d+$/,
  },
  workload_identity: { credential: /^WorkloadIdentityCredential$/, identity: /token file \// },
  managed_identity_aks_exchange: {
    credential: /^WorkloadIdentityCredential \(the managed identity's AKS token exchange\)$/,
    identity:
      /via Entra ID token exchange at https:\/\/127\.0\.0\.1:\d+ \(workload identity's federated token\), token file \//,
  },
  default: {
    credential: /^DefaultAzureCredential/,
    token: /from ManagedIdentityCredential \(the default chain's source that answered\)/,
  },
}

describe("kvdeploy emulator: every credential mode it serves, from what it prints", () => {
  it("--all-modes: each printed block, pasted into a shell after the client_secret one, gets doctor through", async () => {
    const lastBlock = "# default (DefaultAzureCredential)"
    const { child, stdout, exited } = await emulator(
      ["--all-modes"],
      (out) =>
        out.includes(lastBlock) && /\nexport IDENTITY_HEADER=\S+\n$/.test(out.slice(out.indexOf(lastBlock))),
    )
    const lines = stdout.split("\n")
    // The client_secret block and the target file, as before.
    const envStart = lines.findIndex((l) => l.startsWith("# Environment for kvdeploy (client_secret mode"))
    const clientSecret = lines.slice(
      envStart + 1,
      lines.findIndex((l, i) => i > envStart && l === ""),
    )
    expect(clientSecret.length).toBeGreaterThan(0)
    expect(clientSecret.every((l) => l.startsWith("export "))).toBe(true)
    const targetStart = lines.findIndex((l) => l.startsWith("# Target configuration"))
    const targetEnd = lines.findIndex((l, i) => i > targetStart && l === "}")
    writeFileSync(join(scratch, "target.json"), lines.slice(targetStart + 1, targetEnd + 1).join("\n"))
    // The other modes' blocks: a title, the target fields (or flags) and the shell lines.
    const blocks = stdout
      .slice(stdout.indexOf("# Every other credential mode"))
      .split("\n\n")
      .slice(1)
      .map((b) => b.trim().split("\n"))
    expect(blocks.map((b) => b[0])).toEqual([
      expect.stringMatching(/^# managed_identity, system-assigned, through App Service's endpoint/),
      expect.stringMatching(/^# managed_identity, system-assigned, through IMDS/),
      expect.stringMatching(/^# managed_identity, the user-assigned identity/),
      expect.stringMatching(/^# workload_identity \(AKS\)/),
      expect.stringMatching(/^# managed_identity on AKS: the token exchange/),
      expect.stringMatching(/^# default \(DefaultAzureCredential\)/),
    ])
    const ids = Object.keys(expected).slice(1)
    const tried: Array<string> = []
    const clientSecretDoctor = await doctor(clientSecret, "--config target.json")
    expect(clientSecretDoctor("credential")).toMatch(expected.client_secret?.credential ?? /-/)
    for (const [i, block] of blocks.entries()) {
      const id = ids[i] ?? ""
      const flags = /\(or (--credential-mode [^)]*)\)/.exec(block[1] ?? "")?.[1]
      expect(flags, block.join("\n")).toBeDefined()
      const shell = block.filter((l) => !l.startsWith("#"))
      expect(shell.every((l) => /^(unset|export) /.test(l))).toBe(true)
      const said = await doctor([...clientSecret, ...shell], `--config target.json ${flags}`)
      const want = expected[id]
      expect(said("credential"), id).toMatch(want?.credential ?? /-/)
      if (want?.identity) expect(said("identity"), id).toMatch(want.identity)
      if (want?.token) expect(said("token"), id).toMatch(want.token)
      // The identity the block names (for the admin API's RBAC) is the one that got the token.
      const clientId =
        /identity's client id ([0-9a-f-]{36})/.exec(block[1] ?? "")?.[1] ??
        /--managed-identity-client-id ([0-9a-f-]{36})/.exec(block[1] ?? "")?.[1]
      expect(said("token"), id).toContain(`app id ${clientId}`)
      tried.push(id)
    }
    expect(tried).toEqual(ids)
    // The federated token is named by its file (0600), never printed.
    const tokenFile = /^export AZURE_FEDERATED_TOKEN_FILE=(\S+)$/m.exec(stdout)?.[1] ?? ""
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600)
    expect(stdout).not.toContain(readFileSync(tokenFile, "utf8").trim())
    child.kill("SIGTERM")
    expect(await exited).toBe(0)
    expect(existsSync(tokenFile)).toBe(false)
  }, 240_000)

  it("--json lists every mode (modes), and --all-modes writes each one's files: sourced, they get doctor through", async () => {
    const { child, stdout, exited } = await emulator(
      ["--all-modes", "--write-env", "emulator.env", "--write-config", "target.json", "--json"],
      (out) => {
        try {
          JSON.parse(out)
          return true
        } catch {
          return false
        }
      },
    )
    type Mode = {
      id: string
      credentialMode: string
      managedIdentityClientId?: string
      clientId: string
      env: Record<string, string>
      unset: Array<string>
      targetConfig: Record<string, unknown>
      flags: Array<string>
      tokenFile?: string
      envFile?: string
      configFile?: string
    }
    const printed = JSON.parse(stdout) as {
      env: Record<string, string>
      targetConfig: Record<string, unknown>
      modes: Array<Mode>
    }
    expect(printed.modes.map((m) => m.id)).toEqual(Object.keys(expected))
    const [clientSecret, ...others] = printed.modes
    expect(clientSecret?.env).toEqual(printed.env)
    expect(clientSecret?.targetConfig).toEqual(printed.targetConfig)
    for (const mode of printed.modes) {
      expect(mode.targetConfig.credential_mode).toBe(mode.credentialMode)
      expect(mode.targetConfig.managed_identity_client_id).toBe(mode.managedIdentityClientId)
    }
    const workload = printed.modes.find((m) => m.id === "workload_identity")
    expect(workload?.tokenFile).toBe(workload?.env.AZURE_FEDERATED_TOKEN_FILE)
    for (const mode of others) {
      expect(mode.envFile).toBe(`emulator.${mode.id}.env`)
      expect(mode.configFile).toBe(`target.${mode.id}.json`)
      expect(statSync(join(scratch, mode.envFile ?? "")).mode & 0o777).toBe(0o600)
      expect(JSON.parse(readFileSync(join(scratch, mode.configFile ?? ""), "utf8"))).toEqual(
        mode.targetConfig,
      )
    }
    // As an operator would: the client_secret file first, then each mode's file in a subshell.
    for (const mode of printed.modes) {
      const said = await doctor(
        [". ./emulator.env", ...(mode.envFile === undefined ? [] : [`. ./${mode.envFile}`])],
        `--config ${mode.configFile ?? "target.json"}`,
      )
      const want = expected[mode.id]
      expect(said("credential"), mode.id).toMatch(want?.credential ?? /-/)
      if (want?.identity) expect(said("identity"), mode.id).toMatch(want.identity)
      if (want?.token) expect(said("token"), mode.id).toMatch(want.token)
      expect(said("token"), mode.id).toContain(`app id ${mode.clientId}`)
    }
    child.kill("SIGTERM")
    expect(await exited).toBe(0)
  }, 240_000)
})
