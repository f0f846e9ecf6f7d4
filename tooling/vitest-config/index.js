// Shared vitest preset. Packages call `defineProject(preset)` or spread it.
// Tests run against each package's `src/` (through the `@kvdeploy/source`
// export condition), so a test never reads a stale `dist/`.
export const preset = {
  resolve: { conditions: ["@kvdeploy/source"] },
  ssr: { resolve: { conditions: ["@kvdeploy/source"] } },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: keep worker count low so subprocess-based interop tests
    // (openssl, keytool, python) do not starve each other.
    maxWorkers: 2,
    // The JSON report lets `scripts/dev test` print one closing line for the
    // whole workspace ("N passed, N failed").
    reporters: ["default", "json"],
    outputFile: { json: ".vitest-results.json" },
  },
}

/**
 * The preset with a package's test files in two projects: `ownModules` (globs), each file with a
 * module registry of its own (isolate: true), for files that leave state in a module (an identity
 * library's cache, a process-wide switch, an environment variable an SDK reads once); the rest
 * share their worker's imports (isolate: false), so a worker imports the SDKs and the package's
 * sources once for its files instead of once per file. `test`: further test options of the package
 * (globalSetup, env, maxWorkers).
 */
export const sharedModules = (ownModules, test = {}) => {
  // The projects name their files: an include at the top would be added to each project's own.
  const { include, ...presetTest } = preset.test
  return {
    ...preset,
    test: {
      ...presetTest,
      ...test,
      projects: [
        { extends: true, test: { name: "own-modules", include: ownModules, isolate: true } },
        { extends: true, test: { name: "shared", include, exclude: ownModules, isolate: false } },
      ],
    },
  }
}
