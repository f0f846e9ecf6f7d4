/**
 * File watching beyond plain renames: Kubernetes' `..data` symlink swap and a source directory
 * replaced as a whole. The reconcile interval is an hour (the harness's), so each deploy here was
 * triggered by the watch.
 */
import { mkdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { agentSuite, baseEnv, startAgent, writeConfig } from "./harness.js"

const VAULT = "agent-watch"
const suite = agentSuite([VAULT])
const latestX5t = (name: string) => suite.emulator.state.versions(VAULT, name)?.at(-1)?.x5t

describe("file watching", () => {
  it("a Kubernetes-style ..data symlink swap and a replaced directory each trigger a deploy", async () => {
    const { emulator, pki, work } = suite
    // Kubernetes layout: tls.crt -> ..data/tls.crt, ..data -> ..v1 (a timestamped directory).
    const secret = join(work.dir, "secret")
    const version = (n: number, certPem: string, keyPem: string) => {
      const dir = join(secret, `..v${n}`)
      mkdirSync(dir, { recursive: true })
      writeFileSync(join(dir, "tls.crt"), certPem, { mode: 0o600 })
      writeFileSync(join(dir, "tls.key"), keyPem, { mode: 0o600 })
      // The swap: a new ..data_tmp link renamed over ..data, as kubelet does.
      symlinkSync(`..v${n}`, join(secret, "..data_tmp"))
      renameSync(join(secret, "..data_tmp"), join(secret, "..data"))
    }
    const first = await pki.leaf("k8s.example.test")
    version(1, first.certPem, first.keyPem)
    symlinkSync("..data/tls.crt", join(secret, "tls.crt"))
    symlinkSync("..data/tls.key", join(secret, "tls.key"))
    // A plain directory that will be replaced as a whole.
    const plain = join(work.dir, "live")
    const fill = (certPem: string, keyPem: string) => {
      mkdirSync(plain, { recursive: true })
      writeFileSync(join(plain, "c.pem"), certPem, { mode: 0o600 })
      writeFileSync(join(plain, "k.pem"), keyPem, { mode: 0o600 })
    }
    const other = await pki.leaf("live.example.test")
    fill(other.certPem, other.keyPem)
    const config = writeConfig(work, emulator, [
      {
        name: "k8s",
        vault: VAULT,
        certificate: "k8s-cert",
        source: { cert: join(secret, "tls.crt"), key: join(secret, "tls.key") },
      },
      {
        name: "live",
        vault: VAULT,
        certificate: "live-cert",
        source: { cert: join(plain, "c.pem"), key: join(plain, "k.pem") },
      },
    ])
    const a = startAgent(config, { ...baseEnv(), ...emulator.env.clientSecret })
    suite.agent = a
    await a.waitFor((l) => l.deployment === "k8s" && l.msg === "deploy: Succeeded")
    await a.waitFor((l) => l.deployment === "live" && l.msg === "deploy: Succeeded")
    expect(latestX5t("k8s-cert")).toBe(first.x5t)

    // The swap changes no file name the configuration lists; it is still seen.
    const second = await pki.leaf("k8s.example.test")
    let from = a.lines.length
    version(2, second.certPem, second.keyPem)
    expect(readlinkSync(join(secret, "..data"))).toBe("..v2")
    await a.waitFor((l) => l.deployment === "k8s" && l.msg === "deploy: Succeeded", { from })
    await expect.poll(() => latestX5t("k8s-cert"), { timeout: 10_000 }).toBe(second.x5t)

    // The directory removed, and created again a while later: the new one is watched (and its files
    // deployed), although no file event reaches a watch on the removed one.
    const renewed = await pki.leaf("live.example.test")
    from = a.lines.length
    rmSync(plain, { recursive: true, force: true })
    await a.waitFor((l) => l.deployment === "live" && /^source broken/.test(l.msg), { from })
    from = a.lines.length
    fill(renewed.certPem, renewed.keyPem)
    await a.waitFor((l) => l.deployment === "live" && l.msg === "deploy: Succeeded", { from })
    await expect.poll(() => latestX5t("live-cert"), { timeout: 10_000 }).toBe(renewed.x5t)
    // And a later plain atomic write into the new directory is seen too (the watch is not dead).
    const again = await pki.leaf("live.example.test")
    from = a.lines.length
    writeFileSync(join(plain, ".k.tmp"), again.keyPem, { mode: 0o600 })
    renameSync(join(plain, ".k.tmp"), join(plain, "k.pem"))
    writeFileSync(join(plain, ".c.tmp"), again.certPem, { mode: 0o600 })
    renameSync(join(plain, ".c.tmp"), join(plain, "c.pem"))
    await a.waitFor((l) => l.deployment === "live" && l.msg === "deploy: Succeeded", { from })
    await expect.poll(() => latestX5t("live-cert"), { timeout: 10_000 }).toBe(again.x5t)
  })
})
