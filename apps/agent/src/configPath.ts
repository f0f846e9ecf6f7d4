/**
 * The configuration file the agent reads: `--config FILE` (`--config=FILE`, `-c FILE`, `-cFILE`,
 * as node's parseArgs reads them), else $KVDEPLOY_AGENT_CONFIG, else /etc/kvdeploy/agent.yaml.
 * Read from the raw arguments too, so that `--check --json` names the file in its answer even when
 * the command line or the Node.js version is refused before the arguments are parsed (an argument
 * that starts with "-" is not taken for the value). Uses nothing newer than the oldest Node.js it
 * refuses.
 */
/**
 * The path as a message shows it, what a terminal acts on escaped (core's shownPath does the same;
 * not imported here, which runs before the Node.js version is known to be one core runs on).
 */
const shownPath = (path: string): string =>
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the controls are what it escapes
  path.replace(/[\u0000-\u001f\u007f]|[\u0080-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0)
    return code < 0x80
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`
  })

export const configPathOf = (argv: ReadonlyArray<string>, parsed?: string): string =>
  located(argv, parsed).path

/** The configuration's path, and where it came from. */
const located = (
  argv: ReadonlyArray<string>,
  parsed: string | undefined,
): { readonly path: string; readonly origin: ConfigPathOrigin } => {
  if (parsed !== undefined) return { path: parsed, origin: "flag" }
  let given: string | undefined
  argv.forEach((arg, i) => {
    const next = argv[i + 1]
    if (arg === "--config" || arg === "-c") {
      if (next !== undefined && !next.startsWith("-")) given = next
    } else if (arg.startsWith("--config=")) given = arg.slice("--config=".length)
    else if (arg.startsWith("-c") && !arg.startsWith("--") && arg.length > 2) given = arg.slice(2)
  })
  if (given !== undefined) return { path: given, origin: "flag" }
  const variable = process.env.KVDEPLOY_AGENT_CONFIG
  if (variable !== undefined) return { path: variable, origin: "variable" }
  return { path: "/etc/kvdeploy/agent.yaml", origin: "default" }
}

/** Where the configuration's path came from: `--config`, $KVDEPLOY_AGENT_CONFIG, or the default. */
export type ConfigPathOrigin = "flag" | "variable" | "default"

/** Where configPathOf took the path from (a fix for a file that cannot be read names it). */
export const configPathOrigin = (argv: ReadonlyArray<string>, parsed?: string): ConfigPathOrigin =>
  located(argv, parsed).origin

/**
 * What to do about a configuration file that cannot be read, by where its path came from: the fix
 * said "the path given with --config" to an agent given none.
 */
export const unreadableConfigFix = (path: string, origin: ConfigPathOrigin | undefined): string => {
  switch (origin) {
    case "flag":
      return `check the path given with --config (${shownPath(path)}) and its permissions`
    case "variable":
      return `check the path $KVDEPLOY_AGENT_CONFIG holds (${shownPath(path)}; no --config was given, so the agent read that variable) and its permissions; or give the file with --config FILE`
    case "default":
      return `no --config was given and $KVDEPLOY_AGENT_CONFIG is not set, so the agent read the default ${shownPath(path)}: put the configuration there, or give its path with --config FILE (or $KVDEPLOY_AGENT_CONFIG); if it is there, check its permissions`
    default:
      return `check that ${shownPath(path)} is there and its permissions (the agent read it at start)`
  }
}

/**
 * How many times the command line gives the configuration (`--config FILE`, `--config=FILE`,
 * `-c FILE`, `-cFILE`): node's parseArgs keeps the last of several, silently.
 */
export const configFlagCount = (argv: ReadonlyArray<string>): number =>
  argv.filter(
    (arg) =>
      arg === "--config" ||
      arg === "-c" ||
      arg.startsWith("--config=") ||
      (arg.startsWith("-c") && !arg.startsWith("--") && arg.length > 2),
  ).length
