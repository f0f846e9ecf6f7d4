/**
 * A target's consumers (the services that read its certificate from the vault): named in the
 * target, checked at validation; preflight refuses what they would not take before anything is
 * written, and warns where their documentation is weaker; with content_type keep, the import is
 * PKCS#12 whatever the vault serves, as they read PKCS#12 only.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import {
  APPLICATION_GATEWAY_MAX_CERTIFICATE_BYTES,
  DeployPolicy,
  PEM_CONTENT_TYPE,
  PfxCodec,
  PKCS12_CONTENT_TYPE,
  pemToPkcs12ForConsumersNote,
  preflight,
  transportPfxOptions,
  validateTargetConfigSync,
} from "../src/index.js"
import type { CertificateMaterial } from "../src/material.js"
import {
  InMemoryVaultHandle,
  issue,
  MetricsRecorder,
  makeAuthority,
  SyntheticCodec,
  TestWorld,
} from "../src/testing/index.js"
import {
  expectTag,
  fresh,
  managedTags,
  NAME,
  recordingImports,
  request,
  runDeploy,
  target,
} from "./fixtures.js"

const ca = makeAuthority("consumers")
const rsa = issue({ seed: "rsa", issuer: ca })
const ec = issue({ seed: "ec", issuer: ca, keyType: "EC", curve: "P-256" })
/** A self-signed leaf: the CA's own certificate and key, no chain. */
const selfSigned = makeAuthority("self", "CN=self.example.test")
const selfSignedMaterial: CertificateMaterial = {
  leaf: selfSigned.certificate,
  chain: [],
  key: Redacted.make(selfSigned.key.bytes),
}

const problemsOf = (fields: Record<string, unknown>) => {
  const r = validateTargetConfigSync({
    vault_url: "https://kv-test.vault.azure.net",
    certificate_name: NAME,
    ...fields,
  })
  return Result.isFailure(r) ? r.failure.problems.map((p) => `${p.field}: ${p.message} (fix: ${p.fix})`) : []
}

const withConsumers = (...consumers: ReadonlyArray<string>) => target({ consumers })

describe("consumers in the target", () => {
  it("is carried when given, and left out when none (or an empty list)", () => {
    assert.deepStrictEqual(withConsumers("front_door", "app_service").consumers, [
      "front_door",
      "app_service",
    ])
    assert.isFalse("consumers" in target())
    assert.isFalse("consumers" in target({ consumers: [] }))
  })

  it("refuses a value that is not a list, an unknown name (listing the names) and a duplicate, naming the field", () => {
    const [notList, ...moreNotList] = problemsOf({ consumers: "front_door" })
    assert.deepStrictEqual(moreNotList, [])
    assert.match(
      notList ?? "",
      /^consumers: is not a list \(fix: .*consumers: \[front_door\].*front_door, application_gateway, app_service/,
    )
    const unknown = problemsOf({ consumers: ["front_dor", "aks_csi", 3] })
    assert.strictEqual(unknown.length, 3)
    assert.match(
      unknown[0] ?? "",
      /^consumers\[0\]: is not a consumer kvdeploy knows \("front_dor"\) \(fix: did you mean front_door\? use one of front_door, application_gateway, app_service/,
    )
    assert.match(unknown[1] ?? "", /^consumers\[1\]: .*\("aks_csi"\).*Secrets Store CSI/)
    assert.match(unknown[2] ?? "", /^consumers\[2\]: is not a consumer kvdeploy knows/)
    assert.deepStrictEqual(problemsOf({ consumers: ["app_service", "front_door", "app_service"] }), [
      "consumers[2]: names app_service again (consumers[0] names it) (fix: give each consumer once)",
    ])
    // Counted as written, an unknown name before it included.
    assert.include(
      problemsOf({ consumers: ["aks", "front_door", "front_door"] }),
      "consumers[2]: names front_door again (consumers[1] names it) (fix: give each consumer once)",
    )
  })

  it("refuses content_type pem with a consumer (they read PKCS#12 only), with the fix", () => {
    const problems = problemsOf({ content_type: "pem", consumers: ["application_gateway"] })
    assert.strictEqual(problems.length, 1)
    assert.match(
      problems[0] ?? "",
      /^content_type: is pem, but application_gateway \(Azure Application Gateway v2\) reads the certificate's secret as PKCS#12 only/,
    )
    assert.match(
      problems[0] ?? "",
      /fix: set content_type: keep .* or pkcs12, or remove application_gateway from consumers/,
    )
    // pkcs12 and keep are fine.
    assert.deepStrictEqual(problemsOf({ content_type: "pkcs12", consumers: ["application_gateway"] }), [])
    assert.deepStrictEqual(problemsOf({ content_type: "keep", consumers: ["application_gateway"] }), [])
  })
})

describe("a fix names the flag that gave a field", () => {
  it("content_type pem with --consumer: the fix says to leave it out of --consumer (and --content-type when that gave pem)", () => {
    const fixOf = (fromFlags: ReadonlySet<string> | undefined) => {
      const r = validateTargetConfigSync(
        {
          vault_url: "https://kv-test.vault.azure.net",
          certificate_name: NAME,
          content_type: "pem",
          consumers: ["application_gateway"],
        },
        { fromFlags },
      )
      return Result.isFailure(r) ? r.failure.problems.find((p) => p.field === "content_type")?.fix : undefined
    }
    assert.match(
      fixOf(undefined) ?? "",
      /^set content_type: keep .*, or remove application_gateway from consumers if it does/,
    )
    assert.match(
      fixOf(new Set(["consumers"])) ?? "",
      /^set content_type: keep .*, or leave application_gateway out of --consumer if it does not read this certificate$/,
    )
    assert.notMatch(fixOf(new Set(["consumers"])) ?? "", /from consumers/)
    assert.match(
      fixOf(new Set(["consumers", "content_type"])) ?? "",
      /^give --content-type keep .*, or leave application_gateway out of --consumer/,
    )
  })
})

describe("preflight refuses what a consumer would not take; nothing is written", () => {
  it.effect("front_door with an EC key: Rejected (unsupported_key), no import", () =>
    fresh(
      Effect.gen(function* () {
        const { result, imports } = yield* recordingImports(
          runDeploy(request(ec.material, {}, withConsumers("front_door"))),
        )
        const o = expectTag(result, "Rejected")
        assert.deepStrictEqual(
          o.problems.map((p) => [p.field, p.reason]),
          [["key", "unsupported_key"]],
        )
        assert.match(
          o.problems[0]?.message ?? "",
          /is EC P-256: Azure Front Door \(consumers: front_door\) does not support certificates with EC keys/,
        )
        assert.match(
          o.problems[0]?.fix ?? "",
          /RSA key .*or remove front_door from consumers \(or leave it out of --consumer\) if Azure Front Door/,
        )
        assert.deepStrictEqual(imports, [])
        assert.strictEqual((yield* InMemoryVaultHandle).latest(NAME), undefined)
        assert.deepStrictEqual(
          (yield* MetricsRecorder)
            .events()
            .filter((e) => e.series === "validateFailure")
            .map((e) => e.label),
          ["unsupported_key"],
        )
        // Without the consumer, the same certificate deploys.
        expectTag(yield* runDeploy(request(ec.material)), "Succeeded")
      }),
    ),
  )

  it.effect("front_door with a self-signed leaf: Rejected (chain_invalid), no import", () =>
    fresh(
      Effect.gen(function* () {
        const { result, imports } = yield* recordingImports(
          runDeploy(request(selfSignedMaterial, {}, withConsumers("front_door"))),
        )
        const o = expectTag(result, "Rejected")
        assert.deepStrictEqual(
          o.problems.map((p) => [p.field, p.reason]),
          [["leaf", "chain_invalid"]],
        )
        assert.match(
          o.problems[0]?.message ?? "",
          /is self-signed .*Azure Front Door \(consumers: front_door\) rejects self-signed certificates/,
        )
        assert.deepStrictEqual(imports, [])
      }),
    ),
  )
})

describe("warnings where a consumer's documentation is weaker (the deploy goes on)", () => {
  const warningsOf = (material: CertificateMaterial, ...consumers: ReadonlyArray<string>) =>
    Effect.map(runDeploy(request(material, {}, withConsumers(...consumers))), (r) => {
      const o = expectTag(r, "Succeeded")
      return (o.warnings ?? []).filter((w) => /\(consumers: /.test(w.message))
    })

  it.effect("front_door with a CA-issued leaf and no issuer in the chain", () =>
    fresh(
      Effect.gen(function* () {
        const [w, ...more] = yield* warningsOf(
          issue({ seed: "bare", issuer: ca, withChain: false }).material,
          "front_door",
        )
        assert.deepStrictEqual(more, [])
        assert.strictEqual(w?.field, "chain")
        assert.match(
          w?.message ?? "",
          /Azure Front Door \(consumers: front_door\) expects a complete certificate chain with leaf and intermediate certificates/,
        )
        // With its issuer in the chain: nothing to say.
        assert.deepStrictEqual(yield* warningsOf(rsa.material, "front_door"), [])
      }),
    ),
  )

  it.effect("front_door with no chain at all: one warning of it, which names Front Door's need", () =>
    fresh(
      Effect.gen(function* () {
        const bare = issue({ seed: "bare", issuer: ca, withChain: false }).material
        const chainWarnings = (consumers: ReadonlyArray<string>) =>
          Effect.map(runDeploy(request(bare, {}, withConsumers(...consumers))), (r) =>
            // Succeeded, then Skipped (the same certificate): both carry the material's warnings.
            (r.warnings ?? []).filter((w) => w.field === "chain"),
          )
        const [only, ...more] = yield* chainWarnings(["front_door"])
        assert.deepStrictEqual(more, [])
        assert.match(
          only?.message ?? "",
          /^none given, and the leaf is issued by .*: Azure Front Door \(consumers: front_door\) expects a complete certificate chain with leaf and intermediate certificates \(and a client that does not already hold that certificate cannot build a path to a root\)$/,
        )
        assert.match(only?.fix ?? "", /fullchain\.pem, not cert\.pem/)
        // Without front_door: the material's own warning, as before.
        const [plain, ...morePlain] = yield* chainWarnings(["app_service"])
        assert.deepStrictEqual(morePlain, [])
        assert.match(
          plain?.message ?? "",
          /^none given, and the leaf is issued by .*: a client that does not/,
        )
        // Material read from a PFX (decodePfx marks it): the fix is the PFX exported again with its
        // chain, not an ACME client's fullchain.pem, with front_door and without.
        for (const consumers of [["front_door"], ["app_service"]]) {
          const [fromPfx] = yield* Effect.map(
            runDeploy(request({ ...bare, from: "pfx" }, {}, withConsumers(...consumers))),
            (r) => (r.warnings ?? []).filter((w) => w.field === "chain"),
          )
          assert.match(
            fromPfx?.fix ?? "",
            /^export the PFX again with the issuer's chain in it \(openssl pkcs12 -export /,
          )
          assert.notMatch(fromPfx?.fix ?? "", /fullchain/)
        }
        // Plan's preflight carries it too (the agent's --check shows preflight's warnings only).
        const checked = yield* preflight(request(bare, {}, withConsumers("front_door")))
        assert.strictEqual(checked._tag, "Passed")
        if (checked._tag === "Passed")
          assert.deepStrictEqual(
            checked.warnings?.map((w) => w.field),
            ["chain"],
          )
      }),
    ),
  )

  it.effect("app_service with an EC key, and with a self-signed leaf", () =>
    fresh(
      Effect.gen(function* () {
        const [key, ...moreKey] = yield* warningsOf(ec.material, "app_service")
        assert.deepStrictEqual(moreKey, [])
        assert.strictEqual(key?.field, "key")
        assert.match(
          key?.message ?? "",
          /Azure App Service \(consumers: app_service\) works with ECC certificates, but its documentation does not cover them/,
        )
        const [leaf, ...moreLeaf] = yield* warningsOf(selfSignedMaterial, "app_service")
        assert.deepStrictEqual(moreLeaf, [])
        assert.strictEqual(leaf?.field, "leaf")
        assert.match(leaf?.message ?? "", /only an App Service Environment v3 takes private CAs/)
        assert.deepStrictEqual(yield* warningsOf(rsa.material, "app_service"), [])
      }),
    ),
  )

  it.effect("application_gateway when the PFX kvdeploy builds is over 16 KB, said to be approximate", () =>
    fresh(
      Effect.gen(function* () {
        // A long subject makes the synthetic leaf large enough: a PFX between 16 KB and Key Vault's limit.
        const big = issue({ seed: "big", issuer: ca, subject: `CN=big,O=${"x".repeat(9_000)}` }).material
        const size = (yield* SyntheticCodec.encode(big, transportPfxOptions("modern"))).byteLength
        assert.isAbove(size, APPLICATION_GATEWAY_MAX_CERTIFICATE_BYTES)
        assert.isAtMost(size, (yield* DeployPolicy).maxPfxBytes)
        const [w, ...more] = yield* warningsOf(big, "application_gateway")
        assert.deepStrictEqual(more, [])
        assert.strictEqual(w?.field, "material")
        assert.include(w?.message ?? "", `makes a PFX of about ${size} bytes`)
        assert.match(
          w?.message ?? "",
          /Azure Application Gateway v2 \(consumers: application_gateway\) takes SSL certificates of at most 16 KB .*approximate/,
        )
        // Its documentation does not cover EC listener certificates: no EC key is offered.
        assert.notMatch(w?.fix ?? "", /EC key/)
        assert.deepStrictEqual(yield* warningsOf(rsa.material, "application_gateway"), [])
      }),
    ),
  )

  it.effect("plan's preflight carries the same warnings", () =>
    Effect.gen(function* () {
      const checked = yield* preflight(request(ec.material, {}, withConsumers("app_service")))
      assert.strictEqual(checked._tag, "Passed")
      if (checked._tag === "Passed")
        assert.deepStrictEqual(
          checked.warnings?.map((w) => w.field),
          ["key"],
        )
    }).pipe(Effect.provide(TestWorld.layer)),
  )
})

describe("content_type keep with a consumer: PKCS#12 whatever the vault serves", () => {
  it.effect("over a secret served as PEM: imports PKCS#12, the outcome says changed from PEM, noted", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* vault.seed(NAME, rsa.material, { tags: managedTags, contentType: PEM_CONTENT_TYPE })
        const next = issue({ seed: "next", issuer: ca })
        const { result, imports } = yield* recordingImports(
          runDeploy(request(next.material, {}, withConsumers("application_gateway"))),
        )
        const o = expectTag(result, "Succeeded")
        assert.deepStrictEqual(
          imports.map((r) => (r.pem !== undefined ? "pem" : "pkcs12")),
          ["pkcs12"],
        )
        assert.strictEqual(vault.latest(NAME)?.contentType, PKCS12_CONTENT_TYPE)
        assert.deepStrictEqual(o.contentType, {
          imported: PKCS12_CONTENT_TYPE,
          served: PEM_CONTENT_TYPE,
          change: "changed",
        })
        assert.include(o.decisions, pemToPkcs12ForConsumersNote(["application_gateway"]))
      }),
    ),
  )

  it.effect(
    "the same certificate already served as PEM: Skipped, with a warning that PKCS#12 waits for the next certificate",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* vault.seed(NAME, rsa.material, { tags: managedTags, contentType: PEM_CONTENT_TYPE })
          const { result, imports } = yield* recordingImports(
            runDeploy(request(rsa.material, {}, withConsumers("app_service"))),
          )
          const o = expectTag(result, "Skipped")
          assert.deepStrictEqual(imports, [])
          assert.deepStrictEqual(
            o.warnings?.map((w) => w.field),
            ["consumers"],
          )
          assert.match(
            o.warnings?.[0]?.message ?? "",
            /names app_service, which read PKCS#12 only, and the vault serves this certificate's secret as application\/x-pem-file: .*becomes application\/x-pkcs12 with the next version a deploy writes/,
          )
          // The fix is one the operator can take now (no "deploy the next certificate"); and it works:
          // a deploy with one more tag writes this certificate again, as PKCS#12.
          const fix = o.warnings?.[0]?.fix ?? ""
          assert.notMatch(fix, /deploy the next certificate/)
          assert.match(
            fix,
            /^to write application\/x-pkcs12 now, add a tag to the target, or change a tag's value \(`--tag KEY=VALUE`, or `tags` in the target file or the agent's deployment\) and deploy again/,
          )
          // The CLI's way too: --force imports the certificate served already.
          assert.include(fix, "deploy again with `--force`, which imports the certificate served already")
          // Core does not know whether the list came from the file or --consumer: both are named.
          assert.match(
            fix,
            /; or remove app_service from consumers \(or leave it out of --consumer\) if it does not read this certificate$/,
          )
          const again = yield* recordingImports(
            runDeploy(
              request(
                rsa.material,
                {},
                target({ consumers: ["app_service"], tags: { env: "test", rewrite: "1" } }),
              ),
            ),
          )
          const written = expectTag(again.result, "Succeeded")
          assert.deepStrictEqual(
            again.imports.map((r) => (r.pem !== undefined ? "pem" : "pkcs12")),
            ["pkcs12"],
          )
          assert.strictEqual(vault.latest(NAME)?.x5t, rsa.x5t)
          assert.strictEqual(vault.latest(NAME)?.contentType, PKCS12_CONTENT_TYPE)
          assert.deepStrictEqual(written.contentType, {
            imported: PKCS12_CONTENT_TYPE,
            served: PEM_CONTENT_TYPE,
            change: "changed",
          })
          // The tag may be left out again: the version written carries it, so the target is in place.
          expectTag(yield* runDeploy(request(rsa.material, {}, withConsumers("app_service"))), "Skipped")
        }),
      ),
  )

  it.effect(
    "the soft-deleted certificate a recovery brings back is this one, served as PEM: Skipped, states no content type, warns as for one served",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* vault.seed(NAME, rsa.material, { tags: managedTags, contentType: PEM_CONTENT_TYPE })
          yield* vault.softDelete(NAME)
          const { result, imports } = yield* recordingImports(
            runDeploy(
              request(rsa.material, {}, target({ consumers: ["app_service"], on_soft_deleted: "recover" })),
            ),
          )
          const o = expectTag(result, "Skipped")
          assert.strictEqual(o.recovered, "recovered")
          // The PKCS#12 import sent first met the soft-deleted certificate (409): nothing was written.
          assert.lengthOf(imports, 1)
          assert.lengthOf(vault.versions(NAME), 1)
          assert.strictEqual(vault.latest(NAME)?.contentType, PEM_CONTENT_TYPE)
          assert.isUndefined(o.contentType)
          assert.deepStrictEqual(
            o.warnings?.map((w) => w.field),
            ["consumers"],
          )
          assert.match(
            o.warnings?.[0]?.message ?? "",
            /^names app_service, which read PKCS#12 only, and the soft-deleted certificate a recovery brings back serves this certificate's secret as application\/x-pem-file: it is this certificate, so it is recovered and no version is imported; the secret becomes application\/x-pkcs12 with the next version a deploy writes/,
          )
        }),
      ),
  )

  it.effect("a PFX over Key Vault's limit whose PEM fits is refused at preflight (PEM would not help)", () =>
    Effect.gen(function* () {
      const material = issue({ seed: "oversized", issuer: ca }).material
      const size = (yield* SyntheticCodec.encode(material, transportPfxOptions("modern"))).byteLength
      const policy = yield* DeployPolicy
      // The codec states no bound: preflight builds the PFX and measures it.
      const unbounded: (typeof PfxCodec)["Service"] = {
        inspect: SyntheticCodec.inspect,
        encode: SyntheticCodec.encode,
        encodePem: SyntheticCodec.encodePem,
        decode: SyntheticCodec.decode,
      }
      const over = (config = target()) =>
        preflight(request(material, {}, config)).pipe(
          Effect.provideService(PfxCodec, unbounded),
          Effect.provideService(DeployPolicy, { ...policy, maxPfxBytes: size - 1 }),
        )
      // Without consumers, keep passes it on (a vault serving PEM would get the PEM).
      const kept = yield* over()
      assert.strictEqual(kept._tag, "Passed")
      const refused = yield* over(withConsumers("front_door"))
      assert.strictEqual(refused._tag, "Rejected")
      if (refused._tag === "Rejected") {
        assert.deepStrictEqual(
          refused.problems.map((p) => p.reason),
          ["pfx_too_large"],
        )
        assert.match(
          refused.problems[0]?.message ?? "",
          /content_type keep imports PKCS#12 whatever the vault serves, as consumers front_door read PKCS#12 only/,
        )
        // Front Door takes no EC key: the fix does not offer one (nor content_type: pem).
        assert.notMatch(refused.problems[0]?.fix ?? "", /or an EC key|content_type: pem/)
        assert.match(refused.problems[0]?.fix ?? "", /front_door takes no EC key/)
      }
      // Application Gateway's docs say nothing of EC keys: not offered either; App Service takes them.
      const gateway = yield* over(withConsumers("application_gateway"))
      assert.strictEqual(gateway._tag, "Rejected")
      if (gateway._tag === "Rejected") assert.notMatch(gateway.problems[0]?.fix ?? "", /or an EC key/)
      const appService = yield* over(withConsumers("app_service"))
      assert.strictEqual(appService._tag, "Rejected")
      if (appService._tag === "Rejected") assert.match(appService.problems[0]?.fix ?? "", /or an EC key/)
    }).pipe(Effect.provide(TestWorld.layer)),
  )
})
