/**
 * The default chain when none of its sources gives a token: doctor lists each
 * source's reason, in the chain's order. In a file of its own: MSAL keeps the
 * managed identity source it first finds for the whole process, so a process
 * that got a managed identity token elsewhere would get one here too.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type Emulator, start } from "@kvdeploy/kv-emulator"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import { diagnoseCredential, formatDiagnosis } from "../src/index.js"

let emulator: Emulator
beforeAll(async () => {
  emulator = await start({ vaults: ["chain"], warn: () => {} })
})
afterAll(() => emulator?.stop())

// No AZURE_* service principal, the emulator's App Service managed identity endpoint with a header
// it refuses (401, at once: an endpoint that does not answer costs MSAL's retries, ~20 s), and
// "prod", which leaves the developer tools (az, azd, PowerShell, VS Code) out of the chain.
const environmentOf = (): Record<string, string> => ({
  AZURE_TOKEN_CREDENTIALS: "prod",
  IDENTITY_ENDPOINT: emulator.managedIdentity.appServiceEndpoint,
  IDENTITY_HEADER: "not-the-header",
})
const cleared = [
  "AZURE_TENANT_ID",
  "AZURE_CLIENT_ID",
  "AZURE_CLIENT_SECRET",
  "AZURE_CLIENT_CERTIFICATE_PATH",
  "AZURE_FEDERATED_TOKEN_FILE",
  "MSI_ENDPOINT",
  "MSI_SECRET",
  "IMDS_ENDPOINT",
  "AZURE_POD_IDENTITY_AUTHORITY_HOST",
]

describe("doctor, default chain with no source that answers", () => {
  it.live("a failed check per source, each with its reason, after the failed token", () =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        const saved = Object.fromEntries(
          [...cleared, ...Object.keys(environmentOf())].map((k) => [k, process.env[k]] as const),
        )
        for (const k of cleared) delete process.env[k]
        Object.assign(process.env, environmentOf())
        return saved
      }),
      () =>
        Effect.gen(function* () {
          const diagnosis = yield* diagnoseCredential({
            mode: "default",
            authorityHost: "https://login.microsoftonline.com",
          }).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(environmentOf()))))
          expect(diagnosis.ok).toBe(false)
          const names = diagnosis.checks.map((c) => c.name)
          const token = names.indexOf("token")
          expect(diagnosis.checks[token]?.status).toBe("failed")
          expect(diagnosis.checks[token]?.detail).toBe(
            "none of the default chain's sources gave a token (each one's reason is listed)",
          )
          const sources = diagnosis.checks.slice(token + 1)
          expect(sources.map((c) => [c.name, c.status])).toEqual([
            ["default chain: source 1", "failed"],
            ["default chain: source 2", "failed"],
          ])
          expect(sources[0]?.detail).toMatch(/^EnvironmentCredential is unavailable/)
          expect(sources[1]?.detail).toMatch(/^ManagedIdentityCredential/)
          const text = formatDiagnosis(diagnosis).join("\n")
          expect(text).toContain("[FAILED] default chain: source 2: ManagedIdentityCredential")
        }),
      (saved) =>
        Effect.sync(() => {
          for (const [k, v] of Object.entries(saved)) {
            if (v === undefined) delete process.env[k]
            else process.env[k] = v
          }
        }),
    ),
  )
})
