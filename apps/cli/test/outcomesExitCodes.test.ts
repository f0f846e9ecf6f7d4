/**
 * Each outcome of the BUILT kvdeploy's deploy against the emulator over HTTPS, with its exit
 * code: 1 Failed, 2 Rejected, 3 RolledBack, 4 Unverified, 5 Superseded (split from
 * commands.test.ts so the two test workers share the load).
 */
import type { ChildProcess } from "node:child_process"
import { X509Certificate } from "node:crypto"
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { listening } from "@kvdeploy/core/test"
import { encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { describe, expect, it } from "vitest"
import { issue } from "../src/cli/throwawayPki.js"
import { deployArgs, fx, inOwnVault, type Outcome, useCommandsWorld, world } from "./commandsWorld.js"
import { json, runCli } from "./harness.js"

useCommandsWorld([
  "outcomes-1",
  "outcomes-2",
  "outcomes-3",
  "outcomes-4",
  "outcomes-5",
  "outcomes-6",
  "outcomes-7",
  "outcomes-8",
  "outcomes-9",
  "outcomes-10",
  "outcomes-11",
  "outcomes-12",
  "outcomes-13",
  "outcomes-14",
  "outcomes-15",
  "outcomes-16",
  "outcomes-17",
])

// The tests run side by side, each on a vault of its own (its writes since a mark are its own);
// the two that take permissions from the client, which every vault shares, run alone after them.
describe("outcomes and exit codes", { concurrent: true }, () => {
  it("Rejected (exit 2): a certificate kvdeploy does not manage, until --adopt", async () => {
    const { world, deployArgs } = inOwnVault("outcomes-1")
    const name = "adopt-me"
    await world.emulator.state.foreignImport(world.vault, name)
    const leaf = await fx.leaf()
    const mark = world.emulator.requests.mark()
    const r = await runCli(deployArgs(name), { stdin: fx.bundle(leaf), env: world.env })
    expect(r.code).toBe(2)
    expect(json<Outcome>(r)._tag).toBe("Rejected")
    // A certificate id of its own is no permission to take the certificate over.
    const withId = await runCli(deployArgs(name, ["--certificate-id", "other-id"]), {
      stdin: fx.bundle(leaf),
      env: world.env,
    })
    expect(withId.code, withId.stdout).toBe(2)
    expect(json<Outcome>(withId)._tag).toBe("Rejected")
    expect(world.writesSince(mark)).toBe(0)
    const adopted = await runCli(deployArgs(name, ["--adopt"]), { stdin: fx.bundle(leaf), env: world.env })
    expect(adopted.code, adopted.stdout).toBe(0)
    expect(json<Outcome & { adopted: boolean }>(adopted).adopted).toBe(true)
  })

  it("--metrics-file: a run that wrote nothing keeps the expiry series of the version still served (a lost import found not to have taken effect, a refused takeover)", async () => {
    const { world, deployArgs } = inOwnVault("outcomes-17")
    const name = "expiry-kept"
    const file = join(dirname(world.targetFile(name)), "kvdeploy-expiry-kept.prom")
    const target = `vault_url="${world.emulator.vault(world.vault).url}",certificate_name="${name}"`
    /** The file's expiry series, in seconds, or undefined when it has none. */
    const expiry = (): number | undefined => {
      const series = `kvdeploy_certificate_expiry_timestamp_seconds{${target}} `
      const line = readFileSync(file, "utf8")
        .split("\n")
        .find((l) => l.startsWith(series))
      return line === undefined ? undefined : Number(line.slice(series.length))
    }
    const seconds = (d: Date) => d.getTime() / 1000
    const deploy = (leaf: Awaited<ReturnType<typeof fx.leaf>>) =>
      runCli(deployArgs(name, ["--metrics-file", file]), { stdin: fx.bundle(leaf), env: world.env })
    const first = await fx.leaf({ notAfterDays: 100 })
    const second = await fx.leaf({ notAfterDays: 200 })
    const succeeded = await deploy(first)
    expect(succeeded.code, succeeded.stdout).toBe(0)
    expect(expiry()).toBe(seconds(first.certificate.notAfter))
    // The import's connection drops before the vault commits it: the version list shows nothing
    // created since the snapshot, so the first certificate is still served.
    const drop = world.emulator.faults.add({ operation: "import", name, action: { kind: "drop" } })
    const lost = await deploy(second)
    world.emulator.faults.remove(drop)
    expect(lost.code, lost.stdout).toBe(1)
    expect(json<Outcome & { step: string }>(lost).step).toBe("reconcile")
    expect(world.emulator.state.versions(world.vault, name)?.at(-1)?.x5t).toBe(
      json<Outcome>(succeeded).newX5t,
    )
    expect(expiry()).toBe(seconds(first.certificate.notAfter))
    // Another writer's version is served: the takeover is refused (exit 2), and that version's
    // expiry, read by the snapshot, is the series'.
    const foreign = await world.emulator.state.foreignImport(world.vault, name)
    const foreignLeaf = new X509Certificate(Buffer.from(foreign.certificates[0] ?? new Uint8Array()))
    const refused = await deploy(second)
    expect(refused.code, refused.stdout).toBe(2)
    expect(json<Outcome>(refused).problems?.map((p) => p.field)).toEqual(["certificate_name"])
    expect(expiry()).toBe(seconds(new Date(foreignLeaf.validTo)))
    expect(seconds(new Date(foreignLeaf.validTo))).not.toBe(seconds(first.certificate.notAfter))
  })

  it("Failed (exit 1): the vault refuses the import; nothing changed", async () => {
    const { world, deployArgs } = inOwnVault("outcomes-2")
    const name = "refused-import"
    const id = world.emulator.faults.add({
      operation: "import",
      name,
      action: { kind: "status", status: 400, code: "BadParameter", message: "injected" },
    })
    const leaf = await fx.leaf()
    const r = await runCli(deployArgs(name), { stdin: fx.bundle(leaf), env: world.env })
    world.emulator.faults.remove(id)
    expect(r.code).toBe(1)
    expect(json<Outcome>(r)._tag).toBe("Failed")
    expect(world.emulator.state.versions(world.vault, name)).toBeUndefined()
  })

  it("Failed (exit 1) on a soft-deleted name; --on-soft-deleted recover deploys", async () => {
    const { world, deployArgs, importThenSoftDelete } = inOwnVault("outcomes-3")
    const name = "soft-deleted"
    await importThenSoftDelete(name)
    const v2 = await fx.leaf()
    // The plan says so first (exit 1), writing nothing.
    const mark = world.emulator.requests.mark()
    const plan = await runCli(["plan", "--config", world.targetFile(name), "--cert", "-", "--json"], {
      stdin: fx.bundle(v2),
      env: world.env,
    })
    expect(plan.code, plan.stdout).toBe(1)
    expect(json<{ action: string }>(plan).action).toBe("fail-soft-deleted")
    expect(world.writesSince(mark)).toBe(0)
    const failed = await runCli(deployArgs(name), { stdin: fx.bundle(v2), env: world.env })
    expect(failed.code).toBe(1)
    expect(json<Outcome & { step: string }>(failed).step).toBe("soft-deleted")
    // The text's next step is the way out, not "retry as is" (which fails the same way).
    const text = await runCli(
      deployArgs(name).filter((a) => a !== "--json"),
      {
        stdin: fx.bundle(v2),
        env: world.env,
      },
    )
    expect(text.code).toBe(1)
    expect(text.stdout).toMatch(/next {8}deploy again with --on-soft-deleted recover/)
    expect(text.stdout).not.toContain("retried as is")
    const recovered = await runCli(deployArgs(name, ["--on-soft-deleted", "recover"]), {
      stdin: fx.bundle(v2),
      env: world.env,
    })
    expect(recovered.code, recovered.stdout).toBe(0)
    expect(json<Outcome>(recovered)._tag).toBe("Succeeded")
  })

  it("Failed (exit 1): deleted by another writer after the snapshot, the import's answer lost; the next step recovers", async () => {
    const { world, deployArgs, importAsKvdeploy } = inOwnVault("outcomes-4")
    const name = "deleted-during-deploy"
    await importAsKvdeploy(name)
    const served = world.emulator.state.versions(world.vault, name)?.at(-1)?.version
    // The snapshot is read, then someone deletes the certificate; the vault refuses the import, and
    // the connection drops before its answer.
    const mark = world.emulator.requests.mark()
    const deletes = world.emulator.faults.add({
      operation: "getLatest",
      name,
      action: { kind: "foreignDelete", when: "after" },
    })
    const drops = world.emulator.faults.add({ operation: "import", name, action: { kind: "dropAnswer" } })
    const v2 = await fx.leaf()
    const failed = await runCli(
      deployArgs(name, ["--on-soft-deleted", "recover"]).filter((a) => a !== "--json"),
      { stdin: fx.bundle(v2), env: world.env },
    )
    world.emulator.faults.remove(deletes)
    world.emulator.faults.remove(drops)
    expect(failed.code, failed.stdout).toBe(1)
    const imports = world.emulator.requests
      .entries({ since: mark, vault: world.vault, operation: "import" })
      .filter((e) => !e.challenge)
    expect(imports.map((e) => [e.dropped, e.errorCode])).toEqual([[true, "Conflict"]])
    expect(failed.stdout).toContain(`while its latest version was still ${served}`)
    expect(failed.stdout).toMatch(/failed at {3}reconcile \(VaultConflictSoftDeleted\)/)
    expect(failed.stdout).toMatch(
      /next {8}kvdeploy concluded that nothing was written: deploy again; with --on-soft-deleted recover/,
    )
    // Nothing written, nothing recovered: the certificate is still deleted, with its one version.
    expect(world.emulator.state.versions(world.vault, name)).toBeUndefined()
    expect(world.emulator.state.versions(world.vault, name, { includeDeleted: true })).toHaveLength(1)
    const recovered = await runCli(deployArgs(name, ["--on-soft-deleted", "recover"]), {
      stdin: fx.bundle(v2),
      env: world.env,
    })
    expect(recovered.code, recovered.stdout).toBe(0)
    expect(json<Outcome & { recovered: string }>(recovered).recovered).toBe("recovered")
    expect(world.emulator.state.versions(world.vault, name)).toHaveLength(2)
  })

  it("Failed (exit 1) on a name a plain secret holds: the next step names the secret, not a retry or the version list", async () => {
    const { world, deployArgs, setPlainSecret } = inOwnVault("outcomes-5")
    const name = "held-by-secret"
    await setPlainSecret(name)
    // plan reads no secret (it would fetch its value): it says import, and that it did not look.
    const planned = await runCli(["plan", ...deployArgs(name).slice(1)], {
      stdin: fx.bundle(await fx.leaf()),
      env: world.env,
    })
    expect(json<{ action: string; reason: string }>(planned)).toMatchObject({
      action: "import",
      reason: `first deploy: no certificate is served under this name (a key or a secret named ${name} would make the import fail: plan reads neither; \`kvdeploy doctor\` checks)`,
    })
    const r = await runCli(deployArgs(name), { stdin: fx.bundle(await fx.leaf()), env: world.env })
    expect(r.code, r.stdout).toBe(1)
    const o = json<Outcome & { error: string; code: string }>(r)
    expect([o.error, o.code]).toEqual(["VaultRequestRejected", "Conflict"])
    const text = await runCli(
      deployArgs(name).filter((a) => a !== "--json"),
      { stdin: fx.bundle(await fx.leaf()), env: world.env },
    )
    expect(text.stdout).toMatch(
      /next {8}Key Vault refused the import as a conflict \(the reason says why\): when a key or secret of this name exists/,
    )
    expect(text.stdout).toContain("There is already a secret with the name")
    expect(text.stdout).not.toContain("kvdeploy versions")
    expect(world.emulator.state.versions(world.vault, name)).toBeUndefined()
  })

  it("a recovered certificate whose import is then refused: exit 1, and the output says it was recovered", async () => {
    const { world, deployArgs, importThenSoftDelete } = inOwnVault("outcomes-6")
    const name = "recovered-refused"
    await importThenSoftDelete(name)
    // The first import answers 409 (soft-deleted); the one after the recovery is refused.
    const id = world.emulator.faults.add({
      operation: "import",
      vault: world.vault,
      name,
      skip: 1,
      action: { kind: "status", status: 400, code: "BadParameter", message: "refused for the test" },
    })
    const args = deployArgs(name, ["--on-soft-deleted", "recover"]).filter((a) => a !== "--json")
    const r = await runCli(args, { stdin: fx.bundle(await fx.leaf()), env: world.env })
    world.emulator.faults.remove(id)
    expect(r.code, r.stdout).toBe(1)
    expect(world.emulator.state.isDeleted(world.vault, name)).toBe(false)
    expect(r.stdout).toContain("no version was written, but the soft-deleted certificate was recovered")
    expect(r.stdout).toMatch(/recovered {3}the soft-deleted certificate was recovered/)
    expect(r.stdout).not.toContain("the vault is unchanged by this deploy")
    const asJson = await runCli(deployArgs(name), { stdin: fx.bundle(await fx.leaf()), env: world.env })
    expect(json<Outcome>(asJson)._tag).toBe("Succeeded")
    expect(json<Outcome & { recovered?: string }>(asJson).recovered).toBeUndefined()
  })

  it("a certificate another writer recovers just before kvdeploy's recovery: kvdeploy sends none, and says it was served already (text and --json)", async () => {
    const { world, deployArgs, importThenSoftDelete, softDelete } = inOwnVault("outcomes-16")
    const name = "recovered-already-served"
    /**
     * Deploy with --on-soft-deleted recover, another writer recovering the certificate between the
     * deploy's read of the deleted certificate and its recovery: the deploy's second read of the
     * certificate (the SDK's recover poller's first, the snapshot's being the first) is held until
     * the other writer's recovery is done. Answers the run, and the recoveries the vault was sent.
     */
    const racedDeploy = async (args: ReadonlyArray<string>) => {
      const held = world.emulator.faults.add({
        operation: "getLatest",
        vault: world.vault,
        name,
        skip: 1,
        times: 1,
        action: { kind: "hold", timeoutMs: 20_000 },
      })
      const mark = world.emulator.requests.mark()
      let otherRecovered = false
      const r = await runCli(args, {
        stdin: fx.bundle(await fx.leaf()),
        env: world.env,
        started: () => {
          const deadline = Date.now() + 60_000
          const poll = setInterval(() => {
            const hits = world.emulator.faults.list().find((f) => f.id === held)?.hits ?? 0
            if (hits === 0 && Date.now() < deadline) return
            clearInterval(poll)
            void (async () => {
              await (
                await world.sdk().beginRecoverDeletedCertificate(name, { intervalInMs: 50 })
              ).pollUntilDone()
              otherRecovered = true
            })().finally(() => world.emulator.faults.release(held))
          }, 25)
        },
      })
      world.emulator.faults.remove(held)
      const recoveries = world.emulator.requests
        .entries({ vault: world.vault, since: mark, operation: "recover" })
        .map((e) => e.status)
      return { r, otherRecovered, recoveries }
    }
    await importThenSoftDelete(name)
    const asJson = await racedDeploy(deployArgs(name, ["--on-soft-deleted", "recover"]))
    expect(asJson.r.code, asJson.r.stdout + asJson.r.stderr).toBe(0)
    expect(asJson.otherRecovered).toBe(true)
    // One recovery reached the vault, the other writer's (its certificate was deleted, so its
    // poller sent it): kvdeploy's poller found the certificate served and sent none.
    expect(asJson.recoveries).toEqual([200])
    const outcome = json<Outcome & { recovered?: string }>(asJson.r)
    expect(outcome._tag).toBe("Succeeded")
    expect(outcome.recovered).toBe("already-served")
    expect(world.emulator.state.isDeleted(world.vault, name)).toBe(false)

    await softDelete(name)
    const text = await racedDeploy(
      deployArgs(name, ["--on-soft-deleted", "recover"]).filter((a) => a !== "--json"),
    )
    expect(text.r.code, text.r.stdout + text.r.stderr).toBe(0)
    expect(text.otherRecovered).toBe(true)
    expect(text.recoveries).toEqual([200])
    expect(text.r.stdout).toMatch(
      /recovered {3}none by kvdeploy: the vault served the certificate again without its recovery \(another writer recovered it, or the name holds a certificate made since; on_soft_deleted: recover\)/,
    )
    expect(text.r.stdout).not.toContain("the soft-deleted certificate was recovered")
  })

  it("Superseded (exit 5): another writer imports right after ours; not clobbered", async () => {
    const { world, deployArgs } = inOwnVault("outcomes-7")
    const name = "superseded"
    const id = world.emulator.faults.add({
      operation: "import",
      name,
      action: { kind: "foreignImport", when: "after" },
    })
    const leaf = await fx.leaf()
    const r = await runCli(deployArgs(name), { stdin: fx.bundle(leaf), env: world.env })
    world.emulator.faults.remove(id)
    expect(r.code, r.stdout).toBe(5)
    expect(json<Outcome>(r)._tag).toBe("Superseded")
  })

  it("Unverified (exit 4): the vault cannot be read back after the import", async () => {
    const { world, deployArgs } = inOwnVault("outcomes-8")
    const name = "unverified"
    const id = world.emulator.faults.add({
      operation: "getLatest",
      name,
      skip: 1,
      times: "always",
      action: { kind: "status", status: 403, code: "Forbidden", message: "injected: read revoked" },
    })
    const leaf = await fx.leaf()
    const r = await runCli(deployArgs(name), { stdin: fx.bundle(leaf), env: world.env })
    expect(r.code, r.stdout).toBe(4)
    const o = json<Outcome & { step?: string; error?: string; operation?: string }>(r)
    expect(o._tag).toBe("Unverified")
    // The read that failed, named as a Failed outcome names its call: jq's
    // select(.error == "VaultForbidden") finds a lost read grant here too.
    expect({ step: o.step, error: o.error, operation: o.operation }).toEqual({
      step: "verify",
      error: "VaultForbidden",
      operation: "getLatest",
    })
    world.emulator.faults.remove(id)
    // The text says it too (the same fault again: the snapshot's read passes, the verify's is refused).
    const again = world.emulator.faults.add({
      operation: "getLatest",
      name,
      skip: 1,
      times: "always",
      action: { kind: "status", status: 403, code: "Forbidden", message: "injected: read revoked" },
    })
    const text = await runCli(deployArgs(name).slice(0, -1), {
      stdin: fx.bundle(await fx.leaf()),
      env: world.env,
    })
    world.emulator.faults.remove(again)
    expect(text.code, text.stdout).toBe(4)
    expect(text.stdout).toMatch(/^ {2}failed at {3}verify \(VaultForbidden\)$/m)
  })

  it("RolledBack (exit 3): the new version is disabled between import and verify; the previous one is restored", async () => {
    const { world, deployArgs } = inOwnVault("outcomes-9")
    const name = "rolled-back"
    const v1 = await fx.leaf()
    expect((await runCli(deployArgs(name), { stdin: fx.bundle(v1), env: world.env })).code).toBe(0)
    // The verify read (the second getLatest of the next deploy) is held until another actor has
    // disabled the new version (it waited a fixed 3 s for it before).
    const id = world.emulator.faults.add({
      operation: "getLatest",
      name,
      skip: 1,
      times: 1,
      action: { kind: "hold", timeoutMs: 60_000 },
    })
    const mark = world.emulator.requests.mark()
    const v2 = await fx.leaf()
    const running = runCli(deployArgs(name), { stdin: fx.bundle(v2), env: world.env })
    const deadline = Date.now() + 60_000
    while (
      world.emulator.requests.count({ since: mark, vault: world.vault, operation: "import", status: 200 }) ===
      0
    ) {
      if (Date.now() > deadline) throw new Error("the deploy never imported")
      await new Promise((r) => setTimeout(r, 50))
    }
    const imported = world.emulator.state.versions(world.vault, name)?.at(-1)
    await world.sdk().updateCertificateProperties(name, imported?.version ?? "", { enabled: false })
    // Another writer imports just as the rollback's import arrives (after the rollback's last list
    // and read): the previous certificate then stands over it, and the outcome names it.
    const during = world.emulator.faults.add({
      operation: "import",
      name,
      times: 1,
      action: { kind: "foreignImport", when: "before" },
    })
    world.emulator.faults.release(id)
    const r = await running
    world.emulator.faults.remove(id)
    world.emulator.faults.remove(during)
    expect(r.code, r.stdout + r.stderr).toBe(3)
    const o = json<
      Outcome & {
        failedVersionId: string
        rollbackVersionId: string
        rollbackSource: string
        overwritten?: ReadonlyArray<{ versionId: string }>
        next?: string
      }
    >(r)
    expect(o._tag).toBe("RolledBack")
    expect(o.failedVersionId).toBe(imported?.version)
    const versions = world.emulator.state.versions(world.vault, name) ?? []
    const latest = versions.at(-1)
    expect(latest?.x5t).toBe(versions[0]?.x5t)
    expect(latest?.tags?.["certctl-rollback-of"]).toBe(imported?.version)
    const foreign = versions.at(-2)
    expect(foreign?.tags?.["certctl-managed-by"]).toBeUndefined()
    expect(o.overwritten?.map((v) => v.versionId)).toEqual([foreign?.version])
    expect(o.reason).toContain(`over another writer's ${foreign?.version}`)
    // The JSON carries the step the text's `next` line gives.
    expect(o.next).toContain(`kvdeploy restore --from-version ${foreign?.version}`)
    const history = await runCli(["versions", "--config", world.targetFile(name)], { env: world.env })
    expect(history.stdout).toContain(`rollback of ${(imported?.version ?? "").slice(0, 12)}`)
    // Creation times say their zone, as show's ISO times do.
    expect(history.stdout).toMatch(/ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC {2}expires /)
  })

  it("Ctrl+C before the import stops the deploy (130, nothing written); SIGTERM after it waits for the rollback and reports it (3)", async () => {
    const { world, deployArgs } = inOwnVault("outcomes-10")
    /** Wait until fault `id` has held a request, send `signal` to the deploy, and release the request 0.3 s later. */
    const signalWhenHeld = (id: string, signal: NodeJS.Signals) => (child: ChildProcess) => {
      const deadline = Date.now() + 60_000
      const poll = setInterval(() => {
        const hits = world.emulator.faults.list().find((f) => f.id === id)?.hits ?? 0
        if (hits > 0 || Date.now() > deadline) {
          clearInterval(poll)
          child.kill(signal)
          setTimeout(() => world.emulator.faults.release(id), 300)
        }
      }, 25)
    }
    // Before the import: the snapshot read is held, and Ctrl+C stops the deploy there.
    const before = "interrupt-before-import"
    const snapshot = world.emulator.faults.add({
      operation: "getLatest",
      name: before,
      times: 1,
      action: { kind: "hold", timeoutMs: 20_000 },
    })
    let mark = world.emulator.requests.mark()
    const stopped = await runCli(deployArgs(before), {
      stdin: fx.bundle(await fx.leaf()),
      env: world.env,
      started: signalWhenHeld(snapshot, "SIGINT"),
    })
    expect(stopped.code, stopped.stderr).toBe(130)
    // --json: stdout is still one JSON document, saying so (a log of documents gets this run's).
    const interrupted = JSON.parse(stopped.stdout) as {
      error: { title: string; exitCode: number; problems: ReadonlyArray<{ message: string }> }
    }
    expect(interrupted.error.title).toBe("interrupted")
    expect(interrupted.error.exitCode).toBe(130)
    expect(interrupted.error.problems[0]?.message).toContain("wrote nothing")
    expect(world.writesSince(mark, before)).toBe(0)
    expect(world.emulator.state.versions(world.vault, before) ?? []).toEqual([])
    // Without --json, a line on stderr says it, and stdout stays empty.
    const textual = world.emulator.faults.add({
      operation: "getLatest",
      name: before,
      times: 1,
      action: { kind: "hold", timeoutMs: 20_000 },
    })
    const stoppedText = await runCli(
      deployArgs(before).filter((a) => a !== "--json"),
      { stdin: fx.bundle(await fx.leaf()), env: world.env, started: signalWhenHeld(textual, "SIGTERM") },
    )
    expect(stoppedText.code, stoppedText.stderr).toBe(130)
    expect(stoppedText.stdout).toBe("")
    expect(stoppedText.stderr).toMatch(
      /interrupted: the command was stopped \(Ctrl\+C or SIGTERM\) before it finished/,
    )

    // After it: the import lands and is disabled (its verify finds it wrong); the rollback's read of
    // the previous version's secret is held, and SIGTERM comes then. The rollback runs to its end.
    const after = "interrupt-after-import"
    expect(
      (await runCli(deployArgs(after), { stdin: fx.bundle(await fx.leaf()), env: world.env })).code,
    ).toBe(0)
    world.emulator.faults.add({
      operation: "import",
      name: after,
      times: 1,
      action: { kind: "disableAfterCommit" },
    })
    const secret = world.emulator.faults.add({
      operation: "getSecret",
      name: after,
      times: 1,
      action: { kind: "hold", timeoutMs: 20_000 },
    })
    mark = world.emulator.requests.mark()
    const finished = await runCli(deployArgs(after), {
      stdin: fx.bundle(await fx.leaf()),
      env: world.env,
      started: signalWhenHeld(secret, "SIGTERM"),
    })
    expect(finished.code, finished.stdout + finished.stderr).toBe(3)
    expect(json<Outcome>(finished)._tag).toBe("RolledBack")
    expect(finished.stderr).toContain(
      `interrupted: a write to ${after} was sent; the deploy finishes first (verify, and a rollback when the vault serves something wrong), reports its outcome, then stops`,
    )
    const versions = world.emulator.state.versions(world.vault, after) ?? []
    expect(versions.at(-1)?.tags?.["certctl-rollback-of"]).toBe(versions.at(-2)?.version)
    expect(versions.at(-1)?.enabled).toBe(true)
    expect(world.writesSince(mark, after)).toBe(2)
  })

  it("SIGUSR1 during a deploy does not open Node's inspector: ignored with a line on stderr, and the deploy goes on", async () => {
    const { world, deployArgs } = inOwnVault("outcomes-11")
    const name = "sigusr1-ignored"
    const before = await listening(9229)
    const held = world.emulator.faults.add({
      operation: "getLatest",
      name,
      times: 1,
      action: { kind: "hold", timeoutMs: 20_000 },
    })
    let openWhileHeld: boolean | undefined
    const r = await runCli(deployArgs(name), {
      stdin: fx.bundle(await fx.leaf()),
      env: world.env,
      started: (child: ChildProcess) => {
        const deadline = Date.now() + 60_000
        const poll = setInterval(() => {
          const hits = world.emulator.faults.list().find((f) => f.id === held)?.hits ?? 0
          if (hits === 0 && Date.now() < deadline) return
          clearInterval(poll)
          child.kill("SIGUSR1")
          // Node opens the inspector at once on the signal: half a second is ample to see it.
          setTimeout(async () => {
            openWhileHeld = await listening(9229)
            world.emulator.faults.release(held)
          }, 500)
        }, 25)
      },
    })
    expect(r.code, r.stderr).toBe(0)
    expect(json<Outcome>(r)._tag).toBe("Succeeded")
    expect(r.stderr).toContain("kvdeploy: SIGUSR1 ignored")
    expect(r.stderr).not.toContain("Debugger listening")
    expect(openWhileHeld).toBeDefined()
    if (!before) expect(openWhileHeld).toBe(false)
  })

  it("a certificate whose secret is PEM: keep (the default) imports PEM; --content-type pkcs12 changes it, as plan says", async () => {
    const { world, deployArgs, importAsPem } = inOwnVault("outcomes-12")
    const name = "pem-secret"
    await importAsPem(name)
    expect(world.emulator.state.versions(world.vault, name)?.at(-1)?.contentType).toBe(
      "application/x-pem-file",
    )
    type Planned = {
      action: string
      contentType?: { imported: string; served?: string; change: string }
      contentTypeChange?: { from: string; to: string }
    }
    const renewal = await fx.leaf()
    // keep: plan and deploy keep PEM, and say so.
    const kept = json<Planned>(
      await runCli(["plan", ...deployArgs(name).slice(1)], { stdin: fx.bundle(renewal), env: world.env }),
    )
    expect(kept.action).toBe("import")
    expect(kept.contentType).toEqual({
      imported: "application/x-pem-file",
      served: "application/x-pem-file",
      change: "kept",
    })
    expect(kept.contentTypeChange).toBeUndefined()
    const keptText = await runCli(["plan", "--config", world.targetFile(name), "--cert", "-"], {
      stdin: fx.bundle(renewal),
      env: world.env,
    })
    expect(keptText.stdout).toMatch(/content +PEM \(application\/x-pem-file\), as the vault serves it/)
    const keptDeploy = await runCli(deployArgs(name), { stdin: fx.bundle(renewal), env: world.env })
    expect(keptDeploy.code, keptDeploy.stdout + keptDeploy.stderr).toBe(0)
    expect(json<Outcome & { contentType?: unknown }>(keptDeploy).contentType).toEqual(kept.contentType)
    expect(world.emulator.state.versions(world.vault, name)?.at(-1)?.contentType).toBe(
      "application/x-pem-file",
    )

    // pkcs12: plan says the secret turns PKCS#12; deploy does it and notes it.
    const next = await fx.leaf()
    const asPkcs12 = ["--content-type", "pkcs12"]
    const planned = json<Planned>(
      await runCli(["plan", ...deployArgs(name, asPkcs12).slice(1)], {
        stdin: fx.bundle(next),
        env: world.env,
      }),
    )
    expect(planned.action).toBe("import")
    expect(planned.contentTypeChange).toEqual({ from: "application/x-pem-file", to: "application/x-pkcs12" })
    const text = await runCli(["plan", "--config", world.targetFile(name), "--cert", "-", ...asPkcs12], {
      stdin: fx.bundle(next),
      env: world.env,
    })
    expect(text.stdout).toMatch(
      /content +the secret is PEM \(application\/x-pem-file\) now; the import writes PKCS#12/,
    )
    const r = await runCli(deployArgs(name, asPkcs12), { stdin: fx.bundle(next), env: world.env })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(json<Outcome & { decisions: string[] }>(r).decisions.join("\n")).toMatch(
      /content type: the vault serves this certificate's secret as PEM/,
    )
    expect(world.emulator.state.versions(world.vault, name)?.at(-1)?.contentType).toBe("application/x-pkcs12")
    // Once PKCS#12, plan (keep) says nothing changes.
    const again = json<Planned>(
      await runCli(["plan", ...deployArgs(name).slice(1)], {
        stdin: fx.bundle(await fx.leaf()),
        env: world.env,
      }),
    )
    expect(again.contentTypeChange).toBeUndefined()
    expect(again.contentType?.change).toBe("kept")
  })

  it("warnings: an expired intermediate, and a CA-issued leaf without its chain, deploy with a warning each", async () => {
    const { world, deployArgs } = inOwnVault("outcomes-13")
    const name = "chain-warnings"
    const oldIntermediate = await issue({
      subject: "CN=retired intermediate CA",
      ca: true,
      issuer: fx.pki.root,
      notBeforeDays: -400,
      notAfterDays: -10,
    })
    const leaf = await issue({ subject: "CN=api.example.test", issuer: oldIntermediate })
    const expiredChain = leaf.certPem + oldIntermediate.certPem + fx.pki.root.certPem + leaf.keyPem
    type Warned = { warnings?: Array<{ field: string; message: string; fix: string }> }
    const planned = json<Warned & { action: string }>(
      await runCli(["plan", ...deployArgs(name).slice(1)], { stdin: expiredChain, env: world.env }),
    )
    expect(planned.action).toBe("import")
    expect(planned.warnings?.map((w) => w.field)).toEqual(["chain[0]"])
    expect(planned.warnings?.[0]?.message).toMatch(/^CN=retired intermediate CA expired at /)
    const deployed = await runCli(deployArgs(name), { stdin: expiredChain, env: world.env })
    expect(deployed.code, deployed.stdout).toBe(0)
    expect(json<Outcome & Warned>(deployed).warnings).toEqual(planned.warnings)
    // A leaf and its key alone (cert.pem where fullchain.pem belongs), in text.
    const renewal = await fx.leaf()
    const text = await runCli(["deploy", "--config", world.targetFile(name), "--cert", "-"], {
      stdin: renewal.certPem + renewal.keyPem,
      env: world.env,
    })
    expect(text.code, text.stdout).toBe(0)
    expect(text.stdout).toMatch(
      /warning +chain: none given, and the leaf is issued by CN=kvdeploy test intermediate CA/,
    )
    expect(text.stdout).toMatch(
      /fix: give the issuer's chain with the leaf \(an ACME client's fullchain\.pem/,
    )
    // With its chain, no warning.
    const clean = json<Outcome & Warned>(
      await runCli(deployArgs(name), { stdin: fx.bundle(await fx.leaf()), env: world.env }),
    )
    expect(clean._tag).toBe("Succeeded")
    expect(clean.warnings).toBeUndefined()
  })

  it("content_type keep, a PFX over Key Vault's limit whose PEM fits, over a soft-deleted certificate: plan and deploy follow its content type (PEM: recover and import PEM; PKCS#12: refuse, left deleted)", async () => {
    const { world, deployArgs, softDelete, importAsPem, importThenSoftDelete } = inOwnVault("outcomes-14")
    // A chain long enough that the PFX is over 19,200 bytes while the PEM stays under 25,600.
    const extra: Array<Awaited<ReturnType<typeof issue>>> = []
    let issuer = fx.pki.intermediate
    const leafOf = () => issue({ subject: "CN=api.example.test", issuer })
    let leaf = await leafOf()
    const materialOf = (l: typeof leaf) => ({
      leaf: new Uint8Array(l.certificate.rawData),
      chain: [...extra]
        .reverse()
        .map((c) => new Uint8Array(c.certificate.rawData))
        .concat([fx.pki.intermediate, fx.pki.root].map((c) => new Uint8Array(c.certificate.rawData))),
      key: Redacted.make(l.pkcs8),
    })
    const pfxSize = async (l: typeof leaf) =>
      (
        await Effect.runPromise(
          encodePfx(materialOf(l), { encoding: "modern", password: Redacted.make(""), iterations: 1 }),
        )
      ).byteLength
    // Whole certificates while one more fits, then names on the leaf, a few bytes at a time.
    while ((await pfxSize(leaf)) <= 18_700) {
      issuer = await issue({ subject: `CN=p${extra.length}`, ca: true, issuer })
      extra.push(issuer)
      leaf = await leafOf()
    }
    const names: Array<string> = []
    while ((await pfxSize(leaf)) <= 19_200) {
      names.push(`n${names.length}.example.test`)
      leaf = await issue({ subject: "CN=api.example.test", issuer, dnsNames: names })
    }
    const bundle = (l: typeof leaf) =>
      l.certPem +
      [...extra]
        .reverse()
        .map((c) => c.certPem)
        .join("") +
      fx.chainPem +
      l.keyPem
    expect(bundle(leaf).length).toBeLessThan(25_400)
    const recover = ["--on-soft-deleted", "recover"]
    type Planned = { action: string; reason: string; contentType?: { imported: string; change: string } }
    const plan = async (name: string, extra: ReadonlyArray<string> = recover) =>
      json<Planned>(
        await runCli(["plan", ...deployArgs(name, extra).slice(1)], {
          stdin: bundle(leaf),
          env: world.env,
        }),
      )
    // on_soft_deleted fail (the default): plan and deploy agree, and a purge is never the remedy
    // (it would make a first deploy, which imports PKCS#12, over the limit).
    const failing = async (name: string, action: string, code: number, reason: RegExp) => {
      const planned = await plan(name, [])
      expect(planned.action, planned.reason).toBe(action)
      expect(planned.reason).toMatch(reason)
      expect(planned.reason).not.toMatch(/or purge it/)
      const deployed = await runCli(deployArgs(name), { stdin: bundle(leaf), env: world.env })
      expect(deployed.code, deployed.stdout).toBe(code)
      expect(json<Outcome>(deployed).reason).toMatch(reason)
      expect(world.emulator.state.isDeleted(world.vault, name)).toBe(true)
    }

    // Deleted as PEM: with fail, the recovery is the remedy; with recover, recovered, then imported as PEM.
    await importAsPem("big-pem-deleted")
    await softDelete("big-pem-deleted")
    await failing(
      "big-pem-deleted",
      "fail-soft-deleted",
      1,
      /is soft-deleted.*a recovery would serve its secret as PEM, which this material fits; .*recover.*purging it would make (this )?a first deploy, which imports PKCS#12, over the limit/,
    )
    const mark = world.emulator.requests.mark()
    const pemPlan = await plan("big-pem-deleted")
    expect(pemPlan.action, pemPlan.reason).toBe("recover-and-import")
    expect(pemPlan.contentType).toMatchObject({ imported: "application/x-pem-file", change: "kept" })
    expect(world.writesSince(mark)).toBe(0)
    const deployed = await runCli(deployArgs("big-pem-deleted", recover), {
      stdin: bundle(leaf),
      env: world.env,
    })
    expect(deployed.code, deployed.stdout).toBe(0)
    const outcome = json<Outcome & { recovered?: string; contentType?: { imported: string } }>(deployed)
    expect(outcome.recovered).toBe("recovered")
    expect(outcome.contentType?.imported).toBe("application/x-pem-file")

    // Deleted as PKCS#12 (as kvdeploy's own first deploy imports it): refused, left deleted, by plan and deploy.
    await importThenSoftDelete("big-pkcs12-deleted")
    await failing(
      "big-pkcs12-deleted",
      "refuse",
      2,
      /is soft-deleted.*neither a recovery \(its secret PKCS#12.*nor a purge \(a first deploy imports PKCS#12\) would let this material be imported/,
    )
    const pfxPlan = await plan("big-pkcs12-deleted")
    expect(pfxPlan.action).toBe("refuse")
    expect(pfxPlan.reason).toMatch(
      /serves its secret as PKCS#12, which content_type keep keeps: deploy would refuse it before recovering, leave the certificate deleted and write nothing \(fix: shorten the chain.*; or set content_type: pem once /,
    )
    const refused = await runCli(deployArgs("big-pkcs12-deleted", recover), {
      stdin: bundle(leaf),
      env: world.env,
    })
    expect(refused.code, refused.stdout).toBe(2)
    expect(json<Outcome>(refused).reason).toMatch(
      /which content_type keep keeps; the import would be refused, so it was left deleted/,
    )
    expect(world.emulator.state.isDeleted(world.vault, "big-pkcs12-deleted")).toBe(true)
  })

  it("a soft-deleted PEM certificate: plan and deploy judge the previous key and the content type on what a recovery brings back", async () => {
    const { world, deployArgs, softDelete, importAsPem } = inOwnVault("outcomes-15")
    const name = "pem-deleted"
    const served = await importAsPem(name)
    await softDelete(name)
    const recover = ["--on-soft-deleted", "recover"]
    const wrongKey = world.file("pem-deleted-wrong.key", (await fx.leaf()).keyPem)
    const rightKey = world.file("pem-deleted-right.key", served.keyPem)
    const renewal = await fx.leaf()
    type Planned = {
      action: string
      reason: string
      writes: number
      previousKey?: string
      contentTypeChange?: { from: string; to: string }
    }
    const plan = async (leaf: typeof renewal, extra: Array<string>) =>
      json<Planned>(
        await runCli(["plan", ...deployArgs(name, [...recover, ...extra]).slice(1)], {
          stdin: fx.bundle(leaf),
          env: world.env,
        }),
      )
    const mark = world.emulator.requests.mark()
    // The deleted certificate is this one already: recovered, nothing imported.
    const same = await plan(served, [])
    expect(same.action).toBe("recover")
    expect(same.writes).toBe(1)
    expect(same.contentTypeChange).toBeUndefined()
    // A renewal: recovered and imported over, turning the secret into PKCS#12 (--content-type pkcs12).
    const renewed = await plan(renewal, ["--previous-key", rightKey, "--content-type", "pkcs12"])
    expect(renewed.action).toBe("recover-and-import")
    expect(renewed.previousKey).toBe("matches")
    expect(renewed.contentTypeChange).toEqual({ from: "application/x-pem-file", to: "application/x-pkcs12" })
    // A key the rollback could not use: refused, left deleted.
    const wrong = await plan(renewal, ["--previous-key", wrongKey])
    expect(wrong.action).toBe("refuse")
    expect(wrong.previousKey).toBe("does-not-match")
    expect(wrong.reason).toMatch(/which a recovery would bring back.*leave the certificate deleted/)
    // The text plan speaks of the soft-deleted certificate, not of one the vault serves (none is).
    const wrongText = await runCli(
      ["plan", ...deployArgs(name, [...recover, "--previous-key", wrongKey]).slice(1)].filter(
        (a) => a !== "--json",
      ),
      {
        stdin: fx.bundle(renewal),
        env: world.env,
      },
    )
    expect(wrongText.stdout).toContain(
      "previous key does NOT match the soft-deleted certificate: give the key of the soft-deleted version a recovery brings back",
    )
    expect(wrongText.stdout).not.toContain("serves now")
    expect(world.writesSince(mark)).toBe(0)
    // Deploy does what plan said.
    const refused = await runCli(deployArgs(name, [...recover, "--previous-key", wrongKey]), {
      stdin: fx.bundle(renewal),
      env: world.env,
    })
    expect(refused.code, refused.stdout).toBe(2)
    expect(json<Outcome>(refused).reason).toMatch(
      /cannot restore the version a recovery of the soft-deleted certificate would bring back/,
    )
    expect(world.emulator.state.isDeleted(world.vault, name)).toBe(true)
    const deployed = await runCli(
      deployArgs(name, [...recover, "--previous-key", rightKey, "--content-type", "pkcs12"]),
      {
        stdin: fx.bundle(renewal),
        env: world.env,
      },
    )
    expect(deployed.code, deployed.stdout).toBe(0)
    const outcome = json<Outcome & { decisions: string[]; recovered?: string }>(deployed)
    expect(outcome.recovered).toBe("recovered")
    expect(outcome.decisions.join("\n")).toMatch(
      /content type: the vault serves this certificate's secret as PEM/,
    )
    expect(world.emulator.state.versions(world.vault, name)?.at(-1)?.contentType).toBe("application/x-pkcs12")
  })

  it("RolledBack (exit 3) and the whole story: kvdeploy demo --json", async () => {
    const r = await runCli(["demo", "--json"], { timeoutMs: 60_000 })
    expect(r.code, r.stderr).toBe(0)
    const d = json<{
      ok: boolean
      steps: Array<{
        expected: string
        outcome: { _tag: string; versionId?: string; failedVersionId?: string; rollbackVersionId?: string }
      }>
      versions: Array<{ versionId: string; rollbackOf?: string }>
      metrics: string
    }>(r)
    expect(d.ok).toBe(true)
    expect(d.steps.map((s) => s.outcome._tag)).toEqual(["Succeeded", "Succeeded", "Skipped", "RolledBack"])
    expect(d.versions[0]?.rollbackOf).toBeDefined()
    // The history newest first in the order the demo wrote it, though Key Vault's whole seconds
    // cannot tell (its versions are written within a second or two).
    const [v1, v2, , v3] = d.steps.map((s) => s.outcome)
    expect(d.versions.map((v) => v.versionId)).toEqual([
      v3?.rollbackVersionId,
      v3?.failedVersionId,
      v2?.versionId,
      v1?.versionId,
    ])
    expect(d.metrics).toContain('certctl_deploy_rollback_total{target_type="azure_kv",outcome="restored"} 1')
  })

  it("Failed (exit 1) on a denied import: the next step is the grant, not a retry", {
    concurrent: false,
  }, async () => {
    const name = "import-denied"
    world.emulator.rbac.deny(world.env.AZURE_CLIENT_ID ?? "", ["certificates/import"])
    const r = await runCli(
      deployArgs(name).filter((a) => a !== "--json"),
      {
        stdin: fx.bundle(await fx.leaf()),
        env: world.env,
      },
    )
    world.emulator.rbac.reset()
    expect(r.code, r.stdout).toBe(1)
    expect(r.stdout).toMatch(/next {8}grant what the reason names/)
    expect(r.stdout).toContain("certificates/import")
    expect(r.stdout).not.toContain("retried as is")
    expect(world.emulator.state.versions(world.vault, name)).toBeUndefined()
  })

  it("--previous-key: without secrets/get, the operator's kept key restores the previous version (exit 3); without it, RollbackFailed (exit 4)", {
    concurrent: false,
  }, async () => {
    const client = world.env.AZURE_CLIENT_ID ?? ""
    const deployWrong = async (name: string, extra: ReadonlyArray<string> = []) => {
      // The version each deploy imports is disabled right after: its verify sees it wrong.
      world.emulator.faults.add({ operation: "import", name, action: { kind: "disableAfterCommit" } })
      return runCli(deployArgs(name, extra), { stdin: fx.bundle(await fx.leaf()), env: world.env })
    }
    const v1 = await fx.leaf()
    for (const name of ["previous-key-none", "previous-key"])
      expect((await runCli(deployArgs(name), { stdin: fx.bundle(v1), env: world.env })).code).toBe(0)
    // plan says whether the key is the served certificate's, before any rollback needs it.
    const planned = async (key: string) => {
      const p = json<{ previousKey: string; action: string }>(
        await runCli(
          ["plan", ...deployArgs("previous-key").slice(1), "--previous-key", world.file("k.key", key)],
          {
            stdin: fx.bundle(await fx.leaf()),
            env: world.env,
          },
        ),
      )
      return [p.previousKey, p.action]
    }
    const otherKey = (await fx.leaf()).keyPem
    expect(await planned(v1.keyPem)).toEqual(["matches", "import"])
    expect(await planned(otherKey)).toEqual(["does-not-match", "refuse"])
    // Deploy refuses that key as plan said, before it writes: its rollback could not use it.
    const before = world.emulator.state.versions(world.vault, "previous-key")?.length
    const refused = await runCli(
      deployArgs("previous-key", ["--previous-key", world.file("other.key", otherKey)]),
      {
        stdin: fx.bundle(await fx.leaf()),
        env: world.env,
      },
    )
    expect(refused.code, refused.stdout + refused.stderr).toBe(2)
    const ro = json<Outcome & { problems: Array<{ field: string; fix: string }> }>(refused)
    expect(ro._tag).toBe("Rejected")
    expect(ro.problems.map((p) => p.field)).toEqual(["previousKey"])
    expect(ro.problems[0]?.fix).toMatch(/give the key of the version the vault serves now/)
    // The text names the flag.
    const shown = await runCli(
      [
        "deploy",
        "--config",
        world.targetFile("previous-key"),
        "--cert",
        "-",
        "--previous-key",
        world.file("other.key", otherKey),
      ],
      { stdin: fx.bundle(await fx.leaf()), env: world.env },
    )
    expect(shown.code).toBe(2)
    expect(shown.stdout).toMatch(/--previous-key: cannot restore the version the vault serves now/)
    expect(world.emulator.state.versions(world.vault, "previous-key")?.length).toBe(before)
    world.emulator.rbac.deny(client, ["secrets/get"])
    try {
      const none = await deployWrong("previous-key-none")
      expect(none.code, none.stdout).toBe(4)
      const failed = json<
        Outcome & {
          next: string
          previousUnavailable: string
          step?: string
          error?: string
          operation?: string
        }
      >(none)
      expect(failed.reason).toMatch(/previous key unavailable: grant secrets\/get or keep key history/)
      // The backing secret's refused read, named as a Failed outcome names its call.
      expect({ step: failed.step, error: failed.error, operation: failed.operation }).toEqual({
        step: "rollback",
        error: "VaultForbidden",
        operation: "getVersionSecret",
      })
      // `kvdeploy restore` reads the same backing secret: next says to grant secrets/get first (then
      // restore), or to deploy the previous files again, never restore alone (refused the same way).
      expect(failed.previousUnavailable).toBe("permission")
      const previous = failed.previous?.versionId ?? ""
      expect(failed.next).toBe(
        `a person must act: the vault serves the failed version. The identity lacks secrets/get on the backing secret, which \`kvdeploy restore\` reads too: grant secrets/get (scoped to …/vaults/VAULT/secrets/NAME or to the vault; \`kvdeploy doctor\` shows it), then \`kvdeploy restore --from-version ${previous}\`; or deploy the previous certificate's files again (\`kvdeploy deploy --cert … --key …\`)`,
      )
      world.emulator.faults.add({
        operation: "import",
        name: "previous-key-none",
        action: { kind: "disableAfterCommit" },
      })
      const text = await runCli(deployArgs("previous-key-none").slice(0, -1), {
        stdin: fx.bundle(await fx.leaf()),
        env: world.env,
      })
      expect(text.code, text.stdout).toBe(4)
      expect(text.stdout).toMatch(
        /^ {2}next {8}a person must act: .*grant secrets\/get .*then `kvdeploy restore --from-version /m,
      )
      expect(text.stdout).toMatch(/^ {2}failed at {3}rollback \(VaultForbidden\)$/m)
      const r = await deployWrong("previous-key", ["--previous-key", world.file("v1.key", v1.keyPem)])
      expect(r.code, r.stdout + r.stderr).toBe(3)
      expect(json<Outcome & { rollbackSource: string }>(r).rollbackSource).toBe("caller-key")
      const versions = world.emulator.state.versions(world.vault, "previous-key") ?? []
      // The previous certificate again, with its chain (the new material's, which issues it).
      expect(versions.at(-1)?.x5t).toBe(versions[0]?.x5t)
      expect(versions.at(-1)?.certificates.length).toBe(versions[0]?.certificates.length)
      expect(versions[0]?.certificates.length).toBeGreaterThan(1)
    } finally {
      world.emulator.rbac.reset()
    }
  })
})
