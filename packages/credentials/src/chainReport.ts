/**
 * Which source of DefaultAzureCredential's chain answered a token request, and
 * why each one did not, for `doctor` in `credential_mode: default`.
 *
 * @azure/identity keeps the source that answered to itself; it says which in
 * one info line of its own log ("ChainedTokenCredential => getToken() =>
 * Result for ManagedIdentityCredential: SUCCESS ..."). `withChainReport`
 * listens to the SDK's logger (`AzureLogger.log`, the SDK's documented place
 * to redirect its logs) at info level for the length of one token request,
 * keeps that source's name and nothing else, and puts the logger back as it
 * was. Lines the operator's own `AZURE_LOG_LEVEL` asks for still go where they
 * went. When identity's info lines are on already (also through `DEBUG`),
 * no level is touched. (When they are not, and `DEBUG` turned on other Azure
 * namespaces, turning info on and back off ends those: @azure/logger offers
 * no way to read and restore them.) When the chain fails, the SDK's
 * AggregateAuthenticationError holds one error per source that said it could not give a token
 * (`errors`), read by `chainFailures`. It is no list of the chain's positions: a source the SDK
 * could not build (a workload identity without its variables) is skipped without an error, and
 * none of the errors says which source threw it. The name is taken where the SDK gives it: the
 * error's own first words (`EnvironmentCredential is unavailable`, `ManagedIdentityCredential: …`),
 * else the source's own log line for that error, heard in the same request (`AzureCliCredential
 * => getToken() => ERROR. … Error message: <the error's message>.`); otherwise the source is
 * unnamed (a workload identity's refusal by Entra ID is MSAL's error, named by neither).
 *
 * A source the SDK could not build (a workload identity without its variables) throws nothing: the
 * SDK puts a stand-in in its place that logs one info line in the request ("DefaultAzureCredential
 * => getToken() => Skipping createDefaultWorkloadIdentityCredential, reason: <the constructor's
 * error>") and gives no token. `chainNotBuilt` names those from that line.
 */

import { AzureLogger, type AzureLogLevel, createClientLogger, getLogLevel, setLogLevel } from "@azure/logger"
import * as Effect from "effect/Effect"
import * as Semaphore from "effect/Semaphore"
import { defaultChainSources } from "./defaultChain.js"
import { shownIdentityText } from "./tokenErrors.js"

const levels: ReadonlyArray<AzureLogLevel> = ["error", "warning", "info", "verbose"]

/** Whether a log line (its first argument starts with the namespace, `azure:<package>:<level>`) is one `level` enables. */
const enabledAt = (level: AzureLogLevel | undefined, args: ReadonlyArray<unknown>): boolean => {
  if (level === undefined) return false
  const namespace = String(args[0] ?? "").split(" ", 1)[0] ?? ""
  const lineLevel = namespace.slice(namespace.lastIndexOf(":") + 1) as AzureLogLevel
  const at = levels.indexOf(lineLevel)
  return at !== -1 && at <= levels.indexOf(level)
}

const answered = /ChainedTokenCredential => getToken\(\) => Result for (\w+): SUCCESS/

/**
 * The first argument of a credential's own getToken log line (credentialLogger's `<title> =>
 * getToken() =>`, after the namespace the logger puts first); the chain's own lines are not a source's.
 */
const sourceLine = /^azure:identity:\w+ (\w+Credential) => getToken\(\) =>$/
const notASource = new Set(["ChainedTokenCredential", "DefaultAzureCredential"])

/** At most this many source failures are kept from one request's log (a chain has eight sources). */
const maxHeardFailures = 64

/** A chain source's failure as the SDK logged it: the credential's name and the line's text after it. */
export interface HeardFailure {
  readonly credential: string
  readonly line: string
}

/**
 * The stand-in's line for a source the SDK could not build (UnavailableDefaultCredential):
 * `Skipping <its factory>, reason: <the error its constructor threw>`.
 */
const skippingLine = /^Skipping (\w*), reason: (.*)$/s
const chainLine = /^azure:identity:\w+ DefaultAzureCredential => getToken\(\) =>$/

/** A chain source the SDK could not build, as its stand-in logged it: its factory's name and the reason. */
export interface HeardSkip {
  /** The SDK's factory of the source (createDefaultWorkloadIdentityCredential, …); empty for an unnamed one. */
  readonly factory: string
  readonly reason: string
}

/** What the SDK's log said during one token request of a chain. */
export interface ChainHeard {
  /** The source that answered, when the SDK said. */
  readonly source: string | undefined
  /** Each source's own `ERROR.` line, in the order logged (at most maxHeardFailures). */
  readonly failures: ReadonlyArray<HeardFailure>
  /** Each source the SDK could not build, in the order logged (at most maxHeardFailures). */
  readonly skipped: ReadonlyArray<HeardSkip>
}

/** A logger of @azure/identity's namespace: whether its info lines are on already (AZURE_LOG_LEVEL, DEBUG). */
const identityInfo = createClientLogger("identity").info

/** One listener at a time: the logger is one per process, and each report must be its own request's. */
const oneAtATime = Semaphore.makeUnsafe(1)

/**
 * Run `request` (one token request of a DefaultAzureCredential) and answer its
 * result with the name of the chain's source that answered it (`undefined`
 * when the SDK did not say: a credential that is no chain, or a log line it
 * no longer writes). `request` is given what is heard while it runs, so that its
 * failure can name each source (chainFailures).
 */
export const withChainReport = <A, E, R>(
  request: (heard: ChainHeard) => Effect.Effect<A, E, R>,
): Effect.Effect<readonly [A, string | undefined], E, R> =>
  oneAtATime.withPermits(1)(
    Effect.acquireUseRelease(
      Effect.sync(() => {
        const saved = { log: AzureLogger.log, level: getLogLevel() }
        // Identity's info lines already on (the operator's AZURE_LOG_LEVEL or DEBUG): the levels are
        // left alone and every line goes on to the operator's log. Otherwise info is turned on for
        // this request, and only the lines the operator's level asks for go on.
        const onAlready = identityInfo.enabled
        const heard: {
          source: string | undefined
          failures: Array<HeardFailure>
          skipped: Array<HeardSkip>
        } = {
          source: undefined,
          failures: [],
          skipped: [],
        }
        AzureLogger.log = (...args: Array<unknown>) => {
          const line = args.map(String).join(" ")
          const match = answered.exec(line)
          if (match?.[1] !== undefined) heard.source = match[1]
          const source = sourceLine.exec(String(args[0] ?? ""))?.[1]
          const text = args[1]
          if (
            source !== undefined &&
            !notASource.has(source) &&
            typeof text === "string" &&
            text.startsWith("ERROR.") &&
            heard.failures.length < maxHeardFailures
          )
            heard.failures.push({ credential: source, line: text })
          const skip = typeof text === "string" ? skippingLine.exec(text) : null
          if (
            skip?.[1] !== undefined &&
            skip[2] !== undefined &&
            chainLine.test(String(args[0] ?? "")) &&
            heard.skipped.length < maxHeardFailures
          )
            heard.skipped.push({ factory: skip[1], reason: skip[2] })
          if (onAlready || enabledAt(saved.level, args)) saved.log(...args)
        }
        if (!onAlready) setLogLevel("info")
        return { saved, heard, onAlready }
      }),
      ({ heard }) => Effect.map(request(heard), (a) => [a, heard.source] as const),
      ({ saved, onAlready }) =>
        Effect.sync(() => {
          if (!onAlready) setLogLevel(saved.level)
          AzureLogger.log = saved.log
        }),
    ),
  )

/** One source of a chain that gave no token: its credential's name when the SDK gave one, and its reason. */
export interface ChainSourceFailure {
  /** EnvironmentCredential, WorkloadIdentityCredential, ManagedIdentityCredential, AzureCliCredential, …; undefined when the SDK named none. */
  readonly credential: string | undefined
  readonly reason: string
}

/**
 * DefaultAzureCredential's sources in the order its chain tries them (@azure/identity 4: the
 * production sources, then the developer tools, then the sign-in broker): the chain kvdeploy builds
 * (defaultChainSources), and the broker the SDK's own chain ends with. A test reads the installed
 * SDK's chain and fails when this no longer matches it.
 */
export const defaultChainOrder: ReadonlyArray<string> = [...defaultChainSources, "BrokerCredential"]

/** A default chain's source that gave no token, and whether the SDK built (and so tried) it. */
export interface ChainSourceLine {
  readonly source: ChainSourceFailure
  readonly tried: boolean
}

/**
 * The sources that failed (chainFailures, in the order the SDK met them) and those it could not
 * build (chainNotBuilt) as one list in the chain's order (defaultChainOrder), so that a missing
 * variable shows where the source stands. A source without a name, or with one the table does not
 * know, keeps its place after the source before it in its own list (first, when none is before it).
 */
export const inChainOrder = (
  failed: ReadonlyArray<ChainSourceFailure>,
  notBuilt: ReadonlyArray<ChainSourceFailure>,
): ReadonlyArray<ChainSourceLine> => {
  const ranked = (sources: ReadonlyArray<ChainSourceFailure>, tried: boolean, list: number) => {
    let rank = -1
    return sources.map((source, at) => {
      // By name in any case: the SDK's factory for PowerShell spells it AzurePowershell.
      const name = source.credential?.toLowerCase()
      const own = defaultChainOrder.findIndex((n) => n.toLowerCase() === name)
      if (own !== -1) rank = own
      return { line: { source, tried }, rank, list, at }
    })
  }
  return [...ranked(failed, true, 0), ...ranked(notBuilt, false, 1)]
    .sort((a, b) => a.rank - b.rank || a.list - b.list || a.at - b.at)
    .map(({ line }) => line)
}

/** The credential class a message of the SDK opens with (`EnvironmentCredential is unavailable`, `WorkloadIdentityCredential: is unavailable`). */
const openingName = /^(\w+Credential)\b/

/**
 * The credential an error of a chain's source belongs to, as the SDK names it: by the error's
 * own first words, else by the one source whose log line (heard during the request) gave this
 * error's message (formatError: `ERROR. Scopes: …. Error message: <message>.`). Undefined when
 * neither names it, or two sources logged the same message.
 */
const credentialOf = (error: unknown, heard: ReadonlyArray<HeardFailure>): string | undefined => {
  const message = error instanceof Error ? error.message : String(error)
  const opening = openingName.exec(message.trimStart())?.[1]
  if (opening !== undefined) return opening
  if (message.trim() === "") return undefined
  const named = new Set(
    heard.filter((h) => h.line.endsWith(`Error message: ${message}.`)).map((h) => h.credential),
  )
  return named.size === 1 ? [...named][0] : undefined
}

/**
 * Each source's failure from a chain's AggregateAuthenticationError, in the order the SDK met them:
 * the credential it belongs to when the SDK named it (credentialOf, with `heard`: the request's
 * log, withChainReport), and its reason: the first line of its message, without the error class
 * (`EnvironmentCredential is unavailable. ...`), cut at 240 characters. Empty for any other error.
 * The SDK's messages name variables, endpoints and tools, never a secret's value.
 */
export const chainFailures = (
  error: unknown,
  heard: ReadonlyArray<HeardFailure> = [],
): ReadonlyArray<ChainSourceFailure> => {
  if (!(error instanceof Error) || error.name !== "AggregateAuthenticationError") return []
  const errors: unknown = (error as { errors?: unknown }).errors
  if (!Array.isArray(errors)) return []
  return errors.map((e) => ({
    credential: credentialOf(e, heard),
    reason: shownSdkLine(e instanceof Error ? e.message : String(e), 240).replace(
      /^(CredentialUnavailableError|AuthenticationRequiredError|Error): /,
      "",
    ),
  }))
}

/** The credential a factory of the SDK's chain builds: createDefaultWorkloadIdentityCredential → WorkloadIdentityCredential. */
const factoryOf = /^createDefault(\w+Credential)$/

/**
 * A source kvdeploy never builds: the Windows sign-in broker (WAM) needs the @azure/identity-broker
 * plugin, which kvdeploy does not ship, so its line would only ask to install it.
 */
const neverBuilt = new Set(["BrokerCredential"])

/**
 * The chain's sources the SDK could not build, heard in one request (withChainReport): each named
 * by the reason's own first words (`WorkloadIdentityCredential: is unavailable. …`), else by its
 * factory's name, else unnamed; the reason as chainFailures shows one. The SDK's error list holds
 * only the sources that threw, so inChainOrder puts the two in the chain's order. The broker is
 * left out (neverBuilt).
 */
export const chainNotBuilt = (heard: ReadonlyArray<HeardSkip>): ReadonlyArray<ChainSourceFailure> =>
  heard
    .map(({ factory, reason }) => ({
      credential: openingName.exec(reason.trimStart())?.[1] ?? factoryOf.exec(factory)?.[1],
      reason: shownSdkLine(reason, 240).replace(/^(CredentialUnavailableError|Error): /, ""),
    }))
    .filter((s) => s.credential === undefined || !neverBuilt.has(s.credential))

/**
 * The first line of an identity library's message as kvdeploy shows it: without secrets or key
 * text (an answer may echo a request's body: a client secret, a certificate, a client assertion;
 * see shownIdentityText), cut at `max` characters.
 */
export const shownSdkLine = (text: string, max: number): string => {
  const line = shownIdentityText((text.split("\n").find((l) => l.trim() !== "") ?? "").trim())
  return line.length > max ? `${line.slice(0, max)}…` : line
}
