/**
 * A worker of the PFX pool (pfxPool.ts): reads one import value per message
 * with `readMaterial` and answers the material or the Key Vault error.
 */
import { parentPort } from "node:worker_threads"
import { KvError } from "./errors.js"
import { readMaterial } from "./material.js"
import type { PoolRequest, PoolResponse } from "./pfxPool.js"

const port = parentPort
if (port === null) throw new Error("pfxWorker.js runs as a worker thread of the kv-emulator")

port.on("message", (request: PoolRequest) => {
  void readMaterial(request.value, request.password).then(
    (material) => {
      const answer: PoolResponse = { id: request.id, ok: true, material }
      port.postMessage(answer)
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
