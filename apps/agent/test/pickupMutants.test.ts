/**
 * The pickup check leaves no connection to the consumer open once it answered: the agent checks
 * every deployment with a pickup on every pass, so a connection left open per check would pile up
 * on the consumer's endpoint (a mutant of pickup.ts that left it open passed test/pickup.test.ts,
 * whose endpoints close each connection themselves).
 */
import type { Server, Socket } from "node:net"
import { createServer } from "node:tls"
import * as Effect from "effect/Effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { checkPickup } from "../src/pickup.js"
import { type Issued, makePki } from "./pki.js"

const servers: Array<Server> = []
afterAll(() => {
  for (const s of servers) s.close()
})

/** `server` listening on a port of 127.0.0.1: its port. */
const listening = async (server: Server) => {
  servers.push(server)
  const port = await new Promise<number>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)),
  )
  return port
}

/** Records each accepted socket's closing. */
const tracked = () => {
  const open = new Set<Socket>()
  let accepted = 0
  const track = (socket: Socket) => {
    accepted++
    open.add(socket)
    socket.on("error", () => {})
    socket.on("close", () => open.delete(socket))
  }
  return { track, open: () => open.size, accepted: () => accepted }
}

let served: Issued
beforeAll(async () => {
  served = await (await makePki()).leaf("served.example.test")
})

describe("the pickup check's connection", () => {
  it("is closed once the endpoint presented its certificate, also when the endpoint keeps it open", async () => {
    const sockets = tracked()
    // The endpoint completes the handshake and then neither sends nor closes: only the check closes it.
    const server = createServer({ cert: served.certPem, key: served.keyPem }, () => {})
    server.on("connection", sockets.track)
    const port = await listening(server)
    const result = await Effect.runPromise(
      checkPickup({ host: "127.0.0.1", port, servername: "served.example.test" }, served.x5t, 2000),
    )
    expect(result.ok).toBe(true)
    expect(sockets.accepted()).toBe(1)
    // Well within the check's own idle timeout (2 s), which must not be what closes it.
    await expect.poll(() => sockets.open(), { timeout: 1000, interval: 20 }).toBe(0)
  })
})
