/**
 * @kvdeploy/kv-emulator — a Key Vault + Entra ID emulator over HTTPS on loopback
 * that the unmodified Azure SDKs talk to.
 *
 *   const emulator = await start({ vaults: ["vault-a", "vault-b"] })
 *   const client = new CertificateClient(emulator.vault("vault-a").url, credential, {
 *     tlsOptions: { ca: emulator.caPem }, disableChallengeResourceVerification: true,
 *   })
 *   ...
 *   await emulator.stop()
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { type Emulator, type EmulatorOptions, start } from "./emulator.js"

export type { Permission } from "./directory.js"
export { OPERATION_PERMISSION, PERMISSIONS, ROLES } from "./directory.js"
export type {
  AuthMode,
  CertificateVersionState,
  ClientSecretIdentity,
  CustomCloud,
  Emulator,
  EmulatorOptions,
  EmulatorVault,
  FaultControl,
  ManagedIdentities,
  RbacControl,
  RequestLogControl,
  StateControl,
  TenancyControl,
  VaultOptions,
  WorkloadIdentity,
} from "./emulator.js"
export { start } from "./emulator.js"
export type {
  ActiveFault,
  FaultAction,
  FaultRule,
  IdentityOperationName,
  OperationName,
  PolicyIdentifier,
} from "./faults.js"
export { OPERATIONS } from "./faults.js"
export type { ImportContentTypeMode } from "./material.js"
export { type DamagedVaultFile, StateDirError, StateFileError } from "./persistence.js"
export type { ObjectType } from "./rbacScope.js"
export { OBJECT_TYPES, OPERATION_OBJECT_TYPE } from "./rbacScope.js"
export type { RequestLogEntry, RequestLogFilter, RequestSummary } from "./requestLog.js"
export type { ThrottleLimits } from "./throttle.js"
export { KEY_VAULT_LIMITS } from "./throttle.js"

/** The emulator could not start (port in use, state directory unreadable, ...). */
export class EmulatorStartError extends Data.TaggedError("EmulatorStartError")<{
  readonly message: string
  readonly cause: unknown
}> {}

/** Starts the emulator for the life of the scope; stops it when the scope closes. */
export const startScoped = (
  options: EmulatorOptions = {},
): Effect.Effect<Emulator, EmulatorStartError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => start(options),
      catch: (cause) =>
        new EmulatorStartError({ message: `kv-emulator failed to start: ${String(cause)}`, cause }),
    }),
    (emulator) => Effect.promise(() => emulator.stop()),
  )

/** The running emulator as an Effect service. */
export class KvEmulator extends Context.Service<KvEmulator, Emulator>()("@kvdeploy/kv-emulator/KvEmulator") {}

/** A layer that starts the emulator and stops it when the layer is released. */
export const layer = (options: EmulatorOptions = {}): Layer.Layer<KvEmulator, EmulatorStartError> =>
  Layer.effect(KvEmulator)(startScoped(options))

/** A fresh CA and loopback server certificate (EC P-256), as the emulator makes at start; for baselines and tools. */
export { createTlsIdentity, type TlsIdentity } from "./pki.js"
