/**
 * Entra ID through the real @azure/identity: client secret (wrong secret
 * refused), workload identity with the emulator's federated token file and a
 * static federated token, and the OpenID configuration / JWKS MSAL reads.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import {
  ClientAssertionCredential,
  ClientSecretCredential,
  WorkloadIdentityCredential,
} from "@azure/identity"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, start } from "../src/index.js"
import { clients, credentialOptions, makeMaterial, pemBundle } from "./support.js"

let emulator: Emulator
const scope = "https://vault.azure.net/.default"

beforeAll(async () => {
  emulator = await start({ vaults: ["wi"] })
})
afterAll(() => emulator?.stop())

const claimsOf = (token: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as Record<string, unknown>

describe("client secret", () => {
  it("issues a v1 access token for the vault audience and tenant", async () => {
    const c = new ClientSecretCredential(
      emulator.tenantId,
      emulator.clientSecret.clientId,
      emulator.clientSecret.clientSecret,
      credentialOptions(emulator),
    )
    const t = await c.getToken(scope)
    const claims = claimsOf(t.token)
    expect(claims.aud).toBe("https://vault.azure.net")
    expect(claims.tid).toBe(emulator.tenantId)
    expect(claims.iss).toBe(`https://sts.windows.net/${emulator.tenantId}/`)
    expect(claims.appid).toBe(emulator.clientSecret.clientId)
    expect(t.expiresOnTimestamp).toBeGreaterThan(Date.now() + 3_000_000)
  })

  it("says when to refresh a token of more than 2 hours (refresh_in, half its lifetime), and not a default one", async () => {
    const credential = (e: Emulator) =>
      new ClientSecretCredential(
        e.tenantId,
        e.clientSecret.clientId,
        e.clientSecret.clientSecret,
        credentialOptions(e),
      )
    const short = await credential(emulator).getToken(scope)
    expect(short.refreshAfterTimestamp).toBeUndefined()
    const long = await start({ vaults: ["long"], warn: () => {}, tokenLifetimeSeconds: 24 * 3600 })
    try {
      const before = Date.now()
      const t = await credential(long).getToken(scope)
      expect(t.expiresOnTimestamp - before).toBeGreaterThan(24 * 3600_000 - 5_000)
      // msal-node's cache entry: refresh from the request's time + refresh_in (12 hours).
      expect(Math.abs((t.refreshAfterTimestamp ?? 0) - (before + 12 * 3600_000))).toBeLessThan(5_000)
    } finally {
      await long.stop()
    }
  })

  it("refuses a wrong secret with AADSTS7000215", async () => {
    const c = new ClientSecretCredential(
      emulator.tenantId,
      emulator.clientSecret.clientId,
      "wrong",
      credentialOptions(emulator),
    )
    await expect(c.getToken(scope)).rejects.toThrow(/AADSTS7000215/)
  })

  it("refuses an unknown application with AADSTS700016", async () => {
    const c = new ClientSecretCredential(
      emulator.tenantId,
      "00000000-0000-0000-0000-000000000001",
      "x",
      credentialOptions(emulator),
    )
    await expect(c.getToken(scope)).rejects.toThrow(/AADSTS700016/)
  })
})

describe("workload identity", () => {
  it("WorkloadIdentityCredential with the federated token file reads and writes the vault", async () => {
    const wi = emulator.workloadIdentity
    const credential = new WorkloadIdentityCredential({
      tenantId: wi.tenantId,
      clientId: wi.clientId,
      tokenFilePath: wi.tokenFile,
      ...credentialOptions(emulator),
    })
    const { certificates } = clients(emulator, "wi", credential)
    const m = await makeMaterial()
    const cert = await certificates.importCertificate("wi-cert", Buffer.from(pemBundle(m)), {
      policy: { contentType: "application/x-pem-file" },
    })
    expect(cert.name).toBe("wi-cert")
    const token = emulator.requests.entries({ vault: "entra", operation: "token", status: 200 }).at(-1)
    expect(token?.principal).toBe(wi.clientId)
  })

  it("refuses an assertion from another issuer, and accepts the configured static federated token", async () => {
    const forged = `${Buffer.from(JSON.stringify({ alg: "RS256", typ: "JWT", kid: "x" })).toString("base64url")}.${Buffer.from(
      JSON.stringify({
        iss: "https://evil.example",
        sub: emulator.workloadIdentity.subject,
        aud: ["api://AzureADTokenExchange"],
        exp: Math.floor(Date.now() / 1000) + 600,
      }),
    ).toString("base64url")}.c2ln`
    const bad = new ClientAssertionCredential(
      emulator.tenantId,
      emulator.workloadIdentity.clientId,
      async () => forged,
      credentialOptions(emulator),
    )
    await expect(bad.getToken(scope)).rejects.toThrow(/AADSTS700211/)
    const wrongSubject = emulator.issueFederatedToken("system:serviceaccount:other:other")
    const bad2 = new ClientAssertionCredential(
      emulator.tenantId,
      emulator.workloadIdentity.clientId,
      async () => wrongSubject,
      credentialOptions(emulator),
    )
    await expect(bad2.getToken(scope)).rejects.toThrow(/AADSTS700213/)
  })

  it("judges an assertion's expiry by the token clock (setTokenClockOffset), as it issues tokens", async () => {
    const assertion = emulator.issueFederatedToken(undefined, { lifetimeSeconds: 600 })
    const credential = () =>
      new ClientAssertionCredential(
        emulator.tenantId,
        emulator.workloadIdentity.clientId,
        async () => assertion,
        credentialOptions(emulator),
      )
    try {
      emulator.setTokenClockOffset(7200)
      await expect(credential().getToken(scope)).rejects.toThrow(/AADSTS700024/)
      emulator.setTokenClockOffset(0)
      expect((await credential().getToken(scope)).token).toBeTruthy()
    } finally {
      emulator.setTokenClockOffset(0)
    }
  })

  it("reads a rotated token file (a fresh federated token) on a new credential", async () => {
    const file = join(emulator.caFile, "..", "rotated-token")
    writeFileSync(file, emulator.issueFederatedToken(), { mode: 0o600 })
    const credential = new WorkloadIdentityCredential({
      tenantId: emulator.tenantId,
      clientId: emulator.workloadIdentity.clientId,
      tokenFilePath: file,
      ...credentialOptions(emulator),
    })
    const t = await credential.getToken(scope)
    expect(claimsOf(t.token).appid).toBe(emulator.workloadIdentity.clientId)
  })
})

describe("the workload identity's token file", () => {
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
  const expiry = (file: string) => Number(claimsOf(readFileSync(file, "utf8")).exp)

  it("is renewed before its token expires: a credential made after the first token's expiry gets a token", async () => {
    // A 6 s token, renewed every 3 s: the file always holds one valid for 3 s or more.
    const short = await start({ vaults: ["renewed"], warn: () => {}, federatedTokenLifetimeSeconds: 6 })
    const file = short.workloadIdentity.tokenFile
    try {
      const first = expiry(file)
      expect(first - Number(claimsOf(readFileSync(file, "utf8")).iat)).toBe(6)
      expect(statSync(file).mode & 0o777).toBe(0o600)
      // Past the first token's expiry (Entra ID refuses an expired assertion: AADSTS700024).
      while (Date.now() < first * 1000 + 1000) await pause(250)
      expect(expiry(file)).toBeGreaterThan(first)
      expect(statSync(file).mode & 0o777).toBe(0o600)
      const credential = new WorkloadIdentityCredential({
        tenantId: short.tenantId,
        clientId: short.workloadIdentity.clientId,
        tokenFilePath: file,
        ...credentialOptions(short),
      })
      const t = await credential.getToken(scope)
      expect(claimsOf(t.token).appid).toBe(short.workloadIdentity.clientId)
    } finally {
      await short.stop()
    }
    // Its own work directory is gone with the token file, and no renewal writes it again.
    expect(existsSync(file)).toBe(false)
    await pause(3500)
    expect(existsSync(file)).toBe(false)
  })

  it("refuses a federated token lifetime that is no whole number of seconds", async () => {
    await expect(start({ vaults: ["x"], warn: () => {}, federatedTokenLifetimeSeconds: 0 })).rejects.toThrow(
      "federatedTokenLifetimeSeconds must be a whole number of seconds, 1 or more; got 0",
    )
  })
})

describe("discovery documents", () => {
  it("serves OpenID configuration, JWKS (that verifies issued tokens) and instance discovery", async () => {
    const get = async (path: string) => {
      const { request } = await import("node:https")
      return new Promise<unknown>((resolve, reject) => {
        request(`${emulator.authorityHost}${path}`, { ca: emulator.caPem }, (res) => {
          let t = ""
          res.on("data", (c: Buffer) => (t += c.toString()))
          res.on("end", () => resolve(JSON.parse(t)))
        })
          .on("error", reject)
          .end()
      })
    }
    const oidc = (await get(`/${emulator.tenantId}/v2.0/.well-known/openid-configuration`)) as Record<
      string,
      string
    >
    expect(oidc.issuer).toBe(`${emulator.authorityHost}/${emulator.tenantId}/v2.0`)
    expect(oidc.token_endpoint).toBe(`${emulator.authorityHost}/${emulator.tenantId}/oauth2/v2.0/token`)
    const jwks = (await get(`/${emulator.tenantId}/discovery/v2.0/keys`)) as {
      keys: Array<Record<string, string>>
    }
    const { createPublicKey, verify } = await import("node:crypto")
    const token = emulator.issueToken(emulator.clientSecret.clientId)
    const [h, p, s] = token.split(".") as [string, string, string]
    const kid = (JSON.parse(Buffer.from(h, "base64url").toString()) as { kid: string }).kid
    const jwk = jwks.keys.find((k) => k.kid === kid)
    expect(jwk).toBeDefined()
    const key = createPublicKey({ key: { kty: "RSA", n: jwk?.n ?? "", e: jwk?.e ?? "" }, format: "jwk" })
    expect(verify("sha256", Buffer.from(`${h}.${p}`), key, Buffer.from(s, "base64url"))).toBe(true)
    const disc = (await get(
      `/common/discovery/instance?api-version=1.1&authorization_endpoint=${encodeURIComponent(oidc.authorization_endpoint ?? "")}`,
    )) as {
      tenant_discovery_endpoint: string
    }
    expect(disc.tenant_discovery_endpoint).toContain("/.well-known/openid-configuration")
  })
})
