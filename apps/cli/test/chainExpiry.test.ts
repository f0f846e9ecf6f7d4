/**
 * A chain whose intermediate expires before the leaf: what is served breaks at the intermediate's
 * expiry, so deploy and plan name that time, and the intermediate, as the agent's
 * `kvdeploy_agent_certificate_expiry_timestamp_seconds` does; the leaf's own notAfter stays in
 * `certificate.notAfter`.
 */
import { X509Certificate } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { issue } from "../src/cli/throwawayPki.js"
import { json, runCli, startWorld, type World } from "./harness.js"

let world: World
beforeAll(async () => {
  world = await startWorld("kvdeploy-chain-expiry")
}, 60_000)
afterAll(() => world?.stop())

const isoOf = (pem: string) => new Date(new X509Certificate(pem).validTo).toISOString()

describe("a chain certificate that expires before the leaf", () => {
  it("is the expiry deploy and plan report, naming it", async () => {
    const root = await issue({ subject: "CN=chain-expiry root", ca: true })
    const intermediate = await issue({
      subject: "CN=chain-expiry intermediate",
      issuer: root,
      ca: true,
      notAfterDays: 30,
    })
    const leaf = await issue({
      subject: "CN=api.example.test",
      issuer: intermediate,
      notAfterDays: 90,
      dnsNames: ["api.example.test"],
    })
    const args = (command: string, ...more: ReadonlyArray<string>) => [
      command,
      "--config",
      world.targetFile("chain-expiry"),
      "--cert",
      world.file("cert.pem", leaf.certPem),
      "--chain",
      world.file("chain.pem", intermediate.certPem + root.certPem),
      "--key",
      world.file("privkey.pem", leaf.keyPem),
      ...more,
    ]
    const intermediateNotAfter = isoOf(intermediate.certPem)

    const planned = await runCli(args("plan"), { env: world.env })
    expect(planned.code, planned.stdout + planned.stderr).toBe(0)
    const newRow = planned.stdout.split("\n").find((l) => l.startsWith("  new "))
    expect(newRow).toMatch(
      new RegExp(
        `expires ${intermediateNotAfter.slice(0, 10)} UTC \\(in \\d+ d\\): the leaf's issuer in the chain, CN=chain-expiry intermediate, expires first \\(the leaf ${isoOf(leaf.certPem).slice(0, 10)} UTC\\)`,
      ),
    )

    const deployed = await runCli(args("deploy", "--json"), { env: world.env })
    expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0)
    expect(json<{ certificate: Record<string, string> }>(deployed).certificate).toMatchObject({
      subject: "CN=api.example.test",
      notAfter: isoOf(leaf.certPem),
      earliestNotAfter: intermediateNotAfter,
      expiresFirst: "CN=chain-expiry intermediate",
    })

    // Deployed again (Skipped): the certificate rows say the same time.
    const again = await runCli(args("deploy"), { env: world.env })
    expect(again.code, again.stdout + again.stderr).toBe(0)
    expect(again.stdout).toMatch(
      new RegExp(
        `^ {2}expires +${intermediateNotAfter.slice(0, 10)} UTC \\(in \\d+ d\\): the leaf's issuer in the chain, CN=chain-expiry intermediate, expires first`,
        "m",
      ),
    )
  })

  it("is an intermediate above the leaf's issuer when that one expires first (root <- policy CA <- issuing CA <- leaf)", async () => {
    const root = await issue({ subject: "CN=chain-expiry three-tier root", ca: true, notAfterDays: 20 })
    const policy = await issue({
      subject: "CN=chain-expiry policy CA",
      issuer: root,
      ca: true,
      notAfterDays: 30,
    })
    const issuing = await issue({
      subject: "CN=chain-expiry issuing CA",
      issuer: policy,
      ca: true,
      notAfterDays: 400,
    })
    const leaf = await issue({
      subject: "CN=api.example.test",
      issuer: issuing,
      notAfterDays: 90,
      dnsNames: ["api.example.test"],
    })
    const args = (...more: ReadonlyArray<string>) => [
      "plan",
      "--config",
      world.targetFile("chain-expiry-three-tier"),
      "--cert",
      world.file("cert3.pem", leaf.certPem),
      "--chain",
      // The root served along ends first of all: clients check against their own copy, so not counted.
      world.file("chain3.pem", issuing.certPem + policy.certPem + root.certPem),
      "--key",
      world.file("privkey3.pem", leaf.keyPem),
      ...more,
    ]
    const policyNotAfter = isoOf(policy.certPem)
    const planned = await runCli(args(), { env: world.env })
    expect(planned.code, planned.stdout + planned.stderr).toBe(0)
    expect(planned.stdout.split("\n").find((l) => l.startsWith("  new "))).toMatch(
      new RegExp(
        `expires ${policyNotAfter.slice(0, 10)} UTC \\(in \\d+ d\\): CN=chain-expiry policy CA, above the leaf's issuer in the chain, expires first \\(the leaf ${isoOf(leaf.certPem).slice(0, 10)} UTC\\)`,
      ),
    )
    const json3 = await runCli(args("--json"), { env: world.env })
    expect(json3.code, json3.stdout + json3.stderr).toBe(0)
    expect(json<{ newCertificate: Record<string, string> }>(json3).newCertificate).toEqual({
      subject: "CN=api.example.test",
      notAfter: isoOf(leaf.certPem),
      sha256: expect.any(String),
      earliestNotAfter: policyNotAfter,
      expiresFirst: "CN=chain-expiry policy CA",
    })
  })
})
