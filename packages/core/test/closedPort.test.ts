/**
 * closedPort: a loopback port that refuses connections for as long as a test relies on it, on a
 * host where other tests and processes keep opening listeners.
 */
import { readFileSync } from "node:fs"
import { createServer, type Server } from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { closedPort, listening } from "../src/testing/index.js"

const listen = (): Promise<Server> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve(server))
  })
const close = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()))
const portOf = (server: Server): number => {
  const address = server.address()
  return typeof address === "object" && address !== null ? address.port : 0
}

/** Linux's range for listen(0), when this host states it. */
const ephemeralRange = (): readonly [number, number] | undefined => {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)
    return [Number(low), Number(high)]
  } catch {
    return undefined
  }
}

describe("closedPort", () => {
  it("is refused, and outside the range listen(0) takes ports from: no listener opened after it takes it", async () => {
    const range = ephemeralRange()
    for (let i = 0; i < 20; i++) {
      const port = await closedPort()
      expect(await listening(port)).toBe(false)
      // A port the kernel had handed out and got back went to a later listen(0) about once in
      // 6,500 (measured); one below the range is never handed out.
      if (range !== undefined && range[0] > 11_024) expect(port).toBeLessThan(range[0])
      const others = await Promise.all(Array.from({ length: 25 }, listen))
      try {
        expect(others.map(portOf)).not.toContain(port)
        expect(await listening(port)).toBe(false)
      } finally {
        await Promise.all(others.map(close))
      }
    }
  })
})
