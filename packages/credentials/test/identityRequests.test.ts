/**
 * Token requests an identity endpoint holds: each HTTP request has a time limit of its own
 * (identityRequestTimeout), so the credential library lets go of it and its connection. A file of
 * its own: MSAL keeps managed identity tokens in a cache shared by every credential of the process.
 */

import { createHttpHeaders, createPipelineRequest } from "@azure/core-rest-pipeline"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type Emulator, start } from "@kvdeploy/kv-emulator"
import * as Effect from "effect/Effect"
import { keyVaultScope, makeCredential, withRequestTimeout } from "../src/index.js"
import { emulatorSettings, withEnvironment } from "./identityEnvironment.js"

let emulator: Emulator
beforeAll(async () => {
  emulator = await start({ vaults: ["held"], warn: () => {} })
})
afterAll(() => emulator?.stop())

type Mode = "clientSecret" | "managedIdentityImds"

const settingsFor = (mode: Mode, identityRequestTimeoutMs: number | undefined) => ({
  ...emulatorSettings(emulator, "held", mode),
  identityRequestTimeoutMs,
})

describe("each HTTP request to an identity endpoint has a time limit", () => {
  it.live("a held token request ends at the limit, without the caller's abort (Entra ID, IMDS)", () =>
    Effect.gen(function* () {
      for (const [mode, operation] of [
        ["clientSecret", "token"],
        ["managedIdentityImds", "imdsToken"],
      ] as const) {
        const id = emulator.faults.add({
          operation,
          times: "always",
          action: { kind: "hold", timeoutMs: 60_000 },
        })
        const started = Date.now()
        const failure = yield* withEnvironment(
          emulator.env[mode],
          Effect.gen(function* () {
            const { credential } = yield* makeCredential(settingsFor(mode, 500))
            return yield* Effect.tryPromise(() =>
              credential.getToken(keyVaultScope(emulator.keyvaultResource)),
            ).pipe(Effect.flip)
          }),
        ).pipe(Effect.ensuring(Effect.sync(() => emulator.faults.remove(id))))
        const tookMs = Date.now() - started
        // Let go at the limit (the library reports a network failure), not when the hold ended (60 s).
        expect(String((failure as { cause?: unknown }).cause ?? failure), mode).toContain("network_error")
        expect(tookMs, mode).toBeLessThan(20_000)
      }
    }),
  )

  it("the limit is set on a request that has none, and a request's own (the IMDS probe's 1 s) is kept", async () => {
    const seen: Array<number> = []
    const client = withRequestTimeout(1_234, {
      sendRequest: async (request) => {
        seen.push(request.timeout)
        return { request, status: 200, headers: createHttpHeaders() }
      },
    })
    await client.sendRequest(createPipelineRequest({ url: "https://login.example.test/token" }))
    await client.sendRequest(
      createPipelineRequest({ url: "http://169.254.169.254/metadata", timeout: 1_000 }),
    )
    expect(seen).toEqual([1_234, 1_000])
  })
})
