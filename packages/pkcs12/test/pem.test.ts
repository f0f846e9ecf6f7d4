import { generateKeyPairSync } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as fc from "fast-check"
import * as pkijs from "pkijs"
import { beforeAll } from "vitest"
import { encodePfx, inspectMaterial, parsePem } from "../src/index.js"
import { pemBlocks } from "../src/pem.js"
import {
  canonicalPkcs8,
  generateKey,
  hex,
  makeAuthorities,
  makeMaterial,
  type TestAuthorities,
  toPem,
} from "./fixtures.js"

let authorities: TestAuthorities
beforeAll(async () => {
  authorities = await makeAuthorities()
})

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey
const ec = generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey
const pkcs8Of = (k: typeof rsa) => new Uint8Array(k.export({ type: "pkcs8", format: "der" }))

const certs = () => authorities.certificates

describe("parsePem", () => {
  it.effect(
    "reads a bundle with Bag Attributes text, CRLF, blank lines and the key in the middle, keeping file order",
    () =>
      Effect.gen(function* () {
        const [root, int1, int2] = certs()
        if (root === undefined || int1 === undefined || int2 === undefined) throw new Error("fixtures")
        const text = [
          "Bag Attributes",
          "    localKeyID: 01 02 03",
          "    friendlyName: app",
          "subject=CN = app",
          "issuer=CN = ca",
          toPem("CERTIFICATE", int2),
          "",
          "",
          "Bag Attributes: <No Attributes>",
          "Key Attributes: <No Attributes>",
          rsa.export({ type: "pkcs8", format: "pem" }).toString(),
          "some trailing words",
          toPem("CERTIFICATE", root),
          toPem("CERTIFICATE", int1),
        ]
          .join("\n")
          .replace(/\n/g, "\r\n")
        const parsed = yield* parsePem(text)
        expect(parsed.certificates.map(hex)).toEqual([int2, root, int1].map(hex))
        expect(parsed.key && hex(Redacted.value(parsed.key))).toBe(hex(pkcs8Of(rsa)))
      }),
  )

  const keyForms: ReadonlyArray<[string, () => string, string | undefined, typeof rsa]> = [
    ["PKCS#8", () => rsa.export({ type: "pkcs8", format: "pem" }).toString(), undefined, rsa],
    ["PKCS#1 RSA PRIVATE KEY", () => rsa.export({ type: "pkcs1", format: "pem" }).toString(), undefined, rsa],
    ["SEC1 EC PRIVATE KEY", () => ec.export({ type: "sec1", format: "pem" }).toString(), undefined, ec],
    [
      "encrypted PKCS#8",
      () =>
        ec.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pässwörd" }).toString(),
      "pässwörd",
      ec,
    ],
    [
      "legacy encrypted PKCS#1 (Proc-Type)",
      () =>
        rsa.export({ type: "pkcs1", format: "pem", cipher: "aes-128-cbc", passphrase: "secret" }).toString(),
      "secret",
      rsa,
    ],
  ]
  for (const [name, pem, passphrase, source] of keyForms) {
    it.effect(`normalises a ${name} key to PKCS#8`, () =>
      Effect.gen(function* () {
        const text = pem()
        const parsed = yield* parsePem(
          text,
          passphrase === undefined ? {} : { passphrase: Redacted.make(passphrase) },
        )
        const expected = pkcs8Of(source)
        expect(parsed.key && hex(Redacted.value(parsed.key))).toBe(hex(expected))
        expect(parsed.certificates).toEqual([])
      }),
    )
  }

  it.effect("an encrypted key without a passphrase, or with a wrong one, is MaterialInvalid saying so", () =>
    Effect.gen(function* () {
      const text = ec
        .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "right" })
        .toString()
      const missing = yield* Effect.flip(parsePem(text))
      expect(missing._tag).toBe("MaterialInvalid")
      expect(missing.message).toMatch(/encrypted and no passphrase/)
      const wrong = yield* Effect.flip(parsePem(text, { passphrase: Redacted.make("wrong") }))
      expect(wrong.message).toMatch(/passphrase is wrong/)
      // Longer than OpenSSL reads (1,024 bytes): said so, not blamed on the key.
      const long = yield* Effect.flip(parsePem(text, { passphrase: Redacted.make("ü".repeat(1000)) }))
      expect(long.message).toMatch(
        /the passphrase is 2000 bytes; OpenSSL reads a key's passphrase of at most 1,024 bytes/,
      )
    }),
  )

  it.effect("a PFX given where PEM or DER goes is named as one, with the flag or field that takes it", () =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(async () =>
        makeMaterial(await generateKey("P-256"), 2, authorities),
      )
      for (const encoding of ["modern", "legacy"] as const) {
        const pfx = yield* encodePfx(material, { encoding, password: Redacted.make("pw") })
        const refused = yield* Effect.flip(parsePem(pfx))
        expect(refused.problems).toEqual([
          {
            field: "input",
            message: "is a PKCS#12/PFX file, not PEM or a DER certificate or key",
            fix: "give it as a PFX: kvdeploy's --pfx (with --pfx-password-env), or an agent source's pfx (with pfx_password_env)",
          },
        ])
      }
      // Other DER that is neither: the general message.
      const other = yield* Effect.flip(parsePem(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x03])))
      expect(other.problems[0]?.message).toBe("is neither PEM text nor a DER certificate or PKCS#8 key")
    }),
  )

  it.effect("reads DER input: a certificate or a key", () =>
    Effect.gen(function* () {
      const root = certs()[0] ?? new Uint8Array()
      const cert = yield* parsePem(root)
      expect(cert.certificates.map(hex)).toEqual([hex(root)])
      const key = yield* parsePem(new Uint8Array(ec.export({ type: "sec1", format: "der" })))
      expect(key.key && hex(Redacted.value(key.key))).toBe(hex(canonicalPkcs8(pkcs8Of(ec))))
    }),
  )

  it.effect(
    "lists every problem: a second key, a corrupt certificate, a stray block; never echoes key bytes",
    () =>
      Effect.gen(function* () {
        const keyPem = rsa.export({ type: "pkcs8", format: "pem" }).toString()
        const broken = keyPem.replace(/\n([A-Za-z0-9+/]{20})/, "\n!!!!")
        const text = [
          keyPem,
          broken,
          "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
          "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
        ].join("\n")
        const error = yield* Effect.flip(parsePem(text))
        expect(error.problems.map((p) => p.message)).toEqual([
          "is a second private key",
          "is not a readable certificate",
          'is a "CERTIFICATE REQUEST" block, which is neither a certificate nor a private key',
        ])
        const body = keyPem.split("\n").slice(1, -2).join("")
        for (let i = 0; i + 16 <= body.length; i += 16)
          expect(error.message).not.toContain(body.slice(i, i + 16))
      }),
  )

  it.effect(
    "a single unreadable key block is MaterialInvalid naming it, in every way, without echoing key bytes",
    () =>
      Effect.gen(function* () {
        const keyPem = rsa.export({ type: "pkcs8", format: "pem" }).toString()
        const lines = keyPem.trimEnd().split("\n")
        const body = lines.slice(1, -1).join("")
        const legacyHeaders =
          "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\n"
        for (const [text, passphrase] of [
          // Legacy encryption headers over a key that is not encrypted: OpenSSL cannot parse the block.
          [keyPem.replace("-----\n", `-----\n${legacyHeaders}`), "pw"],
          [keyPem.replace(/\n([A-Za-z0-9+/]{20})/, "\n!!!!"), undefined],
          [[...lines.slice(0, 8), lines.at(-1)].join("\n"), undefined],
        ] as const) {
          const error = yield* Effect.flip(
            parsePem(text, passphrase === undefined ? {} : { passphrase: Redacted.make(passphrase) }),
          )
          expect(error.problems.map((p) => p.field)).toEqual(["block 1 (PRIVATE KEY)"])
          const shown = JSON.stringify(error.problems) + error.message
          // Eight characters (six key bytes) at a time: no run of the key's base64 shows.
          for (let i = 0; i + 8 <= body.length; i += 8) expect(shown).not.toContain(body.slice(i, i + 8))
        }
      }),
  )

  it.effect(
    "a certificate with bytes after it reads as the certificate alone, whatever was inspected before",
    () =>
      Effect.gen(function* () {
        const leaf = certs()[1] ?? new Uint8Array()
        const tailed = new Uint8Array([...leaf, 0x05, 0x00])
        // OpenSSL's parser takes the tailed bytes; an inspect of them (failing on its key) leaves that
        // parse among the recent ones, which parsePem must not answer for all of the tailed bytes.
        yield* Effect.flip(
          inspectMaterial({ leaf: tailed, chain: [], key: Redacted.make(new Uint8Array([1, 2, 3])) }),
        )
        const parsed = yield* parsePem(toPem("CERTIFICATE", tailed))
        expect(parsed.certificates.map(hex)).toEqual([hex(leaf)])
      }),
  )

  it.effect(
    "a full chain cut inside a block (a file read while being written) is refused, not read short",
    () =>
      Effect.gen(function* () {
        const [root, int1] = certs()
        if (root === undefined || int1 === undefined) throw new Error("fixtures")
        const whole = `${toPem("CERTIFICATE", int1)}\n${toPem("CERTIFICATE", root)}`
        const second = whole.indexOf("-----BEGIN", 10)
        for (const cutAt of [
          second + 40,
          second + 300,
          whole.length - 10,
          second + 12,
          second + 1,
          second + 5,
          second + 9,
        ]) {
          const error = yield* Effect.flip(parsePem(whole.slice(0, cutAt)))
          expect(error.problems.map((p) => p.field)).toEqual([
            cutAt <= second + 12 ? "block 2" : "block 2 (CERTIFICATE)",
          ])
          expect(error.problems[0]?.message).toContain("cut short")
        }
        // Cut inside the first (only) block: named as cut short, not "contains no PEM block".
        const only = yield* Effect.flip(parsePem(whole.slice(0, 200)))
        expect(only.problems.map((p) => [p.field, p.message.slice(0, 12)])).toEqual([
          ["block 1 (CERTIFICATE)", "is cut short"],
        ])
        // The whole file still reads.
        expect((yield* parsePem(whole)).certificates.map(hex)).toEqual([int1, root].map(hex))
      }),
  )

  it.effect("text without PEM blocks is MaterialInvalid", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(parsePem("hello"))
      expect(error.problems[0]?.message).toBe("contains no PEM block")
    }),
  )

  it.effect(
    "the inspect of what parsePem returned reads those arrays as they are then, also after the caller overwrote them",
    () =>
      Effect.gen(function* () {
        const keyA = yield* Effect.promise(() => generateKey("P-256"))
        const keyB = yield* Effect.promise(() => generateKey("P-256"))
        const a = yield* Effect.promise(() => makeMaterial(keyA, 2, authorities))
        const [root] = certs()
        if (root === undefined) throw new Error("fixtures")
        const text =
          toPem("CERTIFICATE", a.leaf) + toPem("CERTIFICATE", root) + toPem("PRIVATE KEY", keyA.pkcs8)
        const fresh = () =>
          Effect.map(parsePem(text), (p) => {
            const [leaf, ...chain] = p.certificates
            if (leaf === undefined || p.key === undefined) throw new Error("parsePem lost a block")
            return { leaf, chain, key: p.key }
          })
        // As parsed: the leaf links to the root and the key matches.
        const intact = yield* inspectMaterial(yield* fresh())
        expect(intact.problems).toEqual([])
        expect(intact.keyMatchesLeaf).toBe(true)
        // The last byte of the leaf is in its signature: a copy with it changed still parses, and
        // its signature no longer verifies.
        const tampered = yield* fresh()
        const last = tampered.leaf.length - 1
        tampered.leaf[last] = (tampered.leaf[last] ?? 0) ^ 0x01
        const inspected = yield* inspectMaterial(tampered)
        expect(hex(inspected.leaf.der)).toBe(hex(tampered.leaf))
        expect(inspected.problems.map((p) => p.message)).toContainEqual(
          expect.stringContaining("its key does not verify that certificate's signature"),
        )
        // Another key of the same size written over the returned key: the inspect reads that key.
        const swapped = yield* fresh()
        const keyBytes = Redacted.value(swapped.key)
        const other = canonicalPkcs8(keyB.pkcs8)
        expect(other.length).toBe(keyBytes.length)
        keyBytes.set(other)
        expect((yield* inspectMaterial(swapped)).keyMatchesLeaf).toBe(false)
      }),
  )

  it.effect(
    "a PKCS#8 key is handed out as OpenSSL's canonical DER, not as given (no attributes or BER into a PFX)",
    () =>
      Effect.gen(function* () {
        const der = pkcs8Of(ec)
        // The same key with a PKCS#8 attribute (a friendlyName), which OpenSSL reads and its export leaves out.
        const info = pkijs.PrivateKeyInfo.fromBER(der)
        info.attributes = [
          new pkijs.Attribute({
            type: "1.2.840.113549.1.9.20",
            values: [new asn1js.BmpString({ value: "kvdeploy" })],
          }),
        ]
        const withAttribute = new Uint8Array(info.toSchema().toBER(false))
        // P-384's PKCS#8 is over 127 bytes: its length is 0x81 and one octet; 0x82 and two is BER, not DER.
        expect([der[0], der[1]]).toEqual([0x30, 0x81])
        const longLength = new Uint8Array([0x30, 0x82, 0x00, ...der.subarray(2)])
        for (const given of [withAttribute, longLength, new Uint8Array([...der, 0x05, 0x00])]) {
          const parsed = yield* parsePem(toPem("PRIVATE KEY", given))
          expect(parsed.key && hex(Redacted.value(parsed.key))).toBe(hex(der))
        }
      }),
  )
})

describe("pemBlocks: the blocks of PEM text in one pass", () => {
  /** The expression parsePem used before: the blocks it finds are the reference. */
  const reference = (text: string) =>
    [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g)].map((m) => ({
      index: m.index,
      endIndex: m.index + m[0].length,
      label: m[1],
      endLabel: m[3],
      body: m[2],
    }))

  it("finds the same blocks as the regular expression, over random mixes of markers and text (property)", () => {
    const pieces = fc.constantFrom(
      "-----BEGIN CERTIFICATE-----",
      "-----BEGIN PRIVATE KEY-----",
      "-----END CERTIFICATE-----",
      "-----END PRIVATE KEY-----",
      "-----END X-----",
      "-----BEGIN ",
      "-----END ",
      "-----",
      "-----BEGIN a-----",
      "MIIB",
      "\n",
      " ",
      "A",
      "-",
    )
    fc.assert(
      fc.property(fc.array(pieces, { maxLength: 40 }), (parts) => {
        const text = parts.join("")
        expect([...pemBlocks(text)]).toEqual(reference(text))
      }),
      { numRuns: 3000 },
    )
  })

  it.effect(
    "1 MiB of BEGIN lines without an END: one cut-short block reported (the scan is linear; bench/pem-hostile measures it)",
    () =>
      Effect.gen(function* () {
        const hostile = "-----BEGIN A-----\n".repeat(58_254)
        expect(hostile.length).toBeLessThanOrEqual(1024 * 1024)
        const error = yield* Effect.flip(parsePem(hostile))
        expect(error.problems).toEqual([
          expect.objectContaining({ field: "block 1 (A)", message: expect.stringContaining("is cut short") }),
        ])
      }),
  )
})

describe("text of thousands of stray blocks", () => {
  it.effect("lists 20 problems and counts the rest (one per block was megabytes in a log line)", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(parsePem("-----BEGIN A-----\n-----END A-----\n".repeat(5000)))
      expect(error.problems).toHaveLength(21)
      expect(error.problems[20]).toMatchObject({
        field: "input",
        message: "has 4980 more problems, not listed",
      })
      expect(JSON.stringify(error.problems).length).toBeLessThan(10_000)
    }),
  )
})

describe("a wrong passphrase whose garbage passes the cipher's padding check", () => {
  it.effect("is not blamed on the encryption alone: the message names the passphrase first", () =>
    Effect.gen(function* () {
      const key = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey
      const pem = key
        .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "right passphrase" })
        .toString()
      // About 1 wrong passphrase in 256 decrypts to bytes whose padding looks right; OpenSSL's decoder
      // then answers "unsupported" instead of "bad decrypt". Find one.
      let message: string | undefined
      for (let i = 0; i < 4000 && message === undefined; i++) {
        const refused = yield* Effect.flip(parsePem(pem, { passphrase: Redacted.make(`wrong ${i}`) }))
        const text = refused.problems[0]?.message ?? ""
        if (!text.includes("the passphrase is wrong") || text.includes("could not be decrypted and read"))
          message = text
        else expect(text).toBe("the private key could not be decrypted: the passphrase is wrong")
      }
      expect(message).toBeDefined()
      expect(message).toContain("the passphrase is wrong, or the key uses an encryption")
    }),
  )
})

describe("BEGIN and END lines outside every block", () => {
  it.effect(
    "a label that is not upper case (-----BEGIN Certificate-----), last or between blocks: named for its label, not as cut short, never dropped silently",
    () =>
      Effect.gen(function* () {
        const [root, int1] = certs()
        if (root === undefined || int1 === undefined) throw new Error("fixtures")
        const lower = toPem("CERTIFICATE", root).replace(/CERTIFICATE/g, "Certificate")
        const good = toPem("CERTIFICATE", int1)
        for (const text of [good + lower, lower + good, good + lower + good]) {
          const error = yield* Effect.flip(parsePem(text))
          expect(error.problems).toHaveLength(1)
          const p = error.problems[0]
          expect(p?.field).toMatch(/^line \d+$/)
          expect(p?.message).toContain(
            '"-----BEGIN Certificate-----" names a label PEM does not know (labels are upper case',
          )
          expect(p?.message).not.toContain("cut short")
          expect(p?.fix).toContain("-----BEGIN CERTIFICATE-----")
        }
        // The line is the BEGIN line's: after the good block's lines.
        const after = yield* Effect.flip(parsePem(good + lower))
        expect(after.problems[0]?.field).toBe(`line ${good.split("\n").length}`)
      }),
  )

  it.effect(
    "a BEGIN line with an em dash: a damaged BEGIN line, its block not read; a leftover END line is named",
    () =>
      Effect.gen(function* () {
        const [root, int1] = certs()
        if (root === undefined || int1 === undefined) throw new Error("fixtures")
        const good = toPem("CERTIFICATE", int1)
        const damaged = toPem("CERTIFICATE", root).replace("-----BEGIN", "\u2014----BEGIN")
        const error = yield* Effect.flip(parsePem(good + damaged))
        expect(error.problems.map((p) => p.message)).toEqual([
          expect.stringContaining("is a damaged BEGIN line"),
        ])
        expect(error.problems[0]?.fix).toContain("repair the line")
        const leftover = yield* Effect.flip(parsePem(`${good}-----END CERTIFICATE-----\n`))
        expect(leftover.problems.map((p) => [p.field, p.message])).toEqual([
          [
            `line ${good.split("\n").length}`,
            expect.stringContaining("is an END line without its BEGIN line"),
          ],
        ])
      }),
  )
})

describe("a damaged BEGIN or END line in a file's bytes (a Buffer, as the CLI and the agent read it)", () => {
  it.effect(
    "en dashes, U+2212 minus signs, four hyphens before or after BEGIN: the line named, not 'neither PEM text nor DER', not 'cut short'",
    () =>
      Effect.gen(function* () {
        const [root] = certs()
        if (root === undefined) throw new Error("fixtures")
        const good = toPem("CERTIFICATE", root)
        const begin = "-----BEGIN CERTIFICATE-----"
        for (const line of [
          "\u2013\u2013\u2013\u2013\u2013BEGIN CERTIFICATE\u2013\u2013\u2013\u2013\u2013",
          "\u2212\u2212\u2212\u2212\u2212BEGIN CERTIFICATE\u2212\u2212\u2212\u2212\u2212",
          "----BEGIN CERTIFICATE-----",
          "-----BEGIN CERTIFICATE----",
        ]) {
          const text = good.replace(begin, line)
          for (const input of [Buffer.from(text), text]) {
            const error = yield* Effect.flip(parsePem(input))
            expect(error.problems).toEqual([
              {
                field: "line 1",
                message: expect.stringContaining(`${JSON.stringify(line)} is a damaged BEGIN line`),
                fix: expect.stringContaining("repair the line"),
              },
            ])
          }
        }
      }),
  )

  it.effect(
    "an END line with four hyphens before END: named by its line, not taken for a file cut short; a file cut inside its END line still is",
    () =>
      Effect.gen(function* () {
        const [root] = certs()
        if (root === undefined) throw new Error("fixtures")
        const good = toPem("CERTIFICATE", root)
        const lines = good.trimEnd().split("\n").length
        const damaged = good.replace("-----END CERTIFICATE-----", "----END CERTIFICATE-----")
        const error = yield* Effect.flip(parsePem(Buffer.from(damaged)))
        expect(error.problems.map((p) => [p.field, p.message])).toEqual([
          [`line ${lines}`, expect.stringContaining('"----END CERTIFICATE-----" is a damaged END line')],
        ])
        const cut = yield* Effect.flip(
          parsePem(Buffer.from(good.replace(/-----END CERTIFICATE-----\n$/, "-----END CERT"))),
        )
        expect(cut.problems.map((p) => p.message)).toEqual([expect.stringContaining("is cut short")])
      }),
  )
})

describe("text that is no marker line, and a marker line's text", () => {
  it.effect(
    "a name with --end or --begin in it (an IDN's xn--end-…) and ---- comment lines around the blocks are read as OpenSSL reads them",
    () =>
      Effect.gen(function* () {
        const [root, int1] = certs()
        if (root === undefined || int1 === undefined) throw new Error("fixtures")
        const idn = [
          "Bag Attributes",
          "    friendlyName: xn--end-dma.example",
          "subject=CN = xn--end-dma.example, O = xn--begin-x.example",
          "issuer=CN = xn--end-ca.example",
          toPem("CERTIFICATE", int1),
        ].join("\n")
        const commented = `---- BEGIN of bundle for leaf.example ----\n${toPem("CERTIFICATE", int1)}${toPem("CERTIFICATE", root)}---- END of bundle ----\n`
        for (const text of [idn, commented]) {
          const parsed = yield* parsePem(text)
          expect(parsed.certificates.length).toBeGreaterThan(0)
        }
        // A bundle's own banner lines, upper case and short of hyphens, with no PEM label: comments
        // OpenSSL skips, from a file's bytes as from a string.
        const pair = `${toPem("CERTIFICATE", int1)}${toPem("CERTIFICATE", root)}`
        for (const text of [
          `${pair}--END OF CHAIN--\n`,
          `----BEGIN CHAIN----\n${pair}----END CHAIN----\n`,
          `${toPem("CERTIFICATE", int1)}----END CERTIFICATE CHAIN----\n${toPem("CERTIFICATE", root)}`,
        ])
          for (const input of [Buffer.from(text), text]) {
            const parsed = yield* parsePem(input)
            expect(parsed.certificates).toHaveLength(2)
          }
      }),
  )

  it.effect(
    "a damaged BEGIN line with a key's body on the same line (a one-line PEM) is named without its text",
    () =>
      Effect.gen(function* () {
        const sec1 = ec.export({ type: "sec1", format: "pem" }).toString()
        const body = sec1
          .split("\n")
          .filter((l) => l !== "" && !l.startsWith("-----"))
          .join("")
        for (const line of [
          `\u2014\u2014BEGIN EC PRIVATE KEY\u2014\u2014${body}-----END EC PRIVATE KEY-----`,
          `\u2014----BEGIN EC PRIVATE KEY ${body}`,
        ]) {
          const error = yield* Effect.flip(parsePem(`${line}\n`))
          const said = JSON.stringify(error.problems)
          expect(said).toContain("is a damaged BEGIN line")
          for (let i = 0; i + 12 <= body.length; i += 6) expect(said).not.toContain(body.slice(i, i + 12))
        }
      }),
  )
})

describe("stray markers in hostile text", () => {
  it.effect(
    "1 MiB of dashes, of lowercase BEGIN lines on one line, or of END lines: each refused, the problems capped",
    () =>
      Effect.gen(function* () {
        for (const text of [
          "-".repeat(1024 * 1024),
          "-----BEGIN a-----".repeat(60_000),
          "-----END CERTIFICATE-----\n".repeat(40_000),
        ]) {
          const error = yield* Effect.flip(parsePem(text))
          expect(error.problems.length).toBeGreaterThan(0)
          expect(error.problems.length).toBeLessThanOrEqual(21)
        }
      }),
  )
})

describe("PEM text that was JSON-quoted (jq without -r: literal \\n sequences for line breaks)", () => {
  it.effect("each certificate and key block is named with the cause and jq -r as the fix", () =>
    Effect.gen(function* () {
      const [root] = certs()
      if (root === undefined) throw new Error("fixtures")
      const rsaPkcs1 = rsa.export({ type: "pkcs1", format: "pem" }).toString()
      for (const [pem, label] of [
        [toPem("CERTIFICATE", root), "CERTIFICATE"],
        [toPem("PRIVATE KEY", pkcs8Of(ec)), "PRIVATE KEY"],
        [rsaPkcs1, "RSA PRIVATE KEY"],
      ] as const) {
        // What `jq .cert` (not `jq -r .cert`) writes: the JSON string, quotes and \n escapes included.
        const quoted = `${JSON.stringify(pem)}\n`
        const error = yield* Effect.flip(parsePem(quoted))
        expect(error.problems).toEqual([
          {
            field: `block 1 (${label})`,
            message:
              "holds literal \\n sequences (a backslash and an n) instead of line breaks: the PEM text was JSON-quoted",
            fix: "write it with jq -r (raw output), or decode the JSON string, so that the file holds real line breaks",
          },
        ])
        // Nothing of the block's body in what is said.
        const body = pem.split("\n")[1] ?? ""
        expect(JSON.stringify(error.problems)).not.toContain(body.slice(0, 24))
      }
    }),
  )
})
