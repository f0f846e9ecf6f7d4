/**
 * A deployment's fingerprint does not depend on the host's locale: the agent of a host whose
 * LANG changes between two runs (a shell, then a systemd unit) must recognise the state it wrote.
 * Each locale runs in its own Node process (the default locale is fixed at start), on the
 * configuration module bundled from its source.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { build } from "esbuild"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { agentRoot } from "./harness.js"

// Tag keys whose order differs between locales: Swedish sorts "ä" after "z", English before it.
const config = JSON.stringify({
  deployments: [
    {
      name: "nordic",
      source: { cert: "nordic.pem" },
      target: {
        vault_url: "https://kv-prod.vault.azure.net",
        certificate_name: "nordic",
        tags: { z: "1", ä: "2", team: "web", Zone: "b" },
      },
    },
  ],
})

const script = `
import { isDeploymentOf, parseAgentConfig } from ${JSON.stringify(join(agentRoot, "src", "config.ts"))}
const r = parseAgentConfig(process.env.KVDEPLOY_TEST_CONFIG, "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", {})
if (r._tag === "Failure") throw new Error(r.failure.message)
const recorded = JSON.parse(process.env.KVDEPLOY_TEST_RECORDED)
process.stdout.write(JSON.stringify({
  locale: new Intl.Collator().resolvedOptions().locale,
  fingerprints: r.success.deployments.map((d) => [d.name, d.fingerprint]),
  former: r.success.deployments.map((d) => [d.name, d.formerFingerprints ?? []]),
  recognised: recorded.map((f) => r.success.deployments.some((d) => isDeploymentOf(f, d))),
}))
`

/** What the agent of commit 784a5fc (localeCompare in the host's locale) wrote under sv_SE.UTF-8. */
const svOld = "b4dccc4efefd5eef8b441c7ae7fa4ed89787540a807dd1d3d6e0b4c78ae104d5"

describe("configuration fingerprints", () => {
  let dir: string
  let bundled: string
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "kvdeploy-fingerprint-locale-"))
    bundled = join(dir, "fingerprints.mjs")
    const result = await build({
      stdin: { contents: script, resolveDir: agentRoot, loader: "ts", sourcefile: "fingerprints.ts" },
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node22",
      conditions: ["@kvdeploy/source"],
      banner: {
        js: "import { createRequire as __kvdeployCreateRequire } from 'node:module'; const require = __kvdeployCreateRequire(import.meta.url);",
      },
      write: false,
      logLevel: "silent",
    })
    const out = result.outputFiles[0]
    if (out === undefined) throw new Error("esbuild wrote no output")
    writeFileSync(bundled, out.contents)
  }, 60_000)
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  const underLocale = (locale: string) => {
    const r = spawnSync(process.execPath, [bundled], {
      encoding: "utf8",
      env: {
        PATH: process.env.PATH ?? "",
        // A Node.js built with its ICU data outside the binary finds it here.
        ...(process.env.NODE_ICU_DATA === undefined ? {} : { NODE_ICU_DATA: process.env.NODE_ICU_DATA }),
        LANG: locale,
        LC_ALL: locale,
        KVDEPLOY_TEST_CONFIG: config,
        KVDEPLOY_TEST_RECORDED: JSON.stringify([svOld, "0".repeat(64)]),
      },
      timeout: 30_000,
    })
    if (r.status !== 0) throw new Error(`the fingerprint script failed under ${locale}: ${r.stderr}`)
    return JSON.parse(r.stdout) as {
      locale: string
      fingerprints: Array<[string, string]>
      former: Array<[string, Array<string>]>
      recognised: Array<boolean>
    }
  }

  it("is the same under every locale, and what earlier versions wrote under an English or C locale", () => {
    // Written by the agent of commit 784a5fc (localeCompare in the host's locale) under LANG=C.UTF-8 and en_US.UTF-8 (under sv_SE.UTF-8 it wrote svOld, below).
    const written = [["nordic", "57ea86042ca8276943280c46193788f763ddff78ff250aa99120ce9fb89a60a5"]]
    const runs = ["C.UTF-8", "en_US.UTF-8", "sv_SE.UTF-8", "de_DE.UTF-8", "fi_FI.UTF-8"].map(underLocale)
    // The processes did run under different locales (else the check below proves nothing).
    expect(runs.map((r) => r.locale)).toEqual(["en-US", "en-US", "sv-SE", "de-DE", "fi-FI"])
    for (const run of runs) expect(run.fingerprints).toEqual(written)
  }, 60_000)

  it("recognises what earlier versions wrote under a locale that orders the keys otherwise: an upgrade under it keeps a hold", () => {
    const sv = underLocale("sv_SE.UTF-8")
    expect(sv.locale).toBe("sv-SE")
    // The host's collation puts "ä" after "z": the fingerprint the agent of 784a5fc wrote there.
    expect(sv.former).toEqual([["nordic", [svOld]]])
    expect(sv.recognised).toEqual([true, false])
    // Under an English locale the host's order is the fixed one: nothing former, and the Swedish
    // host's record is not taken for this configuration.
    const en = underLocale("en_US.UTF-8")
    expect(en.former).toEqual([["nordic", []]])
    expect(en.recognised).toEqual([false, false])
  }, 60_000)
})
