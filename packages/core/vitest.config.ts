import { preset } from "@kvdeploy/vitest-config"
import { defineConfig } from "vitest/config"

// isolate: false: a worker imports Effect, the SDK models and the package's sources once for all
// its files instead of once per file. No file here replaces a module (vi.mock) or leaves global
// state behind (processEnv.test.ts restores the variables it sets). Measured on the shared 2-core
// machine, the whole suite: 79 s wall, 44 s CPU -> 47 s wall, 23 s CPU, 442 tests passing.
export default defineConfig({ ...preset, test: { ...preset.test, isolate: false } })
