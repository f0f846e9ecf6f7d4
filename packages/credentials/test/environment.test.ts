import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import {
  type CredentialMode,
  credentialEnvironmentProblems,
  environmentProblems,
  makeCredential,
  managedIdentityTokenExchange,
} from "../src/index.js"

const ids = {
  AZURE_TENANT_ID: "00000000-0000-0000-0000-0000000000a0",
  AZURE_CLIENT_ID: "00000000-0000-0000-0000-0000000000a1",
}
const pastedSecret = "Zx8Q~very.secret-value_pasted_into_the_wrong_variable"

const problemsIn = (mode: CredentialMode, env: Record<string, string | undefined>) =>
  credentialEnvironmentProblems(mode, (name) => env[name])

const withEnv = (env: Record<string, string | undefined>) =>
  Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env)))

describe("credentialEnvironmentProblems", () => {
  it("lists every problem at once, in the order makeCredential meets them, without a value", () => {
    const env = {
      HTTPS_PROXY: "http://user:hunter2@::::",
      AZURE_CLIENT_ID: pastedSecret,
      AZURE_TENANT_ID: "contoso tenant",
    }
    const problems = problemsIn("client_secret", env)
    expect(problems.map((p) => [p.kind, p.variables])).toEqual([
      ["malformed", ["HTTPS_PROXY"]],
      ["missing", ["AZURE_CLIENT_SECRET"]],
      ["malformed", ["AZURE_CLIENT_ID"]],
      ["malformed", ["AZURE_TENANT_ID"]],
    ])
    const text = JSON.stringify(problems)
    for (const value of Object.values(env)) expect(text).not.toContain(value)
    expect(text).not.toContain("hunter2")
    expect(problems[2]?.reason).toContain(`(${pastedSecret.length} characters)`)
  })

  it("reads the variables each mode's credential reads, and only those", () => {
    const bad = { AZURE_CLIENT_ID: "not-a-guid", AZURE_TENANT_ID: "bad tenant" }
    // A managed identity takes its client id from the target (managed_identity_client_id).
    expect(problemsIn("managed_identity", bad)).toEqual([])
    // The default chain's environment and workload identity sources read both.
    expect(problemsIn("default", bad).map((p) => p.variables[0])).toEqual([
      "AZURE_CLIENT_ID",
      "AZURE_TENANT_ID",
    ])
    expect(problemsIn("default", {})).toEqual([])
    expect(problemsIn("workload_identity", { ...ids })).toEqual([
      expect.objectContaining({ kind: "missing", variables: ["AZURE_FEDERATED_TOKEN_FILE"] }),
    ])
    // A domain name is a tenant id too; blanks count as not set.
    expect(
      problemsIn("client_secret", {
        ...ids,
        AZURE_TENANT_ID: "contoso.onmicrosoft.com",
        AZURE_CLIENT_SECRET: "s",
      }),
    ).toEqual([])
    expect(problemsIn("client_secret", { ...ids, AZURE_CLIENT_SECRET: "  " })).toEqual([
      expect.objectContaining({ kind: "missing", variables: ["AZURE_CLIENT_SECRET"] }),
    ])
  })

  it("judges the proxy variable the SDKs use: the first one set, upper case before lower case", () => {
    // (IMDS exempted from the proxy, as it must be: see the next test.)
    const proxies = (env: Record<string, string>) =>
      problemsIn("managed_identity", { NO_PROXY: "169.254.169.254", ...env }).map((p) => p.variables[0])
    expect(proxies({ HTTPS_PROXY: "http://proxy:3128", HTTP_PROXY: "proxy corp:3128" })).toEqual([])
    expect(proxies({ https_proxy: "10.0.0.1:3128" })).toEqual(["https_proxy"])
    // Spaces are a value to the SDKs (they take the first variable that is not empty), and no URL.
    expect(proxies({ HTTPS_PROXY: " ", ALL_PROXY: "http://10.0.0.1:3128" })).toEqual(["HTTPS_PROXY"])
    expect(proxies({ HTTPS_PROXY: "", ALL_PROXY: "10.0.0.1:3128" })).toEqual(["ALL_PROXY"])
    expect(proxies({ HTTP_PROXY: "http://10.0.0.1:3128" })).toEqual([])
    // A host name and port without a scheme reads as a URL whose scheme is the host name.
    expect(proxies({ HTTPS_PROXY: "proxy.example.com:3128" })).toEqual(["HTTPS_PROXY"])
    expect(proxies({ HTTPS_PROXY: "socks5://proxy.example.com:1080" })).toEqual(["HTTPS_PROXY"])
    expect(proxies({ HTTPS_PROXY: "https://user:pw@proxy.example.com:3128" })).toEqual([])
    // ALL_PROXY comes before HTTP_PROXY (core-rest-pipeline: HTTPS_PROXY || ALL_PROXY || HTTP_PROXY).
    expect(proxies({ ALL_PROXY: "10.0.0.1:3128", HTTP_PROXY: "http://10.0.0.1:3128" })).toEqual(["ALL_PROXY"])
    expect(proxies({ all_proxy: "http://10.0.0.1:3128", HTTP_PROXY: "10.0.0.1:3128" })).toEqual([])
  })

  it("managed identity: an exchange variable of spaces, which the SDK takes as set, is named", () => {
    const pod = {
      AZURE_FEDERATED_TOKEN_FILE: "/var/run/secrets/token",
      AZURE_CLIENT_ID: ids.AZURE_CLIENT_ID,
      AZURE_TENANT_ID: "  ",
    }
    const [problem, ...none] = problemsIn("managed_identity", pod)
    expect(none).toEqual([])
    expect(problem).toMatchObject({ kind: "malformed", variables: ["AZURE_TENANT_ID"] })
    expect(problem?.reason).toBe(
      "AZURE_TENANT_ID is set to spaces or a line break only, which @azure/identity takes as set: with AZURE_FEDERATED_TOKEN_FILE and AZURE_CLIENT_ID it makes managed identity exchange AKS workload identity's federated token, with that value",
    )
    expect(problem?.fix).toMatch(/^Unset AZURE_TENANT_ID, or set it to its value/)
    // AZURE_CLIENT_ID of spaces does not count beside a configured client id (the exchange uses that).
    expect(
      credentialEnvironmentProblems(
        "managed_identity",
        (name) => ({ ...pod, AZURE_TENANT_ID: ids.AZURE_TENANT_ID, AZURE_CLIENT_ID: " " })[name],
        { managedIdentityClientId: ids.AZURE_CLIENT_ID },
      ),
    ).toEqual([])
    // With the configured client id in place of AZURE_CLIENT_ID, that is what the reason names.
    const configured = credentialEnvironmentProblems(
      "managed_identity",
      (name) => ({ AZURE_FEDERATED_TOKEN_FILE: "/var/run/secrets/token", AZURE_TENANT_ID: "  " })[name],
      { managedIdentityClientId: ids.AZURE_CLIENT_ID },
    )
    expect(configured.map((p) => p.reason)).toEqual([
      "AZURE_TENANT_ID is set to spaces or a line break only, which @azure/identity takes as set: with AZURE_FEDERATED_TOKEN_FILE and managed_identity_client_id it makes managed identity exchange AKS workload identity's federated token, with that value",
    ])
    // Empty is unset for the SDK too: no exchange, nothing to say.
    expect(problemsIn("managed_identity", { ...pod, AZURE_TENANT_ID: "" })).toEqual([])
  })

  it("managed identity behind a proxy: its plain-HTTP token endpoint must be named in NO_PROXY", () => {
    const proxy = { HTTPS_PROXY: "http://proxy.corp:3128" }
    const [imds, ...none] = problemsIn("managed_identity", proxy)
    expect(none).toEqual([])
    expect(imds).toMatchObject({ kind: "malformed", variables: ["HTTPS_PROXY", "NO_PROXY"] })
    expect(imds?.reason).toContain("NO_PROXY does not name 169.254.169.254")
    expect(imds?.fix).toMatch(/^Add 169\.254\.169\.254 to NO_PROXY/)
    // App Service's endpoint (with its header) on a loopback port.
    const appService = {
      ...proxy,
      IDENTITY_ENDPOINT: "http://127.0.0.1:41741/msi/token",
      IDENTITY_HEADER: "h",
    }
    expect(problemsIn("managed_identity", appService)[0]?.reason).toContain(
      "NO_PROXY does not name 127.0.0.1",
    )
    // Named in NO_PROXY (as the SDKs match it), no proxy, or the AKS token exchange (HTTPS to Entra ID): fine.
    for (const env of [
      { ...proxy, NO_PROXY: "localhost, 169.254.169.254" },
      { ...proxy, no_proxy: "169.254.169.254" },
      { ...appService, NO_PROXY: "127.0.0.1" },
      // An empty NO_PROXY falls back to no_proxy, as the SDKs read it.
      { ...proxy, NO_PROXY: "", no_proxy: "169.254.169.254" },
      {},
      {
        ...proxy,
        AZURE_FEDERATED_TOKEN_FILE: "/var/run/secrets/token",
        AZURE_CLIENT_ID: ids.AZURE_CLIENT_ID,
        AZURE_TENANT_ID: ids.AZURE_TENANT_ID,
      },
    ])
      expect(problemsIn("managed_identity", env), JSON.stringify(env)).toEqual([])
    // A token file without a tenant is no token exchange: the SDK asks IMDS, through the proxy.
    expect(
      problemsIn("managed_identity", { ...proxy, AZURE_FEDERATED_TOKEN_FILE: "/var/run/secrets/token" }),
    ).toHaveLength(1)
    // Nor is one with a tenant but no client id (none configured, AZURE_CLIENT_ID unset): the
    // exchange needs all three, as makeCredential decides.
    const noClient = {
      ...proxy,
      AZURE_FEDERATED_TOKEN_FILE: "/var/run/secrets/token",
      AZURE_TENANT_ID: ids.AZURE_TENANT_ID,
    }
    expect(problemsIn("managed_identity", noClient).map((p) => p.variables)).toEqual([
      ["HTTPS_PROXY", "NO_PROXY"],
    ])
    // A configured client id makes the exchange without AZURE_CLIENT_ID.
    expect(
      credentialEnvironmentProblems(
        "managed_identity",
        (name) => (noClient as Record<string, string>)[name],
        {
          managedIdentityClientId: ids.AZURE_CLIENT_ID,
        },
      ),
    ).toEqual([])
    // Other modes ask Entra ID over HTTPS.
    expect(problemsIn("client_secret", { ...proxy, ...ids, AZURE_CLIENT_SECRET: "s" })).toEqual([])
  })

  it("names a value with spaces or a line break around it, which the SDKs would use as it is", () => {
    const env = {
      AZURE_TENANT_ID: "contoso.onmicrosoft.com\n",
      AZURE_CLIENT_ID: ` ${ids.AZURE_CLIENT_ID}`,
      AZURE_CLIENT_SECRET: `${pastedSecret}\r\n`,
    }
    const problems = problemsIn("client_secret", env)
    expect(problems.map((p) => [p.kind, p.variables[0]])).toEqual([
      ["malformed", "AZURE_CLIENT_SECRET"],
      ["malformed", "AZURE_CLIENT_ID"],
      ["malformed", "AZURE_TENANT_ID"],
    ])
    expect(problems[0]?.reason).toContain("has spaces or a line break around its value")
    expect(JSON.stringify(problems)).not.toContain(pastedSecret)
    // A value that is no id at all is named for that, whatever surrounds it.
    expect(
      problemsIn("client_secret", { ...env, AZURE_CLIENT_ID: `${pastedSecret}\n` })[1]?.reason,
    ).toContain("AZURE_CLIENT_ID is not a client id")
    // The default chain's environment and workload identity sources read the secret and the token file.
    expect(problemsIn("default", { AZURE_FEDERATED_TOKEN_FILE: "/var/run/token\n" })[0]?.variables).toEqual([
      "AZURE_FEDERATED_TOKEN_FILE",
    ])
    expect(problemsIn("managed_identity", env)).toEqual([])
    // The default chain's EnvironmentCredential sends AZURE_CLIENT_SECRET as it is.
    const secretProblems = problemsIn("default", { ...ids, AZURE_CLIENT_SECRET: `${pastedSecret}\n` })
    expect(secretProblems.map((p) => [p.kind, p.variables[0]])).toEqual([
      ["malformed", "AZURE_CLIENT_SECRET"],
    ])
    expect(JSON.stringify(secretProblems)).not.toContain(pastedSecret)
  })

  it.effect("makeCredential fails with the first problem the rule lists, as a tagged error", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [CredentialMode, Record<string, string>]> = [
        ["client_secret", { ...ids, AZURE_CLIENT_ID: pastedSecret, AZURE_CLIENT_SECRET: "s" }],
        ["client_secret", { AZURE_CLIENT_ID: "not-a-guid" }],
        ["workload_identity", { ...ids, AZURE_TENANT_ID: "bad tenant", AZURE_FEDERATED_TOKEN_FILE: "/t" }],
        ["default", { ALL_PROXY: "10.0.0.1:3128" }],
        ["managed_identity", { http_proxy: "proxy corp:3128" }],
        ["client_secret", { ...ids, AZURE_TENANT_ID: "contoso.onmicrosoft.com\n", AZURE_CLIENT_SECRET: "s" }],
        ["default", { HTTPS_PROXY: " " }],
      ]
      for (const [mode, env] of cases) {
        const listed = yield* environmentProblems(mode).pipe(withEnv(env))
        expect(listed).toEqual(problemsIn(mode, env))
        const first = listed[0]
        const error = yield* makeCredential({
          mode,
          authorityHost: "https://login.microsoftonline.com",
        }).pipe(withEnv(env), Effect.flip)
        expect(error._tag).toBe(
          first?.kind === "missing" ? "CredentialVariableMissing" : "CredentialVariableMalformed",
        )
        expect(error.reason).toBe(first?.reason)
        expect(error.message).not.toContain(pastedSecret)
      }
    }),
  )

  it("with checkFiles, names a federated token file that cannot be read (the agent's --check, the CLI's input check)", () => {
    const missing = "/nonexistent/kvdeploy/azure-identity-token"
    const env = { ...ids, AZURE_FEDERATED_TOKEN_FILE: missing }
    const check = (mode: CredentialMode, more: Record<string, string> = {}) =>
      credentialEnvironmentProblems(mode, (name) => ({ ...env, ...more })[name], { checkFiles: true })
    expect(check("workload_identity")).toEqual([
      {
        kind: "malformed",
        variables: ["AZURE_FEDERATED_TOKEN_FILE"],
        reason: `the federated token file ${missing} (AZURE_FEDERATED_TOKEN_FILE) cannot be read: no such file or directory (ENOENT)`,
        fix: expect.stringMatching(/^Check that the projected service account token is mounted there/),
      },
    ])
    // Managed identity's AKS token exchange reads it with a tenant and a client id (AZURE_CLIENT_ID, or
    // the configured one): judged then as workload_identity's; without a client id the endpoint is
    // asked. The default chain may use another source: doctor's federated token check judges it.
    expect(check("managed_identity")).toEqual(check("workload_identity"))
    expect(check("managed_identity", { AZURE_CLIENT_ID: "" })).toEqual([])
    expect(check("default")).toEqual([])
    // A file that can be read passes; without checkFiles the rule reads no file (makeCredential's use).
    expect(check("workload_identity", { AZURE_FEDERATED_TOKEN_FILE: "/etc/hostname" })).toEqual([])
    expect(problemsIn("workload_identity", env)).toEqual([])
  })
})

describe("managedIdentityTokenExchange: whether managed_identity makes AKS workload identity's token exchange", () => {
  const tokenFile = "/var/run/secrets/azure/tokens/azure-identity-token"
  const configured = "00000000-0000-0000-0000-0000000000c1"
  const exchangeIn = (env: Record<string, string | undefined>, clientId?: string) =>
    Effect.runSync(managedIdentityTokenExchange(clientId).pipe(withEnv(env)))

  it("the token file, the tenant and a client id (the configured one, else AZURE_CLIENT_ID): the exchange", () => {
    const pod = { ...ids, AZURE_FEDERATED_TOKEN_FILE: tokenFile }
    expect(exchangeIn(pod)).toEqual({
      tenantId: ids.AZURE_TENANT_ID,
      clientId: ids.AZURE_CLIENT_ID,
      tokenFile,
    })
    expect(exchangeIn(pod, configured)?.clientId).toBe(configured)
    const { AZURE_CLIENT_ID: _, ...noClient } = pod
    expect(exchangeIn(noClient, configured)?.clientId).toBe(configured)
  })

  it("any of them missing or blank: none, the managed identity endpoint is asked", () => {
    expect(exchangeIn(ids)).toBeUndefined()
    expect(
      exchangeIn({ AZURE_CLIENT_ID: ids.AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE: tokenFile }),
    ).toBeUndefined()
    expect(
      exchangeIn({ AZURE_TENANT_ID: ids.AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE: tokenFile }),
    ).toBeUndefined()
    expect(exchangeIn({ ...ids, AZURE_FEDERATED_TOKEN_FILE: "" })).toBeUndefined()
  })

  it("a value of spaces is set, as @azure/identity tests it (Boolean): the exchange is made with it", () => {
    // credentialEnvironmentProblems names such a value (it fails at the token request).
    expect(exchangeIn({ ...ids, AZURE_FEDERATED_TOKEN_FILE: "  " })).toEqual({
      tenantId: ids.AZURE_TENANT_ID,
      clientId: ids.AZURE_CLIENT_ID,
      tokenFile: "  ",
    })
  })
})
