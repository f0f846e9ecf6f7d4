/**
 * A pass whose deploys wait for their vault's import window is one pass: the
 * idle release (the state write, closing the vault connections, a full
 * collection) waits for its end instead of running in every pause between
 * windows, which closed every connection (a TLS handshake each in the next
 * window) and collected over every deployment's state once per window.
 */
import { describe, expect, it } from "vitest"
import { agentSuite, baseEnv, startAgent, writeConfig } from "./harness.js"

const VAULT = "agent-pass"
const N = 4

const suite = agentSuite([VAULT])

describe("a pass held back by its vault's import window", () => {
  it("releases idle connections once, after the pass is over, not between windows", async () => {
    const { emulator, pki, work } = suite
    const leaves = await Promise.all(Array.from({ length: N }, (_, i) => pki.leaf(`w${i}.example.test`)))
    leaves.forEach((leaf, i) => {
      work.write(`w${i}.key`, leaf.keyPem)
      work.write(`w${i}.crt`, leaf.certPem)
    })
    const config = writeConfig(
      work,
      emulator,
      leaves.map((_, i) => ({
        name: `w${i}`,
        vault: VAULT,
        certificate: `w${i}-cert`,
        source: { cert: work.path(`w${i}.crt`), key: work.path(`w${i}.key`) },
      })),
      // Two imports per 6 s window: two windows, with a pause between them well over the release's
      // 3 s quiet time (a release between windows, as before this fix, would have its chance).
      { vault_imports_per_window: 2, vault_window_seconds: 6 },
    )
    // Debug lines too: the idle release is one.
    const a = startAgent(config, {
      ...baseEnv(),
      ...emulator.env.clientSecret,
      KVDEPLOY_AGENT_LOG_LEVEL: "debug",
    })
    suite.agent = a
    const over = await a.waitFor((l) => l.msg === "pass over" && l.reason === "start", { timeoutMs: 60_000 })
    expect(over).toMatchObject({ deployments: N, other: N })
    const overAt = a.lines.indexOf(over)
    const imports = emulator.requests
      .entries({ vault: VAULT })
      .filter((e) => e.operation === "import" && e.status === 200)
      .map((e) => e.time)
      .sort((x, y) => x - y)
    expect(imports).toHaveLength(N)
    // The scenario's precondition (the budget's rule, not a speed): the last two imports waited for
    // the next window, so the pass had a pause in the middle.
    expect((imports[N - 1] as number) - (imports[1] as number)).toBeGreaterThanOrEqual(5_000)
    const released = await a.waitFor((l) => l.msg === "idle: vault connections closed after the pass", {
      timeoutMs: 15_000,
    })
    expect(a.lines.indexOf(released)).toBeGreaterThan(overAt)
    expect(a.lines.filter((l) => l.msg === "idle: vault connections closed after the pass")).toHaveLength(1)
  })
})
