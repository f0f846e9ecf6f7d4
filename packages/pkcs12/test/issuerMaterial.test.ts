/**
 * EC key files as OpenSSL writes them besides the usual form: a compressed public point
 * (`openssl ec -conv_form compressed`) and explicit curve parameters (`-param_enc explicit`). Each
 * is the same key as the leaf's (OpenSSL's own pair check, `openssl pkcs12 -export`, takes it),
 * so kvdeploy takes it too; a leaf certificate whose key is written with explicit curve parameters
 * is refused naming them. Keys reach OpenSSL through pipes only.
 */
import { createPrivateKey, generateKeyPairSync } from "node:crypto"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as pkijs from "pkijs"
import { beforeAll, describe, expect, it } from "vitest"
import { decodePfx, encodePem, encodePfx, inspectMaterial, parsePem } from "../src/index.js"
import {
  canonicalPkcs8,
  generateKey,
  hex,
  issue,
  makeAuthorities,
  type TestAuthorities,
  toPem,
} from "./fixtures.js"
import { mustSucceed, opensslExport, opensslRead, run, shouldRun } from "./tools.js"

let authorities: TestAuthorities
beforeAll(async () => {
  authorities = await makeAuthorities()
}, 60_000)

/** `openssl ec` over a PEM key on stdin, with `args`: the key as OpenSSL rewrites it. */
const opensslEc = async (keyPem: string, args: ReadonlyArray<string>): Promise<string> =>
  mustSucceed("openssl ec", await run("openssl", ["ec", ...args], { input: keyPem })).stdout.toString("utf8")

describe.runIf(shouldRun("openssl"))("EC key files in the other forms OpenSSL writes", () => {
  const forms: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
    ["a compressed point (SEC1)", ["-conv_form", "compressed"]],
    ["explicit curve parameters (SEC1)", ["-param_enc", "explicit"]],
  ]
  for (const [name, args] of forms) {
    it(`a key with ${name} is the leaf's key: inspected as its pair, encoded, read back by OpenSSL`, async () => {
      const key = await generateKey("P-256")
      const [root, int1] = authorities.issuers
      if (root === undefined || int1 === undefined) throw new Error("fixtures")
      const leaf = await issue({ subject: "CN=issuer-form.example.test", key, issuer: int1, ca: false })
      const chain = [
        authorities.certificates[1] ?? new Uint8Array(),
        authorities.certificates[0] ?? new Uint8Array(),
      ]
      const rewritten = await opensslEc(toPem("PRIVATE KEY", key.pkcs8), args)
      expect(rewritten).toMatch(/BEGIN EC PRIVATE KEY/)
      // OpenSSL's own pair check: `openssl pkcs12 -export` refuses a key that is not the certificate's.
      await opensslExport(toPem("CERTIFICATE", leaf), rewritten, "pw", false)

      const parsed = await Effect.runPromise(parsePem(rewritten))
      if (parsed.key === undefined) throw new Error("no key parsed")
      const material = { leaf, chain, key: parsed.key }
      const inspected = await Effect.runPromise(inspectMaterial(material))
      expect(inspected.problems).toEqual([])
      expect(inspected.keyMatchesLeaf).toBe(true)
      expect(inspected.key).toEqual({ keyType: "EC", curve: "P-256" })
      const pfx = await Effect.runPromise(
        encodePfx(material, { encoding: "modern", password: Redacted.make("") }),
      )
      const read = await opensslRead(pfx, "", false)
      expect(read.leaf && hex(read.leaf)).toBe(hex(leaf))
      expect(read.chain.map(hex)).toEqual(chain.map(hex))

      // Another key written the same way is still another key.
      const other = await opensslEc(toPem("PRIVATE KEY", (await generateKey("P-256")).pkcs8), args)
      const otherKey = (await Effect.runPromise(parsePem(other))).key
      if (otherKey === undefined) throw new Error("no key parsed")
      const mismatched = await Effect.runPromise(inspectMaterial({ leaf, chain, key: otherKey }))
      expect(mismatched.keyMatchesLeaf).toBe(false)
    }, 60_000)
  }

  it("a leaf whose EC key is written with explicit curve parameters is refused naming them and the fix", async () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey
    const explicit = await opensslEc(ec.export({ type: "sec1", format: "pem" }).toString(), [
      "-param_enc",
      "explicit",
    ])
    // A self-signed certificate OpenSSL writes for that key: its SubjectPublicKeyInfo carries the parameters.
    const cert = mustSucceed(
      "openssl req -x509",
      await run(
        "bash",
        [
          "-c",
          "exec openssl req -x509 -new -key <(cat) -subj /CN=explicit.example.test -days 2 -outform DER",
        ],
        { input: explicit },
      ),
    ).stdout
    const key = (await Effect.runPromise(parsePem(explicit))).key
    if (key === undefined) throw new Error("no key parsed")
    const inspected = await Effect.runPromise(inspectMaterial({ leaf: new Uint8Array(cert), chain: [], key }))
    expect(inspected.keyMatchesLeaf).toBe(true)
    expect(inspected.problems).toEqual([
      {
        field: "leaf",
        message: expect.stringMatching(/explicit curve parameters/),
        fix: expect.stringMatching(/-param_enc named_curve/),
      },
    ])
    expect(JSON.stringify(inspected.problems)).not.toMatch(/BEGIN|PRIVATE/)
  }, 60_000)
})

describe.runIf(shouldRun("openssl"))(
  "leaf keys kvdeploy does not take, in words that lead to the fix",
  () => {
    /** A self-signed certificate OpenSSL writes for the PEM key on stdin, DER. */
    const selfSigned = async (keyPem: string): Promise<Uint8Array> =>
      new Uint8Array(
        mustSucceed(
          "openssl req -x509",
          await run(
            "bash",
            [
              "-c",
              "exec openssl req -x509 -new -key <(cat) -subj /CN=refused.example.test -days 2 -outform DER",
            ],
            { input: keyPem },
          ),
        ).stdout,
      )
    const refusal = async (keyPem: string) => {
      const leaf = await selfSigned(keyPem)
      const key = (await Effect.runPromise(parsePem(keyPem))).key
      if (key === undefined) throw new Error("no key parsed")
      const failed = await Effect.runPromise(Effect.flip(inspectMaterial({ leaf, chain: [], key })))
      const shown = JSON.stringify(failed.problems)
      expect(shown).not.toMatch(/BEGIN|PRIVATE KEY/)
      return failed.problems
    }

    it("an RSA-PSS key (openssl genpkey -algorithm RSA-PSS): the fix names a plain RSA key", async () => {
      const pem = mustSucceed(
        "openssl genpkey",
        await run("openssl", ["genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048"]),
      ).stdout.toString("utf8")
      expect(await refusal(pem)).toEqual([
        {
          field: "leaf",
          message: expect.stringMatching(/has an RSA-PSS 2048 key/),
          fix: expect.stringMatching(/openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048/),
        },
      ])
    }, 60_000)

    it("an Ed25519 or Ed448 key: Key Vault named as the one that does not take it, the fix a new RSA or EC key and a certificate issued again", async () => {
      for (const [algorithm, named] of [
        ["ED25519", "Ed25519"],
        ["ED448", "Ed448"],
      ] as const) {
        const pem = mustSucceed(
          "openssl genpkey",
          await run("openssl", ["genpkey", "-algorithm", algorithm]),
        ).stdout.toString("utf8")
        expect(await refusal(pem)).toEqual([
          {
            field: "leaf",
            message: `has an ${named} key, which Key Vault does not accept: its certificates take RSA and EC keys only`,
            fix: "generate a new RSA or EC key and have the certificate issued again for it (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256, then a new CSR; certbot: --key-type ecdsa)",
          },
        ])
      }
    }, 60_000)

    it("an X25519 key is named as OpenSSL names it", async () => {
      const caPem = mustSucceed(
        "openssl genpkey",
        await run("openssl", ["genpkey", "-algorithm", "ED25519"]),
      ).stdout.toString("utf8")
      const xPem = mustSucceed(
        "openssl genpkey",
        await run("openssl", ["genpkey", "-algorithm", "X25519"]),
      ).stdout.toString("utf8")
      // A key agreement key cannot sign its own certificate: an Ed25519 CA issues it (-force_pubkey).
      const leaf = new Uint8Array(
        mustSucceed(
          "openssl x509 -force_pubkey",
          await run(
            "bash",
            [
              "-c",
              'ca=$(cat <&3); exec openssl x509 -new -subj /CN=x25519.example.test -force_pubkey <(openssl pkey -pubout <<<"$XPEM") -key <(cat <<<"$ca") -days 2 -outform DER',
            ],
            { fd3: caPem, env: { XPEM: xPem } },
          ),
        ).stdout,
      )
      const key = (await Effect.runPromise(parsePem(xPem))).key
      if (key === undefined) throw new Error("no key parsed")
      const failed = await Effect.runPromise(Effect.flip(inspectMaterial({ leaf, chain: [], key })))
      expect(failed.problems).toEqual([
        {
          field: "leaf",
          message: expect.stringMatching(/^has an X25519 key, which Key Vault does not accept/),
          fix: expect.stringMatching(/^generate a new RSA or EC key/),
        },
      ])
    }, 60_000)
  },
)

describe("PEM text as Windows PowerShell 5.1 writes it (Out-File, `>`: UTF-16 with a byte order mark)", () => {
  it("is read as the same certificates and key, in UTF-16LE and UTF-16BE", async () => {
    const key = await generateKey("P-256")
    const [, int1] = authorities.issuers
    if (int1 === undefined) throw new Error("fixtures")
    const leaf = await issue({ subject: "CN=utf16.example.test", key, issuer: int1, ca: false })
    const text = (
      toPem("CERTIFICATE", leaf) +
      toPem("CERTIFICATE", authorities.certificates[1] ?? new Uint8Array()) +
      toPem("PRIVATE KEY", key.pkcs8)
    ).replaceAll("\n", "\r\n")
    const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")])
    const be = Buffer.from(le.subarray(2)).swap16()
    for (const bytes of [le, Buffer.concat([Buffer.from([0xfe, 0xff]), be])]) {
      const parsed = await Effect.runPromise(parsePem(new Uint8Array(bytes)))
      expect(parsed.certificates.map(hex)).toEqual(
        [leaf, authorities.certificates[1] ?? new Uint8Array()].map(hex),
      )
      expect(parsed.key && hex(Redacted.value(parsed.key))).toBe(hex(key.pkcs8))
    }
  })
})

describe.runIf(shouldRun("openssl"))("a chain an issuer hands over as PKCS#7 (.p7b), PEM or DER", () => {
  it("is read as its certificates, exactly as OpenSSL's crl2pkcs7 put them in, and orders as the chain", async () => {
    const key = await generateKey("P-256")
    const [, int1] = authorities.issuers
    const [root, int1Cert] = authorities.certificates
    if (int1 === undefined || root === undefined || int1Cert === undefined) throw new Error("fixtures")
    const leaf = await issue({ subject: "CN=p7b.example.test", key, issuer: int1, ca: false })
    const chainPem = toPem("CERTIFICATE", root) + toPem("CERTIFICATE", int1Cert)
    for (const outform of ["PEM", "DER"] as const) {
      const p7b = mustSucceed(
        "openssl crl2pkcs7",
        await run("bash", ["-c", `exec openssl crl2pkcs7 -nocrl -certfile <(cat) -outform ${outform}`], {
          input: chainPem,
        }),
      ).stdout
      if (outform === "PEM") expect(p7b.toString("utf8")).toMatch(/-----BEGIN PKCS7-----/)
      const parsed = await Effect.runPromise(
        parsePem(outform === "PEM" ? p7b.toString("utf8") : new Uint8Array(p7b)),
      )
      expect(parsed.certificates.map(hex).sort()).toEqual([root, int1Cert].map(hex).sort())
      const inspected = await Effect.runPromise(
        inspectMaterial({ leaf, chain: parsed.certificates, key: Redacted.make(key.pkcs8) }),
      )
      expect(inspected.problems).toEqual([])
      expect(inspected.chain.map((c) => hex(c.der))).toEqual([int1Cert, root].map(hex))
    }
  }, 60_000)

  it("one without certificates is refused with the command that converts a .p7b", async () => {
    const empty = mustSucceed(
      "openssl crl2pkcs7",
      await run("openssl", ["crl2pkcs7", "-nocrl"], { input: "" }),
    ).stdout.toString("utf8")
    const failed = await Effect.runPromise(Effect.flip(parsePem(empty)))
    expect(failed.problems).toEqual([
      {
        field: "block 1 (PKCS7)",
        message: expect.stringMatching(/PKCS#7/),
        fix: expect.stringMatching(/openssl pkcs7 -print_certs/),
      },
    ])
  }, 60_000)
})

describe.runIf(shouldRun("openssl"))("the key kvdeploy imports, from an EC key file in another form", () => {
  it("is the key in its usual form (named curve, uncompressed point), in parsePem's answer and in the PFX", async () => {
    for (const curve of ["P-256", "P-384", "P-521", "secp256k1"] as const) {
      const ec = generateKeyPairSync("ec", { namedCurve: curve }).privateKey
      const usual = ec.export({ type: "pkcs8", format: "der" })
      for (const args of [
        ["-conv_form", "compressed"],
        // The point written `06`/`07` then both coordinates: as long as the usual form.
        ["-conv_form", "hybrid"],
        ["-param_enc", "explicit"],
        ["-conv_form", "compressed", "-param_enc", "explicit"],
      ]) {
        const where = `${curve} ${args.join(" ")}`
        const rewritten = await opensslEc(ec.export({ type: "sec1", format: "pem" }).toString(), args)
        const key = (await Effect.runPromise(parsePem(rewritten))).key
        expect(key && hex(Redacted.value(key)), where).toBe(hex(usual))
      }
    }
    // And in the PFX OpenSSL reads back.
    const leafKey = await generateKey("P-256")
    const leaf = await issue({ subject: "CN=usual-form.example.test", key: leafKey, ca: false })
    const compressed = await opensslEc(toPem("PRIVATE KEY", leafKey.pkcs8), ["-conv_form", "compressed"])
    const key = (await Effect.runPromise(parsePem(compressed))).key
    if (key === undefined) throw new Error("no key parsed")
    const pfx = await Effect.runPromise(
      encodePfx({ leaf, chain: [], key }, { encoding: "modern", password: Redacted.make("") }),
    )
    const read = await opensslRead(pfx, "", false)
    const keyDer =
      read.keyPem === undefined
        ? ""
        : hex(Buffer.from(read.keyPem.replace(/-----[^-]+-----|\s/g, ""), "base64"))
    expect(keyDer).toBe(hex(canonicalPkcs8(leafKey.pkcs8)))
  }, 120_000)
})

describe.runIf(shouldRun("openssl"))("an EC key in another form given as a PFX or as PKCS#8 bytes", () => {
  /** The key of the PFX OpenSSL reads back, as node:crypto re-encodes it. */
  const keyReadBack = async (pfx: Uint8Array): Promise<string> => {
    const read = await opensslRead(pfx, "", false)
    if (read.keyPem === undefined) throw new Error("OpenSSL read no key")
    return hex(Buffer.from(read.keyPem.replace(/-----[^-]+-----|\s/g, ""), "base64"))
  }

  it("a caller's PKCS#8 with the usual form's length but no public point (an attribute in its place) goes in the usual form", async () => {
    const leafKey = await generateKey("P-256")
    const leaf = await issue({ subject: "CN=usual-form-attr.example.test", key: leafKey, ca: false })
    const usual = canonicalPkcs8(leafKey.pkcs8)
    // The same private scalar in an ECPrivateKey without the public point, and an attribute sized
    // so that the PKCS#8 has the usual form's 138 bytes and 04 where the usual form's point starts.
    const info = pkijs.PrivateKeyInfo.fromBER(usual)
    const d = createPrivateKey({ key: Buffer.from(usual), format: "der", type: "pkcs8" }).export({
      format: "jwk",
    }).d
    const scalar = new asn1js.OctetString({ valueHex: Buffer.from(d ?? "", "base64url") })
    const crafted = new Uint8Array(
      new pkijs.PrivateKeyInfo({
        version: 0,
        privateKeyAlgorithm: info.privateKeyAlgorithm,
        privateKey: new asn1js.OctetString({
          valueHex: new pkijs.ECPrivateKey({ version: 1, privateKey: scalar }).toSchema().toBER(false),
        }),
        attributes: [
          new pkijs.Attribute({
            type: "1.2.3.4.5",
            values: [new asn1js.OctetString({ valueHex: new Uint8Array(56).fill(0x41) })],
          }),
        ],
      })
        .toSchema()
        .toBER(false),
    )
    expect([crafted.length, crafted[138 - 65]]).toEqual([138, 0x04])

    const given = { leaf, chain: [], key: Redacted.make(crafted) }
    expect((await Effect.runPromise(inspectMaterial(given))).keyMatchesLeaf).toBe(true)
    const pfx = await Effect.runPromise(encodePfx(given, { encoding: "modern", password: Redacted.make("") }))
    expect(await keyReadBack(pfx)).toBe(hex(usual))
    expect(hex(Redacted.value(given.key))).toBe(hex(crafted))
  }, 60_000)

  it("goes into the PFX and the PEM kvdeploy writes in the usual form, checked as the leaf's pair", async () => {
    const leafKey = await generateKey("P-256")
    const leaf = await issue({ subject: "CN=usual-form-pfx.example.test", key: leafKey, ca: false })
    const usual = hex(canonicalPkcs8(leafKey.pkcs8))
    for (const args of [
      ["-conv_form", "compressed"],
      ["-conv_form", "hybrid"],
      ["-param_enc", "explicit"],
    ]) {
      const rewrittenPem = await opensslEc(toPem("PRIVATE KEY", leafKey.pkcs8), args)
      // The same key as PKCS#8 DER in the other form, as a library caller may hold it.
      const pkcs8 = new Uint8Array(
        mustSucceed(
          "openssl pkcs8",
          await run("openssl", ["pkcs8", "-topk8", "-nocrypt", "-outform", "DER"], { input: rewrittenPem }),
        ).stdout,
      )
      expect(hex(pkcs8), `${args.join(" ")}: the PKCS#8 is in the other form`).not.toBe(usual)

      // A library caller's PKCS#8 bytes: inspected as the leaf's pair, written in the usual form.
      const given = { leaf, chain: [], key: Redacted.make(pkcs8) }
      expect((await Effect.runPromise(inspectMaterial(given))).keyMatchesLeaf).toBe(true)
      const pfx = await Effect.runPromise(
        encodePfx(given, { encoding: "modern", password: Redacted.make("") }),
      )
      expect(await keyReadBack(pfx), `${args.join(" ")}: library PFX`).toBe(usual)
      const pem = Buffer.from(await Effect.runPromise(encodePem(given))).toString("utf8")
      const pemKey = /-----BEGIN PRIVATE KEY-----[^-]+-----END PRIVATE KEY-----/.exec(pem)?.[0] ?? ""
      expect(
        hex(Buffer.from(pemKey.replace(/-----[^-]+-----|\s/g, ""), "base64")),
        `${args.join(" ")}: PEM`,
      ).toBe(usual)
      // The caller's bytes are left as they were.
      expect(hex(Redacted.value(given.key))).toBe(hex(pkcs8))

      // A PFX OpenSSL built with the key in that form: decoded to the usual form, and so re-encoded.
      const fromOpenssl = await opensslExport(toPem("CERTIFICATE", leaf), rewrittenPem, "pw", false)
      const decoded = await Effect.runPromise(decodePfx(fromOpenssl, Redacted.make("pw")))
      expect(hex(Redacted.value(decoded.key)), `${args.join(" ")}: decoded`).toBe(usual)
      const again = await Effect.runPromise(
        encodePfx(decoded, { encoding: "modern", password: Redacted.make("") }),
      )
      expect(await keyReadBack(again), `${args.join(" ")}: PFX from a PFX`).toBe(usual)
    }
  }, 120_000)
})
