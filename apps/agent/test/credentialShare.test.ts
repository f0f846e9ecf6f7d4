/** Concurrent requests for the same token share one request to the credential. */
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth"
import { toVaultError } from "@kvdeploy/azure-kv"
import { shareTokenRequests } from "@kvdeploy/credentials"
import { describe, expect, it } from "vitest"

const counting = () => {
  const calls: Array<{ scopes: string | string[]; options: GetTokenOptions | undefined }> = []
  const pending: Array<(t: AccessToken | null) => void> = []
  const credential: TokenCredential = {
    getToken: (scopes, options) => {
      calls.push({ scopes, options })
      return new Promise((resolve) => pending.push(resolve))
    },
  }
  const answer = (token: string) => {
    for (const resolve of pending.splice(0)) resolve({ token, expiresOnTimestamp: Date.now() + 3_600_000 })
  }
  return { credential, calls, answer }
}

describe("shareTokenRequests", () => {
  it("one request for concurrent callers of the same token; a new one once it settled", async () => {
    const c = counting()
    const shared = shareTokenRequests(c.credential, { timeoutMs: 60_000 })
    const scope = "https://vault.azure.net/.default"
    const first = Array.from({ length: 64 }, () => shared.getToken(scope, { tenantId: "t" }))
    expect(c.calls).toHaveLength(1)
    c.answer("one")
    expect((await Promise.all(first)).map((t) => t?.token)).toEqual(Array(64).fill("one"))
    const later = shared.getToken(scope, { tenantId: "t" })
    expect(c.calls).toHaveLength(2)
    c.answer("two")
    expect((await later)?.token).toBe("two")
  })

  it("does not share different scopes, tenants, claims or CAE settings, nor proof-of-possession tokens", async () => {
    const c = counting()
    const shared = shareTokenRequests(c.credential, { timeoutMs: 60_000 })
    void shared.getToken("a/.default")
    void shared.getToken(["b/.default"])
    void shared.getToken("a/.default", { tenantId: "other" })
    void shared.getToken("a/.default", { claims: "x" })
    // A continuous-access-evaluation token is another token than the plain one.
    void shared.getToken("a/.default", { enableCae: true })
    const pop = {
      proofOfPossessionOptions: {
        nonce: "n",
        resourceRequestMethod: "GET" as const,
        resourceRequestUrl: "u",
      },
    }
    void shared.getToken("a/.default", pop)
    void shared.getToken("a/.default", pop)
    expect(c.calls).toHaveLength(7)
    c.answer("t")
  })

  it("a caller's abort ends its own wait only, and later callers do not join the aborted request", async () => {
    const c = counting()
    const shared = shareTokenRequests(c.credential, { timeoutMs: 60_000 })
    const aborting = new AbortController()
    const waiting = shared.getToken("s", { abortSignal: aborting.signal })
    const other = shared.getToken("s")
    expect(c.calls).toHaveLength(1)
    // The caller's signal is not handed to the shared request (the share's own is).
    expect(c.calls[0]?.options?.abortSignal?.aborted).toBe(false)
    aborting.abort()
    await expect(waiting).rejects.toMatchObject({ name: "AbortError" })
    // One caller's abort does not abort the request the others share.
    expect(c.calls[0]?.options?.abortSignal?.aborted).toBe(false)
    const after = shared.getToken("s")
    expect(c.calls).toHaveLength(2)
    c.answer("t")
    expect((await other)?.token).toBe("t")
    expect((await after)?.token).toBe("t")
  })

  it("a caller aborted before it asks starts no request; a request all its waiters left fails unheard, not as an unhandled rejection", async () => {
    const unhandled: Array<unknown> = []
    const onUnhandled = (e: unknown) => void unhandled.push(e)
    process.on("unhandledRejection", onUnhandled)
    try {
      let calls = 0
      // Entra ID down: every token request fails a moment after it was sent.
      const failing: TokenCredential = {
        getToken: () => {
          calls++
          return new Promise((_, reject) => setTimeout(() => reject(new Error("AADSTS: down")), 20))
        },
      }
      const shared = shareTokenRequests(failing, { timeoutMs: 60_000 })
      const scope = "https://vault.azure.net/.default"
      await expect(shared.getToken(scope, { abortSignal: AbortSignal.abort() })).rejects.toThrow(/aborted/)
      expect(calls).toBe(0)
      // One waiter, which leaves before the request fails.
      const leaving = new AbortController()
      const waiting = shared.getToken(scope, { abortSignal: leaving.signal })
      leaving.abort()
      await expect(waiting).rejects.toThrow(/aborted/)
      expect(calls).toBe(1)
      await new Promise((resolve) => setTimeout(resolve, 100))
      expect(unhandled).toEqual([])
    } finally {
      process.off("unhandledRejection", onUnhandled)
    }
  })

  it("a credential that throws at once fails that call only: no timer is left to fire later", async () => {
    const uncaught: Array<unknown> = []
    const onUncaught = (e: unknown) => uncaught.push(e)
    process.on("uncaughtException", onUncaught)
    try {
      const shared = shareTokenRequests(
        {
          getToken: () => {
            throw new Error("no token from this one")
          },
        },
        { timeoutMs: 20 },
      )
      expect(() => shared.getToken("s")).toThrow("no token from this one")
      // Past the limit: a timer set for the call would have fired (it read a request never made).
      await new Promise((resolve) => setTimeout(resolve, 80))
      expect(uncaught).toEqual([])
    } finally {
      process.off("uncaughtException", onUncaught)
    }
  })

  it("a shared request that gets no answer in time fails its waiters, is aborted, and is not joined later", async () => {
    const c = counting()
    const shared = shareTokenRequests(c.credential, { timeoutMs: 50 })
    const waiters = [shared.getToken("s"), shared.getToken("s")]
    expect(c.calls).toHaveLength(1)
    for (const w of waiters) await expect(w).rejects.toThrow(/gave no token within 50 ms/)
    // The Vault adapter reads the timeout as no token (nothing sent), not as an import that may
    // have taken effect.
    const failure = await waiters[0]?.catch((e: unknown) => e)
    const mapped = toVaultError("importVersion", "write", failure)
    expect(mapped._tag).toBe("VaultUnavailable")
    expect(mapped.message).toContain("nothing was sent")
    // ... and as one the deploy program does not retry (it waited the whole limit already).
    expect(mapped.retried).toBe(true)
    expect(c.calls[0]?.options?.abortSignal?.aborted).toBe(true)
    const after = shared.getToken("s")
    expect(c.calls).toHaveLength(2)
    c.answer("t")
    expect((await after)?.token).toBe("t")
  })
})
