/**
 * A custom cloud's vault is not checked against the resource its challenge names (the SDK is told
 * not to: its host is not one the SDK knows), so the credential gives tokens for the target
 * cloud's keyvault_resource only. A vault whose challenge names another resource (a hostile or
 * misconfigured endpoint asking for a token for another API) gets no token, and the deploy says why.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import type { DeployOutcome } from "@kvdeploy/core"
import { type Emulator, start } from "@kvdeploy/kv-emulator"
import * as Effect from "effect/Effect"
import { credentialFor, deployOnce, fastReads, targetFor, worldLayer } from "./support/emulator.js"
import { type Issuer, makeCa, makeMaterial } from "./support/pki.js"

const VAULT = "scopes"
let emulator: Emulator
let ca: Issuer

beforeAll(async () => {
  emulator = await start({ vaults: [VAULT], warn: () => {} })
  ca = await makeCa()
})
afterAll(() => emulator?.stop())

describe("tokens for the target cloud's Key Vault resource only", () => {
  it.live("a challenge naming another resource gets no token: Failed, nothing sent but the challenge", () =>
    Effect.gen(function* () {
      const served = targetFor(emulator, VAULT, "scoped")
      const target = {
        ...served,
        cloud: { ...served.cloud, keyVaultResource: "https://vault.elsewhere.example" },
      }
      const credential = yield* credentialFor(emulator, target)
      const material = yield* Effect.promise(() => makeMaterial(ca))
      const since = emulator.requests.mark()
      const outcome: DeployOutcome = yield* deployOnce(target, material, "scoped").pipe(
        fastReads,
        Effect.provide(worldLayer(emulator, target, credential)),
      )
      expect(outcome._tag, outcome.reason).toBe("Failed")
      expect(outcome.reason).toContain(
        "kvdeploy asks for tokens for https://vault.elsewhere.example/.default only (the target cloud's keyvault_resource), and the vault asked for",
      )
      expect(outcome._tag === "Failed" ? outcome.refusal : undefined).toBe("credential")
      const entries = emulator.requests.entries({ vault: VAULT, since })
      expect(entries.filter((e) => !e.challenge)).toEqual([])
      // The same vault, its own resource: deployed.
      const ok: DeployOutcome = yield* deployOnce(served, material, "scoped").pipe(
        fastReads,
        Effect.provide(worldLayer(emulator, served, yield* credentialFor(emulator, served))),
      )
      expect(ok._tag, ok.reason).toBe("Succeeded")
    }),
  )
})
