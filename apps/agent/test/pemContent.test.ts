/**
 * The built agent against the emulator keeps a certificate whose secret the vault serves as PEM in
 * PEM (content_type keep, the default): its import is PEM, the vault's latest version says so, and
 * the deploy's log line says what the import wrote.
 */
import { describe, expect, it } from "vitest"
import { agentSuite, baseEnv, pemImportOptions, sdkFor, startAgent, writeConfig } from "./harness.js"

const VAULT = "agent-pem"
const suite = agentSuite([VAULT])
const PEM = "application/x-pem-file"

describe("a certificate served as PEM", () => {
  it("is renewed as PEM by the agent (content_type keep), and its log line says kept", async () => {
    const { emulator, pki, work } = suite
    // Served as PEM by another tool, with kvdeploy's managed tag (so no takeover is needed).
    const served = await pki.leaf("pem.example.test")
    await sdkFor(emulator, VAULT).importCertificate(
      "pem-cert",
      new TextEncoder().encode(`${served.keyPem}\n${served.certPem}`),
      pemImportOptions({ tags: { "certctl-managed-by": "certctl" } }),
    )
    expect(emulator.state.versions(VAULT, "pem-cert")?.at(-1)?.contentType).toBe(PEM)

    const next = await pki.leaf("pem.example.test")
    work.write("pem.key", next.keyPem)
    work.write("pem.crt", next.certPem)
    const config = writeConfig(work, emulator, [
      {
        name: "pem",
        vault: VAULT,
        certificate: "pem-cert",
        source: { cert: work.path("pem.crt"), key: work.path("pem.key") },
      },
    ])
    const a = startAgent(config, { ...baseEnv(), ...emulator.env.clientSecret })
    suite.agent = a
    const line = await a.waitFor((l) => l.deployment === "pem" && l.msg === "deploy: Succeeded")
    expect(line.contentType).toEqual({ imported: PEM, served: PEM, change: "kept" })
    const latest = emulator.state.versions(VAULT, "pem-cert")?.at(-1)
    expect(latest?.x5t).toBe(next.x5t)
    expect(latest?.contentType).toBe(PEM)
    // The import the agent sent was PEM text, not a PFX.
    const imports = emulator.requests
      .entries({ vault: VAULT })
      .filter((e) => e.operation === "import" && !e.challenge && e.status === 200)
    expect(imports).toHaveLength(2)
    const agents = imports.at(-1)?.request
    expect(agents?.valueIsPem).toBe(true)
    expect(
      (agents?.policy as { secret_props?: { contentType?: string } } | undefined)?.secret_props?.contentType,
    ).toBe(PEM)
  }, 60_000)
})
