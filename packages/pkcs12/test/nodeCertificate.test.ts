/**
 * nodeCertificate hands out node:crypto's parse a decode already made of the same
 * bytes (the Key Vault emulator reads every imported leaf this way), and parses
 * anything else itself: never another certificate's parse, never a parse of
 * bytes that are not exactly one certificate.
 */
import "reflect-metadata"
import { X509Certificate } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { beforeAll } from "vitest"
import { decodePfx, encodePfx, nodeCertificate } from "../src/index.js"
import { generateKey, makeAuthorities, makeMaterial, type TestAuthorities } from "./fixtures.js"

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
    // A certificate the process never parsed through the package: a fresh parse each time.
    const fresh = authorities.certificates[0] ?? new Uint8Array(0)
    const again = new X509Certificate(fresh)
    expect(nodeCertificate(fresh).fingerprint256).toBe(again.fingerprint256)
  })

  it("does not serve a cached parse for the same certificate followed by other bytes, and throws on garbage", async () => {
    const { out } = await decoded()
    const padded = new Uint8Array([...out.leaf, 0x00, 0x01])
    const known = nodeCertificate(out.leaf)
    // OpenSSL may read the certificate in front of the padding; what matters is that the
    // cached parse of the exact bytes is not handed out for different bytes.
    let fromPadded: X509Certificate | undefined
    try {
      fromPadded = nodeCertificate(padded)
    } catch {
      fromPadded = undefined
    }
    expect(fromPadded).not.toBe(known)
    expect(() => nodeCertificate(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]))).toThrow()
  })
})
