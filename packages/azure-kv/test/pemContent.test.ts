/**
 * "PEM secrets stay PEM", end to end over the real SDKs against the emulator: a certificate whose
 * secret is served as PEM (application/x-pem-file) gets a new PEM version (content_type keep, the
 * default); the import request carries the PEM text and a policy whose content type is PEM; the
 * backing secret read with @azure/keyvault-secrets is PEM with the leaf, the chain and the key,
 * which OpenSSL reads; a rollback over PEM restores PEM.
 */
import { spawnSync } from "node:child_process"
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto"
import type { TokenCredential } from "@azure/core-auth"
import { CertificateClient } from "@azure/keyvault-certificates"
import { SecretClient } from "@azure/keyvault-secrets"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type CertificateMaterial, type DeployOutcome, DeployPolicy, type TargetConfig } from "@kvdeploy/core"
import type { Emulator } from "@kvdeploy/kv-emulator"
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
import { type Issuer, makeCa, makeMaterial, toPem, x5tOf } from "./support/pki.js"

const VAULT = "pem"
const PEM = "application/x-pem-file"
const PKCS12 = "application/x-pkcs12"
const opensslPresent = spawnSync("openssl", ["version"], { stdio: "ignore" }).status === 0

let emulator: Emulator
let ca: Issuer
let credential: TokenCredential
let certificates: CertificateClient
let secrets: SecretClient

beforeAll(async () => {
  emulator = await startEmulator({ vaults: [VAULT] })
  ca = await makeCa()
  credential = await Effect.runPromise(credentialFor(emulator, targetFor(emulator, VAULT, "any")))
  const options = { tlsOptions: { ca: emulator.caPem }, disableChallengeResourceVerification: true }
  certificates = new CertificateClient(emulator.vault(VAULT).url, credential, options)
  secrets = new SecretClient(emulator.vault(VAULT).url, credential, options)
})
afterAll(() => emulator?.stop())

const material = () => Effect.promise(() => makeMaterial(ca))
const versionsOf = (name: string) => emulator.state.versions(VAULT, name) ?? []
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
/** The content type of the policy an import request carried, as the emulator's request log kept it. */
const policyContentType = (policy: unknown) =>
  (policy as { secret_props?: { contentType?: string } } | undefined)?.secret_props?.contentType

/** A certificate another tool imported as PEM (key first, as Key Vault serves PEM), with kvdeploy's tags. */
const importAsPem = (name: string, served: CertificateMaterial) =>
  Effect.promise(() =>
    certificates.importCertificate(
      name,
      new TextEncoder().encode(
        [
          toPem("PRIVATE KEY", Redacted.value(served.key)),
          toPem("CERTIFICATE", served.leaf),
          ...served.chain.map((c) => toPem("CERTIFICATE", c)),
        ].join("\n"),
      ),
      {
        policy: { contentType: PEM },
        // The SDK (4.9.0-4.10.3) sends PEM text for `policy` but drops it from the body; Key Vault
        // (and the emulator here, importContentType "required") refuses PEM text not stated as PEM.
        // Its serializer reads `certificatePolicy`, as another tool's own pipeline would send it.
        certificatePolicy: { secretProperties: { contentType: PEM } },
        tags: { "certctl-managed-by": "certctl", "certctl-certificate-id": `id-${name}` },
      } as Parameters<CertificateClient["importCertificate"]>[2],
    ),
  )

const deployTo = (target: TargetConfig, next: CertificateMaterial, maxPfxBytes?: number) =>
  Effect.gen(function* () {
    const since = emulator.requests.mark()
    const policy = yield* DeployPolicy
    const outcome: DeployOutcome = yield* deployOnce(target, next, `id-${target.certificateName}`).pipe(
      fastReads,
      Effect.provideService(DeployPolicy, maxPfxBytes === undefined ? policy : { ...policy, maxPfxBytes }),
    )
    const requests = emulator.requests.entries({ vault: VAULT, since }).filter((e) => !e.challenge)
    const imports = requests.filter((e) => e.operation === "import")
    return { outcome, imports, operations: requests.map((e) => e.operation) }
  }).pipe(Effect.provide(worldLayer(emulator, target, credential)))

const softDelete = (name: string) =>
  Effect.promise(async () =>
    (await certificates.beginDeleteCertificate(name, { intervalInMs: 20 })).pollUntilDone(),
  )

/** The PEM blocks of a secret value, in order. */
const blocksOf = (text: string) =>
  [...text.matchAll(/-----BEGIN ([A-Z ]+)-----\n[\s\S]*?-----END \1-----/g)].map((m) => ({
    label: m[1],
    pem: `${m[0]}\n`,
  }))

/** What a consumer reading the backing secret as PEM finds: leaf, chain and key, checked by OpenSSL. */
const expectPemSecret = async (name: string, version: string, expected: CertificateMaterial) => {
  const secret = await secrets.getSecret(name, { version })
  expect(secret.properties.contentType).toBe(PEM)
  const value = secret.value ?? ""
  const blocks = blocksOf(value)
  const certs = blocks.filter((b) => b.label === "CERTIFICATE")
  const keys = blocks.filter((b) => b.label === "PRIVATE KEY")
  expect(keys).toHaveLength(1)
  expect(certs.map((b) => hex(new Uint8Array(new X509Certificate(b.pem).raw)))).toEqual(
    [expected.leaf, ...expected.chain].map(hex),
  )
  if (opensslPresent || process.env.CI === "true") {
    // OpenSSL reads the key (unencrypted PKCS#8) and the leaf out of the value itself.
    const key = spawnSync("openssl", ["pkey", "-pubout"], { input: keys[0]?.pem ?? "" })
    expect(key.status, key.stderr.toString()).toBe(0)
    const leaf = spawnSync("openssl", ["x509", "-noout", "-pubkey"], { input: certs[0]?.pem ?? "" })
    expect(leaf.status, leaf.stderr.toString()).toBe(0)
    expect(key.stdout.toString()).toBe(leaf.stdout.toString())
    const whole = spawnSync("openssl", ["pkey", "-noout"], { input: value })
    expect(whole.status, whole.stderr.toString()).toBe(0)
  }
  expect(
    createPublicKey(createPrivateKey(keys[0]?.pem ?? "")).equals(
      new X509Certificate(expected.leaf).publicKey,
    ),
  ).toBe(true)
}

describe("PEM secrets stay PEM", () => {
  it.live("a certificate served as PEM gets a new PEM version (content_type keep, the default)", () =>
    Effect.gen(function* () {
      const name = "pem-kept"
      yield* importAsPem(name, yield* material())
      expect(versionsOf(name).at(-1)?.contentType).toBe(PEM)
      const target = targetFor(emulator, VAULT, name)
      const next = yield* material()
      const { outcome, imports } = yield* deployTo(target, next)
      expect(outcome._tag, outcome.reason).toBe("Succeeded")
      expect(outcome.contentType).toEqual({ imported: PEM, served: PEM, change: "kept" })

      // On the wire: the PEM text as is, and the policy's content type PEM.
      expect(imports).toHaveLength(1)
      const wire = imports[0]?.request
      expect(wire?.valueIsPem).toBe(true)
      expect(wire?.passwordSent).not.toBe(true)
      expect(policyContentType(wire?.policy)).toBe(PEM)

      const latest = versionsOf(name).at(-1)
      expect(latest?.x5t).toBe(yield* Effect.promise(() => x5tOf(next.leaf)))
      expect(latest?.contentType).toBe(PEM)
      // Key Vault's own answers say PEM: the certificate's policy and the backing secret.
      const policy = yield* Effect.promise(() => certificates.getCertificatePolicy(name))
      expect(policy.contentType).toBe(PEM)
      yield* Effect.promise(() => expectPemSecret(name, latest?.version ?? "", next))
    }),
  )

  it.live(
    "content_type pem on a first deploy writes a PEM secret; pkcs12 over it changes it back, noted",
    () =>
      Effect.gen(function* () {
        const name = "pem-explicit"
        const first = yield* material()
        const pem = yield* deployTo(targetFor(emulator, VAULT, name, { content_type: "pem" }), first)
        expect(pem.outcome._tag, pem.outcome.reason).toBe("Succeeded")
        expect(pem.outcome.contentType).toEqual({ imported: PEM, served: undefined, change: "new" })
        yield* Effect.promise(() => expectPemSecret(name, versionsOf(name).at(-1)?.version ?? "", first))

        const back = yield* deployTo(
          targetFor(emulator, VAULT, name, { content_type: "pkcs12" }),
          yield* material(),
        )
        expect(back.outcome._tag, back.outcome.reason).toBe("Succeeded")
        expect(back.outcome.contentType).toEqual({ imported: PKCS12, served: PEM, change: "changed" })
        expect(back.outcome.decisions.join("\n")).toMatch(/the import writes PKCS#12/)
        expect(back.imports[0]?.request?.valueIsPem).toBe(false)
        expect(versionsOf(name).at(-1)?.contentType).toBe(PKCS12)
      }),
  )

  it.live("a rollback over a PEM certificate restores it as PEM, chain and key included", () =>
    Effect.gen(function* () {
      const name = "pem-rollback"
      const served = yield* material()
      yield* importAsPem(name, served)
      // The new version is disabled once written: verify finds ours wrong, and rolls back.
      emulator.faults.add({ operation: "import", vault: VAULT, name, action: { kind: "disableAfterCommit" } })
      const { outcome, imports } = yield* deployTo(targetFor(emulator, VAULT, name), yield* material())
      expect(outcome._tag, outcome.reason).toBe("RolledBack")
      if (outcome._tag !== "RolledBack") return
      expect(outcome.rollbackSource).toBe("backing-secret")
      expect(imports).toHaveLength(2)
      for (const i of imports) {
        expect(i.request?.valueIsPem).toBe(true)
        expect(policyContentType(i.request?.policy)).toBe(PEM)
      }
      const restored = versionsOf(name).at(-1)
      expect(restored?.version).toBe(outcome.rollbackVersionId)
      expect(restored?.x5t).toBe(yield* Effect.promise(() => x5tOf(served.leaf)))
      expect(restored?.contentType).toBe(PEM)
      yield* Effect.promise(() => expectPemSecret(name, restored?.version ?? "", served))
    }),
  )

  it.live(
    "content_type keep over a soft-deleted certificate, its PFX over the limit: the deleted certificate's policy decides before any recovery (PEM: recovered and imported as PEM; PKCS#12: left deleted)",
    () =>
      Effect.gen(function* () {
        // Every PFX is over this limit; the PEM limit stays Key Vault's (the PEM fits).
        const maxPfxBytes = 16
        // Deleted as PEM (another tool imported it as PEM): recovered, then a PEM import.
        const pemName = "pem-deleted-keep"
        yield* importAsPem(pemName, yield* material())
        yield* softDelete(pemName)
        const recover = { on_soft_deleted: "recover" }
        const next = yield* material()
        const pem = yield* deployTo(targetFor(emulator, VAULT, pemName, recover), next, maxPfxBytes)
        expect(pem.outcome._tag, pem.outcome.reason).toBe("Succeeded")
        expect(pem.outcome.recovered).toBe("recovered")
        expect(pem.outcome.contentType).toEqual({ imported: PEM, served: PEM, change: "kept" })
        expect(pem.outcome.decisions.join("\n")).not.toMatch(/does not say its content type/)
        // The deleted certificate was read (its policy's content type said PEM) before the recovery.
        expect(pem.operations.filter((o) => o !== "getLatest")).toEqual(["getDeleted", "recover", "import"])
        expect(pem.imports).toHaveLength(1)
        expect(pem.imports[0]?.request?.valueIsPem).toBe(true)
        expect(policyContentType(pem.imports[0]?.request?.policy)).toBe(PEM)
        expect(versionsOf(pemName).at(-1)?.contentType).toBe(PEM)
        yield* Effect.promise(() => expectPemSecret(pemName, versionsOf(pemName).at(-1)?.version ?? "", next))

        // Deleted as PKCS#12 (a first deploy of kvdeploy's): refused with nothing recovered.
        const pfxName = "pkcs12-deleted-keep"
        const first = yield* deployTo(targetFor(emulator, VAULT, pfxName), yield* material())
        expect(first.outcome._tag, first.outcome.reason).toBe("Succeeded")
        yield* softDelete(pfxName)
        const refused = yield* deployTo(
          targetFor(emulator, VAULT, pfxName, recover),
          yield* material(),
          maxPfxBytes,
        )
        expect(refused.outcome._tag, refused.outcome.reason).toBe("Rejected")
        expect(refused.outcome.reason).toMatch(
          /is soft-deleted, and a recovery would serve it again as .*, its secret PKCS#12 \(application\/x-pkcs12\), which content_type keep keeps; the import would be refused, so it was left deleted/,
        )
        expect(refused.operations).not.toContain("recover")
        expect(refused.imports).toHaveLength(0)
        expect(emulator.state.isDeleted(VAULT, pfxName)).toBe(true)
      }),
  )
})
