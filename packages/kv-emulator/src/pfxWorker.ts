/**
 * A worker of the PFX pool (pfxPool.ts): reads one import value per message
 * with `readMaterial` and answers the material or the Key Vault error.
 */
import { parentPort } from "node:worker_threads"
import { KvError } from "./errors.js"
import { type ReadMaterial, readMaterial } from "./material.js"
import type { PoolRequest, PoolResponse } from "./pfxPool.js"

/**
 * The buffers of a read material that can move to the main thread instead of
 * being copied: each view that covers its whole ArrayBuffer (what the decoder
 * returns), once. The key's bytes then leave this thread rather than stay
 * behind as a copy until a collection; a view into a larger buffer is copied.
 */
const transferable = (material: ReadMaterial): ArrayBuffer[] => {
  const out = new Set<ArrayBuffer>()
  for (const a of [material.leaf, material.key, ...material.chain, ...material.sentOrder])
    if (a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength)
      out.add(a.buffer)
  return [...out]
}

const port = parentPort
if (port === null) throw new Error("pfxWorker.js runs as a worker thread of the kv-emulator")

port.on("message", (request: PoolRequest) => {
  void readMaterial(request.value, request.password).then(
    (material) => {
      const answer: PoolResponse = { id: request.id, ok: true, material }
      port.postMessage(answer, transferable(material))
    },
    (e: unknown) => {
      const error = e instanceof KvError ? e : KvError.internal("The import value could not be read.")
      const answer: PoolResponse = {
        id: request.id,
        ok: false,
        status: error.status,
        code: error.code,
        message: error.message,
        ...(error.innerCode !== undefined ? { innerCode: error.innerCode } : {}),
      }
      port.postMessage(answer)
    },
  )
})
