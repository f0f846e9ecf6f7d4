/**
 * Where the PFX is built. Preflight decides Key Vault's 25 KB rule before any
 * vault call, from the codec's size bound when it settles it (building the PFX
 * only when it does not); the deploy builds the PFX only when it will import,
 * and while the snapshot read is on its way when that read has not answered
 * at once. The call order is recorded against the TestClock: no timing
 * assertion depends on the machine.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import {
  type DeployOutcome,
  DeployPolicy,
  type DeployPolicyShape,
  deploy,
  PfxCodec,
  preflight,
  Vault,
} from "../src/index.js"
import type { CertificateMaterial } from "../src/material.js"
import {
  InMemoryVaultHandle,
  issue,
  makeAuthority,
  makeKey,
  runAdvancingClock,
  type SyntheticAuthority,
  SyntheticCodec,
  TestWorld,
} from "../src/testing/index.js"
import { fresh, NAME, request, runDeploy, seedManaged, target } from "./fixtures.js"

const ca = makeAuthority("pfx-build")
const oldCert = issue({ seed: "old", issuer: ca })
const newCert = issue({ seed: "new", issuer: ca })

const policyWith = (overrides: Partial<DeployPolicyShape>) =>
  Effect.map(Effect.service(DeployPolicy), (p): DeployPolicyShape => ({ ...p, ...overrides }))

/** A leaf under a chain of `depth` intermediates (each certificate a real link the codec verifies). */
const deepChain = (depth: number) => {
  let issuer: SyntheticAuthority = ca
  const intermediates: Array<Uint8Array> = []
  for (let i = 0; i < depth; i++) {
    const key = makeKey(`intermediate-${i}`)
    const name = `CN=Synthetic Intermediate ${i} with a name long enough to weigh something`
    const cert = issue({ seed: `intermediate-${i}`, issuer, key, subject: name, withChain: false })
    intermediates.push(cert.material.leaf)
    issuer = { name, key, certificate: cert.material.leaf }
  }
  const leaf = issue({ seed: `deep-${depth}`, issuer, withChain: false })
  return { ...leaf.material, chain: [...intermediates].reverse().concat(ca.certificate) }
}

type Event = readonly [string, number]

/**
 * The in-memory vault and the synthetic codec, decorated: calls are recorded
 * with the TestClock's time, `getLatest` answers after `readMs`, `encode`
 * takes `encodeMs` (a timer), and the codec states its size bound or not.
 */
const instrumented = (options: { readMs?: number; encodeMs?: number; bound?: "exact" | "none" | number }) =>
  Effect.gen(function* () {
    const vault = yield* Vault
    const codec = yield* PfxCodec
    const events: Array<Event> = []
    const at = (what: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => events.push([what, t])))
    const readMs = options.readMs ?? 0
    const encodeMs = options.encodeMs ?? 0
    const decoratedVault: (typeof Vault)["Service"] = {
      ...vault,
      getLatest: (name) =>
        Effect.andThen(
          at("getLatest:sent"),
          Effect.exit(vault.getLatest(name)).pipe(
            Effect.tap(() => (readMs > 0 ? Effect.sleep(readMs) : Effect.void)),
            Effect.tap(() => at("getLatest:answered")),
            Effect.flatten,
          ),
        ),
      importVersion: (r) => Effect.andThen(at("importVersion"), vault.importVersion(r)),
    }
    const bound = options.bound ?? "exact"
    const decoratedCodec: (typeof PfxCodec)["Service"] = {
      inspect: codec.inspect,
      decode: codec.decode,
      encodePem: codec.encodePem,
      encode: (material, o) =>
        Effect.andThen(
          at("encode:start"),
          (encodeMs > 0 ? Effect.sleep(encodeMs) : Effect.void).pipe(
            Effect.andThen(codec.encode(material, o)),
            Effect.tap(() => at("encode:end")),
          ),
        ),
      ...(bound === "none"
        ? {}
        : {
            maxEncodedBytes: (
              material: CertificateMaterial,
              o: Parameters<typeof SyntheticCodec.encode>[1],
            ) =>
              bound === "exact"
                ? SyntheticCodec.maxEncodedBytes(material, o)
                : SyntheticCodec.maxEncodedBytes(material, o) + bound,
          }),
    }
    const run = (material: CertificateMaterial, policy: Partial<DeployPolicyShape> = {}) =>
      Effect.flatMap(policyWith(policy), (p) =>
        // TestClock steps of 10 ms, so the recorded times say when each call happened.
        runAdvancingClock(deploy(request(material)), "10 millis").pipe(
          Effect.provideService(Vault, decoratedVault),
          Effect.provideService(PfxCodec, decoratedCodec),
          Effect.provideService(DeployPolicy, p),
        ),
      )
    return { events, run, names: () => events.map(([what]) => what), codec: decoratedCodec }
  })

const count = (events: ReadonlyArray<Event>, what: string) => events.filter(([w]) => w === what).length
const timeOf = (events: ReadonlyArray<Event>, what: string) => events.find(([w]) => w === what)?.[1]
const expectTag = <T extends DeployOutcome["_tag"]>(o: DeployOutcome, tag: T) =>
  assert.strictEqual(o._tag, tag, `expected ${tag}, got ${o._tag}: ${o.reason}`)

describe("a Skipped deploy builds no PFX", () => {
  it.effect("snapshot answered at once: encode is never called, 1 vault call", () =>
    fresh(
      Effect.gen(function* () {
        yield* seedManaged(newCert.material)
        const world = yield* instrumented({})
        const o = yield* world.run(newCert.material)
        expectTag(o, "Skipped")
        assert.strictEqual(o.vaultCalls, 1)
        assert.strictEqual(count(world.events, "encode:start"), 0)
      }),
    ),
  )

  it.effect("snapshot on its way, buildPfxDuringSnapshot: false: encode is never called", () =>
    fresh(
      Effect.gen(function* () {
        yield* seedManaged(newCert.material)
        const world = yield* instrumented({ readMs: 50, encodeMs: 50 })
        const o = yield* world.run(newCert.material, { buildPfxDuringSnapshot: false })
        expectTag(o, "Skipped")
        assert.strictEqual(count(world.events, "encode:start"), 0)
      }),
    ),
  )

  it.effect(
    "snapshot on its way, default policy: the build ran during the wait (CPU spent, no time added) and nothing was imported",
    () =>
      fresh(
        Effect.gen(function* () {
          yield* seedManaged(newCert.material)
          const world = yield* instrumented({ readMs: 50, encodeMs: 50 })
          const start = yield* Clock.currentTimeMillis
          const o = yield* world.run(newCert.material)
          expectTag(o, "Skipped")
          assert.strictEqual(count(world.events, "encode:start"), 1)
          assert.strictEqual(count(world.events, "importVersion"), 0)
          // The deploy took the read's 50 ms, not 50 + 50.
          assert.strictEqual(o.timings.durationMs, 50)
          assert.strictEqual(o.timings.startedAtMs, start)
        }),
      ),
  )
})

describe("the build overlaps the snapshot read", () => {
  it.effect(
    "read 50 ms, encode 50 ms: the encode starts before the read answers, the import comes after both, at 50 ms",
    () =>
      fresh(
        Effect.gen(function* () {
          yield* seedManaged(oldCert.material)
          const world = yield* instrumented({ readMs: 50, encodeMs: 50 })
          const start = yield* Clock.currentTimeMillis
          const o = yield* world.run(newCert.material)
          expectTag(o, "Succeeded")
          assert.strictEqual(o.vaultCalls, 3)
          const names = world.names()
          assert.deepStrictEqual(names.slice(0, 2), ["getLatest:sent", "encode:start"])
          assert.isBelow(names.indexOf("encode:start"), names.indexOf("getLatest:answered"))
          assert.isAbove(names.indexOf("importVersion"), names.indexOf("getLatest:answered"))
          assert.isAbove(names.indexOf("importVersion"), names.indexOf("encode:end"))
          assert.strictEqual(timeOf(world.events, "importVersion"), start + 50)
          assert.strictEqual(count(world.events, "encode:start"), 1)
          assert.include(o.decisions, "pfx: built while the snapshot read was on its way")
        }),
      ),
  )

  it.effect(
    "buildPfxDuringSnapshot: false: the encode starts after the read answered; the import at 100 ms",
    () =>
      fresh(
        Effect.gen(function* () {
          yield* seedManaged(oldCert.material)
          const world = yield* instrumented({ readMs: 50, encodeMs: 50 })
          const start = yield* Clock.currentTimeMillis
          const o = yield* world.run(newCert.material, { buildPfxDuringSnapshot: false })
          expectTag(o, "Succeeded")
          const names = world.names()
          assert.isAbove(names.indexOf("encode:start"), names.indexOf("getLatest:answered"))
          assert.strictEqual(timeOf(world.events, "importVersion"), start + 100)
        }),
      ),
  )

  it.effect(
    "first deploy (the read answers not found): the PFX built during the read is the one imported",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const world = yield* instrumented({ readMs: 50, encodeMs: 50 })
          const o = yield* world.run(newCert.material)
          expectTag(o, "Succeeded")
          assert.strictEqual(count(world.events, "encode:start"), 1)
          assert.strictEqual(vault.latest(NAME)?.x5t, newCert.x5t)
          assert.deepStrictEqual(vault.calls().byOperation, { getLatest: 2, importVersion: 1 })
        }),
      ),
  )
})

describe("the 25 KB rule is decided before any vault call", () => {
  it.effect("a chain too big for Key Vault: Rejected (pfx_too_large) with 0 vault calls", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const material = deepChain(40)
        // The chain is sound (every link verifies): only its size is wrong.
        const inspected = yield* SyntheticCodec.inspect(material)
        assert.deepStrictEqual(inspected.problems, [])
        assert.strictEqual(inspected.chain.length, 41)
        const o = yield* runDeploy(request(material))
        expectTag(o, "Rejected")
        if (o._tag !== "Rejected") return
        assert.deepStrictEqual(
          o.problems.map((p) => p.reason),
          ["pfx_too_large"],
        )
        assert.match(
          o.problems[0]?.message ?? "",
          /makes a PFX of \d+ bytes; Key Vault accepts at most 19200 \(its backing secret holds the PFX as base64/,
        )
        // What helps is a shorter chain (certificates that do not link were refused before this check).
        assert.match(o.problems[0]?.fix ?? "", /^shorten the chain \(leave out the root CA/)
        assert.strictEqual(o.vaultCalls, 0)
        assert.strictEqual(vault.calls().total, 0)
      }),
    ),
  )

  it.effect(
    "a PFX of 19.2-25 KB is too large: Key Vault stores it as base64, at most 25,600 characters",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const options = { encoding: "modern" as const, password: Redacted.make("") }
          // The shallowest chain whose PFX is over 19,200 bytes (and still under 25,600).
          let depth = 8
          let size = (yield* SyntheticCodec.encode(deepChain(depth), options)).byteLength
          while (size <= 19_200) size = (yield* SyntheticCodec.encode(deepChain(++depth), options)).byteLength
          assert.isAbove(size, 19_200)
          assert.isAtMost(size, 25_600)
          assert.isAbove(Math.ceil(size / 3) * 4, 25_600) // its base64 does not fit a secret value
          // content_type pkcs12: refused by preflight, before any vault call.
          const o = yield* runDeploy(request(deepChain(depth), {}, target({ content_type: "pkcs12" })))
          expectTag(o, "Rejected")
          if (o._tag !== "Rejected") return
          assert.deepStrictEqual(
            o.problems.map((p) => p.reason),
            ["pfx_too_large"],
          )
          assert.strictEqual(vault.calls().total, 0)
          // content_type keep (the default): its PEM would fit, so the snapshot decides; the vault
          // serves nothing here, and no soft-deleted certificate (which a recovery would serve, maybe
          // as PEM) holds the name: a first deploy, so PKCS#12 is refused after those two reads.
          const kept = yield* runDeploy(request(deepChain(depth)))
          expectTag(kept, "Rejected")
          if (kept._tag !== "Rejected") return
          assert.deepStrictEqual(
            kept.problems.map((p) => p.reason),
            ["pfx_too_large"],
          )
          assert.deepStrictEqual(vault.calls().byOperation, { getLatest: 1, getDeleted: 1 })
          assert.strictEqual(vault.versions(NAME).length, 0)
        }),
      ),
  )

  it.effect("a chain that fits: preflight settles the rule from the bound and builds nothing", () =>
    Effect.gen(function* () {
      const material = deepChain(8)
      const password = Redacted.make("")
      const bound = SyntheticCodec.maxEncodedBytes(material, { encoding: "modern", password })
      assert.isBelow(bound, 19_200)
      const world = yield* instrumented({})
      const checked = yield* preflight(request(material)).pipe(Effect.provideService(PfxCodec, world.codec))
      assert.strictEqual(checked._tag, "Passed")
      if (checked._tag === "Passed") assert.strictEqual(checked.pfx, undefined)
      assert.strictEqual(count(world.events, "encode:start"), 0)
    }).pipe(Effect.provide(TestWorld.layer)),
  )

  it.effect(
    "a conservative bound over the limit: preflight builds and measures; the PFX fits and is imported without a second build",
    () =>
      fresh(
        Effect.gen(function* () {
          const material = deepChain(8)
          const world = yield* instrumented({ bound: 30 * 1024 })
          const o = yield* world.run(material)
          expectTag(o, "Succeeded")
          assert.strictEqual(count(world.events, "encode:start"), 1)
          // Built in preflight: before the first vault call.
          assert.deepStrictEqual(world.names().slice(0, 2), ["encode:start", "encode:end"])
        }),
      ),
  )

  it.effect(
    "a codec that states no bound: preflight builds and measures the PFX, before any vault call",
    () =>
      fresh(
        Effect.gen(function* () {
          yield* seedManaged(newCert.material)
          const world = yield* instrumented({ bound: "none", readMs: 50 })
          const o = yield* world.run(newCert.material)
          expectTag(o, "Skipped")
          assert.deepStrictEqual(world.names().slice(0, 3), ["encode:start", "encode:end", "getLatest:sent"])
        }),
      ),
  )
})
