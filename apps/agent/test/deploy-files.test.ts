/** The shipped deployment files: the systemd unit passes systemd-analyze verify; the Kubernetes manifests wire AKS workload identity; the Dockerfile's context leaves out what is installed or built. */
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { describe, expect, it } from "vitest"
import { parseAllDocuments } from "yaml"
import { parseAgentConfig } from "../src/config.js"
import { INTERNAL_ERROR_EXIT } from "../src/internalError.js"
import { agentRoot, bin } from "./harness.js"

const deploy = join(agentRoot, "deploy")
const repoRoot = resolve(agentRoot, "..", "..")

/**
 * Whether `.dockerignore` leaves a context path out, as Docker matches it: each pattern from the
 * context's root, against the path and each directory above it (a directory left out takes its
 * contents along); `**` spans directories, `*` and `?` stay within one; the last pattern that
 * matches decides, so a later `!pattern` keeps what an earlier one left out.
 */
const dockerIgnores = (dockerignore: string) => {
  const rules = dockerignore
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const keep = line.startsWith("!")
      const pattern = (keep ? line.slice(1) : line).replace(/^\/+|\/+$/g, "")
      const parts = pattern.split("/")
      const source = parts
        .map((part, i) => {
          const last = i === parts.length - 1
          if (part === "**") return last ? ".*" : "(?:.*/)?"
          const glob = part
            .replace(/[.+^${}()|[\]\\]/g, "\\$&")
            .replace(/\*/g, "[^/]*")
            .replace(/\?/g, "[^/]")
          return last ? glob : `${glob}/`
        })
        .join("")
      return { keep, re: new RegExp(`^${source}$`) }
    })
  return (path: string): boolean => {
    const parts = path.split("/")
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join("/"))
    let ignored = false
    for (const rule of rules) if (prefixes.some((p) => rule.re.test(p))) ignored = !rule.keep
    return ignored
  }
}

const mallocSettings = {
  MALLOC_ARENA_MAX: "2",
  MALLOC_TRIM_THRESHOLD_: "131072",
  MALLOC_MMAP_THRESHOLD_: "131072",
}

describe("deployment files", () => {
  // Skipped locally without systemd-analyze; with CI=true (.ci/run installs systemd) it runs and fails.
  const analyzeSkipped =
    spawnSync("systemd-analyze", ["--version"], { encoding: "utf8" }).error !== undefined &&
    process.env.CI !== "true"
  if (analyzeSkipped)
    console.warn(
      "\n!!! SKIPPING systemd-analyze verify of the unit: systemd-analyze is not installed (it fails instead when CI=true)\n",
    )
  it.skipIf(analyzeSkipped)("the systemd unit passes systemd-analyze verify", () => {
    const dir = mkdtempSync(join("/dev/shm", "kvdeploy-agent-unit-"))
    try {
      // verify checks that ExecStart's program exists: point it at the built agent for the check.
      const unit = readFileSync(join(deploy, "systemd", "kvdeploy-agent.service"), "utf8").replace(
        "ExecStart=/usr/local/bin/kvdeploy-agent",
        `ExecStart=${process.execPath} ${bin}`,
      )
      writeFileSync(join(dir, "kvdeploy-agent.service"), unit)
      const r = spawnSync("systemd-analyze", ["verify", join(dir, "kvdeploy-agent.service")], {
        encoding: "utf8",
      })
      expect(
        r.error,
        "systemd-analyze is missing (Debian's systemd package); .ci/run installs it",
      ).toBeUndefined()
      expect(r.status, r.stdout + r.stderr).toBe(0)
      expect(r.stderr).not.toMatch(/kvdeploy-agent\.service:\d+:/)
      // The restart settings are among what it parses: a value it cannot take, or a key in a section
      // that does not hold it, is a line of its warnings (which systemd ignores, and this test refuses).
      for (const [from, to] of [
        ["StartLimitIntervalSec=0", "StartLimitIntervalSec=never"],
        ["RestartSec=30s", "RestartSec=thirty"],
        ["RestartPreventExitStatus=2", "RestartPreventExitStatus=2 EXIT_CONFIGURATION"],
        ["StartLimitIntervalSec=0", "StartLimitIntervalSec=0\nRestartSteps=5"],
      ] as const) {
        expect(unit).toContain(from)
        writeFileSync(join(dir, "kvdeploy-agent.service"), unit.replace(from, to))
        const broken = spawnSync("systemd-analyze", ["verify", join(dir, "kvdeploy-agent.service")], {
          encoding: "utf8",
        })
        expect(broken.stderr, to).toMatch(/kvdeploy-agent\.service:\d+: /)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("the systemd unit writes no core dump (it would hold key material and the client secret)", () => {
    const unit = readFileSync(join(deploy, "systemd", "kvdeploy-agent.service"), "utf8")
    const service = unit.slice(unit.indexOf("[Service]"), unit.indexOf("[Install]"))
    // In the [Service] section, where systemd reads it (the verify test above checks its syntax).
    expect(service).toMatch(/^LimitCORE=0$/m)
  })

  it("the Kubernetes manifests use workload identity and a configuration the agent accepts", () => {
    const docs: Array<unknown> = parseAllDocuments(
      readFileSync(join(deploy, "kubernetes", "kvdeploy-agent.yaml"), "utf8"),
    ).map((d) => d.toJS())
    const at = (value: unknown, ...path: Array<string | number>): unknown =>
      path.reduce<unknown>(
        (v, k) =>
          typeof v === "object" && v !== null ? (v as Record<string | number, unknown>)[k] : undefined,
        value,
      )
    const byKind = (kind: string) => docs.find((d) => at(d, "kind") === kind)
    const sa = byKind("ServiceAccount")
    expect(at(sa, "metadata", "annotations", "azure.workload.identity/client-id")).toMatch(/^[0-9a-f-]{36}$/)
    const deployment = byKind("Deployment")
    const pod = at(deployment, "spec", "template")
    expect(at(pod, "metadata", "labels", "azure.workload.identity/use")).toBe("true")
    expect(at(pod, "spec", "serviceAccountName")).toBe(at(sa, "metadata", "name"))
    expect(at(deployment, "spec", "replicas")).toBe(1)
    // The certificate's Secret volume: its key readable by the pod's fsGroup only (0440), so the
    // agent's warning of a key every user may read does not fire at each start.
    const podVolumes = at(pod, "spec", "volumes") as Array<Record<string, unknown>>
    const secretVolumes = podVolumes.filter((v) => v.secret !== undefined)
    expect(secretVolumes.length).toBeGreaterThan(0)
    for (const v of secretVolumes) expect(at(v, "secret", "defaultMode")).toBe(0o440)
    expect(at(pod, "spec", "securityContext", "fsGroup")).toBe(
      at(pod, "spec", "securityContext", "runAsGroup"),
    )
    expect(at(pod, "spec", "containers", 0, "readinessProbe", "httpGet", "path")).toBe("/readyz")
    expect(at(pod, "spec", "containers", 0, "livenessProbe", "httpGet", "path")).toBe("/healthz")
    const config = at(byKind("ConfigMap"), "data", "agent.yaml")
    expect(typeof config).toBe("string")
    // In the pod, the workload identity webhook sets these variables.
    const parsed = parseAgentConfig(String(config), "/etc/kvdeploy/agent.yaml", "/etc/kvdeploy", {
      AZURE_TENANT_ID: "00000000-0000-0000-0000-000000000001",
      AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000002",
      AZURE_FEDERATED_TOKEN_FILE: "/var/run/secrets/azure/tokens/azure-identity-token",
    })
    if (parsed._tag === "Failure") throw new Error(parsed.failure.message)
    expect(parsed.success.deployments[0]?.target.credentialMode).toBe("workload_identity")
    // No source is read through a configMap volume's mount: its root may be 0777 (kubelet's disk),
    // a directory others may write, which the agent refuses on a read-only mount too.
    const volumes = at(pod, "spec", "volumes") as Array<{ name: string; configMap?: unknown }>
    const mounts = at(pod, "spec", "containers", 0, "volumeMounts") as Array<{
      name: string
      mountPath: string
    }>
    const configMapMounts = mounts.filter((m) =>
      volumes.some((v) => v.name === m.name && v.configMap !== undefined),
    )
    expect(configMapMounts.length).toBeGreaterThan(0)
    for (const d of parsed.success.deployments)
      for (const path of d.source._tag === "Pem" ? [d.source.cert, d.source.key ?? ""] : [d.source.pfx])
        for (const m of configMapMounts) expect(path.startsWith(`${m.mountPath}/`), path).toBe(false)
    // The glibc malloc settings the memory figures were measured with (docs/agent.md, "Memory").
    const env = at(pod, "spec", "containers", 0, "env") as Array<{ name: string; value: string }>
    expect(Object.fromEntries(env.map((e) => [e.name, e.value]))).toMatchObject(mallocSettings)
  })

  it("the systemd unit does not restart an agent that refused its configuration (the exit code it uses)", () => {
    const unit = readFileSync(join(deploy, "systemd", "kvdeploy-agent.service"), "utf8")
    const prevented = /^RestartPreventExitStatus=(.+)$/m.exec(unit)?.[1]?.split(/\s+/)
    const dir = mkdtempSync(join("/dev/shm", "kvdeploy-agent-bad-config-"))
    try {
      const file = join(dir, "agent.yaml")
      writeFileSync(file, "deployments: [{ name: 1 }]\n")
      for (const args of [
        ["--config", file],
        ["--config", join(dir, "missing.yaml")],
      ]) {
        const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", timeout: 30_000 })
        expect(r.status, r.stderr + r.stdout).not.toBe(0)
        expect(prevented).toContain(String(r.status))
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    // A start-up failure that may pass (a lock, an address in use) is still restarted.
    expect(unit).toMatch(/^Restart=on-failure$/m)
    expect(prevented).not.toContain("1")
  })

  it("the systemd unit restarts a failed agent 30 s apart for as long as it fails, and never refuses a start", () => {
    const unit = readFileSync(join(deploy, "systemd", "kvdeploy-agent.service"), "utf8")
    const section = (name: string) => {
      const from = unit.indexOf(`[${name}]`)
      const to = unit.indexOf("\n[", from + 1)
      return unit.slice(from, to === -1 ? undefined : to)
    }
    const value = (text: string, key: string) => new RegExp(`^${key}=(.*)$`, "m").exec(text)?.[1]
    const prevented = value(section("Service"), "RestartPreventExitStatus")?.split(/\s+/)
    // Exit 70 (a defect at start, EX_SOFTWARE) may not recur, exit 1 (the listen address not yet
    // assigned at boot, a lock) may pass: restarted, 30 s later, which a failure that recurs at every
    // start keeps to (2,880 starts a day, not one every 5 s).
    expect(prevented).not.toContain(String(INTERNAL_ERROR_EXIT))
    expect(prevented).not.toContain("1")
    expect(value(section("Service"), "Restart")).toBe("on-failure")
    expect(value(section("Service"), "RestartSec")).toBe("30s")
    // No start limit (read from [Unit], systemd 230 and later): one counts every start, an operator's
    // `systemctl restart` after fixing the configuration included, and once hit it left the agent down
    // for good (a failure that passes, such as an address assigned late at boot, included) until
    // `systemctl reset-failed`. systemd's default limit (5 starts in 10 s) is switched off too.
    expect(value(section("Unit"), "StartLimitIntervalSec")).toBe("0")
    expect(unit).not.toMatch(/^StartLimitBurst=/m)
    expect(section("Service")).not.toMatch(/^StartLimit/m)
  })

  it("the systemd unit and the Dockerfile set the same glibc malloc settings", () => {
    const unit = readFileSync(join(deploy, "systemd", "kvdeploy-agent.service"), "utf8")
    const dockerfile = readFileSync(join(deploy, "docker", "Dockerfile"), "utf8")
    for (const [name, value] of Object.entries(mallocSettings)) {
      expect(unit).toMatch(new RegExp(`^Environment=.*\\b${name}=${value}\\b`, "m"))
      expect(dockerfile).toMatch(new RegExp(`^ENV .*\\b${name}=${value}\\b`, "m"))
    }
  })

  it("the Dockerfile's syntax line is its first, where BuildKit reads it", () => {
    const dockerfile = readFileSync(join(deploy, "docker", "Dockerfile"), "utf8")
    expect(dockerfile.split("\n")[0]).toMatch(/^# syntax=docker\/dockerfile:\d/)
    expect(dockerfile.split("\n").filter((l) => /^#\s*syntax=/.test(l))).toHaveLength(1)
  })

  it(".dockerignore leaves out what is installed or built and keeps what the image's build reads", () => {
    const ignored = dockerIgnores(readFileSync(join(repoRoot, ".dockerignore"), "utf8"))
    for (const path of [
      "node_modules/.pnpm/effect@4.1.0/node_modules/effect/package.json",
      "apps/agent/node_modules/effect/package.json",
      "packages/core/node_modules/.bin/tsc",
      "scripts/toolchain/node_modules/node/bin/node",
      "apps/agent/dist/sea/kvdeploy-agent",
      "apps/cli/dist/bin.js",
      ".git/HEAD",
      "apps/cli/.turbo/turbo-build.log",
      "apps/cli/.vitest-results.json",
    ])
      expect(ignored(path), path).toBe(true)
    // The build stage copies the whole context, then installs with the frozen lockfile (every
    // workspace package's manifest) and builds the agent and its packages from their sources.
    const dockerfile = readFileSync(join(deploy, "docker", "Dockerfile"), "utf8")
    const copied = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) =>
      (m[1] ?? "").split(/\s+/),
    )
    expect(copied).toEqual(["."])
    const needed = [
      "package.json",
      "pnpm-lock.yaml",
      "pnpm-workspace.yaml",
      "apps/agent/package.json",
      "apps/agent/scripts/bundle.mjs",
      "apps/agent/scripts/sea.mjs",
      "apps/agent/src/bin.ts",
      "packages/core/src/index.ts",
    ]
    const tracked = spawnSync("git", ["ls-files"], { cwd: repoRoot, encoding: "utf8" })
    // In a git checkout, every file of the repository is kept but the toolchain of scripts/dev.
    if (tracked.status === 0)
      needed.push(
        ...tracked.stdout.split("\n").filter((f) => f !== "" && !f.startsWith("scripts/toolchain/")),
      )
    expect(needed.filter((path) => ignored(path))).toEqual([])
  })

  it("the .dockerignore matcher of this test can keep and leave out", () => {
    const ignored = dockerIgnores("**/dist\nbuild\n!build/keep\n*.log\n")
    expect(ignored("a/b/dist/x.js")).toBe(true)
    expect(ignored("dist")).toBe(true)
    expect(ignored("a/distant/x")).toBe(false)
    expect(ignored("build/x")).toBe(true)
    expect(ignored("build/keep")).toBe(false)
    expect(ignored("a/build/x")).toBe(false)
    expect(ignored("x.log")).toBe(true)
    expect(ignored("a/x.log")).toBe(false)
  })
})
