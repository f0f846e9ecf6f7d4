/**
 * Backing secrets a rollback reads, over the real SDKs against the emulator.
 *
 * A PEM backing secret whose leaf is not its first certificate: Key Vault keeps the order an
 * import sent when it was imported with `preserveCertOrder: true`, so a CA can come first; the
 * leaf is the certificate the private key belongs to, as a PFX's is.
 *
 * Backing secrets that hold no restorable material, for another reason than a key that was not
 * exported: a key of none of the certificates (PEM or PFX), a PFX that does not open with the
 * blank password Key Vault re-protects backing secrets with, one that is no PFX, one that uses
 * what the codec does not read. None is "no private key": the rollback and doctor would say the
 * key is not exportable, which is false (an exportable key is what kvdeploy imports). Each is an
 * unusable answer, said for what it is.
 */
import { spawnSync } from "node:child_process"
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { TokenCredential } from "@azure/core-auth"
import type { PipelinePolicy } from "@azure/core-rest-pipeline"
import { CertificateClient } from "@azure/keyvault-certificates"
import { SecretClient } from "@azure/keyvault-secrets"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import {
  type CertificateMaterial,
  type DeployOutcome,
  PfxCodec,
  type TargetConfig,
  Vault,
} from "@kvdeploy/core"
import { RecordingMetrics } from "@kvdeploy/core/test"
import type { Emulator } from "@kvdeploy/kv-emulator"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import {
  credentialFor,
  deployOnce,
  fastReads,
  startEmulator,
  targetFor,
  vaultLayer,
  worldLayer,
} from "./support/emulator.js"
import { generateKey, type Issuer, issue, makeCa, makeMaterial, toPem, x5tOf } from "./support/pki.js"

const VAULT = "pemleaf"
const PEM = "application/x-pem-file"
const opensslPresent = spawnSync("openssl", ["version"], { stdio: "ignore" }).status === 0

let emulator: Emulator
let root: Issuer
let credential: TokenCredential
let secrets: SecretClient
let orderKeeping: CertificateClient

/**
 * Another tool's PEM import with `preserveCertOrder: true` and a PEM policy: the SDK (4.9.0-4.10.3)
 * puts neither on the wire, so this per-call policy writes them into the request's body.
 */
const preserveCertOrder: PipelinePolicy = {
  name: "preserveCertOrder",
  sendRequest(request, next) {
    if (request.method === "POST" && /\/import/.test(request.url) && typeof request.body === "string") {
      const body = JSON.parse(request.body)
      body.policy = {
        key_props: { exportable: true, kty: "EC", crv: "P-256", reuse_key: false },
        secret_props: { contentType: PEM },
      }
      body.preserveCertOrder = true
      request.body = JSON.stringify(body)
    }
    return next(request)
  },
}

beforeAll(async () => {
  emulator = await startEmulator({ vaults: [VAULT] })
  root = await makeCa("CN=kvdeploy pemleaf Root CA")
  credential = await Effect.runPromise(credentialFor(emulator, targetFor(emulator, VAULT, "any")))
  const options = { tlsOptions: { ca: emulator.caPem }, disableChallengeResourceVerification: true }
  secrets = new SecretClient(emulator.vault(VAULT).url, credential, options)
  orderKeeping = new CertificateClient(emulator.vault(VAULT).url, credential, {
    ...options,
    additionalPolicies: [{ policy: preserveCertOrder, position: "perCall" }],
  })
})
afterAll(() => emulator?.stop())

const versionsOf = (name: string) => emulator.state.versions(VAULT, name) ?? []
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
const certificatesOf = (text: string) =>
  [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map((m) =>
    hex(new Uint8Array(new X509Certificate(m[0]).raw)),
  )

/** A leaf under an intermediate under `root`: chain leaf-first (intermediate, root). */
const issuedUnderIntermediate = (): Effect.Effect<CertificateMaterial> =>
  Effect.promise(async () => {
    const intermediateKey = await generateKey("P-256")
    const intermediateName = "CN=kvdeploy pemleaf Intermediate CA"
    const intermediate = await issue({
      subject: intermediateName,
      key: intermediateKey,
      issuer: root,
      ca: true,
    })
    const key = await generateKey("P-256")
    const leaf = await issue({
      subject: "CN=app.example.test",
      key,
      issuer: { name: intermediateName, key: intermediateKey },
      ca: false,
      sans: [{ type: "dns", value: "app.example.test" }],
    })
    return { leaf, chain: [intermediate, root.der], key: Redacted.make(key.pkcs8) }
  })

/** Imported by another tool as PEM, root first and the leaf last, its order kept, with kvdeploy's tags. */
const importRootFirst = (name: string, served: CertificateMaterial) =>
  Effect.promise(() =>
    orderKeeping.importCertificate(
      name,
      new TextEncoder().encode(
        [
          ...[...served.chain].reverse().map((c) => toPem("CERTIFICATE", c)),
          toPem("CERTIFICATE", served.leaf),
          toPem("PRIVATE KEY", Redacted.value(served.key)),
        ].join(""),
      ),
      {
        policy: { contentType: PEM },
        tags: { "certctl-managed-by": "certctl", "certctl-certificate-id": `id-${name}` },
      },
    ),
  )

const deployTo = (target: TargetConfig, next: CertificateMaterial) =>
  Effect.gen(function* () {
    const outcome: DeployOutcome = yield* deployOnce(target, next, `id-${target.certificateName}`).pipe(
      fastReads,
    )
    return outcome
  }).pipe(Effect.provide(worldLayer(emulator, target, credential)))

/** The backing secret of `name`'s latest version through a fresh adapter: its failure. */
const secretFailure = (name: string) =>
  Effect.gen(function* () {
    const vault = yield* Vault
    const latest = yield* vault.getLatest(name)
    return yield* Effect.flip(vault.getVersionSecret(name, latest.versionId))
  }).pipe(Effect.provide(worldLayer(emulator, targetFor(emulator, VAULT, name), credential)))

/** The new version is disabled once written: verify finds it wrong, and the deploy rolls back. */
const failNextImport = (name: string) =>
  emulator.faults.add({
    operation: "import",
    vault: VAULT,
    name,
    times: 1,
    action: { kind: "disableAfterCommit" },
  })

describe("a PEM backing secret whose leaf is not first", () => {
  it.live(
    "root first, leaf last (preserveCertOrder): the rollback restores the previous leaf with its chain, as PEM",
    () =>
      Effect.gen(function* () {
        const name = "pem-root-first"
        const served = yield* issuedUnderIntermediate()
        yield* importRootFirst(name, served)
        const previous = versionsOf(name).at(-1)
        expect(previous?.contentType).toBe(PEM)
        // The vault serves the order it was given: the root first, the leaf last.
        const before = yield* Effect.promise(() =>
          secrets.getSecret(name, { version: previous?.version ?? "" }),
        )
        expect(certificatesOf(before.value ?? "")).toEqual(
          [root.der, served.chain[0], served.leaf].map((c) => hex(c ?? new Uint8Array())),
        )

        failNextImport(name)
        const outcome = yield* deployTo(targetFor(emulator, VAULT, name), yield* issuedUnderIntermediate())
        expect(outcome._tag, outcome.reason).toBe("RolledBack")
        if (outcome._tag !== "RolledBack") return
        expect(outcome.rollbackSource).toBe("backing-secret")

        const restored = versionsOf(name).at(-1)
        expect(restored?.version).toBe(outcome.rollbackVersionId)
        expect(restored?.x5t).toBe(yield* Effect.promise(() => x5tOf(served.leaf)))
        expect(restored?.contentType).toBe(PEM)
        // Its backing secret: the previous leaf, then its chain in issuer order, and the key.
        const secret = yield* Effect.promise(() =>
          secrets.getSecret(name, { version: restored?.version ?? "" }),
        )
        expect(secret.properties.contentType).toBe(PEM)
        expect(certificatesOf(secret.value ?? "")).toEqual([served.leaf, ...served.chain].map(hex))
        const key = /-----BEGIN PRIVATE KEY-----[\s\S]*?-----END PRIVATE KEY-----/.exec(
          secret.value ?? "",
        )?.[0]
        expect(
          createPublicKey(createPrivateKey(key ?? "")).equals(new X509Certificate(served.leaf).publicKey),
        ).toBe(true)
      }),
  )

  it.live(
    "a PEM secret whose key belongs to none of its certificates is said for what it is, not 'not exportable'",
    () =>
      Effect.gen(function* () {
        const name = "pem-key-of-none"
        const ca = yield* Effect.promise(() => makeCa())
        const served = yield* Effect.promise(() => makeMaterial(ca))
        yield* importRootFirst(name, served)
        // An answer changed on its way (Key Vault imports no such pair): another key's PEM block.
        const stranger = yield* Effect.promise(() => makeMaterial(ca))
        const value = [
          toPem("CERTIFICATE", ca.der),
          toPem("CERTIFICATE", served.leaf),
          toPem("PRIVATE KEY", Redacted.value(stranger.key)),
        ].join("")
        emulator.faults.add({
          operation: "getSecret",
          vault: VAULT,
          name,
          times: "always",
          action: { kind: "setFields", fields: { value } },
        })
        const failure = yield* secretFailure(name)
        expect(failure._tag).toBe("VaultMalformedAnswer")
        expect(failure.message).not.toMatch(/not exportable|holds no private key/)
        expect(failure.message).toMatch(
          /the PEM backing secret of pem-key-of-none\/\S+ holds a private key but no certificate it belongs to \(2 certificates, none of them the key's\)/,
        )
        expect(failure.message).toMatch(/keep its key \(key history: kvdeploy deploy --previous-key\)/)

        // A rollback over it: RollbackFailed, with the same words, never "not exportable".
        failNextImport(name)
        const outcome = yield* deployTo(
          targetFor(emulator, VAULT, name),
          yield* Effect.promise(() => makeMaterial(ca)),
        )
        emulator.faults.clear()
        expect(outcome._tag, outcome.reason).toBe("RollbackFailed")
        // The failed import is the one version the deploy added: no rollback was written.
        expect(versionsOf(name)).toHaveLength(2)
        expect(outcome.reason).not.toMatch(/not exportable/)
        expect(outcome.reason).toMatch(/holds a private key but no certificate it belongs to/)
        // It was read: the advice for a secret that held nothing restorable.
        expect(outcome.reason).toMatch(
          /previous key unavailable: the backing secret held no usable previous material; keep key history \(/,
        )
      }),
  )

  it.live.skipIf(!opensslPresent && process.env.CI !== "true")(
    "a PFX backing secret whose key belongs to none of its certificates is said in the same words",
    () =>
      Effect.gen(function* () {
        const name = "pfx-key-of-none"
        const ca = yield* Effect.promise(() => makeCa())
        const served = yield* Effect.promise(() => makeMaterial(ca))
        const first = yield* deployTo(targetFor(emulator, VAULT, name), served)
        expect(first._tag, first.reason).toBe("Succeeded")
        // No encoder of the project pairs a key with a certificate it does not match (I4): OpenSSL
        // writes the key's PFX with another key's certificate as an extra certificate. The key goes
        // on its standard input (-nocerts keeps its key); only the certificate is a file.
        const stranger = yield* Effect.promise(() => makeMaterial(ca))
        const dir = mkdtempSync(join(tmpdir(), "pemleaf-"))
        let pfx: Buffer
        try {
          writeFileSync(join(dir, "cert.pem"), toPem("CERTIFICATE", served.leaf))
          const made = spawnSync(
            "openssl",
            ["pkcs12", "-export", "-nocerts", "-certfile", join(dir, "cert.pem"), "-passout", "pass:"],
            { input: toPem("PRIVATE KEY", Redacted.value(stranger.key)) },
          )
          expect(made.status, made.stderr.toString()).toBe(0)
          pfx = made.stdout
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
        emulator.faults.add({
          operation: "getSecret",
          vault: VAULT,
          name,
          times: "always",
          action: { kind: "setFields", fields: { value: pfx.toString("base64") } },
        })
        const failure = yield* secretFailure(name)
        emulator.faults.clear()
        expect(failure._tag).toBe("VaultMalformedAnswer")
        expect(failure.message).not.toMatch(/not exportable|holds no private key/)
        expect(failure.message).toMatch(
          /the PFX backing secret of pfx-key-of-none\/\S+ holds a private key but no certificate it belongs to/,
        )
        expect(failure.message).toMatch(/keep its key \(key history: kvdeploy deploy --previous-key\)/)
      }),
  )
})

/** `name` deployed once, its backing secret then answered as `value` (base64) on every read. */
/** `name` deployed once, its backing secret's answer then carrying `fields` on every read. */
const answeredWith = (
  name: string,
  fields: (served: CertificateMaterial) => Effect.Effect<Record<string, unknown>>,
) =>
  Effect.gen(function* () {
    const served = yield* Effect.promise(() => makeMaterial(root))
    const first = yield* deployTo(targetFor(emulator, VAULT, name), served)
    expect(first._tag, first.reason).toBe("Succeeded")
    emulator.faults.add({
      operation: "getSecret",
      vault: VAULT,
      name,
      times: "always",
      action: { kind: "setFields", fields: yield* fields(served) },
    })
  })

/** `name` deployed once, its backing secret then answered as `value` on every read. */
const servedAs = (name: string, value: (served: CertificateMaterial) => Effect.Effect<string>) =>
  answeredWith(name, (served) => Effect.map(value(served), (v) => ({ value: v })))

/**
 * A rollback over the backing secret: RollbackFailed with `words`, never "not exportable", and the
 * advice for a secret that was read but held nothing restorable (`unusable`), or for one that could
 * not be read (`unreadable`).
 */
const rollbackSays = (name: string, words: RegExp, advice: "unusable" | "unreadable" = "unusable") =>
  Effect.gen(function* () {
    failNextImport(name)
    const outcome = yield* deployTo(
      targetFor(emulator, VAULT, name),
      yield* Effect.promise(() => makeMaterial(root)),
    )
    expect(outcome._tag, outcome.reason).toBe("RollbackFailed")
    // The failed import is the one version the deploy added: no rollback was written.
    expect(versionsOf(name)).toHaveLength(2)
    expect(outcome.reason).not.toMatch(/not exportable/)
    expect(outcome.reason).toMatch(words)
    if (advice === "unusable")
      // It was read: the advice is the one for a secret that held nothing restorable, not for a read that failed.
      expect(outcome.reason).toMatch(
        /previous key unavailable: the backing secret held no usable previous material; keep key history \(/,
      )
    else {
      // Nothing of it was read: the advice is the one for a read that failed, never "held no usable".
      expect(outcome.reason).toMatch(
        /previous key unavailable: the previous version's backing secret could not be read, and not for a refused permission \(why, in brackets\): restore the previous certificate by hand, or keep key history \(/,
      )
      expect(outcome.reason).not.toMatch(/held no usable previous material/)
    }
  })

const notNoKey = (failure: { readonly _tag: string; readonly message: string }) => {
  expect(failure._tag).toBe("VaultMalformedAnswer")
  expect(failure.message).not.toMatch(/not exportable|holds no private key/)
  expect(failure.message).toMatch(/keep its key \(key history: kvdeploy deploy --previous-key\)/)
  // The codec's advice for a file of one's own (re-export it, check it with openssl) is left out.
  expect(failure.message).not.toMatch(/re-export|openssl|export it/)
}

describe("a PFX backing secret that cannot be restored from", () => {
  it.live("does not open with the blank password: said so, and that Key Vault serves none such", () =>
    Effect.gen(function* () {
      const name = "pfx-with-password"
      yield* servedAs(name, (served) =>
        Effect.gen(function* () {
          const codec = yield* PfxCodec
          const pfx = yield* codec.encode(served, {
            encoding: "modern",
            password: Redacted.make("not blank"),
          })
          return Buffer.from(pfx).toString("base64")
        }).pipe(Effect.orDie, Effect.provide(Pkcs12.layer)),
      )
      const failure = yield* secretFailure(name)
      notNoKey(failure)
      expect(failure.message).toMatch(
        /the PFX backing secret of pfx-with-password\/\S+ does not open with the blank password Key Vault re-protects backing secrets with \(the PFX's integrity check failed: the password is wrong, or the file was altered\), so the version cannot be restored from it\. Key Vault serves no such backing secret, so a proxy or service between this machine and the vault may have changed the answer/,
      )
      yield* rollbackSays(name, /does not open with the blank password/)
    }).pipe(Effect.ensuring(Effect.sync(() => emulator.faults.clear()))),
  )

  it.live("is no PFX: said so", () =>
    Effect.gen(function* () {
      const name = "pfx-garbled"
      yield* servedAs(name, () => Effect.succeed(Buffer.from("no PKCS#12 here").toString("base64")))
      const failure = yield* secretFailure(name)
      notNoKey(failure)
      expect(failure.message).toMatch(
        /the PFX backing secret of pfx-garbled\/\S+ cannot be read as a PFX \(the input is not a PKCS#12\/PFX file\), so the version/,
      )
      yield* rollbackSays(name, /cannot be read as a PFX/)
    }).pipe(Effect.ensuring(Effect.sync(() => emulator.faults.clear()))),
  )

  it.live.skipIf(!opensslPresent && process.env.CI !== "true")(
    "uses what the codec does not read (an MD5 MAC, by OpenSSL): kvdeploy's limit, said as such",
    () =>
      Effect.gen(function* () {
        const name = "pfx-md5-mac"
        yield* servedAs(name, (served) =>
          Effect.sync(() => {
            // The MAC is checked before anything else is read, so the certificate alone will do
            // (no key on disk): -nokeys.
            const dir = mkdtempSync(join(tmpdir(), "unrestorable-"))
            try {
              writeFileSync(join(dir, "cert.pem"), toPem("CERTIFICATE", served.leaf))
              const made = spawnSync("openssl", [
                "pkcs12",
                "-export",
                "-nokeys",
                "-in",
                join(dir, "cert.pem"),
                "-macalg",
                "md5",
                "-passout",
                "pass:",
              ])
              expect(made.status, made.stderr.toString()).toBe(0)
              return made.stdout.toString("base64")
            } finally {
              rmSync(dir, { recursive: true, force: true })
            }
          }),
        )
        const failure = yield* secretFailure(name)
        notNoKey(failure)
        expect(failure.message).toMatch(
          /the PFX backing secret of pfx-md5-mac\/\S+ uses what kvdeploy's PFX reader does not support \(the PFX's integrity MAC uses algorithm [0-9.]+, which is not supported \(SHA-1, SHA-2 MACs are\)\), so the version cannot be restored from it: restore/,
        )
        // Not an answer changed on its way: nothing is said of a proxy.
        expect(failure.message).not.toMatch(/proxy/)
        yield* rollbackSays(name, /uses what kvdeploy's PFX reader does not support/)
      }).pipe(Effect.ensuring(Effect.sync(() => emulator.faults.clear()))),
  )
})

describe("a backing secret read, or not read", () => {
  it.live(
    "a PEM secret whose key block is no key: what the codec found, without its fixes; held nothing usable",
    () =>
      Effect.gen(function* () {
        const name = "pem-key-garbled"
        yield* servedAs(name, (served) =>
          Effect.succeed(
            [
              toPem("CERTIFICATE", served.leaf),
              toPem("PRIVATE KEY", new TextEncoder().encode("no PKCS#8 key in here")),
            ].join(""),
          ),
        )
        const failure = yield* secretFailure(name)
        notNoKey(failure)
        expect(failure.message).toMatch(
          /the PEM backing secret of pem-key-garbled\/\S+ cannot be read \(key: [^()]+\), so the version cannot be restored from it\. Key Vault serves no such backing secret, so a proxy or service between this machine and the vault may have changed the answer: restore the version from a copy of its certificate and key, or keep its key/,
        )
        // The codec's advice for a key file of one's own is left out.
        expect(failure.message).not.toMatch(/supply the key|PKCS#8 DER|openssl pkcs8/)
        yield* rollbackSays(name, /the PEM backing secret of pem-key-garbled\/\S+ cannot be read \(key: /)
      }).pipe(Effect.ensuring(Effect.sync(() => emulator.faults.clear()))),
  )

  it.live(
    "an answer the SDK fails on (an id that is no text): nothing was read, so the rollback says it could not be read",
    () =>
      Effect.gen(function* () {
        const name = "secret-sdk-fails"
        yield* answeredWith(name, () => Effect.succeed({ id: 42 }))
        const failure = yield* secretFailure(name)
        expect(failure._tag).toBe("VaultMalformedAnswer")
        expect(failure.message).toMatch(/the SDK failed on it \(/)
        expect("unrestorable" in failure && failure.unrestorable).not.toBe(true)
        yield* rollbackSays(name, /the SDK failed on it \(/, "unreadable")
      }).pipe(Effect.ensuring(Effect.sync(() => emulator.faults.clear()))),
  )
})

describe("the codec's findings, without its advice", () => {
  it.live(
    "a PEM secret the codec refuses to make into a PFX for unreadable material: each problem's finding, not its fix",
    () =>
      Effect.gen(function* () {
        const name = "pem-encode-refused"
        yield* servedAs(name, (served) =>
          Effect.succeed(
            [toPem("CERTIFICATE", served.leaf), toPem("PRIVATE KEY", Redacted.value(served.key))].join(""),
          ),
        )
        const codec = yield* PfxCodec.pipe(Effect.provide(Pkcs12.layer))
        // The codec's own refusal of material whose leaf is no certificate: its fix says
        // "… or DER; check it with openssl …".
        const refusal = yield* Effect.flip(
          codec.encode(
            {
              leaf: new TextEncoder().encode("no certificate"),
              chain: [],
              key: Redacted.make(new Uint8Array()),
            },
            { encoding: "modern", password: Redacted.make("") },
          ),
        )
        expect(refusal.finding).toMatch(
          /unreadable material: leaf: is not a readable X\.509 certificate; key: /,
        )
        expect(refusal.fix).toMatch(/^leaf: supply the certificate as PEM .* or DER; check it with openssl/)
        // The vault's adapter with that codec, refusing this secret's PFX so (the PEM inspects well).
        const failure = yield* Effect.gen(function* () {
          const vault = yield* Vault
          const latest = yield* vault.getLatest(name)
          return yield* Effect.flip(vault.getVersionSecret(name, latest.versionId))
        }).pipe(
          Effect.provide(
            vaultLayer(emulator, targetFor(emulator, VAULT, name), credential).pipe(
              Layer.provide(
                Layer.mergeAll(
                  RecordingMetrics.layer,
                  Layer.succeed(PfxCodec, { ...codec, encode: () => Effect.fail(refusal) }),
                ),
              ),
            ),
          ),
        )
        notNoKey(failure)
        expect(failure.message).toMatch(
          /the PEM backing secret of pem-encode-refused\/\S+ cannot be made into a PFX \(unreadable material: leaf: is not a readable X\.509 certificate[^()]*\), so the version cannot be restored from it\. Key Vault serves no such backing secret/,
        )
        expect(failure.message).not.toMatch(/supply the certificate|or DER/)
      }).pipe(Effect.ensuring(Effect.sync(() => emulator.faults.clear()))),
  )

  it.live(
    "a PFX backing secret over the size the codec reads: the whole finding, the limit included, without the fix",
    () =>
      Effect.gen(function* () {
        const name = "pfx-too-large"
        // One byte over the codec's limit (1 MiB): refused for its size before anything is parsed.
        const size = 1024 * 1024 + 1
        yield* servedAs(name, () => Effect.succeed(Buffer.alloc(size, 0x30).toString("base64")))
        const failure = yield* secretFailure(name)
        notNoKey(failure)
        // The codec's finding holds a "; " of its own ("…bytes; kvdeploy reads at most …"): all of
        // it is said, and the fix for a file of one's own ("check that this is the right file") is not.
        expect(failure.message).toMatch(
          /the PFX backing secret of pfx-too-large\/\S+ cannot be read as a PFX \(the PFX is 1048577 bytes; kvdeploy reads at most 1048576 \(Key Vault accepts 25 KB\)\), so the version cannot be restored from it\. Key Vault serves no such backing secret/,
        )
        expect(failure.message).not.toMatch(/right file/)
        yield* rollbackSays(
          name,
          /\(the PFX is 1048577 bytes; kvdeploy reads at most 1048576 \(Key Vault accepts 25 KB\)\)/,
        )
      }).pipe(Effect.ensuring(Effect.sync(() => emulator.faults.clear()))),
  )
})
