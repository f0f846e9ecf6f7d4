/**
 * A CA's own certificate given as the leaf (with the CA's key): inspect says so on the leaf's facts
 * (`issuesCertificates`), from basicConstraints and the key usage, so the preflight can warn. A
 * self-signed server certificate marked CA:TRUE without a key usage (what `openssl req -x509` makes
 * by default) and an ordinary leaf are not such.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { beforeAll, describe, expect, it } from "vitest"
import { inspectMaterial } from "../src/index.js"
import { generateKey, issue, makeAuthorities, type TestAuthorities } from "./fixtures.js"

let authorities: TestAuthorities
beforeAll(async () => {
  authorities = await makeAuthorities()
}, 60_000)

/** keyCertSign (32) and cRLSign (64), as @peculiar/x509's KeyUsageFlags number them. */
const signer = 32 | 64
/** digitalSignature (1) and keyEncipherment (4). */
const server = 1 | 4

describe("inspect: a leaf that is a CA made to issue certificates", () => {
  it("an intermediate CA's certificate and key given as the leaf", async () => {
    const key = await generateKey("P-256")
    const [root] = authorities.issuers
    if (root === undefined) throw new Error("fixtures")
    const leaf = await issue({
      subject: "CN=mixed-up issuing CA",
      key,
      issuer: root,
      ca: true,
      keyUsage: signer,
    })
    const chain = [authorities.certificates[0] ?? new Uint8Array()]
    const inspected = await Effect.runPromise(inspectMaterial({ leaf, chain, key: Redacted.make(key.pkcs8) }))
    expect(inspected.problems).toEqual([])
    expect(inspected.leaf.issuesCertificates).toBe(true)
    // The chain's facts do not carry it (their key usage is not read).
    expect(inspected.chain.map((c) => c.issuesCertificates)).toEqual([undefined])
  })

  it("a self-signed root CA's certificate and key", async () => {
    const key = await generateKey("P-384")
    const leaf = await issue({ subject: "CN=a root CA", key, ca: true, keyUsage: signer })
    const inspected = await Effect.runPromise(
      inspectMaterial({ leaf, chain: [], key: Redacted.make(key.pkcs8) }),
    )
    expect(inspected.leaf.selfSigned).toBe(true)
    expect(inspected.leaf.issuesCertificates).toBe(true)
  })

  it("not for a self-signed CA:TRUE certificate without a key usage, a CA:TRUE one for servers, or a leaf", async () => {
    const key = await generateKey("P-256")
    const [root] = authorities.issuers
    if (root === undefined) throw new Error("fixtures")
    const cases = [
      await issue({ subject: "CN=dev.example.test", key, ca: true }),
      await issue({ subject: "CN=odd.example.test", key, ca: true, keyUsage: server }),
      await issue({ subject: "CN=app.example.test", key, issuer: root, ca: false, keyUsage: server }),
    ]
    for (const leaf of cases) {
      const inspected = await Effect.runPromise(
        inspectMaterial({ leaf, chain: [], key: Redacted.make(key.pkcs8) }),
      )
      expect(inspected.leaf.issuesCertificates).toBeUndefined()
    }
  })
})
