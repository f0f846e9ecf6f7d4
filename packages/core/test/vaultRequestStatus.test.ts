/** The `status` label of `kvdeploy_vault_requests_total` for each vault error. */
import { describe, expect, it } from "vitest"
import {
  VaultAmbiguous,
  VaultForbidden,
  VaultNotFound,
  VaultThrottled,
  VaultUnavailable,
  vaultRequestStatusOf,
} from "../src/index.js"

describe("vaultRequestStatusOf", () => {
  it("tells the vault's own failures from the identity's, where no token was had and nothing was sent", () => {
    const operation = "getLatest"
    const detail = "test"
    expect(vaultRequestStatusOf(new VaultUnavailable({ operation, detail }))).toBe("unavailable")
    expect(vaultRequestStatusOf(new VaultUnavailable({ operation, detail, retried: true }))).toBe(
      "unavailable",
    )
    expect(
      vaultRequestStatusOf(new VaultUnavailable({ operation, detail, unsent: true, retried: true })),
    ).toBe("identity_unavailable")
    expect(vaultRequestStatusOf(new VaultForbidden({ operation, detail }))).toBe("forbidden")
    expect(
      vaultRequestStatusOf(new VaultForbidden({ operation, detail, unsent: true, refusal: "credential" })),
    ).toBe("no_token")
    // A vault of another tenant: no token when the credential refused it, the vault's refusal when
    // it refused the credential's own tenant's token (401).
    expect(
      vaultRequestStatusOf(new VaultForbidden({ operation, detail, unsent: true, refusal: "tenant" })),
    ).toBe("no_token")
    expect(vaultRequestStatusOf(new VaultForbidden({ operation, detail, refusal: "tenant" }))).toBe(
      "forbidden",
    )
    expect(vaultRequestStatusOf(new VaultNotFound({ operation, detail }))).toBe("not_found")
    expect(vaultRequestStatusOf(new VaultThrottled({ operation, detail }))).toBe("throttled")
    expect(vaultRequestStatusOf(new VaultAmbiguous({ operation, detail }))).toBe("ambiguous")
  })
})
