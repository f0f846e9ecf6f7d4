/** Concurrent requests for the same token share one request to the credential. */
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth"
import { toVaultError } from "@kvdeploy/azure-kv"
import { heldTokenRetryMs, shareTokenRequests } from "@kvdeploy/credentials"
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

  it("a shared request that gets no answer in time fails its waiters, is aborted, and no second one runs beside it", async () => {
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
    // The library went on with it (it does not pass the abort on): a caller now fails at once, with
    // the same error, and starts no request beside it (one more per attempt piled up before).
    await expect(shared.getToken("s")).rejects.toThrow(/gave no token within 50 ms/)
    expect(c.calls).toHaveLength(1)
    // Once it ended (here with a token nobody waits for any more), the next caller starts a new one.
    c.answer("late")
    await new Promise((resolve) => setTimeout(resolve, 0))
    const after = shared.getToken("s")
    expect(c.calls).toHaveLength(2)
    c.answer("t")
    expect((await after)?.token).toBe("t")
  })

  it("a failed request while a token it gave is valid answers that token, to be asked for again 30 s later, and says so once", async () => {
    let next: (() => Promise<AccessToken | null>) | undefined
    const calls: Array<number> = []
    const credential: TokenCredential = {
      getToken: () => {
        calls.push(Date.now())
        if (next === undefined) throw new Error("no answer scripted")
        return next()
      },
    }
    const told: Array<{ error: unknown; heldUntilMs: number }> = []
    const shared = shareTokenRequests(credential, {
      timeoutMs: 50,
      onRefreshFailed: (error, heldUntilMs) => told.push({ error, heldUntilMs }),
    })
    const expiresOnTimestamp = Date.now() + 3_600_000
    next = async () => ({ token: "first", expiresOnTimestamp, refreshAfterTimestamp: Date.now() - 1 })
    expect((await shared.getToken("s"))?.token).toBe("first")
    const outage = Object.assign(new Error("the identity endpoint answered 503"), { statusCode: 503 })
    next = async () => {
      throw outage
    }
    const before = Date.now()
    const again = await shared.getToken("s")
    expect(again?.token).toBe("first")
    expect(again?.expiresOnTimestamp).toBe(expiresOnTimestamp)
    // The caller's cache asks again in 30 s, not at once (the Key Vault clients asked every 3 s).
    expect(again?.refreshAfterTimestamp).toBeGreaterThanOrEqual(before + heldTokenRetryMs)
    expect(again?.refreshAfterTimestamp).toBeLessThanOrEqual(Date.now() + heldTokenRetryMs)
    expect(told).toEqual([{ error: outage, heldUntilMs: expiresOnTimestamp }])
    // A request that runs out its time limit answers the held token too; told once, not again.
    next = () => new Promise(() => {})
    expect((await shared.getToken("s"))?.token).toBe("first")
    // ... as does a caller while that request still runs, without a request of its own.
    const callsBefore = calls.length
    expect((await shared.getToken("s"))?.token).toBe("first")
    expect(calls).toHaveLength(callsBefore)
    expect(told).toHaveLength(1)
    // Another token (another key) is not answered with this one.
    await expect(shared.getToken("s", { claims: "challenge" })).rejects.toThrow(/gave no token within 50 ms/)
  })

  it("a token the library answers as already due for refresh is due again 30 s later, and told once when 5 minutes past due", async () => {
    let answer: AccessToken = { token: "A", expiresOnTimestamp: Date.now() + 3_600_000 }
    const told: Array<{ error: unknown; heldUntilMs: number }> = []
    const shared = shareTokenRequests(
      { getToken: async () => answer },
      { timeoutMs: 1_000, onRefreshFailed: (error, heldUntilMs) => told.push({ error, heldUntilMs }) },
    )
    // MSAL's managed identity answers the token it holds while its refresh runs in the background:
    // the Key Vault clients asked again every 3 s, each time starting another refresh.
    answer = { ...answer, refreshAfterTimestamp: Date.now() - 1_000 }
    const before = Date.now()
    const due = await shared.getToken("s")
    expect(due?.token).toBe("A")
    expect(due?.refreshAfterTimestamp).toBeGreaterThanOrEqual(before + heldTokenRetryMs)
    expect(told).toEqual([])
    // Still that token 6 minutes past its refresh time: told, once.
    answer = { ...answer, refreshAfterTimestamp: Date.now() - 6 * 60_000 }
    await shared.getToken("s")
    await shared.getToken("s")
    expect(told).toHaveLength(1)
    expect(String(told[0]?.error)).toContain(
      "has given no new token since its refresh was due, 6 minutes ago",
    )
    expect(told[0]?.heldUntilMs).toBe(answer.expiresOnTimestamp)
    // A new token is answered as it is.
    const fresh = {
      token: "B",
      expiresOnTimestamp: Date.now() + 3_600_000,
      refreshAfterTimestamp: Date.now() + 60_000,
    }
    answer = fresh
    expect(await shared.getToken("s")).toEqual(fresh)
  })

  it("with reuseFailureMs a failure answers later callers for that long, without a request; without it, each starts one", async () => {
    let calls = 0
    const failing: TokenCredential = {
      getToken: async () => {
        calls++
        throw new Error(`down ${calls}`)
      },
    }
    const reusing = shareTokenRequests(failing, { timeoutMs: 1_000, reuseFailureMs: 200 })
    await expect(reusing.getToken("s")).rejects.toThrow("down 1")
    await expect(reusing.getToken("s")).rejects.toThrow("down 1")
    expect(calls).toBe(1)
    await new Promise((resolve) => setTimeout(resolve, 300))
    await expect(reusing.getToken("s")).rejects.toThrow("down 2")
    expect(calls).toBe(2)
    // Without it, each caller starts one.
    const plain = shareTokenRequests(failing, { timeoutMs: 1_000 })
    await expect(plain.getToken("s")).rejects.toThrow("down 3")
    await expect(plain.getToken("s")).rejects.toThrow("down 4")
  })

  it("a held token close to its expiry is not answered: the failure is", async () => {
    let answer: () => Promise<AccessToken | null> = async () => ({
      token: "short",
      expiresOnTimestamp: Date.now() + 4 * 60_000,
    })
    const told: Array<unknown> = []
    const shared = shareTokenRequests(
      { getToken: () => answer() },
      { timeoutMs: 1_000, onRefreshFailed: (e) => told.push(e) },
    )
    expect((await shared.getToken("s"))?.token).toBe("short")
    answer = async () => {
      throw new Error("refused")
    }
    await expect(shared.getToken("s")).rejects.toThrow("refused")
    expect(told).toEqual([])
  })
})
