/**
 * A token past its refresh time, through the real @azure/identity and msal-node against the
 * emulator's IMDS endpoint, the clock moved on (Date only: the emulator runs in this process and
 * issues its tokens by the same clock). msal-node refreshes within the request that finds its token
 * due and answers the old token; shareTokenRequests asks once more when that is news, and the new
 * token comes from msal's cache. A file of its own: MSAL keeps managed identity tokens in a cache
 * shared by every credential of the process.
 */
import type { AccessToken, TokenCredential } from "@azure/core-auth"
import { type Emulator, start } from "@kvdeploy/kv-emulator"
import * as Effect from "effect/Effect"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { keyVaultScope, makeCredential, shareTokenRequests, type TokenRequestEnded } from "../src/index.js"
import { emulatorSettings, withEnvironment } from "./identityEnvironment.js"

const hour = 3_600_000

let emulator: Emulator
beforeAll(async () => {
  // 24 h tokens: msal-node refreshes them from half their life on (12 h).
  emulator = await start({ vaults: ["due"], warn: () => {}, tokenLifetimeSeconds: 24 * 3600 })
})
afterAll(() => emulator?.stop())

describe("a token past its refresh time, with msal-node", () => {
  it("the request whose refresh succeeded is answered the new token; a refresh that gets an HTTP error leaves the old one, due", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() })
    try {
      // The identity environment for the whole test: msal reads IMDS's address at each request.
      await Effect.runPromise(
        withEnvironment(
          emulator.env.managedIdentityImds,
          Effect.flatMap(makeCredential(emulatorSettings(emulator, "due", "managedIdentityImds")), (c) =>
            Effect.promise(() => scenario(c.credential)),
          ),
        ),
      )
    } finally {
      vi.useRealTimers()
    }
  }, 60_000)
})

const scenario = async (credential: TokenCredential): Promise<void> => {
  const told: Array<TokenRequestEnded> = []
  const shared = shareTokenRequests(credential, {
    timeoutMs: 90_000,
    onRequestEnded: (e) => told.push(e),
  })
  const scope = keyVaultScope(emulator.keyvaultResource)
  const imdsRequests = () => emulator.requests.count({ operation: "imdsToken" })
  const get = async (): Promise<AccessToken> => {
    const token = await shared.getToken(scope)
    if (token === null) throw new Error("no token")
    return token
  }
  const first = await get()
  expect(told).toEqual([{ _tag: "Obtained", expiresOnMs: first.expiresOnTimestamp }])
  expect(imdsRequests()).toBe(1)

  // 13 hours on: msal refreshes (one IMDS request) and answers the old token; asked once more,
  // it answers the new one from its cache.
  vi.setSystemTime(Date.now() + 13 * hour)
  const second = await get()
  expect(second.token).not.toBe(first.token)
  expect(second.expiresOnTimestamp).toBeGreaterThan(first.expiresOnTimestamp)
  expect(imdsRequests()).toBe(2)
  expect(told.at(-1)).toEqual({ _tag: "Obtained", expiresOnMs: second.expiresOnTimestamp })

  // 13 hours on, IMDS answering 400: msal keeps the old token and answers it (no error), asked
  // once more, the same: due, no failure yet.
  vi.setSystemTime(Date.now() + 13 * hour)
  const fault = emulator.faults.add({
    operation: "imdsToken",
    times: "always",
    action: { kind: "status", status: 400, code: "invalid_request", message: "scripted" },
  })
  try {
    const before = imdsRequests()
    const third = await get()
    expect(third.token).toBe(second.token)
    expect(told.at(-1)).toEqual({ _tag: "Due", expiresOnMs: second.expiresOnTimestamp })
    // Two refreshes: the request's own and the one asked once more.
    expect(imdsRequests() - before).toBe(2)
  } finally {
    emulator.faults.remove(fault)
  } // IMDS answers again: the request whose refresh succeeds is answered the old token (already seen
  // due, no failure since: not asked again, the known limit); the next has the new one.
  vi.setSystemTime(Date.now() + 30_000)
  expect((await get()).token).toBe(second.token)
  vi.setSystemTime(Date.now() + 30_000)
  const fourth = await get()
  expect(fourth.token).not.toBe(second.token)
  expect(told.at(-1)).toEqual({ _tag: "Obtained", expiresOnMs: fourth.expiresOnTimestamp })

  // 13 hours on, IMDS dropping connections: msal throws, the held token is answered, failed.
  vi.setSystemTime(Date.now() + 13 * hour)
  const drop = emulator.faults.add({ operation: "imdsToken", times: "always", action: { kind: "drop" } })
  try {
    expect((await get()).token).toBe(fourth.token)
    expect(told.at(-1)).toMatchObject({ _tag: "Failed", heldUntilMs: fourth.expiresOnTimestamp })
  } finally {
    emulator.faults.remove(drop)
  }
  // Back: the due answer after a failure is news, asked once more: the new token at once.
  vi.setSystemTime(Date.now() + 30_000)
  const fifth = await get()
  expect(fifth.token).not.toBe(fourth.token)
  expect(told.at(-1)).toEqual({ _tag: "Obtained", expiresOnMs: fifth.expiresOnTimestamp })
}
