import { readFileSync } from "node:fs"
import { encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { encryptedKeyPem } from "../src/cli/throwawayPki.js"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { startWorld, type World } from "./harness.js"
import { onTerminal, requireScript, scriptSkipped } from "./pty.js"

let world: World
let fx: Fixtures
let pfxPath = ""

const der = (pem: string, label: string) =>
  new Uint8Array(
    Buffer.from(
      (new RegExp(`-----BEGIN ${label}-----([\\s\\S]+?)-----END`).exec(pem)?.[1] ?? "").replace(/\s+/g, ""),
      "base64",
    ),
  )

beforeAll(async () => {
  if (scriptSkipped) return
  requireScript()
  ;[world, fx] = await Promise.all([startWorld("kvdeploy-tty"), makeFixtures()])
  const leaf = await fx.leaf()
  const pfx = await Effect.runPromise(
    encodePfx(
      {
        leaf: der(leaf.certPem, "CERTIFICATE"),
        chain: [der(fx.pki.intermediate.certPem, "CERTIFICATE")],
        key: Redacted.make(der(leaf.keyPem, "PRIVATE KEY")),
      },
      { encoding: "modern", password: Redacted.make("tty secret 42"), friendlyName: "tty" },
    ),
  )
  pfxPath = world.file("tty.pfx", pfx)
})
afterAll(async () => {
  await world?.stop()
})

describe.skipIf(scriptSkipped)("on a terminal", () => {
  it("asks for the PFX password (not echoed) and deploys with it; colours on without NO_COLOR", async () => {
    const r = await onTerminal(
      ["deploy", "--config", world.targetFile("tty-pfx"), "--pfx", pfxPath],
      "tty secret 42\r",
      world.env,
      true,
    )
    expect(r.screen).toContain("Password for")
    expect(r.screen).not.toContain("tty secret 42")
    // Not even its length: nothing is echoed for what is typed (as sudo and ssh do).
    expect(r.screen).not.toMatch(/\*{3,}/)
    // Green, bold "Succeeded" (SGR 32 and 1).
    expect(r.screen).toContain("\u001b[32m\u001b[1mSucceeded")
    expect(r.code, r.screen).toBe(0)
  })

  it("names each step of a deploy on the progress line: the snapshot, the import and the verify; a recovery and its wait", async () => {
    const name = "tty-steps"
    let n = 0
    /** Deploy a fresh leaf on a terminal; its exit code and the steps its progress line named. */
    const deployed = async (extra: ReadonlyArray<string> = []) => {
      const cert = world.file(`${name}-${++n}.pem`, fx.bundle(await fx.leaf()))
      const args = ["deploy", "--config", world.targetFile(name), "--cert", cert, ...extra]
      const r = await onTerminal(args, "", world.env, false)
      const steps = [...r.screen.matchAll(new RegExp(`${name}: ([^\u001b\r\n]*?)…`, "g"))].map((m) => m[1])
      return { code: r.code, steps, screen: r.screen }
    }
    const first = await deployed()
    expect(first.code, first.screen).toBe(0)
    expect(first.steps).toEqual([
      "reading the version served now",
      "importing the new version",
      "verifying that the new version is served",
    ])
    // Soft-deleted, then deployed again with --on-soft-deleted recover: the recovery is named while it
    // runs. (The first import meets the soft-deleted name: Key Vault answers 409.)
    await (await world.sdk().beginDeleteCertificate(name, { intervalInMs: 50 })).pollUntilDone()
    const recovered = await deployed(["--on-soft-deleted", "recover"])
    expect(recovered.code, recovered.screen).toBe(0)
    expect(recovered.steps).toEqual([
      "reading the version served now",
      "importing the new version",
      "the name is soft-deleted: reading the deleted certificate",
      "recovering the soft-deleted certificate (may take minutes)",
      "importing the new version",
      "verifying that the new version is served",
    ])
    // A version the vault serves wrong (disabled right after the import): the rollback's steps.
    world.emulator.faults.add({ operation: "import", name, action: { kind: "disableAfterCommit" } })
    const rolledBack = await deployed()
    expect(rolledBack.code, rolledBack.screen).toBe(3)
    expect(rolledBack.steps).toEqual([
      "reading the version served now",
      "importing the new version",
      "verifying that the new version is served",
      "rolling back: reading the previous version's PFX",
      "rolling back: listing the versions since the snapshot",
      "rolling back: checking that no newer version came in meanwhile",
      "rolling back: importing the previous certificate",
      "rolling back: listing the versions again",
      "verifying that the restored version is served",
    ])
  })

  it("--json: no progress line and no colours on the terminal's stderr, whatever the command; stdout one JSON document", async () => {
    const name = "tty-json"
    const leaf = await fx.leaf()
    const cert = world.file(`${name}.pem`, fx.bundle(leaf))
    const outcome = world.file(`${name}-deploy.json`, "")
    // Colours allowed (no NO_COLOR), stderr a terminal: --json alone turns both off.
    const deployed = await onTerminal(
      ["deploy", "--config", world.targetFile(name), "--cert", cert, "--json"],
      "",
      world.env,
      true,
      outcome,
    )
    expect(deployed.code, deployed.screen).toBe(0)
    expect(JSON.parse(readFileSync(outcome, "utf8"))).toMatchObject({ outcome: "Succeeded" })
    // Neither the progress line's steps nor its dim colour (SGR 2), nor any other colour code.
    expect(deployed.screen).not.toContain(`${name}: `)
    expect(deployed.screen).not.toContain("…")
    expect(deployed.screen).not.toContain("\u001b[")
    // The same without --json shows them: the test sees progress and colour when there are some.
    const plain = await onTerminal(
      ["deploy", "--config", world.targetFile(name), "--cert", cert],
      "",
      world.env,
      true,
      world.file(`${name}-deploy.txt`, ""),
    )
    expect(plain.code, plain.screen).toBe(0)
    expect(plain.screen).toContain(`${name}: reading the version served now…`)
    expect(plain.screen).toContain("\u001b[2m")
    // Other commands alike, their errors on stderr included (uncoloured; the JSON error on stdout).
    for (const args of [
      ["show", "--config", world.targetFile(name)],
      ["versions", "--config", world.targetFile(name)],
      ["verify", "--config", world.targetFile(name), "--cert", cert],
      ["show", "--config", world.targetFile(`${name}-absent`)],
      ["versions", "--config", world.targetFile(name), "--limit", "0"],
      ["show", "--config", world.targetFile(name), "--no-such-flag"],
    ]) {
      const out = world.file(`${name}-${args[0]}.json`, "")
      const r = await onTerminal([...args, "--json"], "", world.env, true, out)
      expect(r.screen, args.join(" ")).not.toContain("\u001b[")
      expect(r.screen, args.join(" ")).not.toContain("…")
      expect(() => JSON.parse(readFileSync(out, "utf8")), args.join(" ")).not.toThrow()
    }
  })

  it("asks for an encrypted --previous-key's passphrase (not echoed) when no variable names it, and plan judges the key", async () => {
    const name = "tty-previous-key"
    const served = await fx.leaf()
    const deployed = await onTerminal(
      [
        "deploy",
        "--config",
        world.targetFile(name),
        "--cert",
        world.file(`${name}-v1.pem`, fx.bundle(served)),
      ],
      "",
      world.env,
      false,
    )
    expect(deployed.code, deployed.screen).toBe(0)
    const previousKey = world.file(`${name}.key`, encryptedKeyPem(served.keyPem, "kept key 7"))
    const args = [
      "plan",
      "--config",
      world.targetFile(name),
      "--cert",
      world.file(`${name}-v2.pem`, fx.bundle(await fx.leaf())),
      "--previous-key",
      previousKey,
    ]
    const r = await onTerminal(args, "kept key 7\r", world.env, false)
    expect(r.screen).toContain("Passphrase for")
    expect(r.screen).toContain("(the previous key)")
    expect(r.screen).not.toContain("kept key 7")
    expect(r.screen).toMatch(/previous key matches the served certificate/)
    expect(r.code, r.screen).toBe(0)
  })

  it("with stdout redirected (--json > file), the password prompt is on the terminal and the file holds only the JSON document", async () => {
    const out = world.file("tty-json.out", "")
    const r = await onTerminal(
      ["deploy", "--config", world.targetFile("tty-json"), "--pfx", pfxPath, "--json"],
      "tty secret 42\r",
      world.env,
      false,
      out,
    )
    // The prompt reached the screen (stderr), not the file.
    expect(r.screen).toContain("Password for")
    expect(r.code, r.screen).toBe(0)
    const written = readFileSync(out, "utf8")
    expect(written).not.toContain("Password for")
    expect((JSON.parse(written) as { outcome: string }).outcome).toBe("Succeeded")
  })

  it("a wrong password typed on the terminal is a usage error (exit 2), nothing written, no colours with NO_COLOR", async () => {
    const mark = world.emulator.requests.mark()
    const r = await onTerminal(
      ["deploy", "--config", world.targetFile("tty-wrong"), "--pfx", pfxPath],
      "nope\r",
      world.env,
      false,
    )
    expect(r.screen).toContain("the password entered does not open it")
    // The fix is to type the right one, not to name a variable (it said only that).
    expect(r.screen.replace(/\s+/g, " ")).toContain(
      "fix: run it again and enter the password the PFX was exported with",
    )
    // NO_COLOR: kvdeploy's own lines carry no colour codes.
    expect(r.screen).toMatch(/error: --pfx [^\n]*: the password entered/)
    expect(r.screen).not.toContain("\u001b[31merror")
    expect(r.code, r.screen).toBe(2)
    expect(world.writesSince(mark)).toBe(0)
  })
})
