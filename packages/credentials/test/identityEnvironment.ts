/**
 * The identity environment of a test: @azure/identity reads some variables from process.env when a
 * credential is built (managed identity endpoints, AZURE_* for DefaultAzureCredential), and
 * makeCredential reads them through Effect's ConfigProvider. vitest runs files in separate workers,
 * so no other file sees what a test sets here.
 */
import { validateTargetConfigSync } from "@kvdeploy/core"
import type { Emulator } from "@kvdeploy/kv-emulator"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { type CredentialSettings, credentialSettingsFromTarget } from "../src/index.js"

const identityVariables = [
  "AZURE_TENANT_ID",
  "AZURE_CLIENT_ID",
  "AZURE_CLIENT_SECRET",
  "AZURE_CLIENT_CERTIFICATE_PATH",
  "AZURE_FEDERATED_TOKEN_FILE",
  "AZURE_AUTHORITY_HOST",
  "AZURE_USERNAME",
  "AZURE_PASSWORD",
  "IDENTITY_ENDPOINT",
  "IDENTITY_HEADER",
  "MSI_ENDPOINT",
  "MSI_SECRET",
  "IMDS_ENDPOINT",
  "AZURE_POD_IDENTITY_AUTHORITY_HOST",
  "AZURE_TOKEN_CREDENTIALS",
]

/** Run `effect` with exactly `vars` as the identity environment, in process.env and in Effect's ConfigProvider. */
export const withEnvironment = <A, E>(vars: Readonly<Record<string, string>>, effect: Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const saved = new Map(identityVariables.map((k) => [k, process.env[k]] as const))
      for (const k of identityVariables) delete process.env[k]
      for (const [k, v] of Object.entries(vars)) if (k !== "NODE_EXTRA_CA_CERTS") process.env[k] = v
      return saved
    }),
    () => effect.pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ ...vars })))),
    (saved) =>
      Effect.sync(() => {
        for (const [k, v] of saved) {
          if (v === undefined) delete process.env[k]
          else process.env[k] = v
        }
      }),
  )

/** The credential settings of the emulator's target for `mode` in `vault` (its CA trusted). */
export const emulatorSettings = (
  emulator: Emulator,
  vault: string,
  mode: "clientSecret" | "workloadIdentity" | "managedIdentityImds" | "managedIdentityAppService",
): CredentialSettings => {
  const target = validateTargetConfigSync(emulator.targetConfig(vault, "web", mode))
  if (Result.isFailure(target)) throw new Error(target.failure.message)
  return credentialSettingsFromTarget(target.success, { trustedCaPem: emulator.caPem })
}
