/**
 * The keep-alive connections of one vault adapter: the single `https.Agent`
 * its certificate and secret clients share, and a way for a long-running
 * caller (the agent) to close that agent's idle sockets between passes.
 *
 * An idle TLS socket holds tens of kilobytes of buffers; after a pass over
 * many vaults a process can keep hundreds of them open until the vault closes
 * them. `releaseIdle` closes only sockets in the agent's free (idle) pool:
 * a request in flight keeps its socket, and the next request opens a new one
 * (one TLS handshake more, then keep-alive as before).
 */
import type { Agent } from "node:https"
import type { Socket } from "node:net"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"

/** How many sockets an adapter's agent holds now. */
export interface VaultConnectionCount {
  /** Sockets carrying a request (or queued to carry one). */
  readonly active: number
  /** Keep-alive sockets waiting in the idle pool. */
  readonly idle: number
}

export class VaultConnections extends Context.Service<
  VaultConnections,
  {
    /**
     * Close every idle keep-alive socket of this vault adapter and answer how
     * many were closed, once they are. Requests in flight are not touched;
     * later requests open new connections as needed.
     */
    readonly releaseIdle: Effect.Effect<number>
    /**
     * For an adapter its caller lets go while a request may still use it: from now on no socket is
     * kept alive (each one is closed once its request is over, and a later request's too), and
     * the idle ones are closed now. Answers how many were closed now.
     */
    readonly retire: Effect.Effect<number>
    /** The sockets the adapter holds now (for metrics and tests). */
    readonly count: Effect.Effect<VaultConnectionCount>
  }
>()("@kvdeploy/azure-kv/VaultConnections") {}

const socketsIn = (pool: Readonly<Record<string, ReadonlyArray<unknown> | undefined>>): number => {
  let n = 0
  for (const list of Object.values(pool)) n += list?.length ?? 0
  return n
}

/**
 * The service over one https.Agent (Node's public `freeSockets`/`sockets` pools).
 * Without one (the adapter goes through a proxy from the environment, whose
 * agent the SDK owns) there is nothing to count or close: `releaseIdle`
 * answers 0 and `count` answers no sockets.
 */
export const connectionsOf = (agent: Agent | undefined): VaultConnections["Service"] => {
  if (agent === undefined)
    return VaultConnections.of({
      releaseIdle: Effect.succeed(0),
      retire: Effect.succeed(0),
      count: Effect.succeed({ active: 0, idle: 0 }),
    })
  const releaseIdle = Effect.callback<number>((resume) => {
    const idle: Socket[] = []
    for (const list of Object.values(agent.freeSockets)) if (list !== undefined) idle.push(...list)
    const closing = idle.filter((socket) => !socket.destroyed)
    let open = closing.length
    if (open === 0) return resume(Effect.succeed(0))
    const closed = () => {
      open -= 1
      if (open === 0) resume(Effect.succeed(closing.length))
    }
    // The agent drops a free socket from its pool on the socket's "close".
    for (const socket of closing) {
      socket.once("close", closed)
      socket.destroy()
    }
  })
  const count = Effect.sync(
    (): VaultConnectionCount => ({
      active: socketsIn(agent.sockets),
      idle: socketsIn(agent.freeSockets),
    }),
  )
  // Node's Agent destroys a freed socket instead of pooling it when its keepAlive is off (a public
  // property of http.Agent that @types/node does not declare).
  const retire = Effect.andThen(
    Effect.sync(() => {
      ;(agent as Agent & { keepAlive: boolean }).keepAlive = false
    }),
    releaseIdle,
  )
  return VaultConnections.of({ releaseIdle, retire, count })
}
