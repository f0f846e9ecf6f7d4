/**
 * An identity library's error text as every path shows it (shownIdentityText): without the secret
 * values this process gives the library (the environment's, and the federated token file's content
 * as it is when the error is shown), and without token fields, tokens and key text.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import {
  knownIdentitySecrets,
  noteTokenFileState,
  shownIdentityMessage,
  shownIdentityText,
} from "../src/tokenErrors.js"
import { explainTokenFailure } from "../src/tokenFailure.js"

const clientSecret = "Xy9~Q.secret_value-1234"

describe("shownIdentityText", () => {
  it("names the environment's secret values where they stood, as they are or URL-encoded", () => {
    const env = { AZURE_CLIENT_SECRET: clientSecret, IDENTITY_HEADER: "header-secret-5678", MSI_SECRET: "" }
    const shown = shownIdentityText(
      `AADSTS900144: bad request: echo secret=${encodeURIComponent(clientSecret)}; header ${env.IDENTITY_HEADER}; raw ${clientSecret}`,
      env,
    )
    expect(shown).toBe(
      "AADSTS900144: bad request: echo secret=[the value of AZURE_CLIENT_SECRET, not shown]; header [the value of IDENTITY_HEADER, not shown]; raw [the value of AZURE_CLIENT_SECRET, not shown]",
    )
    // In a form field the known value's own placeholder stands whole (the field rule leaves it be).
    expect(
      shownIdentityText(`echo client_secret=${encodeURIComponent(clientSecret)}&grant_type=x`, env),
    ).toBe("echo client_secret=[the value of AZURE_CLIENT_SECRET, not shown]&grant_type=x")
    // An empty variable is no secret to look for.
    expect(knownIdentitySecrets(env).map((s) => s.label)).toEqual([
      "the value of AZURE_CLIENT_SECRET",
      "the value of IDENTITY_HEADER",
    ])
  })

  it("hides the value of every secret variable the identity library reads, each named by its variable", () => {
    const env = {
      AZURE_CLIENT_SECRET: "client-secret-0001",
      AZURE_CLIENT_CERTIFICATE_PASSWORD: "pfx pass-0002",
      AZURE_PASSWORD: String.raw`user\pass"0003`,
      IDENTITY_HEADER: "identity-header-0004",
      MSI_SECRET: "msi-secret-0005",
    }
    const names = Object.keys(env) as ReadonlyArray<keyof typeof env>
    // As they are, and quoted in a JSON answer (a quote and a backslash escaped there).
    const raw = shownIdentityText(names.map((n) => `${n}: ${env[n]}`).join("; "), env)
    expect(raw).toBe(names.map((n) => `${n}: [the value of ${n}, not shown]`).join("; "))
    const quoted = shownIdentityText(JSON.stringify({ echoed: names.map((n) => env[n]) }), env)
    expect(quoted).toBe(JSON.stringify({ echoed: names.map((n) => `[the value of ${n}, not shown]`) }))
    for (const n of names) {
      expect(raw).not.toContain(env[n].slice(0, 6))
      expect(quoted).not.toContain(env[n].slice(0, 6))
    }
    expect(knownIdentitySecrets(env).map((s) => s.label)).toEqual(names.map((n) => `the value of ${n}`))
  })

  it("names the federated token file's content as the file holds it when the error is shown (a token that is no JWT too)", () => {
    const dir = mkdtempSync(join(tmpdir(), "kvdeploy-shown-identity-"))
    try {
      const file = join(dir, "token")
      writeFileSync(file, "opaque-federated-token-0001\n")
      const env = { AZURE_FEDERATED_TOKEN_FILE: file }
      expect(shownIdentityText("refused opaque-federated-token-0001.", env)).toBe(
        "refused [the federated token, not shown].",
      )
      // Renewed since (the kubelet rewrites it): the token now in the file is the one looked for.
      writeFileSync(file, "opaque-federated-token-0002")
      expect(shownIdentityText("refused opaque-federated-token-0002.", env)).toBe(
        "refused [the federated token, not shown].",
      )
      // A file that cannot be read is no secret to look for, and no failure.
      expect(shownIdentityText("text", { AZURE_FEDERATED_TOKEN_FILE: join(dir, "missing") })).toBe("text")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("an error's message, without its token file state, and doctor's explanation of it show no token", () => {
    const seg = (s: string) => Buffer.from(s).toString("base64url")
    const token = `${seg('{"alg":"RS256"}')}.${seg('{"aud":"https://vault.azure.net"}')}.${seg("signature-bytes-here")}`
    const error = Object.assign(
      new Error(
        `ManagedIdentityCredential: Authentication failed. Message client_error: Error(s): Not Available - Timestamp: Not Available - Description: header refused for ${token} - Correlation ID: Not Available`,
      ),
      { name: "AuthenticationError" },
    )
    noteTokenFileState(error, "the file is fine")
    expect(shownIdentityMessage(error)).not.toContain("[the file is fine]")
    for (const text of [shownIdentityMessage(error), explainTokenFailure(error, "managed_identity").reason]) {
      expect(text).toContain("header refused for [a token, not shown]")
      for (const part of token.split(".")) expect(text).not.toContain(part)
    }
  })
})
