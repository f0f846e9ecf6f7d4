/** Preflight's warnings: what may break a client without stopping a deploy (an expired chain certificate, no chain). */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { type CertificateFacts, type InspectedMaterial, materialWarnings } from "../src/index.js"
import { AuditRecords, issue, makeAuthority } from "../src/testing/index.js"
import { expectTag, fresh, request, runDeploy } from "./fixtures.js"

const ca = makeAuthority("warnings")
const leafCert = issue({ seed: "warned", issuer: ca })

const day = 86_400_000
const now = Date.parse("2026-12-01T00:00:00Z")
const facts = (subject: string, issuer: string, notBefore: number, notAfter: number): CertificateFacts => ({
  serialHex: "1",
  x5t: `x5t-${subject}`,
  sha256Thumbprint: "00",
  subject,
  issuer,
  sans: [],
  notBefore: new Date(notBefore),
  notAfter: new Date(notAfter),
  keyType: "EC",
  curve: "P-256",
  selfSigned: subject === issuer,
  der: new Uint8Array(),
})
const inspected = (leaf: CertificateFacts, chain: ReadonlyArray<CertificateFacts>): InspectedMaterial => ({
  leaf,
  chain,
  key: { keyType: "EC", curve: "P-256" },
  keyMatchesLeaf: true,
  problems: [],
})
const leaf = facts("CN=api", "CN=Intermediate", now - day, now + 90 * day)

describe("materialWarnings", () => {
  it("a leaf with less than a tenth of its validity left, and none with more", () => {
    const chain = [facts("CN=Intermediate", "CN=Root", now - 400 * day, now + 400 * day)]
    // 90 days of validity, 8 left: the warning, with the expiry and the time left.
    const [late, ...more] = materialWarnings(
      inspected(facts("CN=api", "CN=Intermediate", now - 82 * day, now + 8 * day), chain),
      now,
    )
    assert.strictEqual(late?.field, "leaf")
    assert.match(
      late?.message ?? "",
      /^expires at 2026-12-09T00:00:00.000Z, in 8 d: less than a tenth of its validity is left/,
    )
    assert.match(late?.fix ?? "", /deploy a renewed certificate before then/)
    assert.deepStrictEqual(more, [])
    // Minutes left of a day's certificate: said in minutes.
    assert.match(
      materialWarnings(
        inspected(facts("CN=api", "CN=Intermediate", now - day + 45 * 60_000, now + 45 * 60_000), chain),
        now,
      )[0]?.message ?? "",
      /, in 45 min: /,
    )
    // A short-lived certificate fresh from its issuer (a day's validity, all of it left), and a
    // 90-day one with 10 days left, are not warned about.
    assert.deepStrictEqual(
      materialWarnings(inspected(facts("CN=api", "CN=Intermediate", now, now + day), chain), now),
      [],
    )
    assert.deepStrictEqual(
      materialWarnings(
        inspected(facts("CN=api", "CN=Intermediate", now - 80 * day, now + 10 * day), chain),
        now,
      ),
      [],
    )
  })

  it("a chain certificate outside its validity window, and none else", () => {
    const warnings = materialWarnings(
      inspected(leaf, [
        facts("CN=Intermediate", "CN=Root", now - 400 * day, now - 10 * day),
        facts("CN=Root", "CN=Root", now + day, now + 3650 * day),
      ]),
      now,
    )
    assert.deepStrictEqual(
      warnings.map((w) => w.field),
      ["chain[0]", "chain[1]"],
    )
    assert.match(warnings[0]?.message ?? "", /^CN=Intermediate expired at 2026-11-21T00:00:00.000Z: a client/)
    assert.match(warnings[0]?.fix ?? "", /the chain your CA serves now/)
    assert.match(warnings[1]?.message ?? "", /^CN=Root is not valid before 2026-12-02/)
    assert.match(warnings[1]?.fix ?? "", /leave it out if clients do not need it/)
    assert.deepStrictEqual(
      materialWarnings(
        inspected(leaf, [facts("CN=Intermediate", "CN=Root", now - day, now + 400 * day)]),
        now,
      ),
      [],
    )
  })

  it("the leaf's issuer expiring before the leaf; not a cross-signed certificate above it, nor a root", () => {
    // A chain file kept from before the CA re-issued its intermediate: it ends in 5 days, the leaf in 90.
    const [only, ...more] = materialWarnings(
      inspected(leaf, [facts("CN=Intermediate", "CN=Root", now - 400 * day, now + 5 * day)]),
      now,
    )
    assert.strictEqual(only?.field, "chain[0]")
    assert.strictEqual(
      only?.message,
      "CN=Intermediate, the leaf's issuer, expires at 2026-12-06T00:00:00.000Z, in 5 d, before the leaf (2027-03-01T00:00:00.000Z): from then on a client that builds its path from the chain served refuses the leaf, whose own expiry is later",
    )
    assert.match(only?.fix ?? "", /the chain your CA serves now/)
    assert.deepStrictEqual(more, [])
    // Above the issuer: a cross-signed root ending before the leaf (kept for old clients), and a
    // root whose certificate ends before it: nothing to say.
    assert.deepStrictEqual(
      materialWarnings(
        inspected(leaf, [
          facts("CN=Intermediate", "CN=Root", now - day, now + 400 * day),
          facts("CN=Root", "CN=Old Root", now - 400 * day, now + 5 * day),
        ]),
        now,
      ),
      [],
    )
    const selfIssued = facts("CN=Root CA", "CN=Root CA", now - 400 * day, now + 5 * day)
    assert.deepStrictEqual(
      materialWarnings(
        inspected(facts("CN=api", "CN=Root CA", now - day, now + 90 * day), [selfIssued]),
        now,
      ),
      [],
    )
  })

  it("a CA-issued leaf without a chain; a self-signed leaf needs none", () => {
    const [only, ...more] = materialWarnings(inspected(leaf, []), now)
    assert.strictEqual(only?.field, "chain")
    assert.match(only?.message ?? "", /none given, and the leaf is issued by CN=Intermediate/)
    assert.match(only?.fix ?? "", /fullchain\.pem, not cert\.pem/)
    assert.deepStrictEqual(more, [])
    assert.deepStrictEqual(
      materialWarnings(inspected(facts("CN=self", "CN=self", now - day, now + 90 * day), []), now),
      [],
    )
    // A chain given that held only copies of the leaf (dropped by the codec) is said so, not "none given".
    const [copy] = materialWarnings(inspected(leaf, []), now, undefined, 1)
    assert.strictEqual(copy?.field, "chain")
    assert.match(
      copy?.message ?? "",
      /^holds only the leaf itself \(each certificate given as the chain is a copy of the leaf\), and the leaf is issued by CN=Intermediate/,
    )
    // With front_door named, its consumer warning says it (one warning, naming Front Door).
    assert.deepStrictEqual(materialWarnings(inspected(leaf, []), now, ["front_door"]), [])
    assert.deepStrictEqual(
      materialWarnings(inspected(leaf, []), now, ["app_service"]).map((w) => w.field),
      ["chain"],
    )
  })

  it("a CA-issued leaf read from a PFX without a chain: the fix exports the PFX again with it, not fullchain.pem", () => {
    const [only, ...more] = materialWarnings(inspected(leaf, []), now, undefined, 0, "pfx")
    assert.deepStrictEqual(more, [])
    assert.match(only?.message ?? "", /^none given, and the leaf is issued by CN=Intermediate/)
    assert.strictEqual(
      only?.fix,
      "export the PFX again with the issuer's chain in it (openssl pkcs12 -export -inkey key.pem -in cert.pem -certfile chain.pem, or the exporting tool's option to include the chain), unless a root your clients trust issues the leaf directly",
    )
  })

  it("a leaf that is a CA made to issue certificates: its key is that CA's, said with the fix", () => {
    const caLeaf = {
      ...facts("CN=Issuing CA", "CN=Root", now - day, now + 900 * day),
      issuesCertificates: true,
    }
    const root = facts("CN=Root", "CN=Root", now - day, now + 3650 * day)
    const [only, ...more] = materialWarnings(inspected(caLeaf, [root]), now)
    assert.strictEqual(only?.field, "leaf")
    assert.match(
      only?.message ?? "",
      /^is a CA certificate \(CN=Issuing CA: basicConstraints CA:TRUE, key usage keyCertSign\)/,
    )
    assert.match(only?.message ?? "", /the key given with it is that CA's private key/)
    assert.match(only?.fix ?? "", /give the server certificate the CA issued and its key/)
    assert.deepStrictEqual(more, [])
    // Without the fact (an ordinary leaf, or a codec that does not read it), no such warning.
    assert.deepStrictEqual(
      materialWarnings(inspected({ ...caLeaf, issuesCertificates: false }, [root]), now),
      [],
    )
  })
})

describe("a deploy's warnings", () => {
  it.effect("are in the outcome and the audit record; a deploy without any has no warnings field", () =>
    fresh(
      Effect.gen(function* () {
        const audit = yield* AuditRecords
        const o = expectTag(yield* runDeploy(request({ ...leafCert.material, chain: [] })), "Succeeded")
        assert.deepStrictEqual(
          o.warnings?.map((w) => w.field),
          ["chain"],
        )
        assert.deepStrictEqual(audit.all()[0]?.warnings, o.warnings)
        const withChain = expectTag(
          yield* runDeploy(request(issue({ seed: "w2", issuer: ca }).material)),
          "Succeeded",
        )
        assert.isFalse("warnings" in withChain)
        assert.isFalse("warnings" in (audit.all()[1] ?? {}))
      }),
    ),
  )

  it.effect(
    "a certificate that expires before the served one is imported with a warning; one that does not, without",
    () =>
      fresh(
        Effect.gen(function* () {
          const farOff = new Date(4_102_444_800_000 - 2 * day)
          const sooner = new Date(4_102_444_800_000 - 200 * day)
          const served = expectTag(
            yield* runDeploy(request(issue({ seed: "served-later", issuer: ca, notAfter: farOff }).material)),
            "Succeeded",
          )
          assert.isFalse("warnings" in served)
          const older = expectTag(
            yield* runDeploy(request(issue({ seed: "older", issuer: ca, notAfter: sooner }).material)),
            "Succeeded",
          )
          assert.deepStrictEqual(
            older.warnings?.map((w) => w.field),
            ["leaf"],
          )
          assert.strictEqual(
            older.warnings?.[0]?.message,
            `expires at ${sooner.toISOString()}, before the certificate the vault serves (${served.versionId}, expiring at ${farOff.toISOString()}): an older certificate replaces a newer one`,
          )
          assert.match(older.warnings?.[0]?.fix ?? "", /deploy the newer one again/)
          // The newer one deployed again over the older: nothing to say.
          const newer = expectTag(
            yield* runDeploy(request(issue({ seed: "newer", issuer: ca, notAfter: farOff }).material)),
            "Succeeded",
          )
          assert.isFalse("warnings" in newer)
        }),
      ),
  )

  it.effect(
    "a renewal issued after the served certificate, with a shorter lifetime, is not called older; one issued no later is",
    () =>
      fresh(
        Effect.gen(function* () {
          const issuedAt = new Date(-100 * day)
          const served = expectTag(
            yield* runDeploy(
              request(
                issue({
                  seed: "long",
                  issuer: ca,
                  notBefore: issuedAt,
                  notAfter: new Date(issuedAt.getTime() + 398 * day),
                }).material,
              ),
            ),
            "Succeeded",
          )
          assert.isFalse("warnings" in served)
          // Issued 30 days later for 200 days: it expires before the served one, and is the newer.
          const renewal = expectTag(
            yield* runDeploy(
              request(
                issue({
                  seed: "shorter",
                  issuer: ca,
                  notBefore: new Date(issuedAt.getTime() + 30 * day),
                  notAfter: new Date(issuedAt.getTime() + 230 * day),
                }).material,
              ),
            ),
            "Succeeded",
          )
          assert.isFalse("warnings" in renewal)
          // Issued with the served one (the same notBefore) and expiring sooner: older, said so.
          const older = expectTag(
            yield* runDeploy(
              request(
                issue({
                  seed: "same-day",
                  issuer: ca,
                  notBefore: new Date(issuedAt.getTime() + 30 * day),
                  notAfter: new Date(issuedAt.getTime() + 200 * day),
                }).material,
              ),
            ),
            "Succeeded",
          )
          assert.match(older.warnings?.[0]?.message ?? "", /an older certificate replaces a newer one$/)
        }),
      ),
  )
})
