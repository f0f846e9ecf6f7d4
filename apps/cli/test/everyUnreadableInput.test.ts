/**
 * deploy and plan list every input that cannot be read in one run, each naming its flag and the
 * fix: the material (--key) and the previous key (--previous-key) both invalid, or one of them
 * missing and the other invalid. Exit 2 as before, and no request reaches the vault.
 */
import { spawnSync } from "node:child_process"
import { rmSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { encryptedKeyPem, type Issued } from "../src/cli/throwawayPki.js"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { type ErrorDocument, json, runCli, startWorld, type World } from "./harness.js"
import { onTerminal, requireScript, scriptSkipped } from "./pty.js"

let world: World
let fx: Fixtures
let leaf: Issued
let previous: Issued

beforeAll(async () => {
  ;[world, fx] = await Promise.all([startWorld("kvdeploy-every-unreadable"), makeFixtures()])
  ;[leaf, previous] = await Promise.all([fx.leaf(), fx.leaf()])
}, 60_000)
afterAll(() => world?.stop())

/** A PEM key cut off in its body: a file that holds no readable key (its text is a real key's). */
const cutKey = (keyPem: string) => keyPem.slice(0, Math.floor(keyPem.length / 2))

describe("unreadable --key and --previous-key", () => {
  const cases = [
    {
      name: "both invalid",
      key: () => world.file("key.pem", cutKey(leaf.keyPem)),
      previousKey: () => world.file("previous.pem", cutKey(previous.keyPem)),
      keyField: /^--key \S+key\.pem/,
      previousField: /^--previous-key \S+previous\.pem/,
    },
    {
      name: "--key missing, --previous-key invalid",
      key: () => `${world.file("gone", "")}.missing`,
      previousKey: () => world.file("previous.pem", cutKey(previous.keyPem)),
      keyField: /^--key$/,
      previousField: /^--previous-key \S+previous\.pem/,
    },
    {
      name: "--key invalid, --previous-key missing",
      key: () => world.file("key.pem", cutKey(leaf.keyPem)),
      previousKey: () => `${world.file("gone", "")}.missing`,
      keyField: /^--key \S+key\.pem/,
      previousField: /^--previous-key$/,
    },
  ]
  for (const c of cases)
    for (const command of ["deploy", "plan"])
      it(`${command}, ${c.name}: both named with their fix, exit 2, the vault untouched`, async () => {
        const mark = world.emulator.requests.mark()
        const args = [
          command,
          "--config",
          world.targetFile("every-unreadable"),
          "--cert",
          world.file("cert.pem", leaf.certPem + fx.chainOf(leaf)),
          "--key",
          c.key(),
          "--previous-key",
          c.previousKey(),
        ]
        const r = await runCli([...args, "--json"], { env: world.env })
        expect(r.code, r.stdout + r.stderr).toBe(2)
        const { problems } = json<ErrorDocument>(r).error
        const keyProblems = problems.filter((p) => c.keyField.test(p.field))
        const previousProblems = problems.filter((p) => c.previousField.test(p.field))
        expect(keyProblems, JSON.stringify(problems)).not.toEqual([])
        expect(previousProblems, JSON.stringify(problems)).not.toEqual([])
        for (const p of [...keyProblems, ...previousProblems]) expect(p.fix).not.toBe("")
        // The text on stderr names both too, and no key text is shown.
        const text = await runCli(args, { env: world.env })
        expect(text.code).toBe(2)
        expect(text.stderr).toMatch(/--key\b/)
        expect(text.stderr).toMatch(/--previous-key\b/)
        for (const issued of [leaf, previous]) {
          const body = issued.keyPem.split("\n").slice(1, 3).join("")
          expect(text.stderr + r.stdout).not.toContain(body.slice(0, 40))
        }
        expect(world.emulator.requests.entries({ since: mark, vault: world.vault })).toEqual([])
      })
})

describe("an input that may wait for good, in a run that fails anyway", () => {
  it("a FIFO with no writer (--key, --previous-key) is not opened: exit 2 at once, the flags' problems listed", async () => {
    const fifo = world.file("no-writer", "").replace(/no-writer$/, "no-writer.fifo")
    const made = spawnSync("mkfifo", [fifo])
    expect(made.status, String(made.stderr)).toBe(0)
    try {
      for (const keyFlags of [
        ["--key", fifo],
        ["--key", world.file("key.pem", cutKey(leaf.keyPem)), "--previous-key", fifo],
      ]) {
        const mark = world.emulator.requests.mark()
        const r = await runCli(
          [
            "deploy",
            "--config",
            world.targetFile("fifo-inputs"),
            "--name",
            "bad_name!",
            "--cert",
            world.file("cert.pem", leaf.certPem + fx.chainOf(leaf)),
            ...keyFlags,
            "--json",
          ],
          { env: world.env, timeoutMs: 15_000 },
        )
        expect(r.code, r.stdout + r.stderr).toBe(2)
        expect(json<ErrorDocument>(r).error.problems.map((p) => p.field)).toContain("--name")
        expect(world.emulator.requests.entries({ since: mark, vault: world.vault })).toEqual([])
      }
    } finally {
      rmSync(fifo, { force: true })
    }
  })
})

describe("on a terminal, in a run that fails anyway", () => {
  it.skipIf(scriptSkipped)(
    "nobody is asked for the passphrase of an encrypted --previous-key, and what is known is listed",
    async () => {
      requireScript()
      const encrypted = world.file(
        "previous-encrypted.pem",
        encryptedKeyPem(previous.keyPem, "never asked 3"),
      )
      for (const key of [world.file("key.pem", cutKey(leaf.keyPem)), `${world.file("gone", "")}.missing`]) {
        const mark = world.emulator.requests.mark()
        const r = await onTerminal(
          [
            "plan",
            "--config",
            world.targetFile("every-unreadable-tty"),
            "--cert",
            world.file("cert.pem", leaf.certPem + fx.chainOf(leaf)),
            "--key",
            key,
            "--previous-key",
            encrypted,
          ],
          "never asked 3\r",
          world.env,
          false,
        )
        expect(r.screen).not.toContain("Passphrase for")
        expect(r.screen).toMatch(/--key\b/)
        expect(r.code, r.screen).toBe(2)
        expect(world.emulator.requests.entries({ since: mark, vault: world.vault })).toEqual([])
      }
    },
  )
})
