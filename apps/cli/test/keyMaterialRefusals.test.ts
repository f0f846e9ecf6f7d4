/**
 * The material refusals of @kvdeploy/pkcs12 through the BUILT kvdeploy: an encrypted key under a
 * legacy PKCS#5 v1 cipher, an encrypted key whose scrypt cost is over the limit, a PFX holding two
 * private keys (Java keytool's keystore of two entries), and a PEM file of stray BEGIN/END lines
 * (more than the 20 problems listed). Each is refused with exit 2 and a `--json` error document
 * naming the field, the problem and the fix (the openssl or keytool command), sends no write to the
 * vault (the emulator's request log), and prints no line of any key. The material is made by openssl
 * and keytool in the test, on /dev/shm (the harness removes it).
 */
import { spawnSync } from "node:child_process"
import { X509Certificate } from "node:crypto"
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { keytoolStoreOfTwoKeys } from "@kvdeploy/pkcs12/testing"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type ErrorDocument, json, runCli, startWorld, type World } from "./harness.js"

let world: World
/** Every key's PEM text made for these runs: none of its lines may be printed. */
const keyTexts: Array<string> = []

const tool = (command: string, args: ReadonlyArray<string>, input?: string): Buffer => {
  const r = spawnSync(command, args, input === undefined ? {} : { input })
  if (r.status !== 0) throw new Error(`${command} ${args.join(" ")}: ${r.stderr}`)
  return r.stdout
}
const openssl = (args: ReadonlyArray<string>, input?: string) => tool("openssl", args, input).toString()

let leafCert = ""
let leafKey = ""

beforeAll(async () => {
  world = await startWorld("kvdeploy-key-refusals")
  const key = world.file("leaf.key", "")
  const cert = world.file("leaf.crt", "")
  openssl(
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert].concat([
      "-subj",
      "/CN=app.example.test",
      "-days",
      "30",
    ]),
  )
  leafKey = readFileSync(key, "utf8")
  leafCert = readFileSync(cert, "utf8")
  keyTexts.push(leafKey)
}, 60_000)
afterAll(() => world?.stop())

/** `leafKey` re-encrypted by `openssl pkcs8 -topk8` with `options` under passphrase "pw". */
const encrypted = (options: ReadonlyArray<string>): string => {
  const pem = openssl(["pkcs8", "-topk8", ...options, "-passout", "pass:pw"], leafKey)
  keyTexts.push(pem)
  return pem
}

/** Lines of every key made here that are no PEM armour: none may appear in what a run printed. */
const keyLines = () =>
  keyTexts.flatMap((k) => k.split("\n").filter((l) => l.length >= 16 && !l.startsWith("-----")))

const problemsOf = (r: { code: number; stdout: string; stderr: string }) => {
  const doc = json<ErrorDocument>(r)
  expect(doc.error.exitCode).toBe(2)
  return doc.error.problems
}

const printsNoKey = (r: { stdout: string; stderr: string }) => {
  const printed = r.stdout + r.stderr
  for (const line of keyLines()) expect(printed).not.toContain(line)
  expect(printed).not.toContain("pwpwpw")
}

describe("encrypted key material kvdeploy refuses, through the CLI", () => {
  it("a PKCS#5 v1 key (PBE-MD5-DES) as --key: the legacy encryption named, with openssl's re-encryption to PBES2/AES; nothing written", async () => {
    const legacy = world.file(
      "legacy.pem",
      encrypted(["-v1", "PBE-MD5-DES", "-provider", "legacy", "-provider", "default"]),
    )
    const mark = world.emulator.requests.mark()
    const r = await runCli(
      [
        "deploy",
        "--config",
        world.targetFile("legacy-key"),
        "--cert",
        world.file("leaf.crt", leafCert),
        "--key",
        legacy,
        "--key-passphrase-env",
        "KEY_PASS",
        "--json",
      ],
      { env: { ...world.env, KEY_PASS: "pw" } },
    )
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(problemsOf(r)).toEqual([
      {
        field: `--key ${legacy}: block 1 (ENCRYPTED PRIVATE KEY)`,
        message: "the private key is encrypted with PBE-MD5-DES, a legacy encryption kvdeploy does not read",
        fix: "re-encrypt it with PBES2/AES: openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 600000 -in key.pem -out key-aes.pem (add -provider legacy -provider default to read a legacy cipher); or supply it unencrypted",
      },
    ])
    expect(r.stderr).toContain(
      "fix: re-encrypt it with PBES2/AES: openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 600000",
    )
    expect(world.writesSince(mark)).toBe(0)
    printsNoKey(r)
  })

  it("a --previous-key whose scrypt cost is over the limit: refused before decrypting, naming --previous-key, the cost and the re-encryption; nothing written", async () => {
    // N*r*p = 2,097,152: twice the limit (openssl's -scrypt default is 131,072).
    const scrypt = world.file(
      "scrypt.pem",
      encrypted(["-scrypt", "-scrypt_N", "16384", "-scrypt_r", "8", "-scrypt_p", "16"]),
    )
    const mark = world.emulator.requests.mark()
    const r = await runCli(
      [
        "deploy",
        "--config",
        world.targetFile("scrypt-key"),
        "--cert",
        world.file("leaf.crt", leafCert),
        "--key",
        world.file("leaf.key", leafKey),
        "--previous-key",
        scrypt,
        "--previous-key-passphrase-env",
        "PREV_PASS",
        "--json",
      ],
      { env: { ...world.env, PREV_PASS: "pw" } },
    )
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(problemsOf(r)).toEqual([
      {
        field: `--previous-key ${scrypt}: block 1 (ENCRYPTED PRIVATE KEY)`,
        message:
          "the private key's encryption is refused before decrypting it: the scrypt cost N*r*p (N 16384, r 8, p 16) exceeds the limit of 1048576",
        fix: "re-encrypt the key with a cost OpenSSL's defaults use: openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 600000 -in key.pem -out key-aes.pem (add -provider legacy -provider default to read a legacy cipher); or supply it unencrypted",
      },
    ])
    expect(world.writesSince(mark)).toBe(0)
    printsNoKey(r)
  })

  it("a --previous-key with a wrong passphrase: the fix names the one variable kvdeploy read it from (--key-passphrase-env's when --previous-key-passphrase-env is not given); nothing written", async () => {
    const mark = world.emulator.requests.mark()
    const r = await runCli(
      [
        "deploy",
        "--config",
        world.targetFile("wrong-previous-pass"),
        "--cert",
        world.file("leaf.crt", leafCert),
        "--key",
        world.file("leaf.key", leafKey),
        "--key-passphrase-env",
        "KEY_PASS",
        "--previous-key",
        world.file("previous.pem", encrypted(["-v2", "aes-256-cbc"])),
        "--json",
      ],
      { env: { ...world.env, KEY_PASS: "not-pw" } },
    )
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(problemsOf(r)).toEqual([
      {
        field: expect.stringMatching(/^--previous-key \S+previous\.pem: block 1 \(ENCRYPTED PRIVATE KEY\)$/),
        message: "the private key could not be decrypted: the passphrase is wrong",
        fix: "check the passphrase in the variable --key-passphrase-env names: it must be the one the key was encrypted with",
      },
    ])
    expect(world.writesSince(mark)).toBe(0)
    printsNoKey(r)
  })

  it("a PFX of two private keys (a Java keystore of an old and a renewed entry of one subject): refused naming each by alias, serial and notAfter, with keytool's one-entry export and the aliases; nothing written", async () => {
    const store = join(dirname(world.file("marker", "")), "two.p12")
    keytoolStoreOfTwoKeys(store, "pwpwpw", { subject: "CN=api.example.test" })
    // Its two keys, for printsNoKey's check that no line of them is printed.
    keyTexts.push(openssl(["pkcs12", "-in", store, "-nocerts", "-nodes", "-passin", "pass:pwpwpw"]))
    const mark = world.emulator.requests.mark()
    const r = await runCli(
      [
        "deploy",
        "--config",
        world.targetFile("two-keys"),
        "--pfx",
        store,
        "--pfx-password-env",
        "PFX_PASS",
        "--json",
      ],
      { env: { ...world.env, PFX_PASS: "pwpwpw" } },
    )
    expect(r.code, r.stdout + r.stderr).toBe(2)
    // Each entry's serial and notAfter, as openssl reads the store's certificates.
    const shown = openssl(["pkcs12", "-in", store, "-nokeys", "-passin", "pass:pwpwpw"])
    const entries = [
      ...shown.matchAll(
        /friendlyName: (\w+)[\s\S]*?(-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----)/g,
      ),
    ]
      .map(([, alias, pem]) => {
        const cert = new X509Certificate(pem ?? "")
        return `the entry "${alias}": that of "CN=api.example.test", serial ${cert.serialNumber.toLowerCase().replace(/^(00)+(?=.)/, "")}, notAfter ${new Date(cert.validTo).toISOString()}`
      })
      .sort()
    expect(entries).toHaveLength(2)
    expect(problemsOf(r)).toEqual([
      {
        field: `--pfx ${store}`,
        message: `cannot be read: the PFX holds 2 private keys (${entries.join("; ")}); kvdeploy takes one, the leaf's, and does not guess which`,
        fix: 'export the PFX with the leaf\'s private key alone (openssl pkcs12 -export -inkey leaf-key.pem -in leaf.pem -certfile chain.pem; from a Java keystore of several entries, keytool -importkeystore -srcalias ALIAS -destkeystore leaf.p12 -deststoretype PKCS12 takes one; the aliases in this file are "a", "b", and keytool -list -v names each entry\'s certificate)',
      },
    ])
    expect(world.writesSince(mark)).toBe(0)
    printsNoKey(r)
  })

  it("a certificate file whose BEGIN line is damaged (en dashes, U+2212, four hyphens before or after BEGIN), as plan's --cert FILE: the line named, not 'neither PEM text nor DER' nor 'cut short'; nothing written", async () => {
    const begin = "-----BEGIN CERTIFICATE-----"
    for (const [name, line] of [
      ["en-dash", "\u2013\u2013\u2013\u2013\u2013BEGIN CERTIFICATE\u2013\u2013\u2013\u2013\u2013"],
      ["minus", "\u2212\u2212\u2212\u2212\u2212BEGIN CERTIFICATE\u2212\u2212\u2212\u2212\u2212"],
      ["four-before", "----BEGIN CERTIFICATE-----"],
      ["four-after", "-----BEGIN CERTIFICATE----"],
    ] as const) {
      const cert = world.file(`damaged-${name}.pem`, leafCert.replace(begin, line))
      const mark = world.emulator.requests.mark()
      const r = await runCli(
        [
          "plan",
          "--config",
          world.targetFile(`damaged-${name}`),
          "--cert",
          cert,
          "--key",
          world.file("leaf.key", leafKey),
          "--json",
        ],
        { env: world.env },
      )
      expect(r.code, r.stdout + r.stderr).toBe(2)
      expect(problemsOf(r)).toEqual([
        {
          field: `--cert ${cert}: line 1`,
          message: `${JSON.stringify(line)} is a damaged BEGIN line (a PEM line is five ASCII hyphens, BEGIN, a space, an upper-case label and five hyphens: -----BEGIN LABEL-----), so its block is not read`,
          fix: "repair the line, or take the file again from its source (an editor or a copy from a web page may have changed its hyphens)",
        },
      ])
      expect(world.writesSince(mark)).toBe(0)
      printsNoKey(r)
    }
  })

  it("a PEM of stray BEGIN/END lines, 22 problems: a damaged BEGIN line and leftover END lines named by line, 20 listed and the rest counted; nothing written", async () => {
    const text = `${leafCert}${leafKey}-----Begin Certificate-----\n${"-----END CERTIFICATE-----\n".repeat(22)}`
    const mark = world.emulator.requests.mark()
    const r = await runCli(["deploy", "--config", world.targetFile("stray"), "--cert", "-", "--json"], {
      env: world.env,
      stdin: text,
    })
    expect(r.code, r.stdout + r.stderr).toBe(2)
    const problems = problemsOf(r)
    // The certificate and the key ahead of them end on line 47; the damaged BEGIN line is line 48.
    const leftover = (line: number) => ({
      field: `--cert standard input: line ${line}`,
      message:
        '"-----END CERTIFICATE-----" is an END line without its BEGIN line (the BEGIN line is missing or damaged), so its block is not read',
      fix: "repair the block's -----BEGIN LABEL----- line, or remove the leftover END line",
    })
    expect(problems).toEqual([
      {
        field: "--cert standard input: line 48",
        // Whole: the explanation of a PEM line is no PEM text for the CLI to hide.
        message:
          '"-----Begin Certificate-----" is a damaged BEGIN line (a PEM line is five ASCII hyphens, BEGIN, a space, an upper-case label and five hyphens: -----BEGIN LABEL-----), so its block is not read',
        fix: "repair the line, or take the file again from its source (an editor or a copy from a web page may have changed its hyphens)",
      },
      // Line 49 ends the damaged block; 50 to 68 are leftovers, 19 listed, 69 and 70 counted.
      ...Array.from({ length: 19 }, (_, i) => leftover(50 + i)),
      {
        field: "--cert standard input: input",
        message: "has 2 more problems, not listed",
        fix: "fix the ones listed; the input is probably not the right file",
      },
    ])
    expect(r.stderr).toContain("has 2 more problems, not listed")
    expect(world.writesSince(mark)).toBe(0)
    printsNoKey(r)
  })
})
