/**
 * The port's calls one by one against @kvdeploy/kv-emulator, with the real
 * SDKs and the real pkcs12 codec: what each answers, and what the emulator's
 * RBAC refusals become.
 */
import { spawnSync } from "node:child_process"
import type { TokenCredential } from "@azure/core-auth"
import { CertificateClient } from "@azure/keyvault-certificates"
import { SecretClient } from "@azure/keyvault-secrets"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import {
  type CertificateMaterial,
  type ImportRequest,
  PfxCodec,
  type TargetConfig,
  Vault,
  type VaultVersion,
} from "@kvdeploy/core"
import { MetricsRecorder } from "@kvdeploy/core/test"
import type { Emulator } from "@kvdeploy/kv-emulator"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { credentialFor, startEmulator, targetFor, worldLayer } from "./support/emulator.js"
import { type Issuer, makeCa, makeMaterial, x5tOf } from "./support/pki.js"

const VAULT = "ports"
const opensslPresent = spawnSync("openssl", ["version"], { stdio: "ignore" }).status === 0
if (!opensslPresent && process.env.CI !== "true")
  console.warn("\n!!! SKIPPING the certificate-only PFX backing secret: openssl is not installed\n")
let emulator: Emulator
let ca: Issuer
let rsaCa: Issuer
let credential: TokenCredential
let target: TargetConfig

beforeAll(async () => {
  emulator = await startEmulator({ vaults: [VAULT] })
  ca = await makeCa()
  rsaCa = await makeCa("CN=kvdeploy azure-kv Test RSA CA", "RSA-2048")
  target = targetFor(emulator, VAULT, "any")
  credential = await Effect.runPromise(credentialFor(emulator, target))
})
afterAll(() => emulator?.stop())

const run = <A, E>(effect: Effect.Effect<A, E, Vault | PfxCodec | MetricsRecorder>) =>
  effect.pipe(Effect.provide(worldLayer(emulator, target, credential)))

const importMaterial = (
  name: string,
  material: CertificateMaterial,
  exportable = true,
  stated: Pick<ImportRequest, "keyFacts" | "leaf"> = {},
) =>
  Effect.gen(function* () {
    const codec = yield* PfxCodec
    const vault = yield* Vault
    const pfx = yield* codec.encode(material, { encoding: "modern", password: Redacted.make("") })
    return yield* vault.importVersion({
      name,
      pfx,
      password: Redacted.make(""),
      tags: { t: name },
      exportable,
      ...stated,
    })
  })

describe("Vault over the emulator", () => {
  it.live("getLatest, getVersion and listVersions answer the versions as the vault keeps them", () =>
    run(
      Effect.gen(function* () {
        const vault = yield* Vault
        const materials = [
          yield* Effect.promise(() => makeMaterial(ca)),
          yield* Effect.promise(() => makeMaterial(rsaCa, "RSA-2048")),
        ]
        const imported: Array<VaultVersion> = []
        for (const m of materials) imported.push(yield* importMaterial("versions-app", m))
        const before = Date.now()
        const latest = yield* vault.getLatest("versions-app")
        expect(latest.versionId).toBe(imported[1]?.versionId)
        // When the vault answered, by its clock (the Date header, whole seconds): the emulator's is this machine's.
        expect(latest.answeredAtMs).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000)
        expect(latest.answeredAtMs).toBeLessThanOrEqual(Date.now())
        expect(latest.x5t).toBe(yield* Effect.promise(() => x5tOf(materials[1]?.leaf ?? new Uint8Array())))
        expect(latest.serialHex).toMatch(/^[0-9a-f]+$/)
        expect(latest.tags).toEqual({ t: "versions-app" })
        expect(latest.enabled).toBe(true)
        expect(latest.expiresAt).toBeInstanceOf(Date)
        const first = yield* vault.getVersion("versions-app", imported[0]?.versionId ?? "")
        expect(first.x5t).toBe(yield* Effect.promise(() => x5tOf(materials[0]?.leaf ?? new Uint8Array())))
        // The serial read from the vault's DER equals the pkcs12 codec's canonical serial.
        const codec = yield* PfxCodec
        const facts = yield* codec.inspect(materials[0] as CertificateMaterial)
        expect(first.serialHex).toBe(facts.leaf.serialHex)
        const listed = yield* vault.listVersions("versions-app")
        // Every version; by creation second, newest first (Key Vault orders nothing within a second).
        expect(listed.map((v) => v.versionId).sort()).toEqual(imported.map((v) => v.versionId).sort())
        const times = listed.map((v) => v.createdAt.getTime())
        expect(times).toEqual([...times].sort((a, b) => b - a))
        expect(listed.find((v) => v.versionId === imported[1]?.versionId)?.createdAt.getTime()).toBe(
          imported[1]?.createdAt.getTime(),
        )
        const missing = yield* Effect.flip(vault.getLatest("never-imported"))
        expect(missing._tag).toBe("VaultNotFound")
        const recorder = yield* MetricsRecorder
        expect(recorder.count("vaultRequest", "getLatest:not_found")).toBe(1)
        expect(recorder.count("vaultRequest", "importVersion:ok")).toBe(2)
      }),
    ),
  )

  it.live("an import that states its leaf answers the same serials as one that does not", () =>
    run(
      Effect.gen(function* () {
        const vault = yield* Vault
        const codec = yield* PfxCodec
        const stated = yield* Effect.promise(() => makeMaterial(ca))
        const plain = yield* Effect.promise(() => makeMaterial(rsaCa, "RSA-2048"))
        const facts = yield* codec.inspect(stated)
        const imported = yield* importMaterial("leaf-app", stated, true, {
          keyFacts: facts.key,
          leaf: facts.leaf,
        })
        // The import's answer and the verify read carry the stated leaf's serial as a plain field:
        // known from the import, not parsed (a serial still to be parsed is a getter until read).
        const verified = yield* vault.getLatest("leaf-app")
        for (const read of [imported, verified])
          expect(Object.getOwnPropertyDescriptor(read, "serialHex")).toMatchObject({
            value: facts.leaf.serialHex,
          })
        // A later version without a stated leaf is read from the vault's DER.
        const second = yield* importMaterial("leaf-app", plain)
        const plainFacts = yield* codec.inspect(plain)
        expect(second.serialHex).toBe(plainFacts.leaf.serialHex)
        expect((yield* vault.getLatest("leaf-app")).serialHex).toBe(plainFacts.leaf.serialHex)
        expect((yield* vault.getVersion("leaf-app", imported.versionId)).serialHex).toBe(facts.leaf.serialHex)
      }),
    ),
  )

  it.live("a stated leaf that is not the PFX's own never lends its serial to what the vault serves", () =>
    run(
      Effect.gen(function* () {
        const vault = yield* Vault
        const codec = yield* PfxCodec
        const stated = yield* Effect.promise(() => makeMaterial(ca))
        const sent = yield* Effect.promise(() => makeMaterial(ca))
        const statedFacts = yield* codec.inspect(stated)
        const sentFacts = yield* codec.inspect(sent)
        expect(sentFacts.leaf.serialHex).not.toBe("5747ed")
        // The import states another certificate's DER with a serial no parse would give.
        const imported = yield* importMaterial("wrong-leaf-app", sent, true, {
          keyFacts: sentFacts.key,
          leaf: { ...statedFacts.leaf, serialHex: "5747ed" },
        })
        expect(imported.serialHex).toBe(sentFacts.leaf.serialHex)
        expect((yield* vault.getLatest("wrong-leaf-app")).serialHex).toBe(sentFacts.leaf.serialHex)
      }),
    ),
  )

  it.live(
    "getVersionSecret answers the PFX with the whole chain; a non-exportable key gives VaultNoPrivateKey",
    () =>
      run(
        Effect.gen(function* () {
          const vault = yield* Vault
          const codec = yield* PfxCodec
          const m = yield* Effect.promise(() => makeMaterial(ca))
          const exported = yield* importMaterial("secret-app", m)
          const secret = yield* vault.getVersionSecret("secret-app", exported.versionId)
          const decoded = yield* codec.decode(secret.pfx, secret.password)
          expect(Buffer.from(decoded.leaf).equals(Buffer.from(m.leaf))).toBe(true)
          expect(decoded.chain.map((c) => Buffer.from(c).toString("hex"))).toEqual(
            m.chain.map((c) => Buffer.from(c).toString("hex")),
          )
          const inspected = yield* codec.inspect(decoded)
          expect(inspected.keyMatchesLeaf).toBe(true)
          // @azure/keyvault-secrets 4.12 reads at api-version 2026-04-01 (4.10: 7.6), the secret as it is held.
          const read = emulator.requests.entries({ vault: VAULT, operation: "getSecret", status: 200 }).at(-1)
          expect(read?.path).toBe(`/secrets/secret-app/${exported.versionId}`)
          const query = new URLSearchParams(read?.query)
          expect(query.get("api-version")).toBe("2026-04-01")
          expect(query.has("outContentType")).toBe(false)

          const sealed = yield* importMaterial(
            "sealed-app",
            yield* Effect.promise(() => makeMaterial(ca)),
            false,
          )
          expect(emulator.state.versions(VAULT, "sealed-app")?.at(-1)?.exportable).toBe(false)
          const error = yield* Effect.flip(vault.getVersionSecret("sealed-app", sealed.versionId))
          expect(error._tag).toBe("VaultNoPrivateKey")
        }),
      ),
  )

  // Key Vault serves a non-exportable key's PKCS#12 backing secret as a PFX holding only the
  // certificates; the emulator serves PEM certificates instead (a known deviation), so the test
  // above reaches the PEM path only. Here the emulator's answer carries such a PFX (OpenSSL's
  // -nokeys, blank password), as Key Vault's would.
  describe.skipIf(!opensslPresent && process.env.CI !== "true")("a backing secret that is a PFX", () => {
    it.live(
      "holding only the certificates (a non-exportable key, as Key Vault serves it): VaultNoPrivateKey, saying the key is not exportable",
      () =>
        run(
          Effect.gen(function* () {
            const vault = yield* Vault
            const m = yield* Effect.promise(() => makeMaterial(ca))
            const sealed = yield* importMaterial("sealed-pfx-app", m, false)
            const pem = [m.leaf, ...m.chain]
              .map(
                (der) =>
                  `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString("base64")}\n-----END CERTIFICATE-----\n`,
              )
              .join("")
            const made = spawnSync("openssl", ["pkcs12", "-export", "-nokeys", "-passout", "pass:"], {
              input: pem,
            })
            expect(made.status, made.stderr?.toString()).toBe(0)
            const certsOnly = new Uint8Array(made.stdout)
            // The PFX does hold the certificates and no key: the codec reads it as no-key.
            const codec = yield* PfxCodec
            expect((yield* Effect.flip(codec.decode(certsOnly, Redacted.make("")))).reason).toBe("no-key")
            emulator.faults.add({
              operation: "getSecret",
              vault: VAULT,
              name: "sealed-pfx-app",
              times: 1,
              action: {
                kind: "setFields",
                fields: {
                  value: Buffer.from(certsOnly).toString("base64"),
                  contentType: "application/x-pkcs12",
                },
              },
            })
            const error = yield* Effect.flip(vault.getVersionSecret("sealed-pfx-app", sealed.versionId))
            expect(error._tag).toBe("VaultNoPrivateKey")
            expect(error.message).toContain(
              `the backing secret of sealed-pfx-app/${sealed.versionId} holds no private key (the key is not exportable)`,
            )
          }),
        ),
    )
  })

  it.live(
    "RBAC refusals name what to grant: import needs Key Vault Certificates Officer, the backing secret secrets/get",
    () =>
      run(
        Effect.gen(function* () {
          const vault = yield* Vault
          const id = emulator.clientSecret.clientId
          const m = yield* Effect.promise(() => makeMaterial(ca))
          const v = yield* importMaterial("rbac-app", m)
          emulator.rbac.deny(id, ["certificates/import", "secrets/get"])
          const importError = yield* Effect.flip(importMaterial("rbac-app", m))
          const secretError = yield* Effect.flip(vault.getVersionSecret("rbac-app", v.versionId))
          emulator.rbac.reset()
          expect(importError._tag).toBe("VaultForbidden")
          expect(importError.message).toContain("Key Vault Certificates Officer")
          expect(importError.message).toContain("Microsoft.KeyVault/vaults/certificates/import/action")
          expect(secretError._tag).toBe("VaultForbidden")
          if (secretError._tag === "VaultForbidden") expect(secretError.permission).toBe("secrets/get")
          expect(secretError.message).toContain("Microsoft.KeyVault/vaults/secrets/getSecret/action")
        }),
      ),
  )

  it.live(
    "a role scoped to the certificate alone: the backing secret's refusal advises the secret's scope (…/secrets/NAME); scoped to both, the secret is read",
    () =>
      run(
        Effect.gen(function* () {
          const vault = yield* Vault
          const id = emulator.clientSecret.clientId
          const name = "scoped-secret-app"
          const v = yield* importMaterial(name, yield* Effect.promise(() => makeMaterial(ca)))
          emulator.rbac.scopeTo(id, [`certificates/${name}`])
          expect((yield* vault.getLatest(name)).versionId).toBe(v.versionId)
          const refused = yield* Effect.flip(vault.getVersionSecret(name, v.versionId))
          expect(refused._tag).toBe("VaultForbidden")
          if (refused._tag !== "VaultForbidden") return
          expect(refused.refusal).toBe("permission")
          expect(refused.permission).toBe("secrets/get")
          expect(refused.message).toContain(
            "scoped to the certificate's backing secret (…/vaults/VAULT/secrets/NAME) or to the vault",
          )
          // Key Vault's own words, kept: the resource refused is the secret, not the certificate.
          expect(refused.message).toContain(`/vaults/${VAULT}/secrets/${name}'`)
          expect(refused.message).not.toContain(`/certificates/${name}'`)
          emulator.rbac.scopeTo(id, [`certificates/${name}`, `secrets/${name}`])
          const secret = yield* vault.getVersionSecret(name, v.versionId)
          expect(secret.pfx.length).toBeGreaterThan(0)
        }).pipe(Effect.ensuring(Effect.sync(() => emulator.rbac.reset()))),
      ),
  )

  it.live(
    "getDeleted and recoverDeleted; importing over a soft-deleted name is VaultConflictSoftDeleted",
    () =>
      run(
        Effect.gen(function* () {
          const vault = yield* Vault
          const m = yield* Effect.promise(() => makeMaterial(ca))
          const v = yield* importMaterial("gone-app", m)
          const sdk = new CertificateClient(emulator.vault(VAULT).url, credential, {
            tlsOptions: { ca: emulator.caPem },
            disableChallengeResourceVerification: true,
          })
          yield* Effect.promise(async () =>
            (await sdk.beginDeleteCertificate("gone-app", { intervalInMs: 20 })).pollUntilDone(),
          )
          const conflict = yield* Effect.flip(importMaterial("gone-app", m))
          expect(conflict._tag).toBe("VaultConflictSoftDeleted")
          const deleted = yield* vault.getDeleted("gone-app")
          expect(deleted.recoveryId).toContain("/deletedcertificates/gone-app")
          expect(deleted.deletedAt).toBeInstanceOf(Date)
          const recovered = yield* vault.recoverDeleted("gone-app")
          expect(recovered.version.versionId).toBe(v.versionId)
          // The vault accepted this call's recover POST.
          expect(recovered.sent).toBe(true)
          expect(emulator.state.isDeleted(VAULT, "gone-app")).toBe(false)
          const notDeleted = yield* Effect.flip(vault.getDeleted("gone-app"))
          expect(notDeleted._tag).toBe("VaultNotFound")
        }),
      ),
  )

  it.live(
    "recoverDeleted of a certificate another writer recovered first answers it with no recovery sent (the SDK's poller reads first)",
    () =>
      run(
        Effect.gen(function* () {
          const vault = yield* Vault
          const name = "raced-recover-app"
          const v = yield* importMaterial(name, yield* Effect.promise(() => makeMaterial(ca)))
          const other = new CertificateClient(emulator.vault(VAULT).url, credential, {
            tlsOptions: { ca: emulator.caPem },
            disableChallengeResourceVerification: true,
          })
          yield* Effect.promise(async () => {
            await (await other.beginDeleteCertificate(name, { intervalInMs: 20 })).pollUntilDone()
            await (await other.beginRecoverDeletedCertificate(name, { intervalInMs: 20 })).pollUntilDone()
          })
          const since = emulator.requests.mark()
          const recovered = yield* vault.recoverDeleted(name)
          expect(recovered.version.versionId).toBe(v.versionId)
          expect(recovered.sent).toBe(false)
          const sent = emulator.requests.entries({ vault: VAULT, since }).filter((e) => !e.challenge)
          expect(sent.map((e) => `${e.operation} ${e.status}`)).toEqual(["getLatest 200"])
          expect((yield* MetricsRecorder).count("vaultRequest", "recoverDeleted:ok")).toBe(1)
        }),
      ),
  )
})

describe("what the operator reads: metrics, soft-deleted facts, conflicts", () => {
  const sdkClients = () => {
    const options = { tlsOptions: { ca: emulator.caPem }, disableChallengeResourceVerification: true }
    return {
      certificates: new CertificateClient(emulator.vault(VAULT).url, credential, options),
      secrets: new SecretClient(emulator.vault(VAULT).url, credential, options),
    }
  }
  const softDelete = (name: string) =>
    Effect.promise(async () =>
      (await sdkClients().certificates.beginDeleteCertificate(name, { intervalInMs: 20 })).pollUntilDone(),
    )

  it.live("a backing secret read is counted, and a 429 on it is counted as a throttle", () =>
    run(
      Effect.gen(function* () {
        const vault = yield* Vault
        const v = yield* importMaterial("counted-secret-app", yield* Effect.promise(() => makeMaterial(ca)))
        emulator.faults.add({
          operation: "getSecret",
          vault: VAULT,
          name: "counted-secret-app",
          action: { kind: "throttle", retryAfterSeconds: 0 },
        })
        yield* vault.getVersionSecret("counted-secret-app", v.versionId)
        // Give the throttle observer's fiber a turn.
        yield* Effect.sleep("10 millis")
        const recorder = yield* MetricsRecorder
        expect(recorder.count("vaultRequest", "getVersionSecret:ok")).toBe(1)
        expect(recorder.count("vaultThrottled")).toBe(1)
      }),
    ),
  )

  it.live(
    "getDeleted answers when it was deleted, when it will be purged and what a recovery brings back; it is counted",
    () =>
      run(
        Effect.gen(function* () {
          const vault = yield* Vault
          const m = yield* Effect.promise(() => makeMaterial(ca))
          const v = yield* importMaterial("deleted-facts-app", m)
          const before = Date.now()
          yield* softDelete("deleted-facts-app")
          const deleted = yield* vault.getDeleted("deleted-facts-app")
          // Key Vault states times in whole seconds.
          const deletedAt = deleted.deletedAt?.getTime() ?? Number.NaN
          expect(deletedAt).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000)
          expect(deletedAt).toBeLessThanOrEqual(Date.now())
          expect(deleted.scheduledPurgeAt).toBeInstanceOf(Date)
          expect(deleted.scheduledPurgeAt?.getTime() ?? 0).toBeGreaterThan(deletedAt + 86_400_000)
          expect(deleted.latest).toMatchObject({
            versionId: v.versionId,
            x5t: yield* Effect.promise(() => x5tOf(m.leaf)),
            tags: { t: "deleted-facts-app" },
          })
          const recorder = yield* MetricsRecorder
          expect(recorder.count("vaultRequest", "getDeleted:ok")).toBe(1)
          // An answer without the delete time: none made up (it was 1970-01-01, which a first deploy
          // would have taken for a delete long before its first read).
          emulator.faults.add({
            operation: "getDeleted",
            name: "deleted-facts-app",
            action: { kind: "omitFields", fields: ["deletedDate"] },
          })
          const incomplete = yield* vault.getDeleted("deleted-facts-app")
          expect(incomplete.deletedAt).toBeUndefined()
          expect(incomplete.latest?.versionId).toBe(v.versionId)
          expect(incomplete.scheduledPurgeAt).toBeInstanceOf(Date)
        }),
      ),
  )

  it.live("listVersions answers newest first, whatever order the vault's list comes in", () =>
    run(
      Effect.gen(function* () {
        const vault = yield* Vault
        const imported: Array<VaultVersion> = []
        for (let i = 0; i < 3; i++)
          imported.push(yield* importMaterial("order-app", yield* Effect.promise(() => makeMaterial(ca))))
        // Key Vault keeps whole seconds and orders nothing: the list's entries get creation times
        // out of their order (the versions were made within a second, which the sort cannot tell apart).
        emulator.faults.add({
          operation: "versions",
          vault: VAULT,
          name: "order-app",
          times: 1,
          action: {
            kind: "setFields",
            fields: {
              "value.0.attributes.created": 1_800_000_100,
              "value.1.attributes.created": 1_800_000_300,
              "value.2.attributes.created": 1_800_000_200,
            },
          },
        })
        const listed = yield* vault.listVersions("order-app")
        expect(listed.map((v) => v.createdAt.getTime() / 1000)).toEqual([
          1_800_000_300, 1_800_000_200, 1_800_000_100,
        ])
        expect(listed.map((v) => v.versionId).sort()).toEqual(imported.map((v) => v.versionId).sort())
      }),
    ),
  )

  it.live(
    "a recovery whose answer cannot be read may have taken effect: VaultAmbiguous, not unavailable",
    () =>
      run(
        Effect.gen(function* () {
          const vault = yield* Vault
          yield* importMaterial("garbled-recover-app", yield* Effect.promise(() => makeMaterial(ca)))
          yield* softDelete("garbled-recover-app")
          emulator.faults.add({
            operation: "recover",
            vault: VAULT,
            name: "garbled-recover-app",
            action: { kind: "garbleAnswer" },
          })
          const error = yield* Effect.flip(vault.recoverDeleted("garbled-recover-app"))
          expect(error._tag).toBe("VaultAmbiguous")
          expect(error.message).toContain("the recovery may have taken effect")
          expect(emulator.state.isDeleted(VAULT, "garbled-recover-app")).toBe(false)
        }),
      ),
  )

  it.live(
    "a recovery whose answer parses but lacks a fact (its creation time) was done: VaultAmbiguous, not a malformed read",
    () =>
      run(
        Effect.gen(function* () {
          const vault = yield* Vault
          yield* importMaterial("incomplete-recover-app", yield* Effect.promise(() => makeMaterial(ca)))
          yield* softDelete("incomplete-recover-app")
          // The SDK's recovery poller ends with a read of the certificate: that answer is the port's.
          emulator.faults.add({
            operation: "getLatest",
            vault: VAULT,
            name: "incomplete-recover-app",
            times: "always",
            action: { kind: "omitFields", fields: ["attributes.created"] },
          })
          const error = yield* Effect.flip(vault.recoverDeleted("incomplete-recover-app"))
          // A VaultMalformedAnswer would make core report the recovery as not done and read nothing back.
          expect(error._tag).toBe("VaultAmbiguous")
          expect(error.message).toContain(
            "the vault answered that it was done, but its answer cannot be used",
          )
          expect(emulator.state.isDeleted(VAULT, "incomplete-recover-app")).toBe(false)
        }),
      ),
  )

  it.live(
    "a recovery the vault accepted whose read-back then fails (throttled, refused) may have taken effect: VaultAmbiguous, not a definite failure",
    () =>
      run(
        Effect.gen(function* () {
          const vault = yield* Vault
          const cases = [
            // Through the SDK's retries (Retry-After 0): once a VaultThrottled, "did not take effect".
            ["throttled", { kind: "throttle", retryAfterSeconds: 0 }],
            // A refusal of the read (a proxy's, say): once a VaultRequestRejected.
            ["refused", { kind: "status", status: 400, code: "BadParameter", message: "refused by a proxy" }],
          ] as const
          for (const [words, action] of cases) {
            const name = `accepted-recover-${words}-app`
            yield* importMaterial(name, yield* Effect.promise(() => makeMaterial(ca)))
            yield* softDelete(name)
            // The SDK's poller reads the certificate first (404), sends the recovery, then reads it
            // until it is served: every read after the recovery fails.
            const id = emulator.faults.add({
              operation: "getLatest",
              vault: VAULT,
              name,
              skip: 1,
              times: "always",
              action,
            })
            const mark = emulator.requests.mark()
            const error = yield* Effect.flip(vault.recoverDeleted(name)).pipe(
              Effect.ensuring(Effect.sync(() => emulator.faults.remove(id))),
            )
            expect(error._tag, words).toBe("VaultAmbiguous")
            expect(error.message).toContain("the vault accepted the recovery (it answered 200)")
            expect(error.message).toContain(`reading the recovered certificate then failed (${words}: `)
            expect(
              emulator.requests
                .entries({ vault: VAULT, since: mark })
                .filter((r) => r.operation === "recover")
                .map((r) => r.status),
            ).toEqual([200])
            expect(emulator.state.isDeleted(VAULT, name)).toBe(false)
          }
        }),
      ),
  )

  it.live(
    "a recovery the vault did not accept (the recover request throttled) stays a definite failure",
    () =>
      run(
        Effect.gen(function* () {
          const vault = yield* Vault
          const name = "throttled-recover-app"
          yield* importMaterial(name, yield* Effect.promise(() => makeMaterial(ca)))
          yield* softDelete(name)
          const id = emulator.faults.add({
            operation: "recover",
            vault: VAULT,
            name,
            times: "always",
            action: { kind: "throttle", retryAfterSeconds: 0 },
          })
          const error = yield* Effect.flip(vault.recoverDeleted(name)).pipe(
            Effect.ensuring(Effect.sync(() => emulator.faults.remove(id))),
          )
          expect(error._tag).toBe("VaultThrottled")
          expect(emulator.state.isDeleted(VAULT, name)).toBe(true)
        }),
      ),
  )

  it.live(
    "a name held by a plain secret: the import is refused as a conflict, not as soft-deleted (nothing to recover)",
    () =>
      run(
        Effect.gen(function* () {
          yield* Effect.promise(() => sdkClients().secrets.setSecret("plain-secret-app", "not a certificate"))
          const error = yield* Effect.flip(
            importMaterial("plain-secret-app", yield* Effect.promise(() => makeMaterial(ca))),
          )
          expect(error._tag).toBe("VaultRequestRejected")
          if (error._tag === "VaultRequestRejected") expect(error.code).toBe("Conflict")
          expect(error.message).toContain("There is already a secret with the name")
        }),
      ),
  )
})

describe("a later page and a 429 that outlasts the SDK's retries", () => {
  it.live(
    "a version list's later page is sent with the adapter's request timeout (the SDK sends it with none)",
    () =>
      Effect.gen(function* () {
        const name = "many-versions-app"
        // 27 versions: two pages of Key Vault's 25.
        for (let i = 0; i < 27; i++) yield* Effect.promise(() => emulator.state.foreignImport(VAULT, name))
        const vault = yield* Vault
        // The first page answers, the second is held far past the timeout: only the adapter ends it.
        const holdMs = 20_000
        const id = emulator.faults.add({
          operation: "versions",
          vault: VAULT,
          name,
          skip: 1,
          action: { kind: "hold", timeoutMs: holdMs },
        })
        const started = Date.now()
        const error = yield* Effect.flip(vault.listVersions(name)).pipe(
          Effect.ensuring(Effect.sync(() => emulator.faults.remove(id))),
        )
        const elapsed = Date.now() - started
        expect(error._tag).toBe("VaultUnavailable")
        expect(error.operation).toBe("listVersions")
        expect(error.message).toContain("no answer within 0.3 s, the per-request timeout")
        // Ended by the 0.3 s timeout, not by the hold's end (a behaviour check, not a benchmark).
        expect(elapsed).toBeLessThan(holdMs / 2)
      }).pipe(
        Effect.provide(
          worldLayer(emulator, target, credential, { requestTimeoutMs: 300, retry: { maxRetries: 0 } }),
        ),
      ),
  )

  /** A read answered `status` with `Retry-After: seconds` every time: the error, the requests sent, the time taken. */
  const readAnswered = (name: string, status: 429 | 503, seconds: number) =>
    Effect.gen(function* () {
      const vault = yield* Vault
      const id = emulator.faults.add({
        operation: "getLatest",
        vault: VAULT,
        name,
        times: "always",
        action: { kind: "status", status, headers: { "Retry-After": String(seconds) } },
      })
      const since = emulator.requests.mark()
      const started = performance.now()
      const error = yield* Effect.flip(vault.getLatest(name)).pipe(
        Effect.ensuring(Effect.sync(() => emulator.faults.remove(id))),
      )
      const requests = emulator.requests
        .entries({ vault: VAULT, since })
        .filter((e) => !e.challenge && e.operation === "getLatest").length
      return { error, requests, ms: performance.now() - started }
    })

  it.live(
    "a Retry-After beyond the bound (an hour): a 429 fails at once, not retried, saying the wait it asked for; a 503 is retried on backoff",
    () =>
      Effect.gen(function* () {
        const throttled = yield* readAnswered("hour-429-app", 429, 3600)
        expect(throttled.error._tag).toBe("VaultThrottled")
        if (throttled.error._tag !== "VaultThrottled") return
        expect(throttled.requests).toBe(1)
        expect(throttled.ms).toBeLessThan(30_000)
        expect(throttled.error.retryAfterMs).toBe(3_600_000)
        expect(throttled.error.message).toContain(
          "asked to wait 3600 s (Retry-After), longer than kvdeploy lets one request wait, so it was not retried",
        )
        expect(throttled.error.message).toContain("Wait 3600 s and run again")
        // Marked as retried: the deploy program's quick read retries leave it too (the vault asked for an hour).
        expect(throttled.error.retried).toBe(true)
        const unavailable = yield* readAnswered("hour-503-app", 503, 3600)
        expect(unavailable.error._tag).toBe("VaultUnavailable")
        expect(unavailable.requests).toBe(3)
        expect(unavailable.ms).toBeLessThan(30_000)
      }).pipe(
        Effect.provide(
          worldLayer(emulator, target, credential, {
            retry: { maxRetries: 2, retryDelayInMs: 10, maxRetryDelayInMs: 100 },
          }),
        ),
      ),
  )

  it.live(
    "maxRetryAfterInMs sets the bound: a 1 s Retry-After over a 500 ms bound is not waited on, one within 2 s is",
    () =>
      Effect.gen(function* () {
        const over = yield* readAnswered("bound-low-app", 429, 1).pipe(
          Effect.provide(
            worldLayer(emulator, target, credential, {
              retry: { maxRetries: 1, retryDelayInMs: 10, maxRetryAfterInMs: 500 },
            }),
          ),
        )
        expect([over.error._tag, over.requests]).toEqual(["VaultThrottled", 1])
        const within = yield* readAnswered("bound-high-app", 429, 1).pipe(
          Effect.provide(
            worldLayer(emulator, target, credential, {
              retry: { maxRetries: 1, retryDelayInMs: 10, maxRetryAfterInMs: 2_000 },
            }),
          ),
        )
        expect([within.error._tag, within.requests]).toEqual(["VaultThrottled", 2])
      }),
  )

  it.live(
    "a 429 after the SDK's retries says the Retry-After the vault last gave and what to do: wait, run again, fewer deploys at once",
    () =>
      Effect.gen(function* () {
        const vault = yield* Vault
        const name = "throttled-read-app"
        const id = emulator.faults.add({
          operation: "getLatest",
          vault: VAULT,
          name,
          times: "always",
          action: { kind: "throttle", retryAfterSeconds: 1 },
        })
        const error = yield* Effect.flip(vault.getLatest(name)).pipe(
          Effect.ensuring(Effect.sync(() => emulator.faults.remove(id))),
        )
        expect(error._tag).toBe("VaultThrottled")
        if (error._tag !== "VaultThrottled") return
        expect(error.retryAfterMs).toBe(1000)
        expect(error.message).toContain("its last answer asked to wait 1 s (Retry-After)")
        expect(error.message).toContain(
          "Wait 1 s and run again; if it recurs, run fewer deploys against this vault at once (Key Vault's service limits throttle each vault",
        )
        // Key Vault's own words are kept.
        expect(error.message).toContain("too many requests were received")
      }).pipe(
        Effect.provide(
          worldLayer(emulator, target, credential, {
            retry: { maxRetries: 1, retryDelayInMs: 10, maxRetryDelayInMs: 2_000 },
          }),
        ),
      ),
  )
})
