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
 * no way to read and restore them.) When the chain fails, every source's reason is in the SDK's
 * AggregateAuthenticationError (`errors`, one per source), read by
 * `chainFailures`.
 */
import { AzureLogger, type AzureLogLevel, createClientLogger, getLogLevel, setLogLevel } from "@azure/logger"
import { withoutKeyText } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import * as Semaphore from "effect/Semaphore"

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

/** A logger of @azure/identity's namespace: whether its info lines are on already (AZURE_LOG_LEVEL, DEBUG). */
const identityInfo = createClientLogger("identity").info

/** One listener at a time: the logger is one per process, and each report must be its own request's. */
const oneAtATime = Semaphore.makeUnsafe(1)

/**
 * Run `request` (one token request of a DefaultAzureCredential) and answer its
 * result with the name of the chain's source that answered it (`undefined`
 * when the SDK did not say: a credential that is no chain, or a log line it
 * no longer writes).
 */
export const withChainReport = <A, E, R>(
  request: Effect.Effect<A, E, R>,
): Effect.Effect<readonly [A, string | undefined], E, R> =>
  oneAtATime.withPermits(1)(
    Effect.acquireUseRelease(
      Effect.sync(() => {
        const saved = { log: AzureLogger.log, level: getLogLevel() }
        // Identity's info lines already on (the operator's AZURE_LOG_LEVEL or DEBUG): the levels are
        // left alone and every line goes on to the operator's log. Otherwise info is turned on for
        // this request, and only the lines the operator's level asks for go on.
        const onAlready = identityInfo.enabled
        const heard: { source: string | undefined } = { source: undefined }
        AzureLogger.log = (...args: Array<unknown>) => {
          const line = args.map(String).join(" ")
          const match = answered.exec(line)
          if (match?.[1] !== undefined) heard.source = match[1]
          if (onAlready || enabledAt(saved.level, args)) saved.log(...args)
        }
        if (!onAlready) setLogLevel("info")
        return { saved, heard, onAlready }
      }),
      ({ heard }) => Effect.map(request, (a) => [a, heard.source] as const),
      ({ saved, onAlready }) =>
        Effect.sync(() => {
          if (!onAlready) setLogLevel(saved.level)
          AzureLogger.log = saved.log
        }),
    ),
  )

/**
 * Each source's reason from a chain's AggregateAuthenticationError: the first
 * line of each, without the error class (`EnvironmentCredential is
 * unavailable. ...`), cut at 240 characters. Empty for any other error. The
 * SDK's messages name variables, endpoints and tools, never a secret's value.
 */
export const chainFailures = (error: unknown): ReadonlyArray<string> => {
  if (!(error instanceof Error) || error.name !== "AggregateAuthenticationError") return []
  const errors: unknown = (error as { errors?: unknown }).errors
  if (!Array.isArray(errors)) return []
  return errors.map((e) =>
    shownSdkLine(e instanceof Error ? e.message : String(e), 240).replace(
      /^(CredentialUnavailableError|AuthenticationRequiredError|Error): /,
      "",
    ),
  )
}

/**
 * The first line of an identity library's message as kvdeploy shows it: without key text (an
 * answer may echo a request's body: a certificate, a client assertion), cut at `max` characters.
 */
export const shownSdkLine = (text: string, max: number): string => {
  const line = withoutKeyText((text.split("\n").find((l) => l.trim() !== "") ?? "").trim())
  return line.length > max ? `${line.slice(0, max)}…` : line
}
