/**
 * The adapter wired to a running @kvdeploy/kv-emulator the way the CLI wires
 * it to a real vault: a target validated by core from the configuration the
 * emulator prints, a credential from @kvdeploy/credentials, the real pkcs12
 * codec, recording metrics and an in-memory audit log.
 */
import type { TokenCredential } from "@azure/core-auth"
import {
  type CertificateMaterial,
  type DeployOptions,
  DeployPolicy,
  deploy,
  type TargetConfig,
  validateTargetConfigSync,
} from "@kvdeploy/core"
import { InMemoryAuditLog, RecordingMetrics } from "@kvdeploy/core/test"
import { credentialSettingsFromTarget, makeCredential } from "@kvdeploy/credentials"
import { type AuthMode, type Emulator, type EmulatorOptions, start } from "@kvdeploy/kv-emulator"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import * as AzureKeyVault from "../../src/index.js"

/**
 * The emulator these tests run against: quiet, and answering an import as Key Vault does, which
 * infers no content type (`importContentType: "required"`: PEM text not stated as
 * application/x-pem-file, or a policy without secret_props.contentType, is refused). Every import
 * path of the adapter is so proven to state its content type on the wire.
 */
export const startEmulator = (options: EmulatorOptions = {}): Promise<Emulator> =>
  start({ warn: () => {}, importContentType: "required", ...options })

export const targetFor = (
  emulator: Emulator,
  vault: string,
  certificateName: string,
  extra: Record<string, unknown> = {},
  mode: AuthMode = "clientSecret",
): TargetConfig => {
  const result = validateTargetConfigSync({
    ...emulator.targetConfig(vault, certificateName, mode),
    ...extra,
  })
  if (Result.isFailure(result))
    throw new Error(`emulator target does not validate: ${result.failure.message}`)
  return result.success
}

/** The credential of `mode` built by @kvdeploy/credentials from the environment the emulator prints. */
export const credentialFor = (emulator: Emulator, target: TargetConfig, mode: AuthMode = "clientSecret") =>
  makeCredential(credentialSettingsFromTarget(target, { trustedCaPem: emulator.caPem })).pipe(
    Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(emulator.env[mode]))),
    Effect.map((r) => r.credential),
  )

/** Fast SDK retries for tests (the SDK's defaults wait seconds). */
export const testRetry = { maxRetries: 3, retryDelayInMs: 20, maxRetryDelayInMs: 200 }

export const vaultLayer = (
  emulator: Emulator,
  target: TargetConfig,
  credential: TokenCredential,
  options: AzureKeyVault.TargetVaultOptions = {},
) =>
  AzureKeyVault.layerConfig(target, credential, {
    trustedCaPem: emulator.caPem,
    retry: testRetry,
    recoverPollIntervalMs: 50,
    ...options,
  })

/** Vault + codec + recording metrics + audit log: everything `deploy` needs. */
export const worldLayer = (
  emulator: Emulator,
  target: TargetConfig,
  credential: TokenCredential,
  options: AzureKeyVault.TargetVaultOptions = {},
) =>
  vaultLayer(emulator, target, credential, options).pipe(
    Layer.provideMerge(Layer.mergeAll(RecordingMetrics.layer, Pkcs12.layer, InMemoryAuditLog.layer)),
  )

export const deployOnce = (
  target: TargetConfig,
  material: CertificateMaterial,
  certificateId: string,
  options?: DeployOptions,
) => deploy({ target, material, certificateId, ...(options === undefined ? {} : { options }) })

/** The deploy program's read retries, fast (core's default backoff starts at 250 ms). */
export const fastReads = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.service(DeployPolicy), (policy) =>
    Effect.provideService(self, DeployPolicy, { ...policy, readRetryBase: "5 millis" }),
  )
