import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import {
  CERTIFICATE_ID_TAG,
  type DeployOptions,
  type DeployOutcome,
  type DeployRequest,
  deploy,
  forwardTags,
  type ImportRequest,
  MANAGED_BY_TAG,
  type TargetConfig,
  Vault,
  type VaultVersion,
  validateTargetConfigSync,
} from "../src/index.js"
import type { CertificateMaterial } from "../src/material.js"
import { Fault, InMemoryVaultHandle, runAdvancingClock, TestWorld } from "../src/testing/index.js"

export const NAME = "api-prod"
export const CERT_ID = "cert-123"

export const target = (overrides: Record<string, unknown> = {}): TargetConfig => {
  const r = validateTargetConfigSync({
    vault_url: "https://kv-test.vault.azure.net",
    certificate_name: NAME,
    tags: { env: "test" },
    ...overrides,
  })
  if (Result.isFailure(r)) throw new Error(r.failure.message)
  return r.success
}

export const request = (
  material: CertificateMaterial,
  options: DeployOptions = {},
  config: TargetConfig = target(),
): DeployRequest => ({ target: config, material, certificateId: CERT_ID, options })

/** Tags a version deployed by kvdeploy carries. */
/** The forwarded tags of a request for certificate id "api-prod" with operator tag team=edge (judgement tests). */
export const judgedTags = forwardTags({ team: "edge" }, "api-prod")

/** A served version holding the leaf of x5t "same" with `judgedTags`, overridden by `over` (judgement tests). */
export const judgedVersion = (over: Partial<VaultVersion>): VaultVersion => ({
  versionId: "v1",
  x5t: "same",
  serialHex: "01",
  enabled: true,
  createdAt: new Date(0),
  tags: judgedTags,
  ...over,
})

export const managedTags = { env: "test", [MANAGED_BY_TAG]: "certctl", [CERTIFICATE_ID_TAG]: CERT_ID }

/** The vault serves `material` under NAME, deployed by kvdeploy (a seed: not counted as a call). */
export const seedManaged = (material: CertificateMaterial, options: { readonly exportable?: boolean } = {}) =>
  Effect.flatMap(Effect.service(InMemoryVaultHandle), (vault) =>
    vault.seed(NAME, material, { tags: managedTags, ...options }),
  )

/**
 * The deploy's import of `material` lands with its answer lost, and the same deployment's duplicate
 * lands after it (kvdeploy's reserved tags, not the operator's): both are the reconciliation's
 * candidates, and the vault serves the duplicate, which the verify finds wrong.
 */
export const lostImportAndItsDuplicate = (material: CertificateMaterial) =>
  Effect.map(Effect.service(InMemoryVaultHandle), (vault) => {
    vault.script("importVersion", Fault.afterWrite)
    vault.script(
      "listVersions",
      Fault.foreignImport(material, { [MANAGED_BY_TAG]: "certctl", [CERTIFICATE_ID_TAG]: CERT_ID }),
    )
  })

/** The outcome, as its tag's type; fails the test (with the reason) when it has another tag. */
export const expectTag = <T extends DeployOutcome["_tag"]>(
  o: DeployOutcome,
  tag: T,
): Extract<DeployOutcome, { _tag: T }> => {
  assert.strictEqual(o._tag, tag, `expected ${tag}, got ${o._tag}: ${o.reason}`)
  return o as Extract<DeployOutcome, { _tag: T }>
}

/** Each test gets a fresh world (in-memory vault, recorders, TestClock). */
export const fresh = <A, E, R>(eff: Effect.Effect<A, E, R>) => Effect.provide(eff, TestWorld.layer)

/** Deploy, advancing the TestClock so retries take no real time. */
export const runDeploy = (req: DeployRequest) => runAdvancingClock(deploy(req))

export const toJson = (u: unknown): string =>
  JSON.stringify(u, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v))

export { Effect }

/** Run `eff` with every import request recorded (what reached the vault port). */
export const recordingImports = <A, E, R>(eff: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const vault = yield* Vault
    const imports: Array<ImportRequest> = []
    const result = yield* eff.pipe(
      Effect.provideService(Vault, {
        ...vault,
        importVersion: (r) => {
          imports.push(r)
          return vault.importVersion(r)
        },
      }),
    )
    return { result, imports }
  })
