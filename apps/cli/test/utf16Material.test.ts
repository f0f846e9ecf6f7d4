/**
 * Material files saved as UTF-16 with a byte order mark (what Windows PowerShell 5.1's `Out-File`
 * and `>` write): the CLI's own look at a key file (is it encrypted, so that it asks for the
 * passphrase or names the flag that gives it) reads them as the parser does. Each refusal is proven
 * to send no write request to the vault (the emulator's request log).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { encryptedKeyPem, type Issued } from "../src/cli/throwawayPki.js"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { json, runCli, startWorld, type World } from "./harness.js"

let world: World
let fx: Fixtures
let good: Issued
let other: Issued

beforeAll(async () => {
  ;[world, fx] = await Promise.all([startWorld("kvdeploy-utf16"), makeFixtures()])
  ;[good, other] = await Promise.all([fx.leaf(), fx.leaf()])
}, 60_000)
afterAll(() => world?.stop())

/** Text as UTF-16LE with its byte order mark. */
const utf16le = (text: string): Uint8Array =>
  Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")])
/** Text as UTF-16BE with its byte order mark. */
const utf16be = (text: string): Uint8Array => {
  const le = Buffer.from(text, "utf16le")
  return Buffer.concat([Buffer.from([0xfe, 0xff]), le.swap16()])
}

const deployArgs = (name: string, ...more: ReadonlyArray<string>) => [
  "deploy",
  "--config",
  world.targetFile(name),
  "--cert",
  world.file(`${name}-cert.pem`, utf16le(good.certPem + fx.chainPem)),
  ...more,
]

describe("UTF-16 material files", () => {
  it.concurrent("an encrypted UTF-16LE key without a passphrase: named as encrypted, with the flag that gives it; nothing written", async () => {
    const mark = world.emulator.requests.mark()
    const r = await runCli(
      [
        ...deployArgs(
          "u-enc-le",
          "--key",
          world.file("enc-le.key", utf16le(encryptedKeyPem(good.keyPem, "pw"))),
        ),
        "--json",
      ],
      { env: world.env },
    )
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.stdout + r.stderr).toContain("the private key is encrypted and no passphrase was given")
    expect(r.stdout + r.stderr).toContain("--key-passphrase-env")
    expect(world.writesSince(mark, "u-enc-le")).toBe(0)
  })

  it.concurrent("an encrypted UTF-16BE key with its passphrase's variable: deployed", async () => {
    const r = await runCli(
      [
        ...deployArgs(
          "u-enc-be",
          "--key",
          world.file("enc-be.key", utf16be(encryptedKeyPem(good.keyPem, "correct horse"))),
          "--key-passphrase-env",
          "KEY_PASS",
        ),
        "--json",
      ],
      { env: { ...world.env, KEY_PASS: "correct horse" } },
    )
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(json<{ _tag: string }>(r)._tag).toBe("Succeeded")
    expect(r.stdout + r.stderr).not.toContain("correct horse")
  })

  it.concurrent("an encrypted UTF-16LE --previous-key without a passphrase: named as encrypted, with its flag; nothing written", async () => {
    const mark = world.emulator.requests.mark()
    const r = await runCli(
      deployArgs(
        "u-prev-enc",
        "--key",
        world.file("plain.key", good.keyPem),
        "--previous-key",
        world.file("prev-enc-le.key", utf16le(encryptedKeyPem(other.keyPem, "pw"))),
      ),
      { env: world.env },
    )
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.stderr).toContain("is encrypted and no passphrase was given")
    expect(r.stderr).toContain("--previous-key-passphrase-env")
    expect(world.writesSince(mark, "u-prev-enc")).toBe(0)
  })

  it.concurrent("UTF-16 PEM text given with --pfx: named as PEM, with the flags that take it; nothing written", async () => {
    const mark = world.emulator.requests.mark()
    const r = await runCli(
      [
        "deploy",
        "--config",
        world.targetFile("u-pfx-pem"),
        "--pfx",
        world.file("bundle-le.pem", utf16le(fx.bundle(good))),
      ],
      { env: world.env },
    )
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.stderr).toContain("is PEM text, not a PKCS#12 (PFX) file")
    expect(r.stderr).toContain("--cert FILE")
    expect(world.writesSince(mark, "u-pfx-pem")).toBe(0)
  })
})

describe("verify of a UTF-16 file", () => {
  it("a leaf beside an encrypted key verify cannot read: the leaf is still read and compared", async () => {
    const deployed = await runCli(
      ["deploy", "--config", world.targetFile("u-verify"), "--cert", "-", "--json"],
      { stdin: fx.bundle(good), env: world.env },
    )
    expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0)
    const r = await runCli(
      [
        "verify",
        "--config",
        world.targetFile("u-verify"),
        "--cert",
        world.file("verify-le.pem", utf16le(good.certPem + encryptedKeyPem(good.keyPem, "hunter2"))),
      ],
      { env: world.env },
    )
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^yes +CN=api\.example\.test/)
    expect(r.stdout + r.stderr).not.toContain("hunter2")
  })
})
