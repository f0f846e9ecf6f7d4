/**
 * Wire facts of KEYVAULT.md that a deploy's safety rests on (what `latest` is,
 * which version a call touches, what a refusal means, the service limits, the
 * throttling window, the token's tenant, RBAC's data actions) and the promised
 * fault and request-log behaviour, each checked where a plausible emulator bug
 * would break it. Driven by the real SDKs over HTTPS, raw HTTPS where the wire
 * itself is the subject.
 */
import type { CertificateClient } from "@azure/keyvault-certificates"
import { CertificateClient as Client } from "@azure/keyvault-certificates"
import type { SecretClient } from "@azure/keyvault-secrets"
import { encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type Emulator, start } from "../src/index.js"
import {
  admin,
  clientOptions,
  clients,
  errorOf,
  makeMaterial,
  pemBundle,
  raw,
  restError,
  secretCredential,
  type TestMaterial,
} from "./support.js"

const PEM = { policy: { contentType: "application/x-pem-file" } } as const
const API = "api-version=2025-07-01"
const OTHER_TENANT = "11111111-2222-3333-4444-555555555555"

let emulator: Emulator
let certificates: CertificateClient
let secrets: SecretClient
let material: TestMaterial
let pem: Buffer
let token: string

beforeAll(async () => {
  emulator = await start({
    vaults: [
      "facts",
      { name: "window", throttling: { windowMs: 3_000, writes: 100, others: 2 } },
      { name: "retry-after", throttling: { windowMs: 1_500, writes: 100, others: 1 } },
      { name: "writes", throttling: { windowMs: 60_000, writes: 1, others: 1_000 } },
      { name: "other-tenant", tenantId: OTHER_TENANT },
    ],
  })
  ;({ certificates, secrets } = clients(emulator, "facts"))
  material = await makeMaterial({ cn: "facts.example.test" })
  pem = Buffer.from(pemBundle(material))
  token = emulator.issueToken(emulator.clientSecret.clientId)
})
afterAll(() => emulator?.stop())
beforeEach(() => {
  emulator.faults.clear()
  emulator.rbac.reset()
})

const versionOf = (c: { properties: { version?: string | undefined } }): string => c.properties.version ?? ""
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("latest and versions", () => {
  it("latest is the version imported last, whatever its id sorts as", async () => {
    const imported: string[] = []
    // Version ids are random: import until the newest is not the greatest id (1 - 1/k each time).
    for (let i = 0; i < 20; i++) {
      imported.push(versionOf(await certificates.importCertificate("newest-wins", pem, PEM)))
      const last = imported.at(-1) ?? ""
      if (imported.length > 1 && imported.some((v) => v > last)) break
    }
    const last = imported.at(-1) ?? ""
    expect(imported.some((v) => v > last)).toBe(true)
    expect(versionOf(await certificates.getCertificate("newest-wins"))).toBe(last)
    const secret = await secrets.getSecret("newest-wins")
    expect(secret.properties.id).toBe(`${emulator.vault("facts").url}/secrets/newest-wins/${last}`)
  })

  it("a version that does not exist is 404 CertificateNotFound for get and update, never another version", async () => {
    await certificates.importCertificate("one-version", pem, PEM)
    const missing = "0123456789abcdef0123456789abcdef"
    const get = await restError(certificates.getCertificateVersion("one-version", missing))
    expect(get.statusCode).toBe(404)
    expect(get.code).toBe("CertificateNotFound")
    const update = await restError(
      certificates.updateCertificateProperties("one-version", missing, { enabled: false }),
    )
    expect(update.statusCode).toBe(404)
    expect(update.code).toBe("CertificateNotFound")
    expect((await certificates.getCertificate("one-version")).properties.enabled).toBe(true)
  })

  it("updating properties changes the version named in the path only; PATCH tags replace the old ones", async () => {
    const v1 = versionOf(
      await certificates.importCertificate("two-versions", pem, { ...PEM, tags: { a: "1", b: "2" } }),
    )
    const v2 = versionOf(
      await certificates.importCertificate("two-versions", pem, { ...PEM, tags: { a: "1" } }),
    )
    const updated = await certificates.updateCertificateProperties("two-versions", v1, {
      enabled: false,
      tags: { c: "3" },
    })
    expect(versionOf(updated)).toBe(v1)
    expect(updated.properties.enabled).toBe(false)
    expect(updated.properties.tags).toEqual({ c: "3" })
    const old = await certificates.getCertificateVersion("two-versions", v1)
    expect(old.properties.enabled).toBe(false)
    expect(old.properties.tags).toEqual({ c: "3" })
    const latest = await certificates.getCertificate("two-versions")
    expect(versionOf(latest)).toBe(v2)
    expect(latest.properties.enabled).toBe(true)
    expect(latest.properties.tags).toEqual({ a: "1" })
  })

  it("a disabled version's backing secret is 403 Forbidden when read by version too", async () => {
    const v1 = versionOf(await certificates.importCertificate("disabled-old", pem, PEM))
    await certificates.importCertificate("disabled-old", pem, PEM)
    await certificates.updateCertificateProperties("disabled-old", v1, { enabled: false })
    const e = await restError(secrets.getSecret("disabled-old", { version: v1 }))
    expect(e.statusCode).toBe(403)
    expect(e.code).toBe("Forbidden")
    expect((await secrets.getSecret("disabled-old")).value).toContain("BEGIN CERTIFICATE")
  })

  it("the latest version carries the certificate's policy; a version read or updated by its id does not", async () => {
    const imported = await certificates.importCertificate("policy-by-id", pem, PEM)
    const version = imported.properties.version ?? ""
    const policyOf = async (method: string, path: string, body?: unknown) =>
      (
        (
          await raw(emulator, "facts", method, `${path}?${API}`, {
            token,
            ...(body === undefined ? {} : { body }),
          })
        ).json as { policy?: unknown }
      ).policy
    expect(await policyOf("GET", "/certificates/policy-by-id/")).toBeDefined()
    expect(await policyOf("GET", `/certificates/policy-by-id/${version}`)).toBeUndefined()
    expect(
      await policyOf("PATCH", `/certificates/policy-by-id/${version}`, { tags: { a: "b" } }),
    ).toBeUndefined()
  })

  it("nextLink is null on the last page, also when that page is full", async () => {
    for (let i = 0; i < 4; i++) await certificates.importCertificate("four-versions", pem, PEM)
    const first = await raw(
      emulator,
      "facts",
      "GET",
      `/certificates/four-versions/versions?${API}&maxresults=2`,
      {
        token,
      },
    )
    const next = (first.json as { nextLink: string | null }).nextLink
    expect(next).not.toBeNull()
    const second = await raw(
      emulator,
      "facts",
      "GET",
      (next ?? "").slice(emulator.vault("facts").url.length),
      {
        token,
      },
    )
    const body = second.json as { value: unknown[]; nextLink: string | null }
    expect(body.value).toHaveLength(2)
    expect(body.nextLink).toBeNull()
  })
})

describe("what an import commits", () => {
  it("attributes.enabled = false on the import's wire body makes a disabled version", async () => {
    const res = await raw(emulator, "facts", "POST", `/certificates/imported-disabled/import?${API}`, {
      token,
      body: { value: pemBundle(material), attributes: { enabled: false } },
    })
    expect(res.status).toBe(200)
    expect((res.json as { attributes: { enabled: boolean } }).attributes.enabled).toBe(false)
    expect((await certificates.getCertificate("imported-disabled")).properties.enabled).toBe(false)
  })

  it("409 Conflict when a plain secret holds the name", async () => {
    await secrets.setSecret("plain-secret", "not a certificate")
    const e = await restError(certificates.importCertificate("plain-secret", pem, PEM))
    expect(e.statusCode).toBe(409)
    expect(e.code).toBe("Conflict")
    expect(emulator.state.versions("facts", "plain-secret")).toBeUndefined()
  })

  it("limits: at most 15 tags, names of at most 127 characters, a PFX password of at most 200", async () => {
    const tags = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`t${i}`, "v"]))
    expect(
      (await certificates.importCertificate("tags-15", pem, { ...PEM, tags: tags(15) })).properties.tags,
    ).toEqual(tags(15))
    const manyTags = await restError(
      certificates.importCertificate("tags-16", pem, { ...PEM, tags: tags(16) }),
    )
    expect(manyTags.statusCode).toBe(400)
    expect(manyTags.code).toBe("BadParameter")

    expect((await certificates.importCertificate("n".repeat(127), pem, PEM)).name).toBe("n".repeat(127))
    const longName = await restError(certificates.importCertificate("n".repeat(128), pem, PEM))
    expect(longName.statusCode).toBe(400)
    expect(longName.code).toBe("BadParameter")

    const pfx = (password: string) =>
      Effect.runPromise(
        encodePfx(
          { leaf: material.leafDer, chain: material.chainDer, key: Redacted.make(material.keyPkcs8) },
          { encoding: "modern", password: Redacted.make(password) },
        ),
      )
    const ok = "p".repeat(200)
    expect((await certificates.importCertificate("pw-200", await pfx(ok), { password: ok })).name).toBe(
      "pw-200",
    )
    const long = "p".repeat(201)
    const e = await restError(certificates.importCertificate("pw-201", await pfx(long), { password: long }))
    expect(e.statusCode).toBe(400)
    expect(e.code).toBe("BadParameter")
    for (const n of ["tags-16", "n".repeat(128), "pw-201"])
      expect(emulator.state.versions("facts", n)).toBeUndefined()
  })
})

describe("soft delete", () => {
  it("deleted lookups of an unknown name are 404 CertificateNotFound: get, recover and purge", async () => {
    for (const call of [
      certificates.getDeletedCertificate("never-deleted"),
      certificates.purgeDeletedCertificate("never-deleted"),
    ]) {
      const e = await restError(call)
      expect(e.statusCode).toBe(404)
      expect(e.code).toBe("CertificateNotFound")
      expect(e.message).toBe("Deleted Certificate not found: never-deleted")
    }
    // A recovery gets the plain not-found text (the SDK's recorded "recover ..., non-existing").
    const recover = await restError(certificates.beginRecoverDeletedCertificate("never-deleted"))
    expect(recover.statusCode).toBe(404)
    expect(recover.code).toBe("CertificateNotFound")
    expect(recover.message).toMatch(
      /^A certificate with \(name\/id\) never-deleted was not found in this key vault\. If you recently deleted this certificate you may be able to recover it/,
    )
  })

  it("scheduledPurgeDate is the deletion plus the vault's retention, not a fixed 90 days", async () => {
    const short = await start({ vaults: ["seven-days"], recoverableDays: 7 })
    try {
      const { certificates: c } = clients(short, "seven-days")
      await c.importCertificate("kept-7-days", pem, PEM)
      const deleted = await (
        await c.beginDeleteCertificate("kept-7-days", { intervalInMs: 20 })
      ).pollUntilDone()
      expect((deleted.scheduledPurgeDate?.getTime() ?? 0) - (deleted.deletedOn?.getTime() ?? 0)).toBe(
        7 * 86_400_000,
      )
    } finally {
      await short.stop()
    }
  })
})

describe("throttling", () => {
  const read = (vault: string) => raw(emulator, vault, "GET", `/certificates/none/?${API}`, { token })

  it("throttled requests do not count towards the window", async () => {
    // Window 3 s, 2 reads. Timed from the counted reads' end (tB): the refusals come at tB + 0.2 s,
    // while the counted reads are still in the window (a slow machine has 2.8 s for them); at
    // tB + 3.05 s the counted reads have left it and the refusals, had they counted, have not.
    expect([(await read("window")).status, (await read("window")).status]).toEqual([404, 404])
    const tB = Date.now()
    await sleep(200)
    for (let i = 0; i < 3; i++) expect((await read("window")).status).toBe(429)
    await sleep(Math.max(0, tB + 3_050 - Date.now()))
    expect((await read("window")).status).toBe(404)
  })

  it("a client that waits the Retry-After it was given is not throttled again", async () => {
    expect((await read("retry-after")).status).toBe(404)
    const throttled = await read("retry-after")
    expect(throttled.status).toBe(429)
    expect(errorOf(throttled.json).code).toBe("Throttled")
    const seconds = Number(throttled.headers["retry-after"])
    expect(seconds).toBeGreaterThanOrEqual(1)
    await sleep(seconds * 1000 + 50)
    expect((await read("retry-after")).status).toBe(404)
  })

  it("create and import share one write budget", async () => {
    const created = await raw(emulator, "writes", "POST", `/certificates/made/create?${API}`, {
      token,
      body: { policy: { issuer: { name: "Self" }, x509_props: { subject: "CN=made.example.test" } } },
    })
    expect(created.status).toBe(202)
    const imported = await raw(emulator, "writes", "POST", `/certificates/brought/import?${API}`, {
      token,
      body: { value: pemBundle(material) },
    })
    expect(imported.status).toBe(429)
    expect(errorOf(imported.json).code).toBe("Throttled")
    expect(imported.headers["retry-after"]).toBeDefined()
  })
})

describe("tokens and RBAC", () => {
  it("a vault refuses a token issued for another tenant than its own (401 with its challenge)", async () => {
    const id = emulator.clientSecret.clientId
    const home = await raw(emulator, "other-tenant", "GET", `/certificates/none/?${API}`, {
      token: emulator.issueToken(id),
    })
    expect(home.status).toBe(401)
    expect(errorOf(home.json).code).toBe("Unauthorized")
    expect(home.headers["www-authenticate"]).toContain(`/${OTHER_TENANT}"`)
    const own = await raw(emulator, "other-tenant", "GET", `/certificates/none/?${API}`, {
      token: emulator.issueToken(id, { tenantId: OTHER_TENANT }),
    })
    expect(own.status).toBe(404)
  })

  it("import needs certificates/import (not create) and names the import data action", async () => {
    const id = emulator.clientSecret.clientId
    emulator.rbac.deny(id, ["certificates/create"])
    expect((await certificates.importCertificate("rbac-import", pem, PEM)).name).toBe("rbac-import")
    emulator.rbac.reset()
    emulator.rbac.deny(id, ["certificates/import"])
    const e = await restError(certificates.importCertificate("rbac-import", pem, PEM))
    expect(e.statusCode).toBe(403)
    expect(e.code).toBe("Forbidden")
    expect(e.message).toContain("Action: 'Microsoft.KeyVault/vaults/certificates/import/action'")
  })

  it("a 403 names the data actions of Azure's operations list: a deleted certificate is read with certificates/read, recovered with certificates/recover/action", async () => {
    await certificates.importCertificate("rbac-deleted", pem, PEM)
    await (await certificates.beginDeleteCertificate("rbac-deleted", { intervalInMs: 10 })).pollUntilDone()
    const id = emulator.clientSecret.clientId
    emulator.rbac.deny(id, ["certificates/get", "certificates/recover", "certificates/update"])
    try {
      const read = await restError(certificates.getDeletedCertificate("rbac-deleted"))
      expect(read.statusCode).toBe(403)
      expect(read.message).toContain("Action: 'Microsoft.KeyVault/vaults/certificates/read'")
      const recover = await restError(certificates.beginRecoverDeletedCertificate("rbac-deleted"))
      expect(recover.statusCode).toBe(403)
      expect(recover.message).toContain("Action: 'Microsoft.KeyVault/vaults/certificates/recover/action'")
    } finally {
      emulator.rbac.reset()
    }
  })

  it("Key Vault Reader reads certificates but not the backing secret's value", async () => {
    await certificates.importCertificate("reader-view", pem, PEM)
    emulator.rbac.set(emulator.clientSecret.clientId, ["Key Vault Reader"])
    expect((await certificates.getCertificate("reader-view")).name).toBe("reader-view")
    const e = await restError(secrets.getSecret("reader-view"))
    expect(e.statusCode).toBe(403)
    expect(e.message).toContain("Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'")
  })
})

describe("RBAC scopes name the object type (certificates/NAME, secrets/NAME, keys/NAME)", () => {
  const id = () => emulator.clientSecret.clientId
  /** A GET of the certificate's key (no SDK here reads keys): the status. */
  const keyStatus = async (name: string, version: string) =>
    (await raw(emulator, "facts", "GET", `/keys/${name}/${version}?${API}`, { token })).status

  it("a certificate scope does not grant its backing secret's read, a secret scope not the certificate's; both grant both", async () => {
    const name = "scoped-api"
    const version = versionOf(await certificates.importCertificate(name, pem, PEM))
    emulator.rbac.scopeTo(id(), [`certificates/${name}`])
    expect((await certificates.getCertificate(name)).name).toBe(name)
    // The rollback's read: GET /secrets/NAME/VERSION, a secret object of its own.
    const secretRead = await restError(secrets.getSecret(name, { version }))
    expect(secretRead.statusCode).toBe(403)
    expect(secretRead.code).toBe("Forbidden")
    expect(secretRead.message).toContain("Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'")
    expect(secretRead.message).toContain(`/vaults/facts/secrets/${name}'`)
    expect(await keyStatus(name, version)).toBe(403)

    emulator.rbac.scopeTo(id(), [`secrets/${name}`])
    expect((await secrets.getSecret(name, { version })).properties.version).toBe(version)
    const certificateRead = await restError(certificates.getCertificate(name))
    expect(certificateRead.statusCode).toBe(403)
    expect(certificateRead.message).toContain("Action: 'Microsoft.KeyVault/vaults/certificates/read'")
    expect(certificateRead.message).toContain(`/vaults/facts/certificates/${name}'`)

    emulator.rbac.scopeTo(id(), [`certificates/${name}`, `SECRETS/${name.toUpperCase()}`])
    expect(emulator.rbac.scopesOf(id())).toEqual([`certificates/${name}`, `secrets/${name}`])
    expect((await certificates.getCertificate(name)).name).toBe(name)
    expect((await secrets.getSecret(name, { version })).properties.version).toBe(version)
    expect(await keyStatus(name, version)).toBe(403)
    emulator.rbac.scopeTo(id(), [`keys/${name}`])
    expect(await keyStatus(name, version)).toBe(200)
  })

  it("another name, the certificate list and a deleted certificate are refused under an object scope (the vault's)", async () => {
    const name = "scoped-deleted"
    await certificates.importCertificate(name, pem, PEM)
    await certificates.importCertificate("scoped-other", pem, PEM)
    const scopes = [`certificates/${name}`, `secrets/${name}`, `keys/${name}`]
    emulator.rbac.scopeTo(id(), scopes)
    // The scope grants its certificate while it exists...
    expect((await certificates.getCertificate(name)).name).toBe(name)
    emulator.rbac.reset()
    await (await certificates.beginDeleteCertificate(name, { intervalInMs: 10 })).pollUntilDone()
    // ...and not once it is deleted: the deleted certificate is the vault's.
    emulator.rbac.scopeTo(id(), scopes)
    expect((await restError(certificates.getCertificate("scoped-other"))).statusCode).toBe(403)
    const list = await raw(emulator, "facts", "GET", `/certificates?${API}`, { token })
    expect(list.status).toBe(403)
    const read = await restError(certificates.getDeletedCertificate(name))
    expect(read.statusCode).toBe(403)
    expect(read.message).toContain("Action: 'Microsoft.KeyVault/vaults/certificates/read'")
    const recover = await restError(certificates.beginRecoverDeletedCertificate(name))
    expect(recover.statusCode).toBe(403)
    expect(recover.message).toContain("Action: 'Microsoft.KeyVault/vaults/certificates/recover/action'")
    expect(emulator.state.isDeleted("facts", name)).toBe(true)
    // At the vault (no object scope) the same principal reads it.
    emulator.rbac.reset()
    expect((await certificates.getDeletedCertificate(name)).name).toBe(name)
  })

  it("a scope that does not name its type, or names another, is refused with the form to use; nothing changes", () => {
    const form = /"certificates\/NAME", "secrets\/NAME" or "keys\/NAME"/
    for (const [scope, says] of [
      ["api", 'rbac scope "api" names no object type'],
      ["vaults/api", 'the object type "vaults" is not one of'],
      ["certificate/api", 'the object type "certificate" is not one of'],
      ["certificates/", 'rbac scope "certificates/": "" is not a Key Vault object name'],
      ["secrets/api/0123", '"api/0123" is not a Key Vault object name'],
      ["certificates/a b", '"a b" is not a Key Vault object name'],
    ] as const) {
      expect(() => emulator.rbac.scopeTo(id(), ["certificates/fine", scope]), scope).toThrow(says)
      expect(() => emulator.rbac.scopeTo(id(), [scope]), scope).toThrow(form)
    }
    expect(emulator.rbac.scopesOf(id())).toBeUndefined()
  })

  it("is set over the admin API (PUT /_emulator/rbac/{clientId}/scope), a bad scope answered 400 with the form", async () => {
    const name = "scoped-admin"
    const version = versionOf(await certificates.importCertificate(name, pem, PEM))
    const bad = await admin(emulator, "PUT", `/rbac/${id()}/scope`, { scopes: [name] })
    expect(bad.status).toBe(400)
    expect(errorOf(bad.json).message).toContain('use "certificates/NAME", "secrets/NAME" or "keys/NAME"')
    const notAList = await admin(emulator, "PUT", `/rbac/${id()}/scope`, { scopes: `certificates/${name}` })
    expect(notAList.status).toBe(400)
    expect(errorOf(notAList.json).message).toContain("body.scopes")
    expect(emulator.rbac.scopesOf(id())).toBeUndefined()
    const set = await admin(emulator, "PUT", `/rbac/${id()}/scope`, { scopes: [`certificates/${name}`] })
    expect(set.status).toBe(200)
    expect(set.json).toMatchObject({ clientId: id(), scopes: [`certificates/${name}`] })
    expect((await certificates.getCertificate(name)).name).toBe(name)
    expect((await restError(secrets.getSecret(name, { version }))).statusCode).toBe(403)
    expect((await admin(emulator, "DELETE", "/rbac")).status).toBe(200)
    expect((await secrets.getSecret(name, { version })).name).toBe(name)
  })
})

describe("faults and the request log", () => {
  it("a foreign import `after` lands after the caller's import: the answer is the caller's version, latest is not", async () => {
    await certificates.importCertificate("raced", pem, PEM)
    emulator.faults.add({
      operation: "import",
      name: "raced",
      action: { kind: "foreignImport", when: "after", tags: { writer: "late" } },
    })
    const mine = await certificates.importCertificate("raced", pem, { ...PEM, tags: { writer: "me" } })
    expect(mine.properties.tags).toEqual({ writer: "me" })
    const versions = emulator.state.versions("facts", "raced") ?? []
    expect(versions.at(-2)?.version).toBe(versionOf(mine))
    expect(versions.at(-1)?.foreign).toBe(true)
    const latest = await certificates.getCertificate("raced")
    expect(latest.properties.tags).toEqual({ writer: "late" })
    expect(versionOf(latest)).not.toBe(versionOf(mine))
  })

  it("a dropped connection is logged with status 0 and dropped, after a commit too; an empty pwd is not a password sent", async () => {
    const noRetry = new Client(emulator.vault("facts").url, secretCredential(emulator), {
      ...clientOptions(emulator),
      retryOptions: { maxRetries: 0 },
    })
    await noRetry.importCertificate("dropped", pem, PEM) // settles the challenge too
    for (const kind of ["drop", "dropAfterCommit"] as const) {
      emulator.faults.add({ operation: "getLatest", name: "dropped", action: { kind } })
      const mark = emulator.requests.mark()
      await expect(noRetry.getCertificate("dropped")).rejects.toThrow()
      const entry = emulator.requests.entries({ since: mark, operation: "getLatest" })[0]
      expect(entry?.dropped).toBe(true)
      expect(entry?.status).toBe(0)
    }

    const mark2 = emulator.requests.mark()
    const res = await raw(emulator, "facts", "POST", `/certificates/empty-pwd/import?${API}`, {
      token,
      body: { value: pemBundle(material), pwd: "" },
    })
    expect(res.status).toBe(200)
    const logged = emulator.requests.entries({ since: mark2, operation: "import" })[0]
    expect(logged?.request?.passwordSent).toBe(false)
    expect(logged?.request?.keys).toEqual(["value", "pwd"])
  })
})
