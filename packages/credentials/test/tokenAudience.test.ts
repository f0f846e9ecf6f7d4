/**
 * doctor checks the token's audience against the vault's resource. In a file of its own: MSAL keeps
 * the managed identity source it first finds for the whole process, and this test's source is an
 * App Service endpoint of its own that answers a token for another resource.
 */
import { createServer } from "node:http"
import { describe, expect, it } from "@effect/vitest"
import { withProcessEnv } from "@kvdeploy/core/test"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import { diagnoseCredential } from "../src/index.js"

const withEnv = (env: Record<string, string | undefined>) =>
  Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env)))

describe("diagnoseCredential: the token's audience", () => {
  it.live("a token for another resource than the vault's is a failed check, with the fix", () =>
    Effect.acquireUseRelease(
      Effect.promise(async () => {
        // An App Service managed identity endpoint that answers a token for Azure Resource Manager.
        const server = createServer((req, res) => {
          const claims = { aud: "https://management.azure.com/", tid: "11111111-2222-3333-4444-555555555555" }
          const token = `e30.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.c2ln`
          res.writeHead(200, { "content-type": "application/json" })
          res.end(
            JSON.stringify({
              access_token: token,
              expires_on: String(Math.floor(Date.now() / 1000) + 3600),
              resource: new URL(req.url ?? "/", "http://x").searchParams.get("resource"),
              token_type: "Bearer",
            }),
          )
        })
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
        const address = server.address()
        const endpoint = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}/msi/token`
        return { server, endpoint }
      }),
      ({ endpoint }) =>
        Effect.gen(function* () {
          // @azure/identity reads the endpoint from process.env, kvdeploy through the ConfigProvider.
          const identity = { IDENTITY_ENDPOINT: endpoint, IDENTITY_HEADER: "h" }
          const d = yield* withProcessEnv(
            identity,
            diagnoseCredential({
              mode: "managed_identity",
              authorityHost: "https://login.microsoftonline.com",
              keyVaultResource: "https://vault.azure.net",
            }).pipe(withEnv(identity)),
          )
          expect(d.ok).toBe(false)
          expect(d.checks.find((c) => c.name === "token")?.status).toBe("ok")
          expect(d.checks.find((c) => c.name === "token audience")).toMatchObject({
            status: "failed",
            detail:
              "the token is for https://management.azure.com, not the vault's resource https://vault.azure.net: Key Vault refuses it",
          })
        }),
      ({ server }) => Effect.promise(() => new Promise<unknown>((resolve) => server.close(resolve))),
    ),
  )
})
