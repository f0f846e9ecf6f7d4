/** The configuration file named by the raw arguments, as `--check --json` reports it before they are parsed. */
import { parseArgs } from "node:util"
import { changeProcessEnv } from "@kvdeploy/core/test"
import { describe, expect, it } from "vitest"
import { configPathOf } from "../src/configPath.js"

describe("configPathOf", () => {
  it("reads --config and -c in each form node's parseArgs takes, and never a flag as the value", () => {
    const forms: ReadonlyArray<ReadonlyArray<string>> = [
      ["--config", "/a.yaml"],
      ["--config=/a.yaml"],
      ["-c", "/a.yaml"],
      ["-c/a.yaml"],
      ["--check", "--json", "--config", "/a.yaml", "--bogus"],
    ]
    for (const args of forms) {
      expect(configPathOf(args)).toBe("/a.yaml")
      // The same file node's parser finds (where it parses at all).
      const parsed = parseArgs({
        args: [...args].filter((a) => a !== "--bogus"),
        options: {
          config: { type: "string", short: "c" },
          check: { type: "boolean" },
          json: { type: "boolean" },
        },
      })
      expect(parsed.values.config).toBe("/a.yaml")
    }
    // A flag after --config is not its value: the default (or the environment's) is named.
    const restoreEnv = changeProcessEnv({ KVDEPLOY_AGENT_CONFIG: undefined })
    try {
      expect(configPathOf(["--check", "--json", "--config", "--bogus"])).toBe("/etc/kvdeploy/agent.yaml")
      process.env.KVDEPLOY_AGENT_CONFIG = "/env.yaml"
      expect(configPathOf(["--check"])).toBe("/env.yaml")
      expect(configPathOf(["--check"], "/parsed.yaml")).toBe("/parsed.yaml")
    } finally {
      restoreEnv()
    }
  })
})
