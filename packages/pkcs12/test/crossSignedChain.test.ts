/**
 * A chain file that holds two certificates of the same intermediate (its name and key): the one a
 * root in the file issued, and a cross-signed one whose issuer the file does not hold, as CA
 * bundles that carry both paths do. The chain is the complete path, whichever copy comes first;
 * the other copy is named for what it is.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { beforeAll, describe, expect, it } from "vitest"
import { inspectMaterial } from "../src/index.js"
import { generateKey, type Issuer, issue } from "./fixtures.js"

interface Pki {
  readonly root: Uint8Array
  readonly intermediate: Uint8Array
  readonly crossSigned: Uint8Array
  readonly leaf: Uint8Array
  readonly leafKey: Uint8Array
}

let pki: Pki
beforeAll(async () => {
  const rootKey = await generateKey("P-256")
  const otherRootKey = await generateKey("P-256")
  const intKey = await generateKey("P-256")
  const leafKey = await generateKey("P-256")
  const root: Issuer = { name: "CN=Cross Test Root", key: rootKey }
  const otherRoot: Issuer = { name: "CN=Cross Test Old Root", key: otherRootKey }
  const int: Issuer = { name: "CN=Cross Test Intermediate", key: intKey }
  pki = {
    root: await issue({ subject: root.name, key: rootKey, ca: true }),
    intermediate: await issue({ subject: int.name, key: intKey, issuer: root, ca: true }),
    crossSigned: await issue({ subject: int.name, key: intKey, issuer: otherRoot, ca: true }),
    leaf: await issue({ subject: "CN=cross.example.test", key: leafKey, issuer: int, ca: false }),
    leafKey: leafKey.pkcs8,
  }
}, 60_000)

describe("a chain with a cross-signed copy of its intermediate", () => {
  for (const [name, order] of [
    ["cross-signed copy first", (p: Pki) => [p.crossSigned, p.intermediate, p.root]],
    ["cross-signed copy last", (p: Pki) => [p.intermediate, p.root, p.crossSigned]],
  ] as const) {
    it(`orders the complete path and names the copy, not the path, as the extra certificate (${name})`, async () => {
      const chain = order(pki)
      const inspected = await Effect.runPromise(
        inspectMaterial({ leaf: pki.leaf, chain, key: Redacted.make(pki.leafKey) }),
      )
      expect(inspected.chain.map((c) => c.subject)).toEqual([
        "CN=Cross Test Intermediate",
        "CN=Cross Test Root",
      ])
      const copyIndex = chain.indexOf(pki.crossSigned)
      expect(inspected.problems).toEqual([
        {
          field: `chain[${copyIndex}]`,
          message: expect.stringMatching(
            /another certificate of "CN=Cross Test Intermediate" \(the same name and key\), issued by "CN=Cross Test Old Root"/,
          ),
          fix: expect.stringMatching(/remove it/),
        },
      ])
    })
  }
})
