/**
 * Node's compile cache for the CLI's bundle lives in a directory of the user's own
 * (`<tmpdir>/kvdeploy-compile-cache-<uid>`, mode 0700), never in one another account could have
 * made first: Node loads the bytecode it finds there.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
} from "node:fs"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { runCli } from "./harness.js"

const uid = process.getuid?.() ?? -1
const roots: Array<string> = []
const freshTmp = () => {
  const dir = mkdtempSync(join("/dev/shm", "kvdeploy-cli-cache-"))
  roots.push(dir)
  return dir
}
afterEach(() => {
  for (const dir of roots.splice(0)) rmSync(dir, { recursive: true, force: true })
})

// `--completions bash` loads the command tree and exits 0 (--help and --version are answered without it).
describe.skipIf(uid < 0)("the compile cache", () => {
  it("is written to the user's own directory, created with mode 0700", async () => {
    const tmp = freshTmp()
    const r = await runCli(["--completions", "bash"], { env: { TMPDIR: tmp } })
    expect(r.code).toBe(0)
    const own = join(tmp, `kvdeploy-compile-cache-${uid}`)
    expect(statSync(own).mode & 0o777).toBe(0o700)
    expect(readdirSync(own, { recursive: true }).length).toBeGreaterThan(0)
    // Not Node's shared default.
    expect(existsSync(join(tmp, "node-compile-cache"))).toBe(false)
  })

  it("is not used when that directory can be written by others, or is a link", async () => {
    const tmp = freshTmp()
    const own = join(tmp, `kvdeploy-compile-cache-${uid}`)
    mkdirSync(own)
    chmodSync(own, 0o777)
    const r = await runCli(["--completions", "bash"], { env: { TMPDIR: tmp } })
    expect(r.code).toBe(0)
    expect(readdirSync(own)).toEqual([])

    const other = freshTmp()
    const target = join(other, "elsewhere")
    mkdirSync(target, { mode: 0o700 })
    symlinkSync(target, join(other, `kvdeploy-compile-cache-${uid}`))
    const linked = await runCli(["--completions", "bash"], { env: { TMPDIR: other } })
    expect(linked.code).toBe(0)
    expect(readdirSync(target)).toEqual([])
  })

  it("leaves NODE_COMPILE_CACHE, when set, to Node", async () => {
    const tmp = freshTmp()
    const chosen = join(tmp, "chosen")
    const r = await runCli(["--completions", "bash"], { env: { TMPDIR: tmp, NODE_COMPILE_CACHE: chosen } })
    expect(r.code).toBe(0)
    expect(readdirSync(chosen, { recursive: true }).length).toBeGreaterThan(0)
    expect(existsSync(join(tmp, `kvdeploy-compile-cache-${uid}`))).toBe(false)
  })
})
