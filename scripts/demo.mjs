// kvdeploy demo: runs the built CLI's `kvdeploy demo` (the embedded Key Vault
// emulator in process, a throwaway CA, deploy v1, v2, an unchanged deploy
// skipped, an injected verify failure rolled back, the version history and
// the metrics recorded). `bash scripts/dev demo` builds the workspace first.
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const bin = join(root, "apps", "cli", "dist", "bin.js")
if (!existsSync(bin)) {
  console.error("kvdeploy is not built: run `pnpm run build` (or `bash scripts/dev demo`) first")
  process.exit(1)
}
const r = spawnSync(process.execPath, [bin, "demo", ...process.argv.slice(2)], { stdio: "inherit" })
process.exit(r.status ?? 1)
