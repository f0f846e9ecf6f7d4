/**
 * Interop matrix: every PFX kvdeploy writes is read back, with the same key,
 * leaf and chain, by OpenSSL 3, Python `cryptography` and node-forge; every
 * PFX that OpenSSL writes is
 * read correctly by kvdeploy.
 *
 * Matrix: leaf keys RSA 2048/3072/4096 and EC P-256/P-384/P-521 × chains of
 * 1 to 4 certificates × modern/legacy, in full for OpenSSL, Python and forge.
 * keytool is in interop-keytool.test.ts.
 */
import { createDecipheriv, createHash, createPrivateKey, generateKeyPairSync, pbkdf2Sync } from "node:crypto"
import type { CertificateMaterial } from "@kvdeploy/core"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as pkijs from "pkijs"
import { beforeAll, describe, expect, it } from "vitest"
import { decodePfx, decodePfxCertificates, encodePfx, inspectMaterial } from "../src/index.js"
import {
  canonicalPkcs8,
  generateKey,
  hex,
  type KeySpec,
  keySpecs,
  makeAuthorities,
  makeMaterial,
  type TestAuthorities,
  type TestKey,
  toPem,
} from "./fixtures.js"
import {
  ci,
  forgeRead,
  missingTools,
  mustSucceed,
  opensslExport,
  opensslRead,
  pythonReadAll,
  run,
  shouldRun,
  tbsOf,
} from "./tools.js"

const encodings = ["modern", "legacy"] as const
type Encoding = (typeof encodings)[number]
const lengths = [1, 2, 3, 4] as const
const PASSWORD = "kvdeploy-interop-Pw1"

let authorities: TestAuthorities
const keys = new Map<KeySpec, TestKey>()
const materials = new Map<string, CertificateMaterial>()
const written = new Map<string, Uint8Array>()
const id = (spec: KeySpec, length: number, encoding?: Encoding) =>
  `${spec}/${length}${encoding ? `/${encoding}` : ""}`

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

const encode = (m: CertificateMaterial, encoding: Encoding, password = PASSWORD) =>
  Effect.runPromise(encodePfx(m, { encoding, password: Redacted.make(password), friendlyName: "kvdeploy" }))
const decode = (pfx: Uint8Array, password = PASSWORD) =>
  Effect.runPromise(decodePfx(pfx, Redacted.make(password)))

const sha1Hex = (der: Uint8Array): string => createHash("sha1").update(der).digest("hex")
const pemOfKey = (pkcs8: Uint8Array): string => toPem("PRIVATE KEY", pkcs8)
const keyOfPem = (pem: string): Uint8Array =>
  new Uint8Array(createPrivateKey(pem).export({ type: "pkcs8", format: "der" }))

beforeAll(async () => {
  authorities = await makeAuthorities()
  for (const spec of keySpecs) keys.set(spec, await generateKey(spec))
  for (const spec of keySpecs) {
    const key = keys.get(spec)
    if (key === undefined) continue
    for (const length of lengths) {
      const m = await makeMaterial(
        key,
        length,
        authorities,
        `CN=${spec.toLowerCase()}-${length}.example.test`,
      )
      materials.set(id(spec, length), m)
      for (const encoding of encodings) written.set(id(spec, length, encoding), await encode(m, encoding))
    }
  }
}, 120_000)

describe("interop tool presence", () => {
  // Locally, a missing tool skips its tests, and this one shows as skipped (not passed); with
  // CI=true every tool is required.
  it.skipIf(!ci && missingTools.length > 0)(
    "OpenSSL, keytool and Python cryptography are installed (required when CI=true)",
    () => {
      expect(missingTools, `install: ${missingTools.join(", ")} (CI installs them in .ci/run)`).toEqual([])
    },
  )
  if (!ci && missingTools.length > 0)
    console.warn(
      `\n!!! interop tools missing locally: ${missingTools.join(", ")} — their tests are skipped\n`,
    )
})

const expectedInfo: Record<Encoding, ReadonlyArray<RegExp>> = {
  modern: [
    /MAC: sha256/,
    /Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256/,
    /PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC/,
  ],
  legacy: [
    /MAC: sha1/,
    /Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC/,
    /PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC/,
  ],
}

describe.runIf(shouldRun("openssl"))("OpenSSL reads what kvdeploy writes", () => {
  for (const encoding of encodings) {
    it.each(keySpecs)(`%s leaf, chains of 1-4, ${encoding}`, async (spec) => {
      for (const length of lengths) {
        const m = material(spec, length)
        const read = await opensslRead(pfxOf(spec, length, encoding), PASSWORD, encoding === "legacy")
        expect(read.leaf && hex(read.leaf), id(spec, length)).toBe(hex(m.leaf))
        expect(read.chain.map(hex)).toEqual(m.chain.map(hex))
        expect(read.keyPem && hex(keyOfPem(read.keyPem))).toBe(hex(canonicalPkcs8(Redacted.value(m.key))))
        for (const pattern of expectedInfo[encoding]) expect(read.info).toMatch(pattern)
      }
    })
  }
})

describe.runIf(shouldRun("openssl"))("bag attributes as OpenSSL sees them", () => {
  for (const encoding of encodings) {
    it(`the key bag and the leaf's certificate bag share one localKeyID and the friendlyName (${encoding})`, async () => {
      const read = await opensslRead(pfxOf("RSA-2048", 3, encoding), PASSWORD, encoding === "legacy")
      const ids = [...read.text.matchAll(/localKeyID: ([0-9A-F ]+)/g)].map((m) => m[1]?.trim())
      expect(ids).toHaveLength(2)
      expect(ids[0]).toBe(ids[1])
      expect(ids[0]?.replaceAll(" ", "").toLowerCase()).toBe(sha1Hex(material("RSA-2048", 3).leaf))
      expect([...read.text.matchAll(/friendlyName: kvdeploy/g)]).toHaveLength(2)
      // The chain certificates carry no attributes.
      expect([...read.text.matchAll(/Bag Attributes: <No Attributes>/g)]).toHaveLength(2)
    })
  }

  it("a PFX without a key (openssl -nokeys) is no-key; one without certificates is no-certificate", async () => {
    const m = material("P-256", 2)
    const certsOnly = mustSucceed(
      "openssl pkcs12 -export -nokeys",
      await run("openssl", ["pkcs12", "-export", "-nokeys", "-passout", "env:PFXPW"], {
        input: [m.leaf, ...m.chain].map((c) => toPem("CERTIFICATE", c)).join(""),
        env: { PFXPW: PASSWORD },
      }),
    ).stdout
    const noKey = await Effect.runPromise(
      Effect.flip(decodePfx(new Uint8Array(certsOnly), Redacted.make(PASSWORD))),
    )
    expect(noKey.reason).toBe("no-key")
    // Its certificates are read all the same by decodePfxCertificates (for a reader that needs no key).
    const certificates = await Effect.runPromise(
      decodePfxCertificates(new Uint8Array(certsOnly), Redacted.make(PASSWORD)),
    )
    expect(certificates.map((c) => Buffer.from(c).toString("hex"))).toEqual(
      [m.leaf, ...m.chain].map((c) => Buffer.from(c).toString("hex")),
    )
    const keyOnly = mustSucceed(
      "openssl pkcs12 -export -nocerts",
      await run("bash", ["-c", "exec openssl pkcs12 -export -nocerts -passout env:PFXPW -inkey <(cat)"], {
        input: pemOfKey(Redacted.value(m.key)),
        env: { PFXPW: PASSWORD },
      }),
    ).stdout
    const noCert = await Effect.runPromise(
      Effect.flip(decodePfx(new Uint8Array(keyOnly), Redacted.make(PASSWORD))),
    )
    expect(noCert.reason).toBe("no-certificate")
    const noCertificates = await Effect.runPromise(
      Effect.flip(decodePfxCertificates(new Uint8Array(keyOnly), Redacted.make(PASSWORD))),
    )
    expect(noCertificates.reason).toBe("no-certificate")
  })
})

describe.runIf(shouldRun("openssl"))("kvdeploy reads what OpenSSL writes", () => {
  for (const encoding of encodings) {
    it.each(keySpecs)(
      `openssl pkcs12 -export${encoding === "legacy" ? " -legacy" : ""}: %s leaf, chains of 1-4`,
      async (spec) => {
        for (const length of lengths) {
          const m = material(spec, length)
          // Chain first, leaf last: OpenSSL finds the leaf by the key.
          const pem = [...m.chain, m.leaf].map((c) => toPem("CERTIFICATE", c)).join("")
          const pfx = await opensslExport(
            pem,
            pemOfKey(Redacted.value(m.key)),
            PASSWORD,
            encoding === "legacy",
          )
          const back = await decode(pfx)
          expect(hex(back.leaf), id(spec, length)).toBe(hex(m.leaf))
          expect(back.chain.map(hex)).toEqual(m.chain.map(hex))
          expect(hex(Redacted.value(back.key))).toBe(hex(canonicalPkcs8(Redacted.value(m.key))))
        }
      },
    )
  }
})

describe.runIf(shouldRun("openssl"))(
  "kvdeploy reads RC2-128 (openssl -certpbe/-keypbe PBE-SHA1-RC2-128)",
  () => {
    it("certificates and key under pbeWithSHA1And128BitRC2-CBC", async () => {
      const m = material("RSA-2048", 3)
      const pem = [...m.chain, m.leaf].map((c) => toPem("CERTIFICATE", c)).join("")
      const pfx = await opensslExport(pem, pemOfKey(Redacted.value(m.key)), PASSWORD, true, {
        cert: "PBE-SHA1-RC2-128",
        key: "PBE-SHA1-RC2-128",
      })
      // OpenSSL really wrote RC2-128 for both.
      const read = await opensslRead(pfx, PASSWORD, true)
      expect(read.info).toMatch(/Shrouded Keybag: pbeWithSHA1And128BitRC2-CBC/)
      expect(read.info).toMatch(/PKCS7 Encrypted data: pbeWithSHA1And128BitRC2-CBC/)
      const back = await decode(pfx)
      expect(hex(back.leaf)).toBe(hex(m.leaf))
      expect(back.chain.map(hex)).toEqual(m.chain.map(hex))
      expect(hex(Redacted.value(back.key))).toBe(hex(canonicalPkcs8(Redacted.value(m.key))))
      const wrong = await Effect.runPromise(Effect.flip(decodePfx(pfx, Redacted.make(`${PASSWORD}x`))))
      expect(wrong.reason).toBe("wrong-password")
    })
  },
)

describe.runIf(shouldRun("openssl"))("kvdeploy checks the MAC of every digest OpenSSL writes it with", () => {
  // The MAC key is a 2048-round PKCS#12 KDF chain of that digest (the long chains run on
  // @noble/hashes, the short ones on node:crypto: see pkcs12Kdf.ts); a wrong chain fails the MAC.
  it.each(["sha1", "sha224", "sha256", "sha384", "sha512"])("-macalg %s", async (macalg) => {
    const m = material("P-256", 1)
    const pem = [...m.chain, m.leaf].map((c) => toPem("CERTIFICATE", c)).join("")
    const pfx = await opensslExport(pem, pemOfKey(Redacted.value(m.key)), PASSWORD, false, undefined, macalg)
    const read = await opensslRead(pfx, PASSWORD, false)
    expect(read.info).toMatch(new RegExp(`MAC: ${macalg}, Iteration 2048`))
    const back = await decode(pfx)
    expect(hex(back.leaf)).toBe(hex(m.leaf))
    expect(hex(Redacted.value(back.key))).toBe(hex(canonicalPkcs8(Redacted.value(m.key))))
    const wrong = await Effect.runPromise(Effect.flip(decodePfx(pfx, Redacted.make(`${PASSWORD}x`))))
    expect(wrong.reason).toBe("wrong-password")
    expect(wrong.detail).toMatch(/integrity check failed/)
  })
})

describe.runIf(shouldRun("openssl"))(
  "a PFX without a MAC (openssl -nomac): a wrong password is named",
  () => {
    /** The certificate block's PBES2 parameters and ciphertext, read with pkijs (not the code under test). */
    const certificateBlock = (pfx: Uint8Array) => {
      const outer = new pkijs.PFX({ schema: asn1js.fromBER(pfx).result })
      const authSafe = (outer.authSafe.content as asn1js.OctetString).getValue()
      const safe = new pkijs.AuthenticatedSafe({ schema: asn1js.fromBER(authSafe).result })
      const info = safe.safeContents.find((c) => c.contentType === "1.2.840.113549.1.7.6")
      if (info === undefined) throw new Error("no encrypted block")
      const data = new pkijs.EncryptedData({ schema: info.content })
      const pbes2 = new pkijs.PBES2Params({
        schema: data.encryptedContentInfo.contentEncryptionAlgorithm.algorithmParams,
      })
      const kdf = new pkijs.PBKDF2Params({ schema: pbes2.keyDerivationFunc.algorithmParams })
      return {
        salt: (kdf.salt as asn1js.OctetString).valueBlock.valueHexView,
        iterations: kdf.iterationCount,
        iv: (pbes2.encryptionScheme.algorithmParams as asn1js.OctetString).valueBlock.valueHexView,
        ciphertext: new Uint8Array(data.encryptedContentInfo.getEncryptedContent()),
      }
    }
    /** Whether `password` gives the block valid CBC padding (Node's PBKDF2 and AES): about 1 wrong password in 256 does. */
    const paddingValid = (block: ReturnType<typeof certificateBlock>, password: string) => {
      const key = pbkdf2Sync(password, block.salt, block.iterations, 32, "sha256")
      const decipher = createDecipheriv("aes-256-cbc", key, block.iv)
      try {
        decipher.update(block.ciphertext)
        decipher.final()
        return true
      } catch {
        return false
      }
    }

    it("a wrong password whose garbage passes the padding check is still a wrong password, not a malformed file", async () => {
      const m = material("P-256", 2)
      const pem = [...m.chain, m.leaf].map((c) => toPem("CERTIFICATE", c)).join("")
      const pfx = await opensslExport(
        pem,
        pemOfKey(Redacted.value(m.key)),
        PASSWORD,
        false,
        { cert: "AES-256-CBC", key: "AES-256-CBC" },
        "none",
        1,
      )
      const read = await opensslRead(pfx, PASSWORD, false)
      expect(read.info).not.toMatch(/MAC:/)
      expect(read.info).toMatch(/PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 1/)
      expect(hex((await decode(pfx)).leaf)).toBe(hex(m.leaf))
      const block = certificateBlock(pfx)
      // The check reads the padding right: the right password gives valid padding.
      expect(paddingValid(block, PASSWORD)).toBe(true)
      const lucky = Array.from({ length: 20_000 }, (_, i) => `wrong-${i}`).find((pw) =>
        paddingValid(block, pw),
      )
      if (lucky === undefined)
        throw new Error("no wrong password with valid padding in 20,000 (expected about 78)")
      const wrong = await Effect.runPromise(Effect.flip(decodePfx(pfx, Redacted.make(lucky))))
      expect(wrong.reason).toBe("wrong-password")
      expect(wrong.detail).toMatch(/no integrity MAC/)
      // And the usual wrong password (bad padding) as before.
      const usual = Array.from({ length: 100 }, (_, i) => `wrong-${i}`).find((pw) => !paddingValid(block, pw))
      const plain = await Effect.runPromise(Effect.flip(decodePfx(pfx, Redacted.make(usual ?? ""))))
      expect(plain.reason).toBe("wrong-password")
    })
  },
)

describe.runIf(shouldRun("python"))("Python cryptography reads what kvdeploy writes", () => {
  it("pkcs12.load_key_and_certificates, every key type, chain length and profile (one Python process)", async () => {
    const cases = encodings.flatMap((encoding) =>
      keySpecs.flatMap((spec) => lengths.map((length) => ({ spec, length, encoding }))),
    )
    const results = await pythonReadAll(
      cases.map((c) => ({ pfx: pfxOf(c.spec, c.length, c.encoding), password: PASSWORD })),
    )
    expect(results).toHaveLength(cases.length)
    results.forEach((r, i) => {
      const c = cases[i]
      if (c === undefined) return
      const m = material(c.spec, c.length)
      const where = id(c.spec, c.length, c.encoding)
      if ("error" in r) throw new Error(`python failed on ${where}: ${r.error}`)
      expect(hex(r.leaf), where).toBe(hex(m.leaf))
      expect(r.chain.map(hex), where).toEqual(m.chain.map(hex))
      expect(hex(canonicalPkcs8(r.key)), where).toBe(hex(canonicalPkcs8(Redacted.value(m.key))))
    })
  })
})

describe("node-forge reads what kvdeploy writes", () => {
  for (const encoding of encodings) {
    it.each(keySpecs)(`%s leaf, chains of 1-4, ${encoding}`, (spec) => {
      for (const length of lengths) {
        const m = material(spec, length)
        const read = forgeRead(pfxOf(spec, length, encoding), PASSWORD)
        expect(hex(read.leafTbs), id(spec, length)).toBe(hex(tbsOf(m.leaf)))
        expect(read.chainTbs.map(hex)).toEqual(m.chain.map((c) => hex(tbsOf(c))))
        expect(hex(canonicalPkcs8(read.key))).toBe(hex(canonicalPkcs8(Redacted.value(m.key))))
      }
    })
  }
})

describe.runIf(shouldRun("openssl") && shouldRun("python"))("passwords", () => {
  for (const password of ["", "pässwörd-😀-密码 x"]) {
    for (const encoding of encodings) {
      it(`${password === "" ? "the empty password" : "a non-ASCII password"} works both ways (${encoding})`, async () => {
        const m = material("P-256", 3)
        const pfx = await encode(m, encoding, password)
        const read = await opensslRead(pfx, password, encoding === "legacy")
        expect(read.leaf && hex(read.leaf)).toBe(hex(m.leaf))
        const [py] = await pythonReadAll([{ pfx, password }])
        expect(py && "leaf" in py ? hex(py.leaf) : py).toBe(hex(m.leaf))
        if (password === "") expect(hex(tbsOf(m.leaf))).toBe(hex(forgeRead(pfx, password).leafTbs))
        const pem = [m.leaf, ...m.chain].map((c) => toPem("CERTIFICATE", c)).join("")
        const fromOpenssl = await opensslExport(
          pem,
          pemOfKey(Redacted.value(m.key)),
          password,
          encoding === "legacy",
        )
        const back = await decode(fromOpenssl, password)
        expect(hex(back.leaf)).toBe(hex(m.leaf))
        const wrong = await Effect.runPromise(
          Effect.flip(decodePfx(fromOpenssl, Redacted.make(`${password}!`))),
        )
        expect(wrong.reason).toBe("wrong-password")
      })
    }
  }
})

describe.runIf(shouldRun("openssl") && shouldRun("python"))(
  "the transport PFX core builds for Key Vault (blank password, 1 KDF/MAC iteration)",
  () => {
    const transport = (m: CertificateMaterial, encoding: Encoding) =>
      Effect.runPromise(encodePfx(m, { encoding, password: Redacted.make(""), iterations: 1 }))
    const iterationInfo: Record<Encoding, ReadonlyArray<RegExp>> = {
      modern: [/MAC: sha256, Iteration 1\b/, /Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 1,/],
      legacy: [
        /MAC: sha1, Iteration 1\b/,
        /Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 1\b/,
      ],
    }
    for (const encoding of encodings) {
      it(`OpenSSL, Python cryptography, node-forge and kvdeploy read it with its key, leaf and chain (${encoding})`, async () => {
        const cases = (["RSA-2048", "P-256", "P-384"] as const).flatMap((spec) =>
          ([1, 3] as const).map((length) => ({ spec, length, m: material(spec, length) })),
        )
        const pfxs = await Promise.all(cases.map((c) => transport(c.m, encoding)))
        const python = await pythonReadAll(pfxs.map((pfx) => ({ pfx, password: "" })))
        for (const [i, { spec, length, m }] of cases.entries()) {
          const pfx = pfxs[i] ?? new Uint8Array()
          const where = id(spec, length, encoding)
          const read = await opensslRead(pfx, "", encoding === "legacy")
          for (const pattern of iterationInfo[encoding]) expect(read.info, where).toMatch(pattern)
          expect(read.leaf && hex(read.leaf), where).toBe(hex(m.leaf))
          expect(read.chain.map(hex), where).toEqual(m.chain.map(hex))
          expect(read.keyPem && hex(keyOfPem(read.keyPem)), where).toBe(
            hex(canonicalPkcs8(Redacted.value(m.key))),
          )
          const py = python[i]
          if (py === undefined || "error" in py) throw new Error(`python failed on ${where}: ${py?.error}`)
          expect(hex(py.leaf), where).toBe(hex(m.leaf))
          expect(py.chain.map(hex), where).toEqual(m.chain.map(hex))
          expect(hex(canonicalPkcs8(py.key)), where).toBe(hex(canonicalPkcs8(Redacted.value(m.key))))
          const forge = forgeRead(pfx, "")
          expect(hex(forge.leafTbs), where).toBe(hex(tbsOf(m.leaf)))
          expect(hex(canonicalPkcs8(forge.key)), where).toBe(hex(canonicalPkcs8(Redacted.value(m.key))))
          const back = await decode(pfx, "")
          expect(hex(back.leaf), where).toBe(hex(m.leaf))
          expect(back.chain.map(hex), where).toEqual(m.chain.map(hex))
          expect(hex(Redacted.value(back.key)), where).toBe(hex(canonicalPkcs8(Redacted.value(m.key))))
          const wrong = await Effect.runPromise(Effect.flip(decodePfx(pfx, Redacted.make("x"))))
          expect(wrong.reason, where).toBe("wrong-password")
        }
      })
    }
  },
)

describe.runIf(shouldRun("openssl"))("secp256k1 (P-256K, not in WebCrypto)", () => {
  it("encodes, decodes and inspects a secp256k1 leaf, and OpenSSL reads it", async () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "secp256k1" })
    const keyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString()
    const cert = mustSucceed(
      "openssl req -x509",
      await run(
        "bash",
        ["-c", "exec openssl req -x509 -new -key <(cat) -subj /CN=k1.example.test -days 30 -outform DER"],
        {
          input: keyPem,
        },
      ),
    ).stdout
    const m: CertificateMaterial = {
      leaf: new Uint8Array(cert),
      chain: [],
      key: Redacted.make(new Uint8Array(privateKey.export({ type: "pkcs8", format: "der" }))),
    }
    const inspected = await Effect.runPromise(inspectMaterial(m))
    expect(inspected.key).toEqual({ keyType: "EC", curve: "P-256K" })
    expect(inspected.leaf.curve).toBe("P-256K")
    expect(inspected.leaf.selfSigned).toBe(true)
    expect(inspected.problems).toEqual([])
    for (const encoding of encodings) {
      const pfx = await encode(m, encoding)
      const read = await opensslRead(pfx, PASSWORD, encoding === "legacy")
      expect(read.leaf && hex(read.leaf)).toBe(hex(m.leaf))
      const back = await decode(pfx)
      expect(hex(Redacted.value(back.key))).toBe(hex(Redacted.value(m.key)))
    }
  })
})
