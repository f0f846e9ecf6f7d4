/**
 * `servedExpiry`: when what is served with a leaf stops working by expiry. Every certificate of the
 * chain on the leaf's issuer path counts when it expires first (a stale intermediate, a policy CA
 * above the issuing CA); a root does not: a self-signed one served along, or a cross-signed copy of a
 * root the chain or the trusted store holds (kept for old clients, expired or not).
 */
import { X509Certificate } from "node:crypto"
import { beforeAll, describe, expect, it, vi } from "vitest"
import { servedExpiry } from "../src/index.js"
import { MAX_SIGNATURE_CHECKS } from "../src/leaf.js"
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
        issuerFirst: { subject: "CN=Served Expiry Intermediate", notAfter: intermediateNotAfter, depth: 1 },
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
      issuerFirst: { subject: "CN=Served Expiry Intermediate", notAfter: shortEnd, depth: 1 },
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

  it("follows the issuer path: an intermediate above the leaf's issuer that expires first counts, naming it", async () => {
    // root <- intermediate 1 <- intermediate 2 <- leaf, intermediate 1 ending first.
    const i1 = { name: "CN=Served Expiry Policy CA", key: keys.oldRoot }
    const i1NotAfter = inDays(20)
    const policyCa = await issue({
      subject: i1.name,
      key: i1.key,
      issuer: root(),
      ca: true,
      notAfter: i1NotAfter,
    })
    const issuingCa = await issue({
      subject: int().name,
      key: keys.int,
      issuer: i1,
      ca: true,
      notAfter: inDays(400),
    })
    const rootCert = await issue({ subject: root().name, key: keys.root, ca: true, notAfter: inDays(3650) })
    const leaf = await leafIssuedBy(int())
    for (const chain of [
      [issuingCa, policyCa],
      [policyCa, issuingCa, rootCert],
      [rootCert, policyCa, issuingCa],
    ])
      expect(servedExpiry(leaf, chain)).toEqual({
        notAfter: i1NotAfter,
        issuerFirst: { subject: "CN=Served Expiry Policy CA", notAfter: i1NotAfter, depth: 2 },
      })
    // Of two copies of intermediate 1, the one that lasts; the leaf's issuer ending first is named.
    const policyCaRenewed = await issue({
      subject: i1.name,
      key: i1.key,
      issuer: root(),
      ca: true,
      notAfter: inDays(900),
    })
    const leafNotAfter = inDays(90)
    const leaf2 = await leafIssuedBy(int(), leafNotAfter)
    expect(servedExpiry(leaf2, [policyCa, issuingCa, policyCaRenewed])).toEqual({ notAfter: leafNotAfter })
    const shortEnd = inDays(10)
    const shortIssuing = await issue({
      subject: int().name,
      key: keys.int,
      issuer: i1,
      ca: true,
      notAfter: shortEnd,
    })
    expect(servedExpiry(leaf2, [policyCa, shortIssuing])).toEqual({
      notAfter: shortEnd,
      issuerFirst: { subject: "CN=Served Expiry Intermediate", notAfter: shortEnd, depth: 1 },
    })
  })

  it("does not count a root: a self-signed one served along, or a cross-signed copy of a root the chain or the trusted store holds", async () => {
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
    const yesterday = inDays(-1)
    const crossSignedRoot = await issue({
      subject: root().name,
      key: keys.root,
      issuer: { name: "CN=Served Expiry Old Root", key: keys.oldRoot },
      ca: true,
      notBefore: inDays(-400),
      notAfter: yesterday,
    })
    const rootCert = await issue({ subject: root().name, key: keys.root, ca: true, notAfter: inDays(3650) })
    // The self-signed root beside it says the cross-signed copy is that root's.
    expect(servedExpiry(leaf, [intermediate, crossSignedRoot, rootCert])).toEqual({ notAfter: leafNotAfter })
    // So does a trusted store holding that root (by default, Node's bundled Mozilla store).
    expect(servedExpiry(leaf, [intermediate, crossSignedRoot], { roots: [rootCert] })).toEqual({
      notAfter: leafNotAfter,
    })
    // Neither: nothing tells it from an intermediate, and a path through it ends with it.
    expect(servedExpiry(leaf, [intermediate, crossSignedRoot], { roots: [] })).toEqual({
      notAfter: yesterday,
      issuerFirst: { subject: "CN=Served Expiry Root", notAfter: yesterday, depth: 2 },
    })
    // A leaf a root issues directly, served with that root, which ends first: clients use their own copy.
    const shortRoot = await issue({ subject: root().name, key: keys.root, ca: true, notAfter: inDays(20) })
    const direct = await leafIssuedBy(root(), leafNotAfter)
    expect(servedExpiry(direct, [shortRoot])).toEqual({ notAfter: leafNotAfter })
    // Higher up too: a short-lived self-signed root above a lasting intermediate is not counted.
    expect(servedExpiry(leaf, [intermediate, shortRoot])).toEqual({ notAfter: leafNotAfter })
  })

  it("stops at a cycle (two CAs cross-signing each other) and ignores certificates off the path", async () => {
    const a = { name: "CN=Served Expiry Cycle A", key: keys.int }
    const b = { name: "CN=Served Expiry Cycle B", key: keys.oldRoot }
    const [aEnd, bEnd] = [inDays(300), inDays(200)]
    const aByB = await issue({ subject: a.name, key: a.key, issuer: b, ca: true, notAfter: aEnd })
    const bByA = await issue({ subject: b.name, key: b.key, issuer: a, ca: true, notAfter: bEnd })
    // Unrelated, expiring first: another CA's certificate nothing on the path was issued by.
    const unrelated = await issue({
      subject: "CN=Served Expiry Unrelated",
      key: keys.root,
      ca: true,
      notAfter: inDays(5),
    })
    const leafNotAfter = inDays(400)
    const leaf = await leafIssuedBy(a, leafNotAfter)
    expect(servedExpiry(leaf, [bByA, unrelated, aByB], { roots: [] })).toEqual({
      notAfter: bEnd,
      issuerFirst: { subject: "CN=Served Expiry Cycle B", notAfter: bEnd, depth: 2 },
    })
    // The leaf in its own chain (a fullchain file that repeats it) is not its own issuer.
    expect(servedExpiry(leaf, [leaf, aByB], { roots: [] })).toEqual({
      notAfter: aEnd,
      issuerFirst: { subject: "CN=Served Expiry Cycle A", notAfter: aEnd, depth: 1 },
    })
  })

  it("does not come back to a copy of a certificate already on the path (same name and key) up a cross-sign cycle", async () => {
    const a = { name: "CN=Served Expiry Cycle A", key: keys.int }
    const b = { name: "CN=Served Expiry Cycle B", key: keys.oldRoot }
    const [aEnd, bEnd] = [inDays(300), inDays(200)]
    const aByB = await issue({ subject: a.name, key: a.key, issuer: b, ca: true, notAfter: aEnd })
    const bByA = await issue({ subject: b.name, key: b.key, issuer: a, ca: true, notAfter: bEnd })
    // An older copy of A (its name and key, issued by B), expired yesterday, left in the chain file:
    // the path leaf, A, B stops at B (its issuer, A, is on the path), whichever copy of A issued it.
    const aByBOld = await issue({
      subject: a.name,
      key: a.key,
      issuer: b,
      ca: true,
      notBefore: inDays(-400),
      notAfter: inDays(-1),
    })
    const leaf = await leafIssuedBy(a, inDays(400))
    const expected = {
      notAfter: bEnd,
      issuerFirst: { subject: "CN=Served Expiry Cycle B", notAfter: bEnd, depth: 2 },
    }
    expect(servedExpiry(leaf, [aByB, bByA, aByBOld], { roots: [] })).toEqual(expected)
    expect(servedExpiry(leaf, [aByBOld, bByA, aByB], { roots: [] })).toEqual(expected)
  })

  it("checks at most MAX_SIGNATURE_CHECKS signatures: hundreds of certificates of one name, each issued by the next", async () => {
    // 300 CAs of one name (a key rollover gone wrong), the i-th issued by the (i+1)-th, the last
    // self-signed: every certificate is named as every other's issuer, so each step of the path
    // would check all of them (45,000 signature checks, about 20 s at 600 certificates: minutes).
    const n = 300
    const name = "CN=Served Expiry Rollover"
    const rolloverKeys = await Promise.all(Array.from({ length: n + 1 }, () => generateKey("P-256")))
    const keyAt = (i: number) => rolloverKeys[Math.min(i, n)] as TestKey
    const chain = await Promise.all(
      Array.from({ length: n }, (_, k) =>
        issue({
          subject: name,
          key: keyAt(k + 1),
          issuer: { name, key: keyAt(k + 2) },
          ca: true,
          notAfter: inDays(800),
        }),
      ),
    )
    const leafNotAfter = inDays(90)
    const leaf = await leafIssuedBy({ name, key: keyAt(1) }, leafNotAfter)
    const verify = vi.spyOn(X509Certificate.prototype, "verify")
    try {
      // The budget spent, the path found so far counts: here the leaf's notAfter, every CA outliving it.
      expect(servedExpiry(leaf, chain.reverse(), { roots: [] })).toEqual({ notAfter: leafNotAfter })
      expect(verify.mock.calls.length).toBeGreaterThan(0)
      expect(verify.mock.calls.length).toBeLessThanOrEqual(MAX_SIGNATURE_CHECKS + n)
    } finally {
      verify.mockRestore()
    }
  }, 60_000)

  it("is undefined for a leaf that cannot be read", () => {
    expect(servedExpiry(new Uint8Array([1, 2, 3]), [])).toBeUndefined()
  })
})

describe("the default roots: Node's bundled Mozilla store", () => {
  it("takes a certificate with a bundled root's name and key as that root, cross-signed or not, and nothing else", async () => {
    const { rootCertificates } = await import("node:tls")
    const { X509Certificate } = await import("node:crypto")
    const x509 = await import("@peculiar/x509")
    const { isBundledRootCopy } = await import("../src/servedExpiry.js")
    const pem = rootCertificates.find((p) => new X509Certificate(p).publicKey.asymmetricKeyType === "ec")
    if (pem === undefined) throw new Error("no EC root in Node's bundled store")
    const bundledRoot = new X509Certificate(pem)
    expect(isBundledRootCopy(new Uint8Array(bundledRoot.raw))).toBe(true)
    // The same name and key, signed by another CA (a cross-sign): the same root to a client that trusts it.
    const rootKey = await crypto.subtle.importKey(
      "spki",
      bundledRoot.publicKey.export({ type: "spki", format: "der" }),
      {
        name: "ECDSA",
        namedCurve:
          bundledRoot.publicKey.asymmetricKeyDetails?.namedCurve === "secp384r1" ? "P-384" : "P-256",
      },
      true,
      ["verify"],
    )
    const crossSign = (subject: string, publicKey: TestKey["pair"]["publicKey"]) =>
      x509.X509CertificateGenerator.create({
        serialNumber: "01",
        subject,
        issuer: "CN=Served Expiry Old Root",
        notBefore: inDays(-1),
        notAfter: inDays(30),
        signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
        publicKey,
        signingKey: keys.oldRoot.pair.privateKey,
        extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
      })
    const subject = new x509.X509Certificate(new Uint8Array(bundledRoot.raw)).subject
    const crossSigned = await crossSign(subject, rootKey)
    expect(isBundledRootCopy(new Uint8Array(crossSigned.rawData))).toBe(true)
    // Its key under another name, or its name with another key: not that root.
    const renamed = await crossSign("CN=Not A Bundled Root", rootKey)
    expect(isBundledRootCopy(new Uint8Array(renamed.rawData))).toBe(false)
    const rekeyed = await crossSign(subject, keys.int.pair.publicKey)
    expect(isBundledRootCopy(new Uint8Array(rekeyed.rawData))).toBe(false)
    expect(isBundledRootCopy(await issue({ subject: root().name, key: keys.root, ca: true }))).toBe(false)
  })
})
