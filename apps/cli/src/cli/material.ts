/**
 * Certificate material from operator input: PEM files (`--cert`, `--chain`,
 * `--key`) or a PKCS#12 file (`--pfx`). Passwords and passphrases come from an
 * environment variable named by a flag, or an interactive prompt on a
 * terminal; never from a flag value. Key bytes stay `Redacted` and in memory.
 */
import { createPrivateKey, createPublicKey } from "node:crypto"
import {
  type CertificateMaterial,
  type DeployProblem,
  environmentVariable,
  materialProblems,
  type PfxDecodeError,
  shownSecretVariable,
} from "@kvdeploy/core"
import * as Prompt from "effect/cli/Prompt"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { badArgument, type PlatformError } from "effect/PlatformError"
import * as Redacted from "effect/Redacted"
import * as Terminal from "effect/Terminal"
import { leafSummary } from "./outcome.js"
import { type CliProblem, type Problem, usage, usageOne } from "./problems.js"
import { readSource, sourceFileProblems, sourceName } from "./sources.js"
import { clearProgress } from "./terminal.js"

export interface MaterialFlags {
  readonly cert: Option.Option<string>
  readonly chain: Option.Option<string>
  readonly key: Option.Option<string>
  readonly keyPassphraseEnv: Option.Option<string>
  readonly pfx: Option.Option<string>
  readonly pfxPasswordEnv: Option.Option<string>
}

const loadPkcs12 = () => import("@kvdeploy/pkcs12")

/** A certificate's subject as a message names it (a certificate is no secret). */
const subjectOf = (der: Uint8Array): string => JSON.stringify(leafSummary(der)?.subject ?? "(unreadable)")

/** Whether two PKCS#8 keys are one key (their public halves equal; either unreadable: not the same). */
const sameKey = (a: Redacted.Redacted<Uint8Array>, b: Redacted.Redacted<Uint8Array>): boolean => {
  try {
    const load = (k: Redacted.Redacted<Uint8Array>) =>
      createPublicKey(createPrivateKey({ key: Buffer.from(Redacted.value(k)), format: "der", type: "pkcs8" }))
    return load(a).equals(load(b))
  } catch {
    return false
  }
}

/** A secret-holding variable's name that is not a name, or a variable that is not set; never reads the value out. */
export const envVariableProblem = (flag: string, name: string): Problem | undefined => {
  // An example name that says what the variable holds.
  const example = flag.includes("previous-key")
    ? "PREVIOUS_KEY_PASSPHRASE"
    : flag.includes("key")
      ? "KEY_PASSPHRASE"
      : "PFX_PASSWORD"
  const valid = /^[A-Za-z_][A-Za-z0-9_]*$/.test(name)
  if (valid && environmentVariable(name) !== undefined) return undefined
  const shown = shownSecretVariable(name)
  // What was typed is not shown unless it reads as a variable's name: it may be the secret itself.
  const notShown = `(${name.length} characters, not shown: a variable's name is written in upper case, and this may be the secret itself)`
  if (!valid)
    return {
      field: flag,
      message: `the value given is not an environment variable name ${notShown}`,
      fix: `give the variable's name, e.g. ${flag} ${example}, and put the secret in that variable`,
    }
  return shown !== undefined
    ? {
        field: flag,
        message: `the environment variable ${shown} is not set`,
        fix: `export ${shown} before running kvdeploy`,
      }
    : {
        field: flag,
        message: `the environment variable it names is not set ${notShown}`,
        fix: `give the name of the variable that holds the secret, e.g. ${flag} ${example}, and export it before running kvdeploy`,
      }
}

/** Read a secret from the environment variable named by `flag`. */
export const secretFromEnv = (
  flag: string,
  name: string,
): Effect.Effect<Redacted.Redacted<string>, CliProblem> =>
  Effect.suspend(() => {
    const problem = envVariableProblem(flag, name)
    if (problem !== undefined) return Effect.fail(usage(`${problem.field}: ${problem.message}`, [problem]))
    return Effect.succeed(Redacted.make(environmentVariable(name) ?? ""))
  })

export const interactive = (): boolean => process.stdin.isTTY === true && process.stderr.isTTY === true

/**
 * The terminal with its display on stderr. A prompt is not the command's result: stdout carries
 * that (only the JSON document with --json, often redirected to a file), so a prompt written there
 * went into the file and never reached the screen, and the command looked hung.
 */
const promptOnStderr = Effect.map(Effect.service(Terminal.Terminal), (terminal) =>
  Terminal.make({
    columns: Effect.sync(() => process.stderr.columns ?? 0),
    rows: Effect.sync(() => process.stderr.rows ?? 0),
    size: terminal.size,
    readInput: terminal.readInput,
    readLine: terminal.readLine,
    display: (text) =>
      Effect.uninterruptible(
        Effect.callback<void, PlatformError>((resume) => {
          process.stderr.write(text, (error) =>
            resume(
              error === null || error === undefined
                ? Effect.void
                : Effect.fail(
                    badArgument({
                      module: "Terminal",
                      method: "display",
                      description: "could not write the prompt to stderr",
                      cause: error,
                    }),
                  ),
            ),
          )
        }),
      ),
  }),
)

export const askSecret = (message: string) =>
  Effect.andThen(clearProgress, promptOnStderr).pipe(
    Effect.flatMap((terminal) =>
      Prompt.run(Prompt.Hidden({ message })).pipe(Effect.provideService(Terminal.Terminal, terminal)),
    ),
    Effect.mapError(() =>
      usageOne(
        "(prompt)",
        "no password was entered",
        "enter it, or name an environment variable that holds it",
      ),
    ),
  )

export const withSource = (
  flag: string,
  source: string,
  problems: ReadonlyArray<{ field: string; message: string; fix: string }>,
): Array<Problem> =>
  problems.map((p) => ({
    field: `${flag} ${sourceName(source)}: ${p.field}`,
    message: p.message,
    fix: p.fix,
  }))

/**
 * `problems` of a key read with a passphrase, a wrong passphrase's fix naming where kvdeploy read
 * it (`from`: "in the variable --key-passphrase-env names", "typed at the prompt"): the parser's fix
 * names no flag, since a library caller gives the passphrase itself.
 */
export const passphraseFrom = <P extends { readonly message: string; readonly fix: string }>(
  problems: ReadonlyArray<P>,
  from: string,
): Array<P> =>
  problems.map((p) =>
    /the passphrase is wrong/.test(p.message) && p.fix.startsWith("check the passphrase")
      ? { ...p, fix: `check the passphrase ${from}${p.fix.slice("check the passphrase".length)}` }
      : p,
  )

/** Read PEM material. */
const fromPem = (flags: MaterialFlags, ask: boolean) =>
  Effect.gen(function* () {
    const { parsePem, decodePfx, materialText } = yield* Effect.promise(loadPkcs12)
    const certSource = Option.getOrUndefined(flags.cert)
    if (certSource === undefined) {
      return yield* usageOne("--cert", "is missing", "give --cert FILE (PEM) with --key FILE, or --pfx FILE")
    }
    const keySource = Option.getOrUndefined(flags.key)
    const chainSource = Option.getOrUndefined(flags.chain)
    let passphrase: Redacted.Redacted<string> | undefined
    if (Option.isSome(flags.keyPassphraseEnv)) {
      passphrase = yield* secretFromEnv("--key-passphrase-env", flags.keyPassphraseEnv.value)
    }
    const problems: Array<Problem> = []
    const certBytes = yield* readSource("--cert", certSource)
    const chainBytes = chainSource === undefined ? undefined : yield* readSource("--chain", chainSource)
    const keyBytes = keySource === undefined ? undefined : yield* readSource("--key", keySource)

    const parse = (flag: string, source: string, bytes: Uint8Array, pass?: Redacted.Redacted<string>) =>
      parsePem(bytes, pass === undefined ? {} : { passphrase: pass }).pipe(
        Effect.map(
          (parsed) =>
            parsed as { certificates: ReadonlyArray<Uint8Array>; key?: Redacted.Redacted<Uint8Array> },
        ),
        Effect.catchTag("MaterialInvalid", (e) =>
          // A PKCS#12 file where PEM belongs: its structure reads as one (with any password, or
          // none), so it is named for what it is, with the flag that takes it.
          Effect.map(Effect.result(decodePfx(bytes, Redacted.make(""))), (pfx) => {
            const isPfx =
              pfx._tag === "Success" ||
              (pfx.failure.reason !== "malformed" && pfx.failure.reason !== "too-large")
            problems.push(
              ...(isPfx
                ? [
                    {
                      field: `${flag} ${sourceName(source)}`,
                      message: "is a PKCS#12 (PFX) file, not PEM or a DER certificate",
                      fix: "give it with --pfx FILE (its password from --pfx-password-env VAR), in place of --cert, --chain and --key",
                    },
                  ]
                : passphraseFrom(
                    withSource(flag, source, e.problems),
                    Option.isSome(flags.keyPassphraseEnv)
                      ? "in the variable --key-passphrase-env names"
                      : "typed at the prompt",
                  )),
            )
            return undefined
          }),
        ),
      )

    const certParsed = yield* parse(
      "--cert",
      certSource,
      certBytes,
      keySource === undefined ? passphrase : undefined,
    )
    const chainParsed =
      chainSource === undefined || chainBytes === undefined
        ? undefined
        : yield* parse("--chain", chainSource, chainBytes)
    let keyParsed:
      | { key?: Redacted.Redacted<Uint8Array>; certificates: ReadonlyArray<Uint8Array> }
      | undefined
    let keyNotAsked = false
    if (keySource !== undefined && keyBytes !== undefined) {
      const encrypted = materialText(keyBytes).includes("ENCRYPTED")
      if (encrypted && passphrase === undefined) {
        if (interactive() && keySource !== "-" && !ask) {
          keyNotAsked = true
        } else if (interactive() && keySource !== "-") {
          passphrase = yield* askSecret(`Passphrase for ${keySource}`)
        } else {
          problems.push({
            field: `--key ${sourceName(keySource)}`,
            message: "the private key is encrypted and no passphrase was given",
            fix: "name the environment variable that holds it with --key-passphrase-env VAR (or run on a terminal to be asked), or decrypt it with `openssl pkey`",
          })
        }
      }
      if (!encrypted || passphrase !== undefined)
        keyParsed = yield* parse("--key", keySource, keyBytes, passphrase)
    }
    if (problems.length > 0) return yield* usage("the certificate material cannot be read", problems)
    if (keyNotAsked) return yield* secretNotAsked
    return yield* pemMaterial({
      cert: { source: certSource, ...(certParsed ?? { certificates: [] }) },
      chain:
        chainSource === undefined || chainParsed === undefined
          ? undefined
          : { source: chainSource, ...chainParsed },
      key:
        keySource === undefined || keyParsed === undefined ? undefined : { source: keySource, ...keyParsed },
    })
  })

/** A PEM file as read: where it came from, its certificates (DER) and its private key (PKCS#8), if any. */
export interface PemFile {
  readonly source: string
  readonly certificates: ReadonlyArray<Uint8Array>
  readonly key?: Redacted.Redacted<Uint8Array> | undefined
}

/**
 * Deploy's material of PEM files already read: which certificate is the leaf, and the keys it
 * refuses (none at all, a key of --chain, two different keys, an issuer's key). Deploy and plan
 * read --cert, --chain and --key into it; verify reads the --cert bundle that holds a key into it.
 */
export const pemMaterial = (files: {
  readonly cert: PemFile
  readonly chain: PemFile | undefined
  readonly key: PemFile | undefined
}): Effect.Effect<CertificateMaterial, CliProblem> =>
  Effect.gen(function* () {
    const { cert: certParsed, chain: chainParsed, key: keyParsed } = files
    const { keyOwner, issuedOneOf } = yield* Effect.promise(loadPkcs12)
    const certSource = certParsed.source
    const chainSource = chainParsed?.source
    const keySource = keyParsed?.source
    const certificates = certParsed.certificates
    const leaf = certificates[0]
    if (leaf === undefined) {
      // A key where the certificate belongs, and a certificate where the key does: swapped flags.
      const swapped = certParsed.key !== undefined && (keyParsed?.certificates.length ?? 0) > 0
      return yield* usageOne(
        `--cert ${sourceName(certSource)}`,
        certParsed.key === undefined ? "holds no certificate" : "holds no certificate, only a private key",
        swapped
          ? `--cert and --key look swapped (--key ${sourceName(keySource ?? certSource)} holds the certificate): give the certificate with --cert and its private key with --key`
          : "give the leaf certificate as PEM",
      )
    }
    if (chainParsed?.key !== undefined && chainSource !== undefined)
      return yield* usageOne(
        `--chain ${sourceName(chainSource)}`,
        "holds a private key",
        "give the chain's certificates only, and the leaf's key with --key (or in the --cert file)",
      )
    const key = keyParsed?.key ?? certParsed.key
    if (key === undefined) {
      return yield* usageOne(
        keySource === undefined ? "--key" : `--key ${sourceName(keySource)}`,
        keySource === undefined ? "is missing and --cert holds no private key" : "holds no private key",
        "give the leaf's private key with --key FILE",
      )
    }
    const keyField =
      keySource === undefined ? `--cert ${sourceName(certSource)}` : `--key ${sourceName(keySource)}`
    if (
      keyParsed?.key !== undefined &&
      certParsed.key !== undefined &&
      !sameKey(keyParsed.key, certParsed.key)
    )
      return yield* usageOne(
        keyField,
        `is another private key than the one in --cert ${sourceName(certSource)}`,
        "give the leaf's key once: in the --cert file, or with --key",
      )
    const issuers = chainParsed?.certificates ?? []
    const own = [...certificates, ...(keyParsed?.certificates ?? [])]
    const all = [...certificates, ...issuers, ...(keyParsed?.certificates ?? [])]
    // The leaf is the certificate of --cert (or of the key's file) the key belongs to, wherever it
    // sits in that bundle; without a match the first certificate of --cert stays the leaf and
    // preflight reports the mismatch. A key that belongs to a certificate of --chain is the wrong
    // key (or the files are swapped): said so, rather than deploying the issuer as the leaf.
    const matching = keyOwner(own, key)
    if (matching === undefined && chainSource !== undefined) {
      const issuer = keyOwner(issuers, key)
      if (issuer !== undefined)
        return yield* usageOne(
          keyField,
          `holds the private key of ${subjectOf(issuer)} from --chain ${sourceName(chainSource)}, not of the --cert leaf ${subjectOf(leaf)}`,
          "give the --cert leaf's own private key (--chain holds its issuers; check that the files are not swapped)",
        )
    }
    // The key of a certificate that issued another of the files (a CA's key beside a full chain in
    // --cert) is not the leaf's key: deploying the CA as the leaf would be refused as a broken chain,
    // telling the operator to remove the real leaf.
    const issued = matching === undefined ? undefined : issuedOneOf(matching, all)
    if (matching !== undefined && issued !== undefined)
      return yield* usageOne(
        keyField,
        `holds the private key of ${subjectOf(matching)}, which issued ${subjectOf(issued)} in the same files: an issuer's key, not the leaf's`,
        "give the leaf's own private key (the key its certificate was issued for)",
      )
    const chosen = matching ?? leaf
    return { leaf: chosen, chain: all.filter((c) => c !== chosen), key } satisfies CertificateMaterial
  })

/**
 * What deploy's preflight says of the material's private key, in its words: core's
 * `materialProblems` over the codec's inspection, as plan and deploy run them (a key that does not
 * match the leaf, is damaged, cannot be read, or is of a kind Key Vault does not accept). Only the
 * key is judged: the material is inspected without its chain, and the leaf's validity is left out
 * (verify, which runs it, answers about an expired certificate too). Empty when deploy takes the key.
 */
export const keyProblems = (material: CertificateMaterial): Effect.Effect<ReadonlyArray<Problem>> =>
  Effect.gen(function* () {
    const { inspectMaterial } = yield* Effect.promise(loadPkcs12)
    const inspected = yield* Effect.result(inspectMaterial({ ...material, chain: [] }))
    // Not inspected at all: the leaf or the key cannot be read as deploy reads them (it refuses it so).
    if (inspected._tag === "Failure") return inspected.failure.problems
    const problems: Array<DeployProblem> = []
    materialProblems(inspected.success, Date.now(), problems)
    return problems
      .filter((p) => p.field === "key")
      .map(({ field, message, fix }) => ({ field, message, fix }))
  })

/** Read a PFX. */
const fromPfx = (flags: MaterialFlags, pfxSource: string, ask: boolean) =>
  Effect.gen(function* () {
    for (const [flag, value] of [
      ["--cert", flags.cert],
      ["--chain", flags.chain],
      ["--key", flags.key],
    ] as const) {
      if (Option.isSome(value)) {
        return yield* usageOne(
          flag,
          "cannot be combined with --pfx",
          "give either PEM files (--cert/--chain/--key) or one --pfx",
        )
      }
    }
    return yield* decodedPfx(
      flags,
      pfxSource,
      (pkcs12, bytes, password) => pkcs12.decodePfx(bytes, password, { operatorFile: true }),
      ask,
    ).pipe(Effect.tap((material) => refuseIssuerKey(material, pfxSource)))
  })

/**
 * A PFX exported with the key of a CA that issued another of its certificates: the decoded leaf is
 * the key's certificate, so preflight would refuse a broken chain and tell the operator to remove
 * the real leaf. Refused as the PEM files' issuer's key is.
 */
const refuseIssuerKey = (material: CertificateMaterial, pfxSource: string) =>
  Effect.flatMap(Effect.promise(loadPkcs12), ({ issuedOneOf }) => {
    const issued = issuedOneOf(material.leaf, material.chain)
    return issued === undefined
      ? Effect.void
      : usageOne(
          `--pfx ${sourceName(pfxSource)}`,
          `holds the private key of ${subjectOf(material.leaf)}, which issued ${subjectOf(issued)} in the same file: an issuer's key, not the leaf's`,
          "export the PFX with the leaf's own private key (the key its certificate was issued for)",
        )
  })

/**
 * Read the PFX of `pfxSource` with its password (from the variable named by --pfx-password-env, a
 * prompt on a terminal, or the empty one) and decode it with `decode`; a refusal is a usage
 * problem that names the file and says what to do.
 */
const decodedPfx = <A>(
  flags: MaterialFlags,
  pfxSource: string,
  decode: (
    pkcs12: Awaited<ReturnType<typeof loadPkcs12>>,
    bytes: Uint8Array,
    password: Redacted.Redacted<string>,
  ) => Effect.Effect<A, PfxDecodeError>,
  /** false: fail with `secretNotAsked` where a terminal would be asked for the password. */
  ask = true,
) =>
  Effect.gen(function* () {
    if (Option.isNone(flags.pfxPasswordEnv) && interactive() && pfxSource !== "-" && !ask)
      return yield* secretNotAsked
    const bytes = yield* readSource("--pfx", pfxSource)
    const pkcs12 = yield* Effect.promise(loadPkcs12)
    let password: Redacted.Redacted<string>
    let asked = false
    if (Option.isSome(flags.pfxPasswordEnv)) {
      password = yield* secretFromEnv("--pfx-password-env", flags.pfxPasswordEnv.value)
    } else if (interactive() && pfxSource !== "-") {
      password = yield* askSecret(`Password for ${pfxSource} (empty for none)`)
      asked = true
    } else {
      password = Redacted.make("")
    }
    /** Whether a password has spaces or a line break around it (`echo pw > file` adds one), part of it as given. */
    const padded = (value: string) => value !== value.trim()
    return yield* decode(pkcs12, bytes, password).pipe(
      Effect.mapError((e) => {
        const field = `--pfx ${sourceName(pfxSource)}`
        switch (e.reason) {
          case "wrong-password":
            return usageOne(
              field,
              // The integrity MAC fails alike for a wrong password and for a damaged file.
              Option.isSome(flags.pfxPasswordEnv)
                ? `the password in ${flags.pfxPasswordEnv.value} does not open it (or the file is damaged or incomplete)${padded(Redacted.value(password)) ? "; its value has spaces or a line break around it, which are part of the password as given: set it without them if they are not" : ""}`
                : asked
                  ? "the password entered does not open it (or the file is damaged or incomplete)"
                  : "it is password-protected and no password was given (or the file is damaged or incomplete)",
              Option.isSome(flags.pfxPasswordEnv)
                ? `put the PFX's password in ${flags.pfxPasswordEnv.value} (check it with \`openssl pkcs12 -info -noout -in FILE\`)`
                : asked
                  ? "run it again and enter the password the PFX was exported with (check it with `openssl pkcs12 -info -noout -in FILE`), or name a variable that holds it with --pfx-password-env VAR"
                  : "name the variable that holds the password with --pfx-password-env VAR",
            )
          case "no-key":
            return usageOne(field, "holds no private key", "export the PFX with its private key")
          case "no-certificate":
            // None at all, or none that matches the key: the codec says which.
            return usageOne(
              field,
              e.finding.replace(/^the PFX /, "").replace(/ in the PFX /, " in it "),
              e.fix ?? "export the PFX with its certificate",
            )
          default:
            // PEM text given as a PFX (a certificate, a bundle or a key): named for what it is, with the flags that take it.
            return pemMarker.test(pkcs12.materialText(bytes.subarray(0, 8192)))
              ? usageOne(
                  field,
                  "is PEM text, not a PKCS#12 (PFX) file",
                  "give it with --cert FILE in place of --pfx (a PEM bundle may hold the chain and the key too; else name them with --chain FILE and --key FILE)",
                )
              : // The codec's finding, and its fix when it has one (a cipher to export with, an iteration count).
                usageOne(
                  field,
                  `cannot be read: ${e.finding}`,
                  e.fix ?? "check it with `openssl pkcs12 -info -nokeys -in FILE`",
                )
        }
      }),
    )
  })

/** The first line of a PEM block, in a file's first bytes. */
const pemMarker = /-----BEGIN [A-Z0-9 ]{1,40}-----/

/** A PFX as `verify` reads it: its material, or, when it holds no private key, its certificates. */
export type PfxRead =
  | { readonly material: CertificateMaterial }
  | { readonly certificates: ReadonlyArray<Uint8Array> }

/**
 * Read a PFX for a command that needs no key (`verify`): its material, as deploy reads it, or the
 * certificates of a PFX without a private key (`openssl pkcs12 -export -nokeys`), which deploy
 * refuses and verify can check.
 */
export const readPfxCertificates = (
  flags: MaterialFlags,
  pfxSource: string,
): Effect.Effect<PfxRead, CliProblem, Prompt.Environment> =>
  decodedPfx(flags, pfxSource, (pkcs12, bytes, password) =>
    pkcs12.decodePfx(bytes, password, { operatorFile: true }).pipe(
      Effect.map((material): PfxRead => ({ material })),
      Effect.catch((e) =>
        e.reason === "no-key"
          ? pkcs12
              .decodePfxCertificates(bytes, password)
              .pipe(Effect.map((certificates): PfxRead => ({ certificates })))
          : Effect.fail(e),
      ),
    ),
  ).pipe(Effect.tap((read) => ("material" in read ? refuseIssuerKey(read.material, pfxSource) : Effect.void)))

/**
 * A read left undone because it would ask for a passphrase or password on the terminal, in a run
 * that fails anyway: no problem is known of it (none listed).
 */
export const secretNotAsked: CliProblem = usage(
  "not read: a passphrase or password would be asked on the terminal, in a run that fails anyway",
  [],
)

/**
 * The material named by the flags; exactly one of PEM or PFX. With `ask` false nothing is asked
 * on a terminal: an encrypted key or a PFX whose secret a terminal would be asked for fails with
 * `secretNotAsked` (the problems of the other files still listed).
 */
export const readMaterial = (
  flags: MaterialFlags,
  options: { readonly ask: boolean } = { ask: true },
): Effect.Effect<CertificateMaterial, CliProblem, Prompt.Environment> =>
  Option.isSome(flags.pfx) ? fromPfx(flags, flags.pfx.value, options.ask) : fromPem(flags, options.ask)

/**
 * Every problem of the material flags that can be found without parsing: flags that cannot go
 * together (`--pfx` with PEM flags), a missing `--cert`, a password variable that is not set, and
 * each file that cannot be read, is empty or too large. Lets a command list them all at once,
 * with its other problems, before it reads the material: no passphrase or password is asked for,
 * nothing is read (the files are only looked at: `sourceFileProblems`), nothing is parsed.
 */
export const materialFlagProblems = (flags: MaterialFlags): Effect.Effect<ReadonlyArray<Problem>> =>
  Effect.gen(function* () {
    const problems: Array<Problem> = []
    const pfx = Option.isSome(flags.pfx)
    if (pfx) {
      for (const [flag, value] of [
        ["--cert", flags.cert],
        ["--chain", flags.chain],
        ["--key", flags.key],
        ["--key-passphrase-env", flags.keyPassphraseEnv],
      ] as const) {
        if (Option.isSome(value))
          problems.push({
            field: flag,
            message: "cannot be combined with --pfx",
            fix: "give either PEM files (--cert/--chain/--key, --key-passphrase-env) or one --pfx (--pfx-password-env)",
          })
      }
    } else {
      if (Option.isNone(flags.cert))
        problems.push({
          field: "--cert",
          message: "is missing",
          fix: "give --cert FILE (PEM) with --key FILE, or --pfx FILE",
        })
      if (Option.isSome(flags.pfxPasswordEnv))
        problems.push({
          field: "--pfx-password-env",
          message: "applies only to --pfx",
          fix: "drop it, or give --key-passphrase-env VAR for an encrypted PEM key",
        })
    }
    for (const [flag, value] of [
      ["--key-passphrase-env", pfx ? Option.none<string>() : flags.keyPassphraseEnv],
      ["--pfx-password-env", pfx ? flags.pfxPasswordEnv : Option.none<string>()],
    ] as const) {
      const problem = Option.isSome(value) ? envVariableProblem(flag, value.value) : undefined
      if (problem !== undefined) problems.push(problem)
    }
    for (const [flag, value] of [
      ["--cert", flags.cert],
      ["--chain", flags.chain],
      ["--key", flags.key],
      ["--pfx", flags.pfx],
    ] as const) {
      if (Option.isSome(value)) problems.push(...(yield* sourceFileProblems(flag, value.value)))
    }
    return problems
  })
