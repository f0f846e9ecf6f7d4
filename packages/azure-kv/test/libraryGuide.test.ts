/**
 * docs/library.md's example, as written there (only its imports of this package point at the
 * sources), run against @kvdeploy/kv-emulator the way that page says: a deploy from PEM text with
 * its outcome, audit record and metrics; a key that does not match its certificate; a credential
 * mode whose variables are missing. What a library caller gets back, each time.
 */

import { readFileSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { AuditLog, auditRecordOf, deploy, exitCodeOf, validateTargetConfig } from "@kvdeploy/core"
import { withProcessEnv } from "@kvdeploy/core/test"
import { credentialSettingsFromTarget, makeCredential } from "@kvdeploy/credentials"
import type { Emulator } from "@kvdeploy/kv-emulator"
import { PrometheusExposition, layer as prometheus } from "@kvdeploy/metrics/prometheus"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import { ConfigProvider, Effect, Layer } from "effect"
import * as AzureKeyVault from "../src/index.js"
import { startEmulator } from "./support/emulator.js"
import { generateKey, type Issuer, makeCa, makeMaterial, toPem } from "./support/pki.js"

// docs/library.md, "A deploy from your program", starts
export const deployPem = (
  rawTarget: unknown, // the target configuration as JSON (docs/keyvault-target.md)
  pemText: string, // leaf, chain and key, in any order
  certificateId: string,
  tls: { readonly trustedCaPem?: string } = {}, // a private cloud's CA, or the emulator's
) =>
  Effect.gen(function* () {
    const target = yield* validateTargetConfig(rawTarget)
    // The leaf is the certificate the private key belongs to, wherever it sits in the text.
    const material = yield* Pkcs12.materialFromPem(yield* Pkcs12.parsePem(pemText))
    const { credential } = yield* makeCredential(credentialSettingsFromTarget(target, tls))
    const layers = AzureKeyVault.layerConfig(target, credential, tls).pipe(
      Layer.provideMerge(Layer.mergeAll(Pkcs12.layer, prometheus, AuditLog.layerLogger)),
    )
    return yield* Effect.gen(function* () {
      const outcome = yield* deploy({ target, material, certificateId })
      const metrics = yield* Effect.flatMap(Effect.service(PrometheusExposition), (p) => p.text)
      return { outcome, audit: auditRecordOf(outcome), exitCode: exitCodeOf(outcome), metrics }
    }).pipe(Effect.provide(layers))
  }).pipe(Effect.provide(ConfigProvider.layer(Effect.sync(() => ConfigProvider.fromEnv())))) // process.env as it is at run time
// docs/library.md ends

const VAULT = "library"
let emulator: Emulator
let ca: Issuer

beforeAll(async () => {
  emulator = await startEmulator({ vaults: [VAULT] })
  ca = await makeCa()
})
afterAll(() => emulator?.stop())

const pemOf = async (otherKey = false) => {
  const m = await makeMaterial(ca)
  const key = otherKey ? await generateKey("P-256") : m.testKey
  return toPem("CERTIFICATE", m.leaf) + toPem("CERTIFICATE", ca.der) + toPem("PRIVATE KEY", key.pkcs8)
}
const tls = () => ({ trustedCaPem: emulator.caPem })

describe("docs/library.md", () => {
  it("its example is the code this file runs, line for line (an edit of either fails here)", () => {
    const here = readFileSync(new URL(import.meta.url), "utf8")
    const copy = here.slice(
      here.indexOf("\n", here.indexOf('// docs/library.md, "A deploy from your program", starts')) + 1,
      here.indexOf("// docs/library.md ends"),
    )
    const doc = readFileSync(new URL("../../../docs/library.md", import.meta.url), "utf8")
    const section = doc.slice(doc.indexOf("## A deploy from your program"))
    const start = section.indexOf("```ts\n") + 6
    const block = section.slice(start, section.indexOf("\n```", start) + 1)
    // The doc's block after its imports (the test imports the same names from this package's sources).
    const body = block.slice(block.indexOf("export const deployPem"))
    expect(copy.trim().length).toBeGreaterThan(500)
    expect(body).toBe(copy)
  })

  it.live("deploys PEM text and answers the outcome, the audit record and the metrics", () =>
    Effect.gen(function* () {
      const pem = yield* Effect.promise(() => pemOf())
      const rawTarget = emulator.targetConfig(VAULT, "api-prod", "clientSecret")
      const result = yield* withProcessEnv(
        { ...emulator.env.clientSecret },
        deployPem(rawTarget, pem, "api-prod-2026", tls()),
      )
      expect(result.outcome._tag).toBe("Succeeded")
      expect(result.exitCode).toBe(0)
      expect(result.audit).toMatchObject({
        outcome: "Succeeded",
        certificateId: "api-prod-2026",
        vaultCalls: 3,
      })
      expect(result.metrics).toContain(
        'certctl_deploy_attempts_total{target_type="azure_kv",result="succeeded"} 1',
      )
      expect(result.metrics).toContain(
        'kvdeploy_vault_requests_total{operation="importVersion",status="ok"} 1',
      )
      expect(emulator.state.versions(VAULT, "api-prod")).toHaveLength(1)
    }),
  )

  it.live(
    "a key that does not match its certificate: Rejected, naming the field and the fix, nothing sent",
    () =>
      Effect.gen(function* () {
        const pem = yield* Effect.promise(() => pemOf(true))
        const since = emulator.requests.mark()
        const result = yield* withProcessEnv(
          { ...emulator.env.clientSecret },
          deployPem(emulator.targetConfig(VAULT, "api-other", "clientSecret"), pem, "api-other-1", tls()),
        )
        expect(result.outcome._tag).toBe("Rejected")
        expect(result.exitCode).toBe(2)
        expect(result.outcome._tag === "Rejected" ? result.outcome.problems : []).toEqual([
          expect.objectContaining({ field: "key", reason: "key_mismatch", fix: expect.any(String) }),
        ])
        expect(emulator.requests.entries({ vault: VAULT, since })).toEqual([])
        const keyBody = pem.split("-----BEGIN PRIVATE KEY-----")[1]!.trim().split("\n")[0]!
        expect(JSON.stringify(result)).not.toContain(keyBody)
      }),
  )

  it.live("a bundle with its CA first (cat ca.pem leaf.pem key.pem): the leaf is deployed, Succeeded", () =>
    Effect.gen(function* () {
      const m = yield* Effect.promise(() => makeMaterial(ca))
      const pem =
        toPem("CERTIFICATE", ca.der) + toPem("CERTIFICATE", m.leaf) + toPem("PRIVATE KEY", m.testKey.pkcs8)
      const result = yield* withProcessEnv(
        { ...emulator.env.clientSecret },
        deployPem(emulator.targetConfig(VAULT, "api-ca-first", "clientSecret"), pem, "api-ca-first-1", tls()),
      )
      expect(result.outcome._tag === "Rejected" ? result.outcome.problems : []).toEqual([])
      expect(result.outcome._tag).toBe("Succeeded")
      expect(emulator.state.versions(VAULT, "api-ca-first")).toHaveLength(1)
    }),
  )

  it.live("variables the credential mode needs are missing: a tagged error naming them", () =>
    Effect.gen(function* () {
      const pem = yield* Effect.promise(() => pemOf())
      const error = yield* withProcessEnv(
        {
          AZURE_TENANT_ID: emulator.clientSecret.tenantId,
          AZURE_CLIENT_ID: undefined,
          AZURE_CLIENT_SECRET: undefined,
        },
        deployPem(emulator.targetConfig(VAULT, "api-env", "clientSecret"), pem, "api-env-1", tls()),
      ).pipe(Effect.flip)
      expect(error._tag).toBe("CredentialVariableMissing")
      expect(error.message).toContain("AZURE_CLIENT_ID, AZURE_CLIENT_SECRET")
    }),
  )

  it.live("a wrong target configuration: ConfigInvalid listing each field with its fix", () =>
    Effect.gen(function* () {
      const pem = yield* Effect.promise(() => pemOf())
      const error = yield* deployPem(
        { vault_url: "http://kv.vault.azure.net", certificate_name: "api prod", client_secret: "x" },
        pem,
        "id",
      ).pipe(Effect.flip)
      expect(error._tag).toBe("ConfigInvalid")
      const fields = error._tag === "ConfigInvalid" ? error.problems.map((p) => p.field) : []
      expect(fields).toEqual(expect.arrayContaining(["vault_url", "certificate_name", "client_secret"]))
    }),
  )
})
