/**
 * The consumer pickup check: connect to the TLS endpoint that should serve
 * the deployed certificate and compare the certificate it presents (x5t)
 * with the source's. The chain is not validated: the check is about which
 * certificate is served, not whether a client would trust it.
 */
import { createHash } from "node:crypto"
import { connect } from "node:tls"
import * as Effect from "effect/Effect"
import type { Pickup } from "./config.js"

export interface PickupResult {
  readonly ok: boolean
  readonly served: string | undefined
  readonly detail: string
}

export const checkPickup = (
  pickup: Pickup,
  expectedX5t: string,
  timeoutMs = 5000,
): Effect.Effect<PickupResult> =>
  Effect.callback<PickupResult>((resume) => {
    let done = false
    const finish = (r: PickupResult) => {
      if (done) return
      done = true
      socket.destroy()
      resume(Effect.succeed(r))
    }
    const socket = connect({
      host: pickup.host,
      port: pickup.port,
      servername: pickup.servername,
      rejectUnauthorized: false,
      timeout: timeoutMs,
    })
    socket.once("secureConnect", () => {
      const peer = socket.getPeerCertificate()
      const raw = (peer as { raw?: Buffer }).raw
      if (raw === undefined)
        return finish({ ok: false, served: undefined, detail: "the endpoint presented no certificate" })
      const served = createHash("sha1").update(raw).digest("base64url")
      finish({
        ok: served === expectedX5t,
        served,
        detail:
          served === expectedX5t
            ? "serves the source certificate"
            : `serves another certificate (x5t ${served})`,
      })
    })
    socket.once("timeout", () =>
      finish({ ok: false, served: undefined, detail: `no TLS handshake within ${timeoutMs} ms` }),
    )
    socket.once("error", (e: NodeJS.ErrnoException) =>
      finish({ ok: false, served: undefined, detail: `cannot connect: ${e.code ?? e.message}` }),
    )
    return Effect.sync(() => socket.destroy())
  })
