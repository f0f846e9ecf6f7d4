/**
 * A proxy from the environment (HTTPS_PROXY) carries the adapter's requests.
 * The SDK's proxy policy leaves a request alone when an agent is already set,
 * so the adapter must not set its own keep-alive agent when a proxy applies:
 * a local CONNECT listener stands in for the proxy and records what reaches it.
 */
import { createServer, type Server } from "node:net"
import type { TokenCredential } from "@azure/core-auth"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { changeProcessEnv, RecordingMetrics } from "@kvdeploy/core/test"
import { keyVaultScope, makeCredential } from "@kvdeploy/credentials"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { makeWithConnections } from "../src/index.js"
import { withSdkLog } from "./support/sdkLog.js"

const credential: TokenCredential = {
  getToken: async () => ({ token: "not-a-real-token", expiresOnTimestamp: Date.now() + 3_600_000 }),
}

/** A listener that records the first line of each connection and closes it (no tunnel). */
const fakeProxy = async (): Promise<{ server: Server; url: string; lines: Array<string> }> => {
  const lines: Array<string> = []
  const server = createServer((socket) => {
    socket.once("data", (chunk) => {
      lines.push(chunk.toString("latin1").split("\r\n")[0] ?? "")
      socket.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
    })
    socket.on("error", () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address()
  if (address === null || typeof address === "string") throw new Error("no port")
  return { server, url: `http://127.0.0.1:${address.port}`, lines }
}

/** Puts back HTTPS_PROXY and NO_PROXY as they were before the test's proxiedAdapter. */
let restoreEnv: (() => void) | undefined
let proxyServer: Server | undefined
afterEach(() => {
  restoreEnv?.()
  restoreEnv = undefined
  proxyServer?.close()
})

/** An adapter without extra CAs, with HTTPS_PROXY naming a fake proxy (restored after each test). */
const proxiedAdapter = Effect.gen(function* () {
  const proxy = yield* Effect.promise(fakeProxy)
  proxyServer = proxy.server
  restoreEnv = changeProcessEnv({ HTTPS_PROXY: proxy.url, NO_PROXY: undefined })
  const adapter = yield* makeWithConnections({
    vaultUrl: "https://kvdeploy-proxied.vault.azure.net",
    credential,
    retry: { maxRetries: 0 },
    requestTimeoutMs: 5_000,
  })
  return { proxy, ...adapter }
})

describe("a proxy from the environment", () => {
  it.live(
    "carries the vault requests of an adapter without extra CAs; there are no sockets of ours to release",
    () =>
      Effect.gen(function* () {
        const { proxy, vault, connections } = yield* proxiedAdapter
        const read = yield* Effect.result(vault.getLatest("through-the-proxy"))
        expect(read._tag).toBe("Failure")
        expect(proxy.lines).toContain("CONNECT kvdeploy-proxied.vault.azure.net:443 HTTP/1.1")
        expect(yield* connections.releaseIdle).toBe(0)
        expect(yield* connections.count).toEqual({ active: 0, idle: 0 })
      }).pipe(Effect.provide(Layer.mergeAll(RecordingMetrics.layer, Pkcs12.layer))),
  )

  it.live(
    "the SDKs' request log leaves out the SDK's proxy agent (its sockets carry bearer tokens, its queue request bodies)",
    () =>
      Effect.gen(function* () {
        const { proxy, vault } = yield* proxiedAdapter
        const [, lines] = yield* withSdkLog(() =>
          Effect.forEach(["a", "b"], (name) => Effect.result(vault.getLatest(name)), {
            concurrency: "unbounded",
          }),
        )
        // The requests went through the proxy and were logged, without the agent.
        expect(proxy.lines).toContain("CONNECT kvdeploy-proxied.vault.azure.net:443 HTTP/1.1")
        const requests = lines.filter((l) => l.includes("Request: "))
        expect(requests.length).toBeGreaterThanOrEqual(2)
        for (const line of requests) expect(line).not.toContain('"agent"')
      }).pipe(Effect.provide(Layer.mergeAll(RecordingMetrics.layer, Pkcs12.layer))),
  )

  it.live("@azure/identity's request log leaves out the proxy agent of a credential kvdeploy makes", () =>
    Effect.gen(function* () {
      const { proxy } = yield* proxiedAdapter
      const resolved = yield* makeCredential({
        mode: "client_secret",
        authorityHost: "https://login.microsoftonline.com",
      }).pipe(
        Effect.provide(
          ConfigProvider.layer(
            ConfigProvider.fromEnvRecord({
              AZURE_TENANT_ID: "00000000-0000-0000-0000-0000000000a0",
              AZURE_CLIENT_ID: "00000000-0000-0000-0000-0000000000a1",
              AZURE_CLIENT_SECRET: "not-a-real-secret",
            }),
          ),
        ),
      )
      const [, lines] = yield* withSdkLog(() =>
        Effect.promise(() =>
          resolved.credential.getToken(keyVaultScope("https://vault.azure.net")).catch(() => null),
        ),
      )
      expect(proxy.lines.some((l) => l.startsWith("CONNECT login.microsoftonline.com:443"))).toBe(true)
      const requests = lines.filter((l) => l.includes("Request: "))
      expect(requests.length).toBeGreaterThanOrEqual(1)
      for (const line of requests) expect(line).not.toContain('"agent"')
    }).pipe(Effect.provide(Layer.mergeAll(RecordingMetrics.layer, Pkcs12.layer))),
  )
})
