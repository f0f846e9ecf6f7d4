/** The leaf certificate of a PEM or DER file, read with node:crypto (no key, no pkijs). */
import { createHash, X509Certificate } from "node:crypto"
import * as Effect from "effect/Effect"
import { type CliProblem, usageOne } from "./problems.js"
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

/** Read the first certificate of `--cert`. */
export const readLeaf = (flag: string, source: string): Effect.Effect<LeafCertificate, CliProblem> =>
  Effect.gen(function* () {
    const bytes = yield* readSource(flag, source)
    const text = Buffer.from(bytes).toString("latin1")
    let der: Uint8Array = bytes
    if (text.includes("-----BEGIN")) {
      const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/.exec(text)
      if (m === null) {
        return yield* usageOne(
          `${flag} ${sourceName(source)}`,
          "holds no PEM CERTIFICATE block",
          "give the leaf certificate as PEM",
        )
      }
      der = new Uint8Array(Buffer.from((m[1] ?? "").replace(/\s+/g, ""), "base64"))
    }
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
