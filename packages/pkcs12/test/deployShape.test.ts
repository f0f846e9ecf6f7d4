/**
 * A deploy, with this package's codec, of material whose fields are not of their types (what a
 * JavaScript caller can pass: the key's bytes bare, no chain, PEM text as the leaf): Rejected naming
 * the field and the fix, audited and counted like any refusal, nothing sent to the vault. The
 * codec itself is never handed such material (it threw TypeErrors out of the deploy).
 */
import { describe, expect, it } from "@effect/vitest"
import { type DeployRequest, deploy, validateTargetConfig } from "@kvdeploy/core"
import {
  AuditRecords,
  InMemoryAuditLog,
  InMemoryVault,
  InMemoryVaultHandle,
  MetricsRecorder,
  RecordingMetrics,
} from "@kvdeploy/core/test"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { beforeAll } from "vitest"
import * as Pkcs12 from "../src/index.js"
import { generateKey, issue, type TestKey, toPem } from "./fixtures.js"

let leaf: Uint8Array
let ca: Uint8Array
let key: TestKey
beforeAll(async () => {
  const caKey = await generateKey("P-256")
  key = await generateKey("P-256")
  ca = await issue({ subject: "CN=Shape CA", key: caKey, ca: true })
  leaf = await issue({
    subject: "CN=shape.example.test",
    key,
    issuer: { name: "CN=Shape CA", key: caKey },
    ca: false,
    sans: [{ type: "dns", value: "shape.example.test" }],
  })
})

const world = Layer.mergeAll(
  InMemoryVault.layer.pipe(Layer.provideMerge(Pkcs12.layer)),
  RecordingMetrics.layer,
  InMemoryAuditLog.layer,
)

const cases: ReadonlyArray<readonly [string, () => Record<string, unknown>, string, string]> = [
  [
    "the key's bytes bare (not Redacted)",
    () => ({ leaf, chain: [ca], key: key.pkcs8 }),
    "material.key",
    "Redacted.make",
  ],
  [
    "the key as a Redacted base64 string",
    () => ({ leaf, chain: [ca], key: Redacted.make(Buffer.from(key.pkcs8).toString("base64")) }),
    "material.key",
    "Uint8Array",
  ],
  ["no key", () => ({ leaf, chain: [ca], key: undefined }), "material.key", "Redacted.make"],
  ["no chain", () => ({ leaf, chain: undefined, key: Redacted.make(key.pkcs8) }), "material.chain", "[]"],
  [
    "no leaf",
    () => ({ leaf: undefined, chain: [ca], key: Redacted.make(key.pkcs8) }),
    "material.leaf",
    "Uint8Array",
  ],
  [
    "the leaf as PEM text",
    () => ({ leaf: toPem("CERTIFICATE", leaf), chain: [ca], key: Redacted.make(key.pkcs8) }),
    "material.leaf",
    "parsePem",
  ],
]

describe("deploy of material whose fields are not of their types, with the real codec", () => {
  // Live: the certificates are valid now, which the test clock is not (a well-typed request is
  // deployed first, to show the vault and codec work).
  for (const [name, material, field, fix] of cases)
    it.live(`${name}: Rejected naming ${field}, audited and counted, nothing sent to the vault`, () =>
      Effect.gen(function* () {
        const target = yield* validateTargetConfig({
          vault_url: "https://shape.vault.azure.net",
          certificate_name: "shape",
        })
        const vault = yield* InMemoryVaultHandle
        const request = { target, material: material(), certificateId: "shape-1" } as unknown as DeployRequest
        const outcome = yield* deploy(request)
        expect(outcome._tag === "Rejected" ? outcome.problems : outcome._tag).toEqual([
          expect.objectContaining({ field, fix: expect.stringContaining(fix), reason: "material_invalid" }),
        ])
        expect(vault.calls().total).toBe(0)
        expect((yield* AuditRecords).all().map((r) => r.outcome)).toEqual(["Rejected"])
        expect((yield* MetricsRecorder).count("validateFailure", "material_invalid")).toBe(1)
        const said = JSON.stringify(outcome)
        expect(said).not.toContain(Buffer.from(key.pkcs8).toString("base64").slice(0, 24))
        // The same request with its fields typed deploys.
        const typed = yield* deploy({
          target,
          material: { leaf, chain: [ca], key: Redacted.make(key.pkcs8) },
          certificateId: "shape-1",
        })
        expect(typed._tag).toBe("Succeeded")
      }).pipe(Effect.provide(world)),
    )
})
