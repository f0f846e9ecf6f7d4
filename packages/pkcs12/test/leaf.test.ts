/**
 * chooseLeaf and materialFromPem: the leaf of a bundle in any order (parsePem keeps the file's
 * order), the rule docs/library.md's example relies on; and parsePem's answer to a value that is
 * neither text nor bytes (a JavaScript caller's undefined or number).
 */
import { readFileSync } from "node:fs"
import { describe, expect, it } from "@effect/vitest"
import { deploy, MaterialInvalid, validateTargetConfig } from "@kvdeploy/core"
import { InMemoryAuditLog, InMemoryVault, InMemoryVaultHandle, RecordingMetrics } from "@kvdeploy/core/test"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { beforeAll } from "vitest"
import * as Pkcs12 from "../src/index.js"
import { chooseLeaf, issuedOneOf, keyOwner, materialFromPem, parsePem, x5tOf } from "../src/index.js"
import { generateKey, hex, issue, type TestKey, toPem } from "./fixtures.js"

interface Pki {
  readonly rootKey: TestKey
  readonly root: Uint8Array
  readonly intermediate: Uint8Array
  readonly leafKey: TestKey
  readonly leaf: Uint8Array
}
let pki: Pki
beforeAll(async () => {
  const rootKey = await generateKey("P-256")
  const intKey = await generateKey("P-256")
  const leafKey = await generateKey("P-256")
  const rootName = "CN=Root"
  const intName = "CN=Intermediate"
  const root = await issue({ subject: rootName, key: rootKey, ca: true })
  const intermediate = await issue({
    subject: intName,
    key: intKey,
    issuer: { name: rootName, key: rootKey },
    ca: true,
  })
  const leaf = await issue({
    subject: "CN=app.example.test",
    key: leafKey,
    issuer: { name: intName, key: intKey },
    ca: false,
    sans: [{ type: "dns", value: "app.example.test" }],
  })
  pki = { rootKey, root, intermediate, leafKey, leaf }
})

const pem = (...blocks: ReadonlyArray<"L" | "I" | "R" | "K">): string =>
  blocks
    .map((b) =>
      b === "K"
        ? toPem("PRIVATE KEY", pki.leafKey.pkcs8)
        : toPem("CERTIFICATE", b === "L" ? pki.leaf : b === "I" ? pki.intermediate : pki.root),
    )
    .join("")

const problemsOf = (e: MaterialInvalid) => e.problems.map((p) => ({ field: p.field, message: p.message }))

describe("chooseLeaf", () => {
  it.effect("with a key: the certificate the key belongs to, wherever it sits in the bundle", () =>
    Effect.gen(function* () {
      for (const order of [
        ["K", "R", "I", "L"],
        ["R", "L", "I", "K"],
        ["L", "I", "R", "K"],
        ["I", "K", "L"],
      ] as const) {
        const parsed = yield* parsePem(pem(...order))
        const chosen = yield* chooseLeaf(parsed.certificates, parsed.key)
        expect(hex(chosen.leaf), order.join(" ")).toBe(hex(pki.leaf))
        expect(chosen.chain).toHaveLength(parsed.certificates.length - 1)
        expect(chosen.chain.map(hex)).not.toContain(hex(pki.leaf))
      }
    }),
  )

  it.effect("a copy of the leaf in the bundle is no chain certificate", () =>
    Effect.gen(function* () {
      for (const key of [true, false]) {
        const parsed = yield* parsePem(pem("L", "I", "L", ...(key ? (["K"] as const) : [])))
        const chosen = yield* chooseLeaf(parsed.certificates, key ? parsed.key : undefined)
        expect(hex(chosen.leaf)).toBe(hex(pki.leaf))
        expect(chosen.chain.map(hex), `with key: ${key}`).toEqual([hex(pki.intermediate)])
      }
    }),
  )

  it.effect("without a key: the certificate that issued none of the others (cat ca.pem leaf.pem)", () =>
    Effect.gen(function* () {
      const parsed = yield* parsePem(pem("R", "I", "L"))
      const chosen = yield* chooseLeaf(parsed.certificates)
      expect(hex(chosen.leaf)).toBe(hex(pki.leaf))
      expect(chosen.chain.map(hex)).toEqual([hex(pki.root), hex(pki.intermediate)])
    }),
  )

  it.effect("without a key, two certificates neither of which issued the other: refused, naming both", () =>
    Effect.gen(function* () {
      const error = yield* chooseLeaf([pki.root, pki.leaf]).pipe(Effect.flip)
      expect(error).toBeInstanceOf(MaterialInvalid)
      const [p] = error.problems
      expect(p?.field).toBe("certificates")
      expect(p?.message).toContain("could each be the leaf")
      expect(p?.message).toContain('"CN=Root"')
      expect(p?.message).toContain(`x5t ${x5tOf(pki.leaf)}`)
    }),
  )

  it.effect("an issuer's key beside its chain: refused as an issuer's key, not deployed as the leaf", () =>
    Effect.gen(function* () {
      const error = yield* chooseLeaf(
        [pki.root, pki.intermediate, pki.leaf],
        Redacted.make(pki.rootKey.pkcs8),
      ).pipe(Effect.flip)
      expect(problemsOf(error)).toEqual([
        { field: "key", message: expect.stringContaining("an issuer's key, not the leaf's") },
      ])
      expect(error.problems[0]?.fix).toContain("leaf's own private key")
    }),
  )

  it.effect("a key of none of them: the end of the chain is the leaf, so a deploy's refusal names it", () =>
    Effect.gen(function* () {
      const other = yield* Effect.promise(() => generateKey("P-256"))
      const chosen = yield* chooseLeaf([pki.root, pki.leaf, pki.intermediate], Redacted.make(other.pkcs8))
      expect(hex(chosen.leaf)).toBe(hex(pki.leaf))
    }),
  )

  it.effect("values of other types from a JavaScript caller: MaterialInvalid naming them, no TypeError", () =>
    Effect.gen(function* () {
      const call = (certificates: unknown, key?: unknown) =>
        chooseLeaf(certificates as Array<Uint8Array>, key as Redacted.Redacted<Uint8Array>).pipe(
          Effect.flip,
          Effect.map((e) => e.problems.map((p) => p.field)),
        )
      expect(yield* call(undefined)).toEqual(["certificates"])
      expect(yield* call([pki.leaf, "-----BEGIN CERTIFICATE-----"])).toEqual(["certificates[1]"])
      expect(yield* call([pki.leaf], pki.leafKey.pkcs8)).toEqual(["key"])
      expect(yield* call([])).toEqual(["certificates"])
    }),
  )
})

describe("chooseLeaf: a key that settles nothing, a key that is no bytes", () => {
  it.effect(
    "two chain ends and a key of neither: the first certificate is the leaf (preflight then names it), not a refusal of the bundle",
    () =>
      Effect.gen(function* () {
        const other = yield* Effect.promise(() => generateKey("P-256"))
        const key = Redacted.make(other.pkcs8)
        // The root did not issue the leaf (the intermediate did, and is not given): two ends.
        const leafFirst = yield* chooseLeaf([pki.leaf, pki.root], key)
        expect(hex(leafFirst.leaf)).toBe(hex(pki.leaf))
        expect(leafFirst.chain.map(hex)).toEqual([hex(pki.root)])
        const rootFirst = yield* chooseLeaf([pki.root, pki.leaf], key)
        expect(hex(rootFirst.leaf)).toBe(hex(pki.root))
        expect(rootFirst.chain.map(hex)).toEqual([hex(pki.leaf)])
      }),
  )

  it.effect(
    "a Redacted string (PEM body text, not PKCS#8 bytes) as the key: MaterialInvalid naming the key, the text not repeated",
    () =>
      Effect.gen(function* () {
        const text = Buffer.from(pki.leafKey.pkcs8).toString("base64")
        const error = yield* chooseLeaf(
          [pki.root, pki.intermediate, pki.leaf],
          Redacted.make(text) as unknown as Redacted.Redacted<Uint8Array>,
        ).pipe(Effect.flip)
        expect(problemsOf(error)).toEqual([{ field: "key", message: "is not a Redacted PKCS#8 key" }])
        expect(JSON.stringify(error.problems)).not.toContain(text.slice(0, 24))
      }),
  )
})

describe("keyOwner and issuedOneOf (the CLI's and the agent's leaf rule)", () => {
  it("keyOwner: the caller's array of the certificate the key belongs to, wherever it sits; none: undefined", () => {
    const leafCopy = pki.leaf.slice()
    const key = Redacted.make(pki.leafKey.pkcs8)
    expect(keyOwner([pki.root, pki.intermediate, leafCopy], key)).toBe(leafCopy)
    expect(keyOwner([leafCopy, pki.root], key)).toBe(leafCopy)
    // The root's key owns the root, not the leaf.
    expect(keyOwner([pki.leaf, pki.intermediate, pki.root], Redacted.make(pki.rootKey.pkcs8))).toBe(pki.root)
    expect(keyOwner([pki.root, pki.intermediate], key)).toBeUndefined()
    // An unreadable certificate is passed over; an unreadable key owns nothing.
    expect(keyOwner([Uint8Array.of(48, 3, 2, 1, 0), pki.leaf], key)).toBe(pki.leaf)
    expect(keyOwner([pki.leaf], Redacted.make(Uint8Array.of(1, 2, 3)))).toBeUndefined()
  })

  it("issuedOneOf: a certificate the parent issued, copies of the parent aside", () => {
    expect(issuedOneOf(pki.intermediate, [pki.root, pki.leaf])).toBe(pki.leaf)
    expect(issuedOneOf(pki.root, [pki.leaf, pki.intermediate])).toBe(pki.intermediate)
    // A self-signed root is named as its own issuer: its copy is not a certificate it issued.
    expect(issuedOneOf(pki.root, [pki.root.slice(), pki.leaf])).toBeUndefined()
    expect(issuedOneOf(pki.leaf, [pki.root, pki.intermediate])).toBeUndefined()
    expect(issuedOneOf(Uint8Array.of(1, 2), [pki.leaf])).toBeUndefined()
  })
})

describe("materialFromPem", () => {
  it.effect("a bundle without a key, or without a certificate: MaterialInvalid saying which", () =>
    Effect.gen(function* () {
      const noKey = yield* materialFromPem(yield* parsePem(pem("L", "I"))).pipe(Effect.flip)
      expect(noKey.problems.map((p) => p.field)).toEqual(["key"])
      const noCert = yield* materialFromPem(yield* parsePem(pem("K"))).pipe(Effect.flip)
      expect(noCert.problems).toEqual([
        expect.objectContaining({ field: "pem", message: "holds no certificate, only a private key" }),
      ])
    }),
  )

  // docs/library.md's example reads its material with this line; here it runs over a bundle whose CA
  // comes first, with this package's codec and core's in-memory vault in place of Key Vault.
  const docLine = "const material = yield* Pkcs12.materialFromPem(yield* Pkcs12.parsePem(pemText))"

  it("docs/library.md's example reads the material with materialFromPem, not the first certificate", () => {
    const doc = readFileSync(new URL("../../../docs/library.md", import.meta.url), "utf8")
    const example = doc.slice(doc.indexOf("## A deploy from your program"), doc.indexOf("What it gives back"))
    expect(example).toContain(docLine)
    expect(example).toContain("deploy({ target, material, certificateId })")
    expect(example).not.toContain("pem.certificates")
  })

  // Live: the certificates are valid now, which the test clock (at 1970) is not.
  it.live(
    "the example's deploy of a bundle with the CA first (cat root.pem int.pem leaf.pem key.pem): Succeeded",
    () =>
      Effect.gen(function* () {
        const target = yield* validateTargetConfig({
          vault_url: "https://my-vault.vault.azure.net",
          certificate_name: "api-prod",
        })
        const pemText = pem("R", "I", "L", "K")
        // The doc's line, as written there.
        const material = yield* Pkcs12.materialFromPem(yield* Pkcs12.parsePem(pemText))
        const outcome = yield* deploy({ target, material, certificateId: "api-prod-2026" })
        expect(outcome._tag === "Rejected" ? outcome.problems : []).toEqual([])
        expect(outcome._tag).toBe("Succeeded")
        expect(outcome.newX5t).toBe(x5tOf(pki.leaf))
        const vault = yield* InMemoryVaultHandle
        expect(vault.versions("api-prod").map((v) => hex(v.material.leaf))).toEqual([hex(pki.leaf)])
        // What the example did before (its first certificate as the leaf): the CA, refused.
        const [first, ...rest] = (yield* Pkcs12.parsePem(pemText)).certificates
        const before = yield* deploy({
          target: { ...target, certificateName: "api-before" },
          material: { leaf: first ?? new Uint8Array(), chain: rest, key: material.key },
          certificateId: "api-before-1",
        })
        expect(before._tag === "Rejected" ? before.problems : before._tag).toContainEqual(
          expect.objectContaining({
            field: "key",
            reason: "key_mismatch",
            message: expect.stringContaining("CN=Root"),
          }),
        )
        expect(vault.versions("api-before")).toEqual([])
      }).pipe(
        Effect.provide(
          Layer.mergeAll(
            InMemoryVault.layer.pipe(Layer.provideMerge(Pkcs12.layer)),
            RecordingMetrics.layer,
            InMemoryAuditLog.layer,
          ),
        ),
      ),
  )
})

describe("parsePem of a value that is neither text nor bytes", () => {
  it.effect("undefined, a number, null, an object: MaterialInvalid naming the input, no TypeError", () =>
    Effect.gen(function* () {
      for (const input of [undefined, 42, null, { pem: "x" }]) {
        const error = yield* parsePem(input as unknown as string).pipe(Effect.flip)
        expect(error).toBeInstanceOf(MaterialInvalid)
        expect(error.problems).toEqual([
          expect.objectContaining({
            field: "input",
            message: `is ${input === null ? "null" : typeof input}, not PEM text or DER bytes`,
            fix: expect.stringContaining("as a string"),
          }),
        ])
      }
    }),
  )
})

describe("a bundle of many certificates of one name", () => {
  it.effect(
    "50 certificates named CN=same, each naming CN=same as its issuer: refused as too many pairs to check, not thousands of signature checks",
    () =>
      Effect.gen(function* () {
        // Signed by a CN=same key none of them holds: every pair links by name, none by signature,
        // so each of the 2,450 pairs was a signature check (600 such certificates: 25 s).
        const key = yield* Effect.promise(() => generateKey("P-256"))
        const outside = yield* Effect.promise(() => generateKey("P-256"))
        const same = yield* Effect.promise(() =>
          Promise.all(
            Array.from({ length: 50 }, () =>
              issue({ subject: "CN=same", key, issuer: { name: "CN=same", key: outside }, ca: true }),
            ),
          ),
        )
        const refused = yield* Effect.flip(chooseLeaf(same))
        expect(refused.problems).toHaveLength(1)
        expect(refused.problems[0]?.field).toBe("certificates")
        expect(refused.problems[0]?.message).toContain(
          "holds 50 certificates whose names link too many pairs to check",
        )
        expect(refused.problems[0]?.fix).toContain("give the leaf with its own chain only")
        // A few of them are judged as before: none issued another, so each could be the leaf.
        const few = yield* Effect.flip(chooseLeaf(same.slice(0, 5)))
        expect(few.problems[0]?.message).toContain("holds 5 certificates that could each be the leaf")
      }),
    60_000,
  )
})
