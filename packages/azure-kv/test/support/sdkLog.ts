/**
 * The Azure SDKs' own log (what `AZURE_LOG_LEVEL=info` turns on), captured for the length of an
 * effect, which sees the lines as they come: they are answered with its result, and the logger and
 * level are put back.
 */
import { AzureLogger, getLogLevel, setLogLevel } from "@azure/logger"
import * as Effect from "effect/Effect"

export const withSdkLog = <A, E, R>(
  effect: (lines: ReadonlyArray<string>) => Effect.Effect<A, E, R>,
): Effect.Effect<readonly [A, ReadonlyArray<string>], E, R> =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const saved = { log: AzureLogger.log, level: getLogLevel() }
      const lines: Array<string> = []
      AzureLogger.log = (...args: Array<unknown>) => {
        lines.push(args.map(String).join(" "))
      }
      setLogLevel("info")
      return { saved, lines }
    }),
    ({ lines }) => Effect.map(effect(lines), (a) => [a, lines] as const),
    ({ saved }) =>
      Effect.sync(() => {
        setLogLevel(saved.level)
        AzureLogger.log = saved.log
      }),
  )
