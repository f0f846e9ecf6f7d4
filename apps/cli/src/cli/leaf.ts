/**
 * The leaf certificate of a PEM or DER file, read with node:crypto (no pkijs): the one a deploy of
 * the file would import.
 */
import { createHash, X509Certificate } from "node:crypto"
import * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import { issuedBy, leafForKey, type MaterialFlags, readPfxCertificates, withSource } from "./material.js"
import { type CliProblem, usage, usageOne } from "./problems.js"
import { readSource, sourceName } from "./sources.js"

export interface LeafCertificate {
  readonly der: Uint8Array
  readonly x5t: string
  readonly subject: string
  readonly notAfter: Date
  readonly serialHex: string
}

export const leafOf = (der: Uint8Array): LeafCertificate => {
  const cert = new X509Certificate(der)
  return {
    der,
    x5t: createHash("sha1").update(der).digest("base64url"),
    subject: cert.subject.replace(/\n/g, ", "),
    notAfter: new Date(cert.validTo),
    serialHex: cert.serialNumber.toLowerCase().replace(/^(00)+(?=.)/, ""),
  }
}

/** A certificate of the file, read by node:crypto. */
interface Candidate {
  readonly der: Uint8Array
  readonly node: X509Certificate
}

/** Whether `parent` is named as `child`'s issuer and its key verifies `child`'s signature (as the chain order of a deploy asks). */
const issued = (parent: Candidate, child: Candidate): boolean => issuedBy(parent.node, child.node)

const described = (c: Candidate): string =>
  `${JSON.stringify(c.node.subject.replace(/\n/g, ", "))} (x5t ${createHash("sha1").update(c.der).digest("base64url")})`

/** What the file's private key said about the leaf, for the message when no leaf can be chosen. */
type KeyInFile = "none" | "unreadable" | "matches-none"

/**
 * The leaf of the file's certificates when its key did not name one: the certificate that issued
 * none of the others (the end of the chain). Copies of one certificate count once. Two or more such
 * certificates (a leaf with a CA that did not issue it, two leaves) are refused, naming them.
 */
const chainEnd = (
  field: string,
  certificates: ReadonlyArray<Candidate>,
  key: KeyInFile,
): Effect.Effect<Uint8Array, CliProblem> => {
  const distinct = certificates.filter(
    (c, i) => certificates.findIndex((d) => Buffer.compare(d.der, c.der) === 0) === i,
  )
  const ends = distinct.filter((c) => !distinct.some((other) => other !== c && issued(c, other)))
  const [only] = ends
  if (ends.length === 1 && only !== undefined) return Effect.succeed(only.der)
  const named = (ends.length > 0 ? ends : distinct).map(described).join(", ")
  const why =
    key === "unreadable"
      ? "; its private key cannot be read here (encrypted?), so it cannot say which"
      : key === "matches-none"
        ? "; its private key matches none of them"
        : ""
  return Effect.fail(
    usageOne(
      field,
      ends.length > 0
        ? `holds ${ends.length} certificates that could each be the leaf (none of them issued another certificate of the file): ${named}${why}`
        : `holds certificates that each issued another of the file, so none is the leaf: ${named}${why}`,
      "give --cert a file of the leaf alone or with the CAs that issued it (its PEM blocks copied out of this file), the bundle that was deployed with its private key, or the deployed PFX with --pfx FILE",
    ),
  )
}

/**
 * Read the leaf of `--cert` as deploy would choose it: with the PEM reader a deploy uses (a block
 * that cannot be read, or one cut short, is refused naming the block, not skipped for the next
 * one), the certificate the file's private key matches, or without one, the certificate that issued
 * none of the others (see chainEnd). A key that cannot be read here (encrypted: verify takes no
 * passphrase) is not reported; the certificates are read without it.
 */
export const readLeaf = (flag: string, source: string): Effect.Effect<LeafCertificate, CliProblem> =>
  Effect.gen(function* () {
    const bytes = yield* readSource(flag, source)
    const { parsePem } = yield* Effect.promise(() => import("@kvdeploy/pkcs12"))
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
      const text = Buffer.from(bytes).toString("utf8")
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
    const read: Array<Candidate> = []
    for (const [i, der] of certificates.entries()) {
      try {
        read.push({ der, node: new X509Certificate(der) })
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
    // The key's certificate, wherever it sits in the file: the leaf a deploy of this file imports.
    const byKey = key === undefined ? undefined : leafForKey(certificates, key)
    if (key !== undefined && byKey === undefined) keyInFile = "matches-none"
    return leafOf(byKey ?? (yield* chainEnd(field, read, keyInFile)))
  })

/**
 * The leaf of a `--pfx` as verify checks it: the certificate its private key matches (the one
 * deploy imports), or, of a PFX without a key (verify needs none), the certificate that issued
 * none of the others, as for a `--cert` bundle without a key (see chainEnd).
 */
export const readPfxLeaf = (flags: MaterialFlags, source: string) =>
  Effect.gen(function* () {
    const read = yield* readPfxCertificates(flags, source)
    if ("material" in read) return leafOf(read.material.leaf)
    // Each certificate was read by the PFX's decoder already.
    const candidates = read.certificates.map((der) => ({ der, node: new X509Certificate(der) }))
    return leafOf(yield* chainEnd(`--pfx ${sourceName(source)}`, candidates, "none"))
  })
