#!/usr/bin/env node
// The package's bin: the built emulator (dist/bin.js). A file of its own, present before the
// workspace is built, so that installing it links the bin without a warning for each dependent.
try {
  await import("../dist/bin.js")
} catch (error) {
  if (error?.code !== "ERR_MODULE_NOT_FOUND" || !String(error.message).includes("dist/bin.js")) throw error
  process.stderr.write(
    "kvdeploy-emulator is not built: run `bash scripts/dev setup` (or `pnpm -r build`) in the repository first\n",
  )
  process.exitCode = 1
}
