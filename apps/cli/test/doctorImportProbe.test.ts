/**
 * `kvdeploy doctor`'s import probe (the built CLI): Key Vault refuses the probe's invalid content
 * with 400 and its error body once the caller may import, so only such a 400 reads as permitted. A
 * 400 without Key Vault's error code (a proxy's page) fails the check, as does any other refusal (a
 * 404 from something that is not Key Vault's import, answering at vault_url), and doctor does not say "ready to deploy", since a deploy's import would be refused the same way.
 */

import type { FaultAction } from "@kvdeploy/kv-emulator"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type DoctorCheck, json, runCli, startWorld, type World } from "./harness.js"

let world: World
beforeAll(async () => {
  world = await startWorld("cli-doctor-probe")
}, 60_000)
afterAll(async () => {
  await world?.stop()
})

type Check = DoctorCheck

const importCheck = (checks: ReadonlyArray<Check>) => checks.find((c) => c.check === "certificates/import")

describe("doctor's import probe", () => {
  it("a 400 for the invalid content: permitted, and ready", async () => {
    const r = await runCli(["doctor", "--config", world.targetFile("probe-ok"), "--json"], { env: world.env })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(importCheck(json<{ checks: Array<Check> }>(r).checks)).toEqual({
      check: "certificates/import",
      status: "pass",
      detail:
        "permitted (the probe's invalid content was refused with 400 BadParameter; nothing was written)",
    })
  })

  /**
   * doctor (--json, then text) with the emulator answering the probe's import with `action`: the
   * import check fails with `detail` and the fix to check what answers at vault_url, and doctor does
   * not say "ready to deploy".
   */
  const failsTheProbe = async (targetName: string, action: FaultAction, detail: RegExp) => {
    const fault = world.emulator.faults.add({
      operation: "import",
      vault: world.vault,
      // One for the --json run, one for the text run.
      times: 2,
      action,
    })
    try {
      const target = world.targetFile(targetName)
      const r = await runCli(["doctor", "--config", target, "--json"], { env: world.env })
      expect(r.code, r.stdout + r.stderr).toBe(1)
      const check = importCheck(json<{ checks: Array<Check> }>(r).checks)
      expect(check?.status).toBe("fail")
      expect(check?.detail).toMatch(detail)
      expect(check?.fix).toMatch(
        /^check that vault_url is the vault's URL and that what answers there is Key Vault/,
      )
      const text = await runCli(["doctor", "--config", target], { env: world.env })
      expect(text.code).toBe(1)
      expect(text.stdout).not.toContain("ready to deploy")
    } finally {
      world.emulator.faults.remove(fault)
    }
  }

  it("a 400 without Key Vault's error body (a proxy's page): failed, the permission unknown, and not ready", async () => {
    await failsTheProbe(
      "probe-400-html",
      { kind: "rawAnswer", status: 400, body: "<html>400 Bad Request</html>", contentType: "text/html" },
      /^the probe's import was refused with 400 but without Key Vault's error body \(no error code\), so it was not Key Vault that answered and the import permission is unknown: /,
    )
  })

  it("the vault's Azure Policy refusing the probe (its import policy's lifetime action): failed, naming the policy, not a wrong vault_url, and not ready", async () => {
    const fault = world.emulator.faults.add({
      operation: "import",
      vault: world.vault,
      times: 2,
      action: {
        kind: "policyDenied",
        assignment: { name: "cert-lifetime" },
        definition: { name: "12ef42cb-9903-4e39-9c26-422d29570417" },
      },
    })
    try {
      const target = world.targetFile("probe-policy")
      const r = await runCli(["doctor", "--config", target, "--json"], { env: world.env })
      expect(r.code, r.stdout + r.stderr).toBe(1)
      const check = importCheck(json<{ checks: Array<Check> }>(r).checks)
      expect(check?.status, r.stdout).toBe("fail")
      expect(check?.detail).toMatch(
        /^the vault's Azure Policy refused the probe's import \(403 RequestDisallowedByPolicy\), so whether the identity may import is not known, and a deploy's import may be refused the same way: the vault's Azure Policy refused this certificate \(policy assignment cert-lifetime/,
      )
      expect(check?.detail).toContain("kvdeploy's import policy")
      expect(check?.fix).toContain("the vault's Azure Policy refused the certificate")
      expect(check?.fix).not.toMatch(/vault_url/)
      const text = await runCli(["doctor", "--config", target], { env: world.env })
      expect(text.code).toBe(1)
      expect(text.stdout).not.toContain("ready to deploy")
    } finally {
      world.emulator.faults.remove(fault)
    }
  })

  it("a 404 for the import: failed, naming the status and what to check, and not ready", async () => {
    await failsTheProbe(
      "probe-404",
      { kind: "status", status: 404 },
      /^the probe's import was refused with 404, where Key Vault refuses invalid content with 400, so a deploy's import would fail too: /,
    )
  })
})
