/**
 * content_type: a deploy imports in the content type the vault serves (keep, the default), so a
 * secret its consumers read as PEM (a Secrets Store CSI mount, nginx) stays PEM; PKCS#12 for a
 * first deploy; `pkcs12` / `pem` always that one, a change noted. The rollback restores the content
 * type served before; a PEM over Key Vault's 25 KB secret limit writes nothing.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import {
  DeployPolicy,
  type ImportRequest,
  PEM_CONTENT_TYPE,
  PfxCodec,
  PKCS12_CONTENT_TYPE,
  pemToPkcs12Note,
  pkcs12ToPemNote,
  Vault,
  validateTargetConfigSync,
} from "../src/index.js"
import type { CertificateMaterial } from "../src/material.js"
import {
  AuditRecords,
  Fault,
  InMemoryVaultHandle,
  issue,
  MetricsRecorder,
  makeAuthority,
  SyntheticCodec,
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

const ca = makeAuthority("content-type")
const oldCert = issue({ seed: "old", issuer: ca })
const newCert = issue({ seed: "new", issuer: ca })

type Served = typeof PEM_CONTENT_TYPE | typeof PKCS12_CONTENT_TYPE

const seed = (material: CertificateMaterial, contentType?: Served) =>
  Effect.flatMap(Effect.service(InMemoryVaultHandle), (vault) =>
    vault.seed(NAME, material, {
      tags: managedTags,
      ...(contentType === undefined ? {} : { contentType }),
    }),
  )

const kindOf = (r: ImportRequest | undefined) =>
  r === undefined ? "none" : r.pem !== undefined ? "pem" : "pkcs12"

const pemText = (r: ImportRequest | undefined) =>
  r?.pem === undefined ? "" : new TextDecoder().decode(r.pem)

describe("content_type keep (the default)", () => {
  it.effect("over a secret served as PEM: imports PEM, the vault serves PEM after, no change noted", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seed(oldCert.material, PEM_CONTENT_TYPE)
        const { result, imports } = yield* recordingImports(runDeploy(request(newCert.material)))
        const o = expectTag(result, "Succeeded")
        assert.deepStrictEqual(imports.map(kindOf), ["pem"])
        const text = pemText(imports[0])
        // Leaf, chain, then the key; \n line endings.
        assert.match(
          text,
          /^-----BEGIN CERTIFICATE-----\n[\s\S]*-----BEGIN CERTIFICATE-----\n[\s\S]*-----BEGIN PRIVATE KEY-----\n[\s\S]*-----END PRIVATE KEY-----\n$/,
        )
        assert.notInclude(text, "\r")
        assert.strictEqual(vault.latest(NAME)?.contentType, PEM_CONTENT_TYPE)
        assert.strictEqual(vault.latest(NAME)?.x5t, newCert.x5t)
        assert.deepStrictEqual(o.contentType, {
          imported: PEM_CONTENT_TYPE,
          served: PEM_CONTENT_TYPE,
          change: "kept",
        })
        assert.notInclude(o.decisions, pemToPkcs12Note)
        assert.isTrue(o.decisions.some((d) => d.startsWith("content type: keeping PEM")))
        const audit = (yield* AuditRecords).all()
        assert.deepStrictEqual(audit.at(-1)?.contentType, o.contentType)
      }),
    ),
  )

  it.effect("over a secret served as PKCS#12: imports PKCS#12, kept", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seed(oldCert.material, PKCS12_CONTENT_TYPE)
        const { result, imports } = yield* recordingImports(runDeploy(request(newCert.material)))
        const o = expectTag(result, "Succeeded")
        assert.deepStrictEqual(imports.map(kindOf), ["pkcs12"])
        assert.strictEqual(vault.latest(NAME)?.contentType, PKCS12_CONTENT_TYPE)
        assert.deepStrictEqual(o.contentType, {
          imported: PKCS12_CONTENT_TYPE,
          served: PKCS12_CONTENT_TYPE,
          change: "kept",
        })
      }),
    ),
  )

  it.effect("a first deploy imports PKCS#12", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const { result, imports } = yield* recordingImports(runDeploy(request(newCert.material)))
        const o = expectTag(result, "Succeeded")
        assert.deepStrictEqual(imports.map(kindOf), ["pkcs12"])
        assert.strictEqual(vault.latest(NAME)?.contentType, PKCS12_CONTENT_TYPE)
        assert.deepStrictEqual(o.contentType, {
          imported: PKCS12_CONTENT_TYPE,
          served: undefined,
          change: "new",
        })
      }),
    ),
  )

  it.effect("a Skipped deploy imports nothing and states no content type", () =>
    fresh(
      Effect.gen(function* () {
        yield* seed(newCert.material, PEM_CONTENT_TYPE)
        const { result, imports } = yield* recordingImports(runDeploy(request(newCert.material)))
        const o = expectTag(result, "Skipped")
        assert.lengthOf(imports, 0)
        assert.isUndefined(o.contentType)
      }),
    ),
  )
})

describe("content_type pkcs12 and pem", () => {
  it.effect(
    "pem over PKCS#12 for the certificate already served: Skipped, writes nothing, and warns that it takes effect with the next certificate",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seed(newCert.material, PKCS12_CONTENT_TYPE)
          const { result, imports } = yield* recordingImports(
            runDeploy(request(newCert.material, {}, target({ content_type: "pem" }))),
          )
          const o = expectTag(result, "Skipped")
          assert.lengthOf(imports, 0)
          assert.strictEqual(vault.latest(NAME)?.contentType, PKCS12_CONTENT_TYPE)
          const warning = o.warnings?.find((w) => w.field === "content_type")
          assert.include(
            warning?.message ?? "",
            `is pem, and the vault serves this certificate's secret as ${PKCS12_CONTENT_TYPE}`,
          )
          assert.include(
            warning?.message ?? "",
            `becomes ${PEM_CONTENT_TYPE} with the next version a deploy writes`,
          )
          // The way back names the field and the CLI's flag (core does not know which gave it).
          assert.match(
            warning?.fix ?? "",
            /; or set content_type: keep \(`--content-type keep`\) to keep application\/x-pkcs12$/,
          )
          // keep says nothing: it asks for what is served.
          const kept = expectTag(yield* runDeploy(request(newCert.material)), "Skipped")
          assert.isUndefined(kept.warnings?.find((w) => w.field === "content_type"))
        }),
      ),
  )

  it.effect(
    "pem, the soft-deleted certificate recovered is this one (PKCS#12): Skipped, states no content type (none was written), warns of the recovery",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seed(newCert.material, PKCS12_CONTENT_TYPE)
          yield* vault.softDelete(NAME)
          const { result, imports } = yield* recordingImports(
            runDeploy(
              request(newCert.material, {}, target({ content_type: "pem", on_soft_deleted: "recover" })),
            ),
          )
          const o = expectTag(result, "Skipped")
          assert.strictEqual(o.recovered, "recovered")
          // The import sent first (in PEM) met the soft-deleted certificate (409) and wrote nothing.
          assert.deepStrictEqual(imports.map(kindOf), ["pem"])
          assert.lengthOf(vault.versions(NAME), 1)
          assert.strictEqual(vault.latest(NAME)?.contentType, PKCS12_CONTENT_TYPE)
          assert.isUndefined(o.contentType)
          const warning = o.warnings?.find((w) => w.field === "content_type")
          assert.match(
            warning?.message ?? "",
            /^is pem, and the soft-deleted certificate a recovery brings back serves this certificate's secret as application\/x-pkcs12: it is this certificate, so it is recovered and no version is imported/,
          )
        }),
      ),
  )

  for (const [setting, served, imported, kind, note] of [
    ["pkcs12", PEM_CONTENT_TYPE, PKCS12_CONTENT_TYPE, "pkcs12", pemToPkcs12Note],
    ["pem", PKCS12_CONTENT_TYPE, PEM_CONTENT_TYPE, "pem", pkcs12ToPemNote],
  ] as const)
    it.effect(
      `${setting} over ${kind === "pem" ? "PKCS#12" : "PEM"}: imports ${kind === "pem" ? "PEM" : "PKCS#12"} and notes the change`,
      () =>
        fresh(
          Effect.gen(function* () {
            const vault = yield* InMemoryVaultHandle
            yield* seed(oldCert.material, served)
            const { result, imports } = yield* recordingImports(
              runDeploy(request(newCert.material, {}, target({ content_type: setting }))),
            )
            const o = expectTag(result, "Succeeded")
            assert.deepStrictEqual(imports.map(kindOf), [kind])
            assert.strictEqual(vault.latest(NAME)?.contentType, imported)
            assert.include(o.decisions, note)
            assert.deepStrictEqual(o.contentType, { imported, served, change: "changed" })
          }),
        ),
    )

  it.effect("pem on a first deploy imports PEM (and builds no PFX)", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const { result, imports } = yield* recordingImports(
          runDeploy(request(newCert.material, {}, target({ content_type: "pem" }))),
        )
        const o = expectTag(result, "Succeeded")
        assert.deepStrictEqual(imports.map(kindOf), ["pem"])
        assert.notInclude(o.decisions, "pfx: built while the snapshot read was on its way")
        assert.strictEqual(vault.latest(NAME)?.contentType, PEM_CONTENT_TYPE)
      }),
    ),
  )

  it("the field is validated: keep by default; another value is refused naming the field and the values", () => {
    assert.strictEqual(target().contentType, "keep")
    assert.strictEqual(target({ content_type: "pem" }).contentType, "pem")
    const r = validateTargetConfigSync({
      vault_url: "https://kv-test.vault.azure.net",
      certificate_name: NAME,
      content_type: "pfx",
    })
    assert.isTrue(Result.isFailure(r))
    if (Result.isFailure(r)) {
      const p = r.failure.problems.find((x) => x.field === "content_type")
      assert.isDefined(p)
      assert.match(p?.message ?? "", /invalid value/)
      assert.match(p?.fix ?? "", /keep \(default.*\), pkcs12 or pem/)
    }
  })
})

describe("rollback restores the content type served before", () => {
  it.effect("keep over PEM, the new version wrong: the previous material is restored as PEM", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seed(oldCert.material, PEM_CONTENT_TYPE)
        vault.script("importVersion", Fault.alter("drop-tags"))
        const { result, imports } = yield* recordingImports(runDeploy(request(newCert.material)))
        expectTag(result, "RolledBack")
        assert.deepStrictEqual(imports.map(kindOf), ["pem", "pem"])
        assert.strictEqual(vault.latest(NAME)?.x5t, oldCert.x5t)
        assert.strictEqual(vault.latest(NAME)?.contentType, PEM_CONTENT_TYPE)
      }),
    ),
  )

  it.effect("pkcs12 over PEM, the new version wrong: the rollback still restores PEM", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seed(oldCert.material, PEM_CONTENT_TYPE)
        vault.script("importVersion", Fault.alter("other-serial"))
        const { result, imports } = yield* recordingImports(
          runDeploy(request(newCert.material, {}, target({ content_type: "pkcs12" }))),
        )
        const o = expectTag(result, "RolledBack")
        assert.deepStrictEqual(imports.map(kindOf), ["pkcs12", "pem"])
        assert.include(o.decisions, "rollback: restoring the secret as PEM, as it was served")
        assert.strictEqual(vault.latest(NAME)?.contentType, PEM_CONTENT_TYPE)
        // The outcome says what is served after the rollback, not only what was imported.
        assert.deepStrictEqual(o.contentType, {
          imported: PKCS12_CONTENT_TYPE,
          served: PEM_CONTENT_TYPE,
          change: "changed",
          restored: PEM_CONTENT_TYPE,
        })
      }),
    ),
  )

  it.effect(
    "a definite import refusal (Failed): nothing was written, so the outcome states no content type",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seed(oldCert.material, PKCS12_CONTENT_TYPE)
          vault.script("importVersion", Fault.fail("Rejected"))
          const { result, imports } = yield* recordingImports(
            runDeploy(request(newCert.material, {}, target({ content_type: "pem" }))),
          )
          const o = expectTag(result, "Failed")
          assert.deepStrictEqual(imports.map(kindOf), ["pem"])
          assert.isUndefined(o.contentType)
          assert.strictEqual(vault.latest(NAME)?.contentType, PKCS12_CONTENT_TYPE)
        }),
      ),
  )
})

describe("a PEM over Key Vault's 25 KB secret limit", () => {
  const limitedTo = (maxPemBytes: number) =>
    Effect.map(DeployPolicy, (policy) => ({ ...policy, maxPemBytes }))

  it.effect(
    "keep over PEM: Rejected after the snapshot, naming content_type and the size; nothing written",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seed(oldCert.material, PEM_CONTENT_TYPE)
          const size = (yield* SyntheticCodec.encodePem(newCert.material)).byteLength
          const policy = yield* limitedTo(size - 1)
          const before = vault.versions(NAME).length
          const { result, imports } = yield* recordingImports(
            runDeploy(request(newCert.material)).pipe(Effect.provideService(DeployPolicy, policy)),
          )
          const o = expectTag(result, "Rejected")
          assert.lengthOf(imports, 0)
          assert.strictEqual(vault.versions(NAME).length, before)
          assert.strictEqual(o.problems[0]?.field, "content_type")
          assert.include(o.problems[0]?.message ?? "", `${size} bytes`)
          assert.include(o.problems[0]?.message ?? "", `at most ${size - 1}`)
          assert.strictEqual(o.problems[0]?.reason, "pem_too_large")
          assert.isUndefined(o.contentType)
          assert.strictEqual(vault.latest(NAME)?.contentType, PEM_CONTENT_TYPE)
        }),
      ),
  )

  it.effect("pem: Rejected by preflight, before any vault call", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seed(oldCert.material, PKCS12_CONTENT_TYPE)
        const size = (yield* SyntheticCodec.encodePem(newCert.material)).byteLength
        const policy = yield* limitedTo(size - 1)
        vault.resetCalls()
        const { result, imports } = yield* recordingImports(
          runDeploy(request(newCert.material, {}, target({ content_type: "pem" }))).pipe(
            Effect.provideService(DeployPolicy, policy),
          ),
        )
        const o = expectTag(result, "Rejected")
        assert.lengthOf(imports, 0)
        assert.strictEqual(vault.calls().total, 0)
        assert.strictEqual(o.problems[0]?.field, "content_type")
        // The PEM's own size refused it: counted as such, not as a PFX over the limit.
        assert.strictEqual(o.problems[0]?.reason, "pem_too_large")
      }),
    ),
  )
})

describe("a PFX over Key Vault's limit, with content_type keep", () => {
  /** Every PFX is over this limit; the PEM limit stays Key Vault's. */
  const pfxLimitedTo = (maxPfxBytes: number) =>
    Effect.map(DeployPolicy, (policy) => ({ ...policy, maxPfxBytes }))

  it.effect("over a secret served as PEM: the PEM is imported (its own size counts), Succeeded", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seed(oldCert.material, PEM_CONTENT_TYPE)
        const policy = yield* pfxLimitedTo(16)
        const { result, imports } = yield* recordingImports(
          runDeploy(request(newCert.material)).pipe(Effect.provideService(DeployPolicy, policy)),
        )
        expectTag(result, "Succeeded")
        assert.deepStrictEqual(imports.map(kindOf), ["pem"])
        assert.strictEqual(vault.latest(NAME)?.contentType, PEM_CONTENT_TYPE)
      }),
    ),
  )

  it.effect(
    "over a secret served as PKCS#12: Rejected after the snapshot with the PFX's size, nothing written",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seed(oldCert.material, PKCS12_CONTENT_TYPE)
          const policy = yield* pfxLimitedTo(16)
          const before = vault.versions(NAME).length
          vault.resetCalls()
          const { result, imports } = yield* recordingImports(
            runDeploy(request(newCert.material)).pipe(Effect.provideService(DeployPolicy, policy)),
          )
          const o = expectTag(result, "Rejected")
          assert.lengthOf(imports, 0)
          assert.strictEqual(vault.calls().total, 1)
          assert.strictEqual(vault.versions(NAME).length, before)
          assert.strictEqual(o.problems[0]?.reason, "pfx_too_large")
          assert.strictEqual(o.problems[0]?.field, "material")
          assert.isUndefined(o.contentType)
        }),
      ),
  )

  it.effect("content_type pkcs12: Rejected by preflight, before any vault call", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        yield* seed(oldCert.material, PEM_CONTENT_TYPE)
        const policy = yield* pfxLimitedTo(16)
        vault.resetCalls()
        const { result, imports } = yield* recordingImports(
          runDeploy(request(newCert.material, {}, target({ content_type: "pkcs12" }))).pipe(
            Effect.provideService(DeployPolicy, policy),
          ),
        )
        const o = expectTag(result, "Rejected")
        assert.lengthOf(imports, 0)
        assert.strictEqual(vault.calls().total, 0)
        assert.strictEqual(o.problems[0]?.reason, "pfx_too_large")
      }),
    ),
  )
})

describe("content_type keep over a soft-deleted certificate: the deleted certificate's content type decides", () => {
  /** Every PFX is over this limit; the PEM limit stays Key Vault's. */
  const pfxLimitedTo = (maxPfxBytes: number) =>
    Effect.map(DeployPolicy, (policy) => ({ ...policy, maxPfxBytes }))
  const recover = () => request(newCert.material, {}, target({ on_soft_deleted: "recover" }))
  /** A vault whose deleted certificate's answer does not say its content type (no policy in it). */
  const deletedWithoutContentType = <A, E, R>(eff: Effect.Effect<A, E, R>) =>
    Effect.gen(function* () {
      const vault = yield* Vault
      return yield* eff.pipe(
        Effect.provideService(Vault, {
          ...vault,
          getDeleted: (name) =>
            Effect.map(vault.getDeleted(name), (d) => {
              if (d.latest === undefined) return d
              const { contentType: _, ...latest } = d.latest
              return { ...d, latest }
            }),
        }),
      )
    })

  it.effect(
    "a PFX over the limit, deleted as PEM, on_soft_deleted recover: recovered, then PEM imported (its PEM fits), Succeeded",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const deletedVersion = yield* seed(oldCert.material, PEM_CONTENT_TYPE)
          yield* vault.softDelete(NAME)
          const policy = yield* pfxLimitedTo(16)
          const { result, imports } = yield* recordingImports(
            runDeploy(recover()).pipe(Effect.provideService(DeployPolicy, policy)),
          )
          const o = expectTag(result, "Succeeded")
          assert.strictEqual(o.recovered, "recovered")
          assert.strictEqual(o.previous?.versionId, deletedVersion.versionId)
          assert.deepStrictEqual(imports.map(kindOf), ["pem"])
          assert.isFalse(vault.isSoftDeleted(NAME))
          assert.strictEqual(vault.latest(NAME)?.x5t, newCert.x5t)
          assert.strictEqual(vault.latest(NAME)?.contentType, PEM_CONTENT_TYPE)
          assert.deepStrictEqual(o.contentType, {
            imported: PEM_CONTENT_TYPE,
            served: PEM_CONTENT_TYPE,
            change: "kept",
          })
          // One read of the deleted certificate, one recovery, one import: no PKCS#12 import was sent.
          assert.strictEqual(vault.calls().byOperation.getDeleted, 1)
          assert.strictEqual(vault.calls().byOperation.recoverDeleted, 1)
          assert.strictEqual(vault.calls().byOperation.importVersion, 1)
        }),
      ),
  )

  it.effect(
    "a PFX over the limit, deleted as PKCS#12: refused before any recovery (left deleted, nothing written), the fix names content_type: pem",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const deletedVersion = yield* seed(oldCert.material, PKCS12_CONTENT_TYPE)
          yield* vault.softDelete(NAME)
          const policy = yield* pfxLimitedTo(16)
          const { result, imports } = yield* recordingImports(
            runDeploy(recover()).pipe(Effect.provideService(DeployPolicy, policy)),
          )
          const o = expectTag(result, "Rejected")
          assert.lengthOf(imports, 0)
          assert.strictEqual(vault.calls().byOperation.recoverDeleted ?? 0, 0)
          assert.isTrue(vault.isSoftDeleted(NAME))
          assert.lengthOf(vault.versions(NAME), 1)
          assert.isUndefined(o.recovered)
          assert.isUndefined(o.contentType)
          assert.strictEqual(o.problems[0]?.reason, "pfx_too_large")
          assert.match(
            o.reason,
            new RegExp(
              `^${NAME} is soft-deleted, and a recovery would serve it again as ${deletedVersion.versionId}, its secret PKCS#12 \\(application/x-pkcs12\\), which content_type keep keeps; the import would be refused, so it was left deleted and nothing was written: material makes a PFX of \\d+ bytes`,
            ),
          )
          assert.match(
            o.problems[0]?.fix ?? "",
            /^shorten the chain.*; or set content_type: pem once the secret.s consumers read PEM/,
          )
        }),
      ),
  )

  it.effect(
    "a PFX over the limit, deleted as PKCS#12, on_soft_deleted fail: Rejected, as neither a recovery nor a purge would let it be imported",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seed(oldCert.material, PKCS12_CONTENT_TYPE)
          yield* vault.softDelete(NAME)
          const policy = yield* pfxLimitedTo(16)
          const { result, imports } = yield* recordingImports(
            runDeploy(request(newCert.material)).pipe(Effect.provideService(DeployPolicy, policy)),
          )
          const o = expectTag(result, "Rejected")
          assert.lengthOf(imports, 0)
          assert.strictEqual(vault.calls().byOperation.recoverDeleted ?? 0, 0)
          assert.isTrue(vault.isSoftDeleted(NAME))
          assert.strictEqual(o.problems[0]?.reason, "pfx_too_large")
          assert.match(
            o.reason,
            /is soft-deleted \(deleted .*\), and neither a recovery \(its secret PKCS#12, application\/x-pkcs12, which content_type keep keeps\) nor a purge \(a first deploy imports PKCS#12\) would let this material be imported; nothing was written/,
          )
          // The remedy the default's Failed gave (recover, or purge) would not work: not offered.
          assert.notMatch(o.reason, /set on_soft_deleted: recover|purge it first/)
        }),
      ),
  )

  it.effect.each([
    {
      deletedAs: PEM_CONTENT_TYPE as Served | undefined,
      reason:
        /is soft-deleted \(deleted .*\), and a recovery would serve its secret as PEM, which this material fits; set on_soft_deleted: recover to recover it and deploy \(purging it would make this a first deploy, which imports PKCS#12, over the limit\)/,
    },
    {
      deletedAs: undefined,
      reason:
        /is soft-deleted \(deleted .*\), and its answer does not say the content type a recovery would serve; set on_soft_deleted: recover .*purging it would make this a first deploy, which imports PKCS#12, over the limit/,
    },
  ])(
    "a PFX over the limit, deleted as $deletedAs, on_soft_deleted fail: Failed on the soft-deleted name, offering the recovery only",
    ({ deletedAs, reason }) =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seed(oldCert.material, deletedAs ?? PEM_CONTENT_TYPE)
          yield* vault.softDelete(NAME)
          const policy = yield* pfxLimitedTo(16)
          const run = runDeploy(request(newCert.material)).pipe(Effect.provideService(DeployPolicy, policy))
          const { result, imports } = yield* recordingImports(
            deletedAs === undefined ? deletedWithoutContentType(run) : run,
          )
          const o = expectTag(result, "Failed")
          assert.strictEqual(o.step, "soft-deleted")
          assert.lengthOf(imports, 0)
          assert.isTrue(vault.isSoftDeleted(NAME))
          assert.match(o.reason, reason)
          assert.notMatch(o.reason, /purge it first/)
        }),
      ),
  )

  it.effect(
    "a PFX over the limit and no soft-deleted certificate: refused as PKCS#12 (a first deploy) after reading that none holds the name",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const policy = yield* pfxLimitedTo(16)
          const { result, imports } = yield* recordingImports(
            runDeploy(recover()).pipe(Effect.provideService(DeployPolicy, policy)),
          )
          const o = expectTag(result, "Rejected")
          assert.lengthOf(imports, 0)
          assert.strictEqual(vault.calls().byOperation.getDeleted, 1)
          assert.include(o.decisions, "snapshot: no soft-deleted certificate holds the name either")
          // Nothing is served under the name, and nothing was written: the expiry series removed.
          const metrics = yield* MetricsRecorder
          assert.strictEqual(metrics.count("certificateExpiry"), 0)
          assert.strictEqual(metrics.count("certificateNotServed"), 1)
          assert.match(
            o.reason,
            /^the import was refused before anything was written: material .*\(content_type keep imports PKCS#12: the vault serves no PEM for this name\)$/,
          )
          assert.match(o.problems[0]?.fix ?? "", /^shorten the chain.*; or set content_type: pem once /)
        }),
      ),
  )

  it.effect(
    "a PEM over 25 KB, deleted as PEM (its PFX fits): refused before any recovery, left deleted",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seed(oldCert.material, PEM_CONTENT_TYPE)
          yield* vault.softDelete(NAME)
          const policy = yield* Effect.map(DeployPolicy, (p) => ({ ...p, maxPemBytes: 16 }))
          const { result, imports } = yield* recordingImports(
            runDeploy(recover()).pipe(Effect.provideService(DeployPolicy, policy)),
          )
          const o = expectTag(result, "Rejected")
          // The first import (PKCS#12, as nothing is served) met the soft-deleted name and wrote nothing.
          assert.deepStrictEqual(imports.map(kindOf), ["pkcs12"])
          assert.strictEqual(vault.calls().byOperation.recoverDeleted ?? 0, 0)
          assert.isTrue(vault.isSoftDeleted(NAME))
          assert.lengthOf(vault.versions(NAME), 1)
          // Left deleted: nothing is served, the expiry series removed.
          const metrics = yield* MetricsRecorder
          assert.strictEqual(metrics.count("certificateExpiry"), 0)
          assert.strictEqual(metrics.count("certificateNotServed"), 1)
          assert.strictEqual(o.problems[0]?.field, "content_type")
          assert.match(
            o.reason,
            /its secret PEM \(application\/x-pem-file\), which content_type keep keeps; .*left deleted/,
          )
        }),
      ),
  )

  it.effect(
    "a PEM over 25 KB, deleted as PEM, for a consumer that reads PKCS#12 only: judged on PKCS#12 (it fits), recovered and imported as PKCS#12",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          yield* seed(oldCert.material, PEM_CONTENT_TYPE)
          yield* vault.softDelete(NAME)
          const policy = yield* Effect.map(DeployPolicy, (p) => ({ ...p, maxPemBytes: 16 }))
          const { result, imports } = yield* recordingImports(
            runDeploy(
              request(
                newCert.material,
                {},
                target({ on_soft_deleted: "recover", consumers: ["application_gateway"] }),
              ),
            ).pipe(Effect.provideService(DeployPolicy, policy)),
          )
          const o = expectTag(result, "Succeeded")
          // The PEM's size does not matter: the consumer reads PKCS#12, which keep imports for it.
          assert.deepStrictEqual(imports.map(kindOf), ["pkcs12", "pkcs12"])
          assert.strictEqual(vault.calls().byOperation.recoverDeleted, 1)
          assert.isFalse(vault.isSoftDeleted(NAME))
          assert.strictEqual(o.contentType?.imported, PKCS12_CONTENT_TYPE)
        }),
      ),
  )

  it.effect.each([
    { deletedAs: PEM_CONTENT_TYPE, expected: "Succeeded" },
    { deletedAs: PKCS12_CONTENT_TYPE, expected: "Rejected" },
  ] as const)(
    "a PFX over the limit, the deleted certificate's answer without its content type ($deletedAs): recovered, then judged on what the recovered certificate serves ($expected)",
    ({ deletedAs, expected }) =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const deletedVersion = yield* seed(oldCert.material, deletedAs)
          yield* vault.softDelete(NAME)
          const policy = yield* pfxLimitedTo(16)
          const { result, imports } = yield* recordingImports(
            deletedWithoutContentType(runDeploy(recover())).pipe(Effect.provideService(DeployPolicy, policy)),
          )
          assert.strictEqual(result.recovered, "recovered")
          assert.isFalse(vault.isSoftDeleted(NAME))
          if (expected === "Succeeded") {
            const o = expectTag(result, "Succeeded")
            assert.deepStrictEqual(imports.map(kindOf), ["pem"])
            assert.deepStrictEqual(o.contentType, {
              imported: PEM_CONTENT_TYPE,
              served: PEM_CONTENT_TYPE,
              change: "kept",
            })
          } else {
            const o = expectTag(result, "Rejected")
            assert.lengthOf(imports, 0)
            assert.isUndefined(o.contentType)
            // The recovery happened and is said; the recovered certificate is served, and its expiry
            // is the series'.
            assert.strictEqual(vault.latest(NAME)?.versionId, deletedVersion.versionId)
            const metrics = yield* MetricsRecorder
            assert.deepStrictEqual(
              metrics.events().flatMap((e) => (e.series === "certificateExpiry" ? [e.value] : [])),
              [oldCert.notAfter.getTime() / 1000],
            )
            assert.strictEqual(metrics.count("certificateNotServed"), 0)
            assert.match(
              o.reason,
              new RegExp(
                `^the soft-deleted certificate was recovered first and is served again as ${deletedVersion.versionId}, its secret PKCS#12 \\(application/x-pkcs12\\), which content_type keep keeps; but the import was refused and no version was written: material makes a PFX`,
              ),
            )
            assert.match(o.problems[0]?.fix ?? "", /^shorten the chain.*; or set content_type: pem once /)
          }
        }),
      ),
  )
})

describe("the PEM preflight built for keep", () => {
  it.effect("is the one imported: the PEM is encoded once per deploy", () =>
    fresh(
      Effect.gen(function* () {
        yield* seed(oldCert.material, PEM_CONTENT_TYPE)
        const policy = yield* Effect.map(DeployPolicy, (p) => ({ ...p, maxPfxBytes: 16 }))
        let encodes = 0
        const codec = yield* PfxCodec
        const o = yield* runDeploy(request(newCert.material)).pipe(
          Effect.provideService(DeployPolicy, policy),
          Effect.provideService(PfxCodec, {
            ...codec,
            encodePem: (m) => {
              encodes++
              return codec.encodePem(m)
            },
          }),
        )
        expectTag(o, "Succeeded")
        assert.strictEqual(encodes, 1)
      }),
    ),
  )
})
