/** The leaf certificate of a PEM or DER file, read with node:crypto (no key, no pkijs). */
import { createHash, X509Certificate } from "node:crypto"
import * as Effect from "effect/Effect"
import { withSource } from "./material.js"
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

/**
 * Read the first certificate of `--cert`, with the PEM reader a deploy uses: a block that cannot be
 * read, or one cut short, is refused naming the block (not skipped for the next one). Private key
 * blocks are not needed here and their problems (an encrypted key without its passphrase) are not
 * reported.
 */
export const readLeaf = (flag: string, source: string): Effect.Effect<LeafCertificate, CliProblem> =>
  Effect.gen(function* () {
    const bytes = yield* readSource(flag, source)
    const { parsePem } = yield* Effect.promise(() => import("@kvdeploy/pkcs12"))
    const parsed = yield* Effect.result(parsePem(bytes))
    let certificates: ReadonlyArray<Uint8Array> = []
    if (parsed._tag === "Success") certificates = parsed.success.certificates
    else {
      const problems = parsed.failure.problems.filter((p) => !/PRIVATE KEY\)$/.test(p.field))
      if (problems.length > 0)
        return yield* usage("the certificate cannot be read", withSource(flag, source, problems))
      // Only key blocks were refused: read the certificates without them.
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
    const der = certificates[0]
    if (der === undefined)
      return yield* usageOne(
        `${flag} ${sourceName(source)}`,
        "holds no certificate",
        "give the leaf certificate as PEM",
      )
    return yield* Effect.try({
      try: () => leafOf(der),
      catch: () =>
        usageOne(
          `${flag} ${sourceName(source)}`,
          "is not a readable X.509 certificate",
          "check it with `openssl x509 -noout -text -in FILE`",
        ),
    })
  })
