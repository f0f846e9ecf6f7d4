import { preset } from "@kvdeploy/vitest-config"
import { defineConfig } from "vitest/config"

export default defineConfig({
  ...preset,
  test: { ...preset.test, globalSetup: ["test/build.ts"] },
})
