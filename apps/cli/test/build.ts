// Vitest global setup: bundle the CLI so the end-to-end tests run the binary
// as built from the current sources (`node dist/bin.js`). --if-changed: a bundle turbo's build
// just made from the same files is kept (scripts/bundle-stamp.mjs).
import { spawnSync } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

export default function setup(): void {
  // scripts/test-lanes.mjs runs the CLI's tests in two parts at once, and bundles it once before
  // both: a part bundling it again here would remove dist/ under the other part's tests.
  if (process.env.KVDEPLOY_TEST_BUNDLE_DONE === "1") return
  const root = join(dirname(fileURLToPath(import.meta.url)), "..")
  const r = spawnSync(process.execPath, [join(root, "scripts", "bundle.mjs"), "--if-changed"], {
    cwd: root,
    encoding: "utf8",
  })
  if (r.status !== 0) throw new Error(`bundling kvdeploy failed:\n${r.stdout}\n${r.stderr}`)
}
