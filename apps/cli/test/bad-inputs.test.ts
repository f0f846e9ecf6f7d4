/**
 * A corpus of bad inputs to the BUILT kvdeploy, each with its own clear error
 * (what is wrong, where, and the fix) and each proven to send zero write
 * requests to the vault (the emulator's request log). Inputs that kvdeploy
 * accepts and normalises (PKCS#1 and SEC1 keys, encrypted keys with their
 * passphrase, a bundle in reverse order) are deployed for real.
 */
import { spawnSync } from "node:child_process"
import { createPrivateKey } from "node:crypto"
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { holdsEncodedBase64 } from "@kvdeploy/core"
import { encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { encryptedKeyPem, type Issued, issue, traditionalKeyPem } from "../src/cli/throwawayPki.js"
import { damagedKeyPem, type Fixtures, makeFixtures } from "./fixtures.js"
import { json, runCli, startWorld, type World } from "./harness.js"

let world: World
let fx: Fixtures
let good: Issued
let other: Issued
let expired: Issued
let future: Issued
let rsa1024: Issued
let rsa2048: Issued
let strangerCa: Issued
let strangerLeaf: Issued
let mark = 0
let pfx: Uint8Array

/**
 * A PFX, unencrypted, holding `keyPem`'s key and only `certificatePem` (another key's certificate)
 * beside it, as Python's `cryptography` writes it (an independent writer; kvdeploy's codec refuses
 * to build one). The key goes to Python on its standard input, never to a file.
 */
const pythonPfxKeyWithOthersCertificate = (keyPem: string, certificatePem: string): Uint8Array => {
  const script = [
    "import sys",
    "from cryptography import x509",
    "from cryptography.hazmat.primitives.serialization import NoEncryption, load_pem_private_key, pkcs12",
    "key_pem, cert_pem = sys.stdin.buffer.read().split(b'\\0')",
    "key = load_pem_private_key(key_pem, None)",
    "cert = x509.load_pem_x509_certificate(cert_pem)",
    "sys.stdout.buffer.write(pkcs12.serialize_key_and_certificates(None, key, None, [cert], NoEncryption()))",
  ].join("\n")
  const made = spawnSync("python3", ["-c", script], { input: `${keyPem}\0${certificatePem}` })
  if (made.status !== 0)
    throw new Error(
      `python3 cryptography could not write the PFX (.ci/run installs python3-cryptography): ${made.stderr}`,
    )
  return new Uint8Array(made.stdout)
}

/** DER of the first PEM block with this label. */
const derOf = (pem: string, label: string) =>
  new Uint8Array(
    Buffer.from(
      (new RegExp(`-----BEGIN ${label}-----([\\s\\S]+?)-----END`).exec(pem)?.[1] ?? "").replace(/\s+/g, ""),
      "base64",
    ),
  )

beforeAll(async () => {
  ;[world, fx] = await Promise.all([startWorld("kvdeploy-corpus"), makeFixtures()])
  ;[good, other, expired, future, rsa1024, rsa2048] = await Promise.all([
    fx.leaf(),
    fx.leaf(),
    fx.leaf({ notBeforeDays: -30, notAfterDays: -1 }),
    fx.leaf({ notBeforeDays: 5, notAfterDays: 90 }),
    fx.leaf({ key: { kind: "RSA", bits: 1024 } }),
    fx.leaf({ key: { kind: "RSA", bits: 2048 } }),
  ])
  strangerCa = await issue({ subject: "CN=stranger CA", ca: true })
  strangerLeaf = await issue({ subject: "CN=api.example.test", issuer: strangerCa })
  pfx = await Effect.runPromise(
    encodePfx(
      {
        leaf: derOf(good.certPem, "CERTIFICATE"),
        chain: [derOf(fx.pki.intermediate.certPem, "CERTIFICATE"), derOf(fx.pki.root.certPem, "CERTIFICATE")],
        key: Redacted.make(derOf(good.keyPem, "PRIVATE KEY")),
      },
      { encoding: "modern", password: Redacted.make("s3cret pfx"), friendlyName: "corpus" },
    ),
  )
  mark = world.emulator.requests.mark()
})
afterAll(async () => {
  await world?.stop()
})

/** `keyPem` (RSA) with one private number changed, n and e kept: node:crypto's JWK in and out. */
const rsaKeyWithWrong = (keyPem: string, field: "d" | "qi"): string => {
  const jwk = createPrivateKey(keyPem).export({ format: "jwk" }) as Record<string, string>
  const changed = BigInt(`0x${Buffer.from(jwk[field] ?? "", "base64url").toString("hex")}`) ^ 0x10n
  let hex = changed.toString(16)
  if (hex.length % 2 === 1) hex = `0${hex}`
  return createPrivateKey({
    key: { ...jwk, [field]: Buffer.from(hex, "hex").toString("base64url") },
    format: "jwk",
  })
    .export({ type: "pkcs8", format: "pem" })
    .toString()
}

/** `keyPem` encrypted by `openssl pkcs8 -topk8` with `options`, passphrase "pw". */
const openSslEncrypted = (keyPem: string, options: ReadonlyArray<string>): string => {
  const made = spawnSync("openssl", ["pkcs8", "-topk8", ...options, "-passout", "pass:pw"], { input: keyPem })
  if (made.status !== 0) throw new Error(`openssl pkcs8: ${made.stderr.toString()}`)
  return made.stdout.toString()
}

interface Case {
  readonly name: string
  /** Arguments after `kvdeploy`; `$T` is a target file for this case's certificate name. */
  readonly args: () => ReadonlyArray<string>
  readonly stdin?: () => string | Uint8Array
  readonly env?: () => Record<string, string>
  readonly exit: number
  /** Text the error must contain (stderr or the JSON record). */
  readonly says: ReadonlyArray<string | RegExp>
  /** Text the error must contain exactly once (a problem not repeated in other words). */
  readonly once?: RegExp
  /** Text the error must not contain (noise the parser would add, or key text made before the run). */
  readonly never?: ReadonlyArray<string> | (() => ReadonlyArray<string>)
  /** Checks after the run (what it left in place). */
  readonly after?: () => void
}

/** The files cases wrote by name, for their checks after the run. */
const written = new Map<string, string>()
/** `world.file`, remembered by name. */
const fileOf = (name: string, content: string): string => {
  const path = world.file(name, content)
  written.set(name, path)
  return path
}

/** A line of base64 from the middle of each fixture key: none may appear in any output. */
const keyBodies = () =>
  [good, other, expired, future, rsa1024, rsa2048, strangerLeaf]
    .map((i) => i.keyPem.split("\n")[2] ?? "")
    .filter((l) => l.length > 20)

/**
 * Lines from inside a PEM key (its body after the first line, whole 64-character lines) that read
 * as encoded bytes: about 997 in 1,000 do (core's shownValues test measures the rule); these cases
 * test where the rule is applied, so they take lines it recognises, and never a random miss.
 */
const innerKeyLines = (keyPem: string): Array<string> =>
  keyPem
    .split("\n")
    .slice(2)
    .filter((l) => l.length === 64 && holdsEncodedBase64(l))

const target = (name: string, extra: Record<string, unknown> = {}) => world.targetFile(name, extra)
const deploy = (name: string, ...more: ReadonlyArray<string>) => [
  "deploy",
  "--config",
  target(name),
  "--cert",
  "-",
  ...more,
]
const pemFile = (label: string, content: string) => world.file(label, content)

const cases: ReadonlyArray<Case> = [
  {
    name: "--cert and --key swapped: said so, with the fix",
    args: () => [
      "deploy",
      "--config",
      target("c-swapped"),
      "--cert",
      pemFile("swapped-key.pem", good.keyPem),
      "--key",
      pemFile("swapped-cert.pem", good.certPem),
    ],
    exit: 2,
    says: [
      /--cert \S+swapped-key\.pem: holds no certificate, only a private key/,
      /--cert and --key look swapped \(--key \S+swapped-cert\.pem holds the certificate\)/,
    ],
  },
  {
    name: "mismatched key",
    args: () => deploy("c-mismatch"),
    stdin: () => good.certPem + fx.chainPem + other.keyPem,
    exit: 2,
    says: ["does not match"],
  },
  {
    name: "a damaged key (its private half altered, the public half still the leaf's)",
    args: () => deploy("c-damaged-key"),
    stdin: () => good.certPem + fx.chainPem + damagedKeyPem(good.keyPem),
    exit: 2,
    says: ["is damaged", "openssl pkey -check"],
    never: ["does not match"],
  },
  {
    name: "the key of a --chain certificate (files swapped, or the issuer's key given)",
    args: () => [
      "deploy",
      "--config",
      target("c-chain-key"),
      "--cert",
      pemFile("leaf.pem", good.certPem),
      "--chain",
      pemFile("chain.pem", fx.chainPem),
      "--key",
      pemFile("intermediate.key", fx.pki.intermediate.keyPem),
    ],
    exit: 2,
    says: [
      /--key \S*intermediate\.key: holds the private key of "[^"]*" from --chain \S*chain\.pem, not of the --cert leaf "[^"]*api\.example\.test/,
      "check that the files are not swapped",
    ],
  },
  {
    name: "the key of a CA whose certificate is in --cert with the leaf (a full chain beside the issuer's key)",
    args: () => [
      "deploy",
      "--config",
      target("c-ca-key"),
      "--cert",
      pemFile("fullchain.pem", good.certPem + fx.chainPem),
      "--key",
      pemFile("intermediate2.key", fx.pki.intermediate.keyPem),
    ],
    exit: 2,
    says: [/holds the private key of "[^"]*", which issued "[^"]*api\.example\.test[^"]*" in the same files/],
  },
  {
    name: "an unknown flag: the command's flags it may stand for",
    args: () => ["deploy", "--vault", "https://kv.vault.azure.net", "--cert", "-"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["Unrecognized flag: --vault in command kvdeploy deploy", "Did you mean this?", "--vault-url"],
  },
  {
    name: "an unknown flag, --json: one line each, the suggestion in the fix",
    args: () => ["deploy", "--vault", "https://kv.vault.azure.net", "--cert", "-", "--json"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: [
      '"title": "Unrecognized flag: --vault in command kvdeploy deploy",',
      '"fix": "did you mean --vault-url? see `kvdeploy deploy --help` for the flags and examples"',
    ],
  },
  {
    name: "a mistyped command: the command suggested, its flags not each called unrecognized",
    args: () => ["deplyo", "--config", target("c-mistyped"), "--cert", "-"],
    exit: 2,
    says: ['Unknown subcommand "deplyo"', "deploy"],
    never: ["Unrecognized flag"],
  },
  {
    name: "--chain given twice: said so, with how to give one file",
    args: () => [...deploy("c-chain-twice"), "--chain", "a.pem", "--chain", "b.pem"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ['--chain: "given 2 times"', "cat intermediate.pem root.pem > chain.pem"],
    never: ["occurrences"],
  },
  {
    name: "a --tag whose value is the identity's client secret: refused without showing it (exit 2)",
    args: () => [...deploy("c-tag-secret"), "--tag", `note=${world.env.AZURE_CLIENT_SECRET}`],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["tag value holds the value of AZURE_CLIENT_SECRET (not shown)", "keep secrets out of tags"],
    never: () => [world.env.AZURE_CLIENT_SECRET ?? "(no secret)"],
  },
  {
    name: "validate: a target file's tag whose value is the identity's client secret is refused without showing it (exit 2)",
    args: () => [
      "validate",
      target("c-validate-tag-secret", { tags: { env: world.env.AZURE_CLIENT_SECRET } }),
    ],
    exit: 2,
    says: ["tags.env: tag value holds the value of AZURE_CLIENT_SECRET (not shown)"],
    never: () => [world.env.AZURE_CLIENT_SECRET ?? "(no secret)"],
  },
  {
    name: "two different keys: one in the --cert bundle, another with --key",
    args: () => [
      "deploy",
      "--config",
      target("c-two-keys"),
      "--cert",
      "-",
      "--key",
      pemFile("other.key", other.keyPem),
    ],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["is another private key than the one in --cert standard input", "give the leaf's key once"],
  },
  {
    name: "--previous-key that does not exist: listed with the other flags' problems, before anything is read",
    args: () => [...deploy("c-prev-missing"), "--previous-key", "/nonexistent/previous.key", "--tag", "bad"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["--previous-key", "/nonexistent/previous.key", "--tag"],
  },
  {
    name: "--previous-key holding no key",
    args: () => [...deploy("c-prev-nokey"), "--previous-key", pemFile("cert-only.pem", other.certPem)],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: [/--previous-key \S*cert-only\.pem: holds no private key/],
  },
  {
    name: "--previous-key encrypted without a passphrase",
    args: () => [
      ...deploy("c-prev-enc"),
      "--previous-key",
      pemFile("enc.key", encryptedKeyPem(other.keyPem, "pw")),
    ],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["is encrypted and no passphrase was given", "--previous-key-passphrase-env"],
  },
  {
    name: "--previous-key-passphrase-env without --previous-key",
    args: () => [...deploy("c-prev-pass-alone"), "--previous-key-passphrase-env", "PREV_PASS"],
    stdin: () => fx.bundle(good),
    env: () => ({ PREV_PASS: "unused" }),
    exit: 2,
    says: ["--previous-key-passphrase-env: applies only to --previous-key"],
  },
  {
    name: "--previous-key-passphrase-env naming an Object member (constructor): not set, not a crash",
    args: () => [
      ...deploy("c-prev-pass-member"),
      "--previous-key",
      pemFile("enc-member.key", encryptedKeyPem(other.keyPem, "pw")),
      "--previous-key-passphrase-env",
      "constructor",
    ],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["--previous-key-passphrase-env", "is not set"],
  },
  {
    name: "--previous-key-passphrase-env naming an unset variable",
    args: () => [
      ...deploy("c-prev-pass-unset"),
      "--previous-key",
      pemFile("enc-unset.key", encryptedKeyPem(other.keyPem, "pw")),
      "--previous-key-passphrase-env",
      "KVDEPLOY_TEST_UNSET_PREV_PASS",
    ],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["--previous-key-passphrase-env", "KVDEPLOY_TEST_UNSET_PREV_PASS"],
  },
  {
    name: "expired leaf",
    args: () => deploy("c-expired"),
    stdin: () => fx.bundle(expired),
    exit: 2,
    says: [/expired/i],
  },
  {
    name: "not yet valid leaf",
    args: () => deploy("c-future"),
    stdin: () => fx.bundle(future),
    exit: 2,
    says: ["not valid before"],
  },
  {
    name: "broken chain (another CA's intermediate)",
    args: () => deploy("c-broken-chain"),
    stdin: () => strangerLeaf.certPem + fx.chainPem + strangerLeaf.keyPem,
    exit: 2,
    says: [/chain/i],
  },
  {
    name: "RSA 1024 key",
    args: () => deploy("c-rsa1024"),
    stdin: () => fx.bundle(rsa1024),
    exit: 2,
    says: ["RSA 1024", "2048"],
    once: /^ *key: /gm,
  },
  {
    name: "encrypted key without passphrase",
    args: () => [
      "deploy",
      "--config",
      target("c-enc"),
      "--cert",
      pemFile("leaf.pem", good.certPem + fx.chainPem),
      "--key",
      "-",
    ],
    stdin: () => encryptedKeyPem(good.keyPem, "correct horse"),
    exit: 2,
    says: ["encrypted", "--key-passphrase-env"],
  },
  {
    name: "encrypted key, wrong passphrase",
    args: () => [
      "deploy",
      "--config",
      target("c-enc-wrong"),
      "--cert",
      pemFile("leaf.pem", good.certPem),
      "--key",
      "-",
      "--key-passphrase-env",
      "KEY_PASS",
    ],
    stdin: () => encryptedKeyPem(good.keyPem, "correct horse"),
    env: () => ({ KEY_PASS: "wrong" }),
    exit: 2,
    says: ["--key", /passphrase|decrypt/i],
  },
  {
    name: "passphrase variable not set",
    args: () => [
      "deploy",
      "--config",
      target("c-enc-unset"),
      "--cert",
      pemFile("leaf.pem", good.certPem),
      "--key",
      "-",
      "--key-passphrase-env",
      "NOT_SET_ANYWHERE",
    ],
    stdin: () => encryptedKeyPem(good.keyPem, "x"),
    exit: 2,
    says: ["NOT_SET_ANYWHERE is not set"],
  },
  {
    name: "certificate name with underscore",
    args: () => ["deploy", "--config", target("ok-name"), "--name", "bad_name", "--cert", "-"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["--name", "letters, digits and hyphens"],
  },
  {
    name: "certificate name with underscore and a missing key file: both listed in one run",
    args: () => [
      "deploy",
      "--config",
      target("ok-name"),
      "--name",
      "bad_name",
      "--cert",
      pemFile("leaf-only.pem", good.certPem),
      "--key",
      "/nonexistent/kvdeploy-corpus.key",
    ],
    exit: 2,
    says: [
      "--name",
      "letters, digits and hyphens",
      "--key",
      "/nonexistent/kvdeploy-corpus.key: no such file",
      "the target is invalid (1 problem); the certificate flags: 1 problem",
    ],
  },
  {
    name: "--certificate-id of 257 characters, listed with the other flags before any file is read",
    args: () => [
      "deploy",
      "--config",
      target("c-id-long"),
      "--certificate-id",
      "i".repeat(257),
      "--cert",
      "/nonexistent/kvdeploy-corpus.pem",
    ],
    exit: 2,
    says: [
      "the --certificate-id flag: 1 problem; the certificate flags: 1 problem",
      "257 characters long; it becomes the certctl-certificate-id tag value",
    ],
  },
  {
    name: "--certificate-id with a tab in it (plan too)",
    args: () => ["plan", "--config", target("c-id-tab"), "--certificate-id", "web\tapi", "--cert", "-"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["--certificate-id: holds control characters", "is not shown here"],
  },
  {
    name: "certificate name of 128 characters",
    args: () => ["deploy", "--config", target("ok-name"), "--name", "a".repeat(128), "--cert", "-"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["127"],
  },
  {
    name: "http vault URL",
    args: () => ["deploy", "--vault-url", "http://my-vault.vault.azure.net", "--name", "x", "--cert", "-"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["--vault-url", "https"],
  },
  {
    name: "vault URL with a path",
    args: () => [
      "deploy",
      "--vault-url",
      "https://my-vault.vault.azure.net/secrets",
      "--name",
      "x",
      "--cert",
      "-",
    ],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["has a path"],
  },
  {
    name: "not a Key Vault host",
    args: () => ["deploy", "--vault-url", "https://example.com", "--name", "x", "--cert", "-"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["not a Key Vault host"],
  },
  {
    name: "bad vault name",
    args: () => ["deploy", "--vault-url", "https://1x.vault.azure.net", "--name", "x", "--cert", "-"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["vault name"],
  },
  {
    name: "Managed HSM URL",
    args: () => [
      "deploy",
      "--vault-url",
      "https://my-hsm.managedhsm.azure.net",
      "--name",
      "x",
      "--cert",
      "-",
    ],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["Managed HSM"],
  },
  {
    name: "loopback vault without a custom cloud",
    args: () => ["deploy", "--vault-url", "https://127.0.0.1:8443", "--name", "x", "--cert", "-"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["custom cloud"],
  },
  {
    name: "not a URL",
    args: () => ["deploy", "--vault-url", "my vault", "--name", "x", "--cert", "-"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["not a URL"],
  },
  {
    name: "too many tags",
    args: () => [...deploy("c-tags"), ...Array.from({ length: 13 }, (_, i) => ["--tag", `k${i}=v`]).flat()],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["13 tags", "at most 12"],
  },
  {
    name: "reserved tag",
    args: () => deploy("c-reserved", "--tag", "certctl-managed-by=me"),
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["reserved"],
  },
  {
    name: "tag without '='",
    args: () => deploy("c-tag-syntax", "--tag", "production"),
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["KEY=VALUE"],
  },
  {
    name: "a malformed --tag beside a reserved and a secret-looking one: all three listed in one run",
    args: () =>
      deploy("c-tag-three", "--tag", "certctl-managed-by=x", "--tag", "db_password=x", "--tag", "=v"),
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ['"=v" is not KEY=VALUE', "reserved", "names a secret", "the target is invalid (3 problems)"],
  },
  {
    name: "emulator with a vault and a certificate name a target may not hold: both refused before it starts",
    args: () => ["emulator", "--vault", "bad_vault!", "--certificate-name", "bad_name!"],
    exit: 2,
    says: [
      "2 problems with the flags",
      '--vault: vault name "bad_vault!" is invalid',
      "--certificate-name: may contain only",
    ],
  },
  {
    name: "emulator with a vault given twice (in two spellings): refused before it starts (exit 2), naming --vault",
    args: () => ["emulator", "--vault", "dup-vault", "--vault", "other-vault", "--vault", "Dup-Vault"],
    exit: 2,
    says: [
      '--vault: "Dup-Vault" is given twice (vault names are case-insensitive)',
      "give each vault name once",
    ],
  },
  {
    name: "validate --config FILE: the file is validate's argument, said as the fix (it pointed at --help)",
    args: () => ["validate", "--config", target("c-validate-config")],
    exit: 2,
    says: [
      "Unrecognized flag: --config",
      "fix: kvdeploy validate takes the file as its argument, without --config: kvdeploy validate FILE",
    ],
  },
  {
    name: "show with the target file as an argument: the fix is --config FILE",
    args: () => ["show", target("c-show-positional")],
    exit: 2,
    says: [
      "fix: give the target file with --config, in place of the bare argument: --config /",
      "c-show-positional.json",
    ],
  },
  {
    name: "show with --config and a stray file argument: not told to give --config again (a file name by its look is shown)",
    args: () => ["show", "--config", target("c-show-stray"), "extra.json"],
    exit: 2,
    says: ['Unexpected positional argument: "extra.json"', "fix: see `kvdeploy show --help`"],
    never: () => ["give the target file with --config", "not shown"],
  },
  {
    name: "managed_identity behind HTTPS_PROXY without NO_PROXY for the identity endpoint: the pair cannot work together (NO_PROXY unset is not 'malformed')",
    args: () => ["show", "--config", target("c-proxy", { credential_mode: "managed_identity" })],
    env: () => ({
      HTTPS_PROXY: "http://proxy.example.test:3128",
      NO_PROXY: "",
      no_proxy: "",
      IDENTITY_ENDPOINT: "",
      MSI_ENDPOINT: "",
    }),
    exit: 2,
    says: [
      "credential_mode managed_identity: HTTPS_PROXY and NO_PROXY cannot work together",
      "HTTPS_PROXY is set and NO_PROXY does not name 169.254.169.254",
    ],
  },
  {
    name: "tag key given twice",
    args: () => deploy("c-tag-twice", "--tag", "a=1", "--tag", "a=2"),
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["given twice"],
  },
  {
    name: "tag value over 256 characters",
    args: () => deploy("c-tag-long", "--tag", `a=${"v".repeat(257)}`),
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["257 characters"],
  },
  {
    name: "client secret in the configuration",
    args: () => ["deploy", "--config", target("c-secret", { client_secret: "hunter2" }), "--cert", "-"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["client_secret", "looks like a secret"],
  },
  {
    name: "password in the configuration",
    args: () => ["deploy", "--config", target("c-password", { pfx_password: "hunter2" }), "--cert", "-"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["pfx_password", "looks like a secret"],
  },
  {
    name: "a bad tag in the target file, with --tag given too: blamed on the file, not on --tag",
    args: () => [
      "plan",
      "--config",
      target("c-file-tags", { tags: { db_password: "x" } }),
      "--tag",
      "team=web",
      "--tag",
      "api_token=y",
      "--cert",
      "-",
    ],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: [
      /c-file-tags\S*: tags\.db_password: is a tag key that names a secret/,
      "--tag api_token: is a tag key",
    ],
    never: ["--tag db_password", "hunter2"],
  },
  {
    name: "a PFX given as --cert: named for what it is, with --pfx",
    args: () => ["deploy", "--config", target("c-pfx-as-cert"), "--cert", world.file("given.pfx", pfx)],
    exit: 2,
    says: [
      /--cert \S*given\.pfx: is a PKCS#12 \(PFX\) file, not PEM or a DER certificate/,
      "give it with --pfx FILE",
    ],
  },
  {
    name: "PEM given as --pfx: named for what it is, with --cert",
    args: () => [
      "deploy",
      "--config",
      target("c-pem-as-pfx"),
      "--pfx",
      world.file("given.pem", good.certPem + fx.chainPem + good.keyPem),
    ],
    exit: 2,
    says: [
      /--pfx \S*given\.pem: is PEM text, not a PKCS#12 \(PFX\) file/,
      "give it with --cert FILE in place of --pfx",
    ],
    never: ["PRIVATE KEY"],
  },
  {
    name: "a PFX whose certificate is not its key's (written by Python's cryptography): said so, not that it holds none",
    args: () => [
      "deploy",
      "--config",
      target("c-pfx-other-cert"),
      "--pfx",
      world.file("other-cert.pfx", pythonPfxKeyWithOthersCertificate(good.keyPem, other.certPem)),
    ],
    exit: 2,
    says: [
      /--pfx \S*other-cert\.pfx: no certificate in it matches its private key/,
      "fix: export the PFX with the certificate that was issued for the key",
    ],
    never: ["holds no certificate"],
  },
  {
    name: "a file that is no PFX given as --pfx: the codec's finding, then its fix once (not inside the finding)",
    args: () => [
      "deploy",
      "--config",
      target("c-garbage-pfx"),
      "--pfx",
      world.file("garbage.pfx", "garbage-not-a-pfx-0123456789"),
    ],
    exit: 2,
    says: [
      /--pfx \S*garbage\.pfx: cannot be read: the input is not a PKCS#12\/PFX file\n/,
      "fix: check that the file is a complete PKCS#12 (openssl pkcs12 -info -noout -in file.pfx)",
    ],
    never: ["PKCS#12/PFX file; check"],
  },
  {
    name: "the key in the --chain file, no --key: the chain is named, not a missing key",
    args: () => [
      "deploy",
      "--config",
      target("c-key-in-chain"),
      "--cert",
      pemFile("leaf-only.pem", good.certPem),
      "--chain",
      pemFile("chain-and-key.pem", fx.chainPem + good.keyPem),
    ],
    exit: 2,
    says: [/--chain \S*chain-and-key\.pem: holds a private key/, "the leaf's key with --key"],
    never: ["is missing"],
  },
  {
    name: "content_type misspelt in a target file: validate names the field and the values",
    args: () => ["validate", target("c-content-type", { content_type: "pemm" })],
    exit: 2,
    says: ["content_type", 'invalid value ("pemm")', "did you mean pem?", "keep (default", "pkcs12 or pem"],
  },
  {
    name: "--content-type with a value it does not take: refused before any vault call",
    args: () => ["deploy", "--config", target("c-content-type-flag"), "--cert", "-", "--content-type", "pfx"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["--content-type", 'invalid value ("pfx")', "pkcs12 or pem"],
  },
  {
    name: "unknown configuration field",
    args: () => ["validate", target("c-unknown", { vault_uri: "x" })],
    exit: 2,
    says: ["vault_uri", "not a known field"],
  },
  {
    name: "a custom cloud that mixes known clouds (China's authority_host, the public keyvault_resource): refused before any token request",
    args: () => [
      "deploy",
      "--config",
      target("c-mixed-cloud", {
        cloud: { ...world.emulator.cloud, authority_host: "https://login.chinacloudapi.cn" },
      }),
      "--cert",
      "-",
    ],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: [
      /c-mixed-cloud\.json: cloud: mixes Azure clouds: authority_host https:\/\/login\.chinacloudapi\.cn is the China cloud's \(AzureChina\), while keyvault_resource https:\/\/vault\.azure\.net is the public cloud's \(AzurePublic\)/,
      "make authority_host and keyvault_resource one cloud's",
    ],
  },
  {
    name: "a known cloud's name on the emulator's block (a custom cloud's suffix): refused, the name is not ignored",
    args: () => [
      "deploy",
      "--config",
      target("c-named-cloud", { cloud: { ...world.emulator.cloud, name: "AzurePublicCloud" } }),
      "--cert",
      "-",
    ],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: [
      /c-named-cloud\.json: cloud\.name: "AzurePublicCloud" names the public cloud \(AzurePublic\), but vault_dns_suffix \S+ is no vault suffix of it \(vault\.azure\.net\) but a custom cloud's/,
      "remove cloud.name or make it a label of your own",
    ],
  },
  {
    name: "a known cloud's name alone for a vault of another cloud: refused naming both clouds",
    args: () => [
      "validate",
      target("c-name-alone", {
        vault_url: "https://kv-prod.vault.azure.net",
        cloud: { name: "AzureChinaCloud" },
      }),
    ],
    exit: 2,
    says: [
      /c-name-alone\.json: 1 problem\n\s*cloud\.name: "AzureChinaCloud" names the China cloud \(AzureChina\), but vault_url is a vault of the public cloud \(AzurePublic, \.vault\.azure\.net\)/,
      "set cloud.name to AzurePublicCloud, or remove the cloud block",
    ],
    never: ["vault_dns_suffix: is missing"],
  },
  {
    name: "an authority host alias (login.windows.net, the public cloud's) with China's keyvault_resource: refused before any token request",
    args: () => [
      "deploy",
      "--config",
      target("c-alias-cloud", {
        cloud: {
          ...world.emulator.cloud,
          authority_host: "https://login.windows.net",
          keyvault_resource: "https://vault.azure.cn",
        },
      }),
      "--cert",
      "-",
    ],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: [
      /c-alias-cloud\.json: cloud: mixes Azure clouds: authority_host https:\/\/login\.windows\.net is the public cloud's \(AzurePublic\), while keyvault_resource https:\/\/vault\.azure\.cn is the China cloud's \(AzureChina\)/,
    ],
  },
  {
    name: "configuration is not JSON",
    args: () => ["deploy", "--config", pemFile("bad.json", "{ vault_url: "), "--cert", "-"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["not valid JSON"],
  },
  {
    name: "configuration written in YAML, as the agent's is",
    args: () => [
      "deploy",
      "--config",
      pemFile("target.yaml", "vault_url: https://kv-bad.vault.azure.net\ncertificate_name: www\n"),
      "--cert",
      "-",
    ],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: [
      /target\.yaml is YAML \(keys vault_url, certificate_name\), and a target file is JSON/,
      /write the same fields as one JSON object/,
    ],
  },
  {
    name: "configuration file missing",
    args: () => ["deploy", "--config", "/dev/shm/does-not-exist.json", "--cert", "-"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["no such file"],
  },
  {
    name: "managed identity client id not a GUID",
    args: () => [
      "deploy",
      "--config",
      target("c-mi"),
      "--credential-mode",
      "managed_identity",
      "--managed-identity-client-id",
      "my-identity",
      "--cert",
      "-",
    ],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["GUID"],
  },
  {
    name: "unknown credential mode",
    args: () => ["deploy", "--config", target("c-mode"), "--credential-mode", "password", "--cert", "-"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: [/credential-mode|password/],
  },
  {
    name: "certificate file missing",
    args: () => [
      "deploy",
      "--config",
      target("c-nofile"),
      "--cert",
      "/dev/shm/nope.pem",
      "--key",
      "/dev/shm/nope.key",
    ],
    exit: 2,
    says: ["--cert", "no such file"],
  },
  {
    name: "empty standard input",
    args: () => deploy("c-empty"),
    stdin: () => "",
    exit: 2,
    says: ["standard input is empty"],
  },
  {
    name: "not PEM at all",
    args: () => deploy("c-garbage"),
    stdin: () => "hello, this is not a certificate",
    exit: 2,
    says: [/neither PEM|no PEM block/],
  },
  {
    name: "truncated PEM certificate",
    args: () => deploy("c-truncated"),
    stdin: () => `${good.certPem.slice(0, 200)}\n-----END CERTIFICATE-----\n${good.keyPem}`,
    exit: 2,
    says: ["not a readable certificate"],
  },
  {
    name: "no private key",
    args: () => deploy("c-nokey"),
    stdin: () => good.certPem + fx.chainPem,
    exit: 2,
    says: ["no private key", "--key"],
  },
  {
    name: "two private keys",
    args: () => deploy("c-twokeys"),
    stdin: () => fx.bundle(good) + other.keyPem,
    exit: 2,
    says: ["second private key"],
  },
  {
    name: "foreign PEM block",
    args: () => deploy("c-csr"),
    stdin: () =>
      `${fx.bundle(good)}-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n`,
    exit: 2,
    says: ["CERTIFICATE REQUEST"],
  },
  {
    name: "two inputs on standard input",
    args: () => ["deploy", "--config", target("c-stdin2"), "--cert", "-", "--key", "-"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ["already does"],
  },
  {
    name: "missing --cert",
    args: () => ["deploy", "--config", target("c-nocert")],
    exit: 2,
    says: ["--cert", "is missing"],
  },
  {
    name: "--pfx with --cert",
    args: () => ["deploy", "--config", target("c-pfx-cert"), "--pfx", "-", "--cert", "/dev/shm/x.pem"],
    stdin: () => "x",
    exit: 2,
    says: ["cannot be combined with --pfx"],
  },
  {
    name: "not a PFX",
    args: () => ["deploy", "--config", target("c-pfx-garbage"), "--pfx", "-"],
    stdin: () => "not a pfx",
    exit: 2,
    says: ["--pfx"],
  },
  {
    name: "PFX password variable name invalid",
    args: () => [
      "deploy",
      "--config",
      target("c-pfx-env"),
      "--pfx",
      "-",
      "--pfx-password-env",
      "my password",
    ],
    stdin: () => "x",
    exit: 2,
    says: ["not an environment variable name"],
    never: ["my password"],
  },
  {
    name: "a passphrase typed where its variable's name belongs (each flag): refused, never shown",
    args: () => [
      ...deploy("c-secret-as-name"),
      "--key",
      pemFile("enc-secret-as-name.key", encryptedKeyPem(other.keyPem, "pw")),
      "--key-passphrase-env",
      "Sup3rSecretPassphraseXYZZY",
      "--previous-key",
      pemFile("enc-prev-secret-as-name.key", encryptedKeyPem(other.keyPem, "pw")),
      "--previous-key-passphrase-env",
      "Sup3r$ecret!pass",
    ],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: [
      "--key-passphrase-env: the environment variable it names is not set (26 characters, not shown",
      "--previous-key-passphrase-env: the value given is not an environment variable name (16 characters, not shown",
      "e.g. --key-passphrase-env KEY_PASSPHRASE,",
      "e.g. --previous-key-passphrase-env PREVIOUS_KEY_PASSPHRASE,",
    ],
    never: ["Sup3rSecret", "Sup3r$ecret", "XYZZY", "PFX_PASSWORD"],
  },
  {
    name: "PFX with the wrong password",
    args: () => ["deploy", "--config", target("c-pfx-wrong"), "--pfx", "-", "--pfx-password-env", "PFX_PASS"],
    stdin: () => pfx,
    env: () => ({ PFX_PASS: "not it" }),
    exit: 2,
    says: ["the password in PFX_PASS does not open it"],
    never: ["spaces or a line break around it"],
  },
  {
    name: "PFX password with a line break after it (echo into an env file): the wrong password, and why it may be",
    args: () => [
      "deploy",
      "--config",
      target("c-pfx-newline"),
      "--pfx",
      "-",
      "--pfx-password-env",
      "PFX_PASS",
    ],
    stdin: () => pfx,
    env: () => ({ PFX_PASS: "s3cret pfx\n" }),
    exit: 2,
    says: [
      "the password in PFX_PASS does not open it",
      "its value has spaces or a line break around it, which are part of the password as given",
    ],
    never: ["s3cret"],
  },
  {
    name: "PFX password-protected, no password given",
    args: () => ["deploy", "--config", target("c-pfx-nopass"), "--pfx", "-"],
    stdin: () => pfx,
    exit: 2,
    says: ["no password was given", "--pfx-password-env"],
  },
  {
    name: "PFX password variable not set",
    args: () => [
      "deploy",
      "--config",
      target("c-pfx-unset"),
      "--pfx",
      "-",
      "--pfx-password-env",
      "PFX_PASS_UNSET",
    ],
    stdin: () => pfx,
    exit: 2,
    says: ["PFX_PASS_UNSET is not set"],
  },
  {
    name: "missing --vault-url",
    args: () => ["show", "--name", "x"],
    exit: 2,
    says: ["--vault-url", "is missing"],
  },
  {
    name: "bad --expiring-within",
    args: () => ["list", "--config", target("c-list"), "--expiring-within", "soon"],
    exit: 2,
    says: ["not a duration"],
  },
  {
    name: "bad --endpoint",
    args: () => ["verify", "--cert", "-", "--endpoint", "example.com"],
    stdin: () => good.certPem,
    exit: 2,
    says: ["HOST:PORT"],
  },
  {
    name: "show without --vault-url and with an invalid --name: both listed in one run",
    args: () => ["show", "--name", "bad_name"],
    exit: 2,
    says: [
      "--vault-url: is missing",
      "--name",
      "letters, digits and hyphens",
      "the target is invalid (2 problems)",
    ],
  },
  {
    name: "deploy with a malformed --tag and an invalid --name: both listed in one run",
    args: () => [
      "deploy",
      "--config",
      target("c-tag-name"),
      "--tag",
      "novalue",
      "--name",
      "bad_name",
      "--cert",
      "-",
    ],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ['"novalue" is not KEY=VALUE', "letters, digits and hyphens", "the target is invalid (2 problems)"],
  },
  {
    name: "verify with a bad --timeout, an invalid --name and a missing --cert file: all listed in one run",
    args: () => [
      "verify",
      "--config",
      target("c-verify-all"),
      "--name",
      "bad_name",
      "--timeout",
      "soon",
      // The endpoint --timeout polls (without one, --timeout is a problem of its own).
      "--endpoint",
      "api.example.test:443",
      "--cert",
      "/nonexistent/kvdeploy-corpus.pem",
    ],
    exit: 2,
    says: [
      '--timeout: "soon" is not a duration',
      "letters, digits and hyphens",
      "/nonexistent/kvdeploy-corpus.pem: no such file",
      "the input has 3 problems",
    ],
  },
  {
    name: "a valid target and three certificate files that cannot be read: all listed in one run",
    args: () => [
      "deploy",
      "--config",
      target("c-three-files"),
      "--cert",
      "/nonexistent/kvdeploy-corpus.pem",
      "--chain",
      "/nonexistent/kvdeploy-corpus-chain.pem",
      "--key",
      "/nonexistent/kvdeploy-corpus.key",
    ],
    exit: 2,
    says: [
      "/nonexistent/kvdeploy-corpus.pem: no such file",
      "/nonexistent/kvdeploy-corpus-chain.pem: no such file",
      "/nonexistent/kvdeploy-corpus.key: no such file",
      "the certificate flags: 3 problems",
    ],
  },
  {
    name: "--pfx with --cert, --key and --key-passphrase-env: each listed in one run",
    args: () => [
      "plan",
      "--config",
      target("c-pfx-pem-all"),
      "--pfx",
      "-",
      "--cert",
      pemFile("pfx-pem-all.pem", good.certPem),
      "--key",
      pemFile("pfx-pem-all.key", good.keyPem),
      "--key-passphrase-env",
      "KEY_PASS",
    ],
    stdin: () => pfx,
    exit: 2,
    says: [
      "--cert: cannot be combined with --pfx",
      "--key: cannot be combined with --pfx",
      "--key-passphrase-env: cannot be combined with --pfx",
      "the certificate flags: 3 problems",
    ],
  },
  {
    name: "--pfx-password-env without --pfx",
    args: () => [...deploy("c-pfx-env-pem"), "--pfx-password-env", "PFX_PASS"],
    stdin: () => fx.bundle(good),
    env: () => ({ PFX_PASS: "s3cret pfx" }),
    exit: 2,
    says: ["--pfx-password-env: applies only to --pfx"],
  },
  {
    name: "client_secret without AZURE_CLIENT_SECRET and a certificate file that cannot be read: both listed in one run",
    args: () => [
      "plan",
      "--config",
      target("c-env-file"),
      "--cert",
      "/nonexistent/kvdeploy-corpus.pem",
      "--key",
      pemFile("env-file.key", good.keyPem),
    ],
    env: () => ({ AZURE_CLIENT_SECRET: "" }),
    exit: 2,
    says: [
      "AZURE_CLIENT_SECRET: is set but empty (credential_mode client_secret needs its value)",
      "/nonexistent/kvdeploy-corpus.pem: no such file",
      "credential_mode client_secret: AZURE_CLIENT_SECRET empty; the certificate flags: 1 problem",
    ],
  },
  {
    name: "a malformed --tag and AZURE_CLIENT_SECRET empty: both listed in one run (the tag hid the variable)",
    args: () => [
      "deploy",
      "--config",
      target("c-env-tag"),
      "--tag",
      "x",
      "--cert",
      pemFile("env-tag.pem", good.certPem),
      "--key",
      pemFile("env-tag.key", good.keyPem),
    ],
    env: () => ({ AZURE_CLIENT_SECRET: "" }),
    exit: 2,
    says: [
      '--tag: "x" is not KEY=VALUE',
      "AZURE_CLIENT_SECRET: is set but empty (credential_mode client_secret needs its value)",
      "the target is invalid (1 problem); credential_mode client_secret: AZURE_CLIENT_SECRET empty",
    ],
  },
  {
    name: "show with an unknown target field and AZURE_CLIENT_SECRET empty: both listed in one run (also when the file's name holds credential_mode)",
    args: () => ["show", "--config", target("credential_mode-env-field", { vault_uri: "typo" })],
    env: () => ({ AZURE_CLIENT_SECRET: "" }),
    exit: 2,
    says: [
      "vault_uri: is not a known field",
      "AZURE_CLIENT_SECRET: is set but empty (credential_mode client_secret needs its value)",
    ],
  },
  {
    name: "AZURE_CLIENT_SECRET of spaces alone: said to be blank, not unset (env shows it as set)",
    args: () => ["show", "--config", target("c-env-blank")],
    env: () => ({ AZURE_CLIENT_SECRET: "   " }),
    exit: 2,
    says: [
      "AZURE_CLIENT_SECRET: is set to spaces or line breaks only (credential_mode client_secret needs its value)",
      "credential_mode client_secret: AZURE_CLIENT_SECRET blank (spaces or line breaks only)",
    ],
  },
  {
    name: "a key pasted as the value of --key: refused by flag, never shown",
    args: () => [
      "deploy",
      "--config",
      target("c-pasted-key"),
      "--cert",
      pemFile("pasted.pem", good.certPem),
      "--key",
      good.keyPem,
      "--json",
    ],
    exit: 2,
    says: ["--key: holds certificate or key text instead of a file path or a value", "it is not shown here"],
  },
  {
    name: "a certificate pasted as the value of --cert: refused by flag, never shown",
    args: () => ["deploy", "--config", target("c-pasted-cert"), "--cert", good.certPem, "--json"],
    exit: 2,
    says: ["--cert: holds certificate or key text instead of a file path or a value", "it is not shown here"],
  },
  {
    name: "keys pasted into --key=… and --credential-mode=…: each refused, never shown",
    args: () => [
      "plan",
      "--config",
      target("c-pasted-inline"),
      `--credential-mode=${good.keyPem}`,
      "--cert",
      "-",
      `--key=${other.keyPem}`,
    ],
    stdin: () => good.certPem,
    exit: 2,
    says: ["--credential-mode", "--key", "2 arguments hold certificate or key text"],
  },
  {
    name: "a key pasted into a target file's field: the value is not quoted back",
    args: () => [
      "validate",
      target("c-pasted-field", { credential_mode: good.keyPem, on_soft_deleted: other.keyPem }),
    ],
    exit: 2,
    says: ["credential_mode", "on_soft_deleted", /a string of \d+ characters, not shown/],
  },
  {
    name: "a client secret the identity provider refuses: Failed at once, named as a credential refusal, not a network problem; no vault call counted (nothing reached the vault)",
    args: () => [...deploy("c-wrong-secret"), "--json"],
    stdin: () => fx.bundle(good),
    env: () => ({ AZURE_CLIENT_SECRET: "not-the-secret" }),
    exit: 1,
    says: [
      '"error": "VaultForbidden"',
      // In doctor's words: Entra ID's first sentence, not its timestamps and trace ids.
      "no token for the vault (nothing was sent to the vault): Entra ID refused the client secret (Entra ID: AADSTS7000215: Invalid client secret provided.)",
      '"vaultCalls": 0',
    ],
  },
  {
    name: "emulator with two ports out of range: both listed, nothing started",
    args: () => ["emulator", "--port", "99999", "--entra-port", "70000", "--json"],
    exit: 2,
    says: [
      '--port: "99999" is not a TCP port',
      '--entra-port: "70000" is not a TCP port',
      "2 problems with the flags",
    ],
  },
  {
    name: "emulator with ports that are no whole numbers: each named with the fix, not the parser's words",
    args: () => ["emulator", "--port", "abc", "--entra-port", "1.5"],
    exit: 2,
    says: [
      '--port: "abc" is not a TCP port',
      '--entra-port: "1.5" is not a TCP port',
      "give a port from 1 to 65535, or 0 (or nothing) for any free port",
    ],
    never: ["Expected", "Invalid value for flag"],
  },
  {
    name: "emulator asked to write its environment into a directory that does not exist",
    args: () => ["emulator", "--write-env", "/nonexistent/kvdeploy-corpus/emulator.env", "--json"],
    exit: 2,
    says: ["--write-env: /nonexistent/kvdeploy-corpus/emulator.env: no such file", "a directory that exists"],
  },
  {
    name: "emulator --write-config over a target of a real vault: refused (exit 2), the file left as it was",
    args: () => [
      "emulator",
      "--write-config",
      fileOf(
        "real-target.json",
        `${JSON.stringify({ vault_url: "https://prod-vault.vault.azure.net", certificate_name: "www" })}\n`,
      ),
      "--json",
    ],
    exit: 2,
    says: [
      '"field": "--write-config"',
      "exists, and no kvdeploy emulator wrote it (its vault_url is no emulator's",
      "give the path of a new file",
    ],
    after: () => {
      const text = readFileSync(written.get("real-target.json") ?? "", "utf8")
      expect(text).toContain("https://prod-vault.vault.azure.net")
    },
  },
  {
    name: "emulator --all-modes over foreign files: every one named in one refusal, before the emulator starts",
    args: () => {
      const env = fileOf("all.env", "export MINE=1\n")
      // A file of the operator's own where --all-modes would write a mode's environment.
      const modeEnv = env.replace(/\.env$/, ".workload_identity.env")
      writeFileSync(modeEnv, "export THEIRS=1\n", { mode: 0o600 })
      written.set("all.workload_identity.env", modeEnv)
      return [
        "emulator",
        "--all-modes",
        "--write-config",
        fileOf("all-target.json", `${JSON.stringify({ vault_url: "https://prod-vault.vault.azure.net" })}\n`),
        "--write-env",
        env,
        // A state directory it would make on start: left unmade.
        "--state-dir",
        env.replace(/all\.env$/, "never-made-state"),
        "--json",
      ]
    },
    exit: 2,
    says: [
      "3 problems with the flags",
      "all-target.json exists, and no kvdeploy emulator wrote it",
      "all.env exists, and no kvdeploy emulator wrote it",
      "all.workload_identity.env exists, and no kvdeploy emulator wrote it",
    ],
    // Refused before it started: it printed no environment, and made no state directory.
    never: ["NODE_EXTRA_CA_CERTS", "running; Ctrl+C"],
    after: () => {
      expect(
        existsSync(
          (written.get("all.workload_identity.env") ?? "").replace(
            /all\.workload_identity\.env$/,
            "never-made-state",
          ),
        ),
      ).toBe(false)
      // The mode file beside it, which the test made foreign too, is left as it was.
      expect(readFileSync(written.get("all.workload_identity.env") ?? "", "utf8")).toBe("export THEIRS=1\n")
    },
  },
  {
    name: "emulator --write-env over an environment file of the operator's own: refused, its content not shown",
    args: () => [
      "emulator",
      "--write-env",
      fileOf("own.env", "export MY_TOKEN=s3cr3t-value-of-mine\n"),
      "--json",
    ],
    exit: 2,
    says: ['"field": "--write-env"', "it is not the environment file an emulator writes"],
    never: ["s3cr3t-value-of-mine", "MY_TOKEN"],
    after: () => {
      expect(readFileSync(written.get("own.env") ?? "", "utf8")).toBe(
        "export MY_TOKEN=s3cr3t-value-of-mine\n",
      )
    },
  },
  {
    name: "emulator with a --state-dir that is a file: refused at start (exit 2), naming --state-dir with the fix",
    args: () => ["emulator", "--state-dir", pemFile("state-dir-file", "not a directory\n"), "--json"],
    exit: 2,
    says: [
      '"field": "--state-dir"',
      /"--state-dir: \/[^"]*-state-dir-file: is a file, not a directory"/,
      "give a directory you can write to, or a path where one can be made",
    ],
    never: ["ENOTDIR", "EEXIST", "kv-emulator failed to start"],
  },
  {
    name: "emulator with a --state-dir under a file: refused at start (exit 2), naming --state-dir",
    args: () => ["emulator", "--state-dir", join(pemFile("state-dir-parent", "x"), "state")],
    exit: 2,
    says: [
      /--state-dir: \/[^\n]*-state-dir-parent\/state: a part of the path is a file, not a directory/,
      "give a directory you can write to",
    ],
    never: ["ENOTDIR", "    at "],
  },
  {
    name: "wrong --credential-mode, --on-soft-deleted and --pfx-encoding with an invalid --name: all listed, each by its flag",
    args: () => [
      "deploy",
      "--config",
      target("c-choices"),
      "--name",
      "bad_name",
      "--credential-mode",
      "kerberos",
      "--on-soft-deleted",
      "maybe",
      "--pfx-encoding",
      "rc4",
      "--cert",
      "-",
    ],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: [
      '--credential-mode: has an invalid value ("kerberos")',
      '--on-soft-deleted: has an invalid value ("maybe")',
      '--pfx-encoding: has an invalid value ("rc4")',
      "letters, digits and hyphens",
      "the target is invalid (4 problems)",
    ],
  },
  {
    name: "an unknown flag, in JSON: the problem names the flag and the command's help",
    args: () => ["deploy", "--config", target("c-unknown-flag"), "--cert", "-", "--bogus", "--json"],
    stdin: () => fx.bundle(good),
    exit: 2,
    says: ['"field": "--bogus"', "see `kvdeploy deploy --help`"],
  },
  {
    name: "an RSA key whose private exponent d alone is wrong (n, e intact; OpenSSL still signs with it): refused naming d, exit 2",
    args: () => deploy("c-rsa-wrong-d"),
    stdin: () => `${rsa2048.certPem}${fx.chainPem}${rsaKeyWithWrong(rsa2048.keyPem, "d")}`,
    exit: 2,
    says: ["is damaged", "its private exponent (d) does not invert its public exponent", "re-export it"],
  },
  {
    name: "an RSA key whose CRT coefficient qi is wrong: refused naming qi, exit 2",
    args: () => deploy("c-rsa-wrong-qi"),
    stdin: () => `${rsa2048.certPem}${fx.chainPem}${rsaKeyWithWrong(rsa2048.keyPem, "qi")}`,
    exit: 2,
    says: ["is damaged", "qi is not the inverse of q mod p"],
  },
  {
    name: "an encrypted --key of 3,000,000 PBKDF2 iterations: refused before decrypting, naming --key, the count and the fix",
    args: () => [
      ...deploy("c-key-iterations"),
      "--key",
      world.file("key-3m.pem", openSslEncrypted(good.keyPem, ["-v2", "aes-256-cbc", "-iter", "3000000"])),
      "--key-passphrase-env",
      "KEY_PASS",
    ],
    stdin: () => good.certPem,
    env: () => ({ KEY_PASS: "pw" }),
    exit: 2,
    says: ["--key ", "the iteration count 3000000 exceeds the limit of 1000000", "-iter 600000"],
  },
  {
    name: "an encrypted --key with a wrong passphrase: the fix names --key-passphrase-env",
    args: () => [
      ...deploy("c-key-wrong-pass"),
      "--key",
      world.file("key-wrong-pass.pem", encryptedKeyPem(good.keyPem, "right")),
      "--key-passphrase-env",
      "KEY_PASS",
    ],
    stdin: () => good.certPem,
    env: () => ({ KEY_PASS: "wrong" }),
    exit: 2,
    says: ["the passphrase is wrong", "the variable --key-passphrase-env names"],
  },
  {
    name: "truncated PEM key: said to be cut short or altered, not an unsupported encryption",
    args: () => deploy("c-truncated-key"),
    stdin: () => {
      const lines = good.keyPem.trim().split("\n")
      return `${good.certPem}${fx.chainPem}${[lines[0], lines[1], lines.at(-1)].join("\n")}\n`
    },
    exit: 2,
    says: ["the block is cut short or altered", "openssl pkey -in key.pem -noout"],
  },
  {
    name: "verify --endpoint with a port out of range: said so, not 'not HOST:PORT'",
    args: () => ["verify", "--cert", "-", "--endpoint", "127.0.0.1:99999"],
    stdin: () => good.certPem,
    exit: 2,
    says: ["--endpoint: the port 99999 is not a TCP port"],
  },
  {
    name: "plan of material the preflight refuses: the current version is said to be unread, not '(none)'",
    args: () => ["plan", "--config", target("c-plan-expired"), "--cert", "-"],
    stdin: () => fx.bundle(expired),
    exit: 2,
    says: [/expired/i, "current     (not read: the preflight refused the material)"],
  },
  {
    name: "a key's base64 body (no PEM lines) given as --key: refused, never shown",
    args: () => [
      "deploy",
      "--config",
      target("c-pasted-body"),
      "--cert",
      pemFile("pasted-body.pem", good.certPem),
      "--key",
      good.keyPem.split("\n").slice(1, -2).join(""),
    ],
    exit: 2,
    says: ["--key: holds certificate or key text instead of a file path or a value"],
  },
  {
    name: "a key pasted as the value of --config: refused, told to give a file's path (--config takes no -)",
    args: () => ["show", "--config", good.keyPem, "--json"],
    exit: 2,
    says: ["--config: holds certificate or key text", "give a file's path here"],
    never: ["give - and pipe it", "PRIVATE KEY"],
  },
  {
    name: "a line break in a path flag that writes a file: refused before anything is written",
    args: () => ["emulator", "--write-env", "/tmp/kvdeploy-corpus-env\n", "--json"],
    exit: 2,
    says: ["--write-env: holds certificate or key text", "give a file's path here"],
  },
  {
    name: "a line break in a value checked on its own: quoted with the line break escaped, on one line",
    args: () => ["list", "--config", target("c-within-line-break"), "--expiring-within", "30d\nX"],
    exit: 2,
    says: ['--expiring-within: "30d\\nX" is not a duration'],
  },
  {
    name: "a line break in --tag: named as a tag's control characters, not as pasted key text",
    args: () => [
      "plan",
      "--config",
      target("c-tag-line-break"),
      "--cert",
      pemFile("tag-line-break.pem", good.certPem),
      "--key",
      pemFile("tag-line-break.key", good.keyPem),
      "--tag",
      "note=line1\nline2",
    ],
    exit: 2,
    says: ["control characters"],
    never: ["holds certificate or key text"],
  },
  {
    name: "a key's base64 cut short by a paste, as --key, --key-passphrase-env and --tag: each refused, never shown",
    args: () => {
      const cut = good.keyPem.split("\n").slice(1, -2).join("").slice(0, 180)
      return [
        "deploy",
        "--config",
        target("c-pasted-cut"),
        "--cert",
        pemFile("pasted-cut.pem", good.certPem),
        "--key",
        cut,
        "--key-passphrase-env",
        cut,
        "--tag",
        `env=${cut}`,
      ]
    },
    exit: 2,
    says: ["--key: holds certificate or key text", "--key-passphrase-env: holds", "--tag: holds"],
  },
  {
    name: "verify: a first block that cannot be read is refused naming it, not skipped for the CA after it",
    args: () => [
      "verify",
      "--config",
      target("c-verify-bad-block"),
      "--cert",
      pemFile(
        "verify-bad-block.pem",
        `${good.certPem.replace("-----END CERTIFICATE-----", "-----END PRIVATE KEY-----")}${fx.pki.root.certPem}`,
      ),
    ],
    exit: 2,
    says: ["block 1 (CERTIFICATE)", "BEGIN and END labels must match"],
  },
  {
    name: "a target file with a key given twice: refused naming the line, not the last value taken silently",
    args: () => [
      "validate",
      pemFile(
        "twice.json",
        `{\n  "vault_url": "https://a-vault.vault.azure.net",\n  "certificate_name": "twice",\n  "vault_url": "https://b-vault.vault.azure.net"\n}\n`,
      ),
    ],
    exit: 2,
    says: [/the key "vault_url" is given twice \(line 4, column \d+\)/],
  },
  {
    name: "versions --limit 0 or -1: refused (0 showed every version, -1 none)",
    args: () => ["versions", "--config", target("c-limit"), "--limit", "0"],
    exit: 2,
    says: ['--limit: "0" is not a number of versions to show (1 or more)'],
  },
  {
    name: "versions --limit abc or 1.5: named with the fix, not the parser's words",
    args: () => ["versions", "--config", target("c-limit-text"), "--limit", "1.5"],
    exit: 2,
    says: ['--limit: "1.5" is not a number of versions to show', "give a whole number of 1 or more"],
    never: ["Expected an integer"],
  },
  {
    name: "a private key in --chain: refused, not ignored",
    args: () => [
      "deploy",
      "--config",
      target("c-key-in-chain"),
      "--cert",
      pemFile("key-in-chain.crt", good.certPem),
      "--key",
      pemFile("key-in-chain.key", good.keyPem),
      "--chain",
      pemFile("key-in-chain.chain", `${fx.chainPem}${other.keyPem}`),
    ],
    exit: 2,
    says: [/--chain .*: holds a private key/],
  },
  {
    name: "a device that never ends (/dev/zero) as --cert: refused after 1 MiB, not read for ever",
    args: () => ["deploy", "--config", target("c-dev-zero"), "--cert", "/dev/zero"],
    exit: 2,
    says: ["--cert: /dev/zero is larger than 1 MiB"],
  },
  {
    name: "standard input of more than 1 MiB: refused, as a file of that size is",
    args: () => deploy("c-big-stdin"),
    stdin: () => "A".repeat(2 * 1024 * 1024),
    exit: 2,
    says: ["standard input is larger than 1 MiB"],
  },
  {
    name: "a key pasted into AZURE_CLIENT_ID: refused before any request, naming the variable, never shown",
    args: () => deploy("c-client-id-key"),
    stdin: () => fx.bundle(good),
    env: () => ({ AZURE_CLIENT_ID: good.keyPem }),
    // A usage problem of the process, like a variable not set.
    exit: 2,
    says: [
      "AZURE_CLIENT_ID: cannot work with credential_mode client_secret: AZURE_CLIENT_ID is not a client id (a GUID)",
      "fix: Set AZURE_CLIENT_ID to the application's or managed identity's client id",
    ],
  },
  {
    name: "workload_identity with a federated token file that does not exist: refused before any request, naming the variable and the path",
    args: () => [
      "deploy",
      "--config",
      target("c-token-file", { credential_mode: "workload_identity" }),
      "--cert",
      "-",
    ],
    stdin: () => fx.bundle(good),
    env: () => ({ AZURE_FEDERATED_TOKEN_FILE: "/nonexistent/kvdeploy/azure-identity-token" }),
    exit: 2,
    says: [
      "AZURE_FEDERATED_TOKEN_FILE: cannot work with credential_mode workload_identity: the federated token file /nonexistent/kvdeploy/azure-identity-token (AZURE_FEDERATED_TOKEN_FILE) cannot be read: no such file or directory (ENOENT)",
      "fix: Check that the projected service account token is mounted there",
    ],
  },
  {
    name: "a malformed AZURE_TENANT_ID, AZURE_CLIENT_SECRET empty and a certificate file that cannot be read: all listed in one run",
    args: () => [
      "plan",
      "--config",
      target("c-env-malformed"),
      "--cert",
      "/nonexistent/kvdeploy-corpus.pem",
      "--key",
      pemFile("env-malformed.key", good.keyPem),
      "--json",
    ],
    env: () => ({ AZURE_TENANT_ID: "contoso tenant", AZURE_CLIENT_SECRET: "" }),
    exit: 2,
    says: [
      '"field": "AZURE_CLIENT_SECRET"',
      '"field": "AZURE_TENANT_ID"',
      "AZURE_TENANT_ID is not a tenant id (a GUID or a domain name); its value (14 characters) is not shown",
      "/nonexistent/kvdeploy-corpus.pem: no such file",
      "credential_mode client_secret: AZURE_CLIENT_SECRET empty, AZURE_TENANT_ID malformed; the certificate flags: 1 problem",
    ],
  },
  {
    name: "a key pasted as a (too long) tag key and as an unknown field of a target file: named by length, never shown",
    args: () => [
      "validate",
      "--json",
      target("c-pasted-keys", { tags: { [good.keyPem.repeat(2)]: "x" }, [other.keyPem]: 1 }),
    ],
    exit: 2,
    says: [
      /tags\.\(a key of \d+ characters, not shown\)/,
      /"field": "\(a key of \d+ characters, not shown\)"/,
    ],
  },
  {
    name: "lines from inside a PEM key (not its first) as --tag values and keys: refused by flag, never shown",
    args: () => {
      const body = innerKeyLines(rsa2048.keyPem)
      return [
        "deploy",
        "--config",
        target("c-pasted-lines"),
        "--cert",
        pemFile("pasted-lines.pem", good.certPem),
        "--tag",
        `note=${body.slice(0, 3).join("")}`,
        "--tag",
        `${body[3]}=x`,
      ]
    },
    exit: 2,
    says: ["2 arguments hold certificate or key text", "--tag: holds certificate or key text"],
    never: () => innerKeyLines(rsa2048.keyPem).slice(0, 4),
  },
  {
    name: "a line from inside a PEM key as a stray argument and as an unknown flag: refused, never quoted by the parser",
    args: () => {
      const line = innerKeyLines(rsa2048.keyPem)[0] ?? ""
      return ["plan", "--config", target("c-pasted-stray"), "--cert", "-", line, `--${line}`, "--json"]
    },
    exit: 2,
    says: ["argument 6: holds certificate or key text", "argument 7: holds certificate or key text"],
    never: () => [
      "Unexpected positional argument",
      "Unrecognized flag",
      innerKeyLines(rsa2048.keyPem)[0] ?? "",
    ],
  },
  {
    name: "lines from inside a PEM key in a target file's tags and as its unknown field: refused, named by length, never shown",
    args: () => {
      const body = innerKeyLines(rsa2048.keyPem)
      return [
        "validate",
        "--json",
        target("c-pasted-key-lines", { tags: { note: body.slice(0, 3).join("") }, [body[3] ?? ""]: 1 }),
      ]
    },
    exit: 2,
    says: [/"field": "tags\.note"/, /"field": "\(a key of 64 characters, not shown\)"/],
    never: () => innerKeyLines(rsa2048.keyPem).slice(0, 4),
  },
  {
    name: "an empty --cert beside a --chain that does not exist: both listed in one run, before any file is parsed",
    args: () => [
      "deploy",
      "--config",
      target("c-empty-and-missing"),
      "--cert",
      pemFile("empty-cert.pem", ""),
      "--key",
      pemFile("empty-cert.key", good.keyPem),
      "--chain",
      "/nonexistent/kvdeploy-corpus-chain.pem",
    ],
    exit: 2,
    says: [
      /--cert: \S*empty-cert\.pem is empty/,
      "--chain: /nonexistent/kvdeploy-corpus-chain.pem: no such file",
      "the certificate flags: 2 problems",
    ],
  },
  {
    name: "show with an AZURE_CLIENT_ID and an AZURE_TENANT_ID that cannot work: both listed in one run, as plan lists them",
    args: () => ["show", "--config", target("c-show-env"), "--json"],
    env: () => ({ AZURE_CLIENT_ID: "not-a-guid", AZURE_TENANT_ID: "bad tenant" }),
    exit: 2,
    says: [
      "credential_mode client_secret: AZURE_CLIENT_ID, AZURE_TENANT_ID malformed",
      '"field": "AZURE_CLIENT_ID"',
      '"field": "AZURE_TENANT_ID"',
      "AZURE_TENANT_ID is not a tenant id (a GUID or a domain name)",
    ],
  },
  {
    name: "doctor (credential_mode default) with an AZURE_CLIENT_ID and an AZURE_TENANT_ID that cannot work: each a failed credential check (1)",
    args: () => ["doctor", "--config", target("c-doctor-env"), "--credential-mode", "default"],
    env: () => ({ AZURE_CLIENT_ID: "not-a-guid", AZURE_TENANT_ID: "bad tenant" }),
    exit: 1,
    says: [
      /FAIL {2}credential +AZURE_CLIENT_ID: cannot work with credential_mode default: AZURE_CLIENT_ID is not a client id/,
      /FAIL {2}credential +AZURE_TENANT_ID: cannot work with credential_mode default: AZURE_TENANT_ID is not a tenant id/,
      "not ready",
    ],
  },
  {
    name: "--json before the command name: said so, with where it goes (the error as JSON)",
    args: () => ["--json", "show", "--config", target("c-json-first")],
    exit: 2,
    says: [
      '"field": "--json"',
      '--json is given before the command name \\"show\\": a command\'s flags go after its name',
      '"fix": "put it after the command: kvdeploy show --json"',
    ],
    never: ["Did you mean", "Unrecognized flag"],
  },
  {
    name: "a mistyped flag before the command name: said the command takes no such flag, with the near one, not sent after the name as it is",
    args: () => ["--jsno", "show", "--config", target("c-jsno-first")],
    exit: 2,
    says: [
      '--jsno is given before the command name "show", and show takes no such flag',
      "fix: did you mean --json? see `kvdeploy show --help` for its flags, and put them after the command's name",
    ],
    never: ["kvdeploy show --jsno", "Unrecognized flag"],
  },
  {
    name: "another command's flag before the command name (deploy's --adopt before show): the command takes no such flag",
    args: () => ["--adopt", "show", "--config", target("c-adopt-first")],
    exit: 2,
    says: [
      '--adopt is given before the command name "show", and show takes no such flag',
      "fix: see `kvdeploy show --help` for its flags, and put them after the command's name",
    ],
    never: ["kvdeploy show --adopt", "did you mean"],
  },
  {
    name: "a flag with its value before the command name: said so, not read as an unknown command",
    args: () => ["--name", "c-name-first", "versions", "--config", target("c-name-first")],
    exit: 2,
    says: [
      '--name is given before the command name "versions"',
      "fix: put it after the command: kvdeploy versions --name c-name-first",
    ],
    never: ["Unknown subcommand", "Unrecognized flag"],
  },
  {
    name: "a passphrase given to a variable-name flag before the command name: the fix does not print it back",
    args: () => [
      "--json",
      "--key-passphrase-env",
      "Sup3rSecret!x",
      "--pfx-password-env=Hunter2pass",
      "deploy",
    ],
    exit: 2,
    says: ["kvdeploy deploy --key-passphrase-env VAR", "kvdeploy deploy --pfx-password-env VAR"],
    never: ["Sup3rSecret", "Hunter2pass"],
  },
  {
    name: "verify --timeout without --endpoint: a usage error naming the flag, not silently ignored",
    args: () => [
      "verify",
      "--config",
      target("c-timeout-alone"),
      "--cert",
      pemFile("timeout.pem", good.certPem),
      "--timeout",
      "5m",
    ],
    exit: 2,
    says: [
      "--timeout: applies only to --endpoint (how long to poll it); without one it does nothing",
      "fix: give the TLS endpoint to poll with --endpoint HOST:PORT, or drop --timeout",
    ],
  },
  {
    name: "verify --servername and --timeout without --endpoint, and a --cert that does not exist: all listed in one run",
    args: () => [
      "verify",
      "--config",
      target("c-servername-alone"),
      "--cert",
      "/nonexistent/kvdeploy-corpus-verify.pem",
      "--servername",
      "api.example.test",
      "--timeout",
      "1m",
      "--json",
    ],
    exit: 2,
    says: [
      "the input has 3 problems",
      '"field": "--timeout"',
      '"field": "--servername"',
      "applies only to --endpoint (the SNI name sent to it)",
      "/nonexistent/kvdeploy-corpus-verify.pem: no such file",
    ],
  },
  {
    name: "verify without a target or endpoint",
    args: () => ["verify", "--cert", "-"],
    stdin: () => good.certPem,
    exit: 2,
    says: ["--endpoint"],
  },
]

describe("bad inputs: each its own clear error, exit code, and no write", () => {
  it("has at least 30 cases", () => {
    expect(cases.length).toBeGreaterThanOrEqual(30)
  })
  for (const c of cases) {
    it.concurrent(c.name, async () => {
      const r = await runCli(c.args(), {
        ...(c.stdin === undefined ? {} : { stdin: c.stdin() }),
        env: { ...world.env, ...(c.env?.() ?? {}) },
      })
      const text = r.stdout + r.stderr
      expect(r.code, text).toBe(c.exit)
      for (const s of c.says) {
        if (typeof s === "string") expect(text, c.name).toContain(s)
        else expect(text, c.name).toMatch(s)
      }
      if (c.once !== undefined) expect(text.match(c.once) ?? [], text).toHaveLength(1)
      for (const n of typeof c.never === "function" ? c.never() : (c.never ?? []))
        expect(text, c.name).not.toContain(n)
      for (const body of keyBodies()) expect(text).not.toContain(body)
      expect(text).not.toContain("internal error")
      expect(text).not.toContain("hunter2")
      c.after?.()
    })
  }
})

describe("a file the user may not read", () => {
  it("is named with a fix about its permissions (not its path), for a certificate file and the target file alike", async () => {
    // Root reads any file: then the CLI runs as nobody, in a directory it may enter.
    const asRoot = process.getuid?.() === 0
    const dir = mkdtempSync(join("/dev/shm", "kvdeploy-cli-perm-"))
    try {
      chmodSync(dir, 0o755)
      const locked = (name: string, content: string) => {
        const path = join(dir, name)
        writeFileSync(path, content, { mode: 0o000 })
        return path
      }
      const cert = locked("locked.pem", fx.bundle(good))
      const config = locked("locked.json", "{}")
      const r = await runCli(["deploy", "--config", config, "--cert", cert, "--json"], {
        env: world.env,
        ...(asRoot ? { user: { uid: 65534, gid: 65534 } } : {}),
      })
      expect(r.code, r.stdout + r.stderr).toBe(2)
      const problems = json<{ error: { problems: Array<{ field: string; message: string; fix: string }> } }>(
        r,
      ).error.problems
      const about = (field: string) => problems.find((p) => p.field === field)
      for (const [field, path] of [
        ["--cert", cert],
        ["--config", config],
      ] as const) {
        expect(about(field)?.message, JSON.stringify(problems)).toBe(`${path}: permission denied`)
        expect(about(field)?.fix).toMatch(/readable by the user kvdeploy runs as \(check its permissions/)
        expect(about(field)?.fix).not.toContain("check the path")
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("an emulator state directory the user may not write in", () => {
  it("is refused at start (exit 2), naming --state-dir: its contents could not have been kept", async () => {
    // Root writes anywhere: then the CLI runs as nobody, and the directory is nobody's (a directory of
    // another user's is refused for that first), read-only to its owner too.
    const asRoot = process.getuid?.() === 0
    const dir = mkdtempSync(join("/dev/shm", "kvdeploy-cli-state-"))
    try {
      if (asRoot) chownSync(dir, 65534, 65534)
      chmodSync(dir, 0o555)
      const r = await runCli(["emulator", "--state-dir", dir, "--json"], {
        ...(asRoot ? { user: { uid: 65534, gid: 65534 } } : {}),
        timeoutMs: 20_000,
      })
      expect(r.code, r.stdout + r.stderr).toBe(2)
      const problems = json<{ error: { problems: Array<{ field: string; message: string; fix: string }> } }>(
        r,
      ).error.problems
      expect(problems).toEqual([
        {
          field: "--state-dir",
          message: `${dir}: a file cannot be written in it (permission denied)`,
          fix: expect.stringContaining("give a directory you can write to"),
        },
      ])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("an emulator state directory holding a vault file it cannot load", () => {
  type Problems = {
    error: { title: string; problems: Array<{ field: string; message: string; fix: string }> }
  }
  const moveAside = (vault: string) =>
    `move it aside (rename it to vault-${vault}.json.damaged, say) or delete it, and vault ${vault} starts empty: the certificates and secrets it held are not served (deploy them again; a deleted file's are gone); or restore it from a backup. The emulator has not changed it`

  it("a file cut short, or JSON that is not a vault's state: refused at start (exit 2), naming --state-dir and the file, with the fix; the file neither quoted nor changed", async () => {
    const dir = mkdtempSync(join("/dev/shm", "kvdeploy-cli-state-"))
    try {
      // What a save cut short by a full disk leaves: the start of the JSON, a private key in it.
      const keyLine = good.keyPem.split("\n")[1] ?? ""
      const cut = `{"format":1,"vault":"kvdeploy-cut","certificates":[{"name":"api","versions":[{"key":"${keyLine}`
      const cutFile = join(dir, "vault-kvdeploy-cut.json")
      writeFileSync(cutFile, cut, { mode: 0o600 })
      // Valid JSON that is not a vault's state (a certificate without its policy or versions).
      const shape = JSON.stringify({
        format: 1,
        vault: "kvdeploy-shape",
        certificates: [{ name: "api" }],
        secrets: [],
      })
      const shapeFile = join(dir, "vault-kvdeploy-shape.json")
      writeFileSync(shapeFile, shape, { mode: 0o600 })
      const r = await runCli(
        ["emulator", "--state-dir", dir, "--vault", "kvdeploy-cut", "--vault", "kvdeploy-shape", "--json"],
        { timeoutMs: 20_000 },
      )
      expect(r.code, r.stdout + r.stderr).toBe(2)
      const error = json<Problems>(r).error
      expect(error.title).toBe(`--state-dir: 2 vault files in ${dir} cannot be loaded`)
      expect(error.problems).toEqual([
        {
          field: "--state-dir",
          message: `${cutFile}: is cut short: its JSON ends before it is complete (an interrupted copy or a full disk?)`,
          fix: moveAside("kvdeploy-cut"),
        },
        {
          field: "--state-dir",
          message: `${shapeFile}: holds JSON that is not a vault's state as this emulator writes it: certificates[0].policy is missing`,
          fix: moveAside("kvdeploy-shape"),
        },
      ])
      expect(r.stdout + r.stderr).not.toContain(keyLine.slice(0, 24))
      expect(r.stdout + r.stderr).not.toMatch(/SyntaxError|kv-emulator failed to start|\n\s+at /)
      expect(readFileSync(cutFile, "utf8")).toBe(cut)
      expect(readFileSync(shapeFile, "utf8")).toBe(shape)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("a file the user may not read: refused at start (exit 2), naming --state-dir and the file, permission denied", async () => {
    // Root reads any file: then the CLI runs as nobody, in a directory of its own (0700; one others
    // may write is refused for that first), the file root's.
    const asRoot = process.getuid?.() === 0
    const dir = mkdtempSync(join("/dev/shm", "kvdeploy-cli-state-"))
    try {
      if (asRoot) chownSync(dir, 65534, 65534)
      chmodSync(dir, 0o700)
      const file = join(dir, "vault-kvdeploy-demo.json")
      writeFileSync(file, "{}", { mode: 0o600 })
      chmodSync(file, 0o000)
      const r = await runCli(["emulator", "--state-dir", dir], {
        ...(asRoot ? { user: { uid: 65534, gid: 65534 } } : {}),
        timeoutMs: 20_000,
      })
      expect(r.code, r.stdout + r.stderr).toBe(2)
      expect(r.stderr).toContain(`error: --state-dir: ${file}: cannot be read (permission denied)\n`)
      expect(r.stderr).toContain(
        "fix: make it readable and writable by the user the emulator runs as (chown it to that user; mode 0600), or move it aside",
      )
      expect(r.stderr).not.toMatch(/EACCES|kv-emulator failed to start|\n\s+at /)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("inputs kvdeploy accepts and normalises", () => {
  it.concurrent("a password-protected PFX, the password from the variable named by --pfx-password-env", async () => {
    const r = await runCli(
      [
        "deploy",
        "--config",
        world.targetFile("n-pfx"),
        "--pfx",
        "-",
        "--pfx-password-env",
        "PFX_PASS",
        "--json",
      ],
      {
        stdin: pfx,
        env: { ...world.env, PFX_PASS: "s3cret pfx" },
      },
    )
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(json<{ _tag: string }>(r)._tag).toBe("Succeeded")
    expect(r.stdout + r.stderr).not.toContain("s3cret pfx")
  })
  it.concurrent("PKCS#1 RSA key is accepted and normalised to PKCS#8", async () => {
    const r = await runCli(["deploy", "--config", world.targetFile("n-pkcs1"), "--cert", "-", "--json"], {
      stdin: rsa2048.certPem + fx.chainOf(rsa2048) + traditionalKeyPem(rsa2048.keyPem),
      env: world.env,
    })
    expect(traditionalKeyPem(rsa2048.keyPem)).toContain("BEGIN RSA PRIVATE KEY")
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(json<{ _tag: string }>(r)._tag).toBe("Succeeded")
  })
  it.concurrent("an encrypted --previous-key with a passphrase of its own, beside --key's, is read and judged", async () => {
    const name = "n-prev-enc"
    const served = await runCli([...deploy(name), "--json"], { stdin: fx.bundle(other), env: world.env })
    expect(served.code, served.stdout + served.stderr).toBe(0)
    const r = await runCli(
      [
        "plan",
        "--config",
        target(name),
        "--cert",
        world.file("prev-enc-leaf.pem", good.certPem + fx.chainPem),
        "--key",
        world.file("prev-enc-new.key", encryptedKeyPem(good.keyPem, "new pass")),
        "--key-passphrase-env",
        "NEW_PASS",
        "--previous-key",
        world.file("prev-enc-old.key", encryptedKeyPem(other.keyPem, "old pass")),
        "--previous-key-passphrase-env",
        "OLD_PASS",
        "--json",
      ],
      { env: { ...world.env, NEW_PASS: "new pass", OLD_PASS: "old pass" } },
    )
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(json<{ previousKey: string; action: string }>(r)).toMatchObject({
      previousKey: "matches",
      action: "import",
    })
  })
  it.concurrent("SEC1 EC key, encrypted key with its passphrase, and a bundle in reverse order are accepted", async () => {
    const sec1 = await runCli(["deploy", "--config", world.targetFile("n-sec1"), "--cert", "-", "--json"], {
      stdin: good.certPem + fx.chainPem + traditionalKeyPem(good.keyPem),
      env: world.env,
    })
    expect(sec1.code, sec1.stdout + sec1.stderr).toBe(0)
    const enc = await runCli(
      [
        "deploy",
        "--config",
        world.targetFile("n-enc"),
        "--cert",
        world.file("leaf.pem", other.certPem + fx.chainPem),
        "--key",
        "-",
        "--key-passphrase-env",
        "KEY_PASS",
        "--json",
      ],
      {
        stdin: encryptedKeyPem(other.keyPem, "correct horse"),
        env: { ...world.env, KEY_PASS: "correct horse" },
      },
    )
    expect(enc.code, enc.stdout + enc.stderr).toBe(0)
    const reversed = await runCli(
      ["deploy", "--config", world.targetFile("n-reversed"), "--cert", "-", "--json"],
      {
        stdin: fx.pki.root.certPem + fx.pki.intermediate.certPem + good.certPem + good.keyPem,
        env: world.env,
      },
    )
    expect(reversed.code, reversed.stdout + reversed.stderr).toBe(0)
    // The same key in the --cert bundle and with --key (in another form) is one key, not two.
    const twice = await runCli(
      [
        "deploy",
        "--config",
        world.targetFile("n-key-twice"),
        "--cert",
        "-",
        "--key",
        world.file("same.key", traditionalKeyPem(rsa2048.keyPem)),
        "--json",
      ],
      { stdin: fx.bundle(rsa2048), env: world.env },
    )
    expect(twice.code, twice.stdout + twice.stderr).toBe(0)
    const versions = world.emulator.state.versions(world.vault, "n-reversed") ?? []
    // Served leaf-first: leaf, intermediate, root.
    expect(versions[0]?.certificates.length).toBe(3)
  })
})

describe("the vault after the corpus", () => {
  it("not one request of the bad-input corpus changed the vault (request log)", () => {
    const writes = world.emulator.requests
      .entries({ since: mark, vault: world.vault })
      .filter((e) => e.method !== "GET" && !e.challenge && !/\/n-/.test(e.path))
    expect(writes.map((e) => `${e.method} ${e.path}`)).toEqual([])
    // ...while the accepted inputs did write: the log sees writes when there are some.
    expect(
      world.emulator.requests.count({ since: mark, vault: world.vault, operation: "import" }),
    ).toBeGreaterThanOrEqual(6)
  })
})
