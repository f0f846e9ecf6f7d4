/**
 * A key whose public half is the leaf's but whose private half does not belong to it (a damaged
 * private scalar or exponents) is refused by inspect and encode, in its own words; a key OpenSSL
 * loads but cannot compare is refused the same way, as a typed problem, never a defect.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto"
import type { CertificateMaterial } from "@kvdeploy/core"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { beforeAll, describe, expect, it } from "vitest"
import { encodePfx, inspectMaterial, materialFromPem, parsePem } from "../src/index.js"
import { checkKeyPair, rsaKeyInconsistency } from "../src/privateKey.js"
import { generateKey, makeAuthorities, makeMaterial, type TestAuthorities, toPem } from "./fixtures.js"
import { mustSucceed, run, shouldRun } from "./tools.js"

let authorities: TestAuthorities
beforeAll(async () => {
  authorities = await makeAuthorities()
})

const password = Redacted.make("")

/** P-256 material whose PKCS#8 key has one bit of its private scalar flipped (the public point kept). */
const withFlippedScalar = (material: CertificateMaterial): CertificateMaterial => {
  const pkcs8 = Buffer.from(Redacted.value(material.key))
  // SEC1 ECPrivateKey inside the PKCS#8: version 1, then the 32-byte scalar.
  const at = pkcs8.indexOf(Buffer.from("0201010420", "hex"))
  expect(at).toBeGreaterThan(0)
  pkcs8[at + 5 + 31] = (pkcs8[at + 5 + 31] ?? 0) ^ 1
  return { ...material, key: Redacted.make(new Uint8Array(pkcs8)) }
}

const bigOf = (b64url: string | undefined): bigint =>
  BigInt(`0x${Buffer.from(b64url ?? "", "base64url").toString("hex")}`)

const jwkOf = (material: CertificateMaterial) =>
  createPrivateKey({ key: Buffer.from(Redacted.value(material.key)), format: "der", type: "pkcs8" }).export({
    format: "jwk",
  }) as Record<string, string | undefined>

/** A PKCS#1 RSAPrivateKey PEM of `jwk` with some of its numbers replaced. */
const rsaPem = (
  jwk: Record<string, string | undefined>,
  replace: Readonly<Record<string, bigint>>,
): string => {
  const fields = ["n", "e", "d", "p", "q", "dp", "dq", "qi"] as const
  const integer = (v: bigint) => {
    let h = v.toString(16)
    if (h.length % 2 === 1) h = `0${h}`
    if (Number.parseInt(h[0] ?? "0", 16) >= 8) h = `00${h}`
    return new asn1js.Integer({ valueHex: Buffer.from(h, "hex") })
  }
  const der = new asn1js.Sequence({
    value: [new asn1js.Integer({ value: 0 }), ...fields.map((f) => integer(replace[f] ?? bigOf(jwk[f])))],
  }).toBER()
  const body = Buffer.from(der)
    .toString("base64")
    .match(/.{1,64}/g)
    ?.join("\n")
  return `-----BEGIN RSA PRIVATE KEY-----\n${body}\n-----END RSA PRIVATE KEY-----\n`
}

describe("a damaged private key", () => {
  it("an EC key with a flipped scalar bit: inspect names it damaged, encode refuses it, a good key still passes after it", async () => {
    const material = await makeMaterial(await generateKey("P-256"), 2, authorities)
    const damaged = withFlippedScalar(material)
    const inspected = await Effect.runPromise(inspectMaterial(damaged))
    expect(inspected.keyMatchesLeaf).toBe(false)
    const keyProblems = inspected.problems.filter((p) => p.field === "key")
    expect(keyProblems).toHaveLength(1)
    expect(keyProblems[0]?.message).toContain("is damaged")
    expect(keyProblems[0]?.message).not.toContain("public keys differ")
    expect(keyProblems[0]?.fix).toContain("openssl pkey -check")
    const refused = await Effect.runPromise(Effect.flip(encodePfx(damaged, { encoding: "modern", password })))
    expect(refused.finding).toContain("the private key is damaged")
    // The check left nothing behind for the next key OpenSSL loads.
    const good = await Effect.runPromise(inspectMaterial(material))
    expect(good.keyMatchesLeaf).toBe(true)
    expect(good.problems).toEqual([])
  })

  it("an RSA key with a damaged private exponent and CRT exponent, read from PEM: damaged; one damaged number OpenSSL recovers from is still the pair", async () => {
    const material = await makeMaterial(await generateKey("RSA-2048"), 1, authorities)
    const leafPem = toPem("CERTIFICATE", material.leaf)
    const jwk = jwkOf(material)
    const inspectPem = async (keyPem: string) => {
      const parsed = await Effect.runPromise(parsePem(leafPem + keyPem))
      return Effect.runPromise(
        inspectMaterial({
          leaf: parsed.certificates[0] ?? new Uint8Array(),
          chain: [],
          key: parsed.key ?? Redacted.make(new Uint8Array()),
        }),
      )
    }
    const twice = await inspectPem(rsaPem(jwk, { d: bigOf(jwk.d) + 2n, dp: bigOf(jwk.dp) + 2n }))
    expect(twice.keyMatchesLeaf).toBe(false)
    expect(twice.problems.find((p) => p.field === "key")?.message).toContain("is damaged")
    // OpenSSL signs with the CRT numbers and falls back to the private exponent when the result does
    // not verify: a key with only its exponent damaged still makes good signatures, but
    // `openssl pkey -check` calls it invalid and Python's cryptography refuses it (and the PFX made
    // of it). Its numbers are checked against each other, and the wrong one named.
    const once = await inspectPem(rsaPem(jwk, { d: bigOf(jwk.d) + 2n }))
    expect(once.keyMatchesLeaf).toBe(false)
    expect(once.problems.find((p) => p.field === "key")?.message).toContain("private exponent (d)")
  })

  it("an RSA key with one wrong number (d, dp, dq or qi; n and e intact): refused by inspect and encode, naming the number, showing no key material", async () => {
    const material = await makeMaterial(await generateKey("RSA-2048"), 1, authorities)
    const leafPem = toPem("CERTIFICATE", material.leaf)
    const jwk = jwkOf(material)
    const cases = [
      ["d", "private exponent (d)"],
      ["dp", "dp is not d mod (p-1)"],
      ["dq", "dq is not d mod (q-1)"],
      ["qi", "qi is not the inverse of q mod p"],
    ] as const
    for (const [field, words] of cases) {
      const parsed = await Effect.runPromise(
        parsePem(leafPem + rsaPem(jwk, { [field]: bigOf(jwk[field]) ^ 0x10n })),
      )
      const damaged: CertificateMaterial = {
        leaf: parsed.certificates[0] ?? new Uint8Array(),
        chain: [],
        key: parsed.key ?? Redacted.make(new Uint8Array()),
      }
      const inspected = await Effect.runPromise(inspectMaterial(damaged))
      expect(inspected.keyMatchesLeaf, field).toBe(false)
      const problem = inspected.problems.find((p) => p.field === "key")
      expect(problem?.message, field).toContain(words)
      expect(problem?.fix, field).toContain("re-export it")
      const refused = await Effect.runPromise(
        Effect.flip(encodePfx(damaged, { encoding: "modern", password })),
      )
      expect(refused.finding, field).toContain(words)
      // No number of the key in the words: the hex or base64url of any of them.
      const said = JSON.stringify([problem, refused.finding, refused.fix])
      for (const name of ["n", "d", "p", "q", "dp", "dq", "qi"]) {
        const value = bigOf(jwk[name])
        expect(said).not.toContain(value.toString(16).slice(0, 16))
        expect(said).not.toContain((jwk[name] ?? "").slice(0, 16))
      }
    }
    // The intact key still passes.
    const good = await Effect.runPromise(inspectMaterial(material))
    expect(good.keyMatchesLeaf).toBe(true)
    expect(good.problems).toEqual([])
  })

  it.runIf(shouldRun("openssl"))(
    "a multi-prime RSA key (node exports two of its primes): refused, named multi-prime, not taken as the pair",
    async () => {
      const made = mustSucceed(
        "openssl genpkey (3 primes)",
        await run("openssl", [
          "genpkey",
          "-algorithm",
          "RSA",
          "-pkeyopt",
          "rsa_keygen_bits:2048",
          "-pkeyopt",
          "rsa_keygen_primes:3",
        ]),
      )
      const key = createPrivateKey(made.stdout)
      expect(rsaKeyInconsistency(key)).toBe("multi-prime")
      expect(checkKeyPair(key, createPublicKey(key), createPublicKey(key))).toBe("damaged")
      // Its certificate and key inspected: refused as a kind kvdeploy does not take, not as damaged
      // (openssl pkey -check takes the key).
      const cert = mustSucceed(
        "openssl req -x509 (3-prime key)",
        await run(
          "bash",
          ["-c", "exec openssl req -x509 -key <(cat <&3) -subj /CN=mp.example.test -days 2"],
          {
            fd3: made.stdout,
          },
        ),
      )
      const inspected = await Effect.runPromise(
        parsePem(`${cert.stdout}${made.stdout}`).pipe(
          Effect.flatMap(materialFromPem),
          Effect.flatMap(inspectMaterial),
        ),
      )
      const said = inspected.problems.find((p) => p.field === "key")
      expect(said?.message).toMatch(/^is an RSA key of more than two primes \(multi-prime\)/)
      expect(said?.message).not.toMatch(/damaged|pkey -check/)
      expect(said?.fix).toContain("two-prime RSA key")
      const two = generateKeyPairSync("rsa", { modulusLength: 2048 })
      expect(rsaKeyInconsistency(two.privateKey)).toBeUndefined()
    },
  )

  it("checkKeyPair: the pair, another key of the same type, another type", () => {
    const a = generateKeyPairSync("ec", { namedCurve: "P-256" })
    const b = generateKeyPairSync("ec", { namedCurve: "P-256" })
    const r = generateKeyPairSync("rsa", { modulusLength: 2048 })
    expect(checkKeyPair(a.privateKey, createPublicKey(a.privateKey), a.publicKey)).toBe("match")
    expect(checkKeyPair(a.privateKey, createPublicKey(a.privateKey), b.publicKey)).toBe("mismatch")
    expect(checkKeyPair(a.privateKey, createPublicKey(a.privateKey), r.publicKey)).toBe("mismatch")
    expect(checkKeyPair(r.privateKey, createPublicKey(r.privateKey), r.publicKey)).toBe("match")
  })

  it("an RSA key whose modulus is broken (OpenSSL loads it but cannot compare it): a typed mismatch, not a defect, and the next key loads", async () => {
    const material = await makeMaterial(await generateKey("RSA-2048"), 1, authorities)
    const ownJwk = jwkOf(material)
    const parsed = await Effect.runPromise(
      parsePem(toPem("CERTIFICATE", material.leaf) + rsaPem(ownJwk, { n: 5n })),
    )
    const broken: CertificateMaterial = {
      leaf: parsed.certificates[0] ?? new Uint8Array(),
      chain: [],
      key: parsed.key ?? Redacted.make(new Uint8Array()),
    }
    const inspected = await Effect.runPromise(inspectMaterial(broken))
    expect(inspected.keyMatchesLeaf).toBe(false)
    // Its public half (a 3-bit modulus) is not the leaf's: said as such.
    expect(inspected.problems.some((p) => p.field === "key" && p.message.includes("does not match"))).toBe(
      true,
    )
    const encoded = await Effect.runPromiseExit(encodePfx(broken, { encoding: "modern", password }))
    expect(encoded._tag).toBe("Failure")
    if (encoded._tag === "Failure") expect(JSON.stringify(encoded.cause)).not.toContain("Die")
    // Nothing was left on OpenSSL's error queue for the next, unrelated key load to find.
    expect(() =>
      createPrivateKey({ key: Buffer.from(Redacted.value(material.key)), format: "der", type: "pkcs8" }),
    ).not.toThrow()
    expect((await Effect.runPromise(inspectMaterial(material))).keyMatchesLeaf).toBe(true)
  })
})

describe("a key file whose stated public half is another key's", () => {
  it("is refused as not the leaf's key, though its private half signs for the leaf (OpenSSL compares the stated half)", async () => {
    const material = await makeMaterial(await generateKey("P-256"), 1, authorities)
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" })
    // The PKCS#8 of a P-256 key ends with its public point (65 bytes, uncompressed): put another key's there.
    const pkcs8 = Buffer.from(Redacted.value(material.key))
    const ownPoint = Buffer.from(
      createPublicKey(createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" }))
        .export({ format: "der", type: "spki" })
        .subarray(-65),
    )
    expect(pkcs8.subarray(-65).equals(ownPoint)).toBe(true)
    other.publicKey
      .export({ format: "der", type: "spki" })
      .subarray(-65)
      .copy(pkcs8, pkcs8.length - 65)
    const stated = { ...material, key: Redacted.make(new Uint8Array(pkcs8)) }
    const inspected = await Effect.runPromise(inspectMaterial(stated))
    expect(inspected.keyMatchesLeaf).toBe(false)
    expect(inspected.problems.find((p) => p.field === "key")?.message).toMatch(
      /does not match the leaf certificate/,
    )
    const refused = await Effect.runPromise(Effect.flip(encodePfx(stated, { encoding: "modern", password })))
    expect(refused.finding).toMatch(/does not match|refusing to build/)
  })
})
