/**
 * A material worker's entry (worker_threads; started by materialPool.ts): for
 * each request it runs the same `materialOf` as the main thread, with the same
 * codec (@kvdeploy/pkcs12), and for a target's encoding also builds the
 * transport PFX, so that a deploy's parse, inspection and PFX encoding run on
 * this thread. The key arrives and leaves inside messages (memory only); no
 * answer or error text carries it.
 */
import { parentPort } from "node:worker_threads"
import {
  type CertificateMaterial,
  type InspectedMaterial,
  PfxCodec,
  type PfxEncoding,
  transportPfxOptions,
} from "@kvdeploy/core"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type {
  MaterialRequest,
  MaterialResponse,
  ReleaseRequest,
  ReleaseResponse,
} from "./materialProtocol.js"
import { materialOf } from "./source.js"

const codec = Effect.runSync(
  Effect.gen(function* () {
    return yield* PfxCodec
  }).pipe(Effect.provide(Pkcs12.layer)),
)

/** The inspection the deploy makes, and the PFX it imports (when asked for and the material passes). */
const prepared = (material: CertificateMaterial, encoding: PfxEncoding | undefined) =>
  Effect.gen(function* () {
    const inspected = yield* Effect.result(codec.inspect(material))
    if (inspected._tag === "Failure") return { inspected: undefined, pfx: undefined }
    const passes = inspected.success.keyMatchesLeaf && inspected.success.problems.length === 0
    if (encoding === undefined || !passes) return { inspected: inspected.success, pfx: undefined }
    const pfx = yield* Effect.result(codec.encode(material, transportPfxOptions(encoding)))
    return {
      inspected: inspected.success as InspectedMaterial,
      pfx: pfx._tag === "Success" ? pfx.success : undefined,
    }
  })

const defectKind = (defect: unknown): string => {
  const name = defect instanceof Error ? defect.name : typeof defect
  const code = (defect as { code?: unknown } | null | undefined)?.code
  return typeof code === "string" || typeof code === "number" ? `${name} ${code}` : name
}

const answer = (request: MaterialRequest): Effect.Effect<MaterialResponse> => {
  const env: Record<string, string | undefined> =
    request.source._tag === "Pfx" && request.source.passwordEnv !== undefined
      ? { [request.source.passwordEnv]: request.password }
      : {}
  return materialOf(
    request.source,
    { fingerprint: request.fingerprint, files: request.files },
    env,
    codec,
  ).pipe(
    Effect.flatMap(({ material, facts }) =>
      Effect.map(
        prepared(material, request.encoding),
        ({ inspected, pfx }): MaterialResponse => ({
          id: request.id,
          ok: true,
          leaf: material.leaf,
          chain: material.chain,
          key: Redacted.value(material.key),
          facts,
          inspected,
          pfx,
          encoding: request.encoding,
        }),
      ),
    ),
    Effect.catchTag("SourceBroken", (broken) =>
      Effect.succeed<MaterialResponse>({ id: request.id, ok: false, problems: broken.problems }),
    ),
    // A defect: its kind only, name and code (no message, which could quote what was being parsed).
    Effect.catchDefect((defect) =>
      Effect.succeed<MaterialResponse>({ id: request.id, ok: "error", error: defectKind(defect) }),
    ),
  )
}

const port = parentPort
if (port === null) throw new Error("materialWorker runs as a worker thread (materialPool.ts starts it)")
/** V8's collector, when the process runs with --expose-gc (V8's flags hold in workers too). */
const gc = (globalThis as { gc?: unknown }).gc as ((options: object) => void) | undefined

/** The memory-reducing collection, before the pool ends this worker. */
const collect = (): void => {
  if (typeof gc === "function") gc({ type: "major", execution: "sync", flavor: "last-resort" })
}

/**
 * A full collection every this many requests, as the main thread collects during a pass
 * (idleRelease.ts): the OpenSSL objects of parsed keys and certificates and of built PFX
 * files are freed only with their small JavaScript wrappers, which V8 sees no reason to
 * collect, and meanwhile they raise the high-water mark of glibc's heap, which glibc does
 * not give back: a fleet bench's idle agent held 98-100 MB in glibc's main heap after a cold
 * pass over 10,000 deployments with a worker, against 51-55 MB with none. 10,000 requests
 * to one worker, in a process of their own, left glibc's main heap at 66 MB and the worker's
 * V8 heap at 158 MB without these collections, 22 and 78 MB with them (128 requests: 16-17 MB).
 */
const collectEvery = 256
let sinceCollection = 0

port.on("message", (request: MaterialRequest | ReleaseRequest) => {
  if ("release" in request) {
    collect()
    port.postMessage({ released: true } satisfies ReleaseResponse)
    return
  }
  if (++sinceCollection >= collectEvery && typeof gc === "function") {
    sinceCollection = 0
    gc({ type: "major", execution: "sync" })
  }
  // Copied into the message (structured clone), not transferred: the codec's buffers may be
  // views of shared pools or kept by its caches.
  void Effect.runPromise(answer(request)).then(
    (response) => port.postMessage(response),
    () => port.postMessage({ id: request.id, ok: "error", error: "interrupted" } satisfies MaterialResponse),
  )
})
