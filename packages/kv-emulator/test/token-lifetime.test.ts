/**
 * Short-lived tokens (`tokenLifetimeSeconds`) and no clock skew (`tokenClockSkewSeconds: 0`): a
 * token's lifetime is what Entra says in `expires_in`, a vault refuses it once expired, and a
 * client that refreshes its tokens (the SDK) keeps working across the expiries.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, start } from "../src/index.js"
import { clients, raw } from "./support.js"

let emulator: Emulator
beforeAll(async () => {
  emulator = await start({
    vaults: ["short"],
    warn: () => {},
    tokenLifetimeSeconds: 2,
    tokenClockSkewSeconds: 0,
  })
})
afterAll(() => emulator?.stop())

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe("short-lived tokens", () => {
  it("are refused by the vault once expired, and the SDK refreshes them", async () => {
    const token = emulator.issueToken(emulator.clientSecret.clientId)
    expect((await raw(emulator, "short", "GET", "/certificates?api-version=7.6", { token })).status).toBe(200)
    await pause(3100)
    const late = await raw(emulator, "short", "GET", "/certificates?api-version=7.6", { token })
    expect(late.status).toBe(401)
    expect(late.text).toContain("AKV10022: Invalid token lifetime: the token has expired.")

    const { certificates } = clients(emulator, "short")
    const names = async () => {
      const found: Array<string> = []
      for await (const c of certificates.listPropertiesOfCertificates()) found.push(c.name ?? "")
      return found
    }
    const mark = emulator.requests.mark()
    expect(await names()).toEqual([])
    await pause(3100)
    expect(await names()).toEqual([])
    // Two tokens asked for, one per expiry; every list request was answered (each 401 is a challenge).
    const entra = emulator.requests.entries({ since: mark }).filter((e) => e.operation === "token")
    expect(entra.length).toBeGreaterThanOrEqual(2)
    expect(
      emulator.requests
        .entries({ since: mark, operation: "list" })
        .filter((e) => !e.challenge)
        .map((e) => e.status),
    ).toEqual([200, 200])
  })
})

describe("the token clock moved ahead (setTokenClockOffset)", () => {
  it("refuses a token issued before the move as expired, and issues new ones by the moved clock", async () => {
    const before = emulator.issueToken(emulator.clientSecret.clientId, { lifetimeSeconds: 3600 })
    try {
      expect(
        (await raw(emulator, "short", "GET", "/certificates?api-version=7.6", { token: before })).status,
      ).toBe(200)
      emulator.setTokenClockOffset(7200)
      const refused = await raw(emulator, "short", "GET", "/certificates?api-version=7.6", { token: before })
      expect(refused.status).toBe(401)
      expect(refused.text).toContain("the token has expired")
      // Issued now, by the moved clock: valid for its lifetime from there.
      const after = emulator.issueToken(emulator.clientSecret.clientId, { lifetimeSeconds: 3600 })
      const claims = JSON.parse(Buffer.from(after.split(".")[1] ?? "", "base64url").toString()) as {
        iat: number
      }
      expect(claims.iat - Math.floor(Date.now() / 1000)).toBeGreaterThanOrEqual(7199)
      expect(
        (await raw(emulator, "short", "GET", "/certificates?api-version=7.6", { token: after })).status,
      ).toBe(200)
      expect(() => emulator.setTokenClockOffset(1.5)).toThrow(/whole seconds/)
    } finally {
      emulator.setTokenClockOffset(0)
    }
  })
})
