/**
 * certificateFacts reads the serial, names, SANs and validity from OpenSSL
 * (node:crypto) where the rewriting to kvdeploy's RFC 4514 form is exact, and
 * from @peculiar/x509 otherwise. These tests hold the result to what
 * @peculiar/x509 alone reports (what kvdeploy reported before), over names and
 * SANs with the characters and forms that make the two printers differ.
 */
import "reflect-metadata"
import { X509Certificate } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import * as x509 from "@peculiar/x509"
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { beforeAll } from "vitest"
import { parseCertificateNow, rfc4514Name, sanList, signatureKeyTypeOf } from "../src/certificateFacts.js"
import { certificateFacts } from "../src/index.js"
import { issue as issueWithSerial } from "../src/testing/index.js"
import { generateKey, issue, type TestKey } from "./fixtures.js"

let key: TestKey
beforeAll(async () => {
  key = await generateKey("P-256")
})

const sanPrefix: Readonly<Record<string, string>> = { dns: "DNS", ip: "IP", email: "email", url: "URI" }

/** What @peculiar/x509 alone says: kvdeploy's facts before node:crypto read them. */
const reference = (der: Uint8Array) => {
  const c = new x509.X509Certificate(der)
  const san = c.getExtension(x509.SubjectAlternativeNameExtension)
  let serial = c.serialNumber.replace(/^(00)+/, "")
  if (serial === "") serial = "00"
  return {
    serialHex: serial,
    subject: c.subject,
    issuer: c.issuer,
    sans: san === null ? [] : san.names.items.map((n) => `${sanPrefix[n.type] ?? n.type}:${n.value}`),
    notBefore: c.notBefore.getTime(),
    notAfter: c.notAfter.getTime(),
  }
}

const factsOf = async (der: Uint8Array) => {
  const f = await Effect.runPromise(certificateFacts(der))
  return {
    serialHex: f.serialHex,
    subject: f.subject,
    issuer: f.issuer,
    sans: f.sans,
    notBefore: f.notBefore.getTime(),
    notAfter: f.notAfter.getTime(),
  }
}

// RFC 4514 escaping of a value for issue()'s subject string.
const escapeValue = (v: string) =>
  v
    .replace(/([,+"\\<>;=])/g, "\\$1")
    .replace(/^([ #])/, "\\$1")
    .replace(/ $/, "\\ ")

const tricky = fc.constantFrom(
  "a,b",
  "x+y",
  '"q"',
  "#lead",
  " lead",
  "trail ",
  "back\\slash",
  "se;mi",
  "<>",
  "Müller",
  "日本",
  "=",
)
const plain = fc.stringMatching(/^[A-Za-z0-9 .\-_'()/:?@*]{1,20}$/).filter((v) => v.trim() === v)
const types = fc.constantFrom("CN", "O", "OU", "L", "ST", "DC", "E", "SN", "G", "T", "2.5.4.5", "2.5.4.17")

describe("certificate facts from OpenSSL equal @peculiar/x509's", () => {
  it("for names of common and uncommon types, plain, escaped and non-ASCII values, multi-valued RDNs", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.tuple(types, fc.oneof(plain, tricky)), { minLength: 1, maxLength: 2 }), {
          minLength: 1,
          maxLength: 4,
        }),
        async (rdns) => {
          const subject = rdns
            .map((rdn) => rdn.map(([t, v]) => `${t}=${escapeValue(v)}`).join("+"))
            .join(", ")
          const der = await issue({ subject, key, ca: false })
          expect(await factsOf(der)).toEqual(reference(der))
        },
      ),
      { numRuns: 60 },
    )
  })

  it("for SANs of every form, with separators and IPv6", async () => {
    const name = fc.oneof(
      fc.domain().map((value) => ({ type: "dns" as const, value })),
      fc.ipV4().map((value) => ({ type: "ip" as const, value })),
      fc
        .constantFrom("2001:db8::1", "::1", "fe80::1:2", "2001:db8:0:0:1:0:0:1")
        .map((value) => ({ type: "ip" as const, value })),
      fc.emailAddress().map((value) => ({ type: "email" as const, value })),
      fc.webUrl().map((value) => ({ type: "url" as const, value })),
      fc.constantFrom(
        { type: "dns" as const, value: "a, b.example" },
        { type: "url" as const, value: 'https://x.example/"q"' },
        { type: "dns" as const, value: "*.example.test" },
      ),
    )
    await fc.assert(
      fc.asyncProperty(fc.array(name, { minLength: 1, maxLength: 4 }), async (sans) => {
        const der = await issue({ subject: "CN=san.example.test", key, ca: false, sans })
        expect(await factsOf(der)).toEqual(reference(der))
      }),
      { numRuns: 60 },
    )
  })

  it("for serials with the high bit set, leading zero bytes and one byte", async () => {
    for (const serialNumber of [
      "01",
      "7f",
      "80",
      "00ff",
      "0080",
      "ff00ff",
      "123456789abcdef0123456789abcdef012345678",
    ]) {
      const der = await issueWithSerial({ subject: "CN=serial.example.test", key, ca: false, serialNumber })
      expect(await factsOf(der)).toEqual(reference(der))
    }
  })

  it("rewrites OpenSSL's text only when exact, and leaves the rest to @peculiar/x509", async () => {
    expect(rfc4514Name("CN=app.example.test\nO=kvdeploy tests")).toBe("CN=app.example.test, O=kvdeploy tests")
    expect(rfc4514Name("emailAddress=x@y.z\nCN=q")).toBe("E=x@y.z, CN=q")
    for (const openssl of ["CN=a\\,b", "CN=a + O=b", "serialNumber=1", "CN=Müller", "", undefined])
      expect(rfc4514Name(openssl)).toBeUndefined()
    expect(sanList("DNS:a.example, IP Address:192.0.2.7, email:x@y.z, URI:https://x.example/")).toEqual([
      "DNS:a.example",
      "IP:192.0.2.7",
      "email:x@y.z",
      "URI:https://x.example/",
    ])
    expect(sanList(undefined)).toEqual([])
    for (const openssl of [
      "IP Address:2001:DB8:0:0:0:0:0:1",
      'URI:"https://x/a\\u002cb"',
      "DirName:CN=x",
      "",
    ])
      expect(sanList(openssl)).toBeUndefined()
    // And what node:crypto prints is what these functions are given.
    const der = await issue({
      subject: "CN=app.example.test, O=kvdeploy tests",
      key,
      ca: false,
      sans: [{ type: "dns", value: "app.example.test" }],
    })
    const node = new X509Certificate(der)
    expect(node.subject).toBe("CN=app.example.test\nO=kvdeploy tests")
    expect(node.subjectAltName).toBe("DNS:app.example.test")
  })
})

describe("certificateFacts on a damaged public key", () => {
  it("says the key may be damaged, not only of an unknown algorithm (a changed byte in a P-256 point)", async () => {
    const der = await issue({ subject: "CN=damaged.example.test", key, ca: false })
    // The P-256 SubjectPublicKeyInfo's BIT STRING: 03 42 00 04, then X and Y (32 bytes each).
    const at = Buffer.from(der).indexOf(Buffer.from([0x03, 0x42, 0x00, 0x04]))
    expect(at).toBeGreaterThan(0)
    const damaged = Uint8Array.from(der)
    // The point's last byte changed: off the curve (a point on it has one Y for each parity).
    const last = at + 4 + 63
    damaged[last] = (damaged[last] ?? 0) ^ 0x01
    // The certificate still parses; its key does not.
    expect(() => new X509Certificate(damaged).publicKey).toThrow()
    const failure = await Effect.runPromise(Effect.flip(certificateFacts(damaged)))
    expect(failure.problems).toEqual([
      {
        field: "certificate",
        message:
          "has a public key this system cannot read: of an algorithm or curve it does not know, or damaged",
        fix: expect.stringContaining(
          "if it has one, the certificate is damaged: check it with openssl x509 -noout -text",
        ),
      },
    ])
  })
})

describe("signatureKeyType: the key type of the algorithm a certificate is signed with", () => {
  const leafUnder = async (issuerSpec: "P-256" | "RSA-2048", leafSpec: "P-256" | "RSA-2048") => {
    const issuerKey = await generateKey(issuerSpec)
    const issuer = { name: `CN=${issuerSpec} CA`, key: issuerKey }
    return issue({ subject: `CN=${leafSpec} leaf`, key: await generateKey(leafSpec), issuer, ca: false })
  }
  const factsOfDer = (der: Uint8Array) => Effect.runPromise(certificateFacts(der))

  it("is the issuer's key type, whatever the certificate's own key", async () => {
    for (const [issuerSpec, leafSpec, expected] of [
      ["P-256", "RSA-2048", "EC"],
      ["RSA-2048", "P-256", "RSA"],
      ["RSA-2048", "RSA-2048", "RSA"],
      ["P-256", "P-256", "EC"],
    ] as const) {
      const facts = await factsOfDer(await leafUnder(issuerSpec, leafSpec))
      expect([issuerSpec, leafSpec, facts.keyType, facts.signatureKeyType]).toStrictEqual([
        issuerSpec,
        leafSpec,
        leafSpec === "P-256" ? "EC" : "RSA",
        expected,
      ])
    }
  })

  it("is read from @peculiar/x509 alike where node:crypto does not name the algorithm", async () => {
    for (const [issuerSpec, expected] of [
      ["P-256", "EC"],
      ["RSA-2048", "RSA"],
    ] as const) {
      const outcome = parseCertificateNow(await leafUnder(issuerSpec, "RSA-2048"), "leaf")
      if (outcome._tag !== "Parsed") throw new Error(outcome.problem.message)
      const node = outcome.parsed.node
      expect(signatureKeyTypeOf(outcome.parsed)).toBe(expected)
      // An older Node.js's X509Certificate, without signatureAlgorithmOid.
      const older = new Proxy(node, {
        get: (target, property) =>
          property === "signatureAlgorithmOid" ? undefined : Reflect.get(target, property, target),
      })
      expect(signatureKeyTypeOf({ ...outcome.parsed, node: older })).toBe(expected)
    }
  })
})
