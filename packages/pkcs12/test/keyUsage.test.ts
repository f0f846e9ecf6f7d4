/**
 * keyUsageBits answers what @peculiar/x509's own certificate parse answers,
 * on any DER certificate and on the leaf decodePfx returns (its current
 * bytes, also when they were changed after decoding).
 */
import "reflect-metadata"
import { describe, expect, it } from "@effect/vitest"
import { MaterialInvalid } from "@kvdeploy/core"
import * as x509 from "@peculiar/x509"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import fc from "fast-check"
import { beforeAll } from "vitest"
import { decodePfx, encodePfx, keyUsageBits } from "../src/index.js"
import { generateKey, issue, type TestKey } from "./fixtures.js"

let ca: TestKey
let leafKey: TestKey
beforeAll(async () => {
  // An RSA issuer: its signatures have a fixed length, so two leaves can differ in their usage alone.
  ca = await generateKey("RSA-2048")
  leafKey = await generateKey("P-256")
})

const reference = (der: Uint8Array): number | undefined =>
  new x509.X509Certificate(der).getExtension(x509.KeyUsagesExtension)?.usages

const issueLeaf = (keyUsage: number | undefined) =>
  issue({
    subject: "CN=ku.example.test",
    key: leafKey,
    issuer: { name: "CN=KU Test CA", key: ca },
    ca: false,
    sans: [{ type: "dns", value: "ku.example.test" }],
    ...(keyUsage === undefined ? {} : { keyUsage }),
  })

const password = Redacted.make("ku-test")

describe("keyUsageBits", () => {
  it("equals @peculiar/x509's key usage for every combination of flags, and undefined without the extension", async () => {
    await fc.assert(
      fc.asyncProperty(fc.option(fc.integer({ min: 1, max: 511 }), { nil: undefined }), async (flags) => {
        const der = await issueLeaf(flags)
        const bits = await Effect.runPromise(keyUsageBits(der))
        expect(bits).toBe(reference(der))
        expect(bits).toBe(flags)
      }),
      { numRuns: 25 },
    )
  })

  it("reads a CA certificate's usage (keyCertSign, cRLSign) and a certificate without extensions", async () => {
    const caDer = await issue({
      subject: "CN=KU Test CA",
      key: ca,
      ca: true,
      keyUsage: x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
    })
    expect(await Effect.runPromise(keyUsageBits(caDer))).toBe(96)
    const bare = await issue({ subject: "CN=bare.example.test", key: leafKey, ca: false })
    expect(await Effect.runPromise(keyUsageBits(bare))).toBeUndefined()
  })

  it("gives the decoded leaf's usage, and reads the leaf's current bytes when they were changed after decoding", async () => {
    const signing = x509.KeyUsageFlags.digitalSignature
    const enciphering = x509.KeyUsageFlags.keyEncipherment
    const first = await issueLeaf(signing)
    // Same key, issuer, names and encoded length: only the usage (and the serial) differ.
    const second = await issueLeaf(enciphering)
    expect(second.length).toBe(first.length)
    const pfx = await Effect.runPromise(
      encodePfx(
        { leaf: first, chain: [], key: Redacted.make(leafKey.pkcs8) },
        { encoding: "modern", password },
      ),
    )
    const material = await Effect.runPromise(decodePfx(pfx, password))
    expect(await Effect.runPromise(keyUsageBits(material.leaf))).toBe(signing)
    material.leaf.set(second)
    expect(await Effect.runPromise(keyUsageBits(material.leaf))).toBe(enciphering)
    expect(reference(material.leaf)).toBe(enciphering)
  })

  it("refuses bytes that are not a certificate with MaterialInvalid naming the field", async () => {
    const der = await issueLeaf(1)
    for (const bad of [
      new Uint8Array(0),
      der.subarray(0, der.length - 10),
      new Uint8Array([0x30, 0x03, 2, 1, 1]),
    ]) {
      const error = await Effect.runPromise(Effect.flip(keyUsageBits(bad)))
      expect(error).toBeInstanceOf(MaterialInvalid)
      expect(error.problems[0]?.field).toBe("certificate")
    }
  })
})
