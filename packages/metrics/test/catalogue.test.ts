import { assert, describe, it } from "@effect/vitest"
import { catalogue } from "../src/index.js"

describe("catalogue", () => {
  it("has exactly the names and labels of ARCHITECTURE.md (certctl names kept)", () => {
    assert.deepStrictEqual(
      catalogue.map((s) => [s.name, s.type, [...s.labels]]),
      [
        ["certctl_deploy_attempts_total", "counter", ["target_type", "result"]],
        ["certctl_deploy_validate_failures_total", "counter", ["target_type", "reason"]],
        ["certctl_deploy_post_verify_failures_total", "counter", ["target_type", "reason"]],
        ["certctl_deploy_rollback_total", "counter", ["target_type", "outcome"]],
        ["certctl_deploy_idempotent_skip_total", "counter", ["target_type"]],
        ["kvdeploy_deploy_duration_seconds", "histogram", []],
        ["kvdeploy_vault_requests_total", "counter", ["operation", "status"]],
        ["kvdeploy_vault_http_requests_total", "counter", ["operation", "status"]],
        ["kvdeploy_vault_throttled_total", "counter", []],
        ["kvdeploy_certificate_expiry_timestamp_seconds", "gauge", ["vault_url", "certificate_name"]],
      ],
    )
    for (const s of catalogue) assert.isAbove(s.help.length, 10, s.name)
  })
})
