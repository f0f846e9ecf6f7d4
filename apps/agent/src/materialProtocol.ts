/**
 * The messages between the agent's main thread and its material workers
 * (materialPool.ts, materialWorker.ts). Plain, structured-cloneable data: the
 * private key crosses threads as bytes inside a message, in memory only; it is
 * wrapped in `Redacted` again on the side that receives it.
 */
import type { InspectedMaterial, PfxEncoding } from "@kvdeploy/core"
import type { Source } from "./config.js"
import type { SourceFacts } from "./source.js"

/** One source to parse and check (and, with `encoding`, to encode for the import). */
export interface MaterialRequest {
  readonly id: number
  readonly source: Source
  readonly fingerprint: string
  readonly files: ReadonlyArray<{
    readonly role: "cert" | "chain" | "key" | "pfx"
    readonly path: string
    readonly bytes: Uint8Array
  }>
  /** The PFX password (the value of the source's `passwordEnv`), when the source names one. */
  readonly password: string | undefined
  /** The target's PFX encoding: the transport PFX is built too. */
  readonly encoding: PfxEncoding | undefined
}

/** A worker's answer: the material and what the deploy needs of it, the source's problems, or an internal error. */
export type MaterialResponse =
  | {
      readonly id: number
      readonly ok: true
      readonly leaf: Uint8Array
      readonly chain: ReadonlyArray<Uint8Array>
      readonly key: Uint8Array
      readonly facts: SourceFacts
      /** The codec's inspection of the material; undefined when it failed (the deploy inspects again). */
      readonly inspected: InspectedMaterial | undefined
      /** The transport PFX (`transportPfxOptions(encoding)`); undefined when not asked for or not built. */
      readonly pfx: Uint8Array | undefined
      readonly encoding: PfxEncoding | undefined
    }
  | { readonly id: number; readonly ok: false; readonly problems: ReadonlyArray<string> }
  /** Something other than the source went wrong (a defect): the main thread checks the source itself. */
  | { readonly id: number; readonly ok: "error"; readonly error: string }

/**
 * Before an idle worker is ended: it collects its garbage with V8's memory-reducing
 * collection (when the process runs with --expose-gc), then answers `{ released: true }`.
 * The heap pages a worker leaves behind when it ends are not given back to the system at
 * once (V8 pools them; the main thread's collections release a few at a time): measured
 * after 10,000 requests, 290 pages of 256 KB (71 MB) without this collection, 80 (17 MB) with it.
 */
export interface ReleaseRequest {
  readonly release: true
}
export interface ReleaseResponse {
  readonly released: true
}
