/** An identity's token requests as the operator sees them: a line when they start failing, a reminder, a line when they recover. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import {
  heldTokenMessage,
  type IdentityLine,
  identityFix,
  makeIdentityHealth,
  noTokenMessage,
  recoveredMessage,
  stillFailingEveryMs,
} from "../src/identityHealth.js"

const labels = {
  credential_mode: "managed_identity",
  managed_identity_client_id: "11111111-2222-3333-4444-555555555555",
  authority_host: "https://login.microsoftonline.com",
  key_vault_resource: "",
}

const setUp = () => {
  const lines: Array<IdentityLine> = []
  let now = Date.parse("2026-12-02T10:00:00Z")
  const health = makeIdentityHealth(
    (line) => lines.push(line),
    () => now,
  )
  return {
    lines,
    health,
    advance: (ms: number) => {
      now += ms
    },
    now: () => now,
  }
}

describe("identityFix: what to check, for the identity's credential mode", () => {
  it("names the endpoint its tokens come from and what that endpoint judges", () => {
    const entra = "check that Entra ID (https://login.microsoftonline.com) answers from this host"
    expect(
      identityFix({ ...labels, credential_mode: "client_secret", managed_identity_client_id: "" }, undefined),
    ).toBe(
      `${entra}, and that AZURE_CLIENT_SECRET is current and a secret of AZURE_CLIENT_ID in AZURE_TENANT_ID`,
    )
    // A managed identity asking its endpoint: the endpoint and the identity assigned to the host.
    expect(identityFix(labels, undefined, "App Service endpoint http://127.0.0.1:41741/msi/token")).toBe(
      "check that this host's managed identity endpoint (App Service endpoint http://127.0.0.1:41741/msi/token) answers, and that the identity 11111111-2222-3333-4444-555555555555 is assigned to this host",
    )
    // Where the credential did not say, the two an operator looks at.
    expect(identityFix(labels, undefined)).toMatch(
      /^check that this host's managed identity endpoint \(IMDS http:\/\/169\.254\.169\.254, or the platform's IDENTITY_ENDPOINT\) answers/,
    )
    expect(identityFix({ ...labels, managed_identity_client_id: "" }, undefined)).toMatch(
      /and that the host has a system-assigned identity$/,
    )
    // The AKS token exchange: Entra ID and the federated token, not a managed identity endpoint.
    const exchange = identityFix(labels, "/var/run/secrets/azure/tokens/azure-identity-token")
    expect(exchange).toMatch(
      new RegExp(
        `^${entra.replace(/[().]/g, "\\$&")} \\(the managed identity's token comes from AKS workload identity's token exchange here\\)`,
      ),
    )
    expect(exchange).toContain(
      "AZURE_FEDERATED_TOKEN_FILE /var/run/secrets/azure/tokens/azure-identity-token",
    )
    expect(exchange).not.toContain("IMDS")
    expect(
      identityFix({ ...labels, credential_mode: "default", managed_identity_client_id: "" }, undefined),
    ).toMatch(/^check the default chain's source that should answer from this host/)
  })
})

describe("an identity's token requests", () => {
  it("a failing run: one line at its start, a reminder every 10 minutes, one when a token comes again", () => {
    const t = setUp()
    const ended = t.health.track("mi", labels)
    const expiresOnMs = t.now() + 24 * 3600_000
    ended({ _tag: "Obtained", expiresOnMs })
    expect(t.lines).toEqual([])
    expect(t.health.states()).toEqual([{ labels, failing: false, expiresOnMs }])
    // The refresh fails while the token obtained is valid: the held token's line, once.
    const down = new Error("IMDS answered 500")
    ended({ _tag: "Failed", error: down, heldUntilMs: expiresOnMs })
    for (let i = 0; i < 50; i++) {
      t.advance(5_000)
      ended({ _tag: "Failed", error: down, heldUntilMs: expiresOnMs })
    }
    expect(t.lines).toHaveLength(1)
    expect(t.lines[0]).toMatchObject({
      level: "warn",
      msg: heldTokenMessage,
      fields: {
        credential_mode: "managed_identity",
        managed_identity_client_id: labels.managed_identity_client_id,
        authority_host: labels.authority_host,
        held_until: new Date(expiresOnMs).toISOString(),
        reason: "IMDS answered 500",
      },
    })
    expect(t.health.states()).toEqual([{ labels, failing: true, expiresOnMs }])
    // 10 minutes after that line: a reminder, with the run's start and its failed requests.
    t.advance(stillFailingEveryMs - 50 * 5_000)
    ended({ _tag: "Failed", error: down, heldUntilMs: expiresOnMs })
    expect(t.lines).toHaveLength(2)
    expect(t.lines[1]?.msg).toBe(heldTokenMessage)
    expect(t.lines[1]?.fields).toMatchObject({ since: "2026-12-02T10:00:00.000Z", failed_requests: 52 })
    // The held token ran out: said at once, as another line.
    ended({ _tag: "Failed", error: down, heldUntilMs: undefined })
    expect(t.lines).toHaveLength(3)
    expect(t.lines[2]).toMatchObject({ level: "warn", msg: noTokenMessage })
    expect(t.lines[2]?.fields).not.toHaveProperty("held_until")
    ended({ _tag: "Failed", error: down, heldUntilMs: undefined })
    expect(t.lines).toHaveLength(3)
    // A token again: one line, with how long the run lasted.
    t.advance(60_000)
    const next = t.now() + 24 * 3600_000
    ended({ _tag: "Obtained", expiresOnMs: next })
    expect(t.lines).toHaveLength(4)
    expect(t.lines[3]).toMatchObject({
      level: "info",
      msg: recoveredMessage,
      fields: { since: "2026-12-02T10:00:00.000Z", outage_seconds: 660, failed_requests: 54 },
    })
    expect(t.health.states()).toEqual([{ labels, failing: false, expiresOnMs: next }])
    ended({ _tag: "Obtained", expiresOnMs: next })
    expect(t.lines).toHaveLength(4)
    // The next failing run starts its own count, with a line of its own.
    ended({ _tag: "Failed", error: down, heldUntilMs: undefined })
    expect(t.lines).toHaveLength(5)
    expect(t.lines[4]?.msg).toBe(noTokenMessage)
    expect(t.lines[4]?.fields).not.toHaveProperty("failed_requests")
  })

  it("an identity with no token yet has no expiry; a reload lets identities go; a newer credential of a key takes over", () => {
    const t = setUp()
    const first = t.health.track("a", labels)
    const other = { ...labels, credential_mode: "client_secret", managed_identity_client_id: "" }
    const b = t.health.track("b", other)
    first({ _tag: "Failed", error: new Error("x"), heldUntilMs: undefined })
    expect(t.lines[0]?.fields).toHaveProperty("managed_identity_client_id")
    b({ _tag: "Failed", error: new Error("y"), heldUntilMs: undefined })
    // No client id to name: no such field.
    expect(t.lines[1]?.fields).not.toHaveProperty("managed_identity_client_id")
    expect(t.health.states()).toEqual([
      { labels, failing: true, expiresOnMs: undefined },
      { labels: other, failing: true, expiresOnMs: undefined },
    ])
    t.health.retain((key) => key === "a")
    expect(t.health.states().map((s) => s.labels.credential_mode)).toEqual(["managed_identity"])
    // The credential let go still ends requests in flight: they change nothing.
    b({ _tag: "Obtained", expiresOnMs: t.now() + 1 })
    expect(t.health.states()).toHaveLength(1)
    expect(t.lines).toHaveLength(2)
    // A deploy of the replaced configuration, still running, makes key "b"'s credential again: its
    // series does not come back, nor do its lines...
    const again = t.health.track("b", other)
    again({ _tag: "Failed", error: new Error("z"), heldUntilMs: undefined })
    expect(t.health.states()).toHaveLength(1)
    expect(t.lines).toHaveLength(2)
    // ... until a reload names "b" again, and keeps that credential: then it is followed.
    t.health.retain((key) => key === "a" || key === "b")
    expect(t.health.states()).toEqual([
      { labels, failing: true, expiresOnMs: undefined },
      { labels: other, failing: true, expiresOnMs: undefined },
    ])
    again({ _tag: "Failed", error: new Error("z"), heldUntilMs: undefined })
    expect(t.lines).toHaveLength(3)
    expect(t.lines[2]).toMatchObject({ msg: noTokenMessage, fields: { failed_requests: 2 } })
    t.health.retain((key) => key === "a")
    // A new credential of key "a" starts afresh; the old one's events are ignored.
    const second = t.health.track("a", labels)
    first({ _tag: "Obtained", expiresOnMs: t.now() + 5 })
    expect(t.health.states()).toEqual([{ labels, failing: false, expiresOnMs: undefined }])
    second({ _tag: "Obtained", expiresOnMs: t.now() + 7 })
    expect(t.health.states()).toEqual([{ labels, failing: false, expiresOnMs: t.now() + 7 }])
    expect(t.lines).toHaveLength(3)
  })
  it("a token due for refresh tells its expiry only; a vault resource of its own is named in the lines", () => {
    const t = setUp()
    const resource = "https://vault.sovereign.example"
    const ended = t.health.track("mi", { ...labels, key_vault_resource: resource })
    const expiresOnMs = t.now() + 3600_000
    // A token due for refresh, asked for once more and due still (its refresh got an HTTP error).
    ended({ _tag: "Due", expiresOnMs })
    expect(t.lines).toEqual([])
    expect(t.health.states()[0]).toMatchObject({ failing: false, expiresOnMs })
    ended({ _tag: "Failed", error: new Error("down"), heldUntilMs: expiresOnMs })
    // Nor does a due token end a failing run (credentials' shareTokenRequests asks once more after a
    // failure: a refresh that succeeded is answered as Obtained).
    ended({ _tag: "Due", expiresOnMs })
    expect(t.health.states()[0]).toMatchObject({ failing: true, expiresOnMs })
    expect(t.lines).toHaveLength(1)
    expect(t.lines[0]?.fields).toMatchObject({ key_vault_resource: resource })
    // The cloud's own resource ("") is not named.
    const other = t.health.track("cs", { ...labels, credential_mode: "client_secret" })
    other({ _tag: "Failed", error: new Error("down"), heldUntilMs: undefined })
    expect(t.lines[1]?.fields).not.toHaveProperty("key_vault_resource")
  })
  it("a run that began while its key was not named is said once it is, and only a run said is said to end", () => {
    const t = setUp()
    t.health.retain((key) => key === "a")
    // Made by a reload not yet applied here (or a replaced configuration's deploy): not named.
    const c = t.health.track("c", labels)
    c({ _tag: "Failed", error: new Error("down"), heldUntilMs: undefined })
    expect(t.lines).toEqual([])
    t.health.retain((key) => key === "a" || key === "c")
    // Named now, still failing: said at its next failure, with the run's start.
    t.advance(1_000)
    c({ _tag: "Failed", error: new Error("down"), heldUntilMs: undefined })
    expect(t.lines).toHaveLength(1)
    expect(t.lines[0]).toMatchObject({
      msg: noTokenMessage,
      fields: { since: "2026-12-02T10:00:00.000Z", failed_requests: 2 },
    })
    c({ _tag: "Obtained", expiresOnMs: t.now() + 3600_000 })
    expect(t.lines[1]?.msg).toBe(recoveredMessage)
    // A run that ended before it was said: no line for its end either.
    t.health.retain((key) => key === "a")
    const d = t.health.track("d", labels)
    d({ _tag: "Failed", error: new Error("down"), heldUntilMs: undefined })
    t.health.retain((key) => key === "a" || key === "d")
    d({ _tag: "Obtained", expiresOnMs: t.now() + 3600_000 })
    expect(t.lines).toHaveLength(2)
  })

  it("a workload identity's line names its federated token's expiry, and an expired one as the cause", () => {
    const t = setUp()
    const dir = mkdtempSync(join(tmpdir(), "kvdeploy-identity-"))
    try {
      const tokenFile = join(dir, "azure-identity-token")
      const jwt = (exp: number) =>
        ["{}", JSON.stringify({ exp, sub: "system:serviceaccount:a:b" }), "sig"]
          .map((p) => Buffer.from(p).toString("base64url"))
          .join(".")
      const workload = { ...labels, credential_mode: "workload_identity", managed_identity_client_id: "" }
      const ended = t.health.track("wi", workload, { tokenFile })
      const expiresOnMs = t.now() + 3600_000
      ended({ _tag: "Obtained", expiresOnMs })
      // The file's token still valid: its expiry is said, the fix is the usual one.
      const valid = Math.floor(t.now() / 1000) + 1800
      writeFileSync(tokenFile, jwt(valid))
      ended({ _tag: "Failed", error: new Error("refreshes gave nothing"), heldUntilMs: expiresOnMs })
      expect(t.lines.at(-1)?.fields).toMatchObject({
        federated_token_expires_at: new Date(valid * 1000).toISOString(),
        fix: `check that Entra ID (https://login.microsoftonline.com) answers from this host, and the federated token file (AZURE_FEDERATED_TOKEN_FILE ${tokenFile}: current, not a copy) and the federated identity credential on the identity AZURE_CLIENT_ID names; deploys fail once the held token expires`,
      })
      // Expired (the kubelet stopped renewing it, or it is a copy): named as the cause.
      t.advance(stillFailingEveryMs + 1_000)
      const expired = Math.floor(t.now() / 1000) - 60
      const expiredJwt = jwt(expired)
      writeFileSync(tokenFile, expiredJwt)
      ended({ _tag: "Failed", error: new Error("refreshes gave nothing"), heldUntilMs: expiresOnMs })
      expect(t.lines).toHaveLength(2)
      expect(t.lines.at(-1)?.fields).toMatchObject({
        federated_token_expires_at: new Date(expired * 1000).toISOString(),
        fix: expect.stringContaining(
          `expired at ${new Date(expired * 1000).toISOString()}, and Entra ID refuses`,
        ),
      })
      // An expiry no date holds: the line is said all the same, without it.
      t.advance(stillFailingEveryMs + 1_000)
      writeFileSync(tokenFile, jwt(1e13))
      ended({ _tag: "Failed", error: new Error("refreshes gave nothing"), heldUntilMs: expiresOnMs })
      expect(t.lines).toHaveLength(3)
      expect(t.lines.at(-1)?.fields.federated_token_expires_at).toBeUndefined()
      expect(t.lines.at(-1)?.fields.fix).toMatch(
        /^check that Entra ID \(https:\/\/login\.microsoftonline\.com\) answers from this host, and the federated token file/,
      )
      // Nothing of the token itself.
      expect(JSON.stringify(t.lines)).not.toContain(expiredJwt.split(".")[1])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
