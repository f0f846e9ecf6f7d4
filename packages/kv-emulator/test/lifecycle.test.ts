/**
 * Several vaults at once, the state directory across a restart (0600 files and
 * a warning; one that cannot hold the state refused at start; a save that fails
 * later warned about, not fatal), and the Effect API (scoped start, layer).
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { it as effectIt } from "@effect/vitest"
import { changeProcessEnv } from "@kvdeploy/core/test"
import * as Effect from "effect/Effect"
import { describe, expect, it, onTestFinished, vi } from "vitest"
import { KvEmulator, layer, StateDirError, start, startScoped } from "../src/index.js"
import { clients, makeMaterial, pemBundle } from "./support.js"

const PEM = { policy: { contentType: "application/x-pem-file" } } as const

describe("several vaults", () => {
  it("each vault has its own port and contents; ids carry the vault's own origin", async () => {
    const emulator = await start({ vaults: ["one", "two", "three"] })
    try {
      const ports = new Set(emulator.vaults.map((v) => v.port))
      expect(ports.size).toBe(3)
      const m = await makeMaterial()
      const a = clients(emulator, "one")
      const b = clients(emulator, "two")
      const ca = await a.certificates.importCertificate("same-name", Buffer.from(pemBundle(m)), PEM)
      expect(ca.properties.id?.startsWith(`${emulator.vault("one").url}/certificates/same-name/`)).toBe(true)
      await expect(b.certificates.getCertificate("same-name")).rejects.toMatchObject({ statusCode: 404 })
      expect(emulator.requests.count({ vault: "one", operation: "import", status: 200 })).toBe(1)
      expect(emulator.requests.count({ vault: "two", operation: "import" })).toBe(0)
    } finally {
      await emulator.stop()
    }
  })
})

describe("a start that fails", () => {
  it("removes the work directory it made (its CA and federated token) when a port is in use", async () => {
    const first = await start({ vaults: ["taken"] })
    const tmp = mkdtempSync(join(tmpdir(), "kv-emulator-failed-start-"))
    // os.tmpdir() reads TMPDIR at each call: the failed start's directory would be made here.
    const restoreEnv = changeProcessEnv({ TMPDIR: tmp })
    try {
      await expect(start({ vaults: [{ name: "again", port: first.vault("taken").port }] })).rejects.toThrow(
        /EADDRINUSE/,
      )
      expect(readdirSync(tmp)).toEqual([])
      // The same start with a free port makes its directory there: the check above can see one.
      const ok = await start({ vaults: ["again"] })
      expect(readdirSync(tmp)).toHaveLength(1)
      await ok.stop()
      expect(readdirSync(tmp)).toEqual([])
    } finally {
      restoreEnv()
      rmSync(tmp, { recursive: true, force: true })
      await first.stop()
    }
  })
})

describe("backing secret encodings", () => {
  it("the modern PKCS#12 profile (PBES2, AES-256) is what the secret carries when asked for, readable with a blank password", async () => {
    const emulator = await start({ vaults: ["modern"], secretEncoding: "modern" })
    try {
      const m = await makeMaterial()
      const c = clients(emulator, "modern")
      const { encodePfx } = await import("@kvdeploy/pkcs12")
      const Redacted = await import("effect/Redacted")
      const pfx = await Effect.runPromise(
        encodePfx(
          { leaf: m.leafDer, chain: m.chainDer, key: Redacted.make(m.keyPkcs8) },
          { encoding: "legacy", password: Redacted.make("x") },
        ),
      )
      await c.certificates.importCertificate("enc-pfx", pfx, { password: "x" })
      const secret = await c.secrets.getSecret("enc-pfx")
      expect(secret.properties.contentType).toBe("application/x-pkcs12")
      // OpenSSL reads the PFX from its standard input: the test writes no key to disk.
      const out = execFileSync("sh", ["-c", "openssl pkcs12 -passin pass: -info -nodes 2>&1"], {
        encoding: "utf8",
        input: Buffer.from(secret.value ?? "", "base64"),
      })
      expect(out).toContain("BEGIN PRIVATE KEY")
      expect(out).toMatch(/PBES2/)
      expect(out).toMatch(/AES-256-CBC/i)
    } finally {
      await emulator.stop()
    }
  })
})

describe("state directory", () => {
  it("keeps certificates across a restart, in 0600 files, and warns that they hold private keys", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kvemu-state-"))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    const warnings: string[] = []
    const first = await start({ vaults: ["kept"], stateDir: dir, warn: (l) => warnings.push(l) })
    const m = await makeMaterial()
    let version: string | undefined
    try {
      const c = clients(first, "kept")
      version = (await c.certificates.importCertificate("persisted", Buffer.from(pemBundle(m)), PEM))
        .properties.version
    } finally {
      await first.stop()
    }
    expect(warnings.join("\n")).toMatch(/private keys/)
    const files = readdirSync(dir)
    expect(files).toContain("vault-kept.json")
    for (const f of files) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600)
    const second = await start({ vaults: ["kept"], stateDir: dir, warn: () => {} })
    try {
      const c = clients(second, "kept")
      const got = await c.certificates.getCertificate("persisted")
      expect(got.properties.version).toBe(version)
      const secret = await c.secrets.getSecret("persisted")
      expect(secret.value).toContain("PRIVATE KEY")
    } finally {
      await second.stop()
    }
  })
})

describe("a state directory that cannot hold the state", () => {
  it("a file, or a path under a file, is refused at start naming stateDir, and nothing is left behind", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kvemu-state-file-"))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, "notadir")
    writeFileSync(file, "not a directory\n")
    // os.tmpdir() reads TMPDIR at each call: a work directory the refused start made would be here.
    const tmp = join(dir, "tmp")
    mkdirSync(tmp)
    const restoreEnv = changeProcessEnv({ TMPDIR: tmp })
    try {
      for (const [stateDir, reason] of [
        [file, "is a file, not a directory"],
        [join(file, "sub"), "a part of the path is a file, not a directory"],
      ] as const) {
        const refused = start({ vaults: ["refused"], stateDir, warn: () => {} })
        // Before the fix it started: stopped, not left running.
        onTestFinished(() => refused.then((e) => e.stop()).catch(() => {}))
        await expect(refused).rejects.toBeInstanceOf(StateDirError)
        await expect(refused).rejects.toThrow(`stateDir ${stateDir}: ${reason}; give a directory`)
        expect(readdirSync(tmp)).toEqual([])
      }
    } finally {
      restoreEnv()
    }
    expect(readdirSync(dir).sort()).toEqual(["notadir", "tmp"])
  })

  it("a save that fails later (the directory replaced by a file) does not stop the emulator: it serves from memory, warns once, and saves again at the next change", async () => {
    const parent = mkdtempSync(join(tmpdir(), "kvemu-state-gone-"))
    onTestFinished(() => rmSync(parent, { recursive: true, force: true }))
    const dir = join(parent, "state")
    const warnings: string[] = []
    const emulator = await start({ vaults: ["fragile"], stateDir: dir, warn: (l) => warnings.push(l) })
    const c = clients(emulator, "fragile")
    const saved = join(dir, "vault-fragile.json")
    const m = await makeMaterial()
    const importAs = (name: string) => c.certificates.importCertificate(name, Buffer.from(pemBundle(m)), PEM)
    const failures = () => warnings.filter((l) => l.includes("could not be saved"))
    try {
      await importAs("before")
      await vi.waitFor(() => expect(existsSync(saved)).toBe(true))
      // Root writes through any mode: the directory goes, and a file takes its place.
      rmSync(dir, { recursive: true })
      writeFileSync(dir, "in the way\n")
      await importAs("while-gone-1")
      await vi.waitFor(() => expect(failures()).toHaveLength(1))
      await importAs("while-gone-2")
      await c.certificates.updateCertificateProperties("while-gone-1", "", { tags: { changed: "yes" } })
      // Served from memory all along.
      for (const name of ["before", "while-gone-1", "while-gone-2"])
        expect((await c.certificates.getCertificate(name)).name).toBe(name)
      // One warning for the whole run of failures, saying what failed and that nothing is kept.
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(failures()).toHaveLength(1)
      expect(failures()[0]).toBe(
        `kv-emulator: WARNING: vault fragile could not be saved to ${saved} (a part of the path is a file, not a directory): its state is not being kept (it is served from memory and lost at stop); the emulator tries again at each change.`,
      )
      // The directory is back: the next change saves everything the vault holds, and says so.
      rmSync(dir)
      mkdirSync(dir)
      await importAs("after")
      await vi.waitFor(() => expect(existsSync(saved)).toBe(true))
      expect(warnings.filter((l) => l.includes("is saved to"))).toEqual([
        `kv-emulator: vault fragile is saved to ${saved} again.`,
      ])
      // A second failure run is warned about again (once).
      rmSync(dir, { recursive: true })
      writeFileSync(dir, "in the way\n")
      await importAs("gone-again")
      await vi.waitFor(() => expect(failures()).toHaveLength(2))
      rmSync(dir)
      mkdirSync(dir)
    } finally {
      await emulator.stop()
    }
    const again = await start({ vaults: ["fragile"], stateDir: dir, warn: () => {} })
    try {
      const names: string[] = []
      for await (const p of clients(again, "fragile").certificates.listPropertiesOfCertificates())
        names.push(p.name ?? "")
      expect(names.sort()).toEqual(["after", "before", "gone-again", "while-gone-1", "while-gone-2"])
    } finally {
      await again.stop()
    }
  })

  it("a save that fails at stop: the emulator still stops (its work directory removed) and warns", async () => {
    const parent = mkdtempSync(join(tmpdir(), "kvemu-state-stop-"))
    onTestFinished(() => rmSync(parent, { recursive: true, force: true }))
    const dir = join(parent, "state")
    const warnings: string[] = []
    const emulator = await start({ vaults: ["stopping"], stateDir: dir, warn: (l) => warnings.push(l) })
    rmSync(dir, { recursive: true })
    writeFileSync(dir, "in the way\n")
    await emulator.stop()
    expect(existsSync(emulator.caFile)).toBe(false)
    expect(warnings.filter((l) => l.includes("vault stopping could not be saved"))).toHaveLength(1)
  })
})

describe("Effect API", () => {
  effectIt.effect("startScoped stops the servers when the scope closes", () =>
    Effect.gen(function* () {
      const url = yield* Effect.scoped(
        Effect.gen(function* () {
          const emulator = yield* startScoped({ vaults: ["scoped"] })
          const res = yield* Effect.promise(() => fetch(`${emulator.managedIdentity.imdsHost}/nothing`))
          expect(res.status).toBe(404)
          return emulator.managedIdentity.imdsHost
        }),
      )
      const after = yield* Effect.promise(() =>
        fetch(`${url}/nothing`).then(
          () => "reachable",
          () => "closed",
        ),
      )
      expect(after).toBe("closed")
    }),
  )

  effectIt.effect("layer provides the running emulator as a service", () =>
    Effect.gen(function* () {
      const emulator = yield* KvEmulator
      expect(emulator.vaults.map((v) => v.name)).toEqual(["layered"])
    }).pipe(Effect.provide(layer({ vaults: ["layered"] }))),
  )
})

it("refuses a duplicate vault name", async () => {
  await expect(start({ vaults: ["dup", "DUP"] })).rejects.toThrow(/duplicate/)
})
