import { preset } from "@kvdeploy/vitest-config"
import { defineConfig } from "vitest/config"

/**
 * The files that need a module registry of their own (isolate: true): each replaces a module with
 * vi.mock (node:fs/promises, @kvdeploy/pkcs12) that the code under test must import anew, which a
 * worker that already imported it for another file would not do.
 */
const ownModules = ["test/stateDurable.test.ts", "test/restartFacts.test.ts"]

// The projects name their files: an include here would be added to each project's own.
const { include, ...presetTest } = preset.test

export default defineConfig({
  ...preset,
  test: {
    ...presetTest,
    globalSetup: ["test/build.ts"],
    // Three files at a time on two cores: many of these tests spend most of their time waiting on
    // the running agent's real clocks (a stale lock taken over after 30 s, an identity endpoint's
    // backoff, interval passes), with the CPU idle. Measured on the 2-core machine, the whole
    // suite: 247 s with 2 workers, 177 s with 3, every test passing.
    maxWorkers: 3,
    projects: [
      { extends: true, test: { name: "own-modules", include: ownModules, isolate: true } },
      { extends: true, test: { name: "shared", include, exclude: ownModules, isolate: false } },
    ],
  },
})
