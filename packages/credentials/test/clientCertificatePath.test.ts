/**
 * AZURE_CLIENT_CERTIFICATE_PATH, which @azure/identity's EnvironmentCredential (credential_mode
 * default, no AZURE_CLIENT_SECRET) reads whole with every token attempt, gets the stat-and-size
 * check AZURE_FEDERATED_TOKEN_FILE gets: a device (/dev/zero was read to V8's string limit, ~1 GB,
 * failing with "Invalid string length"), a directory, a FIFO or a file larger than any certificate
 * file is refused before the SDK is handed it, naming the variable and the fix, by the input check
 * (--check, the CLI's commands, doctor) and by makeCredential.
 */
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import { credentialEnvironmentProblems, makeCredential } from "../src/index.js"

const ids = {
  AZURE_TENANT_ID: "00000000-0000-0000-0000-0000000000a0",
  AZURE_CLIENT_ID: "00000000-0000-0000-0000-0000000000a1",
}
const check = (env: Record<string, string>) =>
  credentialEnvironmentProblems("default", (name) => env[name], { checkFiles: true })

describe("AZURE_CLIENT_CERTIFICATE_PATH", () => {
  it("with checkFiles: a device, a directory, a file too large, one that cannot be read are each named with the fix", () => {
    const dir = mkdtempSync(join(tmpdir(), "kvdeploy-client-cert-"))
    try {
      const zero = check({ ...ids, AZURE_CLIENT_CERTIFICATE_PATH: "/dev/zero" })
      expect(zero).toEqual([
        {
          kind: "malformed",
          variables: ["AZURE_CLIENT_CERTIFICATE_PATH"],
          reason:
            "the client certificate file /dev/zero (AZURE_CLIENT_CERTIFICATE_PATH) is not a regular file (it is a character device)",
          fix: expect.stringMatching(/^Set AZURE_CLIENT_CERTIFICATE_PATH to the PEM or PFX file/),
        },
      ])
      expect(check({ ...ids, AZURE_CLIENT_CERTIFICATE_PATH: dir })[0]?.reason).toBe(
        `the client certificate file ${dir} (AZURE_CLIENT_CERTIFICATE_PATH) is a directory, not a file`,
      )
      const large = join(dir, "large.pem")
      writeFileSync(large, "")
      truncateSync(large, 50 * 1024 * 1024)
      expect(check({ ...ids, AZURE_CLIENT_CERTIFICATE_PATH: large })[0]?.reason).toMatch(
        /^the client certificate file .*large\.pem \(AZURE_CLIENT_CERTIFICATE_PATH\) is too large to be a certificate and its key \(50 MiB; kvdeploy reads at most 1 MiB\)$/,
      )
      expect(check({ ...ids, AZURE_CLIENT_CERTIFICATE_PATH: join(dir, "missing.pem") })[0]?.reason).toMatch(
        /\(AZURE_CLIENT_CERTIFICATE_PATH\) cannot be read: no such file or directory \(ENOENT\)$/,
      )
      // A certificate file of a usual size passes.
      const pem = join(dir, "client.pem")
      writeFileSync(pem, "-----BEGIN CERTIFICATE-----\n")
      expect(check({ ...ids, AZURE_CLIENT_CERTIFICATE_PATH: pem })).toEqual([])
      // Not read by the SDK: with a client secret (EnvironmentCredential takes that first), or
      // without the tenant and client ids.
      expect(check({ ...ids, AZURE_CLIENT_SECRET: "s", AZURE_CLIENT_CERTIFICATE_PATH: "/dev/zero" })).toEqual(
        [],
      )
      expect(check({ AZURE_CLIENT_CERTIFICATE_PATH: "/dev/zero" })).toEqual([])
      // Nor when AZURE_TOKEN_CREDENTIALS keeps EnvironmentCredential out of the chain (leftover
      // variables on a host that selects its managed identity); it is read with "prod", or by name.
      for (const selection of ["ManagedIdentityCredential", "dev", "AzureCliCredential"])
        expect(
          check({ ...ids, AZURE_TOKEN_CREDENTIALS: selection, AZURE_CLIENT_CERTIFICATE_PATH: "/dev/zero" }),
        ).toEqual([])
      for (const selection of ["prod", " environmentcredential ", ""])
        expect(
          check({ ...ids, AZURE_TOKEN_CREDENTIALS: selection, AZURE_CLIENT_CERTIFICATE_PATH: "/dev/zero" }),
        ).toHaveLength(1)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it.effect("makeCredential (default) refuses /dev/zero before @azure/identity reads it", () =>
    Effect.gen(function* () {
      const error = yield* makeCredential({
        mode: "default",
        authorityHost: "https://login.microsoftonline.com",
      }).pipe(
        Effect.provide(
          ConfigProvider.layer(
            ConfigProvider.fromEnvRecord({ ...ids, AZURE_CLIENT_CERTIFICATE_PATH: "/dev/zero" }),
          ),
        ),
        Effect.flip,
      )
      expect(error._tag).toBe("CredentialUnavailable")
      expect(error.message).toContain(
        "the client certificate file /dev/zero (AZURE_CLIENT_CERTIFICATE_PATH) is not a regular file (it is a character device)",
      )
    }),
  )
})
