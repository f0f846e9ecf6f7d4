/** `--check` and `--check --json`: the configuration judged in the agent's environment, exit 0 or 2. */
import { execFileSync, spawnSync } from "node:child_process"
import { generateKeyPairSync } from "node:crypto"
import {
  chmodSync,
  chownSync,
  existsSync,
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
import { afterAll, describe, expect, it } from "vitest"
import { agentRoot, bin, checkAsNobody } from "./harness.js"

const example = join(agentRoot, "examples", "agent.yaml")
/** The variables the example's deployments need: its PFX password, and workload identity's. */
/** The projected service account token the workload identity webhook mounts (a file --check reads). */
const tokenDir = mkdtempSync(join(tmpdir(), "kvdeploy-check-token-"))
afterAll(() => rmSync(tokenDir, { recursive: true, force: true }))
const tokenFile = join(tokenDir, "azure-identity-token")
writeFileSync(tokenFile, "a federated token")

const exampleEnv = {
  PORTAL_PFX_PASSWORD: "x",
  AZURE_TENANT_ID: "00000000-0000-0000-0000-000000000001",
  AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000002",
  AZURE_FEDERATED_TOKEN_FILE: tokenFile,
}

const agent = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [bin, ...args], {
    encoding: "utf8",
    timeout: 30_000,
    maxBuffer: 64 * 1024 * 1024,
    env: { PATH: process.env.PATH ?? "", ...env },
  })

/** Run `f` in a scratch directory of its own, removed afterwards. */
const inScratch = (f: (dir: string) => void): void => {
  const dir = mkdtempSync(join(tmpdir(), "kvdeploy-check-"))
  try {
    f(dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A configuration of one workload_identity deployment in `dir` (its source not there yet). */
const workloadConfig = (dir: string): string => {
  const config = join(dir, "workload.yaml")
  writeFileSync(
    config,
    `deployments:
  - { name: a, source: { cert: ${join(dir, "later.crt")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a, credential_mode: workload_identity } }
`,
  )
  return config
}
/** The tenant and client workload identity needs beside its token file. */
const workloadIds = {
  AZURE_TENANT_ID: "00000000-0000-0000-0000-0000000000a0",
  AZURE_CLIENT_ID: "00000000-0000-0000-0000-0000000000a1",
}

/** Runs openssl in `dir`, failing the test with its error output. */
const opensslIn = (dir: string) => (args: ReadonlyArray<string>) => {
  const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" })
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`)
}

/** A self-signed EC P-256 certificate `NAME.crt` for CN=NAME.example.test and its key `NAME.key`, in `dir`. */
const selfSigned = (dir: string, name: string) =>
  opensslIn(dir)(
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"].concat([
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
      "-subj",
      `/CN=${name}.example.test`,
      "-days",
      "30",
    ]),
  )

/** `NAME.pfx` of `NAME.crt` and `NAME.key` in `dir`, under `password`. */
const exportPfx = (dir: string, name: string, password: string) =>
  opensslIn(dir)(
    ["pkcs12", "-export", "-in", `${name}.crt`, "-inkey", `${name}.key`, "-out", `${name}.pfx`].concat([
      "-passout",
      `pass:${password}`,
    ]),
  )

describe("kvdeploy-agent --check", () => {
  it("refuses a configuration that never ends (/dev/zero) and an empty --config path, naming the fix", () => {
    const zero = agent(["--config", "/dev/zero", "--check", "--json"])
    expect(zero.status).toBe(2)
    expect(JSON.parse(zero.stdout).problems[0].message).toBe(
      "cannot be read: it is larger than 64 MiB (a configuration of 10,000 deployments is about 3 MB)",
    )
    const empty = agent(["--config", "", "--check", "--json"])
    expect(empty.status).toBe(2)
    expect(JSON.parse(empty.stdout).problems[0].message).toBe("is an empty path")
  })

  it("refuses source paths that are a directory or a device, and a state_dir that is a file; a missing source is fine", () => {
    inScratch((dir) => {
      const stateFile = join(dir, "state-file")
      writeFileSync(stateFile, "x")
      const config = join(dir, "paths.yaml")
      writeFileSync(
        config,
        `agent: { state_dir: ${stateFile} }
deployments:
  - { name: a, source: { cert: ${dir}, key: /dev/zero }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }
  - { name: b, source: { cert: ${join(dir, "later.crt")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: b } }
`,
      )
      const json = agent(["--config", config, "--check", "--json"])
      expect(json.status).toBe(2)
      const problems = (JSON.parse(json.stdout) as { problems: Array<{ field: string; message: string }> })
        .problems
      expect(problems.map((p) => p.field)).toEqual([
        "deployments[0].source.cert",
        "deployments[0].source.key",
        "agent.state_dir",
      ])
      expect(problems[0]?.message).toContain("is a directory")
      expect(problems[1]?.message).toContain("not a regular file")
    })
  })

  it("warns of each source path that does not exist (exit 0, still valid), naming the deployment, the field, the path and the fix for a typo and for a file not written yet", () => {
    inScratch((dir) => {
      const live = join(dir, "live")
      mkdirSync(join(live, "api"), { recursive: true })
      // certbot's link into an archive that is not there.
      symlinkSync("../../archive/api/cert1.pem", join(live, "api", "cert.pem"))
      mkdirSync(join(dir, "ok"))
      selfSigned(join(dir, "ok"), "ok")
      const target = (name: string) =>
        `{ vault_url: "https://kv-prod.vault.azure.net", certificate_name: ${name}, credential_mode: managed_identity }`
      const config = join(dir, "missing.yaml")
      writeFileSync(
        config,
        `deployments:
  - { name: api, source: { cert: ${join(live, "api", "fullchain.pem")}, key: live/api/privkey.pem }, target: ${target("api")} }
  - { name: web, source: { cert: ${join(live, "wbe", "fullchain.pem")} }, target: ${target("web")} }
  - { name: portal, source: { pfx: ${join(dir, "nowhere", "portal", "portal.pfx")}, pfx_password_env: PORTAL_PFX_PASSWORD }, target: ${target("portal")} }
  - { name: linked, source: { cert: ${join(live, "api", "cert.pem")} }, target: ${target("linked")} }
  - { name: ok, source: { cert: ${join(dir, "ok", "ok.crt")}, key: ${join(dir, "ok", "ok.key")} }, target: ${target("ok")} }
`,
      )
      const env = { PORTAL_PFX_PASSWORD: "x" }
      const json = agent(["--config", config, "--check", "--json"], env)
      expect(json.status, json.stderr).toBe(0)
      const document = JSON.parse(json.stdout) as {
        valid: boolean
        deployments: number
        warnings: Array<{ field: string; message: string; fix: string }>
      }
      expect(document.valid).toBe(true)
      expect(document.deployments).toBe(5)
      const broken = (name: string) =>
        `the running agent reports deployment "${name}" as source broken (kvdeploy_agent_source_broken 1) and deploys nothing for it until the file exists`
      const notWrittenYet = (watched: string) =>
        `if the file is not written yet (a certificate not issued yet), nothing to do: the agent watches ${watched} and deploys it once the file appears`
      const typoLikelier = (existing: string) =>
        `a missing directory is likelier a mistyped path: compare it with what ${existing} holds (ls ${existing}) and correct it; if it is not made yet (a certificate not issued yet), nothing to do: the agent deploys it once the file appears (the watch sees the directory made, and its retries and every interval pass look again)`
      expect(document.warnings).toEqual([
        {
          field: "deployments[0].source.cert",
          message: `${join(live, "api", "fullchain.pem")} does not exist: ${broken("api")}`,
          fix: `if the path is mistyped, correct it (ls ${join(live, "api")} shows what is there); ${notWrittenYet(join(live, "api"))}`,
        },
        // A relative path, as the agent reads it: from the configuration's directory.
        {
          field: "deployments[0].source.key",
          message: `${join(live, "api", "privkey.pem")} does not exist: ${broken("api")}`,
          fix: `if the path is mistyped, correct it (ls ${join(live, "api")} shows what is there); ${notWrittenYet(join(live, "api"))}`,
        },
        // Its directory missing too: a typo is likelier, and the directory above that exists is named.
        {
          field: "deployments[1].source.cert",
          message: `${join(live, "wbe", "fullchain.pem")} does not exist, nor does the directory ${join(live, "wbe")} (${live} exists): ${broken("web")}`,
          fix: typoLikelier(live),
        },
        {
          field: "deployments[2].source.pfx",
          message: `${join(dir, "nowhere", "portal", "portal.pfx")} does not exist, nor does the directory ${join(dir, "nowhere")} on its way (${dir} exists): ${broken("portal")}`,
          fix: typoLikelier(dir),
        },
        {
          field: "deployments[3].source.cert",
          message: `${join(live, "api", "cert.pem")} is a symbolic link to ../../archive/api/cert1.pem, which does not exist: ${broken("linked")}`,
          fix: `if the path or the link is wrong, correct the path or point the link at the file (ln -sfn FILE ${join(live, "api", "cert.pem")}) (ls ${join(live, "api")} shows what is there); ${notWrittenYet(join(live, "api"))}`,
        },
      ])
      // As text: the verdict on stdout, the warnings after it on stderr.
      const text = agent(["--config", config, "--check"], env)
      expect(text.status, text.stderr).toBe(0)
      expect(text.stdout).toBe(`${config}: valid, 5 deployment(s)\n`)
      expect(text.stderr).toContain(
        `has 5 warning(s) (the agent runs all the same):\n  deployments[0].source.cert: ${join(live, "api", "fullchain.pem")} does not exist: ${broken("api")}\n    fix: if the path is mistyped`,
      )
      // An invalid file: its source paths are warned of beside its problems.
      writeFileSync(config, `agent: { colour: blue }\n${readFileSync(config, "utf8")}`)
      const invalid = agent(["--config", config, "--check", "--json"], env)
      expect(invalid.status).toBe(2)
      const invalidDocument = JSON.parse(invalid.stdout) as {
        problems: Array<{ field: string }>
        warnings: Array<{ field: string }>
      }
      expect(invalidDocument.problems.map((p) => p.field)).toEqual(["agent.colour"])
      expect(invalidDocument.warnings).toEqual(document.warnings)
    })
  })

  it("warns of 10,000 deployments' missing sources in one missing directory: the first 1,000 paths listed, the rest counted (exit 0)", () => {
    inScratch((dir) => {
      const lines = ["deployments:"]
      for (let i = 0; i < 10_000; i++)
        lines.push(
          `  - { name: d${i}, source: { cert: not-issued/d${i}.crt, key: not-issued/d${i}.key }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: d${i}, credential_mode: managed_identity } }`,
        )
      const config = join(dir, "fleet.yaml")
      writeFileSync(config, `${lines.join("\n")}\n`)
      const json = agent(["--config", config, "--check", "--json"])
      expect(json.status, json.stderr).toBe(0)
      const document = JSON.parse(json.stdout) as {
        valid: boolean
        deployments: number
        warnings: Array<{ field: string; message: string }>
      }
      expect(document.valid).toBe(true)
      expect(document.deployments).toBe(10_000)
      expect(document.warnings.length).toBe(1_001)
      expect(document.warnings[999]).toMatchObject({
        field: "deployments[499].source.key",
        message: expect.stringContaining(`nor does the directory ${join(dir, "not-issued")} (${dir} exists)`),
      })
      expect(document.warnings.at(-1)).toEqual({
        field: "deployments",
        message: "19000 more source paths do not exist, not listed",
        fix: "look at the ones listed: a certificate not issued yet is fine, a mistyped path is not (the running agent's source broken lines name each path)",
      })
    })
  })

  it.skipIf(process.getuid?.() !== 0)(
    "a source under a directory the agent's user may not search is the problem that names it, not a missing file too (run as uid 65534)",
    () => {
      inScratch((dir) => {
        chmodSync(dir, 0o755)
        const live = join(dir, "live")
        mkdirSync(live, { mode: 0o700 })
        const config = join(dir, "unsearchable.yaml")
        writeFileSync(
          config,
          `agent: { state_dir: ${join(dir, "state")} }
deployments:
  - { name: a, source: { cert: ${join(live, "fullchain.pem")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a, credential_mode: managed_identity } }
`,
          { mode: 0o644 },
        )
        mkdirSync(join(dir, "state"), { mode: 0o700 })
        chownSync(join(dir, "state"), 65534, 65534)
        const r = checkAsNobody(config)
        expect(r.status, r.stderr).toBe(2)
        const document = JSON.parse(r.stdout) as {
          problems: Array<{ field: string; message: string }>
          warnings: Array<unknown>
        }
        expect(document.problems).toEqual([
          expect.objectContaining({
            field: "deployments[0].source.cert",
            message: expect.stringContaining(`may not search the directory ${live} on its way`),
          }),
        ])
        expect(document.warnings).toEqual([])
        // Root may search it: the file is missing, a warning.
        const asRoot = agent(["--config", config, "--check", "--json"])
        expect(JSON.parse(asRoot.stdout).warnings).toEqual([
          expect.objectContaining({
            field: "deployments[0].source.cert",
            message: expect.stringMatching(/ does not exist: /),
          }),
        ])
      })
    },
  )

  it("a state_dir every user may write: chmod 0700 for a directory of its own, another directory for a shared one (/tmp), never chmod of it", () => {
    inScratch((dir) => {
      const fixOf = (mode: number) => {
        const stateDir = join(dir, `state-${mode.toString(8)}`)
        mkdirSync(stateDir)
        chmodSync(stateDir, mode)
        const config = join(dir, `state-${mode.toString(8)}.yaml`)
        writeFileSync(
          config,
          `agent: { state_dir: ${stateDir} }
deployments:
  - { name: a, source: { cert: ${join(dir, "later.crt")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }
`,
        )
        const r = agent(["--config", config, "--check", "--json"])
        expect(r.status, r.stdout + r.stderr).toBe(2)
        const [problem] = (JSON.parse(r.stdout) as { problems: Array<{ field: string; fix: string }> })
          .problems
        expect(problem?.field).toBe("agent.state_dir")
        return { stateDir, fix: problem?.fix ?? "" }
      }
      const own = fixOf(0o777)
      expect(own.fix).toBe(`chmod 0700 ${own.stateDir} (the agent creates it so)`)
      const shared = fixOf(0o1777)
      expect(shared.fix).toContain("such as /var/lib/kvdeploy-agent")
      expect(shared.fix).toContain(`do not chmod ${shared.stateDir}`)
      expect(shared.fix).not.toMatch(/^chmod/)
    })
  })

  it("names an empty source path as empty (it was resolved to the configuration's directory and said to be a directory)", () => {
    inScratch((dir) => {
      const config = join(dir, "empty-paths.yaml")
      writeFileSync(
        config,
        `agent: { state_dir: ${join(dir, "state")} }
deployments:
  - { name: a, source: { cert: "", key: " " }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }
  - { name: b, source: { pfx: "" }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: b } }
`,
      )
      const r = agent(["--config", config, "--check", "--json"])
      expect(r.status, r.stdout + r.stderr).toBe(2)
      const problems = (
        JSON.parse(r.stdout) as { problems: Array<{ field: string; message: string; fix: string }> }
      ).problems
      expect(problems).toEqual([
        {
          field: "deployments[0].source.cert",
          message: "is an empty path",
          fix: "give the path of the certificate file",
        },
        {
          field: "deployments[0].source.key",
          message: "is an empty path",
          fix: "give the path of the private key file",
        },
        {
          field: "deployments[1].source.pfx",
          message: "is an empty path",
          fix: "give the path of the PFX file",
        },
      ])
      expect(r.stdout).not.toContain("is a directory")
    })
  })

  it("names a state_dir the agent could not create or write, as its start would (it said valid, and the start failed)", () => {
    inScratch((dir) => {
      const stateProblem = (
        stateDir: string,
        check: (config: string) => ReturnType<typeof agent> = (config) =>
          agent(["--config", config, "--check", "--json"]),
      ) => {
        const config = join(dir, "state.yaml")
        writeFileSync(
          config,
          `agent: { state_dir: ${stateDir} }
deployments:
  - { name: a, source: { cert: ${join(dir, "later.crt")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }
`,
          { mode: 0o644 },
        )
        const r = check(config)
        return { status: r.status, problems: JSON.parse(r.stdout).problems, stderr: r.stderr }
      }
      // Under a file.
      const file = join(dir, "a-file")
      writeFileSync(file, "x")
      expect(stateProblem(join(file, "state"))).toEqual({
        status: 2,
        problems: [
          {
            field: "agent.state_dir",
            message: `the state directory ${join(file, "state")} cannot be created: ${file} is a file, not a directory (ENOTDIR)`,
            fix: "give agent.state_dir a path that is not under a file",
          },
        ],
        stderr: expect.any(String),
      })
      // Through a symbolic link to nothing.
      const dangling = join(dir, "dangling")
      symlinkSync(join(dir, "gone"), dangling)
      expect(stateProblem(join(dangling, "state")).problems).toEqual([
        {
          field: "agent.state_dir",
          message: `the state directory ${join(dangling, "state")} cannot be created: ${dangling} is a symbolic link to ${join(dir, "gone")}, which does not exist (ENOENT)`,
          fix: `create ${join(dir, "gone")} (mode 0700, the agent's user's), or remove the link ${dangling}`,
        },
      ])
      // Through a link to a link to nothing: the path at the end of the chain is the one to create.
      const chained = join(dir, "chained")
      symlinkSync("dangling", chained)
      expect(stateProblem(join(chained, "state")).problems).toEqual([
        {
          field: "agent.state_dir",
          message: `the state directory ${join(chained, "state")} cannot be created: ${chained} is a symbolic link to dangling, which leads through links to ${join(dir, "gone")}, which does not exist (ENOENT)`,
          fix: `create ${join(dir, "gone")} (mode 0700, the agent's user's), or remove the link ${chained}`,
        },
      ])
      // A hop's `..` after a linked directory is that directory's parent, as the kernel takes it.
      mkdirSync(join(dir, "x"))
      mkdirSync(join(dir, "elsewhere", "sub"), { recursive: true })
      symlinkSync("../elsewhere/sub", join(dir, "x", "d"))
      symlinkSync("../c", join(dir, "elsewhere", "sub", "b"))
      symlinkSync("d/b", join(dir, "x", "a"))
      expect(stateProblem(join(dir, "x", "a", "state")).problems[0]?.fix).toBe(
        `create ${join(dir, "elsewhere", "c")} (mode 0700, the agent's user's), or remove the link ${join(dir, "x", "a")}`,
      )
      // Under /proc, which root's access(W_OK) passes and where no directory can be made.
      if (existsSync("/proc/self"))
        expect(stateProblem("/proc/kvdeploy-agent-state").problems).toEqual([
          {
            field: "agent.state_dir",
            message:
              "the state directory /proc/kvdeploy-agent-state cannot be created: /proc is on the kernel's proc file system, which holds no files of the agent's",
            fix: expect.stringMatching(/^give agent.state_dir a directory on a disk/),
          },
        ])
      // Missing, two levels deep, under a directory this user may write: valid, and nothing is made.
      const fresh = join(dir, "fresh", "state")
      expect(stateProblem(fresh)).toMatchObject({ status: 0 })
      expect(existsSync(join(dir, "fresh"))).toBe(false)
      if (process.getuid?.() === 0) {
        // Under a directory the agent's user may not write (checked as uid 65534).
        chmodSync(dir, 0o755)
        const closed = join(dir, "closed")
        mkdirSync(closed, { mode: 0o755 })
        expect(stateProblem(join(closed, "state"), checkAsNobody).problems).toEqual([
          {
            field: "agent.state_dir",
            message: `the state directory ${join(closed, "state")} cannot be created: ${closed} may not be written by uid 65534 (EACCES)`,
            fix: `create it for the agent's user: mkdir -p ${join(closed, "state")} && chown 65534 ${join(closed, "state")} && chmod 0700 ${join(closed, "state")}; or give agent.state_dir a directory that user may create`,
          },
        ])
        // On a read-only file system (systemd's ProtectSystem=strict outside StateDirectory=).
        const readOnly = join(dir, "read-only")
        mkdirSync(readOnly)
        // As pathTrustMount.test.ts, the suite's root may mount: a failure to is the test's.
        execFileSync("mount", ["-t", "tmpfs", "-o", "ro", "none", readOnly])
        try {
          expect(stateProblem(join(readOnly, "state")).problems).toEqual([
            {
              field: "agent.state_dir",
              message: `the state directory ${join(readOnly, "state")} cannot be created: ${readOnly} is on a read-only file system (EROFS)`,
              fix: expect.stringMatching(
                /^give agent.state_dir a directory on a writable file system; under systemd/,
              ),
            },
          ])
        } finally {
          spawnSync("umount", [readOnly])
        }
      }
    })
  })

  it("reads the material of every source that exists, as a deploy would: a mismatched key, a file that is no certificate, a wrong PFX password", () => {
    inScratch((dir) => {
      const openssl = opensslIn(dir)
      selfSigned(dir, "a")
      openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "other.key"])
      selfSigned(dir, "b")
      exportPfx(dir, "a", "right")
      writeFileSync(join(dir, "bad.crt"), "not a certificate\n")
      for (const f of ["a.key", "other.key", "a.pfx"]) chmodSync(join(dir, f), 0o600)
      const target = (n: string) => `{ vault_url: "https://kv-prod.vault.azure.net", certificate_name: ${n} }`
      const config = join(dir, "material.yaml")
      writeFileSync(
        config,
        `agent: { state_dir: ${join(dir, "state")} }
deployments:
  - { name: good, source: { cert: ${join(dir, "a.crt")}, key: ${join(dir, "a.key")} }, target: ${target("good")} }
  - { name: mismatched, source: { cert: ${join(dir, "a.crt")}, key: ${join(dir, "other.key")} }, target: ${target("mm")} }
  - { name: malformed, source: { cert: ${join(dir, "bad.crt")}, key: ${join(dir, "a.key")} }, target: ${target("mf")} }
  - { name: pfx, source: { pfx: ${join(dir, "a.pfx")}, pfx_password_env: A_PFX_PASSWORD }, target: ${target("px")} }
  - { name: later, source: { cert: ${join(dir, "later.crt")}, key: ${join(dir, "a.key")} }, target: ${target("lt")} }
  - { name: unrelated, source: { cert: ${join(dir, "a.crt")}, chain: ${join(dir, "b.crt")}, key: ${join(dir, "a.key")} }, target: ${target("un")} }
  - { name: shared, source: { cert: ${join(dir, "a.crt")}, chain: ${join(dir, "b.crt")}, key: ${join(dir, "a.key")} }, target: ${target("sh")} }
`,
      )
      const wrong = agent(["--config", config, "--check", "--json"], { A_PFX_PASSWORD: "wrong" })
      expect(wrong.status, wrong.stdout + wrong.stderr).toBe(2)
      const problems = JSON.parse(wrong.stdout).problems
      expect(problems).toEqual([
        {
          field: "deployments[1].source",
          message: expect.stringMatching(
            /^key \S+other\.key: the private key matches none of the certificates of cert \S+a\.crt /,
          ),
          fix: expect.stringMatching(/^give the certificate, its chain and the key it was issued for/),
        },
        {
          field: "deployments[2].source",
          message: `cert ${join(dir, "bad.crt")}: is neither PEM text nor a DER certificate or PKCS#8 key`,
          // The parser's own fix, not the general one.
          fix: "supply PEM (CERTIFICATE blocks and one PRIVATE KEY block) or a single DER certificate",
        },
        {
          field: "deployments[3].source",
          message: `pfx ${join(dir, "a.pfx")}: the password in A_PFX_PASSWORD does not open it (or the file is incomplete)`,
          fix: expect.stringMatching(
            /^set A_PFX_PASSWORD to the password the PFX was exported with, and restart the agent/,
          ),
        },
        // Read and parsed, then judged by the deploy's own preflight: a chain certificate that is
        // not the leaf's issuer is refused by a deploy (read once for the two deployments sharing it).
        ...[5, 6].map((i) => ({
          field: `deployments[${i}].source`,
          message: expect.stringMatching(
            /^chain\[0\]: \("CN=b\.example\.test"\) is not part of the leaf's chain \(a deploy is refused\)$/,
          ),
          fix: expect.stringMatching(/^remove it, or add the certificates that link it to the leaf/),
        })),
      ])
      // No key material in what --check prints, whatever it read: no PEM armour, no line of a key
      // file's body, no password (a fix may name a "PRIVATE KEY block", which is no key).
      const printed = wrong.stdout + wrong.stderr
      expect(printed).not.toMatch(/-----BEGIN|-----END|wrong|right/)
      for (const f of ["a.key", "other.key"])
        for (const line of readFileSync(join(dir, f), "utf8").split("\n"))
          if (line.length >= 16 && !line.startsWith("-----")) expect(printed).not.toContain(line)
      // The right password: the PFX passes; the other two stay.
      const right = agent(["--config", config, "--check", "--json"], { A_PFX_PASSWORD: "right" })
      expect(JSON.parse(right.stdout).problems.map((p: { field: string }) => p.field)).toEqual([
        "deployments[1].source",
        "deployments[2].source",
        "deployments[5].source",
        "deployments[6].source",
      ])
    })
  })

  it("judges the material for the target's consumers as a deploy would: front_door refuses an EC self-signed certificate (exit 2), app_service warns of it (exit 0)", () => {
    inScratch((dir) => {
      selfSigned(dir, "a")
      chmodSync(join(dir, "a.key"), 0o600)
      const config = join(dir, "consumers.yaml")
      const write = (consumers: string) =>
        writeFileSync(
          config,
          `agent: { state_dir: ${join(dir, "state")} }
deployments:
  - name: edge
    source: { cert: ${join(dir, "a.crt")}, key: ${join(dir, "a.key")} }
    target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: edge, consumers: ${consumers} }
`,
        )
      write("[front_door]")
      const refused = agent(["--config", config, "--check", "--json"])
      expect(refused.status, refused.stdout + refused.stderr).toBe(2)
      expect(JSON.parse(refused.stdout).problems).toEqual([
        {
          field: "deployments[0].source",
          message: expect.stringMatching(
            /^key: is EC P-256: Azure Front Door \(consumers: front_door\) does not support certificates with EC keys.* \(a deploy is refused\)$/,
          ),
          fix: expect.stringMatching(/^issue the certificate with an RSA key/),
        },
        {
          field: "deployments[0].source",
          message: expect.stringMatching(
            /^leaf: is self-signed \(CN=a\.example\.test\): Azure Front Door \(consumers: front_door\) rejects self-signed certificates.* \(a deploy is refused\)$/,
          ),
          fix: expect.stringMatching(/^use a certificate issued by a CA on Microsoft's trusted CA list/),
        },
      ])
      write("[app_service]")
      const warned = agent(["--config", config, "--check", "--json"])
      expect(warned.status, warned.stdout + warned.stderr).toBe(0)
      expect(JSON.parse(warned.stdout).warnings.map((w: { message: string }) => w.message)).toEqual([
        expect.stringMatching(
          /^key: is EC P-256: Azure App Service \(consumers: app_service\) works with ECC/,
        ),
        expect.stringMatching(
          /^leaf: is self-signed .*only an App Service Environment v3 takes private CAs$/,
        ),
      ])
    })
  })

  it("names a listen address that is no address of this host (the start failed with EADDRNOTAVAIL); loopback and the wildcard pass", () => {
    inScratch((dir) => {
      const withListen = (listen: string) => {
        const config = join(dir, "listen.yaml")
        writeFileSync(
          config,
          `agent: { listen: "${listen}", state_dir: ${join(dir, "state")} }
deployments:
  - { name: a, source: { cert: ${join(dir, "later.crt")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }
`,
        )
        return agent(["--config", config, "--check", "--json"])
      }
      // TEST-NET-2 (RFC 5737): no host's interface.
      const foreign = withListen("198.51.100.7:9471")
      expect(foreign.status, foreign.stdout).toBe(2)
      expect(JSON.parse(foreign.stdout).problems).toEqual([
        {
          field: "agent.listen",
          message: "198.51.100.7:9471 is not an address of this host (EADDRNOTAVAIL)",
          fix: expect.stringMatching(
            /^listen on 127\.0\.0\.1, 0\.0\.0\.0 or an address of one of this host's interfaces/,
          ),
        },
      ])
      // A host name this host cannot resolve (RFC 2606's .invalid): the start failed with ENOTFOUND.
      const unresolved = withListen("no-such-host.invalid:9471")
      expect(unresolved.status, unresolved.stdout).toBe(2)
      expect(JSON.parse(unresolved.stdout).problems).toEqual([
        {
          field: "agent.listen",
          message: "no-such-host.invalid:9471: the host name does not resolve on this host (ENOTFOUND)",
          fix: expect.stringMatching(/^listen on an IP address \(127\.0\.0\.1, 0\.0\.0\.0, :: or an address/),
        },
      ])
      // Tried by binding port 0: every spelling the kernel takes passes.
      for (const fine of [
        "127.0.0.2:9471",
        "0.0.0.0:9471",
        "[::]:9471",
        "[::0]:9471",
        "[0:0:0:0:0:0:0:0]:9471",
        "[::ffff:7f00:1]:9471",
        "localhost:9471",
      ]) {
        const r = withListen(fine)
        expect(r.status, `${fine}: ${r.stdout}`).toBe(0)
      }
    })
  })

  it("refuses a source file another user could replace, with its field and the fix", () => {
    inScratch((dir) => {
      const open = join(dir, "open")
      mkdirSync(open)
      writeFileSync(join(open, "cert.pem"), "x")
      chmodSync(open, 0o777)
      const config = join(dir, "open.yaml")
      writeFileSync(
        config,
        `deployments:
  - { name: a, source: { cert: ${join(open, "cert.pem")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }
`,
      )
      const r = agent(["--config", config, "--check", "--json"])
      expect(r.status).toBe(2)
      expect(JSON.parse(r.stdout).problems).toEqual([
        {
          field: "deployments[0].source.cert",
          message: `${join(open, "cert.pem")}: the directory ${open} is writable by every user (mode 0777, no sticky bit): a user other than root and the agent's could replace the file, so it is not read`,
          fix: `chmod o-w ${open}; every directory on the way to a source file, every symbolic link followed and the file itself must be owned by root or the agent's user and writable by no one else`,
        },
      ])
    })
  })

  it.skipIf(process.getuid?.() !== 0)(
    "judges a source's files with its owner (source.owner): its files pass, root's key linked into its directory does not",
    () => {
      inScratch((dir) => {
        const acme = join(dir, "acme")
        mkdirSync(acme, { mode: 0o700 })
        writeFileSync(join(acme, "cert.pem"), "x")
        symlinkSync("/etc/shadow", join(acme, "key.pem"))
        lchownSync(join(acme, "key.pem"), 4242, 4242)
        chownSync(join(acme, "cert.pem"), 4242, 4242)
        chownSync(acme, 4242, 4242)
        const config = join(dir, "owned.yaml")
        writeFileSync(
          config,
          `deployments:
  - { name: a, source: { cert: ${join(acme, "cert.pem")}, key: ${join(acme, "key.pem")}, owner: 4242 }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }
`,
        )
        const r = agent(["--config", config, "--check", "--json"])
        expect(r.status).toBe(2)
        expect(JSON.parse(r.stdout).problems).toEqual([
          {
            field: "deployments[0].source.key",
            message: `${join(acme, "key.pem")}: the file /etc/shadow is owned by uid 0, and reached through the directory ${acme} of the source's owner (uid 4242): the source's owner could have put there a file it cannot read itself, such as root's key, so it is not read`,
            fix: expect.stringMatching(/^have uid 4242 write the file itself/),
          },
        ])
      })
    },
  )

  it.skipIf(process.getuid?.() !== 0)(
    "root checking a state directory of another user's: says the agent may run as that user, and keeps its records",
    () => {
      inScratch((dir) => {
        const state = join(dir, "service-state")
        mkdirSync(state, { mode: 0o700 })
        chownSync(state, 4242, 4242)
        const config = join(dir, "service.yaml")
        writeFileSync(
          config,
          `agent: { state_dir: ${state} }
deployments:
  - { name: a, source: { cert: ${join(dir, "later.crt")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }
`,
        )
        const r = agent(["--config", config, "--check", "--json"])
        expect(r.status).toBe(2)
        const [problem] = JSON.parse(r.stdout).problems as Array<{
          field: string
          message: string
          fix: string
        }>
        expect(problem?.field).toBe("agent.state_dir")
        expect(problem?.message).toBe(
          `the state directory ${state} is owned by uid 4242, not by the user this check runs as (root): an agent run as root would refuse it`,
        )
        expect(problem?.fix).toMatch(/^if the agent runs as uid 4242 .*run --check as the agent runs/)
        expect(problem?.fix).not.toMatch(/remove /)
      })
    },
  )

  it("names a federated token file that cannot be read (workload_identity), as doctor and the running agent would", () => {
    inScratch((dir) => {
      const config = workloadConfig(dir)
      const missing = join(dir, "no-such-token")
      const r = agent(["--config", config, "--check", "--json"], {
        ...workloadIds,
        AZURE_FEDERATED_TOKEN_FILE: missing,
      })
      expect(r.status, r.stdout + r.stderr).toBe(2)
      expect(JSON.parse(r.stdout).problems).toEqual([
        {
          field: "deployments[0].target.credential_mode",
          message: expect.stringContaining(
            `the federated token file ${missing} (AZURE_FEDERATED_TOKEN_FILE) cannot be read: no such file or directory (ENOENT)`,
          ),
          fix: expect.stringMatching(/^Check that the projected service account token is mounted there/),
        },
      ])
    })
  })

  it("refuses a federated token that expired more than 5 minutes ago, as the CLI does; 2 minutes past is valid", () => {
    inScratch((dir) => {
      const config = workloadConfig(dir)
      // A JWT's shape with only the times read (--check never checks a signature).
      const jwt = (expSeconds: number) =>
        [
          { alg: "RS256", typ: "JWT" },
          { sub: "system:serviceaccount:ns:sa", exp: expSeconds },
        ]
          .map((part) => Buffer.from(JSON.stringify(part)).toString("base64url"))
          .concat("c2lnbmF0dXJl")
          .join(".")
      const token = join(dir, "azure-identity-token")
      const env = {
        ...workloadIds,
        AZURE_FEDERATED_TOKEN_FILE: token,
      }
      const now = Math.floor(Date.now() / 1000)
      // Two hours past its expiry: a copy of a projected token nobody renews.
      writeFileSync(token, jwt(now - 2 * 3600))
      const r = agent(["--config", config, "--check", "--json"], env)
      expect(r.status, r.stdout + r.stderr).toBe(2)
      const problems = JSON.parse(r.stdout).problems
      expect(problems).toEqual([
        {
          field: "deployments[0].target.credential_mode",
          message: expect.stringMatching(
            new RegExp(
              `^workload_identity \\(1 deployment\\) cannot work: the token in ${token} expired at \\S+ \\(2 h ago, by this host's clock\\): Entra ID refuses an expired one \\(AADSTS700024\\)$`,
            ),
          ),
          fix: expect.stringMatching(/^Whatever writes the file must renew the token before it expires/),
        },
      ])
      expect(r.stdout).not.toContain(jwt(now - 2 * 3600))
      // Two minutes past: within the 5 minutes left for the clocks to differ, valid.
      writeFileSync(token, jwt(now - 120))
      const recent = agent(["--config", config, "--check", "--json"], env)
      expect(recent.status, recent.stdout + recent.stderr).toBe(0)
      expect(JSON.parse(recent.stdout)).toMatchObject({ valid: true, deployments: 1 })
    })
  })

  it("managed_identity's AKS token exchange: its expired token file is refused as workload_identity's, with the configured client id and no AZURE_CLIENT_ID", () => {
    inScratch((dir) => {
      const config = join(dir, "managed.yaml")
      writeFileSync(
        config,
        `deployments:
  - { name: a, source: { cert: ${join(dir, "later.crt")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a, credential_mode: managed_identity, managed_identity_client_id: 00000000-0000-0000-0000-0000000000a1 } }
`,
      )
      const jwt = [
        { alg: "RS256", typ: "JWT" },
        { sub: "system:serviceaccount:ns:sa", exp: Math.floor(Date.now() / 1000) - 2 * 3600 },
      ]
        .map((part) => Buffer.from(JSON.stringify(part)).toString("base64url"))
        .concat("c2lnbmF0dXJl")
        .join(".")
      const token = join(dir, "azure-identity-token")
      writeFileSync(token, jwt)
      const env = { AZURE_TENANT_ID: workloadIds.AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE: token }
      const r = agent(["--config", config, "--check", "--json"], env)
      expect(r.status, r.stdout + r.stderr).toBe(2)
      expect(JSON.parse(r.stdout).problems).toEqual([
        {
          field: "deployments[0].target.credential_mode",
          message: expect.stringMatching(
            new RegExp(
              `^managed_identity \\(1 deployment\\) cannot work: the token in ${token} expired at \\S+ \\(2 h ago, by this host's clock\\): Entra ID refuses an expired one \\(AADSTS700024\\)$`,
            ),
          ),
          fix: expect.stringMatching(
            /kubelet rewrites the projected service account token.*restarting the pod/,
          ),
        },
      ])
      expect(r.stdout).not.toContain(jwt)
      // Said at the deployment whose client id makes the exchange, not at a system-assigned one
      // before it, which asks the managed identity endpoint and never reads the file.
      const two = join(dir, "two.yaml")
      writeFileSync(
        two,
        `deployments:
  - { name: s, source: { cert: ${join(dir, "later.crt")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: s, credential_mode: managed_identity } }
${readFileSync(config, "utf8").split("\n")[1]}
`,
      )
      const both = agent(["--config", two, "--check", "--json"], env)
      expect(both.status, both.stdout + both.stderr).toBe(2)
      expect(JSON.parse(both.stdout).problems).toEqual([
        expect.objectContaining({
          field: "deployments[1].target.credential_mode",
          message: expect.stringMatching(/^managed_identity \(2 deployments\) cannot work: the token in /),
        }),
      ])
      // An invalid target (a bad vault_url) with the client id: its file problem is said with its own.
      const invalid = join(dir, "invalid.yaml")
      writeFileSync(
        invalid,
        readFileSync(config, "utf8").replace(
          "https://kv-prod.vault.azure.net",
          "http://kv-prod.vault.azure.net",
        ),
      )
      const bad = agent(["--config", invalid, "--check", "--json"], env)
      expect(bad.status, bad.stdout + bad.stderr).toBe(2)
      expect(JSON.parse(bad.stdout).problems.map((p: { field: string }) => p.field)).toEqual([
        "deployments[0].target.vault_url",
        "deployments[0].target.credential_mode",
      ])
      // Without AZURE_TENANT_ID there is no exchange (the managed identity endpoint is asked): not read.
      const { AZURE_TENANT_ID: _tenant, ...noTenant } = env
      const endpoint = agent(["--config", config, "--check", "--json"], noTenant)
      expect(endpoint.status, endpoint.stdout + endpoint.stderr).toBe(0)
    })
  })

  it.skipIf(process.getuid?.() !== 0)(
    "a privileged listen port the agent's user may not bind is a problem (the start failed with EACCES); root binds it (run as uid 65534)",
    () => {
      inScratch((dir) => {
        chmodSync(dir, 0o755)
        const state = join(dir, "state")
        mkdirSync(state, { mode: 0o700 })
        chownSync(state, 65534, 65534)
        const config = join(dir, "privileged.yaml")
        writeFileSync(
          config,
          `agent: { state_dir: ${state}, listen: "127.0.0.1:1" }
deployments:
  - { name: a, source: { cert: ${join(dir, "later.crt")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }
`,
          { mode: 0o644 },
        )
        const unprivileged = Number(readFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start", "utf8"))
        const r = checkAsNobody(config)
        if (unprivileged > 1) {
          expect(r.status, r.stdout + r.stderr).toBe(2)
          expect(JSON.parse(r.stdout).problems).toEqual([
            {
              field: "agent.listen",
              message: "127.0.0.1:1 needs privileges this user does not have (EACCES: a port below 1024)",
              fix: expect.stringMatching(
                /^choose a port of 1024 or more, or give the agent's service the capability/,
              ),
            },
          ])
        } else expect(r.status, r.stdout + r.stderr).toBe(0)
        // Root may bind it: valid (with a state directory of root's).
        const rootConfig = join(dir, "privileged-root.yaml")
        writeFileSync(rootConfig, readFileSync(config, "utf8").replace(state, join(dir, "root-state")))
        const asRoot = agent(["--config", rootConfig, "--check"])
        expect(asRoot.status, asRoot.stdout + asRoot.stderr).toBe(0)
      })
    },
  )

  it.skipIf(process.getuid?.() !== 0)(
    "an agent that may not read a source names the directory or file that refuses it, and the group fix (run as uid 65534)",
    () => {
      inScratch((dir) => {
        chmodSync(dir, 0o755)
        // certbot's layout: live/ 0700, so a user other than root may not search it.
        const live = join(dir, "live")
        mkdirSync(live, { mode: 0o700 })
        writeFileSync(join(live, "fullchain.pem"), "x")
        // A directory it may search, and a key only root may read.
        const open = join(dir, "keys")
        mkdirSync(open, { mode: 0o755 })
        writeFileSync(join(open, "privkey.pem"), "x", { mode: 0o600 })
        // live/ made searchable, its file a link into archive/, still 0700: archive/ is named.
        const live2 = join(dir, "live2")
        const archive = join(dir, "archive")
        mkdirSync(live2, { mode: 0o755 })
        mkdirSync(archive, { mode: 0o700 })
        writeFileSync(join(archive, "cert1.pem"), "x", { mode: 0o644 })
        symlinkSync("../archive/cert1.pem", join(live2, "cert.pem"))
        const state = join(dir, "state")
        mkdirSync(state, { mode: 0o700 })
        chownSync(state, 65534, 65534)
        const config = join(dir, "unreadable.yaml")
        writeFileSync(
          config,
          `agent: { state_dir: ${state} }
deployments:
  - { name: a, source: { cert: ${join(live, "fullchain.pem")}, key: ${join(open, "privkey.pem")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a } }
  - { name: b, source: { cert: ${join(live2, "cert.pem")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: b } }
`,
          { mode: 0o644 },
        )
        const r = checkAsNobody(config)
        expect(r.status, r.stderr).toBe(2)
        expect(JSON.parse(r.stdout).problems).toEqual([
          {
            field: "deployments[0].source.cert",
            message: `${join(live, "fullchain.pem")} cannot be read (EACCES): the agent's user (uid 65534, groups 65534) may not search the directory ${live} on its way`,
            fix: `give a group the agent is in (the systemd unit's SupplementaryGroups=, ssl-cert) search (x) on it: chgrp GROUP ${live} && chmod g+x ${live} (never g+w); or run the agent as a user that may read it`,
          },
          {
            field: "deployments[0].source.key",
            message: `${join(open, "privkey.pem")} cannot be read (EACCES): the agent's user (uid 65534, groups 65534) may not read the file ${join(open, "privkey.pem")}`,
            fix: expect.stringContaining(`chgrp GROUP ${join(open, "privkey.pem")} && chmod g+r`),
          },
          {
            field: "deployments[1].source.cert",
            message: `${join(live2, "cert.pem")} cannot be read (EACCES): the agent's user (uid 65534, groups 65534) may not search the directory ${archive} on its way`,
            fix: expect.stringContaining(`chgrp GROUP ${archive} && chmod g+x ${archive}`),
          },
        ])
      })
    },
  )

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
      // challenge names it): no warning for it.
      expect(document.allowedTenants).toEqual({
        modes: ["workload_identity"],
        tenants: [upper.toLowerCase(), "contoso.onmicrosoft.com"],
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
