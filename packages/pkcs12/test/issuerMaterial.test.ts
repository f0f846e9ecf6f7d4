/**
 * EC key files as OpenSSL writes them besides the usual form: a compressed public point
 * (`openssl ec -conv_form compressed`) and explicit curve parameters (`-param_enc explicit`). Each
 * is the same key as the leaf's (OpenSSL's own pair check, `openssl pkcs12 -export`, takes it),
 * so kvdeploy takes it too; a leaf certificate whose key is written with explicit curve parameters
 * is refused naming them. Keys reach OpenSSL through pipes only.
 */
import { generateKeyPairSync } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { beforeAll, describe, expect, it } from "vitest"
import { encodePfx, inspectMaterial, parsePem } from "../src/index.js"
import { generateKey, hex, issue, makeAuthorities, type TestAuthorities, toPem } from "./fixtures.js"
import { mustSucceed, opensslExport, opensslRead, run, shouldRun } from "./tools.js"

let authorities: TestAuthorities
beforeAll(async () => {
  authorities = await makeAuthorities()
}, 60_000)

/** `openssl ec` over a PEM key on stdin, with `args`: the key as OpenSSL rewrites it. */
const opensslEc = async (keyPem: string, args: ReadonlyArray<string>): Promise<string> =>
  mustSucceed("openssl ec", await run("openssl", ["ec", ...args], { input: keyPem })).stdout.toString("utf8")

describe.runIf(shouldRun("openssl"))("EC key files in the other forms OpenSSL writes", () => {
  const forms: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
    ["a compressed point (SEC1)", ["-conv_form", "compressed"]],
    ["explicit curve parameters (SEC1)", ["-param_enc", "explicit"]],
  ]
  for (const [name, args] of forms) {
    it(`a key with ${name} is the leaf's key: inspected as its pair, encoded, read back by OpenSSL`, async () => {
      const key = await generateKey("P-256")
      const [root, int1] = authorities.issuers
      if (root === undefined || int1 === undefined) throw new Error("fixtures")
      const leaf = await issue({ subject: "CN=issuer-form.example.test", key, issuer: int1, ca: false })
      const chain = [
        authorities.certificates[1] ?? new Uint8Array(),
        authorities.certificates[0] ?? new Uint8Array(),
      ]
      const rewritten = await opensslEc(toPem("PRIVATE KEY", key.pkcs8), args)
      expect(rewritten).toMatch(/BEGIN EC PRIVATE KEY/)
      // OpenSSL's own pair check: `openssl pkcs12 -export` refuses a key that is not the certificate's.
      await opensslExport(toPem("CERTIFICATE", leaf), rewritten, "pw", false)

      const parsed = await Effect.runPromise(parsePem(rewritten))
      if (parsed.key === undefined) throw new Error("no key parsed")
      const material = { leaf, chain, key: parsed.key }
      const inspected = await Effect.runPromise(inspectMaterial(material))
      expect(inspected.problems).toEqual([])
      expect(inspected.keyMatchesLeaf).toBe(true)
      expect(inspected.key).toEqual({ keyType: "EC", curve: "P-256" })
      const pfx = await Effect.runPromise(
        encodePfx(material, { encoding: "modern", password: Redacted.make("") }),
      )
      const read = await opensslRead(pfx, "", false)
      expect(read.leaf && hex(read.leaf)).toBe(hex(leaf))
      expect(read.chain.map(hex)).toEqual(chain.map(hex))

      // Another key written the same way is still another key.
      const other = await opensslEc(toPem("PRIVATE KEY", (await generateKey("P-256")).pkcs8), args)
      const otherKey = (await Effect.runPromise(parsePem(other))).key
      if (otherKey === undefined) throw new Error("no key parsed")
      const mismatched = await Effect.runPromise(inspectMaterial({ leaf, chain, key: otherKey }))
      expect(mismatched.keyMatchesLeaf).toBe(false)
    }, 60_000)
  }

  it("a leaf whose EC key is written with explicit curve parameters is refused naming them and the fix", async () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey
    const explicit = await opensslEc(ec.export({ type: "sec1", format: "pem" }).toString(), [
      "-param_enc",
      "explicit",
    ])
    // A self-signed certificate OpenSSL writes for that key: its SubjectPublicKeyInfo carries the parameters.
    const cert = mustSucceed(
      "openssl req -x509",
      await run(
        "bash",
        [
          "-c",
          "exec openssl req -x509 -new -key <(cat) -subj /CN=explicit.example.test -days 2 -outform DER",
        ],
        { input: explicit },
      ),
    ).stdout
    const key = (await Effect.runPromise(parsePem(explicit))).key
    if (key === undefined) throw new Error("no key parsed")
    const inspected = await Effect.runPromise(inspectMaterial({ leaf: new Uint8Array(cert), chain: [], key }))
    expect(inspected.keyMatchesLeaf).toBe(true)
    expect(inspected.problems).toEqual([
      {
        field: "leaf",
        message: expect.stringMatching(/explicit curve parameters/),
        fix: expect.stringMatching(/-param_enc named_curve/),
      },
    ])
    expect(JSON.stringify(inspected.problems)).not.toMatch(/BEGIN|PRIVATE/)
  }, 60_000)
})
