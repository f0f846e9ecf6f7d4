/**
 * doctor's `federated token` check wherever @azure/identity reads the federated token file, not in
 * `workload_identity` alone: the default chain's workload identity and managed identity sources, and
 * `managed_identity`'s AKS token exchange; and where it does not, why. Against the emulator's Entra
 * ID with the real DefaultAzureCredential, whose refused token requests show that it read the file.
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { type CredentialSettings, diagnoseCredential, formatDiagnosis } from "../src/index.js"
import { emulatorSettings, emulatorWithDirectory, withEnvironment } from "./identityEnvironment.js"

const world = emulatorWithDirectory("fedu", "kvdeploy-fed-doctor-")

describe("doctor's federated token check where the SDK reads the file", () => {
  const hour = 3_600_000
  const tokenFileIssued = (name: string, agoMs: number): { file: string; token: string } => {
    const path = join(world.dir, name)
    const token = world.emulator.issueFederatedToken(undefined, {
      issuedAt: Math.floor((Date.now() - agoMs) / 1000),
    })
    writeFileSync(path, `${token}\n`, { mode: 0o600 })
    return { file: path, token }
  }
  const defaultSettings = (): CredentialSettings => ({
    ...emulatorSettings(world.emulator, "fedu", "workloadIdentity"),
    mode: "default",
  })
  /** Token requests Entra ID refused since `since`: the SDK sent the file's token when it read it. */
  const refusedAssertions = (since: number) =>
    world.emulator.requests
      .entries({ vault: "entra", operation: "token", since })
      .filter((e) => e.status === 401 || e.status === 400).length

  it.live(
    "default, a workload identity pod with an expired token: the check fails naming when it expired, and who reads it",
    () =>
      Effect.gen(function* () {
        const { file, token } = tokenFileIssued("default-expired", 2 * hour)
        const since = world.emulator.requests.mark()
        const d = yield* withEnvironment(
          {
            ...world.emulator.env.workloadIdentity,
            AZURE_FEDERATED_TOKEN_FILE: file,
            AZURE_TOKEN_CREDENTIALS: "prod",
          },
          diagnoseCredential(defaultSettings()),
        )
        expect(d.ok).toBe(false)
        // The SDK read the file: Entra ID refused its token.
        expect(refusedAssertions(since)).toBeGreaterThan(0)
        const check = d.checks.find((c) => c.name === "federated token")
        expect(check).toMatchObject({
          status: "failed",
          detail: expect.stringMatching(
            /expired at \S+ \((59 min|1 h) ago.*\(read by the chain's WorkloadIdentityCredential, and its ManagedIdentityCredential's AKS token exchange\)$/,
          ),
          fix: expect.stringContaining("kubelet"),
        })
        const text = formatDiagnosis(d).join("\n")
        for (const part of token.split(".")) expect(text).not.toContain(part)
      }),
  )

  it.live(
    "default, a fresh token: the chain's workload identity answers, and the check says when the token expires",
    () =>
      Effect.gen(function* () {
        const { file } = tokenFileIssued("default-fresh", 0)
        const d = yield* withEnvironment(
          {
            ...world.emulator.env.workloadIdentity,
            AZURE_FEDERATED_TOKEN_FILE: file,
            AZURE_TOKEN_CREDENTIALS: "prod",
          },
          diagnoseCredential(defaultSettings()),
        )
        expect(d.ok).toBe(true)
        expect(d.token?.answeredBy).toBe("WorkloadIdentityCredential")
        expect(d.checks.find((c) => c.name === "federated token")).toMatchObject({
          status: "ok",
          detail: expect.stringMatching(
            /expires at \S+ \(in (59 min|1 h)\).*\(read by the chain's WorkloadIdentityCredential/,
          ),
        })
      }),
  )

  it.live(
    "default with a client secret too: the EnvironmentCredential answers first, the file is not read, and the check says so",
    () =>
      Effect.gen(function* () {
        const { file } = tokenFileIssued("default-environment-first", 2 * hour)
        const since = world.emulator.requests.mark()
        const d = yield* withEnvironment(
          {
            ...world.emulator.env.workloadIdentity,
            AZURE_CLIENT_ID: world.emulator.clientSecret.clientId,
            AZURE_CLIENT_SECRET: world.emulator.clientSecret.clientSecret,
            AZURE_FEDERATED_TOKEN_FILE: file,
            AZURE_TOKEN_CREDENTIALS: "prod",
          },
          diagnoseCredential(defaultSettings()),
        )
        expect(d.ok).toBe(true)
        expect(d.token?.answeredBy).toBe("EnvironmentCredential")
        expect(refusedAssertions(since)).toBe(0)
        expect(d.checks.find((c) => c.name === "federated token")).toMatchObject({
          status: "skipped",
          detail: expect.stringContaining("the chain's EnvironmentCredential comes first"),
        })
      }),
  )

  it.live(
    "managed_identity, the AKS token exchange with an expired token: the check fails naming when it expired",
    () =>
      Effect.gen(function* () {
        const { file } = tokenFileIssued("exchange-expired", 2 * hour)
        const d = yield* withEnvironment(
          { ...world.emulator.env.workloadIdentity, AZURE_FEDERATED_TOKEN_FILE: file },
          diagnoseCredential({
            ...emulatorSettings(world.emulator, "fedu", "workloadIdentity"),
            mode: "managed_identity",
          }),
        )
        expect(d.ok).toBe(false)
        expect(d.checks.find((c) => c.name === "federated token")).toMatchObject({
          status: "failed",
          detail: expect.stringMatching(/expired at \S+ \((59 min|1 h) ago/),
        })
      }),
  )

  it.live(
    "managed_identity without AZURE_TENANT_ID: no exchange, the endpoint answers, and the check says why the file is not read",
    () =>
      Effect.gen(function* () {
        const { file } = tokenFileIssued("no-exchange", 2 * hour)
        const d = yield* withEnvironment(
          { ...world.emulator.env.managedIdentityUserAssigned, AZURE_FEDERATED_TOKEN_FILE: file },
          diagnoseCredential(emulatorSettings(world.emulator, "fedu", "managedIdentityImds")),
        )
        expect(d.ok).toBe(true)
        expect(d.checks.find((c) => c.name === "federated token")).toMatchObject({
          status: "skipped",
          detail: expect.stringMatching(/AZURE_TENANT_ID is not set, so IMDS \S+ is asked instead$/),
        })
      }),
  )
})
