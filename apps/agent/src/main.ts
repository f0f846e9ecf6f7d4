/**
 * Composition of kvdeploy-agent: the only place adapters are chosen. The
 * Vault port comes from @kvdeploy/azure-kv (one SDK client pair per vault and
 * credential, SDK retries off so every request passes the agent's budget),
 * credentials from @kvdeploy/credentials, PfxCodec from @kvdeploy/pkcs12
 * (answering the material that the material workers prepared from their work,
 * materialPool.ts), Metrics from @kvdeploy/metrics/prometheus; the HTTP server from
 * @effect/platform-node. `Layer.launch` runs it, `NodeRuntime.runMain`
 * turns SIGTERM/SIGINT into interruption (exit 0 once the deploys in flight
 * are finished).
 *
 * Usage: kvdeploy-agent [--config FILE] [--check [--json]] [--print-schema] [--version [--json]]
 */
import {
  accessSync,
  existsSync,
  constants as fsConstants,
  lstatSync,
  readlinkSync,
  rmSync,
  type Stats,
  statSync,
} from "node:fs"
import { createServer } from "node:http"
import { createServer as createNetServer, isIP } from "node:net"
import { dirname, join, resolve } from "node:path"
import { parseArgs } from "node:util"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import {
  type CertificateMaterial,
  type ConfigProblem,
  didYouMean,
  holdsEncodedBase64,
  looksLikeKeyText,
  preflight,
  shownPath,
  shownSecretVariable,
  withoutKeyText,
  withoutPem,
} from "@kvdeploy/core"
import {
  type AllowedTenants,
  allowedTenantsInWords,
  type CredentialMode,
  parseAllowedTenants,
  readsAllowedTenants,
  shownAllowedTenants,
} from "@kvdeploy/credentials"
import * as Prometheus from "@kvdeploy/metrics/prometheus"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HttpRouter from "effect/http/HttpRouter"
import * as Layer from "effect/Layer"
import type * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import lockfile from "proper-lockfile"
import { azureVaults } from "./azureVaults.js"
import {
  type AgentConfig,
  AgentConfigInvalid,
  type DeploymentAt,
  jsonSchema,
  listedProblems,
  loadAgentConfig,
  MAX_LISTED_PROBLEMS,
  noDeploymentsWarning,
  pathHoldsText,
  type SourceAt,
} from "./config.js"
import { configFlagCount, configPathOf, configPathOrigin } from "./configPath.js"
import { handleHangups, rememberHangup } from "./hangup.js"
import { routes } from "./http.js"
import { INTERNAL_ERROR_EXIT, internalErrorFix, internalErrorMessage, isDefectOnly } from "./internalError.js"
import * as Logging from "./logging.js"
import { materialWorkersLayer, pooledCodecLayer } from "./materialPool.js"
import { missingSources } from "./missingSource.js"
import {
  configFileUntrusted,
  keyReadableByOthers,
  type PathWalk,
  readRefusal,
  untrustedEntry,
  untrustedFix,
  untrustedText,
  walkPath,
} from "./pathTrust.js"
import { MAX_LINKS, STICKY } from "./pathWalk.js"
import { deploysUnfinishedAtShutdown, stateUnwrittenAtExit } from "./reconciler.js"
import * as Runtime from "./runtime.js"
import { materialOf, readSource, type SourceBroken, sourceRoles, splitFix } from "./source.js"
import {
  badRecordsText,
  keptText,
  readStateFile,
  refuseStateWrites,
  stateFileRefusal,
  withoutState,
} from "./state.js"
import { stateDirParentWarnings } from "./stateDirParents.js"
import { makeStateDir, stateDirPathProblem } from "./stateDirPath.js"
import { version } from "./version.js"

/** The configuration's path as output shows it: never certificate or key text given in its place. */
const shownConfigPath = (path: string): string =>
  pathHoldsText(path, resolve) ||
  // A file that exists is the configuration whatever its path looks like (a 64-hex-digit directory
  // of a container's root file system); one that does not may be key text, a line of a key among it.
  ((looksLikeKeyText(path) || holdsEncodedBase64(path)) && !existsSync(resolve(path)))
    ? `(${path.length} characters of certificate or key text, not shown)`
    : path

/** Connections the HTTP listener keeps at once; one more is closed as soon as it is accepted. */
export const HTTP_MAX_CONNECTIONS = 64

/**
 * The HTTP listener (/metrics, /healthz, /readyz), bounded: Node's defaults keep a connection that
 * sends half a request for 5 minutes (requestTimeout) and accept any number of them, and 24,000
 * such connections took every file handle of the agent (its state file and sources then failed
 * with EMFILE). A scrape or a probe is one small request: 64 connections at once, 10 s for a
 * request's headers and for the whole request (checked every second), 5 s of keep-alive.
 */
const boundedHttpServer = () => {
  const server = createServer({
    headersTimeout: 10_000,
    requestTimeout: 10_000,
    keepAliveTimeout: 5_000,
    connectionsCheckingInterval: 1_000,
  })
  server.maxConnections = HTTP_MAX_CONNECTIONS
  // The timeouts above are per request: a client that asks again every few seconds kept its
  // keep-alive connection, and 64 of them held /healthz unavailable for good. A connection lives
  // HTTP_CONNECTION_LIFETIME_MS at most (a scrape or a probe takes milliseconds).
  server.on("connection", (socket) => {
    const timer = setTimeout(() => socket.destroy(), HTTP_CONNECTION_LIFETIME_MS)
    timer.unref()
    socket.once("close", () => clearTimeout(timer))
  })
  return server
}

/** The longest a connection to the HTTP listener is kept, however busy. */
const HTTP_CONNECTION_LIFETIME_MS = 10_000

/** The whole agent for a validated configuration. */
export const agentLayer = (config: AgentConfig) => {
  // The material of likely deploys is parsed, inspected and encoded by worker threads
  // (material_workers; none: on the main thread), and the codec answers a deploy from their work.
  const adapters = Layer.mergeAll(
    Prometheus.layer,
    pooledCodecLayer(Pkcs12.layer),
    materialWorkersLayer(config.settings.materialWorkers),
  )
  const runtime = Runtime.layer(config).pipe(Layer.provide(azureVaults(config)), Layer.provideMerge(adapters))
  const http = HttpRouter.serve(routes, { disableLogger: true }).pipe(
    Layer.provide(
      NodeHttpServer.layer(boundedHttpServer, {
        host: config.settings.listenHost,
        port: config.settings.listenPort,
      }),
    ),
  )
  return Layer.mergeAll(http).pipe(Layer.provideMerge(runtime))
}

/**
 * Whether the listen address can be bound, tried (and let go) before the agent starts, so an
 * address in use stops it before its first pass. The server itself binds once the runtime is up
 * (binding it earlier would accept connections nothing answers yet). Port 0 always can.
 */
const listenable = (host: string, port: number): Effect.Effect<void, Error> =>
  port === 0
    ? Effect.void
    : Effect.callback<void, Error>((resume) => {
        const probe = createNetServer()
        probe.once("error", (e) => resume(Effect.fail(e)))
        probe.listen({ host, port, exclusive: true }, () => probe.close(() => resume(Effect.void)))
      })

/** The state directory cannot be created or written: the agent cannot keep its outcomes. */
export class StateDirUnusable extends Data.TaggedError("StateDirUnusable")<{
  readonly dir: string
  readonly code: string | undefined
  readonly message: string
  /** The fix for this directory, when there is one of its own. */
  readonly fix?: string
}> {}

/**
 * Why the state directory may not be used, or undefined. It must be a directory of the agent's
 * user that no other user may write (as the CLI's compile cache): the state file decides what the
 * agent deploys again and what it holds, so a directory another user made (an existing state_dir
 * was taken with any owner and mode) or may write could feed it their records. A symbolic link is
 * followed when it and the directory holding it are root's or the agent's and no one else may write
 * them: systemd's DynamicUser= makes StateDirectory= a link into /var/lib/private.
 */
const stateDirRefusal = (
  dir: string,
  /** For `--check`: the user it runs as may not be the one the agent runs as (root checking a service's file). */
  checking = false,
): { readonly message: string; readonly fix: string } | undefined => {
  const uid = process.geteuid?.()
  if (uid === undefined) return undefined
  const named = (path: string) =>
    `the state directory ${shownPath(dir)}${path === dir ? "" : ` (${shownPath(path)})`}`
  const remake = (path: string) =>
    `remove ${shownPath(path)} to let the agent create it (mode 0700, its own; the records in it, held outcomes among them, are lost), or give agent.state_dir a directory of the agent's user (uid ${uid}) that no one else may write`
  let path = dir
  for (let links = 0; links <= MAX_LINKS; links++) {
    const s = lstatSync(path)
    if (!s.isSymbolicLink()) {
      const mode = (s.mode & 0o7777).toString(8).padStart(4, "0")
      if (!s.isDirectory()) return { message: `${named(path)} is not a directory`, fix: remake(path) }
      // Root checking a directory of another user's: the agent may well run as that user (systemd's
      // DynamicUser=, a container's runAsUser), and its records must not be taken from it.
      if (s.uid !== uid && checking && uid === 0 && (s.mode & 0o022) === 0)
        return {
          message: `${named(path)} is owned by uid ${s.uid}, not by the user this check runs as (root): an agent run as root would refuse it`,
          fix: `if the agent runs as uid ${s.uid} (systemd's DynamicUser=, a container's runAsUser), run --check as the agent runs: systemd-run --pipe --wait with the unit's User= or DynamicUser= and StateDirectory= properties, or kubectl exec in its pod; if it runs as root, chown 0 ${shownPath(path)} && chmod 0700 ${shownPath(path)} (its records are kept)`,
        }
      if (s.uid !== uid)
        return {
          message: `${named(path)} is owned by uid ${s.uid}, not by the agent's user (uid ${uid})`,
          fix: `chown ${uid} ${shownPath(path)} && chmod 0700 ${shownPath(path)} (its records are kept), or ${remake(path)}`,
        }
      if ((s.mode & 0o022) !== 0)
        return {
          message: `${named(path)} is writable by ${(s.mode & 0o002) !== 0 ? "every user" : `group ${s.gid}`} (mode ${mode})`,
          // A sticky directory open to every user (/tmp, /var/tmp) is shared: chmod would take it from the others.
          fix:
            (s.mode & STICKY) !== 0
              ? `give agent.state_dir a directory of the agent's own that lasts, such as /var/lib/kvdeploy-agent (the agent creates it, mode 0700), or leave state_dir out (systemd's StateDirectory=, else next to the configuration); do not chmod ${shownPath(path)}, a directory every user shares (and a name of the agent's inside it, another user could make first)`
              : `chmod 0700 ${shownPath(path)} (the agent creates it so)`,
        }
      return undefined
    }
    const bad = untrustedEntry(path, s) ?? untrustedEntry(dirname(path), lstatSync(dirname(path)))
    if (bad !== undefined)
      return {
        message: `${named(dir)} is reached through the symbolic link ${shownPath(path)}, and the ${bad.kind} ${shownPath(bad.path)} ${bad.why}`,
        fix: `${bad.fix}, or give agent.state_dir a directory of the agent's user that no one else may write`,
      }
    path = resolve(dirname(path), readlinkSync(path))
  }
  return {
    message: `${named(dir)} is reached through more than ${MAX_LINKS} symbolic links`,
    fix: remake(dir),
  }
}

/**
 * Create the state directory (0700) if it is missing and check this user can write in it and no
 * other user can (stateDirRefusal), before the first pass: a directory under a file, in a read-only
 * tree (systemd's ProtectSystem=strict outside the unit's StateDirectory=), of another user or
 * open to other users stops the agent with the fix, instead of failing inside its runtime.
 */
const stateDirUsable = (dir: string): Effect.Effect<void, StateDirUnusable> =>
  Effect.try({
    try: (): StateDirRefused | undefined => {
      const problem = stateDirProblem(dir)
      if (problem !== undefined) return problem
      makeStateDir(dir)
      accessSync(dir, fsConstants.W_OK | fsConstants.X_OK)
      return stateDirRefusal(dir) ?? stateFileRefusal(dir)
    },
    catch: (e) =>
      new StateDirUnusable({
        dir,
        code: (e as NodeJS.ErrnoException).code,
        message: `the state directory ${shownPath(dir)} cannot be used (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      }),
  }).pipe(
    Effect.flatMap((refused) =>
      refused === undefined
        ? Effect.void
        : Effect.fail(
            new StateDirUnusable({ dir, code: refused.code, message: refused.message, fix: refused.fix }),
          ),
    ),
  )

/** Why the state directory may not be used, with the fix (and the error's code, when one says it). */
interface StateDirRefused {
  readonly code?: string
  readonly message: string
  readonly fix: string
}

/**
 * Why the state directory cannot be used, before anything is created: an existing one that is no
 * directory, another user's or open to others (stateDirRefusal), or one this user may not write;
 * a missing one that could not be created (stateDirPathProblem). Undefined when it can be used.
 */
const stateDirProblem = (dir: string, checking = false): StateDirRefused | undefined =>
  (existsSync(dir) ? stateDirRefusal(dir, checking) : undefined) ?? stateDirPathProblem(dir)

/** A source file that cannot be read, as a problem: for a refusal by permissions, where and the fix. */
const unreadable = (field: string, path: string, e: unknown): ConfigProblem => {
  const code = (e as NodeJS.ErrnoException).code
  const refused = code === "EACCES" ? readRefusal(path) : undefined
  return {
    field,
    message: `${shownPath(path)} cannot be read (${code ?? String(e)})${refused === undefined ? "" : `: ${refused.why}`}`,
    fix: refused?.fix ?? "give the path of a regular file the agent can read",
  }
}

/**
 * For `--check`: the paths that exist but can never be read as a source or used as the state
 * directory (a directory or a device as a source file, a symbolic link loop, a source file another
 * user could replace, a file as state_dir), as problems. A missing source is no problem: it may be
 * written after the start (a certificate not issued yet), and is picked up then; it is a warning,
 * since a mistyped path looks the same (missingSource.ts).
 */
const checkedPaths = (
  sources: ReadonlyArray<SourceAt>,
  stateDir: string | undefined,
  /** Problems already found: a path with one of its own (an empty one, key text) is not looked at. */
  known: ReadonlyArray<ConfigProblem> = [],
): { readonly problems: Array<ConfigProblem>; readonly warnings: Array<ConfigProblem> } => {
  const problems: Array<ConfigProblem> = []
  const readableKeys: Array<ConfigProblem> = []
  const missing = missingSources(MAX_LISTED_PROBLEMS)
  for (const { index: i, name, source } of sources) {
    for (const [role, path] of sourceRoles(source)) {
      if (known.some((p) => p.field === `deployments[${i}].source.${role}`)) continue
      let stats: Stats
      try {
        stats = statSync(path)
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code === "ENOENT") {
          missing.warn(`deployments[${i}].source.${role}`, name, path)
          continue
        }
        problems.push(unreadable(`deployments[${i}].source.${role}`, path, e))
        continue
      }
      if (!stats.isFile()) {
        problems.push({
          field: `deployments[${i}].source.${role}`,
          message: `${shownPath(path)} is ${stats.isDirectory() ? "a directory" : "not a regular file (a device, a pipe or a socket)"}`,
          fix: "give the path of the certificate or key file itself",
        })
        continue
      }
      // A file this user may not read (a directory on its way unsearchable is caught by the stat).
      try {
        accessSync(path, fsConstants.R_OK)
      } catch (e) {
        problems.push(unreadable(`deployments[${i}].source.${role}`, path, e))
        continue
      }
      // A file another user could replace is never read (source.ts): say so now.
      let walk: PathWalk | undefined
      try {
        walk = walkPath(path, source.owner)
      } catch {}
      if (walk?._tag === "Untrusted")
        problems.push({
          field: `deployments[${i}].source.${role}`,
          message: `${shownPath(path)}: ${untrustedText(walk.untrusted)}`,
          fix: untrustedFix(walk.untrusted),
        })
      // A key every user may read: a warning (the agent reads it all the same).
      const readable =
        walk?._tag === "Resolved" && (role === "key" || role === "pfx")
          ? keyReadableByOthers(role, walk.real, walk.stats)
          : undefined
      if (readable !== undefined)
        readableKeys.push({
          field: `deployments[${i}].source.${role}`,
          message: readable.why,
          fix: readable.fix,
        })
    }
  }
  // What the agent checks before its first pass, without creating anything: a state_dir that is a
  // file, another user's or open to others, or one it could not create or write (a read-only tree,
  // a path under a file, a link to nothing, a directory above it this user may not write).
  if (stateDir === undefined) return { problems, warnings: [...missing.warnings(), ...readableKeys] }
  let refused: ReturnType<typeof stateDirProblem>
  try {
    refused = stateDirProblem(stateDir, true)
  } catch (e) {
    refused = {
      message: `the state directory ${shownPath(stateDir)} cannot be used (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      fix: "give agent.state_dir a directory the agent's user may reach and write",
    }
  }
  // Its state file, when this user may not read it (the start stops rather than lose its records).
  if (refused === undefined) refused = stateFileRefusal(stateDir)
  if (refused !== undefined)
    problems.push({ field: "agent.state_dir", message: refused.message, fix: refused.fix })
  return { problems, warnings: [...missing.warnings(), ...readableKeys] }
}

/**
 * For `--check`: what the agent runs with all the same, and an operator should know of. A
 * configuration file others may change (configFileUntrusted); a state file the start would set
 * aside (damaged, another program's, records not in the agent's form), whose held outcomes are then
 * deployed again. The state directory is not looked into when it has a problem of its own.
 */
const checkWarnings = (
  configPath: string,
  stateDir: string | undefined,
  problems: ReadonlyArray<ConfigProblem>,
): Array<ConfigProblem> => {
  const warnings: Array<ConfigProblem> = []
  const untrusted = configFileUntrusted(configPath)
  if (untrusted !== undefined) warnings.push({ field: "(file)", message: untrusted.why, fix: untrusted.fix })
  if (stateDir === undefined || problems.some((p) => p.field === "agent.state_dir")) return warnings
  // Judged here too: a file of more than 1,000 problems is not read for its paths' problems.
  try {
    if (stateDirProblem(stateDir, true) !== undefined) return warnings
  } catch {
    return warnings
  }
  // A directory on the way others may write: they could move the state directory away (a warning:
  // the start runs with it, and says it once).
  for (const w of stateDirParentWarnings(stateDir))
    warnings.push({ field: "agent.state_dir", message: w.message, fix: w.fix })
  const stateFile = join(stateDir, "state.json")
  const read = readStateFile(stateFile)
  const unlessFixed = `edit or restore ${shownPath(stateFile)} if its records matter (a backup, the agent that wrote it), or leave it: the start sets it aside as state.json.unreadable-TIME`
  if (read._tag === "Unusable")
    warnings.push({
      field: "agent.state_dir",
      message: `the state file ${shownPath(stateFile)} ${read.why}: the start sets it aside, ${withoutState}`,
      fix: unlessFixed,
    })
  else if (read._tag === "Read" && read.bad.length > 0)
    warnings.push({
      field: "agent.state_dir",
      message: `the state file ${shownPath(stateFile)} ${badRecordsText(read.bad)}: the start sets it aside; ${keptText(read)}`,
      fix: unlessFixed,
    })
  return warnings
}

/**
 * For `--check`: the tenants besides their own that the credentials of the modes in use may get
 * tokens for (AZURE_ADDITIONALLY_ALLOWED_TENANTS, in the agent's environment), for the modes that
 * read it (allowedTenants.ts); undefined when no mode in use reads it. Its warnings (a value that
 * allows less than it seems to) are the check's warnings: the agent runs all the same. Managed
 * identity does not read it: when only that mode is in use and the variable is set, that is a
 * warning too.
 */
const allowedTenantsCheck = (
  modesInUse: ReadonlyArray<CredentialMode>,
  raw: string | undefined,
  disabled: string | undefined,
): {
  readonly report:
    | { readonly modes: ReadonlyArray<CredentialMode>; readonly allowed: AllowedTenants }
    | undefined
  readonly warnings: ReadonlyArray<ConfigProblem>
} => {
  const allowed = parseAllowedTenants(raw, disabled)
  const modes = [...new Set(modesInUse)].filter(readsAllowedTenants)
  if (modes.length === 0)
    return {
      report: undefined,
      warnings:
        allowed.set && modesInUse.length > 0
          ? [
              {
                field: "AZURE_ADDITIONALLY_ALLOWED_TENANTS",
                message: `is set, but no credential mode in use reads it (${[...new Set(modesInUse)].join(", ")}: a managed identity gets tokens of its own tenant only)`,
                fix: "unset it, or use client_secret, workload_identity or default for a vault in another tenant",
              },
            ]
          : [],
    }
  return {
    report: { modes, allowed },
    warnings: allowed.warnings.map((w) => ({
      field: "AZURE_ADDITIONALLY_ALLOWED_TENANTS",
      // The field names the variable: its reason's opening words would say it again.
      message: `${w.reason.replace(/^AZURE_ADDITIONALLY_ALLOWED_TENANTS /, "")} (read by ${modes.join(", ")})`,
      fix: w.fix,
    })),
  }
}

/**
 * For `--check`: the material of every source whose files all exist and passed checkedPaths, read
 * as the agent reads it before a deploy (every file parsed, the key matched to a certificate, a PFX
 * opened with its password from the environment) and then judged by core's preflight, as a deploy
 * judges it (the chain's links, the validity window, the key type, the size): what the running
 * agent would log as `source broken`, or a deploy as `Rejected`. A source several deployments
 * share is read once. The material (its key `Redacted`) is held in memory until the check ends.
 */
const checkedMaterial = (
  deployments: ReadonlyArray<DeploymentAt>,
  /** Problems already found: a deployment with one of its source is not read. */
  known: ReadonlyArray<ConfigProblem>,
): Effect.Effect<{ readonly problems: Array<ConfigProblem>; readonly warnings: Array<ConfigProblem> }> =>
  Effect.gen(function* () {
    const problems: Array<ConfigProblem> = []
    const warnings: Array<ConfigProblem> = []
    const reads = new Map<string, Result.Result<CertificateMaterial, SourceBroken>>()
    for (const d of deployments) {
      const field = `deployments[${d.index}].source`
      if (known.some((p) => p.field === field || p.field.startsWith(`${field}.`))) continue
      if (!sourceRoles(d.source).every(([, path]) => existsSync(path))) continue
      const key = JSON.stringify(d.source)
      let read = reads.get(key)
      if (read === undefined) {
        read = yield* readSource(d.source, false).pipe(
          Effect.flatMap((bytes) => materialOf(d.source, bytes, process.env)),
          Effect.map((r) => r.material),
          Effect.result,
        )
        reads.set(key, read)
      }
      if (read._tag === "Failure") {
        for (const problem of read.failure.problems) {
          const { message, fix } = splitFix(problem)
          problems.push({
            field,
            message,
            fix:
              fix ??
              (d.source._tag === "Pfx" && / does not open it /.test(message)
                ? `${d.source.passwordEnv === undefined ? "give pfx_password_env, the name of a variable that holds" : `set ${shownSecretVariable(d.source.passwordEnv) ?? "the variable pfx_password_env names"} to`} the password the PFX was exported with, and restart the agent (it reads its environment at start); or check that the file is whole`
                : "give the certificate, its chain and the key it was issued for as files the agent reads (docs/agent.md, Files); until they change, the running agent logs `source broken` and deploys nothing from them"),
          })
        }
        continue
      }
      const checked = yield* preflight({
        target: d.target,
        material: read.success,
        certificateId: d.certificateId,
      })
      if (checked._tag === "Passed" && checked.pfxTooLarge !== undefined)
        // content_type keep: a deploy is refused unless the vault serves the secret as PEM (then the
        // PEM's own size counts, and it fits), or a soft-deleted certificate a recovery brings back
        // does. Which it serves, --check does not ask: a warning. (The fix names content_type: pem.)
        warnings.push({
          field,
          message: `${checked.pfxTooLarge.field}: ${checked.pfxTooLarge.message} (a deploy is refused unless the vault serves the secret as PEM, or with on_soft_deleted: recover a soft-deleted certificate of the name does: content_type keep imports PEM then, and the PEM fits)`,
          fix: checked.pfxTooLarge.fix,
        })
      if (checked._tag === "Passed")
        // What the target's consumers' documentation is weaker about (a deploy goes on and says it too).
        for (const w of checked.warnings ?? [])
          warnings.push({ field, message: `${w.field}: ${w.message}`, fix: w.fix })
      if (checked._tag === "Rejected")
        for (const p of checked.problems) {
          // The name, the tags and the certificate id are the file's own fields, named there by the
          // file's check (`target.certificate_id`, …): only the material's problems are added here.
          if (p.reason === "certificate_name" || p.reason === "tags") continue
          problems.push({ field, message: `${p.field}: ${p.message} (a deploy is refused)`, fix: p.fix })
        }
    }
    return { problems, warnings }
  }).pipe(Effect.provide(Pkcs12.layer))

/** The codes of a listen host name this host could not resolve (the start fails with them too). */
const unresolvedCodes: ReadonlySet<string> = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_NONAME", "EAI_FAIL"])
const unresolvedText = (code: string) =>
  code === "EAI_AGAIN"
    ? "the host name could not be resolved now (EAI_AGAIN: no answer from the resolver)"
    : `the host name does not resolve on this host (${code})`
const unresolvedFix =
  "listen on an IP address (127.0.0.1, 0.0.0.0, :: or an address of one of this host's interfaces), or a name this host resolves to one of its own addresses (/etc/hosts); run --check where the agent runs (its host, its pod)"

/**
 * For `--check`: a listen address no socket of this host can be bound to, which the start refuses
 * (EADDRNOTAVAIL), or a host name it cannot resolve (ENOTFOUND, EAI_AGAIN): tried on port 0, so the answer is the kernel's (wildcards, loopback in any
 * spelling, `ip_nonlocal_bind`) and the port the running agent may hold is left alone.
 */
const listenProblems = (host: string, port: number): Effect.Effect<Array<ConfigProblem>> =>
  Effect.callback<Array<ConfigProblem>>((resume) => {
    const server = createNetServer()
    server.once("error", (e: NodeJS.ErrnoException) =>
      resume(
        Effect.succeed(
          e.code === "EADDRNOTAVAIL"
            ? [
                {
                  field: "agent.listen",
                  message: `${isIP(host) === 6 ? `[${host}]` : host}:${port} is not an address of this host (EADDRNOTAVAIL)`,
                  fix: "listen on 127.0.0.1, 0.0.0.0 or an address of one of this host's interfaces; run --check where the agent runs (its host, its pod)",
                },
              ]
            : e.code !== undefined && unresolvedCodes.has(e.code)
              ? [
                  {
                    field: "agent.listen",
                    message: `${host}:${port}: ${unresolvedText(e.code)}`,
                    fix: unresolvedFix,
                  },
                ]
              : e.code === "EACCES"
                ? [
                    {
                      field: "agent.listen",
                      message: `${isIP(host) === 6 ? `[${host}]` : host}:${port} needs privileges this user does not have (EACCES: a port below 1024)`,
                      fix: "choose a port of 1024 or more, or give the agent's service the capability to bind it (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE); run --check as the agent runs",
                    },
                  ]
                : [],
        ),
      ),
    )
    // Port 0 leaves the port a running agent may hold alone. A privileged port (below 1024) is tried
    // itself: whether this user may bind it is the kernel's to say (root, CAP_NET_BIND_SERVICE,
    // net.ipv4.ip_unprivileged_port_start), and a running agent holding it answers EADDRINUSE, no problem.
    const privileged = port > 0 && port < 1024
    server.listen({ host, port: privileged ? port : 0, exclusive: true }, () =>
      server.close(() => resume(Effect.succeed([]))),
    )
  })

/**
 * Another process holds the state directory's lock: two agents over one state directory would both
 * deploy its certificates (two writers per certificate) and write over each other's records.
 */
export class StateDirLocked extends Data.TaggedError("StateDirLocked")<{
  readonly dir: string
  readonly message: string
}> {}

/** The lock on the state directory was lost while the agent ran (taken by another process, or not refreshed). */
export class StateDirLockLost extends Data.TaggedError("StateDirLockLost")<{
  readonly dir: string
  readonly message: string
}> {}

/** The lock's own path: a directory proper-lockfile makes and refreshes, beside state.json. */
const lockPathOf = (dir: string): string => join(dir, "agent.lock")

/** A lock not refreshed for this long is a stopped agent's (killed, or its host lost): taken over. */
const lockStaleMs = 30_000

/**
 * Hold the state directory for this agent alone while it runs (proper-lockfile: a lock directory
 * whose time is refreshed every 10 s and counts as stale after 30 s, so a killed agent's lock is
 * taken over by the next start, and a live one's is not). A lock held at start is waited for up to
 * a little longer than that (an agent killed a moment ago, restarted by systemd), then refused.
 * Released when the agent stops. `onLost` is called when the lock is lost while the agent runs.
 */
const holdStateDir = (dir: string, onLost: (error: Error) => void) => {
  const waitMs = lockStaleMs + 5_000
  /** One try (no retries inside the library: its retry loop cannot be interrupted by a stop). */
  const attempt = Effect.tryPromise({
    try: () =>
      lockfile.lock(dir, {
        lockfilePath: lockPathOf(dir),
        stale: lockStaleMs,
        update: 10_000,
        realpath: false,
        onCompromised: onLost,
      }),
    catch: (e) => e as NodeJS.ErrnoException,
  })
  const refused = (e: NodeJS.ErrnoException): StateDirLocked | StateDirUnusable =>
    e.code === "ELOCKED"
      ? new StateDirLocked({
          dir,
          message: `another kvdeploy-agent is running with the state directory ${shownPath(dir)} (its lock ${shownPath(lockPathOf(dir))} was ${refreshed ? "refreshed" : "held"} all along while this one waited ${waitMs / 1000} s)`,
        })
      : new StateDirUnusable({
          dir,
          code: e.code,
          message: `the state directory ${shownPath(dir)} cannot be locked (${e.code ?? String(e)})`,
        })
  /** One try, the lock released when the agent's scope closes (a failed try registers nothing). */
  const once = Effect.acquireRelease(attempt, (release) =>
    Effect.promise(() => release().catch(() => undefined)),
  )
  const held = (e: NodeJS.ErrnoException) => e.code === "ELOCKED"
  // The library calls a lock stale by its time against the wall clock, so a lock dated ahead (a
  // killed agent's, then the clock set back: a restored VM, a clock behind at boot) was never stale
  // until the clock caught up, and start-up failed on it with "refreshed all along". The waiting
  // agent watches the lock's time on its own monotonic clock instead: a lock whose time has not
  // changed for lockStaleMs is no running agent's, whatever its date, and is taken over.
  let seen: { readonly mtimeMs: number; readonly sinceMs: number } | undefined
  let refreshed = false
  const takeOverUnrefreshed = Effect.suspend(() => {
    let mtimeMs: number
    try {
      mtimeMs = statSync(lockPathOf(dir)).mtimeMs
    } catch {
      return Effect.void // gone: the next try takes it
    }
    const nowMs = performance.now()
    if (seen === undefined || seen.mtimeMs !== mtimeMs) {
      if (seen !== undefined) refreshed = true
      seen = { mtimeMs, sinceMs: nowMs }
      return Effect.void
    }
    if (nowMs - seen.sinceMs < lockStaleMs) return Effect.void
    seen = undefined
    rmSync(lockPathOf(dir), { recursive: true, force: true })
    return Effect.logWarning(
      `the state directory's lock was not refreshed for ${lockStaleMs / 1000} s while this agent waited (its time, ${new Date(mtimeMs).toISOString()}, is that of an agent that stopped without releasing it): taken over`,
    ).pipe(Effect.annotateLogs({ lock: lockPathOf(dir) }))
  })
  // The configuration was read before the wait: a SIGHUP during it (a file changed meanwhile) reloads
  // it once the agent runs.
  const onHup = () => {
    rememberHangup()
    Effect.runFork(
      Effect.logInfo(
        "SIGHUP while the agent waits for the state directory's lock: it reads the configuration again once it runs",
      ).pipe(Effect.provide(Logging.layer)),
    )
  }
  // A held lock is tried again every second for up to waitMs (an agent killed a moment ago leaves a
  // lock that turns stale). Each wait is interruptible: SIGTERM or SIGINT stops the waiting agent at once.
  const waitForIt = Effect.logInfo(
    `the state directory is locked by another agent, or by one stopped without releasing it: waiting up to ${waitMs / 1000} s for it`,
  ).pipe(
    Effect.annotateLogs({ lock: lockPathOf(dir) }),
    Effect.andThen(
      Effect.retry(once.pipe(Effect.tapError((e) => (held(e) ? takeOverUnrefreshed : Effect.void))), {
        schedule: Schedule.spaced(Duration.seconds(1)),
        while: held,
        times: waitMs / 1000,
      }),
    ),
  )
  return once.pipe(
    Effect.catchIf(held, () =>
      Effect.acquireUseRelease(
        Effect.sync(() => handleHangups(onHup)),
        () => waitForIt,
        (stopHandling) => Effect.sync(stopHandling),
      ),
    ),
    Effect.mapError(refused),
  )
}

/**
 * Why the agent could not start, in words: the error and the causes it wraps (a ServeError's
 * cause is the listen error: EADDRINUSE, EADDRNOTAVAIL, EACCES), with what to do for those.
 */
export const startFailure = (
  error: unknown,
  config: { listen?: string } = {},
): { error: string; fix?: string } => {
  const parts: Array<string> = []
  let code: string | undefined
  let current: unknown = error
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth++) {
    const e = current as {
      readonly _tag?: unknown
      readonly message?: unknown
      readonly code?: unknown
      readonly cause?: unknown
    }
    const text =
      typeof e.message === "string" && e.message !== ""
        ? e.message
        : typeof e._tag === "string"
          ? e._tag
          : String(current)
    if (!parts.includes(text)) parts.push(text)
    if (code === undefined && typeof e.code === "string") code = e.code
    current = e.cause
  }
  const where = config.listen === undefined ? "agent.listen" : `agent.listen ${config.listen}`
  const fix =
    error instanceof StateDirLocked
      ? "stop the other agent first, or give this one its own agent.state_dir: two agents over one state directory would both deploy its certificates"
      : error instanceof StateDirLockLost
        ? "another process took the state directory's lock, or it could not be refreshed (a full or read-only file system): make sure one agent alone uses this state_dir, then start it again"
        : error instanceof StateDirUnusable
          ? (error.fix ??
            `give agent.state_dir a directory this user can create and write (e.g. /var/lib/kvdeploy-agent); under systemd, leave state_dir out to use the unit's StateDirectory=, or add the directory to ReadWritePaths=`)
          : code === "EADDRINUSE"
            ? `${where} is in use by another process: choose another port in agent.listen, or stop the other process`
            : code === "EADDRNOTAVAIL"
              ? `${where} is not an address of this host: listen on 127.0.0.1, 0.0.0.0 or an address of one of its interfaces`
              : code === "EACCES"
                ? `${where} needs privileges (a port below 1024): choose a port of 1024 or more`
                : code !== undefined && unresolvedCodes.has(code)
                  ? `${where}: ${unresolvedFix}`
                  : undefined
  return {
    error: `${parts.join(": ")}${code === undefined || parts.some((p) => p.includes(code)) ? "" : ` (${code})`}`,
    ...(fix === undefined ? {} : { fix }),
  }
}

/** Problems as they are printed: PEM text that reached one (a value quoted back) is replaced. */
const shown = (problems: ReadonlyArray<ConfigProblem>): Array<ConfigProblem> =>
  problems.map((p) => ({
    field: withoutPem(p.field),
    message: withoutPem(p.message),
    fix: withoutPem(p.fix),
  }))

/**
 * Write to stdout (or stderr) and wait until it is handed to the system: runMain exits the process
 * right after, and output still queued for a pipe (64 KiB at a time) would be cut off.
 */
const written = (stream: NodeJS.WriteStream, text: string): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    stream.write(text, () => resume(Effect.void))
  })
const writtenOut = (text: string) => written(process.stdout, text)

const printProblems = (error: AgentConfigInvalid) =>
  written(
    process.stderr,
    [
      `kvdeploy-agent: the configuration ${error.path} has ${error.problems.length} problem(s):\n`,
      ...shown(error.problems).map((p) => `  ${p.field}: ${p.message}\n    fix: ${p.fix}\n`),
    ].join(""),
  )

/**
 * `--check --json`'s document for a command line refused before the file was read: the same fields
 * as every other verdict (`warnings` empty: the file was not judged).
 */
const refusedJson = (path: string, problem: ConfigProblem): string => {
  // Absolute, as every other verdict gives it (text that is no path is shown as shownConfigPath words it).
  const shown = shownConfigPath(path)
  return `${JSON.stringify({ path: shown === path && path !== "" ? resolve(path) : shown, valid: false, problems: [problem], warnings: [] }, null, 2)}\n`
}

/** `--check`'s warnings, after its verdict (nothing when there are none). */
const printWarnings = (path: string, warnings: ReadonlyArray<ConfigProblem>) =>
  warnings.length === 0
    ? Effect.void
    : written(
        process.stderr,
        [
          `kvdeploy-agent: the configuration ${shownPath(path)} has ${warnings.length} warning(s) (the agent runs all the same):\n`,
          ...shown(warnings).map((p) => `  ${p.field}: ${p.message}\n    fix: ${p.fix}\n`),
        ].join(""),
      )

const usage = `kvdeploy-agent ${version}: keeps Azure Key Vault certificates in step with certificate files.

Usage:
  kvdeploy-agent [--config FILE]   run (default FILE: $KVDEPLOY_AGENT_CONFIG or /etc/kvdeploy/agent.yaml)
  kvdeploy-agent --config FILE --check   validate the configuration, list every problem and warning (exit 0 or 2)
  kvdeploy-agent --config FILE --check --json
                                   the same as one JSON document on stdout: {path, valid, deployments, allowedTenants | problems, warnings}
  kvdeploy-agent --print-schema    print the configuration's JSON Schema
  kvdeploy-agent --version [--json]

Signals: SIGTERM/SIGINT finish the deploys in flight (within shutdown_grace_seconds) and exit 0, or 1 when the grace period ends with deploys unfinished; SIGHUP reloads the configuration.
HTTP (default 127.0.0.1:9464): /metrics, /healthz, /readyz. Documentation: docs/agent.md.
`

/** The options the command line takes, as an unknown one's did-you-mean names them. */
const agentOptions = ["--config", "--check", "--json", "--print-schema", "--version", "--help"]

export const main = (argv: ReadonlyArray<string>): void => {
  let args: ReturnType<
    typeof parseArgs<{
      options: {
        config: { type: "string"; short: "c" }
        check: { type: "boolean" }
        json: { type: "boolean" }
        "print-schema": { type: "boolean" }
        version: { type: "boolean" }
        help: { type: "boolean"; short: "h" }
      }
    }>
  >
  try {
    args = parseArgs({
      args: [...argv],
      options: {
        config: { type: "string", short: "c" },
        check: { type: "boolean" },
        json: { type: "boolean" },
        "print-schema": { type: "boolean" },
        version: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    })
  } catch (e) {
    // An unknown option quoted back may be key text pasted on the command line.
    const message = withoutKeyText((e as Error).message)
    // An option near a known one (`--chek`): the known one, as kvdeploy's own CLI suggests (only a
    // known option's name is printed, never what was typed).
    const unknownOption = /^Unknown option '(--?[^'=\s]+)/.exec((e as Error).message)?.[1]
    const suggestion = didYouMean(unknownOption, agentOptions)
    if (argv.includes("--json"))
      process.stdout.write(
        refusedJson(configPathOf(argv), {
          field: "(command line)",
          message,
          fix: `${suggestion}see kvdeploy-agent --help`,
        }),
      )
    process.stderr.write(
      `kvdeploy-agent: ${message}\n${suggestion === "" ? "" : `  ${suggestion.trimEnd()}\n`}\n${usage}`,
    )
    process.exitCode = 2
    return
  }
  if (configFlagCount(argv) > 1) {
    // parseArgs keeps the last one: the operator may have meant either.
    const problem = {
      field: "--config",
      message: "is given more than once",
      fix: "give the configuration file once (one agent reads one file; run one agent per file)",
    }
    if (argv.includes("--json")) process.stdout.write(refusedJson(configPathOf(argv), problem))
    process.stderr.write(`kvdeploy-agent: --config ${problem.message}\n  fix: ${problem.fix}\n`)
    process.exitCode = 2
    return
  }
  // --check with --version, --print-schema or --help would print those and exit 0: a script reading
  // the exit code would take the configuration for valid without its having been read.
  const alongside = (["version", "print-schema", "help"] as const).filter((o) => args.values[o] === true)
  if (args.values.check === true && alongside.length > 0) {
    const problem = {
      field: "(command line)",
      message: `--check goes without --${alongside.join(" or --")}`,
      fix: "run kvdeploy-agent --config FILE --check [--json] alone to check the configuration",
    }
    if (args.values.json === true)
      process.stdout.write(refusedJson(configPathOf(argv, args.values.config), problem))
    process.stderr.write(`kvdeploy-agent: ${problem.message}\n  fix: ${problem.fix}\n`)
    process.exitCode = 2
    return
  }
  if (args.values.version === true) {
    process.stdout.write(
      args.values.json === true
        ? `${JSON.stringify({ name: "kvdeploy-agent", version, node: process.version }, null, 2)}\n`
        : `${version}\n`,
    )
    return
  }
  if (args.values.json === true && args.values.check !== true) {
    process.stderr.write(
      `kvdeploy-agent: --json goes with --check or --version (the running agent logs JSON lines already)\n\n${usage}`,
    )
    process.exitCode = 2
    return
  }
  if (args.values.help === true) {
    process.stdout.write(usage)
    return
  }
  if (args.values["print-schema"] === true) {
    process.stdout.write(`${JSON.stringify(jsonSchema(), null, 2)}\n`)
    return
  }
  // A closed stdout (a log reader that went away) must not stop the deploys: log lines are dropped instead.
  process.stdout.on("error", () => {})
  const path = configPathOf(argv, args.values.config)
  const check = args.values.check === true
  const json = args.values.json === true
  if (shownConfigPath(path) !== path) {
    // A certificate or key given as the configuration's path: never printed, logged or opened.
    const problem = {
      field: args.values.config === undefined ? "$KVDEPLOY_AGENT_CONFIG" : "--config",
      message: "holds certificate or key text instead of the configuration file's path; it is not shown here",
      fix: "give the path of the agent's configuration file (YAML or JSON); certificates and keys go in files named by each deployment's source",
    }
    if (json) process.stdout.write(refusedJson(path, problem))
    process.stderr.write(`kvdeploy-agent: ${problem.field} ${problem.message}\n  fix: ${problem.fix}\n`)
    process.exitCode = 2
    return
  }
  // Written before runMain's exit: a pipe takes 64 KiB at a time, and a long --check --json
  // document was cut off when the process exited with the rest still queued.
  const printJson = (value: unknown) => writtenOut(`${JSON.stringify(value, null, 2)}\n`)
  /** The listen address, once the configuration is read (named in a start failure). */
  const listenOf: { listen?: string } = {}
  /** What `--check` warns of (printed with its verdict, valid or not). */
  const checked: { warnings: ReadonlyArray<ConfigProblem> } = { warnings: [] }
  const program = Effect.scoped(
    Effect.gen(function* () {
      /**
       * What --check finds beyond the file's own problems (`known`): the paths, the material, the
       * listen address; and the source paths that do not exist, as warnings. A source with a problem
       * of its own is not read (a `pfx_password_env` not set, or holding what may be the password:
       * its read would say it again, and print it).
       */
      const onDisk = (
        deployments: ReadonlyArray<DeploymentAt>,
        sources: ReadonlyArray<SourceAt>,
        stateDir: string | undefined,
        listen: { readonly host: string; readonly port: number } | undefined,
        known: ReadonlyArray<ConfigProblem>,
      ) =>
        Effect.gen(function* () {
          const paths = checkedPaths(sources, stateDir, known)
          const material = yield* checkedMaterial(deployments, [...known, ...paths.problems])
          return {
            problems: [
              ...paths.problems,
              ...material.problems,
              ...(listen === undefined ? [] : yield* listenProblems(listen.host, listen.port)),
            ],
            warnings: [...paths.warnings, ...material.warnings],
          }
        })
      const config = yield* loadAgentConfig(path, configPathOrigin(argv, args.values.config)).pipe(
        // An invalid file's valid parts are looked at too, in the same --check run.
        Effect.catchTag("AgentConfigInvalid", (e) => {
          if (check) checked.warnings = checkWarnings(e.path, e.checkable?.stateDir, e.problems)
          // A file with more problems than are listed already ends in "N more": nothing is read for
          // it (what it found could be neither listed nor counted).
          return check && e.checkable !== undefined && e.problems.length <= MAX_LISTED_PROBLEMS
            ? onDisk(
                e.checkable.deployments,
                e.checkable.sources,
                e.checkable.stateDir,
                e.checkable.listen,
                e.problems,
              ).pipe(
                Effect.flatMap((found) => {
                  checked.warnings = [
                    ...checkWarnings(e.path, e.checkable?.stateDir, [...e.problems, ...found.problems]),
                    ...found.warnings,
                  ]
                  return Effect.fail(
                    new AgentConfigInvalid({
                      path: e.path,
                      problems: listedProblems([...e.problems, ...found.problems]),
                    }),
                  )
                }),
              )
            : Effect.fail(e)
        }),
      )
      // The check is strict about the environment; the agent runs the deployments it can (logged below).
      // Both kinds in one run: an operator fixing the variables should not meet the paths only next time.
      if (check) {
        const deployments = config.deployments.map((d, index) => ({ ...d, index }))
        const disk = yield* onDisk(
          deployments,
          deployments,
          config.settings.stateDir,
          { host: config.settings.listenHost, port: config.settings.listenPort },
          [...(config.environmentProblems ?? []), ...(config.checkOnlyProblems ?? [])],
        )
        const found = [
          ...(config.environmentProblems ?? []),
          ...(config.checkOnlyProblems ?? []),
          ...disk.problems,
        ]
        const tenants = allowedTenantsCheck(
          config.deployments.map((d) => d.target.credentialMode),
          process.env.AZURE_ADDITIONALLY_ALLOWED_TENANTS,
          process.env.AZURE_IDENTITY_DISABLE_MULTITENANTAUTH,
        )
        checked.warnings = [
          ...(config.deployments.length === 0 ? [noDeploymentsWarning] : []),
          ...checkWarnings(config.path, config.settings.stateDir, found),
          ...disk.warnings,
          ...tenants.warnings,
        ]
        if (found.length > 0)
          return yield* new AgentConfigInvalid({ path: config.path, problems: listedProblems(found) })
        if (json)
          yield* printJson({
            path: config.path,
            valid: true,
            deployments: config.deployments.length,
            ...(tenants.report === undefined
              ? {}
              : {
                  allowedTenants: {
                    modes: tenants.report.modes,
                    tenants: shownAllowedTenants(tenants.report.allowed),
                  },
                }),
            warnings: shown(checked.warnings),
          })
        else {
          yield* writtenOut(
            `${config.path}: valid, ${config.deployments.length} deployment(s)\n${
              tenants.report === undefined
                ? ""
                : `  allowed tenants (${tenants.report.modes.join(", ")}): ${allowedTenantsInWords(tenants.report.allowed)}\n`
            }`,
          )
          yield* printWarnings(config.path, checked.warnings)
        }
        return
      }
      listenOf.listen = `${config.settings.listenHost}:${config.settings.listenPort}`
      yield* listenable(config.settings.listenHost, config.settings.listenPort)
      yield* stateDirUsable(config.settings.stateDir)
      // A directory on the way to it that others may write: one warning each, at start only (a
      // refusal would stop a pod whose volume a supplementary fsGroup may write, or an emptyDir).
      const parentWarnings = yield* Effect.sync(() => stateDirParentWarnings(config.settings.stateDir))
      yield* Effect.forEach(
        parentWarnings,
        (w) =>
          Effect.logWarning(w.message).pipe(
            Effect.annotateLogs({
              directory: w.directory,
              mode: w.mode,
              owner: w.owner,
              group: w.group,
              fix: w.fix,
            }),
          ),
        { discard: true },
      )
      // One agent per state directory. A lock lost while running stops this agent (exit 1): its deploys
      // in flight finish, as on SIGTERM, and nothing new starts.
      const lost = Deferred.makeUnsafe<never, StateDirLockLost>()
      yield* holdStateDir(config.settings.stateDir, (e) => {
        // Another agent may own the directory now: this one's records must not replace its own.
        refuseStateWrites(`the state directory's lock was lost (${e.message})`)
        Deferred.doneUnsafe(
          lost,
          Effect.fail(
            new StateDirLockLost({
              dir: config.settings.stateDir,
              message: `the lock on the state directory ${shownPath(config.settings.stateDir)} was lost: ${e.message}`,
            }),
          ),
        )
      })
      return yield* Effect.raceFirst(Layer.launch(agentLayer(config)), Deferred.await(lost))
    }),
  ).pipe(
    Effect.tapError((e) =>
      e instanceof AgentConfigInvalid
        ? json
          ? printJson({
              path: e.path,
              valid: false,
              problems: shown(e.problems),
              warnings: shown(checked.warnings),
            })
          : Effect.andThen(printProblems(e), printWarnings(e.path, checked.warnings))
        : json
          ? printJson({
              path,
              valid: false,
              problems: [
                {
                  field: "(configuration)",
                  message: startFailure(e, listenOf).error,
                  fix: startFailure(e, listenOf).fix ?? "see docs/agent.md",
                },
              ],
              warnings: shown(checked.warnings),
            })
          : Effect.logError(
              e instanceof StateDirLockLost ? "kvdeploy-agent stopped" : "kvdeploy-agent cannot start",
            ).pipe(Effect.annotateLogs({ ...startFailure(e, listenOf) })),
    ),
    // An unexpected throw (a bug) at start or in --check is said, never a silent exit: a line on
    // stderr or the --check --json document, or the start's error log line; then exit 70.
    Effect.tapCause((cause) => {
      if (!isDefectOnly(cause)) return Effect.void
      const problem = { field: "(internal)", message: internalErrorMessage(cause), fix: internalErrorFix }
      return check
        ? json
          ? printJson({ path: resolve(path), valid: false, problems: [problem], warnings: [] })
          : written(process.stderr, `kvdeploy-agent: ${problem.message}\n  fix: ${problem.fix}\n`)
        : Effect.logError("kvdeploy-agent stopped by an internal error", cause).pipe(
            Effect.annotateLogs({ error: problem.message, fix: problem.fix }),
          )
    }),
    Effect.provide(Logging.layer),
  )
  NodeRuntime.runMain(program, {
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      // Stopped: 0, or 1 when the grace period ended with deploys in flight (their outcome is unknown).
      if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause))
        return onExit(deploysUnfinishedAtShutdown() || stateUnwrittenAtExit() ? 1 : 0)
      if (isDefectOnly(exit.cause)) return onExit(INTERNAL_ERROR_EXIT)
      const error = Cause.squash(exit.cause)
      onExit(error instanceof AgentConfigInvalid ? 2 : 1)
    },
  })
}
