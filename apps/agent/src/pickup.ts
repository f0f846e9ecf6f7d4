/**
 * The consumer pickup check: connect to the TLS endpoint that should serve
 * the deployed certificate and compare the certificate it presents (x5t)
 * with the source's. The chain is not validated: the check is about which
 * certificate is served, not whether a client would trust it.
 */
import { createHash } from "node:crypto"
import { isIP } from "node:net"
import { connect } from "node:tls"
import * as Effect from "effect/Effect"
import type { Pickup } from "./config.js"

export interface PickupResult {
  readonly ok: boolean
  readonly served: string | undefined
  readonly detail: string
}

/**
 * The SNI name sent for `servername` (the configured one, or the host): none for an IP address, as
 * SNI carries DNS names only (RFC 6066); Node would send the address and warn (DEP0123).
 */
const sniOf = (servername: string): string | undefined => (isIP(servername) === 0 ? servername : undefined)

/**
 * The check, ended by `timeoutMs` at the latest: the socket's own timeout is an idle one (an
 * endpoint that sends a byte now and then would keep it open), so the whole check has a deadline too.
 */
export const checkPickup = (
  pickup: Pickup,
  expectedX5t: string,
  timeoutMs = 5000,
): Effect.Effect<PickupResult> =>
  Effect.timeoutOrElse(handshake(pickup, expectedX5t, timeoutMs), {
    duration: timeoutMs,
    orElse: () => Effect.succeed(noHandshake(timeoutMs)),
  })

const noHandshake = (timeoutMs: number): PickupResult => ({
  ok: false,
  served: undefined,
  detail: `no TLS handshake within ${timeoutMs} ms`,
})

const handshake = (pickup: Pickup, expectedX5t: string, timeoutMs: number): Effect.Effect<PickupResult> =>
  Effect.callback<PickupResult>((resume) => {
    let done = false
    const finish = (r: PickupResult) => {
      if (done) return
      done = true
      socket.destroy()
      resume(Effect.succeed(r))
    }
    const sni = sniOf(pickup.servername)
    const socket = connect({
      host: pickup.host,
      port: pickup.port,
      ...(sni === undefined ? {} : { servername: sni }),
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
    socket.once("timeout", () => finish(noHandshake(timeoutMs)))
    socket.once("error", (e: NodeJS.ErrnoException) =>
      finish({ ok: false, served: undefined, detail: `cannot connect: ${e.code ?? e.message}` }),
    )
    return Effect.sync(() => socket.destroy())
  })
