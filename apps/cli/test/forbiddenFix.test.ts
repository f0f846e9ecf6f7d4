/** What the CLI says to do when the vault refused the token itself: a host clock set back is one cause. */
import { describe, expect, it } from "vitest"
import { forbiddenFix } from "../src/cli/vault.js"

describe("a token the vault refused", () => {
  it("names the host's clock beside the tenant and the cloud, for every credential mode", () => {
    for (const credential of [
      { mode: "client_secret", tokenExchange: false, multiTenantAuthDisabled: false },
      { mode: "managed_identity", tokenExchange: false, multiTenantAuthDisabled: false },
    ] as const) {
      const fix = forbiddenFix("token", credential)
      expect(fix, credential.mode).toMatch(/^the vault refused the token itself \(no permission would help\)/)
      expect(fix, credential.mode).toContain(
        "that the vault is in the target's cloud, and that this host's clock is right",
      )
      expect(fix, credential.mode).toContain("checks its times against this host's clock")
    }
  })
})
