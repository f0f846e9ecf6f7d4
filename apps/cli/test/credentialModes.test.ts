// doctor and deploy with each credential mode: a missing client secret, the default chain, managed
// identity, workload identity and its federated token file; then the token itself: its claims, an
// endpoint that never answers, Entra ID throttling.
import { dirname } from "node:path"
import { afterAll, beforeAll, describe, expect, it as test } from "vitest"
import { deployArgs, fx, type Outcome, useCommandsWorld, world } from "./commandsWorld.js"
import { json, runCli, startWorld, type World } from "./harness.js"

useCommandsWorld()

// The two groups below run side by side (concurrent describes), each its tests one after another
// (this `it`): the token group waits out the real 30 s token limit, and the credential modes' runs
// fill that wait. The token group changes every token request (faults on the identity endpoint),
// so it has an emulator of its own.
const it = (name: string, fn: () => Promise<void>, timeout?: number) =>
  test(name, { concurrent: false, ...(timeout === undefined ? {} : { timeout }) }, fn)

describe("doctor and deploy, by credential mode", { concurrent: true }, () => {
  it("deploy: a missing client secret is a usage error (2) naming the variable; nothing is sent to the vault", async () => {
    const { AZURE_CLIENT_SECRET: _, ...env } = world.env
    const leaf = await fx.leaf()
    const mark = world.emulator.requests.mark()
    const r = await runCli(deployArgs("no-secret"), { stdin: fx.bundle(leaf), env })
    expect(r.code, r.stderr).toBe(2)
    const text = r.stdout + r.stderr
    expect(text).toContain("AZURE_CLIENT_SECRET")
    expect(text).toContain("client_secret")
    expect(world.emulator.requests.entries({ since: mark, vault: world.vault })).toHaveLength(0)
    expect(world.emulator.state.versions(world.vault, "no-secret")).toBeUndefined()
  })

  it("doctor, credential_mode default: names the chain's source that answered; with none, each source's reason (1)", async () => {
    type Check = { check: string; status: string; detail: string; credential?: string | null }
    const target = world.targetFile("doctor-default", { credential_mode: "default" })
    const ok = await runCli(["doctor", "--config", target, "--json"], { env: world.env })
    expect(ok.code, ok.stdout).toBe(0)
    const token = json<{ checks: Array<Check> }>(ok).checks.find((c) => c.check === "token")
    expect(token?.detail).toContain("from EnvironmentCredential (the default chain's source that answered)")
    // IMDS answers when no service principal is set: the identity line names no authority as the
    // way the token came, and the token line names the managed identity.
    // (No AZURE_CLIENT_ID either: the chain would ask IMDS for that user-assigned identity.)
    const {
      AZURE_CLIENT_SECRET: _secret,
      AZURE_CLIENT_ID: _client,
      AZURE_TENANT_ID: _tenant,
      ...noPrincipal
    } = world.env
    const imds = await runCli(["doctor", "--config", target, "--json"], {
      env: {
        ...noPrincipal,
        // Set for something else: a managed identity's token is of the host's tenant, not judged by it.
        AZURE_TENANT_ID: "99999999-8888-7777-6666-555555555555",
        AZURE_TOKEN_CREDENTIALS: "prod",
        AZURE_POD_IDENTITY_AUTHORITY_HOST: world.emulator.managedIdentity.imdsHost,
      },
    })
    const imdsChecks = json<{ checks: Array<Check> }>(imds).checks
    expect(imdsChecks.find((c) => c.check === "token")?.detail).toContain(
      "from ManagedIdentityCredential (the default chain's source that answered)",
    )
    const identityLine = imdsChecks.find((c) => c.check === "identity")?.detail ?? ""
    expect(identityLine).toContain(
      `authority ${world.env.AZURE_AUTHORITY_HOST} for the chain's Entra ID sources`,
    )
    expect(identityLine).not.toContain("via ")
    expect(imdsChecks.filter((c) => c.check.startsWith("token "))).toEqual([])
    // No service principal, an App Service managed identity endpoint that refuses the header, and
    // no developer tools ("prod").
    const { AZURE_CLIENT_SECRET: _s, AZURE_CLIENT_ID: _c, AZURE_TENANT_ID: _t, ...rest } = world.env
    const env = {
      ...rest,
      AZURE_TOKEN_CREDENTIALS: "prod",
      IDENTITY_ENDPOINT: world.emulator.managedIdentity.appServiceEndpoint,
      IDENTITY_HEADER: "not-the-header",
    }
    const none = await runCli(["doctor", "--config", target, "--json"], { env })
    expect(none.code, none.stdout).toBe(1)
    const checks = json<{ checks: Array<Check> }>(none).checks
    expect(checks.find((c) => c.check === "token")?.status).toBe("fail")
    // Each named as the SDK named it, not numbered: the chain's workload identity (no variables) was
    // never built and gave no error, so the managed identity is the second error, not the second
    // source. The one not built is a skip in its place in the chain, naming the variable its
    // constructor asked for.
    const sources = checks.filter((c) => c.check.startsWith("chain source"))
    expect(sources.map((c) => [c.check, c.status, c.credential])).toEqual([
      ["chain source", "fail", "EnvironmentCredential"],
      ["chain source", "skip", "WorkloadIdentityCredential"],
      ["chain source", "fail", "ManagedIdentityCredential"],
    ])
    expect(sources[0]?.detail).toMatch(/^EnvironmentCredential is unavailable/)
    expect(sources[1]?.detail).toMatch(
      /^WorkloadIdentityCredential: not built, so not tried: is unavailable\. clientId is a required parameter\..*"AZURE_CLIENT_ID"/,
    )
    expect(sources[2]?.detail).toMatch(/^ManagedIdentityCredential: Authentication failed/)
    const noneText = await runCli(["doctor", "--config", target], { env })
    expect(noneText.stdout).toMatch(
      /skip {2}chain source {9}WorkloadIdentityCredential: not built, so not tried: /,
    )
  })

  it("doctor, credential_mode default with a service principal's AZURE_CLIENT_ID left in the environment: the chain's managed identity is user-assigned by it, and its Identity not found says to unset it (1)", async () => {
    type Check = { check: string; status: string; detail: string; fix?: string; credential?: string | null }
    const target = world.targetFile("doctor-default-leftover-client", { credential_mode: "default" })
    const { AZURE_CLIENT_SECRET: _secret, AZURE_TENANT_ID: _tenant, ...leftover } = world.env
    const r = await runCli(["doctor", "--config", target, "--json"], {
      env: {
        ...leftover,
        // A client id the host's identity endpoint does not know (the service principal's).
        AZURE_CLIENT_ID: "11111111-2222-3333-4444-555555555555",
        AZURE_TOKEN_CREDENTIALS: "ManagedIdentityCredential",
        AZURE_POD_IDENTITY_AUTHORITY_HOST: world.emulator.managedIdentity.imdsHost,
      },
    })
    expect(r.code, r.stdout).toBe(1)
    const checks = json<{ checks: Array<Check> }>(r).checks
    expect(checks.find((c) => c.check === "credential")?.detail).toContain(
      "managed identity (user-assigned by AZURE_CLIENT_ID)",
    )
    const source = checks.find(
      (c) => c.check === "chain source" && c.credential === "ManagedIdentityCredential",
    )
    expect(source?.status).toBe("fail")
    expect(source?.detail).toMatch(/Identity not found/)
    expect(source?.fix).toMatch(/unset it/)
    expect(source?.fix).toContain("AZURE_CLIENT_ID")
  })

  it("doctor, managed_identity with a client id the endpoint does not know: the endpoint's refusal in its words, not 'no credential source' (1)", async () => {
    type Check = { check: string; status: string; detail: string; fix?: string }
    const target = world.targetFile("doctor-mi-unknown", {
      credential_mode: "managed_identity",
      managed_identity_client_id: "11111111-2222-3333-4444-555555555555",
    })
    const r = await runCli(["doctor", "--config", target, "--json"], {
      env: world.emulator.env.managedIdentityImds,
    })
    expect(r.code, r.stdout).toBe(1)
    const token = json<{ checks: Array<Check> }>(r).checks.find((c) => c.check === "token")
    expect(token?.status).toBe("fail")
    expect(token?.detail).toMatch(
      /: the managed identity endpoint refused the token request: Identity not found$/,
    )
    expect(token?.fix).toMatch(
      /set managed_identity_client_id to the client id of a user-assigned identity assigned/,
    )
    // The deploy's next step: the managed identity endpoint's refusal is the host's identity to fix
    // (no token exchange here: no federated token file), not a secret or a token file.
    const deploy = await runCli(["deploy", "--config", target, "--cert", "-"], {
      stdin: fx.bundle(await fx.leaf()),
      env: world.emulator.env.managedIdentityImds,
    })
    expect(deploy.code, deploy.stdout).toBe(1)
    const next = deploy.stdout.split("\n").find((l) => l.trimStart().startsWith("next")) ?? ""
    expect(next).toContain("run on an Azure host that has a managed identity")
    expect(next).not.toContain("AZURE_FEDERATED_TOKEN_FILE")
    expect(next).not.toContain("AZURE_CLIENT_SECRET")
  })

  it("doctor, workload_identity: the federated token's expiry is shown; an expired one fails as such, the vault's checks skipped (1)", async () => {
    type Check = { check: string; status: string; detail: string; fix?: string }
    const target = world.targetFile("doctor-workload", { credential_mode: "workload_identity" })
    const env = (tokenFile: string) => ({
      ...world.emulator.env.workloadIdentity,
      AZURE_FEDERATED_TOKEN_FILE: tokenFile,
    })
    const fresh = await runCli(["doctor", "--config", target, "--json"], {
      env: env(world.emulator.workloadIdentity.tokenFile),
    })
    expect(fresh.code, fresh.stdout).toBe(0)
    const freshChecks = json<{ checks: Array<Check> }>(fresh).checks
    expect(freshChecks.find((c) => c.check === "federated token")).toMatchObject({
      status: "pass",
      detail: expect.stringMatching(/expires at \S+ \(in \d+ h/),
    })
    const vaultSkipped = [
      "reachable",
      "certificates/get",
      "certificates/import",
      "certificates/list",
      "secrets/get",
    ]
    const issued = (agoSeconds: number) =>
      world.emulator.issueFederatedToken(undefined, { issuedAt: Math.floor(Date.now() / 1000) - agoSeconds })
    // Signed 62 minutes ago, valid for an hour: expired 2 minutes ago, within the clock skew the input
    // check allows; Entra ID refuses it, and doctor says why from the file's own times.
    const justExpired = issued(62 * 60)
    const late = await runCli(["doctor", "--config", target, "--json"], {
      env: env(world.file("just-expired-federated-token", `${justExpired}\n`)),
    })
    expect(late.code, late.stdout).toBe(1)
    const checks = json<{ checks: Array<Check> }>(late).checks
    expect(checks.find((c) => c.check === "token")).toMatchObject({
      status: "fail",
      detail: expect.stringContaining(
        "Entra ID refused the federated token as expired or not valid yet (AADSTS700024)",
      ),
    })
    expect(checks.find((c) => c.check === "federated token")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/expired at \S+ \(2 min ago/),
      fix: expect.stringContaining("kubelet"),
    })
    expect(checks.filter((c) => c.status === "skip").map((c) => c.check)).toEqual(vaultSkipped)
    // Signed two hours ago (a copy of the projected token, long since renewed): refused by the input
    // check before any token request, by every command (doctor's credential check; deploy exit 2).
    const old = issued(2 * 3600)
    const oldFile = world.file("expired-federated-token", `${old}\n`)
    const stale = await runCli(["doctor", "--config", target, "--json"], { env: env(oldFile) })
    expect(stale.code, stale.stdout).toBe(1)
    const staleChecks = json<{ checks: Array<Check> }>(stale).checks
    expect(staleChecks.find((c) => c.check === "credential")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(
        /^AZURE_FEDERATED_TOKEN_FILE: cannot work with credential_mode workload_identity: the token in \S+ expired at \S+ \((59 min|1 h) ago/,
      ),
    })
    expect(staleChecks.filter((c) => c.status === "skip").map((c) => c.check)).toEqual(vaultSkipped)
    const deploy = await runCli(["deploy", "--config", target, "--cert", "-", "--json"], {
      stdin: fx.bundle(await fx.leaf()),
      env: env(oldFile),
    })
    expect(deploy.code, deploy.stdout).toBe(2)
    expect(deploy.stdout).toContain("AZURE_FEDERATED_TOKEN_FILE")
    // show says it as what it is in its title: an expired token, not a malformed variable.
    const shown = await runCli(["show", "--config", target, "--json"], { env: env(oldFile) })
    expect(shown.code, shown.stdout).toBe(2)
    expect(json<{ error: { title: string } }>(shown).error.title).toBe(
      "no credential for credential_mode workload_identity: the federated token in AZURE_FEDERATED_TOKEN_FILE expired",
    )
    for (const out of [late.stdout, stale.stdout, deploy.stdout, shown.stdout]) {
      expect(out).not.toContain(old)
      expect(out).not.toContain(justExpired)
    }
  })

  it("deploy, managed_identity in an AKS pod: its federated token file is judged as workload_identity's, before the request and beside Entra ID's refusal (1)", async () => {
    const target = world.targetFile("mi-exchange-file", { credential_mode: "managed_identity" })
    const pod = (tokenFile: string) => ({
      ...world.emulator.env.workloadIdentity,
      AZURE_FEDERATED_TOKEN_FILE: tokenFile,
    })
    const deploy = (tokenFile: string) =>
      fx.leaf().then((leaf) =>
        runCli(["deploy", "--config", target, "--cert", "-", "--json"], {
          stdin: fx.bundle(leaf),
          env: pod(tokenFile),
        }),
      )
    const issued = (agoSeconds: number) =>
      world.emulator.issueFederatedToken(undefined, { issuedAt: Math.floor(Date.now() / 1000) - agoSeconds })
    // A copy of the projected token, two hours old: refused before any token request (exit 2).
    const old = issued(2 * 3600)
    const oldFile = world.file("mi-expired-federated-token", `${old}\n`)
    const mark = world.emulator.requests.mark()
    const stale = await deploy(oldFile)
    expect(stale.code, stale.stdout).toBe(2)
    expect(
      json<{ error: { problems: Array<{ field: string; message: string }> } }>(stale).error.problems,
    ).toEqual([
      expect.objectContaining({
        field: "AZURE_FEDERATED_TOKEN_FILE",
        message: expect.stringMatching(
          /^cannot work with credential_mode managed_identity: the token in \S+ expired at \S+ \((59 min|1 h) ago, by this host's clock\)/,
        ),
      }),
    ])
    expect(world.emulator.requests.count({ since: mark })).toBe(0)
    // An invalid target lists the file's problem beside its own, with the configured client id
    // (AZURE_CLIENT_ID unset): that client id is what makes the exchange read the file.
    const { AZURE_CLIENT_ID: clientId = "", ...noClientId }: Record<string, string> = pod(oldFile)
    const invalid = await fx.leaf().then((leaf) =>
      runCli(
        [
          "deploy",
          "--config",
          world.targetFile("mi-exchange-invalid", {
            credential_mode: "managed_identity",
            managed_identity_client_id: clientId,
          }),
          "--cert",
          "-",
          "--tag",
          "production",
          "--json",
        ],
        { stdin: fx.bundle(leaf), env: noClientId },
      ),
    )
    expect(invalid.code, invalid.stdout).toBe(2)
    expect(
      json<{ error: { problems: Array<{ field: string; message: string }> } }>(invalid).error.problems.map(
        (p) => p.field,
      ),
    ).toEqual([expect.stringContaining("tag"), "AZURE_FEDERATED_TOKEN_FILE"])
    // A missing file: named with its error code, before any request too.
    const missing = await deploy(`${oldFile}-gone`)
    expect(missing.code, missing.stdout).toBe(2)
    expect(missing.stdout).toContain(
      `${oldFile}-gone (AZURE_FEDERATED_TOKEN_FILE) cannot be read: no such file or directory (ENOENT)`,
    )
    // Expired 2 minutes ago (within the clocks' 5 minutes): Entra ID refuses it, and the reason names
    // the file and its expiry beside Entra ID's words.
    const justExpired = issued(62 * 60)
    const lateFile = world.file("mi-just-expired-federated-token", `${justExpired}\n`)
    const late = await deploy(lateFile)
    expect(late.code, late.stdout).toBe(1)
    expect(json<Outcome>(late).reason).toMatch(
      new RegExp(
        `Entra ID refused the federated token as expired or not valid yet \\(AADSTS700024\\) \\(correlation id [0-9a-f-]{36}\\) \\[the token in ${lateFile} expired at \\S+ \\(2 min ago, by this host's clock\\).*kubelet rewrites the projected service account token`,
      ),
    )
    // The next step is the exchange's: the token file and the user-assigned identity's federated
    // identity credential, not a host with a managed identity (this pod has one: its exchange failed).
    const lateText = await fx
      .leaf()
      .then((leaf) =>
        runCli(["deploy", "--config", target, "--cert", "-"], { stdin: fx.bundle(leaf), env: pod(lateFile) }),
      )
    expect(lateText.code, lateText.stdout).toBe(1)
    const next = lateText.stdout.split("\n").find((l) => l.trimStart().startsWith("next")) ?? ""
    expect(next).toContain("AKS workload identity's token exchange")
    expect(next).toContain("AZURE_FEDERATED_TOKEN_FILE")
    expect(next).toContain("federated identity credential on the user-assigned identity")
    expect(next).not.toContain("run on")
    for (const out of [stale.stdout, missing.stdout, late.stdout, lateText.stdout])
      for (const token of [old, justExpired])
        for (const part of token.split(".")) expect(out).not.toContain(part)
  })

  it("doctor, default and managed_identity: the federated token is checked wherever @azure/identity reads it, and each chain source is named (1)", async () => {
    type Check = { check: string; status: string; detail: string; fix?: string; credential?: string | null }
    const target = world.targetFile("doctor-default-pod", { credential_mode: "default" })
    const issuedAt = Math.floor(Date.now() / 1000) - 2 * 3600
    const token = world.emulator.issueFederatedToken(undefined, { issuedAt })
    const tokenFile = world.file("expired-pod-federated-token", `${token}\n`)
    // An AKS workload identity pod whose token file is an old copy. The whole chain is tried (no
    // AZURE_TOKEN_CREDENTIALS), with a PATH that holds none of the developer tools, so each says so at
    // once whatever this host has installed (node itself is run by its full path): the test's own
    // directory of files.
    const path = dirname(world.file("no-tools-here", ""))
    const pod = {
      ...world.emulator.env.workloadIdentity,
      AZURE_FEDERATED_TOKEN_FILE: tokenFile,
      PATH: path,
    }
    const r = await runCli(["doctor", "--config", target, "--json"], { env: pod })
    expect(r.code, r.stdout).toBe(1)
    const checks = json<{ checks: Array<Check> }>(r).checks
    expect(checks.find((c) => c.check === "token")?.status).toBe("fail")
    // Each source the SDK gave an error for, named as the SDK named it: the workload identity's refusal
    // is MSAL's error, named by nothing; the managed identity's exchange, refused the same way, by its
    // own log line; Visual Studio Code's names no credential; the tools by their own log lines.
    const sources = checks.filter((c) => c.check === "chain source")
    expect(sources.map((c) => c.credential)).toEqual([
      "EnvironmentCredential",
      null,
      "ManagedIdentityCredential",
      null,
      "AzureCliCredential",
      "AzurePowerShellCredential",
      "AzureDeveloperCliCredential",
    ])
    // The broker, which the SDK could not build (kvdeploy does not ship its plugin), has no line.
    expect(sources.map((c) => c.status)).toEqual(Array(7).fill("fail"))
    expect(sources[1]?.detail).toMatch(/^unnamed: invalid_client: .*AADSTS700024/)
    expect(sources[2]?.detail).toMatch(/^ManagedIdentityCredential: invalid_client: .*AADSTS700024/)
    expect(checks.find((c) => c.check === "federated token")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(
        /^the token in \S+ expired at \S+ \((1 h|2 h) ago, by this host's clock\).* \(read by the chain's WorkloadIdentityCredential, and its ManagedIdentityCredential's AKS token exchange\)$/,
      ),
      fix: expect.stringContaining("kubelet"),
    })
    const text = await runCli(["doctor", "--config", target], { env: pod })
    expect(text.stdout).toMatch(/FAIL {2}chain source {9}unnamed: invalid_client/)
    expect(text.stdout).toMatch(/FAIL {2}federated token {6}the token in /)
    for (const out of [r.stdout, text.stdout])
      for (const part of token.split(".")) expect(out).not.toContain(part)
    // managed_identity with the file but no AZURE_TENANT_ID: no exchange, the endpoint answers, and
    // the check says why the file is not read (a skip: ready to deploy).
    const mi = await runCli(
      [
        "doctor",
        "--config",
        world.targetFile("doctor-mi-file", { credential_mode: "managed_identity" }),
        "--json",
      ],
      { env: { ...world.emulator.env.managedIdentityUserAssigned, AZURE_FEDERATED_TOKEN_FILE: tokenFile } },
    )
    expect(mi.code, mi.stdout).toBe(0)
    expect(
      json<{ checks: Array<Check> }>(mi).checks.find((c) => c.check === "federated token"),
    ).toMatchObject({
      status: "skip",
      detail: expect.stringMatching(
        /^not read: \S+ \(AZURE_FEDERATED_TOKEN_FILE\) is set, but .*AZURE_TENANT_ID is not set/,
      ),
    })
  })

  it("doctor: a missing client secret fails the credential check (1)", async () => {
    const { AZURE_CLIENT_SECRET: _, ...env } = world.env
    const r = await runCli(["doctor", "--config", world.targetFile("doctor")], { env })
    expect(r.code).toBe(1)
    expect(r.stdout).toContain("AZURE_CLIENT_SECRET")
  })
})

// In this file, not one of its own: a small file is scheduled last (vitest runs the largest first), and
// this one waits the real 30 s token limit, which would then be the run's tail.
describe("doctor and show: the token", { concurrent: true }, () => {
  let world: World
  beforeAll(async () => {
    world = await startWorld("kvdeploy-token")
  })
  afterAll(async () => {
    await world?.stop()
  })

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
