/**
 * The built agent while its identity endpoint fails (IMDS dropping every connection): each failed
 * read says no token could be had, not that the vault could not be read; the metrics count the
 * identity's outage apart from the vault's; the deploy goes through once the endpoint is back.
 */
import { describe, expect, it } from "vitest"
import { baseEnv, metricValue, startAgent, startEmulator, workdir, writeConfig } from "./harness.js"
import { makePki } from "./pki.js"

describe("an identity endpoint that fails", () => {
  it("is told as no token for the vault, counted as identity_unavailable, and the deploy goes through once it is back", async () => {
    const vault = "identity-outage"
    const emulator = await startEmulator({ vaults: [vault] })
    const work = workdir()
    const fault = emulator.faults.add({ operation: "imdsToken", times: "always", action: { kind: "drop" } })
    const leaf = await (await makePki()).leaf("io.example.test")
    const config = writeConfig(
      work,
      emulator,
      [
        {
          name: "io",
          vault,
          certificate: "io",
          source: { cert: work.write("io.crt", leaf.certPem), key: work.write("io.key", leaf.keyPem) },
          target: emulator.targetConfig(vault, "io", "managedIdentityImds"),
        },
      ],
      { backoff_base_seconds: 1, backoff_max_seconds: 4 },
    )
    const a = startAgent(config, { ...baseEnv(), ...emulator.env.managedIdentityImds })
    try {
      const failed = await a.waitFor(
        (l) => l.deployment === "io" && l.msg === "no token for the vault: retrying with backoff",
        { timeoutMs: 60_000 },
      )
      expect(failed.reason).toContain("no token for the vault (nothing was sent)")
      expect(a.lines.some((l) => l.msg.startsWith("cannot read the vault"))).toBe(false)
      const page = (await a.http("/metrics")).body
      expect(
        metricValue(page, "kvdeploy_vault_requests_total", {
          operation: "getLatest",
          status: "identity_unavailable",
        }),
      ).toBeGreaterThan(0)
      expect(
        metricValue(page, "kvdeploy_vault_requests_total", { operation: "getLatest", status: "unavailable" }),
      ).toBeUndefined()
      // Nothing but the body-less challenge reached the vault.
      expect(emulator.requests.entries({ vault }).every((r) => r.challenge)).toBe(true)
      emulator.faults.remove(fault)
      await a.waitFor((l) => l.deployment === "io" && l.msg === "deploy: Succeeded", { timeoutMs: 60_000 })
    } finally {
      a.kill()
      work.remove()
      await emulator.stop()
    }
  }, 150_000)
})
