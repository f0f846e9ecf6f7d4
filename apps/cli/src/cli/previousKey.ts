/**
 * `deploy --previous-key FILE`: the private key of the version the vault serves now, kept by the
 * operator (key history). A rollback tries it first (core's order: the caller's key, then the
 * vault's backing secret, then a reused key); it restores that certificate with the chain that
 * issues it, from the certificates in the same file, or without any there, from the new material's
 * chain (a renewal by the same CA). Before it writes, a deploy judges the key as its rollback would
 * and refuses one that does not match the served certificate (one whose chain cannot be restored
 * only makes the rollback read the backing secret, as without a key).
 * An encrypted file's passphrase comes from `--previous-key-passphrase-env`, else
 * `--key-passphrase-env`'s variable, else a prompt on a terminal.
 */
import * as Flag from "effect/cli/Flag"
import type * as Prompt from "effect/cli/Prompt"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import {
  askSecret,
  envVariableProblem,
  interactive,
  passphraseFrom,
  secretFromEnv,
  secretNotAsked,
  withSource,
} from "./material.js"
import { type CliProblem, type Problem, usage, usageOne } from "./problems.js"
import { readSource, sourceFileProblems, sourceName } from "./sources.js"

const FLAG = "--previous-key"

export const previousKeyFlag = Flag.String("previous-key").pipe(
  Flag.withMetavar("FILE"),
  Flag.withDescription(
    "The private key (PEM) of the version the vault serves now, with its chain if the file holds it: lets a rollback restore that version without secrets/get. A rollback tries it first; a deploy refuses, before it writes, a key that does not match the served certificate. Keep the served certificate's chain in the file: without a chain that issues it, a rollback reads the backing secret instead. An encrypted key's passphrase: --previous-key-passphrase-env.",
  ),
  Flag.optional,
)

const PASSPHRASE_FLAG = "--previous-key-passphrase-env"

export const previousKeyPassphraseEnvFlag = Flag.String("previous-key-passphrase-env").pipe(
  Flag.withMetavar("VAR"),
  Flag.withDescription(
    "Name of the environment variable holding the passphrase of an encrypted --previous-key (never the passphrase itself); without it, --key-passphrase-env's variable is used, or a terminal asks.",
  ),
  Flag.optional,
)

/**
 * The problems found without reading the file (missing, a directory, too large) or the passphrase
 * (a malformed variable name; a passphrase flag without the key), listed with the other flags'.
 */
export const previousKeyProblems = (
  source: Option.Option<string>,
  passphraseEnv: Option.Option<string>,
): Effect.Effect<ReadonlyArray<Problem>> =>
  Effect.gen(function* () {
    const problems: Array<Problem> = []
    if (Option.isSome(passphraseEnv)) {
      if (Option.isNone(source))
        problems.push({
          field: PASSPHRASE_FLAG,
          message: "applies only to --previous-key",
          fix: "drop it, or give --previous-key FILE (the encrypted key of the version the vault serves now)",
        })
      const named = envVariableProblem(PASSPHRASE_FLAG, passphraseEnv.value)
      if (named !== undefined) problems.push(named)
    }
    if (Option.isSome(source)) problems.push(...(yield* sourceFileProblems(FLAG, source.value)))
    return problems
  })

export interface PreviousKey {
  readonly previousKey: Redacted.Redacted<Uint8Array>
  /** The certificates the file holds besides the key; empty when it holds none. */
  readonly certificates: ReadonlyArray<Uint8Array>
}

/**
 * Read and parse the previous key. An encrypted one is decrypted with the passphrase in
 * `--previous-key-passphrase-env`'s variable, else in `--key-passphrase-env`'s (one passphrase for
 * both keys), else one asked for on a terminal. With `ask` false (a run that fails anyway) nothing
 * is asked: an encrypted key whose passphrase a terminal would be asked for fails with
 * `secretNotAsked`, no problem of it known.
 */
export const readPreviousKey = (
  source: string,
  passphrases: { readonly own: Option.Option<string>; readonly key: Option.Option<string> },
  options: { readonly ask: boolean } = { ask: true },
): Effect.Effect<PreviousKey, CliProblem, Prompt.Environment> =>
  Effect.gen(function* () {
    const field = `${FLAG} ${sourceName(source)}`
    const { parsePem, materialText } = yield* Effect.promise(() => import("@kvdeploy/pkcs12"))
    const bytes = yield* readSource(FLAG, source)
    const encrypted = materialText(bytes).includes("ENCRYPTED")
    const named = Option.isSome(passphrases.own)
      ? ([PASSPHRASE_FLAG, passphrases.own.value] as const)
      : Option.isSome(passphrases.key)
        ? (["--key-passphrase-env", passphrases.key.value] as const)
        : undefined
    if (encrypted && named === undefined && !(interactive() && source !== "-"))
      return yield* usageOne(
        field,
        "is encrypted and no passphrase was given",
        source === "-"
          ? "name the variable that holds its passphrase with --previous-key-passphrase-env VAR, or decrypt it with `openssl pkey`"
          : "name the variable that holds its passphrase with --previous-key-passphrase-env VAR (or run on a terminal to be asked), or decrypt it with `openssl pkey`",
      )
    if (encrypted && named === undefined && !options.ask) return yield* secretNotAsked
    const passphrase = !encrypted
      ? undefined
      : named !== undefined
        ? yield* secretFromEnv(named[0], named[1])
        : yield* askSecret(`Passphrase for ${source} (the previous key)`)
    const parsed = yield* parsePem(bytes, passphrase === undefined ? {} : { passphrase }).pipe(
      Effect.mapError((e) =>
        usage(
          `${field} cannot be read`,
          passphraseFrom(
            withSource(FLAG, source, e.problems),
            named === undefined ? "typed at the prompt" : `in the variable ${named[0]} names`,
          ),
        ),
      ),
    )
    if (parsed.key === undefined)
      return yield* usageOne(
        field,
        "holds no private key",
        "give the private key of the version the vault serves now (PEM)",
      )
    return { previousKey: parsed.key, certificates: parsed.certificates } satisfies PreviousKey
  })

/**
 * The deploy options a previous key gives: the key, and the chain to restore the previous
 * certificate with, the file's certificates or else the new material's chain (a renewal by the
 * same CA): core keeps those that issue the previous certificate. Plan and deploy judge the same.
 */
export const previousKeyOptions = (
  previous: PreviousKey,
  newChain: ReadonlyArray<Uint8Array>,
): {
  readonly previousKey: Redacted.Redacted<Uint8Array>
  readonly previousChain: ReadonlyArray<Uint8Array>
} => ({
  previousKey: previous.previousKey,
  previousChain: previous.certificates.length > 0 ? previous.certificates : newChain,
})
