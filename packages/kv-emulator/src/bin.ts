#!/usr/bin/env node
/**
 * kvdeploy-emulator: starts the Key Vault + Entra ID emulator in the foreground
 * and prints what a client needs (vault URLs, CA file, AZURE_* variables per
 * auth mode, a kvdeploy target configuration). Ctrl-C stops it.
 *
 *   kvdeploy-emulator [--vault NAME[:PORT]]... [--host 127.0.0.1] [--bind ADDR]
 *                     [--entra-port N] [--mi-port N] [--state-dir DIR] [--ca-out FILE]
 *                     [--no-throttle] [--pfx-workers N]
 *                     [--import-content-type detect|required] [--json]
 *
 * Exit status: 0 after SIGINT/SIGTERM (everything stopped), 2 for a bad command
 * line (a --state-dir that is no directory it can write in, or that holds a vault
 * file it cannot load, too), 1 when the emulator cannot start.
 */
import { copyFileSync } from "node:fs"
import { parseArgs } from "node:util"
import { shownPath } from "@kvdeploy/core"
import { type EmulatorOptions, start, type VaultOptions } from "./emulator.js"
import { StateDirError, StateFileError } from "./persistence.js"

const usage = `usage: kvdeploy-emulator [--vault NAME[:PORT]]... [--host HOST] [--bind ADDR] [--entra-port N]
                         [--mi-port N] [--state-dir DIR] [--ca-out FILE] [--no-throttle]
                         [--pfx-workers N] [--import-content-type detect|required] [--json]`

/**
 * A start the emulator refuses, before any server opens: its message names what to fix, exit status 2.
 * The usage follows only a {@link UsageError}: a damaged vault file or a state directory it cannot
 * write is not a mistake in how the command line is written, and the usage would bury the fix.
 */
class Refused extends Error {}

/** A command line the emulator cannot run with: printed with the usage, exit status 2. */
class UsageError extends Refused {}

const port = (flag: string, value: string): number => {
  const n = Number(value)
  if (!/^\d+$/.test(value) || n > 65_535)
    throw new UsageError(`${flag} needs a port number (0-65535), got "${value}"`)
  return n
}

const count = (flag: string, value: string): number => {
  if (!/^\d+$/.test(value) || Number(value) > 64)
    throw new UsageError(`${flag} needs a whole number from 0 to 64, got "${value}"`)
  return Number(value)
}

const importContentType = (value: string): "detect" | "required" => {
  if (value !== "detect" && value !== "required")
    throw new UsageError(
      `--import-content-type needs detect (PEM recognised by its content) or required (Key Vault's rule: the policy's secret_props.contentType says the format), got "${value}"`,
    )
  return value
}

const parse = () => {
  try {
    return parseArgs({
      options: {
        vault: { type: "string", multiple: true },
        host: { type: "string" },
        bind: { type: "string" },
        "entra-port": { type: "string" },
        "mi-port": { type: "string" },
        "state-dir": { type: "string" },
        "ca-out": { type: "string" },
        "no-throttle": { type: "boolean" },
        "pfx-workers": { type: "string" },
        "import-content-type": { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }).values
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e))
  }
}

const main = async (): Promise<void> => {
  const values = parse()
  if (values.help === true) {
    process.stdout.write(`${usage}\n`)
    return
  }
  const vaults: VaultOptions[] = (values.vault ?? ["kvdeploy-demo"]).map((v) => {
    const [name = "", p, ...rest] = v.split(":")
    if (!/^[0-9a-zA-Z-]{1,63}$/.test(name) || rest.length > 0)
      throw new UsageError(`--vault needs NAME or NAME:PORT (NAME: letters, digits and -), got "${v}"`)
    return p !== undefined ? { name, port: port("--vault", p) } : { name }
  })
  const options: EmulatorOptions = {
    vaults,
    ...(values.host !== undefined ? { host: values.host } : {}),
    ...(values.bind !== undefined ? { bind: values.bind } : {}),
    ...(values["entra-port"] !== undefined ? { entraPort: port("--entra-port", values["entra-port"]) } : {}),
    ...(values["mi-port"] !== undefined ? { managedIdentityPort: port("--mi-port", values["mi-port"]) } : {}),
    ...(values["state-dir"] !== undefined ? { stateDir: values["state-dir"] } : {}),
    ...(values["no-throttle"] === true ? { throttling: false as const } : {}),
    ...(values["pfx-workers"] !== undefined
      ? { pfxWorkers: count("--pfx-workers", values["pfx-workers"]) }
      : {}),
    ...(values["import-content-type"] !== undefined
      ? { importContentType: importContentType(values["import-content-type"]) }
      : {}),
  }
  const emulator = await start(options).catch((e: unknown) => {
    // A vault's file there that cannot be loaded: each named, with what is wrong and the fix (not
    // its content), by the flag that pointed at it.
    if (e instanceof StateFileError)
      throw new Refused(
        e.files
          .map((f) => `--state-dir ${e.path}: vault ${f.vault}: ${f.file} ${f.reason}; ${f.fix}`)
          .join("\nkvdeploy-emulator: "),
      )
    // A state directory that cannot hold the state is a bad command line: said by its flag.
    if (e instanceof StateDirError)
      throw new Refused(
        `--state-dir ${shownPath(e.path)}: ${e.reason}; ${e.fix?.replaceAll("stateDir", "--state-dir") ?? "give a directory it can write to, or a path where it can make one"}`,
      )
    throw e
  })
  let caFile = emulator.caFile
  const caOut = values["ca-out"]
  if (caOut !== undefined) {
    copyFileSync(emulator.caFile, caOut)
    caFile = caOut
  }
  const envOf = (e: Readonly<Record<string, string>>) => ({ ...e, NODE_EXTRA_CA_CERTS: caFile })
  const firstVault = emulator.vaults[0]
  const summary = {
    vaults: emulator.vaults,
    caFile,
    tenantId: emulator.tenantId,
    authorityHost: emulator.authorityHost,
    adminUrl: emulator.adminUrl,
    adminKey: emulator.adminKey,
    env: Object.fromEntries(Object.entries(emulator.env).map(([k, v]) => [k, envOf(v)])),
    cloud: emulator.cloud,
    targetConfig: firstVault ? emulator.targetConfig(firstVault.name, "demo-certificate") : undefined,
  }
  // The signal handlers are in place before the first line is printed: a client that stops the
  // emulator as soon as it has read the environment must get a clean stop (exit 0), not the
  // default SIGTERM death (the handlers used to be installed just after the write).
  const stop = () => {
    void emulator.stop().then(() => process.exit(0))
  }
  process.on("SIGINT", stop)
  process.on("SIGTERM", stop)
  if (values.json === true) process.stdout.write(`${JSON.stringify(summary)}\n`)
  else {
    const lines = [
      "kv-emulator running (Ctrl-C to stop)",
      "",
      ...emulator.vaults.map((v) => `vault ${v.name}: ${v.url}`),
      `Entra authority host: ${emulator.authorityHost}   tenant: ${emulator.tenantId}`,
      `CA certificate (public): ${caFile}`,
      `admin API: ${emulator.adminUrl}  (header x-kv-emulator-admin-key: ${emulator.adminKey})`,
      "",
      ...Object.entries(summary.env).flatMap(([mode, e]) => [
        `# ${mode}`,
        ...Object.entries(e).map(([k, v]) => `export ${k}=${JSON.stringify(v)}`),
        "",
      ]),
      "# kvdeploy target configuration",
      JSON.stringify(summary.targetConfig, null, 2),
      "",
    ]
    process.stdout.write(`${lines.join("\n")}\n`)
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`kvdeploy-emulator: ${e instanceof Error ? e.message : String(e)}\n`)
  if (e instanceof Refused) {
    if (e instanceof UsageError) process.stderr.write(`${usage}\n`)
    process.exit(2)
  }
  process.exit(1)
})
