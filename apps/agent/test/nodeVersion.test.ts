/** A Node.js older than the engines range is refused at start, with the fix, before anything is loaded. */
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { dirname } from "node:path"
import { spawnAsNodeVersion } from "@kvdeploy/core/test"
import { describe, expect, it } from "vitest"
import { bin } from "./harness.js"

describe("the Node.js version", () => {
  it("refuses 20.x and 22.9 (exit 2, the version and the fix), and runs on 22.10", () => {
    for (const old of ["20.20.2", "22.9.0"]) {
      const r = spawnAsNodeVersion(old, bin, ["--config", "/nonexistent/agent.yaml", "--check"])
      expect(r.status, r.stderr).toBe(2)
      expect(r.stderr).toContain(`needs Node.js 22.10 or later, and this is v${old}`)
    }
    // `--check --json` still prints one JSON document.
    const json = spawnAsNodeVersion("20.20.2", bin, [
      "--config",
      "/nonexistent/agent.yaml",
      "--check",
      "--json",
    ])
    expect(json.status).toBe(2)
    expect(JSON.parse(json.stdout)).toMatchObject({
      path: "/nonexistent/agent.yaml",
      valid: false,
      problems: [{ field: "node", message: "is v20.20.2" }],
      warnings: [],
    })
    // 22.10 passes the check: the command itself answers (here: an error of its own).
    const current = spawnAsNodeVersion("22.10.0", bin, ["--config", "/nonexistent/agent.yaml", "--check"])
    expect(current.stderr).not.toContain("needs Node.js")
    expect(current.stderr).toMatch(/nonexistent\/agent\.yaml/)
  })
})

describe("the built agent by name", () => {
  it("dist/kvdeploy-agent runs as dist/bin.js from PATH, with the node first on PATH (docs/agent.md)", () => {
    const dist = dirname(bin)
    const r = spawnSync("kvdeploy-agent", ["--version"], {
      env: { ...process.env, PATH: `${dist}:${dirname(process.execPath)}:/usr/bin:/bin` },
      encoding: "utf8",
    })
    expect(r.status, r.stderr).toBe(0)
    const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version: string
    }
    expect(r.stdout).toBe(`${version}\n`)
    // With --json: one JSON document (--json otherwise goes with --check only).
    const json = spawnSync(process.execPath, [bin, "--version", "--json"], { encoding: "utf8" })
    expect(json.status, json.stderr).toBe(0)
    expect(JSON.parse(json.stdout)).toEqual({ name: "kvdeploy-agent", version, node: process.version })
    const stray = spawnSync(process.execPath, [bin, "--json"], { encoding: "utf8" })
    expect(stray.status).toBe(2)
    expect(stray.stderr).toContain("--json goes with --check or --version")
  })
})
