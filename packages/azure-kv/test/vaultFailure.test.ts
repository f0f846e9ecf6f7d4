/** SDK failures mapped to core's errors: what they carry, and that mapping one captures no stack trace. */
import { generateKeyPairSync } from "node:crypto"
import { createHttpHeaders, createPipelineRequest, RestError } from "@azure/core-rest-pipeline"
import { describe, expect, it } from "@effect/vitest"
import { noteTokenFileState } from "@kvdeploy/credentials/tokenErrors"
import { KeyVaultRequestFailure, toVaultError } from "../src/vaultFailure.js"

const framesOf = (e: Error): number => (e.stack ?? "").split("\n").filter((l) => /^\s+at /.test(l)).length

describe("toVaultError", () => {
  it("maps a 404 to VaultNotFound with the SDK's facts, without stack frames, and leaves the stack limit as it was", () => {
    const before = Error.stackTraceLimit
    const sdkError = new RestError("A certificate with (name/id) app was not found in this key vault.", {
      statusCode: 404,
      code: "CertificateNotFound",
    })
    const mapped = toVaultError("getLatest", "read", sdkError)
    expect(mapped._tag).toBe("VaultNotFound")
    expect(mapped.operation).toBe("getLatest")
    expect(mapped.detail).toContain("was not found")
    const cause = mapped.cause
    expect(cause).toBeInstanceOf(KeyVaultRequestFailure)
    if (!(cause instanceof KeyVaultRequestFailure)) return
    expect(cause.statusCode).toBe(404)
    expect(cause.code).toBe("CertificateNotFound")
    expect(framesOf(mapped)).toBe(0)
    expect(framesOf(cause)).toBe(0)
    expect(Error.stackTraceLimit).toBe(before)
    // The limit is back for every other error.
    expect(framesOf(new Error("elsewhere"))).toBeGreaterThan(0)
  })

  it("a 404 keeps when the vault answered (its Date header); without one, or unreadable, it says nothing", () => {
    const notFound = (headers: Record<string, string>) =>
      toVaultError(
        "listVersions",
        "read",
        new RestError("not found", {
          statusCode: 404,
          code: "CertificateNotFound",
          response: {
            status: 404,
            headers: createHttpHeaders(headers),
            request: createPipelineRequest({ url: "https://v.vault.kvdeploy.test/certificates/a/versions" }),
          },
        }),
      )
    const answeredAt = (e: ReturnType<typeof notFound>) =>
      e._tag === "VaultNotFound" ? e.answeredAtMs : "not a 404"
    expect(answeredAt(notFound({ date: "Wed, 02 Dec 2026 10:00:05 GMT" }))).toBe(
      Date.UTC(2026, 11, 2, 10, 0, 5),
    )
    expect(answeredAt(notFound({}))).toBeUndefined()
    expect(answeredAt(notFound({ date: "yesterday-ish" }))).toBeUndefined()
  })

  it("a refusal whose message runs over lines (Key Vault's RBAC answer) is one line, every part kept", () => {
    const sdkError = new RestError(
      "Caller is not authorized to perform action on resource.\r\nIf role assignments were changed recently, please observe propagation time.\r\nCaller: appid=1;oid=2\r\nAction: 'Microsoft.KeyVault/vaults/certificates/import/action'\r\nDenyAssignmentId: null\r\n",
      { statusCode: 403, code: "Forbidden" },
    )
    const mapped = toVaultError("importVersion", "write", sdkError)
    expect(mapped._tag).toBe("VaultForbidden")
    expect(mapped.detail).not.toMatch(/[\r\n]/)
    expect(mapped.message).not.toMatch(/[\r\n]/)
    expect(mapped.detail).toContain(
      "on resource. If role assignments were changed recently, please observe propagation time. Caller: appid=1;oid=2 Action: 'Microsoft.KeyVault/vaults/certificates/import/action' DenyAssignmentId: null",
    )
  })

  /** Key Vault's 403 to an import with inner code ForbiddenByPolicy (an access policy's or Azure Policy's), `message` its error's message. */
  const forbiddenByPolicy = (message: string) =>
    toVaultError(
      "importVersion",
      "write",
      new RestError(message, {
        statusCode: 403,
        code: "Forbidden",
        response: {
          status: 403,
          headers: createHttpHeaders({}),
          request: createPipelineRequest({ url: "https://v.vault.kvdeploy.test/certificates/a/import" }),
          bodyAsText: JSON.stringify({
            error: { code: "Forbidden", message, innererror: { code: "ForbiddenByPolicy" } },
          }),
        },
      }),
    )

  it("a 403 is Azure Policy's refusal by its message, not by its codes: an access policy's ForbiddenByPolicy stays a missing permission", () => {
    const accessPolicy = forbiddenByPolicy(
      "The user, group or application 'appid=1;oid=2' does not have certificates import permission on key vault 'v;location=westeurope'.",
    )
    expect(accessPolicy._tag).toBe("VaultForbidden")
    expect(accessPolicy._tag === "VaultForbidden" ? accessPolicy.refusal : undefined).toBe("permission")
    // Only Key Vault's sentence, without the policy identifiers: still the policy's, named generally.
    const bare = forbiddenByPolicy("Certificate 'a' was disallowed by policy.")
    expect(bare._tag).toBe("VaultRequestRejected")
    expect(bare._tag === "VaultRequestRejected" ? [bare.status, bare.code] : []).toEqual([
      403,
      "RequestDisallowedByPolicy",
    ])
    expect(bare.detail).toContain("the vault's Azure Policy refused this certificate, so nothing was written")
    expect(bare.detail).toContain("az policy assignment list")
  })

  /** Azure Policy's answer to an import, `answer` as its error's message (JSON, as Key Vault writes it). */
  const policyRefusal = (answer: unknown) => forbiddenByPolicy(JSON.stringify(answer))

  it("the az command of a policy refusal reads back as the assignment's name and scope when pasted into a shell", () => {
    const assignments = "/providers/Microsoft.Authorization/policyAssignments/"
    const scope = "/subscriptions/s/resourceGroups/rg(prod)"
    const name = "Cert max validity; it's $HOME $(id)"
    const mapped = policyRefusal({
      objectName: "a",
      message: "Certificate 'a' was disallowed by policy.",
      policyIdentifiers: { policyAssignment: { name, id: `${scope}${assignments}x` } },
    })
    expect(mapped._tag).toBe("VaultRequestRejected")
    const command = /`(az policy assignment show [^`]*)`/.exec(mapped.detail)?.[1]
    expect(command).toBe(
      `az policy assignment show --name 'Cert max validity; it'\\''s $HOME $(id)' --scope '/subscriptions/s/resourceGroups/rg(prod)'`,
    )
    // A backtick would end the command's quoting in the reason: the general command is shown.
    const ticked = policyRefusal({
      message: "Certificate 'a' was disallowed by policy.",
      policyIdentifiers: { policyAssignment: { name: "a`b", id: `${scope}${assignments}x` } },
    })
    expect(ticked.detail).toContain("`az policy assignment list --scope VAULT_RESOURCE_ID`")
    // A plain name and scope stay as they are.
    const plain = policyRefusal({
      message: "Certificate 'a' was disallowed by policy.",
      policyIdentifiers: {
        policyAssignment: { name: "cert-max", id: `/subscriptions/s${assignments}cert-max` },
      },
    })
    expect(plain.detail).toContain("`az policy assignment show --name cert-max --scope /subscriptions/s`")
  })

  it("a policy refusal's names and message reach the reason on one line, without terminal controls, and cut short", () => {
    const assignments = "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/"
    const forged = policyRefusal({
      objectName: "a",
      message: "Certificate 'a' was disallowed by policy.\nFAKE: deploy Succeeded\u001b[2J",
      policyIdentifiers: {
        policyAssignment: {
          name: "cert-max\nFAKE: deploy Succeeded\u001b]0;owned\u0007",
          id: `${assignments}x\u001b[2J`,
        },
        policyDefinition: { name: "def\r\n\u009b31m" },
      },
    })
    expect(forged._tag).toBe("VaultRequestRejected")
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the controls are what it looks for
    expect(forged.detail).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/)
    expect(forged.detail).toContain("cert-max FAKE: deploy Succeeded\\x1b]0;owned\\x07")
    expect(forged.detail).toContain(
      "Key Vault: Certificate 'a' was disallowed by policy. FAKE: deploy Succeeded\\x1b[2J",
    )
    // A name a terminal would act on makes no command to paste: the general one is shown.
    expect(forged.detail).toContain("`az policy assignment list --scope VAULT_RESOURCE_ID`")
    const long = policyRefusal({
      message: `Certificate 'a' was disallowed by policy. ${"Q".repeat(200_000)}`,
      policyIdentifiers: {
        policyAssignment: { name: "Z".repeat(100_000), id: `${assignments}${"Z".repeat(100_000)}` },
        policyDefinition: { name: "Y".repeat(100_000) },
      },
    })
    expect(long._tag).toBe("VaultRequestRejected")
    expect(long.detail.length).toBeLessThan(2_000)
    expect(long.detail).toContain(`${"Z".repeat(199)}…`)
    expect(long.detail).not.toContain("Z".repeat(201))
    expect(long.detail).toContain(`${"Y".repeat(199)}…`)
    expect(long.detail).toContain("`az policy assignment list --scope VAULT_RESOURCE_ID`")
  })

  it("a 429 says who retries: the SDK's retries that ran out, or its caller when they are off (the agent)", () => {
    const throttled = () =>
      new RestError("Too many requests.", {
        statusCode: 429,
        code: "Throttled",
        response: {
          status: 429,
          headers: { get: (h: string) => (h.toLowerCase() === "retry-after" ? "3" : undefined) },
        } as never,
      })
    const sdk = toVaultError("importVersion", "write", throttled()).detail
    expect(sdk).toContain("did not succeed within the SDK's retries")
    // The operator retries it: when (the vault's last Retry-After), and what to do if it recurs.
    expect(sdk).toContain("its last answer asked to wait 3 s (Retry-After): Too many requests.")
    expect(sdk).toContain(
      "Wait 3 s and run again; if it recurs, run fewer deploys against this vault at once (Key Vault's service limits throttle each vault on all its callers' requests together)",
    )
    // Retry-After 0: "at once", not "wait 0 s", and the advice still waits a moment before the run.
    const atOnce = toVaultError(
      "importVersion",
      "write",
      new RestError("Too many requests.", {
        statusCode: 429,
        code: "Throttled",
        response: {
          status: 429,
          headers: { get: (h: string) => (h.toLowerCase() === "retry-after" ? "0" : undefined) },
        } as never,
      }),
    ).detail
    expect(atOnce).toContain("its last answer asked to retry at once (Retry-After: 0): Too many requests.")
    expect(atOnce).toContain("Wait a second and run again")
    expect(atOnce).not.toContain("0 s")
    const unsaid = toVaultError(
      "getLatest",
      "read",
      new RestError("Too many requests", { statusCode: 429, code: "Throttled" }),
    ).detail
    expect(unsaid).toContain(
      "without Retry-After, so the SDK did not retry it): Too many requests. Wait a few seconds",
    )
    expect(unsaid).toContain("run fewer deploys against this vault at once")
    const agent = toVaultError("importVersion", "write", throttled(), false).detail
    expect(agent).not.toContain("within the SDK's retries")
    expect(agent).toContain("the SDK's retries are off here: its caller waits and retries")
    expect(agent).toContain("asks to wait 3 s")
    // The agent waits and retries by itself: no advice to run again.
    expect(agent).not.toContain("run again")
  })

  it("key text in an SDK's error message (a PEM block, a DER key in base64) is not shown in the mapped error", () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" })
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString()
    const der = privateKey.export({ type: "pkcs8", format: "der" }).toString("base64")
    // Key Vault echoes a bad parameter's value in its message (a 400 to an import).
    for (const [status, code] of [
      [400, "BadParameter"],
      [403, "Forbidden"],
      [500, "InternalServerError"],
    ] as const) {
      const mapped = toVaultError(
        "importVersion",
        "write",
        new RestError(`Property value is invalid: ${pem} and ${der}`, { statusCode: status, code }),
      )
      const shown = `${mapped.message} ${mapped.detail}`
      expect(shown, `${status}`).not.toContain("PRIVATE KEY")
      expect(shown, `${status}`).not.toContain(der.slice(0, 40))
      for (const line of pem.split("\n").filter((l) => l.length >= 40 && !l.startsWith("-----")))
        expect(shown, `${status}`).not.toContain(line)
      expect(shown).toContain("Property value is invalid")
    }
  })

  it("marks as retried exactly what the SDK's retry policy retried: resets and other transport errors, 408, 5xx but 501 and 505", () => {
    const retried = (error: Error) => {
      const mapped = toVaultError("getLatest", "read", error)
      return "retried" in mapped && mapped.retried === true
    }
    const network = (code: string) => Object.assign(new RestError(`connect ${code}`, { code }), { code })
    // The SDK's exponential strategy retries these transport errors (isSystemError): the deploy
    // program must not retry them a second time.
    for (const code of ["ECONNRESET", "ETIMEDOUT", "ESOCKETTIMEDOUT", "ECONNREFUSED", "ENOTFOUND"])
      expect(retried(network(code)), code).toBe(true)
    const status = (statusCode: number) => new RestError(`status ${statusCode}`, { statusCode })
    for (const code of [500, 502, 503, 504, 408]) expect(retried(status(code)), `${code}`).toBe(true)
    // 501 and 505 the SDK does not retry: the deploy program may.
    for (const code of [501, 505]) expect(retried(status(code)), `${code}`).toBe(false)
  })

  it("a vault host name that does not resolve names vault_url and what to check; other unreachable hosts do not", () => {
    const unresolved = Object.assign(
      new RestError("getaddrinfo ENOTFOUND my-vualt.vault.azure.net", { code: "ENOTFOUND" }),
      { code: "ENOTFOUND" },
    )
    for (const [operation, kind] of [
      ["getLatest", "read"],
      ["importVersion", "write"],
    ] as const) {
      const mapped = toVaultError(operation, kind, unresolved)
      // Nothing was sent: not an import that may have taken effect.
      expect(mapped._tag).toBe("VaultUnavailable")
      expect(mapped._tag === "VaultUnavailable" && mapped.hostNotFound).toBe(true)
      expect(mapped.detail).toBe(
        "the vault's host name was not found (getaddrinfo ENOTFOUND my-vualt.vault.azure.net), so nothing was sent: check the vault's name in vault_url for a typo, that it ends with the vault's cloud's vault suffix (.vault.azure.net in Azure's public cloud; a custom cloud's cloud.vault_dns_suffix), and this machine's DNS (a vault behind a private endpoint needs its privatelink zone); `kvdeploy doctor` checks the vault's reachability",
      )
    }
    // Behind a proxy from the environment whose own name does not resolve: the proxy is named, not vault_url.
    const saved = process.env.HTTPS_PROXY
    process.env.HTTPS_PROXY = "http://No-Such-Proxy.invalid:3128"
    try {
      const viaProxy = toVaultError(
        "getLatest",
        "read",
        Object.assign(new RestError("getaddrinfo ENOTFOUND no-such-proxy.invalid", { code: "ENOTFOUND" }), {
          code: "ENOTFOUND",
        }),
      )
      expect(viaProxy._tag === "VaultUnavailable" && viaProxy.hostNotFound).toBeFalsy()
      expect(viaProxy.detail).toBe(
        "the proxy's host name no-such-proxy.invalid (from HTTPS_PROXY, HTTP_PROXY or ALL_PROXY) was not found (getaddrinfo ENOTFOUND no-such-proxy.invalid), so nothing was sent: check the proxy variable's host name, or this machine's DNS",
      )
      // The vault's own name not resolving (a proxy that resolves names by itself answers no such
      // error; one that does not forward them leaves it to this machine) is still vault_url's.
      const vaultName = toVaultError("getLatest", "read", unresolved)
      expect(vaultName._tag === "VaultUnavailable" && vaultName.hostNotFound).toBe(true)
    } finally {
      if (saved === undefined) delete process.env.HTTPS_PROXY
      else process.env.HTTPS_PROXY = saved
    }
    const refused = toVaultError(
      "getLatest",
      "read",
      Object.assign(new RestError("connect ECONNREFUSED 10.0.0.4:443", { code: "ECONNREFUSED" }), {
        code: "ECONNREFUSED",
      }),
    )
    expect(refused._tag === "VaultUnavailable" && refused.hostNotFound).toBeFalsy()
    expect(refused.detail).toContain("the vault could not be reached (ECONNREFUSED)")
  })

  it("behind a proxy from the environment, a DNS failure that names no host is the proxy's: the proxy is named, not vault_url", () => {
    const saved = process.env.HTTPS_PROXY
    process.env.HTTPS_PROXY = "http://No-Such-Proxy.invalid:3128"
    try {
      const mapped = toVaultError(
        "getLatest",
        "read",
        Object.assign(new RestError("getaddrinfo ENOTFOUND", { code: "ENOTFOUND" }), { code: "ENOTFOUND" }),
      )
      expect(mapped._tag).toBe("VaultUnavailable")
      expect(mapped._tag === "VaultUnavailable" && mapped.hostNotFound).toBeFalsy()
      expect(mapped.detail).toBe(
        "the proxy's host name no-such-proxy.invalid (from HTTPS_PROXY, HTTP_PROXY or ALL_PROXY) was not found (getaddrinfo ENOTFOUND), so nothing was sent: check the proxy variable's host name, or this machine's DNS",
      )
    } finally {
      if (saved === undefined) delete process.env.HTTPS_PROXY
      else process.env.HTTPS_PROXY = saved
    }
  })

  it("a success whose answer cannot be parsed: a write may have taken effect, a read failed; the body is not shown", () => {
    const garbled = () =>
      new RestError(
        'Error "Unexpected non-whitespace character after JSON" occurred while parsing the response body - {"value":"MIIKSECRETBODY"} trailing',
        {
          statusCode: 200,
          code: "PARSE_ERROR",
        },
      )
    const write = toVaultError("importVersion", "write", garbled())
    expect(write._tag).toBe("VaultAmbiguous")
    expect(write.detail).toContain("the vault answered 200, but its answer could not be read")
    expect(write.detail).toContain("the import may have taken effect")
    const read = toVaultError("getVersionSecret", "read", garbled())
    expect(read._tag).toBe("VaultUnavailable")
    for (const e of [write, read])
      expect(JSON.stringify([e.detail, e.message])).not.toContain("MIIKSECRETBODY")
  })

  it("an identity library's long refusal is cut short, and the federated token file's state put after it is kept whole", () => {
    // Entra ID's AADSTS700024 through MSAL runs to hundreds of characters (times, a link, trace and
    // correlation ids); the file's state the credential puts after it comes whole after the cut.
    const sdk = Object.assign(
      new Error(
        `invalid_client: Error(s): 700024 - Timestamp: 2026-12-03 22:13:29Z - Description: AADSTS700024: Client assertion is not within its valid time range. ${"Current time: 2026-12-03T22:13:29Z, assertion valid from 2026-12-03T20:13:29Z, expiry time of assertion 2026-12-03T21:13:29Z. ".repeat(8)}Trace ID: 4f23cd77`,
      ),
      { name: "AuthenticationError" },
    )
    const state =
      "the token in /var/run/secrets/azure/tokens/azure-identity-token expired at 2026-12-03T21:13:29.000Z (1 h ago, by this host's clock): check the pod's projected service account token volume"
    noteTokenFileState(sdk, state)
    const mapped = toVaultError("getLatest", "read", sdk)
    expect(mapped._tag).toBe("VaultForbidden")
    // Said as doctor says it: Entra ID's first sentence, not its hundreds of characters.
    expect(mapped.detail).toBe(
      `no token for the vault (nothing was sent to the vault): Entra ID refused the federated token as expired or not valid yet (AADSTS700024) [${state}]`,
    )
    // A refusal kvdeploy has no words for keeps the library's own text, cut short, with the state.
    const other = Object.assign(new Error(`invalid_request: ${"x".repeat(2_000)}`), {
      name: "AuthenticationError",
    })
    noteTokenFileState(other, state)
    const kept = toVaultError("getLatest", "read", other)
    expect(kept.detail).toMatch(/… \(\d+ more characters not shown\) \[the token in /)
    expect(kept.detail.endsWith(`[${state}]`)).toBe(true)
    // Noted twice (an error passed through the credential again), the state is said once.
    noteTokenFileState(sdk, state)
    expect(sdk.message.split(state).length).toBe(2)
  })

  it("a refused client secret: Entra ID's first sentence and its correlation id, not its timestamps and trace id", () => {
    const sdk = Object.assign(
      new Error(
        "invalid_client: Error(s): 7000215 - Timestamp: 2026-12-04 01:27:40.471Z - Description: AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '1f19488b-ddf0-45f3-9c2f-a0433d839dbe'. - Correlation ID: 965170f2-631b-485b-bb96-ca20ceb36354 - Trace ID: 148222ba-9ead-4675-b112-4e92346b0efd",
      ),
      // The name @azure/identity 4 gives a client secret Entra ID refused (seen against the emulator).
      { name: "AuthenticationRequiredError" },
    )
    const mapped = toVaultError("getLatest", "read", sdk)
    expect(mapped).toMatchObject({ _tag: "VaultForbidden", refusal: "credential", unsent: true })
    expect(mapped.detail).toBe(
      "no token for the vault (nothing was sent to the vault): Entra ID refused the client secret (Entra ID: AADSTS7000215: Invalid client secret provided.) (correlation id 965170f2-631b-485b-bb96-ca20ceb36354)",
    )
  })

  it("a failure no endpoint judged keeps the library's words, though they name a federated token", () => {
    // A file that could not be read is no refusal by Entra ID: "Entra ID refused" would be false.
    const sdk = Object.assign(
      new Error("WorkloadIdentityCredential: the federated token file /x could not be read"),
      {
        name: "CredentialUnavailableError",
      },
    )
    expect(toVaultError("getLatest", "read", sdk).detail).toBe(
      "no token for the vault: the credential was refused or is not available here (nothing was sent to the vault): WorkloadIdentityCredential: the federated token file /x could not be read",
    )
  })

  it("a managed identity endpoint's refusal in its own words", () => {
    const sdk = Object.assign(
      new Error(
        "ManagedIdentityCredential: Authentication failed. Message Attempted to use the App Service managed identity endpoint. Error: 400 - Description: Identity not found - Correlation ID: 1",
      ),
      { name: "AuthenticationError" },
    )
    expect(toVaultError("getLatest", "read", sdk).detail).toBe(
      "no token for the vault (nothing was sent to the vault): the managed identity endpoint refused the token request: Identity not found",
    )
  })

  it("a managed identity endpoint's HTTP error without an error of its own: its status, not a refusal in a client error's words", () => {
    // msal-node's message for such an answer (a proxy's 404 in front of IMDS) ends with its headers.
    const sdk = Object.assign(
      new Error(
        'ManagedIdentityCredential: Authentication failed. Message client_error: Error(s): Not Available - Timestamp: Not Available - Description: A client error occured.\nHttp status code: 404\nHttp status message: Unknown\nHeaders: {"content-length":"0"} - Correlation ID: Not Available - Trace ID: Not Available',
      ),
      { name: "CredentialUnavailableError" },
    )
    expect(toVaultError("getLatest", "read", sdk).detail).toBe(
      "no token for the vault (nothing was sent to the vault): the managed identity endpoint answered HTTP 404 without an error of its own (no managed identity endpoint's answer: a proxy or gateway may have answered in its place)",
    )
  })

  describe("a vault in another tenant than the credential's", () => {
    const vaultTenant = "11111111-2222-3333-4444-555555555555"
    const tokenTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    const challenge = `Bearer authorization="https://login.windows.net/${vaultTenant}", resource="https://vault.azure.net"`
    const unauthorized = (message: string, headers: Record<string, string>) =>
      new RestError(message, {
        statusCode: 401,
        code: "Unauthorized",
        response: {
          status: 401,
          headers: createHttpHeaders(headers),
          request: createPipelineRequest({ url: "https://v.vault.azure.net/certificates/a/" }),
        },
      })

    it("@azure/identity's refusal of the challenge's tenant (a credential kvdeploy did not build): refusal tenant, unsent, the vault's tenant and the fix", () => {
      const sdk = Object.assign(
        new Error(
          `The current credential is not configured to acquire tokens for tenant ${vaultTenant}. To enable acquiring tokens for this tenant add it to the AdditionallyAllowedTenants on the credential options, or add "*" to AdditionallyAllowedTenants to allow acquiring tokens for any tenant.`,
        ),
        { name: "CredentialUnavailableError" },
      )
      const mapped = toVaultError("getLatest", "read", sdk)
      expect(mapped._tag).toBe("VaultForbidden")
      if (mapped._tag !== "VaultForbidden") return
      expect(mapped.refusal).toBe("tenant")
      expect(mapped.unsent).toBe(true)
      expect(mapped.detail).toContain(
        `no token for the vault (nothing was sent): the vault is in tenant ${vaultTenant} (its challenge names it), not the credential's tenant,`,
      )
      expect(mapped.detail).toContain(`AZURE_ADDITIONALLY_ALLOWED_TENANTS=${vaultTenant}`)
    })

    it("a 401 whose challenge names the vault's tenant and whose AKV10032 names the token's other one: refusal tenant, both named", () => {
      const mapped = toVaultError(
        "importVersion",
        "write",
        unauthorized(
          `AKV10032: Invalid issuer. Expected one of https://sts.windows.net/${vaultTenant}/, found https://sts.windows.net/${tokenTenant}/.`,
          { "www-authenticate": challenge },
        ),
      )
      expect(mapped._tag).toBe("VaultForbidden")
      if (mapped._tag !== "VaultForbidden") return
      expect(mapped.refusal).toBe("tenant")
      expect(mapped.unsent).toBeUndefined()
      expect(mapped.detail).toContain(
        `the vault is in tenant ${vaultTenant} (its challenge names it), and the token is of tenant ${tokenTenant}`,
      )
      expect(mapped.detail).toContain(`AZURE_TENANT_ID=${vaultTenant}`)
      expect(mapped.detail).not.toContain("grant")
    })

    it("a 401 that is not about the issuer, or whose token is of the vault's tenant: a token refusal, naming the vault's tenant", () => {
      for (const message of [
        "AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://management.azure.com.",
        `AKV10032: Invalid issuer. Expected one of https://sts.windows.net/${vaultTenant}/, found https://sts.windows.net/${vaultTenant.toUpperCase()}/.`,
      ]) {
        const mapped = toVaultError(
          "getLatest",
          "read",
          unauthorized(message, { "www-authenticate": challenge }),
        )
        expect(mapped._tag).toBe("VaultForbidden")
        if (mapped._tag !== "VaultForbidden") return
        expect(mapped.refusal).toBe("token")
        expect(mapped.detail).toContain(`against the vault's tenant ${vaultTenant} that its challenge names`)
      }
      // Without a challenge, as before.
      const bare = toVaultError("getLatest", "read", unauthorized("AKV10000: missing token", {}))
      expect(bare._tag === "VaultForbidden" ? bare.refusal : undefined).toBe("token")
      expect(bare._tag === "VaultForbidden" ? bare.detail : "").toContain(
        "the vault refused the token (check the credential's tenant and that the token is for this cloud's Key Vault resource)",
      )
    })
  })

  it("restores the stack limit when mapping throws", () => {
    const before = Error.stackTraceLimit
    const hostile = {
      get message(): string {
        throw new Error("no message")
      },
    }
    Object.setPrototypeOf(hostile, Error.prototype)
    expect(() => toVaultError("getLatest", "read", hostile)).toThrow("no message")
    expect(Error.stackTraceLimit).toBe(before)
  })
})

describe("an import the vault refuses as expired", () => {
  const refusedAsExpired = (headers: Record<string, string>) =>
    toVaultError(
      "importVersion",
      "write",
      new RestError("X509 Certificate is already expired", {
        statusCode: 400,
        code: "BadParameter",
        response: {
          status: 400,
          headers: createHttpHeaders(headers),
          request: createPipelineRequest({ url: "https://v.vault.kvdeploy.test/certificates/a/import" }),
        },
      }),
    )
  it("names this host's clock, and by how much it is behind when the vault's answer is dated", () => {
    const now = Date.now()
    const ahead = refusedAsExpired({ date: new Date(now + 3_600_000).toUTCString() })
    expect(ahead._tag).toBe("VaultRequestRejected")
    expect(ahead.detail).toContain("X509 Certificate is already expired")
    expect(ahead.detail).toMatch(/, 3[56]\d\d s ahead of this host's clock: set this host's clock right/)
    const undated = refusedAsExpired({})
    expect(undated.detail).toContain("this host's clock is likely behind the vault's")
    const same = refusedAsExpired({ date: new Date(now).toUTCString() })
    expect(same.detail).toContain("within a second of this host's clock")
    const behind = refusedAsExpired({ date: new Date(now - 300_000).toUTCString() })
    expect(behind.detail).toMatch(
      /, (299|300|301) s behind this host's clock, so the clocks do not explain it/,
    )
    expect(behind.detail).not.toContain("within a second")
  })
  it("says nothing of clocks for another refusal of an import, or an expiry word in a read's refusal", () => {
    const other = toVaultError(
      "importVersion",
      "write",
      new RestError("Property x5c has invalid value", { statusCode: 400, code: "BadParameter" }),
    )
    expect(other.detail).not.toContain("clock")
    const read = toVaultError(
      "getLatest",
      "read",
      new RestError("expired", { statusCode: 400, code: "BadParameter" }),
    )
    expect(read.detail).not.toContain("clock")
  })
})
