import { preset } from "@kvdeploy/vitest-config"
import { defineConfig } from "vitest/config"

export default defineConfig({
  ...preset,
  // Each test runs the built binary as subprocesses (about a second each on a busy two-core machine).
  test: { ...preset.test, globalSetup: ["test/build.ts"], testTimeout: 180_000 },
})
