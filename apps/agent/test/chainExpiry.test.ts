/**
 * The built agent against the emulator, with a source whose intermediate expires before its leaf
 * (a fullchain file kept from an older issue of the chain): what the vault serves breaks at the
 * intermediate's expiry, so the source expiry series
 * (`kvdeploy_agent_certificate_expiry_timestamp_seconds`, which *KvdeployCertificateExpiresSoon*
 * alerts on) says the intermediate's notAfter, not the leaf's; after a restart too, when the facts
 * come from the state file instead of a parse. The vault expiry series stays the served leaf's.
 */
import "reflect-metadata"
import { readFileSync, writeFileSync } from "node:fs"
import { generateKey, issue, toPem } from "@kvdeploy/pkcs12/testing"
import { KeyUsageFlags } from "@peculiar/x509"
import { describe, expect, it } from "vitest"
import { agentSuite, baseEnv, metricValue, startAgent, writeConfig } from "./harness.js"

const VAULT = "agent-chain-expiry"
const suite = agentSuite([VAULT])
const day = 86_400_000
/** Whole seconds: X.509 times carry no fractions, so the gauges compare exactly. */
const inDays = (days: number) => new Date(Math.floor((Date.now() + days * day) / 1000) * 1000)

describe("a chain certificate that expires before the leaf", () => {
  it("is the source expiry the agent reports, before and after a restart", async () => {
    const { emulator, work } = suite
    const rootKey = await generateKey("P-256")
    const rootName = "CN=kvdeploy chain-expiry root"
    const intermediateKey = await generateKey("P-256")
    const intermediateName = "CN=kvdeploy chain-expiry intermediate"
    const intermediateNotAfter = inDays(30)
    const intermediate = await issue({
      subject: intermediateName,
      key: intermediateKey,
      issuer: { name: rootName, key: rootKey },
      ca: true,
      keyUsage: KeyUsageFlags.keyCertSign,
      notBefore: new Date(Date.now() - day),
      notAfter: intermediateNotAfter,
    })
    const leafKey = await generateKey("P-256")
    const leafNotAfter = inDays(90)
    const leaf = await issue({
      subject: "CN=chain.example.test",
      key: leafKey,
      issuer: { name: intermediateName, key: intermediateKey },
      ca: false,
      sans: [{ type: "dns", value: "chain.example.test" }],
      notBefore: new Date(Date.now() - day),
      notAfter: leafNotAfter,
    })
    work.write("chain.key", toPem("PRIVATE KEY", leafKey.pkcs8))
    work.write("fullchain.pem", toPem("CERTIFICATE", leaf) + toPem("CERTIFICATE", intermediate))
    const config = writeConfig(work, emulator, [
      {
        name: "chained",
        vault: VAULT,
        certificate: "chained-cert",
        source: { cert: work.path("fullchain.pem"), key: work.path("chain.key") },
      },
    ])
    const env = { ...baseEnv(), ...emulator.env.clientSecret }
    const sourceExpiry = (page: string) =>
      metricValue(page, "kvdeploy_agent_certificate_expiry_timestamp_seconds", { deployment: "chained" })
    const servedExpiry = (page: string) =>
      metricValue(page, "kvdeploy_certificate_expiry_timestamp_seconds", {
        vault_url: emulator.targetConfig(VAULT, "chained-cert", "clientSecret").vault_url as string,
        certificate_name: "chained-cert",
      })

    const first = startAgent(config, env)
    suite.agent = first
    await first.waitFor((l) => l.deployment === "chained" && l.msg === "deploy: Succeeded")
    await first.waitFor((l) => /Listening on/.test(l.msg))
    let page = ""
    await expect
      .poll(
        async () => {
          page = (await first.http("/metrics")).body
          return sourceExpiry(page)
        },
        { timeout: 10_000 },
      )
      .toBe(intermediateNotAfter.getTime() / 1000)
    // The vault's own expiry (its `exp`, the leaf's) is what the vault series says.
    expect(servedExpiry(page)).toBe(leafNotAfter.getTime() / 1000)

    // Restarted: the source's facts come from the state file (the same bytes), not from a parse.
    first.signal("SIGTERM")
    expect(await first.exited).toBe(0)
    const second = startAgent(config, env)
    suite.agent = second
    await second.waitFor(
      (l) => l.deployment === "chained" && l.msg === "in place: the vault serves the source certificate",
    )
    await second.waitFor((l) => /Listening on/.test(l.msg))
    await expect
      .poll(async () => sourceExpiry((await second.http("/metrics")).body), { timeout: 10_000 })
      .toBe(intermediateNotAfter.getTime() / 1000)
  })

  it("follows the issuer path (root <- policy CA <- issuing CA <- leaf), also over a record an agent before it wrote", async () => {
    const { emulator, work } = suite
    const ca = async (
      name: string,
      notAfter: Date,
      issuer?: { name: string; key: Awaited<ReturnType<typeof generateKey>> },
    ) => {
      const key = await generateKey("P-256")
      const der = await issue({
        subject: name,
        key,
        ...(issuer === undefined ? {} : { issuer }),
        ca: true,
        keyUsage: KeyUsageFlags.keyCertSign,
        notBefore: new Date(Date.now() - day),
        notAfter,
      })
      return { name, key, der }
    }
    // The root served along ends first of all, and is not counted: clients check against their own copy.
    const root = await ca("CN=kvdeploy three-tier root", inDays(20))
    const policyNotAfter = inDays(30)
    const policy = await ca("CN=kvdeploy three-tier policy CA", policyNotAfter, root)
    const issuing = await ca("CN=kvdeploy three-tier issuing CA", inDays(400), policy)
    const leafKey = await generateKey("P-256")
    const leafNotAfter = inDays(90)
    const leaf = await issue({
      subject: "CN=three.example.test",
      key: leafKey,
      issuer: issuing,
      ca: false,
      sans: [{ type: "dns", value: "three.example.test" }],
      notBefore: new Date(Date.now() - day),
      notAfter: leafNotAfter,
    })
    work.write("three.key", toPem("PRIVATE KEY", leafKey.pkcs8))
    work.write(
      "three.pem",
      [leaf, issuing.der, policy.der, root.der].map((der) => toPem("CERTIFICATE", der)).join(""),
    )
    const config = writeConfig(
      work,
      emulator,
      [
        {
          name: "three",
          vault: VAULT,
          certificate: "three-tier-cert",
          source: { cert: work.path("three.pem"), key: work.path("three.key") },
        },
      ],
      { state_dir: work.path("state-three") },
      "three.yaml",
    )
    const env = { ...baseEnv(), ...emulator.env.clientSecret }
    const sourceExpiry = async (agent: ReturnType<typeof startAgent>) =>
      metricValue(
        (await agent.http("/metrics")).body,
        "kvdeploy_agent_certificate_expiry_timestamp_seconds",
        { deployment: "three" },
      )

    const first = startAgent(config, env)
    suite.agent = first
    await first.waitFor((l) => l.deployment === "three" && l.msg === "deploy: Succeeded")
    await first.waitFor((l) => /Listening on/.test(l.msg))
    await expect.poll(() => sourceExpiry(first), { timeout: 10_000 }).toBe(policyNotAfter.getTime() / 1000)
    first.signal("SIGTERM")
    expect(await first.exited).toBe(0)

    // The record as an agent before the path rule left it: the leaf's issuer alone counted (here the leaf's notAfter).
    const statePath = work.path("state-three/state.json")
    const state = JSON.parse(readFileSync(statePath, "utf8"))
    const record = state.deployments.three
    expect(record.earliestNotAfter).toBe(policyNotAfter.toISOString())
    expect(record.earliestNotAfterRule).toBe("issuer-path")
    delete record.earliestNotAfterRule
    record.earliestNotAfter = leafNotAfter.toISOString()
    writeFileSync(statePath, JSON.stringify(state))

    // Restarted: that record's expiry is not taken; the bytes are parsed again under the path rule.
    const second = startAgent(config, env)
    suite.agent = second
    await second.waitFor(
      (l) => l.deployment === "three" && l.msg === "in place: the vault serves the source certificate",
    )
    await second.waitFor((l) => /Listening on/.test(l.msg))
    await expect.poll(() => sourceExpiry(second), { timeout: 10_000 }).toBe(policyNotAfter.getTime() / 1000)
  })
})
