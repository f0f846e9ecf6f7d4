/**
 * managed_identity's AKS token exchange and its federated token file, as workload_identity's: the
 * input check (the CLI's commands, the agent's `--check`) judges the file wherever the exchange
 * reads it (a token expired more than 5 minutes ago, a missing or empty file), before any token
 * request; and a token request Entra ID refuses names the file's state beside Entra ID's words,
 * through the real @azure/identity against the emulator's Entra ID. Never the token itself.
 */
import { rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import {
  type CredentialMode,
  credentialEnvironmentProblems,
  environmentProblems,
  makeCredential,
  tokenFileStateBeside,
} from "../src/index.js"
import { emulatorSettings, emulatorWithDirectory, withEnvironment } from "./identityEnvironment.js"

const world = emulatorWithDirectory("exchange", "kvdeploy-exchange-")

/** The tokens written, so no message may hold one. */
const written: Array<string> = []
/** A federated token the emulator's issuer signed as if `agoMinutes` ago (valid for an hour), in a file of its own. */
const tokenFileIssued = (name: string, agoMinutes: number): string => {
  const file = join(world.dir, name)
  const token = world.emulator.issueFederatedToken(undefined, {
    issuedAt: Math.floor(Date.now() / 1000) - agoMinutes * 60,
  })
  written.push(token)
  writeFileSync(file, `${token}\n`, { mode: 0o600 })
  return file
}

const pod = (tokenFile: string): Record<string, string> => ({
  ...world.emulator.env.workloadIdentity,
  AZURE_FEDERATED_TOKEN_FILE: tokenFile,
})

const settingsFor = (mode: CredentialMode) => ({
  ...emulatorSettings(world.emulator, "exchange", "workloadIdentity"),
  mode,
})

const expectNoToken = (text: string) => {
  for (const token of written) for (const part of token.split(".")) expect(text).not.toContain(part)
}

describe("the input check judges the exchange's token file as workload_identity's", () => {
  const check = (env: Record<string, string>, managedIdentityClientId?: string) =>
    credentialEnvironmentProblems("managed_identity", (n) => env[n], {
      checkFiles: true,
      tokenExpiry: true,
      managedIdentityClientId,
    })

  it("a token expired more than 5 minutes ago is refused, naming the file, its expiry and the fix", () => {
    const file = tokenFileIssued("stale", 2 * 60)
    const problems = check(pod(file))
    expect(problems).toEqual([
      {
        kind: "malformed",
        variables: ["AZURE_FEDERATED_TOKEN_FILE"],
        reason: expect.stringMatching(
          new RegExp(
            `^the token in ${file} expired at \\S+ \\((59 min|1 h) ago, by this host's clock\\): Entra ID refuses an expired one \\(AADSTS700024\\)$`,
          ),
        ),
        fix: expect.stringMatching(
          /kubelet rewrites the projected service account token.*restarting the pod/,
        ),
        expiredToken: true,
      },
    ])
    // The same words as workload_identity's.
    expect(
      credentialEnvironmentProblems("workload_identity", (n) => pod(file)[n], {
        checkFiles: true,
        tokenExpiry: true,
      }),
    ).toEqual(problems)
    expectNoToken(JSON.stringify(problems))
    // Within the 5 minutes left for the clocks to differ: Entra ID judges it.
    expect(check(pod(tokenFileIssued("within-skew", 62)))).toEqual([])
  })

  it("a missing or empty file is named", () => {
    const missing = join(world.dir, "not-there")
    expect(check(pod(missing))).toEqual([
      expect.objectContaining({
        variables: ["AZURE_FEDERATED_TOKEN_FILE"],
        reason: `the federated token file ${missing} (AZURE_FEDERATED_TOKEN_FILE) cannot be read: no such file or directory (ENOENT)`,
        fix: expect.stringContaining('azure.workload.identity/use: "true"'),
      }),
    ])
    const empty = join(world.dir, "empty")
    writeFileSync(empty, "")
    expect(check(pod(empty))).toEqual([
      expect.objectContaining({
        reason: `the federated token file ${empty} (AZURE_FEDERATED_TOKEN_FILE) is empty`,
      }),
    ])
  })

  it("only where the exchange reads the file: with a configured client id, not without a tenant", () => {
    const file = tokenFileIssued("stale-rule", 2 * 60)
    const { AZURE_CLIENT_ID: _client, ...noClient } = pod(file)
    // No client id anywhere: the managed identity endpoint is asked, the file is not read.
    expect(check(noClient)).toEqual([])
    // managed_identity_client_id makes the exchange without AZURE_CLIENT_ID.
    expect(check(noClient, "00000000-0000-0000-0000-0000000000aa")).toEqual([
      expect.objectContaining({ expiredToken: true }),
    ])
    const { AZURE_TENANT_ID: _tenant, ...noTenant } = pod(file)
    expect(check(noTenant, "00000000-0000-0000-0000-0000000000aa")).toEqual([])
  })

  it.effect("read through the ConfigProvider (the CLI's environmentProblems) too", () =>
    Effect.gen(function* () {
      const file = tokenFileIssued("stale-config", 2 * 60)
      const problems = yield* withEnvironment(
        pod(file),
        environmentProblems("managed_identity", { checkFiles: true, tokenExpiry: true }),
      )
      expect(problems).toEqual([expect.objectContaining({ expiredToken: true })])
    }),
  )
})

describe("a refused token request names the file's state beside Entra ID's words", () => {
  for (const mode of ["managed_identity", "workload_identity"] as const) {
    it.live(
      `${mode}: an expired token (within the input check's 5 minutes): Entra ID's refusal and when the file's token expired`,
      () =>
        Effect.gen(function* () {
          const file = tokenFileIssued(`just-expired-${mode}`, 62)
          const error = yield* withEnvironment(
            pod(file),
            Effect.gen(function* () {
              const { credential } = yield* makeCredential(settingsFor(mode))
              return yield* Effect.tryPromise(() =>
                credential.getToken(`${world.emulator.keyvaultResource}/.default`),
              )
            }).pipe(Effect.flip),
          )
          const text = String(error.cause instanceof Error ? error.cause.message : error)
          // Entra ID's own words, as before; then the file, its expiry and the fix.
          expect(text).toMatch(/AADSTS700024: Client assertion is not within its valid time range/)
          expect(text).toMatch(
            new RegExp(`\\[the token in ${file} expired at \\S+ \\(2 min ago, by this host's clock\\)`),
          )
          expect(text).toContain("the kubelet rewrites the projected service account token")
          expectNoToken(text)
        }),
    )

    it.live(`${mode}: a file gone after the credential was made is named as such`, () =>
      Effect.gen(function* () {
        const file = tokenFileIssued(`gone-${mode}`, 0)
        const error = yield* withEnvironment(
          pod(file),
          Effect.gen(function* () {
            const { credential } = yield* makeCredential(settingsFor(mode))
            rmSync(file)
            return yield* Effect.tryPromise(() =>
              credential.getToken(`${world.emulator.keyvaultResource}/.default`),
            )
          }).pipe(Effect.flip),
        )
        const text = String(error.cause instanceof Error ? error.cause.message : error)
        expect(text).toContain(
          `[the federated token file ${file} (AZURE_FEDERATED_TOKEN_FILE) cannot be read: no such file or directory (ENOENT): Check that the projected service account token is mounted there`,
        )
      }),
    )
  }

  it("a token valid by this host's clock that Entra ID refused as expired points at the clock", () => {
    const file = tokenFileIssued("fresh-clock", 0)
    const refusal = new Error(
      "invalid_client: AADSTS700024: Client assertion is not within its valid time range.",
    )
    const state = tokenFileStateBeside(file, refusal, Date.now())
    expect(state?.reason).toMatch(
      new RegExp(
        `^the token in ${file} expires at \\S+ \\(in (59 min|1 h), by this host's clock\\), and Entra ID refused it as expired or not valid yet$`,
      ),
    )
    expect(state?.fix).toMatch(/this host's clock/)
    // Another refusal of a readable token: the file says nothing about it.
    expect(
      tokenFileStateBeside(
        file,
        new Error("AADSTS700213: No matching federated identity record"),
        Date.now(),
      ),
    ).toBeUndefined()
  })
})

describe("makeCredential decides the exchange with the configured client id, as the credential makes it", () => {
  it.effect(
    "behind a proxy, with managed_identity_client_id and no AZURE_CLIENT_ID: the exchange, not a refusal about IMDS",
    () =>
      Effect.gen(function* () {
        const file = tokenFileIssued("proxied", 0)
        const { AZURE_CLIENT_ID: clientId = "", ...withoutClient } = pod(file)
        const made = yield* withEnvironment(
          { ...withoutClient, HTTPS_PROXY: "http://proxy.invalid:3128" },
          makeCredential({ ...settingsFor("managed_identity"), managedIdentityClientId: clientId }),
        )
        // The exchange asks Entra ID over HTTPS (through the proxy, as any Entra ID request): no
        // managed identity endpoint is asked, so NO_PROXY need not name one.
        expect(made.identity.tokenFile).toBe(file)
        expect(made.identity.clientId).toBe(clientId)
      }),
  )
})
