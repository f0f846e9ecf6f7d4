/**
 * The HTTP listener is bounded: 64 connections at once (one more is closed as soon as it is
 * accepted), and a connection that sends half a request is closed after about 10 s instead of
 * Node's 5 minutes, so /healthz answers again once they are gone. Before, 24,000 half-sent
 * requests took every file handle of the agent.
 */
import { connect, type Socket } from "node:net"
import { describe, expect, it } from "vitest"
import { agentSuite, baseEnv, oneDeploymentConfig, startAgent } from "./harness.js"

const VAULT = "agent-http"
const suite = agentSuite([VAULT])

/** A connection to the agent's port that sends the start of a request and never the rest. */
const halfSent = (port: number) =>
  new Promise<{ socket: Socket; closed: Promise<{ afterMs: number; data: string }> }>((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port })
    const opened = Date.now()
    let data = ""
    socket.on("data", (chunk) => {
      data += chunk.toString("utf8")
    })
    const closed = new Promise<{ afterMs: number; data: string }>((done) =>
      socket.on("close", () => done({ afterMs: Date.now() - opened, data })),
    )
    socket.on("error", () => {})
    socket.once("connect", () => {
      socket.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
      resolve({ socket, closed })
    })
    socket.once("error", reject)
  })

describe("the HTTP listener", () => {
  it("refuses a connection past 64 and closes half-sent requests after about 10 s; /healthz then answers", async () => {
    const { emulator } = suite
    const config = await oneDeploymentConfig(suite, VAULT, "http")
    const a = startAgent(config, { ...baseEnv(), ...emulator.env.clientSecret })
    suite.agent = a
    await a.waitFor((l) => /Listening on/.test(l.msg))
    expect((await a.http("/healthz")).status).toBe(200)
    const held = await Promise.all(Array.from({ length: 64 }, () => halfSent(a.port())))
    // Let the agent accept them all.
    await new Promise((r) => setTimeout(r, 500))
    const beyond = await halfSent(a.port())
    const refused = await beyond.closed
    expect(refused.data).toBe("")
    expect(refused.afterMs).toBeLessThan(5_000)
    // The held ones are closed by the agent once their headers are 10 s late (checked every second).
    const closed = await Promise.all(held.map((h) => h.closed))
    for (const c of closed) expect(c.afterMs).toBeLessThan(15_000)
    expect((await a.http("/healthz")).status).toBe(200)

    // Keep-alive connections that ask again every 2 s (each request complete, so no request
    // timeout applies): closed after about 10 s however busy, and /healthz answers again. (The
    // probe's own keep-alive connection holds one of the 64: 63 of them.)
    const busy = await Promise.all(
      Array.from({ length: 63 }, () =>
        halfSent(a.port()).then((h) => {
          h.socket.write("\r\n")
          const again = setInterval(
            () => h.socket.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
            2_000,
          )
          return h.closed.then((c) => {
            clearInterval(again)
            return c
          })
        }),
      ),
    )
    for (const c of busy) {
      expect(c.afterMs).toBeLessThan(15_000)
      // They were answered while they lived (the connections were served, not refused).
      expect(c.data).toContain("HTTP/1.1 200")
    }
    expect((await a.http("/healthz")).status).toBe(200)
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
  }, 90_000)
})
