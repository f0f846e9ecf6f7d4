/**
 * A token request has a time limit (shareTokenRequests): an identity endpoint that accepts the
 * request and never answers fails the probe at the limit, with a reason that says so. A file of its
 * own: MSAL keeps managed identity tokens in a cache shared by every credential of the process, so a
 * token an earlier test obtained would be answered without a request.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { validateTargetConfigSync } from "@kvdeploy/core"
import { type Emulator, start } from "@kvdeploy/kv-emulator"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import {
  credentialSettingsFromTarget,
  keyVaultScope,
  makeCredential,
  probeToken,
  shareTokenRequests,
  withTokenTimeLimit,
} from "../src/index.js"

let emulator: Emulator
beforeAll(async () => {
  emulator = await start({ vaults: ["held"], warn: () => {} })
})
afterAll(() => emulator?.stop())

/** @azure/identity reads the managed identity endpoints from process.env when a credential is made. */
const withProcessEnv = <A, E>(vars: Readonly<Record<string, string>>, effect: Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const saved = new Map(Object.keys(vars).map((k) => [k, process.env[k]] as const))
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

describe("the time limit on a token request", () => {
  it.live(
    "an identity endpoint that holds the request: the probe gives up at the limit and says so (Entra ID, IMDS)",
    () =>
      Effect.gen(function* () {
        for (const [mode, operation] of [
          ["clientSecret", "token"],
          ["managedIdentityImds", "imdsToken"],
        ] as const) {
          const target = validateTargetConfigSync(emulator.targetConfig("held", "web", mode))
          if (Result.isFailure(target)) throw new Error(target.failure.message)
          const settings = credentialSettingsFromTarget(target.success, { trustedCaPem: emulator.caPem })
          const hold = emulator.faults.add({
            operation,
            times: "always",
            action: { kind: "hold", timeoutMs: 60_000 },
          })
          const started = Date.now()
          const failed = yield* withProcessEnv(
            emulator.env[mode],
            Effect.gen(function* () {
              const resolved = yield* makeCredential(settings)
              const limited = {
                ...resolved,
                credential: shareTokenRequests(resolved.credential, { timeoutMs: 400 }),
              }
              return yield* probeToken(limited, keyVaultScope(emulator.keyvaultResource)).pipe(Effect.flip)
            }),
          ).pipe(Effect.ensuring(Effect.sync(() => emulator.faults.remove(hold))))
          const tookMs = Date.now() - started
          expect(failed._tag, mode).toBe("TokenRequestFailed")
          expect(failed.reason, mode).toBe(
            "the identity endpoint gave no token within 0.4 s (its own retries included)",
          )
          expect(failed.fix, mode).toContain("a proxy or firewall that accepts the connection and holds it")
          // Let go at the limit, not when the hold ended by itself (60 s).
          expect(tookMs, mode).toBeLessThan(20_000)
        }
      }),
  )

  it.live("withTokenTimeLimit (the CLI's 30 s) keeps the identity, and a token within the limit passes", () =>
    Effect.gen(function* () {
      const target = validateTargetConfigSync(emulator.targetConfig("held", "web", "clientSecret"))
      if (Result.isFailure(target)) throw new Error(target.failure.message)
      const settings = credentialSettingsFromTarget(target.success, { trustedCaPem: emulator.caPem })
      const resolved = yield* withProcessEnv(emulator.env.clientSecret, makeCredential(settings))
      const limited = withTokenTimeLimit(resolved)
      expect(limited.identity).toEqual(resolved.identity)
      expect(limited.credential).not.toBe(resolved.credential)
      // It still gets a token (the limit is not reached).
      const token = yield* probeToken(limited, keyVaultScope(emulator.keyvaultResource))
      expect(token.audience).toBe(emulator.keyvaultResource)
    }),
  )
})
