/**
 * Hostile input to the import endpoint and the policy parser: whatever arrives,
 * the answer is a Key Vault error (4xx with {error:{code,message}}), never a 500,
 * a hang or a stored version.
 */
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, start } from "../src/index.js"
import { errorOf, makeMaterial, raw, type TestMaterial } from "./support.js"

let emulator: Emulator
let token: string
let m: TestMaterial

beforeAll(async () => {
  emulator = await start({ vaults: ["hostile"], throttling: false })
  token = emulator.issueToken(emulator.clientSecret.clientId)
  m = await makeMaterial()
})
afterAll(() => emulator?.stop())

const pemBlock = (label: string, body: string) =>
  `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`

const hostileValue = () =>
  fc.oneof(
    fc.string(),
    fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b).toString("base64")),
    fc.base64String({ maxLength: 512 }).map((b) => pemBlock("CERTIFICATE", b)),
    fc.base64String({ maxLength: 512 }).map((b) => pemBlock("PRIVATE KEY", b) + pemBlock("CERTIFICATE", b)),
    fc
      .uint8Array({ maxLength: 64 })
      .map((b) => m.keyPem + pemBlock("CERTIFICATE", Buffer.from(b).toString("base64"))),
    fc.nat({ max: 300 }).map((n) => m.keyPem + m.leafPem.slice(0, n)),
    fc.constantFrom(m.leafPem + m.keyPem.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY")),
  )

const hostileBody = () =>
  fc.oneof(
    hostileValue().map((value) => ({ value })),
    fc.record(
      {
        value: fc.anything(),
        pwd: fc.anything(),
        policy: fc.anything(),
        tags: fc.anything(),
        attributes: fc.anything(),
      },
      { requiredKeys: [] },
    ),
    fc.anything(),
  )

describe("hostile imports", () => {
  it("always answer a Key Vault 4xx error and store nothing", async () => {
    await fc.assert(
      fc.asyncProperty(hostileBody(), async (body) => {
        const r = await raw(
          emulator,
          "hostile",
          "POST",
          "/certificates/target/import?api-version=2025-07-01",
          { token, body },
        )
        expect(r.status).toBeGreaterThanOrEqual(400)
        expect(r.status).toBeLessThan(500)
        expect(typeof errorOf(r.json).code).toBe("string")
        expect(typeof errorOf(r.json).message).toBe("string")
      }),
      { numRuns: 150 },
    )
    expect(emulator.state.versions("hostile", "target")).toBeUndefined()
  })

  it("policy updates with arbitrary JSON answer 200 or a 400 BadParameter, never a 500", async () => {
    const ok = await raw(
      emulator,
      "hostile",
      "POST",
      "/certificates/policy-target/import?api-version=2025-07-01",
      {
        token,
        body: { value: m.keyPem + m.leafPem + m.chainPem },
      },
    )
    expect(ok.status).toBe(200)
    await fc.assert(
      fc.asyncProperty(fc.anything(), async (policy) => {
        const r = await raw(
          emulator,
          "hostile",
          "PATCH",
          "/certificates/policy-target/policy?api-version=2025-07-01",
          { token, body: policy },
        )
        expect([200, 400]).toContain(r.status)
        if (r.status === 400) expect(errorOf(r.json).code).toBe("BadParameter")
      }),
      { numRuns: 100 },
    )
    const after = await raw(
      emulator,
      "hostile",
      "GET",
      "/certificates/policy-target/?api-version=2025-07-01",
      { token },
    )
    expect(after.status).toBe(200)
  })
})
