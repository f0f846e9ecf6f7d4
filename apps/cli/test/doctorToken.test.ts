// doctor and show on the token itself: its claims, an endpoint that never answers, Entra ID throttling.
import { describe, expect, it } from "vitest"
import { useCommandsWorld, world } from "./commandsWorld.js"
import { json, runCli } from "./harness.js"

useCommandsWorld()

describe("doctor and show: the token", () => {
  // The direct 429 (MSAL's own request and retry), which doctor's one token request meets; MSAL's
  // replay of it is tested against a long-lived credential in @kvdeploy/azure-kv's deploy test.
  it("doctor reads the token's claims: another audience and tenant, expired, or not a JWT, is said, not passed", async () => {
    type Check = { check: string; status: string; detail: string; fix?: string }
    const doctorWithToken = async (accessToken: string) => {
      const fault = world.emulator.faults.add({
        operation: "token",
        times: "always",
        action: { kind: "setFields", fields: { access_token: accessToken } },
      })
      try {
        const r = await runCli(["doctor", "--config", world.targetFile("claims"), "--json"], {
          env: world.env,
        })
        return { code: r.code, checks: json<{ checks: Array<Check> }>(r).checks }
      } finally {
        world.emulator.faults.remove(fault)
      }
    }
    const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url")
    const hourAgo = Math.floor(Date.now() / 1000) - 3_600
    const foreign = `${part({ alg: "RS256", typ: "JWT" })}.${part({
      aud: "https://storage.azure.com",
      tid: "11111111-2222-3333-4444-555555555555",
      nbf: hourAgo - 3_600,
      exp: hourAgo,
    })}.c2ln`
    const wrong = await doctorWithToken(foreign)
    expect(wrong.code).toBe(1)
    const byName = (checks: Array<Check>, name: string) => checks.filter((c) => c.check === name)
    expect(byName(wrong.checks, "token")[0]?.status).toBe("pass")
    expect(byName(wrong.checks, "token")[0]?.detail).toContain("tenant 11111111-2222-3333-4444-555555555555")
    expect(byName(wrong.checks, "token audience")).toEqual([
      expect.objectContaining({
        status: "fail",
        detail:
          "the token is for https://storage.azure.com, not the vault's resource https://vault.azure.net: Key Vault refuses it",
      }),
    ])
    expect(byName(wrong.checks, "token times")[0]?.detail).toMatch(/^the token expired at /)
    expect(byName(wrong.checks, "token tenant")[0]?.detail).toBe(
      `the token is of tenant 11111111-2222-3333-4444-555555555555, not AZURE_TENANT_ID's ${world.env.AZURE_TENANT_ID}`,
    )
    const opaque = await doctorWithToken("not-a-jwt")
    expect(byName(opaque.checks, "token claims")).toEqual([
      expect.objectContaining({ status: "warn", detail: expect.stringContaining("the token is not a JWT") }),
    ])
    // The token as Entra ID issues it has none of these problems.
    const ok = await runCli(["doctor", "--config", world.targetFile("claims"), "--json"], { env: world.env })
    const fine = json<{ checks: Array<Check> }>(ok).checks
    expect(fine.filter((c) => c.check.startsWith("token ") || c.check === "token claims")).toEqual([])
    expect(byName(fine, "token")[0]?.detail).toContain(`tenant ${world.env.AZURE_TENANT_ID}`)
  })

  it("a token endpoint that never answers: show and doctor give up at the 30 s limit and say why, not hang", async () => {
    const hold = world.emulator.faults.add({
      operation: "token",
      times: "always",
      action: { kind: "hold", timeoutMs: 150_000 },
    })
    const [show, doctor] = await Promise.all([
      runCli(["show", "--config", world.targetFile("held-token-show"), "--json"], {
        env: world.env,
        timeoutMs: 120_000,
      }),
      runCli(["doctor", "--config", world.targetFile("held-token-doctor"), "--json"], {
        env: world.env,
        timeoutMs: 120_000,
      }),
    ]).finally(() => world.emulator.faults.remove(hold))
    expect(show.code, show.stdout + show.stderr).toBe(1)
    const shown = json<{ error: { title: string; problems: Array<{ message: string; fix: string }> } }>(
      show,
    ).error
    expect(shown.title).toContain("no token for the vault (nothing was sent)")
    expect(shown.title).toContain("the token request gave no token within 30000 ms")
    expect(shown.problems[0]?.message).toContain("VaultUnavailable")
    expect(shown.problems[0]?.fix).toContain("the identity provider could not be reached")
    expect(doctor.code, doctor.stdout).toBe(1)
    type Check = { check: string; status: string; detail: string; fix?: string }
    const token = json<{ checks: Array<Check> }>(doctor).checks.find((c) => c.check === "token")
    expect(token?.status).toBe("fail")
    expect(token?.detail).toContain("the identity endpoint gave no token within 30 s")
  }, 150_000)

  it("doctor: Entra ID throttling fails the token check as an outage for now, not a refused credential (1)", async () => {
    world.emulator.faults.add({
      operation: "token",
      times: "always",
      action: { kind: "throttle", retryAfterSeconds: 0 },
    })
    const r = await runCli(["doctor", "--config", world.targetFile("doctor"), "--json"], { env: world.env })
    world.emulator.faults.clear()
    expect(r.code, r.stdout).toBe(1)
    type Check = { check: string; status: string; detail: string; fix?: string }
    const token = json<{ checks: Array<Check> }>(r).checks.find((c) => c.check === "token")
    expect(token?.status).toBe("fail")
    expect(token?.detail).toContain("unavailable or throttling for now")
    expect(token?.fix).toContain("nothing is wrong with the credential")
  })
})
