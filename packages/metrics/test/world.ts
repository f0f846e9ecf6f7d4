import type { CertificateMaterial } from "@kvdeploy/core"
import {
  type DeployOptions,
  type DeployRequest,
  deploy,
  type TargetConfig,
  validateTargetConfigSync,
} from "@kvdeploy/core"
import {
  InMemoryAuditLog,
  InMemoryVault,
  issue,
  makeAuthority,
  runAdvancingClock,
  SyntheticCodec,
} from "@kvdeploy/core/test"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"

export const NAME = "api-prod"
export const CERT_ID = "cert-1"
export const VAULT_URL = "https://kv-metrics.vault.azure.net"

const config = (): TargetConfig => {
  const r = validateTargetConfigSync({ vault_url: VAULT_URL, certificate_name: NAME, tags: { env: "test" } })
  if (Result.isFailure(r)) throw new Error(r.failure.message)
  return r.success
}
export const request = (material: CertificateMaterial, options: DeployOptions = {}): DeployRequest => ({
  target: config(),
  material,
  certificateId: CERT_ID,
  options,
})
export const managedTags = { env: "test", "certctl-managed-by": "certctl", "certctl-certificate-id": CERT_ID }

export const ca = makeAuthority("metrics")
export const oldCert = issue({ seed: "m-old", issuer: ca })
export const newCert = issue({ seed: "m-new", issuer: ca })

/** Vault, codec and audit log in memory; metrics come from the adapter under test. */
export const vaultWorld = Layer.mergeAll(
  InMemoryVault.layer.pipe(Layer.provideMerge(SyntheticCodec.layer)),
  InMemoryAuditLog.layer,
)

export const run = (req: DeployRequest) => runAdvancingClock(deploy(req))
