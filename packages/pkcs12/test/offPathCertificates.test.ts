/**
 * Certificates given beside the leaf's path (interop-37): an unrelated CA, a second leaf, an old
 * certificate of the same key. The path usually ends at an intermediate (roots are not sent), so
 * its issuer being absent is no gap: a gap is said only when a certificate left over really links
 * above it. Two certificates of the leaf's key are one refusal naming both.
 */
import { describe, expect, it } from "@effect/vitest"
import type { CertificateMaterial } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { beforeAll } from "vitest"
import { certificateFacts, inspectMaterial } from "../src/index.js"
import {
  generateKey,
  type Issuer,
  issue,
  makeAuthorities,
  makeMaterial,
  type TestAuthorities,
  type TestKey,
} from "./fixtures.js"

let authorities: TestAuthorities
let leafKey: TestKey
let material: CertificateMaterial
let unrelatedCa: Uint8Array
let secondLeaf: Uint8Array
const day = 86_400_000

beforeAll(async () => {
  authorities = await makeAuthorities()
  leafKey = await generateKey("P-256")
  // leaf <- intermediate 1 <- root: the chain sent is the intermediate alone.
  material = await makeMaterial(leafKey, 3, authorities)
  unrelatedCa = await issue({ subject: "CN=Unrelated CA", key: await generateKey("P-256"), ca: true })
  secondLeaf = await issue({
    subject: "CN=other.example.test",
    key: await generateKey("P-256"),
    issuer: int1(),
    ca: false,
  })
})

const intermediate = () => material.chain[0] ?? new Uint8Array()
const int1 = (): Issuer => {
  const found = authorities.issuers[1]
  if (found === undefined) throw new Error("fixtures")
  return found
}

describe("a certificate off the leaf's path that ends at an intermediate", () => {
  it.effect("an unrelated CA beside leaf and intermediate: its own problem, no gap", () =>
    Effect.gen(function* () {
      const inspected = yield* inspectMaterial({ ...material, chain: [intermediate(), unrelatedCa] })
      // Nothing in the file tells an unrelated CA from one above a missing intermediate: no gap is
      // said, but its own problem names the issuer the path stops at, in case it is above it.
      expect(inspected.problems).toEqual([
        {
          field: "chain[1]",
          message: `("CN=Unrelated CA") is not part of the leaf's chain: the path stops at "CN=kvdeploy Test Intermediate 1, O=kvdeploy tests", whose issuer "CN=kvdeploy Test Root, O=kvdeploy tests" is not given; if "CN=Unrelated CA" is above it, add "CN=kvdeploy Test Root, O=kvdeploy tests"`,
          fix: `remove it; or, if it is above "CN=kvdeploy Test Root, O=kvdeploy tests", add the certificate of "CN=kvdeploy Test Root, O=kvdeploy tests" (and any between them) to the chain`,
        },
      ])
      expect(JSON.stringify(inspected.problems)).not.toMatch(/broken|above the gap|is missing/)
    }),
  )

  it.effect("a second leaf of the same intermediate: its own problem, no gap", () =>
    Effect.gen(function* () {
      const inspected = yield* inspectMaterial({ ...material, chain: [intermediate(), secondLeaf] })
      // Not a CA, and issued by the path's intermediate: it cannot be above the path's end.
      expect(inspected.problems).toEqual([
        {
          field: "chain[1]",
          message: `("CN=other.example.test") is not part of the leaf's chain`,
          fix: "remove it, or add the certificates that link it to the leaf",
        },
      ])
    }),
  )

  it.effect(
    "a gap is still said when a certificate left over links above it (a re-keyed issuer's other certificate and its root)",
    () =>
      Effect.gen(function* () {
        // leaf <- int2 <- int1; given int1's name on another key (issued by the root), and the root.
        const [root, first] = authorities.issuers
        if (root === undefined || first === undefined) throw new Error("fixtures")
        const deep = yield* Effect.promise(() => makeMaterial(leafKey, 4, authorities))
        const rekeyed = yield* Effect.promise(async () =>
          issue({ subject: first.name, key: await generateKey("P-256"), issuer: root, ca: true }),
        )
        const inspected = yield* inspectMaterial({
          ...deep,
          chain: [
            deep.chain[0] ?? new Uint8Array(),
            rekeyed,
            authorities.certificates[0] ?? new Uint8Array(),
          ],
        })
        expect(inspected.problems.map((p) => p.field)).toEqual(["chain[1]", "chain", "chain[2]"])
        expect(inspected.problems[1]?.message).toMatch(/^is broken after "CN=kvdeploy Test Intermediate 2/)
      }),
  )
})

describe("a missing intermediate with a CA given above it (review 37bc)", () => {
  const int2Name = "CN=kvdeploy Test Intermediate 2, O=kvdeploy tests"
  const int1Name = "CN=kvdeploy Test Intermediate 1, O=kvdeploy tests"
  const rootName = "CN=kvdeploy Test Root, O=kvdeploy tests"

  it.effect("leaf <- int2 <- int1 <- root, int1 missing: the root's problem names int1 to add", () =>
    Effect.gen(function* () {
      const deep = yield* Effect.promise(() => makeMaterial(leafKey, 4, authorities))
      const [int2, , root] = deep.chain
      const inspected = yield* inspectMaterial({
        ...deep,
        chain: [int2 ?? new Uint8Array(), root ?? new Uint8Array()],
      })
      expect(inspected.problems).toEqual([
        {
          field: "chain[1]",
          message: `("${rootName}") is not part of the leaf's chain: the path stops at "${int2Name}", whose issuer "${int1Name}" is not given; if "${rootName}" is above it, add "${int1Name}"`,
          fix: `remove it; or, if it is above "${int1Name}", add the certificate of "${int1Name}" (and any between them) to the chain`,
        },
      ])
    }),
  )

  it.effect("leaf <- int2 <- int1 <- root, the leaf's own issuer int2 missing: int1 and root name it", () =>
    Effect.gen(function* () {
      const deep = yield* Effect.promise(() => makeMaterial(leafKey, 4, authorities))
      const [, int1Cert, root] = deep.chain
      const inspected = yield* inspectMaterial({
        ...deep,
        chain: [int1Cert ?? new Uint8Array(), root ?? new Uint8Array()],
      })
      expect(inspected.chain).toHaveLength(0)
      expect(inspected.problems.map((p) => p.field)).toEqual(["chain[0]", "chain[1]"])
      for (const [p, name] of [
        [inspected.problems[0], int1Name],
        [inspected.problems[1], rootName],
      ] as const) {
        expect(p?.message).toBe(
          `("${name}") is not part of the leaf's chain: the path stops at "CN=app.example.test, O=kvdeploy tests", whose issuer "${int2Name}" is not given; if "${name}" is above it, add "${int2Name}"`,
        )
        expect(p?.fix).toContain(`add the certificate of "${int2Name}"`)
      }
    }),
  )

  it.effect("a CA issued by the path's intermediate (a sibling) is not said to be above it", () =>
    Effect.gen(function* () {
      const sibling = yield* Effect.promise(async () =>
        issue({ subject: "CN=Sibling CA", key: await generateKey("P-256"), issuer: int1(), ca: true }),
      )
      const inspected = yield* inspectMaterial({ ...material, chain: [intermediate(), sibling] })
      expect(inspected.problems).toEqual([
        {
          field: "chain[1]",
          message: `("CN=Sibling CA") is not part of the leaf's chain`,
          fix: "remove it, or add the certificates that link it to the leaf",
        },
      ])
    }),
  )
})

describe("two certificates for the leaf's key (a renewal that kept its key, old and new concatenated)", () => {
  it.effect("refused naming each one's serial and notAfter, and the newest to keep", () =>
    Effect.gen(function* () {
      const issuer = int1()
      const now = Date.now()
      const old = yield* Effect.promise(() =>
        issue({
          subject: "CN=app.example.test",
          key: leafKey,
          issuer,
          ca: false,
          notBefore: new Date(now - 80 * day),
          notAfter: new Date(now + 10 * day),
        }),
      )
      const renewed = yield* Effect.promise(() =>
        issue({
          subject: "CN=app.example.test",
          key: leafKey,
          issuer,
          ca: false,
          notBefore: new Date(now - day),
          notAfter: new Date(now + 89 * day),
        }),
      )
      const oldFacts = yield* certificateFacts(old)
      const newFacts = yield* certificateFacts(renewed)
      for (const [leaf, other] of [
        [old, renewed],
        [renewed, old],
      ] as const) {
        const inspected = yield* inspectMaterial({
          leaf,
          chain: [other, intermediate()],
          key: Redacted.make(leafKey.pkcs8),
        })
        expect(inspected.problems).toHaveLength(1)
        const [problem] = inspected.problems
        expect(problem?.field).toBe("leaf")
        expect(problem?.message).toMatch(/^is one of two certificates given for this key: /)
        for (const f of [oldFacts, newFacts]) {
          expect(problem?.message).toContain(`serial ${f.serialHex}`)
          expect(problem?.message).toContain(`notAfter ${f.notAfter.toISOString()}`)
        }
        expect(problem?.fix).toMatch(/^give only the one to deploy/)
        expect(problem?.fix).toContain(
          `the newest is serial ${newFacts.serialHex}, notAfter ${newFacts.notAfter.toISOString()}`,
        )
        expect(JSON.stringify(inspected.problems)).not.toMatch(/not part of the leaf's chain|broken/)
      }
    }),
  )
})
