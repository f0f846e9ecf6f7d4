/**
 * Target configuration refusals an operator acts on: a secret is called a secret (not a typo),
 * the problem names the field to change, and the limits' own values are accepted.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Result from "effect/Result"
import { type ConfigProblem, validateTargetConfigSync } from "../src/index.js"

const base = { vault_url: "https://my-vault.vault.azure.net", certificate_name: "api-prod" }

const problemsOf = (input: unknown): ReadonlyArray<ConfigProblem> => {
  const r = validateTargetConfigSync(input)
  return Result.isFailure(r) ? r.failure.problems : []
}
const ok = (input: unknown) => {
  const r = validateTargetConfigSync(input)
  if (Result.isFailure(r)) assert.fail(r.failure.message)
  return r.success
}

describe("secrets in configuration", () => {
  it("every secret-looking field is refused as a secret, not as an unknown field", () => {
    for (const key of [
      "client_secret",
      "password",
      "pfx_password",
      "passwd",
      "pwd",
      "api_token",
      "access_token",
      "private_key",
      "pfx_passphrase",
      "private_key_pem",
      "connection_string",
      "storage_sas_url",
    ]) {
      const problems = problemsOf({ ...base, [key]: "value-0123" })
      assert.deepStrictEqual(
        problems.map((p) => p.field),
        [key],
        key,
      )
      assert.match(problems[0]?.message ?? "", /looks like a secret/, key)
      assert.match(problems[0]?.fix ?? "", /^remove it/, key)
      assert.notInclude(JSON.stringify(problems), "value-0123")
    }
  })

  it("a secret-looking field inside cloud is refused as a secret too", () => {
    const cloud = {
      vault_dns_suffix: "vault.local.azurestack.external",
      authority_host: "https://login.local.azurestack.external",
      keyvault_resource: "https://vault.local.azurestack.external",
    }
    for (const key of ["client_secret", "password", "token"]) {
      const problems = problemsOf({
        ...base,
        vault_url: "https://kv1.vault.local.azurestack.external",
        cloud: { ...cloud, [key]: "value-0123" },
      })
      assert.deepStrictEqual(
        problems.map((p) => [p.field, p.message]),
        [[`cloud.${key}`, "looks like a secret; secrets are never read from configuration"]],
      )
      assert.notInclude(JSON.stringify(problems), "value-0123")
    }
  })
})

describe("managed_identity_client_id", () => {
  it("with any credential_mode but managed_identity: refused, naming managed_identity_client_id", () => {
    const id = "11111111-2222-3333-4444-555555555555"
    for (const mode of [undefined, "default", "client_secret", "workload_identity"]) {
      const problems = problemsOf({
        ...base,
        ...(mode === undefined ? {} : { credential_mode: mode }),
        managed_identity_client_id: id,
      })
      assert.deepStrictEqual(
        problems.map((p) => p.field),
        ["managed_identity_client_id"],
        String(mode),
      )
      assert.match(problems[0]?.message ?? "", /not managed_identity/)
      assert.match(problems[0]?.fix ?? "", /credential_mode: managed_identity/)
    }
  })
})

describe("tag limits", () => {
  it("a tag key and a tag value of exactly 256 characters are accepted; 257 is refused", () => {
    const key = "k".repeat(256)
    const value = "v".repeat(256)
    assert.deepStrictEqual(ok({ ...base, tags: { [key]: value } }).tags, { [key]: value })
    assert.deepStrictEqual(
      problemsOf({ ...base, tags: { [`${key}k`]: value, k: `${value}v` } }).map((p) => p.message),
      ["tag key is 257 characters long", "tag value is 257 characters long"],
    )
  })
})
