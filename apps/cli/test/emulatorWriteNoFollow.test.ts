/**
 * `kvdeploy emulator --write-env FILE / --write-config FILE` never write through a name planted at
 * FILE: a symbolic link there (dangling, or to a file of someone else's) is refused before the
 * emulator starts (exit 2, the flag and the fix named), and a file it writes is made anew beside
 * FILE and renamed over it, so what another name of the old file (a hard link planted in a shared
 * directory) points at is left as it was. Modes are set whole whatever the umask: the environment
 * file (the client secret) 0600, the target file 0644.
 */
import { spawn } from "node:child_process"
import {
  chmodSync,
  chownSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { baseEnv, bin, runCli, scratchWithChildren } from "./harness.js"

const { scratch, running } = scratchWithChildren("kvdeploy-emulator-nofollow")

/** A directory of its own for one test. */
const dirOf = (name: string) => mkdtempSync(join(scratch, `${name}-`))

/**
 * `kvdeploy emulator ARGS --json` under umask 000 in `cwd`, until it printed its JSON (it writes its
 * files before); then stopped. Fails with what it said when it exits first.
 */
const emulatorUnderUmask000 = (cwd: string, args: ReadonlyArray<string>) =>
  new Promise<void>((resolve, reject) => {
    const child = spawn(
      "bash",
      ["-c", 'umask 000; exec "$0" "$@"', process.execPath, bin, "emulator", ...args, "--json"],
      { env: baseEnv(), cwd },
    )
    running.push(child)
    let stdout = ""
    let stderr = ""
    let printed = false
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString()
    })
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString()
      try {
        JSON.parse(stdout)
      } catch {
        return
      }
      printed = true
      child.kill("SIGTERM")
    })
    child.once("close", (code) =>
      printed
        ? resolve()
        : reject(new Error(`kvdeploy emulator exited (${code}) before printing all:\n${stdout}\n${stderr}`)),
    )
  })

describe("kvdeploy emulator --write-env / --write-config never write through a planted name", () => {
  it("a dangling symbolic link at --write-env: refused (exit 2), nothing made where it points", async () => {
    const dir = dirOf("dangling")
    const pointed = join(dir, "made-through-the-link")
    const env = join(dir, "emulator.env")
    symlinkSync(pointed, env)
    const r = await runCli(["emulator", "--write-env", env, "--json"])
    expect(r.code, r.stderr).toBe(2)
    expect(r.stdout + r.stderr).toContain('"field": "--write-env"')
    expect(r.stdout + r.stderr).toContain(`${env} is a symbolic link`)
    expect(r.stdout + r.stderr).toContain("the path of a new file in a directory only you can write to")
    expect(r.stdout + r.stderr).not.toContain("remove the link")
    expect(existsSync(pointed)).toBe(false)
    expect(lstatSync(env).isSymbolicLink()).toBe(true)
  }, 60_000)

  it("a symbolic link to an empty file at --write-config: refused, the file it points at left as it was", async () => {
    const dir = dirOf("to-empty")
    const victim = join(dir, "someone-elses")
    writeFileSync(victim, "", { mode: 0o644 })
    const target = join(dir, "target.json")
    symlinkSync(victim, target)
    const r = await runCli(["emulator", "--write-config", target, "--json"])
    expect(r.code, r.stderr).toBe(2)
    expect(r.stdout + r.stderr).toContain('"field": "--write-config"')
    expect(r.stdout + r.stderr).toContain(`${target} is a symbolic link`)
    expect(readFileSync(victim, "utf8")).toBe("")
    expect(statSync(victim).mode & 0o777).toBe(0o644)
  }, 60_000)

  it("something other than a file at --write-env (a directory): refused, named", async () => {
    const dir = dirOf("not-a-file")
    const r = await runCli(["emulator", "--write-env", dir, "--json"])
    expect(r.code, r.stderr).toBe(2)
    expect(r.stdout + r.stderr).toContain(`${dir} is not a regular file`)
  }, 60_000)

  it("files written anew (another name of the old file unchanged), modes set whole under umask 000", async () => {
    const dir = dirOf("anew")
    // Empty files an emulator may write over, each also named elsewhere (a hard link planted in a
    // shared directory, or a file an earlier run left): written in place, that name would get the
    // client secret.
    const env = join(dir, "emulator.env")
    const target = join(dir, "target.json")
    writeFileSync(env, "", { mode: 0o644 })
    writeFileSync(target, "", { mode: 0o644 })
    linkSync(env, join(dir, "other-name-of-env"))
    linkSync(target, join(dir, "other-name-of-target"))
    await emulatorUnderUmask000(dir, ["--write-env", "emulator.env", "--write-config", "target.json"])
    expect(readFileSync(join(dir, "other-name-of-env"), "utf8")).toBe("")
    expect(readFileSync(join(dir, "other-name-of-target"), "utf8")).toBe("")
    expect(readFileSync(env, "utf8")).toContain("export AZURE_CLIENT_SECRET=")
    expect(statSync(env).mode & 0o777).toBe(0o600)
    expect(JSON.parse(readFileSync(target, "utf8")).vault_url).toMatch(/^https:\/\/127\.0\.0\.1:/)
    expect(statSync(target).mode & 0o777).toBe(0o644)
    // No temporary file left beside them.
    expect(readdirSync(dir).sort()).toEqual([
      "emulator.env",
      "other-name-of-env",
      "other-name-of-target",
      "target.json",
    ])
  }, 120_000)

  it("new files under umask 000: the target 0644, not 0666", async () => {
    const dir = dirOf("new")
    await emulatorUnderUmask000(dir, ["--write-env", "e.env", "--write-config", "t.json"])
    expect(statSync(join(dir, "t.json")).mode & 0o777).toBe(0o644)
    expect(statSync(join(dir, "e.env")).mode & 0o777).toBe(0o600)
  }, 120_000)

  // Another group's (its own group, a user's private one, may write it).
  it.runIf(process.geteuid?.() === 0)(
    "--state-dir another group may write (it would hold private keys): refused (exit 2), chmod 700 as the fix",
    async () => {
      const dir = dirOf("state")
      chownSync(dir, process.geteuid?.() ?? 0, 65534)
      chmodSync(dir, 0o770)
      const r = await runCli(["emulator", "--state-dir", dir, "--json"])
      expect(r.code, r.stderr).toBe(2)
      expect(r.stdout + r.stderr).toContain(`--state-dir: ${dir}: is writable by group 65534`)
      expect(r.stdout + r.stderr).toContain(`"fix": "chmod 700 ${dir}"`)
    },
    60_000,
  )
})
