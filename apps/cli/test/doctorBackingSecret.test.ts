/**
 * `kvdeploy doctor`'s secrets/get check (the built CLI) over a PEM backing secret: one whose leaf
 * is not its first certificate (another tool imported it with `preserveCertOrder: true`, root
 * first) is readable and restorable, not "not exportable"; one whose key belongs to none of its
 * certificates is said for what it is, with what to do instead of "retry".
 */

import type { CertificateClient } from "@azure/keyvault-certificates"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { type DoctorCheck, json, runCli, startWorld, type World } from "./harness.js"
import { otherToolClient, PEM } from "./otherTool.js"

let world: World
let fx: Fixtures
let orderKeeping: CertificateClient

beforeAll(async () => {
  ;[world, fx] = await Promise.all([startWorld("cli-doctor-secret"), makeFixtures()])
  // Another tool's PEM import with `preserveCertOrder: true`.
  orderKeeping = otherToolClient(world, { exportable: true, preserveCertOrder: true })
}, 60_000)
afterAll(async () => {
  await world?.stop()
})

type Check = DoctorCheck

/** Imported as PEM root first, the leaf after its chain, the order kept, with kvdeploy's tags. */
const importRootFirst = async (name: string) => {
  const leaf = await fx.leaf()
  const text = fx.pki.root.certPem + fx.pki.intermediate.certPem + leaf.certPem + leaf.keyPem
  await orderKeeping.importCertificate(name, new TextEncoder().encode(text), {
    policy: { contentType: PEM },
    tags: { "certctl-managed-by": "certctl", "certctl-certificate-id": `id-${name}` },
  })
  return leaf
}

const secretsCheck = async (name: string) => {
  const r = await runCli(["doctor", "--config", world.targetFile(name), "--json"], { env: world.env })
  const check = json<{ checks: Array<Check> }>(r).checks.find((c) => c.check === "secrets/get")
  return { code: r.code, check }
}

describe("doctor's secrets/get over a PEM backing secret", () => {
  it("root first, the leaf last (preserveCertOrder): readable, a rollback can restore it; not 'not exportable'", async () => {
    const name = "doctor-root-first"
    await importRootFirst(name)
    const served = world.emulator.state.versions(world.vault, name)?.at(-1)
    expect(served?.contentType).toBe(PEM)
    const { code, check } = await secretsCheck(name)
    expect(code).toBe(0)
    expect(check).toEqual({
      check: "secrets/get",
      status: "pass",
      detail: "the backing secret is readable (rollback can restore the previous PFX)",
    })
  })

  it("a key that belongs to none of its certificates: warned for what it holds, with what to do", async () => {
    const name = "doctor-key-of-none"
    await importRootFirst(name)
    // An answer changed on its way (Key Vault imports no such pair): another leaf's key.
    const stranger = await fx.leaf()
    const value = fx.pki.root.certPem + fx.pki.intermediate.certPem + stranger.keyPem
    const fault = world.emulator.faults.add({
      operation: "getSecret",
      vault: world.vault,
      name,
      times: "always",
      action: { kind: "setFields", fields: { value } },
    })
    try {
      const { code, check } = await secretsCheck(name)
      // A warning: a deploy works; a rollback to this version cannot use its secret.
      expect(code).toBe(0)
      expect(check?.status).toBe("warn")
      expect(check?.detail).not.toMatch(/not exportable|holds no private key/)
      expect(check?.detail).toMatch(
        /the PEM backing secret of doctor-key-of-none\/\S+ holds a private key but no certificate it belongs to \(2 certificates, none of them the key's\)/,
      )
      expect(check?.fix).toMatch(
        /^a rollback to this version cannot use its backing secret as the vault answered it: keep its key \(kvdeploy deploy --previous-key\)/,
      )
      expect(check?.fix).not.toMatch(/^retry/)
    } finally {
      world.emulator.faults.remove(fault)
    }
  })

  it("an answer the SDK fails on (an id that is no text): warned, saying so, with the same fix", async () => {
    const name = "doctor-sdk-fails"
    await importRootFirst(name)
    const fault = world.emulator.faults.add({
      operation: "getSecret",
      vault: world.vault,
      name,
      times: "always",
      action: { kind: "setFields", fields: { id: 42 } },
    })
    try {
      const { code, check } = await secretsCheck(name)
      expect(code).toBe(0)
      expect(check?.status).toBe("warn")
      expect(check?.detail).toMatch(/the SDK failed on it \(/)
      expect(check?.detail).not.toMatch(
        /not exportable|holds no private key|so the version cannot be restored/,
      )
      expect(check?.fix).toMatch(
        /^a rollback to this version cannot use its backing secret as the vault answered it: keep its key \(kvdeploy deploy --previous-key\)\. Unless the detail names what kvdeploy's PFX reader does not support, Key Vault sends no such answer/,
      )
    } finally {
      world.emulator.faults.remove(fault)
    }
  })
})
