/**
 * credential_mode `default` builds DefaultAzureCredential's chain itself (src/defaultChain.ts) so
 * that every source asks the target's cloud. This is the tripwire for an @azure/identity upgrade
 * that changes the chain: the SDK's own DefaultAzureCredential, built for each value of
 * AZURE_TOKEN_CREDENTIALS, must hold the sources `chainSelection` keeps, in the same order (the
 * sign-in broker apart, which needs a plugin kvdeploy does not ship). When this fails, follow the
 * SDK's chain in defaultChain.ts before upgrading.
 */
import { DefaultAzureCredential } from "@azure/identity"
import { describe, expect, it } from "vitest"
import { chainSelection, defaultChainSources } from "../src/defaultChain.js"

/**
 * The sources the SDK's DefaultAzureCredential holds, built with `selection` set, by class name; a
 * source whose factory could not build it here (workload identity without its variables) is the
 * SDK's stand-in, named by its factory (`createDefaultWorkloadIdentityCredential`). Lower case: the
 * SDK spells a factory `createDefaultAzurePowershellCredential`.
 */
const sdkChain = (selection: string | undefined): ReadonlyArray<string> => {
  const saved = process.env.AZURE_TOKEN_CREDENTIALS
  if (selection === undefined) delete process.env.AZURE_TOKEN_CREDENTIALS
  else process.env.AZURE_TOKEN_CREDENTIALS = selection
  try {
    const chain = new DefaultAzureCredential() as unknown as {
      readonly _sources?: ReadonlyArray<{ readonly credentialName?: unknown }>
    }
    expect(Array.isArray(chain._sources), "DefaultAzureCredential keeps its sources in _sources").toBe(true)
    return (chain._sources ?? [])
      .map((source) =>
        source.constructor.name === "UnavailableDefaultCredential"
          ? String(source.credentialName).replace(/^createDefault/, "")
          : source.constructor.name,
      )
      .map((name) => name.toLowerCase())
      .filter((name) => name !== "brokercredential")
  } finally {
    if (saved === undefined) delete process.env.AZURE_TOKEN_CREDENTIALS
    else process.env.AZURE_TOKEN_CREDENTIALS = saved
  }
}

describe("the default chain follows @azure/identity's DefaultAzureCredential", () => {
  it("for every value of AZURE_TOKEN_CREDENTIALS: the same sources, in the same order", () => {
    for (const selection of [undefined, "prod", "dev", " Dev ", ...defaultChainSources]) {
      expect(
        (chainSelection(selection) ?? []).map((name) => name.toLowerCase()),
        String(selection),
      ).toEqual(sdkChain(selection))
    }
  })
})
