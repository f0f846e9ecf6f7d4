// SIGHUP is listened for from the first moment to the last (see hangup.ts): without a listener it
// ends the process, during start-up and shutdown too.
import { configPathOf } from "./configPath.js"
import { listenForHangups } from "./hangup.js"

listenForHangups()

// SIGUSR1 opens Node's inspector (127.0.0.1:9229) in a process without a listener for it, and any
// local user could then connect and read the agent's memory and environment (AZURE_CLIENT_SECRET,
// PFX passwords, keys being deployed). A listener keeps it closed on every Node, `node dist/bin.js`
// included; the single executable also has --disable-sigusr1 where its Node has the flag
// (scripts/node-flags.mjs), which closes the moment before this line runs (Node then ignores the
// signal itself, and this listener is not called).
process.on("SIGUSR1", () => {
  process.stdout.write(
    `${JSON.stringify({ time: new Date().toISOString(), level: "warn", msg: "SIGUSR1 ignored: the agent does not open Node's inspector (it would let local users read its memory and environment)" })}\n`,
  )
})

// Entry point of the `kvdeploy-agent` binary. A Node.js older than the `engines` range lacks APIs
// the agent uses (X509Certificate's validFromDate and validToDate, among others): it would fail
// deep inside a reconcile, so it is refused here, with the fix, before the agent is loaded.
const [major = 0, minor = 0] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 10)) {
  // `--check --json` still prints one JSON document.
  if (process.argv.includes("--json"))
    process.stdout.write(
      `${JSON.stringify({ path: configPathOf(process.argv.slice(2)), valid: false, problems: [{ field: "node", message: `is ${process.version}`, fix: "run kvdeploy-agent with Node.js 22.10 or later (in kvdeploy's repository, `bash scripts/dev setup` installs Node.js 24 there), or use the single executable" }], warnings: [] }, null, 2)}\n`,
    )
  process.stderr.write(
    `kvdeploy-agent: needs Node.js 22.10 or later, and this is ${process.version}: run it with a newer node (in kvdeploy's repository, \`bash scripts/dev setup\` installs Node.js 24 there), or use the single executable, which carries its own\n`,
  )
  process.exitCode = 2
} else {
  void import("./main.js").then(({ main }) => main(process.argv.slice(2)))
}
