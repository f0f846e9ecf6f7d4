import { connect, createServer } from "node:net"

/**
 * A loopback port nothing listens at (a connection to it is refused), for tests of unreachable
 * endpoints: one the kernel gave a listener, which is closed again. Port 1 was assumed refused, and
 * on a shared host it is not always.
 */
export const closedPort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

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
