/**
 * A vault's file in the state directory that cannot be loaded (cut short, not
 * JSON, JSON that is not a vault's state, a directory or a FIFO in its place):
 * refused at start with a StateFileError that names the file, says what is
 * wrong and gives the fix, without quoting the file (it holds private keys),
 * before anything is opened, and with the file left as it was. A file the
 * emulator wrote (soft-deleted certificate, tags, a plain secret) still loads.
 */
import { execFileSync, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { inspect } from "node:util"
import { changeProcessEnv } from "@kvdeploy/core/test"
import { beforeAll, describe, expect, it, onTestFinished } from "vitest"
import { StateDirError, StateFileError, start } from "../src/index.js"
import { clients, makeMaterial, pemBundle, type TestMaterial } from "./support.js"

const PEM = { policy: { contentType: "application/x-pem-file" } } as const
const VAULT = "damaged"

let m: TestMaterial
/** The file the emulator wrote for VAULT: two certificates (one soft-deleted), tags, a plain secret. */
let saved: string

beforeAll(async () => {
  m = await makeMaterial()
  const dir = mkdtempSync(join(tmpdir(), "kvemu-state-seed-"))
  try {
    const emulator = await start({ vaults: [VAULT], stateDir: dir, warn: () => {} })
    try {
      const c = clients(emulator, VAULT)
      await c.certificates.importCertificate("kept", Buffer.from(pemBundle(m)), {
        ...PEM,
        tags: { env: "demo" },
      })
      await c.certificates.importCertificate("gone", Buffer.from(pemBundle(m)), PEM)
      await (await c.certificates.beginDeleteCertificate("gone", { intervalInMs: 20 })).pollUntilDone()
      await c.secrets.setSecret("plain", "not a certificate", { tags: { kind: "plain" } })
    } finally {
      await emulator.stop()
    }
    saved = readFileSync(join(dir, `vault-${VAULT}.json`), "utf8")
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

/** A fresh state directory; TMPDIR points into it, so a work directory a refused start made would show. */
const stateDir = () => {
  const parent = mkdtempSync(join(tmpdir(), "kvemu-state-damaged-"))
  onTestFinished(() => rmSync(parent, { recursive: true, force: true }))
  const dir = join(parent, "state")
  const tmp = join(parent, "tmp")
  mkdirSync(dir)
  mkdirSync(tmp)
  onTestFinished(changeProcessEnv({ TMPDIR: tmp }))
  return { dir, tmp }
}

/** Starts the emulator on `dir`: the error it was refused with (a start that worked is stopped and fails the test). */
const refusal = async (dir: string, vaults: ReadonlyArray<string> = [VAULT]): Promise<unknown> => {
  const warnings: string[] = []
  const started = start({ vaults: [...vaults], stateDir: dir, warn: (l) => warnings.push(l) })
  // Before the fix some of these started (and failed requests later): not left running.
  onTestFinished(() => started.then((e) => e.stop()).catch(() => {}))
  return started.then(
    (e) => `started (${e.vaults.map((v) => v.name).join(", ")}): ${warnings.join("\n")}`,
    (e: unknown) => e,
  )
}

/** Whether `text` quotes any 24 characters of `content` (ignoring a run of one repeated character). */
const quotes = (text: string, content: string): boolean => {
  for (let i = 0; i + 24 <= content.length; i += 6) {
    const part = content.slice(i, i + 24)
    if (new Set(part).size > 3 && text.includes(part)) return true
  }
  return false
}

const MOVE_ASIDE =
  `move it aside (rename it to vault-${VAULT}.json.damaged, say) or delete it, and vault ${VAULT} starts empty: ` +
  "the certificates and secrets it held are not served (deploy them again; a deleted file's are gone); " +
  "or restore it from a backup. The emulator has not changed it"

type Json = Record<string, unknown> & {
  certificates: Array<Record<string, unknown> & { versions: Array<Record<string, unknown>> }>
  secrets: Array<Record<string, unknown> & { versions: Array<Record<string, unknown>> }>
}
const edited = (edit: (data: Json) => unknown) => () => {
  const data = JSON.parse(saved) as Json
  return JSON.stringify(edit(data) ?? data)
}
/** An entry of the file (`certificates` or `secrets`), or one of its versions. */
const entry = (d: Json, list: "certificates" | "secrets", i: number) => d[list][i] as Record<string, unknown>
const version = (d: Json, list: "certificates" | "secrets", i: number, j: number) =>
  d[list][i]?.versions[j] as Record<string, unknown>
const KEY_BODY = () => m.keyPem.split("\n")[1] ?? ""

describe("a vault file that cannot be loaded is refused at start, named, with the fix, and left as it is", () => {
  it.each<[string, () => string, string]>([
    [
      "cut short",
      () => saved.slice(0, Math.floor(saved.length / 2)),
      "is cut short: its JSON ends before it is complete (an interrupted copy or a full disk?)",
    ],
    ["empty", () => "", "is empty (an interrupted copy or a full disk?)"],
    ["a private key, not JSON", () => m.keyPem, "is not JSON (it cannot be read from character 2 on)"],
    ["words, not JSON", () => `certificates of ${KEY_BODY()}\n`, "is not JSON"],
    [
      "a JSON list",
      () => `[${JSON.stringify(saved)}]`,
      "holds JSON that is not a vault's state (not an object)",
    ],
    [
      "another format",
      edited((d) => ({ ...d, format: 2 })),
      "holds JSON that is not a vault's state as this emulator writes it: format is 2: this emulator reads format 1 only",
    ],
    [
      "no certificates",
      edited((d) => ({ format: 1, vault: VAULT, secrets: d.secrets })),
      "holds JSON that is not a vault's state as this emulator writes it: certificates is missing",
    ],
    [
      "certificates not a list",
      edited((d) => ({ ...d, certificates: { kept: d.certificates[0] } })),
      "holds JSON that is not a vault's state as this emulator writes it: certificates is not a list",
    ],
    [
      "a leaf that is no certificate",
      edited((d) => {
        version(d, "certificates", 0, 0).leaf = Buffer.from(KEY_BODY()).toString("base64")
      }),
      "holds JSON that is not a vault's state as this emulator writes it: certificates[0].versions[0].leaf is not a certificate (base64 of its DER)",
    ],
    [
      "a key that is no private key",
      edited((d) => {
        const v = version(d, "certificates", 0, 0)
        v.key = String(v.key).slice(0, 200)
      }),
      "holds JSON that is not a vault's state as this emulator writes it: certificates[0].versions[0].key is not a private key (base64 of its PKCS#8 DER) or null",
    ],
    [
      "a certificate without versions",
      edited((d) => {
        entry(d, "certificates", 1).versions = []
      }),
      "holds JSON that is not a vault's state as this emulator writes it: certificates[1].versions is empty",
    ],
    [
      "a tag that is no string",
      edited((d) => {
        version(d, "certificates", 0, 0).tags = { env: { value: KEY_BODY() } }
      }),
      "holds JSON that is not a vault's state as this emulator writes it: certificates[0].versions[0].tags has a value that is not a string",
    ],
    [
      "a policy Key Vault would refuse",
      edited((d) => {
        entry(d, "certificates", 0).policy = { key_props: { kty: "DSA" } }
      }),
      "holds JSON that is not a vault's state as this emulator writes it: certificates[0].policy is not a certificate policy (key_props.kty has an invalid value)",
    ],
    [
      "a secret without its value",
      edited((d) => {
        delete version(d, "secrets", 0, 0).value
      }),
      "holds JSON that is not a vault's state as this emulator writes it: secrets[0].versions[0].value is missing",
    ],
  ])("%s", async (_, content, reason) => {
    const { dir, tmp } = stateDir()
    const file = join(dir, `vault-${VAULT}.json`)
    const text = content()
    writeFileSync(file, text, { mode: 0o600 })
    const before = statSync(file)
    const e = await refusal(dir)
    // A state directory's problem (the bin and the CLI refuse it by --state-dir, exit 2), in words.
    expect(e).toBeInstanceOf(StateDirError)
    const error = e as StateFileError
    expect(error.message).toBe(
      `stateDir ${dir}: vault ${VAULT} cannot be loaded: ${file} ${reason}; ${MOVE_ASIDE}`,
    )
    expect(error.name).toBe("StateFileError")
    expect(e).toBeInstanceOf(StateFileError)
    expect(error.path).toBe(dir)
    expect(error.files).toEqual([{ vault: VAULT, file, reason, fix: MOVE_ASIDE }])
    // Nothing of the file in the error, its stack or a cause (JSON.parse's own message quotes the text).
    expect(quotes(inspect(e, { depth: 10 }), text)).toBe(false)
    expect(inspect(e, { depth: 10 })).not.toContain(KEY_BODY().slice(0, 24))
    // The file as it was, nothing written beside it, and no work directory made.
    expect(readFileSync(file, "utf8")).toBe(text)
    expect(statSync(file).mtimeMs).toBe(before.mtimeMs)
    expect(readdirSync(dir)).toEqual([`vault-${VAULT}.json`])
    expect(readdirSync(tmp)).toEqual([])
  })

  it("a directory in the file's place", async () => {
    const { dir, tmp } = stateDir()
    const file = join(dir, `vault-${VAULT}.json`)
    mkdirSync(file)
    const e = await refusal(dir)
    expect(e).toBeInstanceOf(StateDirError)
    expect((e as StateFileError).files).toEqual([
      {
        vault: VAULT,
        file,
        reason: "is a directory, not a file",
        fix: `move the directory aside (rename it) or remove it, and vault ${VAULT} starts empty; or put the vault's file from a backup in its place. The emulator has not changed it`,
      },
    ])
    expect(statSync(file).isDirectory()).toBe(true)
    expect(readdirSync(tmp)).toEqual([])
  })

  it("a FIFO in the file's place: refused without waiting for a writer", async () => {
    const { dir, tmp } = stateDir()
    const file = join(dir, `vault-${VAULT}.json`)
    execFileSync("mkfifo", [file])
    // Before the fix the start read it (and waited for a writer for ever): one comes, so that test fails instead of hanging.
    const writer = spawn("sh", ["-c", `sleep 2; printf '' > "$1"`, "sh", file], { stdio: "ignore" })
    onTestFinished(() => void writer.kill("SIGKILL"))
    const e = await refusal(dir)
    expect(e).toBeInstanceOf(StateDirError)
    expect((e as StateFileError).files).toEqual([
      { vault: VAULT, file, reason: "is not a regular file (a FIFO, a socket or a device)", fix: MOVE_ASIDE },
    ])
    expect(readdirSync(tmp)).toEqual([])
  })

  it("every damaged file of the vaults asked for is named, in their order; none is started", async () => {
    const { dir, tmp } = stateDir()
    writeFileSync(join(dir, "vault-first.json"), saved.slice(0, 100))
    writeFileSync(join(dir, "vault-good.json"), saved.replace(`"vault":"${VAULT}"`, `"vault":"good"`))
    writeFileSync(join(dir, "vault-third.json"), "[]")
    const e = await refusal(dir, ["first", "good", "third", "new"])
    expect(e).toBeInstanceOf(StateDirError)
    expect((e as StateFileError).files.map((f) => [f.vault, f.file, f.reason])).toEqual([
      [
        "first",
        join(dir, "vault-first.json"),
        "is cut short: its JSON ends before it is complete (an interrupted copy or a full disk?)",
      ],
      ["third", join(dir, "vault-third.json"), "holds JSON that is not a vault's state (not an object)"],
    ])
    expect(readdirSync(tmp)).toEqual([])
  })
})

describe("a vault file the emulator wrote", () => {
  it("loads: its certificates (one soft-deleted, tagged) and its plain secret are served again", async () => {
    const { dir } = stateDir()
    writeFileSync(join(dir, `vault-${VAULT}.json`), saved, { mode: 0o600 })
    const emulator = await start({ vaults: [VAULT], stateDir: dir, warn: () => {} })
    try {
      const c = clients(emulator, VAULT)
      const kept = await c.certificates.getCertificate("kept")
      expect(kept.properties.tags).toEqual({ env: "demo" })
      expect((await c.secrets.getSecret("kept")).value).toContain("PRIVATE KEY")
      expect((await c.certificates.getDeletedCertificate("gone")).name).toBe("gone")
      const plain = await c.secrets.getSecret("plain")
      expect([plain.value, plain.properties.tags]).toEqual(["not a certificate", { kind: "plain" }])
    } finally {
      await emulator.stop()
    }
  })
})

describe("a vault's file has no letter case, as the vault's name has none", () => {
  it("a vault given as KV-Demo is saved as vault-kv-demo.json and served again as kv-demo", async () => {
    const { dir } = stateDir()
    const first = await start({ vaults: ["KV-Demo"], stateDir: dir, warn: () => {} })
    try {
      await clients(first, "KV-Demo").certificates.importCertificate("kept", Buffer.from(pemBundle(m)), PEM)
    } finally {
      await first.stop()
    }
    expect(readdirSync(dir).filter((f) => f.endsWith(".json"))).toEqual(["vault-kv-demo.json"])
    const again = await start({ vaults: ["kv-demo"], stateDir: dir, warn: () => {} })
    try {
      expect((await clients(again, "kv-demo").certificates.getCertificate("kept")).name).toBe("kept")
    } finally {
      await again.stop()
    }
  })

  it("a file an older emulator named as the vault was given is loaded, and renamed to the lower-case name", async () => {
    const { dir } = stateDir()
    writeFileSync(join(dir, `vault-${VAULT.toUpperCase()}.json`), saved, { mode: 0o600 })
    const emulator = await start({ vaults: [VAULT], stateDir: dir, warn: () => {} })
    try {
      expect((await clients(emulator, VAULT).certificates.getCertificate("kept")).name).toBe("kept")
    } finally {
      await emulator.stop()
    }
    expect(readdirSync(dir).filter((f) => f.endsWith(".json"))).toEqual([`vault-${VAULT}.json`])
    expect(readFileSync(join(dir, `vault-${VAULT}.json`), "utf8")).toContain('"kept"')
  })

  it("an older file is not renamed when the start is refused for another vault's damaged file", async () => {
    const { dir } = stateDir()
    writeFileSync(join(dir, `vault-${VAULT.toUpperCase()}.json`), saved, { mode: 0o600 })
    writeFileSync(join(dir, "vault-other.json"), "{", { mode: 0o600 })
    const error = await refusal(dir, [VAULT, "other"])
    expect(error).toBeInstanceOf(StateFileError)
    expect((error as StateFileError).files.map((f) => f.vault)).toEqual(["other"])
    expect(readdirSync(dir).sort()).toEqual([`vault-${VAULT.toUpperCase()}.json`, "vault-other.json"].sort())
  })

  it("an older file is not renamed when the start fails later (a port in use)", async () => {
    const { dir } = stateDir()
    writeFileSync(join(dir, `vault-${VAULT.toUpperCase()}.json`), saved, { mode: 0o600 })
    const holder = await start({ vaults: ["port-holder"], warn: () => {} })
    try {
      await expect(
        start({
          vaults: [{ name: VAULT, port: holder.vault("port-holder").port }],
          stateDir: dir,
          warn: () => {},
        }),
      ).rejects.toThrow(/EADDRINUSE/)
    } finally {
      await holder.stop()
    }
    expect(readdirSync(dir).filter((f) => f.endsWith(".json"))).toEqual([`vault-${VAULT.toUpperCase()}.json`])
  })

  it("two files of one vault in different cases: refused at start, both named and left as they are", async () => {
    const { dir } = stateDir()
    const upper = join(dir, `vault-${VAULT.toUpperCase()}.json`)
    writeFileSync(upper, saved, { mode: 0o600 })
    writeFileSync(join(dir, `vault-${VAULT}.json`), saved, { mode: 0o600 })
    const error = await refusal(dir)
    expect(error).toBeInstanceOf(StateFileError)
    const file = (error as StateFileError).files[0]
    expect(file?.reason).toBe(
      "are 2 files of one vault (a vault's name has no letter case), so which to serve is not known",
    )
    expect(file?.file).toContain(upper)
    expect(file?.fix).toMatch(
      new RegExp(`^keep the one to serve, named vault-${VAULT}\\.json, and move the others aside`),
    )
    expect(quotes(String((error as Error).message), saved)).toBe(false)
    expect(readdirSync(dir).sort()).toEqual(
      [`vault-${VAULT.toUpperCase()}.json`, `vault-${VAULT}.json`].sort(),
    )
  })
})
