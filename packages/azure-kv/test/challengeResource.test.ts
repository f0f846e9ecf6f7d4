/**
 * The Key Vault SDK's challenge resource verification, as `layerConfig` sets it from a validated
 * target: on for a known cloud, also when a cloud block gives that cloud's three endpoints; off for
 * a custom cloud only. With it on, the SDK asks for no token when the challenge names a resource
 * outside the vault host's domain: a local listener on 127.0.0.1 names https://vault.azure.net, so
 * a known cloud's adapter pointed at it sends nothing authorized, and a custom cloud's does.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type TargetConfig, Vault, validateTargetConfigSync } from "@kvdeploy/core"
import { RecordingMetrics } from "@kvdeploy/core/test"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import * as AzureKeyVault from "../src/index.js"
import { keyVaultError, type Listener, startListener, staticCredential } from "./support/listener.js"
import { loopbackTls } from "./support/pki.js"

let listener: Listener

beforeAll(async () => {
  listener = await startListener(await loopbackTls())
  listener.answer = (_req, res) => keyVaultError(res, 404, "CertificateNotFound", "not found")
})
afterAll(() => listener?.close())

const validated = (input: Record<string, unknown>): TargetConfig => {
  const result = validateTargetConfigSync({ certificate_name: "api", ...input })
  if (Result.isFailure(result)) throw new Error(result.failure.message)
  return result.success
}

/** A read through `layerConfig` with the target's cloud, sent to the listener: the requests it saw. */
const readThrough = (cloud: TargetConfig["cloud"]) =>
  Effect.gen(function* () {
    listener.log.length = 0
    const vault = yield* Vault
    const read = yield* Effect.result(vault.getLatest("challenged"))
    return { read, log: [...listener.log] }
  }).pipe(
    Effect.provide(
      AzureKeyVault.layerConfig({ vaultUrl: listener.url, cloud }, staticCredential, {
        trustedCaPem: listener.ca,
        retry: { maxRetries: 0 },
      }).pipe(Layer.provideMerge(Layer.mergeAll(RecordingMetrics.layer, Pkcs12.layer))),
    ),
  )

describe("challenge resource verification from the target's cloud", () => {
  it.live(
    "on for a cloud block equal to the public cloud: the challenge's resource is checked, no token sent",
    () =>
      Effect.gen(function* () {
        const target = validated({
          vault_url: "https://my-vault.vault.azure.net",
          cloud: {
            vault_dns_suffix: "vault.azure.net",
            authority_host: "https://login.microsoftonline.com",
            keyvault_resource: "https://vault.azure.net",
          },
        })
        const { read, log } = yield* readThrough(target.cloud)
        expect(read._tag === "Failure" ? read.failure.detail : "read").toContain(
          "The challenge resource 'vault.azure.net' does not match the requested domain",
        )
        // The SDK refused the challenge (vault.azure.net is not 127.0.0.1's domain): only the
        // unauthorized first request reached the listener.
        expect(log.map((r) => r.authorized)).toEqual([false])
      }),
  )

  it.live("off for a custom cloud: the token is sent after the challenge", () =>
    Effect.gen(function* () {
      const target = validated({
        vault_url: "https://127.0.0.1:8443",
        cloud: {
          vault_dns_suffix: "127.0.0.1",
          authority_host: "https://127.0.0.1:8444",
          keyvault_resource: "https://vault.azure.net",
        },
      })
      expect(target.cloud.name).toBe("Custom")
      const { read, log } = yield* readThrough(target.cloud)
      expect(read._tag === "Failure" ? read.failure._tag : read._tag).toBe("VaultNotFound")
      expect(log.map((r) => r.authorized)).toEqual([false, true])
    }),
  )
})
