/**
 * @kvdeploy/credentials as another project installs it: `pnpm pack` (after the build) gives a package.json
 * without workspace: or catalog: ranges, every file its exports and bin name, every package its
 * built code imports declared, and effect as a peer dependency (one copy in the project:
 * scripts/check-package.mjs says why). Build first: `pnpm -s run build`.
 */
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { checkPackage } from "../../../scripts/check-package.mjs"

describe("packaging", () => {
  it("packs into a tarball whose exports and bins exist, with its imports declared, no workspace ranges and effect as a peer (checks the built dist: build first)", {
    timeout: 120_000,
  }, () => {
    assert.deepStrictEqual(checkPackage(fileURLToPath(new URL("..", import.meta.url))), [])
  })
})
