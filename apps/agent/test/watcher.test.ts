/**
 * The directory watcher on its own (real directories, real watches): a source path that is a
 * symbolic link into another directory, a chain of links, a link re-pointed elsewhere, a source
 * directory that is a swapped link, a link's target directory removed, a directory not made yet,
 * and one that cannot be watched. Each test waits for the deployment to be triggered (no time is asserted): nothing
 * here triggers it but the watch.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as Scope from "effect/Scope"
import { afterEach, describe, expect, it } from "vitest"
import { jsonLineLogger } from "../src/logging.js"
import { MAX_WATCHED_LINKS } from "../src/sourceLinks.js"
import { makeWatcher } from "../src/watcher.js"

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const done of cleanup.splice(0).reverse()) await done()
})

/** A directory on /dev/shm removed after the test. */
const scratch = () => {
  const dir = mkdtempSync(join("/dev/shm", "kvdeploy-watcher-test-"))
  cleanup.push(async () => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Replace `path` by a rename, as an ACME client does. */
let written = 0
const replace = (path: string, text: string) => {
  const tmp = join(path, "..", `.tmp-${++written}`)
  writeFileSync(tmp, text, { mode: 0o600 })
  renameSync(tmp, path)
}

/** Point the link `path` at `target` atomically (`ln -s target tmp && mv -T tmp path`). */
const repoint = (path: string, target: string) => {
  const tmp = join(path, "..", `.link-${++written}`)
  symlinkSync(target, tmp)
  renameSync(tmp, path)
}

const pem = (name: string, cert: string, key?: string) => ({
  name,
  source: { _tag: "Pem" as const, cert, chain: undefined, key },
})

/** A watcher whose triggers and log lines are kept; closed after the test. */
const startWatcher = async () => {
  const triggered: Array<string> = []
  const logs: Array<{ readonly msg: string; readonly [k: string]: unknown }> = []
  const logger = Logger.layer([jsonLineLogger((line) => logs.push(JSON.parse(line)))])
  const scope = await Effect.runPromise(Scope.make())
  cleanup.push(() => Effect.runPromise(Scope.close(scope, Exit.void)))
  const watcher = await Effect.runPromise(
    makeWatcher(20, (name) => Effect.sync(() => void triggered.push(name))).pipe(
      Scope.provide(scope),
      Effect.provide(logger),
    ),
  )
  return {
    watcher,
    logs,
    watch: (deployments: Parameters<typeof watcher.watch>[0]) =>
      Effect.runPromise(watcher.watch(deployments).pipe(Effect.provide(logger))),
    /** Resolves once `name` was triggered more than `times` times in all. */
    triggeredAgain: (name: string, times: number) =>
      expect
        .poll(() => triggered.filter((n) => n === name).length, { timeout: 10_000, interval: 20 })
        .toBeGreaterThan(times),
    count: (name: string) => triggered.filter((n) => n === name).length,
  }
}

describe("watching source links", () => {
  it("a file replaced in the directory a source link leads to triggers the deployment", async () => {
    const root = scratch()
    const [etc, acme] = [join(root, "etc"), join(root, "acme")]
    mkdirSync(etc)
    mkdirSync(acme)
    replace(join(acme, "cert.pem"), "one")
    replace(join(acme, "key.pem"), "one")
    symlinkSync(join(acme, "cert.pem"), join(etc, "cert.pem"))
    symlinkSync(join(acme, "key.pem"), join(etc, "key.pem"))
    const w = await startWatcher()
    await w.watch([pem("api", join(etc, "cert.pem"), join(etc, "key.pem"))])

    replace(join(acme, "key.pem"), "two")
    await w.triggeredAgain("api", 0)
    const after = w.count("api")
    replace(join(acme, "cert.pem"), "two")
    await w.triggeredAgain("api", after)
    expect(new Set(w.watcher.watched())).toEqual(new Set([etc, acme]))
  })

  it("every hop of a chain of links is watched, each directory once however many deployments need it", async () => {
    const root = scratch()
    const [etc, mid, store] = [join(root, "etc"), join(root, "mid"), join(root, "store")]
    for (const d of [etc, mid, store]) mkdirSync(d)
    replace(join(store, "cert1.pem"), "one")
    // etc/NAME.pem -> ../mid/NAME.pem -> store/cert1.pem (relative and absolute links).
    const names = Array.from({ length: 20 }, (_, i) => `d${i}`)
    for (const n of names) {
      symlinkSync(join(store, "cert1.pem"), join(mid, `${n}.pem`))
      symlinkSync(`../mid/${n}.pem`, join(etc, `${n}.pem`))
    }
    const w = await startWatcher()
    await w.watch(names.map((n) => pem(n, join(etc, `${n}.pem`))))

    // The final target replaced: every deployment reading it runs.
    replace(join(store, "cert1.pem"), "two")
    for (const n of names) await w.triggeredAgain(n, 0)
    expect([...w.watcher.watched()].sort()).toEqual([etc, mid, store].sort())
    // A link in the middle of the chain re-pointed (to a new file in the same directory).
    replace(join(store, "cert2.pem"), "three")
    const before = w.count("d3")
    repoint(join(mid, "d3.pem"), join(store, "cert2.pem"))
    await w.triggeredAgain("d3", before)
    // ... after which the new file is the one watched for d3.
    const then = w.count("d3")
    replace(join(store, "cert2.pem"), "four")
    await w.triggeredAgain("d3", then)
  })

  it("a link re-pointed to another directory moves the watch there", async () => {
    const root = scratch()
    const [etc, a, b] = [join(root, "etc"), join(root, "a"), join(root, "b")]
    for (const d of [etc, a, b]) mkdirSync(d)
    replace(join(a, "cert.pem"), "one")
    replace(join(b, "cert.pem"), "two")
    symlinkSync(join(a, "cert.pem"), join(etc, "cert.pem"))
    const w = await startWatcher()
    await w.watch([pem("api", join(etc, "cert.pem"))])

    repoint(join(etc, "cert.pem"), join(b, "cert.pem"))
    await w.triggeredAgain("api", 0)
    const after = w.count("api")
    replace(join(b, "cert.pem"), "three")
    await w.triggeredAgain("api", after)
    // The old target's directory is no longer watched.
    expect(new Set(w.watcher.watched())).toEqual(new Set([etc, b]))
  })

  it("a source directory that is a link swapped to another directory: the swap is seen, and the new directory watched", async () => {
    const root = scratch()
    const [v1, v2] = [join(root, "v1"), join(root, "v2")]
    mkdirSync(v1)
    mkdirSync(v2)
    replace(join(v1, "cert.pem"), "one")
    replace(join(v2, "cert.pem"), "two")
    symlinkSync("v1", join(root, "live"))
    const w = await startWatcher()
    await w.watch([pem("api", join(root, "live", "cert.pem"))])

    repoint(join(root, "live"), "v2")
    await w.triggeredAgain("api", 0)
    const after = w.count("api")
    replace(join(v2, "cert.pem"), "three")
    await w.triggeredAgain("api", after)
  })

  it("a link's target directory removed and made again: the deployment runs each time, and the new directory is watched", async () => {
    const root = scratch()
    const [etc, store] = [join(root, "etc"), join(root, "store")]
    mkdirSync(etc)
    mkdirSync(store)
    replace(join(store, "cert.pem"), "one")
    symlinkSync(join(store, "cert.pem"), join(etc, "cert.pem"))
    const w = await startWatcher()
    await w.watch([pem("api", join(etc, "cert.pem"))])

    rmSync(store, { recursive: true })
    await w.triggeredAgain("api", 0)
    // Its parent is watched for the name to come back.
    await expect.poll(() => new Set(w.watcher.watched()), { timeout: 10_000 }).toEqual(new Set([etc, root]))
    let before = w.count("api")
    mkdirSync(store)
    replace(join(store, "cert.pem"), "two")
    await w.triggeredAgain("api", before)
    await expect.poll(() => new Set(w.watcher.watched()), { timeout: 10_000 }).toEqual(new Set([etc, store]))
    before = w.count("api")
    replace(join(store, "cert.pem"), "three")
    await w.triggeredAgain("api", before)
  })

  it("a source directory not made yet is watched for in its parent: its creation triggers the deployment, without a warning", async () => {
    const root = scratch()
    const missing = join(root, "later")
    const w = await startWatcher()
    const deployments = [pem("api", join(missing, "cert.pem"))]
    // Two interval passes.
    await w.watch(deployments)
    await w.watch(deployments)
    expect(w.logs.filter((l) => l.level === "warn")).toEqual([])
    mkdirSync(missing)
    replace(join(missing, "cert.pem"), "one")
    await w.triggeredAgain("api", 0)
  })

  it("a directory that cannot be watched is said once in the log, with its error, however many passes", async () => {
    const root = scratch()
    // A source directory that is a loop of links: it cannot be opened, let alone watched.
    symlinkSync(join(root, "loop"), join(root, "loop"))
    const w = await startWatcher()
    const deployments = [pem("api", join(root, "loop", "cert.pem"))]
    await w.watch(deployments)
    await w.watch(deployments)
    await w.watch(deployments)
    const warnings = w.logs.filter(
      (l) => l.msg === "cannot watch a source directory; the interval still reconciles it",
    )
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatchObject({ level: "warn", directory: join(root, "loop"), error: "ELOOP" })
  })

  it(`a chain of more than ${MAX_WATCHED_LINKS} links costs at most ${MAX_WATCHED_LINKS + 2} watches, and is said once in the log`, async () => {
    const root = scratch()
    const hops = MAX_WATCHED_LINKS + 4
    const dirs = Array.from({ length: hops + 1 }, (_, i) => join(root, `hop${i}`))
    for (const d of dirs) mkdirSync(d)
    replace(join(dirs[hops] as string, "cert.pem"), "one")
    for (let i = 0; i < hops; i++)
      symlinkSync(join(dirs[i + 1] as string, "cert.pem"), join(dirs[i] as string, "cert.pem"))
    const w = await startWatcher()
    const deployments = [pem("api", join(dirs[0] as string, "cert.pem"))]
    await w.watch(deployments)
    await w.watch(deployments)
    expect(w.logs.filter((l) => /more than \d+ symbolic links/.test(l.msg))).toHaveLength(1)
    expect(w.watcher.watched().length).toBeLessThanOrEqual(MAX_WATCHED_LINKS + 2)
    // The first hops are watched all the same.
    const before = w.count("api")
    repoint(join(dirs[1] as string, "cert.pem"), join(dirs[hops] as string, "cert.pem"))
    await w.triggeredAgain("api", before)
  })
})
