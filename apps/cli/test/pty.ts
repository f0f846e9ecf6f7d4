/**
 * kvdeploy on a pseudo-terminal, under script(1) (util-linux; Debian's bsdutils, which .ci/run
 * installs). Without it the terminal tests are skipped locally, with a warning; with CI=true they
 * run, and fail.
 */
import { spawn, spawnSync } from "node:child_process"
import { baseEnv, bin } from "./harness.js"

export const hasScript = spawnSync("script", ["--version"]).status === 0
export const scriptSkipped = !hasScript && process.env.CI !== "true"
if (scriptSkipped)
  console.warn("\n!!! SKIPPING terminal tests: script(1) is not installed (they fail instead when CI=true)\n")

/** Throws when script(1) is missing (a test not skipped: CI=true). */
export const requireScript = (): void => {
  if (!hasScript) throw new Error("script(1) is missing (Debian's bsdutils); .ci/run installs it")
}

/**
 * Run kvdeploy under a pseudo-terminal and type `typed` once the prompt is on
 * the screen (typed earlier, the terminal itself would still echo it). With
 * `stdoutTo`, stdout goes to that file (`kvdeploy … > out.json`) and stderr
 * stays on the terminal.
 */
export const onTerminal = (
  args: ReadonlyArray<string>,
  typed: string,
  env: Record<string, string>,
  colour: boolean,
  stdoutTo?: string,
) =>
  new Promise<{ code: number | null; screen: string }>((resolve) => {
    const environment: Record<string, string> = { ...baseEnv(), ...env }
    environment.TERM = "xterm-256color"
    if (colour) delete environment.NO_COLOR
    const quoted = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`
    const command = [process.execPath, bin, ...args]
      .map(quoted)
      .concat(stdoutTo === undefined ? [] : [`> ${quoted(stdoutTo)}`])
      .join(" ")
    const child = spawn("script", ["-qec", command, "/dev/null"], {
      env: environment,
      stdio: ["pipe", "pipe", "pipe"],
    })
    let screen = ""
    child.stdout.on("data", (c: Buffer) => {
      screen += c.toString()
    })
    let hasTyped = false
    child.stdout.on("data", () => {
      if (!hasTyped && /Password for|Passphrase for/.test(screen)) {
        hasTyped = true
        setTimeout(() => child.stdin.write(typed), 200)
      }
    })
    const kill = setTimeout(() => child.kill("SIGKILL"), 60_000)
    child.on("close", (code) => {
      clearTimeout(kill)
      resolve({ code, screen })
    })
  })
