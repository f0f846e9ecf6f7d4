// Entry point of the `kvdeploy` binary.
//
// Help is static, so the build renders it once per command (dist/help.json,
// with and without colours) and `kvdeploy [COMMAND] --help` prints it without
// loading the command tree; so does `kvdeploy --version`. Everything else turns on Node's on-disk compile
// cache (bytecode of kvdeploy's own bundle; no data) in a directory of the
// user's own, and loads the CLI.
import { lstatSync, mkdirSync, readFileSync } from "node:fs"
import * as nodeModule from "node:module"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { version } from "./version.js"

const argv = process.argv.slice(2)

// SIGUSR1 opens Node's inspector (127.0.0.1:9229) in a process without a listener for it, and any
// local user could then connect and read the deploy's memory and environment (the key being
// deployed, PFX passwords, AZURE_CLIENT_SECRET). A listener keeps it closed, as the agent's does.
process.on("SIGUSR1", () => {
  process.stderr.write(
    "kvdeploy: SIGUSR1 ignored: kvdeploy does not open Node's inspector (it would let local users read its memory and environment)\n",
  )
})

const cachedHelp = (): string | undefined => {
  if (process.env.KVDEPLOY_NO_HELP_CACHE !== undefined) return undefined
  const asksHelp = (a: string | undefined) => a === "--help" || a === "-h"
  const command =
    argv.length === 1 && asksHelp(argv[0]) ? "" : argv.length === 2 && asksHelp(argv[1]) ? argv[0] : undefined
  if (command === undefined) return undefined
  try {
    const pages = JSON.parse(readFileSync(new URL("./help.json", import.meta.url), "utf8")) as Record<
      string,
      { readonly plain: string; readonly coloured: string }
    >
    const page = Object.hasOwn(pages, command) ? pages[command] : undefined
    if (page === undefined) return undefined
    const colour =
      process.stdout.isTTY === true &&
      process.env.NO_COLOR === undefined &&
      process.env.TERM !== "dumb" &&
      process.env.FORCE_COLOR !== "0"
    return colour ? page.coloured : page.plain
  } catch {
    return undefined
  }
}

/**
 * `kvdeploy --version` (or `-v`), alone or with `--json`: the framework's answer (main.ts's
 * presenter: `kvdeploy VERSION`, or `{name, version, node}`), printed from the version the bundle
 * inlines without loading the command tree. `KVDEPLOY_NO_HELP_CACHE=1` asks the framework instead
 * (a test checks both give the same).
 */
const quickVersion = (): string | undefined => {
  if (process.env.KVDEPLOY_NO_HELP_CACHE !== undefined) return undefined
  const rest = argv.filter((a) => a !== "--json")
  if (rest.length !== 1 || argv.length - rest.length > 1) return undefined
  if (rest[0] !== "--version" && rest[0] !== "-v") return undefined
  return rest.length < argv.length
    ? `${JSON.stringify({ name: "kvdeploy", version, node: process.version }, null, 2)}\n`
    : `kvdeploy ${version}\n`
}

/**
 * Where the compile cache may live: `<tmpdir>/kvdeploy-compile-cache-<uid>`, created with mode
 * 0700, and used only while it is a directory (not a link) that this account owns and no other can
 * write. Node loads the bytecode it finds there, so a directory another local account made first
 * must not be it: Node's default (`<tmpdir>/node-compile-cache`) is one name for every account.
 * None on systems without user ids. `NODE_COMPILE_CACHE`, when set, is the operator's choice and
 * Node's own to use.
 */
const privateCacheDirectory = (): string | undefined => {
  const uid = process.getuid?.()
  if (uid === undefined) return undefined
  const directory = join(tmpdir(), `kvdeploy-compile-cache-${uid}`)
  try {
    mkdirSync(directory, { mode: 0o700 })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") return undefined
  }
  try {
    const stats = lstatSync(directory)
    return stats.isDirectory() && stats.uid === uid && (stats.mode & 0o077) === 0 ? directory : undefined
  } catch {
    return undefined
  }
}

/** Why this Node.js cannot run kvdeploy (older than the `engines` range: it lacks APIs kvdeploy uses, such as X509Certificate's validToDate), or undefined. */
const unsupportedNode = (): string | undefined => {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number)
  return major < 22 || (major === 22 && minor < 10)
    ? `kvdeploy needs Node.js 22.10 or later, and this is ${process.version}: run it with a newer node (in kvdeploy's repository, \`bash scripts/dev setup\` installs Node.js 24 there)\n`
    : undefined
}

// Help and the version are answered without loading the command tree (and on any Node.js).
const quick = cachedHelp() ?? quickVersion()
const unsupported = quick === undefined ? unsupportedNode() : undefined
if (unsupported !== undefined) {
  // With --json, stdout still carries one JSON document.
  if (argv.includes("--json"))
    process.stdout.write(
      `${JSON.stringify({ error: { title: unsupported.trim(), exitCode: 2, problems: [{ field: "node", message: `is ${process.version}`, fix: "run kvdeploy with Node.js 22.10 or later (in kvdeploy's repository, `bash scripts/dev setup` installs Node.js 24 there)" }] } }, null, 2)}\n`,
    )
  process.stderr.write(`error: ${unsupported}`)
  process.exitCode = 2
} else if (quick !== undefined) {
  process.stdout.write(quick)
} else if (process.env.KVDEPLOY_RENDER_HELP === "1") {
  // Build step (scripts/bundle.mjs): every command's help, plain and coloured, as JSON.
  const { helpPages } = await import("./main.js")
  const commands = JSON.parse(argv[0] ?? "[]") as ReadonlyArray<string>
  const [plain, coloured] = [await helpPages(commands, false), await helpPages(commands, true)]
  const pages = Object.fromEntries(
    commands.map((c) => [c, { plain: plain[c] ?? "", coloured: coloured[c] ?? "" }]),
  )
  process.stdout.write(JSON.stringify(pages))
} else {
  const cache = process.env.NODE_COMPILE_CACHE === undefined ? privateCacheDirectory() : undefined
  if (cache !== undefined) nodeModule.enableCompileCache?.(cache)
  const { main } = await import("./main.js")
  main(argv)
}
