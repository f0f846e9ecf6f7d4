/**
 * Source files another user could replace are not deployed (ssh's StrictModes for the agent): a
 * directory every user may write, and a symbolic link into one, are `source broken` with the fix
 * and nothing reaches the vault; certbot's live -> archive links and a Kubernetes secret volume's
 * ..data links (in a sticky 1777 mount directory) deploy, and so does the directory of an ACME client
 * running as its own user, named as the source's owner.
 */
import { chmodSync, chownSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { agentSuite, baseEnv, startAgent, writeConfig } from "./harness.js"

const VAULT = "agent-trust"
const suite = agentSuite([VAULT])

describe("who may change a source's files", () => {
  it("deploys certbot's and Kubernetes' linked layouts, and nothing from files another user could replace", async () => {
    const { emulator, pki, work } = suite
    const [certbot, kube, open, linked, acme] = await Promise.all(
      ["certbot", "kube", "open", "linked", "acme"].map((n) => pki.leaf(`${n}.example.test`)),
    )
    if (
      certbot === undefined ||
      kube === undefined ||
      open === undefined ||
      linked === undefined ||
      acme === undefined
    )
      throw new Error("no leaf")
    // certbot: live/NAME/*.pem -> ../../archive/NAME/*1.pem, directories 0700.
    const archive = join(work.dir, "letsencrypt", "archive", "certbot.example.test")
    const live = join(work.dir, "letsencrypt", "live", "certbot.example.test")
    mkdirSync(archive, { recursive: true, mode: 0o700 })
    mkdirSync(live, { recursive: true, mode: 0o700 })
    writeFileSync(join(archive, "fullchain1.pem"), certbot.certPem, { mode: 0o644 })
    writeFileSync(join(archive, "privkey1.pem"), certbot.keyPem, { mode: 0o600 })
    symlinkSync("../../archive/certbot.example.test/fullchain1.pem", join(live, "fullchain.pem"))
    symlinkSync("../../archive/certbot.example.test/privkey1.pem", join(live, "privkey.pem"))
    // Kubernetes: a sticky 1777 mount directory, the files in a timestamped directory, ..data its link.
    const mount = join(work.dir, "secret-volume")
    mkdirSync(mount)
    chmodSync(mount, 0o1777)
    const stamped = join(mount, "..2026_12_01_21_00_00.000000001")
    mkdirSync(stamped, { mode: 0o755 })
    writeFileSync(join(stamped, "tls.crt"), kube.certPem, { mode: 0o644 })
    writeFileSync(join(stamped, "tls.key"), kube.keyPem, { mode: 0o600 })
    symlinkSync("..2026_12_01_21_00_00.000000001", join(mount, "..data"))
    symlinkSync("..data/tls.crt", join(mount, "tls.crt"))
    symlinkSync("..data/tls.key", join(mount, "tls.key"))
    // A directory every user may write (no sticky bit): anyone could have put these files there.
    const openDir = join(work.dir, "open")
    mkdirSync(openDir)
    writeFileSync(join(openDir, "open.crt"), open.certPem, { mode: 0o644 })
    writeFileSync(join(openDir, "open.key"), open.keyPem, { mode: 0o600 })
    writeFileSync(join(openDir, "linked.key"), linked.keyPem, { mode: 0o600 })
    chmodSync(openDir, 0o777)
    // A safe directory whose key is a link into that directory.
    const safe = join(work.dir, "safe")
    mkdirSync(safe, { mode: 0o755 })
    writeFileSync(join(safe, "linked.crt"), linked.certPem, { mode: 0o644 })
    symlinkSync("../open/linked.key", join(safe, "linked.key"))
    // An ACME client running as its own user (uid 4242, named as the source's owner) writes its own
    // directory (as root only: chown).
    const asRoot = process.getuid?.() === 0
    const acmeDir = join(work.dir, "acme-home")
    mkdirSync(acmeDir, { mode: 0o700 })
    writeFileSync(join(acmeDir, "fullchain.cer"), acme.certPem, { mode: 0o644 })
    writeFileSync(join(acmeDir, "acme.key"), acme.keyPem, { mode: 0o600 })
    if (asRoot) for (const f of ["", "fullchain.cer", "acme.key"]) chownSync(join(acmeDir, f), 4242, 4242)

    const config = writeConfig(work, emulator, [
      {
        name: "certbot",
        vault: VAULT,
        certificate: "certbot",
        source: { cert: join(live, "fullchain.pem"), key: join(live, "privkey.pem") },
      },
      {
        name: "kube",
        vault: VAULT,
        certificate: "kube",
        source: { cert: join(mount, "tls.crt"), key: join(mount, "tls.key") },
      },
      {
        name: "open",
        vault: VAULT,
        certificate: "open",
        source: { cert: join(openDir, "open.crt"), key: join(openDir, "open.key") },
      },
      {
        name: "linked",
        vault: VAULT,
        certificate: "linked",
        source: { cert: join(safe, "linked.crt"), key: join(safe, "linked.key") },
      },
      {
        name: "acme",
        vault: VAULT,
        certificate: "acme",
        source: { cert: join(acmeDir, "fullchain.cer"), key: join(acmeDir, "acme.key"), owner: 4242 },
      },
    ])
    const a = startAgent(config, { ...baseEnv(), ...emulator.env.clientSecret })
    suite.agent = a
    await a.waitFor((l) => l.deployment === "certbot" && l.msg === "deploy: Succeeded")
    await a.waitFor((l) => l.deployment === "kube" && l.msg === "deploy: Succeeded")
    expect(emulator.state.versions(VAULT, "certbot")?.at(-1)?.x5t).toBe(certbot.x5t)
    expect(emulator.state.versions(VAULT, "kube")?.at(-1)?.x5t).toBe(kube.x5t)
    await a.waitFor((l) => l.deployment === "acme" && l.msg === "deploy: Succeeded")
    expect(emulator.state.versions(VAULT, "acme")?.at(-1)?.x5t).toBe(acme.x5t)

    const openBroken = await a.waitFor((l) => l.deployment === "open" && /^source broken/.test(l.msg))
    expect(openBroken.problems).toEqual([
      expect.stringMatching(
        new RegExp(
          `^cert ${join(openDir, "open.crt")}: the directory ${openDir} is writable by every user \\(mode 0777, no sticky bit\\): .* fix: chmod o-w ${openDir}; `,
        ),
      ),
      expect.stringContaining(
        `key ${join(openDir, "open.key")}: the directory ${openDir} is writable by every user`,
      ),
    ])
    const linkedBroken = await a.waitFor((l) => l.deployment === "linked" && /^source broken/.test(l.msg))
    expect(linkedBroken.problems).toEqual([
      expect.stringContaining(
        `key ${join(safe, "linked.key")}: the directory ${openDir} is writable by every user`,
      ),
    ])
    // Nothing of theirs reached the vault: not even a read (a broken source is not compared).
    expect(emulator.state.versions(VAULT, "open") ?? []).toEqual([])
    expect(emulator.state.versions(VAULT, "linked") ?? []).toEqual([])
    expect(
      emulator.requests.entries({ vault: VAULT }).filter((e) => /\/(open|linked)(\/|$|\?)/.test(e.path)),
    ).toEqual([])
  })
})
