/**
 * The operator docs are tested: every shell block of docs/getting-started.md
 * runs, in order, in one bash (against the emulator it starts), and every
 * relative link in docs/ and the CLI README points at a file that exists.
 */
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { describe, expect, it } from "vitest"
import { baseEnv, cliRoot } from "./harness.js"

const repoRoot = resolve(cliRoot, "..", "..")
const docsDir = join(repoRoot, "docs")

/** Shell blocks of a markdown page, without those marked `<!-- docs-test: skip ... -->`. */
export const shellBlocks = (markdown: string): Array<string> => {
  const blocks: Array<string> = []
  const re = /(<!--\s*docs-test:\s*skip[^>]*-->\s*\n)?```(?:sh|bash)\n([\s\S]*?)```/g
  for (const m of markdown.matchAll(re)) {
    if (m[1] === undefined) blocks.push(m[2] ?? "")
  }
  return blocks
}

/** Whether every process of the group `pgid` has ended, polled until `ms` have passed. */
const groupEnded = async (pgid: number, ms: number): Promise<boolean> => {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      process.kill(-pgid, 0)
    } catch {
      return true
    }
    if (Date.now() >= deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe("docs/getting-started.md", () => {
  it("every command shown runs against the emulator", async () => {
    const page = readFileSync(join(docsDir, "getting-started.md"), "utf8")
    const blocks = shellBlocks(page)
    expect(blocks.length).toBeGreaterThanOrEqual(8)
    const scratch = mkdtempSync(join("/dev/shm", "kvdeploy-docs-"))
    let pid: number | undefined
    const script = ["set -euo pipefail", ...blocks.map((b, i) => `echo "::block ${i + 1}"\n${b}`)].join("\n")
    try {
      const result = await new Promise<{ code: number | null; out: string }>((done) => {
        const child = spawn("bash", ["-c", script], {
          cwd: repoRoot,
          env: { ...baseEnv(), TMPDIR: scratch },
          stdio: ["ignore", "pipe", "pipe"],
          // Its own process group, so whatever it started in the background can be ended with it.
          detached: true,
        })
        pid = child.pid
        let out = ""
        child.stdout.on("data", (c: Buffer) => {
          out += c.toString()
        })
        child.stderr.on("data", (c: Buffer) => {
          out += c.toString()
        })
        const timer = setTimeout(() => child.kill("SIGKILL"), 150_000)
        child.on("close", (code) => {
          clearTimeout(timer)
          done({ code, out })
        })
      })
      expect(result.code, result.out).toBe(0)
      expect(result.out).toContain(`::block ${blocks.length}`)
      expect(result.out).toMatch(/^Succeeded/m)
      expect(result.out).toMatch(/^Skipped/m)
      expect(result.out).toContain("exit code 1: the vault serves another certificate")
      expect(result.out).toMatch(/ready to deploy/)
      expect(result.out).toMatch(/2 versions, newest first/)
      // Stopped with `kill`, the emulator exits 0 (set -e would have ended the script otherwise).
      expect(result.out).toContain("emulator exit code 0")
    } finally {
      if (pid !== undefined) {
        try {
          process.kill(-pid, "SIGTERM")
        } catch {
          // The group has already ended: the page stopped its emulator itself.
        }
        // Wait for the group to end before removing the scratch directory: a process still exiting
        // writes its compile cache into TMPDIR and would create the directory again (left behind).
        if (!(await groupEnded(pid, 10_000))) {
          try {
            process.kill(-pid, "SIGKILL")
          } catch {
            // Ended in between.
          }
          await groupEnded(pid, 5_000)
        }
      }
      // The emulator the page started in the background may still be writing its files here
      // while it handles the SIGTERM: rmSync's own retries cover the ENOTEMPTY of that moment.
      rmSync(scratch, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 })
    }
  })
})

describe("links", () => {
  const pages = [
    ...readdirSync(docsDir)
      .filter((f) => f.endsWith(".md"))
      .map((f) => join(docsDir, f)),
    join(cliRoot, "README.md"),
  ]
  it("every relative link in docs/ and the CLI README resolves", () => {
    const broken: Array<string> = []
    for (const page of pages) {
      const text = readFileSync(page, "utf8")
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1] ?? ""
        if (/^[a-z]+:/i.test(target) || target.startsWith("#")) continue
        const path = target.split("#")[0] ?? ""
        if (!existsSync(resolve(dirname(page), path))) broken.push(`${page}: ${target}`)
      }
    }
    expect(broken).toEqual([])
  })
  it("the link check can fail", () => {
    expect(existsSync(resolve(docsDir, "no-such-page.md"))).toBe(false)
  })
})
