/**
 * The tag helpers every deploy runs (reserved keys, the operator tags without them, "are
 * kvdeploy's tags in place"), against their plain definitions over random tag sets.
 */
import { generateKeyPairSync } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { hasTags, isReservedTagKey, RESERVED_TAG_KEYS, tagProblems, withoutReserved } from "../src/index.js"

const reservedByDefinition = (key: string) => RESERVED_TAG_KEYS.includes(key.toLowerCase())
/** By definition: each entry that is not reserved, assigned in order (as JSON-parsed tags are copied). */
const withoutReservedByDefinition = (tags: Readonly<Record<string, string>>) => {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(tags)) if (!reservedByDefinition(k)) out[k] = v
  return out
}

/** Keys near the reserved ones (case changes, one character more or less, Unicode case folds) and random ones. */
const arbKey = fc.oneof(
  fc.constantFrom(...RESERVED_TAG_KEYS),
  fc.constantFrom(...RESERVED_TAG_KEYS).map((k) => k.toUpperCase()),
  fc
    .constantFrom(...RESERVED_TAG_KEYS)
    .chain((k) =>
      fc
        .tuple(fc.nat({ max: k.length }), fc.constantFrom("", "x", "İ", "K", "ı", "-"))
        .map(([at, c]) => k.slice(0, at) + c + k.slice(at + (c === "" ? 1 : 0))),
    ),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "binary", maxLength: 24 }),
)
const arbTags = fc.dictionary(arbKey, fc.string({ maxLength: 8 }), { maxKeys: 8 })

describe("tags", () => {
  it("isReservedTagKey: a reserved key in any case, nothing else", () => {
    for (const k of RESERVED_TAG_KEYS) {
      expect(isReservedTagKey(k)).toBe(true)
      expect(isReservedTagKey(k.toUpperCase())).toBe(true)
    }
    expect(isReservedTagKey("certctl-managed-by-x")).toBe(false)
    expect(isReservedTagKey("İcertctl-managed-by")).toBe(false)
    fc.assert(
      fc.property(arbKey, (k) => {
        expect(isReservedTagKey(k), JSON.stringify(k)).toBe(reservedByDefinition(k))
      }),
      { numRuns: 5000 },
    )
  })

  it("withoutReserved keeps every other tag, in order; hasTags is 'every expected tag has its value'", () => {
    fc.assert(
      fc.property(arbTags, arbTags, (actual, expected) => {
        expect(Object.entries(withoutReserved(actual))).toEqual(
          Object.entries(withoutReservedByDefinition(actual)),
        )
        expect(hasTags(actual, expected)).toBe(Object.entries(expected).every(([k, v]) => actual[k] === v))
        expect(hasTags({ ...actual, ...expected }, expected)).toBe(true)
      }),
      { numRuns: 2000 },
    )
  })
})

describe("tags that would show a secret", () => {
  it("refuses a tag key holding a key's base64 (alone or after a word), and never names it in the field", () => {
    const b64 = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ format: "der", type: "pkcs8" })
      .toString("base64")
    for (const key of [b64, `note:${b64}`, `${b64.slice(0, 120)}`]) {
      const problems = tagProblems({ [key]: "x" })
      expect(problems.map((p) => p.message)).toContainEqual(expect.stringContaining("is not a tag key"))
      expect(problems.every((p) => p.field.startsWith("tags.(a key of "))).toBe(true)
      expect(JSON.stringify(problems)).not.toContain(b64.slice(40, 80))
    }
  })

  it("refuses a tag key naming a secret, and a value holding a key's base64, without showing it", () => {
    const der = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
      format: "der",
      type: "pkcs8",
    })
    const problems = tagProblems({ db_password: "x", note: der.toString("base64") })
    expect(problems.map((p) => p.field)).toEqual(["tags.db_password", "tags.note"])
    expect(problems[0]?.message).toMatch(/names a secret/)
    expect(JSON.stringify(problems)).not.toContain(der.toString("base64").slice(40, 80))
    expect(tagProblems({ env: "production", owner: "team-payments" })).toEqual([])
    // Only a key whose last word names a secret: these describe one, they hold none.
    expect(tagProblems({ "secret-rotation-date": "2027-01-01", "password-policy": "v2" })).toEqual([])
    // __proto__ would be lost as an object key on its way to the vault: refused, saying why.
    const proto = JSON.parse('{"__proto__": "x"}') as Record<string, string>
    expect(tagProblems(proto).map((p) => p.message)).toEqual([
      "is a key JavaScript objects reserve; kvdeploy cannot carry it as a tag",
    ])
    expect(tagProblems({ "client-secret": "x", Password: "y" }).map((p) => p.field)).toEqual([
      "tags.client-secret",
      "tags.Password",
    ])
    // camelCase words, and the other names of secrets: a token, a pwd, an API or private key.
    const named = [
      "dbPassword",
      "api_token",
      "db_pwd",
      "api_key",
      "apiKey",
      "storage.AccountKey",
      "PRIVATE_KEY",
      "DBPassword",
      "APIToken",
      "AWSSecretKey",
    ]
    expect(tagProblems(Object.fromEntries(named.map((k) => [k, "x"]))).map((p) => p.field)).toEqual(
      named.map((k) => `tags.${k}`),
    )
    // ...and words that only describe one, or a key that is no secret.
    expect(
      tagProblems({
        "token-expiry": "x",
        "password-policy": "x",
        "cost-key": "x",
        keyVault: "x",
        monkey: "x",
      }),
    ).toEqual([])
  })
})

describe("tags with spaces around a key or value", () => {
  it("refuses them, naming the key and its fix; spaces inside are fine", () => {
    const tags = { "env ": " prod", owner: "team payments", "   ": "x", note: "two words " }
    const valueFix = "write it without them"
    const spacedValue =
      "tag value has spaces at its start or end, which would be part of the value as sent (it is not shown here)"
    // From a file, an agent's configuration or a library caller: the plain fix.
    expect(tagProblems(tags).map((p) => [p.field, p.message, p.fix])).toEqual([
      [
        "tags.env ",
        'tag key "env " has spaces at its start or end, which would be part of the key as sent',
        'write it without them: "env"',
      ],
      ["tags.env ", spacedValue, valueFix],
      ["tags.   ", "tag key is only spaces", "use a short name such as env or owner"],
      ["tags.note", spacedValue, valueFix],
    ])
    // The keys a --tag flag gave: the fix names the flag's form.
    expect(tagProblems(tags, "tags", new Set(["env "])).map((p) => p.fix)).toEqual([
      'write it without them: "env" (with --tag, no spaces around =)',
      "write it without them (with --tag, no spaces around =)",
      "use a short name such as env or owner",
      valueFix,
    ])
    expect(tagProblems({ env: "prod", "cost center": "team payments" })).toEqual([])
  })
})
