/**
 * Interop matrix: every PFX kvdeploy writes is read back, with the same key, leaf and chain, by
 * Python `cryptography` and node-forge; passwords (empty, non-ASCII) both ways with OpenSSL and
 * Python; the transport PFX core builds for Key Vault; secp256k1.
 *
 * Matrix (interopMatrix.ts): leaf keys RSA 2048/3072/4096 and EC P-256/P-384/P-521 x chains of
 * 1 to 4 certificates x modern/legacy, in full for Python and forge. OpenSSL's side of the matrix
 * is in interop-openssl.test.ts, keytool in interop-keytool.test.ts.
 */
import { generateKeyPairSync } from "node:crypto"
import type { CertificateMaterial } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { beforeAll, describe, expect, it } from "vitest"
import { decodePfx, encodePfx, inspectMaterial } from "../src/index.js"
import { canonicalPkcs8, hex, keySpecs, toPem } from "./fixtures.js"
import {
  buildMatrix,
  decode,
  type Encoding,
  encode,
  encodings,
  id,
  keyOfPem,
  lengths,
  material,
  PASSWORD,
  pemOfKey,
  pfxOf,
} from "./interopMatrix.js"
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

beforeAll(buildMatrix, 120_000)

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
