/**
 * A managed identity endpoint whose answer quotes a token (and the identity header): the agent's
 * "no token for the identity" line (`reason`) and its state file (the deployment's `reason`) name
 * the failure in the endpoint's words, without the token or the header's value.
 */
import { readdirSync, readFileSync } from "node:fs"
import { createServer } from "node:http"
import { join } from "node:path"
import { expect, it } from "vitest"
import { noTokenMessage } from "../src/identityHealth.js"
import { baseEnv, startAgent, startEmulator, workdir, writeConfig } from "./harness.js"
import { makePki } from "./pki.js"

const seg = (s: string) => Buffer.from(s).toString("base64url")
const token = `${seg('{"alg":"RS256","typ":"JWT"}')}.${seg(
  JSON.stringify({ aud: "https://vault.azure.net", oid: "agent-token-subject" }),
)}.${"SiGnAtUrE_-".repeat(12)}`
const identityHeader = "agent-identity-header-value"

it("a token the identity endpoint's answer quotes is in neither the agent's log nor its state file", async () => {
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" })
    res.end(`<html>token ${token} for ${identityHeader}</html>`)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))
  const port = (server.address() as { port: number }).port
  const vault = "identity-secrets"
  const emulator = await startEmulator({ vaults: [vault] })
  const work = workdir()
  const pki = await makePki()
  const leaf = await pki.leaf("secrets.example.test")
  const config = writeConfig(work, emulator, [
    {
      name: "quoted-token",
      vault,
      certificate: "quoted-token",
      source: { cert: work.write("q.crt", leaf.certPem), key: work.write("q.key", leaf.keyPem) },
      target: emulator.targetConfig(vault, "quoted-token", "managedIdentityAppService"),
    },
  ])
  const a = startAgent(config, {
    ...baseEnv(),
    NODE_EXTRA_CA_CERTS: emulator.env.clientSecret.NODE_EXTRA_CA_CERTS ?? "",
    IDENTITY_ENDPOINT: `http://127.0.0.1:${port}/msi/token`,
    IDENTITY_HEADER: identityHeader,
  })
  const leaks = (text: string) =>
    [...token.split("."), identityHeader].filter((part) => text.includes(part)).map((p) => p.slice(0, 12))
  try {
    const line = await a.waitFor((l) => l.msg === noTokenMessage, { timeoutMs: 60_000 })
    // The endpoint's answer is quoted, with what was taken out named in its place.
    expect(String(line.reason)).toContain("[a token, not shown]")
    expect(String(line.reason)).toContain("[the value of IDENTITY_HEADER, not shown]")
    await a.waitFor((l) => l.deployment === "quoted-token" && /no token for the vault/.test(l.msg), {
      timeoutMs: 60_000,
    })
    a.signal("SIGTERM")
    await a.exited
    expect(leaks(a.lines.map((l) => JSON.stringify(l)).join("\n") + a.stderr())).toEqual([])
    const stateDir = work.path("state")
    const states = readdirSync(stateDir).map((f) => readFileSync(join(stateDir, f), "utf8"))
    // The deployment's failure is recorded (its reason quotes the endpoint), without the secrets.
    expect(states.join("\n")).toContain("[a token, not shown]")
    expect(leaks(states.join("\n"))).toEqual([])
  } finally {
    a.kill()
    server.close()
    work.remove()
    await emulator.stop()
  }
}, 120_000)
