/**
 * Fault injection, throttling, RBAC and token checks, seen through the real SDK
 * (its retries included) and raw HTTPS.
 */
import * as https from "node:https"
import type { CertificateClient } from "@azure/keyvault-certificates"
import { CertificateClient as Client } from "@azure/keyvault-certificates"
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest"
import { FaultController } from "../src/faults.js"
import { type Emulator, start } from "../src/index.js"
import {
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

let emulator: Emulator
let certificates: CertificateClient
let material: TestMaterial
const fast = { retryOptions: { maxRetries: 3, retryDelayInMs: 20, maxRetryDelayInMs: 200 } }

beforeAll(async () => {
  emulator = await start({
    vaults: [
      "faulty",
      { name: "tight", throttling: { windowMs: 1_500, writes: 2, others: 4 } },
      { name: "elsewhere", tenantId: "11111111-2222-3333-4444-555555555555" },
    ],
  })
  certificates = new Client(emulator.vault("faulty").url, secretCredential(emulator), {
    ...clientOptions(emulator),
    ...fast,
  })
  material = await makeMaterial()
  await certificates.importCertificate("svc", Buffer.from(pemBundle(material)), PEM)
})
afterAll(() => emulator?.stop())
beforeEach(() => {
  emulator.faults.clear()
  emulator.rbac.reset()
})

describe("fault injection", () => {
  it("429 with Retry-After is retried by the SDK after the delay it names", async () => {
    emulator.faults.add({ operation: "getLatest", action: { kind: "throttle", retryAfterSeconds: 1 } })
    const mark = emulator.requests.mark()
    const t0 = Date.now()
    const cert = await certificates.getCertificate("svc")
    expect(cert.name).toBe("svc")
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900)
    const seen = emulator.requests
      .entries({ since: mark, operation: "getLatest" })
      .filter((e) => !e.challenge)
    expect(seen.map((e) => e.status)).toEqual([429, 200])
    expect(seen[0]?.errorCode).toBe("Throttled")
  })

  it("a status fault's 429 carries Retry-After as Key Vault's always do: the SDK waits and retries", async () => {
    emulator.faults.add({ operation: "getLatest", action: { kind: "status", status: 429 } })
    const mark = emulator.requests.mark()
    const t0 = Date.now()
    expect((await certificates.getCertificate("svc")).name).toBe("svc")
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900)
    const seen = emulator.requests
      .entries({ since: mark, operation: "getLatest" })
      .filter((e) => !e.challenge)
    expect(seen.map((e) => e.status)).toEqual([429, 200])
    // On the wire: Retry-After 1 by default; a rule's own wait is kept as it is.
    const token = emulator.issueToken(emulator.clientSecret.clientId)
    emulator.faults.add({ operation: "getLatest", action: { kind: "status", status: 429 } })
    const plain = await raw(emulator, "faulty", "GET", "/certificates/svc/?api-version=2025-07-01", { token })
    expect([plain.status, plain.headers["retry-after"], errorOf(plain.json).code]).toEqual([
      429,
      "1",
      "Throttled",
    ])
    emulator.faults.add({
      operation: "getLatest",
      action: { kind: "status", status: 429, headers: { "retry-after-ms": "250" } },
    })
    const own = await raw(emulator, "faulty", "GET", "/certificates/svc/?api-version=2025-07-01", { token })
    expect([own.headers["retry-after"], own.headers["retry-after-ms"]]).toEqual([undefined, "250"])
  })

  it("a throttle fault's Retry-After is whole seconds from 0 to 3600; 0 is retried by the SDK at once", async () => {
    emulator.faults.add({ operation: "getLatest", action: { kind: "throttle", retryAfterSeconds: 0 } })
    const mark = emulator.requests.mark()
    expect((await certificates.getCertificate("svc")).name).toBe("svc")
    expect(
      emulator.requests
        .entries({ since: mark, operation: "getLatest" })
        .filter((e) => !e.challenge)
        .map((e) => e.status),
    ).toEqual([429, 200])
    for (const retryAfterSeconds of [-1, 0.5, 3601, "1"])
      expect(() =>
        emulator.faults.add({
          operation: "getLatest",
          action: { kind: "throttle", retryAfterSeconds } as never,
        }),
      ).toThrow(/throttle action's retryAfterSeconds must be a whole number of seconds from 0 to 3600/)
  })

  it("fails N times then succeeds (500s are retried by the SDK)", async () => {
    emulator.faults.failTimes("getVersion", 2, 500)
    const v = emulator.state.versions("faulty", "svc")?.[0]?.version ?? ""
    const mark = emulator.requests.mark()
    const cert = await certificates.getCertificateVersion("svc", v)
    expect(cert.properties.version).toBe(v)
    expect(emulator.requests.entries({ since: mark, operation: "getVersion" }).map((e) => e.status)).toEqual([
      500, 500, 200,
    ])
  })

  it("a status fault answers Key Vault's error body without touching the vault", async () => {
    emulator.faults.add({
      operation: "import",
      action: { kind: "status", status: 409, code: "Conflict", message: "scripted" },
    })
    const before = emulator.state.versions("faulty", "svc")?.length
    const e = await restError(certificates.importCertificate("svc", Buffer.from(pemBundle(material)), PEM))
    expect(e.statusCode).toBe(409)
    expect(e.code).toBe("Conflict")
    expect(e.message).toBe("scripted")
    expect(emulator.state.versions("faulty", "svc")?.length).toBe(before)
  })

  it("policyDenied answers Azure Policy's refusal as Key Vault does: 403 Forbidden, ForbiddenByPolicy, a JSON message naming the assignment; nothing written", async () => {
    emulator.faults.add({
      operation: "import",
      name: "svc",
      action: {
        kind: "policyDenied",
        assignment: {
          name: "cert-lifetime",
          id: "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/cert-lifetime",
        },
      },
    })
    const before = emulator.state.versions("faulty", "svc")?.length
    const e = await restError(certificates.importCertificate("svc", Buffer.from(pemBundle(material)), PEM))
    expect([e.statusCode, e.code]).toEqual([403, "Forbidden"])
    expect(JSON.parse(e.message)).toEqual({
      objectName: "svc",
      message: "Certificate 'svc' was disallowed by policy.",
      policyIdentifiers: {
        policyAssignment: {
          name: "cert-lifetime",
          id: "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/cert-lifetime",
        },
        policyDefinition: {
          name: "0a075868-4c26-42ef-914c-5bc007359560",
          id: "/providers/Microsoft.Authorization/policyDefinitions/0a075868-4c26-42ef-914c-5bc007359560",
        },
      },
    })
    expect(emulator.state.versions("faulty", "svc")?.length).toBe(before)
    // On the wire: the inner code an access policy's refusal carries too.
    const token = emulator.issueToken(emulator.clientSecret.clientId)
    emulator.faults.add({ operation: "import", name: "svc", action: { kind: "policyDenied" } })
    const plain = await raw(emulator, "faulty", "POST", "/certificates/svc/import?api-version=2025-07-01", {
      token,
      body: { value: "x" },
    })
    expect([plain.status, errorOf(plain.json).code, errorOf(plain.json).innererror?.code]).toEqual([
      403,
      "Forbidden",
      "ForbiddenByPolicy",
    ])
    // Azure Policy judges certificates as they are written: a read's rule is refused.
    expect(() => emulator.faults.add({ operation: "getLatest", action: { kind: "policyDenied" } })).toThrow(
      /policyDenied is a certificate write's fault \(import, create\)/,
    )
    expect(() =>
      emulator.faults.add({
        operation: "import",
        action: { kind: "policyDenied", assignment: { name: 7 } } as never,
      }),
    ).toThrow(/assignment must be an object of name and id/)
  })

  it("drops the connection after the import committed: the client sees an error, the version exists (ambiguous outcome)", async () => {
    const noRetry = new Client(emulator.vault("faulty").url, secretCredential(emulator), {
      ...clientOptions(emulator),
      retryOptions: { maxRetries: 0 },
    })
    await noRetry.getCertificate("svc") // settle the challenge first
    emulator.faults.add({ operation: "import", action: { kind: "dropAfterCommit" } })
    const before = emulator.state.versions("faulty", "svc")?.length ?? 0
    await expect(noRetry.importCertificate("svc", Buffer.from(pemBundle(material)), PEM)).rejects.toThrow()
    expect(emulator.state.versions("faulty", "svc")?.length).toBe(before + 1)
    expect(emulator.requests.entries({ operation: "import" }).at(-1)?.dropped).toBe(true)
  })

  it("drops the answer whatever it was: a refused import's connection closes too, the log keeps the refusal", async () => {
    const noRetry = new Client(emulator.vault("faulty").url, secretCredential(emulator), {
      ...clientOptions(emulator),
      retryOptions: { maxRetries: 0 },
    })
    await noRetry.getCertificate("svc") // settle the challenge first
    // A secret of the name makes Key Vault refuse a certificate import of it (409 Conflict).
    await raw(emulator, "faulty", "PUT", "/secrets/held-by-secret?api-version=2025-07-01", {
      token: emulator.issueToken(emulator.clientSecret.clientId),
      body: { value: "plain" },
    })
    emulator.faults.add({ operation: "import", name: "held-by-secret", action: { kind: "dropAnswer" } })
    const mark = emulator.requests.mark()
    const e = await restError(
      noRetry.importCertificate("held-by-secret", Buffer.from(pemBundle(material)), PEM),
    )
    expect(e.statusCode).toBeUndefined()
    const logged = emulator.requests.entries({ since: mark, operation: "import" })
    expect(logged.map((x) => [x.status, x.dropped, x.errorCode])).toEqual([[0, true, "Conflict"]])
    expect(emulator.state.versions("faulty", "held-by-secret")).toBeUndefined()
    // Without the fault the same import is refused, with its answer.
    expect(
      (await restError(noRetry.importCertificate("held-by-secret", Buffer.from(pemBundle(material)), PEM)))
        .statusCode,
    ).toBe(409)
  })

  it("disables the new version after the import committed: the import answers enabled, the next read serves it disabled", async () => {
    emulator.faults.add({ operation: "import", name: "svc", action: { kind: "disableAfterCommit" } })
    const before = emulator.state.versions("faulty", "svc") ?? []
    const imported = await certificates.importCertificate("svc", Buffer.from(pemBundle(material)), PEM)
    expect(imported.properties.enabled).toBe(true)
    const after = emulator.state.versions("faulty", "svc") ?? []
    expect(after).toHaveLength(before.length + 1)
    expect(after.at(-1)?.version).toBe(imported.properties.version)
    expect(after.at(-1)?.enabled).toBe(false)
    // Older versions are untouched.
    expect(after.slice(0, -1).map((v) => v.enabled)).toEqual(before.map((v) => v.enabled))
    const latest = await certificates.getCertificate("svc")
    expect(latest.properties.version).toBe(imported.properties.version)
    expect(latest.properties.enabled).toBe(false)
  })

  it("garbles an answer: the operation ran, the SDK cannot parse what came back", async () => {
    emulator.faults.add({ operation: "getLatest", name: "svc", action: { kind: "garbleAnswer" } })
    const e = await restError(certificates.getCertificate("svc"))
    expect(e.code).toBe("PARSE_ERROR")
    expect(e.statusCode).toBe(200)
    expect((await certificates.getCertificate("svc")).name).toBe("svc")
  })

  it("answers a vault operation with raw text (rawAnswer), as another service at the vault's URL: no Key Vault error body, code or headers; the operation does not run", async () => {
    const before = (await certificates.getCertificate("svc")).properties.version
    emulator.faults.add({
      operation: "import",
      name: "svc",
      action: { kind: "rawAnswer", body: "<html>Bad Request</html>", status: 400, contentType: "text/html" },
    })
    const e = await restError(
      certificates.importCertificate("svc", new TextEncoder().encode("not a certificate"), { password: "" }),
    )
    expect(e.statusCode).toBe(400)
    expect(e.code).toBeUndefined()
    // The text itself, as a client reading the body sees it.
    emulator.faults.add({
      operation: "import",
      name: "svc",
      action: { kind: "rawAnswer", body: "<html>Bad Request</html>", status: 400, contentType: "text/html" },
    })
    const text = await raw(emulator, "faulty", "POST", "/certificates/svc/import?api-version=2025-07-01", {
      token: emulator.issueToken(emulator.clientSecret.clientId),
      body: { value: "bm90IGEgY2VydGlmaWNhdGU=" },
    })
    expect(text).toMatchObject({ status: 400, text: "<html>Bad Request</html>" })
    expect(text.headers["content-type"]).toBe("text/html")
    expect(text.headers["x-ms-keyvault-service-version"]).toBeUndefined()
    // Key Vault's own refusal of the same content carries its error code.
    const kv = await restError(
      certificates.importCertificate("svc", new TextEncoder().encode("not a certificate"), { password: "" }),
    )
    expect(kv.statusCode).toBe(400)
    expect(kv.code).toBe("BadParameter")
    expect((await certificates.getCertificate("svc")).properties.version).toBe(before)
    const logged = emulator.requests.entries({ vault: "faulty" }).filter((r) => r.operation === "import")
    expect(logged.at(-3)).toMatchObject({ status: 400, fault: expect.stringMatching(/:rawAnswer$/) })
    expect(logged.at(-3)?.errorCode).toBeUndefined()
  })

  it("leaves fields out of an answer (omitFields), nested ones too; a rule without fields is refused", async () => {
    emulator.faults.add({
      operation: "getLatest",
      name: "svc",
      action: { kind: "omitFields", fields: ["attributes.created", "tags"] },
    })
    const partial = await certificates.getCertificate("svc")
    expect(partial.properties.createdOn).toBeUndefined()
    expect(partial.properties.tags).toBeUndefined()
    expect(partial.properties.version).toBeDefined()
    const whole = await certificates.getCertificate("svc")
    expect(whole.properties.createdOn).toBeInstanceOf(Date)
    expect(() =>
      emulator.faults.add({ operation: "getLatest", action: { kind: "omitFields", fields: [] } }),
    ).toThrow(/omitFields action needs fields/)
  })

  it("changes a list's items (omitFields and setFields with * or an index) and sets fields (setFields); a rule without fields is refused", async () => {
    /** The versions of "svc" as the SDK lists them, with this field left out of the next list answer. */
    const listedWithout = async (field: string) => {
      emulator.faults.add({
        operation: "versions",
        name: "svc",
        action: { kind: "omitFields", fields: [field] },
      })
      const listed = []
      for await (const v of certificates.listPropertiesOfCertificateVersions("svc")) listed.push(v)
      return listed
    }
    const listed = await listedWithout("value.*.x5t")
    expect(listed.length).toBeGreaterThan(0)
    expect(listed.every((v) => v.x509Thumbprint === undefined && v.version !== undefined)).toBe(true)
    // One item by its index: the others keep theirs.
    const one = await listedWithout("value.0.x5t")
    expect(one.length).toBeGreaterThan(1)
    expect(one.filter((v) => v.x509Thumbprint === undefined)).toHaveLength(1)
    const before = await certificates.getCertificate("svc")
    emulator.faults.add({
      operation: "getLatest",
      name: "svc",
      action: {
        kind: "setFields",
        fields: { "attributes.enabled": !before.properties.enabled, tags: { added: "yes" } },
      },
    })
    const changed = await certificates.getCertificate("svc")
    expect(changed.properties.enabled).toBe(!before.properties.enabled)
    expect(changed.properties.tags?.added).toBe("yes")
    // Only the answer changed: the vault's own state did not.
    const after = await certificates.getCertificate("svc")
    expect(after.properties.enabled).toBe(before.properties.enabled)
    expect(after.properties.tags?.added).toBeUndefined()
    expect(() =>
      emulator.faults.add({ operation: "getLatest", action: { kind: "setFields", fields: {} } }),
    ).toThrow(/setFields action needs fields/)
  })

  it("endlessList answers a next link no answer gave before, to an empty page: the SDK follows each", async () => {
    /** The versions of "svc" as the SDK lists them, and the next links the emulator answered. */
    const versionsListed = async () => {
      const since = emulator.requests.mark()
      const listed: Array<string | undefined> = []
      for await (const v of certificates.listPropertiesOfCertificateVersions("svc")) listed.push(v.version)
      const requests = emulator.requests
        .entries({ vault: "faulty", since })
        .filter((e) => e.operation === "versions" && !e.challenge)
      return { listed, requests }
    }
    const plain = await versionsListed()
    expect(plain.listed.length).toBeGreaterThan(0)
    expect(plain.requests).toHaveLength(1)
    emulator.faults.add({
      operation: "versions",
      name: "svc",
      times: 3,
      action: { kind: "endlessList" },
    })
    const endless = await versionsListed()
    // Three made-up links, each followed once, each to an empty page; the fourth page ends.
    expect(endless.requests.map((e) => e.status)).toEqual([200, 200, 200, 200])
    const queries = endless.requests.slice(1).map((e) => e.query)
    expect(new Set(queries).size).toBe(3)
    expect(queries.every((q) => q.includes("$skiptoken="))).toBe(true)
    expect(endless.listed).toEqual(plain.listed)
    expect(() => emulator.faults.add({ operation: "getLatest", action: { kind: "endlessList" } })).toThrow(
      /endlessList is a list operation's fault \(list, versions, listDeleted\), not getLatest's/,
    )
  })
  it("with its default retries the SDK re-sends an import whose connection dropped: two versions for one call", async () => {
    emulator.faults.add({ operation: "import", action: { kind: "dropAfterCommit" } })
    const before = emulator.state.versions("faulty", "svc")?.length ?? 0
    await certificates.importCertificate("svc", Buffer.from(pemBundle(material)), PEM)
    expect(emulator.state.versions("faulty", "svc")?.length).toBe(before + 2)
  })

  it("slips a foreign import in before a read: latest is someone else's version", async () => {
    emulator.faults.add({
      operation: "getLatest",
      action: { kind: "foreignImport", tags: { writer: "other-team" } },
    })
    const latest = await certificates.getCertificate("svc")
    expect(latest.properties.tags).toEqual({ writer: "other-team" })
    const versions = emulator.state.versions("faulty", "svc") ?? []
    expect(versions.at(-1)?.foreign).toBe(true)
    expect(versions.at(-1)?.version).toBe(latest.properties.version)
  })

  it("lets another writer delete the certificate before a request or after it committed; the versions stay held for a recovery", async () => {
    await certificates.importCertificate("gone-before", Buffer.from(pemBundle(material)), PEM)
    emulator.faults.add({ operation: "getLatest", name: "gone-before", action: { kind: "foreignDelete" } })
    expect(await restError(certificates.getCertificate("gone-before"))).toMatchObject({
      statusCode: 404,
      code: "CertificateNotFound",
    })
    expect(emulator.state.isDeleted("faulty", "gone-before")).toBe(true)
    expect(emulator.state.versions("faulty", "gone-before")).toBeUndefined()
    expect(emulator.state.versions("faulty", "gone-before", { includeDeleted: true })).toHaveLength(1)
    // Another writer's import into the soft-deleted name is refused, as Key Vault refuses anyone's:
    // nothing is written, and the request it rides on is answered (and logged) as usual.
    const noRetry = new Client(emulator.vault("faulty").url, secretCredential(emulator), {
      ...clientOptions(emulator),
      retryOptions: { maxRetries: 0 },
    })
    await restError(noRetry.getCertificate("gone-before")) // settle the challenge first
    emulator.faults.add({ operation: "getLatest", name: "gone-before", action: { kind: "foreignImport" } })
    const mark = emulator.requests.mark()
    expect(await restError(noRetry.getCertificate("gone-before"))).toMatchObject({
      statusCode: 404,
      code: "CertificateNotFound",
    })
    expect(
      emulator.requests.entries({ since: mark, challenge: false }).map((e) => e.fault !== undefined),
    ).toEqual([true])
    expect(emulator.state.versions("faulty", "gone-before", { includeDeleted: true })).toHaveLength(1)

    // After: the import commits and is answered, then the certificate is deleted.
    emulator.faults.add({
      operation: "import",
      name: "gone-after",
      action: { kind: "foreignDelete", when: "after" },
    })
    const imported = await certificates.importCertificate("gone-after", Buffer.from(pemBundle(material)), PEM)
    expect(imported.properties.version).toBeDefined()
    expect(emulator.state.isDeleted("faulty", "gone-after")).toBe(true)
    expect(
      emulator.state.versions("faulty", "gone-after", { includeDeleted: true })?.map((v) => v.version),
    ).toEqual([imported.properties.version])
    // Nothing to delete: the request runs as usual.
    emulator.faults.add({ operation: "getLatest", name: "never-there", action: { kind: "foreignDelete" } })
    expect((await restError(certificates.getCertificate("never-there"))).statusCode).toBe(404)
    expect(emulator.state.isDeleted("faulty", "never-there")).toBe(false)
    expect(() =>
      emulator.faults.add({
        operation: "import",
        action: { kind: "foreignDelete", when: "later" as "after" },
      }),
    ).toThrow(/when must be "before" or "after"/)
  })

  it("lets another writer recover a soft-deleted certificate before a request or after it committed", async () => {
    await certificates.importCertificate("back-before", Buffer.from(pemBundle(material)), PEM)
    emulator.faults.add({ operation: "getLatest", name: "back-before", action: { kind: "foreignDelete" } })
    await restError(certificates.getCertificate("back-before"))
    expect(emulator.state.isDeleted("faulty", "back-before")).toBe(true)
    // Before: the read that carries it finds the certificate served again.
    emulator.faults.add({ operation: "getLatest", name: "back-before", action: { kind: "foreignRecover" } })
    const served = await certificates.getCertificate("back-before")
    expect(served.properties.version).toBeDefined()
    expect(emulator.state.isDeleted("faulty", "back-before")).toBe(false)
    // After: the deleted certificate's read is answered, then it is recovered.
    emulator.faults.add({ operation: "getLatest", name: "back-before", action: { kind: "foreignDelete" } })
    await restError(certificates.getCertificate("back-before"))
    emulator.faults.add({
      operation: "getDeleted",
      name: "back-before",
      action: { kind: "foreignRecover", when: "after" },
    })
    expect((await certificates.getDeletedCertificate("back-before")).name).toBe("back-before")
    expect(emulator.state.isDeleted("faulty", "back-before")).toBe(false)
    // A recover POST after another writer's recovery finds no deleted certificate.
    emulator.faults.add({ operation: "getLatest", name: "back-before", action: { kind: "foreignDelete" } })
    await restError(certificates.getCertificate("back-before"))
    emulator.faults.add({ operation: "recover", name: "back-before", action: { kind: "foreignRecover" } })
    const mark = emulator.requests.mark()
    await restError(certificates.beginRecoverDeletedCertificate("back-before"))
    expect(
      emulator.requests
        .entries({ since: mark, challenge: false, operation: "recover" })
        .map((e) => [e.status, e.fault]),
    ).toEqual([[404, expect.stringMatching(/foreignRecover$/)]])
    expect(emulator.state.isDeleted("faulty", "back-before")).toBe(false)
    // Nothing deleted: the request runs as usual.
    emulator.faults.add({ operation: "getLatest", name: "back-before", action: { kind: "foreignRecover" } })
    expect((await certificates.getCertificate("back-before")).properties.version).toBe(
      served.properties.version,
    )
    expect(() =>
      emulator.faults.add({
        operation: "getLatest",
        action: { kind: "foreignRecover", when: "soon" as "after" },
      }),
    ).toThrow(/when must be "before" or "after"/)
  })

  it("delays, and matches by vault and name only", async () => {
    emulator.faults.add({
      operation: "getLatest",
      vault: "faulty",
      name: "svc",
      action: { kind: "delay", ms: 400 },
    })
    const t0 = Date.now()
    await restError(certificates.getCertificate("other-name"))
    expect(Date.now() - t0).toBeLessThan(350)
    await certificates.getCertificate("svc")
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400)
  })

  it("a delayed request whose client gave up is in flight until answered: requests.idle waits for its log entry", async () => {
    emulator.faults.add({
      operation: "getLatest",
      vault: "faulty",
      name: "svc",
      action: { kind: "delay", ms: 400 },
    })
    const since = emulator.requests.mark()
    const gaveUp = new AbortController()
    setTimeout(() => gaveUp.abort(), 100)
    await expect(certificates.getCertificate("svc", { abortSignal: gaveUp.signal })).rejects.toThrow()
    // The client's call is over; the emulator is still in its delay, and has logged nothing yet.
    expect(emulator.requests.inFlight()).toBe(1)
    expect(emulator.requests.entries({ vault: "faulty", operation: "getLatest", since })).toEqual([])
    await emulator.requests.idle()
    expect(emulator.requests.inFlight()).toBe(0)
    expect(emulator.requests.entries({ vault: "faulty", operation: "getLatest", since })).toEqual([
      expect.objectContaining({ fault: expect.stringMatching(/:delay$/) }),
    ])
    // Nothing in flight: at once.
    await emulator.requests.idle()
  })

  it("a delayed POST whose client gave up before its body was read is logged without an answer, and not performed", async () => {
    emulator.faults.add({
      operation: "import",
      vault: "faulty",
      name: "gave-up",
      action: { kind: "delay", ms: 400 },
    })
    const since = emulator.requests.mark()
    const gaveUp = new AbortController()
    setTimeout(() => gaveUp.abort(), 100)
    await expect(
      certificates.importCertificate("gave-up", Buffer.from(pemBundle(material)), {
        ...PEM,
        abortSignal: gaveUp.signal,
      }),
    ).rejects.toThrow()
    await emulator.requests.idle()
    expect(emulator.requests.entries({ vault: "faulty", operation: "import", since })).toEqual([
      expect.objectContaining({ status: 0, dropped: true, fault: expect.stringMatching(/:delay$/) }),
    ])
    expect(emulator.state.versions("faulty", "gave-up")).toBeUndefined()
  })

  it("holds a request until it is released, then performs it; an unreleased hold goes on after its timeout", async () => {
    const id = emulator.faults.add({
      operation: "getLatest",
      vault: "faulty",
      name: "svc",
      action: { kind: "hold" },
    })
    let answered = false
    const held = certificates.getCertificate("svc").then((c) => {
      answered = true
      return c
    })
    await expect.poll(() => emulator.faults.list().find((f) => f.id === id)?.hits, { interval: 5 }).toBe(1)
    // Another request, sent after the held one arrived, is answered while it waits.
    await restError(certificates.getCertificate("other-name"))
    expect(answered).toBe(false)
    expect(emulator.faults.release(id)).toBe(true)
    expect((await held).name).toBe("svc")
    expect(emulator.faults.release("fault-unknown")).toBe(false)
    // Not released: it goes on by itself after timeoutMs.
    emulator.faults.add({ operation: "getLatest", name: "svc", action: { kind: "hold", timeoutMs: 20 } })
    expect((await certificates.getCertificate("svc")).name).toBe("svc")
    for (const timeoutMs of [-1, Number.POSITIVE_INFINITY, 2 ** 31])
      expect(() =>
        emulator.faults.add({ operation: "getLatest", action: { kind: "hold", timeoutMs } }),
      ).toThrow(/timeoutMs/)
  })

  it("is scriptable over the admin endpoint (HTTPS + admin key)", async () => {
    const admin = (method: string, path: string, body?: unknown, key = emulator.adminKey) =>
      new Promise<{ status: number; json: unknown }>((resolve, reject) => {
        const data = body === undefined ? undefined : JSON.stringify(body)
        const req = https.request(
          `${emulator.adminUrl}${path}`,
          {
            method,
            ca: emulator.caPem,
            headers: {
              "x-kv-emulator-admin-key": key,
              ...(data ? { "content-type": "application/json" } : {}),
            },
          },
          (res) => {
            let text = ""
            res.on("data", (c: Buffer) => (text += c.toString()))
            res.on("end", () =>
              resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }),
            )
          },
        )
        req.on("error", reject)
        if (data) req.write(data)
        req.end()
      })
    expect((await admin("GET", "/faults", undefined, "wrong")).status).toBe(401)
    const added = await admin("POST", "/faults", {
      operation: "getLatest",
      times: 1,
      action: {
        kind: "status",
        status: 503,
        code: "ServiceUnavailable",
        message: "maintenance",
        headers: { "Retry-After": "0" },
      },
    })
    expect(added.status).toBe(200)
    expect((await admin("POST", "/faults", { operation: "nonsense", action: { kind: "drop" } })).status).toBe(
      400,
    )
    const mark = emulator.requests.mark()
    await certificates.getCertificate("svc")
    const statuses = emulator.requests.entries({ since: mark, operation: "getLatest" }).map((e) => e.status)
    expect(statuses).toEqual([503, 200])
    const log = await admin("GET", `/requests?vault=faulty&operation=getLatest&since=${mark}`)
    expect((log.json as { entries: unknown[] }).entries.length).toBe(2)
    const fi = await admin("POST", "/vaults/faulty/certificates/svc/foreign-import", {
      tags: { via: "admin" },
    })
    expect(fi.status).toBe(200)
    expect((await certificates.getCertificate("svc")).properties.tags).toEqual({ via: "admin" })
    // A hold released over the endpoint.
    const hold = await admin("POST", "/faults", {
      operation: "getLatest",
      name: "svc",
      action: { kind: "hold" },
    })
    const holdId = (hold.json as { ids: string[] }).ids[0] ?? ""
    const waiting = certificates.getCertificate("svc")
    await expect
      .poll(() => emulator.faults.list().find((f) => f.id === holdId)?.hits, { interval: 5 })
      .toBe(1)
    expect((await admin("POST", `/faults/${holdId}/release`)).status).toBe(200)
    expect((await waiting).name).toBe("svc")
    expect((await admin("POST", "/faults/fault-unknown/release")).status).toBe(404)
  })

  it("a defect of the emulator's own (an exception in the request handler) answers 500 and is in the request log", async () => {
    // Stands in for a bug: the fault controller throws while taking the fault of the first read of
    // a certificate (the identity endpoint's token request goes through it as well, untouched).
    const original = FaultController.prototype.take
    let thrown = 0
    const take = vi.spyOn(FaultController.prototype, "take").mockImplementation(function (
      this: FaultController,
      vault,
      operation,
      name,
    ) {
      if (operation === "getLatest" && thrown++ === 0) throw new Error("an emulator defect")
      return original.call(this, vault, operation, name)
    })
    try {
      const mark = emulator.requests.mark()
      const noRetries = new Client(emulator.vault("faulty").url, secretCredential(emulator), {
        ...clientOptions(emulator),
        retryOptions: { maxRetries: 0 },
      })
      const e = await restError(noRetries.getCertificate("svc"))
      expect(e.statusCode).toBe(500)
      expect(e.message).toContain("an emulator defect")
      const logged = emulator.requests
        .entries({ since: mark, operation: "getLatest" })
        .filter((x) => !x.challenge)
      expect(logged.map((x) => [x.status, x.errorCode])).toEqual([[500, "InternalServerError"]])
      // Logged as any request is: who asked, for which operation (no fault was taken).
      expect(logged[0]?.principal).toBe(emulator.clientSecret.clientId)
      expect(logged[0]?.fault).toBeUndefined()
      // The next request is served as usual.
      expect((await certificates.getCertificate("svc")).name).toBe("svc")
    } finally {
      take.mockRestore()
    }
  })
})

describe("a path whose escapes do not decode", () => {
  it("is answered 400 BadParameter after the challenge, and logged (not a 500 the log never shows)", async () => {
    const mark = emulator.requests.mark()
    const path = "/certificates/%ZZ/?api-version=2025-07-01"
    expect((await raw(emulator, "faulty", "GET", path)).status).toBe(401)
    const token = emulator.issueToken(emulator.clientSecret.clientId)
    const r = await raw(emulator, "faulty", "GET", path, { token })
    expect(r.status).toBe(400)
    expect(errorOf(r.json).code).toBe("BadParameter")
    const logged = emulator.requests.entries({ since: mark, vault: "faulty" })
    expect(logged.map((x) => [x.status, x.challenge])).toEqual([
      [401, true],
      [400, false],
    ])
  })
})

describe("throttling windows", () => {
  it("answers 429 with Retry-After once a vault's window is used up; throttled requests do not count", async () => {
    const token = emulator.issueToken(emulator.clientSecret.clientId)
    const statuses: number[] = []
    let retryAfter: string | string[] | undefined
    for (let i = 0; i < 6; i++) {
      const r = await raw(emulator, "tight", "GET", "/certificates/x/?api-version=2025-07-01", { token })
      statuses.push(r.status)
      if (r.status === 429) retryAfter = r.headers["retry-after"]
    }
    expect(statuses).toEqual([404, 404, 404, 404, 429, 429])
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1)
    // Writes have their own budget.
    const w1 = await raw(emulator, "tight", "POST", "/certificates/w/import?api-version=2025-07-01", {
      token,
      body: { value: pemBundle(material) },
    })
    const w2 = await raw(emulator, "tight", "POST", "/certificates/w/import?api-version=2025-07-01", {
      token,
      body: { value: pemBundle(material) },
    })
    const w3 = await raw(emulator, "tight", "POST", "/certificates/w/import?api-version=2025-07-01", {
      token,
      body: { value: pemBundle(material) },
    })
    expect([w1.status, w2.status, w3.status]).toEqual([200, 200, 429])
    expect(errorOf(w3.json).code).toBe("Throttled")
    await new Promise((r) => setTimeout(r, 1_600))
    expect(
      (await raw(emulator, "tight", "GET", "/certificates/w/?api-version=2025-07-01", { token })).status,
    ).toBe(200)
  })
})

describe("RBAC and tokens", () => {
  it("answers 403 Forbidden naming the action for a principal without secrets/get", async () => {
    const { secrets } = clients(emulator, "faulty")
    emulator.rbac.deny(emulator.clientSecret.clientId, ["secrets/get"])
    const e = await restError(secrets.getSecret("svc"))
    expect(e.statusCode).toBe(403)
    expect(e.code).toBe("Forbidden")
    expect(e.message).toContain("Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'")
    expect(e.message).toContain(`appid=${emulator.clientSecret.clientId}`)
    // Certificates stay readable.
    expect((await certificates.getCertificate("svc")).name).toBe("svc")
    emulator.rbac.set(emulator.clientSecret.clientId, ["Key Vault Certificate User"])
    expect((await secrets.getSecret("svc")).name).toBe("svc")
    expect(
      (await restError(certificates.importCertificate("svc", Buffer.from(pemBundle(material)), PEM)))
        .statusCode,
    ).toBe(403)
  })

  it("refuses expired tokens, tokens for another audience, and tokens for another tenant (401 with the challenge)", async () => {
    const id = emulator.clientSecret.clientId
    const expired = emulator.issueToken(id, {
      issuedAt: Math.floor(Date.now() / 1000) - 7200,
      lifetimeSeconds: 3600,
    })
    const wrongAud = emulator.issueToken(id, { resource: "https://management.azure.com" })
    const otherTenant = emulator.issueToken(id, { tenantId: "99999999-0000-0000-0000-000000000000" })
    for (const token of [
      expired,
      wrongAud,
      otherTenant,
      "not.a.jwt",
      `${emulator.issueToken(id).slice(0, -4)}AAAA`,
    ]) {
      const r = await raw(emulator, "faulty", "GET", "/certificates/svc/?api-version=2025-07-01", { token })
      expect(r.status).toBe(401)
      expect(r.headers["www-authenticate"]).toContain("Bearer authorization=")
      expect(errorOf(r.json).code).toBe("Unauthorized")
    }
    const ok = await raw(emulator, "faulty", "GET", "/certificates/svc/?api-version=2025-07-01", {
      token: emulator.issueToken(id),
    })
    expect(ok.status).toBe(200)
  })

  it("a vault in another tenant challenges with its tenant; the SDK refuses it unless additionallyAllowedTenants allows it, and Entra ID then gives a token only to an application provisioned there", async () => {
    const other = emulator.vault("elsewhere")
    expect(other.tenantId).toBe("11111111-2222-3333-4444-555555555555")
    const { certificates: c } = clients(emulator, "elsewhere")
    const e = await c.getCertificate("x").then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(String(e)).toMatch(/tenant/i)
    const { ClientSecretCredential } = await import("@azure/identity")
    const cred = new ClientSecretCredential(
      emulator.tenantId,
      emulator.clientSecret.clientId,
      emulator.clientSecret.clientSecret,
      {
        authorityHost: emulator.authorityHost,
        disableInstanceDiscovery: true,
        tlsOptions: { ca: emulator.caPem },
        additionallyAllowedTenants: ["*"],
      },
    )
    const allowed = new Client(other.url, cred, clientOptions(emulator))
    // Allowed by the SDK, but the application has no service principal in the vault's tenant.
    const missing = await allowed.getCertificate("x").then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(String(missing)).toContain(
      `AADSTS700016: Application with identifier '${emulator.clientSecret.clientId}' was not found in the directory '11111111-2222-3333-4444-555555555555'.`,
    )
    expect(emulator.tenancy.tenantsOf(emulator.clientSecret.clientId)).toEqual([emulator.tenantId])
    emulator.tenancy.provision(emulator.clientSecret.clientId, other.tenantId)
    try {
      expect(emulator.tenancy.tenantsOf(emulator.clientSecret.clientId)).toEqual([
        emulator.tenantId,
        other.tenantId,
      ])
      const nf = await restError(allowed.getCertificate("x"))
      expect(nf.statusCode).toBe(404)
    } finally {
      emulator.tenancy.withdraw(emulator.clientSecret.clientId, other.tenantId)
    }
  })

  it("Entra ID's token endpoint answers AADSTS700016 (unauthorized_client, 400) for an application in a tenant it has no service principal in", async () => {
    const form = (tenant: string) =>
      new Promise<{ status: number; json: Record<string, unknown> }>((resolve, reject) => {
        const body = new URLSearchParams({
          grant_type: "client_credentials",
          client_id: emulator.clientSecret.clientId,
          client_secret: emulator.clientSecret.clientSecret,
          scope: "https://vault.azure.net/.default",
        }).toString()
        const req = https.request(
          new URL(`/${tenant}/oauth2/v2.0/token`, emulator.authorityHost),
          {
            method: "POST",
            ca: emulator.caPem,
            headers: {
              "Content-Type": "application/x-www-form-urlencoded",
              "Content-Length": Buffer.byteLength(body),
            },
          },
          (res) => {
            const chunks: Buffer[] = []
            res.on("data", (c: Buffer) => chunks.push(c))
            res.on("end", () =>
              resolve({
                status: res.statusCode ?? 0,
                json: JSON.parse(Buffer.concat(chunks).toString("utf8")),
              }),
            )
          },
        )
        req.on("error", reject)
        req.end(body)
      })
    const elsewhere = "11111111-2222-3333-4444-555555555555"
    const refused = await form(elsewhere)
    expect(refused.status).toBe(400)
    expect(refused.json.error).toBe("unauthorized_client")
    expect(refused.json.error_codes).toEqual([700016])
    expect(refused.json.error_description).toBe(
      `AADSTS700016: Application with identifier '${emulator.clientSecret.clientId}' was not found in the directory '${elsewhere}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
    )
    // Its home tenant, by its id or its domain name, gives it a token.
    expect((await form(emulator.tenantId)).status).toBe(200)
    expect((await form(emulator.tenantDomain)).status).toBe(200)
    expect(() => emulator.tenancy.provision("00000000-0000-0000-0000-000000000001", elsewhere)).toThrow(
      /no principal with client id/,
    )
  })

  it("refuses an unsupported api-version", async () => {
    const token = emulator.issueToken(emulator.clientSecret.clientId)
    const r = await raw(emulator, "faulty", "GET", "/certificates/svc/?api-version=1999-01-01", { token })
    expect(r.status).toBe(400)
    expect(errorOf(r.json).code).toBe("BadParameter")
    const ok = await raw(emulator, "faulty", "GET", "/certificates/svc/?api-version=7.4", { token })
    expect(ok.status).toBe(200)
  })
})
