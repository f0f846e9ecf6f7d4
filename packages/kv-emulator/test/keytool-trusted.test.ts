/**
 * A Java keystore with a trusted-certificate entry beside its key entry (keytool -importcert of an
 * mTLS client CA, as Tomcat or Spring keep one): Key Vault imports it, so the emulator does too.
 * kvdeploy's own decode refuses it (the entry is no part of the key entry's chain, and deploying
 * or dropping it unsaid would deploy something other than the file): that refusal is kvdeploy's,
 * not the vault's (review 37bc).
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { decodePfx } from "@kvdeploy/pkcs12"
import { generateKey, issue, toPem } from "@kvdeploy/pkcs12/testing"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { describe, expect, it } from "vitest"
import { readMaterial } from "../src/material.js"

const keytool = (args: ReadonlyArray<string>, input?: string): void => {
  const r = spawnSync("keytool", [...args], {
    input,
    encoding: "utf8",
    env: { ...process.env, PW: "changeit" },
  })
  if (r.status !== 0) throw new Error(`keytool ${args[0]}: ${r.error?.message ?? r.stderr}`)
}

/** A keystore of the key entry "web" and the trusted entry "clientca" (an unrelated CA). */
const keystoreWithTrustedEntry = async (): Promise<Uint8Array> => {
  const clientCa = await issue({ subject: "CN=Client CA", key: await generateKey("P-256"), ca: true })
  const dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "kv-emulator-keytool-"))
  try {
    const store = join(dir, "ks.p12")
    const common = ["-keystore", store, "-storetype", "PKCS12", "-storepass:env", "PW"]
    keytool([
      "-genkeypair",
      ...common,
      "-alias",
      "web",
      "-keyalg",
      "EC",
      "-groupname",
      "secp256r1",
      "-dname",
      "CN=web.example.test",
      "-validity",
      "30",
    ])
    keytool(["-importcert", "-noprompt", ...common, "-alias", "clientca"], toPem("CERTIFICATE", clientCa))
    return new Uint8Array(readFileSync(store))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

describe("a keytool PFX with a trusted-certificate entry off the key entry's chain", () => {
  it("the emulator imports it as Key Vault does; kvdeploy's decode still refuses it", async () => {
    const pfx = await keystoreWithTrustedEntry()
    const read = await readMaterial(Buffer.from(pfx).toString("base64"), "changeit")
    expect(read.leafFacts.subject).toBe("CN=web.example.test")
    expect(read.sentOrder).toHaveLength(2)
    const refused = await Effect.runPromise(Effect.flip(decodePfx(pfx, Redacted.make("changeit"))))
    expect(refused.reason).toBe("unsupported")
    expect(refused.finding).toMatch(
      /^the PFX holds the trusted-certificate entry "clientca" \("CN=Client CA"\)/,
    )
  }, 60_000)
})
