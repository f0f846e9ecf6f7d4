import { preset } from "@kvdeploy/vitest-config"
import { defineConfig } from "vitest/config"

export default defineConfig({
  ...preset,
  test: {
    ...preset.test,
    globalSetup: ["test/build.ts"],
    // Three files at a time on two cores: many of these tests spend most of their time waiting on
    // the running agent's real clocks (a stale lock taken over after 30 s, an identity endpoint's
    // backoff, interval passes), with the CPU idle. Measured on the 2-core machine, the whole
    // suite: 247 s with 2 workers, 177 s with 3, every test passing.
    maxWorkers: 3,
  },
})
