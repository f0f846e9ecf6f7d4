/**
 * credential_mode `default` asks the target's cloud from every source of its chain: in an AKS
 * workload identity pod, the chain's managed identity exchanges the pod's federated token at the
 * target's authority, with its CAs, as `managed_identity` mode does (DefaultAzureCredential's own
 * managed identity sent it to AZURE_AUTHORITY_HOST's authority, else the public cloud's). And what
 * doctor says of the chain matches what it does: AZURE_TOKEN_CREDENTIALS, the managed identity that
 * AZURE_CLIENT_ID makes user-assigned, and the endpoint MSAL picks. In a file of its own: MSAL keeps
 * the managed identity source it first finds for the whole process (IMDS here).
 */
import { DefaultAzureCredential } from "@azure/identity"
import { describe, expect, it } from "@effect/vitest"
import { changeProcessEnv } from "@kvdeploy/core/test"
import * as Effect from "effect/Effect"
import { invalidSelectionMessage } from "../src/defaultChain.js"
import {
  diagnoseCredential,
  formatDiagnosis,
  keyVaultScope,
  makeCredential,
  probeToken,
} from "../src/index.js"
import { emulatorSettings, emulatorWithDirectory, withEnvironment } from "./identityEnvironment.js"

const world = emulatorWithDirectory("chaincloud", "kvdeploy-chain-cloud-")

/** The emulator's Entra ID token requests so far (the federated token's exchanges among them). */
const entraTokenRequests = () =>
  world.emulator.requests.entries().filter((e) => e.vault === "entra" && e.method === "POST").length

describe("default chain in an AKS workload identity pod: the managed identity's exchange at the target's cloud", () => {
  // The pod's variables, AZURE_AUTHORITY_HOST unset (a pod set up by hand) or naming another
  // authority than the target's (nothing listens there): the target's cloud is the emulator's.
  const podWith = (authority: string | undefined): Record<string, string> => {
    const { AZURE_AUTHORITY_HOST: _, ...rest } = world.emulator.env.workloadIdentity
    return {
      ...rest,
      AZURE_TOKEN_CREDENTIALS: "ManagedIdentityCredential",
      ...(authority === undefined ? {} : { AZURE_AUTHORITY_HOST: authority }),
    }
  }

  for (const authority of [undefined, "https://127.0.0.1:9"])
    it.live(`AZURE_AUTHORITY_HOST ${authority ?? "unset"}: the token comes from the target's authority`, () =>
      Effect.gen(function* () {
        const settings = {
          ...emulatorSettings(world.emulator, "chaincloud", "workloadIdentity"),
          mode: "default" as const,
        }
        const before = entraTokenRequests()
        const { resolved, token } = yield* withEnvironment(
          podWith(authority),
          Effect.gen(function* () {
            const resolved = yield* makeCredential(settings)
            const token = yield* probeToken(resolved, keyVaultScope(world.emulator.keyvaultResource))
            return { resolved, token }
          }),
        )
        expect(token.answeredBy).toBe("ManagedIdentityCredential")
        expect(token.appId).toBe(world.emulator.workloadIdentity.clientId)
        expect(entraTokenRequests()).toBeGreaterThan(before)
        expect(resolved.identity.source).toBe(
          "DefaultAzureCredential's chain as AZURE_TOKEN_CREDENTIALS selects it (managed identity by AKS workload identity's token exchange), each source at the target's cloud",
        )
      }),
    )
})

describe("doctor, default chain: what each source will do, as the chain does it", () => {
  const defaultSettings = (mode: "workloadIdentity" | "managedIdentityImds") => ({
    ...emulatorSettings(world.emulator, "chaincloud", mode),
    mode: "default" as const,
  })

  it.live(
    "AZURE_CLIENT_ID left from a service principal makes the managed identity user-assigned: said, and the fix says to unset it",
    () =>
      Effect.gen(function* () {
        const leftover = "5b20ed7e-9000-4a6e-b8e2-111b2f0fa712"
        const diagnosis = yield* withEnvironment(
          {
            ...world.emulator.env.managedIdentityImds,
            AZURE_CLIENT_ID: leftover,
            AZURE_TOKEN_CREDENTIALS: "prod",
          },
          diagnoseCredential(defaultSettings("managedIdentityImds")),
        )
        expect(diagnosis.ok).toBe(false)
        expect(diagnosis.identity?.managedIdentityClientIdFrom).toBe("AZURE_CLIENT_ID")
        expect(diagnosis.identity?.source).toContain("managed identity (user-assigned by AZURE_CLIENT_ID)")
        const pre = diagnosis.checks.find((c) => c.name === "default: 3 managed identity")
        expect(pre?.detail).toMatch(
          /^would ask IMDS http:\/\/127\.0\.0\.1:\d+ for the user-assigned identity .* that AZURE_CLIENT_ID names/,
        )
        const managed = diagnosis.checks.find(
          (c) => c.name === "default chain source" && c.detail.startsWith("ManagedIdentityCredential"),
        )
        expect(managed?.detail).toMatch(/Identity not found/)
        expect(managed?.fix).toMatch(/unset it .*for the system-assigned identity/)
        expect(formatDiagnosis(diagnosis).join("\n")).toContain(
          "fix: The chain's managed identity asked for the user-assigned identity AZURE_CLIENT_ID names",
        )
      }),
  )

  it.live(
    "the pre-checks follow AZURE_TOKEN_CREDENTIALS, the AKS exchange, and MSAL's choice of endpoint",
    () =>
      Effect.gen(function* () {
        const { AZURE_AUTHORITY_HOST: _, ...pod } = world.emulator.env.workloadIdentity
        const only = yield* withEnvironment(
          { ...pod, AZURE_TOKEN_CREDENTIALS: "ManagedIdentityCredential" },
          diagnoseCredential(defaultSettings("workloadIdentity")),
        )
        expect(only.ok).toBe(true)
        const status = (d: typeof only, name: string) => d.checks.find((c) => c.name === name)
        for (const name of [
          "default: 1 environment",
          "default: 2 workload identity",
          "default: 4 developer tools",
        ])
          expect(status(only, name)).toMatchObject({
            status: "skipped",
            detail: "left out of the chain by AZURE_TOKEN_CREDENTIALS",
          })
        expect(status(only, "default: 3 managed identity")?.detail).toBe(
          `would make AKS workload identity's token exchange at ${world.emulator.authorityHost} (the target's cloud), not ask a managed identity endpoint: client ${world.emulator.workloadIdentity.clientId}, tenant ${world.emulator.tenantId}, token file ${world.emulator.workloadIdentity.tokenFile}`,
        )
        // IDENTITY_ENDPOINT without IDENTITY_HEADER is no App Service: MSAL asks IMDS.
        const imds = yield* withEnvironment(
          {
            ...world.emulator.env.managedIdentityImds,
            IDENTITY_ENDPOINT: "http://127.0.0.1:9/msi/token",
            AZURE_TOKEN_CREDENTIALS: "prod",
          },
          diagnoseCredential(defaultSettings("managedIdentityImds")),
        )
        expect(imds.ok).toBe(true)
        expect(status(imds, "default: 3 managed identity")?.detail).toBe(
          `would ask IMDS ${world.emulator.managedIdentity.imdsHost} for the system-assigned identity`,
        )
        expect(status(imds, "default: 4 developer tools")?.status).toBe("skipped")
        expect(imds.identity?.source).toContain("managed identity (system-assigned)")
      }),
  )
})

describe("AZURE_TOKEN_CREDENTIALS", () => {
  it("a value DefaultAzureCredential refuses is refused in its words", () => {
    const refusal = (() => {
      const restore = changeProcessEnv({ AZURE_TOKEN_CREDENTIALS: "bogus" })
      try {
        new DefaultAzureCredential()
      } catch (error) {
        return error instanceof Error ? error.message : String(error)
      } finally {
        restore()
      }
      return undefined
    })()
    expect(refusal).toBe(invalidSelectionMessage("bogus"))
  })
})
