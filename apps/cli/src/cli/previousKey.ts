/**
 * `deploy --previous-key FILE`: the private key of the version the vault serves now, kept by the
 * operator (key history). A rollback tries it first (core's order: the caller's key, then the
 * vault's backing secret, then a reused key), and uses it only when it provably matches the
 * previous certificate; it restores that certificate with the chain that issues it, from the
 * certificates in the same file, or without any there, from the new material's chain (a renewal by
 * the same CA). When it does not match, or no chain issues the certificate, the rollback goes on
 * to the backing secret, which needs `secrets/get`.
 */
import * as Flag from "effect/cli/Flag"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import { secretFromEnv, withSource } from "./material.js"
import { type Problem, usage, usageOne } from "./problems.js"
import { readSource, sourceFileProblems, sourceName } from "./sources.js"

const FLAG = "--previous-key"

export const previousKeyFlag = Flag.String("previous-key").pipe(
  Flag.withMetavar("FILE"),
  Flag.withDescription(
    "The private key (PEM) of the version the vault serves now, with its chain if the file holds it: lets a rollback restore that version without secrets/get. A rollback tries it first and uses it only when it matches the previous certificate; otherwise it reads the vault's backing secret.",
  ),
  Flag.optional,
)

/** The file's problems found without reading it (missing, a directory, too large), listed with the other flags'. */
export const previousKeyProblems = (source: Option.Option<string>): Effect.Effect<ReadonlyArray<Problem>> =>
  Option.isNone(source) ? Effect.succeed([]) : sourceFileProblems(FLAG, source.value)

export interface PreviousKey {
  readonly previousKey: Redacted.Redacted<Uint8Array>
  /** The certificates the file holds besides the key; empty when it holds none. */
  readonly certificates: ReadonlyArray<Uint8Array>
}

/** Read and parse the previous key (an encrypted one with `--key-passphrase-env`'s passphrase). */
export const readPreviousKey = (source: string, passphraseEnv: Option.Option<string>) =>
  Effect.gen(function* () {
    const field = `${FLAG} ${sourceName(source)}`
    const { parsePem } = yield* Effect.promise(() => import("@kvdeploy/pkcs12"))
    const bytes = yield* readSource(FLAG, source)
    const encrypted = Buffer.from(bytes).toString("latin1").includes("ENCRYPTED")
    if (encrypted && Option.isNone(passphraseEnv))
      return yield* usageOne(
        field,
        "is encrypted and no passphrase was given",
        "name the variable that holds its passphrase with --key-passphrase-env (the same as --key's), or decrypt it with `openssl pkey`",
      )
    const passphrase =
      encrypted && Option.isSome(passphraseEnv)
        ? yield* secretFromEnv("--key-passphrase-env", passphraseEnv.value)
        : undefined
    const parsed = yield* parsePem(bytes, passphrase === undefined ? {} : { passphrase }).pipe(
      Effect.mapError((e) => usage(`${field} cannot be read`, withSource(FLAG, source, e.problems))),
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
