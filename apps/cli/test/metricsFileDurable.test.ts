/**
 * `deploy --metrics-file`: the file node_exporter's textfile collector reads is replaced whole and
 * durably. The text goes to a temporary file in the same directory (a name the collector, which
 * reads `*.prom`, skips), which is fsynced, renamed over the file, and the directory fsynced: a
 * reader never sees half a file, and after a crash or a power loss the file is the old one or the
 * new one. Temporary files that a run killed mid-write left are removed by a later run once they are
 * ten minutes old (by mtime: a live writer's file is never that old, whatever its process id).
 */
import { spawnSync } from "node:child_process"
import {
  linkSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { writeMetricsFile } from "../src/cli/metricsFile.js"
import { bin } from "./harness.js"

let dir = ""
beforeEach(() => {
  dir = mkdtempSync(join(existsShm() ? "/dev/shm" : tmpdir(), "kvdeploy-metrics-file-"))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

function existsShm(): boolean {
  try {
    return statSync("/dev/shm").isDirectory()
  } catch {
    return false
  }
}

/** The process id of a process that has exited (and been reaped): no run of that id is writing. */
const deadPid = (): number => {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"])
  return Number(child.stdout.toString())
}

describe("writeMetricsFile", () => {
  it("replaces the file by a rename: a reader of the old file reads it whole, the new one is whole", () => {
    const file = join(dir, "kvdeploy-api.prom")
    const oldText = "old_series 1\n".repeat(1000)
    const newText = "new_series 2\n".repeat(2000)
    writeFileSync(file, oldText)
    const before = statSync(file).ino
    // A collector that opened the old file, and a second name for it: neither sees the new text.
    const reader = openSync(file, "r")
    linkSync(file, join(dir, "held.prom.link"))
    expect(writeMetricsFile(file, newText)).toBeUndefined()
    expect(statSync(file).ino).not.toBe(before)
    expect(readFileSync(file, "utf8")).toBe(newText)
    expect(readFileSync(join(dir, "held.prom.link"), "utf8")).toBe(oldText)
    const buffer = Buffer.alloc(oldText.length + 10)
    expect(buffer.subarray(0, readSync(reader, buffer, 0, buffer.length, 0)).toString()).toBe(oldText)
    expect(statSync(file).mode & 0o777).toBe(0o644)
    expect(readdirSync(dir).sort()).toEqual(["held.prom.link", "kvdeploy-api.prom"])
  })

  it("removes temporary files older than ten minutes, not younger ones of any name or process id, nor other files", () => {
    const file = join(dir, "kvdeploy-api.prom")
    const aged = (name: string, text: string, minutesAgo: number) => {
      writeFileSync(join(dir, name), text)
      const at = new Date(Date.now() - minutesAgo * 60_000)
      utimesSync(join(dir, name), at, at)
    }
    // Leftovers of runs killed mid-write (this version's random names, an older version's pid names).
    aged("kvdeploy-api.prom.tmp-0123456789abcdef", "half_a_ser", 11)
    aged(`kvdeploy-api.prom.tmp-${deadPid()}`, "half_a_ser", 60)
    // Runs still writing, whatever their process ids say: one of a process id that does not run
    // here (a container's run, its pid in another namespace), one of this very process id (both
    // pid 1), one of a random name.
    const writing = [
      `kvdeploy-api.prom.tmp-${deadPid()}`,
      `kvdeploy-api.prom.tmp-${process.pid}`,
      "kvdeploy-api.prom.tmp-fedcba9876543210",
    ]
    for (const name of writing) aged(name, "being_written", 9)
    // Names that only look alike, old as they are.
    for (const other of ["kvdeploy-other.prom.tmp-1", "kvdeploy-api.prom.tmp-x", "node.prom"])
      aged(other, "", 60)
    expect(writeMetricsFile(file, "series 1\n")).toBeUndefined()
    expect(readFileSync(file, "utf8")).toBe("series 1\n")
    expect(readdirSync(dir).sort()).toEqual(
      [
        "kvdeploy-api.prom",
        "kvdeploy-api.prom.tmp-x",
        "kvdeploy-other.prom.tmp-1",
        ...writing,
        "node.prom",
      ].sort(),
    )
    for (const name of writing) expect(readFileSync(join(dir, name), "utf8")).toBe("being_written")
    // None of the temporary names is one the collector reads.
    expect(readdirSync(dir).filter((n) => n.endsWith(".prom"))).toEqual(["kvdeploy-api.prom", "node.prom"])
  })
})

// strace is on the CI image (.ci/run installs it when missing): there the test never skips.
const strace = spawnSync("strace", ["-V"]).status === 0 || process.env.CI === "true"

describe("deploy --metrics-file, traced", () => {
  it.skipIf(!strace)(
    "fsyncs the temporary file before the rename, and the directory after it",
    () => {
      const file = join(dir, "kvdeploy-api.prom")
      const trace = join(dir, "trace.txt")
      // A run refused on its input (no target file) still writes its metrics, labelled by the flags.
      const run = spawnSync(
        "strace",
        [
          "-f",
          "-qq",
          "-e",
          "trace=openat,fsync,fdatasync,rename,renameat,renameat2",
          "-o",
          trace,
          process.execPath,
          bin,
        ]
          .concat([
            "deploy",
            "--config",
            join(dir, "missing.json"),
            "--vault-url",
            "https://myvault.vault.azure.net",
          ])
          .concat(["--name", "api", "--cert", "-", "--json", "--metrics-file", file]),
        { input: "", env: { ...process.env, NO_COLOR: "1" }, timeout: 60_000 },
      )
      expect(run.status, run.stderr.toString()).toBe(2)
      expect(readFileSync(file, "utf8")).toContain('result="rejected"')
      const lines = readFileSync(trace, "utf8")
        .split("\n")
        .map((l) => l.replace(/^\d+\s+/, ""))
      const temp = `${file}.tmp-`
      const opened = lines.findIndex((l) => l.startsWith("openat(") && l.includes(`"${temp}`))
      expect(opened, "the temporary file's open").toBeGreaterThanOrEqual(0)
      // A name of random bytes, made anew: a run of the same process id in another PID namespace
      // (two containers, each pid 1) neither writes into nor removes this run's file.
      expect(lines[opened]).toMatch(/\.tmp-[0-9a-f]{16}", O_WRONLY\|O_CREAT\|O_EXCL/)
      const tempFd = /= (\d+)$/.exec(lines[opened] ?? "")?.[1]
      const renamed = lines.findIndex(
        (l) => /^rename(at2?)?\(/.test(l) && l.includes(temp) && l.includes(`"${file}"`),
      )
      expect(renamed, "the rename over the file").toBeGreaterThan(opened)
      const synced = lines.findIndex(
        (l, i) => i > opened && i < renamed && /^f(data)?sync\((\d+)\)/.exec(l)?.[2] === tempFd,
      )
      expect(synced, "the temporary file's fsync, before the rename").toBeGreaterThan(opened)
      const dirOpened = lines.findIndex(
        (l, i) =>
          i > renamed && l.startsWith("openat(") && l.includes(`"${dir}"`) && l.includes("O_DIRECTORY"),
      )
      expect(dirOpened, "the directory's open, after the rename").toBeGreaterThan(renamed)
      const dirFd = /= (\d+)$/.exec(lines[dirOpened] ?? "")?.[1]
      expect(lines.some((l, i) => i > dirOpened && /^fsync\((\d+)\)/.exec(l)?.[1] === dirFd)).toBe(true)
    },
    90_000,
  )
})
