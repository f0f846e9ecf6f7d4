/**
 * The operator docs are tested: every shell block of docs/getting-started.md
 * runs, in order, in one bash (against the emulator it starts); the wrapper,
 * deploy hook and cron line of docs/cron-and-certbot.md run against the
 * emulator; and every relative link in docs/ and the CLI README points at a
 * file that exists.
 */
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs"
import { dirname, join, resolve } from "node:path"
import { describe, expect, it } from "vitest"
import { makeFixtures } from "./fixtures.js"
import { baseEnv, cliRoot, startWorld } from "./harness.js"

const repoRoot = resolve(cliRoot, "..", "..")
const docsDir = join(repoRoot, "docs")

/** Shell blocks of a markdown page, without those marked `<!-- docs-test: skip ... -->`. */
export const shellBlocks = (markdown: string): Array<string> => {
  const blocks: Array<string> = []
  const re = /(<!--\s*docs-test:\s*skip[^>]*-->\s*\n)?```(?:sh|bash)\n([\s\S]*?)```/g
  for (const m of markdown.matchAll(re)) {
    if (m[1] === undefined) blocks.push(m[2] ?? "")
  }
  return blocks
}

/** The files a page shows whole, each marked `<!-- docs-test: file PATH -->` above its block. */
export const fileBlocks = (markdown: string): Map<string, string> => {
  const files = new Map<string, string>()
  const re = /<!--\s*docs-test:\s*file\s+(\S+)\s*-->\s*\n```(?:sh|bash)\n([\s\S]*?)```/g
  for (const m of markdown.matchAll(re)) files.set(m[1] ?? "", m[2] ?? "")
  return files
}

/** Whether every process of the group `pgid` has ended, polled until `ms` have passed. */
const groupEnded = async (pgid: number, ms: number): Promise<boolean> => {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      process.kill(-pgid, 0)
    } catch {
      return true
    }
    if (Date.now() >= deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/**
 * Run `command` with stdin closed, its stdout and stderr collected together, killed after
 * `timeoutMs`; `started` is given the process (a caller that ends its process group).
 */
const collected = (
  command: string,
  args: ReadonlyArray<string>,
  options: SpawnOptions,
  timeoutMs: number,
  started?: (child: ChildProcess) => void,
) =>
  new Promise<{ code: number | null; out: string }>((done) => {
    const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] })
    started?.(child)
    let out = ""
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString()
    })
    child.stderr?.on("data", (c: Buffer) => {
      out += c.toString()
    })
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    child.on("close", (code) => {
      clearTimeout(timer)
      done({ code, out })
    })
  })

describe("docs/getting-started.md", () => {
  it("every command shown runs against the emulator", async () => {
    const page = readFileSync(join(docsDir, "getting-started.md"), "utf8")
    const blocks = shellBlocks(page)
    expect(blocks.length).toBeGreaterThanOrEqual(8)
    const scratch = mkdtempSync(join("/dev/shm", "kvdeploy-docs-"))
    let pid: number | undefined
    const script = ["set -euo pipefail", ...blocks.map((b, i) => `echo "::block ${i + 1}"\n${b}`)].join("\n")
    try {
      const result = await collected(
        "bash",
        ["-c", script],
        // Its own process group, so whatever it started in the background can be ended with it.
        { cwd: repoRoot, env: { ...baseEnv(), TMPDIR: scratch }, detached: true },
        150_000,
        (child) => {
          pid = child.pid
        },
      )
      expect(result.code, result.out).toBe(0)
      expect(result.out).toContain(`::block ${blocks.length}`)
      expect(result.out).toMatch(/^Succeeded/m)
      expect(result.out).toMatch(/^Skipped/m)
      expect(result.out).toContain("exit code 1: the vault serves another certificate")
      // The key under a legacy cipher is refused (exit 2) with the re-encryption the page then runs.
      expect(result.out).toContain(
        "the private key is encrypted with PBE-MD5-DES, a legacy encryption kvdeploy does not read",
      )
      expect(result.out).toContain("openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 600000")
      expect(result.out).toContain("exit code 2")
      expect(result.out).toMatch(/ready to deploy/)
      expect(result.out).toMatch(/2 versions, newest first/)
      // Every other credential mode, each through its own endpoint (section 10).
      expect(result.out).toMatch(/via App Service endpoint http:\/\/127\.0\.0\.1:\d+\/msi\/token/)
      expect(result.out).toMatch(/ManagedIdentityCredential \(user-assigned\)[\s\S]*via IMDS http/)
      expect(result.out).toMatch(/token file \S+federated-token/)
      expect(result.out).toContain(
        "from ManagedIdentityCredential (the default chain's source that answered)",
      )
      // Stopped with `kill`, the emulator exits 0 (set -e would have ended the script otherwise).
      expect(result.out).toContain("emulator exit code 0")
    } finally {
      if (pid !== undefined) {
        try {
          process.kill(-pid, "SIGTERM")
        } catch {
          // The group has already ended: the page stopped its emulator itself.
        }
        // Wait for the group to end before removing the scratch directory: a process still exiting
        // writes its compile cache into TMPDIR and would create the directory again (left behind).
        if (!(await groupEnded(pid, 10_000))) {
          try {
            process.kill(-pid, "SIGKILL")
          } catch {
            // Ended in between.
          }
          await groupEnded(pid, 5_000)
        }
      }
      // The emulator the page started in the background may still be writing its files here
      // while it handles the SIGTERM: rmSync's own retries cover the ENOTEMPTY of that moment.
      rmSync(scratch, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 })
    }
  })
})

describe("docs/getting-started.md's wait for the emulator", () => {
  it("ends, printing the emulator's log, when the emulator stopped without writing its files", async () => {
    const page = readFileSync(join(docsDir, "getting-started.md"), "utf8")
    const loop = /^until \[ -s emulator\.env \];[\s\S]*?^done$/m.exec(page)?.[0]
    expect(loop).toBeDefined()
    const scratch = mkdtempSync(join("/dev/shm", "kvdeploy-docs-wait-"))
    try {
      writeFileSync(join(scratch, "emulator.log"), "listen EADDRINUSE: address already in use\n")
      // An emulator that failed at once: its process is gone, and it wrote no emulator.env.
      const script = `set -euo pipefail\nsh -c 'exit 1' & EMULATOR_PID=$!\nwait "$EMULATOR_PID" || true\n${loop}\necho "::waited"`
      const result = await collected("bash", ["-c", script], { cwd: scratch, env: baseEnv() }, 20_000)
      expect(result.code, result.out).toBe(0)
      expect(result.out).toContain("EADDRINUSE")
      expect(result.out).toContain("::waited")
    } finally {
      rmSync(scratch, { recursive: true, force: true })
    }
  })
})

describe("docs/cron-and-certbot.md", () => {
  it("the wrapper, the certbot deploy hook and the cron line run as shown, under cron's PATH", async () => {
    const page = readFileSync(join(docsDir, "cron-and-certbot.md"), "utf8")
    const files = fileBlocks(page)
    const wrapperPath = "/usr/local/bin/kvdeploy"
    const hookPath = "/etc/letsencrypt/renewal-hooks/deploy/kvdeploy"
    expect([...files.keys()].sort()).toEqual(["/etc/cron.d/kvdeploy", hookPath, wrapperPath].sort())
    const scratch = mkdtempSync(join("/dev/shm", "kvdeploy-cron-"))
    const world = await startWorld("kv-cron")
    try {
      // The page's absolute paths, moved into the scratch directory (the clone is this repository).
      const moved = (text: string) =>
        text
          .replaceAll("/usr/local/bin/kvdeploy", join(scratch, "bin", "kvdeploy"))
          .replaceAll("/opt/kvdeploy", repoRoot)
          .replaceAll("/etc/kvdeploy", join(scratch, "etc", "kvdeploy"))
          .replaceAll("/etc/letsencrypt", join(scratch, "letsencrypt"))
          .replaceAll("/var/log/kvdeploy", join(scratch, "log"))
      const install = (path: string, text: string, mode: number) => {
        mkdirSync(dirname(path), { recursive: true })
        writeFileSync(path, text, { mode })
        chmodSync(path, mode)
      }
      const wrapper = moved(files.get(wrapperPath) ?? "")
      const hook = moved(files.get(hookPath) ?? "")
      for (const text of [wrapper, hook]) expect(text).not.toMatch(/(^|[\s"'=])\/(etc|opt|var|usr\/local)\//m)
      install(join(scratch, "bin", "kvdeploy"), wrapper, 0o755)
      const hookFile = join(scratch, "letsencrypt", "renewal-hooks", "deploy", "kvdeploy")
      // The hook is installed by the page's own line, from the file the page says to save it as
      // (certbot made the hooks directory).
      const installLine = moved(
        page.split("\n").find((l) => l.startsWith("install ") && l.includes(" /etc/letsencrypt/")) ?? "",
      )
      expect(installLine).toBe(`install -m 0755 kvdeploy-hook ${hookFile}`)
      expect(page).toContain("Save the script above as `kvdeploy-hook` in the current directory")
      install(join(scratch, "kvdeploy-hook"), hook, 0o644)
      mkdirSync(dirname(hookFile), { recursive: true })
      const installed = await collected("/bin/sh", ["-c", installLine], { cwd: scratch }, 10_000)
      expect(installed, installed.out).toEqual({ code: 0, out: "" })
      expect(statSync(hookFile).mode & 0o777).toBe(0o755)
      // The target file (no secret in it) and the environment file (root-only, NAME=value lines).
      const name = "www.example.test"
      install(
        join(scratch, "etc", "kvdeploy", "targets", `${name}.json`),
        JSON.stringify({
          ...world.emulator.targetConfig("kv-cron", "www-example-test", "clientSecret"),
          tags: { source: "certbot" },
        }),
        0o644,
      )
      const envFile = join(scratch, "etc", "kvdeploy", "kvdeploy.env")
      install(
        envFile,
        Object.entries(world.env)
          .map(([k, v]) => `${k}=${v}\n`)
          .join(""),
        0o600,
      )
      // certbot's layout: live/NAME holds cert.pem (the leaf), chain.pem, fullchain.pem, privkey.pem.
      const fixtures = await makeFixtures()
      const lineage = join(scratch, "letsencrypt", "live", name)
      const issue = async () => {
        const leaf = await fixtures.leaf()
        install(join(lineage, "cert.pem"), leaf.certPem, 0o644)
        install(join(lineage, "chain.pem"), fixtures.pki.intermediate.certPem, 0o644)
        install(join(lineage, "fullchain.pem"), leaf.certPem + fixtures.pki.intermediate.certPem, 0o644)
        install(join(lineage, "privkey.pem"), leaf.keyPem, 0o600)
        return leaf
      }
      // cron's environment: /bin/sh, PATH=/usr/bin:/bin (an older node there, or none), no Azure variables.
      const cronEnv = { PATH: "/usr/bin:/bin", HOME: scratch, TMPDIR: scratch, LANG: "C.UTF-8" }
      // Asynchronous: the emulator answers from this process, which a synchronous spawn would block.
      const run = (command: string, args: Array<string>, env: Record<string, string> = {}) =>
        collected(command, args, { env: { ...cronEnv, ...env } }, 60_000)
      const logFile = join(scratch, "log", "deploy.json")
      const outcomes = () =>
        existsSync(logFile)
          ? readFileSync(logFile, "utf8")
              .split(/\n(?=\{)/)
              .filter((d) => d.trim() !== "")
              .map(
                (d) => JSON.parse(d) as { outcome?: string; warnings?: unknown; error?: { title: string } },
              )
          : []

      // The wrapper runs the CLI with the project's Node.js whatever node cron's PATH finds.
      const version = await run(join(scratch, "bin", "kvdeploy"), ["--version"])
      expect(version, version.out).toMatchObject({ code: 0 })
      expect(version.out).toMatch(/^kvdeploy \d/)
      // The page's check names that Node.js (`--version` itself prints under any).
      const versionJson = await run(join(scratch, "bin", "kvdeploy"), ["--version", "--json"])
      expect(versionJson, versionJson.out).toMatchObject({ code: 0 })
      const node = (JSON.parse(versionJson.out) as { node: string }).node
      expect(Number(/^v(\d+)\./.exec(node)?.[1])).toBeGreaterThanOrEqual(22)
      expect(page).toContain("kvdeploy --version --json   # works under cron's PATH")

      // cert.pem alone: deployed, with the chain warning; the same leaf with its chain is then Skipped.
      const first = await issue()
      const leafOnly = await run(
        join(scratch, "bin", "kvdeploy"),
        ["deploy", "--config", join(scratch, "etc", "kvdeploy", "targets", `${name}.json`)]
          .concat(["--cert", join(lineage, "cert.pem"), "--key", join(lineage, "privkey.pem")])
          .concat(["--tag", "source=certbot"]),
        world.env,
      )
      expect(leafOnly.code, leafOnly.out).toBe(0)
      expect(leafOnly.out).toMatch(/^Succeeded/m)
      expect(leafOnly.out).toMatch(/chain: none given/)
      const hook1 = await run(hookFile, [], { RENEWED_LINEAGE: lineage })
      expect(hook1, hook1.out).toEqual({ code: 0, out: "" })
      expect(outcomes().map((o) => o.outcome)).toEqual(["Skipped"])

      // A renewal (a new leaf and key): deployed, silently, and recorded.
      const renewed = await issue()
      const x5t = (pem: { certificate: { rawData: ArrayBuffer } }) =>
        createHash("sha1").update(Buffer.from(pem.certificate.rawData)).digest("base64url")
      expect(x5t(renewed)).not.toBe(x5t(first))
      const hook2 = await run(hookFile, [], { RENEWED_LINEAGE: lineage })
      expect(hook2, hook2.out).toEqual({ code: 0, out: "" })
      expect(outcomes().at(-1)?.outcome).toBe("Succeeded")
      const served = world.emulator.state.versions("kv-cron", "www-example-test")?.at(-1)
      expect(served?.x5t).toBe(x5t(renewed))
      // fullchain.pem: the vault serves the leaf with its intermediate.
      expect(served?.certificates).toHaveLength(2)

      // The cron line (after its schedule and user fields), run by /bin/sh: in place, Skipped, silent.
      const cronLine = (files.get("/etc/cron.d/kvdeploy") ?? "").split("\n").find((l) => /^\d/.test(l)) ?? ""
      const cronCommand = moved(cronLine.split(/\s+/).slice(6).join(" "))
      expect(cronCommand).toContain(join(scratch, "letsencrypt", "live"))
      const cron = await run("/bin/sh", ["-c", cronCommand])
      expect(cron, cron.out).toEqual({ code: 0, out: "" })
      expect(outcomes().at(-1)?.outcome).toBe("Skipped")

      // A certificate without a target file: nothing done, nothing logged.
      const logged = outcomes().length
      const other = join(scratch, "letsencrypt", "live", "other.example.test")
      mkdirSync(other, { recursive: true })
      expect(await run(hookFile, [], { RENEWED_LINEAGE: other })).toEqual({ code: 0, out: "" })
      expect(outcomes()).toHaveLength(logged)

      // A key that does not match the leaf: Rejected (exit 2), said on stderr, nothing written.
      install(join(lineage, "privkey.pem"), first.keyPem, 0o600)
      const versions = world.emulator.state.versions("kv-cron", "www-example-test")?.length
      const rejected = await run(hookFile, [], { RENEWED_LINEAGE: lineage })
      expect(rejected.code, rejected.out).toBe(2)
      expect(rejected.out).toContain(`kvdeploy hook: ${name}: Rejected or a usage error`)
      expect(outcomes().at(-1)?.outcome).toBe("Rejected")
      expect(world.emulator.state.versions("kv-cron", "www-example-test")?.length).toBe(versions)

      // An environment file others may read is refused before anything runs.
      install(join(lineage, "privkey.pem"), renewed.keyPem, 0o600)
      chmodSync(envFile, 0o644)
      expect(statSync(envFile).mode & 0o777).toBe(0o644)
      const loose = await run(hookFile, [], { RENEWED_LINEAGE: lineage })
      expect(loose.code, loose.out).toBe(2)
      expect(loose.out).toContain("must be")
      expect(outcomes()).toHaveLength(logged + 1)
    } finally {
      await world.stop()
      rmSync(scratch, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 })
    }
  }, 120_000)
})

describe("links", () => {
  const pages = [
    ...readdirSync(docsDir)
      .filter((f) => f.endsWith(".md"))
      .map((f) => join(docsDir, f)),
    join(cliRoot, "README.md"),
  ]
  it("every relative link in docs/ and the CLI README resolves", () => {
    const broken: Array<string> = []
    for (const page of pages) {
      const text = readFileSync(page, "utf8")
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1] ?? ""
        if (/^[a-z]+:/i.test(target) || target.startsWith("#")) continue
        const path = target.split("#")[0] ?? ""
        if (!existsSync(resolve(dirname(page), path))) broken.push(`${page}: ${target}`)
      }
    }
    expect(broken).toEqual([])
  })
  it("the link check can fail", () => {
    expect(existsSync(resolve(docsDir, "no-such-page.md"))).toBe(false)
  })
})
