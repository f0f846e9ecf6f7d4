/**
 * The consumer pickup check against the running agent's permits (docs/agent.md, "pickup"): the
 * check runs once the attempt gave its vault-lane and global permits back, so a consumer that does
 * not answer holds back no other deployment (a slow vault or consumer never stalls the others);
 * its answer is logged and served as before, its pass is over once its checks are, and a reload
 * that changes the check or a shutdown ends a check in progress.
 */
import { createServer as createTcpServer, type Server, type Socket } from "node:net"
import { createServer as createTlsServer } from "node:tls"
import { afterEach, describe, expect, it } from "vitest"
import { metricValue, perTestWorld, writeConfig } from "./harness.js"

const world = perTestWorld()

const servers: Array<Server> = []
afterEach(() => {
  for (const s of servers.splice(0)) s.close()
})

/** A listener on loopback; its port. */
const listening = (server: Server): Promise<number> =>
  new Promise((resolve) => {
    servers.push(server)
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port))
  })

/** A consumer that accepts connections and never answers a TLS handshake; `onConnection` sees each. */
const silentConsumer = async (onConnection: (socket: Socket) => void = () => {}) => {
  const sockets: Array<Socket> = []
  const server = createTcpServer((socket) => {
    sockets.push(socket)
    // Read and drop the ClientHello: a socket never read never sees its peer close it.
    socket.resume()
    onConnection(socket)
  })
  const port = await listening(server)
  const destroyAll = () => {
    for (const s of sockets) s.destroy()
  }
  server.on("close", destroyAll)
  return { port, sockets, destroyAll }
}

const handshakeTimedOut = /^no TLS handshake within/

describe("the pickup check and the agent's permits", () => {
  it("a consumer that never answers holds back no other vault's deploy (concurrency 1); its answer is still logged, served and in its pass", async () => {
    const { e, w, p } = await world.setUp(["kv-slow-consumer", "kv-other"])
    // What the other vault had received when the first pickup check's connection closed (by its timeout).
    let otherRequestsAtFirstClose: number | undefined
    const otherRequests = () => e.requests.entries({ vault: "kv-other" }).filter((r) => !r.challenge).length
    const consumer = await silentConsumer((socket) =>
      socket.once("close", () => {
        otherRequestsAtFirstClose ??= otherRequests()
      }),
    )
    const specs = []
    for (const [name, vault] of [
      ["slow1", "kv-slow-consumer"],
      ["slow2", "kv-slow-consumer"],
      ["other", "kv-other"],
    ] as const) {
      const leaf = await p.leaf(`${name}.example.test`)
      w.write(`${name}.key`, leaf.keyPem)
      w.write(`${name}.crt`, leaf.certPem)
      specs.push({
        name,
        vault,
        certificate: name,
        source: { cert: w.path(`${name}.crt`), key: w.path(`${name}.key`) },
        ...(vault === "kv-slow-consumer" ? { pickup: { host: "127.0.0.1", port: consumer.port } } : {}),
      })
    }
    const a = world.run(writeConfig(w, e, specs, { concurrency: 1 }), e)
    const over = await a.waitFor((l) => l.msg === "pass over", { timeoutMs: 40_000 })
    for (const name of ["slow1", "slow2", "other"])
      expect(a.lines.find((l) => l.deployment === name && l.msg.startsWith("deploy:"))?.msg).toBe(
        "deploy: Succeeded",
      )
    // The other vault's deploy ran while a check waited for the consumer: before, the check held the only
    // global permit until its timeout, and the other vault received nothing until the connection closed.
    expect(otherRequestsAtFirstClose).toBeGreaterThan(0)
    // The checks' answers, as before: a warning each, before the pass was over, and a 0 served.
    const overAt = a.lines.indexOf(over)
    for (const name of ["slow1", "slow2"]) {
      const check = a.lines.findIndex(
        (l) =>
          l.deployment === name && l.msg === "pickup: the consumer does not serve the source certificate yet",
      )
      expect(check).toBeGreaterThanOrEqual(0)
      expect(check).toBeLessThan(overAt)
      expect(String(a.lines[check]?.detail)).toMatch(handshakeTimedOut)
      expect(a.lines[check]?.trigger).toBe("start")
    }
    expect(over.deployments).toBe(3)
    const page = (await a.http("/metrics")).body
    expect(metricValue(page, "kvdeploy_agent_pickup_ok", { deployment: "slow1" })).toBe(0)
    expect(metricValue(page, "kvdeploy_agent_pickup_ok", { deployment: "slow2" })).toBe(0)
    expect((await a.http("/readyz")).status).toBe(200)
  }, 60_000)

  it("a reload that changes the check, and a shutdown, end a check in progress", async () => {
    const { e, w, p } = await world.setUp(["kv-pickup-ends"])
    const leaf = await p.leaf("ends.example.test")
    w.write("ends.key", leaf.keyPem)
    w.write("ends.crt", leaf.certPem)
    let connected: () => void = () => {}
    const consumer = await silentConsumer(() => connected())
    const nextConnection = () =>
      new Promise<void>((resolve) => {
        connected = resolve
      })
    // A consumer that serves the source certificate.
    const serving = await listening(
      createTlsServer({ cert: leaf.certPem, key: leaf.keyPem }, (socket) => socket.end()),
    )
    const deployment = {
      name: "ends",
      vault: "kv-pickup-ends",
      certificate: "ends",
      source: { cert: w.path("ends.crt"), key: w.path("ends.key") },
    }
    const silentPickup = { ...deployment, pickup: { host: "127.0.0.1", port: consumer.port } }
    let waiting = nextConnection()
    const a = world.run(writeConfig(w, e, [silentPickup]), e)
    await waiting
    // The check waits for the silent consumer: a reload points it at the serving one.
    writeConfig(w, e, [{ ...deployment, pickup: { host: "127.0.0.1", port: serving } }])
    let from = a.lines.length
    a.signal("SIGHUP")
    const served = await a.waitFor(
      (l) => l.deployment === "ends" && l.msg === "pickup: the consumer serves the source certificate",
      { from },
    )
    expect(served.pickup).toBe(`127.0.0.1:${serving}`)
    await a.waitFor((l) => l.msg === "pass over", { from })
    // The old check was ended by the reload, not by its timeout: it never answered.
    expect(a.lines.some((l) => l.deployment === "ends" && handshakeTimedOut.test(String(l.detail)))).toBe(
      false,
    )
    expect(
      metricValue((await a.http("/metrics")).body, "kvdeploy_agent_pickup_ok", { deployment: "ends" }),
    ).toBe(1)

    // Back to the silent consumer; a shutdown while its check waits ends it.
    waiting = nextConnection()
    writeConfig(w, e, [silentPickup])
    from = a.lines.length
    a.signal("SIGHUP")
    await waiting
    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
    expect(a.lines.some((l) => l.deployment === "ends" && handshakeTimedOut.test(String(l.detail)))).toBe(
      false,
    )
    expect(e.state.versions("kv-pickup-ends", "ends")).toHaveLength(1)
  }, 60_000)
})
