/**
 * A pool of worker threads that read import values (`readMaterial`: PKCS#12
 * decoding with its key derivations and MAC, the key/certificate match, the
 * leaf's key usage) off the event loop, so a PFX import does not hold up every
 * other request and a second core can work. Workers start on the first import
 * and end at `close()` (the emulator's `stop()`). Material crosses threads by
 * postMessage, in memory only.
 */
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Worker } from "node:worker_threads"
import { KvError } from "./errors.js"
import type { MaterialReader, ReadMaterial } from "./material.js"

/** A request to a worker: one import value. */
export interface PoolRequest {
  readonly id: number
  readonly value: string
  readonly password: string | undefined
}

/** A worker's answer: the material, or the Key Vault error the value deserves. */
export type PoolResponse =
  | { readonly id: number; readonly ok: true; readonly material: ReadMaterial }
  | {
      readonly id: number
      readonly ok: false
      readonly status: number
      readonly code: string
      readonly message: string
      readonly innerCode?: string
    }

interface Pending {
  readonly resolve: (m: ReadMaterial) => void
  readonly reject: (e: unknown) => void
}

interface Slot {
  readonly worker: Worker
  readonly pending: Map<number, Pending>
}

/**
 * The worker script: dist/pfxWorker.js next to this module when running the
 * build; when running from src/ (vitest), the built one in ../dist. Undefined
 * when it does not exist (the package is not built): callers read in-thread.
 */
export const pfxWorkerScript = (): URL | undefined => {
  const here = import.meta.url
  const url = here.endsWith(".ts") ? new URL("../dist/pfxWorker.js", here) : new URL("./pfxWorker.js", here)
  return existsSync(fileURLToPath(url)) ? url : undefined
}

/** Whether this module runs from its TypeScript sources (vitest) rather than the build. */
export const runningFromSource = (): boolean => import.meta.url.endsWith(".ts")

/**
 * The parent's node flags without `--conditions`: the worker is the build, and a
 * test runner's source condition (vitest's `@kvdeploy/source`) would make it load
 * TypeScript sources that Node cannot run.
 */
const workerExecArgv = (): string[] => {
  const out: string[] = []
  const argv = process.execArgv
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    if (a === "--conditions" || a === "-C") i++
    else if (!a.startsWith("--conditions=")) out.push(a)
  }
  return out
}

/**
 * A worker with the parent's node flags (less `--conditions`). Node refuses
 * some flags in a worker (V8's and process-wide ones such as `--expose-gc` or
 * `--max-old-space-size`: ERR_WORKER_INVALID_EXEC_ARGV) where a process may
 * well run with them (bench/run.mjs passes `--expose-gc`); V8's flags hold for
 * the whole process anyway, so the worker then starts with none of them.
 */
const startWorker = (script: URL, name: string, execArgv: ReadonlyArray<string>): Worker => {
  try {
    return new Worker(script, { name, execArgv: [...execArgv] })
  } catch (e) {
    if (
      typeof e !== "object" ||
      e === null ||
      (e as { code?: unknown }).code !== "ERR_WORKER_INVALID_EXEC_ARGV"
    )
      throw e
    return new Worker(script, { name, execArgv: [] })
  }
}

export class PfxPool implements MaterialReader {
  private readonly slots: Array<Slot | undefined>
  private nextId = 1
  private closed = false

  constructor(
    readonly size: number,
    private readonly script: URL,
    /** Node flags for the workers; default: this process's, less `--conditions`. */
    private readonly execArgv: ReadonlyArray<string> = workerExecArgv(),
  ) {
    if (!Number.isInteger(size) || size < 1)
      throw new Error(`pfxWorkers must be a positive integer, got ${size}`)
    this.slots = Array.from({ length: size }, () => undefined)
  }

  /** Workers running now (they start on the first read). */
  get started(): number {
    return this.slots.filter((s) => s !== undefined).length
  }

  read = (value: string, password: string | undefined): Promise<ReadMaterial> => {
    if (this.closed) return Promise.reject(KvError.internal("The emulator is stopping."))
    const slot = this.pick()
    const id = this.nextId++
    return new Promise<ReadMaterial>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject })
      const request: PoolRequest = { id, value, password }
      slot.worker.postMessage(request)
    })
  }

  /** The least busy worker, starting one in an empty slot when every running one is busy. */
  private pick(): Slot {
    let best: Slot | undefined
    let bestIndex = -1
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i]
      if (s === undefined) {
        if (best === undefined || best.pending.size > 0) return this.spawn(i)
        continue
      }
      if (best === undefined || s.pending.size < best.pending.size) {
        best = s
        bestIndex = i
      }
    }
    if (best === undefined || bestIndex < 0) return this.spawn(0)
    return best
  }

  private spawn(index: number): Slot {
    const worker = startWorker(this.script, `kv-emulator-pfx-${index}`, this.execArgv)
    // An idle pool never keeps the process alive; the servers do while they listen.
    worker.unref()
    const slot: Slot = { worker, pending: new Map() }
    this.slots[index] = slot
    worker.on("message", (m: PoolResponse) => {
      const p = slot.pending.get(m.id)
      if (!p) return
      slot.pending.delete(m.id)
      if (m.ok) p.resolve(m.material)
      else p.reject(new KvError(m.status, m.code, m.message, m.innerCode))
    })
    const fail = (why: string) => {
      if (this.slots[index] === slot) this.slots[index] = undefined
      for (const p of slot.pending.values()) p.reject(KvError.internal(`PKCS#12 worker ${why}`))
      slot.pending.clear()
    }
    worker.on("error", (e) => fail(`failed: ${e.message}`))
    worker.on("exit", (code) => fail(`exited with code ${code}`))
    return slot
  }

  /** Ends every worker; reads still waiting fail. */
  async close(): Promise<void> {
    this.closed = true
    const running = this.slots.filter((s): s is Slot => s !== undefined)
    this.slots.fill(undefined)
    await Promise.all(
      running.map(async (s) => {
        for (const p of s.pending.values()) p.reject(KvError.internal("The emulator is stopping."))
        s.pending.clear()
        await s.worker.terminate()
      }),
    )
  }
}
