/**
 * decodePfx's OpenSSL MAC check (src/nativeMac.ts): used for a well-formed
 * PFX from `nativeMacMinIterations` MAC iterations on, called only after the JS
 * decoder has read every bag under its limits, and never changing an answer:
 * the same material, and the same errors as the JS-only path (the check
 * switched off through the test hook), in today's precedence.
 */
import { createHmac } from "node:crypto"
import type { CertificateMaterial } from "@kvdeploy/core"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as pkijs from "pkijs"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { oid } from "../src/algorithms.js"
import { decodePfx, encodePfx } from "../src/index.js"
import {
  type NativeMacCheck,
  nativeMacMinIterations,
  opensslAcceptsPfx,
  setNativeMacCheck,
} from "../src/nativeMac.js"
import { secretKey } from "../src/nodeCrypto.js"
import { encryptPbes2 } from "../src/passwordEncryption.js"
import {
  algorithm,
  attribute,
  certBag,
  contentInfo,
  der,
  encryptedData,
  integer,
  nullParametersAlgorithm,
  octets,
  pfx as pfxBlock,
  safeBag,
  sequence,
  shroudedKeyBag,
} from "../src/pfxStructure.js"
import { bmpPassword, KdfPurpose, pkcs12Kdf } from "../src/pkcs12Kdf.js"
import { canonicalPkcs8, generateKey, hex, makeAuthorities, makeMaterial } from "./fixtures.js"

const PASSWORD = "native-Pw"
const ITERATIONS = 2048
let material: CertificateMaterial
let modern: Uint8Array

/** Every call of the native check, with OpenSSL's verdict. */
let calls: Array<boolean> = []
const counting: NativeMacCheck = (pfx, password) => {
  const accepted = opensslAcceptsPfx(pfx, password)
  calls.push(accepted)
  return accepted
}

beforeAll(async () => {
  expect(ITERATIONS).toBeGreaterThanOrEqual(nativeMacMinIterations)
  material = await makeMaterial(await generateKey("P-256"), 3, await makeAuthorities())
  modern = await Effect.runPromise(
    encodePfx(material, { encoding: "modern", password: Redacted.make(PASSWORD), iterations: ITERATIONS }),
  )
})

afterEach(() => {
  setNativeMacCheck(opensslAcceptsPfx)
  calls = []
})

const decode = (bytes: Uint8Array, password = PASSWORD) =>
  Effect.runPromise(Effect.result(decodePfx(bytes, Redacted.make(password))))

/** Decode with the counting check, and again with the check off (the JS-only path). */
const bothWays = async (bytes: Uint8Array, password = PASSWORD) => {
  setNativeMacCheck(counting)
  const withNative = await decode(bytes, password)
  setNativeMacCheck(undefined)
  const jsOnly = await decode(bytes, password)
  setNativeMacCheck(counting)
  return { withNative, jsOnly }
}

const failureOf = (r: Awaited<ReturnType<typeof decode>>) =>
  r._tag === "Failure" ? { reason: r.failure.reason, detail: r.failure.detail } : "decoded"

const expectMaterial = (r: Awaited<ReturnType<typeof decode>>) => {
  if (r._tag !== "Success") throw new Error(`decode failed: ${r.failure.detail}`)
  expect(hex(r.success.leaf)).toBe(hex(material.leaf))
  expect(r.success.chain.map(hex)).toEqual(material.chain.map(hex))
  expect(hex(Redacted.value(r.success.key))).toBe(hex(canonicalPkcs8(Redacted.value(material.key))))
}

const WRONG_PASSWORD_DETAIL =
  "the PFX's integrity check failed: the password is wrong, or the file was altered; check the password (openssl pkcs12 -info -noout -in file.pfx)"

describe("decodePfx with OpenSSL's MAC check", () => {
  it("uses it for a well-formed 2048-iteration PFX, and decodes the same material as without it", async () => {
    const { withNative, jsOnly } = await bothWays(modern)
    expect(calls).toEqual([true])
    expectMaterial(withNative)
    expectMaterial(jsOnly)
    if (withNative._tag === "Success" && jsOnly._tag === "Success") {
      expect(hex(withNative.success.leaf)).toBe(hex(jsOnly.success.leaf))
      expect(withNative.success.chain.map(hex)).toEqual(jsOnly.success.chain.map(hex))
      expect(hex(Redacted.value(withNative.success.key))).toBe(hex(Redacted.value(jsOnly.success.key)))
    }
  })

  it("uses it for the empty password and a non-BMP one (UTF-8 to OpenSSL, surrogate pairs in the MAC)", async () => {
    for (const password of ["", "pä🔑ss"]) {
      const bytes = await Effect.runPromise(
        encodePfx(material, {
          encoding: "modern",
          password: Redacted.make(password),
          iterations: ITERATIONS,
        }),
      )
      calls = []
      const { withNative } = await bothWays(bytes, password)
      expect(calls).toEqual([true])
      expectMaterial(withNative)
    }
  })

  it("a tampered MAC byte is refused with today's error: OpenSSL refuses it, the JS MAC answers", async () => {
    const parsed = Buffer.from(modern)
    // The MAC value: HMAC-SHA-256 over the authenticated safe, recomputed here to find it in the file.
    const digestAt = parsed.indexOf(Buffer.from(macOf(modern)))
    expect(digestAt).toBeGreaterThan(0)
    const tampered = Uint8Array.from(modern)
    tampered[digestAt + 5] = (tampered[digestAt + 5] ?? 0) ^ 0x01
    const { withNative, jsOnly } = await bothWays(tampered)
    expect(failureOf(withNative)).toEqual({ reason: "wrong-password", detail: WRONG_PASSWORD_DETAIL })
    expect(failureOf(withNative)).toEqual(failureOf(jsOnly))
    expect(calls).toEqual([false])
  })

  it("a wrong password gives today's error text", async () => {
    const { withNative, jsOnly } = await bothWays(modern, "not-the-password")
    expect(failureOf(withNative)).toEqual({ reason: "wrong-password", detail: WRONG_PASSWORD_DETAIL })
    expect(failureOf(withNative)).toEqual(failureOf(jsOnly))
    expect(calls).not.toContain(true)
  })

  it("a legacy 2048-iteration PFX (RC2-40 certificates) still decodes: OpenSSL 3 refuses RC2, the JS MAC answers", async () => {
    const legacy = await Effect.runPromise(
      encodePfx(material, {
        encoding: "legacy",
        password: Redacted.make(PASSWORD),
        iterations: ITERATIONS,
        legacyCertificateCipher: "rc2-40",
      }),
    )
    const { withNative, jsOnly } = await bothWays(legacy)
    expectMaterial(withNative)
    expectMaterial(jsOnly)
    expect(calls).toEqual([false])
  })

  it("a shrouded key with an over-limit iteration count hidden in an EncryptedData is refused before OpenSSL sees it", async () => {
    const hostile = hiddenOverLimitKey(5_000_000)
    const { withNative, jsOnly } = await bothWays(hostile)
    const failure = failureOf(withNative)
    expect(failure).toEqual(failureOf(jsOnly))
    expect(failure === "decoded" ? "decoded" : failure.reason).toBe("unsupported")
    expect(failure === "decoded" ? "" : failure.detail).toMatch(
      /^the private key could not be decrypted: the iteration count 5000000 exceeds the limit/,
    )
    // OpenSSL, which has no limit, would have run the 5,000,000 iterations: it was never called.
    expect(calls).toEqual([])
  })

  it("is not used below the threshold, nor for a password OpenSSL would receive altered", async () => {
    const few = await Effect.runPromise(
      encodePfx(material, {
        encoding: "modern",
        password: Redacted.make(PASSWORD),
        iterations: nativeMacMinIterations - 1,
      }),
    )
    setNativeMacCheck(counting)
    expectMaterial(await decode(few))
    // Node gives OpenSSL UTF-8, where a lone surrogate becomes U+FFFD: the PFX of
    // "lone\uFFFDhalf" decrypts with "lone\uD800half" (same UTF-8), but its MAC
    // (BMPString) does not verify, and must not pass through OpenSSL's.
    const replaced = await Effect.runPromise(
      encodePfx(material, {
        encoding: "modern",
        password: Redacted.make("lone\uFFFDhalf"),
        iterations: ITERATIONS,
      }),
    )
    const { withNative, jsOnly } = await bothWays(replaced, "lone\uD800half")
    expect(failureOf(withNative)).toEqual({ reason: "wrong-password", detail: WRONG_PASSWORD_DETAIL })
    expect(failureOf(withNative)).toEqual(failureOf(jsOnly))
    // A NUL would end OpenSSL's C string early.
    const nul = await Effect.runPromise(
      encodePfx(material, {
        encoding: "modern",
        password: Redacted.make("nul\u0000inside"),
        iterations: ITERATIONS,
      }),
    )
    expectMaterial(await decode(nul, "nul\u0000inside"))
    expect(calls).toEqual([])
  })
})

/** The MAC a modern PFX from encodePfx carries, recomputed from its parts (salt and authenticated safe). */
function macOf(bytes: Uint8Array): Uint8Array {
  const found = pkcs12Parts(bytes)
  const key = pkcs12Kdf("sha256", bmpPassword(PASSWORD), found.salt, ITERATIONS, KdfPurpose.mac, 32)
  return createHmac("sha256", secretKey(key)).update(found.authSafe).digest()
}

function pkcs12Parts(bytes: Uint8Array): { authSafe: Uint8Array; salt: Uint8Array } {
  const pfx = pkijs.PFX.fromBER(Uint8Array.from(bytes))
  const content = pfx.authSafe.content
  if (!(content instanceof asn1js.OctetString) || pfx.macData === undefined)
    throw new Error("not a MACed PFX")
  return {
    authSafe: new Uint8Array(content.getValue()),
    salt: new Uint8Array(pfx.macData.macSalt.valueBlock.valueHexView),
  }
}

/**
 * A PFX whose only safe contents is an EncryptedData (PBES2, 2048 iterations)
 * holding the leaf's certificate bag and a shrouded key bag that states
 * `keyIterations`, with a correct 2048-iteration SHA-256 MAC: the key bag's
 * count is visible only once the block is decrypted. Built with the
 * structures encodePfx writes.
 */
function hiddenOverLimitKey(keyIterations: number): Uint8Array {
  const pkcs8 = Redacted.value(material.key)
  const encryptedKey = encryptPbes2(pkcs8, PASSWORD, 1)
  const overLimit = algorithm(
    oid.pbes2,
    sequence([
      algorithm(
        oid.pbkdf2,
        sequence([
          octets(new Uint8Array(16).fill(7)),
          integer(keyIterations),
          nullParametersAlgorithm(oid.hmacWithSha256),
        ]),
      ),
      algorithm(oid.aes256Cbc, octets(new Uint8Array(16).fill(9))),
    ]),
  )
  const localKeyId = attribute(oid.localKeyId, octets(new Uint8Array(20).fill(1)))
  const contents = der(
    sequence([
      safeBag(oid.pkcs8ShroudedKeyBag, shroudedKeyBag(overLimit, encryptedKey.ciphertext), [localKeyId]),
      safeBag(oid.certBag, certBag(oid.x509Certificate, material.leaf), [localKeyId]),
    ]),
  )
  const block = encryptPbes2(contents, PASSWORD, ITERATIONS)
  const authSafe = der(
    sequence([contentInfo(oid.encryptedData, encryptedData(oid.data, block.algorithm, block.ciphertext))]),
  )
  const salt = new Uint8Array(16).fill(3)
  const macKey = pkcs12Kdf("sha256", bmpPassword(PASSWORD), salt, ITERATIONS, KdfPurpose.mac, 32)
  const mac = createHmac("sha256", secretKey(macKey)).update(authSafe).digest()
  return der(pfxBlock(authSafe, oid.sha256, mac, salt, ITERATIONS))
}
