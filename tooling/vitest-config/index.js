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
