/**
 * A token past its refresh time, through the real @azure/identity and msal-node against one of the
 * emulator's identity endpoints, the clock moved on (Date only: the emulator runs in the test's
 * process and issues its tokens by the same clock). msal-node refreshes within the request that
 * finds its token due and answers the old token; shareTokenRequests asks once more when that is
 * news, and the new token comes from msal's cache. A managed identity's token is due after half its
 * lifetime (msal's own rule); an Entra ID token when its answer's `refresh_in` says (the emulator
 * sends half the lifetime for tokens of more than 2 hours). Each mode in a file of its own: MSAL
 * keeps managed identity tokens in a cache shared by every credential of the process.
 */
import { writeFileSync } from "node:fs"
import type { AccessToken, TokenCredential } from "@azure/core-auth"
import { type Emulator, start } from "@kvdeploy/kv-emulator"
import * as Effect from "effect/Effect"
import { expect, vi } from "vitest"
import { keyVaultScope, makeCredential, shareTokenRequests, type TokenRequestEnded } from "../src/index.js"
import { emulatorSettings, withEnvironment } from "./identityEnvironment.js"

const hour = 3_600_000

/**
 * The scenario against `mode`'s endpoint, with an emulator of its own issuing 24 h tokens (msal
 * refreshes them from 12 h on); with `defaultChain`, through credential_mode default in that
 * environment (the chain's source that answers is `mode`'s).
 */
export const dueRefreshScenario = async (
  mode: "clientSecret" | "workloadIdentity" | "managedIdentityImds" | "managedIdentityAppService",
  options: { readonly defaultChain?: boolean } = {},
) => {
  const emulator = await start({ vaults: ["due"], warn: () => {}, tokenLifetimeSeconds: 24 * 3600 })
  vi.useFakeTimers({ toFake: ["Date"], now: Date.now() })
  try {
    // The identity environment for the whole scenario: msal reads the endpoint's address at each request.
    await Effect.runPromise(
      withEnvironment(
        emulator.env[mode],
        Effect.flatMap(
          makeCredential({
            ...emulatorSettings(emulator, "due", mode),
            ...(options.defaultChain === true ? { mode: "default" as const } : {}),
          }),
          (c) =>
            Effect.promise(() => {
              if (options.defaultChain === true) expect(c.identity.mode).toBe("default")
              return scenario(
                emulator,
                c.credential,
                mode === "managedIdentityImds"
                  ? "imdsToken"
                  : mode === "managedIdentityAppService"
                    ? "appServiceToken"
                    : "token",
                // As AKS's kubelet does, a fresh federated token in the file whenever the clock moves on
                // (the emulator's first one is valid for 24 hours).
                mode === "workloadIdentity"
                  ? () =>
                      writeFileSync(emulator.workloadIdentity.tokenFile, emulator.issueFederatedToken(), {
                        mode: 0o600,
                      })
                  : () => {},
              )
            }),
        ),
      ),
    )
  } finally {
    vi.useRealTimers()
    await emulator.stop()
  }
}

const scenario = async (
  emulator: Emulator,
  credential: TokenCredential,
  operation: "imdsToken" | "appServiceToken" | "token",
  clockMoved: () => void,
): Promise<void> => {
  const moveClock = (ms: number) => {
    vi.setSystemTime(Date.now() + ms)
    clockMoved()
  }
  const told: Array<TokenRequestEnded> = []
  const shared = shareTokenRequests(credential, {
    timeoutMs: 90_000,
    onRequestEnded: (e) => told.push(e),
  })
  const scope = keyVaultScope(emulator.keyvaultResource)
  const endpointRequests = () => emulator.requests.count({ operation })
  const get = async (): Promise<AccessToken> => {
    const token = await shared.getToken(scope)
    if (token === null) throw new Error("no token")
    return token
  }
  const first = await get()
  expect(told).toEqual([{ _tag: "Obtained", expiresOnMs: first.expiresOnTimestamp }])
  expect(endpointRequests()).toBe(1)

  // 13 hours on: msal refreshes (one request to the endpoint) and answers the old token; asked once more,
  // it answers the new one from its cache.
  moveClock(13 * hour)
  const second = await get()
  expect(second.token).not.toBe(first.token)
  expect(second.expiresOnTimestamp).toBeGreaterThan(first.expiresOnTimestamp)
  expect(endpointRequests()).toBe(2)
  expect(told.at(-1)).toEqual({ _tag: "Obtained", expiresOnMs: second.expiresOnTimestamp })

  // 13 hours on, the endpoint answering 400: msal keeps the old token and answers it (no error), asked
  // once more, the same: due, no failure yet.
  moveClock(13 * hour)
  const fault = emulator.faults.add({
    operation,
    times: "always",
    action: { kind: "status", status: 400, code: "invalid_request", message: "scripted" },
  })
  try {
    const before = endpointRequests()
    const third = await get()
    expect(third.token).toBe(second.token)
    expect(told.at(-1)).toEqual({ _tag: "Due", expiresOnMs: second.expiresOnTimestamp })
    // Two refreshes: the request's own and the one asked once more.
    expect(endpointRequests() - before).toBe(2)
  } finally {
    emulator.faults.remove(fault)
  } // The endpoint answers again: the request whose refresh succeeds is answered the old token (already seen
  // due, no failure since: not asked again, the known limit); the next has the new one.
  moveClock(30_000)
  expect((await get()).token).toBe(second.token)
  moveClock(30_000)
  const fourth = await get()
  expect(fourth.token).not.toBe(second.token)
  expect(told.at(-1)).toEqual({ _tag: "Obtained", expiresOnMs: fourth.expiresOnTimestamp })

  // 13 hours on, the endpoint dropping connections: msal throws, the held token is answered, failed.
  moveClock(13 * hour)
  const drop = emulator.faults.add({ operation, times: "always", action: { kind: "drop" } })
  try {
    expect((await get()).token).toBe(fourth.token)
    expect(told.at(-1)).toMatchObject({ _tag: "Failed", heldUntilMs: fourth.expiresOnTimestamp })
  } finally {
    emulator.faults.remove(drop)
  }
  // Back: the due answer after a failure is news, asked once more: the new token at once.
  moveClock(30_000)
  const fifth = await get()
  expect(fifth.token).not.toBe(fourth.token)
  expect(told.at(-1)).toEqual({ _tag: "Obtained", expiresOnMs: fifth.expiresOnTimestamp })
}
