/**
 * A vault in another Entra tenant than the credential's, over HTTPS with the real SDKs. Key
 * Vault's challenge names the vault's tenant; keyvault-common asks the credential for a token of
 * it, and @azure/identity's credentials refuse another tenant than their own unless it is
 * additionally allowed, before sending anything. AZURE_ADDITIONALLY_ALLOWED_TENANTS allows it, and
 * kvdeploy gives it to every credential that asks Entra ID (@azure/identity reads it for its
 * EnvironmentCredential only).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import type { DeployOutcome } from "@kvdeploy/core"
import { credentialSettingsFromTarget, makeCredential } from "@kvdeploy/credentials"
import { type AuthMode, type Emulator, start } from "@kvdeploy/kv-emulator"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import { deployOnce, fastReads, targetFor, worldLayer } from "./support/emulator.js"
import { type Issuer, makeCa, makeMaterial } from "./support/pki.js"

const VAULT = "cross-tenant"
const VAULT_TENANT = "11111111-2222-3333-4444-555555555555"
let emulator: Emulator
let ca: Issuer

beforeAll(async () => {
  emulator = await start({ vaults: [{ name: VAULT, tenantId: VAULT_TENANT }], warn: () => {} })
  ca = await makeCa()
})
afterAll(() => emulator?.stop())

/** Run `effect` with `variables` as the whole identity environment of process.env, then restore it. */
const inProcessEnvironment = <A, E>(
  variables: Readonly<Record<string, string>>,
  effect: Effect.Effect<A, E>,
) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const names = Object.keys(process.env).filter((k) => /^(AZURE_|IDENTITY_|MSI_|IMDS_)/.test(k))
      const saved = new Map([...names, ...Object.keys(variables)].map((k) => [k, process.env[k]] as const))
      for (const k of names) delete process.env[k]
      for (const [k, v] of Object.entries(variables)) if (k !== "NODE_EXTRA_CA_CERTS") process.env[k] = v
      return saved
    }),
    () => effect,
    (saved) =>
      Effect.sync(() => {
        for (const [k, v] of saved) {
          if (v === undefined) delete process.env[k]
          else process.env[k] = v
        }
      }),
  )

/** Deploy `name` to the other tenant's vault with the credential of `mode` built from `variables`. */
const deployWith = (
  name: string,
  mode: AuthMode,
  extra: Readonly<Record<string, string>> = {},
  credentialMode?: string,
) =>
  Effect.gen(function* () {
    const target = targetFor(
      emulator,
      VAULT,
      name,
      credentialMode === undefined ? {} : { credential_mode: credentialMode },
      mode,
    )
    const variables = { ...emulator.env[mode], ...extra }
    // DefaultAzureCredential's and ManagedIdentityCredential's sources read process.env themselves.
    const resolved = yield* inProcessEnvironment(
      variables,
      makeCredential(credentialSettingsFromTarget(target, { trustedCaPem: emulator.caPem })).pipe(
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(variables))),
      ),
    )
    const material = yield* Effect.promise(() => makeMaterial(ca))
    const since = emulator.requests.mark()
    const outcome: DeployOutcome = yield* inProcessEnvironment(
      variables,
      deployOnce(target, material, name).pipe(
        fastReads,
        Effect.provide(worldLayer(emulator, target, resolved.credential)),
      ),
    )
    const sent = emulator.requests
      .entries({ vault: VAULT, since })
      .filter((e) => !e.challenge)
      .map((e) => `${e.operation} ${e.status}`)
    return { outcome, sent, target, credential: resolved.credential, variables }
  })

describe("a vault in another tenant than the credential's", () => {
  const allowed: ReadonlyArray<{ readonly name: string; readonly mode: AuthMode }> = [
    { name: "client_secret", mode: "clientSecret" },
    { name: "workload_identity", mode: "workloadIdentity" },
  ]
  for (const c of allowed)
    it.live(`${c.name} with AZURE_ADDITIONALLY_ALLOWED_TENANTS naming the vault's tenant: deployed`, () =>
      Effect.gen(function* () {
        const { outcome, sent } = yield* deployWith(`allowed-${allowed.indexOf(c)}`, c.mode, {
          // As an operator may write it: another tenant first, spaces around the separator.
          AZURE_ADDITIONALLY_ALLOWED_TENANTS: `99999999-0000-0000-0000-000000000000 ; ${VAULT_TENANT}`,
        })
        expect(outcome._tag, outcome.reason).toBe("Succeeded")
        expect(sent).toEqual(["getLatest 404", "import 200", "getLatest 200"])
      }),
    )
})
