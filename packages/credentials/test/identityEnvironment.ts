/**
 * The identity environment of a test: @azure/identity reads some variables from process.env when a
 * credential is built (managed identity endpoints, AZURE_* for DefaultAzureCredential), and
 * makeCredential reads them through Effect's ConfigProvider. vitest runs files in separate workers,
 * so no other file sees what a test sets here.
 */

import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll } from "@effect/vitest"
import { validateTargetConfigSync } from "@kvdeploy/core"
import { withIdentityEnvironment } from "@kvdeploy/core/test"
import { type Emulator, start } from "@kvdeploy/kv-emulator"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { type CredentialSettings, credentialSettingsFromTarget } from "../src/index.js"

/**
 * Run `effect` with exactly `vars` as the identity environment, in process.env (every other
 * AZURE_*, IDENTITY_*, MSI_*, IMDS_* variable unset) and in Effect's ConfigProvider; process.env is
 * put back as it was after.
 */
export const withEnvironment = <A, E>(vars: Readonly<Record<string, string>>, effect: Effect.Effect<A, E>) =>
  withIdentityEnvironment(
    vars,
    effect.pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ ...vars })))),
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

/**
 * An emulator with one vault (`vault`) and a temporary directory (named from `prefix`) for the
 * test file that calls this at its top: started before its tests, stopped and removed after them.
 */
export const emulatorWithDirectory = (
  vault: string,
  prefix: string,
): { readonly emulator: Emulator; readonly dir: string } => {
  const world: { emulator: Emulator | undefined; dir: string | undefined } = {
    emulator: undefined,
    dir: undefined,
  }
  beforeAll(async () => {
    world.emulator = await start({ vaults: [vault], warn: () => {} })
    world.dir = mkdtempSync(join(tmpdir(), prefix))
  })
  afterAll(async () => {
    if (world.dir !== undefined) rmSync(world.dir, { recursive: true, force: true })
    await world.emulator?.stop()
  })
  return {
    get emulator() {
      if (world.emulator === undefined)
        throw new Error("the emulator is started in beforeAll: use it in a test")
      return world.emulator
    },
    get dir() {
      if (world.dir === undefined) throw new Error("the directory is made in beforeAll: use it in a test")
      return world.dir
    },
  }
}
