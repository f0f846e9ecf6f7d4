/**
 * `--check` as text shows paths with what a terminal acts on escaped: a symbolic link's target
 * (another user may choose it) or a configured path holding an OSC sequence (set the window title),
 * BEL or a clear-screen CSI reaches the operator's terminal as `\x1b]0;…\x07`, never as the bytes.
 */
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { agent, inScratch, selfSigned } from "./checkFixtures.js"

describe("kvdeploy-agent --check and control characters in paths", () => {
  it("a link target and a configured path holding escape sequences are shown escaped", () => {
    inScratch((dir) => {
      mkdirSync(join(dir, "src"))
      selfSigned(join(dir, "src"), "ok")
      symlinkSync("/tmp/x\u001b]0;PWNED\u0007\u001b[2J/key.pem", join(dir, "src", "linked.key"))
      const target = (name: string) =>
        `{ vault_url: "https://kv-prod.vault.azure.net", certificate_name: ${name}, credential_mode: managed_identity }`
      const config = join(dir, "escapes.yaml")
      writeFileSync(
        config,
        `deployments:
  - { name: linked, source: { cert: ${join(dir, "src", "ok.crt")}, key: ${join(dir, "src", "linked.key")} }, target: ${target("linked")} }
  - { name: named, source: { cert: "${join(dir, "src")}/\\e]0;T2\\a\\u009b2Jmissing.crt", key: ${join(dir, "src", "ok.key")} }, target: ${target("named")} }
`,
      )
      const text = agent(["--config", config, "--check"])
      expect(text.status, text.stderr).toBe(0)
      // biome-ignore lint/suspicious/noControlCharactersInRegex: what must not reach a terminal
      expect(text.stdout + text.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/)
      expect(text.stderr).toContain(
        "is a symbolic link to /tmp/x\\x1b]0;PWNED\\x07\\x1b[2J/key.pem, which does not exist",
      )
      expect(text.stderr).toContain(`${join(dir, "src")}/\\x1b]0;T2\\x07\\u009b2Jmissing.crt does not exist`)
    })
  })
})
