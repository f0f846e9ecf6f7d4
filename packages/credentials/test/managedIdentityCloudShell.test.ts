/**
 * managed_identity_client_id where the platform picks the identity: Cloud Shell refuses any client
 * id (@azure/identity, before any request), so the fix is to remove it, not to check its GUID. In a
 * file of its own: MSAL keeps the managed identity source it first finds for the whole process.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { makeCredential } from "../src/index.js"
import { withEnvironment } from "./identityEnvironment.js"

describe("managed_identity on Cloud Shell with managed_identity_client_id", () => {
  it.live("is refused, and the fix says to remove managed_identity_client_id", () =>
    Effect.gen(function* () {
      const error = yield* withEnvironment(
        // Cloud Shell's variable; nothing listens there, and nothing is asked.
        { MSI_ENDPOINT: "http://127.0.0.1:9/token" },
        makeCredential({
          mode: "managed_identity",
          managedIdentityClientId: "5b20ed7e-9000-4a6e-b8e2-111b2f0fa712",
          authorityHost: "https://login.microsoftonline.com",
          keyVaultResource: "https://vault.azure.net",
        }).pipe(Effect.flip),
      )
      expect(error._tag).toBe("CredentialUnavailable")
      expect(error.reason).toMatch(/not supported for CloudShell/)
      expect(error.fix).toMatch(
        /^Remove managed_identity_client_id: Cloud Shell picks the managed identity itself/,
      )
      expect(error.fix).not.toMatch(/GUID/)
    }),
  )
})
