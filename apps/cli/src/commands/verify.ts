/**
 * `kvdeploy verify`: does the vault serve this certificate (the latest
 * version's x5t equals the file's)? Optionally: does a TLS endpoint serve it,
 * polling until a timeout. Exit 0 yes, 1 no. The certificate is the leaf a
 * deploy of the same file would import (leaf.ts; a PFX, and a --cert bundle with
 * its key, are read by deploy's code, the key judged as deploy judges it: exit 2
 * for a key deploy refuses).
 */
import { isIP } from "node:net"
import { connect } from "node:tls"
import { spanText } from "@kvdeploy/core"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { parseDuration } from "../cli/duration.js"
import * as flags from "../cli/flags.js"
import { leafOf, readLeaf, readPfxLeaf } from "../cli/leaf.js"
import { type MaterialFlags, materialFlagProblems } from "../cli/material.js"
import { ExitCode, ExitWith, type Problem, usage, usageOne } from "../cli/problems.js"
import { resolveTarget } from "../cli/target.js"
import { printJson, printLines, progress, styleOut } from "../cli/terminal.js"
import { credentialInUse, softDeletedCertificate, useVault, vaultProblem } from "../cli/vault.js"

/** The material flags of a PFX alone (verify has no --chain, --key or --key-passphrase-env). */
const pfxFlags = (pfx: string, pfxPasswordEnv: Option.Option<string>): MaterialFlags => ({
  cert: Option.none(),
  chain: Option.none(),
  key: Option.none(),
  keyPassphraseEnv: Option.none(),
  pfx: Option.some(pfx),
  pfxPasswordEnv,
})

interface Check {
  readonly check: "vault" | "endpoint"
  readonly where: string
  readonly serves: boolean
  readonly detail: string
  readonly servedX5t: string | undefined
  /** The vault check's: the version the vault serves (its latest), when there is one; its detail names it too. */
  readonly servedVersionId?: string
  /** What to do, when the answer has a way forward (a soft-deleted name: its recovery). */
  readonly fix?: string
}

/**
 * The SNI name sent for `servername` (--servername, or the endpoint's host): none for an IP
 * address, as SNI carries DNS names only (RFC 6066; Node warns, DEP0123).
 */
const sniOf = (servername: string): string | undefined => (isIP(servername) === 0 ? servername : undefined)

/** The leaf an endpoint presents, or why it could not be read. */
const peerLeaf = (host: string, port: number, sni: string | undefined, timeoutMs: number) =>
  new Promise<{ der: Uint8Array } | { error: string }>((resolve) => {
    const socket = connect({
      host,
      port,
      ...(sni === undefined ? {} : { servername: sni }),
      rejectUnauthorized: false,
      timeout: timeoutMs,
    })
    const done = (v: { der: Uint8Array } | { error: string }) => {
      socket.destroy()
      resolve(v)
    }
    socket.once("secureConnect", () => {
      const peer = socket.getPeerCertificate(false)
      if (peer === null || peer.raw === undefined) done({ error: "the endpoint presented no certificate" })
      else done({ der: new Uint8Array(peer.raw) })
    })
    socket.once("timeout", () => done({ error: "timed out" }))
    socket.once("error", (e) => done({ error: e.message }))
  })

/** A certificate served but outside its validity window, which clients refuse. */
const validityWarnings = (
  notAfter: Date,
  notBefore: Date,
  now: number,
): Array<{ readonly field: string; readonly message: string; readonly fix: string }> =>
  now >= notAfter.getTime()
    ? [
        {
          field: "certificate",
          message: `expired at ${notAfter.toISOString()} (${spanText(now - notAfter.getTime())} ago): it is served, and clients refuse it`,
          fix: "deploy a renewed certificate (`kvdeploy deploy`), then verify that one",
        },
      ]
    : now < notBefore.getTime()
      ? [
          {
            field: "certificate",
            message: `is not valid until ${notBefore.toISOString()} (in ${spanText(notBefore.getTime() - now)}): it is served, and clients refuse it until then`,
            fix: "deploy a certificate valid now (`kvdeploy restore` puts an earlier version back), or wait",
          },
        ]
      : []

export const verify = Command.make(
  "verify",
  {
    ...flags.target,
    name: flags.certificateName,
    cert: Flag.String("cert").pipe(
      Flag.withMetavar("FILE|-"),
      Flag.withDescription(
        "The certificate (PEM or DER). Of a bundle, the leaf is the certificate its private key matches, as deploy picks it; without a key, the one that issued none of the others. '-' reads stdin.",
      ),
      Flag.optional,
    ),
    pfx: flags.material.pfx,
    pfxPasswordEnv: flags.material.pfxPasswordEnv,
    endpoint: Flag.String("endpoint").pipe(
      Flag.withMetavar("HOST:PORT"),
      Flag.withDescription(
        "Also check that this TLS endpoint presents the certificate (polls until --timeout).",
      ),
      Flag.optional,
    ),
    servername: Flag.String("servername").pipe(
      Flag.withMetavar("NAME"),
      Flag.withDescription(
        "SNI name to send to --endpoint (default: its host; none for an IP address, which SNI cannot carry).",
      ),
      Flag.optional,
    ),
    timeout: Flag.String("timeout").pipe(
      Flag.withMetavar("DURATION"),
      Flag.withDescription(
        "How long to poll --endpoint until it serves the certificate (default 0s: one attempt), e.g. 5m.",
      ),
      Flag.optional,
    ),
    json: flags.json,
  },
  (input) =>
    Effect.gen(function* () {
      // Every problem of the input in one usage error: the flags, the target and the certificate file.
      const problems: Array<Problem> = []
      const timeout = Option.getOrElse(input.timeout, () => "0s")
      const timeoutMs = parseDuration(timeout)
      if (timeoutMs === undefined)
        problems.push({
          field: "--timeout",
          message: `${JSON.stringify(timeout)} is not a duration`,
          fix: "write a number and a unit: 30s, 5m",
        })
      // The endpoint's own flags do nothing without it: said, not silently ignored.
      if (Option.isNone(input.endpoint)) {
        if (Option.isSome(input.timeout))
          problems.push({
            field: "--timeout",
            message: "applies only to --endpoint (how long to poll it); without one it does nothing",
            fix: "give the TLS endpoint to poll with --endpoint HOST:PORT, or drop --timeout",
          })
        if (Option.isSome(input.servername))
          problems.push({
            field: "--servername",
            message: "applies only to --endpoint (the SNI name sent to it); without one it does nothing",
            fix: "give the TLS endpoint with --endpoint HOST:PORT, or drop --servername",
          })
      }
      let endpoint: { host: string; port: number } | undefined
      if (Option.isSome(input.endpoint)) {
        const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(input.endpoint.value)
        const port = Number(m?.[2])
        if (m === null)
          problems.push({
            field: "--endpoint",
            message: `${JSON.stringify(input.endpoint.value)} is not HOST:PORT`,
            fix: "write e.g. api.example.com:443",
          })
        else if (!(port > 0 && port < 65536))
          problems.push({
            field: "--endpoint",
            message: `the port ${m[2]} is not a TCP port`,
            fix: "give a port from 1 to 65535, e.g. api.example.com:443",
          })
        else endpoint = { host: (m[1] ?? "").replace(/^\[|\]$/g, ""), port }
      }
      const checkVault = Option.isSome(input.config) || Option.isSome(input.vaultUrl)
      if (!checkVault && Option.isNone(input.endpoint))
        problems.push({
          field: "--vault-url",
          message: "is missing (and no --endpoint was given)",
          fix: "give the target (--config or --vault-url and --name), --endpoint, or both",
        })
      const target = checkVault ? yield* Effect.result(resolveTarget(input, { name: input.name })) : undefined
      if (target?._tag === "Failure") {
        // A failure that is not the input's (exit 1) stands alone.
        if (target.failure.exitCode !== ExitCode.usage) return yield* target.failure
        problems.push(...target.failure.problems)
      }
      // The certificate: --cert (PEM or DER), or --pfx read as deploy reads it.
      const cert = Option.getOrUndefined(input.cert)
      const pfx = Option.getOrUndefined(input.pfx)
      if (cert !== undefined && pfx !== undefined)
        problems.push({
          field: "--pfx",
          message: "cannot be combined with --cert",
          fix: "give the certificate either as --cert FILE (PEM or DER) or as --pfx FILE",
        })
      else if (cert === undefined && pfx === undefined)
        problems.push({
          field: "--cert",
          message: "is missing",
          fix: "give the certificate with --cert FILE (PEM or DER), or the PFX that was deployed with --pfx FILE",
        })
      if (pfx === undefined && Option.isSome(input.pfxPasswordEnv))
        problems.push({
          field: "--pfx-password-env",
          message: "applies only to --pfx",
          fix: "drop it, or give the PFX with --pfx FILE",
        })
      // A password variable not set and a PFX file that cannot be read, found as deploy finds them (nothing read yet).
      if (pfx !== undefined && cert === undefined)
        problems.push(...(yield* materialFlagProblems(pfxFlags(pfx, input.pfxPasswordEnv))))
      // Standard input is read, and a password asked for, only when nothing else is wrong (a pipe
      // that never closes must not hold back the other problems); a --cert file is read to check
      // it in any case.
      const read =
        cert === undefined || (cert === "-" && problems.length > 0)
          ? undefined
          : yield* Effect.result(readLeaf("--cert", cert))
      if (read?._tag === "Failure") problems.push(...read.failure.problems)
      if (problems.length > 0 || timeoutMs === undefined || read?._tag === "Failure") {
        const [only] = problems
        return yield* problems.length === 1 && only !== undefined
          ? usage(`${only.field}: ${only.message}`, problems)
          : usage(`the input has ${problems.length} problems`, problems)
      }
      // The PFX's leaf is the certificate its key matches (decodePfx), the one deploy imports; of a
      // PFX without a key, the one that issued none of the others.
      const leaf =
        read?._tag === "Success"
          ? read.success
          : pfx !== undefined
            ? yield* readPfxLeaf(pfxFlags(pfx, input.pfxPasswordEnv), pfx)
            : yield* usageOne("--cert", "is missing", "give --cert FILE or --pfx FILE")
      const config = target?._tag === "Success" ? target.success.config : undefined
      const nameField = target?._tag === "Success" ? target.success.nameField : "--name"
      const checks: Array<Check> = []
      if (config !== undefined) {
        const target = config
        yield* progress(`reading ${target.certificateName}…`)
        const credential = yield* credentialInUse(target)
        const [latest, softDeleted] = yield* useVault(target, (vault) =>
          vault.getLatest(target.certificateName).pipe(
            Effect.map((v) => [v, undefined] as const),
            // A name that holds no certificate may be held by a soft-deleted one: said as show and
            // versions say it, with the way back (not being allowed to read it: "does not exist").
            Effect.catchTag("VaultNotFound", () =>
              softDeletedCertificate(vault, target, nameField).pipe(
                Effect.map((problem) => [undefined, problem.problems[0]] as const),
                Effect.orElseSucceed(() => [undefined, undefined] as const),
              ),
            ),
          ),
        ).pipe(
          Effect.mapError((e) =>
            "_tag" in e && e._tag === "CliProblem" ? e : vaultProblem("getLatest", e, credential),
          ),
        )
        checks.push({
          check: "vault",
          where: `${target.vaultUrl} ${target.certificateName}`,
          serves: latest !== undefined && latest.x5t === leaf.x5t && latest.enabled,
          servedX5t: latest?.x5t,
          ...(latest === undefined ? {} : { servedVersionId: latest.versionId }),
          ...(softDeleted === undefined ? {} : { fix: softDeleted.fix }),
          detail:
            softDeleted !== undefined
              ? `the certificate is soft-deleted: ${softDeleted.message}`
              : latest === undefined
                ? "the certificate does not exist"
                : latest.x5t === ""
                  ? // A create started in the vault that has not completed (waiting for its CA, or a merge).
                    `the latest version ${latest.versionId} holds no certificate yet (a create or merge of it has not completed: \`az keyvault certificate pending show\`)`
                  : latest.x5t !== leaf.x5t
                    ? `the latest version ${latest.versionId} is another certificate`
                    : !latest.enabled
                      ? `the latest version ${latest.versionId} is disabled`
                      : `the latest version ${latest.versionId} is this certificate`,
        })
      }
      if (endpoint !== undefined) {
        const servername = Option.getOrElse(input.servername, () => endpoint.host)
        const sni = sniOf(servername)
        // What was sent, as the check names the endpoint: the SNI name, or none (and why).
        const where = `${endpoint.host}:${endpoint.port} (${sni === undefined ? `no SNI: ${servername} is an IP address` : `SNI ${sni}`})`
        // Measured on the monotonic clock: a wall clock set back (NTP stepping it, a VM restored)
        // would otherwise move the deadline with it, and the polling would go on that much longer.
        const deadline = performance.now() + timeoutMs
        let attempt = 0
        const look = Effect.gen(function* () {
          attempt++
          yield* progress(`connecting to ${endpoint.host}:${endpoint.port} (attempt ${attempt})…`)
          const got = yield* Effect.promise(() =>
            peerLeaf(
              endpoint.host,
              endpoint.port,
              sni,
              Math.max(1000, Math.min(10_000, deadline - performance.now())),
            ),
          )
          if (!("der" in got))
            return {
              check: "endpoint",
              where,
              serves: false,
              servedX5t: undefined,
              detail: got.error,
            } satisfies Check
          const served = leafOf(got.der)
          return {
            check: "endpoint",
            where,
            serves: served.x5t === leaf.x5t,
            servedX5t: served.x5t,
            detail:
              served.x5t === leaf.x5t
                ? "presents this certificate"
                : `presents another certificate (${served.subject}, x5t ${served.x5t})`,
          } satisfies Check
        })
        // Poll every 2 seconds while the endpoint presents something else and another look fits before the deadline.
        const last: Check = yield* look.pipe(
          Effect.repeat({
            schedule: Schedule.spaced("2 seconds"),
            while: (c) => !c.serves && performance.now() + 2000 <= deadline,
          }),
        )
        checks.push(last)
      }
      const serves = checks.every((c) => c.serves)
      // Served, and refused by clients all the same: a certificate outside its validity window.
      const warnings = serves ? validityWarnings(leaf.notAfter, leaf.notBefore, Date.now()) : []
      if (input.json) yield* printJson({ serves, x5t: leaf.x5t, subject: leaf.subject, checks, warnings })
      else {
        const s = styleOut()
        yield* printLines([
          `${serves ? s.green("yes") : s.red("no")}  ${leaf.subject}  x5t ${leaf.x5t}`,
          ...checks.flatMap((c) => [
            `  ${c.serves ? s.green("✓") : s.red("✗")} ${c.check.padEnd(8)} ${c.where}: ${c.detail}`,
            ...(c.fix === undefined ? [] : [`             fix: ${c.fix}`]),
          ]),
          ...warnings.flatMap((w) => [
            `  ${s.yellow("warning")} ${w.field}: ${w.message}`,
            `             fix: ${w.fix}`,
          ]),
        ])
      }
      if (!serves) return yield* new ExitWith({ exitCode: ExitCode.failed })
    }),
).pipe(
  Command.withDescription(
    "Answer whether the vault serves this certificate: the latest version's x5t (SHA-1 thumbprint) equals the file's, and the version is enabled. The certificate is the leaf deploy would import: of a --cert bundle, the certificate its private key matches, or without a key the one that issued none of the others (two such certificates are refused, named); of a --pfx, the certificate its key matches, or of one without a key (openssl pkcs12 -export -nokeys) the one that issued none of the others (password as for deploy: the variable named by --pfx-password-env, or a prompt on a terminal). A private key in the file is judged as deploy judges it: one deploy refuses (an issuer's key, a key that matches none of the certificates, a damaged one) is refused in deploy's words, exit 2. With --endpoint HOST:PORT, also whether a TLS endpoint presents it (e.g. an App Gateway after it picked up the new version), polling until --timeout; the SNI sent is --servername or the host, none for an IP address (--timeout and --servername apply to --endpoint alone: without it they are a usage error). A certificate served outside its validity window (expired, or not yet valid) is a warning (`warnings` in --json): clients refuse it. Needs certificates/get. Exit 0 yes, 1 no or the vault cannot be read (with --json, an error document for the latter), 2 usage error or a file deploy would refuse for its key.",
  ),
  Command.withShortDescription("Does the vault (and an endpoint) serve this certificate?"),
  Command.withExamples([
    {
      command: "kvdeploy verify --config target.json --cert leaf.pem",
      description: "Is leaf.pem what the vault serves?",
    },
    {
      command:
        "PFX_PASSWORD=… kvdeploy verify --config target.json --pfx api.pfx --pfx-password-env PFX_PASSWORD",
      description: "Is the PFX that was deployed what the vault serves?",
    },
    {
      command:
        "kvdeploy verify --config target.json --cert leaf.pem --endpoint api.example.com:443 --timeout 10m",
      description: "…and does the endpoint present it (waiting up to 10 minutes)?",
    },
  ]),
)
