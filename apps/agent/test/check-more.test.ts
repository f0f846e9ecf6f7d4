import { generateKeyPairSync } from "node:crypto"
import {
  chmodSync,
  lchownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { holdsEncodedBase64 } from "@kvdeploy/core"
import { describe, expect, it } from "vitest"
import { agent, example, exampleEnv, exportPfx, inScratch, opensslIn, selfSigned } from "./checkFixtures.js"

describe("kvdeploy-agent --check", () => {
  it("names the paths' problems in the same run as the file's own (an invalid file hid them until it was fixed)", () => {
    inScratch((dir) => {
      const stateFile = join(dir, "state-file")
      writeFileSync(stateFile, "x")
      const config = join(dir, "invalid.yaml")
      writeFileSync(
        config,
        `agent: { state_dir: ${stateFile}, concurrency: 0 }
deployments:
  - { name: a, source: { cert: ${dir} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }
  - { name: "bad name", source: { cert: ${join(dir, "later.crt")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: b } }
  - { name: c, source: { cert: /dev/zero }, target: { vault_url: "http://not-a-vault", certificate_name: c } }
`,
      )
      const r = agent(["--config", config, "--check", "--json"])
      expect(r.status).toBe(2)
      const fields = (JSON.parse(r.stdout) as { problems: Array<{ field: string }> }).problems.map(
        (p) => p.field,
      )
      // The file's own problems, then each path's: a source in a deployment whose target is wrong too.
      expect(fields).toEqual(
        expect.arrayContaining([
          "agent.concurrency",
          "deployments[1].name",
          "deployments[2].target.vault_url",
          "deployments[0].source.cert",
          "deployments[2].source.cert",
          "agent.state_dir",
        ]),
      )
      expect(fields.filter((f) => f.endsWith(".source.cert"))).toEqual([
        "deployments[0].source.cert",
        "deployments[2].source.cert",
      ])
    })
  })

  it("judges the material and the listen address of an invalid file too, for the deployments that are valid (they waited for a valid file)", () => {
    inScratch((dir) => {
      selfSigned(dir, "a")
      opensslIn(dir)([
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "other.key",
      ])
      for (const f of ["a.key", "other.key"]) chmodSync(join(dir, f), 0o600)
      const vault = `vault_url: "https://kv-prod.vault.azure.net"`
      const config = join(dir, "invalid-material.yaml")
      writeFileSync(
        config,
        `agent: { state_dir: ${join(dir, "state")}, concurrency: 0, listen: "198.51.100.7:9471" }
deployments:
  - { name: mismatched, source: { cert: ${join(dir, "a.crt")}, key: ${join(dir, "other.key")} }, target: { ${vault}, certificate_name: mm } }
  - { name: "bad name", source: { cert: ${join(dir, "a.crt")}, key: ${join(dir, "a.key")} }, target: { ${vault}, certificate_name: ok } }
  - { name: badtarget, source: { cert: ${join(dir, "a.crt")}, key: ${join(dir, "other.key")} }, target: { vault_url: "http://not-a-vault", certificate_name: bt } }
`,
      )
      const r = agent(["--config", config, "--check", "--json"])
      expect(r.status, r.stdout + r.stderr).toBe(2)
      const problems = (JSON.parse(r.stdout) as { problems: Array<{ field: string; message: string }> })
        .problems
      // (An http:// vault URL is two problems of the file's own.)
      expect([...new Set(problems.map((p) => p.field))]).toEqual([
        "agent.concurrency",
        "deployments[1].name",
        "deployments[2].target.vault_url",
        // The valid deployments' material, at their own places in the file: [0]'s key is not its
        // certificate's. [2]'s (the same mismatch) is not judged: a deploy needs its target.
        "deployments[0].source",
        "agent.listen",
      ])
      expect(problems.at(-2)?.message).toMatch(
        /^key \S+other\.key: the private key matches none of the certificates of cert /,
      )
      expect(problems.at(-1)?.message).toBe(
        "198.51.100.7:9471 is not an address of this host (EADDRNOTAVAIL)",
      )
    })
  })

  it("an invalid certificate_id is named once, at target.certificate_id (the material check said it again, under source)", () => {
    inScratch((dir) => {
      selfSigned(dir, "a")
      chmodSync(join(dir, "a.key"), 0o600)
      const config = join(dir, "empty-id.yaml")
      writeFileSync(
        config,
        `agent: { state_dir: ${join(dir, "state")} }
deployments:
  - { name: a, source: { cert: ${join(dir, "a.crt")}, key: ${join(dir, "a.key")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a, certificate_id: "" } }
`,
      )
      const r = agent(["--config", config, "--check", "--json"])
      expect(r.status, r.stdout + r.stderr).toBe(2)
      const problems = (JSON.parse(r.stdout) as { problems: Array<{ field: string; message: string }> })
        .problems
      expect(problems.map((p) => p.field)).toEqual(["deployments[0].target.certificate_id"])
      expect(problems[0]?.message).toMatch(/^is 0 characters long/)
    })
  })

  it("refuses a custom cloud that mixes the known clouds at the deployment's cloud, and keeps an emulator's loopback block", () => {
    inScratch((dir) => {
      selfSigned(dir, "a")
      chmodSync(join(dir, "a.key"), 0o600)
      const config = join(dir, "mixed-cloud.yaml")
      const source = `{ cert: ${join(dir, "a.crt")}, key: ${join(dir, "a.key")} }`
      writeFileSync(
        config,
        `agent: { state_dir: ${join(dir, "state")} }
deployments:
  - name: emu
    source: ${source}
    target:
      vault_url: "https://127.0.0.1:8443"
      certificate_name: emu
      cloud: { vault_dns_suffix: "127.0.0.1", authority_host: "https://127.0.0.1:8444", keyvault_resource: "https://vault.azure.net" }
  - name: gov
    source: ${source}
    target:
      vault_url: "https://kv-prod.vault.usgovcloudapi.net"
      certificate_name: gov
      cloud: { vault_dns_suffix: vault.usgovcloudapi.net, authority_host: "https://login.microsoftonline.us", keyvault_resource: "https://vault.azure.net" }
`,
      )
      const r = agent(["--config", config, "--check", "--json"])
      expect(r.status, r.stdout + r.stderr).toBe(2)
      const problems = (
        JSON.parse(r.stdout) as { problems: Array<{ field: string; message: string; fix: string }> }
      ).problems
      expect(problems.map((p) => p.field)).toEqual(["deployments[1].target.cloud"])
      expect(problems[0]?.message).toBe(
        "mixes Azure clouds: vault_dns_suffix vault.usgovcloudapi.net and authority_host https://login.microsoftonline.us are the US Government cloud's (AzureUSGovernment), while keyvault_resource https://vault.azure.net is the public cloud's (AzurePublic); a vault accepts only tokens its own cloud's Entra ID issued for its own cloud's resource, so this target could never get one it accepts",
      )
      expect(problems[0]?.fix).toMatch(
        /^vault_url is a vault of the US Government cloud: remove the cloud block .*keyvault_resource https:\/\/vault\.usgovcloudapi\.net$/,
      )
      const text = agent(["--config", config, "--check"])
      expect(text.status).toBe(2)
      expect(text.stderr).toContain("deployments[1].target.cloud: mixes Azure clouds:")
    })
  })

  it("judges cloud.name (alone it selects a known cloud, which must be vault_url's) and authority host aliases", () => {
    inScratch((dir) => {
      selfSigned(dir, "a")
      chmodSync(join(dir, "a.key"), 0o600)
      const config = join(dir, "cloud-name.yaml")
      const source = `{ cert: ${join(dir, "a.crt")}, key: ${join(dir, "a.key")} }`
      writeFileSync(
        config,
        `agent: { state_dir: ${join(dir, "state")} }
deployments:
  - name: named
    source: ${source}
    target:
      vault_url: "https://kv-prod.vault.azure.cn"
      certificate_name: named
      cloud: { name: AzureChinaCloud }
  - name: other
    source: ${source}
    target:
      vault_url: "https://kv-prod.vault.azure.net"
      certificate_name: other
      cloud: { name: AzureChinaCloud }
  - name: alias
    source: ${source}
    target:
      vault_url: "https://kv-prod.vault.azure.cn"
      certificate_name: alias
      cloud: { vault_dns_suffix: vault.azure.cn, authority_host: "https://login.windows.net", keyvault_resource: "https://vault.azure.cn" }
  - name: emu
    source: ${source}
    target:
      vault_url: "https://127.0.0.1:8443"
      certificate_name: emu
      cloud: { name: emulator, vault_dns_suffix: "127.0.0.1", authority_host: "https://127.0.0.1:8444", keyvault_resource: "https://vault.azure.net" }
`,
      )
      const r = agent(["--config", config, "--check", "--json"])
      expect(r.status, r.stdout + r.stderr).toBe(2)
      const problems = (
        JSON.parse(r.stdout) as { problems: Array<{ field: string; message: string; fix: string }> }
      ).problems
      // A known cloud's name alone is valid (no missing endpoints); the other two are refused.
      expect(problems.map((p) => p.field)).toEqual([
        "deployments[1].target.cloud.name",
        "deployments[2].target.cloud",
      ])
      expect(problems[0]?.message).toBe(
        '"AzureChinaCloud" names the China cloud (AzureChina), but vault_url is a vault of the public cloud (AzurePublic, .vault.azure.net); a vault accepts only tokens of its own cloud, so the name cannot select another',
      )
      expect(problems[0]?.fix).toMatch(/^set cloud\.name to AzurePublicCloud, or remove the cloud block/)
      expect(problems[1]?.message).toMatch(
        /^mixes Azure clouds: vault_dns_suffix vault\.azure\.cn and keyvault_resource https:\/\/vault\.azure\.cn are the China cloud's \(AzureChina\), while authority_host https:\/\/login\.windows\.net is the public cloud's \(AzurePublic\);/,
      )
      const text = agent(["--config", config, "--check"])
      expect(text.status).toBe(2)
      expect(text.stderr).toContain(
        'deployments[1].target.cloud.name: "AzureChinaCloud" names the China cloud',
      )
    })
  })

  it("an invalid file's source with a problem of its own is not read: a pfx_password_env that may be the password is never printed", () => {
    inScratch((dir) => {
      selfSigned(dir, "a")
      exportPfx(dir, "a", "right")
      chmodSync(join(dir, "a.key"), 0o600)
      chmodSync(join(dir, "a.pfx"), 0o600)
      const config = join(dir, "leak.yaml")
      const vault = `vault_url: "https://kv-prod.vault.azure.net"`
      writeFileSync(
        config,
        `agent: { state_dir: ${join(dir, "state")} }
deployments:
  - { name: d1, source: { pfx: ${join(dir, "a.pfx")}, pfx_password_env: "hunter2secret" }, target: { ${vault}, certificate_name: c1 } }
  - { name: d2, source: { pfx: ${join(dir, "a.pfx")}, pfx_password_env: UNSET_PFX_PASSWORD }, target: { ${vault}, certificate_name: c2 } }
`,
      )
      for (const json of [true, false]) {
        const r = agent(["--config", config, "--check", ...(json ? ["--json"] : [])], {})
        expect(r.status, r.stdout + r.stderr).toBe(2)
        // It printed the value twice, in a problem that its read of the PFX added.
        expect(r.stdout + r.stderr).not.toContain("hunter2secret")
        expect(r.stdout + r.stderr).not.toContain("does not open it")
        if (json)
          expect(
            (JSON.parse(r.stdout) as { problems: Array<{ field: string }> }).problems.map((p) => p.field),
          ).toEqual(["deployments[0].source.pfx_password_env", "deployments[1].source.pfx_password_env"])
      }
    })
  })

  it("a pfx_password_env named like an Object member (constructor, toString) is a variable not set, not an internal error", () => {
    inScratch((dir) => {
      selfSigned(dir, "a")
      exportPfx(dir, "a", "right")
      chmodSync(join(dir, "a.pfx"), 0o600)
      const config = join(dir, "member.yaml")
      const vault = `vault_url: "https://kv-prod.vault.azure.net"`
      writeFileSync(
        config,
        `agent: { state_dir: ${join(dir, "state")} }
deployments:
  - { name: d1, source: { pfx: ${join(dir, "a.pfx")}, pfx_password_env: constructor }, target: { ${vault}, certificate_name: c1 } }
  - { name: d2, source: { pfx: ${join(dir, "a.pfx")}, pfx_password_env: toString }, target: { ${vault}, certificate_name: c2 } }
`,
      )
      const r = agent(["--config", config, "--check", "--json"], {})
      expect(r.status, r.stdout + r.stderr).toBe(2)
      expect(
        (JSON.parse(r.stdout) as { problems: Array<{ field: string; message: string }> }).problems.map(
          (p) => [p.field, p.message],
        ),
      ).toEqual([
        ["deployments[0].source.pfx_password_env", expect.stringContaining("is not set")],
        ["deployments[1].source.pfx_password_env", expect.stringContaining("is not set")],
      ])
    })
  })

  it("names the environment's problems and the paths' in one run (the paths were checked only once the variables were set)", () => {
    inScratch((dir) => {
      const config = join(dir, "both.yaml")
      writeFileSync(
        config,
        `deployments:
  - { name: a, source: { cert: ${dir} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a, credential_mode: client_secret } }
`,
      )
      const r = agent(["--config", config, "--check", "--json"])
      expect(r.status).toBe(2)
      const fields = (JSON.parse(r.stdout) as { problems: Array<{ field: string }> }).problems.map(
        (p) => p.field,
      )
      expect(fields).toEqual(["deployments[0].target.credential_mode", "deployments[0].source.cert"])
    })
  })

  it("prints a long result whole through a pipe (it was cut off at 64 KiB when the process exited)", () => {
    inScratch((dir) => {
      // 3,000 deployments aimed at one certificate: 2,999 problems, far more than 64 KiB of JSON.
      const lines = ["deployments:"]
      for (let i = 0; i < 3000; i++)
        lines.push(
          `  - { name: d${i}, source: { cert: c.pem }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: same } }`,
        )
      const config = join(dir, "many.yaml")
      writeFileSync(config, `${lines.join("\n")}\n`)
      const json = agent(["--config", config, "--check", "--json"])
      expect(json.status).toBe(2)
      expect(json.stdout.length).toBeGreaterThan(65_536)
      const parsed = JSON.parse(json.stdout) as { problems: Array<{ message: string }> }
      // The first 1,000 problems, and one that counts the rest.
      expect(parsed.problems.length).toBe(1_001)
      expect(parsed.problems.at(-1)?.message).toBe("has 1999 more problems, not listed")
      const text = agent(["--config", config, "--check"])
      expect(text.status).toBe(2)
      expect(text.stderr.length).toBeGreaterThan(65_536)
      expect(text.stderr.trimEnd().split("\n").at(-1)).toMatch(/^ {4}fix: /)
    })
  })

  it("says valid (exit 0), as text or as one JSON document", () =>
    // A copy in a directory of this test's own: no warning from where the checkout lies.
    inScratch((dir) => {
      const config = join(dir, "agent.yaml")
      writeFileSync(config, readFileSync(example))
      const text = agent(["--config", config, "--check"], exampleEnv)
      expect(text.status, text.stderr).toBe(0)
      // The example's workload_identity reads AZURE_ADDITIONALLY_ALLOWED_TENANTS (its managed_identity does not).
      expect(text.stdout).toBe(
        `${config}: valid, 2 deployment(s)\n  allowed tenants (workload_identity): none: tokens of its own tenant only (AZURE_ADDITIONALLY_ALLOWED_TENANTS is not set)\n`,
      )
      // Its source files are not on this host (/etc/ssl/kvdeploy): a warning each, the verdict unchanged.
      expect(text.stderr).toMatch(
        /has 4 warning\(s\) \(the agent runs all the same\):\n {2}deployments\[0\]\.source\.cert: /,
      )
      const json = agent(["--config", config, "--check", "--json"], exampleEnv)
      expect(json.status, json.stderr).toBe(0)
      expect(JSON.parse(json.stdout)).toEqual({
        path: config,
        valid: true,
        deployments: 2,
        allowedTenants: { modes: ["workload_identity"], tenants: [] },
        warnings: ["cert", "chain", "key"]
          .map((role) => `deployments[0].source.${role}`)
          .concat("deployments[1].source.pfx")
          .map((field) => expect.objectContaining({ field })),
      })
    }))

  it("shows the tenants AZURE_ADDITIONALLY_ALLOWED_TENANTS allows the modes that read it, and warns of a value that allows less than it seems (exit 0)", () =>
    inScratch((dir) => {
      const config = join(dir, "agent.yaml")
      writeFileSync(config, readFileSync(example))
      const check = (value: string, json = true) =>
        agent(["--config", config, "--check", ...(json ? ["--json"] : [])], {
          ...exampleEnv,
          AZURE_ADDITIONALLY_ALLOWED_TENANTS: value,
        })
      /** The variable's warnings (the example's source files, not on this host, are warned of too). */
      const tenantWarnings = (stdout: string): Array<{ field: string }> =>
        (JSON.parse(stdout) as { warnings: Array<{ field: string }> }).warnings.filter(
          (w) => !w.field.startsWith("deployments["),
        )
      const any = check(" * ")
      expect(any.status, any.stderr).toBe(0)
      expect(JSON.parse(any.stdout)).toMatchObject({
        allowedTenants: { modes: ["workload_identity"], tenants: "*" },
      })
      expect(tenantWarnings(any.stdout)).toEqual([])
      const upper = "72F988BF-86F1-41AF-91AB-2D7CD011DB47"
      const odd = check(`${upper};;contoso.onmicrosoft.com`)
      expect(odd.status, odd.stderr).toBe(0)
      const document = JSON.parse(odd.stdout)
      // The id in upper case is given to the credential in lower case (the same tenant, as Key Vault's
      // challenge names it): no warning for it. The domain name allows nothing: not listed, warned of.
      expect(document.allowedTenants).toEqual({
        modes: ["workload_identity"],
        tenants: [upper.toLowerCase()],
      })
      expect(tenantWarnings(odd.stdout)).toEqual([
        {
          field: "AZURE_ADDITIONALLY_ALLOWED_TENANTS",
          message:
            "has 1 empty entry (a ';' at its start or end, or two together), left out (read by workload_identity)",
          fix: "Separate the tenant ids with one ';' each, with none at the start or end",
        },
        expect.objectContaining({
          message: expect.stringMatching(/^names contoso.onmicrosoft.com, which is not a tenant id/),
        }),
      ])
      // AZURE_IDENTITY_DISABLE_MULTITENANTAUTH set: the list changes nothing, and the check says so.
      const disabled = agent(["--config", config, "--check", "--json"], {
        ...exampleEnv,
        AZURE_ADDITIONALLY_ALLOWED_TENANTS: upper,
        AZURE_IDENTITY_DISABLE_MULTITENANTAUTH: "true",
      })
      expect(disabled.status, disabled.stderr).toBe(0)
      expect(JSON.parse(disabled.stdout).allowedTenants).toEqual({
        modes: ["workload_identity"],
        tenants: [],
      })
      expect(tenantWarnings(disabled.stdout)).toEqual([
        expect.objectContaining({
          field: "AZURE_ADDITIONALLY_ALLOWED_TENANTS",
          message: expect.stringMatching(
            /but AZURE_IDENTITY_DISABLE_MULTITENANTAUTH is set: .*changes nothing/,
          ),
        }),
      ])
      const text = check("  ", false)
      expect(text.status).toBe(0)
      expect(text.stdout).toContain(
        "allowed tenants (workload_identity): none: tokens of its own tenant only (AZURE_ADDITIONALLY_ALLOWED_TENANTS holds no tenant)",
      )
      expect(text.stderr).toMatch(
        /AZURE_ADDITIONALLY_ALLOWED_TENANTS: is set but holds no tenant \(only spaces/,
      )
      // Only managed_identity in use: it does not read the variable, and says so when it is set.
      const managed = join(dir, "managed.yaml")
      writeFileSync(
        managed,
        `deployments:
  - { name: a, source: { cert: ${join(dir, "later.crt")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a, credential_mode: managed_identity } }
`,
      )
      const mi = agent(["--config", managed, "--check", "--json"], {
        AZURE_ADDITIONALLY_ALLOWED_TENANTS: upper,
      })
      expect(mi.status, mi.stderr).toBe(0)
      const miDocument = JSON.parse(mi.stdout)
      expect(miDocument.allowedTenants).toBeUndefined()
      expect(tenantWarnings(mi.stdout)).toEqual([
        expect.objectContaining({
          field: "AZURE_ADDITIONALLY_ALLOWED_TENANTS",
          message: expect.stringMatching(
            /^is set, but no credential mode in use reads it \(managed_identity/,
          ),
        }),
      ])
    }))

  it("warns of a configuration file others may change and of a state file the start would set aside (exit 0; with the problems of an invalid file too)", () => {
    inScratch((dir) => {
      const open = join(dir, "open")
      mkdirSync(open)
      chmodSync(open, 0o777)
      const state = join(dir, "state")
      mkdirSync(state, { mode: 0o700 })
      const config = join(open, "agent.yaml")
      const deployment = `deployments:
  - name: api
    source: { cert: ${join(dir, "api.crt")}, key: ${join(dir, "api.key")} }
    target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: api, credential_mode: managed_identity }
`
      // Its source there: a missing one would be warned of too.
      selfSigned(dir, "api")
      writeFileSync(config, `agent: { state_dir: ${state} }\n${deployment}`)
      writeFileSync(join(state, "state.json"), '{"schema": "kvdeploy.agent-state/v1", "deploy')
      type Checked = {
        valid: boolean
        problems?: Array<{ field: string }>
        warnings: Array<{ field: string; message: string; fix: string }>
      }
      const check = () => {
        const r = agent(["--config", config, "--check", "--json"])
        return { status: r.status, out: JSON.parse(r.stdout) as Checked }
      }
      const both = check()
      expect(both.status).toBe(0)
      expect(both.out.valid).toBe(true)
      expect(both.out.warnings).toEqual([
        {
          field: "(file)",
          message: `the directory ${open} is writable by every user (mode 0777, no sticky bit): a user other than root and the agent's could change the configuration, and with it which files the agent deploys and to which vaults (it is read all the same)`,
          fix: `chmod o-w ${open}; the configuration file, every directory on the way to it and every symbolic link followed should be owned by root or the agent's user and writable by no one else (docs/agent.md, Files)`,
        },
        {
          field: "agent.state_dir",
          message: `the state file ${join(state, "state.json")} cannot be read (not valid JSON at line 1, column 46): the start sets it aside, starting without state: every deployment is compared with its vault again, and one whose last outcome was held (it needed a person) is deployed again`,
          fix: `edit or restore ${join(state, "state.json")} if its records matter (a backup, the agent that wrote it), or leave it: the start sets it aside as state.json.unreadable-TIME`,
        },
      ])
      // --check changes nothing: the state file is where it was.
      expect(readFileSync(join(state, "state.json"), "utf8")).toMatch(/"deploy$/)
      // As text: the verdict on stdout, the warnings on stderr.
      const text = agent(["--config", config, "--check"])
      expect(text.status).toBe(0)
      expect(text.stdout).toBe(`${config}: valid, 1 deployment(s)\n`)
      expect(text.stderr).toMatch(
        /has 2 warning\(s\) \(the agent runs all the same\):\n {2}\(file\): the directory /,
      )
      // A record not in the agent's form, among good ones; the directory closed to others.
      chmodSync(open, 0o755)
      const at = "2026-12-03T00:00:00.000Z"
      const good = { outcome: "Succeeded", at, reason: "deployed", configFingerprint: "f", held: false }
      writeFileSync(
        join(state, "state.json"),
        JSON.stringify({
          schema: "kvdeploy.agent-state/v1",
          deployments: { api: good, web: good, old: { ...good, at: "yesterday" } },
        }),
      )
      expect(check().out.warnings).toEqual([
        expect.objectContaining({
          field: "agent.state_dir",
          message: `the state file ${join(state, "state.json")} has 1 record not in the agent's form ("old": is not a time (ISO 8601) at ["at"]): the start sets it aside; those deployments start without a record (one whose last outcome was held is deployed again), the other 2 keep theirs`,
        }),
      ])
      // A good state file and a directory of the agent's own: nothing to warn of.
      writeFileSync(
        join(state, "state.json"),
        JSON.stringify({ schema: "kvdeploy.agent-state/v1", deployments: { api: good } }),
      )
      expect(check()).toEqual({ status: 0, out: { path: config, valid: true, deployments: 1, warnings: [] } })
      // An invalid file (an unknown key) gets its warnings beside its problems.
      chmodSync(open, 0o777)
      writeFileSync(config, `agent: { state_dir: ${state}, colour: blue }\n${deployment}`)
      const invalid = check()
      expect(invalid.status).toBe(2)
      expect(invalid.out.problems?.map((p) => p.field)).toEqual(["agent.colour"])
      expect(invalid.out.warnings.map((w) => w.field)).toEqual(["(file)"])
      // A state directory the start would refuse: its state file is not warned of, even in a file
      // of more than 1,000 problems (whose paths are not looked at).
      chmodSync(state, 0o777)
      writeFileSync(join(state, "state.json"), "{")
      const strays = Array.from({ length: 1_001 }, (_, i) => `stray${i}: 1`).join("\n")
      writeFileSync(config, `agent: { state_dir: ${state} }\n${strays}\n${deployment}`)
      const many = check()
      expect(many.status).toBe(2)
      expect(many.out.warnings.map((w) => w.field)).toEqual(["(file)"])
      // A configuration reached through a link of another user's: chown -h (chown follows the link).
      chmodSync(open, 0o755)
      writeFileSync(config, `agent: { state_dir: ${join(dir, "fresh-state")} }\n${deployment}`)
      const link = join(dir, "agent-link.yaml")
      symlinkSync(config, link)
      lchownSync(link, 4242, 4242)
      const linked = agent(["--config", link, "--check", "--json"])
      expect(linked.status).toBe(0)
      expect((JSON.parse(linked.stdout) as Checked).warnings).toEqual([
        expect.objectContaining({
          field: "(file)",
          message: expect.stringMatching(new RegExp(`^the symbolic link ${link} is owned by uid 4242`)),
          fix: expect.stringMatching(new RegExp(`^chown -h root ${link}; `)),
        }),
      ])
    })
  })

  it("lists the problems (exit 2): in JSON on stdout, as text on stderr; a missing file in words", () => {
    const json = agent(["--config", example, "--check", "--json"])
    expect(json.status).toBe(2)
    const parsed = JSON.parse(json.stdout) as {
      valid: boolean
      problems: Array<{ field: string; fix: string }>
    }
    expect(parsed.valid).toBe(false)
    expect(parsed.problems.map((p) => p.field)).toEqual([
      "deployments[1].source.pfx_password_env",
      "deployments[1].target.credential_mode",
    ])
    for (const p of parsed.problems) expect(p.fix.length).toBeGreaterThan(10)
    const text = agent(["--config", example, "--check"])
    expect(text.status).toBe(2)
    expect(text.stderr).toContain("has 2 problem(s)")
    expect(text.stderr).toContain("AZURE_FEDERATED_TOKEN_FILE")
    const missing = agent(["--config", "/nonexistent/kvdeploy-agent.yaml", "--check", "--json"])
    expect(missing.status).toBe(2)
    expect(JSON.parse(missing.stdout).problems[0].message).toBe(
      "cannot be read: no such file or directory (ENOENT)",
    )
  })

  it("does not print key text that js-yaml names whole in a syntax error (an unknown tag or alias)", () => {
    const key = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ format: "der", type: "pkcs8" })
      .toString("base64")
    const dir = mkdtempSync(join(tmpdir(), "kvdeploy-agent-yaml-key-"))
    try {
      for (const [kind, yaml] of [
        ["tag", `deployments:\n  - name: !<${key}> web\n`],
        ["alias", `deployments:\n  - name: *${key}\n`],
      ] as const) {
        const file = join(dir, `${kind}.yaml`)
        writeFileSync(file, yaml)
        for (const json of [false, true]) {
          const r = agent(["--config", file, "--check", ...(json ? ["--json"] : [])])
          const text = r.stdout + r.stderr
          expect(r.status, text).toBe(2)
          expect(text).toContain("(yaml) line 2")
          expect(text).toMatch(/\[base64 text of \d+ characters, not shown\]/)
          for (let i = 0; i + 24 <= key.length; i += 12) expect(text).not.toContain(key.slice(i, i + 24))
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("refuses --json without --check, --check with --version, --print-schema or --help, and an unknown option, with exit 2", () => {
    expect(agent(["--json"]).status).toBe(2)
    const unknown = agent(["--check", "--json", "--bogus", "--config=/nonexistent/agent.yaml"])
    expect(unknown.status).toBe(2)
    const answer = JSON.parse(unknown.stdout)
    expect(answer.problems[0].message).toContain("--bogus")
    // The document names the file and has every field a `--check --json` answer has.
    expect(answer).toMatchObject({ path: "/nonexistent/agent.yaml", valid: false, warnings: [] })
    // --config twice: node's parser kept the last, silently; the operator may have meant either.
    for (const twice of [
      ["--config", "/a.yaml", "--config", "/b.yaml", "--check"],
      ["-c/a.yaml", "--config=/b.yaml", "--check", "--json"],
    ]) {
      const r = agent(twice)
      expect(r.status, r.stdout + r.stderr).toBe(2)
      expect(r.stderr).toContain("kvdeploy-agent: --config is given more than once")
      if (twice.includes("--json"))
        expect(JSON.parse(r.stdout)).toMatchObject({
          valid: false,
          problems: [{ field: "--config" }],
          warnings: [],
        })
    }
    // --check with --version, --print-schema or --help printed those and exited 0, as if the
    // configuration (never read) were valid.
    for (const other of ["--version", "--print-schema", "--help"]) {
      const r = agent(["--config", example, "--check", other])
      expect(r.status, other).toBe(2)
      expect(r.stdout).toBe("")
      expect(r.stderr).toBe(
        `kvdeploy-agent: --check goes without ${other}\n  fix: run kvdeploy-agent --config FILE --check [--json] alone to check the configuration\n`,
      )
      const json = agent(["--config", example, "--check", "--json", other])
      expect(json.status).toBe(2)
      expect(JSON.parse(json.stdout)).toEqual({
        path: example,
        valid: false,
        problems: [
          expect.objectContaining({ field: "(command line)", message: `--check goes without ${other}` }),
        ],
        warnings: [],
      })
    }
    // Each alone still answers.
    expect(agent(["--version"]).status).toBe(0)
  })

  it("never prints a key given as the configuration's path (--config, $KVDEPLOY_AGENT_CONFIG) or as an unknown option", () => {
    // One 64-character line from inside the key that reads as encoded bytes (about 997 in 1,000 lines
    // of RSA and EC keys do, core's shownValues test measures the rule; of a P-256 key's second line,
    // about 985 in 1,000, measured on 200,000 keys): this test is about where the rule is applied, so
    // a key whose one such line does not is drawn again (a P-256 key has a single candidate line, and
    // the test failed for the key that had none).
    const { pem, body, line } = (() => {
      for (let draw = 0; draw < 50; draw++) {
        const pem = generateKeyPairSync("ec", { namedCurve: "P-256" })
          .privateKey.export({ format: "pem", type: "pkcs8" })
          .toString()
        const body = pem.replace(/-----[^-]+-----|\n/g, "")
        const line = (body.slice(64).match(/.{64}/g) ?? []).find((l) => holdsEncodedBase64(l))
        if (line !== undefined) return { pem, body, line }
      }
      throw new Error("none of 50 keys had a line that reads as encoded bytes")
    })()
    const leaks = (text: string) => {
      expect(text).not.toContain("BEGIN PRIVATE KEY")
      for (let i = 32; i + 24 <= body.length; i += 12) expect(text).not.toContain(body.slice(i, i + 24))
    }
    // As the next argument, node's parser refuses it (it starts with a dash) without quoting it.
    const separate = agent(["--config", pem, "--check"])
    expect(separate.status).toBe(2)
    expect(separate.stderr).toContain("Option '--config' argument is ambiguous")
    leaks(separate.stdout + separate.stderr)
    for (const [args, env, field] of [
      [[`--config=${pem}`, "--check"], {}, "--config"],
      [[`--config=${pem}`, "--check", "--json"], {}, "--config"],
      [["--check", "--json"], { KVDEPLOY_AGENT_CONFIG: pem }, "$KVDEPLOY_AGENT_CONFIG"],
      // The daemon itself (no --check) stops before it logs or makes anything.
      [[], { KVDEPLOY_AGENT_CONFIG: pem }, "$KVDEPLOY_AGENT_CONFIG"],
    ] as const) {
      const r = agent(args, env)
      const text = r.stdout + r.stderr
      expect(r.status, text).toBe(2)
      expect(text).toContain(
        `${field} holds certificate or key text instead of the configuration file's path`,
      )
      leaks(text)
      if ((args as ReadonlyArray<string>).includes("--json"))
        expect(JSON.parse(r.stdout)).toMatchObject({ valid: false, problems: [{ field }], warnings: [] })
    }
    // An option that is a line from inside the key (node's parser quotes it back).
    // A line of the key as the path of a configuration that does not exist: refused, not printed.
    const asPath = agent([`--config=${line}`, "--check"])
    expect(asPath.status).toBe(2)
    expect(asPath.stderr).toContain("--config holds certificate or key text")
    leaks(asPath.stdout + asPath.stderr)
    // A configuration that exists is read whatever its path looks like (a container root file
    // system's 64-hex-digit directory).
    inScratch((dir) => {
      const hexDir = join(dir, "overlay2", "4f".repeat(32), "merged")
      mkdirSync(hexDir, { recursive: true })
      const config = join(hexDir, "agent.yaml")
      writeFileSync(
        config,
        `agent: { state_dir: ${join(dir, "state")} }\ndeployments:\n  - { name: a, source: { cert: ${join(dir, "later.crt")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }\n`,
      )
      const r = agent(["--config", config, "--check"])
      expect(r.status, r.stdout + r.stderr).toBe(0)
    })
    const unknown = agent(["--check", "--json", `--${line}`, "--config=/nonexistent/agent.yaml"])
    expect(unknown.status).toBe(2)
    expect(JSON.parse(unknown.stdout).problems[0].message).toMatch(/not shown/)
    leaks(unknown.stdout + unknown.stderr)
  })
})
