/**
 * The federated token's own times, read from the file a workload identity exchanges: doctor names
 * an expired (or not yet valid) token with its times, and Entra ID's refusal of it (AADSTS700024) is
 * explained as such, through the real @azure/identity against the emulator's Entra ID.
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { federatedTokenCheck } from "../src/diagnose.js"
import { federatedTokenTimes } from "../src/environment.js"
import { credentialEnvironmentProblems, diagnoseCredential } from "../src/index.js"
import { emulatorSettings, emulatorWithDirectory, withEnvironment } from "./identityEnvironment.js"

const world = emulatorWithDirectory("fed", "kvdeploy-fed-")

const hour = 3_600_000
/** A federated token the emulator's issuer signed as if `agoMs` ago (valid for an hour from then), in a file of its own. */
const tokenFileIssued = (name: string, agoMs: number): string => {
  const file = join(world.dir, name)
  const issuedAt = Math.floor((Date.now() - agoMs) / 1000)
  writeFileSync(file, `${world.emulator.issueFederatedToken(undefined, { issuedAt })}\n`, { mode: 0o600 })
  return file
}
const unsignedJwt = (claims: Record<string, unknown>): string =>
  ["{}", JSON.stringify(claims), "sig"].map((p) => Buffer.from(p).toString("base64url")).join(".")

describe("federatedTokenTimes", () => {
  it("reads exp and nbf from the file's JWT, and nothing from a file that holds none", () => {
    const at = Math.floor(Date.now() / 1000)
    const file = join(world.dir, "times")
    writeFileSync(file, `  ${unsignedJwt({ exp: at + 60, nbf: at - 5, sub: "x" })}\n`)
    expect(federatedTokenTimes(file)).toEqual({
      expiresAtSeconds: at + 60,
      notBeforeSeconds: at - 5,
      unreadable: [],
    })
    // Present but no time a date holds: named, not taken.
    writeFileSync(file, unsignedJwt({ exp: "soon", nbf: 1e13 }))
    expect(federatedTokenTimes(file)).toEqual({
      expiresAtSeconds: undefined,
      notBeforeSeconds: undefined,
      unreadable: ["exp", "nbf"],
    })
    for (const text of ["not a token", "a.b", "a.b.c.d", `x.${Buffer.from("[1]").toString("base64url")}.y`]) {
      writeFileSync(file, text)
      expect(federatedTokenTimes(file)).toBeUndefined()
    }
    expect(federatedTokenTimes(join(world.dir, "missing"))).toBeUndefined()
  })

  it("judges them for doctor: expired, not valid yet beyond 5 minutes, or fine", () => {
    const now = Date.UTC(2026, 11, 3, 12, 0, 0)
    const file = join(world.dir, "judged")
    const check = (claims: Record<string, unknown>, obtained = false) => {
      writeFileSync(file, unsignedJwt(claims))
      return federatedTokenCheck(file, obtained, now)
    }
    const expired = check({ exp: now / 1000 - 2 * 3600 - 20 * 60 })
    expect(expired).toMatchObject({ name: "federated token", status: "failed" })
    expect(expired.detail).toContain("expired at 2026-12-03T09:40:00.000Z (2 h 20 min ago")
    expect(expired.fix).toContain("/var/run/secrets/azure/tokens/azure-identity-token")
    // Long ago: in days and hours, not thousands of hours.
    expect(check({ exp: now / 1000 - (1115 * 24 + 3) * 3600 - 32 * 60 }).detail).toContain("(1115 d 3 h ago")
    expect(check({ exp: now / 1000 - 48 * 3600 }).detail).toContain("(2 d ago")
    expect(check({ exp: now / 1000 - (47 * 60 + 59) * 60 }).detail).toContain("(47 h 59 min ago")
    // A token came all the same: this host's clock is the suspect, a warning.
    expect(check({ exp: now / 1000 - 60 }, true).status).toBe("warning")
    const early = check({ nbf: now / 1000 + 10 * 60, exp: now / 1000 + 3600 })
    expect(early).toMatchObject({ status: "failed" })
    expect(early.detail).toContain("not valid before 2026-12-03T12:10:00.000Z (in 10 min")
    // Within the 5 minutes of skew: fine.
    const fine = check({ nbf: now / 1000 + 4 * 60, exp: now / 1000 + 3600 })
    expect(fine).toMatchObject({ status: "ok" })
    expect(fine.detail).toContain("expires at 2026-12-03T13:00:00.000Z (in 1 h)")
    writeFileSync(file, "opaque")
    expect(federatedTokenCheck(file, false, now).status).toBe("warning")
    // No expiry, or one that is no time (past what a date holds): a warning that says so, never a crash.
    for (const exp of [undefined, "1700000000", 1e13, -1e13]) {
      const c = check(exp === undefined ? { sub: "x" } : { exp })
      expect(c.status).toBe("warning")
      expect(c.detail).toMatch(
        exp === undefined ? /has no expiry \(exp\)/ : /has an expiry \(exp\) that is no time/,
      )
    }
    // The file gone since the credential was made: said as such, not as "not a JWT".
    const gone = federatedTokenCheck(join(world.dir, "gone"), false, now)
    expect(gone).toMatchObject({
      status: "failed",
      detail: expect.stringContaining("cannot be read now: no such file or directory (ENOENT)"),
    })
  })
})

describe("the CLI's input check (checkFiles and tokenExpiry)", () => {
  it("refuses a federated token that expired more than 5 minutes ago, and lets one within the skew pass", () => {
    const check = (file: string, tokenExpiry = true) =>
      credentialEnvironmentProblems(
        "workload_identity",
        (n) => ({ ...world.emulator.env.workloadIdentity, AZURE_FEDERATED_TOKEN_FILE: file })[n],
        { checkFiles: true, tokenExpiry },
      )
    // Issued 66 minutes ago for an hour: expired 6 minutes ago.
    const stale = check(tokenFileIssued("stale", 66 * 60_000))
    expect(stale).toEqual([
      expect.objectContaining({
        kind: "malformed",
        variables: ["AZURE_FEDERATED_TOKEN_FILE"],
        reason: expect.stringMatching(/expired at \S+ \(6 min ago, by this host's clock\): Entra ID refuses/),
        fix: expect.stringContaining("kubelet"),
      }),
    ])
    // Without tokenExpiry (the agent's check: the kubelet may renew the file), not looked at.
    expect(check(tokenFileIssued("stale-agent", 66 * 60_000), false)).toEqual([])
    // Expired 2 minutes ago: within Entra ID's skew, not refused here.
    expect(check(tokenFileIssued("within-skew", 62 * 60_000))).toEqual([])
    expect(check(tokenFileIssued("fresh-check", 0))).toEqual([])
  })
})

describe("doctor with a workload identity's federated token", () => {
  const diagnose = (tokenFile: string) =>
    withEnvironment(
      { ...world.emulator.env.workloadIdentity, AZURE_FEDERATED_TOKEN_FILE: tokenFile },
      diagnoseCredential(emulatorSettings(world.emulator, "fed", "workloadIdentity")),
    )

  it.live("a fresh token: the token is obtained and the file's token expiry is shown", () =>
    Effect.gen(function* () {
      const d = yield* diagnose(tokenFileIssued("fresh", 0))
      expect(d.ok).toBe(true)
      const check = d.checks.find((c) => c.name === "federated token")
      expect(check?.status).toBe("ok")
      expect(check?.detail).toMatch(/expires at \S+ \(in (59|1 h)/)
    }),
  )

  it.live("an expired token: Entra ID's AADSTS700024 explained, and the file's token named expired", () =>
    Effect.gen(function* () {
      const d = yield* diagnose(tokenFileIssued("expired", 2 * hour))
      expect(d.ok).toBe(false)
      const token = d.checks.find((c) => c.name === "token")
      expect(token?.status).toBe("failed")
      expect(token?.detail).toContain(
        "Entra ID refused the federated token as expired or not valid yet (AADSTS700024)",
      )
      expect(token?.fix).toContain("kubelet")
      const check = d.checks.find((c) => c.name === "federated token")
      expect(check?.status).toBe("failed")
      expect(check?.detail).toMatch(/expired at \S+ \((59 min|1 h) ago/)
    }),
  )
})
