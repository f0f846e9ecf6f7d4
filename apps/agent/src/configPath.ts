/**
 * The configuration file the agent reads: `--config FILE` (or `--config=FILE`), else
 * $KVDEPLOY_AGENT_CONFIG, else /etc/kvdeploy/agent.yaml. Read from the raw arguments too, so that
 * `--check --json` names the file in its answer even when the command line or the Node.js version
 * is refused before the arguments are parsed. Uses nothing newer than the oldest Node.js it refuses.
 */
export const configPathOf = (argv: ReadonlyArray<string>, parsed?: string): string => {
  if (parsed !== undefined) return parsed
  let given: string | undefined
  argv.forEach((arg, i) => {
    if (arg === "--config" && argv[i + 1] !== undefined) given = argv[i + 1]
    else if (arg.startsWith("--config=")) given = arg.slice("--config=".length)
  })
  return given ?? process.env.KVDEPLOY_AGENT_CONFIG ?? "/etc/kvdeploy/agent.yaml"
}
