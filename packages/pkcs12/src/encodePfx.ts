/**
 * Build a PKCS#12 file in memory. Structures are pkijs's classes, encoded by
 * asn1js (pfxStructure.ts); the crypto is node:crypto. Two profiles:
 *
 * - modern: PBES2 (PBKDF2-HMAC-SHA-256, AES-256-CBC) for the key and the
 *   certificates, HMAC-SHA-256 MAC (OpenSSL 3's and Java 17's default);
 * - legacy: PBE-SHA1-3DES for the key, PBE-SHA1-3DES (default) or
 *   PBE-SHA1-RC2-40 for the certificates, HMAC-SHA-1 MAC (what Windows
 *   Server 2016 and older, and `openssl pkcs12 -legacy`, expect).
 *
 * The key bag and the leaf's certificate bag share one localKeyID (SHA-1 of
 * the leaf). A PFX is never built when the key does not match the leaf.
 */
import { createHmac } from "node:crypto"
import type { CertificateMaterial, PfxEncodeOptions } from "@kvdeploy/core"
import { MaterialInvalid, PfxEncodeError } from "@kvdeploy/core"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { oid } from "./algorithms.js"
import { type AnalysedMaterial, analyseMaterialNow, keyPairRefusal, unreadableRefusal } from "./inspect.js"
import { publicRandom, secretKey } from "./nodeCrypto.js"
import { encryptPbes1, encryptPbes2, type Pbes1Scheme } from "./passwordEncryption.js"
import {
  attribute,
  authenticatedSafe,
  certificateBag,
  dataContent,
  encryptedContent,
  octets,
  pfx,
  safeContents,
  shroudedKeyBag,
} from "./pfxStructure.js"
import { bmpPassword, KdfPurpose, pkcs12Kdf } from "./pkcs12Kdf.js"

export interface Pkcs12EncodeOptions extends PfxEncodeOptions {
  /** Legacy profile only: the certificates' cipher. `3des` (default) or `rc2-40` (what `openssl -legacy` writes). */
  readonly legacyCertificateCipher?: Pbes1Scheme
}

export const defaultIterations = 2048

interface BuildInput {
  readonly leaf: Uint8Array
  /** SHA-1 of `leaf`: the localKeyID shared by the key bag and the leaf's bag. */
  readonly localKeyId: Uint8Array
  /** The DER of the certificates after the leaf, in the order written. */
  readonly chain: ReadonlyArray<Uint8Array>
  readonly pkcs8: Uint8Array
  readonly password: string
  readonly encoding: "modern" | "legacy"
  readonly friendlyName: string | undefined
  readonly certificateCipher: Pbes1Scheme
  readonly iterations: number
}

const build = (input: BuildInput): Uint8Array => {
  const { password, iterations } = input
  // The key bag and the leaf's bag carry the same attributes (each its own objects).
  const attributes = () => [
    ...(input.friendlyName === undefined
      ? []
      : [attribute(oid.friendlyName, new asn1js.BmpString({ value: input.friendlyName }))]),
    attribute(oid.localKeyId, octets(input.localKeyId)),
  ]
  const certContents = safeContents([
    certificateBag(input.leaf, attributes()),
    ...input.chain.map((der) => certificateBag(der)),
  ])
  const encryptedCerts =
    input.encoding === "modern"
      ? encryptPbes2(certContents, password, iterations)
      : encryptPbes1(certContents, password, iterations, input.certificateCipher)
  const encryptedKey =
    input.encoding === "modern"
      ? encryptPbes2(input.pkcs8, password, iterations)
      : encryptPbes1(input.pkcs8, password, iterations, "3des")
  const keyContents = safeContents([
    shroudedKeyBag(encryptedKey.algorithm, encryptedKey.ciphertext, attributes()),
  ])
  const authSafe = authenticatedSafe([
    encryptedContent(encryptedCerts.algorithm, encryptedCerts.ciphertext),
    dataContent(keyContents),
  ])
  const macHash = input.encoding === "modern" ? "sha256" : "sha1"
  const macSalt = publicRandom(input.encoding === "modern" ? 16 : 8)
  const macKey = pkcs12Kdf(
    macHash,
    bmpPassword(password),
    macSalt,
    iterations,
    KdfPurpose.mac,
    macHash === "sha256" ? 32 : 20,
  )
  const mac = createHmac(macHash, secretKey(macKey)).update(authSafe).digest()
  return pfx(authSafe, macHash === "sha256" ? oid.sha256 : oid.sha1, mac, macSalt, iterations)
}

const invalidIterations = (iterations: number): string | undefined =>
  !Number.isSafeInteger(iterations) || iterations < 1 || iterations > 10_000_000
    ? `iterations must be an integer from 1 to 10000000, got ${iterations}`
    : undefined

/** The PFX of analysed material (its private copies, checked by the analysis), or why it cannot be built. */
const buildAnalysed = (
  analysed: AnalysedMaterial,
  options: Pkcs12EncodeOptions,
  iterations: number,
): Effect.Effect<Uint8Array, PfxEncodeError> => {
  const refused = keyPairRefusal(analysed, "a PFX")
  if (refused !== undefined) return Effect.fail(refused)
  try {
    // Leaf first, then the chain in issuer order, then the certificates that do not link to the leaf.
    const chain: Array<Uint8Array> = []
    for (const indices of [analysed.order.ordered, analysed.order.unrelated])
      for (const i of indices) {
        const c = analysed.chain[i]
        if (c !== undefined) chain.push(c.der)
      }
    return Effect.succeed(
      build({
        leaf: analysed.leaf.der,
        // The leaf's SHA-1, computed once for its x5t and its localKeyID.
        localKeyId: analysed.leaf.sha1(),
        chain,
        // The analysed copy: the bytes whose match with the leaf was just checked.
        pkcs8: analysed.pkcs8,
        password: Redacted.value(options.password),
        encoding: options.encoding,
        friendlyName: options.friendlyName,
        certificateCipher: options.legacyCertificateCipher ?? "3des",
        iterations,
      }),
    )
  } catch (cause) {
    return Effect.fail(
      new PfxEncodeError({
        finding: `building the ${options.encoding} PFX failed: ${cause instanceof Error ? cause.message : "unknown error"}`,
        cause,
      }),
    )
  }
}

/**
 * Build a PFX in memory from the material. The chain is written leaf-first in
 * issuer order, followed by any certificates that do not link to the leaf.
 * Refuses (PfxEncodeError) when the key does not match the leaf.
 *
 * One analysis step and one synchronous build (no generator, no step per
 * check): an import's PFX is built on the deploy's path, while its snapshot
 * read is on the wire.
 */
export const encodePfx = (
  material: CertificateMaterial,
  options: Pkcs12EncodeOptions,
): Effect.Effect<Uint8Array, PfxEncodeError> => {
  const iterations = options.iterations ?? defaultIterations
  // One step inside the span: the analysis (or the inspect's, remembered) and the build run
  // synchronously. useSpan, as inspectMaterial: the same span without withSpan's context changes.
  return Effect.useSpan(
    "pkcs12.encodePfx",
    { attributes: { encoding: options.encoding } },
    (): Effect.Effect<Uint8Array, PfxEncodeError> => {
      const problem = invalidIterations(iterations)
      if (problem !== undefined) return Effect.fail(new PfxEncodeError({ finding: problem }))
      const analysed = analyseMaterialNow(material)
      return analysed instanceof MaterialInvalid
        ? Effect.fail(unreadableRefusal(analysed, "a PFX"))
        : buildAnalysed(analysed, options, iterations)
    },
  )
}
