/**
 * Access to the vault of a validated target: the credential for its mode and
 * cloud, the azure-kv adapter of core's Vault port, the pkcs12 codec. All of
 * them are imported when a command first needs the vault, so `--help`, usage
 * errors and `validate` never load the Azure SDKs or pkijs.
 */
import {
  AuditLog,
  Metrics,
  type PfxCodec,
  type TargetConfig,
  Vault,
  type VaultOperation,
} from "@kvdeploy/core"
import type { TokenCredential } from "@azure/core-auth"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type CliProblem, failure } from "./problems.js"

const loadAdapters = () =>
  Promise.all([import("@kvdeploy/azure-kv"), import("@kvdeploy/credentials"), import("@kvdeploy/pkcs12")])

/** Credential settings for a target (its mode, its cloud's authority). */
export const credentialSettingsOf = (target: TargetConfig) => ({
  mode: target.credentialMode,
  managedIdentityClientId: target.managedIdentityClientId,
  authorityHost: target.cloud.authorityHost,
  disableInstanceDiscovery: target.cloud.name === "Custom",
})

/** A credential for the target, or a problem that says which variable or setting is missing. */
export const credentialFor = (target: TargetConfig) =>
  Effect.gen(function* () {
    const { makeCredential } = yield* Effect.promise(() => import("@kvdeploy/credentials"))
    return yield* makeCredential(credentialSettingsOf(target)).pipe(
      Effect.mapError((e) =>
        failure(`no credential for credential_mode ${target.credentialMode}: ${e.reason}`, [
          { field: "credential_mode", message: e.reason, fix: e.fix },
        ]),
      ),
    )
  })

/**
 * The services core's deploy program needs, for this target: Vault (azure-kv
 * over the SDKs), PfxCodec (pkcs12), Metrics (given, or none) and AuditLog (none:
 * the CLI prints the outcome record instead).
 */
export const deployServices = (
  target: TargetConfig,
  metrics: Layer.Layer<Metrics> = Metrics.layerNoop,
  credential?: TokenCredential,
): Effect.Effect<Layer.Layer<Vault | PfxCodec | Metrics | AuditLog>, CliProblem> =>
  Effect.gen(function* () {
    const [azureKv, , pkcs12] = yield* Effect.promise(loadAdapters)
    const resolved = credential === undefined ? yield* credentialFor(target) : { credential }
    const base = Layer.mergeAll(pkcs12.layer, metrics, AuditLog.layerNoop)
    const vault = azureKv.layer({
      vaultUrl: target.vaultUrl,
      credential: resolved.credential,
      customCloud: target.cloud.name === "Custom",
    })
    return Layer.provideMerge(vault, base)
  })

/** Run `effect` with the deploy services of `target`. */
export const withDeployServices = <A, E>(
  target: TargetConfig,
  effect: Effect.Effect<A, E, Vault | PfxCodec | Metrics | AuditLog>,
  metrics?: Layer.Layer<Metrics>,
): Effect.Effect<A, E | CliProblem> =>
  Effect.flatMap(deployServices(target, metrics), (layer) => Effect.provide(effect, layer))

/** Run `f` with the target's Vault service. */
export const useVault = <A, E>(
  target: TargetConfig,
  f: (vault: Vault["Service"]) => Effect.Effect<A, E>,
): Effect.Effect<A, E | CliProblem> =>
  withDeployServices(
    target,
    Effect.gen(function* () {
      const vault = yield* Vault
      return yield* f(vault)
    }),
  )

interface TaggedVaultError {
  readonly _tag: string
  readonly message: string
  readonly permission?: string | undefined
}

/** A vault error as an operator problem: what failed, and what to do. Exit 1. */
export const vaultProblem = (operation: VaultOperation, error: TaggedVaultError): CliProblem => {
  const fixes: Record<string, string> = {
    VaultForbidden:
      "grant the identity the permission (run `kvdeploy doctor` to see which data actions work); check the vault firewall allows this network",
    VaultThrottled: "Key Vault is throttling this vault; wait and retry",
    VaultUnavailable:
      "check the vault URL, DNS and network access (proxy, firewall, private endpoint); `kvdeploy doctor` checks reachability",
    VaultAmbiguous: "the request may have taken effect; check with `kvdeploy versions` before retrying",
    VaultNotFound: "check the certificate name with `kvdeploy list`",
    VaultRequestRejected: "Key Vault refused the request; the message says why",
    VaultConflictSoftDeleted: "recover or purge the soft-deleted certificate, or deploy with --on-soft-deleted recover",
  }
  return failure(`${operation} failed: ${error.message}`, [
    {
      field: operation,
      message: `${error._tag}${error.permission === undefined ? "" : ` (needs ${error.permission})`}`,
      fix: fixes[error._tag] ?? "run `kvdeploy doctor` for this vault",
    },
  ])
}
