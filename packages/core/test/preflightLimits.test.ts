/**
 * Preflight's limits at their edges: every key type and size Key Vault accepts passes, and a
 * PFX of exactly the size limit fits (one byte over does not) when preflight measures it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { DeployPolicy, PfxCodec, preflight, transportPfxOptions } from "../src/index.js"
import type { Curve } from "../src/material.js"
import { issue, makeAuthority, SyntheticCodec, TestWorld } from "../src/testing/index.js"
import { request, target } from "./fixtures.js"

const ca = makeAuthority("preflight-limits")

describe("key types Key Vault accepts", () => {
  it.effect("RSA 2048, 3072, 4096 and EC P-256, P-384, P-521, P-256K pass; RSA 1024 and 8192 do not", () =>
    Effect.gen(function* () {
      const verdict = (spec: { keySize?: number; curve?: Curve }, seed: string) =>
        Effect.map(
          preflight(
            request(
              issue({ seed, issuer: ca, keyType: spec.curve === undefined ? "RSA" : "EC", ...spec }).material,
            ),
          ),
          (r) => (r._tag === "Passed" ? "Passed" : r.problems.map((p) => p.reason).join(",")),
        )
      for (const keySize of [2048, 3072, 4096])
        assert.strictEqual(yield* verdict({ keySize }, `rsa-${keySize}`), "Passed", `RSA ${keySize}`)
      for (const curve of ["P-256", "P-384", "P-521", "P-256K"] as const)
        assert.strictEqual(yield* verdict({ curve }, `ec-${curve}`), "Passed", curve)
      for (const keySize of [1024, 8192])
        assert.strictEqual(yield* verdict({ keySize }, `rsa-${keySize}`), "unsupported_key", `RSA ${keySize}`)
    }).pipe(Effect.provide(TestWorld.layer)),
  )
})

describe("the size rule at its limit", () => {
  it.effect(
    "measured by preflight (a codec with no bound): exactly maxPfxBytes passes, a limit one byte smaller does not",
    () =>
      Effect.gen(function* () {
        const material = issue({ seed: "size-edge", issuer: ca }).material
        const req = request(material)
        const size = (yield* SyntheticCodec.encode(material, transportPfxOptions(req.target.pfxEncoding)))
          .byteLength
        const policy = yield* DeployPolicy
        // The codec states no bound: preflight builds the PFX and measures it.
        const unbounded: (typeof PfxCodec)["Service"] = {
          inspect: SyntheticCodec.inspect,
          encode: SyntheticCodec.encode,
          encodePem: SyntheticCodec.encodePem,
          decode: SyntheticCodec.decode,
        }
        const withLimit = (maxPfxBytes: number, r = req) =>
          preflight(r).pipe(
            Effect.provideService(PfxCodec, unbounded),
            Effect.provideService(DeployPolicy, { ...policy, maxPfxBytes }),
          )
        const fits = yield* withLimit(size)
        assert.strictEqual(fits._tag, "Passed")
        if (fits._tag === "Passed") assert.strictEqual(fits.pfx?.byteLength, size)
        // content_type pkcs12: only a PFX can be imported, refused here.
        const over = yield* withLimit(size - 1, request(material, {}, target({ content_type: "pkcs12" })))
        assert.strictEqual(over._tag, "Rejected")
        if (over._tag === "Rejected")
          assert.deepStrictEqual(
            over.problems.map((p) => p.reason),
            ["pfx_too_large"],
          )
        // content_type keep (the default): a vault serving PEM would get the PEM, which fits; the
        // PFX's problem is kept for a PKCS#12 import, decided after the snapshot.
        const kept = yield* withLimit(size - 1)
        assert.strictEqual(kept._tag, "Passed")
        if (kept._tag === "Passed") assert.strictEqual(kept.pfxTooLarge?.reason, "pfx_too_large")
        // Its fix names content_type: pem, as the PEM fits (then a smaller chain).
        if (kept._tag === "Passed")
          assert.match(
            kept.pfxTooLarge?.fix ?? "",
            /^shorten the chain.*; or set content_type: pem once the secret.s consumers read PEM/,
          )
      }).pipe(Effect.provide(TestWorld.layer)),
  )
})
