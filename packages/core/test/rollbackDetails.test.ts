/**
 * What a rollback says and where its material comes from, in the detail an operator reads: the
 * verify's differences in the outcome, the rollback's decisions in the audit record, which source
 * restored the previous certificate (and with which chain), and the advice of a rollback that could
 * not find the previous material. Each case here was left unchecked by deploy.test.ts: a mutation
 * run (Stryker) changed the code it covers and the suite still passed.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import {
  type DeployOutcome,
  PfxCodec,
  PfxEncodeError,
  ROLLBACK_OF_TAG,
  Vault,
  type VaultError,
  VaultForbidden,
  VaultMalformedAnswer,
  type VersionSecret,
} from "../src/index.js"
import { type AlterChange, Fault, InMemoryVaultHandle, issue, makeAuthority } from "../src/testing/index.js"
import { expectTag, fresh, managedTags, NAME, request, runDeploy, seedManaged } from "./fixtures.js"

const ca = makeAuthority("rollback-details")
const oldCert = issue({ seed: "old", issuer: ca })
const newCert = issue({ seed: "new", issuer: ca })
const otherCert = issue({ seed: "other", issuer: ca })

/** The deploy's decisions made by its rollback, in order. */
const rollbackNotes = (o: DeployOutcome): ReadonlyArray<string> =>
  o.decisions.filter((d) => d.startsWith("rollback:"))

/** Run `eff` with the vault's backing-secret reads answered by `answer` instead of the vault. */
const withBackingSecret = <A, E, R>(
  answer: Effect.Effect<VersionSecret, VaultError>,
  eff: Effect.Effect<A, E, R>,
) =>
  Effect.flatMap(Effect.service(Vault), (vault) =>
    Effect.provideService(eff, Vault, { ...vault, getVersionSecret: () => answer }),
  )

const blank = Redacted.make("")

describe("the verify's differences, named in the outcome", () => {
  const cases: ReadonlyArray<
    readonly [AlterChange, (imported: { x5t: string; serialHex: string }) => string]
  > = [
    ["other-x5t", (n) => `x5t is other-${n.x5t}, expected ${n.x5t}`],
    ["other-serial", (n) => `serial is ff${n.serialHex}, expected ${n.serialHex}`],
    ["disable", () => "the version is disabled"],
    ["drop-tags", () => "kvdeploy's tags are missing or changed"],
  ]
  for (const [change, difference] of cases)
    it.effect(`${change}: the reason and the decisions name that difference alone`, () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter(change))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RolledBack")
          const expected = difference({ x5t: newCert.x5t, serialHex: newCert.serialHex })
          assert.include(o.reason, `${o.failedVersionId} was wrong (${expected})`)
          assert.include(o.decisions, `verify: mismatch (${expected})`)
        }),
      ),
    )
})

describe("the rollback's decisions", () => {
  it.effect(
    "restored from the backing secret: its source, the version imported, verified; nothing else",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RolledBack")
          assert.deepStrictEqual(rollbackNotes(o), [
            "rollback: previous material from backing-secret",
            `rollback: imported ${o.rollbackVersionId}`,
            "rollback: verified",
          ])
        }),
      ),
  )

  it.effect(
    "an adopted version's tags that do not fit: the last ones in key order dropped, counted and named",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          // Written in reverse key order: the rollback keeps the first in key order, not in the order read.
          const tags = Object.fromEntries(
            Array.from({ length: 15 }, (_, i) => 14 - i).map((i) => [
              `t${String(i).padStart(2, "0")}`,
              `v${i}`,
            ]),
          )
          yield* vault.seed(NAME, oldCert.material, { tags })
          vault.script("importVersion", Fault.alter("drop-tags"))
          const o = expectTag(yield* runDeploy(request(newCert.material, { adopt: true })), "RolledBack")
          const restored = vault.latest(NAME)?.tags ?? {}
          assert.deepStrictEqual(
            Object.keys(restored)
              .filter((k) => /^t\d\d$/.test(k))
              .sort(),
            Array.from({ length: 12 }, (_, i) => `t${String(i).padStart(2, "0")}`),
          )
          assert.include(
            rollbackNotes(o),
            "rollback: 3 of the previous version's tags do not fit beside kvdeploy's (dropped: t12, t13, t14)",
          )
        }),
      ),
  )
})

describe("where the previous material comes from", () => {
  it.effect(
    "a caller key with a chain that partly issues the previous certificate: restored with that part",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.setSecretsGet(false)
          vault.script("importVersion", Fault.alter("drop-tags"))
          const unrelated = makeAuthority("unrelated-ca")
          const o = expectTag(
            yield* runDeploy(
              request(newCert.material, {
                previousKey: oldCert.material.key,
                previousChain: [unrelated.certificate, ca.certificate],
              }),
            ),
            "RolledBack",
          )
          assert.strictEqual(o.rollbackSource, "caller-key")
          assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
          assert.deepStrictEqual(vault.latest(NAME)?.material.chain, [ca.certificate])
        }),
      ),
  )

  it.effect("a caller key for a self-signed previous certificate, given with a chain: restored alone", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const self = makeAuthority("self-previous", "CN=self-previous.example.test")
        const selfSigned = { leaf: self.certificate, chain: [], key: Redacted.make(self.key.bytes) }
        const seeded = yield* vault.seed(NAME, selfSigned, { tags: managedTags })
        vault.setSecretsGet(false)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const o = expectTag(
          yield* runDeploy(
            request(newCert.material, { previousKey: selfSigned.key, previousChain: [ca.certificate] }),
          ),
          "RolledBack",
        )
        assert.strictEqual(o.rollbackSource, "caller-key")
        assert.strictEqual(vault.latest(NAME)?.x5t, seeded.x5t)
        assert.deepStrictEqual(vault.latest(NAME)?.material.chain, [])
      }),
    ),
  )

  it.effect("a caller key without its chain: the rollback says to give the chain with the key", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.setSecretsGet(false)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const o = expectTag(
          yield* runDeploy(request(newCert.material, { previousKey: oldCert.material.key })),
          "RollbackFailed",
        )
        assert.include(
          o.reason,
          `caller-key: no chain came with the key, and the previous certificate is issued by "${ca.name}": its chain cannot be restored (give the chain with the key)`,
        )
        assert.strictEqual(vault.versions(NAME).length, 2)
      }),
    ),
  )

  it.effect("a backing secret holding another certificate is not restored", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const codec = yield* PfxCodec
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const pfx = yield* codec.encode(otherCert.material, { encoding: "modern", password: blank })
        const o = expectTag(
          yield* withBackingSecret(
            Effect.succeed({ pfx, password: blank }),
            runDeploy(request(newCert.material)),
          ),
          "RollbackFailed",
        )
        assert.include(
          o.reason,
          `previous key unavailable: the backing secret held no usable previous material; keep key history (backing-secret: the certificate is not the previous version's (x5t ${otherCert.x5t}); reused-key: the key does not match the previous certificate)`,
        )
        // Nothing imported for the rollback: the failed version is still the latest.
        assert.strictEqual(vault.versions(NAME).length, 2)
        assert.strictEqual(vault.latest(NAME)?.x5t, newCert.x5t)
        assert.deepStrictEqual(rollbackNotes(o), [
          `rollback: previous key unavailable (backing-secret: the certificate is not the previous version's (x5t ${otherCert.x5t}); reused-key: the key does not match the previous certificate)`,
        ])
      }),
    ),
  )

  const garbage = Effect.succeed({ pfx: new Uint8Array([1, 2, 3]), password: blank })

  it.effect("a backing secret that is no PFX: its decode's reason given", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const o = expectTag(
          yield* withBackingSecret(garbage, runDeploy(request(newCert.material))),
          "RollbackFailed",
        )
        assert.match(
          o.reason,
          /^.*previous key unavailable: the backing secret held no usable previous material; keep key history \(backing-secret: [^;]+; reused-key: the key does not match the previous certificate\)$/,
        )
        assert.notInclude(o.reason, "backing-secret: ;")
        assert.strictEqual(vault.versions(NAME).length, 2)
        // The decode that failed, named as a vault call's error is (a line's `error`, `operation`).
        assert.deepStrictEqual(
          { step: o.step, error: o.error, operation: o.operation },
          { step: "rollback", error: "PfxDecodeError", operation: "decode" },
        )
      }),
    ),
  )

  it.effect(
    "the previous material's PFX cannot be built: RollbackFailed naming the encode's error as a call's (step, error, operation)",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          const codec = yield* PfxCodec
          const isPrevious = (leaf: Uint8Array) =>
            Buffer.from(leaf).equals(Buffer.from(oldCert.material.leaf))
          const o = expectTag(
            yield* Effect.provideService(runDeploy(request(newCert.material)), PfxCodec, {
              ...codec,
              // The rollback's build of the previous certificate's PFX fails; the deploy's own passes.
              encode: (material, options) =>
                isPrevious(material.leaf)
                  ? Effect.fail(new PfxEncodeError({ finding: "injected: the PFX could not be built" }))
                  : codec.encode(material, options),
            }),
            "RollbackFailed",
          )
          assert.include(
            o.reason,
            "the previous PFX could not be built: injected: the PFX could not be built",
          )
          assert.deepStrictEqual(
            { step: o.step, error: o.error, operation: o.operation },
            { step: "rollback", error: "PfxEncodeError", operation: "encode" },
          )
        }),
      ),
  )

  it.effect("a backing secret that is no PFX, and the key reused: restored from the reused key", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const renewed = issue({ seed: "renewed", issuer: ca, key: oldCert.key })
        const o = expectTag(
          yield* withBackingSecret(garbage, runDeploy(request(renewed.material))),
          "RolledBack",
        )
        assert.strictEqual(o.rollbackSource, "reused-key")
        assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
      }),
    ),
  )
})

describe("the advice of a rollback that found no previous material", () => {
  it.effect("without secrets/get: the grant and where to scope it", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.setSecretsGet(false)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
        assert.include(
          o.reason,
          "previous key unavailable: grant secrets/get or keep key history (backing-secret: forbidden (the identity lacks secrets/get on the backing secret, a secret object of its own: grant it scoped to …/vaults/VAULT/secrets/NAME or to the vault; a role scoped to the certificate alone may not cover it); reused-key: the key does not match the previous certificate)",
        )
      }),
    ),
  )

  it.effect("a previous key that is not exportable: only key history could restore it", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material, { exportable: false })
        vault.script("importVersion", Fault.alter("drop-tags"))
        const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
        assert.include(
          o.reason,
          "previous key unavailable: the previous key is not exportable, so only kept key history could restore it (backing-secret: the previous key is not exportable;",
        )
      }),
    ),
  )

  const refusals: ReadonlyArray<readonly [VaultForbidden["refusal"], string]> = [
    ["permission", "grant secrets/get or keep key history"],
    [undefined, "grant secrets/get or keep key history"],
    ["disabled", "enable the previous version (Key Vault reads no disabled secret) or keep key history"],
    ["network", "fix the vault access the backing secret's read was refused for"],
    ["token", "fix the vault access the backing secret's read was refused for"],
  ]
  for (const [refusal, advice] of refusals)
    it.effect(`a backing-secret read forbidden (refusal ${refusal ?? "not known"}): ${advice}`, () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          const forbidden = new VaultForbidden({
            operation: "getVersionSecret",
            detail: "refused",
            ...(refusal === undefined ? {} : { refusal }),
          })
          const o = expectTag(
            yield* withBackingSecret(Effect.fail(forbidden), runDeploy(request(newCert.material))),
            "RollbackFailed",
          )
          assert.include(o.reason, `previous key unavailable: ${advice}`)
          assert.strictEqual(vault.versions(NAME).length, 2)
        }),
      ),
    )
})

describe("a backing secret's malformed answer: held nothing usable, or not read", () => {
  const cases: ReadonlyArray<readonly [boolean | undefined, string, string]> = [
    // The adapter read the secret's value, and it holds nothing to restore from.
    [true, "the backing secret held no usable previous material; keep key history", "could not be read"],
    // Nothing of the secret was read (the SDK failed on the answer, it lacked the value).
    [
      undefined,
      "the previous version's backing secret could not be read, and not for a refused permission (why, in brackets): restore the previous certificate by hand, or keep key history",
      "held no usable previous material",
    ],
    [
      false,
      "the previous version's backing secret could not be read, and not for a refused permission (why, in brackets): restore the previous certificate by hand, or keep key history",
      "held no usable previous material",
    ],
  ]
  for (const [unrestorable, advice, notSaid] of cases)
    it.effect(`unrestorable ${unrestorable ?? "not set"}: ${advice.slice(0, 40)}…`, () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"))
          const malformed = new VaultMalformedAnswer({
            operation: "getVersionSecret",
            detail: "what the adapter found",
            ...(unrestorable === undefined ? {} : { unrestorable }),
          })
          const o = expectTag(
            yield* withBackingSecret(Effect.fail(malformed), runDeploy(request(newCert.material))),
            "RollbackFailed",
          )
          assert.include(
            o.reason,
            `previous key unavailable: ${advice} (backing-secret: reading a version's secret: the vault's answer cannot be used: what the adapter found;`,
          )
          assert.notInclude(o.reason, notSaid)
          assert.strictEqual(vault.versions(NAME).length, 2)
        }),
      ),
    )
})

describe("a rollback import whose answer was lost", () => {
  it.effect("found in the version list: restored, the decisions say it was reconciled", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seedManaged(oldCert.material)
        vault.script("importVersion", Fault.alter("drop-tags"), Fault.afterWrite)
        const o = expectTag(yield* runDeploy(request(newCert.material)), "RolledBack")
        const latest = vault.latest(NAME)
        assert.strictEqual(o.rollbackVersionId, latest?.versionId)
        assert.strictEqual(latest?.tags[ROLLBACK_OF_TAG], o.failedVersionId)
        assert.deepStrictEqual(rollbackNotes(o), [
          "rollback: previous material from backing-secret",
          "rollback: import outcome unknown; reconciling from the version list",
          `rollback: imported ${o.rollbackVersionId}`,
          "rollback: verified",
        ])
      }),
    ),
  )

  it.effect(
    "and the versions cannot be listed: RollbackFailed, saying the rollback's outcome is unknown",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seedManaged(oldCert.material)
          vault.script("importVersion", Fault.alter("drop-tags"), Fault.afterWrite)
          // The list read before the rollback's import passes; the reconciliation's lists fail.
          vault.script("listVersions", Fault.pass, ...Fault.repeat(5, Fault.fail("Unavailable")))
          const o = expectTag(yield* runDeploy(request(newCert.material)), "RollbackFailed")
          assert.match(o.reason, /rollback import outcome unknown and the versions could not be listed/)
          assert.isUndefined(o.rollbackVersionId)
        }),
      ),
  )
})
