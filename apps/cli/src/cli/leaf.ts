/**
 * The leaf certificate of a PEM or DER file, read with node:crypto (no pkijs): the one a deploy of
 * the file would import.
 */
import { createHash, X509Certificate } from "node:crypto"
import type { CertificateMaterial } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import { keyProblems, type MaterialFlags, pemMaterial, readPfxCertificates, withSource } from "./material.js"
import { type CliProblem, usage, usageOne } from "./problems.js"
import { readSource, sourceName } from "./sources.js"

export interface LeafCertificate {
  readonly der: Uint8Array
  readonly x5t: string
  readonly subject: string
  readonly notBefore: Date
  readonly notAfter: Date
  readonly serialHex: string
}

export const leafOf = (der: Uint8Array): LeafCertificate => {
  const cert = new X509Certificate(der)
  return {
    der,
    x5t: createHash("sha1").update(der).digest("base64url"),
    subject: cert.subject.replace(/\n/g, ", "),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    serialHex: cert.serialNumber.toLowerCase().replace(/^(00)+(?=.)/, ""),
  }
}

/** Whether the file held a private key verify could not read, for the message when no leaf can be chosen. */
type KeyInFile = "none" | "unreadable"

/**
 * The leaf of the file's certificates when its key did not name one: @kvdeploy/pkcs12's
 * `chooseLeaf` without a key (the certificate that issued none of the others; copies of one
 * certificate count once), the rule a library caller's bundle is read by. Two or more such
 * certificates (a leaf with a CA that did not issue it, two leaves) are refused, naming them, as a
 * problem of `field` with the CLI's fix.
 */
const chainEnd = (
  field: string,
  certificates: ReadonlyArray<Uint8Array>,
  key: KeyInFile,
): Effect.Effect<Uint8Array, CliProblem> =>
  Effect.gen(function* () {
    const { chooseLeaf } = yield* Effect.promise(() => import("@kvdeploy/pkcs12"))
    const chosen = yield* Effect.result(chooseLeaf(certificates))
    if (chosen._tag === "Success") return chosen.success.leaf
    const why =
      key === "unreadable" ? "; its private key cannot be read here (encrypted?), so it cannot say which" : ""
    return yield* usageOne(
      field,
      `${chosen.failure.problems.map((p) => p.message).join("; ")}${why}`,
      "give --cert a file of the leaf alone or with the CAs that issued it (its PEM blocks copied out of this file), the bundle that was deployed with its private key, or the deployed PFX with --pfx FILE",
    )
  })

/**
 * The leaf of material read as deploy reads it, once its private key is judged as deploy's
 * preflight judges it (keyProblems): a key deploy refuses is refused here too, in the same words,
 * as a problem of `field`, instead of an answer about a certificate deploy would not import.
 */
const judgedLeaf = (field: string, material: CertificateMaterial) =>
  Effect.gen(function* () {
    const problems = yield* keyProblems(material)
    const [only] = problems
    if (only !== undefined)
      return yield* usage(
        problems.length === 1 ? `${field}: ${only.field}: ${only.message}` : "the private key is refused",
        problems.map((p) => ({ ...p, field: `${field}: ${p.field}` })),
      )
    return leafOf(material.leaf)
  })

/**
 * Read the leaf of `--cert` as deploy would choose it: with the PEM reader a deploy uses (a block
 * that cannot be read, or one cut short, is refused naming the block, not skipped for the next
 * one). A file that holds a private key is read by deploy's own code (pemMaterial: the certificate
 * the key matches, wherever it sits; an issuer's key refused) and its key judged as deploy's
 * preflight judges it (a key that matches none of the certificates, a damaged key: refused, in
 * deploy's words). Without one, the leaf is the certificate that issued none of the others (see
 * chainEnd). A key that cannot be read here (encrypted: verify takes no passphrase) is not judged;
 * the certificates are read without it.
 */
export const readLeaf = (flag: string, source: string): Effect.Effect<LeafCertificate, CliProblem> =>
  Effect.gen(function* () {
    const bytes = yield* readSource(flag, source)
    const { parsePem, materialText } = yield* Effect.promise(() => import("@kvdeploy/pkcs12"))
    const parsed = yield* Effect.result(parsePem(bytes))
    let certificates: ReadonlyArray<Uint8Array> = []
    let key: Redacted.Redacted<Uint8Array> | undefined
    let keyInFile: KeyInFile = "none"
    if (parsed._tag === "Success") {
      certificates = parsed.success.certificates
      key = parsed.success.key
    } else {
      const problems = parsed.failure.problems.filter((p) => !/PRIVATE KEY\)$/.test(p.field))
      if (problems.length > 0)
        return yield* usage("the certificate cannot be read", withSource(flag, source, problems))
      // Only key blocks were refused: read the certificates without them.
      keyInFile = "unreadable"
      const text = materialText(bytes)
      const withoutKeys = text.replace(/-----BEGIN ([A-Z ]*PRIVATE KEY)-----[\s\S]*?-----END \1-----/g, "")
      const again = yield* Effect.result(parsePem(withoutKeys))
      if (again._tag === "Failure")
        return yield* usage(
          "the certificate cannot be read",
          withSource(flag, source, again.failure.problems),
        )
      certificates = again.success.certificates
    }
    const field = `${flag} ${sourceName(source)}`
    if (certificates.length === 0)
      return yield* usageOne(field, "holds no certificate", "give the leaf certificate as PEM")
    for (const [i, der] of certificates.entries()) {
      try {
        new X509Certificate(der)
      } catch {
        return yield* usageOne(
          field,
          certificates.length === 1
            ? "is not a readable X.509 certificate"
            : `certificate ${i + 1} is not a readable X.509 certificate`,
          "check it with `openssl x509 -noout -text -in FILE`",
        )
      }
    }
    // With its key, the leaf a deploy of this file imports, and the key judged as deploy judges it.
    if (key !== undefined)
      return yield* judgedLeaf(
        field,
        yield* pemMaterial({ cert: { source, certificates, key }, chain: undefined, key: undefined }),
      )
    return leafOf(yield* chainEnd(field, certificates, keyInFile))
  })

/**
 * The leaf of a `--pfx` as verify checks it: the certificate its private key matches (the one
 * deploy imports), its key judged as deploy judges it (a damaged key is refused, as deploy refuses
 * it), or, of a PFX without a key (verify needs none), the certificate that issued none of the
 * others, as for a `--cert` bundle without a key (see chainEnd).
 */
export const readPfxLeaf = (flags: MaterialFlags, source: string) =>
  Effect.gen(function* () {
    const read = yield* readPfxCertificates(flags, source)
    if ("material" in read) return yield* judgedLeaf(`--pfx ${sourceName(source)}`, read.material)
    // Each certificate was read by the PFX's decoder already.
    return leafOf(yield* chainEnd(`--pfx ${sourceName(source)}`, read.certificates, "none"))
  })
