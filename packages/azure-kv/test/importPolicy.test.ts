/**
 * The import body with the policy written into it (`withImportPolicy`): the
 * SDK's body, parsed, plus `policy` and `attributes`, whatever the tags hold;
 * members the body already has are replaced, never duplicated.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { importPolicyFor, withImportPolicy } from "../src/importPolicy.js"

const policy = importPolicyFor({ keyType: "EC", curve: "P-256" }, true)
const encoded = Buffer.from(JSON.stringify(policy)).toString("base64url")

/** Each key of the raw JSON text, at any depth, as often as it occurs. */
const keyCount = (json: string, key: string): number => json.split(`${JSON.stringify(key)}:`).length - 1

describe("withImportPolicy", () => {
  it("adds policy and attributes to the SDK's body for any tags (keys and values of any characters)", () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ maxLength: 12 }), fc.string({ maxLength: 40 }), { maxKeys: 15 }),
        fc.base64String({ minLength: 4, maxLength: 400 }),
        fc.option(fc.boolean(), { nil: undefined }),
        (tags, value, preserveCertOrder) => {
          const sdkBody = {
            value,
            pwd: "",
            tags,
            ...(preserveCertOrder === undefined ? {} : { preserveCertOrder }),
          }
          const body = JSON.stringify(sdkBody)
          const sent = withImportPolicy(body, encoded)
          expect(JSON.parse(sent)).toEqual({ ...sdkBody, policy, attributes: { enabled: true } })
          // Read from the raw text (a parsed object cannot show a duplicate key): each key occurs
          // as often as in the SDK's body plus the added members, so none is written twice.
          const added = JSON.stringify({ policy, attributes: { enabled: true } })
          for (const key of ["policy", "attributes"])
            expect(keyCount(sent, key)).toBe(keyCount(body, key) + keyCount(added, key))
        },
      ),
      { numRuns: 300 },
    )
  })

  it("writes the two members in front without re-serialising the rest of the body", () => {
    const body = JSON.stringify({ value: "TUlJ", pwd: "", tags: { env: "prod" } })
    const sent = withImportPolicy(body, encoded)
    expect(sent.endsWith(body.slice(1))).toBe(true)
    expect(keyCount(sent, "policy")).toBe(1)
    expect(withImportPolicy("{}", encoded)).toBe(
      `{"policy":${JSON.stringify(policy)},"attributes":{"enabled":true}}`,
    )
  })

  it("replaces a policy or attributes the body already carries (a fixed SDK), and keeps a tag named policy", () => {
    const body = JSON.stringify({
      value: "TUlJ",
      policy: { key_props: { exportable: false } },
      attributes: { enabled: false },
      tags: { policy: "x", attributes: "y" },
    })
    const sent = JSON.parse(withImportPolicy(body, encoded)) as Record<string, unknown>
    expect(sent.policy).toEqual(policy)
    expect(sent.attributes).toEqual({ enabled: true })
    expect(sent.tags).toEqual({ policy: "x", attributes: "y" })
    const tagOnly = JSON.stringify({ value: "TUlJ", tags: { policy: "x" } })
    const sentTagOnly = withImportPolicy(tagOnly, encoded)
    expect(JSON.parse(sentTagOnly)).toEqual({ ...JSON.parse(tagOnly), policy, attributes: { enabled: true } })
    expect(keyCount(sentTagOnly, "policy")).toBe(2)
  })
})
