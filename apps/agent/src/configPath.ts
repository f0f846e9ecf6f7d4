/**
 * The configuration file the agent reads: `--config FILE` (`--config=FILE`, `-c FILE`, `-cFILE`,
 * as node's parseArgs reads them), else $KVDEPLOY_AGENT_CONFIG, else /etc/kvdeploy/agent.yaml.
 * Read from the raw arguments too, so that `--check --json` names the file in its answer even when
 * the command line or the Node.js version is refused before the arguments are parsed (an argument
 * that starts with "-" is not taken for the value). Uses nothing newer than the oldest Node.js it
 * refuses.
 */
export const configPathOf = (argv: ReadonlyArray<string>, parsed?: string): string => {
  if (parsed !== undefined) return parsed
  let given: string | undefined
  argv.forEach((arg, i) => {
    const next = argv[i + 1]
    if (arg === "--config" || arg === "-c") {
      if (next !== undefined && !next.startsWith("-")) given = next
    } else if (arg.startsWith("--config=")) given = arg.slice("--config=".length)
    else if (arg.startsWith("-c") && !arg.startsWith("--") && arg.length > 2) given = arg.slice(2)
  })
  return given ?? process.env.KVDEPLOY_AGENT_CONFIG ?? "/etc/kvdeploy/agent.yaml"
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
