/**
 * withChainReport listens to the SDK's logger for one request and puts it back
 * as it was; lines the operator's own level asks for still reach the
 * operator's log function. (The source names the real DefaultAzureCredential
 * reports are checked against the emulator in emulator.test.ts.)
 */
import { generateKeyPairSync } from "node:crypto"
import { AzureLogger, createClientLogger, getLogLevel, setLogLevel } from "@azure/logger"
import { afterEach, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { chainFailures, shownSdkLine, withChainReport } from "../src/chainReport.js"

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
      const [value, source] = yield* withChainReport(
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
        const [, source] = yield* withChainReport(
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
      const [, source] = yield* withChainReport(Effect.succeed(1))
      expect(source).toBeUndefined()
      const failed = yield* withChainReport(Effect.fail("refused")).pipe(Effect.flip)
      expect(failed).toBe("refused")
      expect(getLogLevel()).toBeUndefined()
      expect(AzureLogger.log).toBe(originalLog)
    }),
  )
})

describe("chainFailures", () => {
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
    const reasons = chainFailures(aggregate)
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
      `ClientCertificateCredential: could not use [base64 text of ${der.length} characters, not shown]`,
    ])
    expect(shownSdkLine(`AADSTS50000: ${der}\nmore`, 300)).toBe(
      `AADSTS50000: [base64 text of ${der.length} characters, not shown]`,
    )
  })
})
