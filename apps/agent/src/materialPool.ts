/**
 * Material workers: a small pool of worker threads that parse and check the
 * sources of likely deploys (PEM or PFX parse, key match, the codec's
 * inspection) and build their transport PFX, so that the agent's main thread
 * only schedules, talks HTTP and keeps the books. The answers are the main
 * thread's own (`materialOf` runs in the worker, with the same codec).
 *
 * - Workers start on first use and are all terminated after `idleMs` without a
 *   request (an idle agent holds no worker isolate), and when the agent stops.
 * - Requests go to an idle running worker, else to a new one in a free slot,
 *   else to the least busy. A worker that fails, exits, sends a message that
 *   cannot be read or leaves a request unanswered for `requestTimeoutMs` is
 *   ended and hands its pending requests back to the main thread
 *   (`materialOf` there): a deployment never fails or hangs because of the
 *   pool. The failure is logged once, and the worker may start again after
 *   `restartDelayMs`. A worker's internal error on one request (`ok: "error"`)
 *   hands that request back too, warned once per worker.
 * - The material comes back with the codec's inspection and the PFX; the
 *   agent's codec (`pooledCodec`) answers the deploy's `inspect` and `encode`
 *   of that material object from them, without parsing again.
 *
 * Key bytes cross threads inside messages only (memory, never a file), and no
 * log line or error text holds them.
 */
import { existsSync } from "node:fs"
import { getAsset, isSea } from "node:sea"
import { fileURLToPath } from "node:url"
import { Worker } from "node:worker_threads"
import {
  type CertificateMaterial,
  environmentVariable,
  type InspectedMaterial,
  PfxCodec,
  type PfxEncoding,
  transportPfxOptions,
} from "@kvdeploy/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type { Source } from "./config.js"
import type {
  MaterialRequest,
  MaterialResponse,
  ReleaseRequest,
  ReleaseResponse,
} from "./materialProtocol.js"
import { materialOf, SourceBroken, type SourceBytes, type SourceFacts } from "./source.js"

// ---------------------------------------------------------------------------
// The codec: Pkcs12's, answering a pooled material's inspect and encode from the worker's work
// ---------------------------------------------------------------------------

interface Prepared {
  readonly inspected: InspectedMaterial
  readonly pfx: Uint8Array | undefined
  readonly encoding: PfxEncoding | undefined
}

/** What a worker prepared for each material object it answered (held as long as the material is). */
const preparedFor = new WeakMap<CertificateMaterial, Prepared>()

/**
 * The agent's PfxCodec: `delegate` (@kvdeploy/pkcs12's), except for material
 * a worker answered: its `inspect` is the worker's inspection, and its
 * `encode` with the transport options of the encoding the worker built for
 * (the very object `transportPfxOptions` answers) is the worker's PFX.
 * Anything else goes to `delegate`.
 */
export const pooledCodec = (delegate: PfxCodec["Service"]): PfxCodec["Service"] => ({
  ...delegate,
  inspect: (material) => {
    const prepared = preparedFor.get(material)
    return prepared === undefined ? delegate.inspect(material) : Effect.succeed(prepared.inspected)
  },
  encode: (material, options) => {
    const prepared = preparedFor.get(material)
    return prepared?.pfx !== undefined &&
      prepared.encoding !== undefined &&
      options === transportPfxOptions(prepared.encoding)
      ? Effect.succeed(prepared.pfx)
      : delegate.encode(material, options)
  },
})

/** Pkcs12's codec layer with `pooledCodec` over it. */
export const pooledCodecLayer = (delegate: Layer.Layer<PfxCodec>): Layer.Layer<PfxCodec> =>
  Layer.effect(PfxCodec)(
    Effect.map(
      Effect.gen(function* () {
        return yield* PfxCodec
      }),
      pooledCodec,
    ),
  ).pipe(Layer.provide(delegate))

// ---------------------------------------------------------------------------
// The pool
// ---------------------------------------------------------------------------

/** Where a worker's code comes from: the built file next to the agent, or the single executable's asset. */
export type WorkerCode =
  | { readonly _tag: "File"; readonly url: URL }
  | { readonly _tag: "SeaAsset"; readonly name: string }

/** The SEA asset name of the worker's CommonJS bundle (scripts/sea.mjs). */
export const seaWorkerAsset = "materialWorker.cjs"

/**
 * The worker's code for this process: the single executable's asset; next to
 * the bundle, dist/materialWorker.js (or .cjs next to the CommonJS bundle);
 * from the TypeScript sources (vitest), the built dist/materialWorker.js.
 * Undefined when there is none (the agent is not built): everything then runs
 * on the main thread.
 */
export const materialWorkerCode = (): WorkerCode | undefined => {
  if (isSea()) return { _tag: "SeaAsset", name: seaWorkerAsset }
  const here = import.meta.url
  const candidates = here.endsWith(".ts")
    ? ["../dist/materialWorker.js"]
    : ["./materialWorker.js", "./materialWorker.cjs"]
  for (const c of candidates) {
    const url = new URL(c, here)
    if (existsSync(fileURLToPath(url))) return { _tag: "File", url }
  }
  return undefined
}

/** A request the pool could not answer (its worker failed or exited): the caller checks on the main thread. */
export interface Lost {
  readonly ok: "lost"
}
const lost: Lost = { ok: "lost" }

/** How long an idle worker may take to collect its garbage before it is ended anyway. */
const releaseWaitMs = 2000

interface Slot {
  readonly index: number
  readonly worker: Worker
  readonly pending: Map<number, (r: MaterialResponse | Lost) => void>
  /** Told when the worker answered a release request. */
  released: (() => void) | undefined
  /** Its first `ok: "error"` answer was told (`onWorkerError`): once per worker. */
  errorTold: boolean
}

/** The kind of an error, for a log line: its name and `code` (never its message, which could quote input). */
const errorKind = (e: unknown): string => {
  const name = e instanceof Error ? e.name : typeof e
  const code = (e as { code?: unknown } | null | undefined)?.code
  return typeof code === "string" || typeof code === "number" ? `${name} ${code}` : name
}

export interface MaterialPoolOptions {
  /** Workers are terminated after this long without a request (default 2000 ms; before the idle release). */
  readonly idleMs?: number
  /** A failed slot starts a worker again after this long at the earliest (default 5000 ms). */
  readonly restartDelayMs?: number
  /**
   * A request its worker has not answered after this long ends that worker, and its pending
   * requests go back to the main thread (default 60000 ms: a deploy's parse takes milliseconds).
   */
  readonly requestTimeoutMs?: number
  /**
   * Told once per worker, at its first `ok: "error"` answer (a defect in the worker; the request
   * is handed back to the main thread): the error's kind (name and code), no key material.
   */
  readonly onWorkerError?: (error: { readonly worker: string; readonly error: string }) => void
  /** Told once per worker failure (no key material in `reason`). */
  readonly onFailure?: (failure: {
    readonly worker: string
    readonly reason: string
    readonly pending: number
  }) => void
  /**
   * Told when idle workers were ended: how many, the requests answered and handed back so far,
   * and the time the ended workers' event loops were busy (ms; their share of the CPU work).
   */
  readonly onIdleStop?: (stats: {
    readonly workers: number
    readonly answered: number
    readonly handedBack: number
    readonly busyMs: number
  }) => void
  /** Test hook: a request was just posted to `worker`. */
  readonly posted?: (worker: Worker) => void
}

export class MaterialPool {
  private readonly slots: Array<Slot | undefined>
  /** Per slot: no new worker before this time (after a failure). */
  private readonly restartAt: Array<number>
  private nextId = 1
  private pendingTotal = 0
  /** Requests answered by a worker, and handed back (`lost`), since the pool was made. */
  private answered = 0
  private handedBack = 0
  private idleTimer: ReturnType<typeof setTimeout> | undefined
  private closed = false
  private readonly idleMs: number
  private readonly restartDelayMs: number
  private readonly requestTimeoutMs: number

  constructor(
    readonly size: number,
    private readonly code: WorkerCode,
    private readonly options: MaterialPoolOptions = {},
  ) {
    if (!Number.isInteger(size) || size < 1)
      throw new Error(`material_workers must be at least 1 for a pool, got ${size}`)
    this.slots = Array.from({ length: size }, () => undefined)
    this.restartAt = Array.from({ length: size }, () => 0)
    this.idleMs = options.idleMs ?? 2000
    this.restartDelayMs = options.restartDelayMs ?? 5000
    this.requestTimeoutMs = options.requestTimeoutMs ?? 60_000
  }

  /** Workers alive now. */
  get started(): number {
    return this.slots.filter((s) => s !== undefined).length
  }

  /** The workers alive now (tests). */
  workers(): ReadonlyArray<Worker> {
    return this.slots.flatMap((s) => (s === undefined ? [] : [s.worker]))
  }

  /**
   * The worker's answer for the source's bytes, or `lost` (no worker could
   * take it, or its worker failed): then the caller checks on the main thread.
   */
  read(
    source: Source,
    bytes: Pick<SourceBytes, "fingerprint" | "files">,
    password: string | undefined,
    encoding: PfxEncoding | undefined,
  ): Promise<MaterialResponse | Lost> {
    if (this.closed) return Promise.resolve(lost)
    const slot = this.pick()
    if (slot === undefined) return Promise.resolve(lost)
    const id = this.nextId++
    // Copies of the bytes, handed over (transferred); the caller keeps its own for a main-thread check.
    const files = bytes.files.map((f) => ({ role: f.role, path: f.path, bytes: new Uint8Array(f.bytes) }))
    const request: MaterialRequest = {
      id,
      source,
      fingerprint: bytes.fingerprint,
      files,
      password,
      encoding,
    }
    return new Promise((resolve) => {
      this.pendingTotal++
      if (this.idleTimer !== undefined) {
        clearTimeout(this.idleTimer)
        this.idleTimer = undefined
      }
      // The worker is ended when it leaves this request unanswered too long (fail hands it back).
      const timer = setTimeout(
        () => this.fail(slot, `no answer in ${this.requestTimeoutMs} ms`),
        this.requestTimeoutMs,
      )
      timer.unref()
      slot.pending.set(id, (r) => {
        clearTimeout(timer)
        if (r.ok === "lost" || r.ok === "error") this.handedBack++
        else this.answered++
        if (r.ok === "error" && !slot.errorTold) {
          slot.errorTold = true
          this.options.onWorkerError?.({ worker: `kvdeploy-material-${slot.index}`, error: r.error })
        }
        this.pendingTotal--
        if (this.pendingTotal === 0) this.armIdle()
        resolve(r)
      })
      try {
        slot.worker.postMessage(
          request,
          files.map((f) => f.bytes.buffer as ArrayBuffer),
        )
      } catch {
        // Not sent (the request could not be copied): this source alone is checked on the main thread.
        const done = slot.pending.get(id)
        slot.pending.delete(id)
        done?.(lost)
        return
      }
      this.options.posted?.(slot.worker)
    })
  }

  /**
   * An idle running worker; else a new one in a free slot (past its restart delay); else the
   * least busy running one.
   */
  private pick(): Slot | undefined {
    let best: Slot | undefined
    for (const s of this.slots)
      if (s !== undefined && (best === undefined || s.pending.size < best.pending.size)) best = s
    if (best !== undefined && best.pending.size === 0) return best
    const now = performance.now()
    for (let i = 0; i < this.slots.length; i++) {
      if (this.slots[i] !== undefined || now < (this.restartAt[i] ?? 0)) continue
      const spawned = this.spawn(i)
      if (spawned !== undefined) return spawned
    }
    return best
  }

  private spawn(index: number): Slot | undefined {
    const name = `kvdeploy-material-${index}`
    let worker: Worker
    try {
      // No Node flags (V8's, such as --expose-gc, are refused in a worker and hold for the whole
      // process anyway) and no environment (the password comes with the request).
      worker =
        this.code._tag === "File"
          ? new Worker(this.code.url, { name, execArgv: [], env: {} })
          : new Worker(getAsset(this.code.name, "utf8"), { name, eval: true, execArgv: [], env: {} })
    } catch (e) {
      this.restartAt[index] = performance.now() + this.restartDelayMs
      this.options.onFailure?.({
        worker: name,
        reason: `cannot start (${errorKind(e)})`,
        pending: 0,
      })
      return undefined
    }
    // The pool never keeps the process alive (the agent's server does).
    worker.unref()
    const slot: Slot = { index, worker, pending: new Map(), released: undefined, errorTold: false }
    this.slots[index] = slot
    worker.on("message", (m: MaterialResponse | ReleaseResponse) => {
      if ("released" in m) {
        slot.released?.()
        return
      }
      const done = slot.pending.get(m.id)
      if (done === undefined) return
      slot.pending.delete(m.id)
      done(m)
    })
    worker.on("error", (e) => this.fail(slot, `failed (${errorKind(e)})`))
    // A message that cannot be deserialized: its request would never be answered.
    worker.on("messageerror", (e) => this.fail(slot, `sent a message that cannot be read (${errorKind(e)})`))
    worker.on("exit", (code) => this.fail(slot, `exited with code ${code}`))
    return slot
  }

  /**
   * The worker failed: ended, its slot freed until `restartDelayMs` from now, its requests
   * answered `lost`, the failure told once. A worker the pool already took out of its slot
   * (idle, close, an earlier failure) is no failure.
   */
  private fail(slot: Slot, reason: string): void {
    if (this.slots[slot.index] !== slot) return
    this.slots[slot.index] = undefined
    const pending = [...slot.pending.values()]
    slot.pending.clear()
    this.restartAt[slot.index] = performance.now() + this.restartDelayMs
    this.options.onFailure?.({ worker: `kvdeploy-material-${slot.index}`, reason, pending: pending.length })
    void slot.worker.terminate()
    for (const done of pending) done(lost)
  }

  private armIdle(): void {
    if (this.closed) return
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined
      if (this.pendingTotal !== 0) return
      const workers = this.started
      void this.stopAll(true).then((busyMs) =>
        this.options.onIdleStop?.({
          workers,
          answered: this.answered,
          handedBack: this.handedBack,
          busyMs: Math.round(busyMs),
        }),
      )
    }, this.idleMs)
    this.idleTimer.unref()
  }

  /**
   * Ends every worker. `release`: each first collects its garbage (ReleaseRequest), so that the
   * heap pages it leaves behind are few; one that does not answer within `releaseWaitMs` is ended all the same.
   */
  private async stopAll(release: boolean): Promise<number> {
    const running = this.slots.filter((s): s is Slot => s !== undefined)
    this.slots.fill(undefined)
    const busy = await Promise.all(
      running.map(async (s) => {
        // Out of its slot already: its exit is no failure (fail ignores it).
        const pending = [...s.pending.values()]
        s.pending.clear()
        for (const done of pending) done(lost)
        if (release) await this.released(s)
        const active = s.worker.performance.eventLoopUtilization().active
        await s.worker.terminate()
        return active
      }),
    )
    return busy.reduce((a, b) => a + b, 0)
  }

  /** The worker's answer to a release request, its exit, or `releaseWaitMs`, whichever comes first. */
  private released(slot: Slot): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, releaseWaitMs)
      timer.unref()
      function done() {
        clearTimeout(timer)
        slot.released = undefined
        slot.worker.off("exit", done)
        resolve()
      }
      slot.released = done
      slot.worker.once("exit", done)
      try {
        slot.worker.postMessage({ release: true } satisfies ReleaseRequest)
      } catch {
        done()
      }
    })
  }

  /** Terminates every worker; requests still waiting are answered `lost` (checked on the main thread). */
  async close(): Promise<void> {
    this.closed = true
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer)
    this.idleTimer = undefined
    await this.stopAll(false)
  }
}

// ---------------------------------------------------------------------------
// The agent's use: the material of a likely deploy
// ---------------------------------------------------------------------------

/** A likely deploy's material and facts, or the source's problems. */
export type MaterialForDeploy = (
  source: Source,
  bytes: Pick<SourceBytes, "fingerprint" | "files">,
  env: Readonly<Record<string, string | undefined>>,
  codec: PfxCodec["Service"],
  encoding: PfxEncoding,
) => Effect.Effect<{ readonly material: CertificateMaterial; readonly facts: SourceFacts }, SourceBroken>

/** On the main thread, as `materialOf` with the deploy's codec. */
export const onMainThread: MaterialForDeploy = (source, bytes, env, codec) =>
  materialOf(source, bytes, env, codec)

/** Through `pool`; on the main thread when the pool cannot answer. */
export const throughPool =
  (pool: MaterialPool): MaterialForDeploy =>
  (source, bytes, env, codec, encoding) =>
    Effect.flatMap(
      Effect.promise(() =>
        pool.read(
          source,
          bytes,
          source._tag === "Pfx" && source.passwordEnv !== undefined
            ? environmentVariable(source.passwordEnv, env)
            : undefined,
          encoding,
        ),
      ),
      (r): ReturnType<MaterialForDeploy> => {
        if (r.ok === true) {
          const material: CertificateMaterial = { leaf: r.leaf, chain: r.chain, key: Redacted.make(r.key) }
          if (r.inspected !== undefined)
            preparedFor.set(material, { inspected: r.inspected, pfx: r.pfx, encoding: r.encoding })
          return Effect.succeed({ material, facts: r.facts })
        }
        if (r.ok === false) return Effect.fail(new SourceBroken({ problems: r.problems }))
        return materialOf(source, bytes, env, codec)
      },
    )

/**
 * How the reconciler gets a likely deploy's material, and how many workers may answer
 * (`workers`; 0: none, on the main thread).
 */
export const MaterialWorkers = Context.Reference<{
  readonly forDeploy: MaterialForDeploy
  readonly workers: number
}>("@kvdeploy/agent/MaterialWorkers", { defaultValue: () => ({ forDeploy: onMainThread, workers: 0 }) })

/**
 * `size` material workers for the agent (0: none, everything on the main
 * thread), terminated when the layer is released. A worker failure is logged
 * (a warning, once per failure), and a worker's first internal error (a
 * warning, once per worker), with the layer's logger. With `size` above 0 and
 * no worker code (`findCode` finds none: the agent is not built as shipped),
 * a warning says so once and everything runs on the main thread.
 */
export const materialWorkersLayer = (
  size: number,
  findCode: () => WorkerCode | undefined = materialWorkerCode,
) =>
  size === 0
    ? Layer.empty
    : Layer.suspend(() => {
        const code = findCode()
        return code === undefined ? missingCodeLayer(size) : poolLayer(size, code)
      })

const missingCodeLayer = (size: number) =>
  Layer.effect(MaterialWorkers)(
    Effect.logWarning(
      "material workers: the worker's code is missing (materialWorker.js next to the agent, or the single executable's asset); every source is checked on the main thread",
    ).pipe(
      Effect.annotateLogs({ materialWorkers: size }),
      Effect.as({ forDeploy: onMainThread, workers: 0 }),
    ),
  )

const poolLayer = (size: number, code: WorkerCode) =>
  Layer.effect(MaterialWorkers)(
    Effect.gen(function* () {
      const context = yield* Effect.context<never>()
      const pool = yield* Effect.acquireRelease(
        Effect.sync(
          () =>
            new MaterialPool(size, code, {
              onFailure: (f) =>
                Effect.runForkWith(context)(
                  Effect.logWarning(
                    "material worker failed: its sources are checked on the main thread",
                  ).pipe(Effect.annotateLogs({ worker: f.worker, reason: f.reason, pending: f.pending })),
                ),
              onWorkerError: (e) =>
                Effect.runForkWith(context)(
                  Effect.logWarning(
                    "material worker error: the source is checked on the main thread (told once per worker)",
                  ).pipe(Effect.annotateLogs({ worker: e.worker, error: e.error })),
                ),
              onIdleStop: (stats) =>
                Effect.runForkWith(context)(
                  Effect.logInfo("material workers ended (idle)").pipe(Effect.annotateLogs(stats)),
                ),
            }),
        ),
        (p) => Effect.promise(() => p.close()),
      )
      return { forDeploy: throughPool(pool), workers: size }
    }),
  )
