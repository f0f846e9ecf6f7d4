/**
 * A deploy request whose fields are not of their types (a JavaScript caller's undefined, a number,
 * a key not wrapped in Redacted, PEM text where DER goes): the deploy ends Rejected naming each
 * field and its fix, audited and counted like any refusal, with no call to the vault; it never
 * throws out of its Effect. (@kvdeploy/pkcs12's test/deployShape.test.ts runs the material cases
 * with the real codec.)
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { type DeployRequest, preflight, requestShapeProblems } from "../src/index.js"
import {
  AuditRecords,
  InMemoryVaultHandle,
  issue,
  MetricsRecorder,
  makeAuthority,
} from "../src/testing/index.js"
import { CERT_ID, expectTag, fresh, NAME, request, runDeploy, target } from "./fixtures.js"

const cert = issue({ seed: "shape", issuer: makeAuthority("shape") })
const good = cert.material
const keyBytes = Redacted.value(good.key)

/** A request as a JavaScript caller may build it: any value in any field. */
const loose = (r: Record<string, unknown>): DeployRequest => r as unknown as DeployRequest

const cases: ReadonlyArray<readonly [string, DeployRequest, ReadonlyArray<string>, string]> = [
  [
    "certificateId undefined",
    loose({ ...request(good), certificateId: undefined }),
    ["certificateId"],
    "as a string",
  ],
  [
    "certificateId a number",
    loose({ ...request(good), certificateId: 42 }),
    ["certificateId"],
    "as a string",
  ],
  [
    "material.key the bare bytes",
    loose({ ...request(good), material: { ...good, key: keyBytes } }),
    ["material.key"],
    "Redacted.make",
  ],
  [
    "material.key a Redacted string",
    loose({ ...request(good), material: { ...good, key: Redacted.make("MIGHAgEAMBMGByqGSM49") } }),
    ["material.key"],
    "Uint8Array",
  ],
  [
    "material.key undefined",
    loose({ ...request(good), material: { ...good, key: undefined } }),
    ["material.key"],
    "Redacted.make",
  ],
  [
    "material.chain undefined",
    loose({ ...request(good), material: { ...good, chain: undefined } }),
    ["material.chain"],
    "[]",
  ],
  [
    "material.chain [undefined]",
    loose({ ...request(good), material: { ...good, chain: [undefined] } }),
    ["material.chain[0]"],
    "Uint8Array",
  ],
  [
    "material.leaf undefined",
    loose({ ...request(good), material: { ...good, leaf: undefined } }),
    ["material.leaf"],
    "Uint8Array",
  ],
  [
    "material.leaf PEM text",
    loose({
      ...request(good),
      material: { ...good, leaf: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" },
    }),
    ["material.leaf"],
    "parsePem",
  ],
  ["material undefined", loose({ ...request(good), material: undefined }), ["material"], "materialFromPem"],
  [
    "the raw configuration JSON as the target",
    loose({
      ...request(good),
      target: { vault_url: "https://kv-test.vault.azure.net", certificate_name: NAME },
    }),
    ["target"],
    "validateTargetConfig",
  ],
  [
    "options.previousKey bare bytes",
    loose({ ...request(good), options: { previousKey: keyBytes } }),
    ["options.previousKey"],
    "Redacted.make",
  ],
  [
    "options.previousChain PEM text",
    loose({
      ...request(good),
      options: { previousChain: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" },
    }),
    ["options.previousChain"],
    "[]",
  ],
  [
    "options.previousChain [1]",
    loose({ ...request(good), options: { previousChain: [1] } }),
    ["options.previousChain[0]"],
    "Uint8Array",
  ],
  ["options a string", loose({ ...request(good), options: "force" }), ["options"], "leave options out"],
  ["the request null", null as unknown as DeployRequest, ["request"], "{ target, material, certificateId }"],
  [
    "several at once",
    loose({
      target: target(),
      material: { leaf: good.leaf, chain: undefined, key: keyBytes },
      certificateId: 7,
    }),
    ["material.chain", "material.key", "certificateId"],
    "",
  ],
]

describe("a request whose fields are not of their types", () => {
  for (const [name, req, fields, fix] of cases)
    it.effect(`${name}: Rejected naming ${fields.join(", ")}, audited and counted, no vault call`, () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const o = expectTag(yield* runDeploy(req), "Rejected")
          assert.deepStrictEqual(
            o.problems.map((p) => p.field),
            fields,
          )
          for (const p of o.problems) assert.isTrue(p.fix.includes(fix), `${p.field}: ${p.fix}`)
          assert.strictEqual(vault.calls().total, 0)
          assert.strictEqual(vault.versions(NAME).length, 0)
          const audit = (yield* AuditRecords).all()
          assert.strictEqual(audit.length, 1)
          assert.strictEqual(audit[0]?.outcome, "Rejected")
          const metrics = yield* MetricsRecorder
          assert.strictEqual(metrics.count("deployAttempt"), 1)
          assert.isAbove(metrics.count("validateFailure"), 0)
          // Neither the key's bytes nor its base64 appear anywhere in what the deploy answers.
          const said = JSON.stringify([o, audit])
          assert.notInclude(said, Buffer.from(keyBytes).toString("base64").slice(0, 24))
          assert.notInclude(said, Buffer.from(keyBytes).toString("hex").slice(0, 24))
        }),
      ),
    )

  it.effect("an id that is not a string is not shown in the outcome; the target's text is", () =>
    fresh(
      Effect.gen(function* () {
        const o = yield* runDeploy(loose({ ...request(good), certificateId: 42 }))
        assert.strictEqual(o.certificateId, "(not shown: not a certificate id)")
        assert.strictEqual(o.target.certificateName, NAME)
        const raw = yield* runDeploy(loose({ ...request(good), target: { vault_url: "x" } }))
        assert.deepStrictEqual(raw.target, { vaultUrl: "(not given)", certificateName: "(not given)" })
      }),
    ),
  )

  it.effect("plan's preflight refuses them alike", () =>
    fresh(
      Effect.gen(function* () {
        const checked = yield* preflight(loose({ ...request(good), material: { ...good, key: keyBytes } }))
        assert.strictEqual(checked._tag, "Rejected")
        assert.deepStrictEqual(checked._tag === "Rejected" ? checked.problems.map((p) => p.field) : [], [
          "material.key",
        ])
      }),
    ),
  )

  it("a well-typed request has no shape problem (the check passes it as it is)", () => {
    assert.strictEqual(requestShapeProblems(request(good)), undefined)
    assert.strictEqual(
      requestShapeProblems(request(good, { previousKey: good.key, previousChain: good.chain, adopt: true })),
      undefined,
    )
    assert.strictEqual(CERT_ID, request(good).certificateId)
  })
})
