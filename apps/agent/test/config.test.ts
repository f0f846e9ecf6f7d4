/** The configuration: every problem listed at once, the published JSON Schema in step with the Effect Schema. */
import { generateKeyPairSync } from "node:crypto"
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { holdsEncodedBase64 } from "@kvdeploy/core"
import { changeProcessEnv } from "@kvdeploy/core/test"
import * as Effect from "effect/Effect"
import { dump } from "js-yaml"
import { afterAll, describe, expect, it } from "vitest"
import {
  changedSettings,
  isDeploymentOf,
  jsonSchema,
  loadAgentConfig,
  parseAgentConfig,
  validateAgentConfig,
} from "../src/config.js"
import { agentRoot } from "./harness.js"

const problemsOf = (yaml: string, env: Record<string, string> = {}) => {
  const r = parseAgentConfig(yaml, "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", env)
  if (r._tag === "Success") return []
  return r.failure.problems.map((p) => `${p.field}: ${p.message}`)
}

/** The projected service account token of workload identity (a file the environment check reads). */
const tokenDir = mkdtempSync(join(tmpdir(), "kvdeploy-config-token-"))
afterAll(() => rmSync(tokenDir, { recursive: true, force: true }))
const tokenFile = join(tokenDir, "azure-identity-token")
writeFileSync(tokenFile, "a federated token")

/** The environment of a host the example runs on: the PFX password and the variables of every credential mode it uses. */
const hostEnv = {
  PORTAL_PFX_PASSWORD: "x",
  AZURE_TENANT_ID: "00000000-0000-0000-0000-000000000001",
  AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000002",
  AZURE_CLIENT_SECRET: "x",
  AZURE_FEDERATED_TOKEN_FILE: tokenFile,
}

describe("agent configuration", () => {
  it("words the schema's refusals for people: no RegExp, an empty value, a number to quote, one problem a field", () => {
    const problems = problemsOf(`
agent: { concurrency: .inf }
deployments:
  - { name: "bad name!", source: { cert: a.crt }, target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: a } }
  - { name: 2024, source: { cert: a.crt }, target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: b } }
  - { name: c, source: { pfx: a.pfx, pfx_password_env: "" }, target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: c } }
`)
    expect(problems).toEqual([
      "agent.concurrency: Expected a finite number",
      "deployments[0].name: holds a space, '!', which a deployment name does not take",
      "deployments[1].name: is a number, not text: quote it",
      "deployments[2].source.pfx_password_env: is empty",
    ])
  })

  it("takes a target's content_type (keep by default), refuses another value naming the field, and keeps the fingerprint of keep", () => {
    const yaml = (contentType: string | undefined) => `
deployments:
  - name: pem-app
    source: { cert: a.crt }
    target:
      vault_url: "https://my-vault.vault.azure.net"
      certificate_name: pem-app${contentType === undefined ? "" : `\n      content_type: ${contentType}`}
`
    const parsed = (contentType: string | undefined) => {
      const r = parseAgentConfig(yaml(contentType), "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", {})
      if (r._tag === "Failure") throw new Error(r.failure.message)
      return r.success.deployments[0]
    }
    expect(parsed(undefined)?.target.contentType).toBe("keep")
    expect(parsed("pem")?.target.contentType).toBe("pem")
    expect(parsed("pkcs12")?.target.contentType).toBe("pkcs12")
    // keep said or left out is one configuration; pem is another (a change releases a held outcome).
    expect(parsed("keep")?.fingerprint).toBe(parsed(undefined)?.fingerprint)
    expect(parsed("pem")?.fingerprint).not.toBe(parsed(undefined)?.fingerprint)
    const problems = problemsOf(yaml("pemm"))
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^deployments\[0\]\.target\.content_type: /)
  })

  it("takes a target's consumers through core's validation, and a deployment without consumers keeps the fingerprint it had before the field", () => {
    const yaml = (consumers: string | undefined) => `
deployments:
  - name: gateway-app
    source: { cert: a.crt }
    target:
      vault_url: "https://my-vault.vault.azure.net"
      certificate_name: gateway-app${consumers === undefined ? "" : `\n      consumers: ${consumers}`}
`
    const parsed = (consumers: string | undefined) => {
      const r = parseAgentConfig(yaml(consumers), "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", {})
      if (r._tag === "Failure") throw new Error(r.failure.message)
      return r.success.deployments[0]
    }
    // Recorded with the agent before consumers existed: a held outcome survives the upgrade.
    const before = "eb3062a62845845277480587fd37df1ea82a71cced32bd4e4c08f7fa8fdf736b"
    expect(parsed(undefined)?.fingerprint).toBe(before)
    expect(parsed("[]")?.fingerprint).toBe(before)
    expect(parsed(undefined)?.target.consumers).toBeUndefined()
    expect(parsed("[application_gateway, front_door]")?.target.consumers).toEqual([
      "application_gateway",
      "front_door",
    ])
    // Naming a consumer is another configuration (a change releases a held outcome).
    expect(parsed("[front_door]")?.fingerprint).not.toBe(before)
    // consumers is a set: another order in the file is the same configuration (a held outcome stays
    // held); the order written is kept in the target.
    expect(parsed("[front_door, application_gateway, app_service]")?.fingerprint).toBe(
      parsed("[app_service, application_gateway, front_door]")?.fingerprint,
    )
    expect(parsed("[front_door, application_gateway]")?.target.consumers).toEqual([
      "front_door",
      "application_gateway",
    ])
    expect(parsed("[front_door, application_gateway]")?.fingerprint).not.toBe(
      parsed("[front_door]")?.fingerprint,
    )
    expect(problemsOf(yaml("[front_dor, front_door, front_door]"))).toEqual([
      'deployments[0].target.consumers[0]: is not a consumer kvdeploy knows ("front_dor")',
      "deployments[0].target.consumers[2]: names front_door again (consumers[1] names it)",
    ])
    expect(problemsOf(yaml("front_door"))).toEqual(["deployments[0].target.consumers: is not a list"])
    expect(
      problemsOf(
        yaml("[app_service]").replace(
          "certificate_name: gateway-app",
          "certificate_name: gateway-app\n      content_type: pem",
        ),
      ),
    ).toEqual([
      "deployments[0].target.content_type: is pem, but app_service (Azure App Service) reads the certificate's secret as PKCS#12 only: it could not read a PEM version",
    ])
  })

  it("a password written where its variable's name belongs is refused without being shown", () => {
    const problems = problemsOf(`
deployments:
  - name: typed
    source: { pfx: p.pfx, pfx_password_env: Sup3rSecretPassphraseXYZZY }
    target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: typed }
  - name: invalid
    source: { pfx: p.pfx, pfx_password_env: "Sup3r$ecret!pass" }
    target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: invalid }
  - name: digits
    source: { pfx: p.pfx, pfx_password_env: 83749283 }
    target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: digits }
`)
    expect([...problems].sort()).toEqual([
      expect.stringMatching(
        /^deployments\[0\]\.source\.pfx_password_env: the environment variable it names is not set \(26 characters, not shown/,
      ),
      "deployments[1].source.pfx_password_env: is not of the form this field takes (see the fix)",
      // A password of digits is read as a number by YAML: not repeated either.
      "deployments[2].source.pfx_password_env: is a number, not text: quote it",
    ])
    expect(problems.join("\n")).not.toMatch(/Sup3r|XYZZY|83749283/)
    // A name as such variables are written is shown.
    expect(
      problemsOf(`
deployments:
  - name: a
    source: { pfx: p.pfx, pfx_password_env: PORTAL_PFX_PASSWORD }
    target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: a }
`),
    ).toEqual([
      "deployments[0].source.pfx_password_env: the environment variable PORTAL_PFX_PASSWORD is not set",
    ])
  })

  it("a pickup port outside 1-65535 is refused with its field (it passed, then turned the pickup check off)", () => {
    const problems = problemsOf(`
deployments:
  - name: a
    source: { cert: c.pem, key: k.pem }
    target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: a }
    pickup: { host: 127.0.0.1, port: 70000 }
`)
    expect(problems).toEqual([expect.stringMatching(/^deployments\[0\]\.pickup\.port: /)])
  })

  it("lists at most 1,000 problems and counts the rest (a million stray keys made a text no string could hold)", () => {
    const keys = Array.from({ length: 3000 }, (_, i) => `  k${i}: 1\n`).join("")
    const problems = problemsOf(`agent:\n${keys}deployments: []\n`)
    expect(problems).toHaveLength(1_001)
    expect(problems.at(-1)).toMatch(/^\(configuration\): has \d+ more problems, not listed$/)
  })

  it("accepts the example configuration and applies defaults", () => {
    const text = readFileSync(join(agentRoot, "examples", "agent.yaml"), "utf8")
    const r = parseAgentConfig(text, "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", hostEnv)
    if (r._tag === "Failure") throw new Error(r.failure.message)
    expect(
      r.success.deployments.map((d) => [d.name, d.target.certificateName, d.certificateId, d.adopt]),
    ).toEqual([
      ["api-prod", "api-prod", "api-prod-2026", false],
      ["portal", "portal", "portal", true],
    ])
    expect(r.success.settings.listenPort).toBe(9464)
    expect(r.success.settings.vaultListMinDeployments).toBe(25)
    expect(r.success.settings.recoverTimeoutMs).toBe(300_000)
    expect(r.success.settings.importsPerWindow).toBeLessThanOrEqual(300)
    expect(r.success.deployments[1]?.source).toEqual({
      _tag: "Pfx",
      pfx: "/etc/ssl/kvdeploy/portal/portal.pfx",
      passwordEnv: "PORTAL_PFX_PASSWORD",
    })
  })

  it("lists every problem, in schema and in targets, at once", () => {
    const problems = problemsOf(`
agent:
  concurrency: 0
  listen: "not an address"
  vault_list_min_deployments: 2.5
  colour: blue
deployments:
  - name: api
    source: { cert: c.pem, key: k.pem, password: hunter2 }
    target: { vault_url: "http://x.example", certificate_name: "bad name!", client_secret: "s3cret" }
  - name: api
    source: { pfx: p.pfx, pfx_password_env: MISSING_VAR }
    target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: "ok", adopt: "yes" }
  - name: other
    source: { cert: c.pem }
    target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: "OK" }
`)
    const expected = [
      /^agent\.colour: /,
      /^agent\.concurrency: /,
      /^agent\.listen: .*not host:port/,
      /^agent\.vault_list_min_deployments: /,
      /^deployments\[0\]\.source\.password: looks like a secret/,
      /^deployments\[0\]\.target\.client_secret: looks like a secret/,
      /^deployments\[0\]\.target\.vault_url: uses http/,
      /^deployments\[0\]\.target\.certificate_name: /,
      /^deployments\[1\]\.name: "api" is also the name/,
      /^deployments\[1\]\.source\.pfx_password_env: the environment variable MISSING_VAR is not set/,
      /^deployments\[1\]\.target\.adopt: /,
      /^deployments\[2\]\.target: deploys to the same certificate as deployments\[1\]/,
    ]
    for (const e of expected)
      expect(
        problems.some((p) => e.test(p)),
        `${e} in\n${problems.join("\n")}`,
      ).toBe(true)
    expect(problems.join("\n")).not.toContain("hunter2")
    expect(problems.join("\n")).not.toContain("s3cret")
  })

  it("reports YAML syntax errors with their line", () => {
    expect(problemsOf("deployments:\n  - name: [unclosed\n")[0]).toMatch(/^\(yaml\) line \d+/)
  })

  const deployment = (name: string) => `
  - name: ${name}
    source: { cert: /etc/ssl/${name}.crt, key: /etc/ssl/${name}.key }
    target: { vault_url: "https://kv-prod.vault.azure.net/", certificate_name: ${name} }`

  it("refuses a duplicate key with its line, in block and in flow (JSON) style", () => {
    // A later value silently replacing an earlier one would deploy to a vault nobody wrote down.
    expect(problemsOf(`deployments:${deployment("api")}\n    name: other\n`)).toEqual([
      '(yaml) line 5: duplicated mapping key "name"',
    ])
    expect(problemsOf('{"agent": {"concurrency": 4, "concurrency": 8},\n "deployments": []}')).toEqual([
      '(yaml) line 1: duplicated mapping key "concurrency"',
    ])
    expect(fullProblems(`deployments:${deployment("api")}\n    name: other\n`)[0]?.fix).toBe(
      'give "name" once in this mapping (remove or rename one of the two)',
    )
  })

  const fullProblems = (yaml: string) => {
    const r = parseAgentConfig(yaml, "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", {})
    return r._tag === "Success" ? [] : r.failure.problems
  }

  it("names an empty file, several documents, a missing anchor and a custom tag, each with its fix", () => {
    for (const empty of ["", "# nothing yet\n", "\n\n  \n", "---\n", "~\n", "null\n", "---\n# later\n"])
      expect(fullProblems(empty), JSON.stringify(empty)).toEqual([
        {
          field: "(file)",
          message: "is empty: it holds no YAML document",
          fix: "write the agent's configuration (docs/agent.md, Configuration reference; kvdeploy-agent --print-schema prints its JSON Schema)",
        },
      ])
    expect(fullProblems("deployments: []\n---\ndeployments: []\n")).toEqual([
      expect.objectContaining({
        field: "(yaml) documents",
        message: "the file holds 2 YAML documents (separated by ---); the agent reads one",
      }),
    ])
    expect(fullProblems("agent:\n  listen: *nope\n")).toEqual([
      {
        field: "(yaml) line 2",
        message: 'unidentified alias "nope"',
        fix: "define the anchor (&name) before the alias (*name) that uses it",
      },
    ])
    expect(fullProblems("agent:\n  concurrency: !!int abc\n")).toEqual([
      expect.objectContaining({ field: "(yaml) line 2", fix: expect.stringMatching(/^remove the tag/) }),
    ])
    expect(fullProblems("? [a]\n: b\n")).toEqual([
      expect.objectContaining({
        message: expect.stringMatching(/complex keys/),
        fix: "write the key as a plain string",
      }),
    ])
    // js-yaml's depth limit: 99 levels load, 100 do not.
    const nested = (levels: number) => `agent:\n  x: ${"[".repeat(levels - 1)}${"]".repeat(levels - 1)}\n`
    expect(fullProblems(nested(99)).map((p) => p.field)).not.toContain("(yaml) line 2")
    expect(fullProblems(nested(100))).toEqual([
      expect.objectContaining({
        message: expect.stringMatching(/maxDepth/),
        fix: "nest values at most 99 levels deep",
      }),
    ])
    expect(fullProblems(`deployments:${deployment("api")}\n    certificate_id: !ref api\n`)).toEqual([
      expect.objectContaining({
        field: "(yaml) line 5",
        message: expect.stringMatching(/unknown .*tag/),
        fix: expect.stringMatching(/^remove the tag/),
      }),
    ])
  })

  it("reads YAML 1.2 core scalars: a date-like name stays a string", () => {
    const r = parseAgentConfig(
      `deployments:${deployment("2026-12-01")}\n`,
      "/etc/kvdeploy/agent.yaml",
      "/etc/kvdeploy",
      {},
    )
    if (r._tag === "Failure") throw new Error(r.failure.message)
    expect(r.success.deployments[0]?.name).toBe("2026-12-01")
  })

  it("accepts an anchored target reused by aliases, and refuses alias bombs", () => {
    const shared = `
shared: &vault { vault_url: "https://kv-prod.vault.azure.net/" }
`
    const ok = parseAgentConfig(
      `deployments:
  - name: a
    source: { cert: a.crt, key: a.key }
    target:
      { vault_url: "https://kv-prod.vault.azure.net/", certificate_name: a, tags: &tags { team: web } }
  - name: b
    source: { cert: b.crt, key: b.key }
    target: { vault_url: "https://kv-prod.vault.azure.net/", certificate_name: b, tags: *tags }
`,
      "/etc/kvdeploy/agent.yaml",
      "/etc/kvdeploy",
      {},
    )
    if (ok._tag === "Failure") throw new Error(ok.failure.message)
    expect(ok.success.deployments.map((d) => [d.target.certificateName, d.target.tags])).toEqual([
      ["a", { team: "web" }],
      ["b", { team: "web" }],
    ])
    // Ten levels of ten aliases each: 100 aliases, 10^10 values once expanded.
    const levels = [`l0: &l0 [${Array(10).fill("x").join(", ")}]`]
    for (let i = 1; i < 10; i++)
      levels.push(
        `l${i}: &l${i} [${Array(10)
          .fill(`*l${i - 1}`)
          .join(", ")}]`,
      )
    // Under `deployments`, where validation would walk every expanded value.
    expect(problemsOf(`${levels.join("\n")}\ndeployments: *l9\n`)).toEqual([
      expect.stringMatching(/^\(yaml\) aliases: expand to more than \d+ values/),
    ])
    // An alias inside the value its anchor names: a cyclic value, refused before validation walks it.
    for (const cyclic of [
      "a: &a [ *a ]\n",
      "a: &a { b: *a }\n",
      "deployments: &d [ *d ]\n",
      `deployments:\n  - &x { name: x, source: { cert: a, key: b }, target: *x }\n`,
    ])
      expect(problemsOf(cyclic), cyclic).toEqual([
        "(yaml) aliases: an alias stands inside the value its anchor names (a value that contains itself)",
      ])
    // More than 20,000 aliases: refused while loading, with the line of the 20,001st.
    const many = Array.from({ length: 20_001 }, (_, i) => `k${i}: *vault`).join("\n")
    expect(fullProblems(`${shared}${many}\n`)).toEqual([
      {
        field: "(yaml) line 20003", // `shared` starts with a blank line; the 20,001st alias is on line 20,003
        message: expect.stringMatching(/alias/i),
        fix: "write the values out, or use at most 20,000 aliases",
      },
    ])
  })

  it("a tag value holding the identity's secret from the environment is refused without being shown", () => {
    const secret = "Zx8Q~abcdefghijklmnop.42"
    const yaml = `deployments:
  - name: api
    source: { cert: api.crt, key: api.key }
    target:
      vault_url: https://kv-prod.vault.azure.net
      certificate_name: api
      credential_mode: client_secret
      tags: { env: production, note: "${secret}" }
`
    const env = { AZURE_TENANT_ID: hostEnv.AZURE_TENANT_ID, AZURE_CLIENT_ID: hostEnv.AZURE_CLIENT_ID }
    const problems = problemsOf(yaml, { ...env, AZURE_CLIENT_SECRET: secret })
    expect(problems).toEqual([
      "deployments[0].target.tags.note: tag value holds the value of AZURE_CLIENT_SECRET (not shown); tags are shown to every reader of the vault's certificate metadata",
    ])
    expect(problems.join("\n")).not.toContain("abcdefghijklmnop")
    // Another secret in the environment: the tag is an ordinary value.
    expect(problemsOf(yaml, { ...env, AZURE_CLIENT_SECRET: "another-secret-value" })).toEqual([])
  })

  it("a fleet of 5,000 deployments sharing one anchored target (an alias and a merge each) is read", () => {
    const fleet = [
      "x-prod: &prod { vault_url: https://kv-prod.vault.azure.net, tags: { env: production, team: web } }",
      "deployments:",
      ...Array.from(
        { length: 5_000 },
        (_, i) =>
          `  - { name: d${i}, source: { cert: d${i}.crt, key: d${i}.key }, target: { <<: *prod, certificate_name: d${i} } }`,
      ),
    ].join("\n")
    const r = parseAgentConfig(`${fleet}\n`, "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", {})
    if (r._tag === "Failure") throw new Error(r.failure.message)
    expect(r.success.deployments).toHaveLength(5_000)
    expect(r.success.deployments[4_999]?.target).toMatchObject({
      certificateName: "d4999",
      tags: { env: "production", team: "web" },
    })
  })

  it("reads merge keys as YAML says: the merged keys, a key beside the merge winning, the same deployments as written out", () => {
    const parsed = (yaml: string) => {
      const r = parseAgentConfig(yaml, "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", {})
      if (r._tag === "Failure") throw new Error(r.failure.message)
      return r.success.deployments.map((d) => ({ name: d.name, target: d.target }))
    }
    const merged = parsed(`deployments:
  - name: api
    source: { cert: api.crt, key: api.key }
    target: &prod
      vault_url: https://kv-prod.vault.azure.net
      certificate_name: api
      tags: { env: production }
  - name: www
    source: { cert: www.crt, key: www.key }
    target:
      <<: *prod
      certificate_name: www
  - name: img
    source: { cert: img.crt, key: img.key }
    target:
      <<: [{ certificate_name: img, credential_mode: managed_identity }, *prod]
`)
    const writtenOut = parsed(`deployments:
  - name: api
    source: { cert: api.crt, key: api.key }
    target: { vault_url: https://kv-prod.vault.azure.net, certificate_name: api, tags: { env: production } }
  - name: www
    source: { cert: www.crt, key: www.key }
    target: { vault_url: https://kv-prod.vault.azure.net, certificate_name: www, tags: { env: production } }
  - name: img
    source: { cert: img.crt, key: img.key }
    target:
      { vault_url: https://kv-prod.vault.azure.net, certificate_name: img, credential_mode: managed_identity, tags: { env: production } }
`)
    expect(merged).toEqual(writtenOut)
    // Anchors kept at the top under x- keys (ignored, as Docker Compose does) give the same.
    expect(
      parsed(`x-prod: &prod { vault_url: https://kv-prod.vault.azure.net, tags: { env: production } }
x-img: &img { certificate_name: img, credential_mode: managed_identity }
deployments:
  - { name: api, source: { cert: api.crt, key: api.key }, target: { <<: *prod, certificate_name: api } }
  - { name: www, source: { cert: www.crt, key: www.key }, target: { <<: *prod, certificate_name: www } }
  - { name: img, source: { cert: img.crt, key: img.key }, target: { <<: [*img, *prod] } }
`),
    ).toEqual(writtenOut)
    // Ignored, but no place for key material (the agent keeps keys out of its configuration): a
    // PEM key, one line from inside it, a DER in base64, as a value or a mapping's key, in YAML or
    // JSON text; refused, and not shown.
    // The line from inside the key is its second (a P-256 key's one whole line after the first, which
    // starts with the DER's "M"), when it reads as encoded bytes: about 985 in 1,000 do (measured; core's
    // shownValues test measures the rule). This test is about where the rule is applied, so a key
    // whose second line does not is drawn again: the first line that read as encoded bytes was taken,
    // and for a key with neither (about 8 in 1,000) the test checked an empty line and failed.
    const { pem, line } = (() => {
      for (let draw = 0; draw < 50; draw++) {
        const pem = generateKeyPairSync("ec", { namedCurve: "P-256" })
          .privateKey.export({ type: "pkcs8", format: "pem" })
          .toString()
        const line = pem.split("\n")[2] ?? ""
        if (line.length === 64 && holdsEncodedBase64(line)) return { pem, line }
      }
      throw new Error("none of 50 keys had a second line that reads as encoded bytes")
    })()
    const der = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ type: "pkcs8", format: "der" })
      .toString("base64")
    for (const value of [pem, line, der]) {
      for (const text of [
        dump({ "x-note": { old: [value] }, deployments: [] }),
        JSON.stringify({ "x-note": { [value.slice(0, 200)]: 1 }, deployments: [] }),
      ]) {
        const found = fullProblems(text)
        expect(found, text).toEqual([
          {
            field: "x-note",
            message: "holds PEM text or the base64 of a key or certificate; it is not shown here",
            fix: "remove it: certificates and keys go in files that a deployment's source names, never in the configuration",
          },
        ])
      }
    }
    expect(
      fullProblems(dump({ "x-note": { text: "a note\nover two lines", n: 2 }, deployments: [] })),
    ).toEqual([])
    // Only at the top: under agent (or anywhere else) an x- key is unknown; an unknown key at the
    // top says where a key of one's own goes, without repeating it.
    expect(fullProblems("agent: { x-mine: 1 }\ndeployments: []\n").map((p) => p.field)).toEqual([
      "agent.x-mine",
    ])
    expect(fullProblems("common: { a: 1 }\ndeployments: []\n")).toEqual([
      {
        field: "common",
        message: "is not a known field",
        fix: "known keys here: agent, deployments; a key of your own here (a place for YAML anchors) must start with x-; see docs/agent.md (configuration reference)",
      },
    ])
    // In a list, the first mapping that has a key gives it (img's name, not prod's).
    expect(merged.map((d) => d.target.certificateName)).toEqual(["api", "www", "img"])
    // A merge of something that is not a mapping, and one key written twice beside a merge.
    expect(fullProblems("a: &a [1]\ndeployments:\n  - <<: *a\n")).toEqual([
      {
        field: "(yaml) line 3",
        message: expect.stringMatching(/cannot merge mappings/),
        fix: "a merge key (<<) takes a mapping, an alias of one (<<: *name) or a list of them (<<: [*a, *b])",
      },
    ])
    expect(problemsOf("a: &a { x: 1 }\ndeployments:\n  - <<: *a\n    name: b\n    name: c\n")).toEqual([
      '(yaml) line 5: duplicated mapping key "name"',
    ])
    // A list of more than 100 mappings to merge.
    const list = Array.from({ length: 101 }, (_, i) => `{ k${i}: 1 }`).join(", ")
    expect(fullProblems(`x: { <<: [ ${list} ] }\n`)).toEqual([
      {
        field: "(yaml) line 1",
        message: "abnormal merge sequence size",
        fix: "merge at most 100 mappings in one list (<<: [*a, *b]), or write the values out",
      },
    ])
    // Merges copy at most 200,000 keys in one file: 1,001 keys merged 200 times are refused.
    const wide = `w: &w { ${Array.from({ length: 1_001 }, (_, i) => `k${i}: ${i}`).join(", ")} }`
    const merges = Array.from({ length: 200 }, (_, i) => `m${i}: { <<: *w }`).join("\n")
    expect(fullProblems(`${wide}\n${merges}\n`)).toEqual([
      {
        field: expect.stringMatching(/^\(yaml\) line \d+$/),
        message: expect.stringMatching(/maxTotalMergeKeys/),
        fix: "write the values out: merge keys (<<) copy at most 200,000 keys in all",
      },
    ])
  })

  // Three deployments with every kind of field: tags with integer-like, capitalised and "_" keys
  // (their order in the canonical JSON), a PFX source, a pickup with defaults, a custom cloud.
  const fingerprinted = {
    deployments: [
      {
        name: "api",
        source: { cert: "api.crt", key: "/etc/ssl/api.key" },
        target: {
          vault_url: "https://kv-prod.vault.azure.net",
          certificate_name: "api",
          tags: { team: "web", "10": "x", "9": "y", Zone: "b", _cost: "c" },
        },
        pickup: { host: "api.example.com" },
      },
      {
        name: "portal",
        source: { pfx: "portal.pfx", pfx_password_env: "PORTAL_PFX_PASSWORD" },
        target: {
          vault_url: "https://kv-prod.vault.azure.net",
          certificate_name: "Portal",
          credential_mode: "managed_identity",
          managed_identity_client_id: "00000000-0000-0000-0000-00000000000a",
          certificate_id: "portal-2026",
          adopt: true,
          on_soft_deleted: "recover",
          pfx_encoding: "legacy",
        },
        pickup: { host: "portal.example.com", port: 8443, servername: "portal" },
      },
      {
        name: "emu",
        source: { cert: "emu.pem" },
        target: {
          vault_url: "https://127.0.0.1:8443",
          certificate_name: "emu",
          credential_mode: "client_secret",
          cloud: {
            vault_dns_suffix: "127.0.0.1",
            authority_host: "https://127.0.0.1:8444",
            keyvault_resource: "https://vault.azure.net",
          },
        },
      },
    ],
  }
  const fingerprintsOf = (text: string) => {
    const r = parseAgentConfig(text, "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", hostEnv)
    if (r._tag === "Failure") throw new Error(r.failure.message)
    return r.success.deployments.map((d) => [d.name, d.fingerprint])
  }

  it("gives a deployment the fingerprint earlier versions wrote to the state file, or knows it as its former one", () => {
    // Written by the agent of commit 30f0c76 for this configuration: a restart after an upgrade
    // must find its deployments' outcomes held, not reconsider all of them. api and portal have a
    // pickup check, which that agent fingerprinted: their fingerprints now leave it out, and the
    // written ones are their former fingerprints (a record carrying one is still theirs).
    const written = [
      ["api", "222b0c82ade7286b3ad59c1e159b6f32d8e4f35dd42fe900e5fdd234410d34fb"],
      ["portal", "9252c2f366d8785eea971c8122a58cc88668f1ac997608253db1ebcdb480f3ec"],
      ["emu", "0216f54a8f4ceb6dff3ae2bfec9c3bca0b595bdce480da25160b10e63d082231"],
    ]
    for (const text of [JSON.stringify(fingerprinted), dump(fingerprinted)]) {
      const r = parseAgentConfig(text, "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", hostEnv)
      if (r._tag === "Failure") throw new Error(r.failure.message)
      expect(r.success.deployments.map((d) => [d.name, d.formerFingerprints?.[0] ?? d.fingerprint])).toEqual(
        written,
      )
      for (const d of r.success.deployments)
        expect(isDeploymentOf(written.find(([n]) => n === d.name)?.[1], d)).toBe(true)
    }
    // emu has no pickup: the very fingerprint it had, and no former one.
    expect(fingerprintsOf(JSON.stringify(fingerprinted))[2]).toEqual(written[2])
  })

  it("leaves a deployment's pickup check out of its fingerprint: adding or changing one is the same deployment", () => {
    const withPickup = (pickup: Record<string, unknown> | undefined) =>
      JSON.stringify({
        deployments: fingerprinted.deployments.map((d) => {
          const { pickup: _dropped, ...rest } = d as typeof d & { pickup?: unknown }
          return pickup === undefined ? rest : { ...rest, pickup }
        }),
      })
    const none = fingerprintsOf(withPickup(undefined))
    // Without pickup: the fingerprints the written ones above are (emu's unchanged by this rule).
    expect(none[2]?.[1]).toBe("0216f54a8f4ceb6dff3ae2bfec9c3bca0b595bdce480da25160b10e63d082231")
    expect(fingerprintsOf(withPickup({ host: "consumer.example.com" }))).toEqual(none)
    expect(
      fingerprintsOf(withPickup({ host: "10.0.0.7", port: 8443, servername: "api.example.com" })),
    ).toEqual(none)
    expect(fingerprintsOf(JSON.stringify(fingerprinted))).toEqual(none)
  })

  it("gives sets of tag keys their own order, whatever characters the keys hold", () => {
    const withTags = (tags: ReadonlyArray<Record<string, string>>) =>
      JSON.stringify({
        deployments: tags.map((t, i) => ({
          name: `d${i}`,
          source: { cert: `d${i}.pem` },
          target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: `d${i}`, tags: t },
        })),
      })
    // A key that joins like two keys first ("p,q" as one key, and as keys "p" and "q" joined with a
    // comma): its set of keys must not stand for ["p", "q"] afterwards (the two deployments after it
    // would be fingerprinted without their tags). A NUL, which the first version of this test used,
    // is refused in tag keys now. d1 and d2 keep the fingerprints recorded before.
    const prints = fingerprintsOf(withTags([{ "p,q": "1" }, { p: "1", q: "2" }, { p: "1", q: "3" }]))
    expect(prints.slice(1)).toEqual([
      ["d1", "59902c826a04887b2462995cd6d320f1066c7221a90a8deaa8078426d215a89b"],
      ["d2", "24ab783579f404df2dee7678bee224f51cc7b796209ceedb99f2671d2b77140e"],
    ])
    expect(prints[0]?.[1]).toMatch(/^[0-9a-f]{64}$/)
    expect(new Set(prints.map((p) => p[1])).size).toBe(3)
    // And a NUL in a tag key is refused, named by its length.
    expect(() => fingerprintsOf(withTags([{ "p\u0000q": "1" }]))).toThrow(/control characters/)
  })

  it("lists each problem once: a target field refused by the schema and by core, a secret-looking source key", () => {
    const problems = problemsOf(`
deployments:
  - name: a
    source: { cert: c.pem, key: k.pem, password: hunter2 }
    target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a, credential_mode: kerberos }
  - name: b
    source: { cert: c.pem }
    target: { vault_url: "https://kv-prod.vault.azure.net" }
`)
    expect(problems).toEqual([
      'deployments[0].target.credential_mode: has an invalid value ("kerberos")',
      "deployments[0].source.password: looks like a secret; the agent never reads secrets from its configuration",
      expect.stringMatching(/^deployments\[1\]\.target\.certificate_name: /),
    ])
    // A deployment without a target: once, not as the schema's "Missing key" and the check's "is missing".
    const noTarget = problemsOf(`
deployments:
  - name: a
    source: { cert: c.pem }
`)
    expect(noTarget).toEqual(["deployments[0].target: is missing"])
  })

  it("refuses certificate or key text where a file path goes, and never repeats it or a key pasted into another field", () => {
    const key =
      "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"
    const problems = fullProblems(
      JSON.stringify({
        agent: { listen: key, state_dir: key },
        deployments: [
          {
            name: "a",
            source: { cert: "c.pem", key },
            target: {
              vault_url: "https://kv-prod.vault.azure.net",
              certificate_name: "a",
              on_soft_deleted: key,
            },
          },
          {
            name: "b",
            source: { pfx: key },
            // The certctl-certificate-id tag value: every reader of the vault's metadata sees it.
            target: {
              vault_url: "https://kv-prod.vault.azure.net",
              certificate_name: "b",
              certificate_id: key,
            },
          },
        ],
      }),
    )
    const fields = problems.map((p) => p.field)
    expect(fields).toEqual(
      expect.arrayContaining([
        "agent.listen",
        "agent.state_dir",
        "deployments[0].source.key",
        "deployments[0].target.on_soft_deleted",
        "deployments[1].source.pfx",
        "deployments[1].target.certificate_id",
      ]),
    )
    expect(problems.find((p) => p.field === "deployments[0].source.key")?.message).toMatch(
      /instead of a file path/,
    )
    expect(JSON.stringify(problems)).not.toContain("MIGHAgEA")
    // As a key (a tag's that is too long, an unknown one) or a pickup host, it is named by its length.
    const asKeys = fullProblems(
      JSON.stringify({
        deployments: [
          {
            name: "k",
            source: { cert: "c.pem" },
            target: {
              vault_url: "https://kv-prod.vault.azure.net",
              certificate_name: "k",
              tags: { [key.repeat(3)]: "x" },
            },
            pickup: { host: key },
            [key]: 1,
          },
        ],
      }),
    )
    expect(asKeys.map((p) => p.field)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^deployments\[0\]\.target\.tags\.\(a key of \d+ characters, not shown\)$/),
        "deployments[0].pickup.host",
        expect.stringMatching(/^deployments\[0\]\.\(a key of \d+ characters, not shown\)$/),
      ]),
    )
    expect(JSON.stringify(asKeys)).not.toContain("MIGHAgEA")
  })

  it("refuses lines from inside a PEM key (not its first) as a tag value, a tag key or a certificate id, and names a field that is one by its length", () => {
    const body = generateKeyPairSync("rsa", { modulusLength: 2048 })
      .privateKey.export({ format: "der", type: "pkcs8" })
      .toString("base64")
    // Lines 2-4 of the PEM body (192 characters) and line 5 alone: none starts with the DER's "M".
    const lines = body.slice(64, 256)
    // One whole line from after them that reads as encoded bytes (about 997 in 1,000 do; core's
    // shownValues test measures the rule): this test is about where the rule is applied.
    const line = (body.slice(256).match(/.{64}/g) ?? []).find((l) => holdsEncodedBase64(l)) ?? ""
    const problems = fullProblems(
      JSON.stringify({
        deployments: [
          {
            name: "t",
            source: { cert: "c.pem" },
            target: {
              vault_url: "https://kv-prod.vault.azure.net",
              certificate_name: "t",
              certificate_id: lines,
              tags: { note: lines, [lines]: "x" },
            },
            [line]: 1,
          },
        ],
      }),
    )
    expect(problems.map((p) => p.field)).toEqual(
      expect.arrayContaining([
        "deployments[0].target.certificate_id",
        "deployments[0].target.tags.note",
        "deployments[0].target.tags.(a key of 192 characters, not shown)",
        "deployments[0].(a key of 64 characters, not shown)",
      ]),
    )
    const text = JSON.stringify(problems)
    for (let at = 64; at + 40 <= 256; at += 8) expect(text).not.toContain(body.slice(at, at + 40))
    expect(text).not.toContain(line.slice(0, 40))
  })

  it("refuses a key's base64 (no PEM lines, whole or cut short) where a file path goes, and a hex scalar in a field, never repeating them", () => {
    const der = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
      format: "der",
      type: "pkcs8",
    })
    const b64 = der.toString("base64")
    const scalarHex = der.subarray(-32).toString("hex")
    const problems = fullProblems(
      JSON.stringify({
        deployments: [
          {
            name: "a",
            source: { cert: "c.pem", key: b64 },
            target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: "a" },
          },
          {
            name: "b",
            source: { cert: b64.slice(0, 120) },
            target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: "b" },
            pickup: { servername: scalarHex },
          },
        ],
      }),
    )
    expect(problems.map((p) => p.field)).toEqual(
      expect.arrayContaining([
        "deployments[0].source.key",
        "deployments[1].source.cert",
        "deployments[1].pickup.servername",
      ]),
    )
    expect(problems.find((p) => p.field === "deployments[0].source.key")?.message).toMatch(
      /instead of a file path/,
    )
    const shown = JSON.stringify(problems)
    expect(shown).not.toContain(b64.slice(40, 80))
    expect(shown).not.toContain(scalarHex.slice(0, 40))
    // A path not written yet, with CamelCase and digits, is a path (sources may appear after the start).
    const later = fullProblems(
      JSON.stringify({
        deployments: [
          {
            name: "c",
            source: {
              cert: "/srv/Certs2024/WebApp1/Prod02/Api3V2/tls.crt",
              key: "/srv/releases/4b825dc642cb6eb9a060e54bf8d69288fbee4904/tls.key",
            },
            target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: "c" },
          },
        ],
      }),
    )
    expect(later).toEqual([])
  })

  it("without state_dir, the state directory is systemd's StateDirectory= (STATE_DIRECTORY), else next to the file", () => {
    const yaml = `
deployments:
  - { name: a, source: { cert: c.pem }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }
`
    const stateDirWith = (env: Record<string, string>, text = yaml) => {
      const r = parseAgentConfig(text, "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", env)
      if (r._tag === "Failure") throw new Error(r.failure.message)
      return r.success.settings.stateDir
    }
    expect(stateDirWith({ STATE_DIRECTORY: "/var/lib/kvdeploy-agent:/var/lib/other" })).toBe(
      "/var/lib/kvdeploy-agent",
    )
    expect(stateDirWith({})).toBe("/etc/kvdeploy/kvdeploy-agent-state")
    expect(
      stateDirWith(
        { STATE_DIRECTORY: "/var/lib/kvdeploy-agent" },
        `agent: { state_dir: /srv/state }\n${yaml}`,
      ),
    ).toBe("/srv/state")
  })

  it("refuses an empty or blank state_dir as an empty path (it named the file's directory, or a directory of spaces)", () => {
    const yaml = `
deployments:
  - { name: a, source: { cert: c.pem }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }
`
    for (const stateDir of ['""', '"   "', '"\\t"'])
      expect(problemsOf(`agent: { state_dir: ${stateDir} }\n${yaml}`), stateDir).toEqual([
        "agent.state_dir: is an empty path",
      ])
    const r = parseAgentConfig(
      `agent: { state_dir: "" }\n${yaml}`,
      "/etc/kvdeploy/agent.yaml",
      "/etc/kvdeploy",
      {},
    )
    if (r._tag === "Success") throw new Error("an empty state_dir was taken")
    expect(r.failure.problems[0]?.fix).toContain("leave state_dir out for the default")
    // The default is not judged in its place.
    expect(r.failure.checkable?.stateDir).toBeUndefined()
  })

  it("a deployment without a source says so as one without a target does, and names the files to give", () => {
    const r = parseAgentConfig(
      `deployments:
  - { name: a, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }
`,
      "/etc/kvdeploy/agent.yaml",
      "/etc/kvdeploy",
      {},
    )
    expect(r._tag === "Failure" ? r.failure.problems : []).toEqual([
      {
        field: "deployments[0].source",
        message: "is missing",
        fix: expect.stringMatching(
          /^give the certificate's files: cert and key .*, or pfx and pfx_password_env/,
        ),
      },
    ])
  })

  it("a reload's changed settings are named by their keys under agent: (the warning said only that some changed)", () => {
    const settingsOf = (agent: string) => {
      const r = parseAgentConfig(
        `agent: ${agent}
deployments:
  - { name: a, source: { cert: c.pem }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }
`,
        "/etc/kvdeploy/agent.yaml",
        "/etc/kvdeploy",
        {},
      )
      if (r._tag === "Failure") throw new Error(r.failure.message)
      return r.success.settings
    }
    const before = settingsOf("{ listen: '127.0.0.1:9464', concurrency: 4 }")
    expect(changedSettings(before, settingsOf("{ listen: '127.0.0.1:9464', concurrency: 4 }"))).toEqual([])
    expect(
      changedSettings(
        before,
        settingsOf("{ listen: '0.0.0.0:9470', concurrency: 4, backoff_max_seconds: 900, state_dir: /srv/s }"),
      ),
    ).toEqual(["agent.listen", "agent.state_dir", "agent.backoff_max_seconds"])
  })

  it("names the variables a credential mode in use needs that the agent's environment lacks, once per mode", () => {
    const target = (n: number, mode: string) =>
      `{ vault_url: "https://kv-prod.vault.azure.net", certificate_name: c${n}, credential_mode: ${mode} }`
    const yaml = `
deployments:
  - { name: a, source: { cert: c.pem }, target: ${target(1, "managed_identity")} }
  - { name: b, source: { cert: c.pem }, target: ${target(2, "client_secret")} }
  - { name: c, source: { cert: c.pem }, target: ${target(3, "client_secret")} }
  - { name: d, source: { cert: c.pem }, target: ${target(4, "workload_identity")} }
`
    // Not problems of the configuration (the agent runs the deployments it can), but of the environment.
    const environmentOf = (env: Record<string, string>) => {
      const r = parseAgentConfig(yaml, "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", env)
      if (r._tag === "Failure") throw new Error(r.failure.message)
      return (r.success.environmentProblems ?? []).map((p) => `${p.field}: ${p.message}`)
    }
    const ids = { AZURE_TENANT_ID: "t", AZURE_CLIENT_ID: "00000000-0000-0000-0000-00000000000c" }
    // Spaces alone count as unset, and are said so: `env` shows the variable as set.
    expect(environmentOf({ ...ids, AZURE_CLIENT_SECRET: "  " })).toEqual([
      "deployments[1].target.credential_mode: client_secret (used by 2 deployments) needs AZURE_CLIENT_SECRET, set to spaces or line breaks only in the agent's environment",
      "deployments[3].target.credential_mode: workload_identity (used by 1 deployment) needs AZURE_FEDERATED_TOKEN_FILE, not set in the agent's environment",
    ])
    expect(environmentOf({ ...ids, AZURE_CLIENT_SECRET: "" })[0]).toBe(
      "deployments[1].target.credential_mode: client_secret (used by 2 deployments) needs AZURE_CLIENT_SECRET, set but empty in the agent's environment",
    )
    expect(environmentOf({ AZURE_TENANT_ID: "\n", AZURE_FEDERATED_TOKEN_FILE: "/t" })[0]).toBe(
      "deployments[1].target.credential_mode: client_secret (used by 2 deployments) needs AZURE_TENANT_ID (set to spaces or line breaks only), AZURE_CLIENT_ID (not set), AZURE_CLIENT_SECRET (not set) in the agent's environment",
    )
    expect(environmentOf(hostEnv)).toEqual([])
    // A value the credential would refuse is a problem too, named, never quoted; one shared by every
    // mode (the proxy the SDKs use) is named once.
    const pasted = "Zx8Q~a-client-secret-pasted-into-the-client-id"
    const malformed = environmentOf({ ...hostEnv, AZURE_CLIENT_ID: pasted, HTTPS_PROXY: "10.0.0.9:3128" })
    expect(malformed).toEqual([
      "deployments[0].target.credential_mode: every credential mode in use cannot work: HTTPS_PROXY is not a proxy URL (its value is not shown)",
      `deployments[1].target.credential_mode: client_secret (2 deployments) and workload_identity (1 deployment) cannot work: AZURE_CLIENT_ID is not a client id (a GUID); its value (${pasted.length} characters) is not shown`,
    ])
    expect(malformed.join("\n")).not.toContain(pasted)
    // Listed with the configuration's problems when there are some.
    expect(
      problemsOf(`${yaml}  - { name: e, source: { cert: c.pem }, target: { certificate_name: e } }\n`, {}),
    ).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^deployments\[1\]\.target\.credential_mode: client_secret/),
      ]),
    )
  })

  it("names the deployment of an environment problem by its place in the file, invalid deployments before it counted", () => {
    const problems = problemsOf(`
deployments:
  - { name: broken, source: { cert: c.pem }, target: { certificate_name: b } }
  - { name: s, source: { cert: c.pem }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: s, credential_mode: client_secret } }
`)
    expect(problems).toContain(
      "deployments[1].target.credential_mode: client_secret (used by 1 deployment) needs AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, not set in the agent's environment",
    )
  })

  it("takes a DNS name or an IP address as a pickup host, and says what is wrong with anything else", () => {
    const pickupProblems = (host: string) =>
      fullProblems(
        JSON.stringify({
          deployments: [
            {
              name: "p",
              source: { cert: "c.pem" },
              target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: "p" },
              pickup: { host },
            },
          ],
        }),
      ).filter((p) => p.field === "deployments[0].pickup.host")
    for (const good of [
      "api.example.com",
      "api.example.com.",
      "10.0.0.4",
      "::1",
      "fe80::1%eth0",
      "gw_1.internal",
    ])
      expect(pickupProblems(good), good).toEqual([])
    expect(pickupProblems("[::1]")[0]?.message).toMatch(/IPv6 address in brackets/)
    expect(pickupProblems("api.example.com:443")[0]?.fix).toMatch(/port in pickup\.port/)
    expect(pickupProblems("bücher.example")[0]?.fix).toBe("write its ASCII form: xn--bcher-kva.example")
    expect(pickupProblems("not a host")[0]?.message).toMatch(/is not a DNS name or an IP address/)
    // Neither an address nor a name: a last label of digits, a zone on an IPv4 address.
    for (const bad of ["1.2.3.256", "127.1", "123", "1.2.3.4%eth0"])
      expect(pickupProblems(bad)[0]?.message, bad).toMatch(/is not a DNS name or an IP address/)
  })

  it("names the key an unknown key is likely a typo of, and the keys known there", () => {
    const problems = fullProblems(`
agent: { concurrancy: 4, colour: blue }
deployments:
  - name: a
    soucre: { cert: c.pem }
    target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a }
`)
    const fixOf = (field: string) => problems.find((p) => p.field === field)?.fix
    expect(fixOf("agent.concurrancy")).toMatch(/^did you mean concurrency\? known keys here: .*concurrency/)
    expect(fixOf("agent.colour")).toMatch(/^known keys here: /)
    expect(fixOf("deployments[0].soucre")).toMatch(
      /^did you mean source\? known keys here: name, source, target, pickup/,
    )
  })

  it("suggests the field a misspelt one was meant to be, among every field valid there (adopt, certificate_id, owner, cloud.name)", () => {
    const problems = fullProblems(
      dump({
        deployments: [
          {
            name: "t",
            source: { cert: "a.crt", ownr: "root" },
            target: {
              vault_url: "https://kv-prod.vault.azure.net",
              certificate_name: "t",
              adpot: true,
              certificate_ide: "x",
              cloud: { nmae: "x", vault_dns_suffix: "vault.azure.net" },
            },
          },
          {
            name: "p",
            source: { pfx: "a.pfx", pfx_pasword_env: "PW" },
            target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: "p" },
          },
        ],
      }),
    )
    const fixOf = (field: string) => problems.find((p) => p.field === field)?.fix ?? `no problem at ${field}`
    expect(fixOf("deployments[0].source.ownr")).toMatch(
      /^did you mean owner\? a PEM source has cert, chain, key \(and owner, of either form\)/,
    )
    expect(fixOf("deployments[1].source.pfx_pasword_env")).toMatch(
      /^did you mean pfx_password_env\? a PFX source has pfx, pfx_password_env/,
    )
    expect(fixOf("deployments[0].target.adpot")).toMatch(/^did you mean adopt\? /)
    expect(fixOf("deployments[0].target.certificate_ide")).toMatch(/^did you mean certificate_id\? /)
    expect(fixOf("deployments[0].target.adpot")).toContain(
      "(and, in an agent deployment's target, certificate_id and adopt)",
    )
    expect(fixOf("deployments[0].target.cloud.nmae")).toBe(
      "did you mean name? use vault_dns_suffix, authority_host, keyvault_resource, name",
    )
  })

  it("judges a source against the one form it is written in", () => {
    const sources = [
      { cert: "a.crt", chian: "c.crt" },
      { cert: "a.crt", pfx: "a.pfx" },
      { cert: "a.crt", pfx_password_env: "PW" },
      {},
      { pfx: "a.pfx", pfx_password_env: "1bad" },
    ]
    const problems = fullProblems(
      dump({
        deployments: sources.map((source, i) => ({
          name: `d${i}`,
          source,
          target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: `d${i}` },
        })),
      }),
    )
    const both = "give either a PEM source (cert, chain, key) or a PFX source (pfx, pfx_password_env)"
    expect(problems).toEqual([
      {
        field: "deployments[0].source.chian",
        message: "is not a known field",
        fix: "did you mean chain? a PEM source has cert, chain, key (and owner, of either form); see docs/agent.md (configuration reference)",
      },
      {
        field: "deployments[2].source",
        message: "mixes the keys of a PEM source and a PFX source",
        fix: both,
      },
      { field: "deployments[3].source.cert", message: "is missing", fix: both },
      {
        field: "deployments[4].source.pfx_password_env",
        message: "is not of the form this field takes (see the fix)",
        fix: "Name of the environment variable that holds the PFX password (never the password itself); see docs/agent.md (configuration reference)",
      },
      // A pfx named with PEM files: the deployment check's own words, once.
      {
        field: "deployments[1].source",
        message: "names both a PFX and PEM files",
        fix: "give either pfx or cert/chain/key",
      },
    ])
  })

  it("gives keys the collation calls equal one order, whatever their order in the file", () => {
    // A composed and a decomposed "ä": equal to the collation, different keys to Key Vault.
    const withTags = (tags: Record<string, string>) =>
      JSON.stringify({
        deployments: [
          {
            name: "d0",
            source: { cert: "d0.pem" },
            target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: "d0", tags },
          },
        ],
      })
    expect(fingerprintsOf(withTags({ "\u00e4": "1", "a\u0308": "2" }))).toEqual(
      fingerprintsOf(withTags({ "a\u0308": "2", "\u00e4": "1" })),
    )
  })

  it("reads a configuration written as JSON as it reads the same configuration in YAML", () => {
    const settings = {
      listen: "[::1]:9100",
      concurrency: 8,
      reconcile_interval_seconds: 1.5e2,
      debounce_ms: 0,
      vault_window_seconds: 0.5e1,
    }
    const doc = { agent: settings, ...fingerprinted }
    const read = (text: string) =>
      parseAgentConfig(text, "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", hostEnv)
    const fromYaml = read(dump(doc))
    if (fromYaml._tag === "Failure") throw new Error(fromYaml.failure.message)
    for (const json of [
      JSON.stringify(doc),
      JSON.stringify(doc, null, 2),
      JSON.stringify(doc, null, 2).replaceAll("\n", "\r\n"),
    ])
      expect(read(json)).toEqual(fromYaml)
    // What JSON.parse would read otherwise is read (and refused) as YAML reads it.
    const yamlProblems = (value: string) => fullProblems(`agent: {vault_window_seconds: ${value}}\n`)
    expect(fullProblems(`{"agent": {"vault_window_seconds": 1e400}}`)).toEqual(yamlProblems("1e400"))
    const deep = (levels: number) => `{"agent": {"x": ${"[".repeat(levels)}${"]".repeat(levels)}}}`
    expect(fullProblems(deep(120))).toEqual([
      expect.objectContaining({
        message: expect.stringMatching(/maxDepth/),
        fix: "nest values at most 99 levels deep",
      }),
    ])
    expect(fullProblems(deep(60))).toEqual(fullProblems(`agent: {x: ${"[".repeat(60)}${"]".repeat(60)}}\n`))
  })

  it("refuses a key given twice anywhere in a JSON configuration, with its line", () => {
    const many = Array.from({ length: 40 }, (_, i) => ({
      name: `c${i}`,
      source: { cert: `c${i}.crt`, key: `c${i}.key` },
      target: {
        vault_url: "https://kv-prod.vault.azure.net",
        certificate_name: `c${i}`,
        tags: { team: "web" },
      },
    }))
    const text = JSON.stringify({ deployments: many }, null, 1)
    // A tag, a target field and a deployment name given twice, deep in the file.
    for (const [from, to, key] of [
      ['"team": "web"', '"team": "web", "team": "ops"', "team"],
      [
        '"certificate_name": "c27"',
        '"certificate_name": "c27", "certificate_name": "c28"',
        "certificate_name",
      ],
      ['"name": "c31"', '"name": "c31",\n "name": "x"', "name"],
    ] as const) {
      const problems = fullProblems(text.replace(from, to))
      expect(problems, to).toEqual([
        expect.objectContaining({
          field: expect.stringMatching(/^\(yaml\) line \d+$/),
          message: `duplicated mapping key "${key}"`,
        }),
      ])
    }
    // A colon or an escaped quote inside a string is not a key.
    const tricky = structuredClone(many)
    if (tricky[3] !== undefined) tricky[3].target.tags = { team: 'a: "b", "c": d' }
    expect(fullProblems(JSON.stringify({ deployments: tricky }))).toEqual([])
  })

  it("lists an unknown key of one deployment among many valid ones", () => {
    const many = Array.from({ length: 50 }, (_, i) => ({
      name: `c${i}`,
      source: { cert: `c${i}.crt`, key: `c${i}.key` },
      target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: `c${i}` },
      pickup: { host: `c${i}.example.com` },
    }))
    const withExtra = structuredClone(many) as Array<Record<string, unknown>>
    ;(withExtra[37]?.pickup as Record<string, unknown>).sni = "x"
    ;(withExtra[41]?.source as Record<string, unknown>).chian = "typo.crt"
    expect(
      fullProblems(JSON.stringify({ deployments: withExtra })).map((p) => `${p.field}: ${p.message}`),
    ).toEqual([
      "deployments[37].pickup.sni: is not a known field",
      // Judged as the PEM source it is written as, not also as a PFX source missing its pfx.
      "deployments[41].source.chian: is not a known field",
    ])
    expect(fullProblems(dump({ agent: { concurency: 4 }, deployments: many })).map((p) => p.field)).toEqual([
      "agent.concurency",
    ])
  })

  it("gives a value the schema refuses the field's own description as its fix", () => {
    const problems = fullProblems(
      dump({
        agent: { concurrency: 0, debounce_ms: -5, recover_timeout_seconds: 0 },
        deployments: [
          {
            name: "api",
            source: { cert: "api.crt", key: "api.key" },
            target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: "api" },
            pickup: { host: "api.example.com", port: 0 },
          },
        ],
      }),
    )
    const fixOf = (field: string) => problems.find((p) => p.field === field)?.fix
    expect(fixOf("agent.concurrency")).toBe(
      "Deployments reconciled at once, across all vaults (default 32); see docs/agent.md (configuration reference)",
    )
    expect(fixOf("agent.debounce_ms")).toBe(
      "Quiet time after a file change before reconciling (default 500); see docs/agent.md (configuration reference)",
    )
    expect(fixOf("agent.recover_timeout_seconds")).toBe(
      "How long a deployment with on_soft_deleted: recover waits for Key Vault to serve the recovered certificate (default 300); see docs/agent.md (configuration reference)",
    )
    // Through the deployments array and into the pickup.
    expect(fixOf("deployments[0].pickup.port")).toBe(
      "TCP port (default 443); see docs/agent.md (configuration reference)",
    )
    // An unknown key has no description: the key it is likely a typo of, and the keys known there.
    expect(fullProblems(dump({ agent: { concurency: 4 }, deployments: [] }))).toEqual([
      expect.objectContaining({
        field: "agent.concurency",
        fix: expect.stringMatching(/^did you mean concurrency\? known keys here: /),
      }),
    ])
  })

  it("checks settings against each other whatever else the file gets wrong, never with a setting it refused", () => {
    const deployment = (name: string) =>
      `{ name: "${name}", source: { cert: c.pem }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: api } }`
    const backoff = {
      field: "agent.backoff_max_seconds",
      message: "is 10, smaller than backoff_base_seconds (600)",
      fix: "make it at least backoff_base_seconds",
    }
    // Another setting refused: both problems in one run (the backoff one showed once the other was fixed).
    expect(
      fullProblems(`
agent: { backoff_base_seconds: 600, backoff_max_seconds: 10, shutdown_grace_seconds: 0 }
deployments: [${deployment("api")}]
`),
    ).toEqual([expect.objectContaining({ field: "agent.shutdown_grace_seconds" }), backoff])
    // A deployment's name refused: the same.
    expect(
      fullProblems(`
agent: { backoff_base_seconds: 600, backoff_max_seconds: 10 }
deployments: [${deployment("bad name!")}]
`),
    ).toEqual([expect.objectContaining({ field: "deployments[0].name" }), backoff])
    // A default takes the place of a setting left out, as in a valid file.
    expect(
      fullProblems(`
agent: { backoff_max_seconds: 1, concurrency: 0 }
deployments: [${deployment("api")}]
`).map((p) => `${p.field}: ${p.message}`),
    ).toEqual([
      "agent.concurrency: Expected a value greater than or equal to 1",
      "agent.backoff_max_seconds: is 1, smaller than backoff_base_seconds (2, its default)",
    ])
    // A setting refused itself is not compared (with its default or anything else): its own problem is the one.
    for (const agent of [
      "{ backoff_base_seconds: soon, backoff_max_seconds: 1 }",
      "{ backoff_base_seconds: 600, backoff_max_seconds: -1 }",
      "{ backoff_base_seconds: 600, backoff_max_seconds: ~ }",
    ])
      expect(
        fullProblems(`agent: ${agent}\ndeployments: [${deployment("api")}]\n`).map((p) => p.field),
        agent,
      ).toEqual([agent.includes("soon") ? "agent.backoff_base_seconds" : "agent.backoff_max_seconds"])
  })

  it("finds a target's certificate deployed twice and its credential mode's missing variables whatever else the target gets wrong", () => {
    const problems = problemsOf(`
deployments:
  - { name: a, source: { cert: a.pem }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: api } }
  - name: b
    source: { cert: b.pem }
    target:
      vault_url: "https://kv-prod.vault.azure.net"
      certificate_name: API
      credential_mode: client_secret
      tags: { owner: 7 }
  # Nothing to compare: its vault_url is refused.
  - { name: c, source: { cert: c.pem }, target: { vault_url: "http://kv-prod.vault.azure.net", certificate_name: api } }
  # Nor here: its credential_mode is refused.
  - { name: d, source: { cert: d.pem }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: d, credential_mode: secret_client } }
`)
    expect(problems).toEqual([
      "deployments[1].target.tags.owner: tag value is not a string",
      "deployments[1].target: deploys to the same certificate as deployments[0] (https://kv-prod.vault.azure.net/api)",
      "deployments[2].target.vault_url: uses http; Key Vault is served over https only",
      expect.stringMatching(/^deployments\[3\]\.target\.credential_mode: /),
      "deployments[1].target.credential_mode: client_secret (used by 1 deployment) needs AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, not set in the agent's environment",
    ])
  })

  it("refuses a reconcile interval or a request timeout that can only be a mistake, saying why", () => {
    const settings = (agent: Record<string, unknown>) =>
      fullProblems(
        dump({
          agent,
          deployments: [
            {
              name: "api",
              source: { cert: "api.crt" },
              target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: "api" },
            },
          ],
        }),
      )
    const interval = {
      field: "agent.reconcile_interval_seconds",
      message:
        "is 0.001: a full pass reads every deployment from its vault, and passes less than a second apart run back to back without end (a file change is picked up at once, without a pass)",
      fix: "give the seconds between full passes, at least 1 (default 300)",
    }
    const timeoutFix = "give the seconds a request to Key Vault may take, from 1 to 2147483 (default 30)"
    expect(settings({ reconcile_interval_seconds: 0.001, request_timeout_seconds: 0.001 })).toEqual([
      interval,
      {
        field: "agent.request_timeout_seconds",
        message:
          "is 0.001: shorter than Key Vault takes to answer an import (about 0.5 s at its usual latency): imports that would succeed time out, and each costs a reconcile",
        fix: timeoutFix,
      },
    ])
    // Retries a microsecond apart: over a thousand log lines a second for a source not valid yet.
    expect(settings({ backoff_base_seconds: 0.000001, backoff_max_seconds: 0.000001 })).toEqual([
      {
        field: "agent.backoff_base_seconds",
        message:
          "is 0.000001: a deployment that fails (a source not valid yet, a vault that refuses it) would be retried many times a second at first, each retry a log line and a request to the vault",
        fix: "give the first retry delay in seconds, at least 0.1 (default 2)",
      },
      {
        field: "agent.backoff_max_seconds",
        message:
          "is 0.000001: a deployment that keeps failing would be retried many times a second, each retry a log line and a request to the vault",
        fix: "give the largest retry delay in seconds, at least 1 and at least backoff_base_seconds (default 300)",
      },
    ])
    // The least each takes (the tests' agents retry 0.2 s apart at first).
    expect(settings({ backoff_base_seconds: 0.1, backoff_max_seconds: 1 })).toEqual([])
    // Past what a timer holds, Node fires it at once: every token request would time out.
    expect(settings({ request_timeout_seconds: 3_000_000 })).toEqual([
      {
        field: "agent.request_timeout_seconds",
        message:
          "is 3000000: longer than a timer can hold (2147483 s, about 24.8 days): every token request would time out at once",
        fix: timeoutFix,
      },
    ])
    // One problem for a number that is no finite one; a value of another type gets the schema's words.
    expect(fullProblems("agent: { request_timeout_seconds: -.inf }\ndeployments: []\n")).toEqual([
      {
        field: "agent.request_timeout_seconds",
        message: "is -Infinity: not a finite number",
        fix: timeoutFix,
      },
    ])
    expect(settings({ reconcile_interval_seconds: "5m" })).toEqual([
      {
        field: "agent.reconcile_interval_seconds",
        message: "Expected number",
        fix: "Seconds between full reconcile passes, at least 1 (default 300); see docs/agent.md (configuration reference)",
      },
    ])
    // The bounds themselves are fine; budgets above Key Vault's own stay accepted (the emulator, a raised limit).
    expect(
      settings({
        reconcile_interval_seconds: 1,
        request_timeout_seconds: 2_147_483,
        vault_imports_per_window: 1_000_000,
        vault_reads_per_window: 1_000_000,
      }),
    ).toEqual([])
  })

  it("takes the source's owner as a uid or a user name the host knows, and names the field when it cannot", () => {
    const yaml = (owner: string) => `
deployments:
  - name: acme
    source: { cert: /home/acme/cert.pem, key: /home/acme/key.pem, owner: ${owner} }
    target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: acme }
  - name: pfx
    source: { pfx: /home/acme/p.pfx, owner: 4242 }
    target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: pfx }
`
    const parsed = (owner: string) => {
      const r = parseAgentConfig(yaml(owner), "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", {})
      if (r._tag === "Failure") throw new Error(r.failure.message)
      return r.success.deployments
    }
    // A name is looked up with the host's name service (getent passwd: nobody is 65534 on Debian).
    const byName = parsed("nobody")
    expect(byName.map((d) => d.source.owner)).toEqual([65534, 4242])
    const byUid = parsed("65534")
    expect(byUid[0]?.source.owner).toBe(65534)
    expect(byUid[0]?.fingerprint).toBe(byName[0]?.fingerprint)
    // A uid written as text (quoted) is the same uid: no user name is all digits.
    const quoted = parsed('"65534"')
    expect(quoted[0]?.source.owner).toBe(65534)
    expect(quoted[0]?.fingerprint).toBe(byUid[0]?.fingerprint)
    // The owner is part of the deployment: naming another one reconsiders its held outcomes.
    expect(parsed("4243")[0]?.fingerprint).not.toBe(byUid[0]?.fingerprint)
    expect(problemsOf(yaml("kvdeploy-no-such-user"))).toEqual([
      "deployments[0].source.owner: names the user kvdeploy-no-such-user, unknown on this host (getent passwd kvdeploy-no-such-user finds none)",
    ])
    expect(problemsOf(yaml("-1"))).toEqual([expect.stringMatching(/^deployments\[0\]\.source\.owner: /)])
    expect(problemsOf(yaml('"no such name!"'))).toEqual([
      expect.stringMatching(/^deployments\[0\]\.source\.owner: /),
    ])
    // Where names cannot be looked up, the fix is the uid.
    const r = validateAgentConfig(
      {
        deployments: [
          {
            name: "acme",
            source: { cert: "/home/acme/cert.pem", owner: "acme" },
            target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: "acme" },
          },
        ],
      },
      "/etc/kvdeploy/agent.yaml",
      "/etc/kvdeploy",
      {},
      () => "unavailable",
    )
    expect(r._tag === "Failure" ? r.failure.problems : []).toEqual([
      {
        field: "deployments[0].source.owner",
        message: "names the user acme, but user names cannot be looked up here (getent passwd failed)",
        fix: "give the user's uid (a number) instead of its name",
      },
    ])
  })
  it("a (re)load looks user names up off the event loop, once per name, while the agent's loop runs on", async () => {
    // A getent that answers only after the test has seen the event loop run while it waits (a slow
    // LDAP or SSSD server); it logs each call and marks its start and end.
    const dir = mkdtempSync(join(tmpdir(), "kvdeploy-getent-"))
    const mark = (name: string) => join(dir, name)
    writeFileSync(
      mark("getent"),
      `#!/bin/sh
echo "$2" >> ${mark("calls")}
touch ${mark("started")}
while [ ! -e ${mark("release")} ]; do sleep 0.02; done
touch ${mark("ended")}
[ "$2" = acme ] && { echo "acme:x:4242:4242::/home/acme:/bin/sh"; exit 0; }
exit 2
`,
    )
    chmodSync(mark("getent"), 0o755)
    const config = mark("agent.yaml")
    const deployment = (name: string, owner: string) => ({
      name,
      source: { cert: `/home/acme/${name}.pem`, key: `/home/acme/${name}.key`, owner },
      target: { vault_url: "https://my-vault.vault.azure.net", certificate_name: name },
    })
    writeFileSync(config, dump({ deployments: [deployment("a", "acme"), deployment("b", "acme")] }))
    const restoreEnv = changeProcessEnv({ PATH: `${dir}:${process.env.PATH}` })
    try {
      let sawLoopDuringLookup = false
      const watch = setInterval(() => {
        if (existsSync(mark("started")) && !existsSync(mark("ended"))) {
          sawLoopDuringLookup = true
          writeFileSync(mark("release"), "")
        }
      }, 10)
      const loaded = await Effect.runPromise(loadAgentConfig(config)).finally(() => clearInterval(watch))
      expect(sawLoopDuringLookup).toBe(true)
      expect(loaded.deployments.map((d) => d.source.owner)).toEqual([4242, 4242])
      expect(readFileSync(mark("calls"), "utf8")).toBe("acme\n")
      // A name the name service does not know: the field is named, as with the synchronous lookup.
      writeFileSync(config, dump({ deployments: [deployment("a", "nosuchuser")] }))
      const refused = await Effect.runPromise(Effect.flip(loadAgentConfig(config)))
      expect(refused.problems.map((p) => `${p.field}: ${p.message}`)).toEqual([
        "deployments[0].source.owner: names the user nosuchuser, unknown on this host (getent passwd nosuchuser finds none)",
      ])
    } finally {
      restoreEnv()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("publishes the JSON Schema generated from the Effect Schema", () => {
    const published = JSON.parse(
      readFileSync(join(agentRoot, "schema", "agent-config.schema.json"), "utf8"),
    ) as unknown
    expect(published, "run `pnpm --filter @kvdeploy/agent schema` to regenerate").toEqual(jsonSchema())
    // Editors that read it accept the top-level x- keys the agent ignores, and nothing else unknown there.
    expect(jsonSchema()).toMatchObject({ patternProperties: { "^x-": {} }, additionalProperties: false })
  })

  it("publishes the patterns the agent checks (deployment name, pfx_password_env, source.owner), so an editor refuses what the agent refuses", () => {
    // Each property's patterns, wherever it sits in the schema (a source is PEM or PFX; owner a name or a number).
    const patterns = new Map<string, Set<string>>()
    const walk = (node: unknown, property: string | undefined): void => {
      if (Array.isArray(node)) for (const item of node) walk(item, property)
      else if (typeof node === "object" && node !== null) {
        const record = node as Record<string, unknown>
        if (property !== undefined && typeof record.pattern === "string")
          patterns.set(property, (patterns.get(property) ?? new Set()).add(record.pattern))
        for (const [key, value] of Object.entries(record))
          if (key === "properties" && typeof value === "object" && value !== null)
            for (const [name, child] of Object.entries(value)) walk(child, name)
          else walk(value, property)
      }
    }
    walk(jsonSchema(), undefined)
    const only = (property: string) => {
      const found = [...(patterns.get(property) ?? [])]
      expect(found, property).toHaveLength(1)
      return new RegExp(found[0] ?? "", "u")
    }
    const name = only("name")
    const passwordEnv = only("pfx_password_env")
    const owner = only("owner")
    for (const pattern of [name, passwordEnv, owner]) expect(pattern.test("my api")).toBe(false)
    expect(name.test("api-prod.v2")).toBe(true)
    expect(name.test("-api")).toBe(false)
    expect(passwordEnv.test("PFX_PASSWORD")).toBe(true)
    expect(passwordEnv.test("1PASS")).toBe(false)
    expect(owner.test("certbot")).toBe(true)
    expect(owner.test("machine$")).toBe(true)
    expect(owner.test("65534")).toBe(true)
  })
})
