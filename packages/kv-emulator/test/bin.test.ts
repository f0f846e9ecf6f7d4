/**
 * The `kvdeploy-emulator` bin as a user runs it: the built dist/bin.js in a
 * child process (the package's `bin` entry), its printed environment read back,
 * real SDK calls with the credentials and CA it printed, then SIGTERM (exit 0,
 * ports closed, temp dir removed). Also --help, --json, bad command lines
 * (exit 2 with the usage) and a state directory it refuses (exit 2, the fix, no usage).
 *
 * Needs the package built (`pnpm --filter @kvdeploy/kv-emulator... build`; the
 * test command of scripts/dev builds first).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { ClientSecretCredential } from "@azure/identity"
import { CertificateClient } from "@azure/keyvault-certificates"
import { SecretClient } from "@azure/keyvault-secrets"
import { encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { beforeAll, describe, expect, it, onTestFinished } from "vitest"
import { makeMaterial } from "./support.js"

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  bin: Record<string, string>
}
/** What `kvdeploy-emulator` runs once installed: the package's bin entry. */
const binPath = fileURLToPath(new URL(`../${pkg.bin["kvdeploy-emulator"]}`, import.meta.url))

interface Run {
  readonly child: ChildProcess
  stdout: string
  stderr: string
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

const run = (
  args: ReadonlyArray<string>,
  /** Run as this user and group (a test run by root that needs a file it cannot read). */
  user?: { readonly uid: number; readonly gid: number },
): Run => {
  const child = spawn(process.execPath, [binPath, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    ...(user ?? {}),
  })
  const r: Run = {
    child,
    stdout: "",
    stderr: "",
    exited: new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal }))),
  }
  child.stdout?.on("data", (c: Buffer) => {
    r.stdout += c.toString("utf8")
  })
  child.stderr?.on("data", (c: Buffer) => {
    r.stderr += c.toString("utf8")
  })
  return r
}

/** Waits until stdout satisfies `done` (or the process exits, or 20 s pass). */
const waitFor = async (r: Run, done: (stdout: string) => boolean): Promise<void> => {
  const deadline = Date.now() + 20_000
  let exited = false
  void r.exited.then(() => {
    exited = true
  })
  while (!done(r.stdout)) {
    if (exited) throw new Error(`the bin exited early: ${r.stderr}`)
    if (Date.now() > deadline) throw new Error(`no complete output after 20 s: ${r.stdout}\n${r.stderr}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** The `export K="v"` lines of one `# mode` block of the bin's text output. */
const exportsOf = (text: string, mode: string): Record<string, string> => {
  const lines = text.split("\n")
  const start = lines.indexOf(`# ${mode}`)
  if (start < 0) throw new Error(`no "# ${mode}" block in:\n${text}`)
  const out: Record<string, string> = {}
  for (const line of lines.slice(start + 1)) {
    const m = /^export ([A-Z_]+)=(".*")$/.exec(line)
    if (!m) break
    out[m[1] as string] = JSON.parse(m[2] as string) as string
  }
  return out
}

const portOpen = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1" })
    s.once("connect", () => {
      s.destroy()
      resolve(true)
    })
    s.once("error", () => resolve(false))
  })

beforeAll(() => {
  if (!existsSync(binPath))
    throw new Error(`${binPath} is missing: build first (pnpm --filter @kvdeploy/kv-emulator... build)`)
})

describe("kvdeploy-emulator bin", () => {
  it("prints the environment; the SDK imports and reads with it; SIGTERM stops it (exit 0, ports closed)", async () => {
    const r = run(["--vault", "bin-a", "--vault", "bin-b", "--no-throttle", "--pfx-workers", "1"])
    try {
      await waitFor(r, (out) => /# kvdeploy target configuration\n\{[\s\S]*\n\}\n/.test(out))
      const vaultUrls = Object.fromEntries(
        [...r.stdout.matchAll(/^vault (\S+): (https:\/\/\S+)$/gm)].map((m) => [m[1], m[2]]),
      )
      expect(Object.keys(vaultUrls)).toEqual(["bin-a", "bin-b"])
      const env = exportsOf(r.stdout, "clientSecret")
      expect(Object.keys(env).sort()).toEqual([
        "AZURE_AUTHORITY_HOST",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID",
        "NODE_EXTRA_CA_CERTS",
      ])
      const caFile = env.NODE_EXTRA_CA_CERTS as string
      const ca = readFileSync(caFile, "utf8")
      expect(ca).toMatch(/^-----BEGIN CERTIFICATE-----/)
      expect(ca).not.toMatch(/PRIVATE KEY/)

      const credential = new ClientSecretCredential(
        env.AZURE_TENANT_ID as string,
        env.AZURE_CLIENT_ID as string,
        env.AZURE_CLIENT_SECRET as string,
        {
          authorityHost: env.AZURE_AUTHORITY_HOST as string,
          disableInstanceDiscovery: true,
          tlsOptions: { ca },
        },
      )
      const options = { tlsOptions: { ca }, disableChallengeResourceVerification: true }
      const certificates = new CertificateClient(vaultUrls["bin-b"] as string, credential, options)
      // A password-protected PFX: read by the bin's worker pool (--pfx-workers 1).
      const m = await makeMaterial({ cn: "bin.example.test" })
      const pfx = await Effect.runPromise(
        encodePfx(
          { leaf: m.leafDer, chain: m.chainDer, key: Redacted.make(m.keyPkcs8) },
          { encoding: "modern", password: Redacted.make("bin-pw") },
        ),
      )
      const imported = await certificates.importCertificate("bin-cert", pfx, { password: "bin-pw" })
      expect(imported.properties.vaultUrl).toBe(vaultUrls["bin-b"])
      expect(Buffer.from(imported.cer ?? new Uint8Array()).equals(Buffer.from(m.leafDer))).toBe(true)
      expect(imported.policy?.subject).toBe("CN=bin.example.test")
      const wrong = await certificates
        .importCertificate("bin-cert", pfx, { password: "not-it" })
        .then(() => undefined)
        .catch((e: unknown) => e as { statusCode?: number; code?: string })
      expect(wrong?.statusCode).toBe(400)
      expect(wrong?.code).toBe("BadParameter")
      const latest = await certificates.getCertificate("bin-cert")
      expect(latest.properties.version).toBe(imported.properties.version)
      const secret = await new SecretClient(vaultUrls["bin-b"] as string, credential, options).getSecret(
        "bin-cert",
      )
      expect(secret.properties.contentType).toBe("application/x-pkcs12")

      const ports = Object.values(vaultUrls).map((u) => Number(new URL(u as string).port))
      ports.push(Number(new URL(env.AZURE_AUTHORITY_HOST as string).port))
      for (const p of ports) expect(await portOpen(p)).toBe(true)
      r.child.kill("SIGTERM")
      const exit = await r.exited
      expect(exit).toEqual({ code: 0, signal: null })
      for (const p of ports) expect(await portOpen(p)).toBe(false)
      expect(existsSync(caFile)).toBe(false)
    } finally {
      if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL")
    }
  }, 60_000)

  it("--json prints one line with the vaults and the environment per auth mode", async () => {
    const r = run(["--json", "--vault", "bin-json"])
    try {
      await waitFor(r, (out) => out.includes("\n"))
      const summary = JSON.parse(r.stdout.split("\n")[0] as string) as {
        vaults: Array<{ name: string; url: string }>
        env: Record<string, Record<string, string>>
      }
      expect(summary.vaults.map((v) => v.name)).toEqual(["bin-json"])
      expect(Object.keys(summary.env).sort()).toEqual([
        "clientSecret",
        "managedIdentityAppService",
        "managedIdentityImds",
        "managedIdentityUserAssigned",
        "workloadIdentity",
      ])
      r.child.kill("SIGTERM")
      expect(await r.exited).toEqual({ code: 0, signal: null })
    } finally {
      if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL")
    }
  }, 30_000)

  it("--help prints the usage and exits 0 without starting anything", async () => {
    const r = run(["--help"])
    expect(await r.exited).toEqual({ code: 0, signal: null })
    expect(r.stdout).toMatch(/^usage: kvdeploy-emulator /)
    expect(r.stdout).toContain("--pfx-workers N")
    expect(r.stdout).not.toContain("kv-emulator running")
  })

  it.each([
    [["--bogus"], /Unknown option '--bogus'/],
    [["--vault", "a:notaport"], /--vault needs NAME or NAME:PORT|--vault needs a port number/],
    [["--entra-port", "70000"], /--entra-port needs a port number \(0-65535\), got "70000"/],
    [["--pfx-workers", "two"], /--pfx-workers needs a whole number from 0 to 64, got "two"/],
    [["stray"], /Unexpected argument 'stray'/],
  ])("a bad command line %j: a clear error, the usage, exit 2", async (args, message) => {
    const r = run(args)
    expect(await r.exited).toEqual({ code: 2, signal: null })
    expect(r.stdout).toBe("")
    expect(r.stderr).toMatch(/^kvdeploy-emulator: /)
    expect(r.stderr).toMatch(message)
    expect(r.stderr).toContain("usage: kvdeploy-emulator ")
  })

  it("--state-dir naming a file: refused by the flag with the fix and no usage, exit 2, nothing started", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kvemu-bin-state-"))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, "notadir")
    writeFileSync(file, "not a directory\n")
    const r = run(["--state-dir", file])
    // Before the fix it started (and would have crashed at the first import): not left running.
    onTestFinished(() => {
      if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL")
    })
    const exit = await Promise.race([
      r.exited,
      new Promise<"still running">((resolve) => setTimeout(() => resolve("still running"), 15_000)),
    ])
    expect(exit, r.stdout).toEqual({ code: 2, signal: null })
    expect(r.stdout).toBe("")
    expect(r.stderr).toContain(
      `kvdeploy-emulator: --state-dir ${file}: is a file, not a directory; give a directory`,
    )
    // The flag is written right; its directory is the problem: the usage would bury the fix.
    expect(r.stderr).not.toContain("usage:")
    expect(r.stderr).not.toMatch(/\n\s+at /)
  })
  /** Runs the bin to its exit (15 s at most: one that started is killed, and the test fails). */
  const refused = async (args: ReadonlyArray<string>, user?: { uid: number; gid: number }) => {
    const r = run(args, user)
    onTestFinished(() => {
      if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL")
    })
    const exit = await Promise.race([
      r.exited,
      new Promise<"still running">((resolve) => setTimeout(() => resolve("still running"), 15_000)),
    ])
    return { ...r, exit }
  }

  it("--state-dir holding a vault file cut short: refused by the flag naming the file, what is wrong and the fix, exit 2, the file not quoted or changed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kvemu-bin-state-"))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, "vault-cut.json")
    const m = await makeMaterial()
    const text = `{"format":1,"vault":"cut","certificates":[{"name":"a","key":"${m.keyPem.split("\n")[1]}`
    writeFileSync(file, text, { mode: 0o600 })
    const r = await refused(["--state-dir", dir, "--vault", "cut"])
    expect(r.exit, r.stdout).toEqual({ code: 2, signal: null })
    expect(r.stdout).toBe("")
    expect(r.stderr).toContain(
      `kvdeploy-emulator: --state-dir ${dir}: vault cut: ${file} is cut short: its JSON ends before it is complete (an interrupted copy or a full disk?); move it aside (rename it to vault-cut.json.damaged, say) or delete it, and vault cut starts empty: the certificates and secrets it held are not served (deploy them again; a deleted file's are gone); or restore it from a backup. The emulator has not changed it\n`,
    )
    expect(r.stderr).not.toMatch(/\n\s+at |SyntaxError/)
    expect(r.stderr).not.toContain("usage:")
    expect(r.stderr).not.toContain(m.keyPem.split("\n")[1]?.slice(0, 24))
    expect(readFileSync(file, "utf8")).toBe(text)
  })

  it("--state-dir holding a vault file the emulator may not read: refused by the flag, permission denied, with the fix, exit 2", async () => {
    // Root reads any file: then the bin runs as nobody, in a directory of nobody's (0700: one others
    // may write, or of another user's, is refused for that first), the file root's.
    const asRoot = process.getuid?.() === 0
    const dir = mkdtempSync(join(tmpdir(), "kvemu-bin-state-"))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    if (asRoot) chownSync(dir, 65534, 65534)
    chmodSync(dir, 0o700)
    const file = join(dir, "vault-locked.json")
    writeFileSync(file, "{}", { mode: 0o600 })
    chmodSync(file, 0o000)
    const r = await refused(
      ["--state-dir", dir, "--vault", "locked"],
      asRoot ? { uid: 65534, gid: 65534 } : undefined,
    )
    expect(r.exit, r.stdout + r.stderr).toEqual({ code: 2, signal: null })
    expect(r.stderr).toContain(
      `kvdeploy-emulator: --state-dir ${dir}: vault locked: ${file} cannot be read (permission denied); make it readable and writable by the user the emulator runs as (chown it to that user; mode 0600), or move it aside`,
    )
    expect(r.stderr).not.toMatch(/\n\s+at |EACCES/)
    expect(r.stderr).not.toContain("usage:")
  })
})
