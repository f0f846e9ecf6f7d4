/**
 * The PFX kvdeploy imports (forward deploys and rollbacks) is built with
 * `transportPfxOptions(target.pfxEncoding)`: the target's encoding, the blank
 * password and one KDF/MAC iteration. Stretching a blank password protects
 * nothing (anybody derives the same keys), so the file's protection is the TLS
 * connection that carries it; the iterations would only cost CPU on both ends.
 * The codec is decorated to record the options of every `encode` call.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import {
  type DeployOutcome,
  type ImportRequest,
  PfxCodec,
  type PfxEncodeOptions,
  type PfxEncoding,
  transportIterations,
  transportPfxOptions,
  Vault,
} from "../src/index.js"
import { Fault, InMemoryVaultHandle, issue, makeAuthority } from "../src/testing/index.js"
import { fresh, NAME, request, runDeploy, seedManaged, target } from "./fixtures.js"

const ca = makeAuthority("transport-pfx")
const oldCert = issue({ seed: "old", issuer: ca })
const newCert = issue({ seed: "new", issuer: ca })
/** A renewal that reuses the old certificate's key (rollback from the reused key). */
const renewedSameKey = issue({ seed: "renewed", issuer: ca, key: oldCert.key })

interface Recorded {
  /** The options of every encode call, password revealed (it is blank; never a secret here). */
  readonly encodes: Array<{
    readonly encoding: string
    readonly password: string
    readonly iterations: unknown
  }>
  readonly imports: Array<ImportRequest>
}

/**
 * Run `eff` with the codec's `encode` and the vault's `importVersion` recorded. `bound: false`
 * hides the codec's size bound, so preflight builds the PFX itself (the other build site).
 */
const recording = <A, E, R>(eff: Effect.Effect<A, E, R>, options: { readonly bound?: boolean } = {}) =>
  Effect.gen(function* () {
    const codec = yield* PfxCodec
    const vault = yield* Vault
    const seen: Recorded = { encodes: [], imports: [] }
    const { maxEncodedBytes, ...withoutBound } = codec
    const decorated: (typeof PfxCodec)["Service"] = {
      ...withoutBound,
      ...(options.bound === false || maxEncodedBytes === undefined ? {} : { maxEncodedBytes }),
      encode: (material, o: PfxEncodeOptions) => {
        seen.encodes.push({
          encoding: o.encoding,
          password: Redacted.value(o.password),
          iterations: o.iterations,
        })
        return codec.encode(material, o)
      },
    }
    const result = yield* eff.pipe(
      Effect.provideService(PfxCodec, decorated),
      Effect.provideService(Vault, {
        ...vault,
        importVersion: (r) => {
          seen.imports.push(r)
          return vault.importVersion(r)
        },
      }),
    )
    return { result, seen }
  })

const expectTag = (o: DeployOutcome, tag: DeployOutcome["_tag"]) =>
  assert.strictEqual(o._tag, tag, `expected ${tag}, got ${o._tag}: ${o.reason}`)

const transport = (encoding: PfxEncoding) => ({ encoding, password: "", iterations: 1 })

describe("transportPfxOptions", () => {
  it("is the target's encoding, the blank password and one iteration", () => {
    assert.strictEqual(transportIterations, 1)
    for (const encoding of ["modern", "legacy"] as const) {
      const o = transportPfxOptions(encoding)
      assert.deepStrictEqual<unknown>({ ...o, password: Redacted.value(o.password) }, transport(encoding))
    }
  })
})

describe("every PFX a deploy builds is asked for with transportPfxOptions", () => {
  for (const encoding of ["modern", "legacy"] as const) {
    it.effect(`forward deploy, pfx_encoding ${encoding}, built during the snapshot read`, () =>
      fresh(
        Effect.gen(function* () {
          yield* seedManaged(oldCert.material)
          const { result, seen } = yield* recording(
            runDeploy(request(newCert.material, {}, target({ pfx_encoding: encoding }))),
          )
          expectTag(result, "Succeeded")
          assert.deepStrictEqual(seen.encodes, [transport(encoding)])
          assert.strictEqual(seen.imports.length, 1)
          assert.strictEqual(Redacted.value(seen.imports[0]!.password!), "")
        }),
      ),
    )

    it.effect(`forward deploy, pfx_encoding ${encoding}, built in preflight (codec without a bound)`, () =>
      fresh(
        Effect.gen(function* () {
          const { result, seen } = yield* recording(
            runDeploy(request(newCert.material, {}, target({ pfx_encoding: encoding }))),
            { bound: false },
          )
          expectTag(result, "Succeeded")
          assert.deepStrictEqual(seen.encodes, [transport(encoding)])
          assert.strictEqual(Redacted.value(seen.imports[0]!.password!), "")
        }),
      ),
    )

    it.effect(`rollback from the backing secret, pfx_encoding ${encoding}`, () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          const { result, seen } = yield* recording(
            runDeploy(request(newCert.material, {}, target({ pfx_encoding: encoding }))),
          )
          expectTag(result, "RolledBack")
          // The forward PFX, then the previous material's.
          assert.deepStrictEqual(seen.encodes, [transport(encoding), transport(encoding)])
          assert.strictEqual(seen.imports.length, 2)
          for (const r of seen.imports) assert.strictEqual(Redacted.value(r.password!), "")
          assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
        }),
      ),
    )
  }

  it.effect("rollback from the reused key (no secrets/get)", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.setSecretsGet(false)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const { result, seen } = yield* recording(runDeploy(request(renewedSameKey.material)))
        expectTag(result, "RolledBack")
        assert.deepStrictEqual(seen.encodes, [transport("modern"), transport("modern")])
        assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
      }),
    ),
  )
})
