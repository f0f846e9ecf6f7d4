/**
 * A PFX backing secret that cannot be restored from, for another reason than a key that was not
 * exported, over the real SDKs against the emulator: one that does not open with the blank
 * password Key Vault re-protects backing secrets with, one that is no PFX, one that uses what the
 * codec does not read. None is "no private key": the rollback and doctor would say the key is not
 * exportable, which is false (an exportable key is what kvdeploy imports). Each is an unusable
 * answer, said for what it is.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { TokenCredential } from "@azure/core-auth"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import {
  type CertificateMaterial,
  type DeployOutcome,
  PfxCodec,
  type TargetConfig,
  Vault,
} from "@kvdeploy/core"
import type { Emulator } from "@kvdeploy/kv-emulator"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import {
  credentialFor,
  deployOnce,
  fastReads,
  startEmulator,
  targetFor,
  worldLayer,
} from "./support/emulator.js"
import { type Issuer, makeCa, makeMaterial, toPem } from "./support/pki.js"

const VAULT = "unrestorable"
const opensslPresent = spawnSync("openssl", ["version"], { stdio: "ignore" }).status === 0

let emulator: Emulator
let ca: Issuer
let credential: TokenCredential

beforeAll(async () => {
  emulator = await startEmulator({ vaults: [VAULT] })
  ca = await makeCa("CN=kvdeploy unrestorable CA")
  credential = await Effect.runPromise(credentialFor(emulator, targetFor(emulator, VAULT, "any")))
})
afterAll(() => emulator?.stop())

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

/** `name` deployed once, its backing secret then answered as `value` (base64) on every read. */
const servedAs = (name: string, value: (served: CertificateMaterial) => Effect.Effect<string>) =>
  Effect.gen(function* () {
    const served = yield* Effect.promise(() => makeMaterial(ca))
    const first = yield* deployTo(targetFor(emulator, VAULT, name), served)
    expect(first._tag, first.reason).toBe("Succeeded")
    emulator.faults.add({
      operation: "getSecret",
      vault: VAULT,
      name,
      times: "always",
      action: { kind: "setFields", fields: { value: yield* value(served) } },
    })
  })

/** A rollback over the backing secret: RollbackFailed with `words`, never "not exportable". */
const rollbackSays = (name: string, words: RegExp) =>
  Effect.gen(function* () {
    // The new version is disabled once written: verify finds it wrong, and the deploy rolls back.
    emulator.faults.add({
      operation: "import",
      vault: VAULT,
      name,
      times: 1,
      action: { kind: "disableAfterCommit" },
    })
    const outcome = yield* deployTo(
      targetFor(emulator, VAULT, name),
      yield* Effect.promise(() => makeMaterial(ca)),
    )
    expect(outcome._tag, outcome.reason).toBe("RollbackFailed")
    // The failed import is the one version the deploy added: no rollback was written.
    expect(emulator.state.versions(VAULT, name)).toHaveLength(2)
    expect(outcome.reason).not.toMatch(/not exportable/)
    expect(outcome.reason).toMatch(words)
  })

const notNoKey = (failure: { readonly _tag: string; readonly message: string }) => {
  expect(failure._tag).toBe("VaultMalformedAnswer")
  expect(failure.message).not.toMatch(/not exportable|holds no private key/)
  expect(failure.message).toMatch(/keep its key \(key history: kvdeploy deploy --previous-key\)/)
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
        /the PFX backing secret of pfx-with-password\/\S+ does not open with the blank password Key Vault re-protects backing secrets with \(.+\), so the version cannot be restored from it\. Key Vault serves no such backing secret, so a proxy or service between this machine and the vault may have changed the answer/,
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
        /the PFX backing secret of pfx-garbled\/\S+ cannot be read as a PFX \(the input is not a PKCS#12\/PFX file/,
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
          /the PFX backing secret of pfx-md5-mac\/\S+ uses what kvdeploy's PFX reader does not support \(the PFX's integrity MAC uses algorithm [0-9.]+, which is not supported/,
        )
        // Not an answer changed on its way: nothing is said of a proxy.
        expect(failure.message).not.toMatch(/proxy/)
        yield* rollbackSays(name, /uses what kvdeploy's PFX reader does not support/)
      }).pipe(Effect.ensuring(Effect.sync(() => emulator.faults.clear()))),
  )
})
