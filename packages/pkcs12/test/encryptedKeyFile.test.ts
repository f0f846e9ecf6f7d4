/**
 * An encrypted PEM key file (ENCRYPTED PRIVATE KEY) is checked before OpenSSL decrypts it: PBKDF2
 * iterations by the PFX's rule, scrypt's N*r*p bounded (OpenSSL bounds neither, and its synchronous
 * run cannot be stopped by a signal). A wrong passphrase names the variable it came from; a legacy
 * cipher Node's OpenSSL lacks is named.
 */
import { createPrivateKey, generateKeyPairSync } from "node:crypto"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { describe, expect, it } from "vitest"
import { maxIterations } from "../src/algorithms.js"

/** The documented scrypt bound (README: N*r*p at most 1,048,576). */
const maxScryptCost = 1_048_576

import { parsePem } from "../src/index.js"
import { scryptKeyOverOpensslMemory } from "../src/testing/index.js"
import { mustSucceed, run, shouldRun } from "./tools.js"

const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" })
const plainPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString()

/** Node's PBES2 export (PBKDF2-SHA256, AES-256-CBC, 2048 iterations) with its iteration count rewritten by asn1js. */
const withIterations = async (iterations: number): Promise<string> => {
  const der = privateKey.export({ type: "pkcs8", format: "der", cipher: "aes-256-cbc", passphrase: "pw" })
  const info = asn1js.fromBER(new Uint8Array(der)).result as asn1js.Sequence
  const algorithm = info.valueBlock.value[0] as asn1js.Sequence
  const pbes2 = algorithm.valueBlock.value[1] as asn1js.Sequence
  const kdf = pbes2.valueBlock.value[0] as asn1js.Sequence
  const pbkdf2 = kdf.valueBlock.value[1] as asn1js.Sequence
  expect((pbkdf2.valueBlock.value[1] as asn1js.Integer).valueBlock.valueDec).toBe(2048)
  pbkdf2.valueBlock.value[1] = new asn1js.Integer({ value: iterations })
  const body = Buffer.from(info.toBER()).toString("base64")
  return `-----BEGIN ENCRYPTED PRIVATE KEY-----\n${body}\n-----END ENCRYPTED PRIVATE KEY-----\n`
}

const refusal = async (pem: string, passphrase = "pw") => {
  const result = await Effect.runPromise(
    Effect.result(parsePem(pem, { passphrase: Redacted.make(passphrase) })),
  )
  expect(result._tag).toBe("Failure")
  const problems = result._tag === "Failure" ? result.failure.problems : []
  expect(problems).toHaveLength(1)
  return problems[0] ?? { field: "", message: "", fix: "" }
}

describe("an encrypted key file's KDF cost", () => {
  it("PBKDF2 over the PFX's limit is refused with the right passphrase (so before any decryption), naming the count and the fix", async () => {
    const problem = await refusal(await withIterations(3_000_000))
    expect(problem.field).toBe("block 1 (ENCRYPTED PRIVATE KEY)")
    expect(problem.message).toContain(`the iteration count 3000000 exceeds the limit of ${maxIterations}`)
    expect(problem.fix).toContain("openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 600000")
    // 2^31 iterations: minutes in OpenSSL; refused at once.
    expect((await refusal(await withIterations(2 ** 31))).message).toContain("exceeds the limit")
  })

  it("PBKDF2 at Node's default decrypts; at the limit it is handed to OpenSSL (the rewritten count derives another key: the passphrase is then wrong, not the cost)", async () => {
    const pem = privateKey
      .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pw" })
      .toString()
    const parsed = await Effect.runPromise(parsePem(pem, { passphrase: Redacted.make("pw") }))
    expect(parsed.key).toBeDefined()
    const atLimit = await refusal(await withIterations(maxIterations))
    expect(atLimit.message).toMatch(/passphrase is wrong/)
  }, 30_000)

  it.runIf(shouldRun("openssl"))(
    "scrypt with N*r*p over the limit is refused naming the cost; OpenSSL's default scrypt key reads",
    async () => {
      const scrypt = async (p: number) =>
        mustSucceed(
          "openssl pkcs8 -scrypt",
          await run(
            "openssl",
            [
              "pkcs8",
              "-topk8",
              "-scrypt",
              "-scrypt_N",
              "16384",
              "-scrypt_r",
              "8",
              "-scrypt_p",
              String(p),
              "-passout",
              "pass:pw",
            ],
            { input: plainPem },
          ),
        ).stdout.toString()
      expect(16384 * 8 * 16).toBeGreaterThan(maxScryptCost)
      const problem = await refusal(await scrypt(16))
      expect(problem.message).toContain(
        `the scrypt cost N*r*p (N 16384, r 8, p 16) exceeds the limit of ${maxScryptCost}`,
      )
      expect(problem.fix).toContain("-iter 600000")
      expect(problem.fix).toMatch(/^re-encrypt the key with a cost OpenSSL's defaults use: openssl pkcs8 /)
      // r 32 in place of 8: 128*N*r is 64 MiB, over the 32 MiB OpenSSL allows, so an openssl
      // command that reads the key cannot be the fix.
      const beyond = await refusal(scryptKeyOverOpensslMemory(await scrypt(16)))
      expect(beyond.message).toContain("the scrypt cost N*r*p (N 16384, r 32, p 16) exceeds the limit")
      expect(beyond.fix).toMatch(
        /^OpenSSL cannot decrypt it either \(scrypt needs 128\*N\*r bytes, 64 MiB here, over OpenSSL's 32 MiB\): decrypt it with the tool that encrypted it/,
      )
      const parsed = await Effect.runPromise(parsePem(await scrypt(1), { passphrase: Redacted.make("pw") }))
      expect(parsed.key).toBeDefined()
    },
    30_000,
  )
})

describe("an encrypted key file that does not decrypt", () => {
  it("a wrong passphrase: the fix names no front end's flag (a library caller gave it; the CLI adds where it read it)", async () => {
    const pem = privateKey
      .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "right" })
      .toString()
    const problem = await refusal(pem, "wrong")
    expect(problem.message).toBe("the private key could not be decrypted: the passphrase is wrong")
    expect(problem.fix).toBe("check the passphrase: it must be the one the key was encrypted with")
    expect(problem.fix).not.toMatch(/--|variable/)
  })

  for (const cipher of ["PBE-SHA1-RC2-40", "PBE-MD5-DES", "PBE-SHA1-RC4-128"]) {
    it.runIf(shouldRun("openssl"))(
      `a key encrypted with ${cipher} (legacy): the cipher is named, with the fix`,
      async () => {
        const pem = mustSucceed(
          `openssl pkcs8 -v1 ${cipher}`,
          await run(
            "openssl",
            [
              "pkcs8",
              "-topk8",
              "-v1",
              cipher,
              "-provider",
              "legacy",
              "-provider",
              "default",
              "-passout",
              "pass:pw",
            ],
            { input: plainPem },
          ),
        ).stdout.toString()
        const problem = await refusal(pem)
        expect(problem.message).toContain(
          `encrypted with ${cipher}, a legacy encryption kvdeploy does not read`,
        )
        expect(problem.fix).toContain("-provider legacy")
        expect(createPrivateKey(plainPem).asymmetricKeyType).toBe("ec")
      },
    )
  }
})
