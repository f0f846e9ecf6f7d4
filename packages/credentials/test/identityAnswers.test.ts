/**
 * What the probe says of an identity endpoint that does not answer as one: one that holds the
 * request (the time limit of shareTokenRequests), and one that answers something other than a token
 * (an HTML page, an empty body, a token answer without its access token or of type pop), as a proxy
 * or a captive portal would. A file of its own: MSAL keeps managed identity tokens in a cache shared
 * by every credential of the process, so a token an earlier test obtained would be answered without
 * a request.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type Emulator, start } from "@kvdeploy/kv-emulator"
import * as Effect from "effect/Effect"
import {
  keyVaultScope,
  makeCredential,
  probeToken,
  type ResolvedCredential,
  shareTokenRequests,
  withTokenTimeLimit,
} from "../src/index.js"
import { emulatorSettings, withEnvironment } from "./identityEnvironment.js"

let emulator: Emulator
beforeAll(async () => {
  emulator = await start({ vaults: ["held"], warn: () => {} })
})
afterAll(() => emulator?.stop())

type Mode = "clientSecret" | "managedIdentityImds"

const settingsFor = (mode: Mode) => emulatorSettings(emulator, "held", mode)

/** The probe's failure for a fresh credential of `mode` (through `limit`), its token requests met by `fault`. */
const probeFailure = (
  mode: Mode,
  fault: Parameters<Emulator["faults"]["add"]>[0],
  limit: (resolved: ResolvedCredential) => ResolvedCredential = (resolved) => resolved,
) => {
  const id = emulator.faults.add(fault)
  return withEnvironment(
    emulator.env[mode],
    Effect.gen(function* () {
      const resolved = limit(yield* makeCredential(settingsFor(mode)))
      return yield* probeToken(resolved, keyVaultScope(emulator.keyvaultResource)).pipe(Effect.flip)
    }),
  ).pipe(Effect.ensuring(Effect.sync(() => emulator.faults.remove(id))))
}

describe("an identity endpoint that answers no token", () => {
  it.live("is said as such (not a refused credential, nor an unreachable endpoint), with what to check", () =>
    Effect.gen(function* () {
      const html = {
        kind: "rawAnswer",
        body: "<html><body>Sign in to the network</body></html>",
        contentType: "text/html",
      } as const
      const notToken =
        "it answered 200 with something that is not a token answer (an HTML page, an empty body or other text)"
      const noToken = "its answer had no access token or no expiry"
      const pop =
        "its answer's token type was not Bearer (a proof-of-possession token, which kvdeploy does not ask for)"
      for (const [mode, operation, action, what] of [
        ["clientSecret", "token", html, notToken],
        ["clientSecret", "token", { kind: "rawAnswer", body: "" }, notToken],
        ["clientSecret", "token", { kind: "omitFields", fields: ["access_token"] }, noToken],
        ["clientSecret", "token", { kind: "setFields", fields: { token_type: "pop" } }, pop],
        ["managedIdentityImds", "imdsToken", html, notToken],
        ["managedIdentityImds", "imdsToken", { kind: "omitFields", fields: ["access_token"] }, noToken],
        ["managedIdentityImds", "imdsToken", { kind: "setFields", fields: { token_type: "pop" } }, pop],
      ] as const) {
        const failed = yield* probeFailure(mode, { operation, times: "always", action })
        const label = `${mode} ${JSON.stringify(action)}`
        expect(failed.reason, label).toBe(`the identity endpoint answered, but not with a token: ${what}`)
        expect(failed.fix, label).toContain("a captive portal")
        expect(failed.fix, label).toContain("the credential itself was not refused")
      }
    }),
  )
})

describe("answers that look broken but are not", () => {
  it.live("a 200 whose JSON is Entra's refusal is read as the refusal, with its fix", () =>
    Effect.gen(function* () {
      const failed = yield* probeFailure("clientSecret", {
        operation: "token",
        times: "always",
        action: {
          kind: "rawAnswer",
          contentType: "application/json",
          body: JSON.stringify({
            error: "invalid_client",
            error_description: "AADSTS7000215: Invalid client secret provided.",
            error_codes: [7000215],
          }),
        },
      })
      expect(failed.reason).toBe(
        "Entra ID refused the client secret (Entra ID: AADSTS7000215: Invalid client secret provided.)",
      )
    }),
  )
})

describe("the time limit on a token request", () => {
  it.live(
    "an identity endpoint that holds the request: the probe gives up at the limit and says so (Entra ID, IMDS)",
    () =>
      Effect.gen(function* () {
        for (const [mode, operation] of [
          ["clientSecret", "token"],
          ["managedIdentityImds", "imdsToken"],
        ] as const) {
          const started = Date.now()
          const failed = yield* probeFailure(
            mode,
            { operation, times: "always", action: { kind: "hold", timeoutMs: 60_000 } },
            (resolved) => ({
              ...resolved,
              credential: shareTokenRequests(resolved.credential, { timeoutMs: 400 }),
            }),
          )
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
      const resolved = yield* withEnvironment(
        emulator.env.clientSecret,
        makeCredential(settingsFor("clientSecret")),
      )
      const limited = withTokenTimeLimit(resolved)
      expect(limited.identity).toEqual(resolved.identity)
      expect(limited.credential).not.toBe(resolved.credential)
      // It still gets a token (the limit is not reached).
      const token = yield* probeToken(limited, keyVaultScope(emulator.keyvaultResource))
      expect(token.audience).toBe(emulator.keyvaultResource)
    }),
  )
})
