import { preset } from "@kvdeploy/vitest-config"
import { defineConfig } from "vitest/config"

export default defineConfig({
  ...preset,
  // Each test runs the built binary as subprocesses (about a second each on a busy two-core machine).
  // isolate: false: a worker imports the emulator, the SDKs and the PKI code once for all its files
  // instead of once per file (each file starts and stops its own emulator; commandsWorld.ts's world
  // and fixtures are set anew by each file's beforeAll). Measured on 18 of the files, alternately:
  // 90-93 s -> 76-77 s of CPU.
  test: { ...preset.test, globalSetup: ["test/build.ts"], testTimeout: 180_000, isolate: false },
})
