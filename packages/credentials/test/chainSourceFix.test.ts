/**
 * chainSourceFix: the fix doctor gives a default chain source that gave no token, beyond its own
 * words (the sources' reasons are @azure/identity's messages as it words them), and the credential
 * line's word on which cloud the chain's sources ask.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { makeCredential } from "../src/credential.js"
import { chainSourceFix } from "../src/diagnose.js"
import { authorityHostVariableNote } from "../src/environment.js"
import { withEnvironment } from "./identityEnvironment.js"

const environmentUnavailable = {
  credential: "EnvironmentCredential",
  reason:
    "EnvironmentCredential is unavailable. No underlying credential could be used. To troubleshoot, visit https://aka.ms/azsdk/js/identity/environmentcredential/troubleshoot.",
}
const lookupOf = (env: Record<string, string>) => (name: string) => env[name]

describe("chainSourceFix: the environment source", () => {
  it("names the variable a service principal lacks (AZURE_TENANT_ID beside a secret and a client id)", () => {
    const fix = chainSourceFix(
      environmentUnavailable,
      {},
      {
        lookup: lookupOf({
          AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000001",
          AZURE_CLIENT_SECRET: "s3cr3t-value",
        }),
      },
    )
    expect(fix).toMatch(
      /^EnvironmentCredential needs AZURE_TENANT_ID beside AZURE_CLIENT_ID, AZURE_CLIENT_SECRET/,
    )
    expect(fix).not.toContain("s3cr3t-value")
  })

  it("names the tenant, the client id and the password beside a user name alone (a user login, not a secret)", () => {
    const fix = chainSourceFix(
      environmentUnavailable,
      {},
      { lookup: lookupOf({ AZURE_USERNAME: "u@example.com" }) },
    )
    expect(fix).toMatch(/needs AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_PASSWORD beside AZURE_USERNAME/)
  })

  it("says nothing when no service principal is meant (nothing set, or the tenant and client id a workload identity uses)", () => {
    expect(chainSourceFix(environmentUnavailable, {}, { lookup: lookupOf({}) })).toBeUndefined()
    expect(
      chainSourceFix(
        environmentUnavailable,
        {},
        {
          lookup: lookupOf({
            AZURE_TENANT_ID: "00000000-0000-0000-0000-000000000002",
            AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000001",
          }),
        },
      ),
    ).toBeUndefined()
  })
})

describe("chainSourceFix: a developer tool asks its own cloud", () => {
  const refused = (credential: string) => ({
    credential,
    reason: `${credential}: ERROR: AADSTS500011: The resource principal named https://vault.usgovcloudapi.net was not found in the tenant named Contoso.`,
  })

  it("the Azure CLI signed in elsewhere than the target's US Government cloud: az cloud set", () => {
    expect(
      chainSourceFix(
        refused("AzureCliCredential"),
        {},
        { authorityHost: "https://login.microsoftonline.us" },
      ),
    ).toMatch(
      /tool's own active cloud, not the target's \(https:\/\/login\.microsoftonline\.us\).*az cloud set --name AzureUSGovernment/,
    )
    expect(
      chainSourceFix(refused("AzureCliCredential"), {}, { authorityHost: "https://login.chinacloudapi.cn/" }),
    ).toMatch(/az cloud set --name AzureChinaCloud/)
  })

  it("azd and Azure PowerShell: their own cloud settings; a custom cloud: register it", () => {
    const gov = { authorityHost: "https://login.microsoftonline.us" }
    expect(chainSourceFix(refused("AzureDeveloperCliCredential"), {}, gov)).toMatch(
      /azd config set cloud\.name AzureUSGovernment/,
    )
    expect(chainSourceFix(refused("AzurePowerShellCredential"), {}, gov)).toMatch(
      /Connect-AzAccount -Environment AzureUSGovernment/,
    )
    expect(
      chainSourceFix(refused("AzureCliCredential"), {}, { authorityHost: "https://login.example.internal" }),
    ).toMatch(/az cloud register/)
  })

  it("not for the public cloud, where the tool's cloud is the target's", () => {
    expect(
      chainSourceFix(
        refused("AzureCliCredential"),
        {},
        { authorityHost: "https://login.microsoftonline.com" },
      ),
    ).toBeUndefined()
  })
})

describe("the default chain's credential line: which cloud each source asks", () => {
  const settings = { mode: "default", authorityHost: "https://login.microsoftonline.us" } as const
  const sourceWith = (selection: string | undefined) =>
    withEnvironment(
      selection === undefined ? {} : { AZURE_TOKEN_CREDENTIALS: selection },
      Effect.map(makeCredential(settings), (resolved) => resolved.identity.source),
    )

  it.effect("the developer tools use the tool's own active cloud, not the target's", () =>
    Effect.gen(function* () {
      const whole = yield* sourceWith(undefined)
      expect(whole).toMatch(
        /developer tools\), each source at the target's cloud but the developer tools, which use the tool's own active cloud$/,
      )
      expect(yield* sourceWith("AzureCliCredential")).toMatch(
        /\(AzureCliCredential\), in the tool's own active cloud \(az cloud set, .*\), not set by the target$/,
      )
      // Without a developer tool, every source is the target's cloud's.
      expect(yield* sourceWith("prod")).toMatch(/\), each source at the target's cloud$/)
    }),
  )
})

describe("authorityHostVariableNote: AZURE_AUTHORITY_HOST beside the target's cloud", () => {
  it("another cloud's authority is named as not used, the target's given", () => {
    expect(
      authorityHostVariableNote("https://login.microsoftonline.com", "https://login.microsoftonline.us/"),
    ).toBe(
      "AZURE_AUTHORITY_HOST (https://login.microsoftonline.us) is not used: kvdeploy gives the credential the target's cloud's authority (https://login.microsoftonline.com)",
    )
  })
  it("nothing when unset, blank, or the same authority (letter case and a trailing slash aside)", () => {
    for (const value of [undefined, "", "  ", "https://LOGIN.microsoftonline.com/"])
      expect(authorityHostVariableNote("https://login.microsoftonline.com", value)).toBeUndefined()
  })
  it("a value that is no URL is not shown", () => {
    const note = authorityHostVariableNote("https://login.microsoftonline.com", "Zx8Q~pasted-secret")
    expect(note).toMatch(/^AZURE_AUTHORITY_HOST \(not a URL: 18 characters, not shown\) is not used/)
    expect(note).not.toContain("pasted")
  })
})
