/**
 * The material workers (materialPool.ts, materialWorker.ts): a worker answers
 * what the main thread's `materialOf` answers (material, facts, or the same
 * SourceBroken problems), with the codec's inspection and the transport PFX;
 * a deploy of that material parses nothing again on the main thread and
 * imports the worker's PFX; a worker that dies hands its sources back to the
 * main thread; an idle pool ends its workers. The workers run the built
 * dist/materialWorker.js (the global setup bundles the agent).
 */
import { spawnSync } from "node:child_process"
import { once } from "node:events"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import {
  type CertificateMaterial,
  deploy,
  PfxCodec,
  type PfxEncodeOptions,
  transportPfxOptions,
  validateTargetConfigSync,
} from "@kvdeploy/core"
import { InMemoryAuditLog, InMemoryVault, RecordingMetrics } from "@kvdeploy/core/test"
import { decodePfx, encodePfx, layer as pkcs12Layer } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest"
import { defaultMaterialWorkers, parseAgentConfig, type Source } from "../src/config.js"
import { jsonLineLogger } from "../src/logging.js"
import {
  MaterialPool,
  type MaterialPoolOptions,
  MaterialWorkers,
  materialWorkerCode,
  materialWorkersLayer,
  onMainThread,
  pooledCodec,
  throughPool,
  type WorkerCode,
} from "../src/materialPool.js"
import { materialOf, readSource } from "../src/source.js"
import { type Issued, makePki, type Pki } from "./pki.js"

const pkcs12 = Effect.runSync(
  Effect.gen(function* () {
    return yield* PfxCodec
  }).pipe(Effect.provide(pkcs12Layer)),
)

/** Pkcs12's codec, counting the calls that reach it. */
const counting = () => {
  const calls = { inspect: 0, encode: 0, decoded: [] as Array<Uint8Array> }
  const codec: PfxCodec["Service"] = {
    ...pkcs12,
    inspect: (m) => {
      calls.inspect++
      return pkcs12.inspect(m)
    },
    encode: (m, o) => {
      calls.encode++
      return pkcs12.encode(m, o)
    },
    decode: (bytes, password) => {
      calls.decoded.push(bytes)
      return pkcs12.decode(bytes, password)
    },
  }
  return { codec, calls }
}

/**
 * Deploy `material` with the agent's codec to an in-memory vault that reads what it is sent
 * with a codec of its own (`vaultCodec`, which records the PFX it decodes).
 */
const deployTo = async (
  material: CertificateMaterial,
  agentCodec: PfxCodec["Service"],
  vaultCodec: PfxCodec["Service"],
  target: {
    readonly certificate_name: string
    readonly pfx_encoding?: "modern" | "legacy"
    readonly content_type?: "keep" | "pkcs12" | "pem"
  },
) => {
  const checked = validateTargetConfigSync({ vault_url: "https://kv-pool.vault.azure.net", ...target })
  if (checked._tag === "Failure") throw new Error(checked.failure.message)
  return Effect.runPromise(
    deploy({ target: checked.success, material, certificateId: target.certificate_name }).pipe(
      Effect.provide(
        Layer.mergeAll(
          InMemoryVault.layer.pipe(Layer.provide(Layer.succeed(PfxCodec, vaultCodec))),
          Layer.succeed(PfxCodec, agentCodec),
          RecordingMetrics.layer,
          InMemoryAuditLog.layer,
          Logger.layer([]),
        ),
      ),
    ),
  )
}

let pki: Pki
let dir: string
let leaf: Issued
let other: Issued
const pools: Array<MaterialPool> = []
const code = materialWorkerCode()

beforeAll(async () => {
  pki = await makePki()
  leaf = await pki.leaf("pooled.example.test")
  other = await pki.leaf("other.example.test")
  dir = mkdtempSync(join(tmpdir(), "kvdeploy-pool-"))
})
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const newPool = (size: number, options?: MaterialPoolOptions): MaterialPool => {
  if (code === undefined) throw new Error("dist/materialWorker.js is missing: the global setup bundles it")
  const pool = new MaterialPool(size, code, options)
  pools.push(pool)
  return pool
}

const file = (name: string, content: string | Uint8Array): string => {
  const path = join(dir, name)
  writeFileSync(path, content)
  return path
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
const plain = (m: CertificateMaterial) => ({
  leaf: hex(m.leaf),
  chain: m.chain.map(hex),
  key: hex(Redacted.value(m.key)),
})

/** Main thread and pool, side by side, for one source. */
const both = async (pool: MaterialPool, source: Source, env: Record<string, string> = {}) => {
  const bytes = await Effect.runPromise(readSource(source))
  const main = await Effect.runPromise(Effect.result(materialOf(source, bytes, env, pkcs12)))
  const pooled = await Effect.runPromise(
    Effect.result(throughPool(pool)(source, bytes, env, pkcs12, "modern")),
  )
  return { main, pooled }
}

describe("material workers", () => {
  it("answer a good PEM source as the main thread does, with its inspection and a PFX of the same material", async () => {
    const pool = newPool(2)
    const source: Source = {
      _tag: "Pem",
      cert: file("good.crt", leaf.certPem),
      chain: file("good-chain.crt", pki.caPem),
      key: file("good.key", leaf.keyPem),
    }
    const { main, pooled } = await both(pool, source)
    if (main._tag === "Failure" || pooled._tag === "Failure") throw new Error("expected both to succeed")
    expect(pooled.success.facts).toEqual(main.success.facts)
    expect(pooled.success.facts.x5t).toBe(leaf.x5t)
    expect(plain(pooled.success.material)).toEqual(plain(main.success.material))
    expect(Redacted.isRedacted(pooled.success.material.key)).toBe(true)

    const { codec, calls } = counting()
    const agentCodec = pooledCodec(codec)
    const inspected = await Effect.runPromise(agentCodec.inspect(pooled.success.material))
    expect(inspected).toEqual(await Effect.runPromise(pkcs12.inspect(main.success.material)))
    const pfx = await Effect.runPromise(
      agentCodec.encode(pooled.success.material, transportPfxOptions("modern")),
    )
    expect(calls.inspect + calls.encode).toBe(0)
    const decoded = await Effect.runPromise(decodePfx(pfx, transportPfxOptions("modern").password))
    expect(plain(decoded)).toEqual(plain(pooled.success.material))

    // Other options (a copy of the transport options, another encoding) are the delegate's.
    const copy: PfxEncodeOptions = { ...transportPfxOptions("modern") }
    await Effect.runPromise(agentCodec.encode(pooled.success.material, copy))
    await Effect.runPromise(agentCodec.encode(pooled.success.material, transportPfxOptions("legacy")))
    expect(calls.encode).toBe(2)
    // Material the pool did not answer is the delegate's too.
    await Effect.runPromise(agentCodec.inspect(main.success.material))
    expect(calls.inspect).toBe(1)
  })

  it("open a PFX with the password from the environment, as the main thread does", async () => {
    const pool = newPool(1)
    const material: CertificateMaterial = {
      leaf: new Uint8Array(Buffer.from(leaf.certPem.replace(/-----[^-]+-----|\s/g, ""), "base64")),
      chain: [],
      key: Redacted.make(
        new Uint8Array(Buffer.from(leaf.keyPem.replace(/-----[^-]+-----|\s/g, ""), "base64")),
      ),
    }
    const pfx = await Effect.runPromise(
      encodePfx(material, { encoding: "modern", password: Redacted.make("correct horse") }),
    )
    const source: Source = { _tag: "Pfx", pfx: file("p.pfx", pfx), passwordEnv: "POOL_TEST_PFX_PASSWORD" }
    const good = await both(pool, source, { POOL_TEST_PFX_PASSWORD: "correct horse" })
    if (good.main._tag === "Failure" || good.pooled._tag === "Failure")
      throw new Error("expected both to succeed")
    expect(good.pooled.success.facts).toEqual(good.main.success.facts)
    expect(plain(good.pooled.success.material)).toEqual(plain(good.main.success.material))

    const wrong = await both(pool, source, { POOL_TEST_PFX_PASSWORD: "battery staple" })
    if (wrong.main._tag === "Success" || wrong.pooled._tag === "Success") throw new Error("expected failures")
    expect(wrong.pooled.failure.problems).toEqual(wrong.main.failure.problems)
    expect(wrong.pooled.failure.problems.join()).toMatch(/POOL_TEST_PFX_PASSWORD does not open it/)
  })

  it("answer a broken source with the main thread's SourceBroken problems", async () => {
    const pool = newPool(2)
    const half = leaf.certPem.slice(0, Math.floor(leaf.certPem.length / 2))
    const cases: Array<[string, Source, RegExp]> = [
      [
        "mismatched key",
        {
          _tag: "Pem",
          cert: file("m.crt", leaf.certPem),
          chain: undefined,
          key: file("m.key", other.keyPem),
        },
        /matches none of the certificates/,
      ],
      [
        "half-written certificate",
        { _tag: "Pem", cert: file("h.crt", half), chain: undefined, key: file("h.key", leaf.keyPem) },
        /^cert /,
      ],
      [
        "no key",
        { _tag: "Pem", cert: file("n.crt", leaf.certPem), chain: undefined, key: undefined },
        /holds no private key and no key file is configured/,
      ],
    ]
    for (const [name, source, expected] of cases) {
      const { main, pooled } = await both(pool, source)
      if (main._tag === "Success" || pooled._tag === "Success") throw new Error(`${name}: expected failures`)
      expect(pooled.failure._tag, name).toBe("SourceBroken")
      expect(pooled.failure.problems, name).toEqual(main.failure.problems)
      expect(pooled.failure.problems.join("\n"), name).toMatch(expected)
      expect(pooled.failure.message, name).not.toContain(leaf.keyPem.split("\n")[1])
    }
  })

  /**
   * A PEM source (leaf, CA chain, key) read through a one-worker pool for `encoding`, with
   * the agent's codec over a counting delegate, and a counting codec for the vault's side.
   */
  const pooledPem = async (prefix: string, encoding: "modern" | "legacy") => {
    const pool = newPool(1)
    const source: Source = {
      _tag: "Pem",
      cert: file(`${prefix}.crt`, leaf.certPem),
      chain: file(`${prefix}-chain.crt`, pki.caPem),
      key: file(`${prefix}.key`, leaf.keyPem),
    }
    const bytes = await Effect.runPromise(readSource(source))
    const { codec, calls } = counting()
    const vault = counting()
    const agentCodec = pooledCodec(codec)
    const { material } = await Effect.runPromise(throughPool(pool)(source, bytes, {}, agentCodec, encoding))
    return { material, calls, vault, agentCodec }
  }

  it("make a deploy parse nothing again on the main thread: it imports the worker's PFX", async () => {
    const { material, calls, vault, agentCodec } = await pooledPem("d", "modern")
    const pfx = await Effect.runPromise(agentCodec.encode(material, transportPfxOptions("modern")))
    const outcome = await deployTo(material, agentCodec, vault.codec, { certificate_name: "pooled" })
    expect(outcome._tag).toBe("Succeeded")
    expect(calls).toEqual({ inspect: 0, encode: 0, decoded: [] })
    // The vault read the PFX it was sent: the worker's.
    expect(vault.calls.decoded).toHaveLength(1)
    expect(hex(vault.calls.decoded[0] as Uint8Array)).toBe(hex(pfx))
  })

  it("build a legacy PFX for a pfx_encoding: legacy target, and the deploy imports it", async () => {
    const { material, calls, vault, agentCodec } = await pooledPem("l", "legacy")
    const outcome = await deployTo(material, agentCodec, vault.codec, {
      certificate_name: "pooled-legacy",
      pfx_encoding: "legacy",
    })
    expect(outcome._tag).toBe("Succeeded")
    // The worker's PFX, not one the main thread built.
    expect(calls).toEqual({ inspect: 0, encode: 0, decoded: [] })
    expect(vault.calls.decoded).toHaveLength(1)
    const imported = vault.calls.decoded[0] as Uint8Array
    // The legacy profile (as the delegate's legacy encode): PBE-SHA1-3DES for key and
    // certificates and a SHA-1 MAC; the modern one has AES-256-CBC and SHA-256.
    const profile = (pfx: Uint8Array) => {
      // openssl prints the algorithms on stderr; the PFX goes in on stdin, never to a file.
      const r = spawnSync("openssl", ["pkcs12", "-info", "-noout", "-nokeys", "-passin", "env:POOL_PFX_PW"], {
        input: pfx,
        env: { ...process.env, POOL_PFX_PW: Redacted.value(transportPfxOptions("legacy").password) },
        encoding: "utf8",
      })
      expect(r.status, r.stderr).toBe(0)
      return r.stderr
    }
    const delegateLegacy = await Effect.runPromise(pkcs12.encode(material, transportPfxOptions("legacy")))
    const expected = profile(delegateLegacy)
    expect(expected).toMatch(/MAC: sha1/)
    expect(expected).toMatch(/pbeWithSHA1And3-KeyTripleDES-CBC/)
    expect(profile(imported)).toBe(expected)
    expect(profile(imported)).not.toMatch(/AES|sha256/i)
    const decoded = await Effect.runPromise(decodePfx(imported, transportPfxOptions("legacy").password))
    expect(plain(decoded)).toEqual(plain(material))
  })

  it("a content_type: pem target: the agent's codec builds the PEM, and the deploy imports PEM, no PFX", async () => {
    const { material, calls, vault, agentCodec } = await pooledPem("pem", "modern")
    const outcome = await deployTo(material, agentCodec, vault.codec, {
      certificate_name: "pooled-pem",
      content_type: "pem",
    })
    expect(outcome._tag, outcome.reason).toBe("Succeeded")
    expect(outcome.contentType).toEqual({
      imported: "application/x-pem-file",
      served: undefined,
      change: "new",
    })
    // The worker's inspection; no PFX built or read on either side: the vault was sent PEM.
    expect(calls).toEqual({ inspect: 0, encode: 0, decoded: [] })
    expect(vault.calls.decoded).toHaveLength(0)
  })

  it("hand a source back to the main thread when its worker dies on the way", async () => {
    const failures: Array<{ worker: string; reason: string; pending: number }> = []
    const pool = newPool(1, {
      onFailure: (f) => failures.push(f),
      posted: (worker) => void worker.terminate(),
    })
    const source: Source = {
      _tag: "Pem",
      cert: file("k.crt", leaf.certPem),
      chain: undefined,
      key: file("k.key", leaf.keyPem),
    }
    const { main, pooled } = await both(pool, source)
    if (main._tag === "Failure" || pooled._tag === "Failure") throw new Error("expected both to succeed")
    expect(pooled.success.facts).toEqual(main.success.facts)
    expect(plain(pooled.success.material)).toEqual(plain(main.success.material))
    expect(failures).toHaveLength(1)
    expect(failures[0]?.pending).toBe(1)
    expect(pool.started).toBe(0)
  })

  it("end every worker once idle", async () => {
    const pool = newPool(2, { idleMs: 10 })
    const source: Source = {
      _tag: "Pem",
      cert: file("i.crt", leaf.certPem),
      chain: undefined,
      key: file("i.key", leaf.keyPem),
    }
    const bytes = await Effect.runPromise(readSource(source))
    const read = throughPool(pool)(source, bytes, {}, pkcs12, "modern")
    // Two at once: both workers start.
    const reading = Promise.all([Effect.runPromise(read), Effect.runPromise(read)])
    const workers = pool.workers()
    expect(workers).toHaveLength(2)
    const exited = Promise.all(workers.map((w) => once(w, "exit")))
    await reading
    await exited
    expect(pool.started).toBe(0)
    expect(pool.workers()).toHaveLength(0)
  })
})

describe("material workers that misbehave (stub workers)", () => {
  /** A stub worker: `onRequest` is the body of a handler of `(m)`, a MaterialRequest; releases are answered. */
  const stub = (name: string, onRequest: string, top = ""): WorkerCode => {
    const path = join(dir, `${name}.mjs`)
    writeFileSync(
      path,
      `import { parentPort } from "node:worker_threads"
${top}
parentPort.on("message", (m) => {
  if ("release" in m) { parentPort.postMessage({ released: true }); return }
  ${onRequest}
})
`,
    )
    return { _tag: "File", url: pathToFileURL(path) }
  }
  const erring = () =>
    stub("erring", `parentPort.postMessage({ id: m.id, ok: "error", error: "TypeError ERR_STUB" })`)
  const broken = () =>
    stub("broken", `parentPort.postMessage({ id: m.id, ok: false, problems: ["stub: checked"] })`)
  const exiting = () => stub("exiting", "process.exit(3)")
  const silent = () => stub("silent", "")
  const stubPool = (size: number, workerCode: WorkerCode, options?: MaterialPoolOptions) => {
    const pool = new MaterialPool(size, workerCode, options)
    pools.push(pool)
    return pool
  }
  const good = (name: string): Source => ({
    _tag: "Pem",
    cert: file(`${name}.crt`, leaf.certPem),
    chain: undefined,
    key: file(`${name}.key`, leaf.keyPem),
  })
  type Failure = Parameters<NonNullable<MaterialPoolOptions["onFailure"]>>[0]

  it("hand a worker's ok: error answer back to the main thread (never SourceBroken), counted as handed back, warned once per worker", async () => {
    const errors: Array<{ worker: string; error: string }> = []
    let stats: { answered: number; handedBack: number } | undefined
    const pool = stubPool(1, erring(), {
      idleMs: 10,
      onWorkerError: (e) => errors.push(e),
      onIdleStop: (s) => {
        stats = s
      },
    })
    const source = good("err")
    for (let i = 0; i < 2; i++) {
      const { main, pooled } = await both(pool, source)
      if (main._tag === "Failure") throw new Error("expected the main thread to succeed")
      if (pooled._tag === "Failure") throw new Error(`handed back as ${pooled.failure._tag}`)
      expect(plain(pooled.success.material)).toEqual(plain(main.success.material))
      expect(pooled.success.facts).toEqual(main.success.facts)
    }
    expect(errors).toEqual([{ worker: "kvdeploy-material-0", error: "TypeError ERR_STUB" }])
    await expect.poll(() => stats, { timeout: 10_000 }).toMatchObject({ answered: 0, handedBack: 2 })
  })

  it("log a worker's internal error once per worker, its kind only, through the agent's layer", async () => {
    const lines: Array<Record<string, unknown>> = []
    const logger = Logger.layer([jsonLineLogger((l) => void lines.push(JSON.parse(l)))])
    const source = good("errlog")
    const bytes = await Effect.runPromise(readSource(source))
    await Effect.runPromise(
      Effect.gen(function* () {
        const workers = yield* MaterialWorkers
        expect(workers.workers).toBe(1)
        for (let i = 0; i < 3; i++) yield* workers.forDeploy(source, bytes, {}, pkcs12, "modern")
        yield* Effect.promise(() =>
          expect
            .poll(() =>
              lines.filter((l) => l.msg !== undefined && /material worker error/.test(String(l.msg))),
            )
            .toHaveLength(1),
        )
      }).pipe(
        Effect.provide(materialWorkersLayer(1, erring).pipe(Layer.provide(logger))),
        Effect.provide(logger),
      ),
    )
    const warned = lines.filter((l) => /material worker error/.test(String(l.msg)))
    expect(warned).toEqual([
      expect.objectContaining({ level: "warn", worker: "kvdeploy-material-0", error: "TypeError ERR_STUB" }),
    ])
  })

  it("wait restartDelayMs after a failure before a slot starts a worker again", async () => {
    const failures: Array<Failure> = []
    const bytes = await Effect.runPromise(readSource(good("restart")))
    const slow = stubPool(1, exiting(), { restartDelayMs: 3_600_000, onFailure: (f) => failures.push(f) })
    expect(await slow.read(good("restart"), bytes, undefined, "modern")).toEqual({ ok: "lost" })
    expect(failures).toEqual([{ worker: "kvdeploy-material-0", reason: "exited with code 3", pending: 1 }])
    // Within the delay: no worker starts; the request is handed back at once.
    const again = slow.read(good("restart"), bytes, undefined, "modern")
    expect(slow.started).toBe(0)
    expect(await again).toEqual({ ok: "lost" })
    expect(failures).toHaveLength(1)
    // With no delay, the slot starts a worker again.
    const quick = stubPool(1, exiting(), { restartDelayMs: 0, onFailure: (f) => failures.push(f) })
    expect(await quick.read(good("restart"), bytes, undefined, "modern")).toEqual({ ok: "lost" })
    const restarted = quick.read(good("restart"), bytes, undefined, "modern")
    expect(quick.started).toBe(1)
    expect(await restarted).toEqual({ ok: "lost" })
  })

  it("count restartDelayMs on the monotonic clock: a wall clock set back does not hold a slot", async () => {
    const bytes = await Effect.runPromise(readSource(good("restart")))
    const pool = stubPool(1, exiting(), { restartDelayMs: 300, onFailure: () => undefined })
    expect(await pool.read(good("restart"), bytes, undefined, "modern")).toEqual({ ok: "lost" })
    // The wall clock goes back an hour (NTP stepping it, a VM restored), then the delay passes.
    const now = Date.now
    const setBack = vi.spyOn(Date, "now").mockImplementation(() => now() - 3_600_000)
    try {
      await new Promise((resolve) => setTimeout(resolve, 400))
      const again = pool.read(good("restart"), bytes, undefined, "modern")
      expect(pool.started).toBe(1)
      expect(await again).toEqual({ ok: "lost" })
    } finally {
      setBack.mockRestore()
    }
  })

  it("hand back only the request that could not be posted, not its worker's others", async () => {
    const failures: Array<Failure> = []
    const pool = stubPool(1, broken(), { onFailure: (f) => failures.push(f) })
    const source = good("post")
    const bytes = await Effect.runPromise(readSource(source))
    const first = pool.read(source, bytes, undefined, "modern")
    // A function cannot be copied into a message: postMessage throws.
    const uncopyable = { ...source, extra: () => 0 } as unknown as Source
    const second = pool.read(uncopyable, bytes, undefined, "modern")
    expect(await second).toEqual({ ok: "lost" })
    expect(await first).toEqual({ id: 1, ok: false, problems: ["stub: checked"] })
    expect(failures).toEqual([])
    expect(pool.started).toBe(1)
  })

  it("end a worker that leaves a request unanswered past requestTimeoutMs, handing its requests back", async () => {
    const failures: Array<Failure> = []
    const pool = stubPool(1, silent(), { requestTimeoutMs: 50, onFailure: (f) => failures.push(f) })
    const source = good("silent")
    const bytes = await Effect.runPromise(readSource(source))
    const reading = [
      pool.read(source, bytes, undefined, "modern"),
      pool.read(source, bytes, undefined, "modern"),
    ]
    const [worker] = pool.workers()
    if (worker === undefined) throw new Error("expected a worker")
    const exited = once(worker, "exit")
    expect(await Promise.all(reading)).toEqual([{ ok: "lost" }, { ok: "lost" }])
    expect(failures).toEqual([{ worker: "kvdeploy-material-0", reason: "no answer in 50 ms", pending: 2 }])
    expect(pool.started).toBe(0)
    await exited
    // Through the pool, the deploy gets the main thread's answer.
    const { main, pooled } = await both(pool, source)
    if (main._tag === "Failure" || pooled._tag === "Failure") throw new Error("expected both to succeed")
    expect(plain(pooled.success.material)).toEqual(plain(main.success.material))
  })

  it("end a worker whose message cannot be read (messageerror), handing its requests back", async () => {
    const failures: Array<Failure> = []
    const pool = stubPool(1, silent(), {
      onFailure: (f) => failures.push(f),
      posted: (worker) => void worker.emit("messageerror", new Error("could not deserialize")),
    })
    const source = good("messageerror")
    const bytes = await Effect.runPromise(readSource(source))
    expect(await pool.read(source, bytes, undefined, "modern")).toEqual({ ok: "lost" })
    expect(failures).toEqual([
      { worker: "kvdeploy-material-0", reason: "sent a message that cannot be read (Error)", pending: 1 },
    ])
    expect(pool.started).toBe(0)
  })

  it("give a failed worker's error code in the reason, never its message", async () => {
    const failures: Array<Failure> = []
    const throwing = stub(
      "throwing",
      `const e = new Error("secret bytes here"); e.code = "ERR_STUB_FAILED"; throw e`,
    )
    const pool = stubPool(1, throwing, { onFailure: (f) => failures.push(f) })
    const source = good("throwing")
    const bytes = await Effect.runPromise(readSource(source))
    expect(await pool.read(source, bytes, undefined, "modern")).toEqual({ ok: "lost" })
    expect(failures).toEqual([
      { worker: "kvdeploy-material-0", reason: "failed (Error ERR_STUB_FAILED)", pending: 1 },
    ])
    expect(JSON.stringify(failures)).not.toContain("secret")
  })

  it("give a request to an idle running worker before starting one in a free slot", async () => {
    const pool = stubPool(2, broken(), { restartDelayMs: 0, onFailure: () => undefined })
    const source = good("pick")
    const bytes = await Effect.runPromise(readSource(source))
    await Promise.all([
      pool.read(source, bytes, undefined, "modern"),
      pool.read(source, bytes, undefined, "modern"),
    ])
    const [first, second] = pool.workers()
    if (first === undefined || second === undefined) throw new Error("expected two workers")
    // Slot 0 freed (its worker ended), slot 1 running and idle.
    const exited = once(first, "exit")
    await first.terminate()
    await exited
    expect(pool.workers()).toEqual([second])
    const answer = pool.read(source, bytes, undefined, "modern")
    expect(pool.workers()).toEqual([second])
    expect(await answer).toMatchObject({ ok: false, problems: ["stub: checked"] })
  })
})

describe("materialWorkersLayer", () => {
  const run = async (layer: Layer.Layer<never>) => {
    const lines: Array<Record<string, unknown>> = []
    const logger = Logger.layer([jsonLineLogger((l) => void lines.push(JSON.parse(l)))])
    const workers = await Effect.runPromise(
      Effect.gen(function* () {
        return yield* MaterialWorkers
      }).pipe(Effect.provide(layer.pipe(Layer.provide(logger))), Effect.provide(logger)),
    )
    return { workers, lines }
  }

  it("warns once when workers are configured but their code is missing, and runs on the main thread", async () => {
    const { workers, lines } = await run(materialWorkersLayer(2, () => undefined))
    expect(workers.workers).toBe(0)
    expect(workers.forDeploy).toBe(onMainThread)
    expect(lines).toEqual([
      expect.objectContaining({
        level: "warn",
        msg: expect.stringMatching(/worker's code is missing/),
        materialWorkers: 2,
      }),
    ])
  })

  it("gives the effective worker count: the configured size with code, 0 when none are configured", async () => {
    const found = await run(materialWorkersLayer(3))
    expect(found.workers.workers).toBe(3)
    expect(found.lines).toEqual([])
    const none = await run(materialWorkersLayer(0, () => undefined))
    expect(none.workers.workers).toBe(0)
    expect(none.lines).toEqual([])
  })
})

describe("material_workers", () => {
  const settingsOf = (value: string | undefined) =>
    parseAgentConfig(
      `${value === undefined ? "" : `agent:\n  material_workers: ${value}\n`}deployments: []\n`,
      "/etc/kvdeploy/agent.yaml",
      "/etc/kvdeploy",
      {},
    )

  it("takes a whole number from 0 to 64; by default 0 (opt-in: everything on the main thread)", () => {
    for (const [value, expected] of [
      ["0", 0],
      ["1", 1],
      ["3", 3],
      ["64", 64],
      [undefined, 0],
    ] as const) {
      const r = settingsOf(value)
      if (r._tag === "Failure") throw new Error(r.failure.message)
      expect(r.success.settings.materialWorkers, String(value)).toBe(expected)
    }
    expect(defaultMaterialWorkers).toBe(0)
  })

  it("refuses anything else, naming the field and the fix", () => {
    for (const value of ["-1", "1.5", "65", "four", "~"]) {
      const r = settingsOf(value)
      if (r._tag === "Success") throw new Error(`${value} was accepted`)
      expect(r.failure.problems, value).toHaveLength(1)
      const [problem] = r.failure.problems
      expect(problem?.field, value).toBe("agent.material_workers")
      expect(problem?.message, value).toMatch(/not a whole number from 0 to 64/)
      expect(problem?.fix, value).toMatch(/give a whole number from 0 to 64/)
    }
    // YAML's infinities and NaN are named as written in numbers, not as JSON's null.
    for (const [value, shown] of [
      [".inf", "Infinity"],
      ["-.inf", "-Infinity"],
      [".nan", "NaN"],
    ] as const) {
      const r = settingsOf(value)
      if (r._tag === "Success") throw new Error(`${value} was accepted`)
      expect(r.failure.problems.map((p) => p.message)).toEqual([
        `is ${shown}, not a whole number from 0 to 64`,
      ])
    }
  })
})
