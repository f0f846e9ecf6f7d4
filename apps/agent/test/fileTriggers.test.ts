/**
 * The built agent reacting to its source files, against the emulator: a
 * change of its files restarts a deployment waiting in backoff at once (not
 * at the end of the backoff), and a deployment added by SIGHUP, reading a
 * directory no deployment read before, is watched like the others, and so
 * is the directory a source link leads to (and the one it is re-pointed to).
 * The interval is an hour, so only the watch can start these reconciles.
 */
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { oneSourceConfig, perTestWorld, whileImporting, writeConfig } from "./harness.js"

const world = perTestWorld()

const setUp = (vault: string) => world.setUp([vault])

/** Write `path` atomically (a temporary name in the same directory, then a rename), as certificate tools do. */
let written = 0
const writeAtomically = (path: string, content: string) => {
  const tmp = join(path, "..", `.tmp-${++written}`)
  writeFileSync(tmp, content, { mode: 0o600 })
  renameSync(tmp, path)
}

const succeeded = (name: string) => (l: { deployment?: unknown; msg: string }) =>
  l.deployment === name && l.msg === "deploy: Succeeded"

describe("file changes", () => {
  it("a change of its files restarts a deployment waiting in backoff at once", async () => {
    const { e, w, p } = await setUp("kv-backoff-trigger")
    const leaf = await p.leaf("bt.example.test")
    const other = await p.leaf("other.example.test")
    // A renewal half-written: the certificate, and a key of another certificate. Backoff of 30-60 s:
    // the retry the backoff would make comes long after the wait below.
    const config = oneSourceConfig(
      w,
      e,
      { name: "bt", vault: "kv-backoff-trigger", certPem: leaf.certPem, keyPem: other.keyPem },
      { backoff_base_seconds: 30, backoff_max_seconds: 60 },
    )
    const a = world.run(config, e)
    await a.waitFor((l) => l.deployment === "bt" && /^source broken/.test(l.msg))
    // The key is written: the deployment, waiting in its backoff, runs now.
    const from = a.lines.length
    w.write("bt.key", leaf.keyPem)
    await a.waitFor(succeeded("bt"), { from, timeoutMs: 10_000 })
    expect(e.state.versions("kv-backoff-trigger", "bt")?.at(-1)?.x5t).toBe(leaf.x5t)
  })

  it("a deployment added by SIGHUP, in a directory not read before, is deployed again when its files change", async () => {
    const { e, w, p } = await setUp("kv-hup-watch")
    const oneLeaf = await p.leaf("one.example.test")
    w.write("one.crt", oneLeaf.certPem)
    w.write("one.key", oneLeaf.keyPem)
    const one = {
      name: "one",
      vault: "kv-hup-watch",
      certificate: "one",
      source: { cert: w.path("one.crt"), key: w.path("one.key") },
    }
    const a = world.run(writeConfig(w, e, [one]), e)
    await a.waitFor(succeeded("one"))

    // "two" reads a directory of its own, which the agent did not watch before the reload.
    const dir = w.path("two")
    mkdirSync(dir, { mode: 0o700 })
    const twoLeaf = await p.leaf("two.example.test")
    writeAtomically(join(dir, "tls.crt"), twoLeaf.certPem)
    writeAtomically(join(dir, "tls.key"), twoLeaf.keyPem)
    const two = {
      name: "two",
      vault: "kv-hup-watch",
      certificate: "two",
      source: { cert: join(dir, "tls.crt"), key: join(dir, "tls.key") },
    }
    writeConfig(w, e, [one, two])
    let from = a.lines.length
    a.signal("SIGHUP")
    await a.waitFor(succeeded("two"), { from })
    // Past the reload's pass (every deployment reconciled), so that only the watch can start the next deploy.
    await a.waitFor((l) => l.msg === "pass over" && l.reason === "reload", { from })

    // Renewed: key first, then the certificate.
    const renewal = await p.leaf("two.example.test")
    from = a.lines.length
    writeAtomically(join(dir, "tls.key"), renewal.keyPem)
    writeAtomically(join(dir, "tls.crt"), renewal.certPem)
    await a.waitFor(succeeded("two"), { from, timeoutMs: 10_000 })
    expect(e.state.versions("kv-hup-watch", "two")?.at(-1)?.x5t).toBe(renewal.x5t)
  })

  it("a deployment moved by SIGHUP to another directory is still watched there after the next interval pass", async () => {
    const { e, w, p } = await setUp("kv-hup-interval-watch")
    mkdirSync(w.path("one"), { mode: 0o700 })
    mkdirSync(w.path("two"), { mode: 0o700 })
    const first = await p.leaf("moved.example.test")
    writeAtomically(w.path("one/tls.crt"), first.certPem)
    writeAtomically(w.path("one/tls.key"), first.keyPem)
    const moved = (dir: string) => ({
      name: "moved",
      vault: "kv-hup-interval-watch",
      certificate: "moved",
      source: { cert: w.path(`${dir}/tls.crt`), key: w.path(`${dir}/tls.key`) },
    })
    // Interval passes every 4 s: the renewal below comes right after one, so the watch answers it
    // long before the next pass would.
    const settings = { reconcile_interval_seconds: 4 }
    const a = world.run(writeConfig(w, e, [moved("one")], settings), e)
    await a.waitFor(succeeded("moved"))

    // Moved to two/ (another certificate there) by a reload.
    const second = await p.leaf("moved.example.test")
    writeAtomically(w.path("two/tls.crt"), second.certPem)
    writeAtomically(w.path("two/tls.key"), second.keyPem)
    writeConfig(w, e, [moved("two")], settings)
    let from = a.lines.length
    a.signal("SIGHUP")
    await a.waitFor((l) => l.msg === "pass over" && l.reason === "reload", { from })
    // An interval pass after the reload: it watched the start-up configuration's directories again.
    await a.waitFor((l) => l.msg === "pass over" && l.reason === "interval", { from })

    const renewal = await p.leaf("moved.example.test")
    from = a.lines.length
    writeAtomically(w.path("two/tls.key"), renewal.keyPem)
    writeAtomically(w.path("two/tls.crt"), renewal.certPem)
    const deployed = await a.waitFor(succeeded("moved"), { from, timeoutMs: 10_000 })
    expect(deployed.trigger).toBe("file change")
    expect(e.state.versions("kv-hup-interval-watch", "moved")?.at(-1)?.x5t).toBe(renewal.x5t)
  })

  it("source files that are links into another directory: a target replaced there, and a link re-pointed elsewhere, are each deployed", async () => {
    const { e, w, p } = await setUp("kv-link-targets")
    // /etc/ssl/api/cert.pem -> /var/lib/acme/api/cert.pem: the ACME client replaces its files by a
    // rename in its own directory, and nothing changes in the directory the configuration names.
    const [etc, acme, moved] = [w.path("etc"), w.path("acme"), w.path("acme-moved")]
    for (const dir of [etc, acme, moved]) mkdirSync(dir, { mode: 0o700 })
    const first = await p.leaf("link.example.test")
    writeAtomically(join(acme, "cert.pem"), first.certPem)
    writeAtomically(join(acme, "key.pem"), first.keyPem)
    symlinkSync(join(acme, "cert.pem"), join(etc, "cert.pem"))
    symlinkSync(join(acme, "key.pem"), join(etc, "key.pem"))
    const link = {
      name: "link",
      vault: "kv-link-targets",
      certificate: "link",
      source: { cert: join(etc, "cert.pem"), key: join(etc, "key.pem") },
    }
    const a = world.run(writeConfig(w, e, [link]), e)
    await a.waitFor(succeeded("link"))
    const served = () => e.state.versions("kv-link-targets", "link")?.at(-1)?.x5t

    // Renewed in the ACME client's directory: key first, then the certificate.
    const renewal = await p.leaf("link.example.test")
    let from = a.lines.length
    writeAtomically(join(acme, "key.pem"), renewal.keyPem)
    writeAtomically(join(acme, "cert.pem"), renewal.certPem)
    await expect.poll(served, { timeout: 10_000 }).toBe(renewal.x5t)
    const deployed = await a.waitFor(succeeded("link"), { from })
    expect(deployed.trigger).toBe("file change")

    // The links re-pointed at another directory (ln -s + mv -T): deployed, and that directory is
    // the one watched from then on.
    const elsewhere = await p.leaf("link.example.test")
    writeAtomically(join(moved, "cert.pem"), elsewhere.certPem)
    writeAtomically(join(moved, "key.pem"), elsewhere.keyPem)
    for (const file of ["key.pem", "cert.pem"]) {
      symlinkSync(join(moved, file), join(etc, `.${file}.link`))
      renameSync(join(etc, `.${file}.link`), join(etc, file))
    }
    await expect.poll(served, { timeout: 10_000 }).toBe(elsewhere.x5t)
    const again = await p.leaf("link.example.test")
    from = a.lines.length
    writeAtomically(join(moved, "key.pem"), again.keyPem)
    writeAtomically(join(moved, "cert.pem"), again.certPem)
    await expect.poll(served, { timeout: 10_000 }).toBe(again.x5t)
    expect((await a.waitFor(succeeded("link"), { from })).trigger).toBe("file change")
  })

  it("a run's lines carry what started it; a file change during the run starts the next one", async () => {
    const { e, w, p } = await setUp("kv-trigger-per-run")
    const leaf = await p.leaf("tr.example.test")
    writeAtomically(w.path("tr.crt"), leaf.certPem)
    writeAtomically(w.path("tr.key"), leaf.keyPem)
    // The start pass's import takes 2 s; the files change meanwhile.
    e.faults.add({
      operation: "import",
      vault: "kv-trigger-per-run",
      name: "tr",
      times: 1,
      action: { kind: "delay", ms: 2000 },
    })
    const a = world.run(
      writeConfig(w, e, [
        {
          name: "tr",
          vault: "kv-trigger-per-run",
          certificate: "tr",
          source: { cert: w.path("tr.crt"), key: w.path("tr.key") },
        },
      ]),
      e,
    )
    await whileImporting(e, "kv-trigger-per-run")
    const renewal = await p.leaf("tr.example.test")
    writeAtomically(w.path("tr.key"), renewal.keyPem)
    writeAtomically(w.path("tr.crt"), renewal.certPem)
    const first = await a.waitFor(succeeded("tr"))
    expect(first.trigger).toBe("start")
    const second = await a.waitFor(succeeded("tr"), { from: a.lines.indexOf(first) + 1 })
    expect(second.trigger).toBe("file change")
    expect(e.state.versions("kv-trigger-per-run", "tr")?.at(-1)?.x5t).toBe(renewal.x5t)
  })

  it("a file change during a retry ends the backoff: the next run starts at once, not after the next delay", async () => {
    const { e, w, p } = await setUp("kv-retry-trigger")
    const leaf = await p.leaf("rt.example.test")
    writeAtomically(w.path("rt.crt"), leaf.certPem)
    writeAtomically(w.path("rt.key"), leaf.keyPem)
    // The first read is refused (a retry after about 2 s); the retry's read is refused too, after
    // 3 s, and the files change meanwhile. The next retry would come 4 s later (3.2-4.8 s).
    e.faults.add({
      operation: "getLatest",
      vault: "kv-retry-trigger",
      name: "rt",
      times: 1,
      // A refusal the SDK does not retry itself (a 503 it would).
      action: { kind: "status", status: 403 },
    })
    e.faults.add({
      operation: "getLatest",
      vault: "kv-retry-trigger",
      name: "rt",
      // (Faults apply in order: this one meets the calls after the first fault's.)
      times: 1,
      action: { kind: "status", status: 403, afterMs: 3000 },
    })
    // Debug lines too: the retry's failed read is one (`cannot read the vault: still failing`).
    const a = world.run(
      writeConfig(
        w,
        e,
        [
          {
            name: "rt",
            vault: "kv-retry-trigger",
            certificate: "rt",
            source: { cert: w.path("rt.crt"), key: w.path("rt.key") },
          },
        ],
        { backoff_base_seconds: 2, backoff_max_seconds: 60 },
      ),
      e,
      { KVDEPLOY_AGENT_LOG_LEVEL: "debug" },
    )
    await a.waitFor((l) => l.deployment === "rt" && /^cannot read the vault/.test(l.msg))
    // The retry begins 1.6-2.4 s later and waits 3 s for its read: 3 s after the failure it is waiting.
    await new Promise((r) => setTimeout(r, 3000))
    expect(
      e.requests
        .entries({ vault: "kv-retry-trigger", operation: "getLatest", challenge: false })
        .map((r) => r.status),
    ).toEqual([403])
    const renewal = await p.leaf("rt.example.test")
    writeAtomically(w.path("rt.key"), renewal.keyPem)
    writeAtomically(w.path("rt.crt"), renewal.certPem)
    const refused = await a.waitFor(
      (l) => l.deployment === "rt" && /^cannot read the vault/.test(l.msg) && l.trigger === "retry",
    )
    const deployed = await a.waitFor(succeeded("rt"), { from: a.lines.indexOf(refused) + 1 })
    expect(deployed.trigger).toBe("file change")
    const gapMs = Date.parse(String(deployed.time)) - Date.parse(String(refused.time))
    // At once: well under the next backoff delay (4 s, jittered to 3.2-4.8 s).
    expect(gapMs).toBeLessThan(2500)
    expect(e.state.versions("kv-retry-trigger", "rt")?.at(-1)?.x5t).toBe(renewal.x5t)
  })
})
