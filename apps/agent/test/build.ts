// Vitest global setup: bundle the agent so the end-to-end tests run the binary
// as built from the current sources (`node dist/bin.js`). --if-changed: a bundle turbo's build
// just made from the same files is kept (scripts/bundle-stamp.mjs).
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type { TestProject } from "vitest/node"

declare module "vitest" {
  export interface ProvidedContext {
    /** A federated token file for the `--check` tests (checkFixtures.ts), removed after the run. */
    checkTokenFile: string
  }
}

export default function setup(project: TestProject): () => void {
  const root = join(dirname(fileURLToPath(import.meta.url)), "..")
  const r = spawnSync(process.execPath, [join(root, "scripts", "bundle.mjs"), "--if-changed"], {
    cwd: root,
    encoding: "utf8",
  })
  if (r.status !== 0) throw new Error(`bundling kvdeploy-agent failed:\n${r.stdout}\n${r.stderr}`)
  const tokenDir = mkdtempSync(join(tmpdir(), "kvdeploy-check-token-"))
  const tokenFile = join(tokenDir, "azure-identity-token")
  writeFileSync(tokenFile, "a federated token")
  project.provide("checkTokenFile", tokenFile)
  return () => rmSync(tokenDir, { recursive: true, force: true })
}
