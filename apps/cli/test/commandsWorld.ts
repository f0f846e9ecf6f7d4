/**
 * The world the command test files share: a file that calls useCommandsWorld() gets its own
 * emulator and fixtures, and the helpers below act on them. A worker runs its files one after
 * another and shares this module among them (vitest.config.ts: isolate: false): each file's
 * beforeAll sets `world` and `fx` anew before its tests, and its afterAll stops its emulator.
 */
import { X509Certificate } from "node:crypto"
import { ClientSecretCredential } from "@azure/identity"
import { SecretClient } from "@azure/keyvault-secrets"
import { forwardTags } from "@kvdeploy/core"
import { encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, expect } from "vitest"
import type { Issued } from "../src/cli/throwawayPki.js"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { pemImportOptions, startWorld, type World } from "./harness.js"

export let world: World
export let fx: Fixtures

/**
 * Start this file's emulator and fixtures before its tests, and stop the emulator after them.
 * `moreVaults` are served beside the file's vault, for tests that run side by side: each takes one
 * with {@link inOwnVault}.
 */
export const useCommandsWorld = (moreVaults: ReadonlyArray<string> = []): void => {
  beforeAll(async () => {
    taken.clear()
    ;[world, fx] = await Promise.all([startWorld(undefined, moreVaults), makeFixtures()])
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

/** The helpers below, acting on the vault `w()` gives (the file's world, or a test's own vault). */
const helpersFor = (w: () => World) => {
  const deployArgs = (name: string, extra: ReadonlyArray<string> = []) => [
    "deploy",
    "--config",
    w().targetFile(name),
    "--cert",
    "-",
    "--json",
    ...extra,
  ]

  /** Soft-delete a certificate through the SDK, as an operator's `az keyvault certificate delete` would. */
  const softDelete = async (name: string) => {
    const world = w()
    await (await world.sdk().beginDeleteCertificate(name, { intervalInMs: 50 })).pollUntilDone()
    expect(world.emulator.state.isDeleted(world.vault, name)).toBe(true)
  }

  /**
   * A certificate another tool imported as PEM (key first, as Key Vault's own PEM secrets are), with
   * kvdeploy's tags: its secret is `application/x-pem-file`.
   */
  const importAsPem = async (name: string) => {
    const served = await fx.leaf()
    await w()
      .sdk()
      .importCertificate(
        name,
        new TextEncoder().encode(served.keyPem + served.certPem + fx.chainPem),
        pemImportOptions({
          tags: { "certctl-managed-by": "certctl", "certctl-certificate-id": name },
        }),
      )
    return served
  }

  /**
   * A version as kvdeploy's deploy leaves it, imported by the test's SDK client instead of a `deploy`
   * run (setup, not what a test checks): the leaf, its chain and key as PKCS#12, with the tags
   * kvdeploy sets on a forward import. Returns the leaf.
   */
  const importAsKvdeploy = async (name: string, leaf?: Issued) => {
    const served = leaf ?? (await fx.leaf())
    const chain = (
      fx.chainOf(served).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
    ).map((pem) => new Uint8Array(new X509Certificate(pem).raw))
    const pfx = await Effect.runPromise(
      encodePfx(
        { leaf: new Uint8Array(served.certificate.rawData), chain, key: Redacted.make(served.pkcs8) },
        { encoding: "modern", password: Redacted.make(""), iterations: 1 },
      ),
    )
    await w()
      .sdk()
      .importCertificate(name, pfx, { password: "", tags: forwardTags({}, name) })
    return served
  }

  /** A plain secret (no certificate) named `name`: Key Vault then refuses a certificate of that name (409 Conflict). */
  const setPlainSecret = async (name: string) => {
    const world = w()
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

  /** A fresh certificate under `name` as kvdeploy's deploy leaves it ({@link importAsKvdeploy}), then soft-deleted. */
  const importThenSoftDelete = async (name: string) => {
    await importAsKvdeploy(name)
    await softDelete(name)
  }

  return { deployArgs, softDelete, importAsPem, importAsKvdeploy, setPlainSecret, importThenSoftDelete }
}

export const { deployArgs, softDelete, importAsPem, importAsKvdeploy, setPlainSecret, importThenSoftDelete } =
  helpersFor(() => world)

/** The vaults tests took with {@link inOwnVault} in this file. */
const taken = new Set<string>()

/**
 * A world of its own for a test that runs beside others: `vault`, one of those `useCommandsWorld`
 * was given, on the file's emulator and files, with the helpers above acting on it. No other test
 * may take it: its writes and requests since a mark are the test's alone.
 */
export const inOwnVault = (vault: string): { world: World } & ReturnType<typeof helpersFor> => {
  if (taken.has(vault)) throw new Error(`vault ${vault} is another test's already`)
  taken.add(vault)
  const own = world.inVault(vault)
  return { world: own, ...helpersFor(() => own) }
}
