#!/usr/bin/env node
// The package's bin: the built emulator (dist/bin.js). A file of its own, present before the
// workspace is built, so that installing it links the bin without a warning for each dependent.
import { existsSync } from "node:fs"

const built = new URL("../dist/bin.js", import.meta.url)
if (existsSync(built)) await import(built.href)
else {
  process.stderr.write(
    "kvdeploy-emulator is not built: run `bash scripts/dev setup` (or `pnpm -r build`) in the repository first\n",
  )
  process.exitCode = 1
}
