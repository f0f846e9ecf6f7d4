/**
 * Read a PKCS#12 file in memory: the modern (PBES2) and legacy (PBES1 3DES /
 * RC2) profiles as OpenSSL, Java keytool, Windows and kvdeploy write them,
 * the empty password included. The leaf is the certificate that matches the
 * private key (by localKeyID, then by public key); the chain is the rest,
 * leaf-first.
 *
 * The decode is synchronous (it has no asynchronous step): each step below
 * answers its value or the PfxDecodeError that stops the decode, in the
 * order the checks run, and `decodePfx` turns the answer into an Effect once.
 * An Effect.gen per step (a fiber's work for each bag, each decryption, each
 * check) was a measurable part of decoding a small PFX.
 */

import type { KeyObject } from "node:crypto"
import { createHmac, timingSafeEqual } from "node:crypto"
import type { CertificateMaterial } from "@kvdeploy/core"
import { PfxDecodeError, quotedValue } from "@kvdeploy/core"
import * as asn1js from "asn1js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { digestByOid, hashSizes, maxIterations, maxPfxBytes, oid } from "./algorithms.js"
import { nameOf, type ParsedCertificate, parseCertificateSharedNow } from "./certificateFacts.js"
import {
  type ContentInfoParts,
  type EncryptedDataParts,
  type PfxMac,
  type PfxOuter,
  readAuthenticatedSafe,
  readEncryptedData,
  readPfx,
} from "./decodeStructure.js"
import { type AnalysedMaterial, keyPairOf, orderChain, rememberAnalysis } from "./inspect.js"
import { secretKey } from "./nodeCrypto.js"
import {
  decryptPrivateKeyInfoNow,
  decryptWithPasswordNow,
  type KdfBudget,
  newKdfBudget,
  PbeFailure,
  spendIterationsNow,
} from "./passwordEncryption.js"
import { bmpPassword, KdfPurpose, pkcs12Kdf } from "./pkcs12Kdf.js"
import {
  bytesEqual,
  keyProblems,
  loadPkcs8Now,
  publicKeysEqual,
  publicOfNow,
  writtenForm,
} from "./privateKey.js"
import { parseBer, readBagsFromBer, type SafeBag } from "./safeBags.js"
import { noStackTrace } from "./spans.js"

type Reason = PfxDecodeError["reason"]

/**
 * A refusal: `finding` is what was found, never advice; `fix` what to do with a file of one's own
 * (`undefined`: the codec has no advice). Kept apart, so a reader for whom the advice does not
 * apply (a backing secret the vault holds) says the finding alone.
 */
const refuse = (reason: Reason, finding: string, fix: string | undefined, cause?: unknown): PfxDecodeError =>
  new PfxDecodeError({
    reason,
    finding,
    ...(fix === undefined ? {} : { fix }),
    ...(cause === undefined ? {} : { cause }),
  })

const MALFORMED_FIX = "check that the file is a complete PKCS#12 (openssl pkcs12 -info -noout -in file.pfx)"
const CHECK_PASSWORD = "check it with openssl pkcs12 -info -noout -in file.pfx"
/** A cipher or key derivation the codec does not read; an iteration count over the limit has its own fix. */
const UNSUPPORTED_CIPHER_FIX = "re-export the PFX with AES-256 (openssl pkcs12 -export) or 3DES (-legacy)"

const fromPbe = (failure: PbeFailure, what: string) =>
  failure.kind === "wrong-password"
    ? refuse("wrong-password", `the ${what} could not be decrypted: the password is wrong`, CHECK_PASSWORD)
    : refuse(
        failure.kind,
        `the ${what} could not be decrypted: ${failure.finding}`,
        failure.fix ?? (failure.kind === "unsupported" ? UNSUPPORTED_CIPHER_FIX : MALFORMED_FIX),
      )

const copyOf = (view: ArrayBuffer | Uint8Array): Uint8Array => Uint8Array.from(new Uint8Array(view))

interface FoundKey {
  readonly pkcs8: Uint8Array
  readonly key: KeyObject
  readonly localKeyId: Uint8Array | undefined
  /** Its bag's friendlyName (a Java keystore's alias), to name it by in a refusal. */
  readonly friendlyName: string | undefined
}
/**
 * A key found in a bag, with the PKCS#8 the decoded material carries: an EC key written in another
 * form (a compressed or hybrid point, explicit curve parameters) in the usual one, as from a PEM file.
 */
const keyEntry = (
  key: KeyObject,
  bag: { readonly localKeyId: Uint8Array | undefined; readonly friendlyName: string | undefined },
): FoundKey => ({
  ...writtenForm(key),
  localKeyId: bag.localKeyId,
  friendlyName: bag.friendlyName,
})

interface FoundCertificate {
  readonly der: Uint8Array
  readonly localKeyId: Uint8Array | undefined
  /** Its bag's friendlyName (a Java keystore's alias), to name it by in a refusal. */
  readonly friendlyName: string | undefined
  /** A Java keystore's trusted-certificate entry (keytool -importcert), not a key entry's chain. */
  readonly trusted: boolean
}

/** Check the PFX's integrity MAC over `authSafe`; the refusal, or `undefined` when it holds (or there is none). */
const verifyMac = (
  mac: PfxMac | undefined,
  authSafe: Uint8Array,
  password: string,
  budget: KdfBudget,
): PfxDecodeError | undefined => {
  if (mac === undefined) return undefined
  const algorithm = mac.digestAlgorithm.algorithmId
  const hashName = digestByOid[algorithm]
  if (hashName === undefined)
    return refuse(
      "unsupported",
      `the PFX's integrity MAC uses algorithm ${algorithm}, which is not supported (SHA-1, SHA-2 MACs are)`,
      "re-export it with -macalg sha256",
    )
  const iterations = mac.iterations ?? 1
  if (iterations > maxIterations)
    return refuse(
      "unsupported",
      `the PFX's MAC iteration count ${Number.isFinite(iterations) ? iterations : "(more than 2^53)"} exceeds the limit of ${maxIterations}`,
      "re-export it with fewer iterations",
    )
  if (!Number.isSafeInteger(iterations) || iterations < 1)
    return refuse("malformed", "the PFX's MAC iteration count is invalid", MALFORMED_FIX)
  const salt = mac.salt.valueBlock.valueHexView
  const expected = mac.digest.valueBlock.valueHexView
  const candidates = password === "" ? [bmpPassword(""), new Uint8Array(0)] : [bmpPassword(password)]
  const spent = spendIterationsNow(iterations, candidates.length, budget)
  if (spent instanceof PbeFailure) return fromPbe(spent, "integrity MAC")
  for (const pw of candidates) {
    const key = pkcs12Kdf(hashName, pw, salt, iterations, KdfPurpose.mac, hashSizes[hashName].u)
    const actual = createHmac(hashName, secretKey(key)).update(authSafe).digest()
    if (actual.length === expected.length && timingSafeEqual(actual, expected)) return undefined
  }
  return refuse(
    "wrong-password",
    "the PFX's integrity check failed: the password is wrong, or the file was altered",
    "check the password (openssl pkcs12 -info -noout -in file.pfx)",
  )
}

/**
 * A private key bag that did not decrypt to a key. Without a MAC, that is what a wrong password
 * gives; when a MAC confirmed the password, the bag is damaged (or encrypted with another password).
 */
const unreadableKeyAfterDecryption = (passwordChecked: boolean) =>
  passwordChecked
    ? refuse(
        "malformed",
        "the private key bag decrypted with the password the PFX's integrity MAC confirmed, but holds no readable key: the key bag is damaged",
        MALFORMED_FIX,
      )
    : refuse("wrong-password", "the private key decrypted to garbage: the password is wrong", CHECK_PASSWORD)

/**
 * Decrypt and load the keys of `bags` and collect their certificates; the refusal that stops it, if
 * any. `passwordChecked`: a MAC confirmed the password (see `bagsOf`).
 */
const collectBags = (
  bags: ReadonlyArray<SafeBag>,
  password: string,
  keys: Array<FoundKey>,
  certificates: Array<FoundCertificate>,
  depth: number,
  budget: KdfBudget,
  passwordChecked: boolean,
): PfxDecodeError | undefined => {
  for (const bag of bags) {
    if (bag._tag === "ShroudedKey") {
      const shrouded = bag.value
      const decrypted = decryptPrivateKeyInfoNow(
        shrouded.encryptionAlgorithm,
        copyOf(shrouded.encryptedData.valueBlock.valueHexView),
        bag.encoded,
        password,
        budget,
      )
      if (decrypted instanceof PbeFailure)
        return decrypted.kind === "wrong-password" && passwordChecked
          ? refuse(
              "malformed",
              "the private key bag could not be decrypted with the password the PFX's integrity MAC confirmed: the key bag is damaged, or was encrypted with another password",
              MALFORMED_FIX,
            )
          : fromPbe(decrypted, "private key")
      const key = decrypted._tag === "Key" ? decrypted.key : loadPkcs8Now(decrypted.plain)
      if (key === undefined) return unreadableKeyAfterDecryption(passwordChecked)
      keys.push(keyEntry(key, bag))
    } else if (bag._tag === "Key") {
      const der = new Uint8Array(bag.value.toSchema().toBER(false))
      const key = loadPkcs8Now(der)
      if (key === undefined)
        return refuse("malformed", "the PFX's unencrypted key bag is unreadable", MALFORMED_FIX)
      keys.push(keyEntry(key, bag))
    } else if (bag._tag === "Certificate") {
      certificates.push({
        der: bag.der,
        localKeyId: bag.localKeyId,
        friendlyName: bag.friendlyName,
        trusted: bag.trusted,
      })
    } else if (bag._tag === "Nested") {
      if (depth >= 4) return refuse("malformed", "the PFX nests safe contents too deeply", MALFORMED_FIX)
      const refused = collectBags(bag.bags, password, keys, certificates, depth + 1, budget, passwordChecked)
      if (refused !== undefined) return refused
    }
    // CRL and secret bags are not certificate material: skipped.
  }
  return undefined
}

const parseSafeContents = (bytes: Uint8Array): ReadonlyArray<SafeBag> | PfxDecodeError => {
  try {
    return readBagsFromBer(bytes)
  } catch (cause) {
    return refuse("malformed", "a safe contents block of the PFX is unreadable", MALFORMED_FIX, cause)
  }
}

/**
 * The bags of one ContentInfo of the authenticated safe, decrypted when it is encrypted data.
 * `passwordChecked`: a MAC has confirmed the password, so an encrypted block that decrypts to
 * something unreadable is a damaged file; without a MAC, a wrong password passes the CBC padding
 * check about 1 time in 256, and its garbage is what a wrong password gives.
 */
const bagsOf = (
  info: ContentInfoParts,
  password: string,
  budget: KdfBudget,
  passwordChecked: boolean,
): ReadonlyArray<SafeBag> | PfxDecodeError => {
  const inner = info.content
  if (info.contentType === oid.data && inner instanceof asn1js.OctetString)
    return parseSafeContents(new Uint8Array(inner.getValue()))
  if (info.contentType === oid.encryptedData) {
    let encrypted: EncryptedDataParts
    try {
      encrypted = readEncryptedData(inner)
    } catch (cause) {
      return refuse("malformed", "an encrypted block of the PFX is unreadable", MALFORMED_FIX, cause)
    }
    const plain = decryptWithPasswordNow(encrypted.algorithm, encrypted.ciphertext, password, budget)
    if (plain instanceof PbeFailure) return fromPbe(plain, "certificate block")
    const bags = parseSafeContents(plain)
    if (bags instanceof PfxDecodeError && !passwordChecked)
      return refuse(
        "wrong-password",
        "the certificate block decrypted to garbage: the password is wrong (this PFX has no integrity MAC to tell a wrong password from a damaged file)",
        CHECK_PASSWORD,
      )
    return bags
  }
  if (info.contentType === oid.envelopedData)
    return refuse(
      "unsupported",
      "the PFX encrypts its contents to a public key (enveloped data)",
      "export it with password encryption",
    )
  return refuse("malformed", `the PFX holds an unknown content type ${info.contentType}`, MALFORMED_FIX)
}

/** What a PFX holds, its integrity checked and its blocks decrypted: the keys and the certificates. */
interface PfxContents {
  readonly keys: ReadonlyArray<FoundKey>
  readonly certificates: ReadonlyArray<FoundCertificate>
}

/** The PFX read to its bags, synchronous: its keys and certificates, or the refusal. */
const contentsNow = (
  bytes: Uint8Array,
  password: Redacted.Redacted<string>,
): PfxContents | PfxDecodeError => {
  if (bytes.length > maxPfxBytes)
    return refuse(
      "too-large",
      `the PFX is ${bytes.length} bytes; kvdeploy reads at most ${maxPfxBytes} (Key Vault accepts 25 KB)`,
      "check that this is the right file",
    )
  const pw = Redacted.value(password)
  let pfx: PfxOuter
  try {
    // asn1js parses a copy of its input: the caller's array is not kept. The
    // contents of OCTET STRINGs are left unparsed (see safeBags.ts); the
    // authenticated safe and the safe contents are parsed below.
    pfx = readPfx(parseBer(bytes))
  } catch (cause) {
    return refuse("malformed", "the input is not a PKCS#12/PFX file", MALFORMED_FIX, cause)
  }
  if (pfx.version !== 3)
    return refuse("unsupported", `PFX version ${pfx.version} is not supported (only 3)`, undefined)
  if (pfx.contentType === oid.signedData)
    return refuse(
      "unsupported",
      "the PFX uses public-key integrity (a signed authenticated safe)",
      "export it with password integrity",
    )
  const content = pfx.content
  if (pfx.contentType !== oid.data || !(content instanceof asn1js.OctetString))
    return refuse("malformed", "the PFX's authenticated safe is not a data content", MALFORMED_FIX)
  // asn1js's value of the OCTET STRING is a new array (of the concatenated pieces when constructed).
  const authSafeBytes = new Uint8Array(content.getValue())
  const budget = newKdfBudget()
  const macRefused = verifyMac(pfx.mac, authSafeBytes, pw, budget)
  if (macRefused !== undefined) return macRefused
  let infos: ReadonlyArray<ContentInfoParts>
  try {
    infos = readAuthenticatedSafe(parseBer(authSafeBytes))
  } catch (cause) {
    return refuse("malformed", "the PFX's authenticated safe is unreadable", MALFORMED_FIX, cause)
  }
  const keys: Array<FoundKey> = []
  const certificates: Array<FoundCertificate> = []
  for (const info of infos) {
    const bags = bagsOf(info, pw, budget, pfx.mac !== undefined)
    if (bags instanceof PfxDecodeError) return bags
    const refused = collectBags(bags, pw, keys, certificates, 0, budget, pfx.mac !== undefined)
    if (refused !== undefined) return refused
  }
  return { keys, certificates }
}

/** The certificates of the contents, each parsed (shared with decodeNow's analysis), or the refusal. */
const parsedCertificatesNow = (
  certificates: ReadonlyArray<FoundCertificate>,
): Array<ParsedCertificate> | PfxDecodeError => {
  if (certificates.length === 0)
    return refuse(
      "no-certificate",
      "the PFX holds no certificate",
      "export it with the certificate and its chain",
    )
  const parsed: Array<ParsedCertificate> = []
  for (const [i, c] of certificates.entries()) {
    const outcome = parseCertificateSharedNow(c.der, `certificate ${i + 1}`)
    if (outcome._tag === "Problem") {
      const p = outcome.problem
      return refuse("malformed", `${p.field} of the PFX ${p.message}`, p.fix)
    }
    parsed.push(outcome.parsed)
  }
  return parsed
}

/**
 * The refusal of a PFX that holds more than one private key (copies of one key count once), as a PEM
 * bundle with a second key block is refused: the first key that matched a certificate was taken and
 * the other dropped unsaid, so with a CA's key first the CA became the leaf. Each key is named by
 * the certificate it belongs to, never by its bytes.
 */
const moreThanOneKey = (
  keys: ReadonlyArray<FoundKey>,
  publicKeys: ReadonlyArray<KeyObject>,
  parsed: ReadonlyArray<ParsedCertificate>,
): PfxDecodeError | undefined => {
  const firsts = publicKeys.flatMap((k, i) =>
    publicKeys.findIndex((o) => publicKeysEqual(o, k)) === i ? [{ publicKey: k, index: i }] : [],
  )
  if (firsts.length < 2) return undefined
  // Each entry by its alias (the bag's friendlyName: what keytool's -srcalias takes), and its
  // certificate's subject, serial and notAfter: a keystore's old and renewed entries share a subject.
  const aliases: Array<string> = []
  const named = firsts.map(({ publicKey, index }) => {
    const owner = parsed.find((c) => publicKeysEqual(c.publicKey, publicKey))
    const alias = keys[index]?.friendlyName
    if (alias !== undefined) aliases.push(quotedValue(alias))
    const entry = alias === undefined ? "" : `the entry ${quotedValue(alias)}: `
    if (owner === undefined) return `${entry}a key of no certificate in the file`
    const description = owner.description()
    const serial = description?.serialHex ?? owner.node.serialNumber.toLowerCase()
    const notAfter = (description?.notAfter ?? new Date(owner.node.validTo)).toISOString()
    return `${entry}that of ${JSON.stringify(nameOf(owner, "subject"))}, serial ${serial}, notAfter ${notAfter}`
  })
  const srcalias =
    aliases.length === 0
      ? "keytool -importkeystore -srcalias ALIAS -destkeystore leaf.p12 -deststoretype PKCS12 takes one"
      : `keytool -importkeystore -srcalias ALIAS -destkeystore leaf.p12 -deststoretype PKCS12 takes one; the aliases in this file are ${aliases.join(", ")}, and keytool -list -v names each entry's certificate`
  return refuse(
    "unsupported",
    `the PFX holds ${firsts.length} private keys (${named.join("; ")}); kvdeploy takes one, the leaf's, and does not guess which`,
    `export the PFX with the leaf's private key alone (openssl pkcs12 -export -inkey leaf-key.pem -in leaf.pem -certfile chain.pem; from a Java keystore of several entries, ${srcalias})`,
  )
}

/** An alias as a keytool command takes it: bare when it needs no quoting, else quoted. */
const aliasArgument = (alias: string): string =>
  /^[A-Za-z0-9._@+-]+$/.test(alias) ? alias : quotedValue(alias)

/**
 * The refusal of a Java keystore's trusted-certificate entries (keytool -importcert: an mTLS client
 * CA kept beside the server's key entry) that are not in the key entry's chain, or undefined. Such a
 * certificate is no part of what the key entry serves, and dropping it unsaid would deploy something
 * other than the file: the entries are named by alias (what keytool takes), never by a chain index.
 */
const trustedEntriesOffChain = (
  offChain: ReadonlyArray<ParsedCertificate>,
  certificates: ReadonlyArray<FoundCertificate>,
  keyAlias: string | undefined,
  leaf: ParsedCertificate,
): PfxDecodeError | undefined => {
  const entries = offChain.flatMap((c) => {
    const bag = certificates.find((b) => b.trusted && bytesEqual(b.der, c.der))
    return bag === undefined ? [] : [{ alias: bag.friendlyName, subject: nameOf(c, "subject") }]
  })
  if (entries.length === 0) return undefined
  const named = entries.map((e) =>
    e.alias === undefined
      ? `(${JSON.stringify(e.subject)})`
      : `${quotedValue(e.alias)} (${JSON.stringify(e.subject)})`,
  )
  const keyEntry =
    keyAlias === undefined
      ? `the key entry (${JSON.stringify(nameOf(leaf, "subject"))})`
      : `the key entry ${quotedValue(keyAlias)}`
  const deletes = entries
    .map(
      (e) =>
        `keytool -delete -alias ${e.alias === undefined ? "ALIAS" : aliasArgument(e.alias)} -keystore FILE`,
    )
    .join("; ")
  const unnamed = entries.some((e) => e.alias === undefined) ? ", keytool -list names the entries" : ""
  return refuse(
    "unsupported",
    entries.length === 1
      ? `the PFX holds the trusted-certificate entry ${named.join("")}, a certificate that is not in the chain of ${keyEntry}; kvdeploy neither deploys it in the chain nor drops it unsaid`
      : `the PFX holds ${entries.length} trusted-certificate entries, ${named.join(", ")}, certificates that are not in the chain of ${keyEntry}; kvdeploy neither deploys them in the chain nor drops them unsaid`,
    `delete ${entries.length === 1 ? "the entry" : "the entries"} from a copy of the keystore (${deletes}${unnamed}), or export the key entry alone (keytool -importkeystore -srcalias ${keyAlias === undefined ? "ALIAS" : aliasArgument(keyAlias)} -srckeystore FILE -destkeystore leaf.p12 -deststoretype PKCS12)`,
  )
}

/** How `decodePfx` reads a PFX for its caller. */
export interface DecodePfxOptions {
  /**
   * A Java keystore's trusted-certificate entries that are not in the key entry's chain: `"refuse"`
   * (the default: kvdeploy deploys neither them in the chain nor the file without them) or `"keep"`
   * (they follow the chain, as Key Vault's import takes such a file: the emulator's reading).
   */
  readonly trustedOffChain?: "refuse" | "keep"
  /**
   * The operator's own PFX file (`--pfx`): the material says it came from one (`from: "pfx"`), so
   * advice on giving it again is another export. Not set for a vault's backing secret (restore,
   * rollback), which the operator never held as a file.
   */
  readonly operatorFile?: boolean
}

/** The whole decode, synchronous: the material, or the refusal. */
const decodeNow = (
  bytes: Uint8Array,
  password: Redacted.Redacted<string>,
  options: DecodePfxOptions,
): CertificateMaterial | PfxDecodeError => {
  const contents = contentsNow(bytes, password)
  if (contents instanceof PfxDecodeError) return contents
  const { keys, certificates } = contents
  if (keys.length === 0)
    return refuse(
      "no-key",
      "the PFX holds no private key",
      "export it together with the key (openssl pkcs12 -export -inkey key.pem -in cert.pem)",
    )
  const parsed = parsedCertificatesNow(certificates)
  if (parsed instanceof PfxDecodeError) return parsed
  const publicKeys: Array<KeyObject> = []
  for (const key of keys) {
    const publicKey = publicOfNow(key.key)
    if (publicKey === undefined)
      return refuse("malformed", `the PFX's private key: ${keyProblems.noPublicKey.message}`, undefined)
    publicKeys.push(publicKey)
  }
  const twoKeys = moreThanOneKey(keys, publicKeys, parsed)
  if (twoKeys !== undefined) return twoKeys
  for (const [k, key] of keys.entries()) {
    const publicKey = publicKeys[k]
    if (publicKey === undefined) continue
    const matches: Array<number> = parsed.flatMap((c, i) =>
      publicKeysEqual(c.publicKey, publicKey) ? [i] : [],
    )
    const byId = matches.find((i: number) => {
      const id = certificates[i]?.localKeyId
      return id !== undefined && key.localKeyId !== undefined && bytesEqual(id, key.localKeyId)
    })
    const leafIndex = byId ?? matches[0]
    if (leafIndex === undefined) continue
    const leaf = parsed[leafIndex]
    if (leaf === undefined) continue
    const others = parsed.filter((_, i) => i !== leafIndex)
    const order = orderChain(leaf, others)
    const offChain = order.unrelated.flatMap((i) => {
      const c = others[i]
      return c === undefined ? [] : [c]
    })
    const trusted =
      options.trustedOffChain === "keep"
        ? undefined
        : trustedEntriesOffChain(
            offChain,
            certificates,
            key.friendlyName ?? certificates[leafIndex]?.friendlyName,
            leaf,
          )
    if (trusted !== undefined) return trusted
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
      ...(options.operatorFile === true ? { from: "pfx" as const } : {}),
    }
    const analysed: AnalysedMaterial = {
      leaf,
      chain,
      // Same certificates in the returned order: the signatures checked above are memoised.
      order: orderChain(leaf, chain),
      key: key.key,
      pkcs8: key.pkcs8,
      keyPair: keyPairOf(key.key, publicKey, leaf.publicKey),
    }
    rememberAnalysis(material, analysed)
    return material
  }
  return refuse(
    "no-certificate",
    "no certificate in the PFX matches its private key",
    "export the PFX with the certificate that was issued for the key",
  )
}

/**
 * Read a PFX: leaf (the certificate whose key is in the file), chain leaf-first, key as PKCS#8. A
 * keytool trusted-certificate entry off the key entry's chain is refused unless `options` keep it.
 */
export const decodePfx = (
  bytes: Uint8Array,
  password: Redacted.Redacted<string>,
  options: DecodePfxOptions = {},
): Effect.Effect<CertificateMaterial, PfxDecodeError> =>
  Effect.suspend(() => {
    const decoded = decodeNow(bytes, password, options)
    return decoded instanceof PfxDecodeError ? Effect.fail(decoded) : Effect.succeed(decoded)
  }).pipe(Effect.withSpan("pkcs12.decodePfx", undefined, noStackTrace))

/**
 * The certificates of a PFX, in the file's order, whether or not it holds a private key (a
 * certificate-only PFX: `openssl pkcs12 -export -nokeys`), for a reader that needs no key (the
 * CLI's `verify`). Refused as `decodePfx` refuses the file, but for a missing key.
 */
export const decodePfxCertificates = (
  bytes: Uint8Array,
  password: Redacted.Redacted<string>,
): Effect.Effect<ReadonlyArray<Uint8Array>, PfxDecodeError> =>
  Effect.suspend(() => {
    const contents = contentsNow(bytes, password)
    if (contents instanceof PfxDecodeError) return Effect.fail(contents)
    const parsed = parsedCertificatesNow(contents.certificates)
    return parsed instanceof PfxDecodeError
      ? Effect.fail(parsed)
      : Effect.succeed(contents.certificates.map((c) => c.der.slice()))
  }).pipe(Effect.withSpan("pkcs12.decodePfxCertificates", undefined, noStackTrace))
