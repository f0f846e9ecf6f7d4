/**
 * withChainReport listens to the SDK's logger for one request and puts it back
 * as it was; lines the operator's own level asks for still reach the
 * operator's log function. (The source names the real DefaultAzureCredential
 * reports are checked against the emulator in emulator.test.ts.)
 */
import { generateKeyPairSync } from "node:crypto"
import { DefaultAzureCredential } from "@azure/identity"
import { AzureLogger, createClientLogger, getLogLevel, setLogLevel } from "@azure/logger"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { changeProcessEnv } from "@kvdeploy/core/test"
import * as Effect from "effect/Effect"
import {
  type ChainSourceFailure,
  chainFailures,
  defaultChainOrder,
  inChainOrder,
  shownSdkLine,
  withChainReport,
} from "../src/chainReport.js"
import { chainSelection, defaultChainSources } from "../src/defaultChain.js"

// The logger @azure/identity writes to (its namespace), and the line its chain writes on success.
const identity = createClientLogger("identity")
const success = "ChainedTokenCredential => getToken() => Result for ManagedIdentityCredential: SUCCESS."

const originalLog = AzureLogger.log
afterEach(() => {
  AzureLogger.log = originalLog
  setLogLevel(undefined)
})

describe("withChainReport", () => {
  it.effect("hears the source that answered, and restores the logger and its level", () =>
    Effect.gen(function* () {
      const operatorLines: Array<string> = []
      const operatorLog = (...args: Array<unknown>) => operatorLines.push(args.map(String).join(" "))
      AzureLogger.log = operatorLog
      setLogLevel("warning")
      const [value, source] = yield* withChainReport(() =>
        Effect.sync(() => {
          identity.info(success)
          identity.warning("a warning the operator asked for")
          return 42
        }),
      )
      expect(value).toBe(42)
      expect(source).toBe("ManagedIdentityCredential")
      expect(AzureLogger.log).toBe(operatorLog)
      expect(getLogLevel()).toBe("warning")
      // The info line was heard but not forwarded at the operator's "warning"; the warning was.
      expect(operatorLines.some((l) => l.includes("a warning the operator asked for"))).toBe(true)
      expect(operatorLines.some((l) => l.includes("SUCCESS"))).toBe(false)
      // Back at "warning", info lines are off again.
      identity.info(success)
      expect(operatorLines.some((l) => l.includes("SUCCESS"))).toBe(false)
    }),
  )

  it.effect(
    "identity's info lines on already (verbose, or DEBUG): no level is touched, every line goes on",
    () =>
      Effect.gen(function* () {
        const operatorLines: Array<string> = []
        const operatorLog = (...args: Array<unknown>) => operatorLines.push(args.map(String).join(" "))
        AzureLogger.log = operatorLog
        setLogLevel("verbose")
        const [, source] = yield* withChainReport(() =>
          Effect.sync(() => {
            identity.info(success)
            identity.verbose("a verbose line")
          }),
        )
        expect(source).toBe("ManagedIdentityCredential")
        expect(getLogLevel()).toBe("verbose")
        expect(AzureLogger.log).toBe(operatorLog)
        expect(operatorLines.some((l) => l.includes("SUCCESS"))).toBe(true)
        expect(operatorLines.some((l) => l.includes("a verbose line"))).toBe(true)
      }),
  )

  it.effect("answers undefined when no source was named, and restores logging off after a failure", () =>
    Effect.gen(function* () {
      expect(getLogLevel()).toBeUndefined()
      const [, source] = yield* withChainReport(() => Effect.succeed(1))
      expect(source).toBeUndefined()
      const failed = yield* withChainReport(() => Effect.fail("refused")).pipe(Effect.flip)
      expect(failed).toBe("refused")
      expect(getLogLevel()).toBeUndefined()
      expect(AzureLogger.log).toBe(originalLog)
    }),
  )
})

describe("chainFailures", () => {
  it.effect(
    "names each source as the SDK does: by its message's first words, else by its own error line in the request's log, else unnamed",
    () =>
      Effect.gen(function* () {
        const error = (name: string, message: string) => Object.assign(new Error(message), { name })
        const aggregate = Object.assign(new Error("ChainedTokenCredential authentication failed."), {
          name: "AggregateAuthenticationError",
          errors: [
            error(
              "CredentialUnavailableError",
              "EnvironmentCredential is unavailable. No underlying credential.",
            ),
            // A workload identity refused by Entra ID: MSAL's error, which names no credential, and no line.
            error(
              "AuthenticationRequiredError",
              "invalid_client: AADSTS700024: Client assertion is not within its valid time range.",
            ),
            // A managed identity's exchange, refused: the same kind of error, and its own line says whose.
            error(
              "AuthenticationRequiredError",
              "invalid_client: AADSTS700213: No matching federated identity record found.",
            ),
            error("CredentialUnavailableError", "Visual Studio Code Authentication is not available."),
            error(
              "CredentialUnavailableError",
              "Azure CLI could not be found. Please visit https://aka.ms/azure-cli.",
            ),
            error("CredentialUnavailableError", "Unknown error while trying to retrieve the access token"),
            error("CredentialUnavailableError", "WorkloadIdentityCredential: is unavailable. no file"),
          ],
        })
        const line = (source: string, message: string) =>
          identity.info(
            `${source} => getToken() =>`,
            `ERROR. Scopes: https://vault.azure.net/.default. Error message: ${message}.`,
          )
        const [named] = yield* withChainReport((heard) =>
          Effect.sync(() => {
            line(
              "ManagedIdentityCredential",
              "invalid_client: AADSTS700213: No matching federated identity record found.",
            )
            line("AzureCliCredential", "Azure CLI could not be found. Please visit https://aka.ms/azure-cli.")
            line("AzureCliCredential", "Azure CLI could not be found. Please visit https://aka.ms/azure-cli.")
            // The chain's own line is no source's; two sources with the same message name neither.
            line("ChainedTokenCredential", "Visual Studio Code Authentication is not available.")
            line("AzureCliCredential", "Unknown error while trying to retrieve the access token")
            line("AzureDeveloperCliCredential", "Unknown error while trying to retrieve the access token")
            // A line that is no ERROR line names nothing.
            identity.info(
              "AzureCliCredential => getToken() =>",
              "invalid_client: AADSTS700024: Client assertion is not within its valid time range.",
            )
            return chainFailures(aggregate, heard.failures)
          }),
        )
        expect(named.map((s) => s.credential)).toEqual([
          "EnvironmentCredential",
          undefined,
          "ManagedIdentityCredential",
          undefined,
          "AzureCliCredential",
          undefined,
          "WorkloadIdentityCredential",
        ])
        expect(named[1]?.reason).toBe(
          "invalid_client: AADSTS700024: Client assertion is not within its valid time range.",
        )
        // Without the log, only the messages that name themselves.
        expect(chainFailures(aggregate).map((s) => s.credential)).toEqual([
          "EnvironmentCredential",
          undefined,
          undefined,
          undefined,
          undefined,
          undefined,
          "WorkloadIdentityCredential",
        ])
      }),
  )

  it("reads each source's first line from an AggregateAuthenticationError, and nothing from others", () => {
    const aggregate = Object.assign(new Error("ChainedTokenCredential authentication failed."), {
      name: "AggregateAuthenticationError",
      errors: [
        Object.assign(new Error("EnvironmentCredential is unavailable. No underlying credential."), {
          name: "CredentialUnavailableError",
        }),
        new Error(`ManagedIdentityCredential: ${"x".repeat(300)}\nHttp status code: 403`),
      ],
    })
    const reasons = chainFailures(aggregate).map((s) => s.reason)
    expect(reasons[0]).toBe("EnvironmentCredential is unavailable. No underlying credential.")
    expect(reasons[1]).toMatch(/^ManagedIdentityCredential: x+…$/)
    expect(reasons[1]).not.toContain("Http status code")
    expect(chainFailures(new Error("AADSTS7000215: invalid secret"))).toEqual([])
    // An answer that echoes a body (a certificate, a client assertion) is shown without it.
    const der = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ format: "der", type: "pkcs8" })
      .toString("base64")
    const echoed = chainFailures(
      Object.assign(new Error("chain"), {
        name: "AggregateAuthenticationError",
        errors: [new Error(`ClientCertificateCredential: could not use ${der}`)],
      }),
    )
    expect(echoed).toEqual([
      {
        credential: "ClientCertificateCredential",
        reason: `ClientCertificateCredential: could not use [base64 text of ${der.length} characters, not shown]`,
      },
    ])
    expect(shownSdkLine(`AADSTS50000: ${der}\nmore`, 300)).toBe(
      `AADSTS50000: [base64 text of ${der.length} characters, not shown]`,
    )
  })
})

describe("inChainOrder", () => {
  const source = (credential: string | undefined): ChainSourceFailure => ({
    credential,
    reason: `${credential ?? "unnamed"} said no`,
  })
  const shown = (lines: ReturnType<typeof inChainOrder>) =>
    lines.map(({ source, tried }) => `${tried ? "failed" : "skipped"} ${source.credential ?? "unnamed"}`)

  it("puts the sources the SDK could not build in their place in the chain, among those that failed", () => {
    expect(
      shown(
        inChainOrder(
          [
            source("EnvironmentCredential"),
            source("ManagedIdentityCredential"),
            source("AzureCliCredential"),
          ],
          [source("AzureDeveloperCliCredential"), source("WorkloadIdentityCredential")],
        ),
      ),
    ).toEqual([
      "failed EnvironmentCredential",
      "skipped WorkloadIdentityCredential",
      "failed ManagedIdentityCredential",
      "failed AzureCliCredential",
      "skipped AzureDeveloperCliCredential",
    ])
  })

  it("keeps a source without a known name after the source before it in its own list", () => {
    // An unnamed failure after the environment's (a workload identity's refusal by Entra ID is
    // named by neither the SDK's error nor its log) stays after it; an unknown name first stays first.
    expect(
      shown(
        inChainOrder(
          [source("SomeFutureCredential"), source("EnvironmentCredential"), source(undefined)],
          [source("AzureCliCredential")],
        ),
      ),
    ).toEqual([
      "failed SomeFutureCredential",
      "failed EnvironmentCredential",
      "failed unnamed",
      "skipped AzureCliCredential",
    ])
    expect(
      shown(inChainOrder([source("AzureCliCredential")], [source("AzurePowershellCredential")])),
    ).toEqual(["failed AzureCliCredential", "skipped AzurePowershellCredential"])
    expect(inChainOrder([], [])).toEqual([])
  })

  it("knows the installed SDK's chain: DefaultAzureCredential's sources in its own order", () => {
    // When the SDK changes its chain, this fails: update defaultChainSources (defaultChain.ts).
    expect(sdkChainNames(undefined)).toEqual(defaultChainOrder.map((n) => n.toLowerCase()))
  })

  it("the chain credential_mode default builds keeps what the SDK's keeps, for every value of AZURE_TOKEN_CREDENTIALS", () => {
    // defaultChain.ts copies the SDK's selection to give every source the target's cloud: an SDK
    // whose selection changes fails this (the sign-in broker apart: kvdeploy ships no plugin for it).
    for (const selection of [undefined, "prod", "dev", " Dev ", ...defaultChainSources])
      expect(
        (chainSelection(selection) ?? []).map((n) => n.toLowerCase()),
        String(selection),
      ).toEqual(sdkChainNames(selection).filter((n) => n !== "brokercredential"))
  })
})

/**
 * The sources the installed SDK's DefaultAzureCredential holds, built with AZURE_TOKEN_CREDENTIALS
 * set to `selection` (unset for undefined), in lower case as inChainOrder compares them (a stand-in's
 * factory spells AzurePowershell). The SDK keeps its sources in a private field; each is the
 * credential it built, or a stand-in naming the factory that could not build it
 * (createDefaultWorkloadIdentityCredential).
 */
const sdkChainNames = (selection: string | undefined): ReadonlyArray<string> => {
  const restore = changeProcessEnv({ AZURE_TOKEN_CREDENTIALS: selection })
  try {
    const chain = new DefaultAzureCredential() as unknown as {
      readonly _sources?: ReadonlyArray<{ readonly credentialName?: string }>
    }
    expect(Array.isArray(chain._sources), "DefaultAzureCredential keeps its sources in _sources").toBe(true)
    return (chain._sources ?? []).map((s) =>
      (typeof s.credentialName === "string"
        ? s.credentialName.replace(/^createDefault/, "")
        : (s as object).constructor.name
      ).toLowerCase(),
    )
  } finally {
    restore()
  }
}
