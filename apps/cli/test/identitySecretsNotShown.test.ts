/**
 * An identity endpoint's error text comes into @azure/identity's message, and kvdeploy shows part
 * of it: a gateway that echoes the token request's form (with AZURE_CLIENT_SECRET in it), or a
 * managed identity endpoint whose answer holds a token, must not have kvdeploy print the secret or
 * the token (deploy --json, versions, doctor). What was taken out is named in its place.
 */
import { createServer, type Server } from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeFixtures } from "./fixtures.js"
import { runCli, startWorld, type World } from "./harness.js"

/** A JWT-shaped token (base64url segments, no DER), as a managed identity endpoint gives. */
const seg = (s: string) => Buffer.from(s).toString("base64url")
const token = `${seg('{"alg":"RS256","typ":"JWT"}')}.${seg(
  JSON.stringify({ aud: "https://vault.azure.net", oid: "LEAKMARKER".repeat(8) }),
)}.${"SiGnAtUrE_-".repeat(12)}`

let world: World
let server: Server
/** What the managed identity endpoint answers at /msi/<n>/token: the nth (one endpoint per answer, so runs overlap). */
const answers: Array<{ status: number; contentType: string; body: string }> = []
let certFile = ""
let keyFile = ""

beforeAll(async () => {
  world = await startWorld("kv-identity-secrets")
  const fixtures = await makeFixtures()
  const leaf = await fixtures.leaf()
  certFile = world.file("leaf.pem", leaf.certPem + fixtures.chainOf(leaf))
  keyFile = world.file("leaf.key", leaf.keyPem)
  server = createServer((req, res) => {
    const answer = answers[Number(/^\/msi\/(\d+)\/token/.exec(req.url ?? "")?.[1] ?? -1)]
    if (answer === undefined) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(answer.status, { "content-type": answer.contentType })
    res.end(answer.body)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))
})
afterAll(async () => {
  server?.close()
  await world?.stop()
})

// Side by side: the first test's fault is on the emulator's Entra ID, which the second (a managed
// identity endpoint of its own) never asks; the SDK's retries of the second's answers are waited out
// at once rather than one run after another.
describe("identity endpoint answers that quote a secret or a token", { concurrent: true }, () => {
  it("a gateway echoing the token request's form: deploy --json and versions name the error, not AZURE_CLIENT_SECRET's value (1)", async () => {
    const secret = world.env.AZURE_CLIENT_SECRET ?? ""
    expect(secret.length).toBeGreaterThan(8)
    const form = `client_id=${world.env.AZURE_CLIENT_ID}&client_secret=${encodeURIComponent(secret)}&grant_type=client_credentials&scope=https%3A%2F%2Fvault.azure.net%2F.default`
    for (const [contentType, body] of [
      [
        "application/json",
        JSON.stringify({ error: "invalid_request", error_description: `could not process ${form}` }),
      ],
      ["text/html", `<html><body>Request blocked by policy: ${form}</body></html>`],
    ] as const) {
      world.emulator.faults.add({
        operation: "token",
        times: "always",
        action: { kind: "rawAnswer", status: 400, body, contentType },
      })
      try {
        const target = world.targetFile("echoed-form")
        const argsOf = [
          ["deploy", "--config", target, "--cert", certFile, "--key", keyFile, "--json"],
          ["versions", "--config", target],
          ["versions", "--config", target, "--json"],
        ]
        const results = await Promise.all(argsOf.map((args) => runCli(args, { env: world.env })))
        for (const r of results) {
          const out = r.stdout + r.stderr
          expect(r.code, out).not.toBe(0)
          expect(out).not.toContain(secret)
          expect(out).not.toContain(encodeURIComponent(secret))
          // The rest of the answer is kept, with what was taken out named.
          // (the known value's own placeholder, which the secret-field rule leaves whole)
          expect(out).toContain("client_secret=[the value of AZURE_CLIENT_SECRET, not shown]")
          expect(out).toContain("grant_type=client_credentials")
        }
      } finally {
        world.emulator.faults.clear()
      }
    }
  }, 180_000)

  it("a managed identity endpoint whose answer quotes a token and its header: versions and doctor show no part of them (1)", async () => {
    const address = server.address() as { port: number }
    const identityHeader = "an-identity-header-secret"
    const envOf = (n: number) => ({
      NODE_EXTRA_CA_CERTS: world.env.NODE_EXTRA_CA_CERTS ?? "",
      IDENTITY_ENDPOINT: `http://127.0.0.1:${address.port}/msi/${n}/token`,
      IDENTITY_HEADER: identityHeader,
    })
    const env = { IDENTITY_HEADER: identityHeader }
    const target = world.targetFile("mi-token", { credential_mode: "managed_identity" })
    const cases = [
      // A page where a token answer belongs, quoting the token and the identity header.
      {
        status: 200,
        contentType: "text/html",
        body: `<html>token ${token} for ${env.IDENTITY_HEADER}</html>`,
      },
      // An error whose description quotes the token (and an answer's field).
      {
        status: 500,
        contentType: "application/json",
        body: JSON.stringify({
          error: "server_error",
          error_description: `failed for ${token} (${env.IDENTITY_HEADER}); "access_token": "opaque-value-1234"`,
        }),
      },
    ]
    // Each answer at an endpoint of its own, its runs side by side (each waits out the SDK's retries).
    await Promise.all(
      cases.map(async (next) => {
        const n = answers.push({ status: next.status, contentType: next.contentType, body: next.body }) - 1
        const [runs, versions] = await Promise.all([
          Promise.all(
            [
              ["versions", "--config", target],
              ["versions", "--config", target, "--json"],
              ["doctor", "--config", target],
            ].map((args) => runCli(args, { env: envOf(n) })),
          ),
          runCli(["versions", "--config", target], { env: envOf(n) }),
        ])
        for (const r of runs) {
          const out = r.stdout + r.stderr
          expect(r.code, out).not.toBe(0)
          for (const part of token.split(".")) expect(out).not.toContain(part)
          expect(out).not.toContain(env.IDENTITY_HEADER)
          expect(out).not.toContain("opaque-value-1234")
        }
        // The answer is still quoted: what was taken out is named in its place.
        const out = versions.stdout + versions.stderr
        expect(out).toContain("[a token, not shown]")
        expect(out).toContain("[the value of IDENTITY_HEADER, not shown]")
      }),
    )
  }, 180_000)
})
