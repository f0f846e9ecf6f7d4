/**
 * nodeCertificate hands out node:crypto's parse a decode already made of the same
 * bytes (the Key Vault emulator reads every imported leaf this way), and parses
 * anything else itself: never another certificate's parse, and a cached parse
 * only for bytes that are exactly its certificate.
 */
import "reflect-metadata"
import { X509Certificate } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { beforeAll } from "vitest"
import { parseCertificateSharedNow } from "../src/certificateFacts.js"
import { decodePfx, encodePfx, nodeCertificate } from "../src/index.js"
import { generateKey, issue, makeAuthorities, makeMaterial, type TestAuthorities } from "./fixtures.js"

let authorities: TestAuthorities
beforeAll(async () => {
  authorities = await makeAuthorities()
})

const decoded = async () => {
  const material = await makeMaterial(await generateKey("P-256"), 3, authorities)
  const password = Redacted.make("pw")
  const pfx = await Effect.runPromise(encodePfx(material, { encoding: "modern", password, iterations: 1 }))
  return { material, out: await Effect.runPromise(decodePfx(pfx, password)) }
}

describe("nodeCertificate", () => {
  it("gives the decoder's own parse of every certificate it returned, for any array holding those bytes", async () => {
    const { material, out } = await decoded()
    const leaf = nodeCertificate(out.leaf)
    // The same object for a copy of the bytes: no second parse.
    expect(nodeCertificate(out.leaf.slice())).toBe(leaf)
    expect(new Uint8Array(leaf.raw)).toEqual(material.leaf)
    expect(leaf.subject).toContain("app.example.test")
    for (const [i, der] of out.chain.entries()) {
      const c = nodeCertificate(der)
      expect(new Uint8Array(c.raw), `chain[${i}]`).toEqual(der)
      expect(nodeCertificate(der.slice())).toBe(c)
    }
  })

  it("parses bytes it has not seen, and never answers with another certificate's parse", async () => {
    const { out } = await decoded()
    const other = (await decoded()).out.leaf
    const parsed = nodeCertificate(other)
    expect(new Uint8Array(parsed.raw)).toEqual(other)
    expect(parsed).not.toBe(nodeCertificate(out.leaf))
    // A certificate the package never parsed: a fresh parse at each call, of the same certificate.
    const unseen = await issue({
      subject: "CN=never parsed here",
      key: await generateKey("P-256"),
      ca: false,
    })
    const first = nodeCertificate(unseen)
    const second = nodeCertificate(unseen)
    expect(second).not.toBe(first)
    expect(second.fingerprint256).toBe(new X509Certificate(unseen).fingerprint256)
    expect(first.fingerprint256).toBe(second.fingerprint256)
  })

  it("does not serve a cached parse for a certificate followed by other bytes, and throws on garbage", async () => {
    const { out } = await decoded()
    const padded = new Uint8Array([...out.leaf, 0x00, 0x01])
    // The package parses (and remembers) the padded bytes: OpenSSL reads the certificate in front.
    const stored = parseCertificateSharedNow(padded, "padded")
    expect(stored._tag).toBe("Parsed")
    if (stored._tag !== "Parsed") return
    expect(stored.parsed.node.raw.length).toBe(out.leaf.length)
    // That parse is of other bytes than `padded` (its certificate is shorter): not handed out for them.
    const fromPadded = nodeCertificate(padded)
    expect(fromPadded).not.toBe(stored.parsed.node)
    expect(nodeCertificate(out.leaf)).not.toBe(fromPadded)
    expect(() => nodeCertificate(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]))).toThrow()
  })
})
