/**
 * Interop with OpenSSL 3: every PFX kvdeploy writes is read back by `openssl pkcs12`, with the same
 * key, leaf and chain, and every PFX OpenSSL writes (every key type, chain length and profile,
 * RC2-128, each MAC digest, no MAC) is read correctly by kvdeploy. The matrix is interopMatrix.ts's;
 * Python cryptography, node-forge, passwords and the transport PFX are in interop.test.ts,
 * keytool in interop-keytool.test.ts.
 */
import { createDecipheriv, pbkdf2Sync } from "node:crypto"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as pkijs from "pkijs"
import { beforeAll, describe, expect, it } from "vitest"
import { decodePfx, decodePfxCertificates } from "../src/index.js"
import { canonicalPkcs8, hex, keySpecs, toPem } from "./fixtures.js"
import {
  buildMatrix,
  decode,
  type Encoding,
  encodings,
  id,
  keyOfPem,
  lengths,
  material,
  PASSWORD,
  pemOfKey,
  pfxOf,
  sha1Hex,
} from "./interopMatrix.js"
import { mustSucceed, opensslExport, opensslRead, run, shouldRun } from "./tools.js"

beforeAll(buildMatrix, 120_000)

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
