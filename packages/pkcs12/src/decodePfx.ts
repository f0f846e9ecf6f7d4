/**
 * Read a PKCS#12 file in memory: the modern (PBES2) and legacy (PBES1 3DES /
 * RC2) profiles as OpenSSL, Java keytool, Windows and kvdeploy write them,
 * the empty password included. The leaf is the certificate that matches the
 * private key (by localKeyID, then by public key); the chain is the rest,
 * leaf-first.
 */

import type { KeyObject } from "node:crypto"
import { createHmac, timingSafeEqual } from "node:crypto"
import type { CertificateMaterial } from "@kvdeploy/core"
import { PfxDecodeError } from "@kvdeploy/core"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as pkijs from "pkijs"
import { digestByOid, hashSizes, maxIterations, maxPfxBytes, oid } from "./algorithms.js"
import { type ParsedCertificate, parseCertificateSharedNow } from "./certificateFacts.js"
import { type AnalysedMaterial, orderChain, rememberAnalysis } from "./inspect.js"
import { rememberCertificate } from "./keyUsage.js"
import { secretKey } from "./nodeCrypto.js"
import {
  decryptPrivateKeyInfo,
  decryptWithPassword,
  type KdfBudget,
  newKdfBudget,
  type PbeFailure,
  spendIterations,
} from "./passwordEncryption.js"
import { bmpPassword, KdfPurpose, pkcs12Kdf } from "./pkcs12Kdf.js"
import { bytesEqual, loadPkcs8, publicKeysEqual, publicOf } from "./privateKey.js"
import { parseBer, readBagsFromBer, type SafeBag } from "./safeBags.js"
import { noStackTrace } from "./spans.js"

type Reason = PfxDecodeError["reason"]

const fail = (reason: Reason, detail: string, cause?: unknown) =>
  Effect.fail(new PfxDecodeError(cause === undefined ? { reason, detail } : { reason, detail, cause }))

const fromPbe = (failure: PbeFailure, what: string) =>
  new PfxDecodeError({
    reason: failure.kind === "wrong-password" ? "wrong-password" : failure.kind,
    detail:
      failure.kind === "wrong-password"
        ? `the ${what} could not be decrypted: the password is wrong; check it with openssl pkcs12 -info -noout -in file.pfx`
        : failure.kind === "unsupported"
          ? `the ${what} could not be decrypted: ${failure.detail}; re-export the PFX with AES-256 (openssl pkcs12 -export) or 3DES (-legacy)`
          : `the ${what} could not be decrypted: ${failure.detail}; ${MALFORMED_FIX}`,
  })

const MALFORMED_FIX = "check that the file is a complete PKCS#12 (openssl pkcs12 -info -noout -in file.pfx)"

const copyOf = (view: ArrayBuffer | Uint8Array): Uint8Array => Uint8Array.from(new Uint8Array(view))

interface FoundKey {
  readonly pkcs8: Uint8Array
  readonly key: KeyObject
  readonly localKeyId: Uint8Array | undefined
}
interface FoundCertificate {
  readonly der: Uint8Array
  readonly localKeyId: Uint8Array | undefined
}

const verifyMac = (
  pfx: pkijs.PFX,
  authSafe: Uint8Array,
  password: string,
  budget: KdfBudget,
): Effect.Effect<void, PfxDecodeError> =>
  Effect.gen(function* () {
    const macData = pfx.macData
    if (macData === undefined) return
    const algorithm = macData.mac.digestAlgorithm.algorithmId
    const hashName = digestByOid[algorithm]
    if (hashName === undefined)
      return yield* fail(
        "unsupported",
        `the PFX's integrity MAC uses algorithm ${algorithm}, which is not supported (SHA-1, SHA-2 MACs are); re-export it with -macalg sha256`,
      )
    const iterations = macData.iterations ?? 1
    if (!Number.isSafeInteger(iterations) || iterations < 1)
      return yield* fail("malformed", `the PFX's MAC iteration count is invalid; ${MALFORMED_FIX}`)
    if (iterations > maxIterations)
      return yield* fail(
        "unsupported",
        `the PFX's MAC iteration count ${iterations} exceeds the limit of ${maxIterations}; re-export it with fewer iterations`,
      )
    const salt = macData.macSalt.valueBlock.valueHexView
    const expected = macData.mac.digest.valueBlock.valueHexView
    const candidates = password === "" ? [bmpPassword(""), new Uint8Array(0)] : [bmpPassword(password)]
    yield* Effect.mapError(spendIterations(iterations, candidates.length, budget), (f) =>
      fromPbe(f, "integrity MAC"),
    )
    for (const pw of candidates) {
      const key = pkcs12Kdf(hashName, pw, salt, iterations, KdfPurpose.mac, hashSizes[hashName].u)
      const actual = createHmac(hashName, secretKey(key)).update(authSafe).digest()
      if (actual.length === expected.length && timingSafeEqual(actual, expected)) return
    }
    return yield* fail(
      "wrong-password",
      "the PFX's integrity check failed: the password is wrong, or the file was altered; check the password (openssl pkcs12 -info -noout -in file.pfx)",
    )
  })

const collectBags = (
  bags: ReadonlyArray<SafeBag>,
  password: string,
  keys: Array<FoundKey>,
  certificates: Array<FoundCertificate>,
  depth: number,
  budget: KdfBudget,
): Effect.Effect<void, PfxDecodeError> =>
  Effect.gen(function* () {
    for (const bag of bags) {
      if (bag._tag === "ShroudedKey") {
        const shrouded = bag.value
        const decrypted = yield* Effect.mapError(
          decryptPrivateKeyInfo(
            shrouded.encryptionAlgorithm,
            copyOf(shrouded.encryptedData.valueBlock.valueHexView),
            bag.encoded,
            password,
            budget,
          ),
          (f) => fromPbe(f, "private key"),
        )
        const key = yield* Effect.mapError(
          decrypted._tag === "Key" ? Effect.succeed(decrypted.key) : loadPkcs8(decrypted.plain),
          () =>
            new PfxDecodeError({
              reason: "wrong-password",
              detail:
                "the private key decrypted to garbage: the password is wrong; check it with openssl pkcs12 -info -noout -in file.pfx",
            }),
        )
        keys.push({
          pkcs8: new Uint8Array(key.export({ type: "pkcs8", format: "der" })),
          key,
          localKeyId: bag.localKeyId,
        })
      } else if (bag._tag === "Key") {
        const der = new Uint8Array(bag.value.toSchema().toBER(false))
        const key = yield* Effect.mapError(
          loadPkcs8(der),
          () =>
            new PfxDecodeError({
              reason: "malformed",
              detail: `the PFX's unencrypted key bag is unreadable; ${MALFORMED_FIX}`,
            }),
        )
        keys.push({
          pkcs8: new Uint8Array(key.export({ type: "pkcs8", format: "der" })),
          key,
          localKeyId: bag.localKeyId,
        })
      } else if (bag._tag === "Certificate") {
        certificates.push({ der: bag.der, localKeyId: bag.localKeyId })
      } else if (bag._tag === "Nested") {
        if (depth >= 4)
          return yield* fail("malformed", `the PFX nests safe contents too deeply; ${MALFORMED_FIX}`)
        yield* collectBags(bag.bags, password, keys, certificates, depth + 1, budget)
      }
      // CRL and secret bags are not certificate material: skipped.
    }
  })

const parseSafeContents = (bytes: Uint8Array): Effect.Effect<ReadonlyArray<SafeBag>, PfxDecodeError> =>
  Effect.try({
    try: () => readBagsFromBer(bytes),
    catch: (cause) =>
      new PfxDecodeError({
        reason: "malformed",
        detail: `a safe contents block of the PFX is unreadable; ${MALFORMED_FIX}`,
        cause,
      }),
  })

/** Read a PFX: leaf (the certificate whose key is in the file), chain leaf-first, key as PKCS#8. */
export const decodePfx = (
  bytes: Uint8Array,
  password: Redacted.Redacted<string>,
): Effect.Effect<CertificateMaterial, PfxDecodeError> =>
  Effect.gen(function* () {
    if (bytes.length > maxPfxBytes)
      return yield* fail(
        "too-large",
        `the PFX is ${bytes.length} bytes; kvdeploy reads at most ${maxPfxBytes} (Key Vault accepts 25 KB): check that this is the right file`,
      )
    const pw = Redacted.value(password)
    const pfx = yield* Effect.try({
      // asn1js parses a copy of its input: the caller's array is not kept. The
      // contents of OCTET STRINGs are left unparsed (see safeBags.ts); the
      // authenticated safe and the safe contents are parsed below.
      try: () => new pkijs.PFX({ schema: parseBer(bytes) }),
      catch: (cause) =>
        new PfxDecodeError({
          reason: "malformed",
          detail: `the input is not a PKCS#12/PFX file; ${MALFORMED_FIX}`,
          cause,
        }),
    })
    if (pfx.version !== 3)
      return yield* fail("unsupported", `PFX version ${pfx.version} is not supported (only 3)`)
    if (pfx.authSafe.contentType === oid.signedData)
      return yield* fail(
        "unsupported",
        "the PFX uses public-key integrity (a signed authenticated safe); export it with password integrity",
      )
    const content: unknown = pfx.authSafe.content
    if (pfx.authSafe.contentType !== oid.data || !(content instanceof asn1js.OctetString))
      return yield* fail("malformed", `the PFX's authenticated safe is not a data content; ${MALFORMED_FIX}`)
    const authSafeBytes = copyOf(content.getValue())
    const budget = newKdfBudget()
    yield* verifyMac(pfx, authSafeBytes, pw, budget)
    const authenticatedSafe = yield* Effect.try({
      try: () => new pkijs.AuthenticatedSafe({ schema: parseBer(authSafeBytes) }),
      catch: (cause) =>
        new PfxDecodeError({
          reason: "malformed",
          detail: `the PFX's authenticated safe is unreadable; ${MALFORMED_FIX}`,
          cause,
        }),
    })
    const keys: Array<FoundKey> = []
    const certificates: Array<FoundCertificate> = []
    for (const info of authenticatedSafe.safeContents) {
      const inner: unknown = info.content
      if (info.contentType === oid.data && inner instanceof asn1js.OctetString) {
        const contents = yield* parseSafeContents(new Uint8Array(inner.getValue()))
        yield* collectBags(contents, pw, keys, certificates, 0, budget)
      } else if (info.contentType === oid.encryptedData) {
        const encrypted = yield* Effect.try({
          try: () => {
            const data = new pkijs.EncryptedData({ schema: info.content })
            return {
              algorithm: data.encryptedContentInfo.contentEncryptionAlgorithm,
              ciphertext: copyOf(data.encryptedContentInfo.getEncryptedContent()),
            }
          },
          catch: (cause) =>
            new PfxDecodeError({
              reason: "malformed",
              detail: `an encrypted block of the PFX is unreadable; ${MALFORMED_FIX}`,
              cause,
            }),
        })
        const plain = yield* Effect.mapError(
          decryptWithPassword(encrypted.algorithm, encrypted.ciphertext, pw, budget),
          (f) => fromPbe(f, "certificate block"),
        )
        const contents = yield* parseSafeContents(plain)
        yield* collectBags(contents, pw, keys, certificates, 0, budget)
      } else if (info.contentType === oid.envelopedData) {
        return yield* fail(
          "unsupported",
          "the PFX encrypts its contents to a public key (enveloped data); export it with password encryption",
        )
      } else {
        return yield* fail(
          "malformed",
          `the PFX holds an unknown content type ${info.contentType}; ${MALFORMED_FIX}`,
        )
      }
    }
    if (keys.length === 0)
      return yield* fail(
        "no-key",
        "the PFX holds no private key; export it together with the key (openssl pkcs12 -export -inkey key.pem -in cert.pem)",
      )
    if (certificates.length === 0)
      return yield* fail(
        "no-certificate",
        "the PFX holds no certificate; export it with the certificate and its chain",
      )
    const parsed: Array<ParsedCertificate> = []
    for (const [i, c] of certificates.entries()) {
      const outcome = parseCertificateSharedNow(c.der, `certificate ${i + 1}`)
      if (outcome._tag === "Problem") {
        const p = outcome.problem
        return yield* fail("malformed", `${p.field} of the PFX ${p.message}; ${p.fix}`)
      }
      parsed.push(outcome.parsed)
    }
    for (const key of keys) {
      const publicKey = yield* Effect.mapError(
        publicOf(key.key),
        (p) => new PfxDecodeError({ reason: "malformed", detail: `the PFX's private key: ${p.message}` }),
      )
      const matches = parsed.flatMap((c, i) => (publicKeysEqual(c.publicKey, publicKey) ? [i] : []))
      const byId = matches.find((i) => {
        const id = certificates[i]?.localKeyId
        return id !== undefined && key.localKeyId !== undefined && bytesEqual(id, key.localKeyId)
      })
      const leafIndex = byId ?? matches[0]
      if (leafIndex === undefined) continue
      const leaf = parsed[leafIndex]
      if (leaf === undefined) continue
      const others = parsed.filter((_, i) => i !== leafIndex)
      const order = orderChain(leaf, others)
      const chain = [...order.ordered, ...order.unrelated].flatMap((i) => {
        const c = others[i]
        return c === undefined ? [] : [c]
      })
      // The caller gets copies; the parsed certificates and the key keep their
      // own bytes, and are remembered as the analysis of the returned material
      // (inspect or encode of it then re-parses and re-verifies nothing).
      const material: CertificateMaterial = {
        leaf: leaf.der.slice(),
        chain: chain.map((c) => c.der.slice()),
        key: Redacted.make(key.pkcs8.slice()),
      }
      const analysed: AnalysedMaterial = {
        leaf,
        chain,
        // Same certificates in the returned order: the signatures checked above are memoised.
        order: orderChain(leaf, chain),
        key: key.key,
        pkcs8: key.pkcs8,
        keyMatchesLeaf: publicKeysEqual(publicKey, leaf.publicKey),
      }
      rememberAnalysis(material, analysed)
      // keyUsageBits(material.leaf) then reads this parse of the leaf.
      rememberCertificate(material.leaf)
      return material
    }
    return yield* fail(
      "no-certificate",
      "no certificate in the PFX matches its private key; export the PFX with the certificate that was issued for the key",
    )
  }).pipe(Effect.withSpan("pkcs12.decodePfx", undefined, noStackTrace))
