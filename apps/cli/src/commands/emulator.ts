/**
 * `kvdeploy emulator`: run the Key Vault + Entra ID emulator in the
 * foreground and print what to use it with: the environment (client-secret
 * mode, trusting the emulator's CA) and a target configuration; with
 * --all-modes, the environment and target fields of every other credential mode
 * it serves (emulatorCredentialModes.ts; always in --json). Ctrl+C stops it.
 */
import { randomBytes } from "node:crypto"
import { constants } from "node:fs"
import { open, rename, unlink } from "node:fs/promises"
import { fsErrorReason, quotedValue, shownPath, validateTargetConfigSync } from "@kvdeploy/core"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import {
  type EmulatorCredentialMode,
  emulatorCredentialModes,
  emulatorModeIds,
  exportLines,
  modeFile,
  modeShellLines,
  modeTargetFields,
  shellQuote,
} from "../cli/emulatorCredentialModes.js"
import * as flags from "../cli/flags.js"
import { failure, type Problem, stoppedBySignal, usage, wholeNumberFlag } from "../cli/problems.js"
import { printErr, printJson, printLines, styleOut } from "../cli/terminal.js"

/** A path `.` reads as a file, not a name it looks for on PATH. */
const sourceable = (path: string): string => (path.includes("/") ? path : `./${path}`)

/** The first line of every environment file kvdeploy emulator writes. */
const emulatorEnvMarker = "# kvdeploy emulator:"

/** The most of an existing file read to tell whether an emulator wrote it (its files are a few KB). */
const mostRead = 1024 * 1024

/** What is at a path a file is to be written to: nothing, the text of a regular file, or why not to write there. */
type Existing =
  | undefined
  | string
  | { readonly refused: "link" | "not a file" | "unreadable"; readonly reason: string }

/**
 * What is at `path` now, read through one descriptor opened without following a symbolic link
 * (O_NOFOLLOW: a link there is refused, never judged by what it points at) nor waiting on a FIFO
 * (O_NONBLOCK); the file judged is the one opened (fstat: a regular file). A file larger than any an
 * emulator writes is read only in part (it is then no emulator's).
 */
const existingAt = async (path: string): Promise<Existing> => {
  let file: Awaited<ReturnType<typeof open>>
  try {
    file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === "ENOENT") return undefined
    // O_NOFOLLOW on a link: ELOOP (Linux, macOS), EMLINK (FreeBSD).
    if (code === "ELOOP" || code === "EMLINK") return { refused: "link", reason: "a symbolic link" }
    return { refused: "unreadable", reason: fsErrorReason(e) }
  }
  try {
    const stat = await file.stat()
    if (!stat.isFile())
      return {
        refused: "not a file",
        reason: stat.isDirectory()
          ? "a directory"
          : stat.isFIFO()
            ? "a FIFO"
            : stat.isSocket()
              ? "a socket"
              : stat.isCharacterDevice() || stat.isBlockDevice()
                ? "a device"
                : "not a regular file",
      }
    const bytes = Buffer.alloc(Math.min(stat.size, mostRead) + 1)
    let got = 0
    while (got < bytes.length) {
      const { bytesRead } = await file.read(bytes, got, bytes.length - got, got)
      if (bytesRead === 0) break
      got += bytesRead
    }
    return bytes.subarray(0, Math.min(got, mostRead)).toString("utf8")
  } catch (e) {
    return { refused: "unreadable", reason: fsErrorReason(e) }
  } finally {
    await file.close()
  }
}

/**
 * Write `text` to `path` as a new file: a temporary file beside it with a name of its own, made anew
 * (O_EXCL) and never through a link (O_NOFOLLOW), its mode set whole (the umask neither widens nor
 * narrows it), written and fsynced, then renamed over `path`. Whatever is at `path` then (the file
 * judged, or a link put there since) is replaced, never written through: another name of the old
 * file (a hard link) keeps the old text.
 */
const writeAnew = async (path: string, text: string, mode: number): Promise<void> => {
  const temp = `${path}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`
  const file = await open(
    temp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode,
  )
  try {
    try {
      await file.chmod(mode)
      await file.writeFile(text)
      await file.sync()
    } finally {
      await file.close()
    }
    await rename(temp, path)
  } catch (e) {
    await unlink(temp).catch(() => {})
    throw e
  }
}

/**
 * Whether `text`, a file's content, is one kvdeploy emulator wrote: a target file whose vault_url is
 * on this machine's loopback (no Azure vault is), or an environment file that starts with its marker
 * or (written before the marker) holds nothing but its export lines, the emulator's CA among them.
 */
const writtenByEmulator = (kind: "config" | "env", text: string): boolean => {
  if (kind === "env")
    return (
      text.startsWith(emulatorEnvMarker) ||
      (/^export NODE_EXTRA_CA_CERTS=\S*kv-emulator-/m.test(text) &&
        text.split("\n").every((line) => line === "" || line.startsWith("export ")))
    )
  try {
    const url = (JSON.parse(text) as { readonly vault_url?: unknown }).vault_url
    if (typeof url !== "string") return false
    const host = new URL(url).hostname
    return host === "127.0.0.1" || host === "localhost" || host === "[::1]"
  } catch {
    return false
  }
}

export const emulator = Command.make(
  "emulator",
  {
    vault: Flag.String("vault").pipe(
      Flag.withMetavar("NAME"),
      Flag.withDescription(
        "Vault to serve (repeatable; default kvdeploy-demo). Each vault gets its own port.",
      ),
      Flag.atLeast(0),
    ),
    port: Flag.String("port").pipe(
      Flag.withMetavar("PORT"),
      Flag.withDescription("Port of the first vault (default: any free port)."),
      Flag.optional,
    ),
    entraPort: Flag.String("entra-port").pipe(
      Flag.withMetavar("PORT"),
      Flag.withDescription("Port of the Entra ID endpoint (default: any free port)."),
      Flag.optional,
    ),
    certificateName: Flag.String("certificate-name").pipe(
      Flag.withMetavar("NAME"),
      Flag.withDescription("certificate_name to put in the printed target configuration."),
      Flag.withDefault("api-example"),
    ),
    stateDir: Flag.String("state-dir").pipe(
      Flag.withMetavar("DIR"),
      Flag.withDescription("Keep vault contents across restarts here (files hold private keys: demos only)."),
      Flag.optional,
    ),
    writeEnv: Flag.String("write-env").pipe(
      Flag.withMetavar("FILE"),
      Flag.withDescription(
        "Also write the environment as `export` lines to FILE (for `source FILE`). It holds the emulator's client secret: mode 0600. An existing FILE is written over only when a kvdeploy emulator wrote it (or it is empty); any other, and a symbolic link at FILE, is refused (exit 2). The file is made anew and renamed over FILE, never written through a link.",
      ),
      Flag.optional,
    ),
    writeConfig: Flag.String("write-config").pipe(
      Flag.withMetavar("FILE"),
      Flag.withDescription(
        "Also write the target configuration to FILE (JSON). An existing FILE is written over only when it is a target of a vault on this machine's loopback, as an emulator writes (or it is empty): a target of a real vault, and a symbolic link at FILE, is refused (exit 2). Mode 0644 (it holds no secret); made anew and renamed over FILE, never written through a link.",
      ),
      Flag.optional,
    ),
    allModes: Flag.Boolean("all-modes").pipe(
      Flag.withDescription(
        "Also print the environment and target fields of every other credential mode the emulator serves: managed_identity (App Service, IMDS, a user-assigned identity), workload_identity (a federated token file it renews) and default. With --write-env / --write-config, each mode's files too, the mode's id before the extension (emulator.workload_identity.env, target.workload_identity.json). --json always has them (modes).",
      ),
      Flag.withDefault(false),
    ),
    json: flags.json,
  },
  (input) =>
    Effect.scoped(
      Effect.gen(function* () {
        const ports: Array<Problem> = []
        const port = (flag: string, value: Option.Option<string>): number | undefined => {
          if (Option.isNone(value)) return undefined
          const n = wholeNumberFlag(
            flag,
            value.value,
            { min: 0, max: 65535 },
            "a TCP port",
            "give a port from 1 to 65535, or 0 (or nothing) for any free port",
          )
          if (typeof n === "number") return n
          ports.push(n)
          return undefined
        }
        const vaultPort = port("--port", input.port)
        const entraPort = port("--entra-port", input.entraPort)
        const names = input.vault.length === 0 ? ["kvdeploy-demo"] : input.vault
        // The names go into the target configuration it prints: core's rules for a vault and a
        // certificate name, so that `kvdeploy validate` does not refuse what the emulator wrote.
        const named: Array<Problem> = []
        for (const name of names) {
          const checked = validateTargetConfigSync({
            vault_url: `https://${name}.vault.azure.net`,
            certificate_name: input.certificateName,
          })
          const problems = Result.isFailure(checked) ? checked.failure.problems : []
          // A name with other characters makes a URL that is not one, or one with a path: core's
          // words about that URL ("is not a URL", "has a path") are not about the name given.
          if (!/^[A-Za-z0-9-]*$/.test(name))
            named.push({
              field: "--vault",
              message: `vault name ${quotedValue(name)} is invalid: it may contain only letters, digits and hyphens${/^[a-z]+:\/\/|\.vault\./i.test(name) ? " (it is a URL or host name, not a vault's name)" : ""}`,
              fix: "give the vault's name alone (my-vault for https://my-vault.vault.azure.net): 3-24 letters, digits and single hyphens, starting with a letter",
            })
          else
            for (const p of problems.filter((p) => p.field === "vault_url"))
              named.push({
                field: "--vault",
                message: p.message,
                fix: "give a Key Vault name: 3-24 letters, digits and single hyphens, starting with a letter",
              })
          const certificateName = problems.find((p) => p.field === "certificate_name")
          if (certificateName !== undefined && !named.some((n) => n.field === "--certificate-name"))
            named.push({
              field: "--certificate-name",
              message: certificateName.message,
              fix: certificateName.fix,
            })
        }
        // Vault names are host names: case-insensitive, each one vault (the emulator refuses a repeat).
        const seen = new Set<string>()
        const repeated = new Set<string>()
        for (const name of names) {
          const key = name.toLowerCase()
          if (seen.has(key) && !repeated.has(key)) {
            repeated.add(key)
            named.push({
              field: "--vault",
              message: `${quotedValue(name)} is given twice (vault names are case-insensitive)`,
              fix: "give each vault name once: --vault NAME for each vault",
            })
          }
          seen.add(key)
        }
        // A file to write that exists and that no kvdeploy emulator wrote (a target of a real vault, an
        // environment file of the operator's own) is refused, each one, before the emulator starts: a
        // run writes its files over those of an earlier run (or an empty file), never over others.
        // Their content is never shown (an environment file may hold a secret).
        const foreign: Array<Problem> = []
        const refuseForeign = (flag: string, path: string, kind: "config" | "env") =>
          Effect.map(
            Effect.promise(() => existingAt(path)),
            (text) => {
              if (typeof text === "object") {
                foreign.push(
                  text.refused === "link"
                    ? {
                        // A link in a directory others may write (a planted one) would make it write
                        // the secret wherever the link points: never followed, whatever it points at.
                        field: flag,
                        message: `${shownPath(path)} is a symbolic link: kvdeploy emulator does not write through one (it may point at a file of someone else's): it is not written over`,
                        fix: `give ${flag} the path of a new file in a directory only you can write to (a link of your own that you no longer need may be removed with rm ${shellQuote(path)}; never a system one such as /dev/stdout)`,
                      }
                    : text.refused === "not a file"
                      ? {
                          field: flag,
                          message: `${shownPath(path)} is not a regular file (${text.reason}): it is not written over`,
                          fix: `give ${flag} the path of a new file (or of one an earlier kvdeploy emulator wrote)`,
                        }
                      : {
                          // A file that is there but cannot be read cannot be told to be an emulator's.
                          field: flag,
                          message: `${shownPath(path)} exists and cannot be read (${text.reason}), so whether a kvdeploy emulator wrote it cannot be told: it is not written over`,
                          fix: "give the path of a new file, or move that file away first",
                        },
                )
                return
              }
              if (text === undefined || text.trim() === "" || writtenByEmulator(kind, text)) return
              foreign.push({
                field: flag,
                message: `${shownPath(path)} exists, and no kvdeploy emulator wrote it (${kind === "config" ? "its vault_url is no emulator's, on this machine's loopback" : "it is not the environment file an emulator writes"}): it is not written over`,
                fix: "give the path of a new file (or of one an earlier kvdeploy emulator wrote), or move that file away first",
              })
            },
          )
        for (const [flag, given, kind] of [
          ["--write-config", input.writeConfig, "config"],
          ["--write-env", input.writeEnv, "env"],
        ] as const) {
          if (Option.isNone(given)) continue
          yield* refuseForeign(flag, given.value, kind)
          // With --all-modes, each other mode's file beside it.
          if (input.allModes)
            for (const id of emulatorModeIds)
              if (id !== "client_secret") yield* refuseForeign(flag, modeFile(given.value, id), kind)
        }
        const problems = [...ports, ...named, ...foreign]
        if (problems.length > 0)
          return yield* usage(
            problems.length === 1
              ? `${problems[0]?.field}: ${problems[0]?.message}`
              : `${problems.length} problems with the flags`,
            problems,
          )
        const kv = yield* Effect.promise(() => import("@kvdeploy/kv-emulator"))
        const started = yield* kv
          .startScoped({
            vaults: names.map((name, i) =>
              i === 0 && vaultPort !== undefined ? { name, port: vaultPort } : { name },
            ),
            ...(entraPort !== undefined ? { entraPort } : {}),
            ...(Option.isSome(input.stateDir) ? { stateDir: input.stateDir.value } : {}),
            warn: (line) => void process.stderr.write(`${line}\n`),
          })
          .pipe(
            Effect.mapError((e) =>
              // A vault's file in the state directory that cannot be loaded (cut short, not JSON, not
              // a vault's state, unreadable): the flag's problem too, one for each file, with what is
              // wrong and the fix, never the file's content (it holds private keys).
              e.cause instanceof kv.StateFileError
                ? usage(
                    e.cause.files.length === 1
                      ? `--state-dir: ${shownPath(e.cause.files[0]?.file ?? "")}: ${e.cause.files[0]?.reason}`
                      : `--state-dir: ${e.cause.files.length} vault files in ${shownPath(e.cause.path)} cannot be loaded`,
                    e.cause.files.map((f) => ({
                      field: "--state-dir",
                      message: `${shownPath(f.file)}: ${f.reason}`,
                      fix: f.fix,
                    })),
                  )
                : // A state directory that is no directory it can write in: the flag's problem (exit 2),
                  // as a --write-env or --write-config path that cannot be written is.
                  e.cause instanceof kv.StateDirError
                  ? usage(`--state-dir: ${shownPath(e.cause.path)}: ${e.cause.reason}`, [
                      {
                        field: "--state-dir",
                        message: `${shownPath(e.cause.path)}: ${e.cause.reason}`,
                        // Its own fix where there is more to it than another path (one others may write: chmod 700).
                        fix:
                          e.cause.fix?.replaceAll("stateDir", "--state-dir") ??
                          "give a directory you can write to, or a path where one can be made (no file in its place or above it)",
                      },
                    ])
                  : failure("the emulator could not start", [
                      {
                        field: "emulator",
                        message: e.message,
                        fix: /EADDRINUSE|EACCES|EADDRNOTAVAIL|address already in use/i.test(e.message)
                          ? "choose free ports with --port/--entra-port, or omit them"
                          : "the message says why; `kvdeploy emulator --help` lists the flags",
                      },
                    ]),
            ),
          )
        const first = names[0] ?? "kvdeploy-demo"
        const env = started.env.clientSecret
        const config = started.targetConfig(first, input.certificateName, "clientSecret")
        const envText = exportLines(env)
        const modes = emulatorCredentialModes(started, first, input.certificateName)
        const others = modes.filter((m) => m.id !== "client_secret")
        /** The files written for a mode with --all-modes (none for client_secret: those are the flags' own). */
        const filesOf = (mode: EmulatorCredentialMode) =>
          !input.allModes || mode.id === "client_secret"
            ? {}
            : {
                ...(Option.isSome(input.writeEnv)
                  ? { envFile: modeFile(input.writeEnv.value, mode.id) }
                  : {}),
                ...(Option.isSome(input.writeConfig)
                  ? { configFile: modeFile(input.writeConfig.value, mode.id) }
                  : {}),
              }
        /**
         * Write one of the files asked for (writeAnew: a new file renamed over the path, never written
         * through a link), or say which flag's path cannot be written, and why. Modes are set whole:
         * 0600 for an environment file (the client secret, the identity header), 0644 for a target
         * file (no secret: vault URL, tenant and client ids, as a target kept in a repository).
         */
        const writeTo = (flag: string, path: string, text: string, mode: number) =>
          Effect.tryPromise({
            try: () => writeAnew(path, text, mode),
            catch: (e) =>
              usage(`${flag}: ${shownPath(path)}: ${fsErrorReason(e)}`, [
                {
                  field: flag,
                  message: `${shownPath(path)}: ${fsErrorReason(e)}`,
                  fix: "give a file path in a directory that exists and that you can write to",
                },
              ]),
          })
        // The target files first: they hold no secret. The environment files (the client secret, the
        // identity header) are written only once that worked, so a failure never leaves them behind
        // for a stopped emulator; the client-secret one last, so that a script waiting for it finds
        // every other file written.
        if (Option.isSome(input.writeConfig))
          yield* writeTo(
            "--write-config",
            input.writeConfig.value,
            `${JSON.stringify(config, null, 2)}\n`,
            0o644,
          )
        for (const mode of others) {
          const file = filesOf(mode).configFile
          if (file !== undefined)
            yield* writeTo("--write-config", file, `${JSON.stringify(mode.targetConfig, null, 2)}\n`, 0o644)
        }
        for (const mode of others) {
          const file = filesOf(mode).envFile
          if (file !== undefined)
            yield* writeTo(
              "--write-env",
              file,
              `${emulatorEnvMarker} ${mode.title}\n# target: ${modeTargetFields(mode)}\n${modeShellLines(mode).join("\n")}\n`,
              0o600,
            )
        }
        if (Option.isSome(input.writeEnv))
          yield* writeTo(
            "--write-env",
            input.writeEnv.value,
            `${emulatorEnvMarker} client_secret (each run writes this file again)\n${envText.join("\n")}\n`,
            0o600,
          )
        if (input.json) {
          yield* printJson({
            vaults: started.vaults,
            authorityHost: started.authorityHost,
            caFile: started.caFile,
            env,
            targetConfig: config,
            // Every credential mode it serves, client_secret first (its env and target are the above).
            modes: modes.map((m) => ({ ...m, ...filesOf(m) })),
            // The fault, RBAC and request-log API (packages/kv-emulator/README.md, "Admin API").
            admin: { url: started.adminUrl, key: started.adminKey },
          })
        } else {
          const s = styleOut()
          const modeBlock = (mode: EmulatorCredentialMode) => {
            const files = filesOf(mode)
            return [
              "",
              s.dim(`# ${mode.title}`),
              s.dim(
                `#   target: ${modeTargetFields(mode)} (or ${mode.flags.join(" ")})${mode.clientId === mode.managedIdentityClientId ? "" : `; identity's client id ${mode.clientId}`}`,
              ),
              ...(files.envFile !== undefined || files.configFile !== undefined
                ? [
                    s.dim(
                      `#   written: ${[
                        ...(files.envFile !== undefined
                          ? [`. ${shellQuote(sourceable(files.envFile))}`]
                          : []),
                        ...(files.configFile !== undefined
                          ? [`--config ${shellQuote(files.configFile)}`]
                          : []),
                      ].join("; ")}`,
                    ),
                  ]
                : []),
              ...modeShellLines(mode),
            ]
          }
          yield* printLines([
            `${s.bold("kv-emulator")} running; Ctrl+C stops it (its contents ${Option.isSome(input.stateDir) ? `are kept in ${shownPath(input.stateDir.value)}` : "are lost"}).`,
            ...started.vaults.map((v) => `  vault ${v.name.padEnd(16)} ${v.url}`),
            `  entra ${"".padEnd(16)} ${started.authorityHost}`,
            `  admin ${"".padEnd(16)} ${started.adminUrl} (header x-kv-emulator-admin-key: ${started.adminKey}; faults, RBAC, request log)`,
            "",
            s.dim("# Environment for kvdeploy (client_secret mode; trusts the emulator's CA):"),
            ...envText,
            "",
            s.dim(
              `# Target configuration (save as target.json; loopback vault URLs need the custom cloud block):`,
            ),
            JSON.stringify(config, null, 2),
            ...(input.allModes
              ? [
                  "",
                  s.dim(
                    "# Every other credential mode. Each block unsets the other blocks' variables: paste one into a",
                  ),
                  s.dim(
                    "# shell, and run kvdeploy with the target above, its fields set as shown or given as flags.",
                  ),
                  ...others.flatMap(modeBlock),
                ]
              : [
                  "",
                  s.dim(
                    "# Other credential modes (managed_identity: App Service, IMDS, user-assigned, AKS token exchange; workload_identity; default): kvdeploy emulator --all-modes",
                  ),
                ]),
          ])
        }
        // Stay up until interrupted (Ctrl+C / SIGTERM); the scope stops the servers, and the
        // process exits 0: being stopped is how this command ends.
        stoppedBySignal.isSuccess = true
        return yield* Effect.never
      }),
    ).pipe(Effect.onInterrupt(() => printErr("kv-emulator stopped"))),
).pipe(
  Command.withDescription(
    `Run the Key Vault + Entra ID emulator (HTTPS on loopback, the same wire protocol the Azure SDKs speak) in the foreground, and print the environment and target configuration that point kvdeploy at it. With --write-env and --write-config it also writes them to files, so another shell can \`source\` the environment. Ctrl+C or SIGTERM stops it, with exit 0.

Trying each credential mode against the emulator: it also serves managed identity (App Service's endpoint, IMDS, a user-assigned identity), AKS workload identity (a federated token file in its work directory, 0600, renewed while it runs and removed at stop; managed_identity with the same variables makes AKS's token exchange with it) and so the default chain. --all-modes prints a block for each: the \`unset\` and \`export\` lines, and the target's credential_mode (and managed_identity_client_id), or the same as flags; with --write-env/--write-config it writes each mode's files, the mode's id before the extension. --json always lists them under \`modes\`. Then, for example: \`. ./emulator.managed_identity_imds.env && kvdeploy doctor --config target.managed_identity_imds.json\`. docs/getting-started.md, "Trying each credential mode against the emulator", runs every mode.`,
  ),
  Command.withShortDescription("Run the Key Vault emulator in the foreground"),
  Command.withExamples([
    { command: "kvdeploy emulator", description: "Start it and print the environment" },
    {
      command:
        "kvdeploy emulator --port 8443 --write-env /tmp/kvdeploy-emulator.env --write-config target.json",
      description: "Fixed port; environment and target file for another shell",
    },
    {
      command: "kvdeploy emulator --all-modes --write-env emulator.env --write-config target.json",
      description:
        "Every credential mode: emulator.<mode>.env and target.<mode>.json beside the client_secret files",
    },
  ]),
)
