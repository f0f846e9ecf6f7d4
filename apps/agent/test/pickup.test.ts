/**
 * The consumer pickup check on its own (docs/agent.md, "pickup"): the certificate a TLS endpoint
 * presents for the configured SNI name, and a clear 0 with the reason when it presents none in
 * time or cannot be reached. The check holds its deployment's run and pass until it answers (no
 * permit: test/pickupPermits.test.ts), so an endpoint that never answers must end it by the
 * timeout, not hold the pass.
 */
import { createServer as createTcpServer, type Server } from "node:net"
import { createSecureContext, createServer } from "node:tls"
import { closedPort } from "@kvdeploy/core/test"
import * as Effect from "effect/Effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { checkPickup } from "../src/pickup.js"
import { type Issued, makePki } from "./pki.js"

const servers: Array<Server> = []
afterAll(() => {
  for (const s of servers) s.close()
})

const listening = (server: Server): Promise<number> =>
  new Promise((resolve) => {
    servers.push(server)
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port))
  })

let served: Issued
let other: Issued
beforeAll(async () => {
  const pki = await makePki()
  served = await pki.leaf("served.example.test")
  other = await pki.leaf("default.example.test")
})

describe("checkPickup", () => {
  it("asks for the configured SNI name: the endpoint presents the source certificate only for it", async () => {
    const byName = createSecureContext({ cert: served.certPem, key: served.keyPem })
    const port = await listening(
      createServer(
        {
          cert: other.certPem,
          key: other.keyPem,
          SNICallback: (name, done) => done(null, name === "served.example.test" ? byName : undefined),
        },
        (socket) => socket.end(),
      ),
    )
    const named = await Effect.runPromise(
      checkPickup({ host: "127.0.0.1", port, servername: "served.example.test" }, served.x5t),
    )
    expect(named).toEqual({ ok: true, served: served.x5t, detail: "serves the source certificate" })
    // Asked by its address, the same endpoint presents its default certificate: another one.
    const byAddress = await Effect.runPromise(
      checkPickup({ host: "127.0.0.1", port, servername: "127.0.0.1" }, served.x5t),
    )
    expect(byAddress.ok).toBe(false)
    expect(byAddress.served).toBe(other.x5t)
    expect(byAddress.detail).toBe(`serves another certificate (x5t ${other.x5t})`)
  })

  // Without the timeout the check would never end, and this test would fail by vitest's own.
  it("an endpoint that accepts the connection and never answers ends the check by the timeout", async () => {
    const silent = createTcpServer(() => {})
    const port = await listening(silent)
    const result = await Effect.runPromise(
      checkPickup({ host: "127.0.0.1", port, servername: "served.example.test" }, served.x5t, 300),
    )
    expect(result).toEqual({ ok: false, served: undefined, detail: "no TLS handshake within 300 ms" })
  })

  it("an endpoint that cannot be reached is a 0 naming the error", async () => {
    // Not a listener's port closed again: the kernel may hand that to the next listen(0) on the host.
    const port = await closedPort()
    const result = await Effect.runPromise(
      checkPickup({ host: "127.0.0.1", port, servername: "served.example.test" }, served.x5t),
    )
    expect(result).toEqual({ ok: false, served: undefined, detail: "cannot connect: ECONNREFUSED" })
  })
})

describe("checkPickup: what it sends and how long it waits", () => {
  it("an IP address as the SNI name sends no SNI (RFC 6066 allows DNS names only); a DNS name is sent", async () => {
    const names: Array<string> = []
    const port = await listening(
      createServer(
        {
          cert: other.certPem,
          key: other.keyPem,
          SNICallback: (name, done) => {
            names.push(name)
            done(null, undefined)
          },
        },
        (socket) => socket.end(),
      ),
    )
    for (const servername of ["127.0.0.1", "::1"]) {
      const result = await Effect.runPromise(checkPickup({ host: "127.0.0.1", port, servername }, served.x5t))
      expect(result.served, servername).toBe(other.x5t)
    }
    expect(names).toEqual([])
    await Effect.runPromise(
      checkPickup({ host: "127.0.0.1", port, servername: "served.example.test" }, served.x5t),
    )
    expect(names).toEqual(["served.example.test"])
  })

  // The socket's timeout is an idle one: bytes now and then keep resetting it. Without the check's own
  // deadline this test would fail by vitest's timeout.
  it("an endpoint that trickles bytes and never completes the handshake still ends the check by the timeout", async () => {
    const timers: Array<NodeJS.Timeout> = []
    const trickling = createTcpServer((socket) => {
      socket.on("error", () => {})
      // A TLS record header, then one byte every 100 ms: never a whole ServerHello.
      socket.write(Buffer.from([0x16, 0x03, 0x03, 0x40, 0x00]))
      const timer = setInterval(() => socket.write(Buffer.from([0x02])), 100)
      timers.push(timer)
      socket.on("close", () => clearInterval(timer))
    })
    const port = await listening(trickling)
    const result = await Effect.runPromise(
      checkPickup({ host: "127.0.0.1", port, servername: "served.example.test" }, served.x5t, 400),
    )
    for (const t of timers) clearInterval(t)
    expect(result).toEqual({ ok: false, served: undefined, detail: "no TLS handshake within 400 ms" })
  }, 15_000)
})
