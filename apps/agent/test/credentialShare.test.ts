/** Concurrent requests for the same token share one request to the credential. */
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth"
import { toVaultError } from "@kvdeploy/azure-kv"
import { heldTokenRetryMs, shareTokenRequests, type TokenRequestEnded } from "@kvdeploy/credentials"
import { describe, expect, it, vi } from "vitest"

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

  it("a failed request while a token it gave is valid answers that token, to be asked for again 30 s later", async () => {
    let next: (() => Promise<AccessToken | null>) | undefined
    const calls: Array<number> = []
    const credential: TokenCredential = {
      getToken: () => {
        calls.push(Date.now())
        if (next === undefined) throw new Error("no answer scripted")
        return next()
      },
    }
    const told: Array<TokenRequestEnded> = []
    const shared = shareTokenRequests(credential, { timeoutMs: 50, onRequestEnded: (e) => told.push(e) })
    const expiresOnTimestamp = Date.now() + 3_600_000
    next = async () => ({ token: "first", expiresOnTimestamp, refreshAfterTimestamp: Date.now() - 60_000 })
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
    // The first token was answered as due already (the library's background refresh): due.
    expect(told).toEqual([
      { _tag: "Due", expiresOnMs: expiresOnTimestamp },
      { _tag: "Failed", error: outage, heldUntilMs: expiresOnTimestamp },
    ])
    // A request that runs out its time limit answers the held token too.
    next = () => new Promise(() => {})
    expect((await shared.getToken("s"))?.token).toBe("first")
    expect(told).toHaveLength(3)
    expect(told[2]).toMatchObject({ _tag: "Failed", heldUntilMs: expiresOnTimestamp })
    // ... as does a caller while that request still runs, without a request (or an event) of its own.
    const callsBefore = calls.length
    expect((await shared.getToken("s"))?.token).toBe("first")
    expect(calls).toHaveLength(callsBefore)
    expect(told).toHaveLength(3)
    // Another token (another key) is not answered with this one.
    await expect(shared.getToken("s", { claims: "challenge" })).rejects.toThrow(/gave no token within 50 ms/)
  })

  it("a token the library answers as already due for refresh is due again 30 s later, and a failure once answered due for 5 minutes", async () => {
    vi.useFakeTimers({ toFake: ["Date"] })
    try {
      let answer: AccessToken = { token: "A", expiresOnTimestamp: Date.now() + 24 * 3_600_000 }
      const told: Array<TokenRequestEnded> = []
      const shared = shareTokenRequests(
        { getToken: async () => answer },
        { timeoutMs: 1_000, onRequestEnded: (e) => told.push(e) },
      )
      await shared.getToken("s")
      expect(told).toEqual([{ _tag: "Obtained", expiresOnMs: answer.expiresOnTimestamp }])
      told.length = 0
      // Hours without a request: msal-node answers the old token to the request whose refresh it
      // runs, due since long ago. No failure: the next answer is the new token.
      answer = { ...answer, refreshAfterTimestamp: Date.now() - 6 * 3_600_000 }
      const before = Date.now()
      const due = await shared.getToken("s")
      expect(due?.token).toBe("A")
      expect(due?.refreshAfterTimestamp).toBeGreaterThanOrEqual(before + heldTokenRetryMs)
      expect(told).toEqual([{ _tag: "Due", expiresOnMs: answer.expiresOnTimestamp }])
      const fresh = {
        token: "B",
        expiresOnTimestamp: Date.now() + 24 * 3_600_000,
        refreshAfterTimestamp: Date.now() + 12 * 3_600_000,
      }
      answer = fresh
      expect(await shared.getToken("s")).toEqual(fresh)
      expect(told[1]).toEqual({ _tag: "Obtained", expiresOnMs: fresh.expiresOnTimestamp })
      told.length = 0
      // Its refresh fails in the background: the same due token, asked for again every 30 s.
      answer = { ...fresh, refreshAfterTimestamp: Date.now() - 2_000 }
      for (let i = 0; i < 10; i++) {
        expect((await shared.getToken("s"))?.token).toBe("B")
        vi.setSystemTime(Date.now() + heldTokenRetryMs)
      }
      expect(told.every((e) => e._tag === "Due")).toBe(true)
      // More than 5 minutes since it was first answered due: a failure, the token held still answered.
      vi.setSystemTime(Date.now() + 60_000)
      expect((await shared.getToken("s"))?.token).toBe("B")
      expect(told.at(-1)).toMatchObject({ _tag: "Failed", heldUntilMs: answer.expiresOnTimestamp })
      expect(String((told.at(-1) as { error: unknown }).error)).toContain(
        "has answered a token due for refresh for 6 minutes: none of its refreshes in that time gave a new token",
      )
      // Another due token (a refresh that gave one already due) starts its own count.
      answer = {
        ...answer,
        token: "C",
        refreshAfterTimestamp: Date.now() - 2_000,
        expiresOnTimestamp: Date.now() + 7_200_000,
      }
      await shared.getToken("s")
      expect(told.at(-1)).toEqual({ _tag: "Due", expiresOnMs: answer.expiresOnTimestamp })
    } finally {
      vi.useRealTimers()
    }
  })

  it("a due token that is news is asked for once more: msal-node answers the old token to the request whose refresh succeeded", async () => {
    vi.useFakeTimers({ toFake: ["Date"] })
    try {
      // msal-node's managed identity, as it behaves: a token past its refresh time is refreshed within
      // the request, which answers the old one (the new one is cached for the next request); a refresh
      // that gets an HTTP error answers the old one too; a network error throws.
      const hour = 3_600_000
      let serial = 0
      const mint = (): AccessToken => ({
        token: `T${++serial}`,
        expiresOnTimestamp: Date.now() + 24 * hour,
        refreshAfterTimestamp: Date.now() + 12 * hour,
      })
      let cached = mint()
      let endpoint: "ok" | "http error" | "network error" = "ok"
      let endpointRequests = 0
      let calls = 0
      const msalLike: TokenCredential = {
        getToken: async () => {
          calls++
          if ((cached.refreshAfterTimestamp ?? 0) > Date.now()) return cached
          endpointRequests++
          if (endpoint === "network error") throw new Error("connect ECONNREFUSED 169.254.169.254:80")
          const old = cached
          if (endpoint === "ok") cached = mint()
          return old
        },
      }
      const told: Array<TokenRequestEnded> = []
      const shared = shareTokenRequests(msalLike, { timeoutMs: 1_000, onRequestEnded: (e) => told.push(e) })
      expect((await shared.getToken("s"))?.token).toBe("T1")
      // 13 hours on: the refresh succeeds, and the caller gets the new token at once (the second call
      // is answered from the library's cache: no second request to the endpoint).
      vi.setSystemTime(Date.now() + 13 * hour)
      expect((await shared.getToken("s"))?.token).toBe("T2")
      expect([calls, endpointRequests]).toEqual([3, 1])
      expect(told.at(-1)).toEqual({ _tag: "Obtained", expiresOnMs: cached.expiresOnTimestamp })
      // 13 hours on, the endpoint unreachable: failed, T2 held.
      vi.setSystemTime(Date.now() + 13 * hour)
      endpoint = "network error"
      expect((await shared.getToken("s"))?.token).toBe("T2")
      expect(told.at(-1)).toMatchObject({ _tag: "Failed", heldUntilMs: cached.expiresOnTimestamp })
      // Back: the request that refreshes is answered T2, due, after a failure: asked again, T3.
      vi.setSystemTime(Date.now() + 60_000)
      endpoint = "ok"
      expect((await shared.getToken("s"))?.token).toBe("T3")
      expect(told.at(-1)).toEqual({ _tag: "Obtained", expiresOnMs: cached.expiresOnTimestamp })
      // 13 hours on, the endpoint answering 500: the due token is asked for once more when first
      // seen due (two refreshes), then once a request, not twice.
      vi.setSystemTime(Date.now() + 13 * hour)
      endpoint = "http error"
      const before = endpointRequests
      expect((await shared.getToken("s"))?.token).toBe("T3")
      expect(endpointRequests - before).toBe(2)
      expect(told.at(-1)).toEqual({ _tag: "Due", expiresOnMs: cached.expiresOnTimestamp })
      vi.setSystemTime(Date.now() + heldTokenRetryMs)
      await shared.getToken("s")
      expect(endpointRequests - before).toBe(3)
      // More than 5 minutes of it: a failure. The refresh that then succeeds answers T3 once more,
      // counted as failed; the next request has T4, and the identity is told it is back.
      vi.setSystemTime(Date.now() + 6 * 60_000)
      await shared.getToken("s")
      expect(told.at(-1)).toMatchObject({ _tag: "Failed", heldUntilMs: cached.expiresOnTimestamp })
      endpoint = "ok"
      vi.setSystemTime(Date.now() + heldTokenRetryMs)
      expect((await shared.getToken("s"))?.token).toBe("T3")
      vi.setSystemTime(Date.now() + heldTokenRetryMs)
      expect((await shared.getToken("s"))?.token).toBe("T4")
      expect(told.at(-1)).toEqual({ _tag: "Obtained", expiresOnMs: cached.expiresOnTimestamp })
      // A due token seen already, then a failure (500s, then the endpoint unreachable): the first
      // request after the failure is news, asked once more: T5 at once.
      vi.setSystemTime(Date.now() + 13 * hour)
      endpoint = "http error"
      expect((await shared.getToken("s"))?.token).toBe("T4")
      endpoint = "network error"
      vi.setSystemTime(Date.now() + heldTokenRetryMs)
      await shared.getToken("s")
      expect(told.at(-1)).toMatchObject({ _tag: "Failed" })
      endpoint = "ok"
      vi.setSystemTime(Date.now() + heldTokenRetryMs)
      expect((await shared.getToken("s"))?.token).toBe("T5")
    } finally {
      vi.useRealTimers()
    }
  })

  it("a follow-up that fails, gives none or runs out the limit leaves the due token the answer; a token within msal's second is not due yet", async () => {
    vi.useFakeTimers({ toFake: ["Date"] })
    try {
      const expiresOnTimestamp = Date.now() + 3_600_000
      const due: AccessToken = { token: "D", expiresOnTimestamp, refreshAfterTimestamp: Date.now() - 60_000 }
      let followUp: () => Promise<AccessToken | null> = async () => {
        throw new Error("connect ECONNREFUSED")
      }
      let calls = 0
      const told: Array<TokenRequestEnded> = []
      const shared = shareTokenRequests(
        {
          getToken: () => {
            calls++
            return calls % 2 === 1 ? Promise.resolve(due) : followUp()
          },
        },
        { timeoutMs: 100, onRequestEnded: (e) => told.push(e) },
      )
      // The follow-up fails: the due token, as due (the request's first call gave a token).
      expect((await shared.getToken("s"))?.token).toBe("D")
      expect(calls).toBe(2)
      expect(told).toEqual([{ _tag: "Due", expiresOnMs: expiresOnTimestamp }])
      // No failure was recorded: the same due token is not news, not asked for again.
      vi.setSystemTime(Date.now() + heldTokenRetryMs)
      expect((await shared.getToken("s"))?.token).toBe("D")
      expect(calls).toBe(3)
      // A token the follow-up does not give, and one that runs out the limit: the due token still.
      const other = shareTokenRequests(
        {
          getToken: () => {
            calls++
            return calls % 2 === 0 ? Promise.resolve(due) : followUp()
          },
        },
        { timeoutMs: 100, onRequestEnded: (e) => told.push(e) },
      )
      followUp = async () => null
      expect((await other.getToken("s"))?.token).toBe("D")
      followUp = () => new Promise(() => {})
      expect((await other.getToken("s", { claims: "c" }))?.token).toBe("D")
      // A caller while that follow-up still runs: the due token, held, without a call of its own.
      const callsThen = calls
      expect((await other.getToken("s", { claims: "c" }))?.token).toBe("D")
      expect(calls).toBe(callsThen)
      expect(told.slice(2)).toEqual([
        { _tag: "Due", expiresOnMs: expiresOnTimestamp },
        { _tag: "Due", expiresOnMs: expiresOnTimestamp },
      ])
      // Half a second past its refresh time, msal (whole seconds, rounded) has not refreshed yet:
      // answered as it is, obtained, and not asked for again.
      const callsBefore = calls
      const early = { token: "E", expiresOnTimestamp, refreshAfterTimestamp: Date.now() - 500 }
      const third = shareTokenRequests(
        {
          getToken: async () => {
            calls++
            return early
          },
        },
        { timeoutMs: 100, onRequestEnded: (e) => told.push(e) },
      )
      expect(await third.getToken("s")).toEqual(early)
      expect(calls - callsBefore).toBe(1)
      expect(told.at(-1)).toEqual({ _tag: "Obtained", expiresOnMs: expiresOnTimestamp })
    } finally {
      vi.useRealTimers()
    }
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

  it("onRequestEnded hears how each request to the credential ended, once per request, not per caller", async () => {
    let answer: () => Promise<AccessToken | null> = async () => ({
      token: "A",
      expiresOnTimestamp: Date.now() + 3_600_000,
      refreshAfterTimestamp: Date.now() + 1_800_000,
    })
    let calls = 0
    const ended: Array<TokenRequestEnded> = []
    const shared = shareTokenRequests(
      {
        getToken: () => {
          calls++
          return answer()
        },
      },
      {
        timeoutMs: 100,
        onRequestEnded: (e) => {
          ended.push(e)
          // A hook that throws fails no request.
          throw new Error("the hook's own failure")
        },
      },
    )
    // 8 callers, one request: one event.
    const first = await Promise.all(Array.from({ length: 8 }, () => shared.getToken("s")))
    expect(first.map((t) => t?.token)).toEqual(Array(8).fill("A"))
    const expiresA = first[0]?.expiresOnTimestamp
    expect(ended).toEqual([{ _tag: "Obtained", expiresOnMs: expiresA }])
    // A failure while token A is valid: A answered, the event carries its expiry.
    const outage = new Error("the identity endpoint answered 503")
    answer = async () => {
      throw outage
    }
    expect((await shared.getToken("s"))?.token).toBe("A")
    expect(ended[1]).toEqual({ _tag: "Failed", error: outage, heldUntilMs: expiresA })
    // A token the library answers as due for refresh (its own refresh running): due, with its
    // expiry (5 minutes of the same due token are a failure: the test above).
    answer = async () => ({
      token: "A",
      expiresOnTimestamp: expiresA ?? 0,
      refreshAfterTimestamp: Date.now() - 60_000,
    })
    await shared.getToken("s")
    expect(ended[2]).toEqual({ _tag: "Due", expiresOnMs: expiresA })
    // Another token (no held one): the failure is the answer, and the event has no held expiry.
    answer = async () => {
      throw outage
    }
    await expect(shared.getToken("s", { claims: "c" })).rejects.toThrow("503")
    expect(ended[3]).toEqual({ _tag: "Failed", error: outage, heldUntilMs: undefined })
    // A request that runs out its limit ends once; a caller while it still runs makes no request and no event.
    answer = () => new Promise(() => {})
    await expect(shared.getToken("s", { claims: "c" })).rejects.toThrow(/gave no token within 100 ms/)
    const callsThen = calls
    await expect(shared.getToken("s", { claims: "c" })).rejects.toThrow(/gave no token within 100 ms/)
    expect(calls).toBe(callsThen)
    expect(ended).toHaveLength(5)
    expect(ended[4]).toMatchObject({ _tag: "Failed", heldUntilMs: undefined })
    // The credential gave no token at all.
    answer = async () => null
    expect(await shared.getToken("s", { tenantId: "other" })).toBeNull()
    expect(ended[5]).toMatchObject({ _tag: "Failed", heldUntilMs: undefined })
  })

  it("a held token close to its expiry is not answered: the failure is", async () => {
    let answer: () => Promise<AccessToken | null> = async () => ({
      token: "short",
      expiresOnTimestamp: Date.now() + 4 * 60_000,
    })
    const told: Array<TokenRequestEnded> = []
    const shared = shareTokenRequests(
      { getToken: () => answer() },
      { timeoutMs: 1_000, onRequestEnded: (e) => told.push(e) },
    )
    expect((await shared.getToken("s"))?.token).toBe("short")
    const refused = new Error("refused")
    answer = async () => {
      throw refused
    }
    await expect(shared.getToken("s")).rejects.toThrow("refused")
    expect(told[1]).toEqual({ _tag: "Failed", error: refused, heldUntilMs: undefined })
  })
})
