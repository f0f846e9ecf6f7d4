/** `--check` and `--check --json`: the configuration judged in the agent's environment, exit 0 or 2. */
import { execFileSync, spawnSync } from "node:child_process"
import {
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  mkdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import {
  agent,
  exportPfx,
  inScratch,
  opensslIn,
  selfSigned,
  workloadConfig,
  workloadIds,
} from "./checkFixtures.js"
import { bin, checkAsNobody } from "./harness.js"

describe("kvdeploy-agent --check", () => {
  it("refuses an empty --config path, naming the fix", () => {
    const empty = agent(["--config", "", "--check", "--json"])
    expect(empty.status).toBe(2)
    expect(JSON.parse(empty.stdout).problems[0].message).toBe("is an empty path")
  })

  it("refuses a configuration that is a FIFO (no writer: it waited for good) or a device, at once, naming the fix", () => {
    inScratch((dir) => {
      const fifo = join(dir, "agent.yaml.pipe")
      execFileSync("mkfifo", [fifo])
      for (const config of [fifo, "/dev/zero"]) {
        const started = Date.now()
        const r = spawnSync(process.execPath, [bin, "--config", config, "--check", "--json"], {
          encoding: "utf8",
          timeout: 15_000,
          killSignal: "SIGKILL",
        })
        expect(r.status, `${config}: ${r.stdout}${r.stderr}`).toBe(2)
        expect(Date.now() - started).toBeLessThan(10_000)
        const problem = JSON.parse(r.stdout).problems[0]
        expect(problem.message).toBe("cannot be read: it is not a regular file (a FIFO, socket or device)")
        expect(problem.fix).toBe(
          "give the configuration file itself, a regular file: the agent reads it again at each reload (SIGHUP), which a pipe cannot give, and a FIFO with no writer holds it for good",
        )
      }
    })
  })

  it("a target field named like an Object method (constructor, __proto__) is an unknown field: exit 2 naming it, not a silent exit 1", () => {
    inScratch((dir) => {
      const config = join(dir, "methods.yaml")
      writeFileSync(
        config,
        `deployments:
  - { name: a, source: { cert: a.crt, key: a.key }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a, constructor: x } }
  - { name: b, source: { cert: b.crt, key: b.key }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: b, __proto__: x, toString: y } }
`,
      )
      const json = agent(["--config", config, "--check", "--json"])
      expect(json.status).toBe(2)
      const problems = (JSON.parse(json.stdout) as { problems: Array<{ field: string; message: string }> })
        .problems
      expect(problems.map((p) => [p.field, p.message])).toEqual([
        ["deployments[0].target.constructor", "is not a known field"],
        ["deployments[1].target.__proto__", "is not a known field"],
        ["deployments[1].target.toString", "is not a known field"],
      ])
      const text = agent(["--config", config, "--check"])
      expect(text.status).toBe(2)
      expect(text.stderr).toContain("deployments[0].target.constructor: is not a known field")
    })
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

  it("warns of a private key or PFX file every user may read (exit 0: a warning), not of one behind a directory others cannot enter, nor of a group-readable one", () => {
    inScratch((dir) => {
      chmodSync(dir, 0o755)
      const open = join(dir, "open")
      mkdirSync(open, { mode: 0o755 })
      selfSigned(open, "ok")
      exportPfx(open, "ok", "x")
      chmodSync(join(open, "ok.key"), 0o644)
      chmodSync(join(open, "ok.pfx"), 0o604)
      // The same key, 0644, in a directory others cannot enter (certbot's archive/ is 0700).
      const closed = join(dir, "closed")
      mkdirSync(closed, { mode: 0o700 })
      selfSigned(closed, "ok")
      chmodSync(join(closed, "ok.key"), 0o644)
      // Group-readable: how a key is shared with the web server (0640 root:ssl-cert).
      const group = join(dir, "group")
      mkdirSync(group, { mode: 0o755 })
      selfSigned(group, "ok")
      chmodSync(join(group, "ok.key"), 0o640)
      const target = (name: string) =>
        `{ vault_url: "https://kv-prod.vault.azure.net", certificate_name: ${name}, credential_mode: managed_identity }`
      const config = join(dir, "readable.yaml")
      writeFileSync(
        config,
        `deployments:
  - { name: open, source: { cert: ${join(open, "ok.crt")}, key: ${join(open, "ok.key")} }, target: ${target("open")} }
  - { name: pfx, source: { pfx: ${join(open, "ok.pfx")}, pfx_password_env: PORTAL_PFX_PASSWORD }, target: ${target("pfx")} }
  - { name: closed, source: { cert: ${join(closed, "ok.crt")}, key: ${join(closed, "ok.key")} }, target: ${target("closed")} }
  - { name: group, source: { cert: ${join(group, "ok.crt")}, key: ${join(group, "ok.key")} }, target: ${target("group")} }
`,
        { mode: 0o644 },
      )
      const json = agent(["--config", config, "--check", "--json"], { PORTAL_PFX_PASSWORD: "x" })
      expect(json.status, json.stdout + json.stderr).toBe(0)
      const document = JSON.parse(json.stdout) as {
        warnings: Array<{ field: string; message: string; fix: string }>
      }
      const key = join(open, "ok.key")
      const pfx = join(open, "ok.pfx")
      expect(document.warnings).toEqual([
        {
          field: "deployments[0].source.key",
          message: `the private key file ${key} is readable by every user (mode 0644): any local user can copy the key`,
          fix: `chmod 600 ${key}, or chmod 640 ${key} with a group the agent's user is in (chgrp ssl-cert ${key}: the systemd unit runs the agent with SupplementaryGroups=ssl-cert)`,
        },
        {
          field: "deployments[1].source.pfx",
          message: `the PFX file ${pfx} is readable by every user (mode 0604), and it holds the private key: any local user can copy the key`,
          fix: `chmod 600 ${pfx}, or chmod 640 ${pfx} with a group the agent's user is in (chgrp ssl-cert ${pfx}: the systemd unit runs the agent with SupplementaryGroups=ssl-cert)`,
        },
      ])
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
})
