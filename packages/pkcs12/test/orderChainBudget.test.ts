/**
 * `orderChain`'s cost is bounded as `chooseLeaf`'s is: hundreds of certificates of one name, each
 * named as every other's issuer, would need a signature check per pair at every step of the path
 * (39 s at 600 certificates, within the 1 MiB source limit). Past `MAX_SIGNATURE_CHECKS` the chain is
 * refused with a problem that says why and what to give instead.
 */
import { X509Certificate } from "node:crypto"
import { describe, expect, it, vi } from "vitest"
import { type ParsedCertificate, parseCertificateSharedNow } from "../src/certificateFacts.js"
import { orderChain } from "../src/inspect.js"
import { MAX_SIGNATURE_CHECKS } from "../src/leaf.js"
import { generateKey, issue, type TestKey } from "./fixtures.js"

const parsedOf = (der: Uint8Array): ParsedCertificate => {
  const outcome = parseCertificateSharedNow(der, "certificate")
  if (outcome._tag !== "Parsed") throw new Error("unreadable test certificate")
  return outcome.parsed
}

describe("orderChain's signature-check budget", () => {
  it("refuses a chain of hundreds of certificates of one name, each issued by the next, after MAX_SIGNATURE_CHECKS checks", async () => {
    const n = 300
    const name = "CN=Order Chain Rollover"
    const keys = await Promise.all(Array.from({ length: n + 1 }, () => generateKey("P-256")))
    const keyAt = (i: number) => keys[Math.min(i, n)] as TestKey
    const chain = await Promise.all(
      Array.from({ length: n }, (_, k) =>
        issue({ subject: name, key: keyAt(k + 1), issuer: { name, key: keyAt(k + 2) }, ca: true }),
      ),
    )
    const leaf = await issue({
      subject: "CN=order-chain.example.test",
      key: keyAt(0),
      issuer: { name, key: keyAt(1) },
      ca: false,
    })
    const others = chain.reverse().map(parsedOf)
    const verify = vi.spyOn(X509Certificate.prototype, "verify")
    try {
      const order = orderChain(parsedOf(leaf), others)
      expect(verify.mock.calls.length).toBeLessThanOrEqual(MAX_SIGNATURE_CHECKS + n)
      expect(order.problems).toEqual([
        {
          field: "chain",
          message: `holds ${n} certificates, too many of them named as each other's issuers to order (more than ${MAX_SIGNATURE_CHECKS} signature checks)`,
          fix: "give the leaf's issuer path only: a chain holds the few CAs above the leaf, not every certificate of a name",
        },
      ])
    } finally {
      verify.mockRestore()
    }
  }, 60_000)
})
