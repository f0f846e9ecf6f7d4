import { randomInt } from "node:crypto"
import { readFileSync } from "node:fs"
import { connect, createServer } from "node:net"

/**
 * The first port of the range the kernel hands out to `listen(0)` (Linux's ip_local_port_range;
 * 49152 elsewhere, IANA's dynamic range, as macOS and Windows use).
 */
const firstEphemeralPort = (): number => {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0])
    return Number.isInteger(low) && low > 0 ? low : 49_152
  } catch {
    return 49_152
  }
}

/** A port the kernel gave a listener, closed again: the kernel may give it to the next `listen(0)`. */
const releasedPort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/**
 * A loopback port nothing listens at (a connection to it is refused), for tests of unreachable
 * endpoints: a port below the range the kernel hands out to `listen(0)`, that refused a connection
 * when drawn. Every listener of the tests (the emulator's, a test's own) and of other processes on
 * the host takes its port from that range, so none takes this one while a test relies on it. (A port
 * the kernel gave a listener and that was closed again went to a later `listen(0)` about once in
 * 6,500; the emulator started after it, or another test file's, then answered where a refusal was
 * expected.) Port 1 was assumed refused, and on a shared host it is not always.
 */
export const closedPort = async (): Promise<number> => {
  const below = firstEphemeralPort()
  if (below > 11_024)
    for (let draw = 0; draw < 32; draw++) {
      const port = randomInt(10_000, below)
      if (!(await listening(port))) return port
    }
  // A host that hands out ports from (almost) all of them: the released one, as before.
  return releasedPort()
}

/** Whether something accepts connections on 127.0.0.1:`port` (a test of what a process opened). */
export const listening = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })
