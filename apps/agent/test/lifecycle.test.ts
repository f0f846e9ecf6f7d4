/**
 * The built agent against the emulator: a certificate created, renewed (new
 * key and new certificate), broken (mismatched key: nothing reaches the
 * vault) and fixed; /metrics, /healthz, /readyz; SIGTERM exits 0.
 */
import { spawnSync } from "node:child_process"
import { promtoolSkipped } from "@kvdeploy/vitest-config/promtool"
import { describe, expect, it } from "vitest"
import { agentSuite, baseEnv, metricValue, startAgent, writeConfig } from "./harness.js"

const VAULT = "agent-life"
const suite = agentSuite([VAULT])

const latestX5t = (name: string) => suite.emulator.state.versions(VAULT, name)?.at(-1)?.x5t
const writesSince = (mark: number) =>
  suite.emulator.requests
    .entries({ since: mark, vault: VAULT })
    .filter((e) => e.method !== "GET" && !e.challenge).length

describe("lifecycle of one deployment", () => {
  it("deploys a new certificate, a renewal, refuses a broken or half-written source and deploys it once fixed", async () => {
    const { emulator, pki, work } = suite
    const first = await pki.leaf("api.example.test")
    work.write("api.key", first.keyPem)
    work.write("api.crt", first.certPem)
    const config = writeConfig(work, emulator, [
      {
        name: "api",
        vault: VAULT,
        certificate: "api-cert",
        source: { cert: work.path("api.crt"), key: work.path("api.key") },
      },
    ])
    // Debug lines too: the idle release below is one.
    const a = startAgent(config, {
      ...baseEnv(),
      ...emulator.env.clientSecret,
      KVDEPLOY_AGENT_LOG_LEVEL: "debug",
    })
    suite.agent = a
    // No material workers by default.
    expect((await a.waitFor((l) => l.msg === "kvdeploy-agent started")).materialWorkers).toBe(0)

    // Created.
    await a.waitFor((l) => l.deployment === "api" && l.msg === "deploy: Succeeded")
    expect(latestX5t("api-cert")).toBe(first.x5t)
    await a.waitFor((l) => /Listening on/.test(l.msg))
    await expect.poll(async () => (await a.http("/readyz")).status, { timeout: 10_000 }).toBe(200)
    expect((await a.http("/healthz")).status).toBe(200)

    // Renewed: a new key and a new certificate, written one after the other (atomic renames).
    const second = await pki.leaf("api.example.test")
    let from = a.lines.length
    work.write("api.key", second.keyPem)
    work.write("api.crt", second.certPem)
    await a.waitFor((l) => l.deployment === "api" && l.msg === "deploy: Succeeded", { from })
    await expect.poll(() => latestX5t("api-cert"), { timeout: 10_000 }).toBe(second.x5t)

    // Broken: the certificate of a third issue with the second key. Nothing is written to the vault.
    const third = await pki.leaf("api.example.test")
    const mark = emulator.requests.mark()
    from = a.lines.length
    work.write("api.crt", third.certPem)
    const broken = await a.waitFor((l) => l.deployment === "api" && /^source broken/.test(l.msg), { from })
    expect(JSON.stringify(broken.problems)).toMatch(/matches none of the certificates/)
    // Retried with backoff: a second report, still nothing written.
    await a.waitFor(
      (l, i = a.lines.indexOf(l)) =>
        i > a.lines.indexOf(broken) && l.deployment === "api" && /^source broken/.test(l.msg),
      { from },
    )
    expect(writesSince(mark)).toBe(0)
    expect(latestX5t("api-cert")).toBe(second.x5t)
    const scraped = await a.http("/metrics")
    // Prometheus text exposition, as a scraper reads it.
    expect(scraped.contentType).toMatch(/^text\/plain; version=0\.0\.4/)
    const brokenPage = scraped.body
    expect(metricValue(brokenPage, "kvdeploy_agent_source_broken", { deployment: "api" })).toBe(1)

    // Half-written: the certificate file is cut off mid-way (written in place, not renamed). Still nothing written.
    from = a.lines.length
    work.writeInPlace("api.crt", third.certPem.slice(0, Math.floor(third.certPem.length / 2)))
    await a.waitFor((l) => l.deployment === "api" && /^source broken/.test(l.msg), { from })
    expect(writesSince(mark)).toBe(0)
    work.write("api.crt", third.certPem)

    // Fixed: the matching key arrives.
    from = a.lines.length
    work.write("api.key", third.keyPem)
    const deployed = await a.waitFor((l) => l.deployment === "api" && l.msg === "deploy: Succeeded", { from })
    expect(latestX5t("api-cert")).toBe(third.x5t)

    // The last outcome is the deploy's (Succeeded) until another reconcile of the same source finds the
    // vault serving it (Skipped, logged "in place" when the outcome before was not Skipped): a file
    // event that arrives after the deploy read the files is such a reconcile. The series is Succeeded,
    // or Skipped only once that reconcile has been logged; never both.
    const outcomeSeries = (page: string) =>
      [...page.matchAll(/^kvdeploy_agent_last_outcome\{([^}]*)\} (\S+)$/gm)]
        .filter((m) => m[1]?.includes('deployment="api"'))
        .map((m) => `${/outcome="([^"]*)"/.exec(m[1] ?? "")?.[1]}=${m[2]}`)
    const inPlaceSince = (line: (typeof a.lines)[number]) =>
      a.lines
        .slice(a.lines.indexOf(line) + 1)
        .some((l) => l.deployment === "api" && l.msg === "in place: the vault serves the source certificate")
    const skippedAttempts = (page: string) =>
      metricValue(page, "certctl_deploy_attempts_total", { target_type: "azure_kv", result: "skipped" }) ?? 0
    // The deploy's log line is written as the deploy ends, its outcome recorded right after.
    let page = ""
    await expect
      .poll(
        async () => {
          page = (await a.http("/metrics")).body
          const series = outcomeSeries(page).join(",")
          return series === "Succeeded=1" || (series === "Skipped=1" && inPlaceSince(deployed))
        },
        { timeout: 10_000 },
      )
      .toBe(true)
    // The source written again, unchanged: one more reconcile, which finds it in place (Skipped).
    const skippedBefore = skippedAttempts(page)
    work.write("api.crt", third.certPem)
    // Metrics: the catalogue and the agent's own series, valid exposition.
    await expect
      .poll(
        async () => {
          page = (await a.http("/metrics")).body
          return { series: outcomeSeries(page), more: skippedAttempts(page) > skippedBefore }
        },
        { timeout: 10_000 },
      )
      .toEqual({ series: ["Skipped=1"], more: true })
    expect(
      metricValue(page, "certctl_deploy_attempts_total", { target_type: "azure_kv", result: "succeeded" }),
    ).toBe(3)
    expect(metricValue(page, "kvdeploy_agent_source_broken", { deployment: "api" })).toBe(0)
    expect(
      metricValue(page, "kvdeploy_agent_certificate_expiry_timestamp_seconds", { deployment: "api" }),
    ).toBe(third.notAfter.getTime() / 1000)
    expect(
      metricValue(page, "kvdeploy_agent_last_success_timestamp_seconds", { deployment: "api" }),
    ).toBeGreaterThan(0)
    expect(metricValue(page, "kvdeploy_agent_ready")).toBe(1)
    // A valid exposition, as promtool reads it (skipped locally without promtool; required when CI=true).
    if (!promtoolSkipped) {
      const promtool = spawnSync("promtool", ["check", "metrics"], { input: page, encoding: "utf8" })
      expect(
        promtool.error,
        "promtool is missing (Debian's prometheus package); .ci/run installs it",
      ).toBeUndefined()
      expect(promtool.status, promtool.stdout + promtool.stderr).toBe(0)
    }

    // No key material in any log line.
    const log = JSON.stringify(a.lines) + a.stderr()
    for (const issued of [first, second, third]) {
      const body = issued.keyPem.split("\n").slice(1, -2).join("")
      expect(log).not.toContain(body.slice(0, 40))
    }
    expect(log).not.toContain("PRIVATE KEY")

    // Once the reconciler is quiet, the vault client's idle keep-alive connections are closed.
    const closed = await a.waitFor((l) => l.msg === "idle: vault connections closed after the pass")
    expect(closed.connections).toBeGreaterThanOrEqual(1)

    // Every HTTP request the vault received from the agent is in kvdeploy_vault_http_requests_total
    // (the emulator's request log is the ground truth): each deploy's requests, the challenges' 401s.
    const quiet = (await a.http("/metrics")).body
    const httpSeries = [...quiet.matchAll(/^kvdeploy_vault_http_requests_total\{([^}]*)\} (\S+)$/gm)]
    const httpTotal = httpSeries.reduce((sum, m) => sum + Number(m[2]), 0)
    expect(httpTotal).toBe(emulator.requests.count({ vault: VAULT }))
    expect(
      metricValue(quiet, "kvdeploy_vault_http_requests_total", { operation: "importVersion", status: "200" }),
    ).toBe(3)
    expect(
      metricValue(quiet, "kvdeploy_vault_http_requests_total", { status: "401" }),
    ).toBeGreaterThanOrEqual(1)

    a.signal("SIGTERM")
    expect(await a.exited).toBe(0)
  })
})
