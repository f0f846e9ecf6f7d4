/**
 * The world the command test files share: a file that calls useCommandsWorld() gets its own
 * emulator and fixtures (vitest runs each test file in its own module graph, so each file's
 * `world` and `fx` are its own), and the helpers below act on them.
 */
import { ClientSecretCredential } from "@azure/identity"
import { SecretClient } from "@azure/keyvault-secrets"
import { afterAll, beforeAll, expect } from "vitest"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { pemImportOptions, runCli, startWorld, type World } from "./harness.js"

export let world: World
export let fx: Fixtures

/** Start this file's emulator and fixtures before its tests, and stop the emulator after them. */
export const useCommandsWorld = (): void => {
  beforeAll(async () => {
    ;[world, fx] = await Promise.all([startWorld(), makeFixtures()])
  })
  afterAll(async () => {
    await world?.stop()
  })
}

export interface Outcome {
  readonly _tag: string
  readonly versionId?: string
  readonly previous?: { readonly versionId: string } | undefined
  readonly newX5t?: string
  readonly problems?: ReadonlyArray<{ field: string; message: string }>
  readonly reason: string
  readonly vaultCalls: number
}

export const deployArgs = (name: string, extra: ReadonlyArray<string> = []) => [
  "deploy",
  "--config",
  world.targetFile(name),
  "--cert",
  "-",
  "--json",
  ...extra,
]

/** Soft-delete a certificate through the SDK, as an operator's `az keyvault certificate delete` would. */
export const softDelete = async (name: string) => {
  await (await world.sdk().beginDeleteCertificate(name, { intervalInMs: 50 })).pollUntilDone()
  expect(world.emulator.state.isDeleted(world.vault, name)).toBe(true)
}

/**
 * A certificate another tool imported as PEM (key first, as Key Vault's own PEM secrets are), with
 * kvdeploy's tags: its secret is `application/x-pem-file`.
 */
export const importAsPem = async (name: string) => {
  const served = await fx.leaf()
  await world.sdk().importCertificate(
    name,
    new TextEncoder().encode(served.keyPem + served.certPem + fx.chainPem),
    pemImportOptions({
      tags: { "certctl-managed-by": "certctl", "certctl-certificate-id": name },
    }),
  )
  return served
}

/** A plain secret (no certificate) named `name`: Key Vault then refuses a certificate of that name (409 Conflict). */
export const setPlainSecret = async (name: string) => {
  const credential = new ClientSecretCredential(
    world.env.AZURE_TENANT_ID ?? "",
    world.env.AZURE_CLIENT_ID ?? "",
    world.env.AZURE_CLIENT_SECRET ?? "",
    { authorityHost: world.emulator.authorityHost, disableInstanceDiscovery: true },
  )
  await new SecretClient(world.emulator.vault(world.vault).url, credential, {
    disableChallengeResourceVerification: true,
  }).setSecret(name, "not a certificate")
}

/** Deploy a fresh certificate under `name`, then soft-delete it. */
export const deployThenSoftDelete = async (name: string) => {
  expect((await runCli(deployArgs(name), { stdin: fx.bundle(await fx.leaf()), env: world.env })).code).toBe(0)
  await softDelete(name)
}
