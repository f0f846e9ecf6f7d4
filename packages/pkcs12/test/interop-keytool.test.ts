/**
 * Java keytool interop (each call starts a JVM, so this file runs beside
 * interop.test.ts rather than after it). Covers each leaf key type once per
 * profile, the chain length rotating through 1 to 4:
 * - `keytool -list -storetype PKCS12` reads every such PFX kvdeploy writes,
 *   as one PrivateKeyEntry with the expected chain, with the test password and
 *   as the transport PFX core builds (blank password, 1 KDF/MAC iteration);
 * - kvdeploy reads PFX files keytool writes (OpenSSL's re-encoded by
 *   `keytool -importkeystore`, and `keytool -genkeypair` RSA/EC), in Java 17's
 *   default profile and with -Dkeystore.pkcs12.legacy.
 */
import type { CertificateMaterial } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { beforeAll, describe, expect, it } from "vitest"
import { decodePfx, encodePfx, inspectMaterial } from "../src/index.js"
import {
  canonicalPkcs8,
  generateKey,
  hex,
  issue,
  type KeySpec,
  keySpecs,
  makeAuthorities,
  makeMaterial,
  toPem,
} from "./fixtures.js"
import {
  keytoolGenerate,
  keytoolImportTrusted,
  keytoolList,
  keytoolRewrite,
  opensslExport,
  opensslRead,
  sha256Hex,
  shouldRun,
} from "./tools.js"

const encodings = ["modern", "legacy"] as const
type Encoding = (typeof encodings)[number]
const lengths = [1, 2, 3, 4] as const
const PASSWORD = "kvdeploy-interop-Pw1"

const materials = new Map<string, CertificateMaterial>()
const written = new Map<string, Uint8Array>()
const id = (spec: KeySpec, length: number, encoding?: Encoding) =>
  `${spec}/${length}${encoding ? `/${encoding}` : ""}`
const subset = keySpecs.map((spec, i) => ({ spec, length: lengths[i % lengths.length] ?? 1 }))

const material = (spec: KeySpec, length: number): CertificateMaterial => {
  const m = materials.get(id(spec, length))
  if (m === undefined) throw new Error(`no material ${id(spec, length)}`)
  return m
}
const pfxOf = (spec: KeySpec, length: number, encoding: Encoding): Uint8Array => {
  const p = written.get(id(spec, length, encoding))
  if (p === undefined) throw new Error(`no PFX ${id(spec, length, encoding)}`)
  return p
}
const decode = (pfx: Uint8Array) => Effect.runPromise(decodePfx(pfx, Redacted.make(PASSWORD)))
const pemOfKey = (pkcs8: Uint8Array): string => toPem("PRIVATE KEY", pkcs8)

beforeAll(async () => {
  const authorities = await makeAuthorities()
  for (const { spec, length } of subset) {
    const m = await makeMaterial(
      await generateKey(spec),
      length,
      authorities,
      `CN=${spec.toLowerCase()}-${length}.example.test`,
    )
    materials.set(id(spec, length), m)
    for (const encoding of encodings)
      written.set(
        id(spec, length, encoding),
        await Effect.runPromise(
          encodePfx(m, { encoding, password: Redacted.make(PASSWORD), friendlyName: "kvdeploy" }),
        ),
      )
  }
}, 120_000)

describe.runIf(shouldRun("keytool"))("Java keytool", () => {
  for (const encoding of encodings) {
    it(`keytool -list reads what kvdeploy writes (${encoding})`, async () => {
      for (const { spec, length } of subset) {
        const m = material(spec, length)
        const listing = await keytoolList(pfxOf(spec, length, encoding), PASSWORD)
        expect(listing.entryType, id(spec, length)).toBe("PrivateKeyEntry")
        expect(listing.chainSha256).toEqual([m.leaf, ...m.chain].map(sha256Hex))
      }
    })

    it(`keytool -list reads the transport PFX: blank password, 1 KDF/MAC iteration (${encoding})`, async () => {
      for (const { spec, length } of subset) {
        const m = material(spec, length)
        const pfx = await Effect.runPromise(
          encodePfx(m, { encoding, password: Redacted.make(""), iterations: 1 }),
        )
        const listing = await keytoolList(pfx, "")
        expect(listing.entryType, id(spec, length)).toBe("PrivateKeyEntry")
        expect(listing.chainSha256).toEqual([m.leaf, ...m.chain].map(sha256Hex))
      }
    })

    it(`kvdeploy reads what keytool writes (${encoding === "legacy" ? "-Dkeystore.pkcs12.legacy" : "Java 17 default"})`, async () => {
      for (const { spec, length } of subset.slice(0, 3)) {
        const m = material(spec, length)
        // OpenSSL writes the source; Java re-encodes it with its own PKCS#12 writer.
        const source = await opensslExport(
          [m.leaf, ...m.chain].map((c) => toPem("CERTIFICATE", c)).join(""),
          pemOfKey(Redacted.value(m.key)),
          PASSWORD,
          false,
        )
        const pfx = await keytoolRewrite(source, PASSWORD, encoding === "legacy")
        // Java really wrote the profile asked for (legacy: RC2-40 certificates, 3DES key, SHA-1 MAC).
        const info = (await opensslRead(pfx, PASSWORD, true)).info
        expect(info).toMatch(
          encoding === "legacy" ? /pbeWithSHA1And40BitRC2-CBC/ : /PBES2, PBKDF2, AES-256-CBC/,
        )
        const back = await decode(pfx)
        expect(hex(back.leaf), id(spec, length)).toBe(hex(m.leaf))
        expect(back.chain.map(hex)).toEqual(m.chain.map(hex))
        expect(hex(Redacted.value(back.key))).toBe(hex(canonicalPkcs8(Redacted.value(m.key))))
      }
      for (const keyalg of ["RSA", "EC"] as const) {
        const pfx = await keytoolGenerate(keyalg, PASSWORD, encoding === "legacy")
        const back = await decode(pfx)
        expect(back.chain).toEqual([])
        const inspected = await Effect.runPromise(inspectMaterial(back))
        expect(inspected.keyMatchesLeaf).toBe(true)
        expect(inspected.leaf.subject).toBe("CN=keytool.example.test")
        expect(inspected.key.keyType).toBe(keyalg)
      }
    })
  }

  it("a keystore's trusted-certificate entry (keytool -importcert -alias clientca beside the key entry web): refused by alias when off the chain, read as the chain when it is the root", async () => {
    const authorities = await makeAuthorities()
    // The key entry holds the leaf and its intermediate (the root is not sent).
    const full = await makeMaterial(await generateKey("P-256"), 3, authorities, "CN=web.example.test")
    const m = { ...full, chain: full.chain.slice(0, 1) }
    const store = await Effect.runPromise(
      encodePfx(m, { encoding: "modern", password: Redacted.make(PASSWORD), friendlyName: "web" }),
    )
    const clientCa = await issue({ subject: "CN=Client CA", key: await generateKey("P-256"), ca: true })
    const withClientCa = await keytoolImportTrusted(
      store,
      PASSWORD,
      "clientca",
      toPem("CERTIFICATE", clientCa),
    )
    const refused = await Effect.runPromise(Effect.flip(decodePfx(withClientCa, Redacted.make(PASSWORD))))
    expect(refused.reason).toBe("unsupported")
    expect(refused.finding).toBe(
      'the PFX holds the trusted-certificate entry "clientca" ("CN=Client CA"), a certificate that is not in the chain of the key entry "web"; kvdeploy neither deploys it in the chain nor drops it unsaid',
    )
    expect(refused.fix).toContain("keytool -delete -alias clientca -keystore FILE")
    expect(refused.fix).toContain("keytool -importkeystore -srcalias web -srckeystore FILE")
    // The chain's root as the trusted entry: it completes the chain, and the store deploys.
    const root = authorities.certificates[0] ?? new Uint8Array()
    const withRoot = await keytoolImportTrusted(store, PASSWORD, "rootca", toPem("CERTIFICATE", root))
    const back = await decode(withRoot)
    expect(hex(back.leaf)).toBe(hex(m.leaf))
    expect(back.chain.map(hex)).toEqual(full.chain.map(hex))
    expect((await Effect.runPromise(inspectMaterial(back))).problems).toEqual([])
  }, 60_000)
})
