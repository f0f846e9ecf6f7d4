/**
 * `verify` checks the leaf a deploy of the same file would import: of a bundle, the certificate its
 * private key matches wherever it sits; without a key, the certificate that issued none of the
 * others; of a PFX, the certificate its key matches. A bundle with no such single certificate is a
 * usage error naming them; a file whose key deploy refuses is refused as deploy refuses it. The
 * BUILT kvdeploy against the emulator.
 */
import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { encryptedKeyPem, type Issued, makePki } from "../src/cli/throwawayPki.js"
import { damagedKeyPem, type Fixtures, makeFixtures } from "./fixtures.js"
import { type CliResult, json, runCli, startWorld, type World } from "./harness.js"

let world: World
let fx: Fixtures
/** Deployed to `name` in beforeAll: what the vault serves. */
let served: Issued
/** Another leaf of the same intermediate, never deployed. */
let other: Issued
/** The root of a PKI that issued none of the above. */
let stranger: Issued
const name = "verify-leaf"
const hasOpenssl = spawnSync("openssl", ["version"]).status === 0
// The OpenSSL checks are skipped locally without openssl; with CI=true (.ci/run installs it) they run, and fail.
const opensslSkipped = !hasOpenssl && process.env.CI !== "true"
if (opensslSkipped)
  console.warn(
    "\n!!! SKIPPING verify's OpenSSL checks: openssl is not installed (they fail instead when CI=true)\n",
  )

const x5tOf = (c: Issued) =>
  createHash("sha1").update(new Uint8Array(c.certificate.rawData)).digest("base64url")

interface Verdict {
  readonly serves: boolean
  readonly x5t: string
  readonly subject: string
}

interface ErrorDocument {
  readonly error: {
    readonly exitCode: number
    readonly problems: ReadonlyArray<{ field: string; message: string; fix: string }>
  }
}

/**
 * A PFX of these certificates and this key (none: `-nokeys`, certificates only), with the empty
 * password, as OpenSSL exports it (its path).
 */
const opensslPfx = (name: string, certificatesPem: string, keyPem?: string): string => {
  if (!hasOpenssl) throw new Error("openssl is missing (Debian's openssl package); .ci/run installs it")
  const pfx = world.file(`${name}.pfx`, "")
  const made = spawnSync(
    "openssl",
    [
      "pkcs12",
      "-export",
      ...(keyPem === undefined ? ["-nokeys"] : ["-inkey", world.file(`${name}-pfx.key`, keyPem)]),
      "-in",
      world.file(`${name}-pfx.pem`, certificatesPem),
      "-out",
      pfx,
      "-passout",
      "pass:",
    ],
    { encoding: "utf8" },
  )
  expect(made.status, made.stderr).toBe(0)
  return pfx
}

const verify = (
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string>; readonly stdin?: string | Uint8Array } = {},
): Promise<CliResult> =>
  runCli(["verify", "--config", world.targetFile(name), ...args], {
    env: { ...world.env, ...(options.env ?? {}) },
    ...(options.stdin === undefined ? {} : { stdin: options.stdin }),
  })

/** Key text must never reach the operator: no PEM key block and no line of a key's base64 body. */
const expectNoKeyText = (r: CliResult, ...keys: ReadonlyArray<Issued>) => {
  const text = r.stdout + r.stderr
  expect(text).not.toContain("PRIVATE KEY")
  for (const k of keys)
    for (const line of k.keyPem.split("\n").filter((l) => l.length > 40)) expect(text).not.toContain(line)
}

beforeAll(async () => {
  ;[world, fx] = await Promise.all([startWorld("kvdeploy-verify-leaf"), makeFixtures()])
  ;[served, other, stranger] = await Promise.all([
    fx.leaf(),
    fx.pki.leaf("CN=other.example.test"),
    makePki("kvdeploy stranger").then((p) => p.root),
  ])
  const deployed = await runCli(["deploy", "--config", world.targetFile(name), "--cert", "-", "--json"], {
    stdin: fx.bundle(served),
    env: world.env,
  })
  expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0)
})
afterAll(async () => {
  await world?.stop()
})

describe("verify --cert: the leaf deploy would import", () => {
  it("the chain before the leaf and no key (cat ca.pem leaf.pem): the certificate that issued none of the others, which plan says is served", async () => {
    const reversed = world.file("reversed.pem", fx.chainPem + served.certPem)
    const key = world.file("served.key", served.keyPem)
    const plan = await runCli(
      ["plan", "--config", world.targetFile(name), "--cert", reversed, "--key", key, "--json"],
      { env: world.env },
    )
    expect(plan.code, plan.stdout + plan.stderr).toBe(0)
    expect(json<{ action: string }>(plan).action).toBe("skip")

    const r = await verify(["--cert", reversed, "--json"])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const verdict = json<Verdict>(r)
    expect(verdict.serves).toBe(true)
    expect(verdict.x5t).toBe(x5tOf(served))
    expect(verdict.subject).toContain("CN=api.example.test")

    const human = await verify(["--cert", reversed])
    expect(human.code, human.stdout + human.stderr).toBe(0)
    expect(human.stdout).toMatch(/^yes {2}CN=api\.example\.test/)
  })

  it("a bundle with its private key: the certificate the key matches, wherever it sits in the file", async () => {
    // Two leaves of one intermediate (neither issued the other): only the key says which is the leaf.
    const keyLast = await verify(["--cert", "-", "--json"], {
      stdin: other.certPem + served.certPem + fx.chainPem + served.keyPem,
    })
    expect(keyLast.code, keyLast.stdout + keyLast.stderr).toBe(0)
    expect(json<Verdict>(keyLast).x5t).toBe(x5tOf(served))
    expectNoKeyText(keyLast, served)

    // The first certificate is the served one, but the key is the other's: the other is the leaf, not served.
    const otherKey = await verify(["--cert", "-", "--json"], {
      stdin: served.certPem + other.keyPem + other.certPem + fx.chainPem,
    })
    expect(otherKey.code, otherKey.stdout + otherKey.stderr).toBe(1)
    const verdict = json<Verdict>(otherKey)
    expect(verdict.serves).toBe(false)
    expect(verdict.x5t).toBe(x5tOf(other))
    expect(verdict.subject).toContain("CN=other.example.test")
    expectNoKeyText(otherKey, other)
  })

  it("two certificates of which neither issued the other and no key that picks one: a usage error naming --cert, both subjects and the fix, before the vault is read", async () => {
    const mark = world.emulator.requests.mark()
    const unrelated = world.file("unrelated.pem", served.certPem + stranger.certPem)
    const r = await verify(["--cert", unrelated])
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.stderr).toContain(`--cert ${unrelated}`)
    expect(r.stderr).toContain('"CN=api.example.test"')
    expect(r.stderr).toContain('"CN=kvdeploy stranger root CA"')
    expect(r.stderr).toContain(`x5t ${x5tOf(served)}`)
    expect(r.stderr).toContain("could each be the leaf")
    expect(r.stderr).toContain("--pfx")
    expect(r.stdout).toBe("")

    // In JSON: one document on stdout, the same problem.
    const withJson = await verify(["--cert", unrelated, "--json"])
    expect(withJson.code).toBe(2)
    const doc = json<ErrorDocument>(withJson)
    expect(doc.error.exitCode).toBe(2)
    expect(doc.error.problems).toHaveLength(1)
    expect(doc.error.problems[0]?.field).toBe(`--cert ${unrelated}`)
    expect(doc.error.problems[0]?.message).toContain('"CN=kvdeploy stranger root CA"')

    // A key verify cannot read (encrypted: it takes no passphrase) is named as the reason; never shown.
    const encrypted = await verify([
      "--cert",
      world.file(
        "encrypted-key.pem",
        other.certPem + served.certPem + encryptedKeyPem(served.keyPem, "hunter2"),
      ),
    ])
    expect(encrypted.code, encrypted.stdout + encrypted.stderr).toBe(2)
    expect(encrypted.stderr).toContain('"CN=other.example.test"')
    expect(encrypted.stderr).toContain("its private key cannot be read here")
    expect(encrypted.stderr).not.toContain("hunter2")
    expect(encrypted.stderr).not.toContain("ENCRYPTED PRIVATE KEY-----")

    expect(world.emulator.requests.entries({ since: mark, vault: world.vault })).toHaveLength(0)
  })
})

describe("verify of a file whose private key deploy refuses: refused as deploy refuses it", () => {
  /** The problems plan (deploy's reading and preflight) refuses a file's key with, as [message, fix]. */
  const planRefuses = async (material: ReadonlyArray<string>) => {
    const plan = await runCli(["plan", "--config", world.targetFile(name), ...material, "--json"], {
      env: world.env,
    })
    expect(plan.code, plan.stdout + plan.stderr).toBe(2)
    // The issuer's key is refused as the files are read (a usage error), the others by the preflight
    // (its problems of the key: verify judges the key, not the chain).
    const doc = json<ErrorDocument | { preflight: { problems: ErrorDocument["error"]["problems"] } }>(plan)
    const problems =
      "error" in doc ? doc.error.problems : doc.preflight.problems.filter((p) => p.field === "key")
    expect(problems.length).toBeGreaterThan(0)
    return problems.map((p) => [p.message, p.fix])
  }

  /** Bundles deploy refuses for their key, with what its message says. */
  const refusedBundles: ReadonlyArray<{
    readonly bundle: string
    readonly pem: () => string
    readonly says: string
  }> = [
    // Verify answered "no" about the intermediate CA (exit 1): "the vault serves another certificate".
    {
      bundle: "the leaf, its chain and the intermediate CA's key",
      pem: () => served.certPem + fx.chainPem + fx.pki.intermediate.keyPem,
      says: "an issuer's key, not the leaf's",
    },
    // Verify answered "yes" (exit 0) about the leaf.
    {
      bundle: "the leaf, its chain and a key that matches none of them",
      pem: () => served.certPem + fx.chainPem + other.keyPem,
      says: 'does not match the leaf certificate "CN=api.example.test"',
    },
    {
      bundle: "the leaf, its chain and the leaf's key damaged",
      pem: () => served.certPem + fx.chainPem + damagedKeyPem(served.keyPem),
      says: "is damaged",
    },
    // Verify refused it as two possible leaves; deploy takes the first certificate and refuses the key.
    {
      bundle: "two unrelated certificates and a key that matches neither",
      pem: () => served.certPem + stranger.certPem + other.keyPem,
      says: 'does not match the leaf certificate "CN=api.example.test"',
    },
  ]

  it.each(refusedBundles)(
    "--cert holding $bundle: exit 2 with plan's message and fix, in --json's error document too, before the vault is read",
    async ({ bundle, pem, says }) => {
      const file = world.file(`${bundle.replace(/\W+/g, "-")}.pem`, pem())
      const planned = await planRefuses(["--cert", file])
      const mark = world.emulator.requests.mark()
      const r = await verify(["--cert", file, "--json"])
      expect(r.code, r.stdout + r.stderr).toBe(2)
      const doc = json<ErrorDocument>(r)
      expect(doc.error.exitCode).toBe(2)
      expect(doc.error.problems.map((p) => [p.message, p.fix])).toEqual(planned)
      expect(doc.error.problems[0]?.message).toContain(says)
      for (const p of doc.error.problems) expect(p.field.startsWith(`--cert ${file}`), p.field).toBe(true)
      expectNoKeyText(r, served, other, fx.pki.intermediate)
      // In text, from standard input: the same, on stderr, and no answer on stdout.
      const text = await verify(["--cert", "-"], { stdin: pem() })
      expect(text.code, text.stdout + text.stderr).toBe(2)
      expect(text.stdout).toBe("")
      expect(text.stderr).toContain(`--cert standard input`)
      expect(text.stderr).toContain(planned[0]?.[0])
      expectNoKeyText(text, served, other, fx.pki.intermediate)
      expect(world.emulator.requests.entries({ since: mark, vault: world.vault })).toHaveLength(0)
    },
  )

  it("a bundle with the leaf's own key is still answered (yes), and a certificate alone as before", async () => {
    const keyed = await verify(["--cert", "-", "--json"], {
      stdin: fx.chainPem + served.certPem + served.keyPem,
    })
    expect(keyed.code, keyed.stdout + keyed.stderr).toBe(0)
    expect(json<Verdict>(keyed)).toMatchObject({ serves: true, x5t: x5tOf(served) })
    const alone = await verify(["--cert", "-", "--json"], { stdin: other.certPem + fx.chainPem })
    expect(alone.code, alone.stdout + alone.stderr).toBe(1)
    expect(json<Verdict>(alone)).toMatchObject({ serves: false, x5t: x5tOf(other) })
  })

  it.skipIf(opensslSkipped)(
    "a PFX with a damaged key (OpenSSL exports it; deploy refuses it): exit 2 with plan's message",
    async () => {
      const pfx = opensslPfx("damaged", served.certPem + fx.chainPem, damagedKeyPem(served.keyPem))
      const planned = await planRefuses(["--pfx", pfx])
      const r = await verify(["--pfx", pfx, "--json"])
      expect(r.code, r.stdout + r.stderr).toBe(2)
      const doc = json<ErrorDocument>(r)
      expect(doc.error.problems.map((p) => [p.message, p.fix])).toEqual(planned)
      expect(doc.error.problems[0]?.field).toBe(`--pfx ${pfx}: key`)
      expect(doc.error.problems[0]?.message).toContain("is damaged")
    },
  )

  it.skipIf(opensslSkipped)(
    "a PFX exported with its issuer's key (OpenSSL takes the intermediate as the key's certificate): deploy, plan and verify refuse it as the issuer's key, exit 2",
    async () => {
      const pfx = opensslPfx("issuer", served.certPem + fx.chainPem, fx.pki.intermediate.keyPem)
      for (const command of ["verify", "plan", "deploy"]) {
        const r = await runCli([command, "--config", world.targetFile(name), "--pfx", pfx, "--json"], {
          env: world.env,
        })
        expect(r.code, `${command}: ${r.stdout}${r.stderr}`).toBe(2)
        const problem = json<ErrorDocument>(r).error.problems[0]
        expect(problem?.field, command).toBe(`--pfx ${pfx}`)
        expect(problem?.message, command).toMatch(
          /^holds the private key of ".*", which issued ".*api\.example\.test.*" in the same file: an issuer's key, not the leaf's$/,
        )
      }
    },
  )
})

describe("verify --pfx: the PFX that was deployed, read as deploy reads it", () => {
  const pfxOf = (leaf: Issued, password: string) =>
    Effect.runPromise(
      encodePfx(
        {
          leaf: new Uint8Array(leaf.certificate.rawData),
          chain: [fx.pki.intermediate, fx.pki.root].map((c) => new Uint8Array(c.certificate.rawData)),
          key: Redacted.make(leaf.pkcs8),
        },
        { encoding: "modern", password: Redacted.make(password), iterations: 1 },
      ),
    )

  it("answers yes for the served certificate's PFX (password from --pfx-password-env), no for another's", async () => {
    const pfx = world.file("served.pfx", await pfxOf(served, "s3cret pfx"))
    const yes = await verify(["--pfx", pfx, "--pfx-password-env", "PFX_PASS", "--json"], {
      env: { PFX_PASS: "s3cret pfx" },
    })
    expect(yes.code, yes.stdout + yes.stderr).toBe(0)
    expect(json<Verdict>(yes)).toMatchObject({ serves: true, x5t: x5tOf(served) })
    expect(yes.stdout + yes.stderr).not.toContain("s3cret pfx")

    // From standard input, without a password (the empty one is tried, as deploy does).
    const no = await verify(["--pfx", "-", "--json"], { stdin: await pfxOf(other, "") })
    expect(no.code, no.stdout + no.stderr).toBe(1)
    expect(json<Verdict>(no)).toMatchObject({ serves: false, x5t: x5tOf(other) })
  })

  it.skipIf(opensslSkipped)(
    "a PFX without a private key (openssl pkcs12 -export -nokeys): verify takes the certificate that issued none of the others; deploy still refuses it",
    async () => {
      /** A certificate-only PFX of these PEM certificates, with the empty password, as OpenSSL writes it. */
      const certOnly = (label: string, pem: string) => opensslPfx(label, pem)
      const alone = await verify(["--pfx", certOnly("certonly", served.certPem), "--json"])
      expect(alone.code, alone.stdout + alone.stderr).toBe(0)
      expect(json<Verdict>(alone)).toMatchObject({ serves: true, x5t: x5tOf(served) })
      // With its chain, in any order: the leaf is the certificate that issued none of the others.
      const chained = await verify([
        "--pfx",
        certOnly("certonly-chain", fx.chainPem + served.certPem),
        "--json",
      ])
      expect(chained.code, chained.stdout + chained.stderr).toBe(0)
      expect(json<Verdict>(chained)).toMatchObject({ serves: true, x5t: x5tOf(served) })
      const another = await verify(["--pfx", certOnly("certonly-other", other.certPem), "--json"])
      expect(another.code, another.stdout + another.stderr).toBe(1)
      expect(json<Verdict>(another)).toMatchObject({ serves: false, x5t: x5tOf(other) })
      // Deploy imports a key: a PFX without one is refused, and nothing is written.
      const mark = world.emulator.requests.mark()
      const deploy = await runCli(
        ["deploy", "--config", world.targetFile(name), "--pfx", certOnly("certonly-deploy", other.certPem)],
        { env: world.env },
      )
      expect(deploy.code, deploy.stderr).toBe(2)
      expect(deploy.stderr).toMatch(/--pfx \S*certonly-deploy\.pfx: holds no private key/)
      expect(world.writesSince(mark)).toBe(0)
    },
  )

  it("the PFX flags' problems, as deploy reports them: a wrong password, --pfx with --cert, --pfx-password-env alone", async () => {
    const pfx = world.file("locked.pfx", await pfxOf(served, "s3cret pfx"))
    const wrong = await verify(["--pfx", pfx, "--pfx-password-env", "PFX_PASS"], {
      env: { PFX_PASS: "not it" },
    })
    expect(wrong.code).toBe(2)
    expect(wrong.stderr).toContain(`--pfx ${pfx}: the password in PFX_PASS does not open it`)
    expect(wrong.stderr).not.toContain("not it")

    const both = await verify(["--pfx", pfx, "--cert", world.file("leaf.pem", served.certPem), "--json"])
    expect(both.code).toBe(2)
    expect(json<ErrorDocument>(both).error.problems.map((p) => `${p.field}: ${p.message}`)).toEqual([
      "--pfx: cannot be combined with --cert",
    ])

    const alone = await verify([
      "--cert",
      world.file("leaf.pem", served.certPem),
      "--pfx-password-env",
      "PFX_PASS",
    ])
    expect(alone.code).toBe(2)
    expect(alone.stderr).toContain("--pfx-password-env: applies only to --pfx")

    const unset = await verify(["--pfx", pfx, "--pfx-password-env", "KVDEPLOY_TEST_UNSET_VARIABLE"])
    expect(unset.code).toBe(2)
    expect(unset.stderr).toContain("the environment variable KVDEPLOY_TEST_UNSET_VARIABLE is not set")
  })
})
