/**
 * The default chain when none of its sources gives a token: doctor lists each
 * source's reason, in the chain's order. In a file of its own: MSAL keeps the
 * managed identity source it first finds for the whole process, so a process
 * that got a managed identity token elsewhere would get one here too.
 */
import { mkdtempSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { withProcessEnv } from "@kvdeploy/core/test"
import * as Effect from "effect/Effect"
import { diagnoseCredential, formatDiagnosis } from "../src/index.js"
import { emulatorSettings, emulatorWithDirectory, withEnvironment } from "./identityEnvironment.js"

const world = emulatorWithDirectory("chain", "kvdeploy-chain-")

// No AZURE_* service principal, the emulator's App Service managed identity endpoint with a header
// it refuses (401, at once: an endpoint that does not answer costs MSAL's retries, ~20 s), and
// "prod", which leaves the developer tools (az, azd, PowerShell, VS Code) out of the chain.
const environmentOf = (): Record<string, string> => ({
  AZURE_TOKEN_CREDENTIALS: "prod",
  IDENTITY_ENDPOINT: world.emulator.managedIdentity.appServiceEndpoint,
  IDENTITY_HEADER: "not-the-header",
})

describe("doctor, default chain with no source that answers", () => {
  it.live("a check per source in the chain's order, each with its reason, after the failed token", () =>
    Effect.gen(function* () {
      const diagnosis = yield* withEnvironment(
        environmentOf(),
        diagnoseCredential({ mode: "default", authorityHost: "https://login.microsoftonline.com" }),
      )
      expect(diagnosis.ok).toBe(false)
      const names = diagnosis.checks.map((c) => c.name)
      const token = names.indexOf("token")
      expect(diagnosis.checks[token]?.status).toBe("failed")
      expect(diagnosis.checks[token]?.detail).toBe(
        "none of the default chain's sources gave a token (each one's reason is listed)",
      )
      const sources = diagnosis.checks.slice(token + 1)
      // The chain's second source (workload identity, without its variables) was never built, so
      // the SDK gave two errors for three sources: each is named, not numbered. The one it could
      // not build is skipped, in its place in the chain, with the variable its constructor asked for.
      expect(sources.map((c) => [c.name, c.status])).toEqual([
        ["default chain source", "failed"],
        ["default chain source", "skipped"],
        ["default chain source", "failed"],
      ])
      expect(sources[0]?.detail).toMatch(/^EnvironmentCredential is unavailable/)
      expect(sources[1]?.detail).toMatch(
        /^WorkloadIdentityCredential: not built, so not tried: is unavailable\. .*\bclientId\b.*AZURE_CLIENT_ID/,
      )
      expect(sources[2]?.detail).toMatch(/^ManagedIdentityCredential: Authentication failed/)
      const text = formatDiagnosis(diagnosis).join("\n")
      expect(text).toContain(
        "[FAILED] default chain source: ManagedIdentityCredential: Authentication failed",
      )
    }),
  )

  it.live(
    "a chain whose one source was never built: no error from the SDK, and the source's line says why",
    () =>
      Effect.gen(function* () {
        // AZURE_TOKEN_CREDENTIALS keeps only the workload identity, which lacks its variables: the SDK
        // fails with "Failed to retrieve a valid token" and an empty list of errors.
        const diagnosis = yield* withEnvironment(
          { AZURE_TOKEN_CREDENTIALS: "WorkloadIdentityCredential" },
          diagnoseCredential({ mode: "default", authorityHost: "https://login.microsoftonline.com" }),
        )
        expect(diagnosis.ok).toBe(false)
        const token = diagnosis.checks.findIndex((c) => c.name === "token")
        expect(diagnosis.checks[token]?.status).toBe("failed")
        expect(diagnosis.checks.slice(token + 1).filter((c) => c.name === "default chain source")).toEqual([
          {
            name: "default chain source",
            status: "skipped",
            detail: expect.stringMatching(
              /^WorkloadIdentityCredential: not built, so not tried: is unavailable\. .*AZURE_CLIENT_ID/,
            ),
          },
        ])
      }),
  )
})

describe("doctor, the whole default chain in a workload identity pod whose federated token expired", () => {
  // Every source of the chain is tried: the developer tools too (AZURE_TOKEN_CREDENTIALS unset),
  // with a PATH that holds none of them, so each says so at once whatever this host has installed.
  const withoutTools = <A, E>(effect: Effect.Effect<A, E>) =>
    withProcessEnv(() => ({ PATH: mkdtempSync(join(world.dir, "path-")) }), effect)

  it.live("each source is named as the SDK names it, in the order it met them, or said to be unnamed", () =>
    Effect.gen(function* () {
      const tokenFile = join(world.dir, "expired-token")
      const issuedAt = Math.floor(Date.now() / 1000) - 2 * 3600
      const token = world.emulator.issueFederatedToken(undefined, { issuedAt })
      writeFileSync(tokenFile, token, { mode: 0o600 })
      const diagnosis = yield* withoutTools(
        withEnvironment(
          { ...world.emulator.env.workloadIdentity, AZURE_FEDERATED_TOKEN_FILE: tokenFile },
          diagnoseCredential({
            ...emulatorSettings(world.emulator, "chain", "workloadIdentity"),
            mode: "default",
          }),
        ),
      )
      expect(diagnosis.ok).toBe(false)
      const sources = diagnosis.checks.filter((c) => c.name === "default chain source")
      const opening = sources.map(
        (c) => /^(\w+Credential|unnamed): /.exec(c.detail)?.[1] ?? c.detail.split(" ")[0],
      )
      // Environment (its message names it), workload identity (Entra ID's refusal through MSAL: named by
      // nothing), managed identity (its AKS token exchange, at the target's cloud too, refused alike;
      // named by its own error line in the SDK's log), Visual Studio Code
      // (its message names only the editor, and it logs no error line), then the command-line tools,
      // each named by its own error line in the SDK's log. The broker, which the SDK could not build
      // either (kvdeploy does not ship its plugin), has no line: it could never be otherwise.
      expect(sources.map((c) => c.status)).toEqual(Array(7).fill("failed"))
      expect(opening).toEqual([
        "EnvironmentCredential",
        "unnamed",
        "ManagedIdentityCredential",
        "unnamed",
        "AzureCliCredential",
        "AzurePowerShellCredential",
        "AzureDeveloperCliCredential",
      ])
      expect(sources[1]?.detail).toMatch(/^unnamed: invalid_client: .*AADSTS700024/)
      // The managed identity's exchange went to the target's authority (the emulator), not to
      // another cloud's (DefaultAzureCredential's own exchange gets no answer there).
      expect(sources[2]?.detail).toMatch(/^ManagedIdentityCredential: invalid_client: .*AADSTS700024/)
      expect(sources[4]?.detail).toMatch(/^AzureCliCredential: Azure CLI could not be found/)
      const text = formatDiagnosis(diagnosis).join("\n")
      for (const part of token.split(".")) expect(text).not.toContain(part)
    }),
  )
})
