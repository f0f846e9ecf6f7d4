/**
 * `servedExpiry`: when what is served with a leaf stops working by expiry. The leaf's issuer in
 * the chain counts when it expires first (a stale intermediate); a self-signed root served along
 * and a higher certificate (a cross-signed root kept for old clients, expired or not) do not.
 */
import { beforeAll, describe, expect, it } from "vitest"
import { servedExpiry } from "../src/index.js"
import { generateKey, type Issuer, issue, type TestKey } from "./fixtures.js"

const day = 86_400_000
/** Whole seconds: X.509 times carry no fractions. */
const inDays = (days: number) => new Date(Math.floor((Date.now() + days * day) / 1000) * 1000)

let keys: { root: TestKey; oldRoot: TestKey; int: TestKey; leaf: TestKey }
beforeAll(async () => {
  const [root, oldRoot, int, leaf] = await Promise.all([
    generateKey("P-256"),
    generateKey("P-256"),
    generateKey("P-256"),
    generateKey("P-256"),
  ])
  keys = { root, oldRoot, int, leaf }
}, 60_000)

const root = (): Issuer => ({ name: "CN=Served Expiry Root", key: keys.root })
const int = (): Issuer => ({ name: "CN=Served Expiry Intermediate", key: keys.int })

const leafIssuedBy = (issuer: Issuer, notAfter = inDays(90)) =>
  issue({ subject: "CN=served.example.test", key: keys.leaf, issuer, ca: false, notAfter })

describe("servedExpiry", () => {
  it("is the intermediate's notAfter when the leaf's issuer in the chain expires first, naming it", async () => {
    const intermediateNotAfter = inDays(30)
    const intermediate = await issue({
      subject: int().name,
      key: keys.int,
      issuer: root(),
      ca: true,
      notAfter: intermediateNotAfter,
    })
    const rootCert = await issue({ subject: root().name, key: keys.root, ca: true, notAfter: inDays(3650) })
    const leaf = await leafIssuedBy(int())
    // In any order, the root beside it.
    for (const chain of [
      [intermediate, rootCert],
      [rootCert, intermediate],
    ])
      expect(servedExpiry(leaf, chain)).toEqual({
        notAfter: intermediateNotAfter,
        issuerFirst: { subject: "CN=Served Expiry Intermediate", notAfter: intermediateNotAfter },
      })
  })

  it("of two copies of the leaf's issuer (an old one and its renewal, one key), counts the one that lasts, as a client's path does", async () => {
    const leafNotAfter = inDays(90)
    const leaf = await leafIssuedBy(int(), leafNotAfter)
    const shortEnd = inDays(40)
    const copy = (notAfter: Date) =>
      issue({ subject: int().name, key: keys.int, issuer: root(), ca: true, notAfter })
    const [stale, renewed, short] = await Promise.all([copy(inDays(10)), copy(inDays(1000)), copy(shortEnd)])
    for (const chain of [
      [stale, renewed],
      [renewed, stale],
    ])
      expect(servedExpiry(leaf, chain)).toEqual({ notAfter: leafNotAfter })
    // Both ending before the leaf: the later one is when what is served breaks.
    expect(servedExpiry(leaf, [stale, short])).toEqual({
      notAfter: shortEnd,
      issuerFirst: { subject: "CN=Served Expiry Intermediate", notAfter: shortEnd },
    })
  })

  it("is the leaf's notAfter with no chain, with an issuer that outlives the leaf, or a certificate that did not issue it", async () => {
    const leafNotAfter = inDays(90)
    const leaf = await leafIssuedBy(int(), leafNotAfter)
    const longIntermediate = await issue({
      subject: int().name,
      key: keys.int,
      issuer: root(),
      ca: true,
      notAfter: inDays(400),
    })
    // Another CA's certificate under the same name: not the leaf's issuer (its key did not sign it).
    const impostor = await issue({
      subject: int().name,
      key: keys.oldRoot,
      issuer: root(),
      ca: true,
      notAfter: inDays(10),
    })
    expect(servedExpiry(leaf, [])).toEqual({ notAfter: leafNotAfter })
    expect(servedExpiry(leaf, [longIntermediate])).toEqual({ notAfter: leafNotAfter })
    expect(servedExpiry(leaf, [impostor])).toEqual({ notAfter: leafNotAfter })
  })

  it("leaves out higher certificates (a cross-signed root, expired too) and a self-signed root that issued the leaf", async () => {
    const leafNotAfter = inDays(90)
    const leaf = await leafIssuedBy(int(), leafNotAfter)
    const intermediate = await issue({
      subject: int().name,
      key: keys.int,
      issuer: root(),
      ca: true,
      notAfter: inDays(400),
    })
    // The root cross-signed by an older root, ended yesterday: kept in the chain for old clients.
    const crossSignedRoot = await issue({
      subject: root().name,
      key: keys.root,
      issuer: { name: "CN=Served Expiry Old Root", key: keys.oldRoot },
      ca: true,
      notBefore: inDays(-400),
      notAfter: inDays(-1),
    })
    expect(servedExpiry(leaf, [intermediate, crossSignedRoot])).toEqual({ notAfter: leafNotAfter })
    // A leaf a root issues directly, served with that root, which ends first: clients use their own copy.
    const shortRoot = await issue({ subject: root().name, key: keys.root, ca: true, notAfter: inDays(20) })
    const direct = await leafIssuedBy(root(), leafNotAfter)
    expect(servedExpiry(direct, [shortRoot])).toEqual({ notAfter: leafNotAfter })
  })

  it("is undefined for a leaf that cannot be read", () => {
    expect(servedExpiry(new Uint8Array([1, 2, 3]), [])).toBeUndefined()
  })
})
