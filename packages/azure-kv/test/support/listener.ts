/**
 * A local HTTPS listener that records exactly what reaches the wire and
 * answers with what the test scripts. It checks the adapter's side of the
 * wire (what the SDK sends, what the adapter makes of real SDK errors); the
 * Key Vault behaviour itself is tested against @kvdeploy/kv-emulator.
 *
 * Like Key Vault, it answers a request without `Authorization` with the 401
 * challenge before looking at the body.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import { createServer, type Server } from "node:https"
import type { AddressInfo } from "node:net"
import type { AccessToken, TokenCredential } from "@azure/core-auth"

export interface WireRequest {
  readonly method: string
  readonly path: string
  readonly headers: IncomingMessage["headers"]
  readonly body: string
  readonly authorized: boolean
}

export type Answer = (request: WireRequest, res: ServerResponse) => void

export interface Listener {
  readonly url: string
  readonly ca: string
  readonly log: WireRequest[]
  /** The handler for authorised requests; the challenge is answered before it. */
  answer: Answer
  readonly close: () => Promise<void>
}

export const json = (
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers })
  res.end(text)
}

export const keyVaultError = (
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  inner?: string,
  headers: Record<string, string> = {},
) =>
  json(
    res,
    status,
    { error: { code, message, ...(inner === undefined ? {} : { innererror: { code: inner } }) } },
    headers,
  )

export const startListener = async (tls: { cert: string; key: string; ca: string }): Promise<Listener> => {
  const log: WireRequest[] = []
  const state: { answer: Answer } = {
    answer: (_req, res) => keyVaultError(res, 500, "NotScripted", "no answer scripted"),
  }
  const server: Server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    const chunks: Buffer[] = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const request: WireRequest = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        authorized: typeof req.headers.authorization === "string",
      }
      log.push(request)
      if (!request.authorized) {
        res.writeHead(401, {
          "www-authenticate":
            'Bearer authorization="https://login.kvdeploy.test/tenant-1", resource="https://vault.azure.net"',
          "content-type": "application/json",
        })
        res.end(
          JSON.stringify({
            error: { code: "Unauthorized", message: "AKV10000: Request is missing a Bearer or PoP token." },
          }),
        )
        return
      }
      state.answer(request, res)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `https://127.0.0.1:${port}`,
    ca: tls.ca,
    log,
    get answer() {
      return state.answer
    },
    set answer(a: Answer) {
      state.answer = a
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** A credential with a fixed token, for a listener that does not check tokens. */
export const staticCredential: TokenCredential = {
  getToken: async (): Promise<AccessToken> => ({
    token: "listener-token",
    expiresOnTimestamp: Date.now() + 3600_000,
  }),
}
