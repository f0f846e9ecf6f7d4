/**
 * Conformance of the certificate data plane, driven by the real, unmodified
 * @azure/keyvault-certificates and @azure/keyvault-secrets over HTTPS, plus raw
 * requests where the wire itself is the subject.
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import type { CertificateClient } from "@azure/keyvault-certificates"
import type { SecretClient } from "@azure/keyvault-secrets"
import { decodePfx, encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, start } from "../src/index.js"
import { clients, errorOf, makeMaterial, pemBundle, pkcs1Pem, raw, type TestMaterial } from "./support.js"

let emulator: Emulator
let certificates: CertificateClient
let secrets: SecretClient
let material: TestMaterial
let other: TestMaterial
let origin: string

const pfxOf = (m: TestMaterial, password: string, encoding: "modern" | "legacy" = "modern") =>
  Effect.runPromise(
    encodePfx(
      { leaf: m.leafDer, chain: m.chainDer, key: Redacted.make(m.keyPkcs8) },
      { encoding, password: Redacted.make(password) },
    ),
  )

/** The SDK sends PEM text as-is only when told the content type (it base64-wraps anything else). */
const PEM = { policy: { contentType: "application/x-pem-file" } } as const

const x5t = (der: Uint8Array) => createHash("sha1").update(der).digest("base64url")

import { restError } from "./support.js"

beforeAll(async () => {
  emulator = await start({ vaults: ["conformance"] })
  ;({ certificates, secrets } = clients(emulator, "conformance"))
  ;[material, other] = await Promise.all([
    makeMaterial({ cn: "api.example.test" }),
    makeMaterial({ cn: "other.example.test" }),
  ])
  origin = emulator.vault("conformance").url
})
afterAll(() => emulator?.stop())

describe("challenge", () => {
  it("answers a body-less request without Authorization with 401 and the challenge, before reading the body", async () => {
    const res = await raw(emulator, "conformance", "GET", "/certificates/none/?api-version=2025-07-01")
    expect(res.status).toBe(401)
    expect(res.headers["www-authenticate"]).toBe(
      `Bearer authorization="${emulator.authorityHost}/${emulator.tenantId}", resource="https://vault.azure.net"`,
    )
    expect(errorOf(res.json)).toEqual({
      code: "Unauthorized",
      message: "AKV10000: Request is missing a Bearer or PoP token.",
    })
  })

  it("the SDK's first call is the challenge, then a token from Entra, then the real request", async () => {
    const mark = emulator.requests.mark()
    const { certificates: fresh } = clients(emulator, "conformance")
    await restError(fresh.getCertificate("does-not-exist"))
    const log = emulator.requests.entries({ since: mark })
    expect(log.map((e) => [e.vault, e.operation, e.status, e.challenge])).toEqual([
      ["conformance", "getLatest", 401, true],
      ["entra", "openidConfiguration", 200, false],
      ["entra", "token", 200, false],
      ["conformance", "getLatest", 404, false],
    ])
    expect(log[0]?.path).toBe("/certificates/does-not-exist/")
  })
})

describe("import and read", () => {
  let version = ""
  it("imports a password-protected PFX (base64) and answers the bundle Key Vault answers", async () => {
    const pfx = await pfxOf(material, "s3cret pw")
    const cert = await certificates.importCertificate("api", pfx, {
      password: "s3cret pw",
      tags: { env: "test" },
    })
    version = cert.properties.version ?? ""
    expect(version).toMatch(/^[0-9a-f]{32}$/)
    expect(cert.properties.id).toBe(`${origin}/certificates/api/${version}`)
    expect(cert.keyId).toBe(`${origin}/keys/api/${version}`)
    expect(cert.secretId).toBe(`${origin}/secrets/api/${version}`)
    expect(Buffer.from(cert.properties.x509Thumbprint ?? new Uint8Array()).toString("base64url")).toBe(
      x5t(material.leafDer),
    )
    expect(Buffer.from(cert.cer ?? new Uint8Array()).equals(Buffer.from(material.leafDer))).toBe(true)
    expect(cert.properties.tags).toEqual({ env: "test" })
    expect(cert.properties.recoveryLevel).toBe("Recoverable+Purgeable")
    expect(cert.properties.recoverableDays).toBe(90)
    expect(cert.policy?.issuerName).toBe("Unknown")
    expect(cert.policy?.contentType).toBe("application/x-pkcs12")
    const entry = emulator.requests.entries({ operation: "import", status: 200 }).at(-1)
    expect(entry?.request?.passwordSent).toBe(true)
    expect(JSON.stringify(entry)).not.toContain("s3cret")
  })

  it("serves latest (trailing slash) and by version, with Unix-second timestamps on the wire", async () => {
    const latest = await certificates.getCertificate("api")
    expect(latest.properties.version).toBe(version)
    const byVersion = await certificates.getCertificateVersion("api", version)
    expect(byVersion.properties.version).toBe(version)
    const token = emulator.issueToken(emulator.clientSecret.clientId)
    const res = await raw(emulator, "conformance", "GET", "/certificates/api/?api-version=2025-07-01", {
      token,
    })
    expect(res.status).toBe(200)
    const body = res.json as { id: string; attributes: Record<string, unknown>; x5t: string }
    expect(body.id).toBe(`${origin}/certificates/api/${version}`)
    expect(body.x5t).toBe(x5t(material.leafDer))
    const created = body.attributes.created
    expect(Number.isInteger(created)).toBe(true)
    expect(Math.abs(Number(created) - Date.now() / 1000)).toBeLessThan(120)
    expect(body.attributes.recoveryLevel).toBe("Recoverable+Purgeable")
    expect(body.attributes.recoverableDays).toBe(90)
  })

  it("serves the backing secret as a blank-password PFX that OpenSSL and the codec read, with the whole chain", async () => {
    const secret = await secrets.getSecret("api")
    expect(secret.properties.contentType).toBe("application/x-pkcs12")
    expect(secret.properties.managed).toBe(true)
    expect(secret.properties.certificateKeyId).toBe(`${origin}/keys/api/${version}`)
    expect(secret.properties.id).toBe(`${origin}/secrets/api/${version}`)
    const bytes = new Uint8Array(Buffer.from(secret.value ?? "", "base64"))
    const decoded = await Effect.runPromise(decodePfx(bytes, Redacted.make("")))
    expect(Buffer.from(decoded.leaf).equals(Buffer.from(material.leafDer))).toBe(true)
    expect(Buffer.from(Redacted.value(decoded.key)).equals(Buffer.from(material.keyPkcs8))).toBe(true)
    expect(decoded.chain.length).toBe(2)
    // OpenSSL reads the PFX from its standard input: the test writes no key to disk.
    const out = execFileSync("openssl", ["pkcs12", "-passin", "pass:", "-nodes"], {
      encoding: "utf8",
      input: bytes,
      stdio: ["pipe", "pipe", "pipe"],
    })
    expect(out.match(/BEGIN CERTIFICATE/g)?.length).toBe(3)
    expect(out).toContain("BEGIN PRIVATE KEY")
  })

  it("serves the public key of a version (JWK) at /keys/{n}/{v}", async () => {
    const token = emulator.issueToken(emulator.clientSecret.clientId)
    const res = await raw(emulator, "conformance", "GET", `/keys/api/${version}?api-version=2025-07-01`, {
      token,
    })
    expect(res.status).toBe(200)
    const key = (res.json as { key: Record<string, unknown>; managed: boolean }).key
    expect(key.kty).toBe("RSA")
    expect(key.kid).toBe(`${origin}/keys/api/${version}`)
    expect(typeof key.n).toBe("string")
    expect(key.d).toBeUndefined()
    expect((res.json as { managed: boolean }).managed).toBe(true)
  })

  it("detects PEM by content, keeps the leaf first unless preserveCertOrder, and serves PEM back", async () => {
    const reversed =
      material.keyPem +
      [...material.chainPem.split(/(?<=-----END CERTIFICATE-----\n)/)].reverse().join("") +
      material.leafPem
    await certificates.importCertificate("pem-cert", Buffer.from(reversed), {
      policy: { contentType: "application/x-pem-file" },
    })
    const s = await secrets.getSecret("pem-cert")
    expect(s.properties.contentType).toBe("application/x-pem-file")
    const blocks = (s.value ?? "").match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? []
    expect(blocks[0]).toContain("PRIVATE KEY")
    expect(blocks[1]?.replace(/\s/g, "")).toBe(material.leafPem.replace(/\s/g, ""))
    expect(blocks.length).toBe(4)
    // preserveCertOrder keeps what was sent.
    await certificates.importCertificate("pem-ordered", Buffer.from(reversed), {
      policy: { contentType: "application/x-pem-file" },
      preserveCertificateOrder: true,
    })
    const kept = await secrets.getSecret("pem-ordered")
    const keptBlocks =
      (kept.value ?? "").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
    expect(keptBlocks.at(-1)?.replace(/\s/g, "")).toBe(material.leafPem.replace(/\s/g, ""))
  })

  it("records that the SDK's importCertificate drops `policy` and `enabled` (KEYVAULT.md), and what a pipeline policy puts on the wire", async () => {
    const mark = emulator.requests.mark()
    await certificates.importCertificate("sdk-bug", Buffer.from(pemBundle(material)), {
      policy: { contentType: "application/x-pem-file", exportable: false, issuerName: "Unknown" },
      enabled: false,
    })
    const sent = emulator.requests.entries({ since: mark, operation: "import", status: 200 })[0]
    expect(sent?.request?.keys).not.toContain("policy")
    expect(sent?.request?.attributes).toBeUndefined()
    expect(sent?.request?.valueIsPem).toBe(true)
    // A client that adds the policy itself (as the azure-kv adapter must) is seen with it.
    const { CertificateClient } = await import("@azure/keyvault-certificates")
    const { secretCredential, clientOptions } = await import("./support.js")
    const patched = new CertificateClient(origin, secretCredential(emulator), {
      ...clientOptions(emulator),
      additionalPolicies: [
        {
          position: "perCall",
          policy: {
            name: "add-import-policy",
            sendRequest: (req, next) => {
              if (req.method === "POST" && req.url.includes("/import") && typeof req.body === "string") {
                const b = JSON.parse(req.body) as Record<string, unknown>
                req.body = JSON.stringify({
                  ...b,
                  policy: {
                    key_props: { exportable: false },
                    secret_props: { contentType: "application/x-pem-file" },
                  },
                })
              }
              return next(req)
            },
          },
        },
      ],
    })
    const mark2 = emulator.requests.mark()
    await patched.importCertificate("with-policy", Buffer.from(pemBundle(material)), {
      policy: { contentType: "application/x-pem-file" },
    })
    const withPolicy = emulator.requests.entries({ since: mark2, operation: "import", status: 200 })[0]
    expect(withPolicy?.request?.policy).toEqual({
      key_props: { exportable: false },
      secret_props: { contentType: "application/x-pem-file" },
    })
    // Not exportable: the backing secret has no private key.
    const s = await secrets.getSecret("with-policy")
    expect(s.value).not.toContain("PRIVATE KEY")
    expect(s.value).toContain("BEGIN CERTIFICATE")
  })
})

describe("versions, list, properties, policy", () => {
  it("a retention under 90 days is reported as CustomizedRecoverable+Purgeable, as Key Vault does", async () => {
    const short = await start({ vaults: ["short-retention"], recoverableDays: 7 })
    try {
      const { certificates: c } = clients(short, "short-retention")
      const imported = await c.importCertificate("kept-7-days", Buffer.from(pemBundle(material)), PEM)
      expect(imported.properties.recoverableDays).toBe(7)
      expect(imported.properties.recoveryLevel).toBe("CustomizedRecoverable+Purgeable")
    } finally {
      await short.stop()
    }
  })

  it("an RSA import over an EC certificate leaves no curve in the key properties", async () => {
    const ec = await makeMaterial({ keyAlg: "EC" })
    await certificates.importCertificate("ec-then-rsa", Buffer.from(pemBundle(ec)), PEM)
    expect((await certificates.getCertificatePolicy("ec-then-rsa")).keyCurveName).toBe("P-256")
    const rsa = await makeMaterial({ keyAlg: "RSA" })
    await certificates.importCertificate("ec-then-rsa", Buffer.from(pemBundle(rsa)), PEM)
    const policy = await certificates.getCertificatePolicy("ec-then-rsa")
    expect(policy.keyType).toBe("RSA")
    expect(policy.keyCurveName).toBeUndefined()
    expect(policy.keySize).toBe(2048)
  })

  it("lists no versions (200, empty) for a name that never held a certificate; 404 for a soft-deleted one", async () => {
    const versions: Array<string> = []
    for await (const v of certificates.listPropertiesOfCertificateVersions("never-held"))
      versions.push(v.version ?? "")
    expect(versions).toEqual([])
    await certificates.importCertificate("held-then-deleted", Buffer.from(pemBundle(material)), PEM)
    await (
      await certificates.beginDeleteCertificate("held-then-deleted", { intervalInMs: 20 })
    ).pollUntilDone()
    const listing = async () => {
      for await (const _ of certificates.listPropertiesOfCertificateVersions("held-then-deleted")) {
      }
    }
    await expect(listing()).rejects.toMatchObject({ statusCode: 404 })
  })

  it("pages versions with maxresults and an absolute nextLink carrying api-version", async () => {
    for (let i = 0; i < 4; i++)
      await certificates.importCertificate("paged", Buffer.from(pemBundle(material)), PEM)
    const mark = emulator.requests.mark()
    const pages: number[] = []
    // The SDK passes `maxresults` through from the options object (not `maxPageSize`).
    const options: { maxresults: number } & NonNullable<
      Parameters<CertificateClient["listPropertiesOfCertificateVersions"]>[1]
    > = {
      maxresults: 3,
    }
    for await (const page of certificates.listPropertiesOfCertificateVersions("paged", options).byPage())
      pages.push(page.length)
    expect(pages).toEqual([3, 1])
    const calls = emulator.requests
      .entries({ since: mark, operation: "versions" })
      .filter((e) => !e.challenge)
    expect(calls.length).toBe(2)
    expect(calls[0]?.query).toContain("maxresults=3")
    expect(calls[1]?.query).toMatch(/api-version=2025-07-01/)
    expect(calls[1]?.query).toContain("$skiptoken=")
    const token = emulator.issueToken(emulator.clientSecret.clientId)
    const first = await raw(
      emulator,
      "conformance",
      "GET",
      "/certificates/paged/versions?api-version=2025-07-01&maxresults=3",
      { token },
    )
    const nextLink = (first.json as { nextLink: string }).nextLink
    expect(nextLink.startsWith(`${origin}/certificates/paged/versions?api-version=2025-07-01&`)).toBe(true)
    const bad = await raw(
      emulator,
      "conformance",
      "GET",
      "/certificates/paged/versions?api-version=2025-07-01&maxresults=26",
      { token },
    )
    expect(bad.status).toBe(400)
    expect(errorOf(bad.json).code).toBe("BadParameter")
  })

  it("lists certificates (latest of each, id without version)", async () => {
    const names: string[] = []
    for await (const p of certificates.listPropertiesOfCertificates()) names.push(p.name ?? "")
    expect(names).toEqual(expect.arrayContaining(["api", "pem-cert", "paged"]))
    for await (const p of certificates.listPropertiesOfCertificates())
      expect(p.id).toMatch(new RegExp(`^${origin}/certificates/[^/]+$`))
  })

  it("updates enabled and tags; a disabled version's secret answers 403 like Key Vault", async () => {
    const latest = await certificates.getCertificate("paged")
    const updated = await certificates.updateCertificateProperties("paged", latest.properties.version ?? "", {
      enabled: false,
      tags: { owner: "team-a" },
    })
    expect(updated.properties.enabled).toBe(false)
    expect(updated.properties.tags).toEqual({ owner: "team-a" })
    const again = await certificates.getCertificate("paged")
    expect(again.properties.enabled).toBe(false)
    const e = await restError(secrets.getSecret("paged"))
    expect(e.statusCode).toBe(403)
    expect(e.code).toBe("Forbidden")
  })

  it("gets and updates the policy", async () => {
    const policy = await certificates.getCertificatePolicy("api")
    expect(policy.exportable).toBe(true)
    expect(policy.subject).toContain("CN=api.example.test")
    expect(policy.subjectAlternativeNames?.dnsNames).toEqual(["api.example.test"])
    expect(policy.keyUsage).toEqual(["digitalSignature", "keyEncipherment"])
    expect(policy.enhancedKeyUsage).toEqual(["1.3.6.1.5.5.7.3.1"])
    expect(policy.keyType).toBe("RSA")
    expect(policy.keySize).toBe(2048)
    // SDK 4.10.3 answers an empty policy from updateCertificatePolicy (its parsedBody is never
    // assigned), so read the policy back instead of trusting the return value.
    await certificates.updateCertificatePolicy("api", {
      ...policy,
      contentType: "application/x-pem-file",
      lifetimeActions: [{ action: "AutoRenew", lifetimePercentage: 90 }],
    })
    const read = await certificates.getCertificatePolicy("api")
    expect(read.contentType).toBe("application/x-pem-file")
    expect(read.lifetimeActions?.[0]?.action).toBe("AutoRenew")
    expect(
      emulator.requests.entries({ operation: "updatePolicy", status: 200 }).at(-1)?.request?.policy,
    ).toMatchObject({
      secret_props: { contentType: "application/x-pem-file" },
    })
  })
})

describe("create with the self-signed issuer", () => {
  it("answers 202 with a pending operation that completes quickly", async () => {
    const poller = await certificates.beginCreateCertificate(
      "self-made",
      {
        issuerName: "Self",
        subject: "CN=self.example.test",
        validityInMonths: 6,
        keyType: "EC",
        keyCurveName: "P-256",
      },
      { intervalInMs: 50 },
    )
    const cert = await poller.pollUntilDone()
    expect(cert.properties.version).toMatch(/^[0-9a-f]{32}$/)
    expect(cert.policy?.issuerName).toBe("Self")
    const ops = emulator.requests.entries({ operation: "create" }).filter((e) => !e.challenge)
    expect(ops.at(-1)?.status).toBe(202)
    const op = await certificates.getCertificateOperation("self-made")
    expect(op.getOperationState().isCompleted).toBe(true)
  })
})

describe("pending operations for other issuers", () => {
  it("an Unknown-issuer create stays inProgress (waiting for a merge); a cancel is only noted; deleting the operation leaves the disabled version", async () => {
    const mark = emulator.requests.mark()
    await certificates.beginCreateCertificate(
      "awaiting-merge",
      { issuerName: "Unknown", subject: "CN=merge.example.test" },
      { intervalInMs: 50 },
    )
    expect(emulator.requests.entries({ since: mark, operation: "create" }).at(-1)?.status).toBe(202)
    const pending = await certificates.getCertificateOperation("awaiting-merge", { intervalInMs: 50 })
    const op = pending.getOperationState().certificateOperation
    expect(op?.status).toBe("inProgress")
    expect(op?.csr?.length ?? 0).toBeGreaterThan(100)
    // Like Key Vault, the pending certificate is visible (no cer, disabled) before the merge.
    const waiting = await certificates.getCertificate("awaiting-merge")
    expect(waiting.cer).toBeUndefined()
    expect(waiting.properties.enabled).toBe(false)
    await pending.cancelOperation()
    expect(emulator.requests.entries({ operation: "cancelOperation" }).at(-1)?.status).toBe(200)
    // As Key Vault answers a cancel (the SDK's recorded cancels): requested, still in progress.
    const cancelled = (await certificates.getCertificateOperation("awaiting-merge")).getOperationState()
      .certificateOperation
    expect(cancelled?.status).toBe("inProgress")
    expect(cancelled?.cancellationRequested).toBe(true)
    await certificates.deleteCertificateOperation("awaiting-merge")
    const gone = await restError(certificates.getCertificateOperation("awaiting-merge"))
    expect(gone.statusCode).toBe(404)
    expect(gone.code).toBe("PendingCertificateNotFound")
    // The create's version stays (Key Vault's recording reads it after the delete): disabled, no
    // certificate. Not completely provisioned, so listed only with includePending (as it was while
    // its create was pending), and listed so.
    const left = await certificates.getCertificate("awaiting-merge")
    expect(left.cer).toBeUndefined()
    expect(left.properties.enabled).toBe(false)
    expect(left.properties.version).toBe(waiting.properties.version)
    const names: Array<string | undefined> = []
    for await (const p of certificates.listPropertiesOfCertificates()) names.push(p.name)
    expect(names).not.toContain("awaiting-merge")
    const listed: Array<{ name?: string; enabled?: boolean; x509Thumbprint?: Uint8Array }> = []
    for await (const p of certificates.listPropertiesOfCertificates({ includePending: true })) listed.push(p)
    const item = listed.find((p) => p.name === "awaiting-merge")
    expect(item).toBeDefined()
    expect(item?.enabled).toBe(false)
    expect(item?.x509Thumbprint).toBeUndefined()
    // Its versions: that one version, as the latest read names it.
    const versions: Array<{ version?: string; enabled?: boolean }> = []
    for await (const v of certificates.listPropertiesOfCertificateVersions("awaiting-merge")) versions.push(v)
    expect(versions.map((v) => [v.version, v.enabled])).toEqual([[waiting.properties.version, false]])
    // No operation stands in the way now: an import lands.
    await certificates.importCertificate("awaiting-merge", Buffer.from(pemBundle(material)), PEM)
    const imported = await certificates.getCertificate("awaiting-merge")
    expect(Buffer.from(imported.cer ?? []).equals(material.leafDer)).toBe(true)
  })
})

describe("an operation in progress", () => {
  it("refuses imports and creates (409) while a certificate's operation is inProgress, cancelled or not; once it is deleted, an import lands", async () => {
    // A deployed certificate whose renewal waits for a CA (or a merge): Key Vault takes no import.
    await certificates.importCertificate("renewing", Buffer.from(pemBundle(material)), PEM)
    await certificates.beginCreateCertificate("renewing", { issuerName: "Unknown", subject: "CN=renewing" })
    const refused = await restError(
      certificates.importCertificate("renewing", Buffer.from(pemBundle(other)), PEM),
    )
    expect(refused.statusCode).toBe(409)
    expect(refused.code).toBe("Forbidden")
    expect(refused.message).toBe(
      "A new key vault certificate can not be created or imported while a pending key vault certificate's status is inProgress.",
    )
    expect(
      (
        await restError(
          certificates.beginCreateCertificate("renewing", { issuerName: "Self", subject: "CN=x" }),
        )
      ).statusCode,
    ).toBe(409)
    expect((await certificates.getCertificate("renewing")).properties.x509Thumbprint).toBeDefined()
    await certificates.deleteCertificateOperation("renewing")
    await certificates.importCertificate("renewing", Buffer.from(pemBundle(other)), PEM)
    expect(Buffer.from((await certificates.getCertificate("renewing")).cer ?? []).equals(other.leafDer)).toBe(
      true,
    )
    // A cancel only requests one: the operation stays in progress, and still refuses imports.
    await certificates.beginCreateCertificate("renewing", { issuerName: "Unknown", subject: "CN=renewing" })
    await (await certificates.getCertificateOperation("renewing")).cancelOperation()
    expect(
      (await restError(certificates.importCertificate("renewing", Buffer.from(pemBundle(material)), PEM)))
        .statusCode,
    ).toBe(409)
    await certificates.deleteCertificateOperation("renewing")
    await certificates.importCertificate("renewing", Buffer.from(pemBundle(material)), PEM)
    expect((await restError(certificates.getCertificateOperation("renewing"))).statusCode).toBe(404)
  })
})

describe("soft delete", () => {
  it("deletes, refuses the name with 409 ObjectIsDeletedButRecoverable, recovers, deletes and purges (204)", async () => {
    await certificates.importCertificate("doomed", Buffer.from(pemBundle(other)), PEM)
    const del = await certificates.beginDeleteCertificate("doomed", { intervalInMs: 50 })
    const deleted = await del.pollUntilDone()
    expect(deleted.recoveryId).toBe(`${origin}/deletedcertificates/doomed`)
    expect(deleted.deletedOn).toBeInstanceOf(Date)
    expect((deleted.scheduledPurgeDate?.getTime() ?? 0) - (deleted.deletedOn?.getTime() ?? 0)).toBe(
      90 * 86_400_000,
    )
    const got = await certificates.getDeletedCertificate("doomed")
    expect(got.name).toBe("doomed")
    const e404 = await restError(certificates.getCertificate("doomed"))
    expect(e404.statusCode).toBe(404)
    const conflict = await restError(
      certificates.importCertificate("doomed", Buffer.from(pemBundle(other)), PEM),
    )
    expect(conflict.statusCode).toBe(409)
    expect(conflict.code).toBe("Conflict")
    expect(conflict.message).toBe(
      "Certificate doomed is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the certificate can only be recovered or purged.",
    )
    const body = errorOf(
      (
        await raw(emulator, "conformance", "POST", "/certificates/doomed/import?api-version=2025-07-01", {
          token: emulator.issueToken(emulator.clientSecret.clientId),
          body: { value: pemBundle(other) },
        })
      ).json,
    )
    expect(body.innererror?.code).toBe("ObjectIsDeletedButRecoverable")
    const rec = await certificates.beginRecoverDeletedCertificate("doomed", { intervalInMs: 50 })
    const recovered = await rec.pollUntilDone()
    expect(recovered.name).toBe("doomed")
    await (await certificates.beginDeleteCertificate("doomed", { intervalInMs: 50 })).pollUntilDone()
    const listed: string[] = []
    for await (const d of certificates.listDeletedCertificates()) listed.push(d.name ?? "")
    expect(listed).toContain("doomed")
    const mark = emulator.requests.mark()
    await certificates.purgeDeletedCertificate("doomed")
    expect(emulator.requests.entries({ since: mark, operation: "purge" }).at(-1)?.status).toBe(204)
    const gone = await restError(certificates.getDeletedCertificate("doomed"))
    expect(gone.statusCode).toBe(404)
    expect(gone.message).toBe("Deleted Certificate not found: doomed")
    // The name is free again.
    await certificates.importCertificate("doomed", Buffer.from(pemBundle(other)), PEM)
  })
})

describe("an import's content type: detected by default, stated as Key Vault requires it with importContentType: required", () => {
  const API = "api-version=2025-07-01"
  let strict: Emulator
  const importRaw = (vault: Emulator, name: string, body: unknown) =>
    raw(vault, vault.vaults[0]?.name ?? "", "POST", `/certificates/${name}/import?${API}`, {
      token: vault.issueToken(vault.clientSecret.clientId),
      body,
    })
  beforeAll(async () => {
    strict = await start({ vaults: ["strict"], importContentType: "required", warn: () => {} })
  })
  afterAll(() => strict?.stop())

  it("by default PEM text is recognised by its content, with no policy or a policy without a content type", async () => {
    const none = await importRaw(emulator, "detected-no-policy", { value: pemBundle(material) })
    expect(none.status).toBe(200)
    const noType = await importRaw(emulator, "detected-no-type", {
      value: pemBundle(material),
      policy: { key_props: { exportable: true, kty: "RSA", key_size: 2048, reuse_key: false } },
    })
    expect(noType.status).toBe(200)
    expect(emulator.state.versions("conformance", "detected-no-type")?.[0]?.contentType).toBe(
      "application/x-pem-file",
    )
  })

  it("a policy without secret_props.contentType is 400 'Property policy has invalid value' (azure-sdk-for-go#21780)", async () => {
    for (const value of [pemBundle(material), Buffer.from(await pfxOf(material, "")).toString("base64")]) {
      const res = await importRaw(strict, "no-type", {
        value,
        policy: {
          key_props: { exportable: true, kty: "RSA", key_size: 2048, reuse_key: false },
          lifetime_actions: [
            { trigger: { days_before_expiry: 5 }, action: { action_type: "EmailContacts" } },
          ],
        },
      })
      expect([res.status, res.json]).toEqual([
        400,
        { error: { code: "BadParameter", message: "Property policy has invalid value\r\n" } },
      ])
    }
    expect((await importRaw(strict, "no-type", { value: pemBundle(material), policy: {} })).status).toBe(400)
    expect(strict.state.versions("strict", "no-type")).toBeUndefined()
  })

  it("PEM text not stated as application/x-pem-file is read as PKCS#12 and refused, not sniffed", async () => {
    const unreadable = {
      error: {
        code: "BadParameter",
        message:
          "The specified PKCS#12 X.509 certificate content can not be read. Please check if certificate is in valid PKCS#12 format.",
      },
    }
    const noPolicy = await importRaw(strict, "pem", { value: pemBundle(material) })
    expect([noPolicy.status, noPolicy.json]).toEqual([400, unreadable])
    const statedPfx = await importRaw(strict, "pem", {
      value: pemBundle(material),
      policy: { secret_props: { contentType: "application/x-pkcs12" } },
    })
    expect([statedPfx.status, statedPfx.json]).toEqual([400, unreadable])
    // And PKCS#12 stated as PEM is unreadable PEM.
    const pfx = Buffer.from(await pfxOf(material, "")).toString("base64")
    const statedPem = await importRaw(strict, "pem", {
      value: pfx,
      policy: { secret_props: { contentType: "application/x-pem-file" } },
    })
    expect(statedPem.status).toBe(400)
    expect(errorOf(statedPem.json).message).toMatch(/^The specified PEM X.509 certificate content/)
    expect(strict.state.versions("strict", "pem")).toBeUndefined()
  })

  it("what states its format is taken: PEM stated as PEM, PKCS#12 with no policy or stated as PKCS#12", async () => {
    const { certificates: sdk } = clients(strict, "strict")
    // The SDK (4.9.0-4.10.3) sends PEM text but drops the policy that states it (KEYVAULT.md): refused,
    // as Key Vault refuses it. A client has to put the policy on the wire itself.
    const dropped = await restError(
      sdk.importCertificate("pem-stated", Buffer.from(pemBundle(material)), PEM),
    )
    expect([dropped.statusCode, dropped.message]).toEqual([
      400,
      "The specified PKCS#12 X.509 certificate content can not be read. Please check if certificate is in valid PKCS#12 format.",
    ])
    const pem = await importRaw(strict, "pem-stated", {
      value: pemBundle(material),
      policy: { secret_props: { contentType: "application/x-pem-file" } },
    })
    expect(pem.status).toBe(200)
    const pfx = Buffer.from(await pfxOf(material, "pw"))
    await sdk.importCertificate("pfx-plain", pfx, { password: "pw" })
    const stated = await importRaw(strict, "pfx-stated", {
      value: pfx.toString("base64"),
      pwd: "pw",
      policy: { secret_props: { contentType: "application/x-pkcs12" }, key_props: { exportable: true } },
    })
    expect(stated.status).toBe(200)
    expect(
      ["pem-stated", "pfx-plain", "pfx-stated"].map(
        (n) => strict.state.versions("strict", n)?.[0]?.contentType,
      ),
    ).toEqual(["application/x-pem-file", "application/x-pkcs12", "application/x-pkcs12"])
  })

  it("an importContentType other than detect or required is refused at start, naming both", async () => {
    await expect(
      start({ vaults: ["x"], importContentType: "sniff" as never, warn: () => {} }),
    ).rejects.toThrow(
      /importContentType must be "detect" \(PEM recognised by its content, the default\) or "required"/,
    )
  })
})

describe("refusals, with Key Vault's codes and messages", () => {
  it("404 CertificateNotFound", async () => {
    const e = await restError(certificates.getCertificate("nope"))
    expect(e.statusCode).toBe(404)
    expect(e.code).toBe("CertificateNotFound")
    expect(e.message).toMatch(/^A certificate with \(name\/id\) nope was not found in this key vault\./)
  })

  it("refuses an expired certificate", async () => {
    const expired = await makeMaterial({
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    })
    const e = await restError(certificates.importCertificate("expired", Buffer.from(pemBundle(expired)), PEM))
    expect(e.statusCode).toBe(400)
    expect(e.code).toBe("BadParameter")
    expect(e.message).toBe("X509 Certificate is already expired")
  })

  it("refuses a key that matches no certificate", async () => {
    const mismatched = other.keyPem + material.leafPem + material.chainPem
    const e = await restError(certificates.importCertificate("mismatch", Buffer.from(mismatched), PEM))
    expect(e.statusCode).toBe(400)
    expect(e.message).toMatch(
      /^No certificate with private key found in the specified X.509 certificate content/,
    )
  })

  it("refuses a PKCS#1 (RSA PRIVATE KEY) PEM key and a PEM without a key", async () => {
    const e = await restError(
      certificates.importCertificate("pkcs1", Buffer.from(pkcs1Pem(material) + material.leafPem), PEM),
    )
    expect(e.statusCode).toBe(400)
    expect(e.code).toBe("BadParameter")
    const noKey = await restError(certificates.importCertificate("nokey", Buffer.from(material.leafPem), PEM))
    expect(noKey.message).toMatch(/^Private key is not specified/)
  })

  it("refuses a value over 25 KB, a wrong PFX password and a bad name", async () => {
    const big = material.keyPem + material.leafPem + material.chainPem.repeat(12)
    expect(big.length).toBeGreaterThan(25 * 1024)
    const e = await restError(certificates.importCertificate("big", Buffer.from(big), PEM))
    expect(e.statusCode).toBe(400)
    const pfx = await pfxOf(material, "right")
    const wrong = await restError(certificates.importCertificate("wrongpw", pfx, { password: "wrong" }))
    expect(wrong.statusCode).toBe(400)
    const token = emulator.issueToken(emulator.clientSecret.clientId)
    const badName = await raw(
      emulator,
      "conformance",
      "POST",
      "/certificates/bad_name/import?api-version=2025-07-01",
      {
        token,
        body: { value: pemBundle(material) },
      },
    )
    expect(badName.status).toBe(400)
    expect(errorOf(badName.json).code).toBe("BadParameter")
  })

  it("refuses an RSA leaf signed with ECDSA (issued by an EC CA) as Key Vault does: KeySizeNotSupported, the key's size", async () => {
    const mixed = await makeMaterial({ cn: "mixed.example.test", caKeyAlg: "EC" })
    const e = await restError(certificates.importCertificate("mixed", Buffer.from(pemBundle(mixed)), PEM))
    expect([e.statusCode, e.code, e.message]).toEqual([
      400,
      "BadParameter",
      "Unsupported key size (2048). Supported sizes are [256, 384, 521]",
    ])
    const token = emulator.issueToken(emulator.clientSecret.clientId)
    const pfx = await pfxOf(mixed, "")
    const res = await raw(
      emulator,
      "conformance",
      "POST",
      "/certificates/mixed/import?api-version=2025-07-01",
      {
        token,
        body: { value: Buffer.from(pfx).toString("base64") },
      },
    )
    expect(res.status).toBe(400)
    expect(res.json).toEqual({
      error: {
        code: "BadParameter",
        message: "Unsupported key size (2048). Supported sizes are [256, 384, 521]",
        innererror: { code: "KeySizeNotSupported" },
      },
    })
    // An EC leaf an RSA CA issued is taken (the usual ECDSA leaf under an RSA root).
    const ecUnderRsa = await makeMaterial({ cn: "ec.example.test", keyAlg: "EC" })
    const ok = await certificates.importCertificate("ec-under-rsa", Buffer.from(pemBundle(ecUnderRsa)), PEM)
    expect(ok.properties.x509Thumbprint).toBeDefined()
  })

  it("nothing refused above left a version behind", () => {
    for (const n of ["expired", "mismatch", "pkcs1", "nokey", "big", "wrongpw", "mixed"])
      expect(emulator.state.versions("conformance", n)).toBeUndefined()
  })
})
