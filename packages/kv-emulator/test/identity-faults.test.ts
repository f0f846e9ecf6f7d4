/**
 * Faults of the identity endpoints (an outage or throttling of Entra ID's token
 * endpoint, of IMDS, of App Service's identity endpoint), seen through the real
 * @azure/identity and MSAL: what a client of the emulator can learn from them.
 * IMDS through ManagedIdentityCredential here; App Service over plain HTTP
 * (MSAL keeps the managed identity source it first finds for the process).
 */
import { ClientSecretCredential, ManagedIdentityCredential } from "@azure/identity"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, start } from "../src/index.js"
import { credentialOptions, useIdentityEnvironment } from "./support.js"

let emulator: Emulator
let restoreEnvironment = () => {}
const scope = "https://vault.azure.net/.default"

beforeAll(async () => {
  emulator = await start({ vaults: ["idf"] })
  restoreEnvironment = useIdentityEnvironment(emulator.env.managedIdentityImds)
})
afterEach(() => emulator.faults.clear())
afterAll(async () => {
  restoreEnvironment()
  await emulator?.stop()
})

/** A fresh client-secret credential (its own MSAL cache: no token yet). */
const secret = () =>
  new ClientSecretCredential(
    emulator.clientSecret.tenantId,
    emulator.clientSecret.clientId,
    emulator.clientSecret.clientSecret,
    credentialOptions(emulator),
  )

const calls = (operation: string) =>
  emulator.requests
    .entries({})
    .filter((e) => e.operation === operation)
    .map((e) => e.status)

/** The status MSAL's error carries (@azure/identity wraps it as the cause). */
const statusOf = (error: unknown) => (error as { cause?: { status?: number } }).cause?.status

describe("Entra ID token endpoint faults", () => {
  it("throttled: 429 with Retry-After in Entra's error shape; MSAL's error carries the status, and MSAL replays it", async () => {
    const before = calls("token").length
    emulator.faults.add({
      operation: "token",
      times: "always",
      action: { kind: "throttle", retryAfterSeconds: 0 },
    })
    const credential = secret()
    const error = await credential.getToken(scope).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(statusOf(error)).toBe(429)
    expect((error as { cause?: { errorCode?: string } }).cause?.errorCode).toBe("temporarily_unavailable")
    const sent = calls("token").length
    expect(
      calls("token")
        .slice(before)
        .every((s) => s === 429),
    ).toBe(true)
    emulator.faults.clear()
    // MSAL remembers the 429 (Retry-After, or 60 s when it says 0) and answers that credential's
    // requests itself meanwhile: the same text, no status, nothing sent.
    const replay = await credential.getToken(scope).then(
      () => undefined,
      (e: unknown) => e as { cause?: { name?: string; status?: number } },
    )
    expect(replay?.cause?.name).toBe("ServerError")
    expect(replay?.cause?.status).toBeUndefined()
    expect(calls("token").length).toBe(sent)
    // Another credential (its own MSAL cache) gets a token at once.
    expect((await secret().getToken(scope))?.token.length).toBeGreaterThan(20)
    expect(calls("token").at(-1)).toBe(200)
  })

  it("503 once: MSAL retries it and gets the token", async () => {
    const before = calls("token").length
    emulator.faults.add({ operation: "token", action: { kind: "status", status: 503 } })
    expect((await secret().getToken(scope))?.token.length).toBeGreaterThan(20)
    expect(calls("token").slice(before)).toEqual([503, 200])
  })

  it('"*" rules are the vault operations\' only: they never hit the token endpoint', async () => {
    emulator.faults.add({ operation: "*", times: "always", action: { kind: "status", status: 503 } })
    expect((await secret().getToken(scope))?.token.length).toBeGreaterThan(20)
  })
})

describe("managed identity endpoint faults", () => {
  it("IMDS throttled: ManagedIdentityCredential fails with MSAL's 429; once IMDS answers, a token (no replay here)", async () => {
    emulator.faults.add({
      operation: "imdsToken",
      times: "always",
      action: { kind: "throttle", retryAfterSeconds: 0 },
    })
    const credential = new ManagedIdentityCredential()
    const error = await credential.getToken(scope).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(statusOf(error)).toBe(429)
    emulator.faults.clear()
    expect((await credential.getToken(scope))?.token.length).toBeGreaterThan(20)
  })

  it("App Service endpoint: a fault answers in that endpoint's own error shape", async () => {
    emulator.faults.add({ operation: "appServiceToken", action: { kind: "status", status: 500 } })
    const url = `${emulator.managedIdentity.appServiceEndpoint}?api-version=2019-08-01&resource=https://vault.azure.net`
    const headers = { "X-IDENTITY-HEADER": emulator.managedIdentity.identityHeader }
    const failed = await fetch(url, { headers })
    expect(failed.status).toBe(500)
    expect(await failed.json()).toEqual({ statusCode: 500, message: "server_error: Injected fault." })
    const answered = await fetch(url, { headers })
    expect(answered.status).toBe(200)
  })
})

describe("identity answers changed on the way", () => {
  const appService = () => ({
    url: `${emulator.managedIdentity.appServiceEndpoint}?api-version=2019-08-01&resource=https://vault.azure.net`,
    headers: { "X-IDENTITY-HEADER": emulator.managedIdentity.identityHeader },
  })

  it("omitFields and setFields change a token answer; the token is issued as usual", async () => {
    const { url, headers } = appService()
    emulator.faults.add({
      operation: "appServiceToken",
      action: { kind: "omitFields", fields: ["access_token"] },
    })
    const omitted = (await (await fetch(url, { headers })).json()) as Record<string, unknown>
    expect(omitted.access_token).toBeUndefined()
    expect(omitted.token_type).toBe("Bearer")
    expect(Number(omitted.expires_on)).toBeGreaterThan(Date.now() / 1000)
    emulator.faults.add({
      operation: "appServiceToken",
      action: { kind: "setFields", fields: { token_type: "pop" } },
    })
    const changed = (await (await fetch(url, { headers })).json()) as Record<string, unknown>
    expect(changed.token_type).toBe("pop")
    expect(String(changed.access_token).split(".")).toHaveLength(3)
    // One request each: the next one is answered as it is.
    const plain = (await (await fetch(url, { headers })).json()) as Record<string, unknown>
    expect(plain.token_type).toBe("Bearer")
  })

  it("rawAnswer answers its text instead, with its status and content type; an empty body too", async () => {
    const { url, headers } = appService()
    emulator.faults.add({
      operation: "appServiceToken",
      action: { kind: "rawAnswer", body: "<html>portal</html>", contentType: "text/html" },
    })
    const html = await fetch(url, { headers })
    expect(html.status).toBe(200)
    expect(html.headers.get("content-type")).toBe("text/html")
    expect(await html.text()).toBe("<html>portal</html>")
    emulator.faults.add({
      operation: "appServiceToken",
      action: { kind: "rawAnswer", body: "", status: 502 },
    })
    const empty = await fetch(url, { headers })
    expect(empty.status).toBe(502)
    expect(await empty.text()).toBe("")
    expect(calls("appServiceToken").slice(-2)).toEqual([200, 502])
  })
})

describe("identity fault rules", () => {
  it("take no vault or name, and no action that writes", () => {
    expect(() =>
      emulator.faults.add({ operation: "token", vault: "idf", action: { kind: "status", status: 503 } }),
    ).toThrow(/takes no vault or name/)
    expect(() =>
      emulator.faults.add({ operation: "imdsToken", action: { kind: "dropAfterCommit" } }),
    ).toThrow(
      /one of status, throttle, delay, hold, drop, omitFields, setFields, rawAnswer, not dropAfterCommit/,
    )
    expect(() => emulator.faults.add({ operation: "token", action: { kind: "rawAnswer" } as never })).toThrow(
      /rawAnswer action needs body/,
    )
    expect(() =>
      emulator.faults.add({ operation: "token", action: { kind: "rawAnswer", body: "", status: 99 } }),
    ).toThrow(/status must be a whole number from 200 to 599/)
  })
})
